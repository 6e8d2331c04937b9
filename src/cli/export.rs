//! `resq export`: the customized policy of a run as one ONNX file.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::Fixable;
use crate::session::customize::{self, CHECKPOINT_FILE};
use crate::store::{checkpoint, export};
use crate::Bundle;

/// Exports the checkpoint in `from` (default runs/<bundle name>) to `out`.
pub fn export(bundle: &Path, out: &Path, from: Option<PathBuf>, sets: &[String]) -> Result<()> {
    let mut b = Bundle::load_with(bundle, sets)?;
    let dir = from.unwrap_or_else(|| PathBuf::from("runs").join(&b.manifest.bundle.name));
    let ckpt = dir.join(CHECKPOINT_FILE);
    if !ckpt.exists() {
        return Err(Fixable::new(
            format!("no checkpoint at {}", ckpt.display()),
            format!(
                "customize first (`resq customize {}`), or pass --from <the run's --out folder>",
                bundle.display()
            ),
        )
        .into());
    }
    let mut learner = customize::make_learner(&b, 0);
    let progress = checkpoint::load(&ckpt, learner.as_mut(), &b.manifest_text)?;
    crate::session::trade_off::resume(&mut b, learner.as_mut(), progress.weight_scale);
    if let Some(t) = progress.prior_temperature {
        b.prior.kind = crate::policy::prior::PriorKind::DiscreteQ { temperature: t };
    }
    let e = export::export(&b, learner.as_ref(), out)?;
    println!(
        "{}: the policy learned over {} steps ({} nodes); inputs {}; outputs {}",
        out.display(),
        progress.env_steps,
        e.nodes,
        e.inputs.join(", "),
        e.outputs.join(", ")
    );
    if b.manifest.exploration.kl_budget_end > 0.0 {
        println!(
            "  note: the bundle's KL budget is not in the file: it is the unconstrained customized policy"
        );
    }
    Ok(())
}
