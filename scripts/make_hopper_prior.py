#!/usr/bin/env python3
"""The Hopper-v5 prior of models/hopper: a linear Gaussian actor trained by augmented random
search, on a robot whose episodes end in a fall.

    python3 scripts/make_hopper_prior.py [--iterations 300]   # minutes; gymnasium[mujoco], onnx

ARS V2-t (Mania, Guy & Recht 2018, "Simple random search provides a competitive approach to
reinforcement learning"): a linear policy on running-normalised observations, 8 directions per
iteration, the best 4 kept, step 0.02, exploration noise 0.03, the alive bonus subtracted from
the reward while training (as the paper does for Hopper), seed 0. No torch: the greedy policy is
written as ONNX Gemm heads (`mean`, `log_std`), the normalisation folded into the weights, as a
PPO-style Gaussian actor exports, so resq runs it on its own kernels. Its std, 0.17, is where the
sampled policy falls in about a fifth of its episodes (printed; far fewer at 0.15, about half at 0.2):
the case a customization must not make worse.
"""
import argparse

import gymnasium as gym
import numpy as np
from linear_gaussian_onnx import save_linear_gaussian

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--iterations", type=int, default=300)
p.add_argument("--std", type=float, default=0.17, help="the exported policy's std, in command units")
p.add_argument("--out", default="models/hopper/prior.onnx")
args = p.parse_args()

env = gym.make("Hopper-v5")
n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
N, B, STEP, NOISE, SHIFT = 8, 4, 0.02, 0.03, 1.0


class Stats:
    """Running mean and std of the observations the rollouts visit (Welford)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, np.zeros(n_obs), np.zeros(n_obs)

    def push(self, x):
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def std(self):
        return np.sqrt(self.m2 / max(self.n - 1, 1)) + 1e-2 if self.n > 1 else np.ones(n_obs)


def rollout(M, mean, std, seed, shift=0.0, act_std=0.0, rng=None, stats=None):
    """Return (minus `shift` per step), steps, fell, mean squared torque, mean forward velocity."""
    o, _ = env.reset(seed=seed)
    ret, steps, fell, u2, vx = 0.0, 0, False, 0.0, 0.0
    for _ in range(1000):
        if stats is not None:
            stats.push(o)
        a = M @ ((o - mean) / std)
        if act_std > 0:
            a = a + rng.normal(size=n_act) * act_std
        a = np.clip(a, -1.0, 1.0)
        o, r, term, trunc, info = env.step(a)
        ret += r - shift
        steps += 1
        u2 += float(a @ a)
        vx += float(info.get("x_velocity", 0.0))
        if term:
            fell = True
            break
        if trunc:
            break
    return ret, steps, fell, u2 / steps, vx / steps


rng = np.random.default_rng(0)
M = np.zeros((n_act, n_obs))
stats = Stats()
mean, std = np.zeros(n_obs), np.ones(n_obs)
for it in range(args.iterations):
    deltas = rng.normal(size=(N, n_act, n_obs))
    plus, minus = np.zeros(N), np.zeros(N)
    for k in range(N):
        seed = int(rng.integers(1 << 30))
        plus[k] = rollout(M + NOISE * deltas[k], mean, std, seed, SHIFT, stats=stats)[0]
        minus[k] = rollout(M - NOISE * deltas[k], mean, std, seed, SHIFT, stats=stats)[0]
    top = np.argsort(np.maximum(plus, minus))[-B:]
    sigma = np.concatenate([plus[top], minus[top]]).std() + 1e-6
    M += STEP / (B * sigma) * np.einsum("k,kij->ij", plus[top] - minus[top], deltas[top])
    mean, std = stats.mean.copy(), stats.std()
    if it % 20 == 0 or it == args.iterations - 1:
        r = [rollout(M, mean, std, 10_000 + e) for e in range(3)]
        print(f"iteration {it}: greedy return {np.mean([x[0] for x in r]):.0f}, steps {np.mean([x[1] for x in r]):.0f}",
              flush=True)

greedy = [rollout(M, mean, std, 20_000 + e) for e in range(20)]
print("greedy over 20 episodes: return %.0f, fell %d, torque^2 %.3f, forward velocity %.3f" % (
    np.mean([g[0] for g in greedy]), sum(g[2] for g in greedy), np.mean([g[3] for g in greedy]),
    np.mean([g[4] for g in greedy])))
srng = np.random.default_rng(1)
sampled = [rollout(M, mean, std, 30_000 + e, act_std=args.std, rng=srng) for e in range(40)]
print("sampled at std %.2f over 40 episodes: return %.0f, fell %d, torque^2 %.3f, forward velocity %.3f" % (
    args.std, np.mean([g[0] for g in sampled]), sum(g[2] for g in sampled), np.mean([g[3] for g in sampled]),
    np.mean([g[4] for g in sampled])))

# mean = M (o - mean) / std  =  (M / std) o - M (mean / std)
W = (M / std).T.astype(np.float32)
b = (-(M @ (mean / std))).astype(np.float32)
save_linear_gaussian(W, b, args.std, "hopper_ars_linear_gaussian", args.out)
