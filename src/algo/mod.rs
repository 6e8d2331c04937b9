//! Customization algorithms, one file per algorithm, each stating its equations.

pub mod replay;
pub mod rql_discrete;
