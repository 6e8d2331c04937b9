//! The `resq` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Customize {
        /// The model bundle folder (manifest.toml + prior.onnx), e.g. models/cartpole.
        bundle: PathBuf,
        /// Total environment steps to learn for (default: the manifest's `run.steps`). A run
        /// resumed from a checkpoint continues up to this number.
        #[arg(long)]
        steps: Option<u64>,
        /// Random seed (default: the manifest's `run.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Folder for the checkpoint, report and plot (default: runs/<bundle name>).
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
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Override a manifest field for this run, e.g. `--set learning.n_step=5` (repeatable).
        #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
        overrides: Vec<String>,
    },
    /// Load and validate a bundle, and say how its prior runs.
    Check { bundle: PathBuf },
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check { bundle } => {
            let b = Bundle::load(&bundle)?;
            println!("{}: ok", b.manifest_path.display());
            println!(
                "  prior: {:?}, {} observation(s) -> {} action(s)",
                b.prior.kind, b.prior.n_obs, b.prior.n_actions
            );
            match &b.prior.fallback_reason {
                None => println!(
                    "  runs on resq's allocation-free kernels ({}), checked against tract",
                    resq::nn::kernels::isa().name()
                ),
                Some(r) => println!("  runs through tract (allocates, not real-time safe): {r}"),
            }
            println!(
                "  add-on terms: {}",
                b.addon.term_names().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
        Command::Customize {
            bundle,
            steps,
            seed,
            out,
            report: report_path,
            plot: plot_path,
            fresh,
            episodes,
            quiet,
            overrides,
        } => {
            let b = Bundle::load_with(&bundle, &overrides)?;
            let name = b.manifest.bundle.name.clone();
            let metric = b
                .metrics
                .first()
                .map(|m| m.name.clone())
                .unwrap_or_else(|| "add-on".into());
            let out_dir = out.unwrap_or_else(|| PathBuf::from("runs").join(&name));
            let opts = Options {
                steps: steps.unwrap_or(b.manifest.run.steps),
                seed: seed.unwrap_or(b.manifest.run.seed),
                out_dir: out_dir.clone(),
                fresh,
                eval_episodes: episodes,
                progress: !quiet,
            };
            eprintln!(
                "customizing `{name}` on the simulated {} for {} steps (seed {}); checkpoint in {}",
                b.manifest.plant.name,
                opts.steps,
                opts.seed,
                out_dir.display()
            );
            let outcome = customize::run(b, &opts)?;
            println!("\n{}", report::table(&outcome));
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
            let report_path = report_path.unwrap_or_else(|| out_dir.join("report.json"));
            report::write_json(&report_path, &report::to_json(&name, opts.seed, &outcome))?;
            let plot_path = plot_path.unwrap_or_else(|| out_dir.join("plot.png"));
            plot::write(
                &plot_path,
                &format!("resq customize {name}: {} steps", outcome.env_steps),
                &metric,
                &outcome,
            )?;
            println!(
                "report: {}\nplot:   {}",
                report_path.display(),
                plot_path.display()
            );
            Ok(())
        }
    }
}
