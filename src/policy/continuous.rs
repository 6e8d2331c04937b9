//! Acting with a continuous prior (`docs/design.md` §1.6–1.8). Allocation-free after construction.
//!
//! At each state the prior gives a diagonal Gaussian `(mean, log_std)` over the pre-action `u`,
//! in [−1, 1] units of the action variable (a `gaussian` or `deterministic` prior's command units
//! are converted; see [`crate::policy::prior::gaussian`]). From it the robot draws K candidates
//! `a_k = family(mean + σ·ε_k)` with their `log π0(a_k|s)`; they are stored with the transition.
//!
//! **Sampled residual Q** ([`ContinuousActor::choose_sampled`]):
//! ```text
//! ℓ_k = (Q_R(s,a_k) + ω'·log π0(a_k|s))/α̂ − log π0(a_k|s)
//! sample: k ~ softmax(ℓ)         log π̂(a_k|s) = (Q_R + ω'·log π0)(a_k)/α̂ − (logsumexp ℓ − log K)
//! greedy: the π̂-weighted mean of the candidates, Σ_k softmax(ℓ)_k·a_k
//! ```
//!
//! **Residual SAC** ([`ContinuousActor::choose_sac`]): the actor outputs offsets to the prior's
//! Gaussian, `π_θ(·|s) = family(N(mean0 + Δμ_θ(s), exp(clamp(log_std0 + Δσ_θ(s)))))`; its last
//! layer starts at zero, so the robot starts exactly on the prior. Sample: `u = μ + σ·ε`;
//! greedy: `u = μ`.
//!
//! **KL budget** (residual SAC): the robot acts on `π_λ`, the offsets scaled by the largest
//! `λ ∈ [0, 1]` with `KL(π_λ ‖ π0) ≤ budget`. Both are Gaussians in `u` (and tanh is a bijection,
//! so this is the KL of the action distributions):
//! `KL = Σ_j [ log σ0_j − log σ_j + (σ_j² + (μ_j − μ0_j)²) / (2σ0_j²) − ½ ]`, which grows
//! monotonically with λ, so bisection finds it. A budget of 0 disables it.

use rand::Rng;

use super::discrete::largest_within_budget;
use crate::nn::{Mlp, Scratch};
use crate::policy::prior::gaussian::normal;
use crate::policy::prior::{Family, PriorKind, LOG_STD_MAX, LOG_STD_MIN};

/// `ℓ_k = (Q_R + ω'·log π0)/α̂ − log π0` for each candidate, into `out`.
pub fn candidate_logits(q_r: &[f32], logp0: &[f32], omega: f32, alpha: f32, out: &mut [f32]) {
    for ((o, q), l) in out.iter_mut().zip(q_r).zip(logp0) {
        *o = (q + omega * l) / alpha - l;
    }
}

/// Buffers and state of continuous acting.
pub struct ContinuousActor {
    pub k: usize,
    pub act_dim: usize,
    pub family: Family,
    /// The prior's raw output (its own units).
    pub raw: Vec<f32>,
    /// `[mean, log_std]` of the prior at the current state, [−1, 1] units.
    pub gauss: Vec<f32>,
    /// Candidates `[K, act_dim]`, action-variable units, and the pre-actions `u` they were
    /// drawn as.
    pub candidates: Vec<f32>,
    pub candidate_pre: Vec<f32>,
    /// `log π0(a_k|s)`.
    pub logp0: Vec<f32>,
    pub q_r: Vec<f32>,
    pub logits: Vec<f32>,
    /// The prior's most likely action `family(mean)` and its `log π0`.
    pub mean_action: Vec<f32>,
    pub mean_logp0: f32,
    /// The action chosen at the last step (action-variable units), and its pre-action `u`
    /// (`action = family(u)`), kept because `atanh` of a squashed f32 action saturates.
    pub action: Vec<f32>,
    pub pre_action: Vec<f32>,
    /// Command units → [−1, 1], per dimension: `(x − mid) / half` (identity for squashed
    /// priors).
    mid: Vec<f32>,
    half: Vec<f32>,
    /// A deterministic prior's exploration log-std, command units.
    fixed_log_std: Option<f32>,
    input: Vec<f32>,
    /// `[obs, a_k]` for every candidate, row-major `[K, n_obs + act_dim]`.
    inputs: Vec<f32>,
    /// Residual SAC: the actor's `[mean, log_std]` at the current state.
    pub policy: Vec<f32>,
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
    /// `KL(π_acting ‖ π0)` at this state (residual SAC; 0 for the other choices).
    pub kl: f32,
    /// The share λ of the actor's offsets applied (1 = unconstrained).
    pub lambda: f32,
}

/// `KL(N(μ, σ) ‖ N(μ0, σ0))` summed over dimensions, for `params = [μ, log σ]`.
pub fn gaussian_kl(params: &[f32], params0: &[f32]) -> f32 {
    let ad = params.len() / 2;
    let mut kl = 0.0f32;
    for j in 0..ad {
        let (ls, ls0) = (params[ad + j], params0[ad + j].clamp(LOG_STD_MIN, LOG_STD_MAX));
        let var0 = (2.0 * ls0).exp();
        let dm = params[j] - params0[j];
        kl += ls0 - ls + ((2.0 * ls).exp() + dm * dm) / (2.0 * var0) - 0.5;
    }
    kl.max(0.0)
}

/// `KL(softmax(λ·ℓ) ‖ uniform) = Σ_k p_k·log(K·p_k)`, `p = softmax(λ·ℓ)`: the KL of the
/// candidates' reweighting from the prior that drew them. No allocation.
pub fn candidate_kl(logits: &[f32], lambda: f32) -> f32 {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, l| a.max(lambda * l));
    let total: f32 = logits.iter().map(|l| (lambda * l - m).exp()).sum();
    let ln_k = (logits.len() as f32).ln();
    let mut kl = 0.0f32;
    for l in logits {
        let lp = lambda * l - m - total.ln();
        kl += lp.exp() * (lp + ln_k);
    }
    kl.max(0.0)
}

/// `out = [μ0 + λ·Δμ, clamp(log σ0 + λ·Δσ)]`.
fn shifted(params0: &[f32], delta: &[f32], lambda: f32, out: &mut [f32]) {
    let ad = params0.len() / 2;
    for j in 0..ad {
        out[j] = params0[j] + lambda * delta[j];
        out[ad + j] = (params0[ad + j] + lambda * delta[ad + j]).clamp(LOG_STD_MIN, LOG_STD_MAX);
    }
}

/// The prior's parameters shifted by the largest share `λ ∈ [0, 1]` of `delta` whose KL from the
/// prior is within `budget` (≤ 0: no limit), into `out`; returns `(λ, KL)`. No allocation.
pub fn shift_within_budget(params0: &[f32], delta: &[f32], budget: f32, out: &mut [f32]) -> (f32, f32) {
    shifted(params0, delta, 1.0, out);
    let full = gaussian_kl(out, params0);
    if budget <= 0.0 || full <= budget {
        return (1.0, full);
    }
    let lambda = largest_within_budget(budget, |l| {
        shifted(params0, delta, l, out);
        gaussian_kl(out, params0)
    });
    shifted(params0, delta, lambda, out);
    (lambda, gaussian_kl(out, params0))
}

impl ContinuousActor {
    /// For a continuous prior `kind` whose dimension `j` has command range `[low[j], high[j]]`;
    /// at most [`firmware_bridge::MAX_COMMANDS`] dimensions (bundles are validated for it).
    pub fn new(kind: PriorKind, k: usize, n_obs: usize, low: &[f32], high: &[f32]) -> Self {
        let act_dim = low.len();
        assert!(
            (1..=firmware_bridge::MAX_COMMANDS).contains(&act_dim) && high.len() == act_dim && k >= 1,
            "1..=MAX_COMMANDS action dimensions and at least one candidate"
        );
        let family = kind.family().expect("a continuous prior kind");
        let (mid, half) = match family {
            Family::Squashed => (vec![0.0; act_dim], vec![1.0; act_dim]),
            Family::Clipped => (
                low.iter().zip(high).map(|(l, h)| 0.5 * (l + h)).collect(),
                low.iter().zip(high).map(|(l, h)| 0.5 * (h - l)).collect(),
            ),
        };
        let fixed_log_std = match kind {
            PriorKind::Deterministic { std } => Some(std.ln()),
            _ => None,
        };
        ContinuousActor {
            k,
            act_dim,
            family,
            raw: vec![0.0; kind.raw_width(act_dim)],
            gauss: vec![0.0; 2 * act_dim],
            candidates: vec![0.0; k * act_dim],
            candidate_pre: vec![0.0; k * act_dim],
            logp0: vec![0.0; k],
            q_r: vec![0.0; k],
            logits: vec![0.0; k],
            mean_action: vec![0.0; act_dim],
            mean_logp0: 0.0,
            action: vec![0.0; act_dim],
            pre_action: vec![0.0; act_dim],
            mid,
            half,
            fixed_log_std,
            input: vec![0.0; n_obs + act_dim],
            inputs: vec![0.0; k * (n_obs + act_dim)],
            policy: vec![0.0; 2 * act_dim],
        }
    }

    /// Sets `gauss` from the prior's raw output in `raw` (or, with `ok == false`, a standard
    /// Gaussian around 0: the supervisor bounds the command).
    pub fn set_params(&mut self, ok: bool) {
        let ad = self.act_dim;
        if !ok {
            self.gauss.iter_mut().for_each(|v| *v = 0.0);
            return;
        }
        for j in 0..ad {
            self.gauss[j] = (self.raw[j] - self.mid[j]) / self.half[j];
            let ls = self.fixed_log_std.unwrap_or_else(|| self.raw[ad + j]);
            self.gauss[ad + j] = ls - self.half[j].ln();
        }
    }

    /// Draws the K candidates from the prior's `[mean, log_std]` (already in `self.gauss`).
    pub fn draw(&mut self, rng: &mut impl Rng) {
        let (ad, fam) = (self.act_dim, self.family);
        let (mean, log_std) = self.gauss.split_at(ad);
        for j in 0..ad {
            self.mean_action[j] = fam.action(mean[j]);
        }
        self.mean_logp0 = fam.log_prob_pre(mean, log_std, mean);
        for c in 0..self.k {
            let a = &mut self.candidates[c * ad..(c + 1) * ad];
            let u = &mut self.candidate_pre[c * ad..(c + 1) * ad];
            for j in 0..ad {
                let std = log_std[j].clamp(LOG_STD_MIN, LOG_STD_MAX).exp();
                u[j] = mean[j] + std * normal(rng);
                a[j] = fam.action(u[j]);
            }
            self.logp0[c] = fam.log_prob_pre(mean, log_std, u);
        }
    }

    /// The command in [−1, 1] units for the chosen action, dimension `j`.
    pub fn command(&self, j: usize) -> f32 {
        self.family.command(self.action[j])
    }

    /// The prior alone: its mean action (greedy) or candidate 0 (a sample of π0).
    pub fn choose_prior(&mut self, greedy: bool) -> Choice {
        if greedy {
            self.action.copy_from_slice(&self.mean_action);
            self.pre_action.copy_from_slice(&self.gauss[..self.act_dim]);
            Choice {
                index: 0,
                logp0: self.mean_logp0,
                logpi: self.mean_logp0,
                fallback: false,
                kl: 0.0,
                lambda: 0.0,
            }
        } else {
            self.action.copy_from_slice(&self.candidates[..self.act_dim]);
            self.pre_action.copy_from_slice(&self.candidate_pre[..self.act_dim]);
            Choice {
                index: 0,
                logp0: self.logp0[0],
                logpi: self.logp0[0],
                fallback: false,
                kl: 0.0,
                lambda: 0.0,
            }
        }
    }

    /// The customized policy π̂ of the sampled residual Q, over the candidates, within the KL
    /// budget (`kl_budget` ≤ 0: none): the candidates are draws from π0, so π̂ over them is the
    /// discrete distribution `p = softmax(ℓ)` against a uniform π0, and the blend
    /// `π_λ ∝ π0^(1−λ)·π̂^λ` is `softmax(λ·ℓ)` with `KL(π_λ‖π0) ≈ Σ_k p_k·log(K·p_k)`. Its
    /// density: `log π_λ(a) = log π0(a) + λ·ℓ(a) − (logsumexp_k λ·ℓ_k − log K)`.
    #[allow(clippy::too_many_arguments)]
    pub fn choose_sampled(
        &mut self,
        residual: &Mlp,
        scratch: &mut Scratch,
        obs: &[f32],
        omega: f32,
        alpha: f32,
        kl_budget: f32,
        greedy: bool,
        rng: &mut impl Rng,
    ) -> Choice {
        let (ad, w) = (self.act_dim, obs.len() + self.act_dim);
        for c in 0..self.k {
            let row = &mut self.inputs[c * w..(c + 1) * w];
            row[..obs.len()].copy_from_slice(obs);
            row[obs.len()..].copy_from_slice(&self.candidates[c * ad..(c + 1) * ad]);
        }
        // All K candidates in one pass (`scratch` holds K rows: `Mlp::scratch_rows`).
        self.q_r.copy_from_slice(residual.forward_rows(&self.inputs, self.k, scratch));
        if self.q_r.iter().any(|v| !v.is_finite()) {
            let mut ch = self.choose_prior(greedy);
            ch.fallback = true;
            return ch;
        }
        candidate_logits(&self.q_r, &self.logp0, omega, alpha, &mut self.logits);
        let mut kl = candidate_kl(&self.logits, 1.0);
        let mut lambda = 1.0;
        if kl_budget > 0.0 && kl > kl_budget {
            lambda = largest_within_budget(kl_budget, |l| candidate_kl(&self.logits, l));
            kl = candidate_kl(&self.logits, lambda);
        }
        self.logits.iter_mut().for_each(|l| *l *= lambda);
        let m = self.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = self.logits.iter().map(|l| (l - m).exp()).sum();
        let log_z = m + total.ln() - (self.k as f32).ln();
        // log π_λ(a) from the unscaled ℓ(a) = (Q_R + ω'·log π0)/α̂ − log π0 and log π0(a).
        let logpi = |q: f32, l0: f32| l0 + lambda * ((q + omega * l0) / alpha - l0) - log_z;
        if greedy {
            // The π_λ-weighted mean of the candidates: a low-noise point estimate of its action
            // (the best single candidate would carry the candidates' sampling noise).
            let mut point = [0.0f32; firmware_bridge::MAX_COMMANDS];
            for c in 0..self.k {
                let w = (self.logits[c] - m).exp() / total;
                for j in 0..ad {
                    point[j] += w * self.candidates[c * ad + j];
                }
            }
            let q = q_value(residual, scratch, &mut self.input, obs, &point[..ad]);
            let (mean, log_std) = self.gauss.split_at(ad);
            let lp0 = self.family.log_prob(mean, log_std, &point[..ad]);
            self.action.copy_from_slice(&point[..ad]);
            for j in 0..ad {
                self.pre_action[j] = self.family.pre_action(point[j]);
            }
            return Choice { index: 0, logp0: lp0, logpi: logpi(q, lp0), fallback: false, kl, lambda };
        }
        // Sample k ~ softmax(λ·ℓ) by inverse CDF.
        let u = rng.random::<f32>();
        let (mut acc, mut c) = (0.0f32, self.k - 1);
        for (i, l) in self.logits.iter().enumerate() {
            acc += (l - m).exp() / total;
            if u < acc {
                c = i;
                break;
            }
        }
        self.action.copy_from_slice(&self.candidates[c * ad..(c + 1) * ad]);
        self.pre_action.copy_from_slice(&self.candidate_pre[c * ad..(c + 1) * ad]);
        Choice {
            index: c,
            logp0: self.logp0[c],
            logpi: logpi(self.q_r[c], self.logp0[c]),
            fallback: false,
            kl,
            lambda,
        }
    }

    /// The residual SAC actor π_θ: the prior's Gaussian shifted by the actor's offsets, within
    /// the KL budget (`kl_budget` ≤ 0: none).
    pub fn choose_sac(
        &mut self,
        actor: &Mlp,
        scratch: &mut Scratch,
        obs: &[f32],
        kl_budget: f32,
        greedy: bool,
        rng: &mut impl Rng,
    ) -> Choice {
        let (ad, fam) = (self.act_dim, self.family);
        let delta = actor.forward1(obs, scratch);
        if delta.iter().any(|v| !v.is_finite()) {
            let mut ch = self.choose_prior(greedy);
            ch.fallback = true;
            return ch;
        }
        let (lambda, kl) = shift_within_budget(&self.gauss, delta, kl_budget, &mut self.policy);
        for j in 0..ad {
            let eps = if greedy { 0.0 } else { normal(rng) };
            self.pre_action[j] = self.policy[j] + self.policy[ad + j].exp() * eps;
            self.action[j] = fam.action(self.pre_action[j]);
        }
        let (mean0, log_std0) = self.gauss.split_at(ad);
        let (mean, log_std) = self.policy.split_at(ad);
        Choice {
            index: 0,
            logp0: fam.log_prob_pre(mean0, log_std0, &self.pre_action),
            logpi: fam.log_prob_pre(mean, log_std, &self.pre_action),
            fallback: false,
            kl,
            lambda,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form KL against a Monte-Carlo estimate E_π[log π − log π0].
    #[test]
    fn gaussian_kl_matches_a_monte_carlo_estimate() {
        use crate::policy::prior::gaussian_log_prob;
        use rand::SeedableRng;
        let p = [0.4f32, -0.3, -0.5, 0.2];
        let p0 = [0.0f32, 0.1, -1.0, 0.0];
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let n = 200_000;
        let mut acc = 0.0f64;
        for _ in 0..n {
            let a = [p[0] + p[2].exp() * normal(&mut rng), p[1] + p[3].exp() * normal(&mut rng)];
            acc +=
                (gaussian_log_prob(&p[..2], &p[2..], &a) - gaussian_log_prob(&p0[..2], &p0[2..], &a)) as f64;
        }
        let mc = acc / n as f64;
        let exact = gaussian_kl(&p, &p0) as f64;
        assert!((mc - exact).abs() < 0.01 * (1.0 + exact), "Monte Carlo {mc} vs closed form {exact}");
    }

    /// Up to MAX_COMMANDS action dimensions act, greedy and sampled (no fixed-size buffer).
    #[test]
    fn many_action_dimensions_act() {
        use rand::SeedableRng;
        let ad = firmware_bridge::MAX_COMMANDS;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let (low, high) = (vec![-1.0; ad], vec![1.0; ad]);
        let mut sa = ContinuousActor::new(PriorKind::SquashedGaussian, 8, 5, &low, &high);
        let residual = Mlp::new(&[5 + ad, 16, 1], crate::nn::Activation::Relu, false, &mut rng);
        let mut scratch = residual.scratch_rows(8);
        sa.raw.iter_mut().enumerate().for_each(|(i, v)| *v = if i < ad { 0.1 } else { -1.0 });
        sa.set_params(true);
        sa.draw(&mut rng);
        for greedy in [true, false] {
            let ch = sa.choose_sampled(&residual, &mut scratch, &[0.0; 5], 1.0, 1.0, 0.0, greedy, &mut rng);
            assert!(ch.logp0.is_finite());
            assert!(sa.action.iter().all(|a| a.is_finite() && a.abs() <= 1.0));
        }
    }

    #[test]
    fn the_candidate_blend_meets_the_budget() {
        let logits = [0.3f32, 2.0, -1.0, 0.9, 4.0, -0.2];
        assert!(candidate_kl(&logits, 0.0).abs() < 1e-6, "λ = 0 is the prior");
        assert!(candidate_kl(&[0.7; 6], 1.0).abs() < 1e-6, "equal weights are the prior");
        let full = candidate_kl(&logits, 1.0);
        // Against the direct formula.
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let direct: f32 = logits.iter().map(|l| (l.exp() / z) * ((l.exp() / z) * 6.0).ln()).sum();
        assert!((full - direct).abs() < 1e-5, "{full} vs {direct}");
        for budget in [0.05f32, 0.3] {
            assert!(budget < full);
            let lambda = largest_within_budget(budget, |l| candidate_kl(&logits, l));
            let kl = candidate_kl(&logits, lambda);
            assert!(kl <= budget && kl > 0.99 * budget, "budget {budget}: KL {kl}");
        }
    }

    #[test]
    fn the_shift_meets_the_budget_and_uses_all_of_it() {
        let p0 = [0.2f32, -1.2];
        let delta = [1.5f32, 0.8];
        let mut out = [0.0f32; 2];
        let (l, full) = shift_within_budget(&p0, &delta, 0.0, &mut out);
        assert_eq!(l, 1.0);
        assert!((out[0] - 1.7).abs() < 1e-6 && (out[1] + 0.4).abs() < 1e-6, "{out:?}");
        for budget in [0.01f32, 0.1, 1.0] {
            assert!(budget < full);
            let (lambda, kl) = shift_within_budget(&p0, &delta, budget, &mut out);
            assert!(lambda > 0.0 && lambda < 1.0);
            assert!(kl <= budget && kl > 0.99 * budget, "budget {budget}: KL {kl}");
            assert!((gaussian_kl(&out, &p0) - kl).abs() < 1e-6);
        }
    }
}
