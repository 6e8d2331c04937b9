//! Residual policy gradient (method `rpg`) end to end: the CartPole bundle "more centre" meets
//! the bar of the residual Q-learning test (mean |x| ≤ 0.5× the prior's, ≥ 95 % of episodes
//! reach the 500-step limit); for every prior kind resq loads, a fresh RPG residual acts exactly
//! as the prior; and a checkpoint written in the middle of an update phase resumes
//! that phase exactly (its rollout, advantages and minibatch order).

mod common;

use std::path::Path;

use rand::SeedableRng;
use resq::control::{ActMode, Controller, PolicyChoice};
use resq::robot::{Env, SimEnv};
use resq::session::customize::{self, make_learner, Options, CHECKPOINT_FILE};
use resq::store::checkpoint;
use resq::Bundle;

fn bundle() -> Bundle {
    Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-rpg")).unwrap()
}

fn metric(e: &resq::session::evaluate::PolicyEval, name: &str) -> f64 {
    e.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v).expect("metric present")
}

/// 20 000 steps: every seed meets the bar there with margin (0.217× median, 0.299× worst over
/// seeds 0–4). At 15 000, where `steps_to_customize.py` (20 episodes) also has 5/5, this test's
/// 40-episode evaluation with a curve every 5 000 steps reached only 0.60× on seed 0 once the
/// kernels' narrow heads changed their summation order.
#[test]
fn rpg_moves_the_cartpole_to_the_centre_and_keeps_the_pole_up() {
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        eval_episodes: Some(40),
        eval_every: 5_000,
        ..Options::new(20_000, common::seed(0), out.path())
    };
    let o = customize::run(bundle(), &opts).unwrap();
    let (p, c) = (metric(&o.prior, "mean_abs_x"), metric(&o.customized, "mean_abs_x"));
    eprintln!(
        "rpg: mean|x| prior {p:.4} customized {c:.4} ({:.3}x); success {:.2}; {} training episodes failed; {} updates",
        c / p,
        o.customized.success_rate,
        o.history.episodes_failed(),
        o.updates
    );
    common::figure("cartpole-rpg mean|x| ratio", c / p, "<=", 0.5);
    common::figure("cartpole-rpg success", o.customized.success_rate, ">=", 0.95);
    assert!(c <= 0.5 * p, "customized mean|x| {c:.4} is not ≤ half the prior's {p:.4}");
    assert!(
        o.customized.success_rate >= 0.95,
        "only {:.2} of episodes reach 500 steps",
        o.customized.success_rate
    );
    // The safety issue's bar: training episodes fail no more often than the prior's + 0.05.
    let rate = o.history.failure_rate();
    assert!(rate <= 1.0 - o.prior.success_rate + 0.05, "training episodes failed at {rate:.3}");
    assert!(!o.diverged);
}

/// MountainCarContinuous "less left" by RPG (`models/mountaincar-rpg`, sampled evaluation): left
/// pushes ≤ 0.5× the prior's with the goal in ≥ 90 % of episodes, in the bundle's 200 000 steps.
#[test]
fn rpg_pushes_the_continuous_mountaincar_left_less() {
    let out = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar-rpg");
    let o = customize::run(Bundle::load(&dir).unwrap(), &Options::new(200_000, common::seed(0), out.path()))
        .unwrap();
    let (p, c) = (metric(&o.prior, "left_push_fraction"), metric(&o.customized, "left_push_fraction"));
    eprintln!(
        "rpg, MountainCarContinuous: left pushes {p:.3} -> {c:.3} ({:.3}x); goal {:.2} -> {:.2}",
        c / p,
        o.prior.success_rate,
        o.customized.success_rate
    );
    common::figure("mountaincar-rpg left-push ratio", c / p, "<=", 0.5);
    common::figure("mountaincar-rpg goal", o.customized.success_rate, ">=", 0.9);
    assert!(c <= 0.5 * p, "left pushes {c:.3} vs the prior's {p:.3}");
    assert!(o.customized.success_rate >= 0.9, "goal in {:.2} of episodes", o.customized.success_rate);
    assert!(!o.diverged);
}

#[test]
fn a_checkpoint_taken_mid_phase_resumes_the_phase_exactly() {
    let out = tempfile::tempdir().unwrap();
    // Rollouts of 512 steps; a phase is 20 epochs × 8 minibatches at 16 per tick: the phase of
    // the second rollout (steps 512..1024) starts once it is complete and is 6 ticks in at
    // step 1030.
    let first =
        customize::run(bundle(), &Options { eval_episodes: Some(1), ..Options::new(1030, 0, out.path()) })
            .unwrap();
    let state = first.learner.extra_state();
    let rollout = &state.iter().find(|(n, _)| *n == "rpg.rollout").unwrap().1;
    assert_eq!(rollout, &vec![1024.0, 512.0, 96.0], "[next rollout, phase start, minibatch steps taken]");

    let mut restored = make_learner(&bundle(), 7);
    checkpoint::load(&out.path().join(CHECKPOINT_FILE), restored.as_mut(), &bundle().manifest_text).unwrap();
    assert_eq!(restored.extra_state(), state);
    assert_eq!(restored.core().replay.written, first.learner.core().replay.written);
    // The rest of the phase takes the same minibatches with the same optimiser state: the
    // policies stay identical, update for update.
    let mut original = first.learner;
    assert_eq!(original.extra_nets()[0].net, restored.extra_nets()[0].net, "the value head as restored");
    for k in 0..64 {
        assert_eq!(original.update().is_some(), restored.update().is_some(), "update {k}");
        assert_eq!(original.core().online, restored.core().online, "policy after update {k}");
    }
    assert_eq!(original.extra_state(), restored.extra_state());
}

/// π_θ = prior + zero-initialised residual: for each prior kind (soft-Q, logits, squashed
/// Gaussian, plain Gaussian, deterministic + exploration noise), every decision of a fresh RPG
/// learner's policy has the prior's own log-probability, sampling and greedy.
#[test]
fn a_fresh_residual_acts_exactly_as_the_prior_for_every_prior_kind() {
    for name in ["cartpole", "cartpole-bc", "mountaincar", "pendulum-gaussian", "pendulum-bc"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
        let b = Bundle::load_with(&dir, &["residual.method=\"rpg\"".into()]).unwrap();
        let kind = b.prior.kind.name();
        let learner = make_learner(&b, 0);
        let plant = b.sim_plant.clone().unwrap();
        let mut ctl = Controller::with_learner(b, learner.as_ref());
        let mut env = SimEnv::new(&plant, 200, 3).unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        env.reset().unwrap();
        let mut worst = 0.0f32;
        for i in 0..400 {
            let mode = if i % 2 == 0 { ActMode::Sample } else { ActMode::Greedy };
            let d = ctl.step(env.signals(), PolicyChoice::Customized, mode, &mut rng);
            assert!(!d.fallback && !d.prior_fault, "{name}: tick {i}");
            worst = worst.max((d.logpi_taken - d.logp0_taken).abs());
            if env.step(&ctl.command.clone()).unwrap().done() {
                env.reset().unwrap();
            }
        }
        eprintln!("{name} ({kind}): largest |log π_θ − log π0| of the action taken {worst:e}");
        assert!(worst < 1e-5, "{name} ({kind}): {worst}");
    }
}

/// A deadline fallback sends the prior's own action, which was not drawn from the acting
/// policy: residual policy gradient, which weighs each action by the probability it was drawn
/// with, learns nothing from such steps; residual soft Q (off-policy) learns from them as from
/// any other. Every tick misses a deadline of a nanosecond here, on a simulated robot that keeps
/// its own time as a real-time one does (`SimEnv::real_time`).
#[test]
fn rpg_never_learns_from_actions_it_did_not_draw() {
    let run = |bundle: &str| {
        let out = tempfile::tempdir().unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(bundle);
        let b = Bundle::load_with(&dir, &["safety.tick_deadline_ms=0.000001".to_string()]).unwrap();
        let opts = Options { eval_episodes: Some(2), ..Options::new(1_500, 0, out.path()) };
        let plant = b.sim_plant.clone().unwrap();
        let mut env = resq::robot::SimEnv::new(&plant, b.episode.time_limit(), 0).unwrap();
        env.real_time = true;
        customize::run_in(b, &mut env, &opts).unwrap()
    };
    let rpg = run("cartpole-rpg");
    assert_eq!(rpg.updates, 0, "RPG learned from steps whose action it did not draw");
    assert_eq!(rpg.not_drawn_steps, 1_500, "every step is counted");
    let soft_q = run("cartpole");
    assert!(soft_q.updates > 0, "residual soft Q learns from the prior's actions too");
}
