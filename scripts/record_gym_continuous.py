#!/usr/bin/env python3
"""Record gymnasium MountainCarContinuous-v0 and Pendulum-v1 reference trajectories for resq's Rust
plants, and check a bit-exact re-implementation of both step functions (the rules a Rust port must
follow) against them and against 200 000 further random steps.

Writes
    tests/data/mountaincar_gym_trajectories.json
    tests/data/pendulum_gym_trajectories.json

    {"generator", "gymnasium_version", "numpy_version", "env_id", "max_episode_steps", "physics",
     "reset", "dtypes", "dynamics", "episodes": [{"seed", "policy", "end", "action_dtype",
     "initial_state", "actions", "states", "rewards", "terminated", "truncated"}, ...]}

`initial_state` is env.unwrapped.state right after env.reset(seed=seed), `states[i]` is
env.unwrapped.state after step i, both written as float64 (exact: every float32 is a float64).
`actions[i]` is the env action passed to env.step: a float32 numpy array of shape (1,), written as
the float64 value of that float32 (exact).  Rewards are Python floats (float64).
"""
from __future__ import annotations

import json
import math
import os
import sys

import ctypes
import ctypes.util

import numpy as np
import gymnasium as gym

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_MC = os.path.join(REPO, "tests", "data", "mountaincar_gym_trajectories.json")
OUT_PD = os.path.join(REPO, "tests", "data", "pendulum_gym_trajectories.json")
GENERATOR = "scripts/record_gym_continuous.py"
f32 = np.float32

# numpy evaluates `x ** 2` on a numpy SCALAR by calling libm pow (float64) / powf (float32), which on
# glibc 2.36 differs from x*x in the last bit for ~0.1% of arguments (numpy arrays use x*x).  Pendulum's
# reward uses scalar `** 2`, so the reference calls libm too.
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.pow.restype, _LIBM.pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
_LIBM.powf.restype, _LIBM.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]


def libm_pow2(x: float) -> float:
    return _LIBM.pow(float(x), 2.0)


def libm_powf2(x) -> np.float32:
    return f32(_LIBM.powf(float(x), 2.0))


# ----------------------------------------------------------------------------------------------
# Reference re-implementations: every operation with an explicit IEEE type, as a Rust port
# (f32/f64 arithmetic, libm cos/sin) would write it.  They must match gymnasium bit for bit.

def mc_step_ref(pos, vel, a, state_is_f64: bool):
    """One MountainCarContinuous-v0 step.  pos, vel: Python floats holding the current state (f64
    values right after reset, f32 values afterwards); a: the float32 action.  Returns
    (pos', vel') as float32 values, reward (f64), terminated."""
    a = f32(a)
    clipped = a > f32(1.0) or a < f32(-1.0)
    if state_is_f64:  # first step after reset: numpy float64 state
        p3 = 3.0 * pos                                     # f64
        c = 0.0025 * math.cos(p3)                           # f64
        if clipped:
            dv = (1.0 if a > 0 else -1.0) * 0.0015 - c      # f64
        else:
            dv = float(f32(a * f32(0.0015)) - f32(c))       # f32 ops, then widened
        v = vel + dv                                        # f64
        v = min(max(v, -0.07), 0.07)                        # f64 compare/clamp
        p = pos + v                                         # f64
        p = min(max(p, -1.2), 0.6)
        if p == -1.2 and v < 0.0:
            v = 0.0
        term = p >= 0.45 and v >= 0.0                       # f64 compare (before rounding to f32)
        p32, v32 = f32(p), f32(v)
    else:  # float32 state
        p, v = f32(pos), f32(vel)
        p3 = f32(f32(3.0) * p)                              # f32 multiply
        c = 0.0025 * math.cos(float(p3))                    # cos in f64 of the f32 product
        if clipped:
            dv = f32((1.0 if a > 0 else -1.0) * 0.0015 - c)  # f64 then rounded to f32
        else:
            dv = f32(f32(a * f32(0.0015)) - f32(c))         # f32 ops; c rounded to f32 first
        v = f32(v + dv)
        if v > f32(0.07):                                   # compares in f32
            v = f32(0.07)
        if v < f32(-0.07):
            v = f32(-0.07)
        p = f32(p + v)
        if p > f32(0.6):
            p = f32(0.6)
        if p < f32(-1.2):
            p = f32(-1.2)
        if p == f32(-1.2) and v < f32(0.0):
            v = f32(0.0)
        term = bool(p >= f32(0.45) and v >= f32(0.0))       # f32 compare: p >= 0.449999988079071
        p32, v32 = p, v
    reward = (100.0 if term else 0.0) - (float(a) * float(a)) * 0.1  # UNclipped action, f64 (a*a exact)
    return float(p32), float(v32), reward, bool(term)


def angle_normalize_ref(x: float) -> float:
    """((x + pi) mod 2pi) - pi with a floor-mod (result in [0, 2pi)), f64."""
    y = x + math.pi
    m = math.fmod(y, 2.0 * math.pi)
    if m != 0.0 and m < 0.0:
        m += 2.0 * math.pi
    return m - math.pi


def pd_step_ref(th, thdot, a):
    """One Pendulum-v1 step (g = 10).  th, thdot: f64 state; a: the float32 action.
    Returns (th', thdot') f64, reward f64 (computed from the state BEFORE the step)."""
    u = min(max(f32(a), f32(-2.0)), f32(2.0))              # f32 clip
    u2 = libm_powf2(u)                                     # f32 powf(u, 2), not u*u
    costs = libm_pow2(angle_normalize_ref(th)) + 0.1 * libm_pow2(thdot) + float(f32(f32(0.001) * u2))
    acc = 15.0 * math.sin(th) + float(f32(f32(3.0) * u))   # 3g/(2l) = 15.0; 3/(m l^2) * u in f32
    newthdot = thdot + acc * 0.05
    newthdot = min(max(newthdot, -8.0), 8.0)
    newth = th + newthdot * 0.05
    return newth, newthdot, -costs


# ----------------------------------------------------------------------------------------------
# policies (s is env.unwrapped.state as float64; each returns a float)

def uniform_policy(seed, lo, hi):
    rng = np.random.default_rng(seed)
    return (lambda s, t: float(rng.uniform(lo, hi)),
            f"uniform in [{lo}, {hi}) (numpy default_rng({seed}))")


def edge_policy(seed, values):
    rng = np.random.default_rng(seed)
    vals = [float(f32(v)) for v in values]
    return (lambda s, t: vals[int(rng.integers(len(vals)))],
            f"uniformly chosen from {values} as float32 (numpy default_rng({seed}))")


def mc_pump_policy(mag, noise_seed=None):
    rng = np.random.default_rng(noise_seed) if noise_seed is not None else None

    def pol(s, t):
        a = mag if s[1] >= 0 else -mag
        if rng is not None:
            a += float(rng.uniform(-0.3, 0.3))
        return a
    return pol, (f"pump: a = {mag} * (1 if velocity >= 0 else -1)"
                 + (f" + uniform(-0.3, 0.3) (default_rng({noise_seed}))" if rng is not None else ""))


def mc_no_goal_policy():
    # push left while moving left or right of -0.5, else right: repeated hits of the left wall, no goal
    return (lambda s, t: -1.0 if (s[1] < 0 or s[0] > -0.5) else 1.0,
            "a = -1 if velocity < 0 or position > -0.5 else 1: hits the left wall again and again, "
            "never the goal")


def pd_pump_policy(mag):
    return (lambda s, t: mag if s[1] >= 0 else -mag,
            f"pump: u = {mag} * sign(thetadot): spins over the top, |thetadot| reaches the 8 rad/s clip")


def pd_swingup_policy():
    # energy pumping towards the upright energy E = 15 (E = thetadot^2/2 + 15 cos(theta)), PD near the top
    def pol(s, t):
        th = angle_normalize_ref(float(s[0]))
        thd = float(s[1])
        if math.cos(th) > 0.85:
            return float(np.clip(-(10.0 * th + 2.0 * thd), -2.0, 2.0))
        energy = 0.5 * thd * thd + 15.0 * math.cos(th)
        return 2.0 if thd * (15.0 - energy) >= 0 else -2.0
    return pol, ("swing-up and balance: u = clip(-(10 theta + 2 thetadot), -2, 2) if cos(theta) > 0.85 "
                 "(theta wrapped), else u = 2 sign(thetadot (15 - E)), E = thetadot^2/2 + 15 cos(theta)")


# ----------------------------------------------------------------------------------------------

def record(env_id, seed, policy_and_name, max_episode_steps=None):
    policy, name = policy_and_name
    env = gym.make(env_id) if max_episode_steps is None else gym.make(env_id, max_episode_steps=max_episode_steps)
    env.reset(seed=seed)
    u = env.unwrapped
    s0 = np.asarray(u.state)
    ep = {"seed": seed, "policy": name, "end": None, "action_dtype": "float32",
          "state_dtype_after_reset": str(s0.dtype), "state_dtype_after_step": None,
          "max_episode_steps": env.spec.max_episode_steps,
          "initial_state": [float(v) for v in s0], "actions": [], "states": [], "rewards": [],
          "terminated": [], "truncated": []}
    t = 0
    while True:
        a = np.array([policy(np.asarray(u.state, dtype=np.float64), t)], dtype=np.float32)
        _, r, term, trunc, _ = env.step(a)
        s = np.asarray(u.state)
        ep["state_dtype_after_step"] = str(s.dtype)
        ep["actions"].append([float(a[0])])
        ep["states"].append([float(v) for v in s])
        ep["rewards"].append(float(r))
        ep["terminated"].append(bool(term))
        ep["truncated"].append(bool(trunc))
        t += 1
        if term or trunc:
            break
    env.close()
    ep["end"] = ("terminated (goal)" if term else "") + (" and " if term and trunc else "") + \
                ("truncated (time limit %d)" % ep["max_episode_steps"] if trunc else "")
    return ep


def check_mc_episode(ep):
    p, v = ep["initial_state"]
    first = True
    worst = 0
    for a, s, r, term in zip(ep["actions"], ep["states"], ep["rewards"], ep["terminated"]):
        p, v, rr, tt = mc_step_ref(p, v, a[0], first)
        first = False
        if [p, v] != s or rr != r or tt != term:
            worst += 1
    return worst


def check_pd_episode(ep):
    th, thdot = ep["initial_state"]
    bad = 0
    for a, s, r in zip(ep["actions"], ep["states"], ep["rewards"]):
        th, thdot, rr = pd_step_ref(th, thdot, a[0])
        if [th, thdot] != s or rr != r:
            bad += 1
    return bad


def fuzz(env_id, n_steps, seed):
    """Random episodes with adversarial actions; count mismatches of the reference step."""
    rng = np.random.default_rng(seed)
    env = gym.make(env_id)
    u = env.unwrapped
    edges = [1.0, -1.0, 1.0000001, -1.0000001, 0.99999994, 0.0, -0.0, 2.0, -2.0, 2.0000002, -1.9999999, 5.0]
    bad = steps = 0
    ep = 0
    while steps < n_steps:
        env.reset(seed=seed + ep)
        ep += 1
        first = True
        mode = ep % 4
        hold, held = 0, 0.0
        while True:
            if mode == 0:
                a = rng.uniform(-3, 3)
            elif mode == 1:
                a = edges[rng.integers(len(edges))]
            else:  # held bang-bang with random magnitude: reaches goal / walls / spins
                if hold == 0:
                    held = float(rng.choice([-1, 1]) * rng.choice([0.8, 1.0, 1.3, 2.0, 2.5]))
                    hold = int(rng.geometric(0.1))
                hold -= 1
                a = held
            a = np.array([a], np.float32)
            if env_id.startswith("Mountain"):
                p, v = (float(x) for x in u.state)
                pr, vr, rr, tr = mc_step_ref(p, v, a[0], first)
                _, r, term, trunc, _ = env.step(a)
                ok = [pr, vr] == [float(x) for x in u.state] and rr == float(r) and tr == term
            else:
                th, thd = (float(x) for x in u.state)
                thr, thdr, rr = pd_step_ref(th, thd, a[0])
                _, r, term, trunc, _ = env.step(a)
                ok = [thr, thdr] == [float(x) for x in u.state] and rr == float(r) and not term
            first = False
            bad += int(not ok)
            steps += 1
            if term or trunc:
                break
    env.close()
    return bad, steps, ep


def ablation_mc(episodes):
    """How many recorded MountainCar steps a naive port would get wrong (documentation)."""
    out = {}
    for name in ("all f64 then round to f32", "all f32 (cos in f32 precision)", "first step in f32 (f32-rounded reset)"):
        bad = total = 0
        for ep in episodes:
            p, v = ep["initial_state"]
            for i, (a, s) in enumerate(zip(ep["actions"], ep["states"])):
                a = f32(a[0])
                if name.startswith("all f64"):
                    force = float(min(max(a, f32(-1)), f32(1)))
                    vv = v + force * 0.0015 - 0.0025 * math.cos(3 * p)
                    vv = min(max(vv, -0.07), 0.07)
                    pp = min(max(p + vv, -1.2), 0.6)
                    if pp == -1.2 and vv < 0:
                        vv = 0.0
                    p, v = float(f32(pp)), float(f32(vv))
                elif name.startswith("all f32"):
                    pf, vf = f32(p), f32(v)
                    force = min(max(a, f32(-1)), f32(1))
                    vf = f32(vf + f32(force * f32(0.0015)) - f32(f32(0.0025) * f32(np.cos(f32(3) * pf))))
                    vf = min(max(vf, f32(-0.07)), f32(0.07))
                    pf = min(max(f32(pf + vf), f32(-1.2)), f32(0.6))
                    if pf == f32(-1.2) and vf < 0:
                        vf = f32(0)
                    p, v = float(pf), float(vf)
                else:
                    p, v, _, _ = mc_step_ref(float(f32(p)) if i == 0 else p, v, a, False)
                bad += int([p, v] != s)
                total += 1
                p, v = s  # re-sync on the recorded state: count single-step errors
        out[name] = f"{bad}/{total} steps differ"
    return out


def main() -> int:
    # ---------------- MountainCarContinuous-v0
    mc_id = "MountainCarContinuous-v0"
    u = gym.make(mc_id).unwrapped
    mc_physics = {k: getattr(u, k) for k in ("min_action", "max_action", "min_position", "max_position",
                                              "max_speed", "goal_position", "goal_velocity", "power")}
    mc_physics["gravity_term"] = "0.0025 * cos(3 * position)"
    mc_episodes = [
        record(mc_id, 0, uniform_policy(0, -1.0, 1.0)),
        record(mc_id, 1, edge_policy(1, [1.0, -1.0, 1.0000001, -1.0000001, 0.99999994, 0.5, 0.0, -0.0,
                                          1.5, -1.5, 3.0, -3.0])),
        record(mc_id, 2, mc_pump_policy(1.0, noise_seed=2)),
        record(mc_id, 3, mc_pump_policy(1.7)),
        record(mc_id, 4, mc_no_goal_policy()),
    ]
    mc_bad = [check_mc_episode(ep) for ep in mc_episodes]
    mc_fuzz = fuzz(mc_id, 200_000, 1000)
    mc_abl = ablation_mc(mc_episodes)
    mc = {
        "generator": GENERATOR,
        "gymnasium_version": gym.__version__,
        "numpy_version": np.__version__,
        "env_id": mc_id,
        "max_episode_steps": gym.spec(mc_id).max_episode_steps,
        "physics": mc_physics,
        "reset": {"distribution": "position uniform in [-0.6, -0.4) as a float64 "
                                  "(env.np_random.uniform(low=-0.6, high=-0.4)), velocity 0.0; "
                                  "env.unwrapped.state = np.array([position, 0]) is FLOAT64 until the first "
                                  "step; the observation returned by reset is that state cast to float32",
                  "low": -0.6, "high": -0.4},
        "dtypes": {"state_after_reset": "float64 numpy array (unrounded uniform draw)",
                   "state_after_step": "float32 numpy array; the observation IS this array",
                   "action": "float32 numpy array of shape (1,) in this file (the action space dtype); "
                             "the arithmetic depends on the action dtype (NumPy 2 promotion rules, NEP 50)",
                   "reward": "Python float (float64)"},
        "dynamics": [
            "force = min(max(a, -1.0), 1.0) with Python min/max: an in-range float32 a stays a numpy "
            "float32; an out-of-range a becomes the Python float +-1.0 (float64). a = +-1.0 exactly is "
            "NOT clipped and stays float32.",
            "float32 state (every step but the first): p3 = f32(3*pos); c = 0.0025*cos(f64(p3)) in f64; "
            "in-range a: dv = f32(f32(a*f32(0.0015)) - f32(c)) (c rounded to f32 first, then a float32 "
            "subtraction); clipped a: dv = f32(+-0.0015 - c) computed in f64 then rounded; "
            "vel = f32(vel + dv). So a = 1.0 and a = 1.5 can give next states one float32 ulp apart.",
            "velocity clip: if vel > f32(0.07): vel = 0.07; if vel < f32(-0.07): vel = -0.07 (compared in "
            "float32, so the bound is 0.07000000029802322); pos = f32(pos + vel)",
            "position clip: if pos > f32(0.6): pos = 0.6; if pos < f32(-1.2): pos = -1.2; then if pos == "
            "-1.2 (in float32, i.e. pos == f32(-1.2)) and vel < 0: vel = 0 (inelastic left wall).",
            "terminated = pos >= 0.45 and vel >= 0, compared in FLOAT32: pos >= f32(0.45) = "
            "0.44999998807907104 (a position of 0.449999988 terminates). Computed before the state is "
            "stored (state = np.array([pos, vel], float32)).",
            "first step after reset (float64 state): the same sequence with pos, vel, 3*pos, the "
            "clamps, the wall rule and the goal test in float64 (in-range a: dv = f64(f32(f32(a*f32(0.0015)) "
            "- f32(c)))); only the stored state is rounded to float32. A port that rounds the reset "
            "position to float32 before the first step is off by one ulp on some seeds.",
            "reward = (100 if terminated else 0) - 0.1 * a^2 using the UNclipped action, in float64 "
            "(math.pow(float(a), 2) * 0.1)",
            "truncated = step count reached max_episode_steps (999, TimeLimit wrapper); terminated wins "
            "the episode if both happen on the same step (both flags are then true)",
        ],
        "reference_check": {
            "recorded_episode_mismatches": mc_bad,
            "random_steps_checked": mc_fuzz[1], "random_step_mismatches": mc_fuzz[0],
            "naive_ports_single_step_errors_on_recorded_steps": mc_abl,
            "reference": "mc_step_ref in scripts/record_gym_continuous.py",
        },
        "episodes": mc_episodes,
    }

    # ---------------- Pendulum-v1
    pd_id = "Pendulum-v1"
    u = gym.make(pd_id).unwrapped
    pd_physics = {k: getattr(u, k) for k in ("max_speed", "max_torque", "dt", "g", "m", "l")}
    pd_episodes = [
        record(pd_id, 0, uniform_policy(10, -2.0, 2.0)),
        record(pd_id, 1, uniform_policy(11, -5.0, 5.0)),
        record(pd_id, 2, pd_pump_policy(2.0)),
        record(pd_id, 5, pd_swingup_policy()),
        record(pd_id, 4, edge_policy(14, [2.0, -2.0, 2.0000002, -2.0000002, 1.9999999, 0.0, -0.0, 100.0,
                                          -100.0, 1e-30])),
    ]
    pd_bad = [check_pd_episode(ep) for ep in pd_episodes]
    pd_fuzz = fuzz(pd_id, 200_000, 2000)
    pd = {
        "generator": GENERATOR,
        "gymnasium_version": gym.__version__,
        "numpy_version": np.__version__,
        "env_id": pd_id,
        "max_episode_steps": gym.spec(pd_id).max_episode_steps,
        "physics": pd_physics,
        "reset": {"distribution": "theta uniform in [-pi, pi), thetadot uniform in [-1, 1), float64 "
                                  "(env.np_random.uniform(low=[-pi, -1], high=[pi, 1]))",
                  "low": [-math.pi, -1.0], "high": [math.pi, 1.0]},
        "dtypes": {"state": "float64 numpy array [theta, thetadot], always (theta is NOT wrapped: it "
                            "grows without bound when the pendulum spins)",
                   "observation": "float32 [cos(theta), sin(theta), thetadot], computed in float64 then "
                                  "rounded",
                   "action": "float32 numpy array of shape (1,); u = np.clip(a, -2, 2)[0] stays float32",
                   "reward": "numpy float64"},
        "dynamics": [
            "u = clip(a, -2, 2) in float32 (max_torque = 2.0)",
            "reward = -((angle_normalize(theta)^2 + 0.1*thetadot^2) + f32(f32(0.001)*u^2)) from the "
            "state BEFORE the step, summed left to right in float64; the u^2 term is computed in float32 "
            "and widened. Every ^2 here is numpy scalar `** 2`, i.e. libm pow(x, 2.0) (float64) and "
            "powf(u, 2.0) (float32), which on glibc 2.36 differ from x*x in the last bit for ~0.1% of "
            "arguments (relative reward error ~1e-12..1e-11). Rust folds x.powf(2.0) into x*x, so "
            "call libm's pow/powf with a non-constant exponent for bit-exact rewards, or compare "
            "rewards with a relative tolerance of ~1e-10. The STATE update has no ^2 and matches exactly.",
            "angle_normalize(x) = ((x + pi) mod 2pi) - pi with a floor mod (numpy %, result in [0, 2pi)), "
            "used only in the reward",
            "newthdot = thetadot + (15.0*sin(theta) + f32(3.0*u)) * 0.05   (3g/(2l) = 15.0 exactly with "
            "g = 10; 3/(m l^2)*u = 3.0*u is a float32 product); newthdot = clip(newthdot, -8, 8)",
            "newtheta = theta + newthdot * 0.05 (semi-implicit Euler: the NEW velocity)",
            "no termination ever; truncated at 200 steps (TimeLimit)",
            "numpy's np.sin/np.cos agreed bit for bit with libm (math.sin/cos) on this machine "
            "(x86_64 AVX2, no AVX-512: numpy then uses no SIMD float64 sin/cos)",
        ],
        "reference_check": {
            "recorded_episode_mismatches": pd_bad,
            "random_steps_checked": pd_fuzz[1], "random_step_mismatches": pd_fuzz[0],
            "reference": "pd_step_ref in scripts/record_gym_continuous.py",
        },
        "episodes": pd_episodes,
    }

    for path, data in ((OUT_MC, mc), (OUT_PD, pd)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
    for name, data, bad, fz in (("MountainCarContinuous-v0", mc, mc_bad, mc_fuzz), ("Pendulum-v1", pd, pd_bad, pd_fuzz)):
        print(name)
        for ep in data["episodes"]:
            print(f"  seed {ep['seed']}: {len(ep['actions']):4d} steps, {ep['end']:32s} final state "
                  f"{np.round(ep['states'][-1], 4).tolist()}  return {sum(ep['rewards']):9.3f}  ({ep['policy'][:60]})")
        print(f"  reference step: mismatches per recorded episode {bad}; random steps {fz[0]}/{fz[1]} "
              f"mismatches ({fz[2]} episodes)")
    print("  naive MountainCar ports (single-step errors on the recorded steps):", mc_abl)
    for path in (OUT_MC, OUT_PD):
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")
    ok = not any(mc_bad) and not any(pd_bad) and mc_fuzz[0] == 0 and pd_fuzz[0] == 0
    ends = [ep["end"] for ep in mc_episodes]
    ok &= any(e.startswith("terminated") for e in ends) and any("truncated" in e for e in ends)
    ok &= all("truncated" in ep["end"] for ep in pd_episodes)
    if not ok:
        print("CHECK FAILED")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
