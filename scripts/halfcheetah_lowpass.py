#!/usr/bin/env python3
"""A baseline for HalfCheetah "smoother commands": the prior's greedy action passed through a plain
low-pass filter, a_t = beta*a_(t-1) + (1-beta)*tanh(mean0(s_t)), with no learning. Prints the mean
||a_t - a_(t-1)||^2 and forward velocity per step over 5 episodes of 200 steps (reset seeds
100000..100004, the bundle's evaluation starts), to compare with what the residual reaches.

    python3 scripts/halfcheetah_lowpass.py        # needs gymnasium[mujoco], onnxruntime, numpy
"""
import os

import gymnasium as gym
import numpy as np
import onnxruntime as ort

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sess = ort.InferenceSession(os.path.join(REPO, "models", "halfcheetah", "prior.onnx"))


def greedy(obs):
    mean, _log_std = sess.run(None, {"obs": obs[None].astype(np.float32)})
    return np.tanh(mean[0])


env = gym.make("HalfCheetah-v5")
for beta in [0.0, 0.3, 0.5, 0.6, 0.7]:
    jumps, velocities = [], []
    for ep in range(5):
        obs, _ = env.reset(seed=100_000 + ep)
        prev = np.zeros(6)
        for _ in range(200):
            a = beta * prev + (1 - beta) * greedy(obs)
            obs, _r, _term, _trunc, info = env.step(a)
            jumps.append(((a - prev) ** 2).sum())
            velocities.append(info["x_velocity"])
            prev = a
    print(f"beta {beta}: |da|^2 {np.mean(jumps):.3f}  velocity {np.mean(velocities):.3f}")
