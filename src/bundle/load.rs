//! Loading a bundle, one manifest section at a time: each function checks its section and
//! returns what the [`Bundle`] keeps of it, or the first problem as a [`BundleError`] naming the
//! file, the field, what was found and the fix.

use std::path::Path;

use sim_robot::plant;

use super::manifest::{self, Manifest, OneOrMany};
use super::reward::Expr;
use super::reward::{AddonReward, NamedExpr, Variables};
use super::{
    ActionSpace, CommandLimits, EpisodeRules, Method, Metric, ObsLayout, Success, DEFAULT_CALIBRATION_STEPS,
};
use crate::error::BundleError;
use crate::policy::prior::PriorKind;

/// Reads the manifest at `f` (in the bundle folder `dir`) and applies `overrides`; returns it with
/// the text checkpoints are keyed by (the overrides appended).
pub(super) fn read_manifest(
    dir: &Path,
    f: &Path,
    overrides: &[String],
) -> Result<(Manifest, String), BundleError> {
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
    let toml_error = |e: toml::de::Error| manifest_error(f, &manifest_text, &e);
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
        // Parsed again from text, so that an error points at its field.
        let text = toml::to_string(&table).map_err(|e| {
            BundleError::new(f, None, format!("cannot apply the overrides: {e}"), "check the --set values")
        })?;
        let m = toml::from_str(&text).map_err(|e| {
            let mut e = manifest_error(f, &text, &e);
            e.problem = format!("{} (with --set {})", e.problem, overrides.join(" "));
            e
        })?;
        (m, format!("{manifest_text}\n# overrides: {}\n", overrides.join(" ")))
    };
    Ok((manifest, manifest_text))
}

/// The robot's interface from `[robot]`: wire names, the names expressions use, ranges, limits.
pub(super) struct Interface {
    pub signals: Vec<String>,
    pub commands: Vec<String>,
    pub signal_vars: Vec<String>,
    pub command_vars: Vec<String>,
    pub signal_range: Vec<(f32, f32)>,
    pub limits: CommandLimits,
}

/// `[robot]`: signals and commands, in wire order.
pub(super) fn interface(f: &Path, robot: &manifest::RobotSection) -> Result<Interface, BundleError> {
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
    check_names(f, &signals, &commands, &signal_vars, &command_vars)?;
    let signal_range = signal_ranges(f, robot)?;
    let limits = command_limits(f, robot)?;
    if let Some(p) = robot.period_ms {
        positive(f, "robot.period_ms", p, "the control period")?;
    }
    Ok(Interface { signals, commands, signal_vars, command_vars, signal_range, limits })
}

/// Every signal and command name: sendable in the handshake, usable in expressions (through an
/// alias where the wire name is not an identifier), and unique.
fn check_names(
    f: &Path,
    signals: &[String],
    commands: &[String],
    signal_vars: &[String],
    command_vars: &[String],
) -> Result<(), BundleError> {
    let is_identifier = |n: &str| {
        n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut seen_wire = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let n_sig = signals.len();
    for (i, (wire, var)) in
        signals.iter().zip(signal_vars).chain(commands.iter().zip(command_vars)).enumerate()
    {
        let entry =
            if i < n_sig { format!("robot.signal[{i}]") } else { format!("robot.command[{}]", i - n_sig) };
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
                (format!("{entry}.alias"), "use letters, digits and `_`, starting with a letter".to_string())
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
    Ok(())
}

/// `[[robot.signal]] min/max`: each signal's declared range (±∞ where none is declared).
fn signal_ranges(f: &Path, robot: &manifest::RobotSection) -> Result<Vec<(f32, f32)>, BundleError> {
    let mut signal_range = Vec::with_capacity(robot.signals.len());
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
    Ok(signal_range)
}

/// `[[robot.command]]`: each command's limits, rate limit and safe value.
fn command_limits(f: &Path, robot: &manifest::RobotSection) -> Result<CommandLimits, BundleError> {
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
    Ok(limits)
}

/// `[sim]`: the built-in plant (which must have the robot's interface) or the firmware command.
pub(super) fn sim(
    f: &Path,
    sim: &Option<manifest::SimSection>,
    io: &Interface,
) -> Result<(Option<String>, Option<String>), BundleError> {
    let (signals, commands) = (&io.signals, &io.commands);
    Ok(match sim {
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
    })
}

/// `[[observation]]`: the prior's inputs, in order.
pub(super) fn observations(
    f: &Path,
    observations: &[manifest::ObservationSignal],
    io: &Interface,
) -> Result<ObsLayout, BundleError> {
    let (signals, signal_vars) = (&io.signals, &io.signal_vars);
    if observations.is_empty() {
        return Err(BundleError::field(
            f,
            "observation",
            "no [[observation]] entries",
            "list the prior's inputs in order, one [[observation]] per signal",
        ));
    }
    let mut obs =
        ObsLayout { names: vec![], index: vec![], offset: vec![], scale: vec![], residual_scale: vec![] };
    for (i, o) in observations.iter().enumerate() {
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
    Ok(obs)
}

/// `[prior]`: its kind, and the calibration steps when its temperature is `"auto"`.
pub(super) fn prior_kind(
    f: &Path,
    prior: &manifest::PriorSection,
) -> Result<(PriorKind, Option<u64>), BundleError> {
    let mut auto_temperature = None;
    use manifest::PriorKindName as K;
    let kind = match (prior.kind, prior.temperature.clone()) {
        (K::DiscreteQ, Some(manifest::Temperature::Value(t))) => {
            positive(f, "prior.temperature", t, "the prior's own temperature")?;
            PriorKind::DiscreteQ { temperature: t }
        }
        (K::DiscreteQ, Some(manifest::Temperature::Word(w))) if w == "auto" => {
            let steps = prior.calibration_steps.unwrap_or(DEFAULT_CALIBRATION_STEPS);
            nonzero(f, "prior.calibration_steps", steps as usize, "the steps to calibrate the temperature on")?;
            auto_temperature = Some(steps);
            // Calibration reads Q differences off log π0 at temperature 1.
            PriorKind::DiscreteQ { temperature: 1.0 }
        }
        (K::DiscreteQ, Some(manifest::Temperature::Word(w))) => {
            return Err(BundleError::field(
                f,
                "prior.temperature",
                format!("`{w}` is neither a number nor \"auto\""),
                "give the temperature the prior was trained at, or \"auto\" for a prior with none (a plain DQN)",
            ))
        }
        (K::DiscreteQ, None) => {
            return Err(BundleError::field(
                f,
                "prior.temperature",
                "missing for kind `discrete_q`",
                "set the temperature the prior was trained at (π0 = softmax(q / temperature))",
            ))
        }
        (K::DiscreteLogits, None) => PriorKind::DiscreteLogits,
        (K::DiscreteProbs, None) => PriorKind::DiscreteProbs,
        (K::SquashedGaussian, None) => PriorKind::SquashedGaussian,
        (K::Gaussian, None) => PriorKind::Gaussian,
        (K::Deterministic, None) => match prior.exploration_std {
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
        (kind, Some(_)) => {
            return Err(BundleError::field(
                f,
                "prior.temperature",
                format!("set for kind `{}`, which has none", kind.name()),
                "remove `temperature`, or use kind = \"discrete_q\"",
            ))
        }
    };
    if prior.exploration_std.is_some() && !matches!(kind, PriorKind::Deterministic { .. }) {
        return Err(BundleError::field(
            f,
            "prior.exploration_std",
            format!("set for kind `{}`, which draws its own spread", kind.name()),
            "remove `exploration_std`, or use kind = \"deterministic\"",
        ));
    }
    Ok((kind, auto_temperature))
}

/// `[action]`: a discrete table of command vectors, or continuous commands; returns the action
/// space, the table (empty when continuous) and the number of actions (or action dimensions).
pub(super) fn actions(
    f: &Path,
    m: &Manifest,
    io: &Interface,
) -> Result<(ActionSpace, Vec<Vec<f32>>, usize), BundleError> {
    let actions = if !m.prior.kind.is_discrete() {
        (continuous_actions(f, m, io)?, Vec::new(), io.commands.len())
    } else {
        let table = discrete_actions(f, m, io)?;
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
    Ok(actions)
}

/// Continuous actions: each dimension drives one command, `[−1, 1]` mapped onto `[low, high]`.
fn continuous_actions(f: &Path, m: &Manifest, io: &Interface) -> Result<ActionSpace, BundleError> {
    let (commands, limits) = (&io.commands, &io.limits);
    let n_cmd = commands.len();
    let a = &m.action;
    if !a.values.is_empty() || !a.table.is_empty() {
        return Err(BundleError::field(
            f,
            if a.values.is_empty() { "action.table" } else { "action.values" },
            format!("a `{}` prior acts continuously; discrete action values do not apply", m.prior.kind.name()),
            "remove `values`/`table` (each action dimension drives one [[robot.command]]), or use a discrete prior kind",
        ));
    }
    let bound = |field: &str, v: &Option<OneOrMany>, default: &[f32]| -> Result<Vec<f32>, BundleError> {
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
    Ok(ActionSpace::Continuous { low, high })
}

/// Discrete actions: the command vector of each of the prior's outputs.
fn discrete_actions(f: &Path, m: &Manifest, io: &Interface) -> Result<Vec<Vec<f32>>, BundleError> {
    let (commands, limits) = (&io.commands, &io.limits);
    let n_cmd = commands.len();
    let a = &m.action;
    if a.low.is_some() || a.high.is_some() {
        return Err(BundleError::field(
            f,
            "action.low",
            format!(
                "a `{}` prior picks among discrete actions; `low`/`high` do not apply",
                m.prior.kind.name()
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
    Ok(table)
}

/// `[[addon.term]]`, `[task] base_reward` and `[[evaluation.metric]]`, parsed over `vars`.
pub(super) fn expressions(
    f: &Path,
    m: &Manifest,
    vars: &Variables,
) -> Result<(AddonReward, Option<NamedExpr>, Vec<Metric>), BundleError> {
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
        let expr = parse_expr(f, &format!("addon.term[{i}].expr"), &t.expr, vars)?;
        addon.terms.push(NamedExpr { name: t.name.clone(), expr });
    }
    let base_reward = match &m.task.base_reward {
        Some(src) => {
            Some(NamedExpr { name: "base".into(), expr: parse_expr(f, "task.base_reward", src, vars)? })
        }
        None => None,
    };
    let mut metrics = vec![];
    for (i, s) in m.evaluation.metrics.iter().enumerate() {
        let expr = parse_expr(f, &format!("evaluation.metric[{i}].expr"), &s.expr, vars)?;
        metrics.push(Metric { name: s.name.clone(), expr, reduce: s.reduce });
    }
    Ok((addon, base_reward, metrics))
}

/// `[residual]`, `[learning]` and `[exploration]`: every number in range.
pub(super) fn settings(f: &Path, m: &Manifest) -> Result<(), BundleError> {
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
    if let Some(k) = r.kl_per_step {
        if !(k >= 0.0 && k.is_finite()) {
            return Err(BundleError::field(
                f,
                "residual.kl_per_step",
                format!("found {k}, expected a number ≥ 0 (nats per step)"),
                "e.g. kl_per_step = 0.5, or 0 to keep ω' and α̂ as written",
            ));
        }
    }
    if let Some(eta) = r.kl_rate {
        if !(eta > 0.0 && eta <= 0.1) {
            return Err(BundleError::field(
                f,
                "residual.kl_rate",
                format!("found {eta}, expected 0 < kl_rate ≤ 0.1 (the change of ln(multiplier) per tick at most)"),
                "leave it out (0.001: a factor e per 1 000 ticks), or e.g. kl_rate = 0.0003 to move three times slower",
            ));
        }
    }
    let share = m.learning.offline_support;
    if !(0.0..=1.0).contains(&share) {
        return Err(BundleError::field(
            f,
            "learning.offline_support",
            format!("found {share}, expected a share of the top action's probability in [0, 1]"),
            "leave it out (0.3), or 0 for the plain target",
        ));
    }
    match &r.failure_value {
        manifest::FailureValue::Value(v) if !v.is_finite() => {
            return Err(BundleError::field(
                f,
                "residual.failure_value",
                format!("found {v}, expected a finite number or \"worst\""),
                "leave it out (\"worst\"), or give the value of a failed episode's end in add-on units",
            ))
        }
        manifest::FailureValue::Word(w) if w != "worst" => {
            return Err(BundleError::field(
                f,
                "residual.failure_value",
                format!("`{w}` is neither a number nor \"worst\""),
                "leave it out (\"worst\"), or give the value of a failed episode's end in add-on units",
            ))
        }
        _ => {}
    }
    if r.hidden.is_empty() || r.hidden.contains(&0) {
        return Err(BundleError::field(
            f,
            "residual.hidden",
            format!("found {:?}, expected one or more positive widths", r.hidden),
            "e.g. hidden = [64, 64]",
        ));
    }
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
    if l.rollout < l.batch || !l.rollout.is_multiple_of(l.batch) {
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
    if !(e.kl_budget_start >= 0.0 && e.kl_budget_end >= 0.0) {
        return Err(BundleError::field(
            f,
            "exploration.kl_budget_start",
            "KL budgets must be ≥ 0",
            "0 disables the budget",
        ));
    }
    Ok(())
}

/// RPG learns from the probability each action was drawn with: its robot must sample.
fn rpg_samples(f: &Path, m: &Manifest) -> Result<(), BundleError> {
    if m.exploration.mode == crate::policy::ActMode::Greedy {
        return Err(BundleError::field(
            f,
            "exploration.mode",
            "`greedy` with `residual.method = \"rpg\"`: residual policy gradient weighs each action by the probability it was drawn with (PPO's ratio, the entropy term), and a greedy robot draws nothing (one action per state, its probability not the one it was taken with)",
            "use `mode = \"sample\"` with rpg (evaluate greedily with `[evaluation] policy = \"greedy\"` if you wish), or a residual Q method for greedy exploration",
        ));
    }
    if m.residual.kl_per_step.is_some_and(|k| k > 0.0) {
        return Err(BundleError::field(
            f,
            "residual.kl_per_step",
            "a KL target with `residual.method = \"rpg\"`: RPG keeps omega' and alpha as written (its policy is not RQL's closed form, whose multiplier the target moves)",
            "bound how far RPG moves with `[exploration] kl_budget_start`/`kl_budget_end`, or use a residual Q method",
        ));
    }
    Ok(())
}

/// The residual method, from the action space and `residual.method`.
pub(super) fn method(
    f: &Path,
    m: &Manifest,
    kind: PriorKind,
    action_space: &ActionSpace,
) -> Result<Method, BundleError> {
    let continuous_prior = kind.family().is_some();
    debug_assert_eq!(continuous_prior, matches!(action_space, ActionSpace::Continuous { .. }));
    use manifest::MethodName as M;
    Ok(match (m.residual.method, continuous_prior) {
        (None | Some(M::Sampled), false) => Method::DiscreteQ,
        (Some(M::Rpg), _) => {
            rpg_samples(f, m)?;
            Method::Rpg
        }
        (None | Some(M::Sampled), true) => Method::Sampled,
        (Some(M::Sac), true) => Method::Sac,
        (Some(M::Plan), false) => {
            if m.sim.as_ref().and_then(|s| s.plant.as_ref()).is_none() {
                return Err(BundleError::field(
                    f,
                    "residual.method",
                    "`plan` searches the robot's model, and this bundle names none: only the built-in plants (`[sim] plant`) serve as models so far",
                    "give the bundle `[sim] plant = \"cartpole\"` (or `mountaincar`, `pendulum`), or learn the residual instead (remove `method`)",
                ));
            }
            Method::Plan
        }
        (Some(M::Plan), true) => {
            return Err(BundleError::field(
                f,
                "residual.method",
                "`plan` searches over discrete actions only so far",
                "remove `method` (the sampled residual) or write `method = \"sac\"`",
            ))
        }
        (Some(M::Sac), false) => {
            return Err(BundleError::field(
                f,
                "residual.method",
                "`sac` is for continuous actions; discrete actions learn Q_R over every action, or use `rpg`",
                "remove `method` for residual soft Q-learning, or write `method = \"rpg\"` for residual policy gradient",
            ))
        }
    })
}

pub(super) fn episode_rules(
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
    let operator_reset = e.reset == manifest::ResetBy::Operator;
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

/// A manifest that does not parse, or whose value is of the wrong type or not one of a field's
/// words: the field is the key at the error's position (under its `[section]`), or the one an
/// unknown-field message names.
fn manifest_error(f: &Path, text: &str, e: &toml::de::Error) -> BundleError {
    let field = e.span().and_then(|span| field_at(text, span.start)).or_else(|| {
        e.message().strip_prefix("unknown field `").and_then(|m| m.split('`').next()).map(str::to_string)
    });
    let fix = match field.as_deref() {
        Some("exploration.mode") => "use `sample` (draw from π̂) or `greedy`; resq never takes random actions",
        Some("evaluation.policy") => "use `greedy` or `sample`",
        Some("episode.reset") => {
            "use `firmware` (the firmware resets the robot on Reset) or `operator` (a person does; the firmware reports WAITING meanwhile)"
        }
        Some("residual.method") => {
            "use `sampled` (actor-free, K candidates from the prior), `sac` (residual SAC) or `rpg` (residual policy gradient); leave it out for residual soft Q over every discrete action"
        }
        Some("residual.activation") => "use relu, tanh, sigmoid or identity",
        Some("learning.traces") => {
            "use `retrace` (truncated importance weights: a contraction whatever the behaviour), `none`, or `auto` (retrace with `residual.kl_per_step`, none otherwise)"
        }
        Some("prior.engine") => {
            "use `auto` (resq's kernels where the graph allows, checked against tract) or `tract` (always tract: allocates, not real-time safe)"
        }
        Some("prior.kind") => {
            "use `discrete_q` (soft Q-values), `discrete_logits`, `discrete_probs` (probabilities, e.g. a final Softmax), `squashed_gaussian` (a SAC actor's mean and log-std), `gaussian` (mean and log-std, clipped) or `deterministic` (an action, plus exploration_std)"
        }
        Some(f) if f.starts_with("evaluation.metric.") => "reduce is `mean`, `episode_sum` or `final`",
        _ => "compare with models/cartpole/manifest.toml and docs/manifest.md",
    };
    BundleError {
        file: f.to_path_buf(),
        field,
        problem: format!("invalid manifest: {}", e.message().replace("unknown variant", "unknown value")),
        fix: fix.into(),
    }
}

/// The dotted name (`section.key`) of the `key = value` line at byte `pos` of a TOML text.
fn field_at(text: &str, pos: usize) -> Option<String> {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let key = text[line_start..].split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.contains('\n') {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
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

/// `[safety]`'s failure guard: a false-alarm rate in (0, 1) and a prior failure rate in [0, 1).
pub(super) fn guard(file: &Path, s: &crate::bundle::manifest::SafetySection) -> Result<(), BundleError> {
    let d = s.guard_false_alarm;
    if !(d > 0.0 && d < 1.0) {
        return Err(BundleError::field(
            file,
            "safety.guard_false_alarm",
            format!("found {d}, expected a probability in (0, 1) (the guard's false-alarm rate over a run)"),
            "set `safety.guard_false_alarm` between 0 and 1, e.g. 0.05",
        ));
    }
    match s.prior_failure_rate {
        Some(p) if !(0.0..1.0).contains(&p) => Err(BundleError::field(
            file,
            "safety.prior_failure_rate",
            format!("found {p}, expected a rate in [0, 1) (the share of the prior's episodes that fail)"),
            "set `safety.prior_failure_rate` to the prior's measured rate, or leave it out and resq measures it",
        )),
        _ => Ok(()),
    }
}

pub(super) fn positive(file: &Path, field: &str, v: f32, what: &str) -> Result<(), BundleError> {
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

pub(super) fn nonzero(file: &Path, field: &str, v: usize, what: &str) -> Result<(), BundleError> {
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

/// `[plan]`: a tree of at least one level that fits in memory (at most 2^16 nodes), a finite horizon, a budget that
/// is a time.
pub(super) fn plan(f: &Path, m: &Manifest, n_actions: usize) -> Result<(), BundleError> {
    let p = &m.plan;
    let nodes = (0..=p.depth as u32)
        .try_fold(0usize, |sum, d| n_actions.checked_pow(d).and_then(|n| sum.checked_add(n)));
    if p.depth == 0 {
        return Err(BundleError::field(
            f,
            "plan.depth",
            "depth 0 searches nothing: the root's actions are the tree's first level",
            "set `plan.depth` to 1 or more (2 is usual)",
        ));
    }
    if nodes.is_none_or(|n| n > 1 << 16) {
        return Err(BundleError::field(
            f,
            "plan.depth",
            format!("a tree over {n_actions} actions to depth {} has more than 65 536 nodes", p.depth),
            "lower `plan.depth` (2 or 3 is usual) and lengthen `plan.horizon` instead",
        ));
    }
    if p.horizon > 100_000 {
        return Err(BundleError::field(
            f,
            "plan.horizon",
            format!("{} steps a rollout", p.horizon),
            "use at most 100 000 (CartPole: 200)",
        ));
    }
    if !(p.budget_ms.is_finite() && (0.0..=60_000.0).contains(&p.budget_ms)) {
        return Err(BundleError::field(
            f,
            "plan.budget_ms",
            format!("{} ms a decision", p.budget_ms),
            "give the time one decision may take, in [0, 60000] ms (below the control period)",
        ));
    }
    Ok(())
}

/// `[ros2]` and the signals' and commands' `topic`/`field`: every signal on a declared topic of
/// a type resq speaks, with a field that type has; the clock a declared topic; the command type
/// a Float64MultiArray or a Twist (whose commands name their fields).
pub(super) fn ros2(f: &Path, m: &Manifest) -> Result<Option<super::Ros2Layout>, BundleError> {
    use crate::robot::ros2::fields::{field_help, Field};
    use crate::robot::ros2::names::{MsgType, FLOAT64_MULTI_ARRAY, TWIST, TYPES};
    use crate::robot::ros2::node::Clock;
    let known = || TYPES.iter().map(|t| format!("`{}`", t.name)).collect::<Vec<_>>().join(", ");
    let Some(r) = &m.ros2 else {
        if m.robot.transport == manifest::Transport::Ros2 {
            return Err(BundleError::field(
                f,
                "robot.transport",
                "`transport = \"ros2\"` and the manifest has no `[ros2]`",
                "add `[ros2]` with `clock`, `command_topic`, `command_type` and a `[[ros2.topic]]` per topic (docs/manifest.md), or use `transport = \"serial\"`",
            ));
        }
        if let Some(s) = m.robot.signals.iter().find(|s| s.topic.is_some() || s.field.is_some()) {
            return Err(BundleError::field(
                f,
                "robot.signal.topic",
                format!("signal `{}` names a ROS 2 topic or field, and the manifest has no `[ros2]`", s.name),
                "add `[ros2]` with `clock`, `command_topic`, `command_type` and a `[[ros2.topic]]` per topic (docs/manifest.md), or remove `topic` and `field`",
            ));
        }
        return Ok(None);
    };
    positive(f, "ros2.stale_ms", r.stale_ms, "how old a signal may be at a tick")?;
    if r.router.trim().is_empty() || !r.router.contains('/') {
        return Err(BundleError::field(
            f,
            "ros2.router",
            format!("`{}` is not a Zenoh endpoint", r.router),
            "write it as rmw_zenoh does: `tcp/localhost:7447` (the default)",
        ));
    }
    if let Some(c) = &r.zenoh_config {
        let path = f.parent().unwrap_or(Path::new(".")).join(c);
        if !path.is_file() {
            return Err(BundleError::field(
                f,
                "ros2.zenoh_config",
                format!("{} is not a file", path.display()),
                "give a Zenoh config file (JSON5) relative to the bundle's folder, or remove the field",
            ));
        }
    }
    let mut topics = Vec::new();
    for t in &r.topics {
        let ty = MsgType::of(&t.ty).ok_or_else(|| {
            BundleError::field(
                f,
                "ros2.topic.type",
                format!("topic `{}` has type `{}`, which resq does not read", t.name, t.ty),
                format!("use one of {}", known()),
            )
        })?;
        topics.push((t.name.clone(), ty));
    }
    let topic_of = |name: &str, field: &str| -> Result<usize, BundleError> {
        topics.iter().position(|(n, _)| n == name).ok_or_else(|| {
            BundleError::field(
                f,
                field,
                format!("`{name}` is not a declared topic"),
                format!(
                    "declare it: `[[ros2.topic]]` with `name = \"{name}\"` and its `type`; declared: {}",
                    topics.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let clock = match (&r.clock, r.clock_period_ms) {
        (Some(c), None) => Clock::Topic(topic_of(c, "ros2.clock")?),
        (None, Some(ms)) => {
            positive(f, "ros2.clock_period_ms", ms, "the tick period")?;
            if ms >= r.stale_ms {
                return Err(BundleError::field(
                    f,
                    "ros2.clock_period_ms",
                    format!("a tick every {ms} ms, and signals are stale after {} ms (`stale_ms`): every tick would come stale", r.stale_ms),
                    format!("set `stale_ms` above the period and the topics' periods, e.g. `stale_ms = {}`", (3.0 * ms).max(100.0)),
                ));
            }
            Clock::Period(std::time::Duration::from_secs_f32(ms / 1000.0))
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(BundleError::field(
                f,
                "ros2.clock",
                "give one clock: `clock` (a topic whose every message is a tick) or `clock_period_ms` (resq's own timer)",
                "e.g. `clock = \"/joint_states\"`, or `clock_period_ms = 20` for a robot whose topics come at their own rates",
            ))
        }
    };
    let mut signals = Vec::new();
    for s in &m.robot.signals {
        let (Some(topic), Some(path)) = (&s.topic, &s.field) else {
            return Err(BundleError::field(
                f,
                "robot.signal.topic",
                format!("signal `{}` names no ROS 2 topic and field, and the manifest has `[ros2]`", s.name),
                "give every `[[robot.signal]]` a `topic` (a `[[ros2.topic]]`) and a `field`, e.g. `field = \"position[elbow]\"`",
            ));
        };
        let i = topic_of(topic, "robot.signal.topic")?;
        let ty = topics[i].1;
        let field = Field::parse(ty, path).ok_or_else(|| {
            BundleError::field(
                f,
                "robot.signal.field",
                format!("signal `{}`: `{path}` is not a field of `{}`", s.name, ty.name),
                format!("write {}", field_help(ty)),
            )
        })?;
        signals.push((i, field));
    }
    let command_type = MsgType::of(&r.command_type)
        .filter(|t| *t == FLOAT64_MULTI_ARRAY || *t == TWIST)
        .ok_or_else(|| {
            BundleError::field(
                f,
                "ros2.command_type",
                format!("commands as `{}` are not read", r.command_type),
                format!(
                    "use `{}` (ros2_control's forward_command_controller) or `{}`",
                    FLOAT64_MULTI_ARRAY.name, TWIST.name
                ),
            )
        })?;
    let mut commands = Vec::new();
    for (j, c) in m.robot.commands.iter().enumerate() {
        let field = match (&c.field, command_type == TWIST) {
            (Some(path), _) => Field::parse(command_type, path),
            (None, false) => Some(Field::Data(j)),
            (None, true) => None,
        }
        .ok_or_else(|| {
            BundleError::field(
                f,
                "robot.command.field",
                format!("command `{}` has no field of `{}`", c.name, command_type.name),
                format!("write `field = ` {}", field_help(command_type)),
            )
        })?;
        commands.push(field);
    }
    Ok(Some(super::Ros2Layout {
        topics,
        clock,
        signals,
        command_topic: r.command_topic.clone(),
        command_type,
        commands,
    }))
}
