//! Errors a user can act on: each names the file, the field, what was found and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with a model bundle (manifest, prior, checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleError {
    /// The file at fault.
    pub file: PathBuf,
    /// The field (e.g. `residual.alpha`), or a part of the file (`graph input`), if one applies.
    pub field: Option<String>,
    /// What is wrong, with the value found and the value expected.
    pub problem: String,
    /// What the user should do.
    pub fix: String,
}

impl BundleError {
    pub fn new(file: &Path, field: Option<&str>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        BundleError {
            file: file.to_path_buf(),
            field: field.map(str::to_string),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Shorthand for a problem with one manifest field.
    pub fn field(file: &Path, field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(file, Some(field), problem, fix)
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}\n  fix: {}", self.problem, self.fix)
    }
}

impl std::error::Error for BundleError {}

/// A problem outside a model file that the user can act on: what happened, and the fix. Printed
/// like a [`BundleError`], `<problem>\n  fix: <fix>`, so every error resq reports reads the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixable {
    pub problem: String,
    pub fix: String,
}

impl Fixable {
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Fixable { problem: problem.into(), fix: fix.into() }
    }
}

impl fmt::Display for Fixable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  fix: {}", self.problem, self.fix)
    }
}

impl std::error::Error for Fixable {}
