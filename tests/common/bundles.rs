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

/// `models/cartpole`'s manifest for a prior on raw signals (as Stable-Baselines3 trains them):
/// the observation scales dropped, and lines for which `keep` is false.
fn raw_cartpole(text: String, keep: impl Fn(&str) -> bool) -> String {
    text.lines().filter(|l| !l.starts_with("scale = ") && keep(l)).collect::<Vec<_>>().join("\n")
}

/// `models/cartpole` with the Stable-Baselines3 DQN prior (`scripts/train_sb3_dqn_cartpole.py`).
pub fn write_sb3_dqn_cartpole(dir: &Path) {
    write_with_prior(dir, "cartpole", "sb3_dqn_cartpole.onnx", |text| raw_cartpole(text, |_| true));
}

/// `models/cartpole` with the Stable-Baselines3 PPO actor (`scripts/train_sb3_ppo_cartpole.py`):
/// logits, no temperature.
pub fn write_sb3_ppo_cartpole(dir: &Path) {
    write_with_prior(dir, "cartpole", "sb3_ppo_cartpole.onnx", |text| {
        raw_cartpole(text, |l| !l.starts_with("temperature = "))
            .replace("kind = \"discrete_q\"", "kind = \"discrete_logits\"")
    });
}

/// `models/pendulum` with Stable-Baselines3's SAC actor (`scripts/train_sb3_pendulum.py --algo
/// sac`) at docs/priors.md's recipe: ω' = α̂ = the entropy coefficient SAC ended training with
/// (0.0242), `kl_per_step` = `kl`, and `kl_rate = 0.0003` (the multiplier three times slower than
/// by default).
pub fn write_sb3_sac_pendulum(dir: &Path, kl: f32) {
    write_with_prior(dir, "pendulum", "sb3_sac_pendulum.onnx", |text| {
        let t = text.replace("omega = 0.01\n", "omega = 0.0242\n");
        let t =
            t.replace("alpha = 0.01\n", &format!("alpha = 0.0242\nkl_per_step = {kl}\nkl_rate = 0.0003\n"));
        assert!(
            t.contains("omega = 0.0242") && t.contains("kl_per_step"),
            "models/pendulum's [residual] changed"
        );
        t
    });
}

/// `models/pendulum-gaussian` with Stable-Baselines3's PPO actor (`scripts/train_sb3_pendulum.py
/// --algo ppo`: its mean and state-independent log-std) and `kl_per_step` = `kl`.
pub fn write_sb3_ppo_pendulum(dir: &Path, kl: f32) {
    write_with_prior(dir, "pendulum-gaussian", "sb3_ppo_pendulum.onnx", |text| {
        let t = text.replace("alpha = 0.03\n", &format!("alpha = 0.03\nkl_per_step = {kl}\n"));
        assert!(t.contains("kl_per_step"), "models/pendulum-gaussian's [residual] changed");
        t
    });
}
