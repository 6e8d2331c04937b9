//! A replay ring of fixed capacity, allocated once at start, holding transitions in the order
//! they happened so that n-step targets can be formed from consecutive entries.
//!
//! Each entry keeps what the residual targets need without re-running the prior: the taken
//! action's `log π0(a|s)` and `log π̂(a|s)` (the behaviour policy's), and at `s'` — computed
//! anyway when the robot acted there — `log π0(·|s')` for every discrete action, or, for
//! continuous actions, the K candidates drawn from π0(·|s') with their `log π0`, and (residual SAC)
//! the prior's Gaussian `[mean, log_std]` at `s` and `s'`, from which `log π0(a|s)` of any action
//! follows in closed form.

/// One transition `(s, a, r_R, s')`: a plain record, whatever produced it (this robot, a rig, a
/// fleet peer).
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    pub obs: &'a [f32],
    /// Discrete: the action's index. Continuous: 0 (see `action_values`).
    pub action: usize,
    /// Continuous: the action taken, in [−1, 1] units (empty for discrete actions).
    pub action_values: &'a [f32],
    /// Continuous: the pre-action `u` the action was drawn as (`a = tanh(u)` or `a = u`), or NaN
    /// where unknown (an action the supervisor changed, an old checkpoint's entry): a reader of
    /// `log π(a)` takes it from `u`, since `atanh(a)` of a squashed f32 action saturates at
    /// `|u| ≈ 7.25` (empty for discrete actions).
    pub pre_action: &'a [f32],
    /// The add-on reward `r_R(s, a, s')`.
    pub reward: f32,
    /// `log π0(a|s)` of the taken action.
    pub logp0_taken: f32,
    /// `log π̂(a|s)` of the taken action under the policy that chose it.
    pub logpi_taken: f32,
    pub next_obs: &'a [f32],
    /// Discrete: `log π0(·|s')` for every action. Continuous: `log π0(c_k|s')` of each candidate.
    pub next_logp0: &'a [f32],
    /// Continuous: the K candidates `c_k ~ π0(·|s')`, row-major `[K, act_dim]` (empty for
    /// discrete actions).
    pub next_candidates: &'a [f32],
    /// Residual SAC: the prior's `[mean, log_std]` at `s` and at `s'` (empty otherwise).
    pub prior_params: &'a [f32],
    pub next_prior_params: &'a [f32],
    /// `s'` is a true terminal state: no bootstrap.
    pub terminal: bool,
    /// The episode ended at `s'` by a time limit (bootstrap, but the next entry is a new episode).
    pub truncated: bool,
}

/// The widths of a replay entry's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub n_obs: usize,
    /// Width of `next_logp0`: the number of discrete actions, or of candidates.
    pub n_actions: usize,
    /// Continuous action dimension (0 for discrete).
    pub act_dim: usize,
    /// `K · act_dim` (0 for discrete).
    pub cand_width: usize,
    /// Width of the prior's parameters `[mean, log_std]` (residual SAC; 0 otherwise).
    pub param_width: usize,
}

/// Structure-of-arrays ring buffer.
#[derive(Clone, Debug)]
pub struct Replay {
    pub capacity: usize,
    pub n_obs: usize,
    /// Width of `next_logp0`: the number of discrete actions, or of candidates.
    pub n_actions: usize,
    /// Continuous action dimension (0 for discrete).
    pub act_dim: usize,
    /// `K · act_dim` (0 for discrete).
    pub cand_width: usize,
    /// Width of `prior_params` (0 unless residual SAC).
    pub param_width: usize,
    /// Entries written so far (monotone; the entry for step `k` sits at `k % capacity`).
    pub written: u64,
    pub obs: Vec<f32>,
    pub next_obs: Vec<f32>,
    pub next_logp0: Vec<f32>,
    pub next_candidates: Vec<f32>,
    pub prior_params: Vec<f32>,
    pub next_prior_params: Vec<f32>,
    pub action: Vec<u32>,
    pub action_values: Vec<f32>,
    pub pre_actions: Vec<f32>,
    pub reward: Vec<f32>,
    pub logp0_taken: Vec<f32>,
    pub logpi_taken: Vec<f32>,
    pub terminal: Vec<bool>,
    /// Terminal or truncated: the following entry starts a new episode. Also set when the entry
    /// after it does not follow on the robot (a transition was dropped or skipped, or a resumed run
    /// started afresh): n-step returns are cut there and bootstrap from this entry's `next_obs`.
    pub episode_end: Vec<bool>,
    /// The robot's step count of the newest entry (None: unknown, e.g. after a restore).
    pub last_step: Option<u64>,
    /// Learning from records (discrete actions): which actions each entry's state supports.
    /// `None` online (every action supported).
    pub support: Option<Support>,
}

/// Which actions the records support at each entry's state `s` (bit `a` of `mask`), and
/// `log π0(·|s)` there: what the support constraint ([`super::rql_discrete`]) needs. An entry
/// written without one supports every action.
#[derive(Clone, Debug)]
pub struct Support {
    pub mask: Vec<u64>,
    pub logp0: Vec<f32>,
}

/// Every action supported.
pub const ALL_ACTIONS: u64 = u64::MAX;

impl Replay {
    pub fn new(capacity: usize, layout: Layout) -> Self {
        let Layout { n_obs, n_actions, act_dim, cand_width, param_width } = layout;
        Replay {
            capacity,
            n_obs,
            n_actions,
            act_dim,
            cand_width,
            param_width,
            prior_params: vec![0.0; capacity * param_width],
            next_prior_params: vec![0.0; capacity * param_width],
            next_candidates: vec![0.0; capacity * cand_width],
            action_values: vec![0.0; capacity * act_dim],
            pre_actions: vec![f32::NAN; capacity * act_dim],
            written: 0,
            last_step: None,
            obs: vec![0.0; capacity * n_obs],
            next_obs: vec![0.0; capacity * n_obs],
            next_logp0: vec![0.0; capacity * n_actions],
            action: vec![0; capacity],
            reward: vec![0.0; capacity],
            logp0_taken: vec![0.0; capacity],
            logpi_taken: vec![0.0; capacity],
            terminal: vec![false; capacity],
            episode_end: vec![false; capacity],
            support: None,
        }
    }

    /// Marks the newest entry's supported actions (`mask`, bit `a` for action `a`) and its
    /// state's `log π0(·|s)` (allocates the support's arrays on first use: offline only).
    pub fn set_support(&mut self, mask: u64, logp0: &[f32]) {
        assert!(self.written > 0, "an entry to mark");
        let (cap, na) = (self.capacity, self.n_actions);
        let sup = self
            .support
            .get_or_insert_with(|| Support { mask: vec![ALL_ACTIONS; cap], logp0: vec![0.0; cap * na] });
        let i = ((self.written - 1) % cap as u64) as usize;
        sup.mask[i] = mask;
        sup.logp0[i * na..(i + 1) * na].copy_from_slice(logp0);
    }

    /// The supported actions of the entry at `slot` and its `log π0(·|s)`, where it has a
    /// support narrower than every action.
    pub fn support_at(&self, slot: usize) -> Option<(u64, &[f32])> {
        let sup = self.support.as_ref()?;
        let na = self.n_actions;
        let mask = sup.mask[slot];
        (mask & low_bits(na) != low_bits(na)).then(|| (mask, &sup.logp0[slot * na..(slot + 1) * na]))
    }

    /// Bytes the ring holds when full (allocated at start; the pages become resident as it fills).
    pub fn bytes(&self) -> usize {
        let f32s = self.obs.len()
            + self.next_obs.len()
            + self.next_logp0.len()
            + self.next_candidates.len()
            + self.prior_params.len()
            + self.next_prior_params.len()
            + self.action_values.len()
            + self.pre_actions.len()
            + self.reward.len()
            + self.logp0_taken.len()
            + self.logpi_taken.len();
        4 * f32s + 4 * self.action.len() + self.terminal.len() + self.episode_end.len()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        (self.written as usize).min(self.capacity)
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Appends a transition that follows the newest one on the robot (see [`Replay::push_step`]).
    pub fn push(&mut self, t: &Transition) {
        let step = self.last_step.map_or(self.written, |s| s + 1);
        self.push_step(t, step);
    }

    /// Appends the robot's `step`-th transition, overwriting the oldest when full. If it does not
    /// follow the newest entry (`step ≠ last + 1`: transitions in between were dropped, or the
    /// predecessor is unknown), the newest entry is marked as a chain's end, so no n-step return
    /// runs across the gap. No allocation.
    pub fn push_step(&mut self, t: &Transition, step: u64) {
        if let Some(sup) = &mut self.support {
            sup.mask[(self.written % self.capacity as u64) as usize] = ALL_ACTIONS;
        }
        if self.written > 0 && self.last_step.is_none_or(|last| step != last + 1) {
            let prev = ((self.written - 1) % self.capacity as u64) as usize;
            self.episode_end[prev] = true;
        }
        self.last_step = Some(step);
        let i = (self.written % self.capacity as u64) as usize;
        let (no, na) = (self.n_obs, self.n_actions);
        self.obs[i * no..(i + 1) * no].copy_from_slice(t.obs);
        self.next_obs[i * no..(i + 1) * no].copy_from_slice(t.next_obs);
        self.next_logp0[i * na..(i + 1) * na].copy_from_slice(t.next_logp0);
        let (ad, cw) = (self.act_dim, self.cand_width);
        self.action_values[i * ad..(i + 1) * ad].copy_from_slice(t.action_values);
        self.pre_actions[i * ad..(i + 1) * ad].copy_from_slice(t.pre_action);
        self.next_candidates[i * cw..(i + 1) * cw].copy_from_slice(t.next_candidates);
        let pw = self.param_width;
        self.prior_params[i * pw..(i + 1) * pw].copy_from_slice(t.prior_params);
        self.next_prior_params[i * pw..(i + 1) * pw].copy_from_slice(t.next_prior_params);
        self.action[i] = t.action as u32;
        self.reward[i] = t.reward;
        self.logp0_taken[i] = t.logp0_taken;
        self.logpi_taken[i] = t.logpi_taken;
        self.terminal[i] = t.terminal;
        self.episode_end[i] = t.terminal || t.truncated;
        self.written += 1;
    }

    /// The slot of the entry written at step `k` (must still be held).
    pub fn slot(&self, k: u64) -> usize {
        (k % self.capacity as u64) as usize
    }

    /// The oldest step still held.
    pub fn oldest(&self) -> u64 {
        self.written - self.len() as u64
    }

    pub fn obs_at(&self, slot: usize) -> &[f32] {
        &self.obs[slot * self.n_obs..(slot + 1) * self.n_obs]
    }

    pub fn next_obs_at(&self, slot: usize) -> &[f32] {
        &self.next_obs[slot * self.n_obs..(slot + 1) * self.n_obs]
    }

    pub fn next_logp0_at(&self, slot: usize) -> &[f32] {
        &self.next_logp0[slot * self.n_actions..(slot + 1) * self.n_actions]
    }

    pub fn action_values_at(&self, slot: usize) -> &[f32] {
        &self.action_values[slot * self.act_dim..(slot + 1) * self.act_dim]
    }

    /// The pre-actions `u` of the entry in `slot` (NaN where unknown; see [`Transition::pre_action`]).
    pub fn pre_action_at(&self, slot: usize) -> &[f32] {
        &self.pre_actions[slot * self.act_dim..(slot + 1) * self.act_dim]
    }

    /// `[obs, action_values]` of the entry in `slot`, into `out` (a continuous head's input).
    pub fn state_action_into(&self, slot: usize, out: &mut [f32]) {
        out[..self.n_obs].copy_from_slice(self.obs_at(slot));
        out[self.n_obs..].copy_from_slice(self.action_values_at(slot));
    }

    pub fn prior_params_at(&self, slot: usize) -> &[f32] {
        &self.prior_params[slot * self.param_width..(slot + 1) * self.param_width]
    }

    pub fn next_prior_params_at(&self, slot: usize) -> &[f32] {
        &self.next_prior_params[slot * self.param_width..(slot + 1) * self.param_width]
    }

    /// The widths this ring was made with.
    pub fn layout(&self) -> Layout {
        Layout {
            n_obs: self.n_obs,
            n_actions: self.n_actions,
            act_dim: self.act_dim,
            cand_width: self.cand_width,
            param_width: self.param_width,
        }
    }

    pub fn next_candidates_at(&self, slot: usize) -> &[f32] {
        &self.next_candidates[slot * self.cand_width..(slot + 1) * self.cand_width]
    }
}

/// The mask of actions `0..n` (all 64 bits for `n ≥ 64`).
pub fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}
