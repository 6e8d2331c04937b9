//! The learning curve of a run (`resq customize --eval-every N`): the customized policy evaluated
//! every N environment steps, on the evaluation starts, which are never training starts.
//!
//! Each point is one line of `<out>/curve.jsonl`: `env_steps` and the numbers of
//! [`PolicyEval::to_map`] (the same names as the report's `customized`). A line is appended and
//! synced as soon as its evaluation ends, so a power cut loses at most the point being written;
//! a resumed run keeps the points up to the step it resumed from.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::session::evaluate::PolicyEval;

pub const CURVE_FILE: &str = "curve.jsonl";

/// A JSON object of the curve.
pub type Point = Map<String, Value>;

/// The curve so far and its file.
pub struct Curve {
    path: PathBuf,
    file: Option<File>,
    pub points: Vec<Point>,
}

impl Curve {
    /// Opens `<dir>/curve.jsonl`, keeping the points at or before `resumed_from` (none when the
    /// run starts fresh at step 0). A torn last line is dropped.
    pub fn open(dir: &Path, resumed_from: u64) -> Result<Curve> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(CURVE_FILE);
        let points: Vec<Point> = if resumed_from > 0 {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Point>(l).ok())
                .filter(|p| p.get("env_steps").and_then(Value::as_u64).is_some_and(|s| s <= resumed_from))
                .collect()
        } else {
            Vec::new()
        };
        let mut file = File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        for p in &points {
            writeln!(file, "{}", Value::Object(p.clone()))?;
        }
        file.sync_data()?;
        let file = Some(OpenOptions::new().append(true).open(&path)?);
        Ok(Curve { path, file, points })
    }

    /// No curve (a run without `--eval-every`): no file.
    pub fn none() -> Curve {
        Curve { path: PathBuf::new(), file: None, points: Vec::new() }
    }

    /// Appends the evaluation made at `env_steps`.
    pub fn push(&mut self, env_steps: u64, eval: &PolicyEval) -> Result<()> {
        let mut p = Point::new();
        p.insert("env_steps".into(), env_steps.into());
        p.extend(eval.to_map());
        if let Some(f) = &mut self.file {
            writeln!(f, "{}", Value::Object(p.clone()))
                .and_then(|_| f.sync_data())
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        self.points.push(p);
        Ok(())
    }
}

/// The first multiple of `every` after `step`: when the curve's next point is due.
pub fn next_due(step: u64, every: u64) -> u64 {
    (step / every + 1) * every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_curve_keeps_its_points_up_to_the_resume_and_drops_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("resq-curve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = Curve::open(&dir, 0).unwrap();
        let e = PolicyEval { episodes: 3, success_rate: 1.0, ..PolicyEval::default() };
        c.push(500, &e).unwrap();
        c.push(1000, &e).unwrap();
        c.push(1500, &e).unwrap();
        drop(c);
        // A power cut in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(dir.join(CURVE_FILE)).unwrap();
        write!(f, "{{\"env_steps\":2000,\"succ").unwrap();
        drop(f);
        let c = Curve::open(&dir, 1000).unwrap();
        let steps: Vec<u64> = c.points.iter().map(|p| p["env_steps"].as_u64().unwrap()).collect();
        assert_eq!(steps, [500, 1000]);
        assert_eq!(c.points[0]["success_rate"], 1.0);
        let text = std::fs::read_to_string(dir.join(CURVE_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(Curve::open(&dir, 0).unwrap().points.is_empty(), "a fresh run starts a new curve");
        assert_eq!(next_due(0, 250), 250);
        assert_eq!(next_due(250, 250), 500);
        assert_eq!(next_due(251, 250), 500);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
