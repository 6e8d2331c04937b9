//! Continuous priors: a Gaussian over a pre-action `u`, turned into the action variable `a` in
//! [−1, 1] units (the bundle maps [−1, 1] to the command range).
//!
//! - **Squashed** (`squashed_gaussian`, a SAC actor): `a = tanh(u)`, and
//!   `log π(a) = log N(atanh(a_c); mean, σ) − Σ_j ln(1 − a_c,j² + 1e-6)` with `a_c` the action
//!   clamped to ±(1 − ε) (`docs/design.md` §1.6).
//! - **Clipped** (`gaussian`, e.g. PPO; `deterministic` plus a stated std): `a = u`, and the
//!   robot's command is `clamp(a, −1, 1)`. `log π(a) = log N(a; mean, σ)`: the density of the
//!   unclipped sample, as SB3 computes it (the learner sees `a`, so the two stay consistent).
//!
//! Every Gaussian's `log_std` is clamped to [−20, 2] in the units of the action variable.

/// Log-std clamp of Gaussian priors (`docs/design.md` §1.6).
pub const LOG_STD_MIN: f32 = -20.0;
pub const LOG_STD_MAX: f32 = 2.0;
/// Actions are clamped to ±(1 − SQUASH_EPS) before `atanh`.
pub const SQUASH_EPS: f32 = 1e-6;

/// `½·ln(2π)`.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// How a Gaussian sample `u` becomes the action variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `a = tanh(u)`.
    Squashed,
    /// `a = u`; the command is `clamp(a, −1, 1)`.
    Clipped,
}

impl Family {
    /// The action variable for a pre-action `u`.
    #[inline]
    pub fn action(self, u: f32) -> f32 {
        match self {
            Family::Squashed => u.tanh(),
            Family::Clipped => u,
        }
    }

    /// `da/du` at `a = action(u)`.
    #[inline]
    pub fn daction_du(self, a: f32) -> f32 {
        match self {
            Family::Squashed => 1.0 - a * a,
            Family::Clipped => 1.0,
        }
    }

    /// The command, in [−1, 1] units, for the action variable `a`.
    #[inline]
    pub fn command(self, a: f32) -> f32 {
        match self {
            Family::Squashed => a,
            Family::Clipped => a.clamp(-1.0, 1.0),
        }
    }

    /// `log π(a)` for a diagonal Gaussian `(mean, log_std)` over `u`.
    pub fn log_prob(self, mean: &[f32], log_std: &[f32], a: &[f32]) -> f32 {
        match self {
            Family::Squashed => squashed_gaussian_log_prob(mean, log_std, a),
            Family::Clipped => gaussian_log_prob(mean, log_std, a),
        }
    }

    /// `log π(a)` for a draw known by its pre-action `u` (`a = action(u)`): the Gaussian density
    /// at `u` itself, not at `atanh(a)` recomputed from the f32 action, which for the squashed
    /// family rounds to `a = ±1` once `|u| > 8.7` and would be read back as `u ≈ ±7.25`. The
    /// change of variables is `−Σ_j ln(sech²(u_j) + 1e-6)`, equal to [`Self::log_det`] at `a`
    /// wherever `a` is representable.
    pub fn log_prob_pre(self, mean: &[f32], log_std: &[f32], u: &[f32]) -> f32 {
        let lp = gaussian_log_prob(mean, log_std, u) as f64;
        (lp + u.iter().map(|&uj| self.log_det_pre(uj)).sum::<f64>()) as f32
    }

    /// [`Self::log_det`]'s value from the pre-action: `−ln(sech²(u) + 1e-6)` (squashed), 0
    /// (clipped).
    #[inline]
    pub fn log_det_pre(self, u: f32) -> f64 {
        match self {
            Family::Squashed => -(1.0 / (u as f64).cosh().powi(2) + 1e-6).ln(),
            Family::Clipped => 0.0,
        }
    }

    /// The pre-action of an action variable `a` where only `a` is known: `atanh(a)` (clamped
    /// to ±(1 − ε) first) or `a`. Exact only while `|u| < 8.7` for the squashed family: keep
    /// the drawn `u` where there is one.
    #[inline]
    pub fn pre_action(self, a: f32) -> f32 {
        match self {
            Family::Squashed => {
                let eps = SQUASH_EPS as f64;
                (a as f64).clamp(-(1.0 - eps), 1.0 - eps).atanh() as f32
            }
            Family::Clipped => a,
        }
    }

    /// `−Σ_j ln(1 − a_j² + 1e-6)` for the squashed family (0 for clipped): the change of
    /// variables from `u` to `a`, and its derivative in `u_j`, `2a(1−a²)/(1−a²+1e-6)`.
    #[inline]
    pub fn log_det(self, a: f32) -> (f32, f32) {
        match self {
            Family::Squashed => {
                let s = 1.0 - a * a;
                (-(s + 1e-6).ln(), 2.0 * a * s / (s + 1e-6))
            }
            Family::Clipped => (0.0, 0.0),
        }
    }
}

/// `Σ_j log N(a_j; mean_j, exp(clamp(log_std_j)))`, computed in f64.
pub fn gaussian_log_prob(mean: &[f32], log_std: &[f32], a: &[f32]) -> f32 {
    let mut lp = 0.0f64;
    for j in 0..a.len() {
        let ls = (log_std[j] as f64).clamp(LOG_STD_MIN as f64, LOG_STD_MAX as f64);
        let z = (a[j] as f64 - mean[j] as f64) / ls.exp();
        lp += -0.5 * z * z - ls - HALF_LN_2PI;
    }
    lp as f32
}

/// `log π0(a|s)` of a tanh-squashed Gaussian, for an action `a` in [−1, 1] units:
///
/// ```text
/// a_c = clamp(a, −(1−ε), 1−ε)     u = atanh(a_c)     ls = clamp(log_std, −20, 2)
/// log π0 = Σ_j [ −(u_j − mean_j)² / (2·exp(ls_j)²) − ls_j − ½·ln(2π) ] − Σ_j ln(1 − a_c,j² + 1e-6)
/// ```
pub fn squashed_gaussian_log_prob(mean: &[f32], log_std: &[f32], a: &[f32]) -> f32 {
    // In f64: near |a| = 1 the atanh and the squash correction are ill-conditioned in f32.
    let eps = SQUASH_EPS as f64;
    let mut lp = 0.0f64;
    for j in 0..a.len() {
        let ac = (a[j] as f64).clamp(-(1.0 - eps), 1.0 - eps);
        let u = ac.atanh();
        let ls = (log_std[j] as f64).clamp(LOG_STD_MIN as f64, LOG_STD_MAX as f64);
        let z = (u - mean[j] as f64) / ls.exp();
        lp += -0.5 * z * z - ls - HALF_LN_2PI - (1.0 - ac * ac + 1e-6).ln();
    }
    lp as f32
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl rand::Rng) -> f32 {
    let u1 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_ln_2pi() {
        assert!((HALF_LN_2PI - 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
    }

    /// The squashed density is the clipped one at `atanh(a)` plus the change of variables.
    #[test]
    fn squashed_is_gaussian_plus_log_det() {
        let (m, ls) = ([0.3f32], [-0.5f32]);
        for a in [-0.9f32, -0.2, 0.0, 0.5, 0.97] {
            let u = [a.atanh()];
            let want = gaussian_log_prob(&m, &ls, &u) + Family::Squashed.log_det(a).0;
            assert!((squashed_gaussian_log_prob(&m, &ls, &[a]) - want).abs() < 1e-4);
        }
    }

    /// A draw far in the tail (`|u| > 8.7`, where `tanh(u)` rounds to ±1 in f32) keeps its
    /// density: from `u`, not from the action, which reads back as `u ≈ 7.25`.
    #[test]
    fn a_draw_in_the_tail_keeps_its_density() {
        let (m, ls) = ([9.0f32], [0.0f32]);
        for u in [9.5f32, 12.0, -3.0, 0.4] {
            let a = Family::Squashed.action(u);
            let z = u as f64 - 9.0;
            let want = -0.5 * z * z - HALF_LN_2PI - (1.0 / (u as f64).cosh().powi(2) + 1e-6).ln();
            let got = Family::Squashed.log_prob_pre(&m, &ls, &[u]) as f64;
            assert!((got - want).abs() < 1e-4, "u {u}: {got} vs {want}");
            if u.abs() < 5.0 {
                // Where the action is representable, the two forms agree.
                assert!((Family::Squashed.log_prob(&m, &ls, &[a]) as f64 - want).abs() < 2e-3);
            }
        }
        // From the rounded action, u = 9.5 reads as ~7.25: the density is off by nats.
        let from_a = Family::Squashed.log_prob(&m, &ls, &[Family::Squashed.action(9.5)]);
        assert!((from_a - Family::Squashed.log_prob_pre(&m, &ls, &[9.5])).abs() > 1.0);
        assert_eq!(Family::Clipped.log_prob_pre(&m, &ls, &[9.5]), gaussian_log_prob(&m, &ls, &[9.5]));
    }

    /// The log-det derivative against a central difference in `u`.
    #[test]
    fn log_det_derivative() {
        for u in [-2.0f64, -0.4, 0.0, 0.7, 1.9] {
            let f = |u: f64| Family::Squashed.log_det(u.tanh() as f32).0 as f64;
            let h = 1e-3;
            let fd = (f(u + h) - f(u - h)) / (2.0 * h);
            let an = Family::Squashed.log_det(u.tanh() as f32).1 as f64;
            assert!((fd - an).abs() < 1e-3 * (1.0 + fd.abs()), "u {u}: {fd} vs {an}");
        }
    }
}
