//! Small dense networks: allocation-free batch-1 kernels for the control path, batched
//! forward/backward and Adam for the learner.

pub mod adam;
pub mod kernels;
pub mod mlp;

pub use adam::Adam;
pub use mlp::{Activation, Dense, Grads, Mlp, Scratch};
