//! The residual soft Bellman fixed point on small random MDPs (`docs/design.md` §1.2).
//!
//! The prior π0 is made max-ent optimal (temperature α0) for a known reward `r`. Iterating
//! `Q_R ← r_R + γ·E_s'[soft_value(Q_R(s',·), log π0(·|s'), ω', α̂)]` with resq's own
//! `soft_value`/`policy_log_probs` must give the max-ent optimum (temperature α̂) of the full
//! reward `ω·r + r_R`, with `ω' = ω·α0` — without ever seeing `r`. Checked three ways:
//! policies equal to 1e-6, `Q_R + ω·Q* = Q̂*` to 1e-6, and the exact max-ent value of π̂
//! (a linear solve with nalgebra) equal to the optimal soft value.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use resq::policy::discrete::{policy_log_probs, soft_value};

const S: usize = 7;
const A: usize = 3;
const GAMMA: f64 = 0.9;

struct Mdp {
    p: Vec<[Vec<f64>; A]>,
    r: Vec<[f64; A]>,
    r_addon: Vec<[f64; A]>,
}

fn random_mdp(seed: u64) -> Mdp {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let dist = |rng: &mut rand_pcg::Pcg64Mcg| {
        let v: Vec<f64> = (0..S).map(|_| rng.random::<f64>().powi(3)).collect();
        let z: f64 = v.iter().sum();
        v.into_iter().map(|x| x / z).collect::<Vec<_>>()
    };
    let p = (0..S).map(|_| [dist(&mut rng), dist(&mut rng), dist(&mut rng)]).collect();
    let r = (0..S).map(|_| [0; A].map(|_| rng.random_range(-1.0..1.0))).collect();
    let r_addon = (0..S).map(|_| [0; A].map(|_| rng.random_range(-1.0..1.0))).collect();
    Mdp { p, r, r_addon }
}

/// Soft value iteration at temperature `alpha` on reward `reward(s, a)`; returns Q*.
fn soft_q(m: &Mdp, alpha: f64, reward: impl Fn(usize, usize) -> f64) -> Vec<[f64; A]> {
    let zeros = [0.0; A];
    let mut q = vec![zeros; S];
    for _ in 0..2000 {
        let v: Vec<f64> = q.iter().map(|qs| soft_value(qs, &zeros, 0.0, alpha)).collect();
        let mut next = vec![zeros; S];
        for s in 0..S {
            for a in 0..A {
                next[s][a] = reward(s, a) + GAMMA * (0..S).map(|t| m.p[s][a][t] * v[t]).sum::<f64>();
            }
        }
        q = next;
    }
    q
}

fn log_softmax(q: &[f64; A], t: f64) -> [f64; A] {
    let mut out = [0.0; A];
    policy_log_probs(q, &[0.0; A], 0.0, t, &mut out);
    out
}

/// Residual soft Q iteration with resq's target math.
fn residual_q(m: &Mdp, logp0: &[[f64; A]], omega_p: f64, alpha_hat: f64) -> Vec<[f64; A]> {
    let mut q = vec![[0.0; A]; S];
    for _ in 0..2000 {
        let v: Vec<f64> = (0..S).map(|s| soft_value(&q[s], &logp0[s], omega_p, alpha_hat)).collect();
        let mut next = vec![[0.0; A]; S];
        for s in 0..S {
            for a in 0..A {
                next[s][a] = m.r_addon[s][a] + GAMMA * (0..S).map(|t| m.p[s][a][t] * v[t]).sum::<f64>();
            }
        }
        q = next;
    }
    q
}

/// Exact max-ent value of policy `logpi` on reward `reward`: (I − γP_π)V = Σ_a π(r − α log π).
fn maxent_value(
    m: &Mdp,
    logpi: &[[f64; A]],
    alpha: f64,
    reward: impl Fn(usize, usize) -> f64,
) -> DVector<f64> {
    let mut mat = DMatrix::<f64>::identity(S, S);
    let mut rhs = DVector::<f64>::zeros(S);
    for s in 0..S {
        for a in 0..A {
            let pi = logpi[s][a].exp();
            rhs[s] += pi * (reward(s, a) - alpha * logpi[s][a]);
            for t in 0..S {
                mat[(s, t)] -= GAMMA * pi * m.p[s][a][t];
            }
        }
    }
    mat.lu().solve(&rhs).expect("I − γP_π is invertible for γ < 1")
}

/// Largest |difference| between the residual solution and the full-reward optimum.
fn worst_errors(seed: u64, omega: f64, alpha0: f64, alpha_hat: f64, omega_p: f64) -> (f64, f64, f64) {
    let m = random_mdp(seed);
    let q_prior = soft_q(&m, alpha0, |s, a| m.r[s][a]);
    let logp0: Vec<[f64; A]> = q_prior.iter().map(|q| log_softmax(q, alpha0)).collect();
    let q_full = soft_q(&m, alpha_hat, |s, a| omega * m.r[s][a] + m.r_addon[s][a]);
    let q_res = residual_q(&m, &logp0, omega_p, alpha_hat);
    let mut logpi_hat = vec![[0.0; A]; S];
    let (mut pol, mut q) = (0.0f64, 0.0f64);
    for s in 0..S {
        policy_log_probs(&q_res[s], &logp0[s], omega_p, alpha_hat, &mut logpi_hat[s]);
        let logpi_full = log_softmax(&q_full[s], alpha_hat);
        for a in 0..A {
            pol = pol.max((logpi_hat[s][a] - logpi_full[a]).abs());
            q = q.max((q_res[s][a] + omega * q_prior[s][a] - q_full[s][a]).abs());
        }
    }
    let v = maxent_value(&m, &logpi_hat, alpha_hat, |s, a| omega * m.r[s][a] + m.r_addon[s][a]);
    let val =
        (0..S).map(|s| (v[s] - soft_value(&q_full[s], &[0.0; A], 0.0, alpha_hat)).abs()).fold(0.0, f64::max);
    (pol, q, val)
}

#[test]
fn residual_fixed_point_is_the_full_reward_maxent_optimum() {
    // (ω, α0 = the prior's temperature, α̂)
    for (i, &(omega, alpha0, alpha_hat)) in
        [(1.0, 1.0, 1.0), (0.5, 1.0, 2.0), (2.0, 0.5, 0.3), (1.0, 0.2, 1.0), (3.0, 2.0, 0.5)]
            .iter()
            .enumerate()
    {
        let (pol, q, val) = worst_errors(100 + i as u64, omega, alpha0, alpha_hat, omega * alpha0);
        assert!(pol < 1e-6, "ω={omega} α0={alpha0} α̂={alpha_hat}: policy error {pol:e}");
        assert!(q < 1e-6, "ω={omega} α0={alpha0} α̂={alpha_hat}: Q_R + ωQ* − Q̂* = {q:e}");
        assert!(
            val < 1e-6,
            "ω={omega} α0={alpha0} α̂={alpha_hat}: value of π̂ differs from the optimum by {val:e}"
        );
    }
}

#[test]
fn wrong_prior_weight_misses_the_optimum() {
    // ω' must be ω·α0: using ω alone (with α0 ≠ 1) gives another policy. This is what makes the
    // test above able to fail.
    let (pol, _, _) = worst_errors(7, 1.0, 0.5, 1.0, 1.0);
    assert!(pol > 1e-3, "a wrong ω' should change the policy, error only {pol:e}");
}

/// Hard (max) Q-value iteration on `reward`: the Q-function a plain DQN learns.
fn hard_q(m: &Mdp, reward: impl Fn(usize, usize) -> f64) -> Vec<[f64; A]> {
    let mut q = vec![[0.0; A]; S];
    for _ in 0..2000 {
        let v: Vec<f64> = q.iter().map(|qs| qs.iter().copied().fold(f64::NEG_INFINITY, f64::max)).collect();
        let mut next = vec![[0.0; A]; S];
        for s in 0..S {
            for a in 0..A {
                next[s][a] = reward(s, a) + GAMMA * (0..S).map(|t| m.p[s][a][t] * v[t]).sum::<f64>();
            }
        }
        q = next;
    }
    q
}

/// A hard-Q prior read at a temperature τ (`[prior] kind = "discrete_q"`, `temperature = "auto"`
/// for a plain DQN): `π0 = softmax(Q/τ)` is not the max-ent optimum of the prior's reward at τ
/// (it is the optimum of a reward shifted by the soft and hard values' difference), so the
/// residual fixed point misses the full-reward optimum by a small, measured amount that grows
/// with τ — unlike a soft-Q prior (exact above). Over seeds 200–204, ω = 1, α̂ = ω' = τ, the
/// largest error of an action's probability measured 0.057 at τ = 0.2 and 0.079 at τ = 0.5.
#[test]
fn a_hard_q_prior_misses_the_optimum_by_a_small_measured_amount() {
    let mut worst = [0.0f64; 2];
    for seed in 200..205 {
        for (k, &tau) in [0.2f64, 0.5].iter().enumerate() {
            let m = random_mdp(seed);
            let q_hard = hard_q(&m, |s, a| m.r[s][a]);
            let logp0: Vec<[f64; A]> = q_hard.iter().map(|q| log_softmax(q, tau)).collect();
            let q_full = soft_q(&m, tau, |s, a| m.r[s][a] + m.r_addon[s][a]);
            let q_res = residual_q(&m, &logp0, tau, tau);
            let mut logpi_hat = [0.0; A];
            for s in 0..S {
                policy_log_probs(&q_res[s], &logp0[s], tau, tau, &mut logpi_hat);
                let full = log_softmax(&q_full[s], tau);
                for a in 0..A {
                    worst[k] = worst[k].max((logpi_hat[a].exp() - full[a].exp()).abs());
                }
            }
        }
    }
    eprintln!(
        "hard-Q prior: largest probability error {:.2e} at τ = 0.2, {:.2e} at τ = 0.5",
        worst[0], worst[1]
    );
    // Not exact (a soft-Q prior is, to 1e-6), and larger at the larger temperature; small.
    assert!(worst[0] > 1e-5 && worst[1] > worst[0], "{worst:?}");
    assert!(worst[0] < 0.1 && worst[1] < 0.15, "{worst:?}");
}
