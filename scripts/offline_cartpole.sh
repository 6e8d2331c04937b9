#!/usr/bin/env bash
# CartPole "more centre" learned from records (issue 26; docs/results/offline.md): per seed,
# 20 000 steps of the prior recorded acting as deployed (sampled) and greedily
# (`resq customize --prior-only`), then `resq learn --from` each record with the support
# constraint (the default, learning.offline_support = 0.3) and with the plain target (0), the
# sampled one's checkpoint continued online for ONLINE steps, and online alone for as many.
#
#   scripts/offline_cartpole.sh [SEEDS="0 1 2 3 4"] [ONLINE=500]
#
# Prints one line per seed: mean |x| customized/prior (success rate) for each path. Needs the
# release binary (cargo build --release) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4"}
ONLINE=${2:-500}
R=${RESQ:-${CARGO_TARGET_DIR:-target}/release/resq}
if [ -n "$(find src -newer "$R" -type f -print -quit 2>/dev/null)" ]; then
  echo "warning: $R is older than the sources: run cargo build --release" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
B=models/cartpole
ratio() { python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
p, c = r["prior"], r["customized"]
print("%.3f (%.2f)" % (c["mean_abs_x"] / p["mean_abs_x"], c["success_rate"]))' "$1"; }
echo "seed | offline, sampled records | plain target, sampled | then online $ONLINE steps | online alone $ONLINE steps | offline, greedy records | plain target, greedy | support (sampled, greedy)"
for s in $SEEDS; do
  "$R" customize $B --prior-only --steps 20000 --seed "$s" --quiet --fresh --out "$work/rs" --record "$work/sampled.mcap" > /dev/null 2>&1
  "$R" customize $B --prior-only --steps 20000 --seed "$s" --quiet --fresh --out "$work/rg" --record "$work/greedy.mcap" \
    --set 'exploration.mode="greedy"' > /dev/null 2>&1
  "$R" learn $B --from "$work/sampled.mcap" --seed "$s" --quiet --fresh --out "$work/ls" > "$work/ls.txt" 2>&1
  "$R" learn $B --from "$work/sampled.mcap" --seed "$s" --quiet --fresh --out "$work/lsp" --set learning.offline_support=0 > /dev/null 2>&1
  "$R" customize $B --steps "$ONLINE" --seed "$s" --quiet --out "$work/ls" --report "$work/on.json" > /dev/null 2>&1
  "$R" customize $B --steps "$ONLINE" --seed "$s" --quiet --fresh --out "$work/oo" > /dev/null 2>&1
  "$R" learn $B --from "$work/greedy.mcap" --seed "$s" --quiet --fresh --out "$work/lg" > "$work/lg.txt" 2>&1
  "$R" learn $B --from "$work/greedy.mcap" --seed "$s" --quiet --fresh --out "$work/lgp" --set learning.offline_support=0 > /dev/null 2>&1
  sup() { grep -o 'support [0-9]* %' "$1" | head -1; }
  echo "$s | $(ratio "$work/ls/report.json") | $(ratio "$work/lsp/report.json") | $(ratio "$work/on.json") | $(ratio "$work/oo/report.json") | $(ratio "$work/lg/report.json") | $(ratio "$work/lgp/report.json") | $(sup "$work/ls.txt"), $(sup "$work/lg.txt")"
done
