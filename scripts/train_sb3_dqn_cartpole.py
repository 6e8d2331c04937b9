"""A plain (hard) DQN CartPole prior from Stable-Baselines3, exported to ONNX as users export it:
the Q-network on raw gymnasium observations, no temperature of its own.

    pip install stable-baselines3 torch onnx onnxruntime gymnasium   # not part of the tests
    python3 scripts/train_sb3_dqn_cartpole.py [--seed 0] [--out tests/data/onnx/sb3_dqn_cartpole]

Hyperparameters are RL Zoo's for CartPole-v1. Writes `<out>.onnx` (input `obs` [batch, 4], raw
gymnasium observations; output `q` [batch, 2]) and `<out>_golden.json` (onnxruntime's outputs
for 64 inputs), and prints the greedy policy's return over 20 episodes. The committed file:
seed 0, greedy return 500 on all 20 episodes, Q-values up to about 100.
"""
import argparse
import json
import os

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import torch
from stable_baselines3 import DQN

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=50_000)
p.add_argument("--out", default="tests/data/onnx/sb3_dqn_cartpole")
a = p.parse_args()

env = gym.make("CartPole-v1")
model = DQN(
    "MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
    gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
    exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]), seed=a.seed, verbose=0,
)
model.learn(total_timesteps=a.steps)

returns = []
for ep in range(20):
    obs, _ = env.reset(seed=10_000 + ep)
    done, ret = False, 0.0
    while not done:
        act, _ = model.predict(obs, deterministic=True)
        obs, r, term, trunc, _ = env.step(act)
        ret += r
        done = term or trunc
    returns.append(ret)
print(f"greedy return over 20 episodes: mean {np.mean(returns):.1f}, min {np.min(returns):.1f}")

q_net = model.q_net.q_net.eval()  # the Sequential: Linear/ReLU/Linear/ReLU/Linear
os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
path = a.out + ".onnx"
torch.onnx.export(q_net, torch.zeros(1, 4), path, input_names=["obs"], output_names=["q"],
                  dynamic_axes={"obs": {0: "batch"}, "q": {0: "batch"}}, opset_version=17, dynamo=False)
x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32) * np.array([1.0, 1.0, 0.1, 1.0], np.float32)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
y = sess.run(None, {"obs": x})[0]
with open(a.out + "_golden.json", "w") as f:
    json.dump({"generator": "scripts/train_sb3_dqn_cartpole.py", "onnxruntime_version": ort.__version__,
               "inputs": x.tolist(), "outputs": y.tolist()}, f)
print("wrote", path, "q range on the golden inputs:", float(y.min()), float(y.max()))
