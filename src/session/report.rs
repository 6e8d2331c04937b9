//! The end-of-run report: a table on the terminal and a JSON file with top-level `prior` and
//! `customized` objects (metric name → number) and `env_steps`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::session::confidence;
use crate::session::customize::Outcome;
use crate::session::evaluate::PolicyEval;

/// The JSON report.
pub fn to_json(bundle_name: &str, seed: u64, o: &Outcome) -> serde_json::Value {
    let e = &o.controller.bundle.episode;
    // A continuing task's windows always run to their length.
    let max_steps = if e.continuing { e.window as f32 } else { e.time_limit() as f32 };
    json!({
        "bundle": bundle_name,
        "seed": seed,
        "env_steps": o.env_steps,
        "resumed_from_step": o.resumed_from,
        "prior": o.prior.to_map(),
        "customized": o.customized.to_map(),
        // How confident the prior is on the states it visits, and what that means here.
        "prior_confidence": o.prior_confidence.as_ref().map(|c| {
            let mut v = serde_json::to_value(c).expect("plain numbers");
            v["reading"] = confidence::reading(c, &o.controller.bundle).into();
            v
        }),
        // ω' and α̂ as the run ended, and the KL target that moved them.
        "trade_off": o.trade_off,
        "warnings": warnings(o),
        // The failure guard's stop: where and why (null when the run went to its end).
        "stopped": o.stopped.as_ref().map(|s| json!({ "at_step": o.env_steps, "reason": s.problem, "fix": s.fix })),
        "curve": curve(o),
        // `residual.method = "plan"`: the searches behind the customized decisions.
        "plan": o.controller.planner.as_ref().map(plan_summary),
        "curve_worst": curve_worst(o),
        "training": {
            // Training episodes (or windows) that did not succeed by `[episode] success`, beside
            // the prior's failure rate as deployed (its evaluation policy).
            "episodes_failed": o.history.episodes_failed(),
            "failure_rate": o.history.failure_rate(),
            // The prior's measured failure rate, with the episodes behind it: its own whole
            // episodes acting as training acts (null when none were run or ended in the
            // warm-up), and its evaluation's.
            "prior_failure_rate": (o.prior_training_episodes.episodes > 0)
                .then(|| o.prior_training_episodes.failed as f64 / o.prior_training_episodes.episodes as f64),
            "prior_failure_episodes": o.prior_training_episodes.episodes,
            "prior_eval_failure_rate": (o.prior.episodes > 0).then_some(1.0 - o.prior.success_rate),
            "prior_eval_episodes": o.prior.episodes,
            "updates": o.updates,
            "episodes": o.history.episode_length.len(),
            // Without a time limit every episode ends "early": the count says nothing then.
            "episodes_ended_early": (e.continuing || e.max_steps > 0)
                .then(|| o.history.episode_length.iter().filter(|l| **l < max_steps).count()),
            "worst_episode_addon_per_step": o.history.episode_addon_per_step.iter().copied().fold(f32::INFINITY, f32::min),
            "wall_seconds": o.wall_seconds,
            "diverged": o.diverged,
            "signal_faults": o.signal_faults,
            "prior_faults": o.prior_faults,
            "late_steps": o.late_steps,
            "not_drawn_steps": o.not_drawn_steps,
            "unlearnable_commands": o.unlearnable_commands,
            "calibration_steps": o.calibration_steps,
            "prior_temperature": match o.controller.bundle.prior.kind {
                crate::policy::prior::PriorKind::DiscreteQ { temperature } => Some(temperature),
                _ => None,
            },
            "prior_engine": if o.controller.bundle.prior.is_realtime_safe() { "resq kernels" } else { "tract (allocates)" },
        }
    })
}

/// The tree searches of a planning run: how many decisions, rounds of rollouts each, and the
/// time a decision took (nearest-rank percentiles, ms).
pub fn plan_summary(p: &crate::control::plan::Planner) -> serde_json::Value {
    let mut ms: Vec<f64> = p.searches.iter().map(|s| s.elapsed.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |q: f64| ms.get(((q * ms.len() as f64).ceil() as usize).saturating_sub(1)).copied();
    let rounds = p.searches.iter().map(|s| s.rounds as f64).sum::<f64>() / p.searches.len().max(1) as f64;
    json!({
        "decisions": p.searches.len(),
        "depth": p.settings.depth,
        "horizon": p.settings.horizon,
        "rollouts": p.settings.rollouts,
        "budget_ms": p.settings.budget.as_secs_f64() * 1e3,
        "rounds_mean": rounds,
        "decision_ms_p50": pct(0.5),
        "decision_ms_p99": pct(0.99),
        "decision_ms_max": ms.last(),
    })
}

/// The learning curve: the prior at step 0 (the customized policy starts on it), each
/// `--eval-every` point, and the final evaluation.
pub fn curve(o: &Outcome) -> Vec<serde_json::Value> {
    if o.curve.is_empty() {
        return Vec::new();
    }
    let mut start = serde_json::Map::new();
    start.insert("env_steps".into(), 0.into());
    start.extend(o.prior.to_map());
    // The run's final evaluation (the same starts and episodes) ends the curve, unless the last
    // point was taken at the last step.
    let last = o.curve.last().and_then(|p| p.get("env_steps")).and_then(|v| v.as_u64()).unwrap_or(0);
    let end = (o.env_steps > last).then(|| {
        let mut end = serde_json::Map::new();
        end.insert("env_steps".into(), o.env_steps.into());
        end.extend(o.customized.to_map());
        end
    });
    std::iter::once(start).chain(o.curve.iter().cloned()).chain(end).map(serde_json::Value::Object).collect()
}

/// The curve's worst points against the prior: the lowest success rate, and the largest
/// shortfall of the add-on return relative to the prior's (`(prior − customized) / |prior|`;
/// positive is worse than the prior). `null` without a curve.
pub fn curve_worst(o: &Outcome) -> serde_json::Value {
    let num = |p: &serde_json::Map<String, serde_json::Value>, k: &str| p.get(k).and_then(|v| v.as_f64());
    let prior = o.prior.addon_return;
    // (step, success rate, add-on shortfall) of each point.
    let points: Vec<(u64, f64, f64)> = o
        .curve
        .iter()
        .filter_map(|p| {
            let step = p.get("env_steps")?.as_u64()?;
            Some((step, num(p, "success_rate")?, (prior - num(p, "addon_return")?) / prior.abs().max(1e-9)))
        })
        .collect();
    // The first of equally bad points, for both.
    let lowest = points.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let short = points.iter().min_by(|a, b| b.2.total_cmp(&a.2));
    match (lowest, short) {
        (Some(l), Some(a)) => json!({
            "success_rate": l.1,
            "success_rate_at": l.0,
            "success_rate_drop": o.prior.success_rate - l.1,
            "addon_shortfall": a.2,
            "addon_shortfall_at": a.0,
        }),
        _ => serde_json::Value::Null,
    }
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    crate::store::checkpoint::write_atomically(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Largest drop of the success rate (absolute) before a warning.
pub const SUCCESS_SLIP: f64 = 0.05;

/// The first advice for holding the prior's task: a lower KL target where `[residual]
/// kl_per_step` moves ω' (`kl_per_step` > 0), else a higher ω'.
pub fn hold_advice(omega: f32, kl_per_step: f32) -> String {
    if kl_per_step > 0.0 {
        format!("lower `residual.kl_per_step` (now {kl_per_step} nats per step)")
    } else {
        format!("raise `residual.omega` (ω' = {omega}; raise `residual.alpha` with it to start on the prior)")
    }
}

/// Warnings when the customized policy lost much of the prior's own task: its success rate or
/// its base return (`[task] base_reward`) fell beyond [`SUCCESS_SLIP`] / `max_drop` (relative;
/// the bundle's `[task] max_base_return_drop`).
/// Each says what to change. The add-on outweighed the prior: ω' holds the prior's task, and a
/// wide prior (flat `log π0`) holds it weakly.
pub fn prior_task_warnings(
    prior: &PolicyEval,
    customized: &PolicyEval,
    hold: &str,
    max_drop: f32,
    kl_budget_end: f32,
) -> Vec<String> {
    let mut w = Vec::new();
    // The advice reads the manifest: a budget already set is tightened, not suggested.
    let budget = if kl_budget_end > 0.0 {
        format!("tighten the KL budget (`exploration.kl_budget_end`, now {kl_budget_end})")
    } else {
        "set a KL budget (`exploration.kl_budget_start`/`_end`)".to_string()
    };
    let fix = format!("to hold the prior's task more strongly, {hold}, or {budget}");
    if prior.success_rate - customized.success_rate > SUCCESS_SLIP {
        w.push(format!(
            "the success rate fell from {:.2} to {:.2}: {fix}",
            prior.success_rate, customized.success_rate
        ));
    }
    if let (Some(p), Some(c)) = (prior.base_return, customized.base_return) {
        // Relative to the return's scale: |return|, or the per-episode sum of |base reward|
        // where that is larger (a return near zero or negative is a small net of large terms).
        let scale = p.abs().max(prior.base_magnitude.unwrap_or(0.0)).max(1e-9);
        let drop = (p - c) / scale;
        if drop > max_drop as f64 {
            w.push(format!(
                "the prior's task (base return) fell by {:.0} % ({p:.2} -> {c:.2}): {fix}",
                100.0 * drop
            ));
        }
    }
    w
}

/// [`prior_task_warnings`] for a run, with its bundle's settings.
pub fn warnings(o: &Outcome) -> Vec<String> {
    let m = &o.controller.bundle.manifest;
    // A run the guard stopped has no evaluation of the customized policy to compare.
    let mut w = if o.customized.episodes > 0 {
        prior_task_warnings(
            &o.prior,
            &o.customized,
            &hold_advice(m.residual.omega, o.trade_off.kl_per_step),
            m.task.max_base_return_drop,
            m.exploration.kl_budget_end,
        )
    } else {
        Vec::new()
    };
    w.extend(o.prior.pure_penalty_warning(o.prior_early_failures, &o.controller.bundle));
    // Every point of the learning curve below the prior's success (− 0.05): the guard stops a run
    // only on statistical evidence, the report names each one.
    let below: Vec<String> = o
        .curve
        .iter()
        .filter_map(|p| Some((p.get("env_steps")?.as_u64()?, p.get("success_rate")?.as_f64()?)))
        .filter(|(_, s)| o.prior.episodes > 0 && *s < o.prior.success_rate - 0.05)
        .map(|(at, s)| format!("{s:.2} at step {at}"))
        .collect();
    if !below.is_empty() {
        w.push(format!(
            "the learning curve fell below the prior's success rate ({:.2}) − 0.05: {}; the customized policy, as evaluated, did not always keep the prior's task on the way",
            o.prior.success_rate,
            below.join(", ")
        ));
    }
    if o.late_steps > 0 {
        w.push(format!(
            "{} of {} training steps ran late (the robot stepped before resq's command arrived, or under its safe action) and were not learned from: the loop does not always keep up with the robot's period (`learning.thread = true`, fewer `learning.updates_per_tick`, or `resq run --rt-priority 50` help)",
            o.late_steps, o.env_steps.saturating_sub(o.resumed_from)
        ));
    }
    w
}

fn rows(p: &PolicyEval) -> Vec<(String, f64)> {
    let mut r = vec![
        ("episode length".to_string(), p.mean_episode_length),
        ("success rate".to_string(), p.success_rate),
    ];
    if let Some(b) = p.base_return {
        r.push(("base return (prior's task)".into(), b));
    }
    r.push(("add-on return".into(), p.addon_return));
    if p.addon_terms.len() > 1 {
        for (k, v) in &p.addon_terms {
            r.push((format!("  add-on `{k}`"), *v));
        }
    }
    for (k, v) in &p.metrics {
        r.push((k.clone(), *v));
    }
    r
}

/// The comparison table, prior vs customized, with the change in percent.
pub fn table(o: &Outcome) -> String {
    comparison(&o.prior, &o.customized)
}

/// The comparison table of two evaluations on the same starts, with the change in percent.
pub fn comparison(prior: &PolicyEval, customized: &PolicyEval) -> String {
    let (a, b) = (rows(prior), rows(customized));
    let mut s = format!(
        "{:<30} {:>12} {:>12} {:>9}\n",
        format!("over {} episodes", prior.episodes),
        "prior",
        "customized",
        "change"
    );
    for ((k, va), (_, vb)) in a.iter().zip(&b) {
        let change =
            if va.abs() > 1e-12 { format!("{:+.1}%", 100.0 * (vb - va) / va.abs()) } else { "".into() };
        s += &format!("{k:<30} {va:>12.4} {vb:>12.4} {change:>9}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(success: f64, base: f64) -> PolicyEval {
        PolicyEval { success_rate: success, base_return: Some(base), ..PolicyEval::default() }
    }

    /// A base return that is a small net of large terms (here −0.05 from |r| summing to 20 an
    /// episode) moving by 0.008 is a 0.04 % change of the task, not the 16 % of the return.
    #[test]
    fn a_small_net_base_return_is_judged_on_its_scale() {
        let with_scale = |e: PolicyEval| PolicyEval { base_magnitude: Some(20.0), ..e };
        let (p, c) = (with_scale(eval(1.0, -0.05)), with_scale(eval(1.0, -0.058)));
        assert!(prior_task_warnings(&p, &c, &hold_advice(1.0, 0.0), 0.1, 0.0).is_empty());
        let c = with_scale(eval(1.0, -4.05));
        assert_eq!(
            prior_task_warnings(&p, &c, &hold_advice(1.0, 0.0), 0.1, 0.0).len(),
            1,
            "a fall of a fifth of the scale is named"
        );
    }

    #[test]
    fn a_slipping_prior_task_is_named_with_its_fix() {
        assert!(prior_task_warnings(
            &eval(1.0, -100.0),
            &eval(0.98, -108.0),
            &hold_advice(0.01, 0.0),
            0.1,
            0.0
        )
        .is_empty());
        assert!(prior_task_warnings(
            &eval(1.0, -100.0),
            &eval(1.0, -150.0),
            &hold_advice(0.01, 0.0),
            0.6,
            0.0
        )
        .is_empty());
        let w =
            prior_task_warnings(&eval(1.0, -100.0), &eval(1.0, -150.0), &hold_advice(0.01, 0.0), 0.1, 0.0);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("fell by 50 %") && w[0].contains("residual.omega") && w[0].contains("0.01"),
            "{w:?}"
        );
        let w = prior_task_warnings(&eval(1.0, 94.0), &eval(0.6, 56.0), &hold_advice(0.003, 0.0), 0.1, 0.0);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("success rate fell from 1.00 to 0.60"));
        assert!(w[0].contains("set a KL budget"), "{w:?}");
        // With a budget in the manifest, the advice is to tighten it.
        let w = prior_task_warnings(&eval(1.0, 94.0), &eval(0.6, 56.0), &hold_advice(0.003, 0.0), 0.1, 0.5);
        assert!(w[0].contains("tighten the KL budget") && w[0].contains("now 0.5"), "{w:?}");
        // Where a KL target moves ω', the advice is to lower the target.
        let w = prior_task_warnings(&eval(1.0, 94.0), &eval(0.6, 56.0), &hold_advice(1.0, 0.5), 0.1, 0.0);
        assert!(w[0].contains("lower `residual.kl_per_step` (now 0.5"), "{w:?}");
        assert!(!w[0].contains("residual.omega"), "{w:?}");
    }
}
