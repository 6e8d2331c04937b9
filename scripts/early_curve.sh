#!/usr/bin/env bash
# The demo bundle's first 3 000 steps as the bundle has them (two episodes before the first
# update), and with the first update at step 100 with and without Retrace's traces: the learning
# curve's points (every episode end from each 250 steps: 500, 1 000, ... on CartPole) as
# multiples of the prior's mean |x|, the worst point, the lowest curve success and where the
# failure guard stopped the run (docs/results/customization.md, "The first steps").
#
#   scripts/early_curve.sh [SEEDS="0 1 2 3 4 5 6 7 8 9"] [BUNDLE=models/cartpole] [STEPS=3000]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4 5 6 7 8 9"}
BUNDLE=${2:-models/cartpole}
STEPS=${3:-3000}
R=${RESQ:-${CARGO_TARGET_DIR:-target}/release/resq}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for setting in bundle warmup=100 warmup=100,retrace; do
  case $setting in
    bundle) sets=() ;;
    warmup=100) sets=(--set learning.warmup=100) ;;
    *) sets=(--set learning.warmup=100 --set 'learning.traces="retrace"') ;;
  esac
  for s in $SEEDS; do
    "$R" customize "$BUNDLE" --fresh --quiet --steps "$STEPS" --eval-every 250 --seed "$s" --out "$work" \
      "${sets[@]}" > /dev/null 2>&1 || true
    python3 - "$work/report.json" "$setting" "$s" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = r["prior"]["mean_abs_x"]
pts = [(c["env_steps"], c["mean_abs_x"] / p, c["success_rate"]) for c in r["curve"]]
worst = max(x[1] for x in pts[1:])
stop = (r["stopped"] or {}).get("at_step", "-")
bar = next((s for s, x, _ in pts if x <= 0.5), "-")
print(f"{sys.argv[2]:18} seed {sys.argv[3]}: worst {worst:.2f}, lowest success "
      f"{min(x[2] for x in pts):.2f}, stopped at {stop}, first <= 0.5x at {bar}; curve "
      + " ".join(f"{x[1]:.2f}" for x in pts))
PY
  done
done
