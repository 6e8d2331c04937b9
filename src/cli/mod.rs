//! The `resq` command line: the arguments ([`Cli`]) and one file per subcommand. This is the
//! edge where errors become messages (`anyhow`); the rooms below return typed errors.
// Doc comments here are the `--help` text clap prints, where `<out>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

pub mod bench;
mod check;
mod clear_estop;
mod customize;
mod export;
mod inspect;
mod learn;
mod rig;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

pub use customize::Learn;

#[derive(Parser)]
#[command(
    name = "resq",
    version,
    about = "Customize a robot's deployed policy on the robot (residual Q-learning over an ONNX prior)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How the firmware and resq take turns (PROTOCOL.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkMode {
    /// The robot waits for each command: faster than real time, deterministic.
    Lockstep,
    /// The robot steps on its own clock; a late command is flagged, never waited for.
    Realtime,
}

impl From<LinkMode> for firmware_bridge::Mode {
    fn from(m: LinkMode) -> Self {
        match m {
            LinkMode::Lockstep => firmware_bridge::Mode::LockStep,
            LinkMode::Realtime => firmware_bridge::Mode::RealTime,
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Learn the bundle's add-on requirement on the bundle's simulated robot (`[sim]`: the
    /// built-in plant or its firmware on a pseudo-terminal), then compare the prior and the
    /// customized policy (table, JSON report, PNG plot, checkpoint).
    Customize {
        #[command(flatten)]
        learn: Learn,
        /// Also record every training tick to this MCAP file, as `resq run` does (the records
        /// `resq inspect` reads).
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Learn the residual offline from records of the robot (the prior at work, or an earlier
    /// customization) into the bundle's checkpoint, then compare prior and customized policy on
    /// the bundle's simulated robot, as `customize` does; `customize`, `run` and `export` go on
    /// from the checkpoint.
    Learn(learn::LearnFrom),
    /// Load and validate a bundle, and say how its prior runs.
    Check { bundle: PathBuf },
    /// Serve the bundle's simulated robot as firmware on a new pseudo-terminal (hardware in the
    /// loop without hardware): prints the device path to pass to `resq run --port`.
    Rig {
        bundle: PathBuf,
        /// `lockstep` (the robot waits for each command: faster than real time) or `realtime`.
        #[arg(long, value_enum, default_value_t = LinkMode::Lockstep)]
        mode: LinkMode,
        /// Control rate in real-time mode, Hz.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Also create this stable symlink to the device (default: /tmp/resq-rig-<bundle name>).
        #[arg(long)]
        link: Option<PathBuf>,
        /// Serve under SCHED_FIFO at this priority (1-99): the simulated robot keeps its period
        /// on a busy computer, as a microcontroller would. Needs root, CAP_SYS_NICE or `ulimit -r`.
        #[arg(long, value_name = "N")]
        rt_priority: Option<u8>,
    },
    /// Measure, on this computer, what decides whether the bundle fits its control period: the
    /// prior alone (tract and resq's kernels), the whole control step (median, p99.9), a learner
    /// update, the GEMM rate and the memory; the ratios are to tract running the same prior.
    Bench {
        bundle: PathBuf,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Override a manifest field, e.g. `--set 'residual.method="rpg"'` (repeatable).
        #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Write the customized policy (prior + learned residual + action choice) as one ONNX file,
    /// to deploy without resq: inputs `obs` (and `prev_command` when the add-on reads it);
    /// outputs `log_probs`, `action`, `command` (discrete) or `command`, `mean`, `log_std`
    /// (continuous, greedy). The KL budget and the supervisor are not in the file.
    Export {
        bundle: PathBuf,
        /// Where to write the ONNX file.
        #[arg(long, default_value = "policy.onnx")]
        out: PathBuf,
        /// The run folder whose checkpoint to export (default: runs/<bundle name>, where
        /// `resq customize` writes).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Override a manifest field, as the run did (repeatable).
        #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Summarise a tick record (MCAP): tick rate, jitter, deadline misses, link errors,
    /// fallbacks, add-on reward over time.
    Inspect {
        record: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clear the robot's latched e-stop (an explicit operator action, logged): handshakes with
    /// the firmware the bundle is written for, sends ClearEstop, and says whether the latch is
    /// clear. resq never clears an e-stop on its own.
    ClearEstop {
        bundle: PathBuf,
        /// Serial device of the firmware.
        #[arg(long)]
        port: String,
        /// `lockstep` or `realtime` (must match the firmware).
        #[arg(long, value_enum, default_value_t = LinkMode::Lockstep)]
        mode: LinkMode,
    },
    /// Customize on a robot, recording every tick: over a serial link to its firmware (a robot,
    /// or `resq rig`), or over its ROS 2 topics (`[robot] transport = "ros2"`).
    Run {
        #[command(flatten)]
        learn: Learn,
        /// Serial device of the firmware (a serial robot).
        #[arg(long)]
        port: Option<String>,
        /// A ROS 2 robot: the Zenoh router's endpoint, instead of `[ros2] router`.
        #[arg(long)]
        router: Option<String>,
        /// `lockstep` or `realtime`: must match the firmware (default lockstep); a ROS 2 robot
        /// keeps its own time (default realtime), or, a simulator, steps on each command.
        #[arg(long, value_enum)]
        mode: Option<LinkMode>,
        /// MCAP record of every tick (default: <out>/record.mcap).
        #[arg(long)]
        record: Option<PathBuf>,
        /// After a lost link (unplugged cable, firmware reboot), how long to keep trying to
        /// reconnect before the run stops (what was learned is saved), s.
        #[arg(long, default_value_t = 10.0)]
        reconnect_within: f64,
        /// Run the control loop under SCHED_FIFO at this priority (1-99, e.g. 50), so that a
        /// busy computer does not delay its ticks; the learner thread stays ordinary. Needs root,
        /// CAP_SYS_NICE or `ulimit -r`. Linux only.
        #[arg(long, value_name = "N")]
        rt_priority: Option<u8>,
    },
}

/// The link to `bundle`'s firmware on `port` in `mode`: real time at the bundle's
/// `[robot] period_ms` (the firmware's own when absent).
fn link_config(port: &str, mode: LinkMode, bundle: &crate::Bundle) -> crate::robot::link::LinkConfig {
    let mut cfg = crate::robot::link::LinkConfig::lock_step(port);
    cfg.mode = mode.into();
    if cfg.mode == firmware_bridge::Mode::RealTime {
        cfg.period_us = bundle.manifest.robot.period_ms.map_or(0, |ms| (ms * 1000.0).round() as u32);
    }
    cfg
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Customize { learn, record } => customize::customize(&learn, record),
        Command::Run { learn, port, router, mode, record, reconnect_within, rt_priority } => {
            let robot = customize::RobotArgs { port, router, mode, reconnect_within };
            customize::run(&learn, &robot, record, rt_priority)
        }
        Command::Learn(a) => learn::learn(&a),
        Command::Check { bundle } => check::check(&bundle),
        Command::Rig { bundle, mode, rate, link, rt_priority } => {
            rig::rig(&bundle, mode, rate, link, rt_priority)
        }
        Command::Bench { bundle, json, sets } => bench::command(&bundle, json, &sets),
        Command::Export { bundle, out, from, sets } => export::export(&bundle, &out, from, &sets),
        Command::Inspect { record, json } => inspect::inspect(&record, json),
        Command::ClearEstop { bundle, port, mode } => clear_estop::clear_estop(&bundle, &port, mode),
    }
}
