"""ONNX priors exported by PyTorch with the activations exporters write as several nodes or as
newer operators, for resq's prior-compiler tests, with onnxruntime golden outputs.

    python3 scripts/make_torch_test_models.py   # writes tests/data/onnx/torch_*.onnx and *_golden.json

- torch_silu_gelu.onnx (opset 17, legacy exporter): Linear / SiLU / Linear / GELU / Linear, 4 -> 32
  -> 32 -> 3 logits. SiLU is exported as Sigmoid + Mul, GELU as Div(sqrt 2) / Erf / Add / Mul / Mul.
- torch_softmax_head.onnx (opset 17): Linear / Tanh / Linear / Softmax, 4 -> 16 -> 3 probabilities,
  logits scaled up (a sharp policy: probabilities down to about 2e-18).
- cartpole_bc_softmax.onnx: models/cartpole-bc/prior.onnx with a Softmax appended to its logits,
  as an exporter that includes the policy's softmax writes it (kind `discrete_probs`; tests/export.rs
  customizes CartPole with it).
- torch_gelu_op20.onnx (opset 20): Linear / GELU(tanh) / Linear / GELU / Linear, 4 -> 32 -> 32 -> 3,
  exported as ONNX `Gelu` operators (approximate = "tanh" and "none").
"""
import json
import os
import warnings

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "onnx")
torch.manual_seed(0)
rng = np.random.default_rng(1)


def export(net, name, opset):
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(net, (torch.zeros(1, 4),), path, dynamo=False, opset_version=opset, input_names=["obs"],
                      output_names=["logits"], dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}})
    x = (2.0 * rng.standard_normal((32, 4))).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"obs": x})
    with torch.no_grad():
        assert np.allclose(net(torch.from_numpy(x)).numpy(), y, atol=1e-5)
    with open(os.path.join(OUT, name + "_golden.json"), "w") as f:
        json.dump({"generator": "scripts/make_torch_test_models.py", "onnxruntime_version": ort.__version__,
                   "torch_version": torch.__version__, "inputs": x.tolist(), "outputs": y.tolist()}, f)


export(nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 3)), "torch_silu_gelu", 17)
export(nn.Sequential(nn.Linear(4, 32), nn.GELU(approximate="tanh"), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 3)),
       "torch_gelu_op20", 20)
sharp = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3), nn.Softmax(dim=-1))
with torch.no_grad():
    sharp[2].weight.mul_(40.0)
export(sharp, "torch_softmax_head", 17)

import onnx  # noqa: E402
from onnx import helper  # noqa: E402

bc = onnx.load(os.path.join(OUT, "..", "..", "..", "models", "cartpole-bc", "prior.onnx"))
logits = bc.graph.output[0].name
bc.graph.node.append(helper.make_node("Softmax", [logits], ["probs"], axis=-1))
bc.graph.output[0].name = "probs"
onnx.checker.check_model(bc)
onnx.save(bc, os.path.join(OUT, "cartpole_bc_softmax.onnx"))
print("wrote torch_silu_gelu.onnx, torch_gelu_op20.onnx, torch_softmax_head.onnx, cartpole_bc_softmax.onnx")
