//! Priors whose outputs are not all finite, on the simulated CartPole:
//! - a prior that masks an action (its logit is −∞ everywhere) is a legitimate prior: resq never
//!   takes the masked action, in training or in evaluation, and learns as usual;
//! - a prior that fails on part of the state space (NaN whenever x < 0) is a fault: on those
//!   ticks resq sends the safe command, counts the tick (outcome, report, record), and learns
//!   from no transition that starts or ends there.
//!
//! The priors are real ONNX files made by `scripts/make_test_models.py`.

use std::path::Path;

use rand::{Rng, SeedableRng};
use resq::control::{ActMode, Controller, PolicyChoice};
use resq::session::customize::{self, Options};
use resq::Bundle;

mod common;
use common::bundles::write_with_prior;

/// `models/cartpole`'s manifest with the test prior `onnx` (discrete logits) and `values` as
/// its actions, in `dir`.
fn bundle(dir: &Path, onnx: &str, values: &str, labels: &str) -> Bundle {
    write_with_prior(dir, "cartpole", onnx, |text| {
        let text = text
            .replace("kind = \"discrete_q\"", "kind = \"discrete_logits\"")
            .replace("temperature = 1.0 ", "")
            .replace("values = [-10.0, 10.0]", &format!("values = {values}"))
            .replace("labels = [\"left\", \"right\"]", &format!("labels = {labels}"));
        assert!(!text.contains("temperature = 1.0 "), "the manifest changed: update this test");
        text
    });
    Bundle::load(dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_masked_action_is_never_taken_and_learning_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let b =
        bundle(dir.path(), "masked_logits.onnx", "[-10.0, 10.0, 0.0]", "[\"left\", \"right\", \"coast\"]");

    // The controller on random states, sampling and greedy, prior and customized.
    let head = resq::session::customize::make_learner(&b, 0).core().online.clone();
    let mut ctl = Controller::new(Bundle::load(dir.path()).unwrap(), head);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    for i in 0..2000 {
        let s: Vec<f32> = (0..4).map(|_| rng.random_range(-2.0..2.0)).collect();
        let policy = if i % 2 == 0 { PolicyChoice::Prior } else { PolicyChoice::Customized };
        let mode = if i % 3 == 0 { ActMode::Greedy } else { ActMode::Sample };
        let d = ctl.step(&s, policy, mode, &mut rng);
        assert_eq!(ctl.logp0[2], f32::NEG_INFINITY, "the prior masks `coast`");
        assert!(d.action < 2 && !d.fallback && !d.prior_fault, "{d:?}");
        assert!(d.logp0_taken.is_finite() && d.logpi_taken.is_finite() && d.kl.is_finite(), "{d:?}");
    }

    let opts = Options { eval_episodes: Some(5), ..Options::new(3000, 0, dir.path().join("run")) };
    let o = customize::run(b, &opts).unwrap();
    assert!(!o.diverged, "learning with a masked action diverged");
    assert!(o.updates > 1000);
    assert_eq!(o.prior_faults, 0);
    assert_eq!((o.prior.fallbacks, o.customized.fallbacks), (0, 0));
    let r = &o.learner.core().replay;
    for k in r.oldest()..r.written {
        let slot = r.slot(k);
        assert!(r.action[slot] < 2, "the masked action was taken at step {k}");
        let next = r.next_logp0_at(slot);
        assert!(next[2] == f32::NEG_INFINITY && next[..2].iter().all(|v| v.is_finite()));
    }
    let q = o.learner.core().online.predict(ndarray::Array2::<f32>::zeros((1, 4)).view());
    assert!(q.iter().all(|v| v.is_finite()), "{q:?}");
}

#[test]
fn a_failing_prior_gets_the_safe_command_and_is_not_learned_from() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), "nan_when_x_negative.onnx", "[-10.0, 10.0]", "[\"left\", \"right\"]");

    let head = resq::session::customize::make_learner(&b, 0).core().online.clone();
    let mut ctl = Controller::new(Bundle::load(dir.path()).unwrap(), head);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    for policy in [PolicyChoice::Prior, PolicyChoice::Customized] {
        let d = ctl.step(&[-0.5, 0.0, 0.01, 0.0], policy, ActMode::Sample, &mut rng);
        assert!(d.prior_fault && d.fallback, "{d:?}");
        assert_eq!(ctl.command, [0.0], "the bundle's safe command");
        let d = ctl.step(&[0.5, 0.0, 0.01, 0.0], policy, ActMode::Sample, &mut rng);
        assert!(!d.prior_fault && !d.fallback, "{d:?}");
        assert!(ctl.command[0].abs() == 10.0);
    }

    let record = dir.path().join("run/record.mcap");
    let opts = Options {
        eval_episodes: Some(5),
        record: Some(record.clone()),
        ..Options::new(2000, 0, dir.path().join("run"))
    };
    let o = customize::run(b, &opts).unwrap();
    eprintln!("{} prior faults in {} steps", o.prior_faults, o.env_steps);
    assert!(o.prior_faults > 100 && o.prior_faults < o.env_steps, "{} faults", o.prior_faults);
    assert!(!o.diverged, "a NaN reached the learner");
    assert!(o.prior.fallbacks > 0, "evaluation counts the faulty ticks as fallbacks");
    let r = &o.learner.core().replay;
    assert!(r.len() as u64 + o.prior_faults <= o.env_steps, "a transition touching a fault was kept");
    for k in r.oldest()..r.written {
        let slot = r.slot(k);
        assert!(r.logp0_taken[slot].is_finite() && r.next_logp0_at(slot).iter().all(|v| v.is_finite()));
        assert!(r.obs_at(slot)[0] >= 0.0 && r.next_obs_at(slot)[0] >= 0.0, "x < 0 at step {k}");
    }
    let json = resq::session::report::to_json("nan", 0, &o);
    assert_eq!(json["training"]["prior_faults"], o.prior_faults);
    let s = resq::store::record::inspect(&record).unwrap();
    assert_eq!(s.prior_faults, o.prior_faults, "the record counts them too");
}

/// The same for a continuous prior (a 1-D Gaussian actor that is NaN whenever cos θ < 0) under
/// residual SAC on the simulated pendulum: safe command on the faulty ticks, counted, and no
/// transition touching them learned from.
#[test]
fn a_failing_continuous_prior_gets_the_safe_command_too() {
    let dir = tempfile::tempdir().unwrap();
    write_with_prior(dir.path(), "pendulum", "nan_gaussian_actor.onnx", |text| text);
    let load =
        || Bundle::load_with(dir.path(), &["learning.warmup=200".into()]).unwrap_or_else(|e| panic!("{e}"));
    let b = load();
    let head = resq::session::customize::make_learner(&b, 0).core().online.clone();
    let mut ctl = Controller::new(load(), head);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let d = ctl.step(&[-0.5, 0.87, 0.0], PolicyChoice::Prior, ActMode::Sample, &mut rng);
    assert!(d.prior_fault && d.fallback, "{d:?}");
    assert_eq!(ctl.command, b.safety.limits.safe, "the bundle's safe command");
    let d = ctl.step(&[0.5, 0.87, 0.0], PolicyChoice::Prior, ActMode::Sample, &mut rng);
    assert!(!d.prior_fault && d.logp0_taken.is_finite(), "{d:?}");

    let o = customize::run(
        b,
        &Options { eval_episodes: Some(3), ..Options::new(1500, 0, dir.path().join("run")) },
    )
    .unwrap();
    eprintln!("{} prior faults in {} steps", o.prior_faults, o.env_steps);
    assert!(o.prior_faults > 100 && o.prior_faults < o.env_steps, "{} faults", o.prior_faults);
    assert!(!o.diverged, "a NaN reached the learner");
    let r = &o.learner.core().replay;
    assert!(r.len() > 100);
    for k in r.oldest()..r.written {
        let slot = r.slot(k);
        assert!(r.obs_at(slot)[0] >= 0.0 && r.next_obs_at(slot)[0] >= 0.0, "cos θ < 0 at step {k}");
        assert!(r.prior_params_at(slot).iter().chain(r.next_prior_params_at(slot)).all(|v| v.is_finite()));
    }
}
