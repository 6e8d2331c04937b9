//! `resq learn <bundle> --from <record.mcap>...`: the residual learned offline from records,
//! then judged on the bundle's simulated robot as `resq customize` judges.
// Doc comments here are the `--help` text clap prints, where `<out>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::customize::RunArgs;
use crate::session::offline::{self, OfflineOptions};
use crate::session::report;
use crate::Bundle;

#[derive(Args)]
pub struct LearnFrom {
    /// The model bundle folder, e.g. models/cartpole.
    pub bundle: PathBuf,
    /// A record of this bundle's robot (MCAP, from `resq run` or `resq customize --record`);
    /// repeatable.
    #[arg(long = "from", value_name = "RECORD", required = true)]
    pub records: Vec<PathBuf>,
    /// Gradient steps (default: `learning.updates_per_tick` per recorded transition).
    #[arg(long)]
    pub updates: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `resq learn`.
pub fn learn(a: &LearnFrom) -> Result<()> {
    let r = &a.run;
    let b = Bundle::load_with(&a.bundle, &r.overrides)?;
    let name = b.manifest.bundle.name.clone();
    let opts = OfflineOptions {
        records: a.records.clone(),
        updates: a.updates,
        seed: r.seed.unwrap_or(b.manifest.run.seed),
        out_dir: r.out_dir(&name, ""),
        fresh: r.fresh,
        eval_episodes: r.episodes,
        progress: !r.quiet,
    };
    eprintln!(
        "learning `{name}` from {} record(s); checkpoint in {}",
        opts.records.len(),
        opts.out_dir.display()
    );
    let o = offline::learn(b, &opts)?;
    let c = &o.counts;
    println!(
        "records: {} ticks, {} transitions learned from ({} with an action no policy drew), {} skipped",
        c.ticks,
        c.transitions,
        c.not_drawn,
        c.skipped()
    );
    if let Some(share) = o.action_support {
        println!(
            "the records support {:.0} % of the action space at their states{}",
            100.0 * share,
            if o.offline_support > 0.0 {
                format!(
                    " (`learning.offline_support` = {}): elsewhere the policy keeps the prior's probabilities",
                    o.offline_support
                )
            } else {
                " (`learning.offline_support` = 0: the plain target, every action learned as the head generalises)"
                    .to_string()
            }
        );
    }
    match &o.evaluation {
        Some((prior, customized)) => println!("\n{}", report::comparison(prior, customized)),
        None => println!("no simulated robot in the bundle: the residual is not evaluated here"),
    }
    println!(
        "learned offline: {} updates, {:.1} s; checkpoint {}",
        o.updates,
        o.wall_seconds,
        o.checkpoint.display()
    );
    let path = r.report.clone().unwrap_or_else(|| opts.out_dir.join("report.json"));
    report::write_json(&path, &offline::to_json(&name, &opts, &o))?;
    println!("report: {}", path.display());
    Ok(())
}
