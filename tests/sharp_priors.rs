//! A prior whose log-probabilities carry no reward units (a plain DQN read at its calibrated
//! temperature) barely moves at a fixed ω' = α̂: CartPole "right of centre" (add-on
//! `−|x−0.5|/2.4`, which the prior does not meet) stays at ≥ 0.95× its mean |x−0.5|. With
//! `[residual] kl_per_step`, ω' and α̂ fall together until the robot moves that many nats per
//! step from the prior (`session::trade_off`), and the same prior moves, keeping its task. The
//! multiplier is checkpointed: a resumed run and `resq export` act as the residual learned.

mod common;

use resq::session::customize::{self, make_learner, Options, CHECKPOINT_FILE};
use resq::store::checkpoint;
use resq::Bundle;

use common::bundles::write_sb3_dqn_cartpole;

const STEPS: u64 = 10_000;

fn right_of_centre(dir: &std::path::Path, kl_per_step: f32) -> Bundle {
    let overrides: Vec<String> = [
        "prior.temperature=\"auto\"".to_string(),
        "addon.term=[{name=\"right\",expr=\"-abs(x-0.5)/2.4\"}]".to_string(),
        "evaluation.metric=[{name=\"off\",expr=\"abs(x-0.5)\",reduce=\"mean\"}]".to_string(),
        format!("residual.kl_per_step={kl_per_step}"),
    ]
    .into();
    Bundle::load_with(dir, &overrides).unwrap()
}

fn metric(e: &resq::session::evaluate::PolicyEval) -> f64 {
    e.metrics.iter().find(|(k, _)| k == "off").map(|(_, v)| *v).expect("metric present")
}

#[test]
fn a_kl_target_moves_a_dqn_that_a_fixed_omega_leaves_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_dqn_cartpole(dir.path());
    let run = |kl: f32, out: &std::path::Path| {
        // A learning curve, as a user watching the customization would have (its points are
        // tested against the prior's success as training goes).
        let opts = Options {
            eval_episodes: Some(20),
            eval_every: 2000,
            ..Options::new(STEPS, common::seed(0), out)
        };
        customize::outcome_of(customize::run(right_of_centre(dir.path(), kl), &opts)).unwrap()
    };
    let fixed_out = tempfile::tempdir().unwrap();
    let fixed = run(0.0, fixed_out.path());
    let fixed_ratio = metric(&fixed.customized) / metric(&fixed.prior);
    assert_eq!(fixed.trade_off.scale, 1.0);
    let out = tempfile::tempdir().unwrap();
    let moved = run(0.5, out.path());
    let ratio = metric(&moved.customized) / metric(&moved.prior);
    eprintln!(
        "mean |x-0.5| customized/prior: fixed omega' {fixed_ratio:.3}, kl_per_step 0.5 {ratio:.3} (omega' = alpha ended at {:.4}, KL {:.3} nats per step); success {:.2}, training episodes failed {}",
        moved.trade_off.omega,
        moved.trade_off.kl_avg,
        moved.customized.success_rate,
        moved.history.episodes_failed()
    );
    common::figure("fixed omega' ratio", fixed_ratio, ">=", 0.95);
    common::figure("kl_per_step 0.5 ratio", ratio, "<=", 0.85);
    assert!(fixed_ratio >= 0.95, "a fixed omega' moved the DQN to {fixed_ratio:.3}x");
    assert!(ratio <= 0.85, "kl_per_step = 0.5 moved it only to {ratio:.3}x");
    assert!(moved.stopped.is_none());
    assert!(moved.customized.success_rate >= 0.95, "{}", moved.customized.success_rate);
    assert!(moved.trade_off.scale < 0.3, "the multiplier stayed at {}", moved.trade_off.scale);

    // The multiplier is in the checkpoint, and a resumed run starts from it.
    let b = right_of_centre(dir.path(), 0.5);
    let mut learner = make_learner(&b, 0);
    let progress =
        checkpoint::load(&out.path().join(CHECKPOINT_FILE), learner.as_mut(), &b.manifest_text).unwrap();
    assert_eq!(progress.weight_scale, Some(moved.trade_off.scale));
    let again = run(0.5, out.path());
    assert_eq!(again.resumed_from, STEPS);
    assert_eq!(again.trade_off.scale, moved.trade_off.scale);
    assert_eq!(metric(&again.customized), metric(&moved.customized), "acts as the residual learned");
}

#[test]
fn a_kl_target_is_refused_for_rpg_and_must_be_a_number_of_nats() {
    let root = common::bundles::root();
    let err = Bundle::load_with(&root.join("models/cartpole-rpg"), &["residual.kl_per_step=0.5".into()])
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("residual.kl_per_step") && err.contains("kl_budget"), "{err}");
    let err = Bundle::load_with(&root.join("models/cartpole"), &["residual.kl_per_step=-1".into()])
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("residual.kl_per_step") && err.contains("nats per step"), "{err}");
    let err = Bundle::load_with(&root.join("models/cartpole"), &["residual.failure_value=\"best\"".into()])
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("residual.failure_value") && err.contains("worst"), "{err}");
}
