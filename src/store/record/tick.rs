//! One control tick's record: what the robot saw, did, and why. A plain `Copy` value of fixed
//! size, so the control loop hands it to the recorder thread without allocating.

/// Largest number of signals, commands, actions or add-on terms a record holds (the wire
/// protocol's `MAX_SIGNALS`).
pub const MAX: usize = firmware_bridge::MAX_SIGNALS;

use serde::{Deserialize, Serialize};

use crate::control::Decisions;
use crate::robot::LinkCounters;

/// What a record is about; written once, as the `/resq/meta` message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The bundle's folder.
    pub bundle: String,
    /// Names of the robot's signals (fields of a tick's `signals`, as identifiers: see [`super::proto::field_names`]).
    pub signals: Vec<String>,
    /// Names of the observation entries (a tick's `obs` is in this order).
    pub obs: Vec<String>,
    /// Labels of the discrete actions (the values of a tick's `action` enum).
    pub actions: Vec<String>,
    /// Names of the commands (fields of a tick's `command`).
    pub commands: Vec<String>,
    /// Names of the add-on reward terms (fields of a tick's `addon`).
    pub addon_terms: Vec<String>,
    /// `"sim"` or the serial port path.
    pub source: String,
    /// FNV-1a 64 of the manifest text the run used (overrides included), as checkpoints hold
    /// it, and of the prior's ONNX file: what a learner reading the record checks it was made
    /// by the same bundle and prior. Empty in records written before they were kept.
    #[serde(default)]
    pub manifest_fnv1a64: String,
    #[serde(default)]
    pub prior_fnv1a64: String,
}

impl RecordMeta {
    /// The header's layout for bundle `b` (names of its signals, observation, actions,
    /// commands and add-on terms), from `source`; no hashes.
    pub fn layout(b: &crate::bundle::Bundle, source: &str) -> RecordMeta {
        RecordMeta {
            bundle: b.manifest.bundle.name.clone(),
            signals: b.signals.clone(),
            obs: b.obs.names.clone(),
            actions: (0..b.n_actions()).map(|i| b.action_label(i)).collect(),
            commands: b.commands.clone(),
            addon_terms: b.addon.term_names().map(str::to_string).collect(),
            source: source.to_string(),
            ..RecordMeta::default()
        }
    }
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
    /// At an episode's last tick (`decisions` has `EPISODE_END`): the signals the episode ended
    /// on, the `s'` of its last transition (written only then).
    pub end_signals: [f32; MAX],
    pub n_obs: u8,
    pub obs: [f32; MAX],
    pub n_actions: u8,
    /// Discrete: `log π0(·|s)` of every action. Continuous: `log π0(a_k|s)` of each candidate
    /// the prior drew at `s` (the first `MAX`; methods `sac` and `rpg` draw one), not of the
    /// command sent: the sent command is the chosen candidate (`action`) for `sampled`, and the
    /// actor's own draw for `sac` and `rpg`.
    pub logp0: [f32; MAX],
    /// `Q_R(s,·)`, per action or per candidate as `logp0`.
    pub q_r: [f32; MAX],
    /// Index of the action (discrete) or candidate (continuous) chosen.
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
    /// `log π(a|s)` of the action sent, under the policy that drew it (what an off-policy
    /// learner weighs a recorded step by); NaN where no policy drew it (greedy acting, the
    /// deadline fallback, a supervisor change).
    pub logpi: f32,
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
            end_signals: [0.0; MAX],
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
            logpi: 0.0,
            decisions: Decisions::default(),
            latency_ns: 0,
            period_ns: 0,
            link: LinkCounters::default(),
        }
    }
}
