#!/usr/bin/env bash
# Pendulum (residual SAC) and MountainCar-v0 (over the link to the reference firmware) learned
# from 20 000 recorded steps of their priors (docs/results/offline.md, "Other robots"): per seed,
# the prior recorded with --prior-only, `resq learn --from` it, then ONLINE steps online from the
# checkpoint. Prints per seed: the bundle's metric customized/prior and success (offline, then
# online), and Pendulum's upright fraction customized/prior.
#
#   scripts/offline_robots.sh [SEEDS="0 1 2 3 4"] [ONLINE=500] [BUNDLES="pendulum mountaincar-discrete"]
#
# Needs the release binary and, for MountainCar-v0, resq-firmware on PATH
# (export PATH=~/.cache/resq-venv/bin:$PATH after scripts/test.sh or scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4"}
ONLINE=${2:-500}
BUNDLES=${3:-"pendulum mountaincar-discrete"}
R=${RESQ:-${CARGO_TARGET_DIR:-target}/release/resq}
if [ -n "$(find src -newer "$R" -type f -print -quit 2>/dev/null)" ]; then
  echo "warning: $R is older than the sources: run cargo build --release" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A METRIC=([pendulum]=mean_torque_sq [mountaincar-discrete]=left_fraction)
figures() { python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); m = sys.argv[2]
p, c = r["prior"], r["customized"]
up = " upright %.3f" % (c["upright_fraction"] / p["upright_fraction"]) if "upright_fraction" in c else ""
print("%.3f (%.2f)%s" % (c[m] / p[m], c["success_rate"], up))' "$1" "$2"; }
for b in $BUNDLES; do
  echo "$b | seed | offline: ${METRIC[$b]} ratio (success) | then $ONLINE steps online"
  for s in $SEEDS; do
    "$R" customize "models/$b" --prior-only --steps 20000 --seed "$s" --quiet --fresh --out "$work/rec" \
      --record "$work/r.mcap" > /dev/null 2>&1
    "$R" learn "models/$b" --from "$work/r.mcap" --seed "$s" --quiet --fresh --out "$work/l" ${EXTRA:-} > /dev/null 2>&1
    off=$(figures "$work/l/report.json" "${METRIC[$b]}")
    "$R" customize "models/$b" --steps "$ONLINE" --seed "$s" --quiet --out "$work/l" ${EXTRA:-} > /dev/null 2>&1 || true
    echo "$b | $s | $off | $(figures "$work/l/report.json" "${METRIC[$b]}")"
  done
done
