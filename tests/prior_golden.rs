//! The prior against onnxruntime: golden inputs and outputs written by the scripts that exported
//! each model (onnxruntime computed the outputs), compared with what resq computes — on its own
//! kernels for dense graphs, through tract otherwise.

use std::path::{Path, PathBuf};

use resq::prior::{Prior, PriorKind};

#[derive(serde::Deserialize)]
struct Golden {
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(path: &Path) -> Golden {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Largest |resq − onnxruntime| / (1 + |onnxruntime|) over the golden set.
fn worst(prior: &mut Prior, g: &Golden) -> f32 {
    let mut out = vec![0.0; prior.n_actions];
    let mut worst = 0.0f32;
    assert!(!g.inputs.is_empty());
    for (x, y) in g.inputs.iter().zip(&g.outputs) {
        prior.raw(x, &mut out).unwrap();
        for (a, b) in out.iter().zip(y) {
            worst = worst.max((a - b).abs() / (1.0 + b.abs()));
        }
    }
    worst
}

#[test]
fn cartpole_prior_matches_onnxruntime() {
    for bundle in ["models/cartpole", "models/cartpole-bc"] {
        let dir = root().join(bundle);
        let g = golden(&dir.join("prior_golden.json"));
        let mut prior = Prior::load(&dir.join("prior.onnx"), PriorKind::DiscreteLogits, 4, 2).unwrap();
        assert!(prior.is_realtime_safe(), "{bundle}: the exported MLP should compile to resq's kernels");
        let w = worst(&mut prior, &g);
        assert!(w < 1e-5, "{bundle}: resq differs from onnxruntime by {w:e}");
    }
}

#[test]
fn matmul_add_tanh_chain_compiles_and_matches_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("dense_matmul_tanh.onnx"), PriorKind::DiscreteLogits, 4, 2).unwrap();
    assert!(prior.is_realtime_safe());
    let w = worst(&mut prior, &golden(&d.join("dense_matmul_tanh_golden.json")));
    assert!(w < 1e-5, "{w:e}");
}

#[test]
fn non_dense_graph_runs_through_tract_and_matches_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("logsoftmax_head.onnx"), PriorKind::DiscreteLogits, 4, 3).unwrap();
    assert!(!prior.is_realtime_safe(), "a LogSoftmax head is not a dense chain");
    assert!(prior.fallback_reason.as_deref().unwrap().contains("LogSoftmax"));
    let g = golden(&d.join("logsoftmax_head_golden.json"));
    let w = worst(&mut prior, &g);
    assert!(w < 1e-5, "{w:e}");
    // log π0 of a logits prior is log_softmax(logits); the head already outputs log-probs.
    let mut lp = vec![0.0; 3];
    prior.log_probs(&g.inputs[0], &mut lp).unwrap();
    for (a, b) in lp.iter().zip(&g.outputs[0]) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn discrete_q_log_probs_are_a_tempered_log_softmax() {
    let d = root().join("tests/data/onnx");
    let t = 0.3;
    let mut prior =
        Prior::load(&d.join("dense_matmul_tanh.onnx"), PriorKind::DiscreteQ { temperature: t }, 4, 2)
            .unwrap();
    let g = golden(&d.join("dense_matmul_tanh_golden.json"));
    let mut lp = vec![0.0; 2];
    for (x, q) in g.inputs.iter().zip(&g.outputs) {
        prior.log_probs(x, &mut lp).unwrap();
        let (a, b) = (q[0] / t, q[1] / t);
        let m = a.max(b);
        let lse = m + ((a - m).exp() + (b - m).exp()).ln();
        assert!((lp[0] - (a - lse)).abs() < 1e-5 && (lp[1] - (b - lse)).abs() < 1e-5);
    }
}
