//! End to end on the simulated CartPole: "more centre" (add-on `-abs(x)/2.4`) must halve the
//! prior's mean |x| while ≥ 95 % of evaluation episodes still reach the 500-step limit, within
//! a budget far below the literature's 100 000 environment steps — for the soft-DQN prior and
//! for the behaviour-cloned one. Also: the run checkpoints, and a second run resumes from it.

mod common;

use std::path::Path;

use resq::session::customize::{self, Options, CHECKPOINT_FILE};
use resq::session::report;
use resq::Bundle;

/// Environment steps given to the learner (the literature's budget is 100 000).
const STEPS: u64 = 3_000;
const EVAL_EPISODES: usize = 40;

fn metric(e: &resq::session::evaluate::PolicyEval, name: &str) -> f64 {
    e.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v).expect("metric present")
}

fn customize(bundle: &str, out: &Path, steps: u64) -> customize::Outcome {
    let b = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(bundle)).unwrap();
    let opts = Options { eval_episodes: Some(EVAL_EPISODES), ..Options::new(steps, common::seed(0), out) };
    customize::run(b, &opts).unwrap()
}

fn assert_customized(bundle: &str, o: &customize::Outcome) {
    let (p, c) = (metric(&o.prior, "mean_abs_x"), metric(&o.customized, "mean_abs_x"));
    eprintln!(
        "{bundle}: mean|x| prior {p:.4} customized {c:.4}; reached 500 steps: prior {:.2} customized {:.2}; base return prior {:.1} customized {:.1}",
        o.prior.success_rate,
        o.customized.success_rate,
        o.prior.base_return.unwrap(),
        o.customized.base_return.unwrap()
    );
    common::figure(&format!("{bundle} mean|x| ratio"), c / p, "<=", 0.5);
    common::figure(&format!("{bundle} success"), o.customized.success_rate, ">=", 0.95);
    assert!(c <= 0.5 * p, "{bundle}: customized mean|x| {c:.4} is not ≤ half the prior's {p:.4}");
    assert!(
        o.customized.success_rate >= 0.95,
        "{bundle}: only {:.2} of episodes reach 500 steps",
        o.customized.success_rate
    );
    assert!(!o.diverged);
    assert_eq!(o.customized.fallbacks, 0);
}

#[test]
fn soft_dqn_prior_moves_to_the_centre_and_resumes_from_its_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let first = customize("models/cartpole", out.path(), STEPS);
    assert_eq!(first.env_steps, STEPS);
    assert_customized("models/cartpole", &first);

    // The report has the promised shape.
    let json = report::to_json("cartpole", 0, &first);
    assert_eq!(json["env_steps"], STEPS);
    assert!(
        json["prior"]["mean_abs_x"].as_f64().unwrap() > json["customized"]["mean_abs_x"].as_f64().unwrap()
    );
    // The prior's task was kept: no warning about it.
    assert_eq!(json["warnings"], serde_json::json!([]));

    // The checkpoint is there, with no temporary file left beside it.
    let files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![CHECKPOINT_FILE.to_string()]);

    // Run again: it resumes at STEPS, learns nothing more, and acts exactly as before.
    let again = customize("models/cartpole", out.path(), STEPS);
    assert_eq!(again.resumed_from, STEPS);
    assert_eq!(again.updates, first.updates);
    assert_eq!(again.learner.core().online, first.learner.core().online);
    assert_eq!(metric(&again.customized, "mean_abs_x"), metric(&first.customized, "mean_abs_x"));

    // A larger budget continues from the checkpoint.
    let more = customize("models/cartpole", out.path(), STEPS + 500);
    assert_eq!((more.resumed_from, more.env_steps), (STEPS, STEPS + 500));
    assert!(more.updates > first.updates);
    assert!(more.history.episode_end_step.len() >= first.history.episode_end_step.len());
}

#[test]
fn behaviour_cloned_prior_moves_to_the_centre() {
    let out = tempfile::tempdir().unwrap();
    let o = customize("models/cartpole-bc", out.path(), STEPS);
    assert_customized("models/cartpole-bc", &o);
}

/// A reading outside its declared range (`[[robot.signal]] min/max`) is counted, recorded, and
/// on that tick the prior acts alone; the run goes on. Here the cart's position is declared to
/// stay within ±0.05 m, which it often leaves.
#[test]
fn signals_outside_their_declared_range_are_counted_and_the_prior_acts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(root.join("manifest.toml")).unwrap();
    let anchor = "name = \"x\"\nunit = \"m\"\n";
    assert!(manifest.contains(anchor));
    std::fs::write(
        dir.path().join("manifest.toml"),
        manifest.replace(anchor, &format!("{anchor}min = -0.05\nmax = 0.05\n")),
    )
    .unwrap();
    std::fs::copy(root.join("prior.onnx"), dir.path().join("prior.onnx")).unwrap();
    let b = Bundle::load(dir.path()).unwrap();
    let out = dir.path().join("run");
    let opts = Options {
        eval_episodes: Some(2),
        record: Some(out.join("record.mcap")),
        ..Options::new(1_500, 0, &out)
    };
    let o = customize::run(b, &opts).unwrap();
    assert!(o.signal_faults > 100, "{} ticks out of range", o.signal_faults);
    let s = resq::store::record::inspect(&out.join("record.mcap")).unwrap();
    assert_eq!(s.signal_faults, o.signal_faults, "the record counts them too");
    // Out of range, the prior acted: those ticks are fallbacks.
    assert!(s.fallbacks >= o.signal_faults);
    assert_eq!(o.env_steps, 1_500);
}

/// `--eval-every`: the learning curve evaluates the policy of that moment on the evaluation
/// starts (its point at the last step is the final evaluation, number for number), starts from
/// the prior, is written to `curve.jsonl` as it goes, and the report carries it with the
/// training failures.
#[test]
fn the_learning_curve_evaluates_the_policy_of_its_moment() {
    let out = tempfile::tempdir().unwrap();
    let b = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole")).unwrap();
    let opts = Options { eval_episodes: Some(5), eval_every: 1000, ..Options::new(3000, 0, out.path()) };
    let o = customize::run(b, &opts).unwrap();
    // The CartPole prior keeps every episode to its 500-step limit here, so episodes end on
    // multiples of 1 000.
    let steps: Vec<u64> = o.curve.iter().map(|p| p["env_steps"].as_u64().unwrap()).collect();
    assert_eq!(steps, [1000, 2000, 3000]);
    let last = o.curve.last().unwrap();
    for (k, v) in o.customized.to_map() {
        assert_eq!(last[&k], v, "{k}: the curve's last point is the final evaluation");
    }
    assert_ne!(o.curve[0]["mean_abs_x"], last["mean_abs_x"], "the curve moves as the policy learns");
    let text = std::fs::read_to_string(out.path().join(resq::session::curve::CURVE_FILE)).unwrap();
    assert_eq!(text.lines().count(), 3);

    let json = report::to_json("cartpole", 0, &o);
    let curve = json["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 4);
    assert_eq!(curve[0]["env_steps"], 0);
    assert_eq!(curve[0]["mean_abs_x"], json["prior"]["mean_abs_x"]);
    let t = &json["training"];
    assert_eq!(t["episodes_failed"], 0, "the prior's task held in training: {t}");
    // The prior's rate acting as training acts, measured over `[safety] prior_episodes` (20)
    // whole episodes before learning, and the two the warm-up (1 000 steps) ends; its
    // evaluation (5 episodes here) failed none.
    assert_eq!(t["prior_failure_episodes"], 22);
    assert_eq!(t["prior_failure_rate"], 0.0, "{t}");
    assert_eq!(t["prior_eval_failure_rate"], 0.0);
    assert_eq!(t["prior_eval_episodes"], 5);
    assert!(json["curve_worst"]["success_rate"].as_f64().unwrap() >= 0.95, "{}", json["curve_worst"]);

    // A run that ends past its last point (here, as if it had gone on to step 3 500) ends the
    // report's curve, and so the printed table and the plot, with its final evaluation.
    let mut o = o;
    o.env_steps = 3_500;
    let json = report::to_json("cartpole", 0, &o);
    let curve = json["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 5);
    assert_eq!(curve[4]["env_steps"], 3_500);
    assert_eq!(curve[4]["mean_abs_x"], json["customized"]["mean_abs_x"]);
}
