//! `resq bench`: every figure is measured and finite (no wall-clock bound is asserted: the
//! machines are shared), on a bundle with a simulated robot, on one without (no learner update,
//! states from the declared ranges), and through the command line with `--json`.

use std::path::Path;

use resq::Bundle;

mod common;
use common::bundles::root;

fn positive(ns: f64, what: &str) {
    assert!(ns.is_finite() && ns > 0.0, "{what}: {ns}");
}

#[test]
fn a_simulated_bundle_gets_every_figure() {
    let dir = root().join("models/cartpole-rpg");
    let scratch = tempfile::tempdir().unwrap();
    let r = resq::cli::bench::run(&|| Ok(Bundle::load(&dir)?), scratch.path(), 0).unwrap();
    eprint!("{}", r.table());
    positive(r.prior_tract.median_ns, "prior, tract");
    positive(r.prior_resq.expect("the CartPole prior compiles").median_ns, "prior, resq");
    positive(r.control_step.median_ns, "control step");
    assert!(r.control_step.p999_ns.unwrap() >= r.control_step.median_ns);
    // The floor reads the weights of the 4-64-64-2 prior and of the 4-64-64-2 residual policy.
    assert_eq!(r.weight_bytes, 4 * 2 * (4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2));
    positive(r.floor.expect("a compiled prior has a floor").median_ns, "floor");
    positive(r.learner_update.expect("an RPG phase was in progress").median_ns, "update");
    positive(r.gemm_gflops, "GEMM");
    assert!(r.peak_rss_mib >= r.rss_mib && r.rss_mib > 0.0);
    let j = r.to_json();
    assert!(j["ratios"]["control_step_vs_tract_prior"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bundle_without_a_simulated_robot_is_measured_without_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("models/cartpole/manifest.toml")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("[sim]") && !l.starts_with("plant ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("manifest.toml"), text).unwrap();
    std::fs::copy(root().join("models/cartpole/prior.onnx"), dir.path().join("prior.onnx")).unwrap();
    let path = dir.path().to_path_buf();
    let scratch = tempfile::tempdir().unwrap();
    let r = resq::cli::bench::run(&|| Ok(Bundle::load(&path)?), scratch.path(), 0).unwrap();
    assert!(r.learner_update.is_none());
    assert!(r.table().contains("not measured: the bundle names no simulated robot"));
    // A CartPole transition: obs and next obs (4 + 4), log π0 at s' (2), reward, log π0 and
    // log π̂ of the action taken (3 floats), the action (u32), terminal and episode-end flags.
    assert_eq!(r.replay_capacity, 50_000);
    assert_eq!(r.replay_bytes, 50_000 * (4 * (4 + 4 + 2 + 3) + 4 + 2));
    positive(r.control_step.median_ns, "control step");
}

#[test]
fn the_command_line_writes_the_json() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("bench.json");
    let status = common::resq_command()
        .args(["bench", "models/cartpole", "--json"])
        .arg(&json)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("control step") && stdout.contains("vs tract prior"), "{stdout}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["prior_tract", "prior_resq", "control_step", "floor", "learner_update"] {
        positive(j[key]["median_ns"].as_f64().unwrap(), key);
    }
    positive(j["gemm"]["gflops"].as_f64().unwrap(), "gemm");
}
