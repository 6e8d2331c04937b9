#!/usr/bin/env python3
"""How many environment steps does a customization need? Runs `resq customize` for several
budgets and seeds (fresh each time) and prints, per budget, how many seeds meet the acceptance
of the CartPole "more centre" test: customized mean |x| <= 0.5 x the prior's, and >= 95 % of
evaluation episodes reaching the time limit. Also reports training episodes that ended early
(the pole fell or the cart left the track while learning) and the worst training episode's
add-on reward per step as a multiple of the prior's (above 1: the robot did worse than the prior
while learning): the hazards on a real robot.

    cargo build --release
    python3 scripts/steps_to_customize.py models/cartpole --steps 1000 2000 3000 5000 --seeds 5
    python3 scripts/steps_to_customize.py models/cartpole --set exploration.kl_budget_start=0.05 ...

Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("bundle")
p.add_argument("--steps", type=int, nargs="+", default=[1000, 2000, 3000, 5000, 8000])
p.add_argument("--seeds", type=int, default=5)
p.add_argument("--episodes", type=int, default=40)
p.add_argument("--metric", default="mean_abs_x")
p.add_argument("--set", action="append", default=[], help="manifest override, passed to resq")
p.add_argument("--resq", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "resq"))
a = p.parse_args()

print(f"{a.bundle} {' '.join(a.set)}")
print(f"{'steps':>6} {'pass':>6} {'median ratio':>13} {'worst ratio':>12} {'ended early (sum)':>18} {'worst episode':>14} {'wall s (median)':>16}")
for steps in a.steps:
    ratios, passed, early, wall, worst = [], 0, 0, [], 0.0
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as out:
            cmd = [a.resq, "customize", a.bundle, "--steps", str(steps), "--seed", str(seed), "--fresh", "--quiet",
                   "--episodes", str(a.episodes), "--out", out]
            for s in a.set:
                cmd += ["--set", s]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = json.load(open(os.path.join(out, "report.json")))
        ratio = r["customized"][a.metric] / r["prior"][a.metric]
        ok = ratio <= 0.5 and r["customized"]["success_rate"] >= 0.95
        ratios.append(ratio)
        passed += ok
        early += r["training"]["episodes_ended_early"]
        wall.append(r["training"]["wall_seconds"])
        # The worst training episode's add-on reward per step, in units of the prior's.
        prior_per_step = r["prior"]["addon_return"] / r["prior"]["episode_length"]
        if r["training"]["worst_episode_addon_per_step"] is not None and prior_per_step != 0:
            worst = max(worst, r["training"]["worst_episode_addon_per_step"] / prior_per_step)
    print(f"{steps:>6} {passed:>3}/{a.seeds:<2} {statistics.median(ratios):>13.3f} {max(ratios):>12.3f} {early:>18} {worst:>13.2f}x {statistics.median(wall):>16.2f}")
