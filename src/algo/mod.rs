//! Customization algorithms, one file per algorithm, each stating its equations.

pub mod core;
pub mod replay;
pub mod residual_sac;
pub mod rpg;
pub mod rql_discrete;
pub mod rql_sampled;
