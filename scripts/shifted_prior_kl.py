"""How far, in nats per step, "right of centre" lies from a CartPole prior.

A policy that meets "right of centre" is the prior re-centred at x = 0.5:
`π_s(a|s) = π0(a | s − 0.5·e_x)`. This runs π_s (sampled) in gymnasium's CartPole-v1 for ten
episodes (seeds 0–9) and prints its success rate, its mean |x − 0.5| against the prior's own, and
the mean and median of `KL(π_s(·|s) ‖ π0(·|s))` over the states it visits: a lower bound of sorts
on the `[residual] kl_per_step` a KL-regularised customization (RQL at ω' = α̂) needs to reach the
requirement this way.

    python3 scripts/shifted_prior_kl.py tests/data/onnx/sb3_ppo_cartpole.onnx
    python3 scripts/shifted_prior_kl.py tests/data/onnx/sb3_dqn_cartpole.onnx --temperature 0.02
    python3 scripts/shifted_prior_kl.py models/cartpole/prior.onnx --scale 2.4,3.0,0.2095,3.5

`--temperature`: `π0 = softmax(output / T)` (a DQN's calibrated τ; 1 for logits and the soft-Q
prior). `--scale`: the prior's input scales (the bundle's `[[observation]] scale`; SB3 priors
read raw observations). Needs gymnasium, onnxruntime and numpy (the test venv has them).
"""
import argparse

import gymnasium as gym
import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("onnx")
p.add_argument("--temperature", type=float, default=1.0)
p.add_argument("--scale", default="1,1,1,1")
p.add_argument("--shift", type=float, default=0.5)
a = p.parse_args()
sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
scale = np.array([float(v) for v in a.scale.split(",")])
shift = np.array([a.shift, 0.0, 0.0, 0.0])


def log_pi0(obs):
    out = sess.run(None, {name: (obs / scale)[None].astype(np.float32)})[0][0] / a.temperature
    return out - np.logaddexp.reduce(out)


def run(shifted):
    env, rng = gym.make("CartPole-v1"), np.random.default_rng(0)
    kls, off, lengths = [], [], []
    for ep in range(10):
        obs, _ = env.reset(seed=ep)
        n, done = 0, False
        while not done:
            lp0 = log_pi0(obs)
            lp = log_pi0(obs - shift) if shifted else lp0
            q = np.exp(lp)
            kls.append(float((q * (lp - lp0)).sum()))
            obs, _, term, trunc, _ = env.step(rng.choice(2, p=q / q.sum()))
            off.append(abs(obs[0] - a.shift))
            n, done = n + 1, term or trunc
        lengths.append(n)
    return np.mean(np.array(lengths) >= 500), np.mean(off), np.array(kls)


_, prior_off, _ = run(False)
success, off, kl = run(True)
print(f"{a.onnx}: the prior re-centred at x = {a.shift}: success {success:.2f}, mean |x - {a.shift}| "
      f"{off:.3f} ({off / prior_off:.2f}x the prior's {prior_off:.3f}); KL from the prior per step: "
      f"mean {kl.mean():.2f}, median {np.median(kl):.2f}, 90th percentile {np.quantile(kl, 0.9):.2f} nats")
