//! The manifest (`manifest.toml`) of a model bundle, as written by the user. Every section and
//! field is documented here and in `docs/manifest.md`; unknown fields are refused so that a typo
//! never silently falls back to a default. [`super::Bundle::load`] validates the values.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub bundle: BundleInfo,
    pub prior: PriorSection,
    pub plant: PlantSection,
    #[serde(rename = "observation")]
    pub observations: Vec<ObservationSignal>,
    pub action: ActionSection,
    #[serde(default)]
    pub task: TaskSection,
    pub addon: AddonSection,
    pub residual: ResidualSection,
    #[serde(default)]
    pub learning: LearningSection,
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
    pub kind: String,
    /// The prior's own temperature, for `discrete_q`.
    pub temperature: Option<f32>,
    /// For `deterministic`: the std of the Gaussian resq explores with around the prior's
    /// action, in command units.
    pub exploration_std: Option<f32>,
}

fn default_prior_file() -> String {
    "prior.onnx".into()
}

/// `[plant]`: which simulated robot the bundle drives in `resq customize`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlantSection {
    pub name: String,
    /// Time limit; reaching it truncates the episode (it is not a termination).
    pub max_episode_steps: u32,
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

/// `[action]`: a discrete action set (action `i` sends command `values[i]`), or a continuous
/// command in `[low, high]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSection {
    /// The command's name, usable in reward expressions (with `<name>_prev`).
    pub name: String,
    #[serde(default)]
    pub values: Vec<f32>,
    pub low: Option<f32>,
    pub high: Option<f32>,
    #[serde(default)]
    pub labels: Vec<String>,
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
    pub activation: String,
    /// Continuous actions: K, the candidates drawn from π0 at each state (method `sampled`).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Continuous actions: `sampled` (actor-free residual Q over K prior candidates) or `sac`
    /// (residual SAC: an actor on top of the prior and twin residual critics).
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_method() -> String {
    "sampled".into()
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
fn default_activation() -> String {
    "relu".into()
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
        }
    }
}

/// `[exploration]`: how the robot acts while learning. There is no random phase: the robot
/// samples from π̂ (which starts as the tempered prior), within a KL budget from π0.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplorationSection {
    /// `sample` (draw from π̂) or `greedy` (argmax of π̂).
    pub mode: String,
    /// Largest KL(π̂‖π0) per state, in nats, at the start of learning (0 = no limit).
    pub kl_budget_start: f32,
    /// Budget after `kl_budget_ramp` steps (linear in between).
    pub kl_budget_end: f32,
    pub kl_budget_ramp: u64,
}

impl Default for ExplorationSection {
    fn default() -> Self {
        ExplorationSection {
            mode: "sample".into(),
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
    pub policy: String,
    /// What counts as a successful episode: `time_limit` (reached it without terminating, e.g.
    /// CartPole) or `terminated` (reached a terminal goal, e.g. MountainCar).
    pub success: String,
    #[serde(rename = "metric")]
    pub metrics: Vec<MetricSpec>,
}

impl Default for EvaluationSection {
    fn default() -> Self {
        EvaluationSection {
            episodes: 20,
            policy: "greedy".into(),
            success: "time_limit".into(),
            metrics: Vec::new(),
        }
    }
}

/// `[[evaluation.metric]]`: an expression averaged over every evaluation step (`reduce = "mean"`)
/// or summed per episode and averaged over episodes (`reduce = "episode_sum"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    pub expr: String,
    #[serde(default = "default_reduce")]
    pub reduce: String,
}

fn default_reduce() -> String {
    "mean".into()
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

/// `[safety]`: the supervisor's limits (one value per command). Empty lists take the defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetySection {
    /// Lowest command sent (default: the lowest action value).
    pub command_min: Vec<f32>,
    /// Highest command sent (default: the highest action value).
    pub command_max: Vec<f32>,
    /// Largest change per tick (0 = no limit; default 0).
    pub max_rate: Vec<f32>,
    /// Sent on e-stop, on a non-finite command, and applied by firmware on timeout (default 0).
    pub safe_command: Vec<f32>,
    /// A tick whose decision takes longer than this (from signals received to command ready)
    /// sends the prior's action instead and counts a deadline miss.
    pub tick_deadline_ms: f32,
}

impl Default for SafetySection {
    fn default() -> Self {
        SafetySection {
            command_min: vec![],
            command_max: vec![],
            max_rate: vec![],
            safe_command: vec![],
            tick_deadline_ms: 50.0,
        }
    }
}
