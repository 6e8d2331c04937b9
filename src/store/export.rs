//! `resq export <bundle> --out policy.onnx`: the customized policy as one ONNX file, to deploy
//! without resq (or on robots that only run). The prior's own graph is embedded (its tensors
//! renamed under `prior/`), followed by the learned residual and the action choice:
//!
//! ```text
//! input  obs [N, n_obs]            the prior's input (obs = (signal − offset)/scale)
//!        prev_command [N, n_cmd]   only when the add-on reads a previous command
//! discrete:                    log_probs = log_softmax((head(obs') + ω'·log π0(·|obs)) / α̂)
//!                              (residual soft Q: the manifest's ω', α̂; RPG: 1, 1, its head the
//!                              logit offsets; `Bundle::acting_weights`, as the controller)
//!                              action = argmax log_probs (int64 [N]), command = table[action]
//! continuous (sac, rpg):       mean = μ0 + Δμ, log_std = clamp(log σ0 + Δσ, −20, 2)  ([−1, 1] units)
//!                              command = low + (family(mean) + 1)/2·(high − low)   (greedy)
//! ```
//!
//! with `obs' = obs·residual_scale` (and the previous command scaled to [−1, 1], when read).
//! Not in the file: the KL budget (`[exploration]`, a bisection at each state; the file is the
//! unconstrained π̂), the supervisor's limits, and the sampled method (its greedy action weighs
//! random draws from the prior, so it is refused).

use std::path::Path;

use anyhow::{bail, Context, Result};
use prost::Message;
use tract_onnx::pb;

use crate::algo::core::ResidualLearner;
use crate::bundle::{ActionSpace, Bundle, Method};
use crate::error::Fixable;
use crate::nn::{Activation, Mlp};
use crate::policy::prior::{Family, PriorKind, LOG_STD_MAX, LOG_STD_MIN};

/// The graph under construction: nodes and constants appended in order.
struct Graph {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    count: usize,
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

fn value_info(name: &str, elem: pb::tensor_proto::DataType, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v),
                None => Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("resq/{base}_{}", self.count)
    }

    /// Appends `op` on `inputs`; returns its output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(pb::NodeProto {
            op_type: op.into(),
            name: out.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    fn floats(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(base);
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    fn ints(&mut self, base: &str, data: &[i64]) -> String {
        let name = self.fresh(base);
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// `x·scale + shift`, per column (skipped where they are 1 and 0).
    fn affine(&mut self, x: &str, scale: &[f32], shift: &[f32]) -> String {
        let mut y = x.to_string();
        if scale.iter().any(|s| *s != 1.0) {
            let s = self.floats("scale", &[scale.len()], scale);
            y = self.op("Mul", &[&y, &s], vec![]);
        }
        if shift.iter().any(|s| *s != 0.0) {
            let s = self.floats("shift", &[shift.len()], shift);
            y = self.op("Add", &[&y, &s], vec![]);
        }
        y
    }

    /// Columns `from..to` of a `[N, w]` tensor.
    fn columns(&mut self, x: &str, from: usize, to: usize) -> String {
        let idx = self.ints("columns", &(from as i64..to as i64).collect::<Vec<_>>());
        self.op("Gather", &[x, &idx], vec![attr_int("axis", 1)])
    }

    /// The MLP `net` on `x`: `act(x·W + b)` per layer.
    fn mlp(&mut self, x: &str, net: &Mlp) -> String {
        let mut h = x.to_string();
        for layer in &net.layers {
            let (i, o) = (layer.w.nrows(), layer.w.ncols());
            let w = self.floats("w", &[i, o], layer.w.as_slice().expect("standard layout"));
            let b = self.floats("b", &[o], layer.b.as_slice().expect("contiguous"));
            let xw = self.op("MatMul", &[&h, &w], vec![]);
            h = self.op("Add", &[&xw, &b], vec![]);
            h = match layer.act {
                Activation::Identity => h,
                Activation::Relu => self.op("Relu", &[&h], vec![]),
                Activation::Tanh => self.op("Tanh", &[&h], vec![]),
                Activation::Sigmoid => self.op("Sigmoid", &[&h], vec![]),
                Activation::LeakyRelu(a) => self.op("LeakyRelu", &[&h], vec![attr_float("alpha", a)]),
                Activation::Elu(a) => self.op("Elu", &[&h], vec![attr_float("alpha", a)]),
                Activation::Softplus => self.op("Softplus", &[&h], vec![]),
                // Residual heads use the manifest's activations; these come only from priors,
                // whose own graph is embedded as it was.
                Activation::Silu | Activation::Gelu | Activation::GeluTanh => {
                    unreachable!("a residual head with a prior-only activation")
                }
            };
        }
        h
    }
}

/// What was written.
pub struct Exported {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub nodes: usize,
}

/// Writes the customized policy of `bundle` with `learner`'s weights to `out`.
pub fn export(bundle: &Bundle, learner: &dyn ResidualLearner, out: &Path) -> Result<Exported> {
    if bundle.method == Method::Sampled {
        return Err(Fixable::new(
            "the sampled method's policy weighs random draws from the prior at every state, which one ONNX graph cannot reproduce",
            "customize with `residual.method = \"sac\"` or `\"rpg\"` to export a policy, or deploy with resq",
        )
        .into());
    }
    let prior_path = bundle.dir.join(&bundle.manifest.prior.file);
    let bytes = std::fs::read(&prior_path).with_context(|| format!("reading {}", prior_path.display()))?;
    let mut model = pb::ModelProto::decode(&bytes[..])
        .with_context(|| format!("{}: not an ONNX model", prior_path.display()))?;
    let mut graph = model.graph.take().context("the prior has no graph")?;

    // The prior's graph under `prior/`, its input renamed `obs`.
    let initializers: std::collections::HashSet<String> =
        graph.initializer.iter().map(|t| t.name.clone()).collect();
    let input = graph
        .input
        .iter()
        .find(|i| !initializers.contains(&i.name))
        .context("the prior has no input")?
        .clone();
    let rename = |n: &str| -> String {
        if n.is_empty() {
            String::new()
        } else if n == input.name {
            "obs".into()
        } else {
            format!("prior/{n}")
        }
    };
    // Node names must be unique in the exported graph; exporters often leave them empty.
    let mut names = std::collections::HashSet::new();
    for (i, node) in graph.node.iter_mut().enumerate() {
        if node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
            bail!(
                "{}: node `{}` ({}) holds a subgraph; resq exports priors without control flow",
                prior_path.display(),
                node.name,
                node.op_type
            );
        }
        node.input.iter_mut().for_each(|n| *n = rename(n));
        node.output.iter_mut().for_each(|n| *n = rename(n));
        node.name = match node.name.as_str() {
            "" => format!("prior/{}_{i}", node.op_type),
            n => format!("prior/{n}"),
        };
        let base = node.name.clone();
        let mut k = i;
        while !names.insert(node.name.clone()) {
            node.name = format!("{base}_{k}");
            k += 1;
        }
    }
    graph.initializer.iter_mut().for_each(|t| t.name = rename(&t.name));
    graph.value_info.iter_mut().for_each(|v| v.name = rename(&v.name));
    let prior_outputs: Vec<String> = graph.output.iter().map(|o| rename(&o.name)).collect();

    let mut g = Graph {
        nodes: std::mem::take(&mut graph.node),
        inits: std::mem::take(&mut graph.initializer),
        count: 0,
    };
    let n_obs = bundle.obs.len();
    let n_cmd = bundle.commands.len();
    let refs: Vec<&str> = prior_outputs.iter().map(String::as_str).collect();
    let raw =
        if refs.len() == 1 { refs[0].to_string() } else { g.op("Concat", &refs, vec![attr_int("axis", 1)]) };

    // The residual's input.
    let mut inputs = vec![value_info("obs", pb::tensor_proto::DataType::Float, &[None, Some(n_obs as i64)])];
    let mut res_in = g.affine("obs", &bundle.obs.residual_scale, &vec![0.0; n_obs]);
    if bundle.prev_command_input {
        inputs.push(value_info(
            "prev_command",
            pb::tensor_proto::DataType::Float,
            &[None, Some(n_cmd as i64)],
        ));
        let lim = &bundle.safety.limits;
        let scale: Vec<f32> = (0..n_cmd).map(|j| 2.0 / (lim.max[j] - lim.min[j])).collect();
        let shift: Vec<f32> =
            (0..n_cmd).map(|j| -(lim.min[j] + lim.max[j]) / (lim.max[j] - lim.min[j])).collect();
        let prev = g.affine("prev_command", &scale, &shift);
        res_in = g.op("Concat", &[&res_in, &prev], vec![attr_int("axis", 1)]);
    }
    // As learned: the trade-off's multiplier included (`Bundle::weights`).
    let (omega, alpha) = bundle.weights();
    let float = pb::tensor_proto::DataType::Float;
    let outputs = match &bundle.action_space {
        ActionSpace::Discrete => {
            let n_act = bundle.n_actions();
            let scaled = match bundle.prior.kind {
                PriorKind::DiscreteQ { temperature } => {
                    g.affine(&raw, &vec![1.0 / temperature; n_act], &vec![0.0; n_act])
                }
                PriorKind::DiscreteProbs => g.op("Log", &[&raw], vec![]),
                _ => raw.clone(),
            };
            let logp0 = g.op("LogSoftmax", &[&scaled], vec![attr_int("axis", 1)]);
            let head = g.mlp(&res_in, &learner.core().online);
            // As the controller acts (RPG: ω' = α̂ = 1, and the scalings drop out).
            let (w, a) = bundle.acting_weights();
            let weighted = g.affine(&logp0, &vec![w; n_act], &vec![0.0; n_act]);
            let sum = g.op("Add", &[&head, &weighted], vec![]);
            let logits = g.affine(&sum, &vec![1.0 / a; n_act], &vec![0.0; n_act]);
            let log_probs = g.op("LogSoftmax", &[&logits], vec![attr_int("axis", 1)]);
            let action = g.op("ArgMax", &[&log_probs], vec![attr_int("axis", 1), attr_int("keepdims", 0)]);
            let table: Vec<f32> = bundle.action_table.iter().flatten().copied().collect();
            let table = g.floats("action_table", &[n_act, n_cmd], &table);
            let command = g.op("Gather", &[&table, &action], vec![attr_int("axis", 0)]);
            vec![
                ("log_probs", log_probs, value_info("log_probs", float, &[None, Some(n_act as i64)])),
                ("action", action, value_info("action", pb::tensor_proto::DataType::Int64, &[None])),
                ("command", command, value_info("command", float, &[None, Some(n_cmd as i64)])),
            ]
        }
        ActionSpace::Continuous { low, high } => {
            let actor = learner.actor().context("this method has no actor to export")?;
            let ad = low.len();
            let family = bundle.prior.kind.family().expect("a continuous prior");
            // The prior's Gaussian in [−1, 1] units (as `ContinuousActor::set_params`).
            let (mid, half): (Vec<f32>, Vec<f32>) = match family {
                Family::Squashed => (vec![0.0; ad], vec![1.0; ad]),
                Family::Clipped => low.iter().zip(high).map(|(l, h)| (0.5 * (l + h), 0.5 * (h - l))).unzip(),
            };
            let mean_raw = g.columns(&raw, 0, ad);
            let mean0 = g.affine(
                &mean_raw,
                &half.iter().map(|h| 1.0 / h).collect::<Vec<_>>(),
                &mid.iter().zip(&half).map(|(m, h)| -m / h).collect::<Vec<_>>(),
            );
            let log_std0 = match bundle.prior.kind {
                PriorKind::Deterministic { std } => {
                    let c: Vec<f32> = half.iter().map(|h| std.ln() - h.ln()).collect();
                    let zero = g.affine(&mean0, &vec![0.0; ad], &vec![0.0; ad]);
                    let c = g.floats("log_std", &[ad], &c);
                    g.op("Add", &[&zero, &c], vec![])
                }
                _ => {
                    let ls = g.columns(&raw, ad, 2 * ad);
                    g.affine(&ls, &vec![1.0; ad], &half.iter().map(|h| -h.ln()).collect::<Vec<_>>())
                }
            };
            let delta = g.mlp(&res_in, actor);
            let d_mean = g.columns(&delta, 0, ad);
            let d_ls = g.columns(&delta, ad, 2 * ad);
            let mean = g.op("Add", &[&mean0, &d_mean], vec![]);
            let ls = g.op("Add", &[&log_std0, &d_ls], vec![]);
            let lo = g.floats("log_std_min", &[1], &[LOG_STD_MIN]);
            let hi = g.floats("log_std_max", &[1], &[LOG_STD_MAX]);
            let ls = g.op("Max", &[&ls, &lo], vec![]);
            let log_std = g.op("Min", &[&ls, &hi], vec![]);
            let unit = match family {
                Family::Squashed => g.op("Tanh", &[&mean], vec![]),
                Family::Clipped => {
                    let m1 = g.floats("minus_one", &[1], &[-1.0]);
                    let p1 = g.floats("one", &[1], &[1.0]);
                    let c = g.op("Max", &[&mean, &m1], vec![]);
                    g.op("Min", &[&c, &p1], vec![])
                }
            };
            let scale: Vec<f32> = low.iter().zip(high).map(|(l, h)| 0.5 * (h - l)).collect();
            let shift: Vec<f32> = low.iter().zip(high).map(|(l, h)| l + 0.5 * (h - l)).collect();
            let command = g.affine(&unit, &scale, &shift);
            vec![
                ("command", command, value_info("command", float, &[None, Some(ad as i64)])),
                ("mean", mean, value_info("mean", float, &[None, Some(ad as i64)])),
                ("log_std", log_std, value_info("log_std", float, &[None, Some(ad as i64)])),
            ]
        }
    };
    // Name the outputs: an Identity from each result to its public name.
    let mut output_infos = Vec::new();
    for (name, from, info) in outputs {
        g.nodes.push(pb::NodeProto {
            op_type: "Identity".into(),
            name: format!("resq/output_{name}"),
            input: vec![from],
            output: vec![name.into()],
            ..Default::default()
        });
        output_infos.push(info);
    }
    let exported = Exported {
        inputs: inputs.iter().map(|i| i.name.clone()).collect(),
        outputs: output_infos.iter().map(|o| o.name.clone()).collect(),
        nodes: g.nodes.len(),
    };
    graph.node = g.nodes;
    graph.initializer = g.inits;
    graph.input = inputs;
    graph.output = output_infos;
    graph.name = format!("resq customized {}", bundle.manifest.bundle.name);
    model.graph = Some(graph);
    model.producer_name = "resq".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    let meta = [
        ("resq.bundle", bundle.manifest.bundle.name.clone()),
        ("resq.method", format!("{:?}", bundle.method)),
        ("resq.omega", omega.to_string()),
        ("resq.alpha", alpha.to_string()),
        ("resq.prior_kind", bundle.prior.kind.name().to_string()),
    ];
    model
        .metadata_props
        .extend(meta.into_iter().map(|(key, value)| pb::StringStringEntryProto { key: key.into(), value }));
    crate::store::checkpoint::write_atomically(out, &model.encode_to_vec())?;
    Ok(exported)
}
