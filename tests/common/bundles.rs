//! Test bundles built on disk from the repository's own: a bundle's manifest with another
//! prior (a real ONNX file from `tests/data/onnx`).

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `models/<model>/manifest.toml`, passed through `edit`, and `tests/data/onnx/<onnx>` as
/// its `prior.onnx` into `dir`.
pub fn write_with_prior(dir: &Path, model: &str, onnx: &str, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(root().join("models").join(model).join("manifest.toml")).unwrap();
    std::fs::write(dir.join("manifest.toml"), edit(text)).unwrap();
    std::fs::copy(root().join("tests/data/onnx").join(onnx), dir.join("prior.onnx")).unwrap();
}

/// `models/cartpole` with the Stable-Baselines3 DQN prior (`scripts/train_sb3_dqn_cartpole.py`),
/// which reads the raw signals: the observation scales are dropped.
pub fn write_sb3_dqn_cartpole(dir: &Path) {
    write_with_prior(dir, "cartpole", "sb3_dqn_cartpole.onnx", |text| {
        text.lines().filter(|l| !l.starts_with("scale = ")).collect::<Vec<_>>().join("\n")
    });
}
