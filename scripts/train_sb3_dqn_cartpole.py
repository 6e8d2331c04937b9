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

import gymnasium as gym
from sb3_cartpole import export, print_returns
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

print_returns(model)

y = export(model.q_net.q_net.eval(), a.out, "q", "scripts/train_sb3_dqn_cartpole.py")  # Linear/ReLU/Linear/ReLU/Linear
print("q range on the golden inputs:", float(y.min()), float(y.max()))
