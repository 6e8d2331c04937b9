#!/usr/bin/env python3
"""How many environment steps does a customization need? Runs `resq customize` for several
budgets and seeds (fresh each time) and prints, per budget, how many seeds meet an acceptance:
by default the CartPole "more centre" test's, customized mean |x| <= 0.5 x the prior's and
>= 95 % of evaluation episodes successful (`--metric`, `--max-ratio`, `--min-success`; `--keep M`
also requires metric M to stay >= 0.9 x the prior's). Also reports training episodes that ended early
(the pole fell or the cart left the track while learning) and the worst training episode's
add-on reward per step as a multiple of the prior's (above 1: the robot did worse than the prior
while learning): the hazards on a real robot. Also the wall-clock time of the learning (median)
and the largest peak RSS of a run; with `--eval-every N`, the learning curve's worst point over
the seeds: its lowest success rate and its largest add-on shortfall against the prior (positive:
worse than the prior), and the step at which each seed's curve first meets the bar; with
`--held-from STEP`, the seeds whose curve meets the bar at every point from STEP on.

    cargo build --release
    python3 scripts/steps_to_customize.py models/cartpole --steps 1000 2000 3000 5000 --seeds 5
    python3 scripts/steps_to_customize.py models/cartpole --set exploration.kl_budget_start=0.05 ...
    python3 scripts/steps_to_customize.py models/mountaincar --metric left_push_fraction --min-success 0.9
    python3 scripts/steps_to_customize.py models/pendulum --metric mean_torque_sq --max-ratio 0.9 \
        --keep upright_fraction
    python3 scripts/steps_to_customize.py models/reacher --metric tau2_sq --max-ratio 0.6 \
        --at-most final_distance=1.2 --min-success 0    # robots served by the reference firmware:
                                                         # put resq-firmware on PATH first

Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("bundle")
p.add_argument("--steps", type=int, nargs="+", default=[1000, 2000, 3000, 5000, 8000])
p.add_argument("--seeds", type=int, default=5)
p.add_argument("--episodes", type=int, default=40)
p.add_argument("--metric", default="mean_abs_x")
p.add_argument("--max-ratio", type=float, default=0.5, help="pass: customized metric <= this x the prior's")
p.add_argument("--min-success", type=float, default=0.95)
p.add_argument("--keep", action="append", default=[], help="a metric that must stay >= 0.9 x the prior's")
p.add_argument("--at-most", action="append", default=[], metavar="METRIC=RATIO",
               help="a metric that must stay <= RATIO x the prior's (e.g. final_distance=1.2)")
p.add_argument("--set", action="append", default=[], help="manifest override, passed to resq")
p.add_argument("--eval-every", type=int, default=0,
               help="also evaluate every N steps (resq's learning curve) and print the curve's worst point: "
                    "the lowest success rate and the largest add-on shortfall against the prior")
p.add_argument("--held-from", type=int, default=0, metavar="STEP",
               help="with --eval-every: also count the seeds whose every curve point from STEP on meets the bar "
                    "(metric ratio and success rate; the bar held while learning went on)")
p.add_argument("--resq", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "resq"))
p.add_argument("--per-seed", action="store_true", help="print each seed's result as it finishes")
a = p.parse_args()


def warn_if_stale(binary):
    """Says so on stderr when a source file is newer than `binary` (a stale build, e.g. an old
    target/ beside a CARGO_TARGET_DIR elsewhere): its figures would not be this tree's."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    built = os.path.getmtime(binary)
    for d in ("src", "sim-robot/src", "firmware-bridge/src"):
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in files:
                if os.path.getmtime(os.path.join(dirpath, f)) > built:
                    print(f"warning: {binary} is older than {os.path.join(dirpath, f)}: run cargo build --release "
                          "(with the CARGO_TARGET_DIR you build with)", file=sys.stderr)
                    return


warn_if_stale(a.resq)


def meets(m, prior):
    """Whether an evaluation `m` (the final one or a curve point) meets the acceptance bar."""
    ok = m[a.metric] <= a.max_ratio * prior[a.metric] and m["success_rate"] >= a.min_success
    ok = ok and all(m[k] >= 0.9 * prior[k] for k in a.keep)
    for spec in a.at_most:
        k, bound = spec.split("=")
        ok = ok and m[k] <= float(bound) * prior[k]
    return ok


print(f"{a.bundle} {' '.join(a.set)}")
header = f"{'steps':>6} {'pass':>6} {'median ratio':>13} {'worst ratio':>12} {'ended early (sum)':>18} {'worst episode':>14} {'wall s (median)':>16} {'max RSS MiB':>12}"
if a.eval_every:
    header += f" {'curve success':>14} {'curve shortfall':>15}  {'bar first met on the curve, per seed'}"
if a.held_from:
    header += f" {'held from ' + str(a.held_from):>16} {'worst held ratio':>17}"
print(header)
for steps in a.steps:
    ratios, passed, early, wall, worst, rss, curve_success, curve_short = [], 0, 0, [], 0.0, [], [], []
    held, held_worst, first, keep_worst = 0, 0.0, [], {}
    failed, episodes, prior_fail = 0, 0, 0.0
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as out:
            cmd = [a.resq, "customize", a.bundle, "--steps", str(steps), "--seed", str(seed), "--fresh", "--quiet",
                   "--episodes", str(a.episodes), "--out", out]
            for s in a.set:
                cmd += ["--set", s]
            if a.eval_every:
                cmd += ["--eval-every", str(a.eval_every)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise subprocess.CalledProcessError(proc.returncode, cmd)
            rss.append(usage.ru_maxrss / 1024)  # KiB -> MiB (Linux)
            r = json.load(open(os.path.join(out, "report.json")))
        ratio = r["customized"][a.metric] / r["prior"][a.metric]
        ok = meets(r["customized"], r["prior"])
        ratios.append(ratio)
        if a.per_seed:
            kept = a.keep + [spec.split("=")[0] for spec in a.at_most]
            extra = "".join(f" {k} {r['customized'][k] / r['prior'][k]:.3f}x" for k in kept)
            print(f"  seed {seed}: {a.metric} {ratio:.3f}x success {r['customized']['success_rate']:.2f}{extra}"
                  f" {'pass' if ok else 'miss'}", flush=True)
        if a.eval_every:
            hits = [c["env_steps"] for c in r.get("curve", []) if c["env_steps"] > 0 and meets(c, r["prior"])]
            first.append(str(hits[0]) if hits else "-")
            for k in a.keep:
                keep_worst[k] = min([keep_worst.get(k, 1e9)] + [c[k] / r["prior"][k] for c in r.get("curve", [])])
        passed += ok
        if a.held_from:
            late = [c for c in r.get("curve", []) if c["env_steps"] >= a.held_from]
            late_ratios = [c[a.metric] / r["prior"][a.metric] for c in late]
            held += bool(late) and all(x <= a.max_ratio for x in late_ratios) and all(
                c["success_rate"] >= a.min_success for c in late)
            held_worst = max([held_worst] + late_ratios)
        if r.get("curve_worst"):
            curve_success.append(r["curve_worst"]["success_rate"])
            curve_short.append(r["curve_worst"]["addon_shortfall"])
        early += r["training"]["episodes_ended_early"] or 0
        failed += r["training"]["episodes_failed"]
        episodes += r["training"]["episodes"]
        prior_fail = max(prior_fail, r["training"]["prior_failure_rate"])
        wall.append(r["training"]["wall_seconds"])
        # The worst training episode's add-on reward per step, in units of the prior's.
        prior_per_step = r["prior"]["addon_return"] / r["prior"]["episode_length"]
        if r["training"]["worst_episode_addon_per_step"] is not None and prior_per_step != 0:
            worst = max(worst, r["training"]["worst_episode_addon_per_step"] / prior_per_step)
    line = f"{steps:>6} {passed:>3}/{a.seeds:<2} {statistics.median(ratios):>13.3f} {max(ratios):>12.3f} {early:>18} {worst:>13.2f}x {statistics.median(wall):>16.2f} {max(rss):>12.0f}"
    if curve_success:
        line += f" {min(curve_success):>14.2f} {max(curve_short):>+15.1%}  {' '.join(first)}"
    if a.held_from:
        line += f" {held:>13}/{a.seeds:<2} {held_worst:>17.3f}"
    line += f"  training episodes failed {failed}/{episodes} (the prior as deployed fails {prior_fail:.2f})"
    for k, v in keep_worst.items():
        line += f"  lowest {k} on the curve {v:.3f}x the prior's"
    print(line, flush=True)
