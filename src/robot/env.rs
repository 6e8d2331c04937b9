//! The [`Env`] interface every robot implements — the built-in simulated robot
//! ([`super::sim::SimEnv`]) and firmware over the serial link ([`super::link::LinkEnv`]) — and
//! what a step reports.

/// How a step ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepEnd {
    /// A true terminal state (no bootstrap).
    pub terminated: bool,
    /// The time limit was reached (bootstrap; a new episode follows).
    pub truncated: bool,
    /// The episode was cut by the link (reconnect, firmware reboot): also `truncated`; an
    /// evaluation does not count such an episode, and training does not learn from the step.
    pub interrupted: bool,
    /// The firmware flagged the episode's last Sensor SUCCESS.
    pub success: bool,
    /// Real time: the step did not follow from this command alone (the firmware ran it before
    /// the command arrived, LATE_COMMAND; or under the safe action, COMMAND_TIMEOUT; or Sensors
    /// were skipped): it is recorded and counted, never learned from.
    pub late: bool,
}

impl StepEnd {
    /// An episode the link cut (a reconnect, a firmware reboot, a new episode begun at the
    /// firmware): truncated and interrupted. Not `late` (the loop kept up; the robot went away);
    /// not learned from, and an evaluation does not count the episode.
    pub const CUT: StepEnd =
        StepEnd { terminated: false, truncated: true, interrupted: true, success: false, late: false };

    pub fn done(self) -> bool {
        self.terminated || self.truncated
    }
}

/// Why a robot could not go on. Each message says what happened and, where the user can act on
/// it, the fix.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The serial port could not be opened, read or written, or it closed.
    #[error("{port}: {detail}")]
    Port { port: String, detail: String },
    /// No firmware session could be started: no answer, or busy for too long.
    #[error("{0}")]
    Handshake(String),
    /// The firmware refused the handshake (version, mode, layout): retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// The robot cannot go on: a plant fault, or no episode after reconnecting.
    #[error("{0}")]
    Robot(String),
    /// The bundle asks for more than the protocol carries.
    #[error("{0}")]
    Protocol(String),
    /// The caller broke the [`Env`] contract (a step before a reset, an observe without an act).
    #[error("the robot interface was misused: {0}")]
    Misuse(&'static str),
}

/// Something the robot acts in, episode by episode.
pub trait Env {
    /// Starts a new episode; afterwards [`Env::signals`] holds its first signals.
    fn reset(&mut self) -> Result<(), EnvError>;
    /// Sends one command; returns as soon as it has left (the robot moves while the learner
    /// works).
    fn act(&mut self, command: &[f32]) -> Result<(), EnvError>;
    /// Waits for the signals that follow the last command. The time limit (`max_steps`)
    /// truncates; a link interruption also ends the episode as a truncation.
    fn observe(&mut self) -> Result<StepEnd, EnvError>;
    /// `act` then `observe`.
    fn step(&mut self, command: &[f32]) -> Result<StepEnd, EnvError> {
        self.act(command)?;
        self.observe()
    }
    /// The signals after the last reset or step.
    fn signals(&self) -> &[f32];
    /// Steps taken in the current episode.
    fn episode_steps(&self) -> u32;
    /// Restarts the stream of episode starts: the same seed gives the same sequence of starts.
    fn reseed(&mut self, seed: u64);
    /// The robot keeps its own time (a real-time firmware): a decision that misses the tick
    /// deadline is replaced by the prior's fallback. A lock-step robot (a simulation, in process
    /// or over the link) waits for the command, so a slow decision is not a miss, and a seeded
    /// run does not depend on how busy the machine is.
    fn real_time(&self) -> bool {
        false
    }
    /// The robot reports its e-stop pressed.
    fn estop(&self) -> bool {
        false
    }
    /// Link counters (zero in process).
    fn counters(&self) -> LinkCounters {
        Default::default()
    }
    /// Sequence number and firmware time (µs) of the last sensor frame (zero in process).
    fn frame_stamp(&self) -> (u32, u64) {
        (0, 0)
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
