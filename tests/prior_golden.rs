//! The prior against onnxruntime: golden inputs and outputs written by the scripts that exported
//! each model (onnxruntime computed the outputs), compared with what resq computes — on its own
//! kernels for dense graphs, through tract otherwise.

use std::path::{Path, PathBuf};

use resq::policy::prior::{Prior, PriorKind};

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
fn discrete_priors_match_onnxruntime() {
    for (bundle, n_obs, n_act) in [
        ("models/cartpole", 4, 2),
        ("models/cartpole-bc", 4, 2),
        ("models/cartpole-256", 4, 2),
        ("models/mountaincar-discrete", 2, 3),
    ] {
        let dir = root().join(bundle);
        let g = golden(&dir.join("prior_golden.json"));
        let mut prior =
            Prior::load(&dir.join("prior.onnx"), PriorKind::DiscreteLogits, n_obs, n_act).unwrap();
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

/// An exporter's dressing around a dense net — a no-op float Cast, input normalisation
/// `(x − mean)/std`, Elu and Softplus, an output scale, a dynamic batch — compiles to resq's
/// kernels (the constants folded into the dense layers) and matches onnxruntime.
#[test]
fn normalisation_casts_elu_softplus_and_an_output_scale_compile_and_match_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior =
        Prior::load(&d.join("normalized_elu_softplus.onnx"), PriorKind::DiscreteLogits, 4, 3).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let w = worst(&mut prior, &golden(&d.join("normalized_elu_softplus_golden.json")));
    eprintln!("normalized_elu_softplus: worst relative difference from onnxruntime {w:e}");
    assert!(w < 1e-5, "{w:e}");
}

/// PyTorch's exports of SiLU (Sigmoid + Mul), GELU (the erf form at opset 17: Div, Erf, Add,
/// Mul, Mul) and the opset-20 `Gelu` operator (exact and tanh) compile to resq's kernels and
/// match onnxruntime (scripts/make_torch_test_models.py).
#[test]
fn silu_and_gelu_exports_compile_and_match_onnxruntime() {
    let d = root().join("tests/data/onnx");
    for name in ["torch_silu_gelu", "torch_gelu_op20"] {
        let mut prior =
            Prior::load(&d.join(format!("{name}.onnx")), PriorKind::DiscreteLogits, 4, 3).unwrap();
        assert!(prior.is_realtime_safe(), "{name}: {:?}", prior.fallback_reason);
        let w = worst(&mut prior, &golden(&d.join(format!("{name}_golden.json"))));
        eprintln!("{name}: worst relative difference from onnxruntime {w:e}");
        assert!(w < 1e-5, "{name}: {w:e}");
    }
}

/// A PyTorch export ending in `Softmax` (a sharp policy: probabilities down to 2e-18) compiles
/// to resq's kernels with a stable softmax head for kind `discrete_probs`, matches onnxruntime,
/// and gives `log π0 = ln p`. Declared `discrete_logits`, it is refused with the fix.
#[test]
fn a_softmax_head_is_a_discrete_probs_prior() {
    let d = root().join("tests/data/onnx");
    let path = d.join("torch_softmax_head.onnx");
    let mut prior = Prior::load(&path, PriorKind::DiscreteProbs, 4, 3).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let g = golden(&d.join("torch_softmax_head_golden.json"));
    let w = worst(&mut prior, &g);
    assert!(w < 1e-5, "{w:e}");
    let mut lp = vec![0.0; 3];
    for (x, p) in g.inputs.iter().zip(&g.outputs) {
        prior.log_probs(x, &mut lp).unwrap();
        for (a, p) in lp.iter().zip(p) {
            let want = (*p as f64).ln() as f32;
            assert!((a - want).abs() <= 1e-4 * (1.0 + want.abs()), "log π0 {a} vs ln p {want}");
        }
    }
    for kind in [PriorKind::DiscreteLogits, PriorKind::DiscreteQ { temperature: 1.0 }] {
        let e = Prior::load(&path, kind, 4, 3).err().expect("refused").to_string();
        assert!(e.contains("prior.kind") && e.contains("Softmax") && e.contains("discrete_probs"), "{e}");
    }
}

#[test]
fn a_log_softmax_head_compiles_and_matches_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("logsoftmax_head.onnx"), PriorKind::DiscreteLogits, 4, 3).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
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

/// A sharp policy's log-softmax head (logits hundreds apart, opset 20): tract's `ln(softmax)`
/// is −∞ where onnxruntime's log-probabilities are finite (down to −244 here); resq computes the
/// head stably and matches onnxruntime everywhere.
#[test]
fn a_sharp_log_softmax_head_is_finite_where_onnxruntime_is() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("logsoftmax_extreme.onnx"), PriorKind::DiscreteLogits, 4, 3).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let g = golden(&d.join("logsoftmax_extreme_golden.json"));
    let mut out = vec![0.0f32; 3];
    let tract_infinite = g
        .inputs
        .iter()
        .filter(|x| {
            prior.tract().run(x, &mut out).unwrap();
            out.contains(&f32::NEG_INFINITY)
        })
        .count();
    assert!(tract_infinite > 0, "the golden inputs exercise tract's underflow");
    let w = worst(&mut prior, &g);
    eprintln!(
        "logsoftmax_extreme: tract -inf on {tract_infinite} of {} inputs; resq vs onnxruntime {w:e}",
        g.inputs.len()
    );
    assert!(w < 1e-5, "{w:e}");
}

/// A SAC-style actor — mean and log-std Gemm heads on one trunk, the log-std behind a Clip
/// (active on 43 of the 64 golden values) — compiles to resq's kernels with the clip as a clamp,
/// and matches onnxruntime.
#[test]
fn clipped_gaussian_heads_compile_and_match_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("clipped_gaussian_heads.onnx"), PriorKind::Gaussian, 3, 2).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let g = golden(&d.join("clipped_gaussian_heads_golden.json"));
    let mut out = vec![0.0f32; 4];
    let mut worst = 0.0f32;
    for (x, y) in g.inputs.iter().zip(&g.outputs) {
        prior.raw(x, &mut out).unwrap();
        for (a, b) in out.iter().zip(y) {
            worst = worst.max((a - b).abs() / (1.0 + b.abs()));
        }
    }
    assert!(worst < 1e-5, "{worst:e}");
}

/// A graph that is not a dense chain runs through tract, and the reason names the node.
#[test]
fn a_graph_that_is_not_a_dense_chain_says_which_node() {
    let d = root().join("tests/data/onnx");
    let prior = Prior::load(&d.join("nan_when_x_negative.onnx"), PriorKind::DiscreteLogits, 4, 2).unwrap();
    assert!(!prior.is_realtime_safe());
    let why = prior.fallback_reason.unwrap();
    assert!(why.contains("node `") && (why.contains("Slice") || why.contains("Sqrt")), "{why}");
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

#[derive(serde::Deserialize)]
struct GaussianGolden {
    inputs: Vec<Vec<f32>>,
    mean: Vec<Vec<f32>>,
    log_std: Vec<Vec<f32>>,
    actions: Vec<Vec<Vec<f32>>>,
    log_prob_f64: Vec<Vec<f64>>,
}

/// Loads a one-action Gaussian prior and its golden file; returns the worst relative differences
/// of `[mean, log_std]` from onnxruntime's and of `log π0` from torch's.
/// Worst relative errors of an `n_act`-dimensional Gaussian prior: its `[mean, log_std]` against
/// onnxruntime's, and `log π0(a|s)` against torch's (float64).
fn gaussian_worst(onnx: &Path, golden: &Path, kind: PriorKind, n_obs: usize, n_act: usize) -> (f32, f64) {
    let g: GaussianGolden = serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let mut prior = Prior::load(onnx, kind, n_obs, n_act).unwrap();
    assert!(prior.is_realtime_safe(), "{}: {:?}", onnx.display(), prior.fallback_reason);
    let fam = kind.family().unwrap();
    let (mut raw, mut worst_raw, mut worst_lp) = (vec![0.0f32; 2 * n_act], 0.0f32, 0.0f64);
    for (i, x) in g.inputs.iter().enumerate() {
        prior.raw(x, &mut raw).unwrap();
        assert_eq!((g.mean[i].len(), g.log_std[i].len()), (n_act, n_act));
        for j in 0..n_act {
            let (m, l) = (g.mean[i][j], g.log_std[i][j]);
            worst_raw = worst_raw.max((raw[j] - m).abs() / (1.0 + m.abs()));
            worst_raw = worst_raw.max((raw[n_act + j] - l).abs() / (1.0 + l.abs()));
        }
        for (a, want) in g.actions[i].iter().zip(&g.log_prob_f64[i]) {
            let lp = fam.log_prob(&g.mean[i], &g.log_std[i], a) as f64;
            worst_lp = worst_lp.max((lp - want).abs() / (1.0 + want.abs()));
        }
    }
    (worst_raw, worst_lp)
}

/// SAC actors (two Gemm heads, mean and log-std, on one trunk) compile to resq's kernels and
/// match onnxruntime; `log π0(a|s)` of the squashed Gaussian matches PyTorch's distributions
/// (golden values from scripts/train_sac_prior.py, `log_prob_f64`: resq computes it in f64),
/// including actions at ±1 and log-stds outside the clamp.
#[test]
fn squashed_gaussian_priors_match_onnxruntime_and_torch() {
    // The Reacher and HalfCheetah priors have 2 and 6 action dimensions. HalfCheetah's layers are
    // 256 wide (the others 64): float32 sums in another order differ by up to 1.7e-5 there.
    for (bundle, n_obs, n_act, tol) in [
        ("models/mountaincar", 2, 1, 1e-5),
        ("models/pendulum", 3, 1, 1e-5),
        ("models/reacher", 10, 2, 1e-5),
        ("models/halfcheetah", 17, 6, 5e-5),
    ] {
        let dir = root().join(bundle);
        let (worst_raw, worst_lp) = gaussian_worst(
            &dir.join("prior.onnx"),
            &dir.join("prior_golden.json"),
            PriorKind::SquashedGaussian,
            n_obs,
            n_act,
        );
        assert!(worst_raw < tol, "{bundle}: mean/log_std differ from onnxruntime by {worst_raw:e}");
        assert!(worst_lp < 1e-5, "{bundle}: log π0 differs from torch by {worst_lp:e} (relative)");
    }
}

/// Plain Gaussian actors (PPO-style, exported from PyTorch: a random-weight one, and the
/// pendulum-gaussian bundle's, cloned from demonstrations) compile to resq's kernels, match
/// onnxruntime, and `log π0` of actions inside and beyond the bounds (the density of the
/// unclipped sample) matches `torch.distributions.Normal` (scripts/make_gaussian_priors.py).
#[test]
fn gaussian_prior_matches_onnxruntime_and_torch() {
    let d = root().join("tests/data/onnx");
    let b = root().join("models/pendulum-gaussian");
    for (onnx, golden) in [
        (d.join("gaussian_actor.onnx"), d.join("gaussian_actor_golden.json")),
        (b.join("prior.onnx"), b.join("prior_golden.json")),
    ] {
        let (worst_raw, worst_lp) = gaussian_worst(&onnx, &golden, PriorKind::Gaussian, 3, 1);
        let name = onnx.display();
        assert!(worst_raw < 1e-5, "{name}: mean/log_std differ from onnxruntime by {worst_raw:e}");
        assert!(worst_lp < 1e-6, "{name}: log π0 differs from torch by {worst_lp:e} (relative)");
    }
}

/// Stable-Baselines3's Pendulum actors as SB3 samples from them (scripts/train_sb3_pendulum.py):
/// SAC's squashed Gaussian (256-wide layers) and PPO's Gaussian with its state-independent
/// log-std broadcast to a second output (`zeros_like(mean) + log_std`: Shape, ConstantOfShape,
/// Add), both compiled to resq's kernels. `[mean, log_std]` match onnxruntime, and `log π0` matches
/// SB3's own distribution classes (`SquashedDiagGaussianDistribution`, `DiagGaussianDistribution`,
/// in float64), for SAC's actions near ±1 and PPO's beyond the torque bounds.
#[test]
fn sb3_pendulum_actors_match_onnxruntime_and_sb3() {
    let d = root().join("tests/data/onnx");
    for (name, kind, tol) in [
        ("sb3_sac_pendulum", PriorKind::SquashedGaussian, 5e-5),
        ("sb3_ppo_pendulum", PriorKind::Gaussian, 1e-5),
    ] {
        let (onnx, golden) = (d.join(format!("{name}.onnx")), d.join(format!("{name}_golden.json")));
        let (worst_raw, worst_lp) = gaussian_worst(&onnx, &golden, kind, 3, 1);
        assert!(worst_raw < tol, "{name}: mean/log_std differ from onnxruntime by {worst_raw:e}");
        assert!(worst_lp < 1e-5, "{name}: log π0 differs from SB3's by {worst_lp:e} (relative)");
    }
}

#[derive(serde::Deserialize)]
struct DeterministicGolden {
    exploration_std: f32,
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    actions: Vec<Vec<Vec<f32>>>,
    log_prob_f64: Vec<Vec<f64>>,
}

/// The deterministic (behaviour-cloned) Pendulum prior: loads from its bundle, compiles, matches
/// onnxruntime, and its exploration density `N(a; action, exploration_std)` matches torch.
#[test]
fn deterministic_prior_matches_onnxruntime_and_torch() {
    let dir = root().join("models/pendulum-bc");
    let g: DeterministicGolden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("prior_golden.json")).unwrap()).unwrap();
    let mut b = resq::Bundle::load(&dir).unwrap();
    assert_eq!(b.prior.kind, PriorKind::Deterministic { std: g.exploration_std });
    assert!(b.prior.is_realtime_safe(), "{:?}", b.prior.fallback_reason);
    let fam = b.prior.kind.family().unwrap();
    let log_std = [g.exploration_std.ln()];
    let (mut raw, mut worst_raw, mut worst_lp) = ([0.0f32; 1], 0.0f32, 0.0f64);
    for (i, x) in g.inputs.iter().enumerate() {
        b.prior.raw(x, &mut raw).unwrap();
        worst_raw = worst_raw.max((raw[0] - g.outputs[i][0]).abs() / (1.0 + g.outputs[i][0].abs()));
        for (a, want) in g.actions[i].iter().zip(&g.log_prob_f64[i]) {
            let lp = fam.log_prob(&g.outputs[i], &log_std, a) as f64;
            worst_lp = worst_lp.max((lp - want).abs() / (1.0 + want.abs()));
        }
    }
    assert!(worst_raw < 1e-5, "actions differ from onnxruntime by {worst_raw:e}");
    assert!(worst_lp < 1e-6, "log π0 differs from torch by {worst_lp:e} (relative)");

    // On the robot, the command-unit output becomes a [−1, 1] action variable and back: with a
    // fresh (zero) residual SAC actor, and for the prior alone, the greedy command is the prior's
    // output clipped to the torque limits.
    use resq::control::{ActMode, Controller, PolicyChoice};
    use resq::session::customize::make_learner;
    let b = resq::Bundle::load_with(&dir, &["residual.method=\"sac\"".into()]).unwrap();
    let learner = make_learner(&b, 0);
    let mut ctl = Controller::new(b, learner.core().online.clone());
    ctl.set_actor(learner.actor().unwrap().clone());
    let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(1);
    for (x, out) in g.inputs.iter().zip(&g.outputs) {
        let signals = [x[0], x[1], x[2], 0.0]; // cos θ, sin θ, θ̇, θ (unused by the prior)
        let want = out[0].clamp(-2.0, 2.0);
        for policy in [PolicyChoice::Prior, PolicyChoice::Customized] {
            ctl.step(&signals, policy, ActMode::Greedy, &mut rng);
            assert!((ctl.command[0] - want).abs() < 1e-5, "{policy:?}: command {} vs {want}", ctl.command[0]);
        }
    }
}

/// Stable-Baselines3's DQN export (`scripts/train_sb3_dqn_cartpole.py`, 4-256-256-2 on raw
/// observations) compiles to resq's kernels and matches onnxruntime.
#[test]
fn sb3_dqn_export_compiles_and_matches_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior =
        Prior::load(&d.join("sb3_dqn_cartpole.onnx"), PriorKind::DiscreteQ { temperature: 1.0 }, 4, 2)
            .unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let w = worst(&mut prior, &golden(&d.join("sb3_dqn_cartpole_golden.json")));
    assert!(w < 1e-5, "{w:e}");
}

/// Stable-Baselines3's PPO actor (`scripts/train_sb3_ppo_cartpole.py`: features, tanh trunk and
/// action head, 4-64-64-2 logits on raw observations) compiles to resq's kernels and matches
/// onnxruntime.
#[test]
fn sb3_ppo_actor_compiles_and_matches_onnxruntime() {
    let d = root().join("tests/data/onnx");
    let mut prior = Prior::load(&d.join("sb3_ppo_cartpole.onnx"), PriorKind::DiscreteLogits, 4, 2).unwrap();
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let w = worst(&mut prior, &golden(&d.join("sb3_ppo_cartpole_golden.json")));
    assert!(w < 1e-5, "{w:e}");
}

/// A prior of the RQL authors' shape (4-256-256-2, Gemm/Relu, Q-values up to 250;
/// `scripts/make_wide_prior.py`) loads on resq's kernels: the load check's limit scales with the
/// network's size (`compile_tolerance`: 2.8e-5 here), since two f32 runtimes summing in
/// different orders disagree on it by more than the old fixed 1e-5 — onnxruntime and float64
/// do (1.2e-5). resq stays within that limit of onnxruntime.
#[test]
fn a_wide_deep_prior_loads_on_resqs_kernels() {
    use resq::policy::prior::compile_tolerance;
    let d = root().join("tests/data/onnx");
    let kind = PriorKind::DiscreteQ { temperature: 1.0 };
    let mut prior = Prior::load(&d.join("wide_gemm_relu.onnx"), kind, 4, 2).expect("a wide prior loads");
    assert!(prior.is_realtime_safe(), "{:?}", prior.fallback_reason);
    let limit = compile_tolerance(&[4, 256, 256, 2]);
    assert!((limit - 2.84e-5).abs() < 1e-7, "{limit:e}");
    assert_eq!(
        compile_tolerance(&[4, 16, 2]),
        resq::policy::prior::COMPILE_TOLERANCE,
        "small nets keep 1e-5"
    );
    let w = worst(&mut prior, &golden(&d.join("wide_gemm_relu_golden.json")));
    assert!(w < limit, "resq differs from onnxruntime by {w:e}");
}

/// `[prior] engine = "tract"`: any prior can be run through tract on the user's word (it
/// allocates: not real-time safe, and `resq check` says so); its outputs are onnxruntime's.
#[test]
fn a_prior_runs_through_tract_when_the_manifest_asks() {
    use resq::policy::prior::PriorEngine;
    let d = root().join("tests/data/onnx");
    let kind = PriorKind::DiscreteQ { temperature: 1.0 };
    let mut prior = Prior::load_on(&d.join("wide_gemm_relu.onnx"), kind, 4, 2, PriorEngine::Tract).unwrap();
    assert!(!prior.is_realtime_safe());
    assert!(
        prior.fallback_reason.as_deref().is_some_and(|r| r.contains("engine")),
        "{:?}",
        prior.fallback_reason
    );
    let w = worst(&mut prior, &golden(&d.join("wide_gemm_relu_golden.json")));
    assert!(w < 2e-5, "tract differs from onnxruntime by {w:e}");
}

/// A LogSoftmax-ended prior declared `discrete_q` is refused (its outputs are log-probabilities,
/// not Q-values), naming `prior.kind` and the fix, as a Softmax-ended one is.
#[test]
fn a_log_softmax_prior_declared_as_q_values_is_refused() {
    let d = root().join("tests/data/onnx");
    let e = Prior::load(&d.join("logsoftmax_head.onnx"), PriorKind::DiscreteQ { temperature: 1.0 }, 4, 3)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("prior.kind") && e.contains("LogSoftmax") && e.contains("discrete_logits"), "{e}");
}
