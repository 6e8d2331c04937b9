"""A PPO CartPole prior from Stable-Baselines3, exported to ONNX as users export an actor: the
policy network's action logits on raw gymnasium observations (tanh MLP, SB3's default), no value
head, no temperature.

    pip install stable-baselines3 torch onnx onnxruntime gymnasium   # not part of the tests
    python3 scripts/train_sb3_ppo_cartpole.py [--seed 0] [--out tests/data/onnx/sb3_ppo_cartpole]

Hyperparameters are RL Zoo's for CartPole-v1 (8 environments, linear schedules). Writes
`<out>.onnx` (input `obs` [batch, 4], raw observations; output `logits` [batch, 2]) and
`<out>_golden.json` (onnxruntime's outputs for 64 inputs), and prints the greedy and the sampled
policy's returns over 20 episodes each.
"""
import argparse

import numpy as np
import torch
from sb3_cartpole import export, print_returns
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=100_000)
p.add_argument("--out", default="tests/data/onnx/sb3_ppo_cartpole")
a = p.parse_args()


def linear(start):
    return lambda progress: progress * start


model = PPO(
    "MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=a.seed), n_steps=32, batch_size=256,
    gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3),
    clip_range=linear(0.2), seed=a.seed, verbose=0,
)
model.learn(total_timesteps=a.steps)

for deterministic in (True, False):
    print_returns(model, deterministic)


class Actor(torch.nn.Module):
    """obs -> action logits: SB3's features, actor trunk and action head."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs):
        latent = self.policy.mlp_extractor.forward_actor(self.policy.extract_features(obs))
        return self.policy.action_net(latent)


y = export(Actor(model.policy).eval(), a.out, "logits", "scripts/train_sb3_ppo_cartpole.py")
gap = np.abs(y[:, 0] - y[:, 1])
print(f"logit gap on the golden inputs: median {np.median(gap):.2f}, max {gap.max():.2f}")
