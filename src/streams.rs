//! Named random streams: every seeded stream resq draws from, derived from the run's seed in
//! this one place, so that no two uses share a stream by accident and a reader can see which
//! draws a seed fixes. The derivations are the ones the measured figures in `docs/results/`
//! were produced with.

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

/// 2⁶⁴/φ: spreads consecutive integers over the seed space.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Evaluation episodes start from seeds offset from training's, so the two never share starts.
pub const EVAL_SEED_OFFSET: u64 = 1_000_003;

/// The seed of the training episodes' starts, for a run (re)started at step `from`.
pub fn training_episodes(seed: u64, from: u64) -> u64 {
    seed.wrapping_mul(GOLDEN) ^ from
}

/// Training's action draws (which action the customized policy samples), from step `from`.
pub fn training_actions(seed: u64, from: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ from ^ 0xac7)
}

/// The prior's continuous draws (its K candidates a tick), from step `from`; a new controller
/// starts on `prior_draws(run.seed, 0)`.
pub fn prior_draws(seed: u64, from: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ from ^ 0xd2a3)
}

/// The seed of the evaluation episodes' starts.
pub fn evaluation_episodes(seed: u64) -> u64 {
    seed + EVAL_SEED_OFFSET
}

/// An evaluation's action draws.
pub fn evaluation_actions(seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ 0xe7a1)
}

/// An evaluation's draws of the prior's continuous candidates (set in place of training's and
/// handed back afterwards, so an evaluation does not move training's stream).
pub fn evaluation_prior_draws(seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ 0xd2a3_e7a1)
}

/// The seed of the episodes the prior's temperature is calibrated on.
pub fn calibration_episodes(seed: u64) -> u64 {
    seed ^ 0xca11_b4a7e
}

/// The calibration's action draws.
pub fn calibration_actions(seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ 0xca11)
}

/// The seed the link sends with the Reset of episode `episode` of a stream reseeded at `stream`.
pub fn link_episode(stream: u64, episode: u64) -> u64 {
    stream.wrapping_add(episode.wrapping_mul(GOLDEN))
}

/// RPG: the minibatch order of epoch `epoch` of the rollout that started at step `start`.
pub fn rpg_minibatches(start: u64, epoch: u64) -> u64 {
    start.wrapping_mul(GOLDEN) ^ epoch.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// The random inputs on which a compiled prior is checked against tract at load.
pub fn prior_check() -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(0x5eed)
}
