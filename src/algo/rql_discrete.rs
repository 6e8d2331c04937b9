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

pub use super::core::Settings;
use super::core::{LearnerCore, ResidualLearner};
use super::replay::{Layout, Replay};

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

/// Residual soft Q-learning with a discrete head `Q_R(s,·)`.
pub struct ResidualSoftQ {
    pub core: LearnerCore,
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
        let b = settings.batch;
        let replay = Replay::new(settings.replay_capacity, Layout { n_obs, n_actions, ..Layout::default() });
        ResidualSoftQ {
            core: LearnerCore::new(settings, n_obs, n_actions, replay, seed),
            x: Array2::zeros((b, n_obs)),
            x_boot: Array2::zeros((b, n_obs)),
            logp0_boot: Array2::zeros((b, n_actions)),
            actions: vec![0; b],
            returns: vec![0.0; b],
            boot_discount: vec![0.0; b],
        }
    }
}

impl ResidualLearner for ResidualSoftQ {
    fn core(&self) -> &LearnerCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut LearnerCore {
        &mut self.core
    }

    fn update(&mut self) -> Option<f32> {
        if !self.core.ready() {
            return None;
        }
        let b = self.core.settings.batch;
        for row in 0..b {
            let k = self.core.draw();
            let n = self.core.n_step(k);
            let r = &self.core.replay;
            self.x.row_mut(row).as_slice_mut().expect("row-major").copy_from_slice(r.obs_at(n.first));
            self.actions[row] = r.action[n.first] as usize;
            self.returns[row] = n.g;
            self.boot_discount[row] = n.discount;
            self.x_boot
                .row_mut(row)
                .as_slice_mut()
                .expect("row-major")
                .copy_from_slice(r.next_obs_at(n.last));
            self.logp0_boot
                .row_mut(row)
                .as_slice_mut()
                .expect("row-major")
                .copy_from_slice(r.next_logp0_at(n.last));
        }
        let (omega, alpha) = (self.core.settings.omega, self.core.settings.alpha);
        let q_boot = self.core.target.predict(self.x_boot.view());
        let trace = self.core.online.forward_batch(self.x.view());
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
            let (l, g) = self.core.huber(q[[row, a]] - y);
            loss += l;
            d_out[[row, a]] = g / b as f32;
        }
        self.core.apply(&trace, &d_out, loss / b as f32)
    }
}
