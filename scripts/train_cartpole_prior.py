#!/usr/bin/env python3
"""Train a soft (maximum-entropy) DQN prior for gymnasium CartPole-v1 and export it to ONNX.

The base reward is replaced by the one used in the Residual Q-Learning literature for this task:

    r = 1 - 10 * |theta'| / 0.2095          (theta' = pole angle AFTER the step)

The network sees normalised observations z = obs / OBS_SCALE and outputs soft Q-values; the prior
policy is pi0(a|s) = softmax(Q(s,.) / TAU).  Soft target:

    y = r + gamma * (1 - terminated) * TAU * logsumexp(Q_target(s',.) / TAU)

A time-limit truncation (500 steps) is not a termination: we bootstrap through it.

Outputs (paths relative to the repository root):
    models/cartpole/prior.onnx          input "obs" [batch,4] -> output "q" [batch,2], float32, opset 17
    models/cartpole/prior_golden.json   64 random normalised inputs and onnxruntime's outputs
    scripts/out/cartpole_expert.pt      expert weights (reused by train_cartpole_bc_prior.py)

The helpers in this file (network, evaluation, export, golden file) are also imported by
scripts/train_cartpole_bc_prior.py.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import deque

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

import gymnasium as gym  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "scripts", "out")
EXPERT_PT = os.path.join(OUT_DIR, "cartpole_expert.pt")
MODEL_DIR = os.path.join(REPO, "models", "cartpole")

# Observation scale (x, x_dot, theta, theta_dot): z = obs / OBS_SCALE.
OBS_SCALE_LIST = [2.4, 3.0, 0.2095, 3.5]
OBS_SCALE = np.array(OBS_SCALE_LIST, dtype=np.float32)
THETA_LIMIT = 0.2095
TAU = 1.0  # fixed soft-Q temperature of the prior: pi0 = softmax(Q / TAU)
GAMMA = 0.99
SEED = 0

# Training hyper-parameters.
TOTAL_STEPS = 100_000
LEARNING_STARTS = 1_000
BUFFER_SIZE = 100_000
BATCH_SIZE = 128
LR = 5e-4
TARGET_UPDATE_EVERY = 1_000  # hard target-network copy, in environment steps
GRAD_CLIP = 10.0
CHECK_EVERY = 5_000  # quick greedy check for checkpoint selection
CHECK_EPISODES = 20
CHECK_SEED = 50_000  # seeds for the quick checks (disjoint from the final evaluation)
EVAL_SEED = 100_000  # seeds for the acceptance evaluation
MAX_EPISODE_STEPS = 500


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def make_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))


def normalise(obs) -> np.ndarray:
    return (np.asarray(obs, dtype=np.float32) / OBS_SCALE).astype(np.float32)


def base_reward(next_obs) -> float:
    """The literature's CartPole reward, on the pole angle after the step."""
    return 1.0 - 10.0 * abs(float(next_obs[2])) / THETA_LIMIT


def evaluate(net: nn.Module, n_episodes: int, seed0: int, mode: str, temperature: float = TAU,
             rng_seed: int = 12345):
    """Run n_episodes of CartPole-v1 in lockstep with batched network calls.

    mode "greedy": argmax of the network output; mode "sampled": sample softmax(output / temperature).
    Returns (number of episodes reaching 500 steps, episode lengths, mean |x| over all steps).
    """
    rng = np.random.default_rng(rng_seed)
    envs = [gym.make("CartPole-v1") for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=seed0 + i)[0] for i, env in enumerate(envs)])
    alive = np.ones(n_episodes, dtype=bool)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    abs_x_sum, abs_x_n = 0.0, 0
    net.eval()
    while alive.any():
        idx = np.flatnonzero(alive)
        with torch.no_grad():
            out = net(torch.from_numpy(normalise(obs[idx]))).numpy().astype(np.float64)
        if mode == "greedy":
            acts = out.argmax(axis=1)
        elif mode == "sampled":
            logits = out / temperature
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            acts = (rng.random(len(idx)) < p[:, 1]).astype(np.int64)
        else:
            raise ValueError(mode)
        for j, i in enumerate(idx):
            o, _, term, trunc, _ = envs[i].step(int(acts[j]))
            obs[i] = o
            lengths[i] += 1
            abs_x_sum += abs(float(o[0]))
            abs_x_n += 1
            if term or trunc:
                alive[i] = False
    for env in envs:
        env.close()
    successes = int((lengths >= MAX_EPISODE_STEPS).sum())
    return successes, lengths, abs_x_sum / max(abs_x_n, 1)


def train_expert(total_steps: int = TOTAL_STEPS, seed: int = SEED, verbose: bool = True) -> nn.Sequential:
    set_seeds(seed)
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1")
    q = make_net()
    q_targ = make_net()
    q_targ.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=LR)

    buf_s = np.zeros((BUFFER_SIZE, 4), dtype=np.float32)
    buf_a = np.zeros(BUFFER_SIZE, dtype=np.int64)
    buf_r = np.zeros(BUFFER_SIZE, dtype=np.float32)
    buf_s2 = np.zeros((BUFFER_SIZE, 4), dtype=np.float32)
    buf_d = np.zeros(BUFFER_SIZE, dtype=np.float32)
    n_stored, ptr = 0, 0

    obs, _ = env.reset(seed=seed)
    z = normalise(obs)
    ep_ret, ep_len, episode = 0.0, 0, 0
    recent_len = deque(maxlen=20)
    best = (-1, None, 0)  # (quick-check successes, state_dict, step)
    t0 = time.time()
    for step in range(1, total_steps + 1):
        with torch.no_grad():
            qs = q(torch.from_numpy(z[None])).numpy()[0].astype(np.float64)
        logits = qs / TAU
        p1 = 1.0 / (1.0 + np.exp(logits[0] - logits[1]))  # softmax probability of action 1
        a = int(rng.random() < p1)
        obs2, _, term, trunc, _ = env.step(a)
        r = base_reward(obs2)
        z2 = normalise(obs2)
        buf_s[ptr], buf_a[ptr], buf_r[ptr], buf_s2[ptr], buf_d[ptr] = z, a, r, z2, float(term)
        ptr = (ptr + 1) % BUFFER_SIZE
        n_stored = min(n_stored + 1, BUFFER_SIZE)
        ep_ret += r
        ep_len += 1
        z = z2
        if term or trunc:
            recent_len.append(ep_len)
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            z = normalise(obs)
            ep_ret, ep_len = 0.0, 0

        if step >= LEARNING_STARTS:
            ix = rng.integers(0, n_stored, size=BATCH_SIZE)
            s = torch.from_numpy(buf_s[ix])
            a_b = torch.from_numpy(buf_a[ix])
            r_b = torch.from_numpy(buf_r[ix])
            s2 = torch.from_numpy(buf_s2[ix])
            d_b = torch.from_numpy(buf_d[ix])
            with torch.no_grad():
                v2 = TAU * torch.logsumexp(q_targ(s2) / TAU, dim=1)
                y = r_b + GAMMA * (1.0 - d_b) * v2
            q_sa = q(s).gather(1, a_b[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(q_sa, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q.parameters(), GRAD_CLIP)
            opt.step()
        if step % TARGET_UPDATE_EVERY == 0:
            q_targ.load_state_dict(q.state_dict())

        if step % CHECK_EVERY == 0:
            succ, lens, mx = evaluate(q, CHECK_EPISODES, CHECK_SEED, "greedy")
            succ_s, lens_s, _ = evaluate(q, CHECK_EPISODES, CHECK_SEED + 1000, "sampled", rng_seed=step)
            score = succ + succ_s
            if score >= best[0]:  # ties go to the later checkpoint
                best = (score, {k: v.clone() for k, v in q.state_dict().items()}, step)
            q.train()
            if verbose:
                print(f"step {step:7d}  episodes {episode:5d}  recent train len "
                      f"{np.mean(recent_len) if recent_len else 0:6.1f}  check greedy {succ}/{CHECK_EPISODES} "
                      f"(mean len {lens.mean():.0f}, mean|x| {mx:.3f})  sampled {succ_s}/{CHECK_EPISODES}  "
                      f"[{time.time() - t0:.0f}s]", flush=True)
    env.close()
    if verbose:
        print(f"selected checkpoint from step {best[2]} (quick-check score {best[0]}/{2 * CHECK_EPISODES})")
    q.load_state_dict(best[1])
    q.eval()
    return q


def export_onnx(net: nn.Module, path: str, output_name: str) -> list[str]:
    """Export with the legacy TorchScript exporter (Linear -> Gemm), weights embedded, opset 17."""
    import onnx

    os.makedirs(os.path.dirname(path), exist_ok=True)
    net.eval()
    dummy = torch.zeros(1, 4, dtype=torch.float32)
    torch.onnx.export(
        net, (dummy,), path, dynamo=False, export_params=True, opset_version=17,
        input_names=["obs"], output_names=[output_name],
        dynamic_axes={"obs": {0: "batch"}, output_name: {0: "batch"}},
    )
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    for init in model.graph.initializer:
        assert init.data_location != onnx.TensorProto.EXTERNAL, "external data not allowed"
    ins = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim],
            i.type.tensor_type.elem_type) for i in model.graph.input]
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim],
             o.type.tensor_type.elem_type) for o in model.graph.output]
    assert ins == [("obs", ["batch", 4], onnx.TensorProto.FLOAT)], ins
    assert outs == [(output_name, ["batch", 2], onnx.TensorProto.FLOAT)], outs
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".data")], "external data file"
    return [n.op_type for n in model.graph.node]


def write_golden(net: nn.Module, onnx_path: str, golden_path: str, output_name: str, generator: str,
                 temperature, seed: int = 2024) -> float:
    """Run 64 seeded standard-normal normalised observations through onnxruntime; write the golden file.

    Returns (max abs, max relative) |torch - onnxruntime| difference.  Agreement is asserted to 1e-5
    relative to max(1, |value|): soft Q-values reach ~100 on these inputs, where one float32 ulp is
    already ~1e-5, so an absolute 1e-5 bound would test summation order rather than correctness."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (y_ort,) = sess.run([output_name], {"obs": x})
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x)).numpy()
    abs_diff = np.abs(y_ort.astype(np.float64) - y_torch.astype(np.float64))
    rel_diff = abs_diff / np.maximum(1.0, np.abs(y_torch.astype(np.float64)))
    assert rel_diff.max() <= 1e-5, f"torch and onnxruntime disagree: abs {abs_diff.max()}, rel {rel_diff.max()}"
    golden = {
        "generator": generator,
        "onnxruntime_version": ort.__version__,
        "torch_version": torch.__version__,
        "input_name": "obs",
        "output_name": output_name,
        "obs_scale": OBS_SCALE_LIST,
        "temperature": temperature,
        # float32 values written as the shortest decimal that round-trips through float32
        "inputs": [[float(np.format_float_positional(v, unique=True)) for v in row] for row in x],
        "outputs": [[float(np.format_float_positional(v, unique=True)) for v in row] for row in y_ort],
    }
    with open(golden_path, "w") as f:
        f.write(dump_json_rows(golden))
    return float(abs_diff.max()), float(rel_diff.max())


def dump_json_rows(obj: dict) -> str:
    """JSON with one top-level key per line and one row per line for lists of lists."""
    lines = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            rows = ",\n".join("  " + json.dumps(r) for r in v)
            lines.append(f"{json.dumps(k)}: [\n{rows}\n ]")
        else:
            lines.append(f"{json.dumps(k)}: {json.dumps(v)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def load_or_train_expert(verbose: bool = True) -> nn.Sequential:
    net = make_net()
    if os.path.exists(EXPERT_PT):
        ckpt = torch.load(EXPERT_PT, map_location="cpu")
        net.load_state_dict(ckpt["state_dict"])
        net.eval()
        if verbose:
            print(f"loaded expert from {EXPERT_PT}")
        return net
    if verbose:
        print(f"{EXPERT_PT} missing: training the expert")
    net = train_expert(verbose=verbose)
    save_expert(net)
    return net


def save_expert(net: nn.Module) -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "obs_scale": OBS_SCALE.tolist(), "temperature": TAU}, EXPERT_PT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=TOTAL_STEPS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--from-checkpoint", action="store_true",
                    help=f"skip training: load {os.path.relpath(EXPERT_PT, REPO)}, evaluate and export")
    args = ap.parse_args()

    t0 = time.time()
    if args.from_checkpoint:
        net = load_or_train_expert()
    else:
        net = train_expert(args.steps, args.seed)
        t_train = time.time() - t0
        print(f"training: {args.steps} env steps (1 gradient update per step after {LEARNING_STARTS}), "
              f"{t_train:.0f} s wall, TAU={TAU}")

    g_succ, g_len, g_mx = evaluate(net, 100, EVAL_SEED, "greedy")
    s_succ, s_len, s_mx = evaluate(net, 100, EVAL_SEED, "sampled", rng_seed=7)
    print(f"greedy  (argmax Q):          {g_succ}/100 episodes reach 500 steps "
          f"(mean length {g_len.mean():.1f}), mean |x| {g_mx:.3f}")
    print(f"sampled (softmax(Q/{TAU})): {s_succ}/100 episodes reach 500 steps "
          f"(mean length {s_len.mean():.1f}), mean |x| {s_mx:.3f}")
    if not args.from_checkpoint:
        save_expert(net)
        print(f"saved {EXPERT_PT}")
    if g_succ < 98 or s_succ < 90:
        print("ACCEPTANCE FAILED (need greedy >= 98/100 and sampled >= 90/100); not exporting")
        return 1

    onnx_path = os.path.join(MODEL_DIR, "prior.onnx")
    ops = export_onnx(net, onnx_path, "q")
    print(f"exported {onnx_path}; op types: {ops}")
    golden_path = os.path.join(MODEL_DIR, "prior_golden.json")
    d_abs, d_rel = write_golden(net, onnx_path, golden_path, "q", "scripts/train_cartpole_prior.py", TAU)
    print(f"wrote {golden_path}; torch vs onnxruntime: max abs diff {d_abs:.2e}, "
          f"max diff / max(1,|q|) {d_rel:.2e}")
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
