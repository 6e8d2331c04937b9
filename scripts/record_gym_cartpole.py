#!/usr/bin/env python3
"""Record gymnasium CartPole-v1 reference trajectories for the Rust CartPole simulation's test.

Writes tests/data/cartpole_gym_trajectories.json:

    {"generator": ..., "gymnasium_version": ..., "reset": {...}, "physics": {...},
     "episodes": [{"seed", "policy", "end", "initial_state", "actions", "states",
                   "terminated", "truncated"}, ...]}

`initial_state` is env.unwrapped.state right after env.reset(seed=seed); `states[i]` is
env.unwrapped.state after `actions[i]` (float64, full precision).  Episodes stop at the first
terminated or truncated step.  Action 1 pushes right (+force_mag), action 0 left.

Episodes:
  * three with uniformly random actions (own seeded RNG) until the pole falls;
  * one balanced by a linear state-feedback controller until the 500-step time-limit truncation;
  * two balanced while tracking a cart velocity of +1 / -1 m/s, so the cart leaves the track
    (|x| > 2.4) with the pole still up: termination by position, not by angle.
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import gymnasium as gym

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "cartpole_gym_trajectories.json")
X_LIMIT = 2.4
THETA_LIMIT = 12 * 2 * math.pi / 360


def random_policy(seed):
    rng = np.random.default_rng(seed)
    return lambda s: int(rng.integers(0, 2)), "uniformly random actions (numpy default_rng(%d))" % seed


def balance_policy():
    # push right iff 0.5 x + 1.0 x_dot + 10 theta + 1 theta_dot > 0 (keeps the cart near the centre)
    k = np.array([0.5, 1.0, 10.0, 1.0])
    return lambda s: int(float(k @ s) > 0.0), "balance: action = [0.5 x + x_dot + 10 theta + theta_dot > 0]"


def drive_off_policy(v_ref):
    # balance while tracking cart velocity v_ref: the cart runs off the end of the track
    return (lambda s: int(2.0 * (s[1] - v_ref) + 20.0 * s[2] + 3.0 * s[3] > 0.0),
            "drive off: action = [2 (x_dot %s %g) + 20 theta + 3 theta_dot > 0]"
            % ("-" if v_ref >= 0 else "+", abs(v_ref)))


def record(seed, policy_and_name):
    policy, name = policy_and_name
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    s = np.array(env.unwrapped.state, dtype=np.float64)
    ep = {"seed": seed, "policy": name, "end": None, "initial_state": [float(v) for v in s],
          "actions": [], "states": [], "terminated": [], "truncated": []}
    while True:
        a = policy(s)
        _, _, term, trunc, _ = env.step(a)
        s = np.array(env.unwrapped.state, dtype=np.float64)
        ep["actions"].append(int(a))
        ep["states"].append([float(v) for v in s])
        ep["terminated"].append(bool(term))
        ep["truncated"].append(bool(trunc))
        if term or trunc:
            break
    env.close()
    if trunc and not term:
        ep["end"] = "truncated (time limit)"
    elif abs(s[0]) > X_LIMIT and abs(s[2]) <= THETA_LIMIT:
        ep["end"] = "terminated |x| > 2.4"
    elif abs(s[2]) > THETA_LIMIT and abs(s[0]) <= X_LIMIT:
        ep["end"] = "terminated |theta| > 12 deg"
    else:
        ep["end"] = "terminated (both limits)" if term else "?"
    return ep


def main() -> int:
    u = gym.make("CartPole-v1").unwrapped
    physics = {k: getattr(u, k) for k in ("gravity", "masscart", "masspole", "total_mass", "length",
                                          "polemass_length", "force_mag", "tau", "kinematics_integrator",
                                          "theta_threshold_radians", "x_threshold")}
    physics["max_episode_steps"] = gym.spec("CartPole-v1").max_episode_steps
    episodes = [
        record(0, random_policy(0)),
        record(1, random_policy(1)),
        record(2, random_policy(2)),
        record(3, balance_policy()),
        record(4, drive_off_policy(1.0)),
        record(5, drive_off_policy(-1.0)),
    ]
    data = {
        "generator": "scripts/record_gym_cartpole.py",
        "gymnasium_version": gym.__version__,
        "reset": {
            "distribution": "each of x, x_dot, theta, theta_dot independently uniform in [low, high) "
                            "(env.np_random.uniform(low, high, size=4), float64)",
            "low": -0.05,
            "high": 0.05,
        },
        "physics": physics,
        "notes": "states are env.unwrapped.state (float64) after each step; observations are the same "
                 "values cast to float32. terminated = |x| > x_threshold or |theta| > "
                 "theta_threshold_radians (strict); truncated = step count reached max_episode_steps "
                 "(TimeLimit wrapper). action 1 applies +force_mag, action 0 -force_mag.",
        "episodes": episodes,
    }
    # sanity: the reset draws respect the documented distribution
    for ep in episodes:
        assert all(-0.05 <= v < 0.05 for v in ep["initial_state"]), ep["initial_state"]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    for ep in episodes:
        print(f"seed {ep['seed']}: {len(ep['actions']):3d} steps, {ep['end']:30s} final state "
              f"{np.round(ep['states'][-1], 4).tolist()}  ({ep['policy']})")
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
