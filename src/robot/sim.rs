//! The built-in simulated robot: a plant of the `sim-robot` crate stepped in process
//! ([`SimEnv`]: fast, and deterministic from a seed) behind the [`Env`] interface.

use rand::SeedableRng;
use sim_robot::plant::{self, Plant};

use super::{Env, EnvError, StepEnd};

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
    /// Act as a robot that keeps its own time ([`Env::real_time`]): decisions past the tick
    /// deadline fall back to the prior. Off by default (a simulation waits for its command); on
    /// in tests of the fallback.
    pub real_time: bool,
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
            real_time: false,
        })
    }
}

impl Env for SimEnv {
    fn real_time(&self) -> bool {
        self.real_time
    }

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
