//! The robot: the [`Env`] interface every robot implements, the built-in simulated robot
//! ([`sim`]), the serial link to firmware ([`link`]), the firmware child process of a `[sim]
//! firmware` bundle ([`firmware_process`]), the hardware-in-the-loop rig ([`rig`]) and real-time
//! scheduling ([`rt`]), and ROS 2's wire format as rmw_zenoh speaks it ([`ros2`]). Knows nothing
//! of bundles or learning.

pub mod env;
pub mod firmware_process;
pub mod link;
pub mod rig;
pub mod ros2;
pub mod rt;
pub mod sim;

pub use env::{Env, EnvError, LinkCounters, StepEnd};
pub use sim::SimEnv;
