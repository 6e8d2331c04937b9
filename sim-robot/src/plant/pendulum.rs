//! Pendulum with gymnasium `Pendulum-v1`'s dynamics (g = 10), rounding for rounding.
//!
//! With torque `u = clip(a, −2, 2)`, θ = 0 upright, one semi-implicit Euler step of dt = 0.05 s is
//!
//! ```text
//! θ̇ ← clip(θ̇ + (3g/(2l)·sin θ + 3/(m l²)·u)·dt, −8, 8)
//! θ ← θ + θ̇·dt            (the new θ̇; θ is never wrapped)
//! ```
//!
//! The state is f64, as gymnasium's; the action is float32 and stays so through the clip, so
//! `3/(m l²)·u` is a float32 product that is widened when added to the f64 term (NumPy 2,
//! NEP 50). The episode never terminates; the 200-step limit is a truncation applied by the
//! episode runner. Checked bit for bit against gymnasium 1.4.0 trajectories by
//! `tests/continuous_gym.rs`.
//!
//! The command is `torque` in [−2, 2]. Signals are gymnasium's observation `cos_theta,
//! sin_theta, theta_dot` (computed in f64, rounded to f32), then `theta`: θ normalised to
//! [−π, π) as gymnasium's reward does ([`angle_normalize`]).

use super::{uniform, Plant};
use std::f64::consts::PI;

pub const G: f64 = 10.0;
pub const M: f64 = 1.0;
pub const L: f64 = 1.0;
pub const DT: f64 = 0.05;
pub const MAX_SPEED: f64 = 8.0;
pub const MAX_TORQUE: f64 = 2.0;
/// Initial θ is uniform in `[−RESET_THETA, RESET_THETA)`, θ̇ in `[−RESET_THETA_DOT, RESET_THETA_DOT)`.
pub const RESET_THETA: f64 = PI;
pub const RESET_THETA_DOT: f64 = 1.0;

#[derive(Clone, Debug, Default)]
pub struct Pendulum {
    /// `[theta, theta_dot]`; theta is not wrapped (it grows while the pendulum spins).
    pub state: [f64; 2],
}

/// Gymnasium's `angle_normalize`: `((x + π) mod 2π) − π` with NumPy's floor modulo, in f64.
pub fn angle_normalize(x: f64) -> f64 {
    let two_pi = 2.0 * PI;
    let y = x + PI;
    // NumPy's remainder: fmod, then shifted into the divisor's sign.
    let mut m = y % two_pi;
    if m < 0.0 {
        m += two_pi;
    }
    m - PI
}

impl Pendulum {
    pub const SIGNALS: [&'static str; 4] = ["cos_theta", "sin_theta", "theta_dot", "theta"];

    /// Gymnasium's reward for applying `torque` in the current state (it is computed from the
    /// state *before* the step): `−(angle_normalize(θ)² + 0.1·θ̇² + 0.001·u²)` with the clipped
    /// torque, summed left to right in f64, the `0.001·u²` term in float32 and then widened.
    ///
    /// Gymnasium squares with NumPy scalar `** 2`, which calls libm's `pow` (f64) and `powf`
    /// (float32); glibc's are not correctly rounded and differ from `x * x` in the last bit for
    /// ~0.1 % of arguments (a float32 ulp of `0.001·u²` is ~1e-10 of reward). So this calls them
    /// too, bit for bit with gymnasium where libm is glibc (the exponent is hidden from the
    /// optimiser, which would otherwise turn `powf(x, 2.0)` into `x * x`).
    pub fn reward(&self, torque: f32) -> f64 {
        let two = std::hint::black_box(2.0f64);
        let u = clip_torque(torque);
        let [theta, theta_dot] = self.state;
        let cost = angle_normalize(theta).powf(two)
            + 0.1 * theta_dot.powf(two)
            + (0.001f32 * u.powf(two as f32)) as f64;
        -cost
    }
}

/// `np.clip(a, -2.0, 2.0)` on a float32 action stays float32 (NaN passes through).
fn clip_torque(a: f32) -> f32 {
    a.clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32)
}

impl Plant for Pendulum {
    fn signal_names(&self) -> &'static [&'static str] {
        &Self::SIGNALS
    }

    fn command_names(&self) -> &'static [&'static str] {
        &["torque"]
    }

    fn command_bounds(&self) -> &'static [(f32, f32)] {
        &[(-MAX_TORQUE as f32, MAX_TORQUE as f32)]
    }

    fn reset(&mut self, rng: &mut dyn rand_core::RngCore) {
        let theta = uniform(rng, -RESET_THETA, RESET_THETA);
        let theta_dot = uniform(rng, -RESET_THETA_DOT, RESET_THETA_DOT);
        self.state = [theta, theta_dot];
    }

    fn step(&mut self, command: &[f32]) -> bool {
        let u = clip_torque(command[0]);
        let [theta, theta_dot] = self.state;
        // `3 * g / (2 * l) * sin` in f64; `3.0 / (m * l**2) * u` is float32 times a Python float.
        let acc = 3.0 * G / (2.0 * L) * theta.sin() + ((3.0 / (M * L * L)) as f32 * u) as f64;
        let theta_dot = (theta_dot + acc * DT).clamp(-MAX_SPEED, MAX_SPEED);
        self.state = [theta + theta_dot * DT, theta_dot];
        false
    }

    fn signals(&self, out: &mut [f32]) {
        let [theta, theta_dot] = self.state;
        out[0] = theta.cos() as f32;
        out[1] = theta.sin() as f32;
        out[2] = theta_dot as f32;
        out[3] = angle_normalize(theta) as f32;
    }

    fn set_from_signals(&mut self, signals: &[f32]) -> bool {
        if signals.len() < 3 {
            return false;
        }
        // θ modulo 2π from its cosine and sine (the signals do not count turns).
        self.state = [(signals[1] as f64).atan2(signals[0] as f64), signals[2] as f64];
        true
    }
}
