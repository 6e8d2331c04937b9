//! Customization algorithms, one file per algorithm, each stating its equations.

pub mod core;
pub mod replay;
pub mod rql_discrete;
pub mod rql_sampled;
