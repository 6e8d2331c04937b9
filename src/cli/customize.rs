//! `resq customize` (on the bundle's simulated robot) and `resq run` (over a serial link to
//! firmware): the options they share, and the table, report and plot they both end with.
// Doc comments here are the `--help` text clap prints, where `<out>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::LinkMode;
use crate::error::Fixable;
use crate::session::customize::{self, Options, Outcome};
use crate::session::{plot, report};
use crate::Bundle;

/// What every command that learns and evaluates takes (`customize`, `run`, `learn`): the seed,
/// where its output goes, and the manifest's overrides.
#[derive(Args)]
pub struct RunArgs {
    /// Random seed (default: the manifest's `run.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder for the checkpoint, report and plot (default: runs/<bundle name>; `run`:
    /// runs/<bundle name>-link).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to write the JSON report (default: <out>/report.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Start over, ignoring (and then replacing) an existing checkpoint.
    #[arg(long)]
    pub fresh: bool,
    /// Evaluation episodes per policy (default: the manifest's).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Override a manifest field for this run, e.g. `--set learning.n_step=5` (repeatable).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub overrides: Vec<String>,
}

impl RunArgs {
    /// The output folder: `--out`, or runs/<name><suffix>.
    pub fn out_dir(&self, name: &str, suffix: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{name}{suffix}")))
    }
}

/// What `customize` (simulated robot) and `run` (robot over a serial link) share.
#[derive(Args)]
pub struct Learn {
    /// The model bundle folder (manifest.toml + prior.onnx), e.g. models/cartpole.
    pub bundle: PathBuf,
    /// Total environment steps to learn for (default: the manifest's `run.steps`). A run
    /// resumed from a checkpoint continues up to this number.
    #[arg(long)]
    pub steps: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Where to write the PNG plot (default: <out>/plot.png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Evaluate the customized policy every N environment steps (on evaluation starts, not
    /// counted as training) for the learning curve: `<out>/curve.jsonl`, the report's `curve`
    /// and the plot.
    #[arg(long, value_name = "N")]
    pub eval_every: Option<u64>,
    /// The prior acts alone (sampled or greedy, as `exploration.mode` says) and nothing is
    /// learned: a record of the prior at work, for `resq learn --from`.
    #[arg(long)]
    pub prior_only: bool,
}

/// `resq customize`, recording to `record` if given.
pub fn customize(learn: &Learn, record: Option<PathBuf>) -> Result<()> {
    let (b, mut opts) = learn.load("")?;
    opts.record = record;
    let name = b.manifest.bundle.name.clone();
    let metric = first_metric(&b);
    let robot = match (&b.sim_plant, &b.sim_firmware) {
        (Some(p), _) => format!("the simulated {p}"),
        (_, Some(_)) => "the simulated robot ([sim] firmware)".to_string(),
        _ => "a simulated robot".to_string(),
    };
    eprintln!(
        "customizing `{name}` on {robot} for {} steps (seed {}); checkpoint in {}",
        opts.steps,
        opts.seed,
        opts.out_dir.display()
    );
    let outcome = customize::outcome_of(customize::run(b, &opts))?;
    if let (Some(r), Some(path)) = (&outcome.record_stats, &opts.record) {
        println!("record: {} ticks written, {} dropped -> {}", r.written, r.dropped, path.display());
    }
    learn.finish(&name, &metric, &opts, &outcome)
}

/// Where `resq run` finds the robot.
pub struct RobotArgs {
    pub port: Option<String>,
    pub router: Option<String>,
    /// `--mode`; absent: lock-step over the link, real time over ROS 2.
    pub mode: Option<LinkMode>,
    /// How long a lost robot may take to come back, s.
    pub reconnect_within: f64,
}

/// `resq run`.
pub fn run(learn: &Learn, robot: &RobotArgs, record: Option<PathBuf>, rt_priority: Option<u8>) -> Result<()> {
    let (b, mut opts) = learn.load("-link")?;
    opts.rt_priority = rt_priority;
    // On the robot, the prior's failure rate comes from its warm-up episodes, the checkpoint or
    // `[safety] prior_failure_rate`: no extra episodes before learning.
    opts.measure_prior = false;
    let name = b.manifest.bundle.name.clone();
    let metric = first_metric(&b);
    opts.record = Some(record.unwrap_or_else(|| opts.out_dir.join("record.mcap")));
    let within = Duration::from_secs_f64(robot.reconnect_within);
    let mut env: Box<dyn crate::robot::Env> = match (&robot.port, b.over_ros2()) {
        (None, true) => {
            let real_time = robot.mode.unwrap_or(LinkMode::Realtime) == LinkMode::Realtime;
            let env = b.ros2_env(robot.router.as_deref(), real_time, within)?;
            opts.source = format!("ROS 2 via {}", robot.router.as_deref().unwrap_or("[ros2] router"));
            Box::new(env)
        }
        (Some(port), false) => {
            let mut cfg = super::link_config(port, robot.mode.unwrap_or(LinkMode::Lockstep), &b);
            cfg.reconnect_within = within;
            opts.source = port.clone();
            Box::new(b.link_env(cfg)?)
        }
        (Some(_), true) => bail!(Fixable::new(
            format!("{}: the robot is reached over ROS 2 (`[robot] transport = \"ros2\"`), not a serial port", b.manifest_path.display()),
            "leave out --port (give the Zenoh router with --router if it is not `[ros2] router`)",
        )),
        (None, false) => bail!(Fixable::new(
            "resq run needs the robot's serial port",
            "give it with --port (e.g. /dev/ttyACM0), or, for a ROS 2 robot, say `[robot] transport = \"ros2\"` in the manifest",
        )),
    };
    eprintln!(
        "customizing `{name}` over {} for {} steps; checkpoint in {}",
        opts.source,
        opts.steps,
        opts.out_dir.display()
    );
    let outcome = customize::outcome_of(customize::run_in(b, env.as_mut(), &opts))?;
    let c = outcome.link;
    println!(
        "link: {} frames, {} CRC errors, {} other rejected, {} sequence gaps, {} duplicates, {} late, {} reconnects",
        c.frames, c.crc_errors, c.other_errors, c.seq_gaps, c.duplicates, c.late_frames, c.reconnects
    );
    drop(env);
    if let (Some(r), Some(path)) = (&outcome.record_stats, &opts.record) {
        println!("record: {} ticks written, {} dropped -> {}", r.written, r.dropped, path.display());
    }
    learn.finish(&name, &metric, &opts, &outcome)
}

impl Learn {
    /// The bundle, and run options whose output folder defaults to runs/<name><suffix>.
    fn load(&self, out_suffix: &str) -> Result<(Bundle, Options)> {
        let r = &self.run;
        let b = Bundle::load_with(&self.bundle, &r.overrides)?;
        let out = r.out_dir(&b.manifest.bundle.name, out_suffix);
        let opts = Options {
            fresh: r.fresh,
            eval_episodes: r.episodes,
            eval_every: self.eval_every.unwrap_or(0),
            progress: !r.quiet,
            prior_only: self.prior_only,
            ..Options::new(
                self.steps.unwrap_or(b.manifest.run.steps),
                r.seed.unwrap_or(b.manifest.run.seed),
                out,
            )
        };
        Ok((b, opts))
    }

    /// Prints the table and writes the report and the plot.
    fn finish(&self, name: &str, metric: &str, opts: &Options, outcome: &Outcome) -> Result<()> {
        match &outcome.stopped {
            None => println!("\n{}", report::table(outcome)),
            Some(_) => println!(
                "\nstopped by the failure guard at step {}: not evaluated (the robot is driven no further)",
                outcome.env_steps
            ),
        }
        for w in report::warnings(outcome) {
            log::warn!("{w}");
        }
        println!(
            "learned for {} environment steps ({} updates, {:.1} s{})",
            outcome.env_steps,
            outcome.updates,
            outcome.wall_seconds,
            if outcome.resumed_from > 0 {
                format!(", resumed at step {}", outcome.resumed_from)
            } else {
                String::new()
            }
        );
        let h = &outcome.history;
        if !h.episode_success.is_empty() {
            let (n0, k0) = (outcome.prior_training_episodes.episodes, outcome.prior_training_episodes.failed);
            let warmup = if n0 > 0 {
                format!("the prior alone, acting as training acts, failed {k0} of {n0}")
            } else {
                "no whole episode of the prior alone was measured".to_string()
            };
            let eval = if outcome.prior.episodes > 0 {
                format!(
                    ", {:.1} % of its {} evaluation episodes",
                    100.0 * (1.0 - outcome.prior.success_rate),
                    outcome.prior.episodes
                )
            } else {
                String::new()
            };
            println!(
                "training episodes failed: {} of {} ({:.1} %); {warmup}{eval}",
                h.episodes_failed(),
                h.episode_success.len(),
                100.0 * h.failure_rate(),
            );
        }
        print_curve(outcome);
        let report_path = self.run.report.clone().unwrap_or_else(|| opts.out_dir.join("report.json"));
        report::write_json(&report_path, &report::to_json(name, opts.seed, outcome))?;
        let plot_path = self.plot.clone().unwrap_or_else(|| opts.out_dir.join("plot.png"));
        plot::write(
            &plot_path,
            &format!("resq customize {name}: {} steps", outcome.env_steps),
            metric,
            outcome,
        )?;
        println!("report: {}\nplot:   {}", report_path.display(), plot_path.display());
        match &outcome.stopped {
            Some(why) => Err(why.clone().into()),
            None => Ok(()),
        }
    }
}

/// The learning curve as a table: steps, success, add-on return and every metric of the bundle.
fn print_curve(outcome: &Outcome) {
    let curve = report::curve(outcome);
    if curve.is_empty() {
        return;
    }
    let metrics: Vec<&str> = outcome.controller.bundle.metrics.iter().map(|m| m.name.as_str()).collect();
    println!("learning curve (the customized policy, evaluated as at the end):");
    let mut head = format!("{:>10} {:>8} {:>14}", "steps", "success", "add-on return");
    for m in &metrics {
        head += &format!(" {:>w$}", m, w = m.len().max(10));
    }
    println!("{head}");
    for p in &curve {
        let g = |k: &str| p.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let mut line =
            format!("{:>10} {:>8.2} {:>14.4}", g("env_steps"), g("success_rate"), g("addon_return"));
        for m in &metrics {
            line += &format!(" {:>w$.4}", g(m), w = m.len().max(10));
        }
        println!("{line}");
    }
}

/// The bundle's first metric (plotted), or the add-on reward.
fn first_metric(b: &Bundle) -> String {
    b.metrics.first().map(|m| m.name.clone()).unwrap_or_else(|| "add-on".into())
}
