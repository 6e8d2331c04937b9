#!/usr/bin/env python3
"""The InvertedPendulum-v5 prior of models/invertedpendulum: a linear Gaussian actor that falls.

    python3 scripts/make_invertedpendulum_prior.py     # half a minute; needs gymnasium[mujoco], onnx

The mean force is `K·obs` on the raw observation (cart position, pole angle, their velocities),
with gains found by the cross-entropy method on gymnasium's own environment (15 generations of
24, two 1 000-step episodes each, seed 0: the greedy policy then holds the pole for the whole
episode); the std is a constant 0.5 N, at which the sampled policy drops the pole in about a
fifth of its episodes (printed). No torch: the graph is written with onnx's helpers as a trunk
(an identity Gemm) and two Gemm heads, `mean` and `log_std`, as a PPO-style Gaussian actor
exports them, so resq runs it on its own kernels.
"""
import numpy as np
import gymnasium as gym
from linear_gaussian_onnx import save_linear_gaussian

STD = 0.5
env = gym.make("InvertedPendulum-v5")


def run(K, std=0.0, episodes=1, seed=0, rng=None):
    """Mean return, share of episodes that fell, mean squared force."""
    rets, fails, u2 = [], 0, []
    for ep in range(episodes):
        o, _ = env.reset(seed=seed + ep)
        ret = 0.0
        for _ in range(1000):
            a = float(K @ o) + (rng.normal() * std if std > 0 else 0.0)
            a = float(np.clip(a, -3.0, 3.0))
            u2.append(a * a)
            o, r, term, trunc, _ = env.step([a])
            ret += r
            if term:
                fails += 1
                break
            if trunc:
                break
        rets.append(ret)
    return float(np.mean(rets)), fails / episodes, float(np.mean(u2))


rng = np.random.default_rng(0)
mu, sig = np.zeros(4), np.ones(4) * 3.0
for it in range(15):
    pop = mu + sig * rng.normal(size=(24, 4))
    score = np.array([run(k, episodes=2, seed=100 * it)[0] for k in pop])
    elite = pop[np.argsort(score)[-5:]]
    mu, sig = elite.mean(0), elite.std(0) + 0.05
K = mu.astype(np.float32)
print("gains", K.tolist())
print("greedy (return, fell, force^2):", run(K, episodes=10, seed=1000))
print(f"sampled at std {STD}:", run(K, std=STD, episodes=60, seed=3000, rng=np.random.default_rng(2)))

save_linear_gaussian(K.reshape(4, 1), np.zeros(1, np.float32), STD, "invertedpendulum_linear_gaussian",
                     "models/invertedpendulum/prior.onnx")
