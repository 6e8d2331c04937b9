//! End to end with continuous actions: MountainCarContinuous "less left" (add-on `-0.1` whenever
//! `a < 0`) over the SAC prior, within 10 000 environment steps, by both continuous methods.
//!
//! - Residual SAC (the bundle's method, with its KL budget): the customized policy must push
//!   left on at most 0.6× as many steps as the prior while reaching the goal in ≥ 90 % of
//!   evaluation episodes; and the learned actor, held to a tight KL budget, keeps every decision
//!   within it.
//! - The actor-free sampled residual Q (`residual.method = "sampled"`, same KL budget): at most
//!   0.75× the prior's left pushes, same goal bar.
//!
//! The bars hold with a margin over seeds 0–4 on each of resq's kernel sets (15 runs, each its own
//! arithmetic, as another machine's would be; `scripts/seed_margins.sh "0 1 2 3 4"
//! mountaincar_customize "avx512 avx2 scalar"`, docs/testing.md): SAC 0.37× median, 0.52× worst
//! (it halves them on 14 of 15); sampled 0.48× median, 0.66× worst. The goal: 20/20 on every run.

mod common;

use std::path::Path;

use resq::session::customize::{self, Options, Outcome};
use resq::Bundle;

fn customize(method: &str) -> Outcome {
    let out = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar");
    let b = Bundle::load_with(&dir, &[format!("residual.method={method:?}")]).unwrap();
    assert!(b.prior.is_realtime_safe(), "the SAC actor compiles to resq's kernels");
    let opts =
        Options { fresh: true, eval_episodes: Some(20), ..Options::new(10_000, common::seed(0), out.path()) };
    let o = customize::run(b, &opts).unwrap();
    assert!(!o.diverged);
    o
}

/// Left-push fractions (prior, customized), after checking the goal bar.
fn left_pushes(o: &Outcome, method: &str) -> (f64, f64) {
    let left = |e: &resq::session::evaluate::PolicyEval| {
        e.metrics.iter().find(|(k, _)| k == "left_push_fraction").unwrap().1
    };
    let (p, c) = (left(&o.prior), left(&o.customized));
    eprintln!(
        "{method}: left pushes: prior {p:.3} customized {c:.3} ({:+.1} %); goal reached: prior {:.2} customized {:.2}; episode length {:.1} -> {:.1}",
        100.0 * (c - p) / p,
        o.prior.success_rate,
        o.customized.success_rate,
        o.prior.mean_episode_length,
        o.customized.mean_episode_length
    );
    common::figure(&format!("mountaincar {method} goal"), o.customized.success_rate, ">=", 0.9);
    assert!(p > 0.3, "the prior pushes left often ({p})");
    assert!(o.customized.success_rate >= 0.9, "goal reached in only {:.2}", o.customized.success_rate);
    (p, c)
}

#[test]
fn residual_sac_pushes_left_less_and_still_reaches_the_goal() {
    let mut o = customize("sac");
    let (p, c) = left_pushes(&o, "sac");
    common::figure("mountaincar sac left-push ratio", c / p, "<=", 0.6);
    assert!(c <= 0.6 * p, "customized {c} vs prior {p}");

    // The learned actor under a tight KL budget: every decision keeps within it, and the budget
    // binds (the learned policy is further than 0.05 nats from the prior somewhere).
    use rand::SeedableRng;
    use resq::control::{ActMode, PolicyChoice};
    let ctl = &mut o.controller;
    ctl.kl_budget = 0.05;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
    let mut limited = 0;
    for i in 0..400 {
        let signals = [-1.1 + 1.5 * (i as f32 / 400.0), 0.07 * ((i as f32) * 0.37).sin()];
        let d = ctl.step(&signals, PolicyChoice::Customized, ActMode::Sample, &mut rng);
        assert!(d.kl <= 0.05 + 1e-5, "KL {} over the budget", d.kl);
        limited += (d.lambda < 1.0) as u32;
    }
    assert!(limited > 0, "the budget never bound, so it was not checked");
}

#[test]
fn sampled_residual_pushes_left_less_and_still_reaches_the_goal() {
    let (p, c) = left_pushes(&customize("sampled"), "sampled");
    common::figure("mountaincar sampled left-push ratio", c / p, "<=", 0.75);
    assert!(c <= 0.75 * p, "customized {c} vs prior {p}");
}

/// A sampled evaluation of the prior is the same however long training ran: evaluation draws
/// from streams of its own (before, the prior's continuous draws went on from training's
/// stream, so the prior's figures moved with `--steps`: this test, run with that fix reverted,
/// saw 0.458 left pushes after 1 500 steps and 0.492 after 3 000).
#[test]
fn a_sampled_evaluation_of_the_prior_does_not_depend_on_the_run_length() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar");
    let prior_after = |steps: u64| {
        let out = tempfile::tempdir().unwrap();
        let b = Bundle::load_with(&dir, &["evaluation.policy=\"sample\"".into()]).unwrap();
        let opts = Options { fresh: true, eval_episodes: Some(5), ..Options::new(steps, 4, out.path()) };
        customize::run(b, &opts).unwrap().prior
    };
    let (a, b) = (prior_after(1_500), prior_after(3_000));
    eprintln!("prior, sampled: {:?} vs {:?}", a.metrics, b.metrics);
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(a.mean_episode_length, b.mean_episode_length);
    assert_eq!(a.addon_return, b.addon_return);
}
