#!/usr/bin/env python3
"""Baselines for HalfCheetah "smoother commands": the prior's greedy action a0 = tanh(mean0(s))
changed by hand, with no learning, to map how much forward velocity each unit of command jump
costs near the prior. Each line prints mean ||a_t - a_(t-1)||^2 and mean forward velocity per
step as multiples of the prior's, over 5 episodes of 200 steps (reset seeds 100000..100004, the
bundle's evaluation starts; a_(-1) = 0):

- low-pass on every joint, a_t = beta*a_(t-1) + (1-beta)*a0;
- low-pass on one joint at a time (beta 0.5): which joints' jumps are cheap to remove;
- slew-rate limit, a_t = a_(t-1) + clip(a0 - a_(t-1), -r, r);
- clamp, a_t = clip(a0, -c, c).

    python3 scripts/halfcheetah_hand_smoothing.py                  # needs gymnasium[mujoco], onnxruntime, numpy
    python3 scripts/halfcheetah_hand_smoothing.py --prior other.onnx
"""
import argparse
import os

import gymnasium as gym
import numpy as np
import onnxruntime as ort

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--prior", default=os.path.join(REPO, "models", "halfcheetah", "prior.onnx"))
ap.add_argument("--episodes", type=int, default=5)
args = ap.parse_args()
sess = ort.InferenceSession(args.prior)
env = gym.make("HalfCheetah-v5")


def run(change):
    """Mean jump and velocity per step with a_t = change(a0, a_(t-1))."""
    jumps, velocities = [], []
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=100_000 + ep)
        prev = np.zeros(6)
        for _ in range(200):
            mean, _log_std = sess.run(None, {"obs": obs[None].astype(np.float32)})
            a = change(np.tanh(mean[0]), prev)
            obs, _r, _term, _trunc, info = env.step(a)
            jumps.append(((a - prev) ** 2).sum())
            velocities.append(info["x_velocity"])
            prev = a
    return np.mean(jumps), np.mean(velocities)


def one_joint(j, beta):
    def change(a, prev):
        b = a.copy()
        b[j] = beta * prev[j] + (1 - beta) * a[j]
        return b
    return change


j0, v0 = run(lambda a, prev: a)
print(f"prior: |da|^2 {j0:.3f}  velocity {v0:.3f} m/s  (below: multiples of these)")
rows = [(f"low-pass beta {b}", lambda a, p, b=b: b * p + (1 - b) * a) for b in (0.3, 0.5)]
rows += [(f"low-pass joint {j} only, beta 0.5", one_joint(j, 0.5)) for j in range(6)]
rows += [(f"slew limit {r}", lambda a, p, r=r: p + np.clip(a - p, -r, r)) for r in (1.5, 1.0)]
rows += [(f"clamp {c}", lambda a, p, c=c: np.clip(a, -c, c)) for c in (0.9, 0.8, 0.7)]
for name, change in rows:
    j, v = run(change)
    print(f"{name:<34} |da|^2 {j / j0:.3f}x  velocity {v / v0:.3f}x")
