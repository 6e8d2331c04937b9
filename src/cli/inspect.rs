//! `resq inspect`: a record's summary, as text or JSON.

use std::path::Path;

use anyhow::Result;

/// Prints the summary of the MCAP record at `record`.
pub fn inspect(record: &Path, json: bool) -> Result<()> {
    let s = crate::store::record::inspect(record)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{s}");
    }
    Ok(())
}
