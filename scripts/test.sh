#!/usr/bin/env bash
# The test command (README "Two commands"; CI's .ci/run runs exactly this).
#
# 1. Makes (or reuses), by scripts/venv.sh, a Python venv with what the end-to-end tests drive: the reference firmware
#    (reference-firmware/, installed from this repository), gymnasium, MuJoCo and onnxruntime. Never torch:
#    the priors are committed ONNX files, made by the training scripts in scripts/.
# 2. Runs the reference firmware's own tests (protocol test vectors from PROTOCOL.md, a pty
#    session).
# 3. Keeps the house: `cargo fmt --check`, `cargo clippy --workspace --all-targets -D warnings`,
#    and `cargo doc` with warnings as errors (every doc link resolves).
# 4. Runs `cargo test --release --workspace`, telling the tests which Python to start the
#    reference firmware with (RESQ_PYTHON). A test that needs it fails, never skips, without it.
#
# Environment: RESQ_VENV (default ~/.cache/resq-venv), CARGO_TARGET_DIR (cargo's default if unset),
# and any arguments are passed to `cargo test` (e.g. `scripts/test.sh --test byo_robot`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="$(scripts/venv.sh)"
"$PYTHON" -m unittest discover -s reference-firmware/tests
# firmware-bridge stays no_std and builds for a Cortex-M4F microcontroller.
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
cargo build --release -p firmware-bridge --target thumbv7em-none-eabihf
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace
export RESQ_PYTHON="$PYTHON"
cargo test --release --workspace "$@"
