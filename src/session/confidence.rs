//! How confident the prior is on the states it visits, and what that means for customizing it
//! (`docs/priors.md`).
//!
//! RQL's policy is `π̂ ∝ π0^(ω'/α̂)·exp(Q_R/α̂)`: it leaves the prior's choice at a state only
//! where the residual's advantage `Q_R(s,a) − Q_R(s,best)` exceeds `ω'·(log π0(best|s) −
//! log π0(a|s))`. So the prior's log-probability gap between its best and second action,
//! measured on the states it visits, says how much add-on return a change of choice must be
//! worth. For a Gaussian prior the measure is its standard deviation as a share of the command's
//! half-range: the sampled method chooses among draws from π0, so it reaches about 2σ from the
//! prior's mean in a step, and residual SAC's KL term grows as `1/σ²` with the shift.

use serde::Serialize;

use crate::bundle::Bundle;
use crate::control::Controller;

/// Median gaps above this many nats make a discrete prior confident (the best action at least
/// 95 % likely against a second one at the median state). On CartPole the project's soft-Q and
/// behaviour-cloned priors measure 1.9–2.1 and move; the SB3 PPO actor measures 4.5–4.6 and does
/// not (`docs/priors.md`).
pub const CONFIDENT_GAP: f32 = 3.0;
/// Median standard deviations below this share of the command's half-range make a Gaussian
/// prior confident.
pub const CONFIDENT_STD: f32 = 0.05;

/// The prior's confidence on the states it visited.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Confidence {
    /// `gap_nats` (discrete: `log π0(best) − log π0(second)`) or `std_share` (Gaussian: σ over
    /// the command's half-range, averaged over the command's dimensions).
    pub measure: &'static str,
    pub p10: f32,
    pub median: f32,
    pub p90: f32,
    /// States measured.
    pub states: usize,
    pub confident: bool,
}

/// The confidence sample at the state the controller just decided at (`None` where the prior
/// failed or has a single live action).
pub fn sample(ctl: &Controller) -> Option<f32> {
    match &ctl.continuous {
        Some(sa) => {
            let ad = sa.act_dim;
            let s = sa.gauss[ad..2 * ad].iter().map(|ls| ls.exp()).sum::<f32>() / ad as f32;
            s.is_finite().then_some(s)
        }
        None => {
            let (mut best, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
            for &v in ctl.logp0.iter().filter(|v| v.is_finite()) {
                if v > best {
                    second = best;
                    best = v;
                } else if v > second {
                    second = v;
                }
            }
            let gap = best - second;
            gap.is_finite().then_some(gap)
        }
    }
}

/// The 10th, 50th and 90th percentiles of the samples (`None` without any).
pub fn summarize(samples: &[f32], continuous: bool) -> Option<Confidence> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f32::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    let median = at(0.5);
    Some(Confidence {
        measure: if continuous { "std_share" } else { "gap_nats" },
        p10: at(0.1),
        median,
        p90: at(0.9),
        states: s.len(),
        confident: if continuous { median < CONFIDENT_STD } else { median > CONFIDENT_GAP },
    })
}

/// What the confidence means for this bundle's customization, in a sentence or three.
pub fn reading(c: &Confidence, b: &Bundle) -> String {
    let r = &b.manifest.residual;
    let (omega, alpha) = (r.omega, r.alpha);
    let head = if c.measure == "gap_nats" {
        format!(
            "prior confidence: its best action leads the next by a median {:.2} nats (10-90 %: {:.2}-{:.2}) over {} states it visited; at omega' = {omega} the residual changes its choice at a median state only where that is worth {:.3} of add-on return",
            c.median,
            c.p10,
            c.p90,
            c.states,
            omega * c.median
        )
    } else {
        format!(
            "prior confidence: its Gaussian's standard deviation is a median {:.3} of the command's half-range (10-90 %: {:.3}-{:.3}) over {} states it visited",
            c.median, c.p10, c.p90, c.states
        )
    };
    let discrete = c.measure == "gap_nats";
    // Where to start `kl_per_step`, as measured (docs/results/priors.md): a discrete prior's KL
    // is one choice's, a Gaussian's a sum over its action's dimensions.
    let start = if discrete { "start at 0.1" } else { "start at 0.5-2" };
    let tail = if c.confident {
        format!(
            "; a confident prior (a PPO actor, a behaviour clone or a DQN typically is): RQL at omega' = {omega}, alpha = {alpha} will move it little, and lowering both together trades its task for the add-on{}; see docs/priors.md",
            if r.kl_per_step.is_some_and(|k| k > 0.0) {
                String::new()
            } else {
                format!("; `residual.kl_per_step` lets resq lower them while the robot moves at most that many nats per step from the prior ({start} and raise it while the learning curve keeps the task)")
            }
        )
    } else if discrete {
        format!(
            "; not a confident prior: at omega' = {omega}, alpha = {alpha} how far it moves depends on how much the add-on is worth against it (a plain DQN read at its calibrated temperature can still barely move: `residual.kl_per_step = 0.5` moves it); see docs/priors.md"
        )
    } else {
        format!(
            "; not a confident prior: at omega' = {omega}, alpha = {alpha} how far it moves depends on how much the add-on is worth against it (Stable-Baselines3's SAC and PPO Pendulum actors barely moved at a fixed omega': `residual.kl_per_step = 2` moved them); see docs/priors.md"
        )
    };
    head + &tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_the_confident_threshold() {
        let gaps: Vec<f32> = (0..=100).map(|i| i as f32 / 10.0).collect();
        let c = summarize(&gaps, false).unwrap();
        assert_eq!((c.p10, c.median, c.p90, c.states), (1.0, 5.0, 9.0, 101));
        assert!(c.confident);
        let soft = summarize(&[0.1, 0.5, 2.9], false).unwrap();
        assert!(!soft.confident && soft.median == 0.5);
        let wide = summarize(&[0.3, 0.2], true).unwrap();
        assert!(!wide.confident && wide.measure == "std_share");
        assert!(summarize(&[0.01, 0.02, 0.03], true).unwrap().confident);
        assert_eq!(summarize(&[], true), None);
    }
}
