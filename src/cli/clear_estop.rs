//! `resq clear-estop`: the operator's explicit, logged clear of a latched e-stop.

use std::path::Path;

use anyhow::Result;

use super::LinkMode;
use crate::error::Fixable;
use crate::Bundle;

/// Connects to the firmware on `port` for `bundle`, sends `ClearEstop`, and reports the latch.
pub fn clear_estop(bundle: &Path, port: &str, mode: LinkMode) -> Result<()> {
    let b = Bundle::load(bundle)?;
    let mut env = b.link_env(super::link_config(port, mode, &b))?;
    if env.clear_estop()? {
        println!("{port}: the e-stop latch is clear; the robot takes commands again");
        Ok(())
    } else {
        Err(Fixable::new(
            format!("{port}: the firmware keeps its e-stop latched after ClearEstop"),
            "release the physical e-stop (or clear the fault the firmware reports), then run `resq clear-estop` again",
        )
        .into())
    }
}
