//! `[prior] temperature = "auto"` for a plain DQN prior (Stable-Baselines3, CartPole, Q-values
//! up to about 100 and no temperature of its own). Sampled at the customary temperature 1 it
//! drops the pole in many training episodes, although acting greedily (as deployed) it never
//! does; calibrated on its own behaviour, its sampled episodes fail no more often than deployed
//! plus 0.05. No learning here (the warm-up outlasts the run): the training episodes are the
//! prior's, sampled.

use std::path::Path;

use resq::session::customize::{self, Options};
use resq::Bundle;

mod common;

/// `models/cartpole` with the SB3 DQN prior, learning nothing (the warm-up outlasts the run).
fn dqn_bundle(dir: &Path, overrides: &[&str]) -> Bundle {
    common::bundles::write_sb3_dqn_cartpole(dir);
    let mut o: Vec<String> = vec!["learning.warmup=1000000".into()];
    o.extend(overrides.iter().map(|s| s.to_string()));
    Bundle::load_with(dir, &o).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_calibrated_dqn_prior_fails_in_training_no_more_than_as_deployed() {
    for seed in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let b = dqn_bundle(dir.path(), &["prior.temperature=\"auto\""]);
        let opts = Options {
            eval_episodes: Some(5),
            fresh: true,
            ..Options::new(5000, seed, dir.path().join("run"))
        };
        let o = customize::run(b, &opts).unwrap();
        let json = resq::session::report::to_json("dqn", seed, &o);
        let t = json["training"]["prior_temperature"].as_f64().unwrap();
        eprintln!(
            "seed {seed}: τ = {t:.4}, training failures {:.2} (deployed {:.2})",
            o.history.failure_rate(),
            1.0 - o.prior.success_rate
        );
        assert_eq!(json["training"]["calibration_steps"], 500);
        assert!(t > 0.0 && t < 1.0, "τ = {t}");
        assert!(
            o.history.failure_rate() <= 1.0 - o.prior.success_rate + 0.05,
            "seed {seed}: {:.2}",
            o.history.failure_rate()
        );

        // The control: the same prior sampled at temperature 1 fails more often than that.
        let dir = tempfile::tempdir().unwrap();
        let b = dqn_bundle(dir.path(), &[]);
        let o1 = customize::run(b, &Options { fresh: true, ..opts.clone() }).unwrap();
        eprintln!("seed {seed}: at τ = 1, training failures {:.2}", o1.history.failure_rate());
        assert!(
            o1.history.failure_rate() > 1.0 - o1.prior.success_rate + 0.05,
            "seed {seed}: {:.2}",
            o1.history.failure_rate()
        );
    }

    // A resumed run keeps the calibrated temperature without calibrating again.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(1000, 0, dir.path().join("run"));
    let first = customize::run(dqn_bundle(dir.path(), &["prior.temperature=\"auto\""]), &opts).unwrap();
    let again = customize::run(
        dqn_bundle(dir.path(), &["prior.temperature=\"auto\""]),
        &Options::new(1500, 0, dir.path().join("run")),
    )
    .unwrap();
    assert_eq!(again.calibration_steps, 0);
    assert_eq!(again.controller.bundle.prior.kind, first.controller.bundle.prior.kind);
}
