//! sim-robot: resq's simulated robots.
//!
//! - [`plant`]: the reference tasks' physics (CartPole, MountainCar, Pendulum), each written
//!   once. resq's in-process simulated robot steps them directly.
//! - [`firmware`]: the simulated firmware, which serves a plant over the wire protocol of the
//!   `firmware-bridge` crate exactly as a microcontroller would (`resq rig`, the HIL tests).
//!
//! This crate needs std; the protocol crate it serves stays `no_std`, so a firmware author
//! depends on the protocol alone.

pub mod firmware;
pub mod plant;
