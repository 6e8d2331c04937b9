//! `resq rig`: the bundle's built-in simulated robot as firmware on a pseudo-terminal.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::LinkMode;
use crate::error::Fixable;
use crate::robot::rig::{Faults, Rig};
use crate::Bundle;

/// Serves the bundle's `[sim] plant` until interrupted.
pub fn rig(
    bundle: &Path,
    mode: LinkMode,
    rate: f64,
    link: Option<PathBuf>,
    rt_priority: Option<u8>,
) -> Result<()> {
    let b = Bundle::load(bundle)?;
    let mode: firmware_bridge::Mode = mode.into();
    let period_us = (1e6 / rate.max(1.0)) as u32;
    let Some(plant) = b.sim_plant.clone() else {
        return Err(Fixable::new(
            format!("{} names no built-in simulated robot ([sim] plant)", b.manifest_path.display()),
            "serve your simulator with its firmware command (`[sim] firmware`), or with the reference firmware (`resq-firmware --env <gymnasium id> --port pty`, see docs/manifest.md), or connect the robot itself",
        )
        .into());
    };
    let fw = sim_robot::firmware::SimFirmware::new(&plant, mode, period_us, std::process::id() as u64)
        .ok_or_else(|| anyhow::anyhow!("no simulated firmware for plant `{plant}`"))?;
    let link = link.unwrap_or_else(|| PathBuf::from(format!("/tmp/resq-rig-{}", b.manifest.bundle.name)));
    let mut rig = Rig::new(fw, Faults::default(), link.clone(), 1);
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
