"""Small ONNX graphs for resq's prior-loading tests, with onnxruntime golden outputs.

    python3 scripts/make_test_models.py      # writes tests/data/onnx/*.onnx and *_golden.json

- dense_matmul_tanh.onnx: MatMul+Add / Tanh / MatMul+Add (resq compiles it to its own kernels)
- logsoftmax_head.onnx:   Gemm / Relu / Gemm / LogSoftmax (resq computes the head stably)
- unsupported_op.onnx:    an operator no runtime knows (loading must fail with a clear message)
- masked_logits.onnx:     4 -> 16 tanh -> 3 logits, the third always -inf (a masked action)
- nan_when_x_negative.onnx: 4 -> 2 logits + sqrt(obs[0]): NaN whenever obs[0] < 0 (a prior
                          that fails on part of the state space)
- nan_gaussian_actor.onnx: 3 -> [mean, log_std] + sqrt(obs[0]): a 1-D Gaussian actor that is NaN
                          whenever obs[0] < 0 (the pendulum hangs below horizontal)
- normalized_elu_softplus.onnx: the shapes exporters produce around a dense net: a no-op
                          float->float Cast, input normalisation (Sub, Div by constants), Gemm
                          (transB) / Elu / MatMul+Add / Softplus / Gemm, an output scale (Mul),
                          dynamic batch (resq folds the affine parts into its dense layers)
- logsoftmax_extreme.onnx: Gemm / Tanh / Gemm / LogSoftmax with logits hundreds apart, as a
                          torch.dynamo export of a sharp policy gives: onnxruntime's log-probabilities
                          are finite (down to about -700) where tract's ln(softmax) underflows to -inf
- clipped_gaussian_heads.onnx: a SAC-style actor, trunk Gemm/Relu then a mean Gemm head and a
                          log-std Gemm head behind Clip(-2, 0.5) (active on most inputs); golden is
                          both outputs side by side
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "onnx")
rng = np.random.default_rng(0)


def io(name, width):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])


def save(model, name, n_in, golden=True, concat=False):
    """Writes the model and (golden) onnxruntime's outputs for 32 inputs; without golden, the
    random draws are still made, so the other files stay the same."""
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model, path)
    x = rng.standard_normal((32, n_in)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    y = np.concatenate(outs, axis=1) if concat else outs[0]
    if not golden:  # non-finite outputs are not JSON
        return
    with open(os.path.join(OUT, name + "_golden.json"), "w") as f:
        json.dump({"generator": "scripts/make_test_models.py", "onnxruntime_version": ort.__version__,
                   "inputs": x.tolist(), "outputs": y.tolist()}, f)


def w(*shape):
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


os.makedirs(OUT, exist_ok=True)

# 1. MatMul+Add chain with tanh.
inits = [numpy_helper.from_array(w(4, 16), "w1"), numpy_helper.from_array(w(16), "b1"),
         numpy_helper.from_array(w(16, 2), "w2"), numpy_helper.from_array(w(2), "b2")]
nodes = [helper.make_node("MatMul", ["obs", "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["z1"]),
         helper.make_node("Tanh", ["z1"], ["a1"]), helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
         helper.make_node("Add", ["b2", "h2"], ["q"])]
g = helper.make_graph(nodes, "dense", [io("obs", 4)], [io("q", 2)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "dense_matmul_tanh", 4)

# 2. A log-softmax head: valid, but not a dense chain.
inits = [numpy_helper.from_array(w(4, 8).T.copy(), "w1"), numpy_helper.from_array(w(8), "b1"),
         numpy_helper.from_array(w(8, 3).T.copy(), "w2"), numpy_helper.from_array(w(3), "b2")]
nodes = [helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"], transB=1), helper.make_node("Relu", ["z1"], ["a1"]),
         helper.make_node("Gemm", ["a1", "w2", "b2"], ["z2"], transB=1),
         helper.make_node("LogSoftmax", ["z2"], ["logits"], axis=1)]
g = helper.make_graph(nodes, "logsoftmax", [io("obs", 4)], [io("logits", 3)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "logsoftmax_head", 4)

# 3. An operator nobody implements.
nodes = [helper.make_node("FrobnicateQ", ["obs"], ["q"])]
g = helper.make_graph(nodes, "bad", [io("obs", 4)], [io("q", 2)])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
onnx.save(m, os.path.join(OUT, "unsupported_op.onnx"))
# 4. A masked action: the third logit's bias is -inf.
b2 = w(3)
b2[2] = -np.inf
inits = [numpy_helper.from_array(w(4, 16), "w1"), numpy_helper.from_array(w(16), "b1"),
         numpy_helper.from_array(w(16, 3), "w2"), numpy_helper.from_array(b2, "b2")]
nodes = [helper.make_node("MatMul", ["obs", "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["z1"]),
         helper.make_node("Tanh", ["z1"], ["a1"]), helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
         helper.make_node("Add", ["h2", "b2"], ["logits"])]
g = helper.make_graph(nodes, "masked", [io("obs", 4)], [io("logits", 3)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "masked_logits", 4, golden=False)

# 5. NaN on half the state space: logits + sqrt(obs[:, 0:1]) (the same for both actions where
# finite; tract folds a product with 0 away, so no `0 * sqrt`).
inits = [numpy_helper.from_array(w(4, 2), "w1"), numpy_helper.from_array(w(2), "b1"),
         numpy_helper.from_array(np.array([0], np.int64), "start"),
         numpy_helper.from_array(np.array([1], np.int64), "end"),
         numpy_helper.from_array(np.array([1], np.int64), "axis")]
nodes = [helper.make_node("MatMul", ["obs", "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["z1"]),
         helper.make_node("Slice", ["obs", "start", "end", "axis"], ["x0"]),
         helper.make_node("Sqrt", ["x0"], ["r"]), helper.make_node("Add", ["z1", "r"], ["logits"])]
g = helper.make_graph(nodes, "nan_when_x_negative", [io("obs", 4)], [io("logits", 2)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "nan_when_x_negative", 4, golden=False)
# 6. A continuous actor with the same fault: [mean, log_std] + sqrt(obs[:, 0:1]).
b = w(2)
b[1] = -1.0  # log_std around -1
inits = [numpy_helper.from_array(w(3, 2) * 0.1, "w1"), numpy_helper.from_array(b, "b1"),
         numpy_helper.from_array(np.array([0], np.int64), "start"),
         numpy_helper.from_array(np.array([1], np.int64), "end"),
         numpy_helper.from_array(np.array([1], np.int64), "axis")]
nodes = [helper.make_node("MatMul", ["obs", "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["z1"]),
         helper.make_node("Slice", ["obs", "start", "end", "axis"], ["x0"]),
         helper.make_node("Sqrt", ["x0"], ["r"]), helper.make_node("Add", ["z1", "r"], ["params"])]
g = helper.make_graph(nodes, "nan_gaussian_actor", [io("obs", 3)], [io("params", 2)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "nan_gaussian_actor", 3, golden=False)
# 7. Exporter-style dressing around a dense net (appended last: the files above stay the same).
inits = [numpy_helper.from_array(np.array([0.5, -1.0, 0.1, 2.0], np.float32), "mean"),
         numpy_helper.from_array(np.array([2.0, 0.5, 1.5, 4.0], np.float32), "std"),
         numpy_helper.from_array(w(16, 4), "w1"), numpy_helper.from_array(w(16), "b1"),
         numpy_helper.from_array(w(16, 16), "w2"), numpy_helper.from_array(w(16), "b2"),
         numpy_helper.from_array(w(16, 3), "w3"), numpy_helper.from_array(w(3), "b3"),
         numpy_helper.from_array(np.array(2.5, np.float32), "out_scale")]
nodes = [helper.make_node("Cast", ["obs"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("Sub", ["x", "mean"], ["xc"]), helper.make_node("Div", ["xc", "std"], ["xn"]),
         helper.make_node("Gemm", ["xn", "w1", "b1"], ["h1"], transB=1), helper.make_node("Elu", ["h1"], ["a1"], alpha=0.7),
         helper.make_node("MatMul", ["a1", "w2"], ["h2"]), helper.make_node("Add", ["h2", "b2"], ["z2"]),
         helper.make_node("Softplus", ["z2"], ["a2"]), helper.make_node("Gemm", ["a2", "w3", "b3"], ["h3"]),
         helper.make_node("Mul", ["h3", "out_scale"], ["q"])]
g = helper.make_graph(nodes, "normalized_elu_softplus", [io("obs", 4)], [io("q", 3)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "normalized_elu_softplus", 4)
# 8. A sharp log-softmax head (appended last).
inits = [numpy_helper.from_array(w(4, 16).T.copy(), "w1"), numpy_helper.from_array(w(16), "b1"),
         numpy_helper.from_array((w(16, 3) * 150).T.copy(), "w2"), numpy_helper.from_array(w(3), "b2")]
nodes = [helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"], transB=1), helper.make_node("Tanh", ["z1"], ["a1"]),
         helper.make_node("Gemm", ["a1", "w2", "b2"], ["z2"], transB=1),
         helper.make_node("LogSoftmax", ["z2"], ["logp"], axis=-1)]
g = helper.make_graph(nodes, "logsoftmax_extreme", [io("obs", 4)], [io("logp", 3)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), "logsoftmax_extreme", 4)
# 9. Gemm heads on one trunk, the log-std one clipped (appended last).
inits = [numpy_helper.from_array(w(3, 16).T.copy(), "w1"), numpy_helper.from_array(w(16), "b1"),
         numpy_helper.from_array(w(16, 2).T.copy(), "wm"), numpy_helper.from_array(w(2), "bm"),
         numpy_helper.from_array((w(16, 2) * 4).T.copy(), "ws"), numpy_helper.from_array(w(2), "bs"),
         numpy_helper.from_array(np.array(-2.0, np.float32), "lo"),
         numpy_helper.from_array(np.array(0.5, np.float32), "hi")]
nodes = [helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"], transB=1), helper.make_node("Relu", ["z1"], ["a1"]),
         helper.make_node("Gemm", ["a1", "wm", "bm"], ["mean"], transB=1),
         helper.make_node("Gemm", ["a1", "ws", "bs"], ["ls"], transB=1),
         helper.make_node("Clip", ["ls", "lo", "hi"], ["log_std"])]
g = helper.make_graph(nodes, "clipped_gaussian_heads", [io("obs", 3)], [io("mean", 2), io("log_std", 2)], inits)
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "clipped_gaussian_heads", 3, concat=True)
print("wrote", sorted(os.listdir(OUT)))
