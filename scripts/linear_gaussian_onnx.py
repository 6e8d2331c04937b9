"""A linear Gaussian actor as an ONNX file, as resq's Gaussian priors take it: `mean = obs·W + b`
and a constant `log_std`, as two Gemm heads on an identity trunk (so both outputs have the batch's
rows). Shared by make_hopper_prior.py and make_invertedpendulum_prior.py."""
import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


def save_linear_gaussian(W, b, std, name, path):
    """Writes the actor `mean = obs·W + b` (W: [n_obs, n_act]), `log_std = ln std`, to `path`
    with graph name `name`: input `obs` [batch, n_obs], outputs `mean` and `log_std` [batch, n_act]."""
    n_obs, n_act = W.shape
    init = [
        nh.from_array(np.eye(n_obs, dtype=np.float32), "trunk_w"),
        nh.from_array(np.zeros(n_obs, np.float32), "trunk_b"),
        nh.from_array(np.asarray(W, np.float32), "mean_w"),
        nh.from_array(np.asarray(b, np.float32), "mean_b"),
        nh.from_array(np.zeros((n_obs, n_act), np.float32), "log_std_w"),
        nh.from_array(np.full(n_act, np.log(std), np.float32), "log_std_b"),
    ]
    nodes = [
        h.make_node("Gemm", ["obs", "trunk_w", "trunk_b"], ["h"]),
        h.make_node("Gemm", ["h", "mean_w", "mean_b"], ["mean"]),
        h.make_node("Gemm", ["h", "log_std_w", "log_std_b"], ["log_std"]),
    ]
    graph = h.make_graph(
        nodes,
        name,
        [h.make_tensor_value_info("obs", T.FLOAT, ["batch", n_obs])],
        [h.make_tensor_value_info("mean", T.FLOAT, ["batch", n_act]),
         h.make_tensor_value_info("log_std", T.FLOAT, ["batch", n_act])],
        init,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print("wrote", path)
