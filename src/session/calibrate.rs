//! `[prior] temperature = "auto"`: the temperature of a prior that has none, such as a plain
//! (hard) DQN whose outputs are the greedy policy's Q-values, calibrated on the prior's own
//! behaviour before learning starts.
//!
//! Sampling `π_τ = softmax(Q/τ)` instead of acting greedily gives up, at a state `s`, the
//! expected one-step Q-value
//!
//! ```text
//! R_τ(s) = Σ_a π_τ(a|s)·(max_b Q(s,b) − Q(s,a))          (the prior's own return units)
//! ```
//!
//! and acting uniformly at random gives up `U(s) = max_b Q(s,b) − mean_a Q(s,a)`. resq takes the
//! largest τ whose regret over the states the prior visits, acting greedily as deployed, is at
//! most [`REGRET_FRACTION`] of random acting's: `mean_s R_τ(s) = ε·mean_s U(s)`. The criterion
//! does not depend on the Q-values' scale or offset, costs nothing where the actions are worth
//! the same, and needs no rollout of a sampled policy (sampling at a wrong temperature is itself
//! a way to fail). Masked actions (−∞) take no part.

use anyhow::Result;

use crate::control::supervisor::Supervisor;
use crate::control::{ActMode, Controller, PolicyChoice, Stepper};
use crate::policy::prior::PriorKind;
use crate::robot::Env;

/// ε: the share of random acting's Q-regret that sampling may give up.
pub const REGRET_FRACTION: f64 = 0.05;

/// `mean_s R_τ(s)` over rows of `n` Q-values (non-finite entries are masked actions).
pub fn regret(q: &[f32], n: usize, tau: f64) -> f64 {
    let rows = q.chunks_exact(n);
    let count = rows.len().max(1) as f64;
    rows.map(|row| {
        let m = row.iter().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, |a, v| a.max(*v as f64));
        let (mut z, mut r) = (0.0f64, 0.0f64);
        for v in row.iter().filter(|v| v.is_finite()) {
            let gap = m - *v as f64;
            let w = (-gap / tau).exp();
            z += w;
            r += w * gap;
        }
        r / z
    })
    .sum::<f64>()
        / count
}

/// `mean_s U(s)`: the Q-regret of acting uniformly at random.
pub fn random_regret(q: &[f32], n: usize) -> f64 {
    let rows = q.chunks_exact(n);
    let count = rows.len().max(1) as f64;
    rows.map(|row| {
        let live: Vec<f64> = row.iter().filter(|v| v.is_finite()).map(|v| *v as f64).collect();
        let m = live.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m - live.iter().sum::<f64>() / live.len().max(1) as f64
    })
    .sum::<f64>()
        / count
}

/// The τ with `regret(τ) = ε·random_regret`, by bisection on `log τ` (the regret grows with τ);
/// `None` when every visited state's actions are worth the same (any τ is as good).
pub fn temperature(q: &[f32], n: usize, eps: f64) -> Option<f32> {
    let u = random_regret(q, n);
    if !(u > 0.0) {
        return None;
    }
    let target = eps * u;
    let (mut lo, mut hi) = ((u * 1e-6).ln(), (u * 1e6).ln());
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if regret(q, n, mid.exp()) > target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some((0.5 * (lo + hi)).exp() as f32)
}

/// What a calibration found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub temperature: f32,
    /// Robot steps the prior acted (greedily) to calibrate on.
    pub steps: u64,
}

/// Runs the prior greedily, as deployed, for `steps` steps (through the supervisor; episodes end
/// and reset as in training), reads its Q-values at each state, and returns the temperature for
/// the prior (the caller sets it in the bundle, once). The prior's temperature must still be 1,
/// so that `log π0` differences are Q differences.
pub fn run(
    ctl: &mut Controller,
    env: &mut dyn Env,
    supervisor: &mut Supervisor,
    steps: u64,
    seed: u64,
) -> Result<Calibration> {
    anyhow::ensure!(
        ctl.bundle.prior.kind == PriorKind::DiscreteQ { temperature: 1.0 },
        "temperature calibration needs a discrete_q prior read at temperature 1"
    );
    let n = ctl.logp0.len();
    let mut q = Vec::with_capacity(steps as usize * n);
    let mut rng = crate::streams::calibration_actions(seed);
    let mut stepper = Stepper::new(&ctl.bundle);
    env.reseed(crate::streams::calibration_episodes(seed));
    stepper.new_episode(ctl, env, supervisor)?;
    for _ in 0..steps {
        let (d, out) = stepper.step(ctl, env, supervisor, PolicyChoice::Prior, ActMode::Greedy, &mut rng)?;
        if !d.prior_fault {
            // log π0 of the state the decision was made at.
            q.extend_from_slice(&ctl.logp0);
        }
        if out.end.done() {
            stepper.new_episode(ctl, env, supervisor)?;
        }
    }
    let t = temperature(&q, n, REGRET_FRACTION).unwrap_or(1.0);
    Ok(Calibration { temperature: t, steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two actions with the same gap g everywhere: `R_τ = g·σ(−g/τ)`, `U = g/2`, so the
    /// calibrated τ is `g / ln((2 − ε)/ε)` exactly (ε = 0.05: g / ln 39), whatever the offset.
    #[test]
    fn two_actions_with_a_constant_gap_match_the_closed_form() {
        let g = 3.0f32;
        let q: Vec<f32> = (0..50).flat_map(|i| [100.0 + i as f32, 100.0 + i as f32 - g]).collect();
        let t = temperature(&q, 2, 0.05).unwrap();
        let exact = g as f64 / 39f64.ln();
        assert!((t as f64 - exact).abs() < 1e-5 * exact, "{t} vs {exact}");
        // Scaling the Q-values scales τ; ties cost nothing and are ignored by the criterion.
        let q10: Vec<f32> = q.iter().map(|v| 10.0 * v).collect();
        assert!((temperature(&q10, 2, 0.05).unwrap() / t - 10.0).abs() < 1e-4);
        assert_eq!(temperature(&[1.0, 1.0, 5.0, 5.0], 2, 0.05), None);
        // A masked action takes no part.
        let masked: Vec<f32> = (0..50).flat_map(|_| [0.0, -g, f32::NEG_INFINITY]).collect();
        assert!((temperature(&masked, 3, 0.05).unwrap() - t).abs() < 1e-5);
    }

    /// The regret is monotone in τ, from 0 (greedy) to the random policy's.
    #[test]
    fn regret_grows_from_greedy_to_random() {
        let q = [0.0f32, -1.0, -4.0, 2.0, 2.0, -3.0];
        let u = random_regret(&q, 3);
        let mut last = 0.0;
        for k in -6..8 {
            let r = regret(&q, 3, 10f64.powi(k));
            assert!(r >= last - 1e-12 && r <= u + 1e-12, "τ = 1e{k}: {r}");
            last = r;
        }
        assert!(regret(&q, 3, 1e-6) < 1e-9 && (regret(&q, 3, 1e9) - u).abs() < 1e-6);
    }
}
