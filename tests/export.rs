//! `resq export`: the customized policy as one ONNX file, run by onnxruntime, matches resq's own
//! outputs on recorded states to 1e-5 (relative to 1 + |value|): residual soft Q and RPG on
//! CartPole (log-probabilities, greedy action, command), residual SAC on MountainCar (squashed
//! Gaussian), RPG on the plain-Gaussian Pendulum prior and residual SAC on the deterministic one
//! (greedy command, mean and log-std). The sampled method is refused with a reason.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rand::SeedableRng;
use resq::algo::core::ResidualLearner;
use resq::control::{ActMode, Controller, PolicyChoice};
use resq::robot::{Env, SimEnv};
use resq::session::customize::{self, Options};
use resq::Bundle;

fn load(name: &str, overrides: &[&str]) -> Bundle {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    Bundle::load_with(&dir, &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

/// A short customization, so that the exported heads are not zero (learning from step 100,
/// whatever the bundle's warm-up).
fn learned(name: &str, overrides: &[&str], steps: u64) -> Box<dyn ResidualLearner + Send> {
    let out = tempfile::tempdir().unwrap();
    let opts = Options { eval_episodes: Some(1), ..Options::new(steps, 0, out.path()) };
    let overrides: Vec<&str> = ["learning.warmup=100"].into_iter().chain(overrides.iter().copied()).collect();
    let o = customize::run(load(name, &overrides), &opts).unwrap();
    assert!(o.updates > 0, "{name}: the heads learned something");
    o.learner
}

/// onnxruntime's outputs of `model` on `obs` (via scripts/run_onnx.py in the test venv).
fn onnxruntime(model: &Path, obs: &[Vec<f32>]) -> serde_json::Value {
    let python = common::python("onnxruntime: the independent check of every export");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run_onnx.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::json!({ "obs": obs }).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "onnxruntime: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(what: &str, ours: f32, theirs: f64) -> f64 {
    close_at(what, ours, theirs, 0.0)
}

/// As [`close`], relative to the largest of `theirs` and `scale`: a log-softmax of logits as
/// large as `scale` is computed by either side to about f32's precision times `scale`, however
/// small the result (a residual that learned a failure's value, −100 in add-on units, has
/// logits that large; its log-probabilities are their differences).
fn close_at(what: &str, ours: f32, theirs: f64, scale: f64) -> f64 {
    let err = (ours as f64 - theirs).abs() / (1.0 + theirs.abs().max(scale));
    assert!(err <= 1e-5, "{what}: resq {ours} vs onnxruntime {theirs} (logits up to {scale})");
    err
}

/// Exports, drives the simulated robot greedily with resq, and compares every output.
fn exported_policy_matches_resq(name: &str, overrides: &[&str], steps: u64) {
    let learner = learned(name, overrides, steps);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.onnx");
    let e = resq::store::export::export(&load(name, overrides), learner.as_ref(), &path).unwrap();
    assert_eq!(e.inputs, vec!["obs".to_string()]);

    let b = load(name, overrides);
    let plant = b.sim_plant.clone().unwrap();
    let mut ctl = Controller::with_learner(b, learner.as_ref());
    let mut env = SimEnv::new(&plant, 200, 5).unwrap();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
    env.reset().unwrap();
    let (mut obs, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let d = ctl.step(env.signals(), PolicyChoice::Customized, ActMode::Greedy, &mut rng);
        assert!(!d.fallback);
        obs.push(ctl.obs.clone());
        let params = ctl.continuous.as_ref().map(|sa| sa.policy.clone());
        // The largest logit `(Q_R + ω'·log π0)/α̂` the discrete policy was a softmax of.
        let (w, a) = ctl.bundle.acting_weights();
        let logits = ctl.q_r.iter().zip(&ctl.logp0).map(|(q, l)| ((q + w * l) / a).abs() as f64);
        let scale = logits.filter(|v| v.is_finite()).fold(0.0, f64::max);
        ours.push((d.action, ctl.log_pi.clone(), ctl.command.clone(), params, scale));
        if env.step(&ctl.command.clone()).unwrap().done() {
            env.reset().unwrap();
        }
    }
    let theirs = onnxruntime(&path, &obs);
    let row = |key: &str, i: usize| -> Vec<f64> {
        theirs[key][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let mut worst = 0.0f64;
    for (i, (action, log_pi, command, params, scale)) in ours.iter().enumerate() {
        for (j, c) in command.iter().enumerate() {
            worst = worst.max(close(&format!("{name} state {i} command {j}"), *c, row("command", i)[j]));
        }
        match params {
            None => {
                assert_eq!(theirs["action"][i].as_u64().unwrap() as usize, *action, "{name} state {i}");
                for (j, l) in log_pi.iter().enumerate() {
                    let what = format!("{name} state {i} log π̂ {j}");
                    worst = worst.max(close_at(&what, *l, row("log_probs", i)[j], *scale));
                }
            }
            Some(p) => {
                let ad = p.len() / 2;
                for j in 0..ad {
                    worst = worst.max(close(&format!("{name} state {i} mean {j}"), p[j], row("mean", i)[j]));
                    worst = worst.max(close(
                        &format!("{name} state {i} log_std {j}"),
                        p[ad + j],
                        row("log_std", i)[j],
                    ));
                }
            }
        }
    }
    eprintln!(
        "{name} {overrides:?}: {} states, {} nodes, largest relative difference {worst:e}",
        obs.len(),
        e.nodes
    );
}

#[test]
fn residual_soft_q_on_cartpole() {
    exported_policy_matches_resq("cartpole", &[], 700);
}

/// A prior that outputs probabilities (cartpole-bc's logits behind a Softmax, kind
/// `discrete_probs`): the exported policy takes their log.
#[test]
fn residual_soft_q_on_a_softmax_prior() {
    exported_policy_matches_resq(
        "cartpole-bc",
        &["prior.file=\"../../tests/data/onnx/cartpole_bc_softmax.onnx\"", "prior.kind=\"discrete_probs\""],
        700,
    );
}

#[test]
fn rpg_on_cartpole() {
    exported_policy_matches_resq("cartpole-rpg", &[], 1100);
}

#[test]
fn residual_sac_on_mountaincar() {
    exported_policy_matches_resq("mountaincar", &[], 1200);
}

#[test]
fn rpg_on_a_plain_gaussian_prior() {
    exported_policy_matches_resq("pendulum-gaussian", &["residual.method=\"rpg\""], 1100);
}

#[test]
fn residual_sac_on_a_deterministic_prior() {
    exported_policy_matches_resq("pendulum-bc", &[], 1200);
}

#[test]
fn the_sampled_method_is_refused_with_its_reason() {
    let b = load("mountaincar", &["residual.method=\"sampled\""]);
    let learner = customize::make_learner(&b, 0);
    let err = resq::store::export::export(&b, learner.as_ref(), Path::new("/nonexistent/policy.onnx"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("random draws from the prior"), "{err}");
}

#[test]
fn the_command_line_exports_a_run_and_says_how_when_there_is_none() {
    let resq = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_resq"))
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .output()
            .unwrap()
    };
    let run = tempfile::tempdir().unwrap();
    let run_dir = run.path().to_str().unwrap();
    let o = resq(&[
        "customize",
        "models/cartpole",
        "--steps",
        "600",
        "--fresh",
        "--quiet",
        "--episodes",
        "1",
        "--out",
        run_dir,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let onnx = run.path().join("policy.onnx");
    let o = resq(&["export", "models/cartpole", "--from", run_dir, "--out", onnx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("600 steps") && said.contains("outputs log_probs, action, command"), "{said}");
    assert!(onnx.metadata().unwrap().len() > 1000);

    let empty = tempfile::tempdir().unwrap();
    let o = resq(&["export", "models/cartpole", "--from", empty.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no checkpoint at") && err.contains("resq customize models/cartpole"), "{err}");
}

/// Priors whose nodes are unnamed (onnx.helper's MatMul+Add+Tanh chain, as many exporters
/// leave them) export to a file onnxruntime loads and agrees with, as named ones (SB3's PPO
/// actor: Cast, Flatten, Gemm, Tanh) do. An export of unnamed nodes once wrote them all as
/// `prior/`, which onnxruntime refuses ("two nodes with same node name"). (The other graph
/// styles are exported by the tests above: Gemm/Relu soft-Q and BC priors, SAC and Gaussian
/// actors with two heads.)
#[test]
fn priors_of_every_graph_style_export_to_files_onnxruntime_loads() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
    for file in ["dense_matmul_tanh.onnx", "sb3_ppo_cartpole.onnx"] {
        let prior = format!("prior.file={:?}", data.join(file).to_str().unwrap());
        // (A made-up prior drops the pole at once: nothing here is about keeping the task.)
        exported_policy_matches_resq("cartpole-bc", &[&prior, "safety.failed_episodes_stop=0"], 1_000);
    }
}
