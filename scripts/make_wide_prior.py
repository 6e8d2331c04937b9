"""A wide, deep dense prior for the load check's tolerance, with onnxruntime golden outputs.

    python3 scripts/make_wide_prior.py     # writes tests/data/onnx/wide_gemm_relu.onnx (+ _golden.json)

The shape of the RQL authors' CartPole prior: 4 -> 256 -> 256 -> 2, Gemm / Relu / Gemm / Relu /
Gemm, with weights at the scale of a trained soft-Q network (outputs of tens to a hundred). Two
float32 runtimes that sum in different orders disagree on such a network by more than 1e-5
relative (the load check's former fixed limit): resq's compiled kernels and tract do, and so do
onnxruntime and float64, which the script prints.
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "onnx")
rng = np.random.default_rng(256)
sizes = [4, 256, 256, 2]
ws = [rng.normal(0.0, 2.0 / np.sqrt(a), size=(a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
bs = [rng.normal(0.0, 0.5, size=b).astype(np.float32) for b in sizes[1:]]
ws[-1] *= 8.0  # a Q-value head: outputs of tens

nodes, inits, x = [], [], "obs"
for i, (w, b) in enumerate(zip(ws, bs)):
    inits += [numpy_helper.from_array(w.T.copy(), f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
    y = "q" if i == len(ws) - 1 else f"h{i}"
    nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y + ("" if y == "q" else "_pre")], transB=1))
    if y != "q":
        nodes.append(helper.make_node("Relu", [y + "_pre"], [y]))
    x = y
g = helper.make_graph(
    nodes,
    "wide",
    [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch", 2])],
    inits,
)
model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
path = os.path.join(OUT, "wide_gemm_relu.onnx")
onnx.save(model, path)

obs = rng.uniform(-5, 5, size=(64, 4)).astype(np.float32)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
(q,) = sess.run(None, {"obs": obs})
h = obs.astype(np.float64)
for i, (w, b) in enumerate(zip(ws, bs)):
    h = h @ w.astype(np.float64) + b
    if i < len(ws) - 1:
        h = np.maximum(h, 0.0)
rel = np.max(np.abs(q - h) / (1.0 + np.abs(h)))
print(f"outputs {np.abs(h).min():.1f}..{np.abs(h).max():.1f}; onnxruntime vs float64: {rel:.2e} relative")
with open(os.path.join(OUT, "wide_gemm_relu_golden.json"), "w") as f:
    json.dump({"inputs": obs.tolist(), "outputs": q.tolist()}, f)
