//! Residual SAC for continuous actions (`docs/design.md` §1.8).
//!
//! The actor is the prior's Gaussian shifted by learned offsets, with its last layer at zero so
//! the robot starts exactly on the prior:
//!
//! ```text
//! π_θ(·|s):  u = μ + σ·ε,  ε ~ N(0, I),  a = family(u)
//!            μ = mean0(s) + Δμ_θ(s),   log σ = clamp(log_std0(s) + Δσ_θ(s), −20, 2)
//! ```
//!
//! Twin critics `Q_1, Q_2` estimate `Q_R(s, a)` on `[obs, a]`, each with a Polyak target. With
//! the n-step residual return `g` of [`super::core::NStep`], whose intermediate steps add the
//! soft terms `γ^k·(ω'·log π0 − α̂·log π_b)(a_{t+k}|s_{t+k})` of the policy that acted, as stored:
//!
//! Unlike the Q methods, the actor π_θ is not the Boltzmann policy of the critics, so the
//! identity `ω'·log π0 − α̂·log π̂ = V(s) − Q(s,a)` that makes their targets exact on any data
//! does not hold here. Both alternatives were measured worse on MountainCar "less left"
//! (n = 10, seed 0, 10 000 steps): the current actor's density, `−α̂·log π_θ` of a behaviour
//! action in π_θ's tail, is unbounded and lost the goal (0 of 20); the control-variate form
//! `V⁻(s) − min_i Q_targ,i(s,a)` kept it but pushed left 0.64× the prior's against 0.38×.
//!
//! ```text
//! critic:  y = g + γ^m·(1−d)·[ min_i Q_targ,i(s',a') + ω'·log π0(a'|s') − α̂·log π_θ(a'|s') ],  a' ~ π_θ(·|s')
//!          loss_i = Huber(Q_i(s,a) − y)
//! actor:   L = E_ε[ α̂·log π_θ(a|s) − min_i Q_i(s,a) − ω'·log π0(a|s) ],  a = family(μ + σ·ε)
//! ```
//!
//! The actor loss is reparameterised: its gradient flows through `a` into both critics' `∂Q/∂a`
//! and into `log π0`. For the squashed family `log π(a) = Σ_j [−½((u_j−μ_j)/σ_j)² − log σ_j −
//! ½ln2π] − Σ_j ln(1 − a_j² + 1e-6)`; for the clipped family the last sum is absent. The prior's
//! `[mean, log_std]` at `s` and `s'` is stored with each transition, so `log π0` of any action
//! is closed form and an update never runs the prior. α̂ is fixed (the manifest's).

use ndarray::Array2;

use super::core::{gradient_step, LearnerCore, NamedNet, NamedNetMut, ResidualLearner, Settings};
use super::replay::{Layout, Replay};
use crate::nn::{mlp::Trace, Adam, Grads, Mlp};
use crate::policy::prior::gaussian::normal;
use crate::policy::prior::{Family, LOG_STD_MAX, LOG_STD_MIN};

const HALF_LN_2PI: f32 = crate::policy::prior::gaussian::HALF_LN_2PI as f32;

/// One draw from π_θ at a state: `u`, `a`, and `log π_θ(a)` in the reparameterised form.
#[derive(Clone, Copy, Debug)]
struct Draw {
    u: f32,
    a: f32,
    /// `log σ` after the clamp, and whether the clamp was inactive.
    log_std: f32,
    free: bool,
}

/// `π_θ`'s parameters for dimension `j` from the prior's `params0 = [mean0, log_std0]` and the
/// actor's `delta`, and a draw with noise `eps`.
fn draw(fam: Family, params0: &[f32], delta: &[f32], ad: usize, j: usize, eps: f32) -> Draw {
    let mu = params0[j] + delta[j];
    let raw_ls = params0[ad + j] + delta[ad + j];
    let log_std = raw_ls.clamp(LOG_STD_MIN, LOG_STD_MAX);
    let u = mu + log_std.exp() * eps;
    Draw { u, a: fam.action(u), log_std, free: raw_ls == log_std }
}

/// The residual SAC learner: twin critics (the core's head is critic 1), the actor, replay.
pub struct ResidualSac {
    pub core: LearnerCore,
    pub critic2: Mlp,
    pub critic2_target: Mlp,
    pub critic2_adam: Adam,
    /// Offsets `[Δμ, Δσ]` to the prior's Gaussian; starts at zero.
    pub actor: Mlp,
    pub actor_adam: Adam,
    pub family: Family,
    pub act_dim: usize,
    n_obs: usize,
    x: Array2<f32>,
    obs: Array2<f32>,
    next_obs: Array2<f32>,
    x_boot: Array2<f32>,
    x_pi: Array2<f32>,
    params: Vec<f32>,
    next_params: Vec<f32>,
    eps: Vec<f32>,
    /// The actor loss's draws at `s` and `∂L/∂u` without the critics' term, per row and dimension.
    draws: Vec<Draw>,
    partial: Vec<f32>,
    /// `ω'·log π0(a'|s') − α̂·log π_θ(a'|s')` of the bootstrap draw, per row.
    boot_soft: Vec<f32>,
    returns: Vec<f32>,
    boot_discount: Vec<f32>,
    critic2_grads: Grads,
    actor_grads: Grads,
    /// The batched passes (actor at s and at s′, critics, target critics) and the loss
    /// gradients, allocated once: an update allocates nothing.
    actor_trace: Trace,
    actor_next_trace: Trace,
    critic1_trace: Trace,
    critic2_trace: Trace,
    target1_trace: Trace,
    target2_trace: Trace,
    d1: Array2<f32>,
    d2: Array2<f32>,
    /// `∂L/∂[Δμ, Δσ]` of the last actor loss, per row (divided by the batch size).
    actor_d_out: Array2<f32>,
    /// The last actor loss (for logs and tests).
    pub actor_loss: f32,
}

impl ResidualSac {
    pub fn new(settings: Settings, n_obs: usize, act_dim: usize, family: Family, seed: u64) -> Self {
        let b = settings.batch;
        let replay = Replay::new(
            settings.replay_capacity,
            Layout { n_obs, n_actions: 1, act_dim, cand_width: act_dim, param_width: 2 * act_dim },
        );
        let mut core = LearnerCore::new(settings, n_obs + act_dim, 1, replay, seed);
        let mut sizes = vec![n_obs + act_dim];
        sizes.extend(&core.settings.hidden);
        sizes.push(1);
        // Critic 2 starts from its own weights (zero output, like critic 1).
        let critic2 = Mlp::new(&sizes, core.settings.activation, true, &mut core.rng);
        sizes[0] = n_obs;
        *sizes.last_mut().expect("output") = 2 * act_dim;
        let actor = Mlp::new(&sizes, core.settings.activation, true, &mut core.rng);
        let lr = core.settings.lr;
        ResidualSac {
            actor_trace: actor.trace(b),
            actor_next_trace: actor.trace(b),
            critic1_trace: core.online.trace(b),
            critic2_trace: critic2.trace(b),
            target1_trace: core.target.trace(b),
            target2_trace: critic2.trace(b), // its target has its shape
            d1: Array2::zeros((b, 1)),
            d2: Array2::zeros((b, 1)),
            actor_d_out: Array2::zeros((b, 2 * act_dim)),
            critic2_target: critic2.clone(),
            critic2_adam: Adam::new(&critic2, lr),
            critic2_grads: critic2.zero_grads(),
            actor_adam: Adam::new(&actor, lr),
            actor_grads: actor.zero_grads(),
            critic2,
            actor,
            family,
            act_dim,
            n_obs,
            x: Array2::zeros((b, n_obs + act_dim)),
            obs: Array2::zeros((b, n_obs)),
            next_obs: Array2::zeros((b, n_obs)),
            x_boot: Array2::zeros((b, n_obs + act_dim)),
            x_pi: Array2::zeros((b, n_obs + act_dim)),
            params: vec![0.0; b * 2 * act_dim],
            next_params: vec![0.0; b * 2 * act_dim],
            eps: vec![0.0; b * act_dim],
            draws: vec![Draw { u: 0.0, a: 0.0, log_std: 0.0, free: true }; b * act_dim],
            partial: vec![0.0; b * act_dim],
            boot_soft: vec![0.0; b],
            returns: vec![0.0; b],
            boot_discount: vec![0.0; b],
            actor_loss: 0.0,
            core,
        }
    }

    /// The actor loss `L` (mean over the batch in `self.obs`, prior parameters `self.params`,
    /// noise `self.eps`), with `∂L/∂[Δμ, Δσ]` per row (already divided by the batch size) left
    /// in `self.actor_d_out` and the actor's pass in `self.actor_trace`. Fills `self.x_pi` with
    /// `[obs, a]`.
    fn actor_loss_and_grad(&mut self) -> f32 {
        let (b, ad, no, fam) = (self.obs.nrows(), self.act_dim, self.n_obs, self.family);
        let (alpha, omega) = (self.core.settings.alpha, self.core.settings.omega);
        let delta = self.actor.forward(self.obs.view(), &mut self.actor_trace);
        let mut loss = 0.0f32;
        for row in 0..b {
            let p0 = &self.params[row * 2 * ad..(row + 1) * 2 * ad];
            let d = delta.row(row);
            let d = d.as_slice().expect("row-major");
            let mut xr = self.x_pi.row_mut(row);
            let xr = xr.as_slice_mut().expect("row-major");
            xr[..no].copy_from_slice(self.obs.row(row).as_slice().expect("row-major"));
            for j in 0..ad {
                let dr = draw(fam, p0, d, ad, j, self.eps[row * ad + j]);
                self.draws[row * ad + j] = dr;
                xr[no + j] = dr.a;
                let e = self.eps[row * ad + j];
                let (ld, dld) = fam.log_det(dr.a);
                let ls0 = p0[ad + j].clamp(LOG_STD_MIN, LOG_STD_MAX);
                let z0 = (dr.u - p0[j]) / ls0.exp();
                let lp_theta = -0.5 * e * e - dr.log_std - HALF_LN_2PI + ld;
                let lp0 = -0.5 * z0 * z0 - ls0 - HALF_LN_2PI + ld;
                loss += alpha * lp_theta - omega * lp0;
                self.partial[row * ad + j] = alpha * dld - omega * (-z0 / ls0.exp() + dld);
            }
        }
        // The critics' passes at (s, a ~ π_θ), in their traces (the critic update is done).
        let q1 = self.core.online.forward(self.x_pi.view(), &mut self.critic1_trace);
        let q2 = self.critic2.forward(self.x_pi.view(), &mut self.critic2_trace);
        let (d1, d2) = (&mut self.d1, &mut self.d2);
        d1.fill(0.0);
        d2.fill(0.0);
        for row in 0..b {
            if q1[[row, 0]] <= q2[[row, 0]] {
                loss -= q1[[row, 0]];
                d1[[row, 0]] = 1.0;
            } else {
                loss -= q2[[row, 0]];
                d2[[row, 0]] = 1.0;
            }
        }
        let g1 = self.core.online.input_grad(&mut self.critic1_trace, self.d1.view());
        let g2 = self.critic2.input_grad(&mut self.critic2_trace, self.d2.view());
        let d_out = &mut self.actor_d_out;
        d_out.fill(0.0);
        let inv_b = 1.0 / b as f32;
        for row in 0..b {
            for j in 0..ad {
                let dr = self.draws[row * ad + j];
                let dq_da = g1[[row, no + j]] + g2[[row, no + j]];
                let dl_du = self.partial[row * ad + j] - dq_da * fam.daction_du(dr.a);
                d_out[[row, j]] = dl_du * inv_b;
                if dr.free {
                    d_out[[row, ad + j]] =
                        (-alpha + dl_du * dr.log_std.exp() * self.eps[row * ad + j]) * inv_b;
                }
            }
        }
        loss * inv_b
    }
}

impl ResidualLearner for ResidualSac {
    fn core(&self) -> &LearnerCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut LearnerCore {
        &mut self.core
    }

    fn actor(&self) -> Option<&Mlp> {
        Some(&self.actor)
    }

    fn extra_nets(&self) -> Vec<NamedNet<'_>> {
        vec![
            NamedNet { name: "critic2", net: &self.critic2, adam: Some(&self.critic2_adam) },
            NamedNet { name: "critic2_target", net: &self.critic2_target, adam: None },
            NamedNet { name: "actor", net: &self.actor, adam: Some(&self.actor_adam) },
        ]
    }

    fn extra_nets_mut(&mut self) -> Vec<NamedNetMut<'_>> {
        vec![
            NamedNetMut { name: "critic2", net: &mut self.critic2, adam: Some(&mut self.critic2_adam) },
            NamedNetMut { name: "critic2_target", net: &mut self.critic2_target, adam: None },
            NamedNetMut { name: "actor", net: &mut self.actor, adam: Some(&mut self.actor_adam) },
        ]
    }

    fn update(&mut self) -> Option<f32> {
        if !self.core.ready() {
            return None;
        }
        let (b, ad, no, fam) = (self.core.settings.batch, self.act_dim, self.n_obs, self.family);
        let pw = 2 * ad;
        let (omega, alpha) = (self.core.settings.omega, self.core.settings.alpha);
        for row in 0..b {
            let step = self.core.draw();
            let n = self.core.n_step(step);
            let r = &self.core.replay;
            r.state_action_into(n.first, self.x.row_mut(row).as_slice_mut().expect("row-major"));
            self.obs.row_mut(row).as_slice_mut().expect("row-major").copy_from_slice(r.obs_at(n.first));
            self.next_obs
                .row_mut(row)
                .as_slice_mut()
                .expect("row-major")
                .copy_from_slice(r.next_obs_at(n.last));
            self.params[row * pw..(row + 1) * pw].copy_from_slice(r.prior_params_at(n.first));
            self.next_params[row * pw..(row + 1) * pw].copy_from_slice(r.next_prior_params_at(n.last));
            // The stored soft terms of the policy that acted (see the module's doc).
            self.returns[row] = n.g
                + self
                    .core
                    .mid_steps(&n)
                    .map(|m| m.weight * (omega * r.logp0_taken[m.slot] - alpha * r.logpi_taken[m.slot]))
                    .sum::<f32>();
            self.boot_discount[row] = n.discount;
        }

        // Critic targets: a' ~ π_θ(·|s') with the current actor.
        let delta_next = self.actor.forward(self.next_obs.view(), &mut self.actor_next_trace);
        for row in 0..b {
            let p0 = &self.next_params[row * pw..(row + 1) * pw];
            let d = delta_next.row(row);
            let d = d.as_slice().expect("row-major");
            let mut xb = self.x_boot.row_mut(row);
            let xb = xb.as_slice_mut().expect("row-major");
            xb[..no].copy_from_slice(self.next_obs.row(row).as_slice().expect("row-major"));
            // log π0 of the draw from its pre-action u: read back from the f32 action, a draw
            // with |u| > 8.7 would be taken for u ≈ 7.25 (`Family::log_prob_pre`).
            let mut u = [0.0f32; firmware_bridge::MAX_COMMANDS];
            let mut lp_theta = 0.0f32;
            for j in 0..ad {
                let e = normal(&mut self.core.rng);
                let dr = draw(fam, p0, d, ad, j, e);
                u[j] = dr.u;
                xb[no + j] = dr.a;
                lp_theta += -0.5 * e * e - dr.log_std - HALF_LN_2PI + fam.log_det(dr.a).0;
            }
            let lp0 = fam.log_prob_pre(&p0[..ad], &p0[ad..], &u[..ad]);
            self.boot_soft[row] = omega * lp0 - alpha * lp_theta;
        }
        let q1t = self.core.target.forward(self.x_boot.view(), &mut self.target1_trace);
        let q2t = self.critic2_target.forward(self.x_boot.view(), &mut self.target2_trace);

        // Critic updates.
        let q1 = self.core.online.forward(self.x.view(), &mut self.critic1_trace);
        let q2 = self.critic2.forward(self.x.view(), &mut self.critic2_trace);
        let (d1, d2) = (&mut self.d1, &mut self.d2);
        let mut loss = 0.0f32;
        for row in 0..b {
            let v = q1t[[row, 0]].min(q2t[[row, 0]]) + self.boot_soft[row];
            let y = self.returns[row] + self.boot_discount[row] * v;
            let (l1, g1) = self.core.huber(q1[[row, 0]] - y);
            let (l2, g2) = self.core.huber(q2[[row, 0]] - y);
            loss += 0.5 * (l1 + l2);
            d1[[row, 0]] = g1 / b as f32;
            d2[[row, 0]] = g2 / b as f32;
        }
        let clip = self.core.settings.grad_clip;
        gradient_step(
            &mut self.critic2,
            &mut self.critic2_adam,
            &mut self.critic2_grads,
            &mut self.critic2_trace,
            self.d2.view(),
            clip,
        );
        self.critic2_target.soft_update(&self.critic2, self.core.settings.target_tau);
        let loss = self.core.apply(&mut self.critic1_trace, self.d1.view(), loss / b as f32)?;

        // Actor update on fresh noise.
        for e in self.eps.iter_mut() {
            *e = normal(&mut self.core.rng);
        }
        let actor_loss = self.actor_loss_and_grad();
        if !actor_loss.is_finite() {
            self.core.diverged = true;
            return None;
        }
        gradient_step(
            &mut self.actor,
            &mut self.actor_adam,
            &mut self.actor_grads,
            &mut self.actor_trace,
            self.actor_d_out.view(),
            clip,
        );
        self.actor_loss = actor_loss;
        if !self.actor.is_finite() || !self.critic2.is_finite() {
            self.core.diverged = true;
            return None;
        }
        Some(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Activation;
    use rand::{Rng, SeedableRng};

    fn settings() -> Settings {
        Settings {
            omega: 0.3,
            alpha: 0.2,
            gamma: 0.99,
            hidden: vec![16, 16],
            activation: Activation::Tanh,
            lr: 1e-3,
            batch: 6,
            replay_capacity: 100,
            n_step: 1,
            target_tau: 0.01,
            huber_delta: 1.0,
            grad_clip: 0.0,
            warmup: 0,
            updates_per_tick: 1,
            traces: false,
        }
    }

    /// Random (non-zero) actor and critics, a batch of states, prior parameters and noise.
    fn setup(family: Family) -> ResidualSac {
        let mut sac = ResidualSac::new(settings(), 3, 2, family, 4);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        sac.actor = Mlp::new(&[3, 16, 16, 4], Activation::Tanh, false, &mut rng);
        sac.actor.layers[2].w.mapv_inplace(|v| v * 0.3);
        sac.core.online = Mlp::new(&[5, 16, 16, 1], Activation::Tanh, false, &mut rng);
        sac.critic2 = Mlp::new(&[5, 16, 16, 1], Activation::Tanh, false, &mut rng);
        // Critics steep enough in `a` that their term weighs as much as the log-densities'.
        sac.core.online.layers[2].w.mapv_inplace(|v| v * 30.0);
        sac.critic2.layers[2].w.mapv_inplace(|v| v * 30.0);
        sac.obs.mapv_inplace(|_| rng.random_range(-1.0..1.0));
        for (i, p) in sac.params.iter_mut().enumerate() {
            *p = if i % 4 < 2 { rng.random_range(-0.5..0.5) } else { rng.random_range(-1.5..-0.5) };
        }
        for e in sac.eps.iter_mut() {
            *e = normal(&mut rng);
        }
        sac
    }

    /// The reparameterised actor gradient (through the critics' ∂Q/∂a, log π_θ and log π0)
    /// against central finite differences of the actor loss in every actor parameter.
    #[test]
    fn actor_gradient_matches_finite_differences() {
        for family in [Family::Squashed, Family::Clipped] {
            let mut sac = setup(family);
            sac.actor_loss_and_grad();
            let mut g = sac.actor.zero_grads();
            sac.actor.backward(&mut sac.actor_trace, sac.actor_d_out.view(), &mut g);
            let h = 1e-2f32;
            let mut worst = 0.0f32;
            for l in 0..sac.actor.layers.len() {
                for idx in 0..sac.actor.layers[l].w.len() {
                    let orig = sac.actor.layers[l].w.as_slice().unwrap()[idx];
                    sac.actor.layers[l].w.as_slice_mut().unwrap()[idx] = orig + h;
                    let up = sac.actor_loss_and_grad();
                    sac.actor.layers[l].w.as_slice_mut().unwrap()[idx] = orig - h;
                    let down = sac.actor_loss_and_grad();
                    sac.actor.layers[l].w.as_slice_mut().unwrap()[idx] = orig;
                    let fd = (up - down) / (2.0 * h);
                    let an = g.w[l].as_slice().unwrap()[idx];
                    worst = worst.max((fd - an).abs() / (1e-2 + fd.abs()));
                }
            }
            assert!(worst < 2e-2, "{family:?}: worst relative error {worst}");
        }
    }

    /// With a zero-initialised actor the policy is the prior: the draw equals the prior's.
    #[test]
    fn zero_actor_acts_as_the_prior() {
        let sac = ResidualSac::new(settings(), 3, 1, Family::Squashed, 1);
        let d = sac.actor.predict(ndarray::Array2::<f32>::ones((1, 3)).view());
        assert!(d.iter().all(|v| *v == 0.0));
        let p0 = [0.4f32, -1.0];
        let dr = draw(Family::Squashed, &p0, &[0.0, 0.0], 1, 0, 0.7);
        assert!((dr.u - (0.4 + (-1.0f32).exp() * 0.7)).abs() < 1e-6);
    }
}
