//! The end-of-run report: a table on the terminal and a JSON file with top-level `prior` and
//! `customized` objects (metric name → number) and `env_steps`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::customize::Outcome;
use crate::evaluate::PolicyEval;

/// The JSON report.
pub fn to_json(bundle_name: &str, seed: u64, o: &Outcome) -> serde_json::Value {
    let max_steps = o.controller.bundle.manifest.plant.max_episode_steps as f32;
    json!({
        "bundle": bundle_name,
        "seed": seed,
        "env_steps": o.env_steps,
        "resumed_from_step": o.resumed_from,
        "prior": o.prior.to_map(),
        "customized": o.customized.to_map(),
        "training": {
            "updates": o.updates,
            "episodes": o.history.episode_length.len(),
            "episodes_ended_early": o.history.episode_length.iter().filter(|l| **l < max_steps).count(),
            "worst_episode_addon_per_step": o.history.episode_addon_per_step.iter().copied().fold(f32::INFINITY, f32::min),
            "wall_seconds": o.wall_seconds,
            "diverged": o.diverged,
            "prior_engine": if o.controller.bundle.prior.is_realtime_safe() { "resq kernels" } else { "tract (allocates)" },
        }
    })
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    crate::checkpoint::write_atomically(path, serde_json::to_string_pretty(value)?.as_bytes())
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
    let (a, b) = (rows(&o.prior), rows(&o.customized));
    let mut s = format!(
        "{:<30} {:>12} {:>12} {:>9}\n",
        format!("over {} episodes", o.prior.episodes),
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
