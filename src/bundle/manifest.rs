//! The manifest (`manifest.toml`) of a model bundle, as written by the user. Every section and
//! field is documented here and in `docs/manifest.md`; unknown fields are refused so that a typo
//! never silently falls back to a default. [`super::Bundle::load`] validates the values.

use serde::{Deserialize, Serialize};

use crate::nn::Activation;
pub use crate::policy::ActMode;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub bundle: BundleInfo,
    pub prior: PriorSection,
    pub robot: RobotSection,
    /// A built-in simulated robot for `resq customize` and `resq rig` (optional: a bundle without
    /// one runs over the link with `resq run`).
    pub sim: Option<SimSection>,
    /// The robot's ROS 2 topics (optional).
    pub ros2: Option<Ros2Section>,
    #[serde(default)]
    pub episode: EpisodeSection,
    #[serde(rename = "observation")]
    pub observations: Vec<ObservationSignal>,
    #[serde(default)]
    pub action: ActionSection,
    #[serde(default)]
    pub task: TaskSection,
    pub addon: AddonSection,
    pub residual: ResidualSection,
    #[serde(default)]
    pub learning: LearningSection,
    /// `[plan]`: the tree search of `residual.method = "plan"`.
    #[serde(default)]
    pub plan: PlanSection,
    #[serde(default)]
    pub exploration: ExplorationSection,
    #[serde(default)]
    pub evaluation: EvaluationSection,
    #[serde(default)]
    pub safety: SafetySection,
    #[serde(default)]
    pub run: RunSection,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `[prior]`: the frozen policy π0.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriorSection {
    /// ONNX file, relative to the bundle folder.
    #[serde(default = "default_prior_file")]
    pub file: String,
    /// `discrete_q` (outputs soft Q-values; π0 = softmax(q / temperature)), `discrete_logits`
    /// (outputs logits; π0 = softmax(logits)), `squashed_gaussian` (a SAC actor's mean and
    /// log-std), `gaussian` (mean and log-std in command units, clipped) or `deterministic` (the
    /// command, explored with `exploration_std`).
    pub kind: PriorKindName,
    /// The prior's own temperature, for `discrete_q`: a number, or `"auto"` (calibrated on the
    /// prior's own behaviour before learning; for a plain DQN, whose Q-values have none).
    pub temperature: Option<Temperature>,
    /// `temperature = "auto"`: steps of the prior acting greedily (as deployed) to calibrate on.
    pub calibration_steps: Option<u64>,
    /// For `deterministic`: the std of the Gaussian resq explores with around the prior's
    /// action, in command units.
    pub exploration_std: Option<f32>,
    /// `auto` (resq's allocation-free kernels when the graph is a dense chain they compute,
    /// checked against tract at load; tract otherwise) or `tract` (always tract: it allocates
    /// on every call, not real-time safe).
    #[serde(default)]
    pub engine: crate::policy::prior::PriorEngine,
    /// The discount the prior was trained with, if known: resq warns when `residual.gamma`
    /// differs (the prior's task is kept exactly only when they agree).
    pub gamma: Option<f32>,
}

/// `[prior] temperature`: a number or a word (`"auto"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Temperature {
    Value(f32),
    Word(String),
}

/// `[prior] kind`: what the prior's output is.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PriorKindName {
    DiscreteQ,
    DiscreteLogits,
    DiscreteProbs,
    SquashedGaussian,
    Gaussian,
    Deterministic,
}

impl PriorKindName {
    /// A prior over a finite set of actions.
    pub fn is_discrete(self) -> bool {
        matches!(
            self,
            PriorKindName::DiscreteQ | PriorKindName::DiscreteLogits | PriorKindName::DiscreteProbs
        )
    }

    /// The name the manifest uses.
    pub fn name(self) -> &'static str {
        match self {
            PriorKindName::DiscreteQ => "discrete_q",
            PriorKindName::DiscreteLogits => "discrete_logits",
            PriorKindName::DiscreteProbs => "discrete_probs",
            PriorKindName::SquashedGaussian => "squashed_gaussian",
            PriorKindName::Gaussian => "gaussian",
            PriorKindName::Deterministic => "deterministic",
        }
    }
}

fn default_prior_file() -> String {
    "prior.onnx".into()
}

/// `[robot]`: the robot's interface, what its firmware sends and takes, in wire order. The
/// handshake checks the firmware against it (names, order, counts).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RobotSection {
    /// How resq reaches the robot: `serial` (firmware over the serial link, the default) or
    /// `ros2` (the robot's ROS 2 topics over Zenoh, `[ros2]`).
    #[serde(default)]
    pub transport: Transport,
    /// The control period in real-time mode, ms (the firmware's when absent).
    pub period_ms: Option<f32>,
    #[serde(rename = "signal", default)]
    pub signals: Vec<SignalSpec>,
    #[serde(rename = "command", default)]
    pub commands: Vec<CommandSpec>,
}

/// `[robot] transport`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Serial,
    Ros2,
}

/// `[[robot.signal]]`: one value of every Sensor frame.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    /// The name on the wire (in the handshake's layout hash): UTF-8, at most 32 bytes.
    pub name: String,
    /// The name expressions and `[[observation]]` use, when the wire name is not an identifier
    /// (e.g. `joint-1.pos`).
    pub alias: Option<String>,
    #[serde(default)]
    pub unit: String,
    /// The expected range; a reading outside it is counted and the prior acts alone that tick.
    pub min: Option<f32>,
    pub max: Option<f32>,
    /// ROS 2: the `[[ros2.topic]]` the signal is a field of.
    pub topic: Option<String>,
    /// ROS 2: the field of that topic's message, e.g. `position[elbow]` (a JointState, by joint
    /// name), `data[2]`, `angular_velocity.z`.
    pub field: Option<String>,
}

/// `[[robot.command]]`: one value of every Command frame, with the supervisor's limits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The name on the wire (in the handshake's layout hash): UTF-8, at most 32 bytes.
    pub name: String,
    /// The name expressions use, when the wire name is not an identifier.
    pub alias: Option<String>,
    #[serde(default)]
    pub unit: String,
    /// Every command sent is clamped to `[min, max]`.
    pub min: f32,
    pub max: f32,
    /// Sent on e-stop and on a non-finite command (default 0, which must lie in `[min, max]`).
    pub safe: Option<f32>,
    /// Largest change per tick (0 = no limit).
    #[serde(default)]
    pub max_rate: f32,
    /// ROS 2: the field of the command message this command is (default for a
    /// Float64MultiArray: `data[<its index>]`; a Twist names it, e.g. `linear.x`).
    pub field: Option<String>,
}

/// `[ros2]`: the robot's ROS 2 topics, for records that are ROS 2 bags (`resq learn --from
/// <bag>`). Signals name their topic and field in `[[robot.signal]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ros2Section {
    /// The Zenoh router's endpoint (rmw_zenoh's default `tcp/localhost:7447`).
    #[serde(default = "default_router")]
    pub router: String,
    /// A Zenoh config file used instead of resq's session config (TLS, several endpoints),
    /// relative to the bundle.
    pub zenoh_config: Option<String>,
    /// `ROS_DOMAIN_ID`.
    #[serde(default)]
    pub domain: u32,
    /// The node's name in `ros2 node list`.
    #[serde(default = "default_node")]
    pub node: String,
    /// A signal not read within this long before a tick, or a clock silent this long, is stale:
    /// the safe command is sent, ms.
    #[serde(default = "default_stale_ms")]
    pub stale_ms: f32,
    /// A `std_srvs/srv/Trigger` service that starts an episode; none: episodes start where the
    /// robot stands.
    pub reset_service: Option<String>,
    /// A `std_msgs/msg/Bool` topic, true while the robot's e-stop is pressed.
    pub estop_topic: Option<String>,
    /// The topic whose every message is a tick: the signals as they stand when it arrives.
    pub clock: Option<String>,
    /// Instead of a clock topic: a tick every this many ms, on resq's own timer.
    pub clock_period_ms: Option<f32>,
    /// The topic the commands are published on, and its type (`std_msgs/msg/Float64MultiArray`,
    /// what ros2_control's forward_command_controller takes, or `geometry_msgs/msg/Twist`).
    pub command_topic: String,
    pub command_type: String,
    #[serde(rename = "topic", default)]
    pub topics: Vec<Ros2Topic>,
}

fn default_router() -> String {
    "tcp/localhost:7447".into()
}

fn default_node() -> String {
    "resq".into()
}

fn default_stale_ms() -> f32 {
    100.0
}

/// `[[ros2.topic]]`: a topic the signals are read from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ros2Topic {
    pub name: String,
    /// Its message type, e.g. `sensor_msgs/msg/JointState`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// `[sim]`: the simulated robot `resq customize` drives: a built-in plant (in process), or a
/// firmware command that serves a simulator on a pseudo-terminal (e.g. the reference firmware
/// over a gymnasium environment). Exactly one of the two.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    pub plant: Option<String>,
    /// A shell command that serves the robot's firmware; resq appends `--port pty --link PATH`
    /// and waits for PATH to appear, e.g. `resq-firmware --env MountainCar-v0`.
    pub firmware: Option<String>,
}

/// `[episode]`: how episodes end and start, for a robot resq knows nothing about.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EpisodeSection {
    /// Time limit in steps; reaching it *truncates* (the learner bootstraps through it). 0 = none.
    pub max_steps: u32,
    /// An expression over the signals (and commands): non-zero ends the episode as a true
    /// termination. The firmware's TERMINATED flag ends it too.
    pub terminate: Option<String>,
    /// What a successful episode is: `time_limit` (lasted to the limit), `terminated` (reached a
    /// terminal state), `flag` (the firmware set SUCCESS), or an expression over the last step.
    pub success: String,
    /// How a new episode starts: `firmware` (it resets itself on Reset) or `operator` (someone
    /// resets the robot; the firmware reports WAITING until it is ready, and resq waits).
    pub reset: ResetBy,
    /// A continuing task that never resets: learning, evaluation and the report work on windows
    /// of `window` steps.
    pub continuing: bool,
    pub window: u32,
}

impl Default for EpisodeSection {
    fn default() -> Self {
        EpisodeSection {
            max_steps: 0,
            terminate: None,
            success: "time_limit".into(),
            reset: ResetBy::Firmware,
            continuing: false,
            window: 1000,
        }
    }
}

/// `[episode] reset`: who starts a new episode.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResetBy {
    /// The firmware resets the robot on Reset.
    Firmware,
    /// A person does; the firmware reports WAITING meanwhile.
    Operator,
}

/// `[[observation]]`: one input of the prior, in order. The prior sees `(signal − offset) / scale`;
/// the residual sees that times `residual_scale` (to give a raw-observation prior's residual
/// well-scaled inputs, e.g. MountainCar's velocity of ±0.07).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationSignal {
    pub signal: String,
    #[serde(default)]
    pub offset: f32,
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default = "one")]
    pub residual_scale: f32,
}

fn one() -> f32 {
    1.0
}

/// `[action]`: how the prior's action becomes the robot's command vector. Discrete: action `i`
/// sends `table[i]` (or, for one command, `values[i]`). Continuous: action dimension `j` drives
/// command `j`; the prior's `a ∈ [−1, 1]` maps linearly onto `[low[j], high[j]]` (default: the
/// command's limits).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionSection {
    pub values: Vec<f32>,
    pub table: Vec<Vec<f32>>,
    pub low: Option<OneOrMany>,
    pub high: Option<OneOrMany>,
    pub labels: Vec<String>,
}

/// A number, or one number per command.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(f32),
    Many(Vec<f32>),
}

impl OneOrMany {
    /// One value per command (a single number applies to all).
    pub fn per_command(&self, n: usize) -> Vec<f32> {
        match self {
            OneOrMany::One(v) => vec![*v; n],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `[task]`: the prior's own task, used only to report how well it is kept. resq never learns
/// from it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    pub base_reward: Option<String>,
    /// The largest relative drop of the base return this customization accepts; beyond it resq
    /// warns (and says how to hold the prior's task more strongly).
    #[serde(default = "default_max_drop")]
    pub max_base_return_drop: f32,
}

fn default_max_drop() -> f32 {
    0.1
}

impl Default for TaskSection {
    fn default() -> Self {
        TaskSection { base_reward: None, max_base_return_drop: default_max_drop() }
    }
}

/// `[addon]`: the add-on reward `r_R`, a sum of named terms.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSection {
    #[serde(rename = "term")]
    pub terms: Vec<NamedExprSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedExprSpec {
    pub name: String,
    pub expr: String,
}

/// `[residual]`: the customized policy π̂(a|s) ∝ exp((Q_R(s,a) + ω'·log π0(a|s)) / α̂).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualSection {
    /// ω', the prior weight.
    pub omega: f32,
    /// α̂, the temperature of the customized policy.
    pub alpha: f32,
    /// γ, the discount.
    #[serde(default = "default_gamma")]
    pub gamma: f32,
    /// Hidden layer widths of the residual Q head.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// `relu`, `tanh`, `sigmoid` or `identity`.
    #[serde(default = "default_activation")]
    pub activation: HiddenActivation,
    /// Continuous actions: K, the candidates drawn from π0 at each state (method `sampled`).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Continuous actions: `sampled` (actor-free residual Q over K prior candidates) or `sac`
    /// (residual SAC: an actor on top of the prior and twin residual critics). Any actions:
    /// `rpg` (residual policy gradient: PPO on `r_R + ω'·log π0 − α̂·log π_θ`).
    /// Absent: residual soft Q over every action (discrete), `sampled` (continuous).
    pub method: Option<MethodName>,
    /// How far the customized policy may move from the prior, in nats per step: ω' and α̂ then
    /// scale together, from the values above, as the multiplier of `E[KL(π̂‖π0)] ≤ kl_per_step`
    /// (`session::trade_off`). 0 or absent: ω' and α̂ fixed (RQL as written); the confidence
    /// reading suggests a value for a confident prior.
    pub kl_per_step: Option<f32>,
    /// How fast that multiplier may move: `η` in `log m ← log m + η·clip(K̄/ε − 1, −1, 1)` each
    /// training tick, a factor e every `1/η` ticks at most. Absent: 0.001.
    pub kl_rate: Option<f32>,
    /// What a termination that `[episode] success` counts as a failure is worth to the residual
    /// (its value after the last step): `"worst"` (the lowest add-on reward seen so far, every
    /// step forever: `min(0, r_lo)/(1−γ)`), or a number (0: RQL as written).
    #[serde(default)]
    pub failure_value: FailureValue,
}

/// `[residual] failure_value`: a number or a word (`"worst"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum FailureValue {
    Value(f32),
    Word(String),
}

impl Default for FailureValue {
    fn default() -> Self {
        FailureValue::Word("worst".into())
    }
}

/// `[residual] method`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    Sampled,
    Sac,
    Rpg,
    Plan,
}

/// `[plan]`: zero-shot customization by tree search on the bundle's model
/// (`residual.method = "plan"`, `control::plan`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSection {
    /// Steps of the tree over every action.
    pub depth: usize,
    /// Steps of each prior rollout from a leaf.
    pub horizon: usize,
    /// Most rounds of rollouts (one from every leaf each).
    pub rollouts: usize,
    /// Time for one decision, ms: rounds stop once it is spent (at least one runs).
    pub budget_ms: f32,
}

impl Default for PlanSection {
    fn default() -> Self {
        PlanSection { depth: 2, horizon: 200, rollouts: 8, budget_ms: 10.0 }
    }
}

/// `[residual] activation`: the residual's hidden activation.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HiddenActivation {
    Relu,
    Tanh,
    Sigmoid,
    Identity,
}

impl From<HiddenActivation> for Activation {
    fn from(a: HiddenActivation) -> Activation {
        match a {
            HiddenActivation::Relu => Activation::Relu,
            HiddenActivation::Tanh => Activation::Tanh,
            HiddenActivation::Sigmoid => Activation::Sigmoid,
            HiddenActivation::Identity => Activation::Identity,
        }
    }
}

fn default_candidates() -> usize {
    16
}

fn default_gamma() -> f32 {
    0.99
}
fn default_hidden() -> Vec<usize> {
    vec![64, 64]
}
fn default_activation() -> HiddenActivation {
    HiddenActivation::Relu
}

/// `[learning]`: the online learner.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningSection {
    pub lr: f32,
    pub batch: usize,
    pub replay_capacity: usize,
    /// n of the n-step residual soft target (1 = the one-step target).
    pub n_step: usize,
    /// Polyak rate of the target network, per update (1.0 = copy every update).
    pub target_tau: f32,
    pub updates_per_tick: usize,
    /// Transitions collected before the first update.
    pub warmup: usize,
    pub huber_delta: f32,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f32,
    /// Learn on a thread of its own (the loop hands transitions over a lock-free queue and
    /// takes the newest weights; neither waits), instead of between ticks on the loop's thread
    /// (reproducible from a seed). For a real-time robot whose tick is shorter than its updates.
    pub thread: bool,
    /// Method `rpg`: steps per rollout (a multiple of `batch`).
    pub rollout: usize,
    /// Method `rpg`: passes over each rollout.
    pub epochs: usize,
    /// Method `rpg`: ε of PPO's clipped surrogate.
    pub clip: f32,
    /// Method `rpg`: λ of GAE.
    pub gae_lambda: f32,
    /// Method `rpg`: value-head steps per minibatch.
    pub value_steps: usize,
    /// Residual soft Q (discrete): `retrace` weighs the n-step target's steps with truncated
    /// importance weights, a contraction whatever the behaviour; `none` does not; `auto` (the
    /// default): `retrace` when `[residual] kl_per_step` moves ω' and α̂, `none` otherwise.
    pub traces: Traces,
    /// `resq learn --from` (discrete actions): an action is supported at a recorded state when
    /// the policy that recorded it drew it with probability at least this share of its most
    /// likely action's (an action not drawn, e.g. greedy acting, supports only itself); the
    /// residual holds every other action at the state's soft value, so the learned policy
    /// gives it the prior's probability, never more on a guess. 0: the plain residual soft-Q
    /// target (every action learned as the head generalises).
    pub offline_support: f32,
}

/// `[learning] traces`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Traces {
    #[default]
    Auto,
    None,
    Retrace,
}

impl Default for LearningSection {
    fn default() -> Self {
        LearningSection {
            lr: 1e-3,
            batch: 64,
            replay_capacity: 50_000,
            n_step: 10,
            target_tau: 0.01,
            updates_per_tick: 4,
            warmup: 500,
            huber_delta: 1.0,
            grad_clip: 10.0,
            thread: false,
            rollout: 512,
            epochs: 20,
            clip: 0.2,
            gae_lambda: 0.95,
            value_steps: 4,
            traces: Traces::Auto,
            offline_support: 0.3,
        }
    }
}

/// `[exploration]`: how the robot acts while learning. There is no random phase: the robot
/// samples from π̂ (which starts as the tempered prior), within a KL budget from π0.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplorationSection {
    /// `sample` (draw from π̂) or `greedy` (argmax of π̂).
    pub mode: ActMode,
    /// Largest KL(π̂‖π0) per state, in nats, at the start of learning (0 = no limit).
    pub kl_budget_start: f32,
    /// Budget after `kl_budget_ramp` steps (linear in between).
    pub kl_budget_end: f32,
    pub kl_budget_ramp: u64,
}

impl Default for ExplorationSection {
    fn default() -> Self {
        ExplorationSection {
            mode: ActMode::Sample,
            kl_budget_start: 0.0,
            kl_budget_end: 0.0,
            kl_budget_ramp: 0,
        }
    }
}

/// `[evaluation]`: how prior and customized policies are compared after a run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationSection {
    pub episodes: usize,
    /// `greedy` or `sample`, for both policies.
    pub policy: ActMode,
    #[serde(rename = "metric")]
    pub metrics: Vec<MetricSpec>,
}

impl Default for EvaluationSection {
    fn default() -> Self {
        EvaluationSection { episodes: 20, policy: ActMode::Greedy, metrics: Vec::new() }
    }
}

/// `[[evaluation.metric]]`: an expression averaged over every evaluation step (`reduce = "mean"`)
/// or summed per episode and averaged over episodes (`reduce = "episode_sum"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    pub expr: String,
    #[serde(default)]
    pub reduce: Reduce,
}

/// How a metric's per-step values become one number.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// Mean over every evaluation step.
    #[default]
    Mean,
    /// Sum per episode, mean over episodes.
    EpisodeSum,
    /// The value at each episode's last step, mean over episodes (e.g. the final distance).
    Final,
}

/// `[run]`: defaults for `resq customize` (the command line overrides them).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    pub seed: u64,
    pub steps: u64,
    pub checkpoint_every: u64,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection { seed: 0, steps: 20_000, checkpoint_every: 2_000 }
    }
}

/// `[safety]`: the supervisor's timing (its per-command limits are in `[[robot.command]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetySection {
    /// A tick whose decision takes longer than this (from signals received to command ready)
    /// sends the prior's action instead and counts a deadline miss.
    pub tick_deadline_ms: f32,
    /// The failure guard catches a customization that fails this many more of 10 episodes than
    /// the prior's rate allows (`p1 = p0 + (1 − p0)·n/10`); 0 = never stop (`session/guard.rs`).
    pub failed_episodes_stop: u32,
    /// The guard's false-alarm rate over a whole run, for a customization exactly as good as the
    /// prior.
    pub guard_false_alarm: f64,
    /// The prior's failure rate per episode, when known (e.g. from the prior's own tests);
    /// otherwise measured over the prior's whole episodes.
    pub prior_failure_rate: Option<f64>,
    /// `resq customize` (a simulated robot): whole episodes of the prior, acting as training
    /// acts, run before learning to measure its failure rate (more give a tighter baseline).
    pub prior_episodes: usize,
}

impl Default for SafetySection {
    fn default() -> Self {
        SafetySection {
            tick_deadline_ms: 50.0,
            failed_episodes_stop: 3,
            guard_false_alarm: 0.05,
            prior_failure_rate: None,
            prior_episodes: 20,
        }
    }
}
