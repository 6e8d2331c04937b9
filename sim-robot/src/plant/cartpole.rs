//! CartPole with gymnasium `CartPole-v1`'s dynamics: the same constants, explicit Euler
//! integration at τ = 0.02 s, in f64, and the same termination thresholds (|x| > 2.4 m or
//! |θ| > 12°). The 500-step limit is a time-limit truncation applied by the episode runner, not
//! a termination. The command is the horizontal force in newtons (gymnasium's action 0/1 is
//! −10/+10 N); signals are `x, x_dot, theta, theta_dot`.

use super::{uniform, Plant};

pub const GRAVITY: f64 = 9.8;
pub const MASS_CART: f64 = 1.0;
pub const MASS_POLE: f64 = 0.1;
pub const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
/// Half the pole's length.
pub const LENGTH: f64 = 0.5;
pub const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
pub const FORCE_MAG: f64 = 10.0;
pub const TAU: f64 = 0.02;
pub const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
pub const X_THRESHOLD: f64 = 2.4;

#[derive(Clone, Debug, Default)]
pub struct CartPole {
    /// `[x, x_dot, theta, theta_dot]`.
    pub state: [f64; 4],
}

impl CartPole {
    pub const SIGNALS: [&'static str; 4] = ["x", "x_dot", "theta", "theta_dot"];

    /// True when the state is outside the track or the pole has fallen.
    pub fn terminated(&self) -> bool {
        let [x, _, theta, _] = self.state;
        !(-X_THRESHOLD..=X_THRESHOLD).contains(&x) || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta)
    }
}

impl Plant for CartPole {
    fn signal_names(&self) -> &'static [&'static str] {
        &Self::SIGNALS
    }

    fn command_names(&self) -> &'static [&'static str] {
        &["force"]
    }

    fn command_bounds(&self) -> &'static [(f32, f32)] {
        &[(-FORCE_MAG as f32, FORCE_MAG as f32)]
    }

    fn reset(&mut self, rng: &mut dyn rand_core::RngCore) {
        for v in &mut self.state {
            *v = uniform(rng, -0.05, 0.05);
        }
    }

    fn step(&mut self, command: &[f32]) -> bool {
        let force = (command[0] as f64).clamp(-FORCE_MAG, FORCE_MAG);
        let [x, x_dot, theta, theta_dot] = self.state;
        let (sin, cos) = theta.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
        let theta_acc =
            (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        self.state =
            [x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc];
        self.terminated()
    }

    fn signals(&self, out: &mut [f32]) {
        for (o, s) in out.iter_mut().zip(&self.state) {
            *o = *s as f32;
        }
    }

    fn set_from_signals(&mut self, signals: &[f32]) -> bool {
        for (s, v) in self.state.iter_mut().zip(signals) {
            *s = *v as f64;
        }
        signals.len() >= 4
    }
}
