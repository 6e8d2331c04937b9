//! A session on a robot: [`customize`] (learn the residual online, then compare) and its
//! training loop [`train`], [`evaluate`],
//! the prior's temperature calibration ([`calibrate`]) and [`confidence`], the learning [`curve`], the failure
//! [`guard`], the [`learning`] side (inline or on its own thread), the [`report`] and the
//! [`plot`].

pub mod calibrate;
pub mod confidence;
pub mod curve;
pub mod customize;
pub mod evaluate;
pub mod guard;
pub mod learning;
pub mod offline;
pub mod options;
pub mod plot;
pub mod report;
pub mod trade_off;
pub mod train;
