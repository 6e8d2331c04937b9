#!/usr/bin/env bash
# CartPole "right of centre" (add-on -|x-0.5|/2.4, metric mean |x-0.5|) for priors of four
# origins, over omega' = alpha settings and seeds: the figures of docs/results/priors.md
# ("Confident priors, right of centre").
#
#   scripts/right_of_centre.sh [STEPS=10000] [SEEDS="0 1 2"] [SETTINGS="default 0.1 0.03"] [PRIORS="soft bc ppo dqn"]
#
# A setting is `default` (the bundle's), a number w (omega' = alpha = w) or `kl=E` (the bundle's
# omega' and alpha, moved by [residual] kl_per_step = E). EXTRA='--set a.b=c ...' adds overrides
# to every run (e.g. EXTRA='--set learning.traces="none"').
# Prints one line per run: the customized/prior ratio of mean |x-0.5|, the customized success
# rate, the worst learning-curve success, failed training episodes, the step the failure guard
# stopped at (- if none) and the prior's median confidence gap (nats). Needs the release binary
# (cargo build --release) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10000}
SEEDS=${2:-"0 1 2"}
SETTINGS=${3:-"default 0.1 0.03"}
PRIORS=${4:-"soft bc ppo dqn"}
R=${RESQ:-${CARGO_TARGET_DIR:-target}/release/resq}
# A stale build (an old target/ beside a CARGO_TARGET_DIR elsewhere) would not measure this tree.
if [ -n "$(find src sim-robot/src firmware-bridge/src -newer "$R" -type f -print -quit 2>/dev/null)" ]; then
  echo "warning: $R is older than the sources: run cargo build --release (with the CARGO_TARGET_DIR you build with)" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# SB3 priors read raw observations: models/cartpole without its scales (as tests/common/bundles.rs).
raw() { grep -v '^scale = ' models/cartpole/manifest.toml; }
mkdir -p "$work/ppo" "$work/dqn"
raw | grep -v '^temperature = ' | sed 's/kind = "discrete_q"/kind = "discrete_logits"/' > "$work/ppo/manifest.toml"
cp tests/data/onnx/sb3_ppo_cartpole.onnx "$work/ppo/prior.onnx"
raw | sed 's/^temperature = 1.0/temperature = "auto"/' > "$work/dqn/manifest.toml"
cp tests/data/onnx/sb3_dqn_cartpole.onnx "$work/dqn/prior.onnx"

declare -A BUNDLE=([soft]=models/cartpole [bc]=models/cartpole-bc [ppo]=$work/ppo [dqn]=$work/dqn)
ROC=(--set 'addon.term=[{name="right",expr="-abs(x-0.5)/2.4"}]'
     --set 'evaluation.metric=[{name="mean_abs_x_off",expr="abs(x-0.5)",reduce="mean"}]')
for p in $PRIORS; do
  for w in $SETTINGS; do
    extra=()
    case "$w" in
      default) ;;
      kl=*) extra=(--set "residual.kl_per_step=${w#kl=}") ;;
      *) extra=(--set "residual.omega=$w" --set "residual.alpha=$w") ;;
    esac
    for s in $SEEDS; do
      "$R" customize "${BUNDLE[$p]}" --steps "$STEPS" --seed "$s" --quiet --fresh --out "$work/run" \
        --eval-every 2000 "${ROC[@]}" "${extra[@]}" ${EXTRA:-} > /dev/null 2>&1 || true
      python3 - "$work/run/report.json" "$p" "$w" "$s" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); p, c = r["prior"], r["customized"]
ratio = c["mean_abs_x_off"] / p["mean_abs_x_off"] if c.get("episodes") else float("nan")
worst = (r.get("curve_worst") or {}).get("success_rate", float("nan"))
stop = (r["stopped"] or {}).get("at_step", "-")
conf = (r.get("prior_confidence") or {}).get("median", float("nan"))
scale = (r.get("trade_off") or {}).get("scale", 1.0)
print(f"{sys.argv[2]:5} setting {sys.argv[3]:8} seed {sys.argv[4]}: ratio {ratio:.3f}, success "
      f"{c.get('success_rate', float('nan')):.2f}, worst curve success {worst:.2f}, training failed "
      f"{r['training']['episodes_failed']}, stopped at {stop}, prior gap {conf:.2f}, omega' scale {scale:.4f}")
EOF
    done
  done
done
