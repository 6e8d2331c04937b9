#!/usr/bin/env bash
# Builds resq for aarch64 (ARM robot computers: Jetson, Raspberry Pi) and runs its tests under
# QEMU user-mode emulation on an x86_64 machine. Installs what it needs: Debian's qemu-user and
# gcc-aarch64-linux-gnu (with apt, as root or through sudo) and the Rust target (rustup).
#
# Runs the library's unit tests (kernels against scalar on NEON, the prior compiler, the learners'
# gradient and fixed-point checks, the protocol) and the integration tests that need no simulator:
# ONNX priors against their golden values, no allocation on the control path, records (read back
# by the tests' Python venv, scripts/venv.sh, natively), bench.
# The pseudo-terminal and real-time tests stay on x86_64 (emulation is too slow for deadlines).
#
#   scripts/test-aarch64.sh                 # everything above
#   scripts/test-aarch64.sh --test record   # extra arguments go to `cargo test`
#
# Environment: CARGO_TARGET_DIR as for scripts/test.sh (a cold build takes about 15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi
rustup target add "$TARGET" >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export RESQ_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"   # for tests that start the resq binary
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# The Python side (reading records as Foxglove does) runs natively.
export RESQ_PYTHON="$(scripts/venv.sh)"
if [ $# -eq 0 ]; then
    set -- --lib --test prior_golden --test no_alloc --test record --test bench
fi
cargo test --release --target "$TARGET" --workspace "$@"
