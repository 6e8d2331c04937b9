"""Pendulum-v1 priors from Stable-Baselines3, exported to ONNX as users export an actor: a SAC actor
(the squashed Gaussian SB3 samples from) and a PPO Gaussian actor (mean and its state-independent
log-std), both on raw gymnasium observations (cos θ, sin θ, θ̇).

    pip install stable-baselines3 torch onnx onnxruntime gymnasium   # not part of the tests
    python3 scripts/train_sb3_pendulum.py --algo sac [--seed 0] [--out tests/data/onnx/sb3_sac_pendulum]
    python3 scripts/train_sb3_pendulum.py --algo ppo [--seed 0] [--out tests/data/onnx/sb3_ppo_pendulum]

SAC: RL Zoo's hyperparameters for Pendulum-v1 (20 000 steps, learning rate 1e-3, entropy
coefficient "auto"); the script prints the entropy coefficient SAC ended training with, which
docs/priors.md says to use as the bundle's ω' = α̂. Outputs "mean" and "log_std" of `u`
(`a = 2·tanh(u)`, SB3's clamp of log_std to [−20, 2] included): resq's `squashed_gaussian`.

PPO: RL Zoo's Pendulum-v1 settings without gSDE (whose state-dependent noise is no plain Gaussian
actor): 4 environments, 1 024 steps each per update, γ = 0.9, λ = 0.95, 10 epochs, learning rate
1e-3, 300 000 steps. Outputs "mean" (command units, N·m) and "log_std" (the policy's `log_std`
parameter, broadcast per row): resq's `gaussian`, the sample clipped to ±2 N·m as SB3 clips it.

Writes `<out>.onnx` and `<out>_golden.json` (onnxruntime's outputs for 64 inputs, checked against
torch), and prints the greedy and sampled policy's return and mean torque² over 20 episodes.
"""
import argparse
import json
import os

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.distributions import DiagGaussianDistribution, SquashedDiagGaussianDistribution
from stable_baselines3.common.env_util import make_vec_env

p = argparse.ArgumentParser()
p.add_argument("--algo", choices=["sac", "ppo"], required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=None)
p.add_argument("--out", default=None)
a = p.parse_args()
out = a.out or f"tests/data/onnx/sb3_{a.algo}_pendulum"
torch.set_num_threads(1)

if a.algo == "sac":
    model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, seed=a.seed, verbose=0)
    model.learn(total_timesteps=a.steps or 20_000)
    print(f"entropy coefficient at the end of training: {float(model.log_ent_coef.detach().exp()):.5f}")
else:
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=a.seed)
    model = PPO("MlpPolicy", env, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                learning_rate=1e-3, clip_range=0.2, seed=a.seed, verbose=0)
    model.learn(total_timesteps=a.steps or 300_000)
    print(f"log_std at the end of training: {model.policy.log_std.detach().numpy().tolist()}")


class Actor(torch.nn.Module):
    """obs [batch, 3] -> (mean, log_std), each [batch, 1]."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs):
        if a.algo == "sac":
            mean, log_std, _ = self.policy.actor.get_action_dist_params(obs)
            return mean, log_std
        pol = self.policy
        mean = pol.action_net(pol.mlp_extractor.forward_actor(pol.extract_features(obs, pol.pi_features_extractor)))
        return mean, torch.zeros_like(mean) + pol.log_std


actor = Actor(model.policy).eval()
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
torch.onnx.export(actor, torch.zeros(1, 3), out + ".onnx", input_names=["obs"], output_names=["mean", "log_std"],
                  dynamic_axes={"obs": {0: "batch"}, "mean": {0: "batch"}, "log_std": {0: "batch"}},
                  opset_version=17, dynamo=False)
rng = np.random.default_rng(0)
th = rng.uniform(-np.pi, np.pi, 64)
x = np.stack([np.cos(th), np.sin(th), rng.uniform(-8, 8, 64)], 1).astype(np.float32)
ys = ort.InferenceSession(out + ".onnx", providers=["CPUExecutionProvider"]).run(None, {"obs": x})
with torch.no_grad():
    refs = [t.numpy() for t in actor(torch.from_numpy(x))]
for y, ref in zip(ys, refs):
    assert np.allclose(y, ref, atol=1e-5), float(np.abs(y - ref).max())
# log π0 of five actions a row by SB3's own distribution classes, in float64: SAC's in [−1, 1] units
# (SB3's squashed action, before its scaling to ±2 N·m), PPO's in N·m, inside and beyond the bounds.
if a.algo == "sac":
    acts = np.concatenate([rng.uniform(-0.99, 0.99, (64, 3)), np.full((64, 1), 0.999), np.full((64, 1), -0.999)], 1)
    dist = SquashedDiagGaussianDistribution(1)
else:
    acts = np.concatenate([rng.uniform(-2.0, 2.0, (64, 3)), np.full((64, 1), 3.0), np.full((64, 1), -3.0)], 1)
    dist = DiagGaussianDistribution(1)
acts = acts.astype(np.float32).astype(np.float64)  # as resq reads them: f32 actions
m64, l64 = (torch.from_numpy(v).double() for v in ys)
lp = np.stack([dist.proba_distribution(m64, l64.clamp(-20, 2)).log_prob(torch.from_numpy(acts[:, k:k + 1])).numpy()
               for k in range(acts.shape[1])], 1)
with open(out + "_golden.json", "w") as f:
    json.dump({"generator": f"scripts/train_sb3_pendulum.py --algo {a.algo} --seed {a.seed}",
               "onnxruntime_version": ort.__version__, "inputs": x.tolist(), "mean": ys[0].tolist(),
               "log_std": ys[1].tolist(), "actions": acts[:, :, None].tolist(), "log_prob_f64": lp.tolist()}, f)
print("wrote", out + ".onnx")

env = gym.make("Pendulum-v1")
for deterministic in (True, False):
    rets, tau2 = [], []
    for ep in range(20):
        obs, _ = env.reset(seed=10_000 + ep)
        done, ret = False, 0.0
        while not done:
            act, _ = model.predict(obs, deterministic=deterministic)
            act = np.clip(act, -2.0, 2.0)
            obs, r, term, trunc, _ = env.step(act)
            ret += r
            tau2.append(float(act[0] ** 2))
            done = term or trunc
        rets.append(ret)
    kind = "greedy" if deterministic else "sampled"
    print(f"{kind}: return over 20 episodes mean {np.mean(rets):.1f} (min {np.min(rets):.1f}), mean torque² {np.mean(tau2):.3f}")
