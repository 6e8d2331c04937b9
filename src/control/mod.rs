//! Control: the [`Controller`] (signals → observation → prior → residual → command, one
//! decision a tick), the [`Supervisor`] that filters every command (limits, rate, e-stop), the
//! tick's [`Decisions`], and the one control loop, [`Stepper`], through which training,
//! evaluation and calibration all step the robot.

pub mod controller;
pub mod decisions;
pub mod plan;
pub mod stepper;
pub mod supervisor;

pub use controller::{ActMode, Controller, Decision, PolicyChoice};
pub use decisions::Decisions;
pub use stepper::Stepper;
pub use supervisor::Supervisor;
