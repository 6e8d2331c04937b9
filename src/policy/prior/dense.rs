//! Compiles a dense ONNX graph into an [`Mlp`] that runs on resq's allocation-free kernels.
//!
//! Accepted: a single chain from the graph input to the graph output (or to several Gemm
//! heads on the same trunk, one per output, e.g. a Gaussian policy's mean and log-std) made of
//! `Gemm` (any `alpha`, `beta`, `transB`; `transA = 0`), `MatMul` followed by `Add` of a
//! constant bias, the activations `Relu`, `Tanh`, `Sigmoid`, `LeakyRelu`, `Elu`, `Softplus`,
//! and the no-ops `Identity`, `Dropout`, `Flatten` (on a 2-D tensor) and `Cast` to float.
//! Element-wise `Sub`, `Add`, `Mul`, `Div` by constants (per feature or scalar; the data on the
//! left, or either side for `Add`/`Mul`), e.g. an exporter's input normalisation
//! `(x − mean)/std` or an output scale, are folded into the neighbouring dense layer:
//! `(x·s + t)·W + b = x·(diag(s)·W) + (t·W + b)`, and after the last layer
//! `(x·W + b)·s + t = x·(W·diag(s)) + (b·s + t)`. A final `LogSoftmax` over the last axis is
//! kept as the [`Head`], computed stably (`x − max − ln Σ e^(x − max)`), and so are `Clip`s on
//! the Gemm heads (a clamp per output column). Weights come from
//! initializers or `Constant` nodes. An output whose value does not depend on the input's values
//! ([`input_independent_outputs`]: every path from the input to it passes through a `Shape`, as
//! in a PPO actor's state-independent log-std exported as `zeros_like(mean) + log_std` or
//! `log_std.expand_as(mean)`) is a head with zero weights and its value, measured by the caller,
//! as bias; the caller's check against tract on random inputs confirms it. Anything else returns
//! `Err(reason)` naming the node, and the prior runs through tract.

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use tract_onnx::pb::{self, NodeProto};

use crate::nn::{Activation, Dense, Mlp};

fn tensor_to_array(t: &pb::TensorProto) -> Result<(Vec<usize>, Vec<f32>), String> {
    let resolver = tract_onnx::data_resolver::default();
    let tensor = tract_onnx::tensor::load_tensor(&*resolver, t, None)
        .map_err(|e| format!("cannot read tensor `{}`: {e}", t.name))?;
    let tensor = tensor.cast_to::<f32>().map_err(|e| format!("tensor `{}` is not numeric: {e}", t.name))?;
    let data = tensor
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
        .map_err(|e| format!("tensor `{}`: {e}", t.name))?;
    Ok((tensor.shape().to_vec(), data))
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

type Consts = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The dense layer of a `Gemm` node with constant B (and C): `y = alpha·x·B' + beta·C`.
fn gemm_layer(node: &NodeProto, consts: &Consts) -> Result<Dense, String> {
    let const_input =
        |k: usize| -> Option<&(Vec<usize>, Vec<f32>)> { node.input.get(k).and_then(|n| consts.get(n)) };
    let (shape, w) = const_input(1).ok_or("Gemm without a constant B")?;
    let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
    let wt = if attr_i(node, "transB", 0) != 0 {
        // B is [out, in]; store [in, out].
        Array2::from_shape_vec((shape[0], shape[1]), w.clone()).map_err(|e| e.to_string())?.t().to_owned()
    } else {
        Array2::from_shape_vec((shape[0], shape[1]), w.clone()).map_err(|e| e.to_string())?
    };
    let n_out = wt.ncols();
    let b = match const_input(2) {
        Some((_, c)) if c.len() == n_out => Array1::from_vec(c.iter().map(|v| v * beta).collect()),
        Some((_, c)) if c.len() == 1 => Array1::from_elem(n_out, c[0] * beta),
        Some(_) => return Err("Gemm bias of an unexpected shape".into()),
        None => Array1::zeros(n_out),
    };
    let w = (wt * alpha).as_standard_layout().into_owned();
    Ok(Dense { w, b, act: Activation::Identity })
}

/// A pending element-wise `x·scale + shift` on the chain's current tensor; a length-1 vector
/// broadcasts over the features.
#[derive(Clone, Debug)]
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Affine {
    fn identity() -> Self {
        Affine { scale: vec![1.0], shift: vec![0.0] }
    }

    fn is_identity(&self) -> bool {
        self.scale.iter().all(|s| *s == 1.0) && self.shift.iter().all(|t| *t == 0.0)
    }

    /// Widened to `n` features, or `Err` if the widths do not broadcast.
    fn at(v: &[f32], n: usize) -> Result<Vec<f32>, String> {
        match v.len() {
            1 => Ok(vec![v[0]; n]),
            k if k == n => Ok(v.to_vec()),
            k => Err(format!("an element-wise constant of width {k} on {n} features")),
        }
    }

    /// `y = x ∘ c` followed after this affine: `op` is `Sub`, `Add`, `Mul` or `Div`.
    fn then(&mut self, op: &str, c: &[f32]) -> Result<(), String> {
        let n = self.scale.len().max(self.shift.len()).max(c.len());
        let (mut s, mut t, c) = (Self::at(&self.scale, n)?, Self::at(&self.shift, n)?, Self::at(c, n)?);
        for i in 0..n {
            match op {
                "Sub" => t[i] -= c[i],
                "Add" => t[i] += c[i],
                "Mul" => {
                    s[i] *= c[i];
                    t[i] *= c[i];
                }
                _ => {
                    s[i] /= c[i];
                    t[i] /= c[i];
                }
            }
        }
        (self.scale, self.shift) = (s, t);
        Ok(())
    }

    /// Folds this affine into the input side of `layer`.
    fn fold_into_input(&self, layer: &mut Dense) -> Result<(), String> {
        let n_in = layer.w.nrows();
        let (s, t) = (Self::at(&self.scale, n_in)?, Self::at(&self.shift, n_in)?);
        let t_row = Array1::from_vec(t);
        layer.b = &layer.b + &t_row.dot(&layer.w);
        for (mut row, si) in layer.w.rows_mut().into_iter().zip(&s) {
            row.mapv_inplace(|v| v * si);
        }
        Ok(())
    }

    /// Folds this affine into the output side of `layer` (which has no activation).
    fn fold_into_output(&self, layer: &mut Dense) -> Result<(), String> {
        let n_out = layer.w.ncols();
        let (s, t) = (Self::at(&self.scale, n_out)?, Self::at(&self.shift, n_out)?);
        for mut row in layer.w.rows_mut() {
            row.iter_mut().zip(&s).for_each(|(v, si)| *v *= si);
        }
        for j in 0..n_out {
            layer.b[j] = layer.b[j] * s[j] + t[j];
        }
        Ok(())
    }
}

/// What follows the dense chain.
#[derive(Clone, Debug, PartialEq)]
pub enum Head {
    /// The chain's output as it is.
    Raw,
    /// `log_softmax` of the chain's output (a `LogSoftmax` node over the last axis).
    LogSoftmax,
    /// `softmax` of the chain's output (a `Softmax` node over the last axis): probabilities,
    /// computed stably (`e^(x − max) / Σ e^(x − max)`). For kind `discrete_probs`.
    Softmax,
    /// Each output column clamped to `[lo, hi]` (±∞ where unclipped): Gemm heads behind a `Clip`,
    /// e.g. a Gaussian actor's log-std.
    Clamp { lo: Vec<f32>, hi: Vec<f32> },
}

impl Head {
    /// Applies the head to the chain's output, in place (no allocation).
    pub fn apply(&self, out: &mut [f32]) {
        match self {
            Head::Raw => {}
            Head::LogSoftmax => crate::policy::prior::log_softmax_in_place(out),
            Head::Softmax => {
                crate::policy::prior::log_softmax_in_place(out);
                out.iter_mut().for_each(|v| *v = v.exp());
            }
            Head::Clamp { lo, hi } => {
                for ((v, l), h) in out.iter_mut().zip(lo).zip(hi) {
                    *v = v.max(*l).min(*h);
                }
            }
        }
    }
}

/// The bounds of a `Clip` node: attributes before opset 11, constant inputs after (either may
/// be absent: ±∞).
fn clip_bounds(node: &NodeProto, consts: &Consts) -> Result<(f32, f32), String> {
    let from_input = |k: usize| -> Result<Option<f32>, String> {
        match node.input.get(k).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(n) => consts
                .get(n)
                .map(|(_, v)| Some(v[0]))
                .ok_or(format!("node `{}` (Clip): a bound that is not constant", node.name)),
        }
    };
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.f);
    let lo = from_input(1)?.or(attr("min")).unwrap_or(f32::NEG_INFINITY);
    let hi = from_input(2)?.or(attr("max")).unwrap_or(f32::INFINITY);
    Ok((lo, hi))
}

/// Tries to compile `model` into an [`Mlp`] and its [`Head`]. `Err` carries why it is not a
/// plain dense chain.
fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A multi-node activation that starts at `graph[start]`, as exporters write them:
///
/// - SiLU: `s = Sigmoid(x); y = Mul(x, s)`;
/// - GELU (PyTorch's erf form): `Div(x, √2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, 0.5)`.
///
/// Returns the activation, the indices of the nodes after `start` it spans, and its output. Each
/// intermediate value must have exactly the one consumer the pattern names (so nothing else in
/// the graph reads it).
fn activation_pattern(
    graph: &[NodeProto],
    start: usize,
    consts: &Consts,
) -> Option<(Activation, Vec<usize>, String)> {
    let node = &graph[start];
    let x = node.input.first()?;
    let out = node.output.first()?;
    // The one node that reads `value`, if it is a `op`; and that node's other input.
    let only = |value: &str, op: &str| -> Option<(usize, String)> {
        let mut readers = graph.iter().enumerate().filter(|(_, n)| n.input.iter().any(|i| i == value));
        let (k, n) = readers.next()?;
        if readers.next().is_some() || n.op_type != op || n.input.len() != 2 {
            return None;
        }
        let other = if n.input[0] == value { &n.input[1] } else { &n.input[0] };
        Some((k, other.clone()))
    };
    let scalar = |name: &str| consts.get(name).filter(|(_, v)| v.len() == 1).map(|(_, v)| v[0]);
    let near = |v: Option<f32>, want: f32| v.is_some_and(|v| (v - want).abs() <= 1e-4 * want.abs().max(1.0));
    match node.op_type.as_str() {
        "Sigmoid" => {
            let (mul, other) = only(out, "Mul")?;
            (other == *x).then(|| (Activation::Silu, vec![mul], graph[mul].output[0].clone()))
        }
        "Div" => {
            if !near(scalar(node.input.get(1)?), std::f32::consts::SQRT_2) {
                return None;
            }
            let erf = graph.iter().position(|n| n.op_type == "Erf" && n.input.first() == Some(out))?;
            if graph.iter().filter(|n| n.input.iter().any(|i| i == out)).count() != 1 {
                return None;
            }
            let (add, one) = only(&graph[erf].output[0], "Add")?;
            let (mul, x2) = only(&graph[add].output[0], "Mul")?;
            let (half_mul, half) = only(&graph[mul].output[0], "Mul")?;
            (near(scalar(&one), 1.0) && x2 == *x && near(scalar(&half), 0.5))
                .then(|| (Activation::Gelu, vec![erf, add, mul, half_mul], graph[half_mul].output[0].clone()))
        }
        _ => None,
    }
}

/// The indices of the graph's outputs whose values do not depend on the input's values: every
/// path from the graph input to them passes through a `Shape` (or `Size`) node.
pub fn input_independent_outputs(model: &pb::ModelProto) -> Vec<usize> {
    let Some(graph) = model.graph.as_ref() else { return vec![] };
    let deps = ValueDeps::new(graph);
    (0..graph.output.len()).filter(|&i| !deps.depends(&graph.output[i].name)).collect()
}

/// Which tensors of a graph depend on the input's values, in one pass over its nodes (ONNX
/// keeps them in topological order): a graph input does, an initializer or `Constant` does not,
/// a `Shape` or `Size` node's output does not, any other node's outputs do when one of its
/// inputs does.
struct ValueDeps<'g> {
    producer: HashMap<&'g str, &'g NodeProto>,
    dependent: std::collections::HashSet<&'g str>,
}

impl<'g> ValueDeps<'g> {
    fn new(graph: &'g pb::GraphProto) -> Self {
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|i| i.name.as_str()).collect();
        let mut dependent: std::collections::HashSet<&str> =
            graph.input.iter().map(|i| i.name.as_str()).filter(|n| !initializers.contains(n)).collect();
        let mut producer = HashMap::new();
        for n in &graph.node {
            let shape_only = matches!(n.op_type.as_str(), "Shape" | "Size");
            let depends = !shape_only && n.input.iter().any(|i| dependent.contains(i.as_str()));
            for o in &n.output {
                producer.insert(o.as_str(), n);
                if depends {
                    dependent.insert(o.as_str());
                }
            }
        }
        ValueDeps { producer, dependent }
    }

    fn depends(&self, name: &str) -> bool {
        self.dependent.contains(name)
    }

    /// The nodes that compute the tensor `name` without depending on the input's values.
    fn independent_ancestors(&self, name: &'g str, into: &mut Vec<&'g NodeProto>) {
        let mut stack = vec![name];
        while let Some(t) = stack.pop() {
            if let Some(n) = self.producer.get(t) {
                if !into.iter().any(|m| std::ptr::eq(*m, *n)) && n.output.iter().all(|o| !self.depends(o)) {
                    into.push(n);
                    stack.extend(n.input.iter().filter(|i| !i.is_empty()).map(String::as_str));
                }
            }
        }
    }
}

/// Compiles `model`; `constant` gives the row value of each output listed by
/// [`input_independent_outputs`] (by output index), measured by running the model.
pub fn compile(model: &pb::ModelProto, constant: &HashMap<usize, Vec<f32>>) -> Result<(Mlp, Head), String> {
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let mut consts: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for init in &graph.initializer {
        consts.insert(init.name.clone(), tensor_to_array(init)?);
    }
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
            .ok_or("a Constant node without a tensor value")?;
        consts.insert(node.output[0].clone(), tensor_to_array(value)?);
    }
    let inputs: Vec<_> = graph.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
    if inputs.len() != 1 || graph.output.is_empty() {
        return Err(format!(
            "{} inputs and {} outputs (a dense chain has one input)",
            inputs.len(),
            graph.output.len()
        ));
    }
    // Several outputs (e.g. a Gaussian policy's mean and log-std): each must be a Gemm head on
    // the same trunk, optionally behind a Clip; the heads become one final layer with their
    // columns side by side, in the order of the graph's outputs, and the clips a clamp.
    let producer =
        |name: &str| graph.node.iter().find(|n| n.output.first().map(String::as_str) == Some(name));
    let mut clips: Vec<&NodeProto> = Vec::new();
    let mut head_bounds: Vec<(f32, f32)> = Vec::new();
    // Outputs with a constant value (at most all but one), and the nodes computing them, which
    // are not part of the chain.
    let deps = ValueDeps::new(graph);
    let mut constant_nodes: Vec<&NodeProto> = Vec::new();
    for i in constant.keys() {
        let o = graph.output.get(*i).ok_or("a constant output index beyond the graph's outputs")?;
        deps.independent_ancestors(&o.name, &mut constant_nodes);
    }
    let heads: Vec<&NodeProto> = if graph.output.len() > 1 {
        let mut heads = Vec::new();
        for (i, o) in graph.output.iter().enumerate() {
            if constant.contains_key(&i) {
                continue;
            }
            let mut p = producer(&o.name).ok_or("an output not produced by a node")?;
            let mut bounds = (f32::NEG_INFINITY, f32::INFINITY);
            if p.op_type == "Clip" {
                bounds = clip_bounds(p, &consts)?;
                clips.push(p);
                p = producer(&p.input[0]).ok_or("a Clip on a graph input")?;
            }
            heads.push(p);
            head_bounds.push(bounds);
        }
        let trunk_end = &heads.first().ok_or("no output depends on the input")?.input[0];
        if heads.iter().any(|h| h.op_type != "Gemm" || &h.input[0] != trunk_end) {
            return Err(
                "several outputs that are not Gemm heads (each optionally clipped) on one trunk".into()
            );
        }
        heads
    } else {
        vec![]
    };
    // A single output made by a LogSoftmax or Softmax over the last axis of a 2-D tensor: the
    // head.
    let log_softmax = if heads.is_empty() {
        graph.node.iter().find(|n| {
            n.output.first() == Some(&graph.output[0].name)
                && matches!(n.op_type.as_str(), "LogSoftmax" | "Softmax")
                && matches!(attr_i(n, "axis", -1), -1 | 1)
        })
    } else {
        None
    };
    let chain_end = match (heads.first(), log_softmax) {
        (Some(h), _) => h.input[0].clone(),
        (None, Some(ls)) => ls.input[0].clone(),
        (None, None) => graph.output[0].name.clone(),
    };
    let mut current = inputs[0].name.clone();
    let mut layers: Vec<Dense> = Vec::new();
    // A MatMul waiting for its bias Add.
    let mut pending_matmul = false;
    // Element-wise constants since the last dense layer or activation.
    let mut affine = Affine::identity();
    // Folds the pending affine into a layer just pushed (its input side).
    let fold_in = |affine: &mut Affine, layer: &mut Dense| -> Result<(), String> {
        if !affine.is_identity() {
            affine.fold_into_input(layer)?;
        }
        *affine = Affine::identity();
        Ok(())
    };
    // Nodes already folded into an activation by `activation_pattern`.
    let mut consumed: Vec<usize> = Vec::new();
    for (index, node) in graph.node.iter().enumerate().filter(|(_, n)| {
        n.op_type != "Constant"
            && !heads.iter().chain(&clips).any(|h| h.name == n.name && h.output == n.output)
            && !constant_nodes.iter().any(|c| std::ptr::eq(*c, *n))
            && log_softmax.is_none_or(|ls| ls.output != n.output)
    }) {
        if consumed.contains(&index) {
            continue;
        }
        let data_inputs: Vec<&String> = node.input.iter().filter(|i| !consts.contains_key(*i)).collect();
        if data_inputs.len() != 1 || *data_inputs[0] != current {
            return Err(format!("node `{}` ({}) does not continue a single chain", node.name, node.op_type));
        }
        let here = |why: &str| format!("node `{}` ({}): {why}", node.name, node.op_type);
        let const_input =
            |k: usize| -> Option<&(Vec<usize>, Vec<f32>)> { node.input.get(k).and_then(|n| consts.get(n)) };
        let pattern = activation_pattern(&graph.node, index, &consts);
        match node.op_type.as_str() {
            "Gemm" => {
                if attr_i(node, "transA", 0) != 0 || node.input[0] != current {
                    return Err("Gemm with a transposed or constant A".into());
                }
                let mut layer = gemm_layer(node, &consts)?;
                fold_in(&mut affine, &mut layer)?;
                layers.push(layer);
                pending_matmul = false;
            }
            "MatMul" => {
                if node.input[0] != current {
                    return Err("MatMul with the weights on the left".into());
                }
                let (shape, w) = const_input(1).ok_or("MatMul without constant weights")?;
                if shape.len() != 2 {
                    return Err("MatMul weights are not a matrix".into());
                }
                let wt =
                    Array2::from_shape_vec((shape[0], shape[1]), w.clone()).map_err(|e| e.to_string())?;
                let n_out = wt.ncols();
                let mut layer = Dense { w: wt, b: Array1::zeros(n_out), act: Activation::Identity };
                fold_in(&mut affine, &mut layer)?;
                layers.push(layer);
                pending_matmul = true;
            }
            "Add" if pending_matmul => {
                let k = if node.input[0] == current { 1 } else { 0 };
                let (_, c) = const_input(k).ok_or("Add without a constant bias")?;
                let last = layers.last_mut().expect("pending MatMul pushed a layer");
                let c = Affine::at(c, last.b.len())
                    .map_err(|_| here("bias width differs from the MatMul's output"))?;
                last.b = &last.b + &Array1::from_vec(c);
                pending_matmul = false;
            }
            // A multi-node activation (SiLU = x·σ(x) from a Sigmoid, GELU's erf form from a Div)
            // replaces the nodes it spans; the chain continues from its last node.
            op if pattern.is_some()
                || matches!(op, "Relu" | "Tanh" | "Sigmoid" | "LeakyRelu" | "Elu" | "Softplus" | "Gelu") =>
            {
                let last = layers.last_mut().ok_or_else(|| here("an activation before any dense layer"))?;
                if last.act != Activation::Identity {
                    return Err(here("two activations in a row"));
                }
                // Constants between the layer and its activation belong to the layer's output.
                if !affine.is_identity() {
                    affine.fold_into_output(last)?;
                    affine = Affine::identity();
                }
                last.act = match (&pattern, op) {
                    (Some((act, ..)), _) => *act,
                    (None, "Relu") => Activation::Relu,
                    (None, "Tanh") => Activation::Tanh,
                    (None, "Sigmoid") => Activation::Sigmoid,
                    (None, "Elu") => Activation::Elu(attr_f(node, "alpha", 1.0)),
                    (None, "Softplus") => Activation::Softplus,
                    (None, "Gelu") => match attr_s(node, "approximate").as_deref() {
                        None | Some("none") => Activation::Gelu,
                        Some("tanh") => Activation::GeluTanh,
                        Some(other) => return Err(here(&format!("approximate = `{other}`"))),
                    },
                    _ => Activation::LeakyRelu(attr_f(node, "alpha", 0.01)),
                };
                pending_matmul = false;
                if let Some((_, spanned, out)) = pattern {
                    consumed.extend(spanned);
                    current = out;
                    continue;
                }
            }
            "Sub" | "Add" | "Mul" | "Div" => {
                // Add right after a MatMul is its bias (above); here: element-wise constants.
                let k = if node.input[0] == current { 1 } else { 0 };
                if k == 0 && matches!(node.op_type.as_str(), "Sub" | "Div") {
                    return Err(here("the constant is on the left"));
                }
                let (shape, c) = const_input(k).ok_or_else(|| here("without a constant operand"))?;
                if shape.iter().rev().skip(1).any(|d| *d != 1) {
                    return Err(here("a constant that is not per feature"));
                }
                affine.then(&node.op_type, c).map_err(|e| here(&e))?;
                pending_matmul = false;
            }
            "Cast" => {
                if attr_i(node, "to", 0) != pb::tensor_proto::DataType::Float as i64 {
                    return Err(here("a cast to a type other than float"));
                }
            }
            "Identity" | "Dropout" | "Flatten" => {}
            other => {
                return Err(format!("node `{}`: operator `{other}` is not part of a dense chain", node.name))
            }
        }
        current = node.output[0].clone();
    }
    if current != chain_end {
        return Err("the chain does not end at the graph output".into());
    }
    if !affine.is_identity() {
        // Constants after the last layer (an output scale) fold into it, unless an activation
        // comes between.
        match layers.last_mut() {
            Some(last) if last.act == Activation::Identity => affine.fold_into_output(last)?,
            _ => return Err("element-wise constants after an activation at the end of the chain".into()),
        }
    }
    let mut clamp = None;
    if !heads.is_empty() {
        // One final layer, the outputs' columns side by side in the graph's order: a Gemm head's
        // weights, or a constant output's zero weights and its value as bias.
        let mut gemms = heads.iter().zip(&head_bounds);
        let trunk_width = gemm_layer(heads[0], &consts)?.w.nrows();
        let (mut parts, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..graph.output.len() {
            let (part, bounds) = match constant.get(&i) {
                Some(v) => (
                    Dense {
                        w: Array2::zeros((trunk_width, v.len())),
                        b: Array1::from_vec(v.clone()),
                        act: Activation::Identity,
                    },
                    (f32::NEG_INFINITY, f32::INFINITY),
                ),
                None => {
                    let (h, b) = gemms.next().ok_or("fewer heads than outputs")?;
                    (gemm_layer(h, &consts)?, *b)
                }
            };
            lo.extend(std::iter::repeat_n(bounds.0, part.b.len()));
            hi.extend(std::iter::repeat_n(bounds.1, part.b.len()));
            parts.push(part);
        }
        let ws: Vec<_> = parts.iter().map(|d| d.w.view()).collect();
        let bs: Vec<_> = parts.iter().map(|d| d.b.view()).collect();
        let w = ndarray::concatenate(ndarray::Axis(1), &ws).map_err(|e| e.to_string())?;
        let b = ndarray::concatenate(ndarray::Axis(0), &bs).map_err(|e| e.to_string())?;
        layers.push(Dense { w: w.as_standard_layout().into_owned(), b, act: Activation::Identity });
        clamp = (!clips.is_empty()).then_some(Head::Clamp { lo, hi });
    }
    if layers.is_empty() {
        return Err("no dense layer".into());
    }
    for pair in layers.windows(2) {
        if pair[0].w.ncols() != pair[1].w.nrows() {
            return Err("consecutive layers do not fit together".into());
        }
    }
    let head = match (log_softmax, clamp) {
        (Some(n), _) if n.op_type == "Softmax" => Head::Softmax,
        (Some(_), _) => Head::LogSoftmax,
        (None, Some(c)) => c,
        (None, None) => Head::Raw,
    };
    Ok((Mlp { layers }, head))
}

/// Op types in the graph, for messages.
pub fn op_types(model: &pb::ModelProto) -> Vec<String> {
    let mut ops: Vec<String> =
        model.graph.iter().flat_map(|g| g.node.iter().map(|n| n.op_type.clone())).collect();
    ops.sort();
    ops.dedup();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn model(nodes: Vec<NodeProto>, outputs: &[&str]) -> pb::ModelProto {
        let value = |n: &str| pb::ValueInfoProto { name: n.into(), ..Default::default() };
        let init = |n: &str| pb::TensorProto { name: n.into(), ..Default::default() };
        pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: nodes,
                input: vec![value("obs")],
                output: outputs.iter().map(|o| value(o)).collect(),
                initializer: vec![init("w"), init("b"), init("log_std")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// PPO's state-independent log-std as exporters write it is input-independent; the mean,
    /// and a log-std computed as `0·mean + log_std` (NaN where the mean is), are not.
    #[test]
    fn outputs_reached_from_the_input_only_through_shape_are_input_independent() {
        let gemm = node("Gemm", &["obs", "w", "b"], "mean");
        let zeros_like = vec![
            gemm.clone(),
            node("Shape", &["mean"], "shape"),
            node("ConstantOfShape", &["shape"], "zeros"),
            node("Add", &["zeros", "log_std"], "ls"),
        ];
        assert_eq!(input_independent_outputs(&model(zeros_like, &["mean", "ls"])), vec![1]);
        let expand = vec![
            gemm.clone(),
            node("Shape", &["mean"], "shape"),
            node("Expand", &["log_std", "shape"], "ls"),
        ];
        assert_eq!(input_independent_outputs(&model(expand, &["mean", "ls"])), vec![1]);
        let times_zero = vec![gemm, node("Mul", &["mean", "b"], "z"), node("Add", &["z", "log_std"], "ls")];
        assert!(input_independent_outputs(&model(times_zero, &["mean", "ls"])).is_empty());
    }
}
