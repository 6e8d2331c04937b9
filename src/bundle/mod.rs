//! A model bundle: a folder with `manifest.toml` and the prior's ONNX file. Loading parses and
//! validates everything once — the manifest's values, the expressions, the prior against the
//! manifest's observation and action layout — and reports the first problem as a
//! [`BundleError`] naming the file, field, what was found and the fix.

pub mod manifest;

use std::path::{Path, PathBuf};

pub use manifest::Manifest;

use crate::error::BundleError;
use crate::nn::Activation;
use crate::plant;
use crate::prior::{Prior, PriorKind};
use crate::reward::{AddonReward, Expr, NamedExpr, Variables};
use crate::supervisor::Supervisor;

pub const MANIFEST_FILE: &str = "manifest.toml";

/// How a metric's per-step values become one number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduce {
    /// Mean over every evaluation step.
    Mean,
    /// Sum per episode, mean over episodes.
    EpisodeSum,
}

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
    /// The plant's signal names (what reward expressions may read).
    pub signals: Vec<String>,
    pub obs: ObsLayout,
    /// Discrete command values (empty for a continuous action).
    pub action_values: Vec<f32>,
    pub action_space: ActionSpace,
    pub vars: Variables,
    pub addon: AddonReward,
    pub base_reward: Option<NamedExpr>,
    pub metrics: Vec<Metric>,
    pub hidden_activation: Activation,
    pub safety: SafetyLimits,
    /// How the residual is learned and acts.
    pub method: Method,
}

/// The residual method (DESIGN.md §1), from the action space and `residual.method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Discrete actions: residual soft Q-learning over every action.
    DiscreteQ,
    /// Continuous, actor-free: residual Q over K candidates drawn from π0.
    Sampled,
    /// Continuous: residual SAC (an actor on top of π0, twin residual critics).
    Sac,
}

/// The kind of action the robot takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActionSpace {
    /// One of `action_values`.
    Discrete,
    /// A command in `[low, high]`; the prior's `a ∈ [−1, 1]` maps linearly onto it.
    Continuous { low: f32, high: f32 },
}

/// The validated `[safety]` section (one command dimension).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SafetyLimits {
    pub min: f32,
    pub max: f32,
    pub max_rate: f32,
    pub safe: f32,
    pub tick_deadline_ms: f32,
}

/// Sets `section.field` (dotted path) in a parsed manifest to `value`.
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), String> {
    let (path, value) = spec.split_once('=').ok_or_else(|| format!("`{spec}` has no `=`"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
    let keys: Vec<&str> = path.trim().split('.').collect();
    let (last, parents) = keys.split_last().ok_or("empty override")?;
    let mut t = table;
    for k in parents {
        t = t
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{k}` is not a section"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

fn parse_expr(file: &Path, field: &str, src: &str, vars: &Variables) -> Result<Expr, BundleError> {
    Expr::parse(src, &vars.names()).map_err(|e| {
        BundleError::field(
            file,
            field,
            format!("cannot parse `{src}` {e}"),
            format!("write an expression over {} (see docs/manifest.md)", vars.names().join(", ")),
        )
    })
}

fn positive(file: &Path, field: &str, v: f32, what: &str) -> Result<(), BundleError> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(BundleError::field(
            file,
            field,
            format!("found {v}, expected a positive number ({what})"),
            format!("set `{field}` to a value > 0"),
        ))
    }
}

fn nonzero(file: &Path, field: &str, v: usize, what: &str) -> Result<(), BundleError> {
    if v > 0 {
        Ok(())
    } else {
        Err(BundleError::field(
            file,
            field,
            format!("found 0, expected at least 1 ({what})"),
            format!("set `{field}` to a value ≥ 1"),
        ))
    }
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
        if !dir.is_dir() {
            return Err(BundleError::new(
                dir,
                None,
                "no such bundle folder",
                "pass the folder that holds manifest.toml and prior.onnx, e.g. models/cartpole",
            ));
        }
        let manifest_text = std::fs::read_to_string(f).map_err(|e| {
            BundleError::new(
                f,
                None,
                format!("cannot read the manifest: {e}"),
                "every bundle folder needs a manifest.toml (see models/cartpole/manifest.toml)",
            )
        })?;
        let toml_error = |e: toml::de::Error| {
            let field = e.message().split('`').nth(1).map(str::to_string);
            BundleError {
                file: f.to_path_buf(),
                field,
                problem: format!("invalid manifest: {}", e.to_string().trim_end()),
                fix: "compare with models/cartpole/manifest.toml and docs/manifest.md".into(),
            }
        };
        let (manifest, manifest_text): (Manifest, String) = if overrides.is_empty() {
            (toml::from_str(&manifest_text).map_err(toml_error)?, manifest_text)
        } else {
            let mut table: toml::Table = toml::from_str(&manifest_text).map_err(toml_error)?;
            for o in overrides {
                apply_override(&mut table, o).map_err(|problem| {
                    BundleError::new(
                        f,
                        Some(o.split('=').next().unwrap_or(o)),
                        problem,
                        "write overrides as section.field=value, e.g. learning.n_step=5",
                    )
                })?;
            }
            let m = table.try_into().map_err(toml_error)?;
            (m, format!("{manifest_text}\n# overrides: {}\n", overrides.join(" ")))
        };
        let m = &manifest;

        // Plant and signals.
        let plant = plant::make(&m.plant.name).ok_or_else(|| {
            BundleError::field(
                f,
                "plant.name",
                format!("unknown plant `{}`", m.plant.name),
                format!("use one of: {}", plant::PLANTS.join(", ")),
            )
        })?;
        let signals: Vec<String> = plant.signal_names().iter().map(|s| s.to_string()).collect();
        nonzero(f, "plant.max_episode_steps", m.plant.max_episode_steps as usize, "the episode time limit")?;

        // Observation layout.
        if m.observations.is_empty() {
            return Err(BundleError::field(
                f,
                "observation",
                "no [[observation]] entries",
                "list the prior's inputs in order, one [[observation]] per signal",
            ));
        }
        let mut obs =
            ObsLayout { names: vec![], index: vec![], offset: vec![], scale: vec![], residual_scale: vec![] };
        for (i, o) in m.observations.iter().enumerate() {
            let field = format!("observation[{i}].signal");
            let idx = signals.iter().position(|s| *s == o.signal).ok_or_else(|| {
                BundleError::field(
                    f,
                    &field,
                    format!("unknown signal `{}`", o.signal),
                    format!("the plant `{}` has signals: {}", m.plant.name, signals.join(", ")),
                )
            })?;
            if o.scale == 0.0 || !o.scale.is_finite() || !o.offset.is_finite() {
                return Err(BundleError::field(
                    f,
                    &format!("observation[{i}].scale"),
                    format!("found scale {} offset {}", o.scale, o.offset),
                    "use a finite, non-zero scale and a finite offset",
                ));
            }
            obs.names.push(o.signal.clone());
            obs.index.push(idx);
            obs.offset.push(o.offset);
            obs.scale.push(o.scale);
            if !(o.residual_scale.is_finite() && o.residual_scale > 0.0) {
                return Err(BundleError::field(
                    f,
                    &format!("observation[{i}].residual_scale"),
                    format!("found {}", o.residual_scale),
                    "use a positive, finite scale",
                ));
            }
            obs.residual_scale.push(o.residual_scale);
        }

        // Actions: discrete `values`, or a continuous range `low`..`high`.
        let bounds = plant.command_bounds()[0];
        let (action_space, n_actions) = match (m.action.values.is_empty(), m.action.low, m.action.high) {
            (true, Some(low), Some(high)) => {
                if !(low < high) || low < bounds.0 || high > bounds.1 {
                    return Err(BundleError::field(
                        f,
                        "action.low",
                        format!("range [{low}, {high}] is empty or outside the plant's command range [{}, {}]", bounds.0, bounds.1),
                        "use low < high within the plant's range",
                    ));
                }
                (ActionSpace::Continuous { low, high }, 1)
            }
            (false, None, None) => {
                let n = m.action.values.len();
                if n < 2 {
                    return Err(BundleError::field(
                        f,
                        "action.values",
                        format!("found {n} action(s), expected at least 2"),
                        "list the command value of every discrete action, in the prior's output order",
                    ));
                }
                if !m.action.labels.is_empty() && m.action.labels.len() != n {
                    return Err(BundleError::field(
                        f,
                        "action.labels",
                        format!("found {} labels for {n} actions", m.action.labels.len()),
                        "give one label per action value, or none",
                    ));
                }
                for v in &m.action.values {
                    if !(bounds.0..=bounds.1).contains(v) {
                        return Err(BundleError::field(
                            f,
                            "action.values",
                            format!("value {v} is outside the plant's command range [{}, {}]", bounds.0, bounds.1),
                            "use command values within the plant's range",
                        ));
                    }
                }
                (ActionSpace::Discrete, n)
            }
            _ => {
                return Err(BundleError::field(
                    f,
                    "action",
                    "give either `values` (discrete actions) or both `low` and `high` (a continuous command), not both",
                    "discrete: values = [-10.0, 10.0]; continuous: low = -1.0, high = 1.0",
                ))
            }
        };
        if m.residual.candidates == 0 {
            return Err(BundleError::field(
                f,
                "residual.candidates",
                "found 0, expected at least 1",
                "e.g. candidates = 16",
            ));
        }

        // Expressions.
        let vars = Variables::new(&signals, std::slice::from_ref(&m.action.name));
        if m.addon.terms.is_empty() {
            return Err(BundleError::field(
                f,
                "addon.term",
                "no add-on reward terms",
                "add at least one [[addon.term]] with a name and an expr",
            ));
        }
        let mut addon = AddonReward { terms: vec![] };
        for (i, t) in m.addon.terms.iter().enumerate() {
            let expr = parse_expr(f, &format!("addon.term[{i}].expr"), &t.expr, &vars)?;
            addon.terms.push(NamedExpr { name: t.name.clone(), expr });
        }
        let base_reward = match &m.task.base_reward {
            Some(src) => {
                Some(NamedExpr { name: "base".into(), expr: parse_expr(f, "task.base_reward", src, &vars)? })
            }
            None => None,
        };
        let mut metrics = vec![];
        for (i, s) in m.evaluation.metrics.iter().enumerate() {
            let expr = parse_expr(f, &format!("evaluation.metric[{i}].expr"), &s.expr, &vars)?;
            let reduce = match s.reduce.as_str() {
                "mean" => Reduce::Mean,
                "episode_sum" => Reduce::EpisodeSum,
                other => {
                    return Err(BundleError::field(
                        f,
                        &format!("evaluation.metric[{i}].reduce"),
                        format!("unknown reduction `{other}`"),
                        "use `mean` or `episode_sum`",
                    ))
                }
            };
            metrics.push(Metric { name: s.name.clone(), expr, reduce });
        }

        // Residual and learning settings.
        let r = &m.residual;
        positive(f, "residual.alpha", r.alpha, "the temperature α̂ of the customized policy")?;
        if !(r.omega >= 0.0 && r.omega.is_finite()) {
            return Err(BundleError::field(
                f,
                "residual.omega",
                format!("found {}, expected a number ≥ 0 (the prior weight ω')", r.omega),
                "set `residual.omega` ≥ 0; ω' = α̂ starts the robot exactly on the prior",
            ));
        }
        if !(r.gamma > 0.0 && r.gamma < 1.0) {
            return Err(BundleError::field(
                f,
                "residual.gamma",
                format!("found {}, expected 0 < γ < 1", r.gamma),
                "set `residual.gamma`, e.g. 0.99",
            ));
        }
        if r.hidden.is_empty() || r.hidden.contains(&0) {
            return Err(BundleError::field(
                f,
                "residual.hidden",
                format!("found {:?}, expected one or more positive widths", r.hidden),
                "e.g. hidden = [64, 64]",
            ));
        }
        let hidden_activation = match r.activation.as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "identity" => Activation::Identity,
            other => {
                return Err(BundleError::field(
                    f,
                    "residual.activation",
                    format!("unknown activation `{other}`"),
                    "use relu, tanh, sigmoid or identity",
                ))
            }
        };
        let l = &m.learning;
        positive(f, "learning.lr", l.lr, "the learning rate")?;
        nonzero(f, "learning.batch", l.batch, "the minibatch size")?;
        nonzero(f, "learning.replay_capacity", l.replay_capacity, "transitions kept for learning")?;
        nonzero(f, "learning.n_step", l.n_step, "the n of n-step targets")?;
        if l.batch > l.replay_capacity {
            return Err(BundleError::field(
                f,
                "learning.batch",
                format!("batch {} exceeds replay_capacity {}", l.batch, l.replay_capacity),
                "use a batch no larger than the replay capacity",
            ));
        }
        if !(l.target_tau > 0.0 && l.target_tau <= 1.0) {
            return Err(BundleError::field(
                f,
                "learning.target_tau",
                format!("found {}, expected 0 < τ ≤ 1", l.target_tau),
                "e.g. target_tau = 0.01",
            ));
        }
        positive(f, "learning.huber_delta", l.huber_delta, "the Huber loss threshold")?;
        if !(l.grad_clip >= 0.0) {
            return Err(BundleError::field(
                f,
                "learning.grad_clip",
                format!("found {}, expected ≥ 0", l.grad_clip),
                "0 disables clipping",
            ));
        }
        let e = &m.exploration;
        if e.mode != "sample" && e.mode != "greedy" {
            return Err(BundleError::field(
                f,
                "exploration.mode",
                format!("unknown mode `{}`", e.mode),
                "use `sample` (draw from π̂) or `greedy`; resq never takes random actions",
            ));
        }
        if !(e.kl_budget_start >= 0.0 && e.kl_budget_end >= 0.0) {
            return Err(BundleError::field(
                f,
                "exploration.kl_budget_start",
                "KL budgets must be ≥ 0",
                "0 disables the budget",
            ));
        }
        if m.evaluation.success != "time_limit" && m.evaluation.success != "terminated" {
            return Err(BundleError::field(
                f,
                "evaluation.success",
                format!("unknown success criterion `{}`", m.evaluation.success),
                "use `time_limit` (the episode lasts to its limit) or `terminated` (it reaches its goal)",
            ));
        }
        if m.evaluation.policy != "greedy" && m.evaluation.policy != "sample" {
            return Err(BundleError::field(
                f,
                "evaluation.policy",
                format!("unknown policy `{}`", m.evaluation.policy),
                "use `greedy` or `sample`",
            ));
        }
        nonzero(f, "evaluation.episodes", m.evaluation.episodes, "evaluation episodes")?;

        // Safety limits (one command dimension for discrete action sets).
        let sf = &m.safety;
        let (lo, hi) = match action_space {
            ActionSpace::Continuous { low, high } => (low, high),
            ActionSpace::Discrete => (
                m.action.values.iter().copied().fold(f32::INFINITY, f32::min),
                m.action.values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            ),
        };
        let one = |field: &str, v: &[f32], default: f32| -> Result<f32, BundleError> {
            match v {
                [] => Ok(default),
                [x] if x.is_finite() => Ok(*x),
                _ => Err(BundleError::field(
                    f,
                    field,
                    format!("found {v:?}, expected one finite value per command (1)"),
                    format!("e.g. {field} = [{default}]"),
                )),
            }
        };
        let safety = SafetyLimits {
            min: one("safety.command_min", &sf.command_min, lo)?,
            max: one("safety.command_max", &sf.command_max, hi)?,
            max_rate: one("safety.max_rate", &sf.max_rate, 0.0)?,
            safe: one("safety.safe_command", &sf.safe_command, 0.0)?,
            tick_deadline_ms: sf.tick_deadline_ms,
        };
        if safety.min > safety.max || safety.max_rate < 0.0 {
            return Err(BundleError::field(
                f,
                "safety.command_min",
                format!(
                    "command_min {} > command_max {} or max_rate {} < 0",
                    safety.min, safety.max, safety.max_rate
                ),
                "use command_min ≤ command_max and max_rate ≥ 0",
            ));
        }
        if !(safety.min..=safety.max).contains(&safety.safe) {
            return Err(BundleError::field(
                f,
                "safety.safe_command",
                format!("safe command {} is outside [{}, {}]", safety.safe, safety.min, safety.max),
                "choose a safe command within the limits",
            ));
        }
        positive(f, "safety.tick_deadline_ms", safety.tick_deadline_ms, "the per-tick deadline")?;

        // The prior, validated against the layout above.
        let kind = match (m.prior.kind.as_str(), m.prior.temperature) {
            ("discrete_q", Some(t)) => {
                positive(f, "prior.temperature", t, "the prior's own temperature")?;
                PriorKind::DiscreteQ { temperature: t }
            }
            ("discrete_q", None) => {
                return Err(BundleError::field(
                    f,
                    "prior.temperature",
                    "missing for kind `discrete_q`",
                    "set the temperature the prior was trained at (π0 = softmax(q / temperature))",
                ))
            }
            ("discrete_logits", None) => PriorKind::DiscreteLogits,
            ("squashed_gaussian", None) => PriorKind::SquashedGaussian,
            ("gaussian", None) => PriorKind::Gaussian,
            ("deterministic", None) => match m.prior.exploration_std {
                Some(std) => {
                    positive(f, "prior.exploration_std", std, "the exploration std around the prior's action")?;
                    PriorKind::Deterministic { std }
                }
                None => {
                    return Err(BundleError::field(
                        f,
                        "prior.exploration_std",
                        "missing for kind `deterministic`",
                        "state the std (command units) resq explores with around the prior's action, e.g. exploration_std = 0.3",
                    ))
                }
            },
            (kind @ ("discrete_logits" | "squashed_gaussian" | "gaussian" | "deterministic"), Some(_)) => {
                return Err(BundleError::field(
                    f,
                    "prior.temperature",
                    format!("set for kind `{kind}`, which has none"),
                    "remove `temperature`, or use kind = \"discrete_q\"",
                ))
            }
            (other, _) => {
                return Err(BundleError::field(
                    f,
                    "prior.kind",
                    format!("unknown prior kind `{other}`"),
                    "use `discrete_q` (soft Q-values), `discrete_logits`, `squashed_gaussian` (a SAC actor's mean and log-std), `gaussian` (mean and log-std, clipped) or `deterministic` (an action, plus exploration_std)",
                ))
            }
        };
        if m.prior.exploration_std.is_some() && !matches!(kind, PriorKind::Deterministic { .. }) {
            return Err(BundleError::field(
                f,
                "prior.exploration_std",
                format!("set for kind `{}`, which draws its own spread", kind.name()),
                "remove `exploration_std`, or use kind = \"deterministic\"",
            ));
        }
        let continuous_prior = kind.family().is_some();
        if continuous_prior != matches!(action_space, ActionSpace::Continuous { .. }) {
            return Err(BundleError::field(
                f,
                "prior.kind",
                format!(
                    "a `{}` prior does not fit a {} action",
                    kind.name(),
                    if continuous_prior { "discrete" } else { "continuous" }
                ),
                "discrete priors take [action] values = [...]; continuous kinds take [action] low/high",
            ));
        }
        let method = match (m.residual.method.as_str(), continuous_prior) {
            (_, false) if m.residual.method == "sampled" => Method::DiscreteQ,
            ("sampled", true) => Method::Sampled,
            ("sac", true) => Method::Sac,
            (other, false) => {
                return Err(BundleError::field(
                    f,
                    "residual.method",
                    format!(
                        "`{other}` is for continuous actions; discrete actions learn Q_R over every action"
                    ),
                    "remove `method` for a discrete bundle",
                ))
            }
            (other, true) => {
                return Err(BundleError::field(
                    f,
                    "residual.method",
                    format!("unknown method `{other}`"),
                    "use `sampled` (actor-free, K candidates from the prior) or `sac` (residual SAC)",
                ))
            }
        };
        let prior = Prior::load(&dir.join(&m.prior.file), kind, obs.len(), n_actions)?;

        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest_path: manifest_path.clone(),
            action_values: m.action.values.clone(),
            action_space,
            manifest,
            manifest_text,
            prior,
            signals,
            obs,
            vars,
            addon,
            base_reward,
            metrics,
            hidden_activation,
            safety,
            method,
        })
    }

    /// A supervisor enforcing this bundle's `[safety]` limits.
    pub fn supervisor(&self) -> Supervisor {
        let s = &self.safety;
        Supervisor::new(vec![s.min], vec![s.max], vec![s.max_rate], vec![s.safe])
    }

    /// Discrete: the number of actions. Continuous: the command dimension.
    pub fn n_actions(&self) -> usize {
        match self.action_space {
            ActionSpace::Discrete => self.action_values.len(),
            ActionSpace::Continuous { .. } => 1,
        }
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
                .unwrap_or_else(|| format!("{}", self.action_values[i])),
            ActionSpace::Continuous { .. } => format!("candidate {i}"),
        }
    }
}
