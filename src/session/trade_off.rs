//! ω' as a Lagrange multiplier: how far from the prior the customized policy may go, stated in
//! nats per step, with the task's failures as a second constraint (`docs/design.md` §1.11).
//!
//! RQL's `π̂ ∝ π0^(ω'/α̂)·exp(Q_R/α̂)` at ω' = α̂ = β solves
//!
//! ```text
//! max_π  E[ Σ γ^t·r_R ]   subject to   E_s[ KL(π(·|s) ‖ π0(·|s)) ] ≤ ε
//! ```
//!
//! with β the constraint's multiplier. A bare ω' means little for a prior whose log-probabilities
//! carry no reward units (a PPO actor, a behaviour clone, a DQN's hard Q-values): its gap between
//! best and second action can be 5 nats or 30. With `[residual] kl_per_step = ε`, resq finds the
//! multiplier `m` on the manifest's ω' and α̂ by dual descent on the KL the robot measures as it
//! acts (each training decision's `KL(π ‖ π0)` at the state it was taken in):
//!
//! ```text
//! K̄ ← K̄ + 0.01·(KL − K̄)                          every training tick after the warm-up
//! log m ← log m + η·clip(K̄/ε − 1, −1, 1)          η = `[residual] kl_rate` (ETA)
//! log m ← log m + ln 2                             at every failed training episode
//! ω' = m·ω'_manifest,   α̂ = m·α̂_manifest,          m ∈ [M_MIN, M_MAX]
//! ```
//!
//! `m` starts at 1 (a resumed run: the checkpoint's), so the robot starts where the manifest
//! puts it (on the prior at ω' = α̂) and moves away at most a factor e every `1/η` ticks: the
//! residual's value keeps up with the policy it evaluates. A failed episode (by `[episode]
//! success`) halves how far the policy may move, the task's constraint acting through the same
//! multiplier; the failure guard (§2.7) still stops a run that fails more than the prior.
//! With ε = 0, `m` stays 1: RQL as written.

use serde::Serialize;

use crate::algo::core::ResidualLearner;
use crate::bundle::Bundle;

/// The KL average's weight per tick (about a hundred ticks).
const KL_EMA: f32 = 0.01;
/// Change of `log m` per tick at most, unless `[residual] kl_rate` says: a factor e in a
/// thousand ticks.
pub const ETA: f32 = 1e-3;
pub const M_MIN: f32 = 1e-3;
pub const M_MAX: f32 = 1e3;

/// The multiplier on the manifest's ω' and α̂, and how it moves.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeOff {
    /// ε, nats per step (0: fixed).
    pub target: f32,
    /// η, the change of `log m` per tick at most.
    pub eta: f32,
    kl_avg: f32,
    log_m: f32,
}

impl TradeOff {
    /// `target`: ε in nats per step (0: `m` stays at `scale`); `scale`: the starting `m`; `eta`:
    /// η.
    pub fn new(target: f32, scale: f32, eta: f32) -> Self {
        TradeOff { target, eta, kl_avg: 0.0, log_m: scale.ln() }
    }

    /// The multiplier `m`.
    pub fn scale(&self) -> f32 {
        self.log_m.exp()
    }

    /// `K̄`, the recent KL per step.
    pub fn kl_avg(&self) -> f32 {
        self.kl_avg
    }

    pub fn active(&self) -> bool {
        self.target > 0.0
    }

    /// One training tick's `KL(π ‖ π0)` at the state acted at; whether `m` changed.
    pub fn tick(&mut self, kl: f32) -> bool {
        if !self.active() || !kl.is_finite() {
            return false;
        }
        self.kl_avg += KL_EMA * (kl - self.kl_avg);
        self.set(self.log_m + self.eta * (self.kl_avg / self.target - 1.0).clamp(-1.0, 1.0))
    }

    /// A training episode failed by `[episode] success`: `m` doubles (the policy moves back
    /// toward the prior). Whether `m` changed.
    pub fn failed(&mut self) -> bool {
        self.active() && self.set(self.log_m + std::f32::consts::LN_2)
    }

    fn set(&mut self, log_m: f32) -> bool {
        let before = self.log_m;
        self.log_m = log_m.clamp(M_MIN.ln(), M_MAX.ln());
        self.log_m != before
    }
}

/// The KL target a run uses, and why: the bundle's `[residual] kl_per_step`, 0 when absent (the
/// confidence reading recommends it for a confident prior). RPG keeps ω' and α̂ as written (its
/// KL is bounded by `[exploration] kl_budget_*`).
pub fn target(bundle: &Bundle) -> (f32, &'static str) {
    match (bundle.method, bundle.manifest.residual.kl_per_step) {
        (crate::bundle::Method::Rpg, _) => (0.0, "method rpg"),
        (_, Some(k)) if k > 0.0 => (k, "residual.kl_per_step"),
        (_, Some(_)) => (0.0, "residual.kl_per_step = 0"),
        (_, None) => (0.0, "residual.kl_per_step absent"),
    }
}

/// A resumed run acts and learns at the checkpoint's multiplier (`None`: 1).
pub fn resume(bundle: &mut Bundle, learner: &mut dyn ResidualLearner, scale: Option<f32>) {
    bundle.weight_scale = scale.unwrap_or(1.0);
    let s = &mut learner.core_mut().settings;
    (s.omega, s.alpha) = bundle.weights();
}

/// The trade-off as the report gives it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// ε, nats per step (0: ω' and α̂ as written).
    pub kl_per_step: f32,
    /// η, `[residual] kl_rate`.
    pub kl_rate: f32,
    /// Where ε came from.
    pub why: &'static str,
    /// The final multiplier on the manifest's ω' and α̂, and the values it gives.
    pub scale: f32,
    pub omega: f32,
    pub alpha: f32,
    /// The last `K̄`.
    pub kl_avg: f32,
}

impl Summary {
    /// `bundle` acts at `t`'s multiplier (the loop keeps [`Bundle::weight_scale`] at it).
    pub fn of(t: &TradeOff, why: &'static str, bundle: &Bundle) -> Self {
        let (omega, alpha) = bundle.weights();
        Summary {
            kl_per_step: t.target,
            kl_rate: t.eta,
            why,
            scale: t.scale(),
            omega,
            alpha,
            kl_avg: t.kl_avg(),
        }
    }
}

/// What the run will do with ω' and α̂, for the log.
pub fn reading(t: &TradeOff, why: &str, bundle: &Bundle) -> String {
    let (w, a) = bundle.weights();
    if t.active() {
        format!(
            "trade-off ({why}): omega' and alpha start at {w:.4} and {a:.4} and scale together until the customized policy moves {} nats per step from the prior (docs/priors.md); a failed training episode doubles them",
            t.target
        )
    } else {
        format!("trade-off ({why}): omega' = {w:.4} and alpha = {a:.4}, fixed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_its_target_the_multiplier_falls_a_factor_e_in_a_thousand_ticks() {
        let mut t = TradeOff::new(0.5, 1.0, ETA);
        for _ in 0..1000 {
            assert!(t.tick(0.0));
        }
        assert!((t.scale() - (-1.0f32).exp()).abs() < 1e-3, "{}", t.scale());
        // At `[residual] kl_rate` = 0.0003, a factor e in 3 333 ticks.
        let mut t = TradeOff::new(0.5, 1.0, 3e-4);
        for _ in 0..3333 {
            t.tick(0.0);
        }
        assert!((t.scale() - (-1.0f32).exp()).abs() < 1e-3, "{}", t.scale());
    }

    #[test]
    fn above_its_target_the_multiplier_rises_and_a_failure_doubles_it() {
        let mut t = TradeOff::new(0.1, 0.01, ETA);
        for _ in 0..2000 {
            t.tick(1.0);
        }
        // K̄ passes 0.2 (twice the target) within 25 ticks; from there on log m rises by η.
        assert!(t.scale() > 0.01 * (1.9f32).exp() && t.scale() < 0.01 * 2f32.exp(), "{}", t.scale());
        let before = t.scale();
        assert!(t.failed());
        assert!((t.scale() / before - 2.0).abs() < 1e-4);
        // At its target it holds.
        let mut t = TradeOff::new(0.3, 0.5, ETA);
        for _ in 0..5000 {
            t.tick(0.3);
        }
        assert!((t.scale() - 0.5).abs() < 0.05, "{}", t.scale());
    }

    #[test]
    fn without_a_target_the_multiplier_stays_and_it_is_bounded() {
        let mut t = TradeOff::new(0.0, 1.0, ETA);
        assert!(!t.tick(5.0) && !t.failed());
        assert_eq!(t.scale(), 1.0);
        let mut t = TradeOff::new(1.0, M_MIN, ETA);
        assert!(!t.tick(0.0));
        assert!((t.scale() - M_MIN).abs() < 1e-7);
        assert!(!t.tick(f32::NAN));
    }
}
