//! Episodes: the [`Env`] interface the learning loop and the evaluation drive, and its in-process
//! implementation on a simulated plant ([`SimEnv`]: fast and deterministic from a seed). The
//! link implementation (`crate::link::LinkEnv`) drives firmware — simulated or real — over a
//! serial port through the same interface.

use rand::SeedableRng;

use crate::plant::{self, Plant};

/// How a step ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepEnd {
    /// A true terminal state (no bootstrap).
    pub terminated: bool,
    /// The time limit was reached (bootstrap; a new episode follows).
    pub truncated: bool,
    /// The episode was cut by the link (reconnect, firmware reboot): also `truncated`; an
    /// evaluation does not count such an episode.
    pub interrupted: bool,
    /// The firmware flagged the episode's last Sensor SUCCESS.
    pub success: bool,
    /// Real time: the step did not follow from this command alone (the firmware ran it before
    /// the command arrived, LATE_COMMAND; or under the safe action, COMMAND_TIMEOUT; or Sensors
    /// were skipped): it is recorded and counted, never learned from.
    pub late: bool,
}

impl StepEnd {
    pub fn done(self) -> bool {
        self.terminated || self.truncated
    }
}

/// Why an environment could not go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

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
    /// The robot reports its e-stop pressed.
    fn estop(&self) -> bool {
        false
    }
    /// Link counters (zero in process).
    fn counters(&self) -> crate::record::LinkCounters {
        Default::default()
    }
    /// Sequence number and firmware time (µs) of the last sensor frame (zero in process).
    fn frame_stamp(&self) -> (u32, u64) {
        (0, 0)
    }
}

/// A plant with a time limit and its own random stream for resets.
pub struct SimEnv {
    plant: Box<dyn Plant>,
    pub max_steps: u32,
    /// Steps taken in the current episode.
    pub t: u32,
    /// The plant's signals after the last reset or step.
    pub signals: Vec<f32>,
    /// The command given to `act`, applied by `observe`.
    command: Vec<f32>,
    rng: rand_pcg::Pcg64Mcg,
}

impl SimEnv {
    /// `None` for an unknown plant name.
    pub fn new(plant_name: &str, max_steps: u32, seed: u64) -> Option<Self> {
        let plant = plant::make(plant_name)?;
        let n = plant.signal_names().len();
        Some(SimEnv {
            plant,
            max_steps,
            t: 0,
            signals: vec![0.0; n],
            command: Vec::with_capacity(firmware_bridge::MAX_VALUES),
            rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed),
        })
    }
}

impl Env for SimEnv {
    fn reset(&mut self) -> Result<(), EnvError> {
        self.plant.reset(&mut self.rng);
        self.plant.signals(&mut self.signals);
        self.t = 0;
        Ok(())
    }

    fn act(&mut self, command: &[f32]) -> Result<(), EnvError> {
        self.command.clear();
        self.command.extend_from_slice(command);
        Ok(())
    }

    fn observe(&mut self) -> Result<StepEnd, EnvError> {
        let terminated = self.plant.step(&self.command);
        self.plant.signals(&mut self.signals);
        self.t += 1;
        Ok(StepEnd {
            terminated,
            truncated: !terminated && self.t >= self.max_steps,
            interrupted: false,
            success: false,
            late: false,
        })
    }

    fn signals(&self) -> &[f32] {
        &self.signals
    }

    fn episode_steps(&self) -> u32 {
        self.t
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    }
}
