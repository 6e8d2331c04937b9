//! Residual soft Q-learning for discrete actions (`docs/design.md` §1.3).
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
//! r̃_t = r_R,t,    r̃_{t+k} = r_R,t+k + ω'·log π0(a_{t+k}|s_{t+k}) − α̂·log π̂⁻(a_{t+k}|s_{t+k})
//!                           = r_R,t+k + V⁻(s_{t+k}) − Q_R⁻(s_{t+k}, a_{t+k})          (k ≥ 1)
//! ```
//!
//! with `m ≤ n` cut at the end of an episode (`d` = 1 only for a true termination; a time-limit
//! truncation bootstraps), and π̂⁻ the current policy of the target head (see
//! [`super::core::NStep`]). Everything the target needs is stored with the transitions
//! ([`super::replay`]): `log π0(·|s_{t+k})` is the previous entry's `log π0(·|s')`, so an update
//! never runs the prior. With `n = 1` this is the one-step target `y = r_R + γ(1−d)·V⁻(s')`.

use ndarray::{s, Array2};

pub use super::core::Settings;
use super::core::{LearnerCore, ResidualLearner};
use super::replay::{Layout, Replay};
use crate::nn::mlp::Trace;
use crate::policy::discrete::soft_value;

/// Residual soft Q-learning with a discrete head `Q_R(s,·)`.
pub struct ResidualSoftQ {
    pub core: LearnerCore,
    x: Array2<f32>,
    /// The target head's inputs: the bootstrap states (rows `..batch`), then the intermediate
    /// states, run in one pass.
    x_target: Array2<f32>,
    logp0_boot: Array2<f32>,
    actions: Vec<usize>,
    returns: Vec<f32>,
    boot_discount: Vec<f32>,
    /// The replay steps of this minibatch.
    pub steps: Vec<u64>,
    /// The n-step targets of this minibatch.
    pub y: Vec<f32>,
    /// Intermediate steps of the minibatch's returns: `log π0(·|s)`, actions, weights `γ^k` and
    /// the row they belong to (at most `batch·(n−1)`; their states are in `x_target`).
    mid_logp0: Array2<f32>,
    mid_action: Vec<usize>,
    mid_weight: Vec<f32>,
    mid_row: Vec<usize>,
    /// The online head's pass, the target head's pass and `∂L/∂Q_R`, allocated once.
    online_trace: Trace,
    target_trace: Trace,
    d_out: Array2<f32>,
}

impl ResidualSoftQ {
    /// A new head for `n_obs` inputs and `n_actions` outputs. The output layer starts at zero,
    /// so `Q_R ≡ 0` and π̂ is the tempered prior (exactly π0 when ω' = α̂).
    pub fn new(settings: Settings, n_obs: usize, n_actions: usize, seed: u64) -> Self {
        let b = settings.batch;
        let mids = b * settings.n_step.saturating_sub(1);
        let replay = Replay::new(settings.replay_capacity, Layout { n_obs, n_actions, ..Layout::default() });
        let core = LearnerCore::new(settings.clone(), n_obs, n_actions, replay, seed);
        ResidualSoftQ {
            online_trace: core.online.trace(b),
            target_trace: core.target.trace(b + mids),
            d_out: Array2::zeros((b, n_actions)),
            core,
            x: Array2::zeros((b, n_obs)),
            x_target: Array2::zeros((b + mids, n_obs)),
            logp0_boot: Array2::zeros((b, n_actions)),
            actions: vec![0; b],
            returns: vec![0.0; b],
            boot_discount: vec![0.0; b],
            steps: vec![0; b],
            y: vec![0.0; b],
            mid_logp0: Array2::zeros((mids, n_actions)),
            mid_action: vec![0; mids],
            mid_weight: vec![0.0; mids],
            mid_row: vec![0; mids],
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
        for row in 0..self.core.settings.batch {
            self.steps[row] = self.core.draw();
        }
        self.targets();
        let b = self.core.settings.batch;
        let q = self.core.online.forward(self.x.view(), &mut self.online_trace);
        self.d_out.fill(0.0);
        let mut loss = 0.0f32;
        for row in 0..b {
            let a = self.actions[row];
            let (l, g) = self.core.huber(q[[row, a]] - self.y[row]);
            loss += l;
            self.d_out[[row, a]] = g / b as f32;
        }
        self.core.apply(&mut self.online_trace, self.d_out.view(), loss / b as f32)
    }
}

impl ResidualSoftQ {
    /// Fills the minibatch of the entries at `steps` (states, actions) and their n-step
    /// targets `y` under the target head.
    pub fn targets(&mut self) {
        let b = self.core.settings.batch;
        let mut mids = 0;
        for row in 0..b {
            let n = self.core.n_step(self.steps[row]);
            let r = &self.core.replay;
            self.x.row_mut(row).as_slice_mut().expect("row-major").copy_from_slice(r.obs_at(n.first));
            self.actions[row] = r.action[n.first] as usize;
            self.returns[row] = n.g;
            self.boot_discount[row] = n.discount;
            self.x_target
                .row_mut(row)
                .as_slice_mut()
                .expect("row-major")
                .copy_from_slice(r.next_obs_at(n.last));
            self.logp0_boot
                .row_mut(row)
                .as_slice_mut()
                .expect("row-major")
                .copy_from_slice(r.next_logp0_at(n.last));
            for mid in self.core.mid_steps(&n) {
                self.x_target
                    .row_mut(b + mids)
                    .as_slice_mut()
                    .expect("row-major")
                    .copy_from_slice(r.obs_at(mid.slot));
                self.mid_logp0
                    .row_mut(mids)
                    .as_slice_mut()
                    .expect("row-major")
                    .copy_from_slice(r.next_logp0_at(mid.prev));
                self.mid_action[mids] = r.action[mid.slot] as usize;
                self.mid_weight[mids] = mid.weight;
                self.mid_row[mids] = row;
                mids += 1;
            }
        }
        let (omega, alpha) = (self.core.settings.omega, self.core.settings.alpha);
        let q_target =
            self.core.target.forward(self.x_target.slice(s![..b + mids, ..]), &mut self.target_trace);
        for row in 0..b {
            let v = soft_value(
                q_target.row(row).as_slice().expect("row-major"),
                self.logp0_boot.row(row).as_slice().expect("row-major"),
                omega,
                alpha,
            );
            self.y[row] = self.returns[row] + self.boot_discount[row] * v;
        }
        // ω'·log π0(a|s) − α̂·log π̂⁻(a|s) = V⁻(s) − Q_R⁻(s,a) at each intermediate step.
        for i in 0..mids {
            let q = q_target.row(b + i);
            let q = q.as_slice().expect("row-major");
            let v = soft_value(q, self.mid_logp0.row(i).as_slice().expect("row-major"), omega, alpha);
            self.y[self.mid_row[i]] += self.mid_weight[i] * (v - q[self.mid_action[i]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::replay::Transition;
    use crate::nn::Activation;
    use rand::{Rng, SeedableRng};

    const S: usize = 3;
    const A: usize = 2;

    /// A deterministic 3-state, 2-action MDP: successor, add-on reward, and whether the step
    /// terminates; the prior `log π0(a|s)`.
    fn mdp(s: usize, a: usize) -> (usize, f64, bool) {
        let next = [[1, 2], [2, 0], [0, 1]][s][a];
        let r = [[0.3, -1.0], [0.0, 0.5], [-0.4, 1.2]][s][a];
        (next, r, s == 2 && a == 1)
    }
    const PRIOR: [[f64; A]; S] = [[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]];

    /// `log π0(a|s)`.
    fn logp0_of(s: usize, a: usize) -> f64 {
        PRIOR[s][a].ln()
    }

    /// The residual soft fixed point by value iteration (in f64):
    /// `Q(s,a) = r_R + γ(1−d)·α̂·log Σ_a' exp((Q(s',a') + ω'·log π0(a'|s'))/α̂)`.
    fn fixed_point(omega: f64, alpha: f64, gamma: f64) -> [[f64; A]; S] {
        let v = |q: &[[f64; A]; S], s: usize| {
            alpha * (0..A).map(|a| ((q[s][a] + omega * logp0_of(s, a)) / alpha).exp()).sum::<f64>().ln()
        };
        let mut q = [[0.0; A]; S];
        for _ in 0..3000 {
            let mut n = q;
            for s in 0..S {
                for a in 0..A {
                    let (s2, r, done) = mdp(s, a);
                    n[s][a] = r + if done { 0.0 } else { gamma * v(&q, s2) };
                }
            }
            q = n;
        }
        q
    }

    /// At the fixed point, the n-step target from off-policy data (uniformly random actions,
    /// episodes that end by termination and by truncation) equals `Q*(s, a)` for every entry:
    /// the intermediate soft terms are those of the current π̂. Built with the behaviour's
    /// stored `log π_b`, the same target misses by about α̂·γ^k·KL(π_b‖π̂) per step (checked too).
    #[test]
    fn n_step_targets_are_exact_at_the_fixed_point_on_off_policy_data() {
        let (omega, alpha, gamma) = (0.3f32, 0.5f32, 0.9f32);
        let settings = Settings {
            omega,
            alpha,
            gamma,
            hidden: vec![],
            activation: Activation::Relu,
            lr: 1e-3,
            batch: 1,
            replay_capacity: 256,
            n_step: 5,
            target_tau: 0.01,
            huber_delta: 1.0,
            grad_clip: 0.0,
            warmup: 1,
            updates_per_tick: 1,
        };
        let q = fixed_point(omega as f64, alpha as f64, gamma as f64);
        let mut l = ResidualSoftQ::new(settings, S, A, 0);
        // A linear head on one-hot states is the table itself.
        for s in 0..S {
            for a in 0..A {
                l.core.target.layers[0].w[[s, a]] = q[s][a] as f32;
            }
        }
        let one_hot = |s: usize| {
            let mut v = [0.0f32; S];
            v[s] = 1.0;
            v
        };
        let logp0 = |s: usize| [logp0_of(s, 0) as f32, logp0_of(s, 1) as f32];
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let (mut s, mut t) = (0usize, 0u32);
        let mut visited = Vec::new();
        for _ in 0..200 {
            let a = rng.random_range(0..A);
            let (s2, r, done) = mdp(s, a);
            t += 1;
            let truncated = !done && t == 7;
            let (o, o2, lp2) = (one_hot(s), one_hot(s2), logp0(s2));
            l.core.replay.push(&Transition {
                obs: &o,
                action: a,
                action_values: &[],
                reward: r as f32,
                logp0_taken: logp0_of(s, a) as f32,
                logpi_taken: 0.5f32.ln(),
                next_obs: &o2,
                next_logp0: &lp2,
                next_candidates: &[],
                prior_params: &[],
                next_prior_params: &[],
                terminal: done,
                truncated,
            });
            visited.push((s, a));
            s = if done || truncated { (s2 + 1) % S } else { s2 };
            if done || truncated {
                t = 0;
            }
        }
        let mut worst_stored = 0.0f64;
        for (k, &(s, a)) in visited.iter().enumerate().take(190) {
            l.steps[0] = k as u64;
            l.targets();
            assert!(
                (l.y[0] as f64 - q[s][a]).abs() < 1e-4,
                "step {k}: target {} vs Q*({s},{a}) = {}",
                l.y[0],
                q[s][a]
            );
            // The same return with the stored behaviour log-probabilities.
            let n = l.core.n_step(k as u64);
            let stored: f64 = l
                .core
                .mid_steps(&n)
                .map(|m| {
                    let r = &l.core.replay;
                    m.weight as f64 * (omega * r.logp0_taken[m.slot] - alpha * r.logpi_taken[m.slot]) as f64
                })
                .sum();
            let (mid, _) = l.core.mid_steps(&n).fold((0.0f64, 0), |acc, m| {
                let r = &l.core.replay;
                let (ms, ma) =
                    (r.obs_at(m.slot).iter().position(|v| *v == 1.0).unwrap(), r.action[m.slot] as usize);
                let v = alpha as f64
                    * (0..A)
                        .map(|b| ((q[ms][b] + omega as f64 * logp0_of(ms, b)) / alpha as f64).exp())
                        .sum::<f64>()
                        .ln();
                (acc.0 + m.weight as f64 * (v - q[ms][ma]), acc.1)
            });
            worst_stored = worst_stored.max((stored - mid).abs());
        }
        assert!(worst_stored > 0.05, "the stored log π_b would have biased the target by {worst_stored}");
    }
}
