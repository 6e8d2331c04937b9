//! Acting with a continuous prior and the sampled residual (DESIGN.md §1, actor-free): draw K
//! candidates from the squashed-Gaussian prior, score them with `Q_R`, pick one by
//! self-normalised importance weights. Allocation-free after construction.
//!
//! ```text
//! u_k = mean + exp(clamp(log_std))·ε_k,  ε_k ~ N(0, 1),  a_k = tanh(u_k)
//! ℓ_k = (Q_R(s,a_k) + ω'·log π0(a_k|s))/α̂ − log π0(a_k|s)
//! sample: k ~ softmax(ℓ)         log π̂(a_k|s) = (Q_R + ω'·log π0)(a_k)/α̂ − (logsumexp ℓ − log K)
//! greedy: the π̂-weighted mean of the candidates, Σ_k softmax(ℓ)_k·a_k
//! ```

use rand::Rng;

use crate::algo::rql_sampled::candidate_logits;
use crate::nn::{Mlp, Scratch};
use crate::prior::{squashed_gaussian_log_prob, LOG_STD_MAX, LOG_STD_MIN};

/// Buffers and state of the sampled actor.
pub struct SampledActor {
    pub k: usize,
    pub act_dim: usize,
    /// `[mean, log_std]` of the prior at the current state.
    pub gauss: Vec<f32>,
    /// Candidates `[K, act_dim]` in [−1, 1] units.
    pub candidates: Vec<f32>,
    /// `log π0(a_k|s)`.
    pub logp0: Vec<f32>,
    pub q_r: Vec<f32>,
    pub logits: Vec<f32>,
    /// The prior's mean action `tanh(mean)` and its `log π0`.
    pub mean_action: Vec<f32>,
    pub mean_logp0: f32,
    /// The action chosen at the last step, [−1, 1] units.
    pub action: Vec<f32>,
    input: Vec<f32>,
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// `Q_R(s, a)`: the residual on `[obs, a]`, assembled in `input`.
fn q_value(residual: &Mlp, scratch: &mut Scratch, input: &mut [f32], obs: &[f32], a: &[f32]) -> f32 {
    let n = obs.len();
    input[..n].copy_from_slice(obs);
    input[n..].copy_from_slice(a);
    residual.forward1(input, scratch)[0]
}

/// What the actor chose.
pub struct Choice {
    pub index: usize,
    pub logp0: f32,
    pub logpi: f32,
    pub fallback: bool,
}

impl SampledActor {
    /// At most 8 action dimensions (bundles are validated for it).
    pub fn new(k: usize, act_dim: usize, n_obs: usize) -> Self {
        assert!((1..=8).contains(&act_dim) && k >= 1, "1..=8 action dimensions and at least one candidate");
        SampledActor {
            k,
            act_dim,
            gauss: vec![0.0; 2 * act_dim],
            candidates: vec![0.0; k * act_dim],
            logp0: vec![0.0; k],
            q_r: vec![0.0; k],
            logits: vec![0.0; k],
            mean_action: vec![0.0; act_dim],
            mean_logp0: 0.0,
            action: vec![0.0; act_dim],
            input: vec![0.0; n_obs + act_dim],
        }
    }

    /// Draws the K candidates from the prior's `[mean, log_std]` (already in `self.gauss`).
    pub fn draw(&mut self, rng: &mut impl Rng) {
        let ad = self.act_dim;
        let (mean, log_std) = self.gauss.split_at(ad);
        for j in 0..ad {
            self.mean_action[j] = mean[j].tanh();
        }
        self.mean_logp0 = squashed_gaussian_log_prob(mean, log_std, &self.mean_action);
        for c in 0..self.k {
            let a = &mut self.candidates[c * ad..(c + 1) * ad];
            for j in 0..ad {
                let std = log_std[j].clamp(LOG_STD_MIN, LOG_STD_MAX).exp();
                a[j] = (mean[j] + std * normal(rng)).tanh();
            }
            self.logp0[c] = squashed_gaussian_log_prob(mean, log_std, a);
        }
    }

    /// The prior alone: its mean action (greedy) or candidate 0 (a sample of π0).
    pub fn choose_prior(&mut self, greedy: bool) -> Choice {
        if greedy {
            self.action.copy_from_slice(&self.mean_action);
            Choice { index: 0, logp0: self.mean_logp0, logpi: self.mean_logp0, fallback: false }
        } else {
            self.action.copy_from_slice(&self.candidates[..self.act_dim]);
            Choice { index: 0, logp0: self.logp0[0], logpi: self.logp0[0], fallback: false }
        }
    }

    /// The customized policy π̂ over the candidates.
    #[allow(clippy::too_many_arguments)]
    pub fn choose(
        &mut self,
        residual: &Mlp,
        scratch: &mut Scratch,
        obs: &[f32],
        omega: f32,
        alpha: f32,
        greedy: bool,
        rng: &mut impl Rng,
    ) -> Choice {
        let ad = self.act_dim;
        for c in 0..self.k {
            self.q_r[c] =
                q_value(residual, scratch, &mut self.input, obs, &self.candidates[c * ad..(c + 1) * ad]);
        }
        if self.q_r.iter().any(|v| !v.is_finite()) {
            let mut ch = self.choose_prior(greedy);
            ch.fallback = true;
            return ch;
        }
        candidate_logits(&self.q_r, &self.logp0, omega, alpha, &mut self.logits);
        let m = self.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = m + self.logits.iter().map(|l| (l - m).exp()).sum::<f32>().ln();
        let log_z = lse - (self.k as f32).ln();
        let logpi = |q: f32, l0: f32| (q + omega * l0) / alpha - log_z;
        if greedy {
            // The π̂-weighted mean of the candidates: a low-noise point estimate of π̂'s action
            // (the best single candidate would carry the candidates' sampling noise).
            let total: f32 = self.logits.iter().map(|l| (l - m).exp()).sum();
            let mut point = [0.0f32; 8];
            for c in 0..self.k {
                let w = (self.logits[c] - m).exp() / total;
                for j in 0..ad {
                    point[j] += w * self.candidates[c * ad + j];
                }
            }
            let q = q_value(residual, scratch, &mut self.input, obs, &point[..ad]);
            let (mean, log_std) = self.gauss.split_at(ad);
            let lp0 = squashed_gaussian_log_prob(mean, log_std, &point[..ad]);
            self.action.copy_from_slice(&point[..ad]);
            return Choice { index: 0, logp0: lp0, logpi: logpi(q, lp0), fallback: false };
        }
        // Sample k ~ softmax(ℓ) by inverse CDF.
        let u = rng.random::<f32>();
        let total: f32 = self.logits.iter().map(|l| (l - m).exp()).sum();
        let (mut acc, mut c) = (0.0f32, self.k - 1);
        for (i, l) in self.logits.iter().enumerate() {
            acc += (l - m).exp() / total;
            if u < acc {
                c = i;
                break;
            }
        }
        self.action.copy_from_slice(&self.candidates[c * ad..(c + 1) * ad]);
        Choice { index: c, logp0: self.logp0[c], logpi: logpi(self.q_r[c], self.logp0[c]), fallback: false }
    }
}
