//! Per-tick records: the [`TickRecord`] the control loop fills, a recorder thread that writes
//! them to an MCAP file without ever blocking the loop, and `resq inspect`'s summary.

pub mod bag;
pub mod inspect;
pub mod proto;
pub mod read;
pub mod recorder;
pub mod tick;

pub use inspect::{inspect, Percentiles, Summary};
pub use recorder::{Recorder, RecorderStats, DEFAULT_CAPACITY};
pub use tick::{RecordMeta, TickRecord};
