#!/usr/bin/env python3
"""A robot-sized CartPole prior: models/cartpole/prior.onnx (4-64-64-2 soft Q) distilled into a
4-256-256-2 network, the size of the RQL authors' CartPole prior, exported to ONNX.

The teacher (the 64-wide soft-DQN prior, run by onnxruntime) drives CartPole-v1 with its sampled
policy softmax(Q/TAU); the student regresses the teacher's soft Q-values (MSE) on those states and
on Gaussian perturbations of them (so it matches off the teacher's path too). The result is a soft
Q prior of the same kind and temperature, for `models/cartpole-256` (bench and customize at the
size where performance matters).

Outputs (paths relative to the repository root):
    models/cartpole-256/prior.onnx          input "obs" [batch,4] -> output "q" [batch,2], opset 17
    models/cartpole-256/prior_golden.json   64 random normalised inputs and onnxruntime's outputs
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_cartpole_prior as tcp  # noqa: E402
import gymnasium as gym  # noqa: E402

TEACHER = os.path.join(tcp.REPO, "models", "cartpole", "prior.onnx")
MODEL_DIR = os.path.join(tcp.REPO, "models", "cartpole-256")
SEED = 3
STATES = 40_000
NOISE = 0.1          # std of the perturbations, in normalised units
EPOCHS = 40
BATCH = 256
LR = 1e-3


class Teacher(nn.Module):
    """onnxruntime behind the interface tcp.evaluate expects (a module mapping z to Q)."""

    def __init__(self, path: str):
        super().__init__()
        import onnxruntime as ort
        self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        (q,) = self.sess.run(["q"], {"obs": z.numpy().astype(np.float32)})
        return torch.from_numpy(q)


def teacher_states(teacher: Teacher, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1")
    zs = np.zeros((n, 4), dtype=np.float32)
    obs, _ = env.reset(seed=seed)
    for t in range(n):
        z = tcp.normalise(obs)
        zs[t] = z
        q = teacher(torch.from_numpy(z[None])).numpy()[0].astype(np.float64) / tcp.TAU
        p1 = 1.0 / (1.0 + np.exp(q[0] - q[1]))
        obs, _, term, trunc, _ = env.step(int(rng.random() < p1))
        if term or trunc:
            obs, _ = env.reset(seed=seed + t + 1)
    return zs


def main() -> int:
    t0 = time.time()
    tcp.set_seeds(SEED)
    teacher = Teacher(TEACHER)
    on_path = teacher_states(teacher, STATES, SEED)
    rng = np.random.default_rng(SEED)
    x = np.concatenate([on_path, on_path + NOISE * rng.standard_normal(on_path.shape).astype(np.float32)])
    y = teacher(torch.from_numpy(x)).numpy()
    print(f"{len(x)} states ({STATES} on the teacher's sampled path, as many perturbed), "
          f"Q in [{y.min():.1f}, {y.max():.1f}]")

    net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if epoch % 10 == 9 or epoch == EPOCHS - 1:
            with torch.no_grad():
                adv_s = net(xt[:, :])[:, 1] - net(xt)[:, 0]
                adv_t = yt[:, 1] - yt[:, 0]
                adv_err = (adv_s - adv_t).abs().mean().item()
            print(f"epoch {epoch + 1}: MSE {total / len(xt):.4f}, mean |advantage error| {adv_err:.4f}")

    for name, m in [("teacher 4-64-64-2", teacher), ("student 4-256-256-2", net)]:
        g_succ, g_len, g_mx = tcp.evaluate(m, 100, tcp.EVAL_SEED, "greedy")
        s_succ, s_len, s_mx = tcp.evaluate(m, 100, tcp.EVAL_SEED, "sampled", rng_seed=7)
        print(f"{name}: greedy {g_succ}/100 reach 500, mean |x| {g_mx:.3f}; "
              f"sampled {s_succ}/100, mean |x| {s_mx:.3f}")
    if g_succ < 98 or s_succ < 90:
        print("ACCEPTANCE FAILED (need greedy >= 98/100 and sampled >= 90/100); not exporting")
        return 1

    onnx_path = os.path.join(MODEL_DIR, "prior.onnx")
    ops = tcp.export_onnx(net, onnx_path, "q")
    print(f"exported {onnx_path}; op types: {ops}")
    golden_path = os.path.join(MODEL_DIR, "prior_golden.json")
    d_abs, d_rel = tcp.write_golden(net, onnx_path, golden_path, "q", "scripts/distill_cartpole_256_prior.py",
                                    tcp.TAU)
    print(f"wrote {golden_path}; torch vs onnxruntime: max abs diff {d_abs:.2e}, max rel {d_rel:.2e}")
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
