//! The frozen prior π0, loaded from ONNX with tract.
//!
//! tract validates and optimises the model and stays loaded as the reference. When the graph is
//! a plain dense chain ([`dense::compile`]) resq runs it on its own allocation-free kernels, after
//! checking at load time that both agree on random inputs to `|a − b| ≤ tol·(1 + |b|)`, with
//! `tol` scaled to the network's size ([`compile_tolerance`]); any
//! other graph runs through tract, which allocates on every call and is flagged as not
//! real-time safe.
//!
//! Discrete kinds give `log π0(·|s)`:
//! - `discrete_q` with temperature τ: `log π0 = log_softmax(q / τ)`;
//! - `discrete_logits`: `log π0 = log_softmax(logits)`.
//!
//! Continuous kinds give a diagonal Gaussian; [`gaussian`] holds their families and `log π0(a|s)`.

pub mod dense;
pub mod gaussian;

pub use gaussian::{
    gaussian_log_prob, squashed_gaussian_log_prob, Family, LOG_STD_MAX, LOG_STD_MIN, SQUASH_EPS,
};

use std::path::Path;
use std::sync::Arc;

use log::warn;
use rand::Rng;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::BundleError;
use crate::nn::{Mlp, Scratch};

/// What the prior's network outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PriorKind {
    /// Soft Q-values of a max-ent policy at the given temperature.
    DiscreteQ { temperature: f32 },
    /// Unnormalised log-probabilities.
    DiscreteLogits,
    /// Probabilities (e.g. a final `Softmax`): `log π0 = ln p`, and a 0 masks its action.
    DiscreteProbs,
    /// A tanh-squashed Gaussian (SAC actor): outputs `mean` and `log_std` of `u`, `a = tanh(u)`
    /// in [−1, 1] (scaled to the command range by the bundle).
    SquashedGaussian,
    /// A plain Gaussian (e.g. PPO): outputs `mean` and `log_std` in command units; the sample
    /// is clipped to the command range.
    Gaussian,
    /// A deterministic policy (behaviour cloning): outputs the action in command units; resq
    /// explores around it with a Gaussian of the stated std (command units), clipped.
    Deterministic { std: f32 },
}

impl PriorKind {
    /// Numbers the network outputs per observation.
    pub fn raw_width(self, n_actions: usize) -> usize {
        match self {
            PriorKind::SquashedGaussian | PriorKind::Gaussian => 2 * n_actions,
            _ => n_actions,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PriorKind::DiscreteQ { .. } => "discrete_q",
            PriorKind::DiscreteLogits => "discrete_logits",
            PriorKind::DiscreteProbs => "discrete_probs",
            PriorKind::SquashedGaussian => "squashed_gaussian",
            PriorKind::Gaussian => "gaussian",
            PriorKind::Deterministic { .. } => "deterministic",
        }
    }

    /// The Gaussian family of a continuous kind (`None` for discrete kinds).
    pub fn family(self) -> Option<Family> {
        match self {
            PriorKind::SquashedGaussian => Some(Family::Squashed),
            PriorKind::Gaussian | PriorKind::Deterministic { .. } => Some(Family::Clipped),
            _ => None,
        }
    }
}

/// Largest disagreement allowed between resq's kernels and tract, relative to `1 + |tract|`, for
/// a network whose layers sum over at most 64 inputs in all; see [`compile_tolerance`].
pub const COMPILE_TOLERANCE: f32 = 1e-5;

/// The disagreement allowed between resq's kernels and tract for a network of layer widths
/// `sizes` (`[n_in, h1, …, n_out]`): `COMPILE_TOLERANCE · √(Σ fan-in / 64)`, at least
/// `COMPILE_TOLERANCE`. Both compute in f32 and sum in different orders; the rounding of a sum of
/// n terms wanders like √n, and every layer's fan-in adds its own. A 4-256-256-2 prior (Σ fan-in
/// 516; `tests/data/onnx/wide_gemm_relu.onnx`, on which onnxruntime itself differs from float64
/// by 1.2e-5, as `scripts/make_wide_prior.py` prints) is allowed 2.8e-5.
pub fn compile_tolerance(sizes: &[usize]) -> f32 {
    let fan_in: usize = sizes[..sizes.len().saturating_sub(1)].iter().sum();
    COMPILE_TOLERANCE * (fan_in as f32 / 64.0).sqrt().max(1.0)
}

/// How the prior runs (`[prior] engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorEngine {
    /// resq's allocation-free kernels when the graph is a dense chain they compute (checked
    /// against tract at load), tract otherwise.
    #[default]
    Auto,
    /// tract always (it allocates on every call: not real-time safe).
    Tract,
}

/// The prior running through tract (batch 1). Allocates on every call.
pub struct TractPrior {
    plan: Arc<TypedRunnableModel>,
    n_obs: usize,
}

impl TractPrior {
    /// Network output for one observation.
    pub fn run(&self, obs: &[f32], out: &mut [f32]) -> TractResult<()> {
        let input = Tensor::from_shape(&[1, self.n_obs], obs)?;
        let result = self.plan.run(tvec!(input.into()))?;
        let mut at = 0;
        for r in &result {
            let plain = r.try_as_plain_ram()?;
            let view = plain.as_slice::<f32>()?;
            if at + view.len() > out.len() {
                anyhow::bail!("tract returned more than the {} values expected", out.len());
            }
            out[at..at + view.len()].copy_from_slice(view);
            at += view.len();
        }
        if at != out.len() {
            anyhow::bail!("tract returned {at} values, expected {}", out.len());
        }
        Ok(())
    }
}

enum Engine {
    Compiled { net: Mlp, scratch: Scratch, head: dense::Head },
    Tract,
}

/// The loaded prior.
pub struct Prior {
    pub kind: PriorKind,
    pub n_obs: usize,
    pub n_actions: usize,
    engine: Engine,
    tract: TractPrior,
    /// Why the graph could not be compiled, when it runs through tract.
    pub fallback_reason: Option<String>,
}

fn dims(info: &pb::ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let Some(pb::type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect(),
    )
}

fn show_dims(d: &[Option<i64>]) -> String {
    let parts: Vec<String> = d.iter().map(|v| v.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

impl Prior {
    /// Loads and validates `path` for `n_obs` inputs and `n_actions` outputs, on resq's kernels
    /// where it can ([`PriorEngine::Auto`]).
    pub fn load(path: &Path, kind: PriorKind, n_obs: usize, n_actions: usize) -> Result<Prior, BundleError> {
        Self::load_on(path, kind, n_obs, n_actions, PriorEngine::Auto)
    }

    /// [`Prior::load`], running the prior on `engine`.
    pub fn load_on(
        path: &Path,
        kind: PriorKind,
        n_obs: usize,
        n_actions: usize,
        engine: PriorEngine,
    ) -> Result<Prior, BundleError> {
        let field = Some("prior.file");
        let err = |problem: String, fix: &str| BundleError::new(path, field, problem, fix);
        let bytes = std::fs::read(path).map_err(|e| {
            err(
                format!("cannot read the prior's ONNX file: {e}"),
                "export the prior to this path (see scripts/), or point `prior.file` in manifest.toml at it",
            )
        })?;
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| {
            err(
                format!("not an ONNX model (protobuf decoding failed: {e})"),
                "export the policy with torch.onnx.export (or another ONNX exporter) and check it with onnx.checker",
            )
        })?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| err("the ONNX model has no graph".into(), "re-export the model"))?;
        let inits: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|i| i.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> =
            graph.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect();
        if inputs.len() != 1 {
            return Err(err(
                format!(
                    "the model has {} inputs; resq feeds exactly one (the observation vector)",
                    inputs.len()
                ),
                "export the policy with a single [batch, n_obs] input",
            ));
        }
        if let Some(d) = dims(inputs[0]) {
            if d.len() != 2 || d[1].is_some_and(|v| v != n_obs as i64) {
                return Err(BundleError::new(
                    path,
                    Some("observation"),
                    format!(
                        "the model's input `{}` has shape {}; the manifest lists {n_obs} observation signal(s), so resq feeds [1, {n_obs}]",
                        inputs[0].name,
                        show_dims(&d)
                    ),
                    "make the [[observation]] list match the inputs the prior was trained on, in order",
                ));
            }
        }
        // A final Softmax outputs probabilities: read as logits or Q-values, they would give a
        // far flatter π0 than the prior's own.
        let last_op = graph.output.first().and_then(|o| {
            graph.node.iter().find(|n| n.output.first() == Some(&o.name)).map(|n| n.op_type.as_str())
        });
        if last_op == Some("LogSoftmax") && matches!(kind, PriorKind::DiscreteQ { .. }) {
            return Err(BundleError::new(
                path,
                Some("prior.kind"),
                "the model's output is a LogSoftmax (log-probabilities), but the manifest says `discrete_q` (soft Q-values, divided by a temperature)",
                "declare kind = \"discrete_logits\" (log-probabilities are logits), or export the Q-values before the LogSoftmax",
            ));
        }
        if last_op == Some("Softmax")
            && matches!(kind, PriorKind::DiscreteQ { .. } | PriorKind::DiscreteLogits)
        {
            return Err(BundleError::new(
                path,
                Some("prior.kind"),
                format!(
                    "the model's output is a Softmax (probabilities), but the manifest says `{}`",
                    kind.name()
                ),
                "declare kind = \"discrete_probs\" (log π0 = ln p), or export the logits before the Softmax",
            ));
        }
        // Outputs: one [batch, n_raw] tensor, or (Gaussian kinds) `mean` and `log_std`, each
        // [batch, n_actions]; resq reads them side by side.
        let widths: &[usize] = match kind {
            PriorKind::SquashedGaussian | PriorKind::Gaussian if graph.output.len() == 2 => {
                &[n_actions, n_actions]
            }
            _ => &[kind.raw_width(n_actions)],
        };
        if graph.output.len() != widths.len() {
            return Err(err(
                format!("the model has {} outputs; a {} prior has {}", graph.output.len(), kind.name(), widths.len()),
                match kind {
                    PriorKind::SquashedGaussian | PriorKind::Gaussian => "export the actor with outputs `mean` and `log_std` ([batch, n_actions] each), or one [batch, 2·n_actions] output",
                    _ => "export the policy with a single [batch, n_actions] output",
                },
            ));
        }
        for (o, w) in graph.output.iter().zip(widths) {
            if let Some(d) = dims(o) {
                if d.len() != 2 || d[1].is_some_and(|v| v != *w as i64) {
                    return Err(BundleError::new(
                        path,
                        Some("action"),
                        format!(
                            "the model's output `{}` has shape {}; for {n_actions} action(s) a {} prior outputs [batch, {w}]",
                            o.name,
                            show_dims(&d),
                            kind.name()
                        ),
                        "list one action per output of the prior, in order (discrete: [action].values)",
                    ));
                }
            }
        }
        let model = onnx.model_for_proto_model(&proto).map_err(|e| {
            err(
                format!("tract cannot read the graph: {e:#}"),
                "re-export the model with a standard opset (≥ 13)",
            )
        })?;
        let unimplemented: Vec<String> = model
            .nodes()
            .iter()
            .filter(|n| n.op.name().starts_with("Unimplemented"))
            .map(|n| {
                format!(
                    "`{}` (node `{}`)",
                    n.op.name().trim_start_matches("Unimplemented(").trim_end_matches(')'),
                    n.name
                )
            })
            .collect();
        if !unimplemented.is_empty() {
            return Err(err(
                format!("unsupported operator(s) {}: tract cannot run them", unimplemented.join(", ")),
                "export the policy without these operators (plain Gemm/MatMul/Relu/Tanh layers are best)",
            ));
        }
        let typed = model
            .with_input_fact(0, f32::fact([1, n_obs]).into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
            err(
                format!("tract cannot analyse the graph for a [1, {n_obs}] input: {e:#}"),
                "check that the model takes [batch, n_obs] float32 observations",
            )
        })?;
        for (i, w) in widths.iter().enumerate() {
            let out_shape = typed.output_fact(i).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()));
            if out_shape.as_deref() != Some(&[1, *w][..]) {
                return Err(BundleError::new(
                    path,
                    Some("action"),
                    format!("for a [1, {n_obs}] input the model's output {i} is {out_shape:?}; resq expects [1, {w}] for {n_actions} action(s)"),
                    "list one action per output of the prior, in order (discrete: [action].values)",
                ));
            }
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| err(format!("tract cannot plan the graph: {e:#}"), "re-export the model"))?;
        let tract = TractPrior { plan, n_obs };

        let compiled = match engine {
            PriorEngine::Auto => {
                Self::constant_outputs(&proto, &tract, widths).and_then(|c| dense::compile(&proto, &c))
            }
            PriorEngine::Tract => Err("`[prior] engine = \"tract\"`".to_string()),
        };
        let (engine, fallback_reason) = match compiled {
            Err(reason) if engine == PriorEngine::Tract => (Engine::Tract, Some(reason)),
            Ok((net, head)) if net.n_in() == n_obs && net.n_out() == kind.raw_width(n_actions) => {
                Self::check_agreement(&net, &head, &tract, path)?;
                let scratch = net.scratch();
                (Engine::Compiled { net, scratch, head }, None)
            }
            Ok(_) => (Engine::Tract, Some("the dense chain's widths differ from the manifest".to_string())),
            Err(reason) => {
                warn!(
                    "{}: the prior is not a plain dense chain ({reason}); it runs through tract, which allocates on every call: not real-time safe. Ops: {}",
                    path.display(),
                    dense::op_types(&proto).join(", ")
                );
                (Engine::Tract, Some(reason))
            }
        };
        Ok(Prior { kind, n_obs, n_actions, engine, tract, fallback_reason })
    }

    /// The row value of each of a several-output prior's outputs that does not depend on the
    /// input's values ([`dense::input_independent_outputs`]), by running tract on a zero input.
    fn constant_outputs(
        proto: &tract_onnx::pb::ModelProto,
        tract: &TractPrior,
        widths: &[usize],
    ) -> Result<std::collections::HashMap<usize, Vec<f32>>, String> {
        let independent = dense::input_independent_outputs(proto);
        if widths.len() < 2 || independent.is_empty() {
            return Ok(Default::default());
        }
        let mut all = vec![0.0; widths.iter().sum()];
        tract.run(&vec![0.0; tract.n_obs], &mut all).map_err(|e| format!("tract on a zero input: {e:#}"))?;
        let starts: Vec<usize> =
            widths.iter().scan(0, |at, w| Some(std::mem::replace(at, *at + w))).collect();
        Ok(independent.into_iter().map(|i| (i, all[starts[i]..starts[i] + widths[i]].to_vec())).collect())
    }

    /// Runs resq's compiled network and tract on 64 random observations and refuses a mismatch.
    /// A `LogSoftmax` head is computed stably by resq; tract computes `ln(softmax)`, which loses
    /// its precision as `softmax` underflows in f32 (denormal below about e^−87, then −∞, where
    /// onnxruntime gives finite −148…−542): where tract is below −80, resq must be too.
    fn check_agreement(
        net: &Mlp,
        head: &dense::Head,
        tract: &TractPrior,
        path: &Path,
    ) -> Result<(), BundleError> {
        let mut rng = crate::streams::prior_check();
        let mut scratch = net.scratch();
        let mut reference = vec![0.0; net.n_out()];
        let mut obs = vec![0.0; net.n_in()];
        let mut worst = 0.0f32;
        for i in 0..64 {
            let spread = if i < 32 { 1.0 } else { 5.0 };
            obs.iter_mut().for_each(|v| *v = rng.random_range(-spread..spread));
            tract.run(&obs, &mut reference).map_err(|e| {
                BundleError::new(
                    path,
                    Some("prior.file"),
                    format!("tract failed on a random input: {e:#}"),
                    "re-export the model",
                )
            })?;
            let mut ours = net.forward1(&obs, &mut scratch).to_vec();
            head.apply(&mut ours);
            for (a, b) in ours.iter().zip(&reference) {
                let underflow = *head == dense::Head::LogSoftmax && *b < -80.0 && *a < -80.0;
                if !underflow {
                    worst = worst.max(disagreement(*a, *b));
                }
            }
        }
        let limit = compile_tolerance(&net.sizes());
        if !(worst <= limit) {
            return Err(BundleError::new(
                path,
                Some("prior.file"),
                format!("resq's compiled kernels and tract disagree by {worst:e} (relative) on random inputs; the limit for this network is {limit:e}"),
                "run it through tract (`[prior] engine = \"tract\"`: allocates, not real-time safe), and report the ONNX file: resq's kernels should agree with tract on it",
            ));
        }
        Ok(())
    }

    /// True when the prior runs on resq's allocation-free kernels.
    pub fn is_realtime_safe(&self) -> bool {
        matches!(self.engine, Engine::Compiled { .. })
    }

    /// The reference tract runner (the benchmark baseline).
    /// Weights and biases of the compiled network (`None` when the prior runs through tract).
    pub fn n_params(&self) -> Option<usize> {
        match &self.engine {
            Engine::Compiled { net, .. } => Some(net.n_params()),
            Engine::Tract => None,
        }
    }

    pub fn tract(&self) -> &TractPrior {
        &self.tract
    }

    /// The raw network output (Q-values or logits) for one observation.
    pub fn raw(&mut self, obs: &[f32], out: &mut [f32]) -> TractResult<()> {
        match &mut self.engine {
            Engine::Compiled { net, scratch, head } => {
                out.copy_from_slice(net.forward1(obs, scratch));
                head.apply(out);
                Ok(())
            }
            Engine::Tract => self.tract.run(obs, out),
        }
    }

    /// `log π0(·|s)` for one observation, into `out` (discrete kinds).
    pub fn log_probs(&mut self, obs: &[f32], out: &mut [f32]) -> TractResult<()> {
        self.raw(obs, out)?;
        match self.kind {
            PriorKind::DiscreteQ { temperature } => out.iter_mut().for_each(|v| *v /= temperature),
            PriorKind::DiscreteLogits => {}
            // ln of a negative "probability" is NaN: a prior fault, as for any non-finite output.
            PriorKind::DiscreteProbs => out.iter_mut().for_each(|v| *v = v.ln()),
            _ => anyhow::bail!("log_probs is for discrete priors"),
        }
        log_softmax_in_place(out);
        Ok(())
    }
}

/// How far `ours` is from the reference `b`: `|a − b| / (1 + |b|)`; 0 when both are the same
/// infinity or both NaN, ∞ when only one is non-finite (`f32::max` would skip a NaN).
pub fn disagreement(a: f32, b: f32) -> f32 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    let d = (a - b).abs() / (1.0 + b.abs());
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// `x ← x − logsumexp(x)`.
pub fn log_softmax_in_place(x: &mut [f32]) {
    let lse = logsumexp(x);
    x.iter_mut().for_each(|v| *v -= lse);
}

/// `log Σ exp(x)`, stable.
pub fn logsumexp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}
