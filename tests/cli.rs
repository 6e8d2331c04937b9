//! The `resq` command line as a user's shell runs it.

mod common;

use std::path::Path;
use std::process::Stdio;

/// `resq check models/cartpole | head -2` must end quietly when the reader stops reading: here
/// the reader (`true`) is gone before resq writes a byte, so every write meets a closed pipe.
/// It used to panic ("failed printing to stdout: Broken pipe").
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let mut resq = common::resq_command();
    let mut child =
        resq.arg("check").arg(&bundle).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Close the read end before resq has loaded the bundle (it prints only after that).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "a panic's exit code: {stderr}");
}

/// `resq customize --help` names the simulated robot the bundle says (`[sim]`), not a built-in
/// one only.
#[test]
fn customize_help_speaks_of_the_bundles_simulated_robot() {
    let out = common::resq_command().args(["customize", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("the bundle's simulated robot"), "{help}");
    assert!(!help.contains("on the built-in simulated robot"), "{help}");
}

/// `resq customize --record PATH` records every training tick, as `resq run` does: the file
/// holds one tick per training step, with the bundle's names, and `resq inspect` reads it.
#[test]
fn customize_records_every_training_tick_when_asked() {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("ticks.mcap");
    let out = common::resq_command()
        .arg("customize")
        .arg(&bundle)
        .args(["--fresh", "--quiet", "--steps", "300", "--episodes", "1", "--out"])
        .arg(dir.path().join("run"))
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("record: 300 ticks written, 0 dropped"), "{stdout}");
    let s = resq::store::record::inspect(&record).unwrap();
    assert_eq!(s.ticks, 300);
    let shown = common::resq_command().arg("inspect").arg(&record).output().unwrap();
    assert!(shown.status.success() && String::from_utf8_lossy(&shown.stdout).contains("300"));
    // The header names the manifest and the prior the record was made with.
    let b = resq::Bundle::load(&bundle).unwrap();
    let prior_hash = resq::store::checkpoint::fnv1a64(&std::fs::read(bundle.join("prior.onnx")).unwrap());
    assert_eq!(s.meta.manifest_fnv1a64, resq::store::checkpoint::manifest_hash(&b.manifest_text));
    assert_eq!(s.meta.prior_fnv1a64, prior_hash);

    // A prior tempered to near chance drops the pole within a few dozen steps: every episode of
    // 300 steps ends by a termination (the time limit is 500), and the record says so.
    let record = dir.path().join("falls.mcap");
    let out = common::resq_command()
        .arg("customize")
        .arg(&bundle)
        .args(["--fresh", "--quiet", "--steps", "300", "--episodes", "1", "--set", "prior.temperature=100.0"])
        .args(["--set", "safety.failed_episodes_stop=0", "--out"])
        .arg(dir.path().join("falls"))
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = resq::store::record::inspect(&record).unwrap();
    assert!(s.episodes_ended >= 5, "{} episodes ended", s.episodes_ended);
    // Another manifest (an override), the same prior.
    assert_ne!(s.meta.manifest_fnv1a64, resq::store::checkpoint::manifest_hash(&b.manifest_text));
    assert_eq!(s.meta.prior_fnv1a64, prior_hash);
    assert_eq!(s.episodes_terminated, s.episodes_ended);
    let shown = common::resq_command().arg("inspect").arg(&record).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(&format!("({} by a termination)", s.episodes_ended)), "{shown}");

    // Each tick holds log π of the command sent, as drawn. Before the first update (the warm-up
    // is 1 000 steps) and at ω' = α̂ the policy is the prior, so it is the recorded log π0 of
    // the recorded action: read back by the independent reader (scripts/read_record.py).
    let python = common::python("mcap, mcap-protobuf-support: reads records as Foxglove does");
    let read = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_record.py"))
        .arg(&record)
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let ticks: Vec<serde_json::Value> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .skip(1) // the meta message
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ticks.len(), 300);
    let num = |v: Option<&serde_json::Value>| v.map_or(0.0, |v| v.as_f64().unwrap());
    for t in &ticks {
        // proto3 leaves out zero values: an absent action is the first label.
        let a = usize::from(t.get("action").and_then(|a| a.as_str()) == Some("right"));
        let logp0 = num(t["logp0"].as_array().unwrap().get(a));
        let logpi = num(t.get("logpi"));
        assert!((logpi - logp0).abs() < 1e-5 && logpi < 0.0, "{t}");
    }
}
