#!/usr/bin/env python3
"""CartPole "more centre" four ways (docs/results/offline.md, "The four paths"): online only,
offline only (`resq learn --from` 20 000 recorded steps of the prior, sampled), offline then
online, and zero-shot planning (`residual.method = "plan"`). Per seed: the robot steps to the
bar (mean |x| <= 0.5 x the prior's, success >= 0.95; a learning curve every --every steps),
the curve's worst success, and for planning the decision time (p50/p99, ms).

    cargo build --release
    python3 scripts/offline_compare.py --seeds 0 1 2 3 4

Standard library only; needs the release binary (CARGO_TARGET_DIR honoured).
"""
import argparse
import json
import os
import subprocess
import tempfile

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
p.add_argument("--bundle", default="models/cartpole")
p.add_argument("--online-steps", type=int, default=3000)
p.add_argument("--after-offline-steps", type=int, default=1000)
p.add_argument("--every", type=int, default=100)
p.add_argument("--episodes", type=int, default=20)
p.add_argument("--resq", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "resq"))
a = p.parse_args()
BAR, SUCCESS, METRIC = 0.5, 0.95, "mean_abs_x"


def resq(*args):
    subprocess.run([a.resq, *map(str, args)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report(path):
    with open(path) as f:
        return json.load(f)


def ratio(r):
    return r["customized"][METRIC] / r["prior"][METRIC], r["customized"]["success_rate"]


def curve_figures(r):
    """(first step meeting the bar, worst success) over the report's learning curve."""
    prior = r["prior"][METRIC]
    first = next((pt["env_steps"] for pt in r["curve"]
                  if pt[METRIC] <= BAR * prior and pt["success_rate"] >= SUCCESS), None)
    worst = min(pt["success_rate"] for pt in r["curve"])
    return first, worst


print("seed | online only: steps to bar (worst success) | offline only: ratio (success) | "
      "offline then online: steps to bar (worst success) | zero-shot: ratio (success), decision ms p50/p99")
with tempfile.TemporaryDirectory() as w:
    for s in a.seeds:
        common = ["--seed", s, "--quiet", "--episodes", a.episodes]
        resq("customize", a.bundle, "--steps", a.online_steps, "--eval-every", a.every, "--fresh",
             "--out", f"{w}/online", *common)
        on = curve_figures(report(f"{w}/online/report.json"))
        resq("customize", a.bundle, "--prior-only", "--steps", 20000, "--fresh", "--out", f"{w}/rec",
             "--record", f"{w}/prior.mcap", *common)
        resq("learn", a.bundle, "--from", f"{w}/prior.mcap", "--fresh", "--out", f"{w}/off", *common)
        off = ratio(report(f"{w}/off/report.json"))
        resq("customize", a.bundle, "--steps", a.after_offline_steps, "--eval-every", a.every,
             "--out", f"{w}/off", *common)
        then = curve_figures(report(f"{w}/off/report.json"))
        if off[0] <= BAR and off[1] >= SUCCESS:
            then = (0, then[1])
        resq("customize", a.bundle, "--set", 'residual.method="plan"', "--fresh", "--out", f"{w}/plan", *common)
        pr = report(f"{w}/plan/report.json")
        plan, t = ratio(pr), pr["plan"]
        print(f"{s} | {on[0]} ({on[1]:.2f}) | {off[0]:.3f} ({off[1]:.2f}) | {then[0]} ({then[1]:.2f}) | "
              f"{plan[0]:.3f} ({plan[1]:.2f}), {t['decision_ms_p50']:.2f}/{t['decision_ms_p99']:.2f}", flush=True)
