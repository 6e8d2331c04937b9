#!/usr/bin/env python3
"""The two non-squashed continuous prior kinds, exported from PyTorch, with golden values.

    python3 scripts/make_gaussian_priors.py      # about a minute on one CPU core

1. tests/data/onnx/gaussian_actor.onnx (+ _golden.json): a plain Gaussian actor as PPO/A2C export it
   (SB3's non-squashed policy): obs [batch,3] -> "mean", "log_std" [batch,1] in command units; the
   command is the sample clipped to the bounds.  Random weights (a loading and log-prob test).
   Golden: onnxruntime's outputs and torch.distributions.Normal(mean, exp(clamp(log_std,-20,2)))
   .log_prob(a).sum(-1) in float64 for actions inside and outside the bounds (the density is of the
   unclipped sample, as SB3 computes it).

2. models/pendulum-bc/prior.onnx (+ prior_golden.json): a deterministic behaviour-cloned prior for
   Pendulum-v1.  The expert is the SAC prior in models/pendulum (greedy: 2*tanh(mean)), run in
   gymnasium with noise injected into the executed action (DART-style, so the clone sees how to
   recover), labelled with the expert's noise-free action.  An MLP 3 -> 64 -> 64 -> 1 (ReLU) is fitted
   by mean squared error and exported with one output "action" [batch,1] in command units (N*m).
   resq explores around it with the bundle's stated std (prior.exploration_std).

3. models/pendulum-gaussian/prior.onnx (+ prior_golden.json): a plain Gaussian prior for Pendulum-v1,
   cloned by maximum likelihood from the same noisy demonstrations, labelled this time with the
   action actually executed (expert + N(0, 0.5^2) noise, before the torque clip): an MLP trunk
   3 -> 64 -> 64 (ReLU) with a "mean" and a "log_std" head, in command units (N*m), as a PPO-style
   policy exports them.  The robot clips the sample to the torque limits.
"""
from __future__ import annotations

import json
import math
import os

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GEN = "scripts/make_gaussian_priors.py"
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def gaussian_log_prob(mean, log_std, a):
    """log N(a; mean, exp(clamp(log_std))) summed over the last axis (torch, float64)."""
    std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
    return torch.distributions.Normal(mean, std).log_prob(a).sum(-1)


def export(module, path, n_obs, outputs):
    module.eval()
    torch.onnx.export(module, (torch.zeros(1, n_obs),), path, dynamo=False, opset_version=17,
                      input_names=["obs"], output_names=outputs,
                      dynamic_axes={"obs": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
    onnx.checker.check_model(onnx.load(path), full_check=True)


def gaussian_actor():
    torch.manual_seed(3)

    class Actor(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(3, 32), nn.Tanh())
            self.mean = nn.Linear(32, 1)
            self.log_std = nn.Linear(32, 1)

        def forward(self, obs):
            h = self.trunk(obs)
            return self.mean(h), self.log_std(h)

    actor = Actor()
    with torch.no_grad():
        actor.log_std.weight.mul_(4.0)  # a spread of log-stds over the inputs
    path = os.path.join(ROOT, "tests", "data", "onnx", "gaussian_actor.onnx")
    export(actor, path, 3, ["mean", "log_std"])
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((48, 3)) * 10.0 ** rng.uniform(-1, 1.5, (48, 1))).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    mean, log_std = sess.run(["mean", "log_std"], {"obs": x})
    # per input: the mean, a sample, a value inside the bounds, and values beyond +-2 (clipped on the robot)
    acts = np.stack([mean, mean + np.exp(np.clip(log_std, -20, 2)) * rng.standard_normal(mean.shape),
                     rng.uniform(-2, 2, mean.shape), rng.choice([-3.5, 2.7], mean.shape)], 1).astype(np.float32)
    m = torch.from_numpy(mean).double()[:, None, :].expand(-1, 4, -1)
    ls = torch.from_numpy(log_std).double()[:, None, :].expand(-1, 4, -1)
    lp = gaussian_log_prob(m, ls, torch.from_numpy(acts).double()).numpy()
    golden = {"generator": GEN, "torch_version": torch.__version__, "onnxruntime_version": ort.__version__,
              "formula": "sum_j log N(a_j; mean_j, exp(clamp(log_std_j, -20, 2))), float64",
              "inputs": x.tolist(), "mean": mean.tolist(), "log_std": log_std.tolist(),
              "actions": acts.tolist(), "log_prob_f64": lp.tolist()}
    with open(path.replace(".onnx", "_golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"wrote {path}: log_std range [{log_std.min():.1f}, {log_std.max():.1f}]")


def expert():
    sess = ort.InferenceSession(os.path.join(ROOT, "models", "pendulum", "prior.onnx"),
                                providers=["CPUExecutionProvider"])

    def act(obs):
        mean, _ = sess.run(["mean", "log_std"], {"obs": np.asarray(obs, np.float32).reshape(-1, 3)})
        return 2.0 * np.tanh(mean[:, 0])
    return act


def rollouts(policy, episodes, seed, noise=0.0, rng=None, executed=None):
    """Runs `policy` with optional Gaussian noise on the executed action; returns the states, the
    expert's noise-free labels, the mean return and upright fraction. `executed`, if a list, gets
    the executed (noisy, unclipped) actions."""
    env = gym.make("Pendulum-v1")
    states, labels, returns, upright = [], [], [], []
    label = expert()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        ret, up = 0.0, 0
        for _ in range(200):
            states.append(obs.copy())
            labels.append(label(obs)[0])
            a = float(policy(obs))
            if noise > 0:
                a += noise * rng.standard_normal()
            if executed is not None:
                executed.append(a)
            obs, r, term, trunc, _ = env.step(np.array([np.clip(a, -2, 2)], np.float32))
            ret += r
            up += obs[0] > 0.9
            if term or trunc:
                break
        returns.append(ret)
        upright.append(up / 200)
    return np.array(states, np.float32), np.array(labels, np.float32), np.mean(returns), np.mean(upright)


def pendulum_bc():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    teacher = expert()
    s, y, ret, up = rollouts(lambda o: teacher(o)[0], 150, 10_000, noise=0.5, rng=rng)
    print(f"expert (noisy execution): return {ret:.1f}, upright {up:.2f}, {len(s)} labelled states")
    net = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(s), torch.from_numpy(y)[:, None]
    for it in range(6000):
        idx = torch.randint(0, len(xs), (256,))
        loss = ((net(xs[idx]) - ys[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"BC fit: mse {((net(xs) - ys) ** 2).mean().item():.4f}")
    out_dir = os.path.join(ROOT, "models", "pendulum-bc")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "prior.onnx")
    export(net, path, 3, ["action"])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    clone = lambda o: sess.run(["action"], {"obs": np.asarray(o, np.float32).reshape(1, 3)})[0][0, 0]
    _, _, e_ret, e_up = rollouts(lambda o: teacher(o)[0], 20, 0)
    _, _, c_ret, c_up = rollouts(clone, 20, 0)
    print(f"20 episodes, greedy: expert return {e_ret:.1f} upright {e_up:.2f}; clone return {c_ret:.1f} upright {c_up:.2f}")
    x = np.concatenate([s[rng.choice(len(s), 48, replace=False)],
                        rng.standard_normal((16, 3)).astype(np.float32) * 20], 0).astype(np.float32)
    mean = sess.run(["action"], {"obs": x})[0]
    std = 0.4
    acts = np.stack([mean, mean + std * rng.standard_normal(mean.shape), rng.uniform(-2, 2, mean.shape),
                     rng.choice([-2.5, 3.0], mean.shape)], 1).astype(np.float32)
    m = torch.from_numpy(mean).double()[:, None, :].expand(-1, 4, -1)
    lp = gaussian_log_prob(m, torch.full_like(m, math.log(std)), torch.from_numpy(acts).double()).numpy()
    golden = {"generator": GEN, "torch_version": torch.__version__, "onnxruntime_version": ort.__version__,
              "exploration_std": std,
              "formula": "sum_j log N(a_j; action_j, exploration_std), float64",
              "expert_greedy": {"return": float(e_ret), "upright": float(e_up)},
              "clone_greedy": {"return": float(c_ret), "upright": float(c_up)},
              "inputs": x.tolist(), "outputs": mean.tolist(), "actions": acts.tolist(),
              "log_prob_f64": lp.tolist()}
    with open(os.path.join(out_dir, "prior_golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"wrote {path}")


def pendulum_gaussian():
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    teacher = expert()
    executed = []
    s, _, ret, up = rollouts(lambda o: teacher(o)[0], 150, 20_000, noise=0.5, rng=rng, executed=executed)
    y = np.array(executed, np.float32)

    class Actor(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            self.mean = nn.Linear(64, 1)
            self.log_std = nn.Linear(64, 1)

        def forward(self, obs):
            h = self.trunk(obs)
            return self.mean(h), self.log_std(h)

    actor = Actor()
    opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(s), torch.from_numpy(y)[:, None]
    for it in range(8000):
        idx = torch.randint(0, len(xs), (256,))
        m, ls = actor(xs[idx])
        nll = -gaussian_log_prob(m, ls, ys[idx]).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
    with torch.no_grad():
        m, ls = actor(xs)
    print(f"Gaussian clone: nll {-gaussian_log_prob(m, ls, ys).mean().item():.3f}, "
          f"std median {ls.exp().median().item():.3f}")
    out_dir = os.path.join(ROOT, "models", "pendulum-gaussian")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "prior.onnx")
    export(actor, path, 3, ["mean", "log_std"])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    greedy = lambda o: sess.run(["mean"], {"obs": np.asarray(o, np.float32).reshape(1, 3)})[0][0, 0]
    _, _, c_ret, c_up = rollouts(greedy, 20, 0)
    print(f"20 episodes, greedy (the mean, clipped): return {c_ret:.1f} upright {c_up:.2f}")
    x = np.concatenate([s[rng.choice(len(s), 48, replace=False)],
                        rng.standard_normal((16, 3)).astype(np.float32) * 20], 0).astype(np.float32)
    mean, log_std = sess.run(["mean", "log_std"], {"obs": x})
    acts = np.stack([mean, mean + np.exp(np.clip(log_std, -20, 2)) * rng.standard_normal(mean.shape),
                     rng.uniform(-2, 2, mean.shape), rng.choice([-2.5, 3.0], mean.shape)], 1).astype(np.float32)
    mm = torch.from_numpy(mean).double()[:, None, :].expand(-1, 4, -1)
    ll = torch.from_numpy(log_std).double()[:, None, :].expand(-1, 4, -1)
    lp = gaussian_log_prob(mm, ll, torch.from_numpy(acts).double()).numpy()
    golden = {"generator": GEN, "torch_version": torch.__version__, "onnxruntime_version": ort.__version__,
              "formula": "sum_j log N(a_j; mean_j, exp(clamp(log_std_j, -20, 2))), float64",
              "clone_greedy": {"return": float(c_ret), "upright": float(c_up)},
              "inputs": x.tolist(), "mean": mean.tolist(), "log_std": log_std.tolist(),
              "actions": acts.tolist(), "log_prob_f64": lp.tolist()}
    with open(os.path.join(out_dir, "prior_golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"wrote {path}")


if __name__ == "__main__":
    gaussian_actor()
    pendulum_bc()
    pendulum_gaussian()
