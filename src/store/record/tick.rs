//! One control tick's record: what the robot saw, did, and why. A plain `Copy` value of fixed
//! size, so the control loop hands it to the recorder thread without allocating.

/// Largest number of signals, commands, actions or add-on terms a record holds (the wire
/// protocol's `MAX_SIGNALS`).
pub const MAX: usize = firmware_bridge::MAX_SIGNALS;

/// Supervisor decisions at this tick (bit flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decisions(pub u16);

impl Decisions {
    /// The residual was unusable (non-finite, learner diverged): the prior acted alone.
    pub const FALLBACK: u16 = 1 << 0;
    /// The tick missed its deadline: the prior's action (or a hold) was sent.
    pub const DEADLINE_MISS: u16 = 1 << 1;
    /// The e-stop latch is set: the safe action was sent.
    pub const ESTOP: u16 = 1 << 2;
    /// A command was clamped to the manifest's bounds.
    pub const CLAMPED: u16 = 1 << 3;
    /// A command was limited by the manifest's rate limit.
    pub const RATE_LIMITED: u16 = 1 << 4;
    /// The KL budget held the policy closer to the prior than π̂.
    pub const KL_LIMITED: u16 = 1 << 5;
    /// An episode ended at this tick (terminated or truncated).
    pub const EPISODE_END: u16 = 1 << 6;
    /// A signal was non-finite or outside its declared range: the prior acted alone.
    pub const SIGNAL_FAULT: u16 = 1 << 7;
    /// The prior failed (error, NaN, +∞, or every action −∞): the safe command was sent.
    pub const PRIOR_FAULT: u16 = 1 << 8;
    /// Real time: the step after this tick did not follow from its command alone (the robot
    /// stepped before the command arrived, or under its safe action, or Sensors were skipped):
    /// not learned from.
    pub const LATE: u16 = 1 << 9;

    pub fn contains(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// Cumulative link counters at this tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkCounters {
    pub frames: u64,
    pub crc_errors: u64,
    /// All other rejected frames (COBS, length, oversized, unknown type, bad field).
    pub other_errors: u64,
    pub seq_gaps: u64,
    pub duplicates: u64,
    pub late_frames: u64,
    pub reconnects: u64,
}

/// One tick. Arrays hold `n_*` valid entries; the rest are zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRecord {
    /// Host monotonic time at the start of the tick, ns since the run started.
    pub t_ns: u64,
    pub tick: u64,
    /// Sequence number of the sensor frame this tick answered (0 in-process).
    pub seq: u32,
    /// Firmware timestamp of that frame, µs (0 in-process).
    pub firmware_t_us: u64,
    pub n_signals: u8,
    pub signals: [f32; MAX],
    pub n_obs: u8,
    pub obs: [f32; MAX],
    pub n_actions: u8,
    /// `log π0(·|s)`.
    pub logp0: [f32; MAX],
    /// `Q_R(s,·)`.
    pub q_r: [f32; MAX],
    /// Index of the action chosen.
    pub action: u32,
    pub n_commands: u8,
    /// Command values sent (after the supervisor).
    pub command: [f32; MAX],
    pub n_terms: u8,
    /// Add-on reward terms for the transition that ended at this tick.
    pub addon_terms: [f32; MAX],
    pub addon_reward: f32,
    /// `KL(π_acting ‖ π0)`, nats.
    pub kl: f32,
    pub decisions: Decisions,
    /// Time from frame received to command written, ns.
    pub latency_ns: u32,
    /// Time since the previous tick started, ns (0 for the first).
    pub period_ns: u64,
    pub link: LinkCounters,
}

impl Default for TickRecord {
    fn default() -> Self {
        TickRecord {
            t_ns: 0,
            tick: 0,
            seq: 0,
            firmware_t_us: 0,
            n_signals: 0,
            signals: [0.0; MAX],
            n_obs: 0,
            obs: [0.0; MAX],
            n_actions: 0,
            logp0: [0.0; MAX],
            q_r: [0.0; MAX],
            action: 0,
            n_commands: 0,
            command: [0.0; MAX],
            n_terms: 0,
            addon_terms: [0.0; MAX],
            addon_reward: 0.0,
            kl: 0.0,
            decisions: Decisions::default(),
            latency_ns: 0,
            period_ns: 0,
            link: LinkCounters::default(),
        }
    }
}
