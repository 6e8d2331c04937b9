//! Helpers shared by integration tests (each test binary uses some of them).
#![allow(dead_code)]

pub mod alloc;
pub mod bundles;

/// A command that runs the `resq` binary under test: directly, or through the emulator named by
/// `RESQ_TEST_RUNNER` (scripts/test-aarch64.sh sets it to QEMU, since the binary it builds is
/// not the host's).
pub fn resq_command() -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_resq");
    match std::env::var("RESQ_TEST_RUNNER").ok().filter(|s| !s.trim().is_empty()) {
        Some(runner) => {
            let mut parts = runner.split_whitespace();
            let mut c = std::process::Command::new(parts.next().expect("not empty"));
            c.args(parts).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    }
}

/// The Python of the venv scripts/test.sh makes (RESQ_PYTHON): reference firmware, gymnasium,
/// MuJoCo, onnxruntime, mcap. A test that needs it fails without it, saying so; it never skips.
/// `needs` says what the test uses it for.
pub fn python(needs: &str) -> String {
    std::env::var("RESQ_PYTHON").unwrap_or_else(|_| {
        panic!("RESQ_PYTHON is not set: run the tests with scripts/test.sh, which makes the Python venv ({needs})")
    })
}

/// The seed of an end-to-end customization test: `RESQ_TEST_SEED`, or the test's own. The bars
/// hold over seeds 0–4 with the margins `scripts/seed_margins.sh` measures (docs/testing.md).
pub fn seed(default: u64) -> u64 {
    match std::env::var("RESQ_TEST_SEED") {
        Ok(s) if !s.trim().is_empty() => s.trim().parse().expect("RESQ_TEST_SEED is a number"),
        _ => default,
    }
}

/// Prints an end-to-end test's figure against its bar, in the one format
/// `scripts/seed_margins.sh` collects: `figure <name>: <value> (bar <= <bar>)` or `>=`.
pub fn figure(name: &str, value: f64, cmp: &str, bar: f64) {
    eprintln!("figure {name}: {value:.4} (bar {cmp} {bar:.4})");
}
