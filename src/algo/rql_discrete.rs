//! Residual soft Q-learning for discrete actions (DESIGN.md §1).
//!
//! The residual head outputs `Q_R(s,·)`; the customized policy is
//!
//! ```text
//! π̂(a|s) = softmax_a( (Q_R(s,a) + ω'·log π0(a|s)) / α̂ )
//! ```
//!
//! and `Q_R` is fitted (Huber loss, Adam, target network `Q_R⁻` by Polyak averaging) to the
//! n-step residual soft target
//!
//! ```text
//! y = Σ_{k<m} γ^k·r̃_{t+k} + γ^m·(1−d)·V⁻(s_{t+m})
//! V⁻(s) = α̂·logsumexp_a( (Q_R⁻(s,a) + ω'·log π0(a|s)) / α̂ )
//! r̃_t = r_R,t,    r̃_{t+k} = r_R,t+k + ω'·log π0(a_{t+k}|s_{t+k}) − α̂·log π̂(a_{t+k}|s_{t+k})  (k ≥ 1)
//! ```
//!
//! with `m ≤ n` cut at the end of an episode (`d` = 1 only for a true termination; a time-limit
//! truncation bootstraps). Everything the target needs is stored with the transitions
//! ([`super::replay`]), so an update never runs the prior. With `n = 1` this is the one-step
//! target `y = r_R + γ(1−d)·V⁻(s')`.

use ndarray::Array2;
use num_traits::Float;
use rand::Rng;
use rand::SeedableRng;

use super::replay::Replay;
use crate::nn::{Activation, Adam, Grads, Mlp};

/// `α̂·logsumexp((Q_R + ω'·log π0)/α̂)`: the residual soft value of a state.
pub fn soft_value<F: Float>(q_r: &[F], logp0: &[F], omega: F, alpha: F) -> F {
    let mut m = F::neg_infinity();
    for (q, l) in q_r.iter().zip(logp0) {
        m = m.max((*q + omega * *l) / alpha);
    }
    if !m.is_finite() {
        return m * alpha;
    }
    let mut s = F::zero();
    for (q, l) in q_r.iter().zip(logp0) {
        s = s + ((*q + omega * *l) / alpha - m).exp();
    }
    alpha * (m + s.ln())
}

/// `log π̂(·|s) = log_softmax((Q_R + ω'·log π0)/α̂)`, into `out`.
pub fn policy_log_probs<F: Float>(q_r: &[F], logp0: &[F], omega: F, alpha: F, out: &mut [F]) {
    let v = soft_value(q_r, logp0, omega, alpha);
    for ((o, q), l) in out.iter_mut().zip(q_r).zip(logp0) {
        *o = (*q + omega * *l - v) / alpha;
    }
}

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
}

/// The residual Q head, its target, optimiser and replay.
pub struct ResidualSoftQ {
    pub settings: Settings,
    pub online: Mlp,
    pub target: Mlp,
    pub adam: Adam,
    pub replay: Replay,
    pub updates: u64,
    /// Set when an update produced a non-finite loss or parameters: learning stops and the
    /// controller acts on the prior alone.
    pub diverged: bool,
    rng: rand_pcg::Pcg64Mcg,
    grads: Grads,
    x: Array2<f32>,
    x_boot: Array2<f32>,
    logp0_boot: Array2<f32>,
    actions: Vec<usize>,
    returns: Vec<f32>,
    boot_discount: Vec<f32>,
}

impl ResidualSoftQ {
    /// A new head for `n_obs` inputs and `n_actions` outputs. The output layer starts at zero,
    /// so `Q_R ≡ 0` and π̂ is the tempered prior (exactly π0 when ω' = α̂).
    pub fn new(settings: Settings, n_obs: usize, n_actions: usize, seed: u64) -> Self {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        let mut sizes = vec![n_obs];
        sizes.extend(&settings.hidden);
        sizes.push(n_actions);
        let online = Mlp::new(&sizes, settings.activation, true, &mut rng);
        let b = settings.batch;
        ResidualSoftQ {
            target: online.clone(),
            adam: Adam::new(&online, settings.lr),
            grads: online.zero_grads(),
            replay: Replay::new(settings.replay_capacity, n_obs, n_actions),
            x: Array2::zeros((b, n_obs)),
            x_boot: Array2::zeros((b, n_obs)),
            logp0_boot: Array2::zeros((b, n_actions)),
            actions: vec![0; b],
            returns: vec![0.0; b],
            boot_discount: vec![0.0; b],
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

    /// Writes the n-step return from step `k` into batch row `row`.
    fn n_step_row(&mut self, k: u64, row: usize) {
        let s = &self.settings;
        let r = &self.replay;
        let slot0 = r.slot(k);
        self.x.row_mut(row).as_slice_mut().expect("row-major").copy_from_slice(r.obs_at(slot0));
        self.actions[row] = r.action[slot0] as usize;
        let (mut g, mut disc) = (0.0f32, 1.0f32);
        let mut last = slot0;
        for j in 0..s.n_step {
            let step = k + j as u64;
            if step >= r.written {
                break;
            }
            let slot = r.slot(step);
            let mut rt = r.reward[slot];
            if j > 0 {
                rt += s.omega * r.logp0_taken[slot] - s.alpha * r.logpi_taken[slot];
            }
            g += disc * rt;
            disc *= s.gamma;
            last = slot;
            if r.episode_end[slot] {
                break;
            }
        }
        self.returns[row] = g;
        self.boot_discount[row] = if r.terminal[last] { 0.0 } else { disc };
        self.x_boot.row_mut(row).as_slice_mut().expect("row-major").copy_from_slice(r.next_obs_at(last));
        self.logp0_boot
            .row_mut(row)
            .as_slice_mut()
            .expect("row-major")
            .copy_from_slice(r.next_logp0_at(last));
    }

    /// One gradient step on a uniformly sampled minibatch. Returns the mean Huber loss, or
    /// `None` when not ready or diverged.
    pub fn update(&mut self) -> Option<f32> {
        if !self.ready() {
            return None;
        }
        let b = self.settings.batch;
        let (lo, hi) = (self.replay.oldest(), self.replay.written);
        for row in 0..b {
            let k = self.rng.random_range(lo..hi);
            self.n_step_row(k, row);
        }
        let (omega, alpha, delta) = (self.settings.omega, self.settings.alpha, self.settings.huber_delta);
        let q_boot = self.target.predict(self.x_boot.view());
        let trace = self.online.forward_batch(self.x.view());
        let q = trace.acts.last().expect("output");
        let mut d_out = Array2::<f32>::zeros(q.raw_dim());
        let mut loss = 0.0f32;
        for row in 0..b {
            let v = soft_value(
                q_boot.row(row).as_slice().expect("row-major"),
                self.logp0_boot.row(row).as_slice().expect("row-major"),
                omega,
                alpha,
            );
            let y = self.returns[row] + self.boot_discount[row] * v;
            let a = self.actions[row];
            let err = q[[row, a]] - y;
            loss += if err.abs() <= delta { 0.5 * err * err } else { delta * (err.abs() - 0.5 * delta) };
            d_out[[row, a]] = err.clamp(-delta, delta) / b as f32;
        }
        loss /= b as f32;
        if !loss.is_finite() {
            self.diverged = true;
            return None;
        }
        self.online.backward(&trace, &d_out, &mut self.grads);
        if self.settings.grad_clip > 0.0 {
            let norm = self.grads.norm();
            if norm > self.settings.grad_clip {
                self.grads.scale(self.settings.grad_clip / norm);
            }
        }
        self.adam.step(&mut self.online, &self.grads);
        self.target.soft_update(&self.online, self.settings.target_tau);
        self.updates += 1;
        if !self.online.is_finite() {
            self.diverged = true;
            return None;
        }
        Some(loss)
    }

    /// `Q_R(s,·)` for a batch of observations (diagnostics and tests).
    pub fn q_values(&self, obs: &Array2<f32>) -> Array2<f32> {
        self.online.predict(obs.view())
    }
}
