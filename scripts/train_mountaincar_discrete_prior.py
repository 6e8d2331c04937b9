#!/usr/bin/env python3
"""Behaviour-cloned stochastic prior for gymnasium MountainCar-v0 (discrete), exported to ONNX.

The expert is a hand-written, stochastic energy-pumping policy (push in the direction of the
velocity, with some 'none' and some opposite pushes so that pi0 is not deterministic):

    d(v)      = sigmoid(v / EXPERT_V_SOFT)                  probability that "the direction" is right
    pi_E(.|s) = P_PUMP * [1 - d, 0, d] + P_NONE * [0, 1, 0] + P_OPP * [d, 0, 1 - d]
                (actions 0 = push left, 1 = none, 2 = push right)

Demonstrations are its sampled rollouts: half start from gymnasium's reset, half from a state drawn
uniformly from the observation box (so that pi0 is defined off the expert's own path too).  An MLP
2-64-64-3 (ReLU) is fitted by maximum likelihood (cross-entropy on the taken actions), so it outputs
logits and softmax(logits) estimates pi_E, not only its argmax.

The network sees normalised observations z = (obs - OBS_OFFSET) / OBS_SCALE (the bundle's manifest
applies this; the ONNX graph itself takes z).  Episodes use a time limit of MAX_EPISODE_STEPS = 500
(gymnasium's default is 200).

The script then checks that the customization target "less left" is reachable under that time limit:
hand-written policies that push left on at most half the fraction of steps the prior's greedy
policy does and still reach the goal in >= 90 % of episodes.

Outputs (paths relative to the repository root):
    models/mountaincar-discrete/prior.onnx          input "obs" [batch,2] (z) -> "logits" [batch,3]
    models/mountaincar-discrete/prior_golden.json   64 seeded standard-normal z inputs, onnxruntime's
                                                    outputs
    scripts/out/mountaincar_discrete_bc.pt          network weights (git-ignored)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

import gymnasium as gym  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "scripts", "out")
CKPT = os.path.join(OUT_DIR, "mountaincar_discrete_bc.pt")
MODEL_DIR = os.path.join(REPO, "models", "mountaincar-discrete")
GENERATOR = "scripts/train_mountaincar_discrete_prior.py"
ENV_ID = "MountainCar-v0"

# Normalisation of (position, velocity): z = (obs - OBS_OFFSET) / OBS_SCALE maps the box to [-1, 1]^2.
OBS_OFFSET_LIST = [-0.3, 0.0]
OBS_SCALE_LIST = [0.9, 0.07]
OBS_OFFSET = np.array(OBS_OFFSET_LIST, dtype=np.float32)
OBS_SCALE = np.array(OBS_SCALE_LIST, dtype=np.float32)
MAX_EPISODE_STEPS = 500

# The stochastic expert.
P_PUMP, P_NONE, P_OPP = 0.85, 0.10, 0.05
EXPERT_V_SOFT = 0.001   # m/step; the direction switch is a sigmoid of v / EXPERT_V_SOFT

SEED = 0
DEMO_STEPS = 60_000
DEMO_SEED = 200_000     # reset seeds of the demonstration episodes
EPOCHS = 40
BATCH_SIZE = 256
LR = 1e-3
VAL_FRACTION = 0.1
EVAL_SEED = 100_000     # reset seeds of the acceptance evaluation
EVAL_EPISODES = 100


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def make_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def normalise(obs) -> np.ndarray:
    return ((np.asarray(obs, dtype=np.float32) - OBS_OFFSET) / OBS_SCALE).astype(np.float32)


def expert_probs(obs: np.ndarray) -> np.ndarray:
    """pi_E(.|s) for observations [n, 2] -> [n, 3] (float64)."""
    v = np.asarray(obs, dtype=np.float64)[:, 1]
    d = 1.0 / (1.0 + np.exp(-v / EXPERT_V_SOFT))
    p = np.zeros((len(v), 3))
    p[:, 0] = P_PUMP * (1.0 - d) + P_OPP * d
    p[:, 1] = P_NONE
    p[:, 2] = P_PUMP * d + P_OPP * (1.0 - d)
    return p


def make_env(max_steps: int = MAX_EPISODE_STEPS):
    return gym.make(ENV_ID, max_episode_steps=max_steps)


def collect_demos(n_steps: int, seed: int):
    """Sampled rollouts of the expert.  Even episodes start at gymnasium's reset, odd ones at a state
    drawn uniformly from the box [-1.2, 0.6) x [-0.07, 0.07).  Returns (z [n,2], actions [n], info)."""
    rng = np.random.default_rng(seed)
    env = make_env()
    zs = np.zeros((n_steps, 2), dtype=np.float32)
    acts = np.zeros(n_steps, dtype=np.int64)
    episode, lengths, goals, ep_len = 0, [], 0, 0

    def reset(ep):
        o, _ = env.reset(seed=DEMO_SEED + ep)
        if ep % 2 == 1:
            st = np.array([rng.uniform(-1.2, 0.6), rng.uniform(-0.07, 0.07)])
            env.unwrapped.state = st
            o = st.astype(np.float32)
        return o

    obs = reset(0)
    for t in range(n_steps):
        p = expert_probs(obs[None])[0]
        a = int(rng.choice(3, p=p))
        zs[t], acts[t] = normalise(obs), a
        obs, _, term, trunc, _ = env.step(a)
        ep_len += 1
        if term or trunc:
            lengths.append(ep_len)
            goals += int(term)
            ep_len = 0
            episode += 1
            obs = reset(episode)
    env.close()
    return zs, acts, {"episodes": len(lengths), "goals": goals, "mean_length": float(np.mean(lengths))}


def evaluate(policy, n_episodes: int, seed0: int, rng_seed: int = 7, max_steps: int = MAX_EPISODE_STEPS):
    """Lockstep episodes of MountainCar-v0 (time limit max_steps).

    policy(obs [k,2] float32, rng) -> actions [k].  Returns a dict: goal count, episode lengths,
    fraction of steps with each action (over all steps)."""
    rng = np.random.default_rng(rng_seed)
    envs = [make_env(max_steps) for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=seed0 + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    alive = np.ones(n_episodes, dtype=bool)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    goal = np.zeros(n_episodes, dtype=bool)
    counts = np.zeros(3, dtype=np.int64)
    visited = []
    while alive.any():
        idx = np.flatnonzero(alive)
        visited.append(obs[idx].copy())
        acts = policy(obs[idx], rng)
        for j, i in enumerate(idx):
            a = int(acts[j])
            o, _, term, trunc, _ = envs[i].step(a)
            obs[i] = o
            lengths[i] += 1
            counts[a] += 1
            if term:
                goal[i] = True
            if term or trunc:
                alive[i] = False
    for env in envs:
        env.close()
    return {"goals": int(goal.sum()), "lengths": lengths, "action_fractions": counts / counts.sum(),
            "visited": np.concatenate(visited)}


def net_policy(net: nn.Module, mode: str):
    def pol(obs, rng):
        with torch.no_grad():
            logits = net(torch.from_numpy(normalise(obs))).numpy().astype(np.float64)
        if mode == "greedy":
            return logits.argmax(1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        u = rng.random(len(obs))
        return (u[:, None] > np.cumsum(p, 1)[:, :2]).sum(1)
    return pol


def expert_policy(mode: str):
    def pol(obs, rng):
        p = expert_probs(obs)
        if mode == "greedy":
            return p.argmax(1)
        u = rng.random(len(obs))
        return (u[:, None] > np.cumsum(p, 1)[:, :2]).sum(1)
    return pol


# Hand-written "less left" policies (the customization target): always push right when v >= 0;
# when v < 0, push left only under a condition, otherwise do nothing.
HANDWRITTEN = {
    "right_only (v<0: none, else right)":
        lambda obs, rng: np.where(obs[:, 1] < 0, 1, 2),
    "left only if v<0 and position > -0.5 (v<0: else none; v>=0: right)":
        lambda obs, rng: np.where(obs[:, 1] < 0, np.where(obs[:, 0] > -0.5, 0, 1), 2),
}


def describe(name: str, ev) -> str:
    L = ev["lengths"]
    f = ev["action_fractions"]
    return (f"{name}: goal {ev['goals']}/{len(L)}, length mean {L.mean():.1f} max {L.max()}, "
            f"action fractions left {f[0]:.4f} none {f[1]:.4f} right {f[2]:.4f}")


# ----------------------------------------------------------------------------------------------
# export and golden values

def export_onnx(net: nn.Module, path: str) -> list[str]:
    """Legacy TorchScript exporter (Linear -> Gemm), weights embedded, opset 17."""
    import onnx

    os.makedirs(os.path.dirname(path), exist_ok=True)
    net.eval()
    dummy = torch.zeros(1, 2, dtype=torch.float32)
    torch.onnx.export(
        net, (dummy,), path, dynamo=False, export_params=True, opset_version=17,
        input_names=["obs"], output_names=["logits"],
        dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
    )
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    for init in model.graph.initializer:
        assert init.data_location != onnx.TensorProto.EXTERNAL, "external data not allowed"

    def sig(vs):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 v.type.tensor_type.elem_type) for v in vs]
    assert sig(model.graph.input) == [("obs", ["batch", 2], onnx.TensorProto.FLOAT)], sig(model.graph.input)
    assert sig(model.graph.output) == [("logits", ["batch", 3], onnx.TensorProto.FLOAT)], sig(model.graph.output)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".data")], "external data file"
    return [n.op_type for n in model.graph.node]


def f32_row(row) -> list:
    return [float(np.format_float_positional(v, unique=True)) for v in np.asarray(row, dtype=np.float32)]


def write_golden(net: nn.Module, onnx_path: str, golden_path: str, seed: int = 2024):
    """64 seeded standard-normal normalised inputs z through onnxruntime; asserts torch agrees to
    1e-5 relative to max(1, |value|).  Same format as models/cartpole-bc/prior_golden.json, plus
    "obs_offset"."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (y_ort,) = sess.run(["logits"], {"obs": x})
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x)).numpy()
    abs_diff = np.abs(y_ort.astype(np.float64) - y_torch.astype(np.float64))
    rel_diff = abs_diff / np.maximum(1.0, np.abs(y_torch.astype(np.float64)))
    assert rel_diff.max() <= 1e-5, f"torch and onnxruntime disagree: abs {abs_diff.max()}, rel {rel_diff.max()}"
    golden = {
        "generator": GENERATOR,
        "onnxruntime_version": ort.__version__,
        "torch_version": torch.__version__,
        "input_name": "obs",
        "output_name": "logits",
        "obs_offset": OBS_OFFSET_LIST,
        "obs_scale": OBS_SCALE_LIST,
        "temperature": None,
        "inputs": [f32_row(r) for r in x],
        "outputs": [f32_row(r) for r in y_ort],
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


# ----------------------------------------------------------------------------------------------

def train_bc(seed: int) -> nn.Sequential:
    set_seeds(seed)
    t_demo = time.time()
    zs, acts, info = collect_demos(DEMO_STEPS, seed)
    print(f"collected {DEMO_STEPS} demonstration steps from the expert's sampled policy "
          f"({info['episodes']} complete episodes, {info['goals']} reached the goal, mean length "
          f"{info['mean_length']:.1f}; action fractions {np.bincount(acts, minlength=3) / len(acts)}) "
          f"in {time.time() - t_demo:.0f} s")
    obs_raw = zs.astype(np.float64) * OBS_SCALE + OBS_OFFSET
    p_exp = torch.from_numpy(expert_probs(obs_raw)).float()

    rng = np.random.default_rng(seed)
    perm = rng.permutation(DEMO_STEPS)
    n_val = int(VAL_FRACTION * DEMO_STEPS)
    val, tr = perm[:n_val], perm[n_val:]
    x_tr, y_tr = torch.from_numpy(zs[tr]), torch.from_numpy(acts[tr])
    x_val, y_val = torch.from_numpy(zs[val]), torch.from_numpy(acts[val])

    net = make_net()
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
                pv = p_exp[val]
                floor = -(pv * torch.log(pv)).sum(1).mean().item()   # the expert's entropy
                kl = (pv * (torch.log(pv) - torch.log_softmax(val_logits, 1))).sum(1).mean().item()
                agree = (val_logits.argmax(1) == pv.argmax(1)).float().mean().item()
            print(f"epoch {epoch:3d}  train CE {tr_loss:.4f}  val CE {val_loss:.4f}  (expert entropy "
                  f"{floor:.4f})  KL(expert||BC) {kl:.4f}  val argmax agreement {agree:.4f}", flush=True)
    net.eval()
    print(f"BC training: {EPOCHS} epochs x {len(tr)} samples, batch {BATCH_SIZE}, "
          f"{time.time() - t_train:.0f} s wall")
    return net


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--from-checkpoint", action="store_true",
                    help=f"skip training: load {os.path.relpath(CKPT, REPO)}, evaluate and export")
    args = ap.parse_args()
    t0 = time.time()
    if args.from_checkpoint:
        set_seeds(args.seed)
        net = make_net()
        net.load_state_dict(torch.load(CKPT, map_location="cpu")["state_dict"])
        net.eval()
        print(f"loaded {CKPT}")
    else:
        net = train_bc(args.seed)
        os.makedirs(OUT_DIR, exist_ok=True)
        torch.save({"state_dict": net.state_dict(), "obs_offset": OBS_OFFSET_LIST,
                    "obs_scale": OBS_SCALE_LIST}, CKPT)
        print(f"saved {CKPT}")

    t1 = time.time()
    print(f"evaluation: {EVAL_EPISODES} episodes each, reset seeds {EVAL_SEED}..{EVAL_SEED + EVAL_EPISODES - 1}, "
          f"time limit {MAX_EPISODE_STEPS} steps")
    g = evaluate(net_policy(net, "greedy"), EVAL_EPISODES, EVAL_SEED)
    s = evaluate(net_policy(net, "sampled"), EVAL_EPISODES, EVAL_SEED, rng_seed=7)
    print("  " + describe("prior greedy  (argmax logits)  ", g))
    print("  " + describe("prior sampled (softmax(logits))", s))
    print("  " + describe("expert greedy                  ", evaluate(expert_policy("greedy"), EVAL_EPISODES, EVAL_SEED)))
    print("  " + describe("expert sampled                 ", evaluate(expert_policy("sampled"), EVAL_EPISODES, EVAL_SEED, rng_seed=7)))
    with torch.no_grad():
        lp = torch.log_softmax(net(torch.from_numpy(normalise(s["visited"]))), 1)
        ent = float(-(lp.exp() * lp).sum(1).mean())
        p_mean = lp.exp().mean(0).numpy()
    print(f"  pi0 on the states the sampled prior visits: mean entropy {ent:.3f} nats (max ln 3 = 1.099), "
          f"mean probabilities left {p_mean[0]:.3f} none {p_mean[1]:.3f} right {p_mean[2]:.3f}")
    left_prior = g["action_fractions"][0]
    reachable = False
    for name, pol in HANDWRITTEN.items():
        ev = evaluate(pol, EVAL_EPISODES, EVAL_SEED)
        ratio = ev["action_fractions"][0] / left_prior
        ok = ratio <= 0.5 and ev["goals"] >= 0.9 * EVAL_EPISODES
        reachable |= ok
        print("  " + describe(f"hand-written {name}", ev) + f"; left / prior greedy left = {ratio:.3f}"
              + ("  (meets 'less left')" if ok else ""))
    print("  for information, with shorter time limits (goal count out of 100):")
    for T in (200, 300):
        cells = [f"{name.split(' ')[0]} {evaluate(pol, EVAL_EPISODES, EVAL_SEED, max_steps=T)['goals']}"
                 for name, pol in [("prior-greedy", net_policy(net, "greedy")),
                                   ("prior-sampled", net_policy(net, "sampled"))] + list(HANDWRITTEN.items())]
        print(f"    {T} steps: " + ", ".join(cells))
    print(f"  evaluation {time.time() - t1:.1f} s")
    ok = g["goals"] >= 95 and s["goals"] >= 90 and reachable
    if not ok:
        print("ACCEPTANCE FAILED (need greedy >= 95/100, sampled >= 90/100, a 'less left' policy); not exporting")
        return 1

    onnx_path = os.path.join(MODEL_DIR, "prior.onnx")
    ops = export_onnx(net, onnx_path)
    print(f"exported {onnx_path} ({os.path.getsize(onnx_path)} bytes); op types: {ops}")
    golden_path = os.path.join(MODEL_DIR, "prior_golden.json")
    d_abs, d_rel = write_golden(net, onnx_path, golden_path)
    print(f"wrote {golden_path}; torch vs onnxruntime: max abs diff {d_abs:.2e}, "
          f"max diff / max(1,|logit|) {d_rel:.2e}")
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
