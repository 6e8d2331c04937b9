//! In-process episodes on a simulated plant: reset, step, time limit. Fast and deterministic
//! (seeded); the rig serves the same plants over the wire protocol.

use rand::SeedableRng;

use crate::plant::{self, Plant};

/// How a step ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepEnd {
    /// A true terminal state (no bootstrap).
    pub terminated: bool,
    /// The time limit was reached (bootstrap; a new episode follows).
    pub truncated: bool,
}

impl StepEnd {
    pub fn done(self) -> bool {
        self.terminated || self.truncated
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
            rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed),
        })
    }

    pub fn reset(&mut self) {
        self.plant.reset(&mut self.rng);
        self.plant.signals(&mut self.signals);
        self.t = 0;
    }

    pub fn step(&mut self, command: &[f32]) -> StepEnd {
        let terminated = self.plant.step(command);
        self.plant.signals(&mut self.signals);
        self.t += 1;
        StepEnd {
            terminated,
            truncated: !terminated && self.t >= self.max_steps,
        }
    }
}
