//! `resq inspect <record>`: read a record written by the [`Recorder`](super::Recorder) back and
//! summarise it — timing, supervisor decisions, link health, recorder drops, and the add-on
//! reward over the run.
//!
//! Percentiles are nearest-rank: the `p`-th percentile of `n` sorted values is the value at
//! (1-based) rank `⌈p·n/100⌉`.

use std::fmt;
use std::path::Path;

use anyhow::anyhow;
use serde::Serialize;

use super::read::Item;
use super::recorder::{RecorderStats, TOPIC_META};
use super::tick::RecordMeta;
use crate::robot::LinkCounters;

/// Nearest-rank percentiles of a duration, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// What `resq inspect` reports about one record file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The record file.
    pub path: String,
    /// The `/resq/meta` message.
    pub meta: RecordMeta,
    /// The file was read to its end and holds the recorder's final `/resq/stats` message
    /// (false for a recording cut short, e.g. by a crash).
    pub complete: bool,
    /// The error that ended reading early, if any (the numbers cover what was read before it).
    pub read_error: Option<String>,
    /// Tick records in the file.
    pub ticks: u64,
    /// `tick` of the first and last record.
    pub first_tick: u64,
    pub last_tick: u64,
    /// Tick numbers between the first and the last with no record (dropped by the recorder).
    pub ticks_missing: u64,
    /// `t_ns` of the last record minus that of the first, s.
    pub duration_s: f64,
    /// `(last_tick − first_tick) / duration_s` (0 if the duration is 0).
    pub tick_rate_hz: f64,
    /// Median of the periods (records with `period_ns > 0`), µs.
    pub period_median_us: f64,
    /// Percentiles of `|period − median period|` over the same records.
    pub period_jitter: Percentiles,
    /// Percentiles of `latency_ns` over all records.
    pub latency: Percentiles,
    /// Records with each decision flag set.
    pub deadline_misses: u64,
    pub fallbacks: u64,
    pub estop_ticks: u64,
    /// Times the e-stop flag went from clear (or the start) to set.
    pub estop_events: u64,
    pub clamped: u64,
    pub rate_limited: u64,
    pub kl_limited: u64,
    pub episodes_ended: u64,
    /// Of those, the episodes that ended by a termination (not a time limit).
    pub episodes_terminated: u64,
    /// Ticks with a signal outside its declared range (the prior acted alone).
    pub signal_faults: u64,
    /// Ticks on which the prior failed (the safe command was sent).
    pub prior_faults: u64,
    /// Real time: steps that did not follow from their command alone (not learned from).
    pub late_steps: u64,
    /// Link counters of the last record.
    pub link: LinkCounters,
    /// The recorder's final counts (`None` if the file has no `/resq/stats` message).
    pub recorder: Option<RecorderStats>,
    /// Mean finite add-on reward over all records (0 if none).
    pub addon_reward_mean: f64,
    /// Mean finite add-on reward in each tenth of the run by time: record `i` is in tenth
    /// `min(9, ⌊10·(t_ns(i) − t_first)/(t_last − t_first)⌋)` (all in tenth 0 if
    /// `t_last = t_first`); `None` for a tenth with no record. Empty if there are no records.
    pub addon_reward_tenths: Vec<Option<f64>>,
}

/// Reads the record at `path` and summarises it. A file that is not a readable MCAP, or an
/// MCAP without resq ticks, is an error naming the file; a file cut short after some ticks is
/// summarised up to the cut (`complete == false`, `read_error` says why).
pub fn inspect(path: &Path) -> anyhow::Result<Summary> {
    let name = path.display();
    let reader = super::read::messages(path)?;

    let mut s = Summary { path: name.to_string(), ..Summary::default() };
    let mut have_meta = false;
    let mut first: Option<(u64, u64)> = None; // (t_ns, tick)
    let mut last_t_ns = 0u64;
    let mut periods: Vec<u64> = Vec::new();
    let mut latencies: Vec<u64> = Vec::new();
    let mut rewards: Vec<(u64, f32)> = Vec::new();
    let mut estop_prev = false;
    let mut tick_set_min_max = (u64::MAX, 0u64);

    for item in reader {
        let item = match item {
            Ok(m) => m,
            Err(e) => {
                if s.ticks == 0 {
                    return Err(e);
                }
                log::warn!("{e:#}");
                s.read_error = Some(format!("{e:#}"));
                break;
            }
        };
        match item {
            Item::Tick(t, t_ns) => {
                // Log times are wall-clock, the run's start plus the tick's monotonic t_ns;
                // only differences are used here.
                if first.is_none() {
                    first = Some((t_ns, t.tick));
                }
                s.ticks += 1;
                last_t_ns = t_ns;
                s.last_tick = t.tick;
                tick_set_min_max.0 = tick_set_min_max.0.min(t.tick);
                tick_set_min_max.1 = tick_set_min_max.1.max(t.tick);
                if t.period_ns > 0 {
                    periods.push(t.period_ns);
                }
                latencies.push(t.latency_ns as u64);
                rewards.push((t_ns, t.addon_reward));
                let d = t.decisions.unwrap_or_default();
                s.fallbacks += d.fallback as u64;
                s.deadline_misses += d.deadline_miss as u64;
                s.estop_ticks += d.estop as u64;
                s.estop_events += (d.estop && !estop_prev) as u64;
                estop_prev = d.estop;
                s.clamped += d.clamped as u64;
                s.rate_limited += d.rate_limited as u64;
                s.kl_limited += d.kl_limited as u64;
                s.episodes_ended += d.episode_end as u64;
                s.episodes_terminated += d.terminated as u64;
                s.signal_faults += d.signal_fault as u64;
                s.prior_faults += d.prior_fault as u64;
                s.late_steps += d.late as u64;
                s.link = t.link.unwrap_or_default().counters();
            }
            Item::Meta(m) => {
                s.meta = m;
                have_meta = true;
            }
            Item::Stats(st) => s.recorder = Some(st),
        }
    }
    if !have_meta {
        return Err(anyhow!("{name}: not a resq record (no {TOPIC_META} message)"));
    }
    s.complete = s.read_error.is_none() && s.recorder.is_some();

    let Some((t0, tick0)) = first else {
        return Ok(s);
    };
    s.first_tick = tick0;
    let span_ns = last_t_ns.saturating_sub(t0);
    s.duration_s = span_ns as f64 * 1e-9;
    let tick_span = s.last_tick.saturating_sub(tick0);
    s.tick_rate_hz = if span_ns > 0 { tick_span as f64 / s.duration_s } else { 0.0 };
    let (lo, hi) = tick_set_min_max;
    s.ticks_missing = (hi - lo + 1).saturating_sub(s.ticks);

    periods.sort_unstable();
    let median = percentile(&periods, 50.0).unwrap_or(0);
    s.period_median_us = median as f64 * 1e-3;
    let mut jitter: Vec<u64> = periods.iter().map(|&p| p.abs_diff(median)).collect();
    drop(periods);
    jitter.sort_unstable();
    s.period_jitter = percentiles(&jitter);
    latencies.sort_unstable();
    s.latency = percentiles(&latencies);

    let mut sum = [0f64; 10];
    let mut n = [0u64; 10];
    let (mut total, mut total_n) = (0f64, 0u64);
    for &(t, r) in &rewards {
        if !r.is_finite() {
            continue;
        }
        let k = tenth(t, t0, span_ns);
        sum[k] += r as f64;
        n[k] += 1;
        total += r as f64;
        total_n += 1;
    }
    s.addon_reward_mean = if total_n > 0 { total / total_n as f64 } else { 0.0 };
    s.addon_reward_tenths = (0..10).map(|k| (n[k] > 0).then(|| sum[k] / n[k] as f64)).collect();
    Ok(s)
}

fn tenth(t: u64, t0: u64, span: u64) -> usize {
    if span == 0 {
        return 0;
    }
    ((t.saturating_sub(t0) as u128 * 10 / span as u128) as usize).min(9)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

fn percentiles(sorted_ns: &[u64]) -> Percentiles {
    let us = |p| percentile(sorted_ns, p).unwrap_or(0) as f64 * 1e-3;
    Percentiles {
        p50_us: us(50.0),
        p90_us: us(90.0),
        p99_us: us(99.0),
        max_us: sorted_ns.last().copied().unwrap_or(0) as f64 * 1e-3,
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            self.p50_us, self.p90_us, self.p99_us, self.max_us
        )
    }
}

/// A one-line sparkline of the values (blank for `None`).
fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite = values.iter().flatten().copied();
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(v) if hi > lo => BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize],
            Some(_) => BARS[3],
        })
        .collect()
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.meta;
        writeln!(f, "record          {}", self.path)?;
        writeln!(
            f,
            "bundle          {}   source {}",
            if m.bundle.is_empty() { "?" } else { &m.bundle },
            if m.source.is_empty() { "?" } else { &m.source },
        )?;
        if !self.complete {
            match &self.read_error {
                Some(e) => writeln!(f, "INCOMPLETE      reading stopped early: {e}")?,
                None => {
                    writeln!(f, "INCOMPLETE      no final recorder stats (the recording was not finished)")?
                }
            }
        }
        if self.ticks == 0 {
            writeln!(f, "ticks           0 (no tick recorded)")?;
        } else {
            writeln!(f, "duration        {:.3} s", self.duration_s)?;
            writeln!(
                f,
                "ticks           {} (tick {}..{}, {} missing)   rate {:.1} Hz",
                self.ticks, self.first_tick, self.last_tick, self.ticks_missing, self.tick_rate_hz
            )?;
            writeln!(
                f,
                "period          median {:.1} µs; jitter |period − median| µs: {}",
                self.period_median_us, self.period_jitter
            )?;
            writeln!(f, "latency µs      {}", self.latency)?;
        }
        writeln!(
            f,
            "decisions       deadline misses {}   fallbacks {}   e-stops {} ({} ticks)   clamped {}   rate-limited {}   KL-limited {}",
            self.deadline_misses,
            self.fallbacks,
            self.estop_events,
            self.estop_ticks,
            self.clamped,
            self.rate_limited,
            self.kl_limited
        )?;
        writeln!(
            f,
            "episodes ended  {} ({} by a termination)   signals out of range {}   prior faults {}   late steps {}",
            self.episodes_ended, self.episodes_terminated, self.signal_faults, self.prior_faults, self.late_steps
        )?;
        let l = &self.link;
        writeln!(
            f,
            "link            frames {}   CRC errors {}   other errors {}   seq gaps {}   duplicates {}   late {}   reconnects {}",
            l.frames, l.crc_errors, l.other_errors, l.seq_gaps, l.duplicates, l.late_frames, l.reconnects
        )?;
        match &self.recorder {
            Some(r) => writeln!(f, "recorder        written {}   dropped {}", r.written, r.dropped)?,
            None => writeln!(f, "recorder        no stats (unfinished recording)")?,
        }
        if !self.addon_reward_tenths.is_empty() {
            writeln!(
                f,
                "add-on reward   mean {:.4}; per tenth of the run  {}",
                self.addon_reward_mean,
                sparkline(&self.addon_reward_tenths)
            )?;
            let cells: Vec<String> = self
                .addon_reward_tenths
                .iter()
                .map(|v| match v {
                    Some(v) => format!("{v:.4}"),
                    None => "-".into(),
                })
                .collect();
            writeln!(f, "                {}", cells.join("  "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&v, 91.0), Some(10));
        assert_eq!(percentile(&v, 100.0), Some(10));
        let p = percentiles(&[1000, 2000, 3000]);
        assert_eq!((p.p50_us, p.max_us), (2.0, 3.0));
    }

    #[test]
    fn tenths_split_the_time_span() {
        assert_eq!(tenth(5, 5, 0), 0);
        assert_eq!(tenth(100, 100, 1000), 0);
        assert_eq!(tenth(199, 100, 1000), 0);
        assert_eq!(tenth(200, 100, 1000), 1);
        assert_eq!(tenth(1099, 100, 1000), 9);
        assert_eq!(tenth(1100, 100, 1000), 9);
    }

    #[test]
    fn sparkline_scales_to_the_range() {
        assert_eq!(sparkline(&[Some(0.0), None, Some(1.0)]), "▁ █");
        assert_eq!(sparkline(&[Some(2.0), Some(2.0)]), "▄▄");
        assert_eq!(sparkline(&[]), "");
    }
}
