#!/usr/bin/env bash
# Fuzzes firmware-bridge's streaming frame decoder for a bounded time (release build).
#
# Usage: scripts/fuzz_decoder.sh [seconds] [extra args, e.g. --seed 123]
#   seconds defaults to 10. Prints `executions: <n> frames: <n> rejected: <n>`; exits non-zero
#   (printing the seed to replay) if an invariant breaks. Set CARGO_TARGET_DIR to build
#   elsewhere than the workspace's target/ (e.g. to avoid lock contention with other builds).
set -euo pipefail

seconds="${1:-10}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

exec cargo run --quiet --release --manifest-path "$root/firmware-bridge/Cargo.toml" \
    --example fuzz_decoder -- --seconds "$seconds" "$@"
