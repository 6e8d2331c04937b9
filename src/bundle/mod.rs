//! A model bundle: a folder with `manifest.toml` and the prior's ONNX file. Loading parses and
//! validates everything once — the manifest's values, the expressions, the prior against the
//! manifest's observation and action layout — and reports the first problem as a
//! [`BundleError`] naming the file, field, what was found and the fix.

mod load;
pub mod manifest;
pub mod reward;

use std::path::{Path, PathBuf};

pub use manifest::{Manifest, Reduce};

use crate::bundle::reward::{AddonReward, Expr, NamedExpr, Variables};
use crate::error::BundleError;
use crate::nn::Activation;
use crate::policy::prior::Prior;
use crate::robot::link::{Link, LinkConfig, LinkEnv};
use crate::robot::EnvError;

pub const MANIFEST_FILE: &str = "manifest.toml";

/// `[prior] temperature = "auto"`: steps of the prior acting greedily to calibrate on, unless
/// `[prior] calibration_steps` says otherwise.
pub const DEFAULT_CALIBRATION_STEPS: u64 = 500;

#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub expr: Expr,
    pub reduce: Reduce,
}

/// The observation vector: `obs[i] = (signals[index[i]] − offset[i]) / scale[i]` (the prior's
/// input); the residual's input is `obs[i] · residual_scale[i]`.
#[derive(Clone, Debug)]
pub struct ObsLayout {
    pub names: Vec<String>,
    pub index: Vec<usize>,
    pub offset: Vec<f32>,
    pub scale: Vec<f32>,
    pub residual_scale: Vec<f32>,
}

impl ObsLayout {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Fills `obs` from the plant's signal vector. No allocation.
    pub fn observe(&self, signals: &[f32], obs: &mut [f32]) {
        for (i, o) in obs.iter_mut().enumerate() {
            *o = (signals[self.index[i]] - self.offset[i]) / self.scale[i];
        }
    }
}

/// A loaded, validated bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// The manifest's text, hashed into checkpoints so a residual is never resumed on another task.
    pub manifest_text: String,
    pub prior: Prior,
    /// The robot's signal names, in wire order (what expressions may read).
    pub signals: Vec<String>,
    /// Each signal's declared range (±∞ where none is declared).
    pub signal_range: Vec<(f32, f32)>,
    /// The robot's command names, in wire order.
    pub commands: Vec<String>,
    /// The built-in simulated robot that serves this bundle in process, if it names one.
    pub sim_plant: Option<String>,
    /// A command serving a simulated robot's firmware on a pseudo-terminal, if it names one.
    pub sim_firmware: Option<String>,
    pub episode: EpisodeRules,
    pub obs: ObsLayout,
    /// Discrete: the command vector of each action (empty for continuous actions).
    pub action_table: Vec<Vec<f32>>,
    pub action_space: ActionSpace,
    pub vars: Variables,
    pub addon: AddonReward,
    pub base_reward: Option<NamedExpr>,
    pub metrics: Vec<Metric>,
    pub hidden_activation: Activation,
    pub safety: SafetyLimits,
    /// How the residual is learned and acts.
    pub method: Method,
    /// The residual also sees the previous command (each scaled to [−1, 1] by its limits),
    /// because an add-on term reads `<command>_prev`: `r_R` then depends on it, so `Q_R` must.
    pub prev_command_input: bool,
    /// `[prior] temperature = "auto"`: the calibration steps (the prior's temperature is 1 until
    /// the run calibrates it, `session::calibrate`).
    pub auto_temperature: Option<u64>,
    /// The trade-off's multiplier on the manifest's ω' and α̂ (`session::trade_off`): 1 unless
    /// `[residual] kl_per_step` moves it.
    pub weight_scale: f32,
    /// The robot's ROS 2 topics, where the manifest has `[ros2]`.
    pub ros2: Option<Ros2Layout>,
}

/// Where each signal and command lives in ROS 2 messages (`[ros2]`, checked at load).
pub use crate::robot::ros2::Layout as Ros2Layout;

/// The residual method (`docs/design.md` §1.10), from the action space and `residual.method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Discrete actions: residual soft Q-learning over every action.
    DiscreteQ,
    /// Continuous, actor-free: residual Q over K candidates drawn from π0.
    Sampled,
    /// Continuous: residual SAC (an actor on top of π0, twin residual critics).
    Sac,
    /// Any actions: residual policy gradient (PPO on the augmented reward, `algo::rpg`).
    Rpg,
    /// Discrete actions, zero-shot: no learning; `Q_R` by tree search on the bundle's model
    /// (`control::plan`).
    Plan,
}

/// The kind of action the robot takes.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionSpace {
    /// One of the rows of `action_table`.
    Discrete,
    /// One command per action dimension; the prior's `a_j ∈ [−1, 1]` maps linearly onto
    /// `[low[j], high[j]]`.
    Continuous { low: Vec<f32>, high: Vec<f32> },
}

/// Per-command limits the supervisor enforces (from `[[robot.command]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandLimits {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
    pub max_rate: Vec<f32>,
    pub safe: Vec<f32>,
}

/// The supervisor's limits and timing.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetyLimits {
    pub limits: CommandLimits,
    pub tick_deadline_ms: f32,
}

/// What makes an episode successful (`[episode] success`).
#[derive(Clone, Debug)]
pub enum Success {
    /// It lasted to its time limit.
    TimeLimit,
    /// It ended in a terminal state.
    Terminated,
    /// The firmware flagged it SUCCESS.
    Flag,
    /// The expression is non-zero on its last step.
    Expr(Expr),
}

/// The validated `[episode]` section.
#[derive(Clone, Debug)]
pub struct EpisodeRules {
    /// Time limit in steps (truncation); 0 = none.
    pub max_steps: u32,
    /// Non-zero ends the episode as a termination.
    pub terminate: Option<Expr>,
    pub success: Success,
    /// An operator resets the robot (the firmware reports WAITING meanwhile).
    pub operator_reset: bool,
    /// A continuing task: no resets; statistics over windows of `window` steps.
    pub continuing: bool,
    pub window: u32,
}

impl EpisodeRules {
    /// The time limit as the environments take it (`u32::MAX` for none).
    pub fn time_limit(&self) -> u32 {
        if self.max_steps == 0 {
            u32::MAX
        } else {
            self.max_steps
        }
    }

    /// Whether an episode that just ended was a success by `[episode] success`. `values` are its
    /// last step's (as [`Variables::fill`] writes them), `steps` its length; `window_done`: a
    /// continuing task's window ran to its length (a success by the time limit).
    pub fn succeeded(
        &self,
        end: crate::robot::StepEnd,
        values: &[f32],
        steps: u32,
        window_done: bool,
    ) -> bool {
        match &self.success {
            Success::Terminated => end.terminated,
            Success::TimeLimit => window_done || (end.truncated && steps >= self.time_limit()),
            Success::Flag => end.success,
            Success::Expr(e) => e.eval(values) != 0.0,
        }
    }

    /// Applies the `terminate` expression to a step the robot reported: non-zero on `values`
    /// (as [`Variables::fill`] writes them) makes it a termination.
    pub fn apply(&self, values: &[f32], end: &mut crate::robot::StepEnd) {
        if self.terminate.as_ref().is_some_and(|e| e.eval(values) != 0.0) {
            end.terminated = true;
            end.truncated = false;
        }
    }
}

/// The sampled method acts by choosing among K candidates drawn from π0, so its KL from the
/// prior is at most `log K` (all weight on one candidate): a larger budget never binds. The
/// warning names the fields and the bound, or `None`.
pub fn sampled_budget_warning(candidates: usize, e: &manifest::ExplorationSection) -> Option<String> {
    let bound = (candidates as f32).ln();
    let over: Vec<String> = [("kl_budget_start", e.kl_budget_start), ("kl_budget_end", e.kl_budget_end)]
        .iter()
        .filter(|(_, v)| *v > bound)
        .map(|(k, v)| format!("exploration.{k} = {v}"))
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "{} never binds: the sampled method chooses among residual.candidates = {candidates} draws from the prior, so its KL from the prior is at most log {candidates} = {bound:.2} nats. fix: lower it to at most {bound:.2} (or raise `residual.candidates`)",
            over.join(" and ")
        )
    })
}

/// The shaping by `ω'·log π0` cancels the prior's task only when the residual discounts as the
/// prior was trained (`docs/design.md` §1.2): a different γ leaves a bias in the customized
/// policy. The warning names both, or `None`
/// when they agree or the prior's γ is not stated (`[prior] gamma`).
pub fn discount_warning(prior_gamma: Option<f32>, gamma: f32) -> Option<String> {
    let g0 = prior_gamma?;
    ((g0 - gamma).abs() > 1e-6).then(|| {
        format!(
            "the prior was trained with γ = {g0} ([prior] gamma) and the residual discounts with γ = {gamma} (residual.gamma): the prior's task is kept exactly only when they agree. fix: set residual.gamma = {g0}"
        )
    })
}

impl Bundle {
    /// Loads the bundle in `dir`.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        Self::load_with(dir, &[])
    }

    /// Loads the bundle in `dir` with manifest fields overridden, each `section.field=value`
    /// (the value in TOML syntax; a bare word is taken as a string), e.g. `learning.n_step=5`.
    pub fn load_with(dir: &Path, overrides: &[String]) -> Result<Bundle, BundleError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let f = manifest_path.as_path();
        let (manifest, manifest_text) = load::read_manifest(dir, f, overrides)?;
        let m = &manifest;
        let io = load::interface(f, &m.robot)?;
        let (sim_plant, sim_firmware) = load::sim(f, &m.sim, &io)?;
        let obs = load::observations(f, &m.observations, &io)?;
        // The prior's kind (its file is loaded last, against the layouts).
        let (kind, auto_temperature) = load::prior_kind(f, &m.prior)?;
        let (action_space, action_table, n_actions) = load::actions(f, m, &io)?;
        let vars = Variables::new(&io.signal_vars, &io.command_vars);
        let (addon, base_reward, metrics) = load::expressions(f, m, &vars)?;
        load::settings(f, m)?;
        let episode = load::episode_rules(f, &m.episode, &vars)?;
        load::nonzero(f, "evaluation.episodes", m.evaluation.episodes, "evaluation episodes")?;
        let safety = SafetyLimits { limits: io.limits, tick_deadline_ms: m.safety.tick_deadline_ms };
        load::positive(f, "safety.tick_deadline_ms", safety.tick_deadline_ms, "the per-tick deadline")?;
        load::guard(f, &m.safety)?;
        let method = load::method(f, m, kind, &action_space)?;
        let ros2 = load::ros2(f, m)?;
        load::plan(f, m, n_actions)?;
        let prior = Prior::load_on(&dir.join(&m.prior.file), kind, obs.len(), n_actions, m.prior.engine)?;
        if let Some(w) = discount_warning(m.prior.gamma, m.residual.gamma) {
            log::warn!("{}: {w}", manifest_path.display());
        }
        if method == Method::Sampled {
            if let Some(w) = sampled_budget_warning(m.residual.candidates, &m.exploration) {
                log::warn!("{}: {w}", manifest_path.display());
            }
        }
        let prev_command_input = addon.terms.iter().any(|t| t.expr.variables().any(|i| vars.is_prev(i)));
        Ok(Bundle {
            ros2,
            auto_temperature,
            weight_scale: 1.0,
            prev_command_input,
            dir: dir.to_path_buf(),
            manifest_path: manifest_path.clone(),
            action_table,
            action_space,
            commands: io.commands,
            signal_range: io.signal_range,
            sim_plant,
            sim_firmware,
            episode,
            hidden_activation: m.residual.activation.into(),
            manifest,
            manifest_text,
            prior,
            signals: io.signals,
            obs,
            vars,
            addon,
            base_reward,
            metrics,
            safety,
            method,
        })
    }

    /// Opens the link to this bundle's robot (the handshake on its `[robot]` names) and runs its
    /// episodes by its `[episode]` rules.
    pub fn link_env(&self, cfg: LinkConfig) -> Result<LinkEnv, EnvError> {
        let signals: Vec<&str> = self.signals.iter().map(String::as_str).collect();
        let commands: Vec<&str> = self.commands.iter().map(String::as_str).collect();
        let link = Link::open(cfg, &signals, &commands)?;
        let mut env = LinkEnv::new(link, self.signals.len(), self.episode.time_limit());
        env.operator_reset = self.episode.operator_reset;
        Ok(env)
    }

    /// Joins this bundle's ROS 2 robot (`[robot] transport = "ros2"`): a node on its graph, its
    /// topics by `[ros2]`, episodes by `[episode]`. `router` replaces `[ros2] router`; the robot
    /// keeps its own time when `real_time` (otherwise it steps on each command).
    pub fn ros2_env(
        &self,
        router: Option<&str>,
        real_time: bool,
        reconnect_within: std::time::Duration,
    ) -> Result<crate::robot::ros2::Ros2Env, EnvError> {
        let (Some(layout), Some(r)) = (&self.ros2, &self.manifest.ros2) else {
            return Err(EnvError::Protocol(format!(
                "{}: the bundle has no `[ros2]`, so it cannot be run over ROS 2\n  fix: add `[ros2]` (docs/manifest.md), or run it over the serial link with --port",
                self.manifest_path.display()
            )));
        };
        let cfg = crate::robot::ros2::Ros2Config {
            router: router.unwrap_or(&r.router).to_string(),
            zenoh_config: r.zenoh_config.as_ref().map(|c| self.dir.join(c)),
            domain: r.domain,
            node: r.node.clone(),
            real_time,
            stale_after: std::time::Duration::from_secs_f32(r.stale_ms / 1000.0),
            reconnect_within,
            reset_service: r.reset_service.clone(),
            operator_reset: self.episode.operator_reset,
            estop_topic: r.estop_topic.clone(),
            safe: self.safety.limits.safe.clone(),
            signal_names: self.signals.clone(),
            max_steps: self.episode.time_limit(),
        };
        crate::robot::ros2::Ros2Env::open(layout, cfg)
    }

    /// Whether the robot is reached over ROS 2 (`[robot] transport = "ros2"`).
    pub fn over_ros2(&self) -> bool {
        self.manifest.robot.transport == manifest::Transport::Ros2
    }

    /// Discrete: the action whose table row the command `cmd` is (what the robot received, after
    /// the supervisor); `None` if it is no row (a rate limit between two).
    pub fn action_of(&self, cmd: &[f32]) -> Option<usize> {
        self.action_table.iter().position(|row| row.as_slice() == cmd)
    }

    /// Continuous: the command `cmd` in the action's `[−1, 1]` units, into `unit` (kept inside
    /// the squashed families' open interval); false if a value lies outside the action's
    /// `[low, high]` (no action's, e.g. on its way to a `safe` value outside them).
    pub fn unit_of(&self, cmd: &[f32], unit: &mut [f32]) -> bool {
        let ActionSpace::Continuous { low, high } = &self.action_space else { return false };
        let edge = 1.0 - crate::policy::prior::SQUASH_EPS;
        for (j, (c, u)) in cmd.iter().zip(unit.iter_mut()).enumerate() {
            let v = 2.0 * (c - low[j]) / (high[j] - low[j]) - 1.0;
            if !(v.abs() <= 1.0 + 1e-6) {
                return false;
            }
            *u = v.clamp(-edge, edge);
        }
        true
    }

    /// `(ω', α̂)` of the acting policy `log π = log_softmax((head + ω'·log π0)/α̂)` over discrete
    /// actions: [`Bundle::weights`] for residual soft Q; `(1, 1)` for RPG, whose head gives logit
    /// offsets to the prior.
    pub fn acting_weights(&self) -> (f32, f32) {
        match self.method {
            Method::Rpg => (1.0, 1.0),
            _ => self.weights(),
        }
    }

    /// `(ω', α̂)` the residual learns and acts with: the manifest's, times the trade-off's
    /// multiplier ([`Bundle::weight_scale`]).
    pub fn weights(&self) -> (f32, f32) {
        let r = &self.manifest.residual;
        (self.weight_scale * r.omega, self.weight_scale * r.alpha)
    }

    /// What the end of a failed episode is worth to the residual, `[residual] failure_value`,
    /// given the lowest add-on reward seen so far: `"worst"` is `min(0, r_lo)/(1−γ)`, the
    /// add-on's worst forever, so that no pure penalty is escaped by failing.
    pub fn failure_value(&self, addon_lo: f32) -> f32 {
        let r = &self.manifest.residual;
        match r.failure_value {
            manifest::FailureValue::Value(v) => v,
            manifest::FailureValue::Word(_) => addon_lo.min(0.0) / (1.0 - r.gamma),
        }
    }

    /// Whether ending an episode in failure escapes an add-on that was at least `addon_lo` on
    /// every step and never positive: the failure is valued above that penalty's worst forever,
    /// `addon_lo/(1−γ)` (never at `failure_value = "worst"`).
    pub fn failure_escapes(&self, addon_lo: f32, addon_hi: f32) -> bool {
        let worst = addon_lo / (1.0 - self.manifest.residual.gamma);
        addon_hi <= 0.0 && addon_lo.is_finite() && self.failure_value(addon_lo) > worst + 1e-3 * worst.abs()
    }

    /// The residual's input width: the observation, plus the previous command when an add-on
    /// term reads it ([`Bundle::prev_command_input`]).
    pub fn residual_inputs(&self) -> usize {
        self.obs.len() + if self.prev_command_input { self.commands.len() } else { 0 }
    }

    /// Discrete: the number of actions. Continuous: the command dimension.
    pub fn n_actions(&self) -> usize {
        match self.action_space {
            ActionSpace::Discrete => self.action_table.len(),
            ActionSpace::Continuous { .. } => self.commands.len(),
        }
    }

    /// The first signal outside its declared range (or non-finite), if any: `(index, value)`.
    pub fn signal_fault(&self, signals: &[f32]) -> Option<(usize, f32)> {
        signals
            .iter()
            .zip(&self.signal_range)
            .position(|(v, (lo, hi))| !(v.is_finite() && *v >= *lo && *v <= *hi))
            .map(|i| (i, signals[i]))
    }

    /// Display name of action `i`.
    pub fn action_label(&self, i: usize) -> String {
        match self.action_space {
            ActionSpace::Discrete => self
                .manifest
                .action
                .labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("{:?}", self.action_table[i])),
            ActionSpace::Continuous { .. } => format!("candidate {i}"),
        }
    }
}

#[cfg(test)]
mod sampled_budget_tests {
    use super::*;

    /// `models/mountaincar`'s 0.5 → 5 nats with the sampled method's 16 candidates: the 5-nat end
    /// never binds (log 16 = 2.77), and the warning says so with the bound; budgets within it pass.
    #[test]
    fn a_kl_budget_above_log_k_is_named() {
        let e =
            manifest::ExplorationSection { kl_budget_start: 0.5, kl_budget_end: 5.0, ..Default::default() };
        let w = sampled_budget_warning(16, &e).expect("5 nats > log 16");
        assert!(w.contains("exploration.kl_budget_end = 5") && w.contains("2.77"), "{w}");
        assert!(!w.contains("kl_budget_start"), "{w}");
        let e =
            manifest::ExplorationSection { kl_budget_start: 0.5, kl_budget_end: 2.5, ..Default::default() };
        assert_eq!(sampled_budget_warning(16, &e), None);
        assert_eq!(sampled_budget_warning(16, &manifest::ExplorationSection::default()), None);
    }

    /// A prior trained at another discount than the residual's is named, with both values.
    #[test]
    fn a_discount_other_than_the_priors_is_named() {
        let w = discount_warning(Some(0.9), 0.99).expect("0.9 vs 0.99");
        assert!(w.contains("γ = 0.9") && w.contains("γ = 0.99") && w.contains("residual.gamma = 0.9"), "{w}");
        assert_eq!(discount_warning(Some(0.99), 0.99), None);
        assert_eq!(discount_warning(None, 0.99), None, "unstated: nothing to compare");
    }
}
