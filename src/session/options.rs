//! The options of one customization run (`resq customize`, `resq run`).

use std::path::PathBuf;

/// Options of one `resq customize` run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Total environment steps to learn for (a resumed run continues up to it).
    pub steps: u64,
    pub seed: u64,
    /// Folder for the checkpoint (and default report and plot paths).
    pub out_dir: PathBuf,
    /// Ignore an existing checkpoint.
    pub fresh: bool,
    /// Evaluation episodes (the manifest's by default).
    pub eval_episodes: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
    /// Write every training tick to this MCAP file.
    pub record: Option<PathBuf>,
    /// Where the robot is (for the record): "sim" or the serial port.
    pub source: String,
    /// Evaluate the customized policy every this many environment steps (0: never), at the
    /// first episode end from there, for the learning curve (`<out>/curve.jsonl`).
    pub eval_every: u64,
    /// Run the control loop under `SCHED_FIFO` at this priority (1–99; see [`crate::robot::rt`]).
    pub rt_priority: Option<u8>,
    /// Run `[safety] prior_episodes` whole episodes of the prior, acting as training acts,
    /// before learning to measure its failure rate (the failure guard's baseline; otherwise only
    /// the warm-up's episodes count). A resumed run takes the checkpoint's instead.
    pub measure_prior: bool,
    /// The prior acts alone, as `[exploration] mode` says, and nothing is learned: a record of
    /// the prior at work (for `resq learn --from`).
    pub prior_only: bool,
}

impl Options {
    /// A quiet in-process run to `steps` (no progress bar, no record, resumes a checkpoint in
    /// `out_dir`, the manifest's evaluation episodes, the prior's failure rate measured); set the
    /// other fields with `..`.
    pub fn new(steps: u64, seed: u64, out_dir: impl Into<PathBuf>) -> Self {
        Options {
            steps,
            seed,
            out_dir: out_dir.into(),
            fresh: false,
            eval_episodes: None,
            progress: false,
            record: None,
            source: "sim".into(),
            eval_every: 0,
            rt_priority: None,
            measure_prior: true,
            prior_only: false,
        }
    }
}
