#!/usr/bin/env python3
"""Train a SAC prior (tanh-squashed Gaussian actor) for a gymnasium continuous-control task, export
the actor to ONNX and write golden values for resq's tests.

    python3 scripts/train_sac_prior.py --env pendulum      # Pendulum-v1, stock reward
    python3 scripts/train_sac_prior.py --env mountaincar   # MountainCarContinuous-v0, stock reward
    python3 scripts/train_sac_prior.py --env reacher       # MuJoCo Reacher-v5, stock reward
    python3 scripts/train_sac_prior.py --env halfcheetah   # MuJoCo HalfCheetah-v5, stock reward

Plain-PyTorch SAC (Haarnoja et al. 2018, v2: twin critics, Polyak targets, automatic entropy
temperature).  Observations are fed raw (no normalisation).  The actor is

    h = ReLU(W2 ReLU(W1 obs + b1) + b2);   mean = Wm h + bm;   log_std = Ws h + bs
    u ~ N(mean, exp(clamp(log_std, -20, 2))),   a = tanh(u) in [-1, 1],   env action = a * action_high

Exploration help for MountainCarContinuous (plain SAC learns to stand still there): the first
`warmup_steps` environment steps use bang-bang actions a = +-1 held for a geometric number of steps
(mean 10).  That random process reaches the goal in every episode (~240 steps), so the replay buffer
holds the +100 goal reward from the start.  After the warm-up the SAC policy acts alone (sampled
actions, no added noise).  The exported actor is the plain state-dependent Gaussian above.

Outputs (paths relative to the repository root):
    models/<env>/prior.onnx          input "obs" [batch,n_obs] -> outputs "mean", "log_std" [batch,n_act]
    models/<env>/prior_golden.json   64 inputs, onnxruntime's mean/log_std, 4 actions per input and
                                     log pi0(a|s) (see LOG_PROB_FORMULA)
    scripts/out/<env>_sac_actor.pt   actor weights (git-ignored); --from-checkpoint re-exports it
"""
from __future__ import annotations

import argparse
import json
import math
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
GENERATOR = "scripts/train_sac_prior.py"

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
CLAMP_EPS = 1e-6       # a is clamped to +-(1 - CLAMP_EPS) before atanh
JACOBIAN_EPS = 1e-6    # log(1 - a^2 + JACOBIAN_EPS)

LOG_PROB_FORMULA = (
    "a_c = clamp(a, -(1-1e-6), 1-1e-6); u = atanh(a_c); ls = clamp(log_std, -20, 2); "
    "log_prob = sum_j [ -(u_j - mean_j)^2 / (2 exp(ls_j)^2) - ls_j - log(sqrt(2 pi)) ] "
    "- sum_j log(1 - a_c_j^2 + 1e-6). "
    "The clamped a_c is used in both terms (an action of exactly +-1.0 gives the same value as "
    "+-(1-1e-6)). Computed with torch.distributions.Normal(mean, exp(ls)).log_prob(u).sum(-1) "
    "- torch.log(1 - a_c**2 + 1e-6).sum(-1): 'log_prob' in float32 (from the float32 mean/log_std/"
    "actions below; the clamp bound is then float32(1-1e-6) = 0.99999898672103882), 'log_prob_f64' "
    "from the same float32 values promoted to float64 (clamp bound 0.999999 in float64)."
)

CONFIGS = {
    "pendulum": dict(
        env_id="Pendulum-v1",
        total_steps=20_000,
        warmup="uniform",      # uniformly random actions for the first warmup_steps steps
        warmup_steps=1_000,
        learning_starts=1_000,
        gamma=0.99,
        tau=0.005,
        lr=1e-3,
        batch_size=256,
        buffer_size=100_000,
        actor_hidden=64,
        critic_hidden=256,
        init_alpha=1.0,
        target_entropy=-1.0,
        check_every=2_000,
        check_episodes=10,
    ),
    "mountaincar": dict(
        env_id="MountainCarContinuous-v0",
        total_steps=50_000,
        warmup="held",         # bang-bang +-1 held for Geometric(1/10) steps
        warmup_steps=10_000,
        learning_starts=10_000,
        gamma=0.99,
        tau=0.005,
        lr=3e-4,
        batch_size=256,
        buffer_size=100_000,
        actor_hidden=64,
        critic_hidden=128,
        init_alpha=0.1,
        target_entropy=-1.0,
        check_every=5_000,
        check_episodes=10,
    ),
    # MuJoCo (gymnasium[mujoco]).  Reacher-v5: 50-step episodes (truncation), obs 10, 2 torques.
    "reacher": dict(
        env_id="Reacher-v5",
        total_steps=50_000,
        warmup="uniform",
        warmup_steps=2_000,
        learning_starts=2_000,
        gamma=0.99,
        tau=0.005,
        lr=3e-4,
        batch_size=256,
        buffer_size=100_000,
        actor_hidden=64,
        critic_hidden=256,
        init_alpha=0.1,
        target_entropy=-2.0,
        check_every=5_000,
        check_episodes=20,
    ),
    # HalfCheetah-v5: 1000-step episodes (truncation, never terminates), obs 17, 6 torques.
    "halfcheetah": dict(
        env_id="HalfCheetah-v5",
        total_steps=100_000,
        warmup="uniform",
        warmup_steps=5_000,
        learning_starts=5_000,
        gamma=0.99,
        tau=0.005,
        lr=3e-4,
        batch_size=256,
        buffer_size=100_000,
        actor_hidden=256,
        critic_hidden=256,
        init_alpha=1.0,
        target_entropy=-6.0,
        check_every=10_000,
        check_episodes=5,
        eval_episodes=10,
    ),
}

SEED = 0
CHECK_SEED = 50_000   # reset seeds for the periodic checks (checkpoint selection)
EVAL_SEED = 100_000   # reset seeds for the acceptance evaluation
EVAL_EPISODES = 50


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


class Actor(nn.Module):
    """Plain state-dependent Gaussian: two separate Linear heads so that the ONNX graph is
    Gemm, Relu, Gemm, Relu, Gemm, Gemm with two outputs.  forward() returns the UNclamped log_std."""

    def __init__(self, n_obs: int, n_act: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_obs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, n_act)
        self.log_std = nn.Linear(hidden, n_act)

    def forward(self, obs):
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h)

    def sample(self, obs, generator=None):
        """Reparameterised sample a = tanh(mean + std*eps) and its log-probability."""
        mean, log_std = self(obs)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        eps = torch.randn(mean.shape, generator=generator)
        u = mean + std * eps
        a = torch.tanh(u)
        logp = torch.distributions.Normal(mean, std).log_prob(u).sum(-1) \
            - torch.log(1.0 - a.pow(2) + JACOBIAN_EPS).sum(-1)
        return a, logp


def make_critic(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


def log_prob_squashed(mean, log_std, a):
    """log pi0(a|s) of the tanh-squashed Gaussian, exactly as resq computes it (docs/design.md section 1.6).

    mean, log_std: [..., n_act]; a: [..., n_act] in [-1, 1] units.  Dtype follows the inputs."""
    bound = 1.0 - CLAMP_EPS
    a_c = a.clamp(-bound, bound)
    u = torch.atanh(a_c)
    ls = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    gauss = torch.distributions.Normal(mean, ls.exp()).log_prob(u).sum(-1)
    return gauss - torch.log(1.0 - a_c.pow(2) + JACOBIAN_EPS).sum(-1)


# ----------------------------------------------------------------------------------------------
# evaluation

def evaluate(actor: Actor, env_id: str, n_episodes: int, seed0: int, sample_seed: int | None = None,
             max_steps: int | None = None):
    """Deterministic policy a = tanh(mean) (or, with sample_seed, a sampled from pi0), env action =
    a * action_high; lockstep batched episodes (time limit max_steps, default the registered one).

    Returns a dict of episode returns, lengths, goal flags (terminated), and per-step statistics:
    fraction of steps with a < 0, fraction with cos(theta) > 0.9 (Pendulum), mean |a|, mean a^2
    (a in [-1,1] units; the env action is a * action_high), mean a[1]^2, mean ||a_t - a_{t-1}||^2
    (a_{-1} = 0), mean info['x_velocity'] (HalfCheetah) and the mean final ||obs[8:10]|| (Reacher:
    fingertip - target at the last step)."""
    if max_steps is None:
        envs = [gym.make(env_id) for _ in range(n_episodes)]
    else:
        envs = [gym.make(env_id, max_episode_steps=max_steps) for _ in range(n_episodes)]
    high = envs[0].action_space.high.astype(np.float32)
    obs = np.stack([env.reset(seed=seed0 + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    alive = np.ones(n_episodes, dtype=bool)
    rets = np.zeros(n_episodes)
    lens = np.zeros(n_episodes, dtype=np.int64)
    goal = np.zeros(n_episodes, dtype=bool)
    n_steps = n_left = n_upright = 0
    sum_abs_a = sum_a2 = 0.0
    sum_a1_2 = sum_da2 = sum_xvel = sum_std = 0.0
    prev_a = np.zeros((n_episodes,) + envs[0].action_space.shape, np.float64)
    final_dist = np.zeros(n_episodes)
    gen = torch.Generator().manual_seed(sample_seed) if sample_seed is not None else None
    actor.eval()
    while alive.any():
        idx = np.flatnonzero(alive)
        with torch.no_grad():
            if gen is None:
                mean, _ = actor(torch.from_numpy(obs[idx]))
                a = torch.tanh(mean).numpy().astype(np.float32)
            else:
                a = actor.sample(torch.from_numpy(obs[idx]), gen)[0].numpy().astype(np.float32)
            # mean std of u = atanh(a) over the visited states and the action's components
            sum_std += float(actor(torch.from_numpy(obs[idx]))[1].clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
                             .double().mean(1).sum())
        for j, i in enumerate(idx):
            o, r, term, trunc, info = envs[i].step((a[j] * high).astype(np.float32))
            obs[i] = o
            rets[i] += r
            lens[i] += 1
            n_steps += 1
            n_left += int(a[j][0] < 0)
            sum_abs_a += float(np.abs(a[j]).sum())
            sum_a2 += float((a[j].astype(np.float64) ** 2).sum())
            if a.shape[1] > 1:
                sum_a1_2 += float(a[j][1]) ** 2
            sum_da2 += float(((a[j].astype(np.float64) - prev_a[i]) ** 2).sum())
            prev_a[i] = a[j]
            if "x_velocity" in info:
                sum_xvel += float(info["x_velocity"])
            if env_id.startswith("Reacher"):
                final_dist[i] = float(np.linalg.norm(o[8:10].astype(np.float64)))
            if env_id.startswith("Pendulum"):
                n_upright += int(math.cos(float(envs[i].unwrapped.state[0])) > 0.9)
            if term:
                goal[i] = True
            if term or trunc:
                alive[i] = False
    for env in envs:
        env.close()
    actor.train()
    return {
        "returns": rets, "lengths": lens, "goal": goal,
        "left_fraction": n_left / n_steps, "upright_fraction": n_upright / n_steps,
        "mean_abs_a": sum_abs_a / n_steps, "mean_a2": sum_a2 / n_steps, "steps": n_steps,
        "mean_a1_sq": sum_a1_2 / n_steps, "mean_da2": sum_da2 / n_steps, "mean_x_velocity": sum_xvel / n_steps,
        "final_dist": final_dist, "mean_std": sum_std / n_steps,
    }


def check_score(env_name: str, ev) -> float:
    if env_name == "mountaincar":
        return 1000.0 * ev["goal"].mean() + ev["returns"].mean()
    return float(ev["returns"].mean())


# ----------------------------------------------------------------------------------------------
# training

def train(env_name: str, total_steps: int, seed: int, verbose: bool = True) -> tuple[Actor, dict]:
    cfg = CONFIGS[env_name]
    set_seeds(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make(cfg["env_id"])
    n_obs = env.observation_space.shape[0]
    n_act = env.action_space.shape[0]
    high = env.action_space.high.astype(np.float32)

    actor = Actor(n_obs, n_act, cfg["actor_hidden"])
    q1, q2 = make_critic(n_obs + n_act, cfg["critic_hidden"]), make_critic(n_obs + n_act, cfg["critic_hidden"])
    q1_t, q2_t = make_critic(n_obs + n_act, cfg["critic_hidden"]), make_critic(n_obs + n_act, cfg["critic_hidden"])
    q1_t.load_state_dict(q1.state_dict())
    q2_t.load_state_dict(q2.state_dict())
    for p in list(q1_t.parameters()) + list(q2_t.parameters()):
        p.requires_grad_(False)
    log_alpha = torch.tensor(math.log(cfg["init_alpha"]), requires_grad=True)
    opt_actor = torch.optim.Adam(actor.parameters(), lr=cfg["lr"])
    opt_critic = torch.optim.Adam(list(q1.parameters()) + list(q2.parameters()), lr=cfg["lr"])
    opt_alpha = torch.optim.Adam([log_alpha], lr=cfg["lr"])
    target_entropy = cfg["target_entropy"]
    gamma, tau, bs = cfg["gamma"], cfg["tau"], cfg["batch_size"]

    N = cfg["buffer_size"]
    buf_s = np.zeros((N, n_obs), np.float32)
    buf_a = np.zeros((N, n_act), np.float32)
    buf_r = np.zeros(N, np.float32)
    buf_s2 = np.zeros((N, n_obs), np.float32)
    buf_d = np.zeros(N, np.float32)
    n_stored = ptr = 0

    episode = 0
    obs, _ = env.reset(seed=seed)
    held_a, held_left = 0.0, 0
    ep_ret, ep_len, recent = 0.0, 0, []
    best = (-math.inf, None, 0)
    history = []
    t0 = time.time()
    for step in range(1, total_steps + 1):
        if step <= cfg["warmup_steps"]:
            if cfg["warmup"] == "uniform":
                a = rng.uniform(-1.0, 1.0, size=n_act).astype(np.float32)
            else:  # "held": bang-bang +-1 held for a geometric number of steps (mean 10)
                if held_left == 0:
                    held_a = float(rng.choice([-1.0, 1.0]))
                    held_left = int(rng.geometric(0.1))
                held_left -= 1
                a = np.full(n_act, held_a, np.float32)
        else:
            with torch.no_grad():
                a_t, _ = actor.sample(torch.from_numpy(obs[None].astype(np.float32)), gen)
            a = a_t.numpy()[0].astype(np.float32)
        obs2, r, term, trunc, _ = env.step((a * high).astype(np.float32))
        buf_s[ptr], buf_a[ptr], buf_r[ptr], buf_s2[ptr], buf_d[ptr] = obs, a, r, obs2, float(term)
        ptr = (ptr + 1) % N
        n_stored = min(n_stored + 1, N)
        ep_ret += float(r)
        ep_len += 1
        obs = obs2
        if term or trunc:
            recent.append((ep_ret, ep_len, bool(term)))
            recent = recent[-10:]
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            ep_ret, ep_len = 0.0, 0

        if step >= cfg["learning_starts"]:
            ix = rng.integers(0, n_stored, size=bs)
            s = torch.from_numpy(buf_s[ix])
            a_b = torch.from_numpy(buf_a[ix])
            r_b = torch.from_numpy(buf_r[ix])
            s2 = torch.from_numpy(buf_s2[ix])
            d_b = torch.from_numpy(buf_d[ix])
            alpha = log_alpha.exp().detach()
            with torch.no_grad():
                a2, logp2 = actor.sample(s2, gen)
                sa2 = torch.cat([s2, a2], 1)
                q_next = torch.min(q1_t(sa2), q2_t(sa2)).squeeze(1) - alpha * logp2
                y = r_b + gamma * (1.0 - d_b) * q_next
            sa = torch.cat([s, a_b], 1)
            loss_q = F.mse_loss(q1(sa).squeeze(1), y) + F.mse_loss(q2(sa).squeeze(1), y)
            opt_critic.zero_grad()
            loss_q.backward()
            opt_critic.step()

            a_pi, logp = actor.sample(s, gen)
            sa_pi = torch.cat([s, a_pi], 1)
            q_pi = torch.min(q1(sa_pi), q2(sa_pi)).squeeze(1)
            loss_pi = (alpha * logp - q_pi).mean()
            opt_actor.zero_grad()
            loss_pi.backward()
            opt_actor.step()

            loss_alpha = -(log_alpha * (logp.detach() + target_entropy)).mean()
            opt_alpha.zero_grad()
            loss_alpha.backward()
            opt_alpha.step()
            # the actor step put gradients into the critics' parameters; they are zeroed next step

            with torch.no_grad():
                for net, targ in ((q1, q1_t), (q2, q2_t)):
                    for p, pt in zip(net.parameters(), targ.parameters()):
                        pt.mul_(1.0 - tau).add_(p, alpha=tau)

        if step % cfg["check_every"] == 0:
            ev = evaluate(actor, cfg["env_id"], cfg["check_episodes"], CHECK_SEED)
            score = check_score(env_name, ev)
            if step > cfg["learning_starts"] and score >= best[0]:  # ties go to the later checkpoint
                best = (score, {k: v.clone() for k, v in actor.state_dict().items()}, step)
            history.append({"step": step, "check_return": float(ev["returns"].mean()),
                            "check_goal": float(ev["goal"].mean()), "alpha": float(log_alpha.detach().exp())})
            if verbose:
                rr = np.mean([x[0] for x in recent]) if recent else float("nan")
                gg = np.mean([x[2] for x in recent]) if recent else float("nan")
                print(f"step {step:6d}  episodes {episode:4d}  recent train return {rr:8.2f} goal {gg:.1f}  "
                      f"check return {ev['returns'].mean():8.2f} goal {ev['goal'].mean():.2f} "
                      f"left {ev['left_fraction']:.3f} |a| {ev['mean_abs_a']:.3f}  alpha {float(log_alpha.detach().exp()):.4f}"
                      f"  [{time.time() - t0:.0f}s]", flush=True)
    env.close()
    if best[1] is not None:
        actor.load_state_dict(best[1])
    if verbose:
        print(f"selected checkpoint from step {best[2]} (check score {best[0]:.2f})")
    actor.eval()
    return actor, {"selected_step": best[2], "history": history, "train_seconds": time.time() - t0}


# ----------------------------------------------------------------------------------------------
# export and golden values

def f32_list(v) -> list:
    """float32 values as the shortest decimal that round-trips through float32 (nested lists)."""
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 0:
        return float(np.format_float_positional(v, unique=True))
    return [f32_list(x) for x in v]


def export_onnx(actor: Actor, path: str, n_obs: int, n_act: int) -> list[str]:
    """Legacy TorchScript exporter (Linear -> Gemm), opset 17, weights embedded, two outputs."""
    import onnx

    os.makedirs(os.path.dirname(path), exist_ok=True)
    actor.eval()
    dummy = torch.zeros(1, n_obs, dtype=torch.float32)
    torch.onnx.export(
        actor, (dummy,), path, dynamo=False, export_params=True, opset_version=17,
        input_names=["obs"], output_names=["mean", "log_std"],
        dynamic_axes={"obs": {0: "batch"}, "mean": {0: "batch"}, "log_std": {0: "batch"}},
    )
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    for init in model.graph.initializer:
        assert init.data_location != onnx.TensorProto.EXTERNAL, "external data not allowed"

    def sig(vs):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 v.type.tensor_type.elem_type) for v in vs]
    F32 = onnx.TensorProto.FLOAT
    assert sig(model.graph.input) == [("obs", ["batch", n_obs], F32)], sig(model.graph.input)
    assert sig(model.graph.output) == [("mean", ["batch", n_act], F32), ("log_std", ["batch", n_act], F32)], \
        sig(model.graph.output)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".data")], "external data file"
    ops = [n.op_type for n in model.graph.node]
    assert set(ops) <= {"Gemm", "Relu"}, ops
    return ops


def golden_inputs(env_name: str, actor: Actor, rng: np.random.Generator) -> np.ndarray:
    """48 observations from the task's own observation manifold and 16 unusual ones: from 4000 seeded
    random candidates of magnitude 1..1e4, the smallest-norm ones whose log_std is below -20 (up to 5)
    and above 2 (up to 5), then others spread over the magnitudes."""
    if env_name in ("reacher", "halfcheetah"):
        normal = rollout_observations(CONFIGS[env_name]["env_id"], actor, 48, rng)
        n_obs = normal.shape[1]
        cand = rng.standard_normal((4000, n_obs)) * 10.0 ** rng.uniform(0, 4, (4000, 1))
    elif env_name == "mountaincar":
        pos = rng.uniform(-1.2, 0.6, 48)
        vel = rng.uniform(-0.07, 0.07, 48)
        normal = np.stack([pos, vel], 1)
        cand = rng.standard_normal((4000, 2)) * np.array([1.0, 1.0]) * 10.0 ** rng.uniform(0, 4, (4000, 1))
    else:
        th = rng.uniform(-np.pi, np.pi, 48)
        thdot = rng.uniform(-8.0, 8.0, 48)
        normal = np.stack([np.cos(th), np.sin(th), thdot], 1)
        cand = rng.standard_normal((4000, 3)) * 10.0 ** rng.uniform(0, 4, (4000, 1))
    cand = cand.astype(np.float32)
    cand = cand[np.argsort(np.linalg.norm(cand.astype(np.float64), axis=1), kind="stable")]  # smallest first
    with torch.no_grad():
        _, ls = actor(torch.from_numpy(cand))
    ls = ls.numpy().min(1), ls.numpy().max(1)
    # the least unusual inputs whose log_std is beyond each clamp bound (5 each, if any)
    low = np.flatnonzero(ls[0] < LOG_STD_MIN)[:5]
    hi = np.flatnonzero(ls[1] > LOG_STD_MAX)[:5]
    chosen = list(low) + list(hi)
    rest = [i for i in range(len(cand)) if i not in set(chosen)]
    chosen += rest[:: max(1, len(rest) // (16 - len(chosen)))][: 16 - len(chosen)]  # spread over magnitudes
    return np.concatenate([normal.astype(np.float32), cand[chosen]], 0).astype(np.float32)


def rollout_observations(env_id: str, actor: Actor, n: int, rng: np.random.Generator) -> np.ndarray:
    """n observations visited by the sampled prior (MuJoCo tasks): 4 episodes from reset seeds
    300 000.., actions sampled from pi0 with a generator seeded from rng; n steps drawn at random."""
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
    seen = []
    for ep in range(4):
        env = gym.make(env_id)
        high = env.action_space.high.astype(np.float32)
        o, _ = env.reset(seed=300_000 + ep)
        done = False
        while not done:
            seen.append(np.asarray(o, np.float32))
            with torch.no_grad():
                a = actor.sample(torch.from_numpy(np.asarray(o, np.float32)[None]), gen)[0].numpy()[0]
            o, _, term, trunc, _ = env.step((a * high).astype(np.float32))
            done = term or trunc
        env.close()
    seen = np.stack(seen)
    return seen[np.sort(rng.choice(len(seen), n, replace=False))]


EDGE_ACTIONS = [1.0, -1.0, 0.999999, -0.999999, 0.9999999, -0.9999999, 0.99999, -0.99999]


def golden_actions(mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per input 4 actions (float32, [-1,1] units): the mode tanh(mean), a sample of pi0, a uniform
    draw, and an edge value cycling through EDGE_ACTIONS (+-1.0 exactly, +-0.999999, ...)."""
    n, n_act = mean.shape
    out = np.zeros((n, 4, n_act), np.float32)
    ls = np.clip(log_std.astype(np.float64), LOG_STD_MIN, LOG_STD_MAX)
    for i in range(n):
        out[i, 0] = np.tanh(mean[i].astype(np.float64))
        out[i, 1] = np.tanh(mean[i] + np.exp(ls[i]) * rng.standard_normal(n_act))
        out[i, 2] = rng.uniform(-1.0, 1.0, n_act)
        out[i, 3] = EDGE_ACTIONS[i % len(EDGE_ACTIONS)]
    return out


def write_golden(env_name: str, actor: Actor, onnx_path: str, golden_path: str, action_high, seed: int = 2024):
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = golden_inputs(env_name, actor, rng)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    mean_o, ls_o = sess.run(["mean", "log_std"], {"obs": x})
    with torch.no_grad():
        mean_t, ls_t = (t.numpy() for t in actor(torch.from_numpy(x)))
    diffs = []
    for o, t in ((mean_o, mean_t), (ls_o, ls_t)):
        d = np.abs(o.astype(np.float64) - t.astype(np.float64))
        diffs.append((float(d.max()), float((d / np.maximum(1.0, np.abs(t.astype(np.float64)))).max())))
    assert max(r for _, r in diffs) <= 1e-5, f"torch and onnxruntime disagree: {diffs}"

    acts = golden_actions(mean_o, ls_o, rng)
    m32 = torch.from_numpy(mean_o)[:, None, :].expand(-1, 4, -1)
    l32 = torch.from_numpy(ls_o)[:, None, :].expand(-1, 4, -1)
    a32 = torch.from_numpy(acts)
    lp32 = log_prob_squashed(m32, l32, a32).numpy()
    lp64 = log_prob_squashed(m32.double(), l32.double(), a32.double()).numpy()
    assert np.isfinite(lp32).all() and np.isfinite(lp64).all()
    extreme = [i for i in range(len(x)) if (ls_o[i] < LOG_STD_MIN).any() or (ls_o[i] > LOG_STD_MAX).any()]
    golden = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
        "env_id": CONFIGS[env_name]["env_id"],
        "input_name": "obs",
        "output_names": ["mean", "log_std"],
        "action_high": f32_list(action_high),
        "log_std_clamp": [LOG_STD_MIN, LOG_STD_MAX],
        "log_prob_formula": LOG_PROB_FORMULA,
        "notes": "inputs[0..48] lie on the task's observation manifold; inputs[48..64] are unusual "
                 "(large) observations, chosen so that some have log_std outside [-20, 2]: indices "
                 f"{extreme}. actions[i][k] is a vector of n_act float32 values in [-1, 1] units: "
                 "k=0 tanh(mean), k=1 a sample of pi0, k=2 uniform, k=3 an edge value "
                 f"(cycling {EDGE_ACTIONS}, as float32). mean/log_std are onnxruntime's outputs; "
                 "log_prob [64][4] float32, log_prob_f64 [64][4] float64 (see log_prob_formula). Near "
                 "|a| = 1 the two differ (the float32 clamp bound is 0.99999898672, not 0.999999), so "
                 "compare float32 code with 'log_prob' and a relative tolerance.",
        "extreme_log_std_inputs": extreme,
        "inputs": f32_list(x),
        "mean": f32_list(mean_o),
        "log_std": f32_list(ls_o),
        "actions": f32_list(acts),
        "log_prob": f32_list(lp32),
        "log_prob_f64": [[float(v) for v in row] for row in lp64],
    }
    with open(golden_path, "w") as f:
        f.write(dump_json_rows(golden))
    return diffs, extreme, lp32, lp64


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
# MuJoCo acceptance (Reacher-v5, HalfCheetah-v5)

MUJOCO_ENVS = ("reacher", "halfcheetah")
REACHER_MIN_RETURN = -6.0          # mean greedy return over 50 episodes (a good policy: about -4 to -5)
HALFCHEETAH_MIN_VELOCITY = 1.0     # m/s, mean info['x_velocity'] over 10 greedy 1000-step episodes


def evaluate_mujoco(env_name: str, actor: Actor) -> bool:
    """Greedy (a = tanh(mean)) and sampled (a ~ pi0, generator seed 7) evaluations on reset seeds
    EVAL_SEED.., with the per-step statistics the customization bundles use.  Returns acceptance."""
    cfg = CONFIGS[env_name]
    n_ep = cfg.get("eval_episodes", EVAL_EPISODES)
    limits = [None, 200] if env_name == "halfcheetah" else [None]
    ok = True
    for max_steps in limits:
        for label, sample_seed in (("greedy  a = tanh(mean)", None), ("sampled a ~ pi0 (seed 7)", 7)):
            t1 = time.time()
            ev = evaluate(actor, cfg["env_id"], n_ep, EVAL_SEED, sample_seed=sample_seed, max_steps=max_steps)
            rets = ev["returns"]
            head = (f"{label}: {n_ep} episodes of {int(ev['lengths'].max())} steps (reset seeds {EVAL_SEED}.."
                    f"{EVAL_SEED + n_ep - 1}), {time.time() - t1:.1f} s")
            print(head)
            print(f"  return mean {rets.mean():.2f}  std {rets.std():.2f}  min {rets.min():.2f}  max {rets.max():.2f}")
            print(f"  per step: mean a^2 (sum over joints) {ev['mean_a2']:.4f}  mean |a| {ev['mean_abs_a']:.4f}  "
                  f"mean ||a_t - a_(t-1)||^2 {ev['mean_da2']:.4f}  (pi0's mean std of u on these states "
                  f"{ev['mean_std']:.4f})")
            if env_name == "reacher":
                fd = ev["final_dist"]
                print(f"  final fingertip distance ||obs[8:10]|| mean {fd.mean():.4f} (std {fd.std():.4f}, "
                      f"max {fd.max():.4f}) m;  mean tau2^2 = a[1]^2 per step {ev['mean_a1_sq']:.4f}")
                if sample_seed is None:
                    ok &= rets.mean() >= REACHER_MIN_RETURN
                    print(f"  acceptance: mean return {rets.mean():.2f} (need >= {REACHER_MIN_RETURN})")
            else:
                print(f"  mean forward velocity info['x_velocity'] {ev['mean_x_velocity']:.3f} m/s")
                if sample_seed is None and max_steps is None:
                    ok &= ev["mean_x_velocity"] >= HALFCHEETAH_MIN_VELOCITY
                    print(f"  acceptance: mean forward velocity {ev['mean_x_velocity']:.3f} m/s "
                          f"(need >= {HALFCHEETAH_MIN_VELOCITY})")
    return bool(ok)


# ----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--steps", type=int, default=None, help="environment steps (default: per env)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--from-checkpoint", action="store_true",
                    help="skip training: load scripts/out/<env>_sac_actor.pt, evaluate and export")
    args = ap.parse_args()
    cfg = CONFIGS[args.env]
    steps = args.steps or cfg["total_steps"]
    ckpt_path = os.path.join(OUT_DIR, f"{args.env}_sac_actor.pt")
    model_dir = os.path.join(REPO, "models", args.env)

    env = gym.make(cfg["env_id"])
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    action_high = env.action_space.high.astype(np.float32)
    env.close()

    t0 = time.time()
    if args.from_checkpoint:
        set_seeds(args.seed)
        actor = Actor(n_obs, n_act, cfg["actor_hidden"])
        actor.load_state_dict(torch.load(ckpt_path, map_location="cpu")["state_dict"])
        actor.eval()
        print(f"loaded {ckpt_path}")
    else:
        actor, info = train(args.env, steps, args.seed)
        print(f"training: {steps} env steps ({cfg['warmup']} warm-up {cfg['warmup_steps']}, one update per "
              f"step from {cfg['learning_starts']}), {info['train_seconds']:.0f} s wall; "
              f"selected step {info['selected_step']}")
        os.makedirs(OUT_DIR, exist_ok=True)
        torch.save({"state_dict": actor.state_dict(), "env": args.env, "config": cfg,
                    "selected_step": info["selected_step"]}, ckpt_path)
        print(f"saved {ckpt_path}")

    if args.env in MUJOCO_ENVS:
        ok = evaluate_mujoco(args.env, actor)
        if not ok:
            print("ACCEPTANCE FAILED; not exporting")
            return 1
        return export_all(args.env, actor, model_dir, n_obs, n_act, action_high, t0)

    t1 = time.time()
    ev = evaluate(actor, cfg["env_id"], EVAL_EPISODES, EVAL_SEED)
    rets = ev["returns"]
    print(f"evaluation: {EVAL_EPISODES} episodes (reset seeds {EVAL_SEED}..{EVAL_SEED + EVAL_EPISODES - 1}), "
          f"deterministic a = tanh(mean), {time.time() - t1:.1f} s")
    print(f"  return mean {rets.mean():.2f}  std {rets.std():.2f}  min {rets.min():.2f}  max {rets.max():.2f}")
    print(f"  length mean {ev['lengths'].mean():.1f}  min {ev['lengths'].min()}  max {ev['lengths'].max()}")
    print(f"  steps with a < 0: {ev['left_fraction']:.4f}   mean |a| {ev['mean_abs_a']:.4f}   "
          f"mean a^2 {ev['mean_a2']:.4f}   (a in [-1,1] units; env action = a * {action_high.tolist()})")
    if args.env == "mountaincar":
        goal_rate = ev["goal"].mean()
        print(f"  reached the goal: {int(ev['goal'].sum())}/{EVAL_EPISODES} = {goal_rate:.2f} (need >= 0.90)")
        ok = goal_rate >= 0.90
    else:
        print(f"  steps upright (cos theta > 0.9): {ev['upright_fraction']:.4f}")
        print(f"  mean return {rets.mean():.2f} (need >= -250)")
        ok = rets.mean() >= -250.0
    evs = evaluate(actor, cfg["env_id"], EVAL_EPISODES, EVAL_SEED, sample_seed=7)
    extra = (f"goal {int(evs['goal'].sum())}/{EVAL_EPISODES}" if args.env == "mountaincar"
             else f"upright {evs['upright_fraction']:.4f}")
    print(f"  for information, the SAMPLED policy a ~ pi0 (seeded) on the same starts: return mean "
          f"{evs['returns'].mean():.2f}, {extra}, a < 0 on {evs['left_fraction']:.4f} of steps, "
          f"mean |a| {evs['mean_abs_a']:.4f}")
    if not ok:
        print("ACCEPTANCE FAILED; not exporting")
        return 1
    return export_all(args.env, actor, model_dir, n_obs, n_act, action_high, t0)


def export_all(env_name, actor, model_dir, n_obs, n_act, action_high, t0) -> int:
    onnx_path = os.path.join(model_dir, "prior.onnx")
    ops = export_onnx(actor, onnx_path, n_obs, n_act)
    print(f"exported {onnx_path} ({os.path.getsize(onnx_path)} bytes); op types: {ops}")
    golden_path = os.path.join(model_dir, "prior_golden.json")
    diffs, extreme, lp32, lp64 = write_golden(env_name, actor, onnx_path, golden_path, action_high)
    print(f"wrote {golden_path}; torch vs onnxruntime max abs (max rel) diff: mean {diffs[0][0]:.2e} "
          f"({diffs[0][1]:.2e}), log_std {diffs[1][0]:.2e} ({diffs[1][1]:.2e}); inputs with log_std outside "
          f"[-20, 2]: {extreme}; max |log_prob f32 - f64| / max(1,|f64|) = "
          f"{(np.abs(lp32 - lp64) / np.maximum(1, np.abs(lp64))).max():.2e}")
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
