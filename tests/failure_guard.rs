//! An add-on that rewards ending the episode (negative on every step: ending early escapes it).
//! The run either keeps the prior's task, or the failure guard stops it with a message that
//! says why and what to change, as soon as its training episodes, or the learning curve's
//! greedy evaluations, fail more often than the prior's own whole episodes did (a sequential
//! test at a false-alarm rate of 0.05 over the run; `session/guard.rs`).

use resq::session::customize::{self, make_learner, Options, CHECKPOINT_FILE};
use resq::store::checkpoint;
use resq::Bundle;

mod common;
use common::bundles::{root, write_sb3_dqn_cartpole};

/// The soft-Q CartPole prior carries its value of staying up in `log π0`: a flat −2 per step
/// (which only ending the episode escapes) does not make it fail.
#[test]
fn a_max_ent_prior_keeps_its_task_against_an_addon_that_rewards_ending() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bundle::load_with(
        &root().join("models/cartpole"),
        &["addon.term=[{name=\"cost\",expr=\"-2\"}]".into()],
    )
    .unwrap();
    let o =
        customize::run(b, &Options { eval_episodes: Some(20), ..Options::new(6000, 0, dir.path()) }).unwrap();
    assert!(o.customized.success_rate >= o.prior.success_rate - 0.05, "{}", o.customized.success_rate);
    assert!(o.history.episodes_failed() <= 3, "{} training episodes failed", o.history.episodes_failed());
}

/// A plain DQN prior (calibrated temperature τ ≈ 0.036 on seed 0) customized at ω' = α̂ ≈ τ,
/// where its Q-values off its own state distribution do not carry the value of staying up: the
/// pole starts falling, and the guard stops the run at the third failed episode, saving what
/// was learned. (With the bundle's faster recipe, 16 updates a tick at lr 0.003, this seed
/// happens to keep the pole up; the slower one, 4 at lr 0.001, drops it.)
#[test]
fn a_customization_that_drops_the_pole_is_stopped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_dqn_cartpole(dir.path());
    let overrides: Vec<String> = [
        "prior.temperature=\"auto\"",
        "residual.omega=0.035",
        "residual.alpha=0.035",
        // A failure valued at 0, RQL as written: ending an episode escapes the pure penalty.
        "residual.failure_value=0.0",
        "learning.updates_per_tick=4",
        "learning.lr=0.001",
        "learning.warmup=500",
    ]
    .map(String::from)
    .into();
    let load = || Bundle::load_with(dir.path(), &overrides).unwrap();
    let out = dir.path().join("run");
    let err = match customize::run(load(), &Options::new(6000, 0, &out)) {
        Err(e) => e,
        Ok(o) => panic!(
            "the run went on: success {:.2}, {} training episodes failed",
            o.customized.success_rate,
            o.history.episodes_failed()
        ),
    };
    let o = customize::outcome_of(Err(err)).expect("a stopped run still has its outcome");
    let err = o.stopped.as_ref().expect("stopped").to_string();
    // It stopped before its budget, says where, and its report says what it learned and why.
    assert!(o.env_steps < 6000 && err.contains(&format!("stopped at step {}", o.env_steps)), "{err}");
    let json = resq::session::report::to_json("cartpole", 0, &o);
    assert_eq!(json["stopped"]["at_step"], o.env_steps);
    assert!(json["stopped"]["reason"].as_str().unwrap().contains("training episodes failed"));
    assert_eq!(json["customized"]["episodes"], 0, "a stopped policy drives the robot no further");
    eprintln!("{err}");
    assert!(err.contains("training episodes failed by `[episode] success`"), "{err}");
    assert!(
        err.contains("of its 21 whole episodes failed"),
        "20 measured before the run, 1 in the warm-up: {err}"
    );
    assert!(err.contains("ending an episode early escapes it"), "{err}");
    assert!(err.contains("residual.omega") && err.contains("--fresh"), "{err}");
    assert!(err.contains(&out.join(CHECKPOINT_FILE).display().to_string()), "{err}");

    // What was learned is saved, with the history: a handful of failed episodes, no more.
    let b = load();
    let mut learner = make_learner(&b, 0);
    let progress = checkpoint::load(&out.join(CHECKPOINT_FILE), learner.as_mut(), &b.manifest_text).unwrap();
    let failed = progress.history.episodes_failed();
    assert!((2..=6).contains(&failed), "{failed} training episodes failed before the stop");
    // And the prior's baseline, so that a resumed run compares with the same.
    assert_eq!(progress.prior_episodes.map(|(n, _)| n), Some(20));
}

/// Training episodes that keep the pole up do not make a customization safe: its greedy policy,
/// evaluated on the learning curve, drives the cart off the track (an add-on that pays for going
/// right). The training guard is out of the way (a declared prior failure rate of 0.99); the
/// curve's point, failing 20 of 20 against the prior's 0 of 20, stops the run there.
#[test]
fn a_curve_point_that_fails_the_task_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let overrides: Vec<String> = [
        "addon.term=[{name=\"right\",expr=\"x/2.4\"}]",
        "residual.omega=0.3",
        "safety.prior_failure_rate=0.99",
    ]
    .map(String::from)
    .into();
    let b = Bundle::load_with(&root().join("models/cartpole"), &overrides).unwrap();
    let opts = Options { eval_every: 1000, ..Options::new(8000, 0, dir.path()) };
    let o = customize::outcome_of(customize::run(b, &opts)).unwrap();
    let err = o.stopped.as_ref().expect("the curve's point stops the run").to_string();
    assert!(err.contains("the learning curve's point at step"), "{err}");
    assert!(err.contains("0 of its 20 evaluation episodes failed"), "{err}");
    let last = o.curve.last().expect("a curve point");
    assert_eq!(last["env_steps"], o.env_steps, "stopped at the point that failed");
    assert!(last["success_rate"].as_f64().unwrap() < 0.5, "{last:?}");
    // The report names the point.
    let w = resq::session::report::warnings(&o).join("\n");
    assert!(w.contains("the learning curve fell below the prior's success rate (1.00)"), "{w}");
    // The prior was evaluated (before training); the stopped policy was not.
    assert_eq!((o.prior.episodes, o.customized.episodes), (20, 0));
}

/// A pure penalty on a robot whose episodes end in failure: the plain SB3 DQN sampled at
/// temperature 1 drops the pole in some of its own episodes, and the add-on (−|x|/2.4) is ≤ 0 on
/// every step. Where the bundle values a failure at 0 (RQL as written), resq says, before
/// learning and in the report, what to write instead; at the default `failure_value = "worst"`
/// failing escapes nothing and there is nothing to say. The soft prior, which never fails, gets
/// no such warning either way.
#[test]
fn a_pure_penalty_on_a_robot_that_falls_is_named_before_learning() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_dqn_cartpole(dir.path());
    let zero = ["residual.failure_value=0.0".to_string()];
    let run = |b: Bundle| {
        let out = tempfile::tempdir().unwrap();
        let opts = Options { fresh: true, eval_episodes: Some(5), ..Options::new(200, 0, out.path()) };
        let o = customize::outcome_of(customize::run(b, &opts)).unwrap();
        (o.prior_early_failures, resq::session::report::warnings(&o).join("\n"))
    };
    let (early, w) = run(Bundle::load_with(dir.path(), &zero).unwrap());
    assert!(early > 0, "the sampled DQN dropped the pole in none of its episodes");
    assert!(
        w.contains("ending an episode early escapes a pure penalty")
            && w.contains("failure_value = 0")
            && w.contains("add a constant"),
        "{w}"
    );
    let (early, w) = run(Bundle::load(dir.path()).unwrap());
    assert!(early > 0);
    assert!(!w.contains("pure penalty"), "{w}");
    let (early, w) = run(Bundle::load_with(&root().join("models/cartpole"), &zero).unwrap());
    assert_eq!(early, 0);
    assert!(!w.contains("pure penalty"), "{w}");
}

/// A failed episode's end is worth the add-on's worst, forever (`[residual] failure_value =
/// "worst"`, the default): the learner's last reward of an episode that dropped the pole is
/// `r_R + γ·min(0, r_lo)/(1−γ)`, `r_lo` the lowest add-on seen; with `failure_value = 0` it is
/// the add-on alone. The SB3 DQN sampled at temperature 1 drops the pole in some episodes; the
/// warm-up is longer than the run, so every transition is in the replay as acted.
#[test]
fn a_failed_episode_ends_at_the_addons_worst_forever() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_dqn_cartpole(dir.path());
    let terminal_rewards = |value: &str| {
        let b = Bundle::load_with(
            dir.path(),
            &["learning.warmup=5000".to_string(), format!("residual.failure_value={value}")],
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let opts = Options { fresh: true, eval_episodes: Some(1), ..Options::new(3000, 0, out.path()) };
        let o = customize::outcome_of(customize::run(b, &opts)).unwrap();
        let r = &o.learner.core().replay;
        let n = r.written as usize;
        assert!(n >= 2900, "{n} transitions kept");
        // (lowest add-on before the terminal step, the learner's reward of that step)
        let mut lo = 0.0f32;
        let mut ends = Vec::new();
        for i in 0..n {
            if r.terminal[i] {
                ends.push((lo, r.reward[i]));
            } else {
                assert!(r.reward[i] >= -1.1 && r.reward[i] <= 0.0, "step {i}: {}", r.reward[i]);
                lo = lo.min(r.reward[i]);
            }
        }
        ends
    };
    let worst = terminal_rewards("\"worst\"");
    assert!(!worst.is_empty(), "the sampled DQN never dropped the pole");
    for (lo, r) in &worst {
        // r = r_R + 0.99·min(lo, r_R)/0.01 with r_R in [−1.1, 0].
        assert!(*r <= 99.0 * lo + 1e-3 && *r >= 99.0 * lo.min(-1.1) - 1.1, "lo {lo}: {r}");
        assert!(*r < -20.0, "lo {lo}: {r}");
    }
    let zero = terminal_rewards("0.0");
    assert_eq!(zero.len(), worst.len(), "the same episodes (the learner did not act)");
    assert!(zero.iter().all(|(_, r)| (-1.1..=0.0).contains(r)), "{zero:?}");
}
