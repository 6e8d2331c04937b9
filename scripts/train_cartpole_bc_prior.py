#!/usr/bin/env python3
"""Behaviour-cloned CartPole-v1 prior, exported to ONNX.

Rolls out the soft-DQN expert of scripts/train_cartpole_prior.py (loaded from
scripts/out/cartpole_expert.pt, retrained if that file is missing) with its *sampled* policy
softmax(Q/TAU), records (normalised observation, taken action) pairs, and fits the same MLP shape
with cross-entropy so that it outputs logits.  Because the demonstrations are samples of the
expert's stochastic policy, softmax(logits) estimates that policy (not only its argmax), which is
what a prior for residual learning wants.

Outputs (paths relative to the repository root):
    models/cartpole-bc/prior.onnx          input "obs" [batch,4] -> output "logits" [batch,2], opset 17
    models/cartpole-bc/prior_golden.json   64 random normalised inputs and onnxruntime's outputs
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_cartpole_prior as tcp  # noqa: E402
import gymnasium as gym  # noqa: E402

MODEL_DIR = os.path.join(tcp.REPO, "models", "cartpole-bc")
SEED = 1
DEMO_STEPS = 50_000
DEMO_SEED = 200_000  # reset seeds of the demonstration episodes
EPOCHS = 30
BATCH_SIZE = 256
LR = 1e-3
VAL_FRACTION = 0.1


def collect_demos(expert: nn.Module, n_steps: int, seed: int):
    """Sampled-policy rollouts of the expert: returns (normalised obs [n,4] float32, actions [n])."""
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1")
    zs = np.zeros((n_steps, 4), dtype=np.float32)
    acts = np.zeros(n_steps, dtype=np.int64)
    episode, lengths, ep_len = 0, [], 0
    obs, _ = env.reset(seed=DEMO_SEED)
    for t in range(n_steps):
        z = tcp.normalise(obs)
        with torch.no_grad():
            q = expert(torch.from_numpy(z[None])).numpy()[0].astype(np.float64) / tcp.TAU
        p1 = 1.0 / (1.0 + np.exp(q[0] - q[1]))
        a = int(rng.random() < p1)
        zs[t], acts[t] = z, a
        obs, _, term, trunc, _ = env.step(a)
        ep_len += 1
        if term or trunc:
            lengths.append(ep_len)
            ep_len = 0
            episode += 1
            obs, _ = env.reset(seed=DEMO_SEED + episode)
    env.close()
    return zs, acts, lengths


def main() -> int:
    t0 = time.time()
    expert = tcp.load_or_train_expert()
    tcp.set_seeds(SEED)  # after the expert: same BC result whether the expert was loaded or retrained
    t_demo = time.time()
    zs, acts, lengths = collect_demos(expert, DEMO_STEPS, SEED)
    print(f"collected {DEMO_STEPS} demonstration steps from the expert's sampled policy "
          f"({len(lengths)} complete episodes, mean length {np.mean(lengths):.1f}; "
          f"action 1 fraction {acts.mean():.3f}) in {time.time() - t_demo:.0f} s")

    # Expert's own probabilities on the demo states, to compare the BC fit with.
    with torch.no_grad():
        p_exp = torch.softmax(expert(torch.from_numpy(zs)) / tcp.TAU, dim=1)

    rng = np.random.default_rng(SEED)
    perm = rng.permutation(DEMO_STEPS)
    n_val = int(VAL_FRACTION * DEMO_STEPS)
    val, tr = perm[:n_val], perm[n_val:]
    x_tr, y_tr = torch.from_numpy(zs[tr]), torch.from_numpy(acts[tr])
    x_val, y_val = torch.from_numpy(zs[val]), torch.from_numpy(acts[val])

    net = tcp.make_net()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    t_train = time.time()
    for epoch in range(1, EPOCHS + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(tr)))
        for i in range(0, len(tr), BATCH_SIZE):
            b = order[i:i + BATCH_SIZE]
            loss = F.cross_entropy(net(x_tr[b]), y_tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 0 or epoch == EPOCHS:
            net.eval()
            with torch.no_grad():
                tr_loss = F.cross_entropy(net(x_tr), y_tr).item()
                val_logits = net(x_val)
                val_loss = F.cross_entropy(val_logits, y_val).item()
                # cross-entropy of the demonstrator's own probabilities: the floor for val_loss
                floor = -(p_exp[val] * torch.log(p_exp[val])).sum(1).mean().item()
                agree = (val_logits.argmax(1) == p_exp[val].argmax(1)).float().mean().item()
            print(f"epoch {epoch:3d}  train CE {tr_loss:.4f}  val CE {val_loss:.4f}  "
                  f"(expert entropy {floor:.4f})  val argmax agreement with expert {agree:.4f}")
    net.eval()
    print(f"BC training: {EPOCHS} epochs x {len(tr)} samples, batch {BATCH_SIZE}, "
          f"{time.time() - t_train:.0f} s wall")

    g_succ, g_len, g_mx = tcp.evaluate(net, 100, tcp.EVAL_SEED, "greedy")
    s_succ, s_len, s_mx = tcp.evaluate(net, 100, tcp.EVAL_SEED, "sampled", temperature=1.0, rng_seed=7)
    print(f"BC greedy  (argmax logits):   {g_succ}/100 episodes reach 500 steps "
          f"(mean length {g_len.mean():.1f}), mean |x| {g_mx:.3f}")
    print(f"BC sampled (softmax(logits)): {s_succ}/100 episodes reach 500 steps "
          f"(mean length {s_len.mean():.1f}), mean |x| {s_mx:.3f}")
    if g_succ < 95:
        print("ACCEPTANCE FAILED (need greedy >= 95/100); not exporting")
        return 1

    onnx_path = os.path.join(MODEL_DIR, "prior.onnx")
    ops = tcp.export_onnx(net, onnx_path, "logits")
    print(f"exported {onnx_path}; op types: {ops}")
    golden_path = os.path.join(MODEL_DIR, "prior_golden.json")
    d_abs, d_rel = tcp.write_golden(net, onnx_path, golden_path, "logits",
                                    "scripts/train_cartpole_bc_prior.py", None)
    print(f"wrote {golden_path}; torch vs onnxruntime: max abs diff {d_abs:.2e}, "
          f"max diff / max(1,|logit|) {d_rel:.2e}")
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
