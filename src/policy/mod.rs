//! The policy: the frozen prior π0 ([`prior`]) and the acting math that turns the prior and the
//! residual into the customized policy — [`discrete`] (softmax over `Q_R + ω'·log π0`, the KL
//! budget, drawing an action) and [`continuous`] (candidates or the residual actor over the
//! prior's Gaussian). Imports `nn` only.

use serde::{Deserialize, Serialize};

pub mod continuous;
pub mod discrete;
pub mod prior;

/// How the action is chosen from the acting policy (the manifest's `exploration.mode` and
/// `evaluation.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActMode {
    /// Draw from the policy.
    Sample,
    /// Take its most likely action.
    Greedy,
}
