//! The control step: signals → observation → prior → residual → action. Allocation-free after
//! construction (checked by `tests/no_alloc.rs`).
//!
//! ```text
//! obs      = (signals − offset) / scale
//! log π0   = prior(obs)
//! log π̂    = log_softmax((Q_R(obs) + ω'·log π0) / α̂)
//! ```
//!
//! **KL budget.** A young residual can be wrong; to keep the robot from getting worse before it
//! gets better, the policy that acts is the geometric blend
//! `log π_λ ∝ (1−λ)·log π0 + λ·log π̂` with the largest `λ ∈ [0, 1]` such that
//! `KL(π_λ ‖ π0) ≤ budget` (KL grows monotonically along this path, so bisection finds λ).
//! The budget widens as evidence accumulates (see [`crate::policy::discrete::kl_budget`]). A budget of 0 disables it.
//!
//! **Continuous actions** act through [`ContinuousActor`] (`control_continuous.rs`): K candidates
//! from the prior and importance weights (method `sampled`), or the residual SAC actor (method
//! `sac`, [`Controller::actor`]). The KL budget applies to every method: the blend above for
//! discrete actions, the Gaussian KL in closed form for residual SAC, and the candidates'
//! reweighting from the prior for the sampled method.
//!
//! **Residual policy gradient** (method `rpg`) acts through the same paths: discrete, its head
//! gives logit offsets `Δ`, and `log π_θ = log_softmax(Δ + log π0)` is the formula above with
//! `ω' = α̂ = 1`; continuous, its head offsets the prior's Gaussian like the residual SAC actor.
//!
//! **Fallback.** If the residual outputs a non-finite value, or the learner has diverged, the
//! prior acts alone and the decision says so.

use rand::Rng;

use crate::bundle::{ActionSpace, Bundle, Method};
use crate::nn::{Mlp, Scratch};
use crate::policy::continuous::ContinuousActor;
use crate::policy::discrete::{argmax, blend_within_budget, kl, policy_log_probs, sample};
pub use crate::policy::ActMode;

/// Which policy acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChoice {
    /// π0 alone.
    Prior,
    /// π̂ (within the KL budget).
    Customized,
}

/// What the controller decided at one tick, and why.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decision {
    pub action: usize,
    /// `log π0(a|s)` of the chosen action.
    pub logp0_taken: f32,
    /// log-probability of the chosen action under the policy that acted.
    pub logpi_taken: f32,
    /// The action was not drawn from that policy: it was its most likely action (greedy acting),
    /// or the prior's (the deadline fallback). `logpi_taken` is then not the probability the
    /// action was taken with, and a learner that needs the behaviour's probability (RPG) must
    /// not learn from the transition.
    pub not_drawn: bool,
    /// `KL(π_acting ‖ π0)` at this state, nats.
    pub kl: f32,
    /// The blend weight λ applied (1 = π̂ unconstrained, 0 = π0).
    pub lambda: f32,
    /// The prior acted alone because the residual was unusable, or a signal was out of range.
    pub fallback: bool,
    /// A signal was non-finite or outside its declared range (`[[robot.signal]] min/max`): the
    /// prior acted alone on this tick.
    pub signal_fault: bool,
    /// The prior failed at this state (it errored, or gave NaN, +∞, or −∞ for every action):
    /// the safe command was sent, and no transition from or to this state is learned from.
    pub prior_fault: bool,
}

/// Controller state: the prior (inside the bundle), the acting copy of the residual and all
/// buffers, allocated once.
pub struct Controller {
    pub bundle: Bundle,
    /// The acting copy of `Q_R`; the learner hands weights over with [`Mlp::copy_from`].
    pub residual: Mlp,
    scratch: Scratch,
    /// The prior's input at the last observed state.
    pub obs: Vec<f32>,
    /// The residual's input (what the replay stores): the observation times `residual_scale`,
    /// then, if the add-on reads it, the previous command scaled to [−1, 1] by its limits.
    pub res_obs: Vec<f32>,
    /// The command sent at the previous tick (0 at an episode's start): see [`Controller::sent`].
    prev_command: Vec<f32>,
    /// `log π0(·|s)` at the last observed state.
    pub logp0: Vec<f32>,
    pub q_r: Vec<f32>,
    /// log-probabilities of the policy that acted at the last state.
    pub log_pi: Vec<f32>,
    log_pi_hat: Vec<f32>,
    /// Current KL budget in nats (0 = unlimited).
    pub kl_budget: f32,
    /// The command for the last decision, after the action mapping (before the supervisor).
    pub command: Vec<f32>,
    /// Continuous actions: the prior's Gaussian, its candidates and the chosen action.
    pub continuous: Option<ContinuousActor>,
    /// Residual SAC: the acting copy of the actor π_θ (offsets to the prior's Gaussian); the
    /// learner hands weights over with [`Mlp::copy_from`].
    pub actor: Option<(Mlp, Scratch)>,
    /// `residual.method = "plan"`: the tree search that gives `Q_R` in place of the head.
    pub planner: Option<super::plan::Planner>,
    draw_rng: rand_pcg::Pcg64Mcg,
}

impl Controller {
    pub fn new(bundle: Bundle, residual: Mlp) -> Self {
        let (n_obs, n_res) = (bundle.obs.len(), bundle.residual_inputs());
        let continuous = match &bundle.action_space {
            ActionSpace::Continuous { low, high } => {
                // Residual SAC acts without candidates; one is drawn for a sample of the prior.
                let k = if matches!(bundle.method, Method::Sac | Method::Rpg) {
                    1
                } else {
                    bundle.manifest.residual.candidates
                };
                Some(ContinuousActor::new(bundle.prior.kind, k, n_res, low, high))
            }
            ActionSpace::Discrete => None,
        };
        // Discrete: log π0 of every action; continuous: of every candidate.
        let n_act = continuous.as_ref().map_or(bundle.n_actions(), |s| s.k);
        // Continuous: room for the K candidates scored in one pass.
        let scratch = residual.scratch_rows(continuous.as_ref().map_or(1, |c| c.k));
        let draw_rng = crate::streams::prior_draws(bundle.manifest.run.seed, 0);
        let planner = match bundle.method {
            Method::Plan => {
                let p = &bundle.manifest.plan;
                let settings = super::plan::PlanSettings {
                    depth: p.depth,
                    horizon: p.horizon,
                    rollouts: p.rollouts,
                    budget: std::time::Duration::from_secs_f32(p.budget_ms.max(0.0) / 1000.0),
                };
                super::plan::Planner::for_bundle(&bundle, settings)
            }
            _ => None,
        };
        Controller {
            planner,
            command: vec![0.0; bundle.commands.len()],
            prev_command: vec![0.0; bundle.commands.len()],
            continuous,
            actor: None,
            draw_rng,
            bundle,
            residual,
            scratch,
            obs: vec![0.0; n_obs],
            res_obs: vec![0.0; n_res],
            logp0: vec![0.0; n_act],
            q_r: vec![0.0; n_act],
            log_pi: vec![0.0; n_act],
            log_pi_hat: vec![0.0; n_act],
            kl_budget: 0.0,
        }
    }

    /// The command the supervisor actually sent this tick: the next observation's previous
    /// command (the residual's input when the add-on reads `<command>_prev`).
    pub fn sent(&mut self, command: &[f32]) {
        self.prev_command.copy_from_slice(command);
    }

    /// A new episode starts from rest: the previous command is 0, as in the add-on reward.
    pub fn new_episode(&mut self) {
        self.prev_command.iter_mut().for_each(|v| *v = 0.0);
    }

    /// A controller acting with copies of `learner`'s acting networks (its head, and its actor
    /// where it has one).
    pub fn with_learner(bundle: Bundle, learner: &dyn crate::algo::core::ResidualLearner) -> Self {
        let mut ctl = Controller::new(bundle, learner.core().online.clone());
        if let Some(actor) = learner.actor() {
            ctl.set_actor(actor.clone());
        }
        ctl
    }

    /// The bundle this controller acted for.
    pub fn into_bundle(self) -> Bundle {
        self.bundle
    }

    /// Residual SAC: acts with `actor` (a copy of the learner's π_θ).
    pub fn set_actor(&mut self, actor: Mlp) {
        let scratch = actor.scratch();
        self.actor = Some((actor, scratch));
    }

    /// Puts `rng` in place of the stream the prior's continuous draws come from and returns the
    /// one it replaces (evaluation draws from a stream of its own, then hands training's back).
    pub fn replace_draw_rng(&mut self, rng: rand_pcg::Pcg64Mcg) -> rand_pcg::Pcg64Mcg {
        std::mem::replace(&mut self.draw_rng, rng)
    }

    /// Observes `signals` and computes `log π0(·|s)` into `self.logp0` (no action).
    /// Returns false if the prior failed: an error, a NaN or +∞, or (discrete) no action left.
    /// A discrete action whose logit is −∞ is masked (probability 0), not a failure.
    /// Continuous actions: also draws the K candidates from π0(·|s) with their log-probabilities.
    pub fn observe(&mut self, signals: &[f32]) -> bool {
        self.bundle.obs.observe(signals, &mut self.obs);
        for ((r, o), k) in self.res_obs.iter_mut().zip(&self.obs).zip(&self.bundle.obs.residual_scale) {
            *r = o * k;
        }
        if self.bundle.prev_command_input {
            let lim = &self.bundle.safety.limits;
            let n = self.obs.len();
            for (j, r) in self.res_obs[n..].iter_mut().enumerate() {
                let (lo, hi) = (lim.min[j], lim.max[j]);
                *r = (2.0 * self.prev_command[j] - lo - hi) / (hi - lo);
            }
        }
        if let Some(sa) = &mut self.continuous {
            let ok =
                self.bundle.prior.raw(&self.obs, &mut sa.raw).is_ok() && sa.raw.iter().all(|v| v.is_finite());
            sa.set_params(ok);
            sa.draw(&mut self.draw_rng);
            self.logp0.copy_from_slice(&sa.logp0);
            return ok;
        }
        self.bundle.prior.log_probs(&self.obs, &mut self.logp0).is_ok()
            && self.logp0.iter().all(|v| !v.is_nan() && *v != f32::INFINITY)
            && self.logp0.iter().any(|v| v.is_finite())
    }

    /// The decision when the prior failed: the safe command (`[[robot.command]] safe`).
    fn prior_fault(&mut self, signal_fault: bool) -> Decision {
        self.command.copy_from_slice(&self.bundle.safety.limits.safe);
        Decision {
            action: 0,
            logp0_taken: f32::NAN,
            logpi_taken: f32::NAN,
            not_drawn: true,
            kl: 0.0,
            lambda: 0.0,
            fallback: true,
            signal_fault,
            prior_fault: true,
        }
    }

    /// Maps an action in [−1, 1] units to the command range.
    fn set_command_from_unit(&mut self) {
        if let (Some(sa), ActionSpace::Continuous { low, high }) =
            (&self.continuous, &self.bundle.action_space)
        {
            for (j, c) in self.command.iter_mut().enumerate() {
                *c = low[j] + 0.5 * (sa.command(j) + 1.0) * (high[j] - low[j]);
            }
        }
    }

    /// The command vector of discrete action `i`.
    fn set_command_from_table(&mut self, i: usize) {
        self.command.copy_from_slice(&self.bundle.action_table[i]);
    }

    /// Replaces the decision with the prior's own choice (its most likely action): the deadline
    /// fallback. A prior that failed keeps the safe command.
    pub fn prior_fallback(&mut self, d: &mut Decision) {
        if d.prior_fault {
            return;
        }
        d.not_drawn = true;
        if let Some(sa) = &mut self.continuous {
            let ch = sa.choose_prior(true);
            (d.action, d.logp0_taken, d.logpi_taken) = (ch.index, ch.logp0, ch.logpi);
            self.set_command_from_unit();
        } else {
            d.action = argmax(&self.logp0);
            d.logp0_taken = self.logp0[d.action];
            d.logpi_taken = self.log_pi[d.action];
            self.set_command_from_table(d.action);
        }
    }

    /// One control tick: observe, evaluate the chosen policy, pick an action.
    pub fn step(
        &mut self,
        signals: &[f32],
        policy: PolicyChoice,
        mode: ActMode,
        rng: &mut impl Rng,
    ) -> Decision {
        let prior_ok = self.observe(signals);
        // Readings outside their declared range: the prior acts alone (the residual never
        // learned there, and the reading may be a sensor fault).
        let signal_fault = self.bundle.signal_fault(signals).is_some();
        if !prior_ok {
            return self.prior_fault(signal_fault);
        }
        let policy = if signal_fault { PolicyChoice::Prior } else { policy };
        let (omega, alpha) = self.bundle.acting_weights();
        if let Some(sa) = &mut self.continuous {
            let greedy = mode == ActMode::Greedy;
            let ch = match policy {
                PolicyChoice::Prior => sa.choose_prior(greedy),
                PolicyChoice::Customized => match &mut self.actor {
                    Some((actor, scratch)) => {
                        sa.choose_sac(actor, scratch, &self.res_obs, self.kl_budget, greedy, rng)
                    }
                    None => sa.choose_sampled(
                        &self.residual,
                        &mut self.scratch,
                        &self.res_obs,
                        omega,
                        alpha,
                        self.kl_budget,
                        greedy,
                        rng,
                    ),
                },
            };
            self.q_r.copy_from_slice(&sa.q_r);
            self.set_command_from_unit();
            return Decision {
                action: ch.index,
                logp0_taken: ch.logp0,
                logpi_taken: ch.logpi,
                not_drawn: greedy,
                kl: ch.kl,
                lambda: ch.lambda,
                fallback: ch.fallback || signal_fault,
                signal_fault,
                prior_fault: false,
            };
        }
        let mut fallback = false;
        let mut lambda = 0.0;
        match policy {
            PolicyChoice::Prior => self.log_pi.copy_from_slice(&self.logp0),
            PolicyChoice::Customized => {
                let usable = match &mut self.planner {
                    Some(p) => p.q(&mut self.bundle, signals, &self.prev_command, &mut self.q_r),
                    None => {
                        let q = self.residual.forward1(&self.res_obs, &mut self.scratch);
                        let finite = q.iter().all(|v| v.is_finite());
                        if finite {
                            self.q_r.copy_from_slice(q);
                        }
                        finite
                    }
                };
                if usable {
                    policy_log_probs(&self.q_r, &self.logp0, omega, alpha, &mut self.log_pi_hat);
                    lambda =
                        blend_within_budget(&self.logp0, &self.log_pi_hat, self.kl_budget, &mut self.log_pi);
                } else {
                    fallback = true;
                    self.log_pi.copy_from_slice(&self.logp0);
                }
            }
        }
        let action = match mode {
            ActMode::Greedy => argmax(&self.log_pi),
            ActMode::Sample => sample(&self.log_pi, rng.random::<f32>()),
        };
        self.set_command_from_table(action);
        Decision {
            action,
            logp0_taken: self.logp0[action],
            logpi_taken: self.log_pi[action],
            not_drawn: mode == ActMode::Greedy,
            kl: kl(&self.log_pi, &self.logp0),
            lambda,
            fallback: fallback || signal_fault,
            signal_fault,
            prior_fault: false,
        }
    }
}
