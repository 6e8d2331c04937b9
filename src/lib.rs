//! resq: customize a robot's deployed policy on the robot.
//!
//! A frozen prior π0 (ONNX, loaded with tract) keeps its character; an add-on reward `r_R`
//! written over the robot's signals states the new requirement; resq learns a small residual
//! `Q_R` online so that the robot acts with
//! `π̂(a|s) ∝ exp((Q_R(s,a) + ω'·log π0(a|s)) / α̂)` — the max-ent optimum of the prior's task
//! plus the add-on task, without the prior's reward. See `DESIGN.md` §1 (shared) for the math.
//!
//! Data flow per tick: [`sim`]/link → [`bundle::ObsLayout`] → [`prior`] → residual
//! ([`nn`]) → [`control`] → command; [`reward`] → [`algo::replay`] → [`algo::rql_discrete`].

pub mod algo;
pub mod bench;
pub mod bundle;
pub mod calibrate;
pub mod checkpoint;
pub mod control;
pub mod control_continuous;
pub mod curve;
pub mod customize;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod firmware_process;
pub mod guard;
pub mod learning;
pub mod link;
pub mod nn;

pub mod plot;
pub use firmware_bridge::plant;
pub mod prior;
pub mod record;
pub mod report;
pub mod reward;
pub mod rig;
pub mod rt;
pub mod sim;
pub mod supervisor;

pub use bundle::Bundle;
pub use error::BundleError;
