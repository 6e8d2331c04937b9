"""What the Stable-Baselines3 CartPole prior scripts share (train_sb3_dqn_cartpole.py,
train_sb3_ppo_cartpole.py): the policy's return on fixed starts, and the ONNX export with its
onnxruntime golden file (64 inputs in gymnasium's raw observation units)."""
import json
import os

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import torch


def print_returns(model, deterministic=True, episodes=20):
    """Prints the model's return over `episodes` CartPole-v1 episodes from seeds 10 000 + i."""
    env = gym.make("CartPole-v1")
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done, ret = False, 0.0
        while not done:
            act, _ = model.predict(obs, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(act)
            ret += r
            done = term or trunc
        returns.append(ret)
    kind = "greedy" if deterministic else "sampled"
    print(f"{kind} return over {episodes} episodes: mean {np.mean(returns):.1f}, min {np.min(returns):.1f}")


def export(net, out, output_name, generator):
    """Exports `net` (obs [batch, 4] -> [batch, 2]) to `<out>.onnx` with input `obs` and a dynamic
    batch, checks onnxruntime against torch, and writes `<out>_golden.json`. Returns the golden
    outputs."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    path = out + ".onnx"
    torch.onnx.export(net, torch.zeros(1, 4), path, input_names=["obs"], output_names=[output_name],
                      dynamic_axes={"obs": {0: "batch"}, output_name: {0: "batch"}}, opset_version=17,
                      dynamo=False)
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32) * np.array([1.0, 1.0, 0.1, 1.0], np.float32)
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"obs": x})[0]
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.allclose(y, ref, atol=1e-5), float(np.abs(y - ref).max())
    with open(out + "_golden.json", "w") as f:
        json.dump({"generator": generator, "onnxruntime_version": ort.__version__,
                   "inputs": x.tolist(), "outputs": y.tolist()}, f)
    print("wrote", path)
    return y
