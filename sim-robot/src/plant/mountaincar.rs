//! MountainCar with gymnasium `MountainCarContinuous-v0`'s dynamics, rounding for rounding.
//!
//! With force `f = clip(a, −1, 1)` and `power = 0.0015`, one step is
//!
//! ```text
//! v ← clip(v + f·power − 0.0025·cos(3p), −0.07, 0.07)
//! p ← clip(p + v, −1.2, 0.6);   v ← 0 if p = −1.2 and v < 0   (inelastic left wall)
//! terminated = p ≥ 0.45 and v ≥ 0
//! ```
//!
//! Gymnasium's arithmetic is mixed precision, and this port mirrors it exactly (NumPy 2, NEP 50:
//! a Python float is "weak" and takes a NumPy float32's precision, a NumPy float64 is not):
//!
//! - The state is float64 right after reset (the unrounded uniform draw) and float32 after every
//!   step ([`State`]); the first step therefore runs in f64 and only its result is rounded.
//! - `force = min(max(a, -1.0), 1.0)` with Python's min/max keeps an in-range float32 action as
//!   float32 (±1.0 exactly included) but replaces an out-of-range one by the Python float ±1.0.
//! - In-range action: `a·power − c` is float32 (`f32(a·f32(0.0015)) − f32(c)`, where
//!   `c = 0.0025·cos(3p)` is computed in f64 from the float32 product `3p`). Clipped action:
//!   `±0.0015 − c` is f64 and is rounded to f32 only when added to the float32 velocity.
//! - The speed and position clips, the left-wall test and the goal test compare in float32 on a
//!   float32 state (`p ≥ f32(0.45) = 0.449999988`), in f64 on the first step.
//!
//! Checked bit for bit against gymnasium 1.4.0 trajectories by `tests/continuous_gym.rs`.
//! The command is `force` in [−1, 1]; signals are `position, velocity` (gymnasium's float32
//! observation). The 999-step limit is a truncation applied by the episode runner.

use super::{uniform, Plant};

pub const MIN_ACTION: f64 = -1.0;
pub const MAX_ACTION: f64 = 1.0;
pub const MIN_POSITION: f64 = -1.2;
pub const MAX_POSITION: f64 = 0.6;
pub const MAX_SPEED: f64 = 0.07;
pub const GOAL_POSITION: f64 = 0.45;
pub const GOAL_VELOCITY: f64 = 0.0;
pub const POWER: f64 = 0.0015;
/// The gravity term is `GRAVITY_TERM · cos(3 p)`.
pub const GRAVITY_TERM: f64 = 0.0025;
/// Initial positions are uniform in `[RESET_LOW, RESET_HIGH)`, with zero velocity.
pub const RESET_LOW: f64 = -0.6;
pub const RESET_HIGH: f64 = -0.4;
/// Reward for reaching the goal.
pub const GOAL_REWARD: f64 = 100.0;

/// Gymnasium's `env.unwrapped.state`, `[position, velocity]`, whose dtype changes over an
/// episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    /// Right after reset: `np.array([uniform(-0.6, -0.4), 0])` is float64.
    F64([f64; 2]),
    /// After every step: `np.array([position, velocity], dtype=np.float32)`.
    F32([f32; 2]),
}

#[derive(Clone, Debug)]
pub struct MountainCar {
    pub state: State,
}

impl Default for MountainCar {
    fn default() -> Self {
        MountainCar { state: State::F64([-0.5, 0.0]) }
    }
}

/// Gymnasium's reward for a step with action `a` (the action as given, *before* clipping):
/// `(100 if terminated else 0) − 0.1·a²`, in f64 (`a²` of a float32 is exact in f64).
pub fn reward(a: f32, terminated: bool) -> f64 {
    let a = a as f64;
    (if terminated { GOAL_REWARD } else { 0.0 }) - a * a * 0.1
}

impl MountainCar {
    pub const SIGNALS: [&'static str; 2] = ["position", "velocity"];

    /// `[position, velocity]` as f64 (exact).
    pub fn position_velocity(&self) -> [f64; 2] {
        match self.state {
            State::F64(s) => s,
            State::F32([p, v]) => [p as f64, v as f64],
        }
    }
}

/// `min(max(a, -1.0), 1.0)` in Python: the float32 action if in range, else a Python float.
enum Force {
    F32(f32),
    F64(f64),
}

impl Plant for MountainCar {
    fn signal_names(&self) -> &'static [&'static str] {
        &Self::SIGNALS
    }

    fn command_names(&self) -> &'static [&'static str] {
        &["force"]
    }

    fn command_bounds(&self) -> &'static [(f32, f32)] {
        &[(MIN_ACTION as f32, MAX_ACTION as f32)]
    }

    fn reset(&mut self, rng: &mut dyn rand_core::RngCore) {
        self.state = State::F64([uniform(rng, RESET_LOW, RESET_HIGH), 0.0]);
    }

    fn step(&mut self, command: &[f32]) -> bool {
        let a = command[0];
        let force = if (a as f64) < MIN_ACTION {
            Force::F64(MIN_ACTION)
        } else if (a as f64) > MAX_ACTION {
            Force::F64(MAX_ACTION)
        } else {
            Force::F32(a) // also NaN, as in gymnasium
        };
        let terminated;
        self.state = match self.state {
            State::F32([p, v]) => {
                // `3 * position` is a float32 product; math.cos returns a Python float.
                let c = GRAVITY_TERM * ((3.0f32 * p) as f64).cos();
                // float32 + Python float: the Python float is rounded to f32 first.
                let dv = match force {
                    Force::F32(a) => a * POWER as f32 - c as f32,
                    Force::F64(f) => (f * POWER - c) as f32,
                };
                let mut v = v + dv;
                if v > MAX_SPEED as f32 {
                    v = MAX_SPEED as f32;
                }
                if v < -MAX_SPEED as f32 {
                    v = -MAX_SPEED as f32;
                }
                let mut p = p + v;
                if p > MAX_POSITION as f32 {
                    p = MAX_POSITION as f32;
                }
                if p < MIN_POSITION as f32 {
                    p = MIN_POSITION as f32;
                }
                if p == MIN_POSITION as f32 && v < 0.0 {
                    v = 0.0;
                }
                terminated = p >= GOAL_POSITION as f32 && v >= GOAL_VELOCITY as f32;
                State::F32([p, v])
            }
            State::F64([p, v]) => {
                let c = GRAVITY_TERM * (3.0 * p).cos();
                // A float32 `dv` is widened when added to the float64 velocity.
                let dv = match force {
                    Force::F32(a) => (a * POWER as f32 - c as f32) as f64,
                    Force::F64(f) => f * POWER - c,
                };
                let v = (v + dv).clamp(-MAX_SPEED, MAX_SPEED);
                let p = (p + v).clamp(MIN_POSITION, MAX_POSITION);
                let v = if p == MIN_POSITION && v < 0.0 { 0.0 } else { v };
                terminated = p >= GOAL_POSITION && v >= GOAL_VELOCITY;
                State::F32([p as f32, v as f32])
            }
        };
        terminated
    }

    fn signals(&self, out: &mut [f32]) {
        let (p, v) = match self.state {
            State::F64([p, v]) => (p as f32, v as f32),
            State::F32([p, v]) => (p, v),
        };
        out[0] = p;
        out[1] = v;
    }

    fn set_from_signals(&mut self, signals: &[f32]) -> bool {
        if signals.len() < 2 {
            return false;
        }
        // After the first step gymnasium's state is float32, as the signals are.
        self.state = State::F32([signals[0], signals[1]]);
        true
    }
}
