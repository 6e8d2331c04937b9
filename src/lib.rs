//! resq: customize a robot's deployed policy on the robot.
//!
//! A frozen prior π0 (ONNX, loaded with tract) keeps its character; an add-on reward `r_R`
//! written over the robot's signals states the new requirement; resq learns a small residual
//! `Q_R` online so that the robot acts with
//! `π̂(a|s) ∝ exp((Q_R(s,a) + ω'·log π0(a|s)) / α̂)` — the max-ent optimum of the prior's task
//! plus the add-on task, without the prior's reward. The math is `docs/design.md` §1.
//!
//! # The map
//!
//! Rooms, lowest first; each imports only rooms above it in this list
//! (`docs/architecture.md` draws the same graph):
//!
//! | room | owns |
//! |---|---|
//! | [`error`] | [`BundleError`]: a problem with a model file, naming file, field, what was found and the fix |
//! | [`streams`] | the named random streams, each derived from the run's seed in one place |
//! | [`nn`] | small dense networks, Adam, the SIMD kernels (GEMM, dot products) |
//! | [`policy`] | the prior π0 (ONNX → resq's kernels or tract) and the acting math (softmax over `Q_R + ω'·log π0`, the KL budget, continuous candidates) |
//! | [`algo`] | the learners: replay, residual soft-Q, sampled residual Q, residual SAC, RPG |
//! | [`robot`] | the [`robot::Env`] every robot implements: the simulated robot, the serial link, the rig, real-time scheduling |
//! | [`bundle`] | the model bundle: manifest, add-on reward expressions, loading and checking |
//! | [`control`] | the controller (signals → command), the supervisor, and the one control loop ([`control::Stepper`]) |
//! | [`store`] | checkpoint, MCAP records, ONNX export |
//! | [`session`] | customize, evaluate, calibrate, learning curve, failure guard, learner thread, report, plot |
//! | [`cli`] | the `resq` command line, one file per subcommand |
//!
//! Data flow per tick: [`robot::Env`] → [`bundle::ObsLayout`] → [`policy::prior`] → residual
//! ([`nn`]) → [`control::Controller`] → [`control::Supervisor`] → command; the add-on reward
//! ([`bundle::reward`]) → the learner ([`algo`]).
//!
//! The wire protocol is the `firmware-bridge` crate (`no_std`); the simulated plants and the
//! simulated firmware are the `sim-robot` crate.

pub mod algo;
pub mod bundle;
pub mod cli;
pub mod control;
pub mod error;
pub mod nn;
pub mod policy;
pub mod robot;
pub mod session;
pub mod store;
pub mod streams;

pub use bundle::Bundle;
pub use error::BundleError;
