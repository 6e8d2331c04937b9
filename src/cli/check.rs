//! `resq check`: load and validate a bundle, and say how it will run.

use std::path::Path;

use anyhow::Result;

use crate::bundle::Method;
use crate::policy::prior::PriorKind;
use crate::Bundle;

/// Loads the bundle at `bundle` and prints what resq will do with it.
pub fn check(bundle: &Path) -> Result<()> {
    let b = Bundle::load(bundle)?;
    println!("{}: ok", b.manifest_path.display());
    let describe = |names: &[String]| names.join(", ");
    println!("  robot: {} signal(s) [{}]", b.signals.len(), describe(&b.signals));
    println!("         {} command(s) [{}]", b.commands.len(), describe(&b.commands));
    print_episodes(&b);
    match (&b.sim_plant, &b.sim_firmware) {
        (Some(p), _) => println!("  simulated robot: built-in `{p}` (resq customize, resq rig)"),
        (_, Some(c)) => println!("  simulated robot: `{c}` on a pseudo-terminal (resq customize)"),
        _ => println!(
            "  no simulated robot: run it over the link (resq run {} --port <device>)",
            bundle.display()
        ),
    }
    println!(
        "  prior: {}, {} observation(s) -> {} action(s)",
        prior_kind(&b),
        b.prior.n_obs,
        b.prior.n_actions
    );
    match &b.prior.fallback_reason {
        None => println!(
            "  runs on resq's allocation-free kernels ({}), checked against tract",
            crate::nn::kernels::isa().name()
        ),
        Some(r) => println!("  runs through tract (allocates, not real-time safe): {r}"),
    }
    println!("  add-on terms: {}", b.addon.term_names().collect::<Vec<_>>().join(", "));
    let r = &b.manifest.residual;
    println!("  method: {}; ω' = {}, α̂ = {}, head {:?}", method(&b), r.omega, r.alpha, r.hidden);
    Ok(())
}

fn prior_kind(b: &Bundle) -> String {
    match b.prior.kind {
        PriorKind::DiscreteQ { .. } if b.auto_temperature.is_some() => {
            "discrete_q (temperature auto: calibrated on the prior acting at the start of the first run)"
                .into()
        }
        PriorKind::DiscreteQ { temperature } => format!("discrete_q (temperature {temperature})"),
        PriorKind::Deterministic { std } => format!("deterministic (exploration std {std})"),
        k => k.name().to_string(),
    }
}

fn print_episodes(b: &Bundle) {
    let e = &b.episode;
    if e.continuing {
        println!("  episodes: continuing task, statistics over windows of {} steps", e.window);
        return;
    }
    let limit =
        if e.max_steps > 0 { format!("time limit {} steps", e.max_steps) } else { "no time limit".into() };
    println!(
        "  episodes: {limit}{}; reset by the {}",
        e.terminate.as_ref().map_or(String::new(), |t| format!(", terminate when `{}`", t.source())),
        if e.operator_reset { "operator (firmware reports WAITING)" } else { "firmware" }
    );
}

fn method(b: &Bundle) -> String {
    let (r, l) = (&b.manifest.residual, &b.manifest.learning);
    match b.method {
        Method::DiscreteQ => "residual soft Q over every action".to_string(),
        Method::Sampled => format!("sampled residual Q, K = {} candidates", r.candidates),
        Method::Sac => "residual SAC (actor + twin critics)".to_string(),
        Method::Rpg => format!(
            "residual policy gradient (PPO, rollout {}, {} epochs, clip {}, GAE λ {})",
            l.rollout, l.epochs, l.clip, l.gae_lambda
        ),
        Method::Plan => {
            let p = &b.manifest.plan;
            format!(
                "zero-shot tree search on the model (depth {}, prior rollouts of {} steps, at most {} rounds or {} ms a decision); nothing learned",
                p.depth, p.horizon, p.rollouts, p.budget_ms
            )
        }
    }
}
