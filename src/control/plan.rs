//! Zero-shot customization with a model (`[residual] method = "plan"`, the RQL paper's offline
//! algorithm as a tree search): nothing is learned; at each tick the residual `Q_R(s,·)` of
//! every action is estimated by searching the robot's model from the current state, and the
//! controller acts on `π̂ ∝ π0^{ω'/α̂}·exp(Q_R/α̂)` exactly as on a learned head.
//!
//! The search is a tree over every action to `depth` steps, each leaf valued by rollouts of the
//! (tempered) prior for `horizon` steps, with the residual maximum-entropy backup
//!
//! ```text
//! Q_R(s,a) = r_R(s,a,s') + γ·(1−d)·V(s')
//! V(s)     = α̂·log Σ_b exp((Q_R(s,b) + ω'·log π0(b|s))/α̂)          (inner nodes)
//! V(s)     ≈ mean over rollouts of Σ_k γ^k·(r_R,k + α̂·log Z(s_k))      (leaves)
//! ```
//!
//! (`r_R` of a failed termination with its value added, as in training: `residual.failure_value`),
//! where a rollout draws each action from the tempered prior `π0^{ω'/α̂}/Z`, whose soft value
//! per step beyond the add-on is `α̂·log Z` (0 when ω' = α̂): the value of following the prior
//! from the leaf on, which is what `Q_R ≡ 0` assumes of the future. The rollouts of one round
//! share their random draws across leaves (common random numbers: the leaves differ by their
//! states, not their luck). Rounds run until `rollouts` or the time `budget`, whichever comes
//! first: anytime within the control period. The tree's states are computed once per tick.
//!
//! The model is the bundle's built-in plant ([`sim_robot::plant`]), put in the state the
//! signals show ([`Plant::set_from_signals`]). Buffers are allocated once; a tick allocates
//! nothing.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sim_robot::plant::{self, Plant};

use crate::bundle::Bundle;
use crate::policy::discrete::{policy_log_probs, sample, soft_value};
use crate::robot::StepEnd;

/// The search's settings (`[plan]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanSettings {
    pub depth: usize,
    pub horizon: usize,
    /// Most rounds of rollouts (one per leaf each).
    pub rollouts: usize,
    /// Time for one decision; rounds stop once it is spent (at least one round runs).
    pub budget: Duration,
}

/// What a search found at a state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Searched {
    pub rounds: usize,
    pub elapsed: Duration,
}

/// The tree search and its buffers.
pub struct Planner {
    model: Box<dyn Plant>,
    pub settings: PlanSettings,
    n_actions: usize,
    /// Per node (breadth first, root 0; node `i`'s child by action `a` is `i·A + 1 + a`): the
    /// state's signals, `log π0(·|s)`, the add-on reward into it, whether it is terminal.
    signals: Vec<f32>,
    logp0: Vec<f32>,
    reward: Vec<f32>,
    terminal: Vec<bool>,
    /// The command before each node's state (the add-on reads `<command>_prev`).
    prev: Vec<f32>,
    /// Sums of leaf rollout returns, and the node values of the backup.
    leaf_sum: Vec<f64>,
    value: Vec<f64>,
    // Scratch for one step of the model.
    sig: Vec<f32>,
    obs: Vec<f32>,
    lp: Vec<f32>,
    /// The tempered prior's `log π` at a rollout's state, and `Q_R ≡ 0` to compute it with.
    tempered: Vec<f32>,
    zero_q: Vec<f32>,
    vals: Vec<f32>,
    terms: Vec<f32>,
    cmd: Vec<f32>,
    cmd_prev: Vec<f32>,
    q: Vec<f64>,
    lp64: Vec<f64>,
    seed: u64,
    /// The lowest add-on reward the model has shown (a failure's value, as in training).
    addon_lo: f32,
    /// Every decision's search, for the report (capacity reserved up front; never grows past it).
    pub searches: Vec<Searched>,
}

/// Decisions whose search is kept for the report.
const KEPT: usize = 1 << 16;

impl Planner {
    /// The planner of a bundle whose `[sim] plant` is its model; `None` without one.
    pub fn for_bundle(b: &Bundle, settings: PlanSettings) -> Option<Planner> {
        let model = plant::make(b.sim_plant.as_deref()?)?;
        let (na, ns, nc) = (b.n_actions(), b.signals.len(), b.commands.len());
        let nodes = (0..=settings.depth).map(|d| na.pow(d as u32)).sum::<usize>();
        let leaves = na.pow(settings.depth as u32);
        Some(Planner {
            model,
            settings,
            n_actions: na,
            signals: vec![0.0; nodes * ns],
            logp0: vec![0.0; nodes * na],
            reward: vec![0.0; nodes],
            terminal: vec![false; nodes],
            prev: vec![0.0; nodes * nc],
            leaf_sum: vec![0.0; leaves],
            value: vec![0.0; nodes],
            sig: vec![0.0; ns],
            obs: vec![0.0; b.obs.names.len()],
            lp: vec![0.0; na],
            tempered: vec![0.0; na],
            zero_q: vec![0.0; na],
            vals: vec![0.0; b.vars.len()],
            terms: vec![0.0; b.addon.terms.len()],
            cmd: vec![0.0; nc],
            cmd_prev: vec![0.0; nc],
            q: vec![0.0; na],
            lp64: vec![0.0; na],
            seed: 0,
            addon_lo: 0.0,
            searches: Vec::with_capacity(KEPT),
        })
    }

    /// `Q_R(s,·)` at the state `signals` show (the command before it `prev`), into `q_r`.
    /// False if the model cannot take this state, or the prior failed in the search (the caller
    /// then acts on the prior).
    pub fn q(&mut self, b: &mut Bundle, signals: &[f32], prev: &[f32], q_r: &mut [f32]) -> bool {
        let started = Instant::now();
        let (na, ns, nc) = (self.n_actions, self.sig.len(), self.cmd.len());
        let (omega, alpha) = b.acting_weights();
        let gamma = b.manifest.residual.gamma as f64;
        let depth = self.settings.depth;
        let inner = (0..depth).map(|d| na.pow(d as u32)).sum::<usize>();
        // The tree's states: the root, then each node's children by action.
        self.signals[..ns].copy_from_slice(signals);
        self.prev[..nc].copy_from_slice(prev);
        self.terminal[0] = false;
        if !self.prior_at(b, 0) {
            return false;
        }
        for node in 0..inner {
            for a in 0..na {
                let child = node * na + 1 + a;
                if self.terminal[node] {
                    self.terminal[child] = true;
                    self.reward[child] = 0.0;
                    continue;
                }
                self.cmd.copy_from_slice(&b.action_table[a]);
                self.cmd_prev.copy_from_slice(&self.prev[node * nc..(node + 1) * nc]);
                if !self.model.set_from_signals(&self.signals[node * ns..(node + 1) * ns]) {
                    return false;
                }
                let (r, done) = self.model_step(b);
                self.signals[child * ns..(child + 1) * ns].copy_from_slice(&self.sig);
                self.prev[child * nc..(child + 1) * nc].copy_from_slice(&self.cmd);
                self.reward[child] = r;
                self.terminal[child] = done;
                if !done && !self.prior_at(b, child) {
                    return false;
                }
            }
        }
        // Rounds of rollouts from every leaf, the draws of round k shared by all leaves.
        self.leaf_sum.iter_mut().for_each(|v| *v = 0.0);
        self.seed = self.seed.wrapping_add(1);
        let mut rounds = 0;
        while rounds < self.settings.rollouts.max(1) {
            for leaf in 0..self.leaf_sum.len() {
                let node = inner + leaf;
                if self.terminal[node] {
                    continue;
                }
                let mut rng =
                    rand_pcg::Pcg64Mcg::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9) ^ rounds as u64);
                self.leaf_sum[leaf] += self.rollout(b, node, (omega, alpha), gamma, &mut rng);
            }
            rounds += 1;
            if started.elapsed() >= self.settings.budget {
                break;
            }
        }
        // The backup, leaves to root.
        for leaf in 0..self.leaf_sum.len() {
            let node = inner + leaf;
            self.value[node] = if self.terminal[node] { 0.0 } else { self.leaf_sum[leaf] / rounds as f64 };
        }
        for node in (0..inner).rev() {
            self.backup(node, (omega as f64, alpha as f64), gamma);
            if node == 0 {
                for (o, q) in q_r.iter_mut().zip(&self.q) {
                    *o = *q as f32;
                }
            }
        }
        if self.searches.len() < KEPT {
            self.searches.push(Searched { rounds, elapsed: started.elapsed() });
        }
        q_r.iter().all(|v| v.is_finite())
    }

    /// `Q_R(node,·)` of its children into `self.q`, and the node's soft value.
    fn backup(&mut self, node: usize, (omega, alpha): (f64, f64), gamma: f64) {
        let na = self.n_actions;
        for a in 0..na {
            let child = node * na + 1 + a;
            let cont = if self.terminal[child] { 0.0 } else { gamma * self.value[child] };
            self.q[a] = self.reward[child] as f64 + cont;
            self.lp64[a] = self.logp0[node * na + a] as f64;
        }
        self.value[node] = soft_value(&self.q, &self.lp64, omega, alpha);
    }

    /// `log π0(·|s)` at `node`'s state; false if the prior failed.
    fn prior_at(&mut self, b: &mut Bundle, node: usize) -> bool {
        let (na, ns) = (self.n_actions, self.sig.len());
        b.obs.observe(&self.signals[node * ns..(node + 1) * ns], &mut self.obs);
        let lp = &mut self.logp0[node * na..(node + 1) * na];
        b.prior.log_probs(&self.obs, lp).is_ok() && lp.iter().all(|v| !v.is_nan())
    }

    /// One step of the model under `self.cmd` (after `self.cmd_prev`): the add-on reward and
    /// whether the state is terminal (the plant's or the bundle's `terminate`); the new
    /// signals in `self.sig`. A termination `[episode] success` counts as a failure is worth
    /// what training makes it (`residual.failure_value`: by default the lowest add-on seen,
    /// forever), so that failing is never the search's cheap way out of a penalty. (The
    /// firmware's SUCCESS flag has no model: a `success = "flag"` bundle's termination is taken
    /// as its goal.)
    fn model_step(&mut self, b: &Bundle) -> (f32, bool) {
        let done = self.model.step(&self.cmd);
        self.model.signals(&mut self.sig);
        b.vars.fill(&self.sig, &self.cmd, &self.cmd_prev, &mut self.vals);
        let mut end = StepEnd { terminated: done, ..StepEnd::default() };
        b.episode.apply(&self.vals, &mut end);
        let r = b.addon.eval(&self.vals, &mut self.terms);
        self.addon_lo = self.addon_lo.min(r);
        let failed = end.terminated
            && !matches!(b.episode.success, crate::bundle::Success::Flag)
            && !b.episode.succeeded(end, &self.vals, 0, false);
        let r = if failed { r + b.manifest.residual.gamma * b.failure_value(self.addon_lo) } else { r };
        (r, end.terminated)
    }

    /// The discounted soft return of the tempered prior from `node` for `horizon` steps.
    fn rollout(
        &mut self,
        b: &mut Bundle,
        node: usize,
        (omega, alpha): (f32, f32),
        gamma: f64,
        rng: &mut impl Rng,
    ) -> f64 {
        let (ns, nc) = (self.sig.len(), self.cmd.len());
        if !self.model.set_from_signals(&self.signals[node * ns..(node + 1) * ns]) {
            return 0.0;
        }
        self.sig.copy_from_slice(&self.signals[node * ns..(node + 1) * ns]);
        self.cmd.copy_from_slice(&self.prev[node * nc..(node + 1) * nc]);
        let (mut ret, mut disc) = (0.0f64, 1.0f64);
        for _ in 0..self.settings.horizon {
            b.obs.observe(&self.sig, &mut self.obs);
            if b.prior.log_probs(&self.obs, &mut self.lp).is_err() {
                break;
            }
            // The tempered prior `π0^{ω'/α̂}/Z` is π̂ at `Q_R ≡ 0`, and `α̂·log Z` its soft value.
            policy_log_probs(&self.zero_q, &self.lp, omega, alpha, &mut self.tempered);
            let soft = soft_value(&self.zero_q, &self.lp, omega, alpha);
            let a = sample(&self.tempered, rng.random::<f32>());
            self.cmd_prev.copy_from_slice(&self.cmd);
            self.cmd.copy_from_slice(&b.action_table[a]);
            let (r, done) = self.model_step(b);
            ret += disc * (r as f64 + soft as f64);
            disc *= gamma;
            if done {
                break;
            }
        }
        ret
    }
}
