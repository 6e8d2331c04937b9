//! The discrete acting math: the customized policy from `Q_R` and the prior, the KL-budget
//! blend toward the prior, and drawing an action. Pure functions on slices, allocation-free.
//!
//! ```text
//! log π̂(·|s) = log_softmax((Q_R(s,·) + ω'·log π0(·|s)) / α̂)          (docs/design.md §1)
//! log π_λ    ∝ (1−λ)·log π0 + λ·log π̂,  the largest λ with KL(π_λ ‖ π0) ≤ budget
//! ```

use num_traits::Float;

/// `Q_R + ω'·log π0` of one action; −∞ for a masked action (`log π0 = −∞`) whatever ω'.
#[inline]
fn tilted<F: Float>(q: F, logp0: F, omega: F) -> F {
    if logp0 == F::neg_infinity() {
        logp0
    } else {
        q + omega * logp0
    }
}

/// `α̂·logsumexp((Q_R + ω'·log π0)/α̂)`: the residual soft value of a state (masked actions
/// excluded).
pub fn soft_value<F: Float>(q_r: &[F], logp0: &[F], omega: F, alpha: F) -> F {
    let mut m = F::neg_infinity();
    for (q, l) in q_r.iter().zip(logp0) {
        m = m.max(tilted(*q, *l, omega) / alpha);
    }
    if !m.is_finite() {
        return m * alpha;
    }
    let mut s = F::zero();
    for (q, l) in q_r.iter().zip(logp0) {
        s = s + (tilted(*q, *l, omega) / alpha - m).exp();
    }
    alpha * (m + s.ln())
}

/// `log π̂(·|s) = log_softmax((Q_R + ω'·log π0)/α̂)`, into `out` (−∞ for masked actions).
pub fn policy_log_probs<F: Float>(q_r: &[F], logp0: &[F], omega: F, alpha: F, out: &mut [F]) {
    let v = soft_value(q_r, logp0, omega, alpha);
    for ((o, q), l) in out.iter_mut().zip(q_r).zip(logp0) {
        *o = (tilted(*q, *l, omega) - v) / alpha;
    }
}

/// The linear KL-budget schedule: `start` at step 0 to `end` at step `ramp`.
pub fn kl_budget(start: f32, end: f32, ramp: u64, step: u64) -> f32 {
    if ramp == 0 {
        return end;
    }
    let f = (step as f32 / ramp as f32).min(1.0);
    start + f * (end - start)
}

/// Writes into `out` the policy `log π_λ ∝ (1−λ)·log π0 + λ·log π̂` with the largest λ ∈ [0, 1]
/// such that `KL(π_λ ‖ π0) ≤ budget` (budget ≤ 0: no limit, λ = 1); returns λ. No allocation.
pub fn blend_within_budget(logp0: &[f32], log_pi_hat: &[f32], budget: f32, out: &mut [f32]) -> f32 {
    if budget <= 0.0 || kl(log_pi_hat, logp0) <= budget {
        out.copy_from_slice(log_pi_hat);
        return 1.0;
    }
    let lambda = largest_within_budget(budget, |l| {
        geometric_blend(logp0, log_pi_hat, l, out);
        kl(out, logp0)
    });
    geometric_blend(logp0, log_pi_hat, lambda, out);
    lambda
}

/// The largest `λ ∈ [0, 1]` with `kl_at(λ) ≤ budget`, for a `kl_at` that grows with λ and
/// exceeds the budget at 1: 20 bisection steps (λ to within 1e-6).
pub fn largest_within_budget(budget: f32, mut kl_at: impl FnMut(f32) -> f32) -> f32 {
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    for _ in 0..20 {
        let mid = 0.5 * (lo + hi);
        if kl_at(mid) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `out = log_softmax((1−λ)·a + λ·b)` for log-probability vectors `a`, `b`.
fn geometric_blend(a: &[f32], b: &[f32], lambda: f32, out: &mut [f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        // A masked action (−∞ in both) stays masked at λ = 0 and 1 too.
        *o = if *x == f32::NEG_INFINITY || *y == f32::NEG_INFINITY {
            f32::NEG_INFINITY
        } else {
            (1.0 - lambda) * x + lambda * y
        };
    }
    crate::policy::prior::log_softmax_in_place(out);
}

/// `KL(p ‖ q)` from log-probabilities; actions with `p = 0` (masked) add nothing.
pub fn kl(log_p: &[f32], log_q: &[f32]) -> f32 {
    log_p
        .iter()
        .zip(log_q)
        .filter(|(p, _)| **p > f32::NEG_INFINITY)
        .map(|(p, q)| p.exp() * (p - q))
        .sum::<f32>()
        .max(0.0)
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Inverse-CDF draw from log-probabilities with a uniform `u ∈ [0, 1)`. Never an action of
/// probability 0 (a masked one), even when rounding leaves the sum below `u`.
pub fn sample(log_p: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, l) in log_p.iter().enumerate() {
        if *l == f32::NEG_INFINITY {
            continue;
        }
        acc += l.exp();
        last = i;
        if u < acc {
            return i;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_meets_the_budget_and_uses_all_of_it() {
        let logp0 = [0.7f32.ln(), 0.2f32.ln(), 0.1f32.ln()];
        let hat = [0.05f32.ln(), 0.15f32.ln(), 0.8f32.ln()];
        let full = kl(&hat, &logp0);
        let mut out = [0.0; 3];
        for budget in [0.01, 0.1, 0.5] {
            assert!(budget < full);
            let lambda = blend_within_budget(&logp0, &hat, budget, &mut out);
            let k = kl(&out, &logp0);
            assert!(lambda > 0.0 && lambda < 1.0);
            assert!(k <= budget && k > 0.99 * budget, "budget {budget}: KL {k}");
            assert!((out.iter().map(|l| l.exp()).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // A budget larger than the full KL, or none, leaves π̂ as it is.
        assert_eq!(blend_within_budget(&logp0, &hat, full * 2.0, &mut out), 1.0);
        assert_eq!(out, hat);
        assert_eq!(blend_within_budget(&logp0, &hat, 0.0, &mut out), 1.0);
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        let lp = [0.25f32.ln(), 0.75f32.ln()];
        assert_eq!(sample(&lp, 0.2), 0);
        assert_eq!(sample(&lp, 0.3), 1);
        assert_eq!(argmax(&lp), 1);
    }
}
