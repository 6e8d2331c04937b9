#!/usr/bin/env python3
"""Python baselines for resq's benchmarks (`cargo bench --bench control_step`), on one CPU thread:

- the CartPole prior (models/cartpole/prior.onnx), batch 1, in onnxruntime and in PyTorch;
- one residual soft-Q update as resq's learner does it (batch 64, head 4-64-64-2, 10-step
  returns with the current policy's soft terms at the intermediate states, Huber loss, Adam,
  soft value of the target head at the bootstrap state, Polyak target), in PyTorch;
- the same update at robot size as models/cartpole-256 makes it (head 4-256-256-2, batch 64,
  10-step returns: the target head also runs on the 9 intermediate states of each return, whose
  soft terms V(s) - Q(s, a) enter the target), in PyTorch;
- one residual SAC update as resq does it (batch 64, twin critics 3-64-64-1 with Polyak targets,
  actor 2-64-64-2 giving offsets to the prior's Gaussian, reparameterised actor loss through
  log pi0), in PyTorch.

Prints medians over many repetitions.  With --resq it first runs `cargo bench --bench
control_step` and prints resq's medians (criterion's estimates) beside the baselines, with the
ratios, all from one invocation on the same machine; run it on an idle machine.

    python3 scripts/bench_baselines.py            # the Python baselines alone
    python3 scripts/bench_baselines.py --resq     # resq's benchmarks, then the baselines, and the ratios
"""
from __future__ import annotations

import math
import os
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
torch.set_num_threads(1)
torch.manual_seed(0)


def median_us(fn, reps: int, warm: int = 200) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1e3


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def prior_baselines():
    path = os.path.join(ROOT, "models", "cartpole", "prior.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.array([[0.1, -0.2, 0.05, 0.3]], np.float32)
    ort_us = median_us(lambda: sess.run(None, {name: x}), 20000)
    net = mlp([4, 64, 64, 2]).eval()
    xt = torch.from_numpy(x)

    def torch_forward():
        with torch.no_grad():
            net(xt)
    torch_us = median_us(torch_forward, 20000)
    return ort_us, torch_us


def soft_q_update_us(h: int, n_step: int):
    """resq's residual soft-Q update, head 4-h-h-2, batch 64, n-step returns: one target pass over
    the 64 bootstrap and 64*(n-1) intermediate states, the online pass and its backward pass,
    gradient clipping, Adam, Polyak (models/cartpole-256 is h = 256, n = 10)."""
    b, n_obs, n_act, omega, alpha, gamma = 64, 4, 2, 1.0, 1.0, 0.99
    online = mlp([n_obs, h, h, n_act])
    target = mlp([n_obs, h, h, n_act])
    target.load_state_dict(online.state_dict())
    opt = torch.optim.Adam(online.parameters(), lr=1e-3)
    mids = b * (n_step - 1)
    obs, act = torch.randn(b, n_obs), torch.randint(0, n_act, (b,))
    x_target = torch.randn(b + mids, n_obs)
    logp0_target = torch.log_softmax(torch.randn(b + mids, n_act), -1)
    mid_act = torch.randint(0, n_act, (mids,))
    mid_weight = gamma ** torch.arange(1, n_step).repeat(b).float()
    mid_row = torch.arange(b).repeat_interleave(n_step - 1)
    ret, disc = torch.randn(b), torch.full((b,), gamma ** n_step)

    def update():
        with torch.no_grad():
            q_t = target(x_target)
            v = alpha * torch.logsumexp((q_t + omega * logp0_target) / alpha, -1)
            y = ret + disc * v[:b]
            soft = v[b:] - q_t[b:].gather(1, mid_act[:, None]).squeeze(1)
            y = y.index_add(0, mid_row, mid_weight * soft)
        q = online(obs).gather(1, act[:, None]).squeeze(1)
        loss = F.huber_loss(q, y, delta=1.0)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(online.parameters(), 10.0)
        opt.step()
        with torch.no_grad():
            for p, tp in zip(online.parameters(), target.parameters()):
                tp.mul_(0.99).add_(0.01 * p)
    return median_us(update, 1000, warm=50)


def sac_update_us():
    b, n_obs, ad, omega, alpha, gamma = 64, 2, 1, 0.003, 0.003, 0.99
    q1, q2 = mlp([n_obs + ad, 64, 64, 1]), mlp([n_obs + ad, 64, 64, 1])
    t1, t2 = mlp([n_obs + ad, 64, 64, 1]), mlp([n_obs + ad, 64, 64, 1])
    t1.load_state_dict(q1.state_dict())
    t2.load_state_dict(q2.state_dict())
    actor = mlp([n_obs, 64, 64, 2 * ad])
    q_opt = torch.optim.Adam(list(q1.parameters()) + list(q2.parameters()), lr=1e-3)
    a_opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    obs, nxt, a = torch.randn(b, n_obs), torch.randn(b, n_obs), torch.rand(b, ad) * 2 - 1
    p0, p0n = torch.randn(b, 2 * ad) * 0.5, torch.randn(b, 2 * ad) * 0.5
    ret, disc = torch.randn(b), torch.full((b,), gamma ** 10)

    def policy(o, params0):
        d = actor(o)
        mu = params0[:, :ad] + d[:, :ad]
        ls = (params0[:, ad:] + d[:, ad:]).clamp(-20, 2)
        eps = torch.randn_like(mu)
        u = mu + ls.exp() * eps
        act = torch.tanh(u)
        ld = -torch.log(1 - act ** 2 + 1e-6).sum(-1)
        lp = (-0.5 * eps ** 2 - ls - 0.5 * math.log(2 * math.pi)).sum(-1) + ld
        ls0 = params0[:, ad:].clamp(-20, 2)
        z0 = (u - params0[:, :ad]) / ls0.exp()
        lp0 = (-0.5 * z0 ** 2 - ls0 - 0.5 * math.log(2 * math.pi)).sum(-1) + ld
        return act, lp, lp0

    def update():
        with torch.no_grad():
            an, lpn, lp0n = policy(nxt, p0n)
            xn = torch.cat([nxt, an], -1)
            v = torch.min(t1(xn), t2(xn)).squeeze(1) + omega * lp0n - alpha * lpn
            y = ret + disc * v
        x = torch.cat([obs, a], -1)
        qloss = F.huber_loss(q1(x).squeeze(1), y) + F.huber_loss(q2(x).squeeze(1), y)
        q_opt.zero_grad()
        qloss.backward()
        q_opt.step()
        act, lp, lp0 = policy(obs, p0)
        xa = torch.cat([obs, act], -1)
        aloss = (alpha * lp - torch.min(q1(xa), q2(xa)).squeeze(1) - omega * lp0).mean()
        a_opt.zero_grad()
        aloss.backward()
        a_opt.step()
        with torch.no_grad():
            for net, tgt in ((q1, t1), (q2, t2)):
                for p, tp in zip(net.parameters(), tgt.parameters()):
                    tp.mul_(0.99).add_(0.01 * p)
    return median_us(update, 2000, warm=100)


def resq_medians() -> dict:
    """Runs resq's criterion benchmarks and reads their medians (us)."""
    import json
    import subprocess
    subprocess.run(["cargo", "bench", "--bench", "control_step", "--", "prior/|learner/"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    out = {}
    for name, folder in [("prior (resq kernels)", "prior/resq"), ("prior (tract)", "prior/tract"),
                         ("soft-Q update", "learner_update"), ("soft-Q update 256", "learner_update_256"),
                         ("SAC update", "learner_update_sac")]:
        with open(os.path.join(target, "criterion", folder, "new", "estimates.json")) as f:
            out[name] = json.load(f)["median"]["point_estimate"] / 1e3
    return out


if __name__ == "__main__":
    import sys
    resq = resq_medians() if "--resq" in sys.argv else None
    ort_us, torch_us = prior_baselines()
    q_us, q256_us, sac_us = soft_q_update_us(64, 10), soft_q_update_us(256, 10), sac_update_us()
    print(f"CartPole prior 4-64-64-2, batch 1: onnxruntime {ort_us:.2f} us, PyTorch {torch_us:.2f} us")
    print(f"residual soft-Q update, batch 64, head 4-64-64-2, 10-step returns (PyTorch): {q_us:.1f} us")
    print(f"residual soft-Q update at robot size, batch 64, head 4-256-256-2, 10-step returns (PyTorch): "
          f"{q256_us:.1f} us")
    print(f"residual SAC update, batch 64, critics 3-64-64-1 x2, actor 2-64-64-2 (PyTorch): {sac_us:.1f} us")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, one thread")
    if resq:
        p = resq["prior (resq kernels)"]
        print(f"\nresq (criterion medians, this run): prior {p:.3f} us (tract {resq['prior (tract)']:.2f} us), "
              f"soft-Q update {resq['soft-Q update']:.1f} us, SAC update {resq['SAC update']:.1f} us")
        print(f"prior: {ort_us / p:.0f}x faster than onnxruntime, {torch_us / p:.0f}x than PyTorch, "
              f"{resq['prior (tract)'] / p:.0f}x than tract")
        print(f"soft-Q update: {q_us / resq['soft-Q update']:.1f}x faster than PyTorch; "
              f"at robot size: {q256_us / resq['soft-Q update 256']:.2f}x ({resq['soft-Q update 256']:.1f} us); "
              f"SAC update: {sac_us / resq['SAC update']:.1f}x faster than PyTorch")
