//! The `resq` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use resq::customize::{self, Options};
use resq::{plot, report, Bundle};

#[derive(Parser)]
#[command(
    name = "resq",
    version,
    about = "Customize a robot's deployed policy on the robot (residual Q-learning over an ONNX prior)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Learn the bundle's add-on requirement on the built-in simulated robot, then compare the
    /// prior and the customized policy (table, JSON report, PNG plot, checkpoint).
    Customize(Learn),
    /// Load and validate a bundle, and say how its prior runs.
    Check { bundle: PathBuf },
    /// Serve the bundle's simulated robot as firmware on a new pseudo-terminal (hardware in the
    /// loop without hardware): prints the device path to pass to `resq run --port`.
    Rig {
        bundle: PathBuf,
        /// `lockstep` (the robot waits for each command: faster than real time) or `realtime`.
        #[arg(long, default_value = "lockstep")]
        mode: String,
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
    /// Customize over a serial link to firmware (a robot, or `resq rig`), recording every tick.
    Run {
        #[command(flatten)]
        learn: Learn,
        /// Serial device of the firmware.
        #[arg(long)]
        port: String,
        /// `lockstep` or `realtime` (must match the firmware).
        #[arg(long, default_value = "lockstep")]
        mode: String,
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

/// What `customize` (simulated robot) and `run` (robot over a serial link) share.
#[derive(Args)]
struct Learn {
    /// The model bundle folder (manifest.toml + prior.onnx), e.g. models/cartpole.
    bundle: PathBuf,
    /// Total environment steps to learn for (default: the manifest's `run.steps`). A run
    /// resumed from a checkpoint continues up to this number.
    #[arg(long)]
    steps: Option<u64>,
    /// Random seed (default: the manifest's `run.seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder for the checkpoint, report and plot (default: runs/<bundle name>, with `-link`
    /// for `run`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the JSON report (default: <out>/report.json).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where to write the PNG plot (default: <out>/plot.png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Start over, ignoring (and then replacing) an existing checkpoint.
    #[arg(long)]
    fresh: bool,
    /// Evaluation episodes per policy (default: the manifest's).
    #[arg(long)]
    episodes: Option<usize>,
    /// Evaluate the customized policy every N environment steps (on evaluation starts, not
    /// counted as training) for the learning curve: `<out>/curve.jsonl`, the report's `curve`
    /// and the plot.
    #[arg(long, value_name = "N")]
    eval_every: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Override a manifest field for this run, e.g. `--set learning.n_step=5` (repeatable).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    overrides: Vec<String>,
}

impl Learn {
    /// The bundle, and run options whose output folder defaults to runs/<name><suffix>.
    fn load(&self, out_suffix: &str) -> Result<(Bundle, Options)> {
        let b = Bundle::load_with(&self.bundle, &self.overrides)?;
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}{out_suffix}", b.manifest.bundle.name)));
        let opts = Options {
            fresh: self.fresh,
            eval_episodes: self.episodes,
            eval_every: self.eval_every.unwrap_or(0),
            progress: !self.quiet,
            ..Options::new(
                self.steps.unwrap_or(b.manifest.run.steps),
                self.seed.unwrap_or(b.manifest.run.seed),
                out,
            )
        };
        Ok((b, opts))
    }

    /// Prints the table and writes the report and the plot.
    fn finish(&self, name: &str, metric: &str, opts: &Options, outcome: &customize::Outcome) -> Result<()> {
        println!("\n{}", report::table(outcome));
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
            println!(
                "training episodes failed: {} of {} ({:.1} %); the prior as deployed fails {:.1} %",
                h.episodes_failed(),
                h.episode_success.len(),
                100.0 * h.failure_rate(),
                100.0 * (1.0 - outcome.prior.success_rate)
            );
        }
        let curve = report::curve(outcome);
        if !curve.is_empty() {
            println!("learning curve (the customized policy, evaluated as at the end):");
            println!("{:>10} {:>8} {:>14} {:>14}", "steps", "success", "add-on return", metric);
            for p in &curve {
                let g = |k: &str| p.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
                println!(
                    "{:>10} {:>8.2} {:>14.4} {:>14.4}",
                    g("env_steps"),
                    g("success_rate"),
                    g("addon_return"),
                    g(metric)
                );
            }
        }
        let report_path = self.report.clone().unwrap_or_else(|| opts.out_dir.join("report.json"));
        report::write_json(&report_path, &report::to_json(name, opts.seed, outcome))?;
        let plot_path = self.plot.clone().unwrap_or_else(|| opts.out_dir.join("plot.png"));
        plot::write(
            &plot_path,
            &format!("resq customize {name}: {} steps", outcome.env_steps),
            metric,
            outcome,
        )?;
        println!("report: {}\nplot:   {}", report_path.display(), plot_path.display());
        Ok(())
    }
}

/// The bundle's first metric (plotted), or the add-on reward.
fn first_metric(b: &Bundle) -> String {
    b.metrics.first().map(|m| m.name.clone()).unwrap_or_else(|| "add-on".into())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_mode(mode: &str) -> Result<firmware_bridge::Mode> {
    match mode {
        "lockstep" => Ok(firmware_bridge::Mode::LockStep),
        "realtime" => Ok(firmware_bridge::Mode::RealTime),
        other => anyhow::bail!("unknown mode `{other}`: use lockstep or realtime"),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { record, json } => {
            let s = resq::record::inspect(&record)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{s}");
            }
            Ok(())
        }
        Command::Rig { bundle, mode, rate, link, rt_priority } => {
            let b = Bundle::load(&bundle)?;
            let mode = parse_mode(&mode)?;
            let period_us = (1e6 / rate.max(1.0)) as u32;
            let Some(plant) = b.sim_plant.clone() else {
                anyhow::bail!(
                    "{} names no built-in simulated robot ([sim] plant)\n  fix: serve your simulator with its firmware command (`[sim] firmware`), or with the reference firmware (`resq-firmware --env <gymnasium id> --port pty`, see the README's \"Bring your own robot\"), or connect the robot itself",
                    b.manifest_path.display()
                );
            };
            let fw = firmware_bridge::firmware::SimFirmware::new(
                &plant,
                mode,
                period_us,
                std::process::id() as u64,
            )
            .ok_or_else(|| anyhow::anyhow!("no simulated firmware for plant `{plant}`"))?;
            let link =
                link.unwrap_or_else(|| PathBuf::from(format!("/tmp/resq-rig-{}", b.manifest.bundle.name)));
            let mut rig = resq::rig::Rig::new(fw, resq::rig::Faults::default(), link.clone(), 1);
            rig.rt_priority = rt_priority;
            let stop = std::sync::atomic::AtomicBool::new(false);
            rig.serve(&stop, |path| {
                println!("simulated {plant} firmware ({mode:?}) on {path}");
                println!("stable link: {}", link.display());
                println!(
                    "in another terminal:  cargo run --release -- run --port {} {}",
                    link.display(),
                    bundle.display()
                );
            })?;
            Ok(())
        }
        Command::Run { learn, port, mode, record, reconnect_within, rt_priority } => {
            let (b, mut opts) = learn.load("-link")?;
            opts.rt_priority = rt_priority;
            let name = b.manifest.bundle.name.clone();
            let metric = first_metric(&b);
            opts.record = Some(record.unwrap_or_else(|| opts.out_dir.join("record.mcap")));
            opts.source = port.clone();
            let mut cfg = resq::link::LinkConfig::lock_step(&port);
            cfg.mode = parse_mode(&mode)?;
            cfg.reconnect_within = std::time::Duration::from_secs_f64(reconnect_within);
            if cfg.mode == firmware_bridge::Mode::RealTime {
                cfg.period_us = b.manifest.robot.period_ms.map_or(0, |ms| (ms * 1000.0).round() as u32);
            }
            let mut env = resq::link::LinkEnv::for_bundle(cfg, &b)?;
            eprintln!(
                "customizing `{name}` over {port} for {} steps; checkpoint in {}",
                opts.steps,
                opts.out_dir.display()
            );
            let outcome = customize::run_in(b, &mut env, &opts)?;
            let c = outcome.link;
            println!(
                "link: {} frames, {} CRC errors, {} other rejected, {} sequence gaps, {} duplicates, {} late, {} reconnects",
                c.frames, c.crc_errors, c.other_errors, c.seq_gaps, c.duplicates, c.late_frames, c.reconnects
            );
            if let (Some(r), Some(path)) = (&outcome.record_stats, &opts.record) {
                println!("record: {} ticks written, {} dropped -> {}", r.written, r.dropped, path.display());
            }
            learn.finish(&name, &metric, &opts, &outcome)
        }
        Command::Check { bundle } => {
            let b = Bundle::load(&bundle)?;
            println!("{}: ok", b.manifest_path.display());
            let kind = match b.prior.kind {
                resq::prior::PriorKind::DiscreteQ { temperature } => {
                    format!("discrete_q (temperature {temperature})")
                }
                resq::prior::PriorKind::Deterministic { std } => {
                    format!("deterministic (exploration std {std})")
                }
                k => k.name().to_string(),
            };
            let describe = |names: &[String]| names.join(", ");
            println!("  robot: {} signal(s) [{}]", b.signals.len(), describe(&b.signals));
            println!("         {} command(s) [{}]", b.commands.len(), describe(&b.commands));
            let e = &b.episode;
            let limit = if e.max_steps > 0 {
                format!("time limit {} steps", e.max_steps)
            } else {
                "no time limit".into()
            };
            if e.continuing {
                println!("  episodes: continuing task, statistics over windows of {} steps", e.window);
            } else {
                println!(
                    "  episodes: {limit}{}; reset by the {}",
                    e.terminate
                        .as_ref()
                        .map_or(String::new(), |t| format!(", terminate when `{}`", t.source())),
                    if e.operator_reset { "operator (firmware reports WAITING)" } else { "firmware" }
                );
            }
            match (&b.sim_plant, &b.sim_firmware) {
                (Some(p), _) => println!("  simulated robot: built-in `{p}` (resq customize, resq rig)"),
                (_, Some(c)) => println!("  simulated robot: `{c}` on a pseudo-terminal (resq customize)"),
                _ => println!(
                    "  no simulated robot: run it over the link (resq run {} --port <device>)",
                    bundle.display()
                ),
            }
            println!("  prior: {kind}, {} observation(s) -> {} action(s)", b.prior.n_obs, b.prior.n_actions);
            match &b.prior.fallback_reason {
                None => println!(
                    "  runs on resq's allocation-free kernels ({}), checked against tract",
                    resq::nn::kernels::isa().name()
                ),
                Some(r) => println!("  runs through tract (allocates, not real-time safe): {r}"),
            }
            println!("  add-on terms: {}", b.addon.term_names().collect::<Vec<_>>().join(", "));
            let r = &b.manifest.residual;
            let method = match b.method {
                resq::bundle::Method::DiscreteQ => "residual soft Q over every action".to_string(),
                resq::bundle::Method::Sampled => {
                    format!("sampled residual Q, K = {} candidates", r.candidates)
                }
                resq::bundle::Method::Sac => "residual SAC (actor + twin critics)".to_string(),
                resq::bundle::Method::Rpg => format!(
                    "residual policy gradient (PPO, rollout {}, {} epochs, clip {}, GAE λ {})",
                    b.manifest.learning.rollout,
                    b.manifest.learning.epochs,
                    b.manifest.learning.clip,
                    b.manifest.learning.gae_lambda
                ),
            };
            println!("  method: {method}; ω' = {}, α̂ = {}, head {:?}", r.omega, r.alpha, r.hidden);
            Ok(())
        }
        Command::Bench { bundle, json, sets } => {
            let load = || -> Result<Bundle> { Ok(Bundle::load_with(&bundle, &sets)?) };
            let scratch = tempfile::tempdir()?;
            eprintln!("measuring {} (a short customization fills the replay first) ...", bundle.display());
            let r = resq::bench::run(&load, scratch.path(), 0)?;
            print!("{}", r.table());
            if let Some(path) = json {
                resq::report::write_json(&path, &r.to_json())?;
                println!("json: {}", path.display());
            }
            Ok(())
        }
        Command::Export { bundle, out, from, sets } => {
            let mut b = Bundle::load_with(&bundle, &sets)?;
            let dir = from.unwrap_or_else(|| PathBuf::from("runs").join(&b.manifest.bundle.name));
            let ckpt = dir.join(customize::CHECKPOINT_FILE);
            if !ckpt.exists() {
                anyhow::bail!(
                    "no checkpoint at {}.\n  fix: customize first (`resq customize {}`), or pass --from <the run's --out folder>",
                    ckpt.display(),
                    bundle.display()
                );
            }
            let mut learner = customize::make_learner(&b, 0);
            let progress = resq::checkpoint::load(&ckpt, learner.as_mut(), &b.manifest_text)?;
            if let Some(t) = progress.prior_temperature {
                b.prior.kind = resq::prior::PriorKind::DiscreteQ { temperature: t };
            }
            let e = resq::export::export(&b, learner.as_ref(), &out)?;
            println!(
                "{}: the policy learned over {} steps ({} nodes); inputs {}; outputs {}",
                out.display(),
                progress.env_steps,
                e.nodes,
                e.inputs.join(", "),
                e.outputs.join(", ")
            );
            if b.manifest.exploration.kl_budget_end > 0.0 {
                println!("  note: the bundle's KL budget is not in the file: it is the unconstrained customized policy");
            }
            Ok(())
        }
        Command::Customize(learn) => {
            let (b, opts) = learn.load("")?;
            let name = b.manifest.bundle.name.clone();
            let metric = first_metric(&b);
            let robot = match (&b.sim_plant, &b.sim_firmware) {
                (Some(p), _) => format!("the simulated {p}"),
                (_, Some(_)) => "the simulated robot ([sim] firmware)".to_string(),
                _ => "a simulated robot".to_string(),
            };
            eprintln!(
                "customizing `{name}` on {} for {} steps (seed {}); checkpoint in {}",
                robot,
                opts.steps,
                opts.seed,
                opts.out_dir.display()
            );
            let outcome = customize::run(b, &opts)?;
            learn.finish(&name, &metric, &opts, &outcome)
        }
    }
}
