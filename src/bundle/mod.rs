//! A model bundle: a folder with `manifest.toml` and the prior's ONNX file. Loading parses and
//! validates everything once — the manifest's values, the expressions, the prior against the
//! manifest's observation and action layout — and reports the first problem as a
//! [`BundleError`] naming the file, field, what was found and the fix.

pub mod manifest;

use std::path::{Path, PathBuf};

pub use manifest::Manifest;
use manifest::OneOrMany;

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
    /// The value at each episode's last step, mean over episodes (e.g. the final distance).
    Final,
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
    /// [`crate::calibrate`] sets it).
    pub auto_temperature: Option<u64>,
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
    /// Any actions: residual policy gradient (PPO on the augmented reward, `algo::rpg`).
    Rpg,
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
    pub fn succeeded(&self, end: crate::sim::StepEnd, values: &[f32], steps: u32, window_done: bool) -> bool {
        match &self.success {
            Success::Terminated => end.terminated,
            Success::TimeLimit => window_done || (end.truncated && steps >= self.time_limit()),
            Success::Flag => end.success,
            Success::Expr(e) => e.eval(values) != 0.0,
        }
    }

    /// Applies the `terminate` expression to a step the robot reported: non-zero on `values`
    /// (as [`Variables::fill`] writes them) makes it a termination.
    pub fn apply(&self, values: &[f32], end: &mut crate::sim::StepEnd) {
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

fn episode_rules(
    f: &Path,
    e: &manifest::EpisodeSection,
    vars: &Variables,
) -> Result<EpisodeRules, BundleError> {
    let terminate = match &e.terminate {
        Some(src) => Some(parse_expr(f, "episode.terminate", src, vars)?),
        None => None,
    };
    let success = match e.success.as_str() {
        "time_limit" => Success::TimeLimit,
        "terminated" => Success::Terminated,
        "flag" => Success::Flag,
        src => Success::Expr(parse_expr(f, "episode.success", src, vars).map_err(|mut err| {
            err.fix = format!(
                "use `time_limit`, `terminated`, `flag`, or an expression over the signals; {}",
                err.fix
            );
            err
        })?),
    };
    let operator_reset = match e.reset.as_str() {
        "firmware" => false,
        "operator" => true,
        other => {
            return Err(BundleError::field(
                f,
                "episode.reset",
                format!("unknown reset `{other}`"),
                "use `firmware` (the firmware resets the robot on Reset) or `operator` (a person does; the firmware reports WAITING meanwhile)",
            ))
        }
    };
    if e.continuing {
        nonzero(f, "episode.window", e.window as usize, "steps per statistics window")?;
        if e.max_steps != 0 {
            return Err(BundleError::field(
                f,
                "episode.max_steps",
                "a continuing task has no time limit",
                "remove `max_steps`; windows of `window` steps take the place of episodes",
            ));
        }
    } else if e.max_steps == 0 && e.terminate.is_none() {
        return Err(BundleError::field(
            f,
            "episode.max_steps",
            "episodes have no end: no time limit and no `terminate` expression",
            "set `max_steps` (a time limit), a `terminate` expression, or `continuing = true` for a task that never resets",
        ));
    }
    if matches!(success, Success::TimeLimit) && e.max_steps == 0 && !e.continuing {
        return Err(BundleError::field(
            f,
            "episode.success",
            "`time_limit` success needs a time limit",
            "set `episode.max_steps`, or choose `terminated`, `flag` or an expression",
        ));
    }
    Ok(EpisodeRules {
        max_steps: e.max_steps,
        terminate,
        success,
        operator_reset,
        continuing: e.continuing,
        window: e.window,
    })
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

        // The robot's interface: signals and commands, in wire order.
        let robot = &m.robot;
        if robot.signals.is_empty() || robot.commands.is_empty() {
            return Err(BundleError::field(
                f,
                if robot.signals.is_empty() { "robot.signal" } else { "robot.command" },
                "the robot needs at least one [[robot.signal]] and one [[robot.command]]",
                "list every value the firmware sends ([[robot.signal]] name = ...) and takes ([[robot.command]] name, min, max), in wire order",
            ));
        }
        if robot.signals.len() > firmware_bridge::MAX_SIGNALS
            || robot.commands.len() > firmware_bridge::MAX_COMMANDS
        {
            return Err(BundleError::field(
                f,
                "robot",
                format!("{} signals and {} commands", robot.signals.len(), robot.commands.len()),
                format!(
                    "the protocol carries at most {} signals and {} commands per frame",
                    firmware_bridge::MAX_SIGNALS,
                    firmware_bridge::MAX_COMMANDS
                ),
            ));
        }
        // Wire names (the handshake's) and the names expressions use (an alias, or the same).
        let signals: Vec<String> = robot.signals.iter().map(|s| s.name.clone()).collect();
        let commands: Vec<String> = robot.commands.iter().map(|c| c.name.clone()).collect();
        let signal_vars: Vec<String> =
            robot.signals.iter().map(|s| s.alias.clone().unwrap_or_else(|| s.name.clone())).collect();
        let command_vars: Vec<String> =
            robot.commands.iter().map(|c| c.alias.clone().unwrap_or_else(|| c.name.clone())).collect();
        let is_identifier = |n: &str| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let mut seen_wire = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        let n_sig = signals.len();
        for (i, (wire, var)) in
            signals.iter().zip(&signal_vars).chain(commands.iter().zip(&command_vars)).enumerate()
        {
            let entry = if i < n_sig {
                format!("robot.signal[{i}]")
            } else {
                format!("robot.command[{}]", i - n_sig)
            };
            if wire.is_empty() || wire.len() > firmware_bridge::MAX_NAME_LEN || wire.contains('\0') {
                return Err(BundleError::field(
                    f,
                    &format!("{entry}.name"),
                    format!("`{wire}` cannot be sent in the handshake"),
                    format!(
                        "use the firmware's name: 1 to {} bytes of UTF-8, no NUL (PROTOCOL.md §6)",
                        firmware_bridge::MAX_NAME_LEN
                    ),
                ));
            }
            if !is_identifier(var) {
                let (field, fix) = if var == wire {
                    (format!("{entry}.name"), format!("keep the firmware's name and add `alias = \"{}\"`: expressions and [[observation]] use the alias", wire.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>()))
                } else {
                    (
                        format!("{entry}.alias"),
                        "use letters, digits and `_`, starting with a letter".to_string(),
                    )
                };
                return Err(BundleError::field(
                    f,
                    &field,
                    format!("`{var}` is not a name expressions can use"),
                    fix,
                ));
            }
            let prev_clash = i < n_sig && command_vars.iter().any(|c| *var == format!("{c}_prev"));
            if !seen_wire.insert((i < n_sig, wire.as_str()))
                || !seen.insert(var.as_str())
                || prev_clash
                || var == "a"
                || var == "a_prev"
                || var == "pi"
            {
                return Err(BundleError::field(
                    f,
                    &format!("{entry}.name"),
                    format!("`{var}` is used twice or is reserved"),
                    "give every signal and command its own name (`a`, `a_prev`, `pi` and `<command>_prev` are reserved)",
                ));
            }
        }
        let mut signal_range = Vec::with_capacity(signals.len());
        for (i, s) in robot.signals.iter().enumerate() {
            let (lo, hi) = (s.min.unwrap_or(f32::NEG_INFINITY), s.max.unwrap_or(f32::INFINITY));
            if lo.is_nan() || hi.is_nan() || lo >= hi {
                return Err(BundleError::field(
                    f,
                    &format!("robot.signal[{i}].min"),
                    format!("signal `{}` has the empty range [{lo}, {hi}]", s.name),
                    "give min < max, or leave either out",
                ));
            }
            signal_range.push((lo, hi));
        }
        let mut limits = CommandLimits { min: vec![], max: vec![], max_rate: vec![], safe: vec![] };
        for (i, c) in robot.commands.iter().enumerate() {
            let safe = c.safe.unwrap_or(0.0);
            if !(c.min.is_finite() && c.max.is_finite() && c.min < c.max) {
                return Err(BundleError::field(
                    f,
                    &format!("robot.command[{i}].min"),
                    format!("command `{}` has the range [{}, {}]", c.name, c.min, c.max),
                    "give finite limits with min < max",
                ));
            }
            if !(c.min..=c.max).contains(&safe) {
                return Err(BundleError::field(
                    f,
                    &format!("robot.command[{i}].safe"),
                    format!("the safe command {safe} of `{}` is outside [{}, {}]", c.name, c.min, c.max),
                    "set `safe` to a value within the limits (what the robot gets on e-stop or a bad command)",
                ));
            }
            if !(c.max_rate >= 0.0 && c.max_rate.is_finite()) {
                return Err(BundleError::field(
                    f,
                    &format!("robot.command[{i}].max_rate"),
                    format!("found {}", c.max_rate),
                    "use a rate ≥ 0 (0 = no limit)",
                ));
            }
            limits.min.push(c.min);
            limits.max.push(c.max);
            limits.max_rate.push(c.max_rate);
            limits.safe.push(safe);
        }
        if let Some(p) = robot.period_ms {
            positive(f, "robot.period_ms", p, "the control period")?;
        }

        // A built-in simulated robot, when the bundle names one, must have this interface.
        let (sim_plant, sim_firmware) = match &m.sim {
            Some(manifest::SimSection { plant: Some(name), firmware: None }) => {
                let plant = plant::make(name).ok_or_else(|| {
                    BundleError::field(
                        f,
                        "sim.plant",
                        format!("unknown plant `{name}`"),
                        format!(
                            "use one of: {} (or serve your simulator with `[sim] firmware`, or leave out [sim] and run over the link: `resq run --port`)",
                            plant::PLANTS.join(", ")
                        ),
                    )
                })?;
                let (ps, pc) = (plant.signal_names(), plant.command_names());
                if ps != signals.iter().map(String::as_str).collect::<Vec<_>>().as_slice()
                    || pc != commands.iter().map(String::as_str).collect::<Vec<_>>().as_slice()
                {
                    return Err(BundleError::field(
                        f,
                        "sim.plant",
                        format!(
                            "the plant `{name}` has signals [{}] and commands [{}]; [robot] declares [{}] and [{}]",
                            ps.join(", "),
                            pc.join(", "),
                            signals.join(", "),
                            commands.join(", ")
                        ),
                        "declare the plant's signals and commands in [robot], in its order",
                    ));
                }
                (Some(name.clone()), None)
            }
            Some(manifest::SimSection { plant: None, firmware: Some(cmd) }) if !cmd.trim().is_empty() => {
                (None, Some(cmd.clone()))
            }
            Some(_) => {
                return Err(BundleError::field(
                    f,
                    "sim",
                    "give exactly one of `plant` (a built-in simulated robot) and `firmware` (a command serving a simulator)",
                    "e.g. plant = \"cartpole\", or firmware = \"resq-firmware --env MountainCar-v0\"",
                ))
            }
            None => (None, None),
        };

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
            let idx = signal_vars
                .iter()
                .position(|s| *s == o.signal)
                .or_else(|| signals.iter().position(|s| *s == o.signal))
                .ok_or_else(|| {
                    BundleError::field(
                        f,
                        &field,
                        format!("unknown signal `{}`", o.signal),
                        format!("the robot has signals: {}", signal_vars.join(", ")),
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

        // The prior's kind (its file is loaded last, against the layouts).
        let mut auto_temperature = None;
        let kind = match (m.prior.kind.as_str(), m.prior.temperature.clone()) {
            ("discrete_q", Some(manifest::Temperature::Value(t))) => {
                positive(f, "prior.temperature", t, "the prior's own temperature")?;
                PriorKind::DiscreteQ { temperature: t }
            }
            ("discrete_q", Some(manifest::Temperature::Word(w))) if w == "auto" => {
                let steps = m.prior.calibration_steps.unwrap_or(crate::calibrate::DEFAULT_STEPS);
                nonzero(f, "prior.calibration_steps", steps as usize, "the steps to calibrate the temperature on")?;
                auto_temperature = Some(steps);
                // Calibration reads Q differences off log π0 at temperature 1.
                PriorKind::DiscreteQ { temperature: 1.0 }
            }
            ("discrete_q", Some(manifest::Temperature::Word(w))) => {
                return Err(BundleError::field(
                    f,
                    "prior.temperature",
                    format!("`{w}` is neither a number nor \"auto\""),
                    "give the temperature the prior was trained at, or \"auto\" for a prior with none (a plain DQN)",
                ))
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
            ("discrete_probs", None) => PriorKind::DiscreteProbs,
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
            (kind @ ("discrete_logits" | "discrete_probs" | "squashed_gaussian" | "gaussian" | "deterministic"), Some(_)) => {
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
                    "use `discrete_q` (soft Q-values), `discrete_logits`, `discrete_probs` (probabilities, e.g. a final Softmax), `squashed_gaussian` (a SAC actor's mean and log-std), `gaussian` (mean and log-std, clipped) or `deterministic` (an action, plus exploration_std)",
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

        // Actions: a discrete table of command vectors, or continuous commands.
        let n_cmd = commands.len();
        let a = &m.action;
        let continuous =
            !matches!(m.prior.kind.as_str(), "discrete_q" | "discrete_logits" | "discrete_probs");
        let (action_space, action_table, n_actions) = if continuous {
            if !a.values.is_empty() || !a.table.is_empty() {
                return Err(BundleError::field(
                    f,
                    if a.values.is_empty() { "action.table" } else { "action.values" },
                    format!("a `{}` prior acts continuously; discrete action values do not apply", m.prior.kind),
                    "remove `values`/`table` (each action dimension drives one [[robot.command]]), or use a discrete prior kind",
                ));
            }
            let bound =
                |field: &str, v: &Option<OneOrMany>, default: &[f32]| -> Result<Vec<f32>, BundleError> {
                    let v = v.as_ref().map_or_else(|| default.to_vec(), |v| v.per_command(n_cmd));
                    if v.len() != n_cmd {
                        return Err(BundleError::field(
                            f,
                            field,
                            format!("found {} values for {n_cmd} commands", v.len()),
                            format!(
                                "give one value per [[robot.command]] ({}), or one number for all",
                                commands.join(", ")
                            ),
                        ));
                    }
                    Ok(v)
                };
            let low = bound("action.low", &a.low, &limits.min)?;
            let high = bound("action.high", &a.high, &limits.max)?;
            for j in 0..n_cmd {
                if !(low[j] < high[j]) || low[j] < limits.min[j] || high[j] > limits.max[j] {
                    return Err(BundleError::field(
                        f,
                        "action.low",
                        format!(
                            "command `{}`: range [{}, {}] is empty or outside its limits [{}, {}]",
                            commands[j], low[j], high[j], limits.min[j], limits.max[j]
                        ),
                        "use low < high within the command's [[robot.command]] min/max",
                    ));
                }
            }
            (ActionSpace::Continuous { low, high }, Vec::new(), n_cmd)
        } else {
            if a.low.is_some() || a.high.is_some() {
                return Err(BundleError::field(
                    f,
                    "action.low",
                    format!(
                        "a `{}` prior picks among discrete actions; `low`/`high` do not apply",
                        m.prior.kind
                    ),
                    "give `values` (one command) or `table` (one command vector per prior output)",
                ));
            }
            let (table, field): (Vec<Vec<f32>>, &str) = match (a.values.is_empty(), a.table.is_empty()) {
                (false, true) if n_cmd == 1 => (a.values.iter().map(|v| vec![*v]).collect(), "action.values"),
                (false, true) => {
                    return Err(BundleError::field(
                        f,
                        "action.values",
                        format!("`values` gives one number per action, but the robot has {n_cmd} commands"),
                        format!("use `table`, one row of {n_cmd} numbers ({}) per prior output", commands.join(", ")),
                    ))
                }
                (true, false) => (a.table.clone(), "action.table"),
                _ => {
                    return Err(BundleError::field(
                        f,
                        "action",
                        "a discrete prior needs either `values` (one command) or `table` (command vectors), not both",
                        "e.g. values = [-10.0, 10.0], or table = [[0.0, 1.0], [1.0, 0.0]]",
                    ))
                }
            };
            if table.len() < 2 {
                return Err(BundleError::field(
                    f,
                    field,
                    format!("found {} action(s), expected at least 2", table.len()),
                    "list the command of every discrete action, in the prior's output order",
                ));
            }
            for (i, row) in table.iter().enumerate() {
                if row.len() != n_cmd {
                    return Err(BundleError::field(
                        f,
                        &format!("{field}[{i}]"),
                        format!(
                            "a command vector of length {} for a robot with {n_cmd} commands ({})",
                            row.len(),
                            commands.join(", ")
                        ),
                        format!("give every row {n_cmd} values, in [[robot.command]] order"),
                    ));
                }
                for (j, v) in row.iter().enumerate() {
                    if !(limits.min[j]..=limits.max[j]).contains(v) {
                        return Err(BundleError::field(
                            f,
                            &format!("{field}[{i}]"),
                            format!(
                                "value {v} of command `{}` is outside its limits [{}, {}]",
                                commands[j], limits.min[j], limits.max[j]
                            ),
                            "use command values within the [[robot.command]] limits",
                        ));
                    }
                }
            }
            if !a.labels.is_empty() && a.labels.len() != table.len() {
                return Err(BundleError::field(
                    f,
                    "action.labels",
                    format!("found {} labels for {} actions", a.labels.len(), table.len()),
                    "give one label per action, or none",
                ));
            }
            let n = table.len();
            (ActionSpace::Discrete, table, n)
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
        let vars = Variables::new(&signal_vars, &command_vars);
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
                "final" => Reduce::Final,
                other => {
                    return Err(BundleError::field(
                        f,
                        &format!("evaluation.metric[{i}].reduce"),
                        format!("unknown reduction `{other}`"),
                        "use `mean`, `episode_sum` or `final`",
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
        nonzero(f, "learning.epochs", l.epochs, "the passes over each rollout (method rpg)")?;
        nonzero(f, "learning.value_steps", l.value_steps, "the value-head steps per minibatch (method rpg)")?;
        if l.rollout < l.batch || l.rollout % l.batch != 0 {
            return Err(BundleError::field(
                f,
                "learning.rollout",
                format!("rollout {} is not a whole number of minibatches of {}", l.rollout, l.batch),
                format!("use a multiple of learning.batch, e.g. rollout = {}", l.batch * 8),
            ));
        }
        if !(l.clip > 0.0 && l.clip < 1.0) {
            return Err(BundleError::field(
                f,
                "learning.clip",
                format!("found {}, expected 0 < ε < 1", l.clip),
                "e.g. clip = 0.2",
            ));
        }
        if !(0.0..=1.0).contains(&l.gae_lambda) {
            return Err(BundleError::field(
                f,
                "learning.gae_lambda",
                format!("found {}, expected 0 ≤ λ ≤ 1", l.gae_lambda),
                "e.g. gae_lambda = 0.95",
            ));
        }
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
        let episode = episode_rules(f, &m.episode, &vars)?;
        if m.evaluation.policy != "greedy" && m.evaluation.policy != "sample" {
            return Err(BundleError::field(
                f,
                "evaluation.policy",
                format!("unknown policy `{}`", m.evaluation.policy),
                "use `greedy` or `sample`",
            ));
        }
        nonzero(f, "evaluation.episodes", m.evaluation.episodes, "evaluation episodes")?;

        let safety = SafetyLimits { limits, tick_deadline_ms: m.safety.tick_deadline_ms };
        positive(f, "safety.tick_deadline_ms", safety.tick_deadline_ms, "the per-tick deadline")?;

        // The prior, validated against the layout above.
        let continuous_prior = kind.family().is_some();
        debug_assert_eq!(continuous_prior, matches!(action_space, ActionSpace::Continuous { .. }));
        let method = match (m.residual.method.as_str(), continuous_prior) {
            (_, false) if m.residual.method == "sampled" => Method::DiscreteQ,
            ("rpg", _) => Method::Rpg,
            ("sampled", true) => Method::Sampled,
            ("sac", true) => Method::Sac,
            (other, false) => {
                return Err(BundleError::field(
                    f,
                    "residual.method",
                    format!(
                        "`{other}` is for continuous actions; discrete actions learn Q_R over every action, or use `rpg`"
                    ),
                    "remove `method` for residual soft Q-learning, or write `method = \"rpg\"` for residual policy gradient",
                ))
            }
            (other, true) => {
                return Err(BundleError::field(
                    f,
                    "residual.method",
                    format!("unknown method `{other}`"),
                    "use `sampled` (actor-free, K candidates from the prior), `sac` (residual SAC) or `rpg` (residual policy gradient)",
                ))
            }
        };
        let prior = Prior::load(&dir.join(&m.prior.file), kind, obs.len(), n_actions)?;
        if method == Method::Sampled {
            if let Some(w) = sampled_budget_warning(m.residual.candidates, &m.exploration) {
                log::warn!("{}: {w}", manifest_path.display());
            }
        }

        let prev_command_input = addon.terms.iter().any(|t| t.expr.variables().any(|i| vars.is_prev(i)));
        Ok(Bundle {
            auto_temperature,
            prev_command_input,
            dir: dir.to_path_buf(),
            manifest_path: manifest_path.clone(),
            action_table,
            action_space,
            commands,
            signal_range,
            sim_plant,
            sim_firmware,
            episode,
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

    /// A supervisor enforcing this bundle's command limits.
    pub fn supervisor(&self) -> Supervisor {
        let l = &self.safety.limits;
        Supervisor::new(l.min.clone(), l.max.clone(), l.max_rate.clone(), l.safe.clone())
    }

    /// The residual's input width: the observation, plus the previous command when an add-on
    /// term reads it ([`Bundle::prev_command_input`]).
    /// `(ω', α̂)` of the acting policy `log π = log_softmax((head + ω'·log π0)/α̂)` over discrete
    /// actions: the manifest's for residual soft Q; `(1, 1)` for RPG, whose head gives logit
    /// offsets to the prior.
    pub fn acting_weights(&self) -> (f32, f32) {
        match self.method {
            Method::Rpg => (1.0, 1.0),
            _ => (self.manifest.residual.omega, self.manifest.residual.alpha),
        }
    }

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
}
