//! Offline customization, `resq learn <bundle> --from <record>` (`session::offline`), as a
//! user's shell runs it: CartPole "more centre" learned from records of its prior at work, then
//! judged on the simulated robot before it moves one; continued online from the checkpoint;
//! records of another bundle refused; a cut record learned from up to the cut.

mod common;

use std::path::{Path, PathBuf};

const RECORD_STEPS: &str = "20000";
/// Fewer than the default (16 a transition): enough on these records (docs/results/offline.md).
const UPDATES: &str = "60000";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs `resq` with `args`; panics with its output if it fails.
fn resq(args: &[&str]) -> String {
    let out = common::resq_command().args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "resq {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Runs `resq` with `args`, which must fail; its stderr.
fn resq_err(args: &[&str]) -> String {
    let out = common::resq_command().args(args).output().unwrap();
    assert!(!out.status.success(), "resq {args:?} should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Records the bundle's prior acting alone for `RECORD_STEPS` steps (`extra`: more options).
fn record_prior(bundle: &Path, dir: &Path, name: &str, seed: u64, extra: &[&str]) -> PathBuf {
    let record = dir.join(format!("{name}.mcap"));
    let out = dir.join(format!("{name}-run"));
    let mut args =
        vec!["customize", bundle.to_str().unwrap(), "--prior-only", "--steps", RECORD_STEPS, "--quiet"];
    let seed = seed.to_string();
    args.extend(["--seed", &seed, "--episodes", "2", "--out", out.to_str().unwrap()]);
    args.extend(["--record", record.to_str().unwrap()]);
    args.extend(extra);
    let shown = resq(&args);
    assert!(shown.contains(&format!("record: {RECORD_STEPS} ticks written, 0 dropped")), "{shown}");
    record
}

/// `resq learn` of `bundle` from `record` into `out` with `UPDATES` updates; what it printed.
fn learn(bundle: &Path, record: &Path, out: &Path, seed: u64) -> String {
    let s = seed.to_string();
    let (b, r, o) = (bundle.to_str().unwrap(), record.to_str().unwrap(), out.to_str().unwrap());
    resq(&["learn", b, "--from", r, "--updates", UPDATES, "--seed", &s, "--quiet", "--out", o])
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Mean |x| customized over prior, and the customized success rate.
fn ratio(r: &serde_json::Value) -> (f64, f64) {
    let x = |k: &str| r[k]["mean_abs_x"].as_f64().unwrap();
    (x("customized") / x("prior"), r["customized"]["success_rate"].as_f64().unwrap())
}

/// From 20 000 recorded steps of the prior, sampled as deployed: the policy learned offline alone
/// meets mean |x| ≤ 0.6× the prior's with its task kept, every tick learned from, and 500 robot
/// steps online from its checkpoint meet ≤ 0.5× (online alone needs 1 000–2 000).
#[test]
fn cartpole_learned_from_records_of_its_prior_then_online() {
    let bundle = root().join("models/cartpole");
    let dir = tempfile::tempdir().unwrap();
    let seed = common::seed(0);
    let record = record_prior(&bundle, dir.path(), "prior", seed, &[]);
    let out = dir.path().join("learned");
    let shown = learn(&bundle, &record, &out, seed);
    assert!(shown.contains("20000 transitions learned from") && shown.contains("0 skipped"), "{shown}");
    let r = report(&out.join("report.json"));
    assert_eq!(r["offline"]["counts"]["transitions"], 20000);
    let support = r["offline"]["action_support"].as_f64().unwrap();
    assert!(support > 0.5 && support < 1.0, "sampled records support {support} of the actions");
    let (offline, success) = ratio(&r);
    common::figure("offline alone, mean |x| over the prior's", offline, "<=", 0.6);
    assert!(offline <= 0.6 && success >= 0.95, "offline: {offline:.3}x, success {success}");

    // Online from the checkpoint `resq learn` wrote.
    let s = seed.to_string();
    resq(&[
        "customize",
        bundle.to_str().unwrap(),
        "--steps",
        "500",
        "--seed",
        &s,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (online, success) = ratio(&report(&out.join("report.json")));
    common::figure("offline then 500 steps online", online, "<=", 0.5);
    assert!(online <= 0.5 && success >= 0.95, "then online: {online:.3}x, success {success}");
}

/// Records of the prior acting greedily show one action a state: the support constraint keeps
/// the policy at the prior's probabilities elsewhere, so the policy learned from them is never
/// worse than the prior (task kept, metric ≤ 1.05×), and the report says how little of the
/// action space the records support.
#[test]
fn greedy_records_are_never_worse_than_the_prior() {
    let bundle = root().join("models/cartpole");
    let dir = tempfile::tempdir().unwrap();
    let seed = common::seed(0);
    let record = record_prior(&bundle, dir.path(), "greedy", seed, &["--set", "exploration.mode=\"greedy\""]);
    let out = dir.path().join("learned");
    let shown = learn(&bundle, &record, &out, seed);
    assert!(shown.contains("20000 with an action no policy drew"), "{shown}");
    assert!(shown.contains("the records support 50 % of the action space"), "{shown}");
    let (ratio, success) = ratio(&report(&out.join("report.json")));
    common::figure("greedy records, mean |x| over the prior's", ratio, "<=", 1.05);
    assert!(ratio <= 1.05 && success >= 0.95, "{ratio:.3}x, success {success}");
}

/// A record is learned from only by the bundle that made it: another robot's (other signals)
/// and another prior's (same robot) are refused, naming the record, what differs and the fix;
/// a file that is not a record is named as such. A record cut short (a crash, a full disk) is
/// learned from up to the cut, and the report counts it.
#[test]
fn records_of_another_bundle_are_refused_and_a_cut_one_is_read_to_the_cut() {
    let bundle = root().join("models/cartpole");
    let dir = tempfile::tempdir().unwrap();
    let record = record_prior(&bundle, dir.path(), "prior", 0, &[]);
    let r = record.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();

    let other_robot = root().join("models/mountaincar-discrete");
    let e = resq_err(&["learn", other_robot.to_str().unwrap(), "--from", r, "--out", o, "--quiet"]);
    assert!(e.contains(r) && e.contains("signals") && e.contains("learn from records of"), "{e}");

    let other_prior = root().join("models/cartpole-bc");
    let e = resq_err(&["learn", other_prior.to_str().unwrap(), "--from", r, "--out", o, "--quiet"]);
    assert!(e.contains(r) && e.contains("another prior"), "{e}");

    let junk = dir.path().join("junk.mcap");
    std::fs::write(&junk, b"not a record at all").unwrap();
    let e = resq_err(&[
        "learn",
        bundle.to_str().unwrap(),
        "--from",
        junk.to_str().unwrap(),
        "--out",
        o,
        "--quiet",
    ]);
    assert!(e.contains("junk.mcap") && e.contains("not an MCAP file"), "{e}");

    // The first half of the file: whole chunks up to a cut in the middle of one.
    let bytes = std::fs::read(&record).unwrap();
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let shown = resq(&[
        "learn",
        bundle.to_str().unwrap(),
        "--from",
        cut.to_str().unwrap(),
        "--updates",
        "100",
        "--episodes",
        "1",
        "--out",
        o,
        "--quiet",
    ]);
    let rep = report(&out.join("report.json"));
    let c = &rep["offline"]["counts"];
    assert_eq!(c["records_cut"], 1, "{shown}");
    let (ticks, learned) = (c["ticks"].as_u64().unwrap(), c["transitions"].as_u64().unwrap());
    assert!(ticks > 2000 && ticks < 20000, "{ticks} ticks read before the cut");
    assert!(
        learned + 1 >= ticks && learned <= ticks,
        "{learned} transitions of {ticks} ticks (the last has no s')"
    );
}

/// A record written tick by tick (with the recorder resq's runs use): every tick the robot did
/// not act on as recorded is skipped and counted by why — a late step, a prior fault, a
/// non-finite signal, a command that is no action's, a tick whose successor is missing (a gap,
/// the end of the file), an episode's end without the state it ended on (as records before
/// `end_signals` were) — and the rest are learned from.
#[test]
fn ticks_the_robot_did_not_act_on_as_recorded_are_skipped_and_counted() {
    use resq::control::Decisions as D;
    use resq::session::offline::{learn, OfflineOptions};
    use resq::store::record::{Recorder, TickRecord};

    let root = root().join("models/cartpole");
    let mut prior = resq::Bundle::load(&root).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.mcap");
    let meta = resq::session::customize::record_meta(&prior, "crafted").unwrap();
    let rec = Recorder::start(&path, meta, 64).unwrap();
    // (tick, signals, force, decisions, the state the episode ended on)
    type Crafted = (u64, [f32; 4], f32, u16, Option<[f32; 4]>);
    let s = |x: f32| [x, 0.1, 0.02, -0.1];
    let ticks: [Crafted; 10] = [
        (1, s(0.1), 10.0, 0, None),
        (2, s(0.12), -10.0, D::LATE, None),
        (3, s(0.13), 10.0, D::PRIOR_FAULT, None),
        (4, [f32::NAN, 0.0, 0.0, 0.0], 10.0, 0, None),
        (5, s(0.15), 3.0, 0, None),
        (6, s(0.16), 10.0, 0, None),
        (8, s(0.18), -10.0, 0, None),
        (9, s(0.19), 10.0, D::EPISODE_END | D::TERMINATED, Some(s(2.5))),
        (10, s(0.0), 10.0, D::EPISODE_END, None),
        (11, s(0.01), -10.0, 0, None),
    ];
    for (tick, signals, force, flags, end) in ticks {
        let mut t = TickRecord {
            tick,
            n_signals: 4,
            n_commands: 1,
            n_actions: 2,
            decisions: D(flags),
            ..TickRecord::default()
        };
        t.signals[..4].copy_from_slice(&signals);
        t.command[0] = force;
        t.end_signals[..4].copy_from_slice(&end.unwrap_or([0.0; 4]));
        // The prior's log π0 at these signals, as a run records it.
        let mut obs = vec![0.0; prior.obs.len()];
        prior.obs.observe(&signals, &mut obs);
        let _ = prior.prior.log_probs(&obs, &mut t.logp0[..2]);
        t.logpi = t.logp0[(force > 0.0) as usize];
        assert!(rec.record(&t));
    }
    rec.finish().unwrap();

    let opts = OfflineOptions {
        records: vec![path],
        updates: Some(1),
        seed: 0,
        out_dir: dir.path().join("out"),
        fresh: true,
        eval_episodes: Some(1),
        progress: false,
    };
    // Three transitions are fewer than the learner starts at: said, with the field to set.
    let e = format!(
        "{:#}",
        learn(resq::Bundle::load(&root).unwrap(), &opts).err().expect("too few to learn from")
    );
    assert!(e.contains("3 transitions") && e.contains("learning.warmup"), "{e}");
    // (The learner starting at one.)
    let small = ["learning.warmup=1".to_string(), "learning.batch=1".to_string()];
    let o = learn(resq::Bundle::load_with(&root, &small).unwrap(), &opts).unwrap();
    let c = o.counts;
    assert_eq!(c.ticks, 10);
    assert_eq!(
        (c.transitions, c.late, c.faulted, c.non_finite, c.unlearnable_commands),
        (3, 1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!((c.cut, c.no_end_state), (2, 1), "{c:?}");
}
