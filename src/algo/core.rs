//! What every residual Q learner shares: the online head and its Polyak target, Adam, the replay
//! ring, the n-step residual return, and the gradient step with its divergence guard. The
//! algorithms (`rql_discrete`, `rql_sampled`) differ only in how they read `Q_R(s,a)` and the
//! soft value `V⁻(s')` of the bootstrap state.

use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};

use super::replay::Replay;
use crate::nn::{mlp::Trace, Activation, Adam, Grads, Mlp};

/// Learner settings (from the manifest's `[residual]` and `[learning]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub omega: f32,
    pub alpha: f32,
    pub gamma: f32,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub lr: f32,
    pub batch: usize,
    pub replay_capacity: usize,
    pub n_step: usize,
    pub target_tau: f32,
    pub huber_delta: f32,
    pub grad_clip: f32,
    pub warmup: usize,
    pub updates_per_tick: usize,
    /// Residual soft Q: weigh the n-step target's steps with Retrace's truncated importance
    /// weights (`rql_discrete`; `[learning] traces = "retrace"`).
    pub traces: bool,
}

/// The n-step residual return from one replay entry at step `t`, over `m ≤ n` consecutive
/// entries cut at the end of an episode (or at a step the replay never got):
///
/// ```text
/// y = Σ_{k<m} γ^k·r_R,t+k + Σ_{1≤k<m} γ^k·(ω'·log π0(a_{t+k}|s_{t+k}) − α̂·log π̂(a_{t+k}|s_{t+k}))
///     + discount·V⁻(s_{t+m})
/// ```
///
/// `g` holds the first sum (add-on rewards only); the second is each learner's. Residual soft Q
/// and the sampled method take it under the *current* π̂ (the one whose value the head learns):
/// with the π̂ stored at acting time, which was the KL-blended or an older policy, the target would
/// be too low by about `α̂·γ^k·KL(π_b‖π̂)` per intermediate step. With the current π̂ the target is
/// exact at the fixed point on any data, since `ω'·log π0 − α̂·log π̂ = V(s) − Q_R(s,a)` and the
/// sum telescopes (tested against a tabular solution). Exact at the fixed point is not a
/// contraction off-policy: residual soft Q can weigh the steps with Retrace's truncated
/// importance weights (`rql_discrete`, `[learning] traces`). Residual SAC takes the stored
/// behaviour's `log π`, a measured choice (see [`super::residual_sac`]'s doc). The
/// intermediate steps are the entries `first_step + k`, `1 ≤ k < m` ([`LearnerCore::mid_steps`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NStep {
    /// Slot of the first transition (its `s`, `a`).
    pub first: usize,
    /// Replay step of the first transition.
    pub first_step: u64,
    /// Transitions in the return.
    pub m: usize,
    /// Slot whose next state is bootstrapped from.
    pub last: usize,
    /// `Σ_{k<m} γ^k·r_R,t+k`.
    pub g: f32,
    /// `γ^m`, or 0 when the last transition reached a true terminal state.
    pub discount: f32,
}

/// An intermediate step of an n-step return: the entry at `slot` (its `s`, `a`), the entry
/// before it at `prev` (whose next state is `s`, with `log π0(·|s)` or the candidates there),
/// and its weight `γ^k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MidStep {
    pub slot: usize,
    pub prev: usize,
    pub weight: f32,
}

/// Online head, target, optimiser, replay.
pub struct LearnerCore {
    pub settings: Settings,
    pub online: Mlp,
    pub target: Mlp,
    pub adam: Adam,
    pub replay: Replay,
    pub updates: u64,
    /// Set when an update produced a non-finite loss or parameters: learning stops and the
    /// controller acts on the prior alone.
    pub diverged: bool,
    pub rng: rand_pcg::Pcg64Mcg,
    grads: Grads,
}

impl LearnerCore {
    /// A head `n_in → hidden → n_out` whose output layer starts at zero (`Q_R ≡ 0`: the robot
    /// starts on the tempered prior).
    pub fn new(settings: Settings, n_in: usize, n_out: usize, replay: Replay, seed: u64) -> Self {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        let mut sizes = vec![n_in];
        sizes.extend(&settings.hidden);
        sizes.push(n_out);
        let online = Mlp::new(&sizes, settings.activation, true, &mut rng);
        LearnerCore {
            target: online.clone(),
            adam: Adam::new(&online, settings.lr),
            grads: online.zero_grads(),
            replay,
            online,
            updates: 0,
            diverged: false,
            rng,
            settings,
        }
    }

    /// True once the replay holds enough transitions to learn from.
    pub fn ready(&self) -> bool {
        !self.diverged && self.replay.len() >= self.settings.warmup.max(self.settings.batch)
    }

    /// A uniformly drawn replay step.
    pub fn draw(&mut self) -> u64 {
        let (lo, hi) = (self.replay.oldest(), self.replay.written);
        self.rng.random_range(lo..hi)
    }

    /// The n-step return from the entry written at step `k`.
    pub fn n_step(&self, k: u64) -> NStep {
        let (s, r) = (&self.settings, &self.replay);
        let first = r.slot(k);
        let (mut g, mut disc, mut last, mut m) = (0.0f32, 1.0f32, first, 0);
        for j in 0..s.n_step {
            let step = k + j as u64;
            if step >= r.written {
                break;
            }
            let slot = r.slot(step);
            g += disc * r.reward[slot];
            disc *= s.gamma;
            last = slot;
            m += 1;
            if r.episode_end[slot] {
                break;
            }
        }
        NStep { first, first_step: k, m, last, g, discount: if r.terminal[last] { 0.0 } else { disc } }
    }

    /// The intermediate steps `1 ≤ k < m` of `n`, whose soft terms the learner adds.
    pub fn mid_steps(&self, n: &NStep) -> impl Iterator<Item = MidStep> + '_ {
        let (gamma, first) = (self.settings.gamma, n.first_step);
        (1..n.m).map(move |k| MidStep {
            slot: self.replay.slot(first + k as u64),
            prev: self.replay.slot(first + k as u64 - 1),
            weight: gamma.powi(k as i32),
        })
    }

    /// Huber loss of `err` and its derivative.
    pub fn huber(&self, err: f32) -> (f32, f32) {
        let d = self.settings.huber_delta;
        let loss = if err.abs() <= d { 0.5 * err * err } else { d * (err.abs() - 0.5 * d) };
        (loss, err.clamp(-d, d))
    }

    /// [`LearnerCore::step`], then moves the target towards the online head.
    pub fn apply(&mut self, trace: &mut Trace, d_out: ArrayView2<f32>, loss: f32) -> Option<f32> {
        let loss = self.step(trace, d_out, loss)?;
        self.target.soft_update(&self.online, self.settings.target_tau);
        Some(loss)
    }

    /// Backpropagates `d_out` into the online head, clips, steps Adam; stops learning on a
    /// non-finite loss or parameters. Returns the loss, or `None` if learning stopped. (RPG
    /// steps its policy head this way: it has no target.)
    pub fn step(&mut self, trace: &mut Trace, d_out: ArrayView2<f32>, loss: f32) -> Option<f32> {
        if !loss.is_finite() {
            self.diverged = true;
            return None;
        }
        gradient_step(
            &mut self.online,
            &mut self.adam,
            &mut self.grads,
            trace,
            d_out,
            self.settings.grad_clip,
        );
        self.updates += 1;
        if !self.online.is_finite() {
            self.diverged = true;
            return None;
        }
        Some(loss)
    }
}

/// Backpropagates `d_out` through `net` (its forward `trace`), clips the gradient's global norm
/// to `clip` (0 = off) and takes one Adam step.
pub fn gradient_step(
    net: &mut Mlp,
    adam: &mut Adam,
    grads: &mut Grads,
    trace: &mut Trace,
    d_out: ArrayView2<f32>,
    clip: f32,
) {
    net.backward(trace, d_out, grads);
    if clip > 0.0 {
        let norm = grads.norm();
        if norm > clip {
            grads.scale(clip / norm);
        }
    }
    adam.step(net, grads);
}

/// A network a learner keeps beyond its core's, saved and restored by name in checkpoints with
/// its optimiser when it is trained.
pub struct NamedNet<'a> {
    pub name: &'static str,
    pub net: &'a Mlp,
    pub adam: Option<&'a Adam>,
}

/// [`NamedNet`], mutable (for restoring a checkpoint).
pub struct NamedNetMut<'a> {
    pub name: &'static str,
    pub net: &'a mut Mlp,
    pub adam: Option<&'a mut Adam>,
}

/// A residual learner, whatever its action space.
pub trait ResidualLearner {
    fn core(&self) -> &LearnerCore;
    fn core_mut(&mut self) -> &mut LearnerCore;
    /// One gradient step on a uniformly sampled minibatch; the mean (critic) loss, or `None`
    /// when not ready or diverged.
    fn update(&mut self) -> Option<f32>;
    /// The actor that acts, for methods that have one (residual SAC).
    fn actor(&self) -> Option<&Mlp> {
        None
    }
    /// Networks beyond the core's (checkpointed by name).
    fn extra_nets(&self) -> Vec<NamedNet<'_>> {
        Vec::new()
    }
    fn extra_nets_mut(&mut self) -> Vec<NamedNetMut<'_>> {
        Vec::new()
    }
    /// State beyond networks and replay that a resumed run needs (RPG: its rollout phase), as
    /// named vectors (checkpointed as `state.<name>`).
    fn extra_state(&self) -> Vec<(&'static str, Vec<f64>)> {
        Vec::new()
    }
    /// Restores one named vector of [`ResidualLearner::extra_state`] (after the networks and
    /// the replay); false if the name or length is not this learner's.
    fn restore_extra_state(&mut self, _name: &str, _v: &[f64]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::replay::{Layout, Transition};

    fn core(n_step: usize) -> LearnerCore {
        let settings = Settings {
            omega: 0.0,
            alpha: 1.0,
            gamma: 0.5,
            hidden: vec![4],
            activation: Activation::Relu,
            lr: 1e-3,
            batch: 1,
            replay_capacity: 16,
            n_step,
            target_tau: 0.01,
            huber_delta: 1.0,
            grad_clip: 0.0,
            warmup: 1,
            updates_per_tick: 1,
            traces: false,
        };
        let replay = Replay::new(16, Layout { n_obs: 1, n_actions: 2, ..Layout::default() });
        LearnerCore::new(settings, 1, 2, replay, 0)
    }

    fn push_end(c: &mut LearnerCore, reward: f32, step: u64, terminal: bool, truncated: bool) {
        let t = Transition {
            obs: &[0.0],
            action: 0,
            action_values: &[],
            pre_action: &[],
            next_candidates: &[],
            prior_params: &[],
            next_prior_params: &[],
            reward,
            logp0_taken: 0.0,
            logpi_taken: 0.0,
            next_obs: &[0.0],
            next_logp0: &[0.0, 0.0],
            terminal,
            truncated,
        };
        c.replay.push_step(&t, step);
    }

    /// `n_step` sums `γ^k·r_R` over at most n entries, stops at an episode's last entry, gives
    /// `γ^m` after m entries, 0 after a termination and `γ^m` after a truncation (which
    /// bootstraps), and names the intermediate entries with their weights `γ^k`.
    #[test]
    fn n_step_cuts_at_episode_ends_and_discounts_by_gamma_to_the_m() {
        let mut c = core(3);
        // Episode 1: steps 0..=3, terminated at 3. Episode 2: steps 4, 5, truncated at 5.
        // Episode 3: steps 6.., running.
        for (k, r) in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0].into_iter().enumerate() {
            push_end(&mut c, r, k as u64, k == 3, k == 5);
        }
        let n = c.n_step(0);
        assert_eq!(
            (n.g, n.m, n.discount, n.last),
            (1.0 + 0.5 * 2.0 + 0.25 * 4.0, 3, 0.125, c.replay.slot(2))
        );
        let mids: Vec<(usize, usize, f32)> = c.mid_steps(&n).map(|m| (m.slot, m.prev, m.weight)).collect();
        assert_eq!(mids, [(1, 0, 0.5), (2, 1, 0.25)]);
        let n = c.n_step(2);
        assert_eq!((n.g, n.m, n.discount), (4.0 + 0.5 * 8.0, 2, 0.0), "cut at the termination, no bootstrap");
        let n = c.n_step(3);
        assert_eq!((n.g, n.m, n.discount), (8.0, 1, 0.0));
        let n = c.n_step(4);
        assert_eq!((n.g, n.m, n.discount), (16.0 + 0.5 * 32.0, 2, 0.25), "a truncation bootstraps");
        assert_eq!(c.n_step(5).m, 1);
        let n = c.n_step(8);
        assert_eq!((n.g, n.m, n.discount), (256.0 + 0.5 * 512.0, 2, 0.25), "the newest entry ends the chain");
        assert_eq!(c.mid_steps(&n).count(), 1);
    }

    fn push(c: &mut LearnerCore, reward: f32, step: u64) {
        push_end(c, reward, step, false, false);
    }

    /// The robot's steps 10, 11, 12, then 14 (13 was dropped by a full learner queue): the
    /// 10-step return from step 10 stops at 12 and bootstraps from there, never adding 14's reward.
    #[test]
    fn a_dropped_transition_cuts_the_n_step_return() {
        let mut c = core(10);
        for (r, step) in [(1.0, 10), (2.0, 11), (4.0, 12), (8.0, 14), (16.0, 15)] {
            push(&mut c, r, step);
        }
        let from10 = c.n_step(0);
        assert_eq!(from10.g, 1.0 + 0.5 * 2.0 + 0.25 * 4.0);
        assert_eq!(from10.last, c.replay.slot(2));
        assert_eq!(from10.discount, 0.125, "bootstrapped (not terminal) after three steps");
        // From step 14 on, the chain runs on (to the newest entry).
        let from14 = c.n_step(3);
        assert_eq!(from14.g, 8.0 + 0.5 * 16.0);
        // Consecutive steps are not cut.
        let mut d = core(10);
        for (i, r) in [1.0, 2.0, 4.0].into_iter().enumerate() {
            push(&mut d, r, 100 + i as u64);
        }
        assert_eq!(d.n_step(0).g, 1.0 + 0.5 * 2.0 + 0.25 * 4.0);
        assert_eq!(d.n_step(0).last, d.replay.slot(2));
    }
}
