//! A replay ring of fixed capacity, allocated once at start, holding transitions in the order
//! they happened so that n-step targets can be formed from consecutive entries.
//!
//! Each entry keeps what the residual targets need without re-running the prior: the taken
//! action's `log π0(a|s)` and `log π̂(a|s)` (the behaviour policy's), and `log π0(·|s')` for
//! every action, computed anyway when the robot acted at `s'`.

/// One transition `(s, a, r_R, s')`: a plain record, whatever produced it (this robot, a rig, a
/// fleet peer).
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    pub obs: &'a [f32],
    pub action: usize,
    /// The add-on reward `r_R(s, a, s')`.
    pub reward: f32,
    /// `log π0(a|s)` of the taken action.
    pub logp0_taken: f32,
    /// `log π̂(a|s)` of the taken action under the policy that chose it.
    pub logpi_taken: f32,
    pub next_obs: &'a [f32],
    /// `log π0(·|s')`.
    pub next_logp0: &'a [f32],
    /// `s'` is a true terminal state: no bootstrap.
    pub terminal: bool,
    /// The episode ended at `s'` by a time limit (bootstrap, but the next entry is a new episode).
    pub truncated: bool,
}

/// Structure-of-arrays ring buffer.
#[derive(Clone, Debug)]
pub struct Replay {
    pub capacity: usize,
    pub n_obs: usize,
    pub n_actions: usize,
    /// Entries written so far (monotone; the entry for step `k` sits at `k % capacity`).
    pub written: u64,
    pub obs: Vec<f32>,
    pub next_obs: Vec<f32>,
    pub next_logp0: Vec<f32>,
    pub action: Vec<u32>,
    pub reward: Vec<f32>,
    pub logp0_taken: Vec<f32>,
    pub logpi_taken: Vec<f32>,
    pub terminal: Vec<bool>,
    /// Terminal or truncated: the following entry starts a new episode.
    pub episode_end: Vec<bool>,
}

impl Replay {
    pub fn new(capacity: usize, n_obs: usize, n_actions: usize) -> Self {
        Replay {
            capacity,
            n_obs,
            n_actions,
            written: 0,
            obs: vec![0.0; capacity * n_obs],
            next_obs: vec![0.0; capacity * n_obs],
            next_logp0: vec![0.0; capacity * n_actions],
            action: vec![0; capacity],
            reward: vec![0.0; capacity],
            logp0_taken: vec![0.0; capacity],
            logpi_taken: vec![0.0; capacity],
            terminal: vec![false; capacity],
            episode_end: vec![false; capacity],
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        (self.written as usize).min(self.capacity)
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Appends a transition, overwriting the oldest when full. No allocation.
    pub fn push(&mut self, t: &Transition) {
        let i = (self.written % self.capacity as u64) as usize;
        let (no, na) = (self.n_obs, self.n_actions);
        self.obs[i * no..(i + 1) * no].copy_from_slice(t.obs);
        self.next_obs[i * no..(i + 1) * no].copy_from_slice(t.next_obs);
        self.next_logp0[i * na..(i + 1) * na].copy_from_slice(t.next_logp0);
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
}
