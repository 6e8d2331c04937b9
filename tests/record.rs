//! The recorder and `resq inspect`: synthetic ticks with known patterns are written, read back
//! and every number of the summary is checked against values computed here; a recorder that
//! cannot keep up drops (and counts) records without blocking or allocating; broken files give
//! errors that name them.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use resq::control::Decisions;
use resq::robot::LinkCounters;
use resq::store::record::{inspect, RecordMeta, Recorder, RecorderStats, TickRecord};

// ---- a counting allocator watching one thread (as in tests/no_alloc.rs) ----

mod common;
use common::alloc::{allocations_during, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- synthetic ticks ----

fn meta() -> RecordMeta {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    RecordMeta {
        bundle: "models/cartpole".into(),
        signals: s(&["x", "x_dot", "theta", "theta_dot"]),
        obs: s(&["x", "x_dot", "theta", "theta_dot"]),
        actions: s(&["left", "right"]),
        commands: s(&["force"]),
        addon_terms: s(&["centre", "smooth"]),
        source: "sim".into(),
        manifest_fnv1a64: "00112233445566ff".into(),
        prior_fnv1a64: "ffeeddccbbaa9988".into(),
    }
}

const N: u64 = 3000;
const T0_NS: u64 = 5_000_000;
const TICK0: u64 = 100;

fn period_ns(i: u64) -> u64 {
    if i == 0 {
        return 0;
    }
    let mut p = 1_000_000 + (i * 7919 % 2001) as i64 - 1000;
    if i % 500 == 250 {
        p += 250_000;
    }
    p as u64
}

fn latency_ns(i: u64) -> u32 {
    let l = 20_000 + (i * 104_729 % 30_000) as u32;
    if i % 1000 == 999 {
        400_000
    } else {
        l
    }
}

fn tick_number(i: u64) -> u64 {
    // Three tick numbers are skipped after record 1000 (as if the recorder had dropped them).
    TICK0 + i + if i > 1000 { 3 } else { 0 }
}

fn addon_terms(i: u64) -> [f32; 2] {
    [-((i % 300) as f32) / 300.0, -(i as f32) / (N as f32) * 0.5]
}

fn fallback(i: u64) -> bool {
    (1200..1260).contains(&i)
}
fn estop(i: u64) -> bool {
    (2000..2010).contains(&i) || (2500..2600).contains(&i)
}

fn synthetic() -> Vec<TickRecord> {
    let mut t = T0_NS;
    (0..N)
        .map(|i| {
            t += period_ns(i);
            let mut r = TickRecord {
                t_ns: t,
                tick: tick_number(i),
                seq: i as u32 * 2,
                firmware_t_us: t / 1000 + 17,
                n_signals: 4,
                n_obs: 4,
                n_actions: 2,
                action: (i % 2) as u32,
                n_commands: 1,
                n_terms: 2,
                kl: 1e-4 * (i % 5) as f32,
                // A drawn action's log-probability, NaN (not drawn) on every ninth tick.
                logpi: if i % 9 == 4 { f32::NAN } else { -0.1 * (i % 7) as f32 },
                latency_ns: latency_ns(i),
                period_ns: period_ns(i),
                ..TickRecord::default()
            };
            for k in 0..4 {
                r.signals[k] = (i as f32 * 0.01 + k as f32).sin();
                r.obs[k] = r.signals[k] / 2.0;
            }
            r.logp0[0] = -0.7;
            r.logp0[1] = -0.69;
            r.q_r[0] = if fallback(i) { f32::NAN } else { 0.01 * i as f32 };
            r.q_r[1] = -0.02;
            r.command[0] = if i % 2 == 0 { -10.0 } else { 10.0 };
            let terms = addon_terms(i);
            r.addon_terms[..2].copy_from_slice(&terms);
            r.addon_reward = terms[0] + terms[1];
            let mut d = 0u16;
            let mut set = |cond: bool, bit: u16| {
                if cond {
                    d |= bit
                }
            };
            set(fallback(i), Decisions::FALLBACK);
            set(i % 7 == 0, Decisions::DEADLINE_MISS);
            set(estop(i), Decisions::ESTOP);
            set(i % 11 == 3, Decisions::CLAMPED);
            set(i % 13 == 5, Decisions::RATE_LIMITED);
            set(i % 17 == 0, Decisions::KL_LIMITED);
            set(i % 500 == 499, Decisions::EPISODE_END);
            set(i % 19 == 2, Decisions::SIGNAL_FAULT);
            set(i % 23 == 4, Decisions::PRIOR_FAULT);
            set(i % 29 == 6, Decisions::LATE);
            set(i % 1000 == 999, Decisions::TERMINATED);
            r.decisions = Decisions(d);
            r.link = LinkCounters {
                frames: i + 1,
                crc_errors: i / 100,
                other_errors: i / 250,
                seq_gaps: i / 300,
                duplicates: i / 700,
                late_frames: i / 900,
                reconnects: i / 1500,
            };
            r
        })
        .collect()
}

/// Nearest rank: the value at 1-based rank ⌈p·n/100⌉ of the sorted values, in µs.
fn nearest_rank_us(values: &[u64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len() as f64;
    let mut rank = (p * n / 100.0).ceil() as usize;
    if rank == 0 {
        rank = 1;
    }
    v[rank - 1] as f64 / 1000.0
}

fn max_us(values: &[u64]) -> f64 {
    *values.iter().max().unwrap() as f64 / 1000.0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn write_all(path: &Path, ticks: &[TickRecord], capacity: usize) -> RecorderStats {
    let rec = Recorder::start(path, meta(), capacity).unwrap();
    for r in ticks {
        assert!(rec.record(r), "a queue as long as the run never drops");
    }
    rec.finish().unwrap()
}

#[test]
fn summary_matches_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/record.mcap"); // the folder is created
    let ticks = synthetic();
    let stats = write_all(&path, &ticks, ticks.len());
    assert_eq!(stats, RecorderStats { written: N, dropped: 0 });

    let s = inspect(&path).unwrap();
    println!("{s}");
    assert_eq!(s.path, path.display().to_string());
    assert_eq!(s.meta, meta());
    assert!(s.complete);
    assert_eq!(s.read_error, None);
    assert_eq!(s.recorder, Some(stats));
    assert_eq!(s.ticks, N);
    assert_eq!(s.first_tick, TICK0);
    assert_eq!(s.last_tick, TICK0 + N - 1 + 3);
    assert_eq!(s.ticks_missing, 3);

    let t_first = ticks[0].t_ns;
    let t_last = ticks[N as usize - 1].t_ns;
    assert_eq!(t_first, T0_NS); // the first period is 0
    let sum_periods: u64 = (0..N).map(period_ns).sum();
    assert_eq!(t_last - t_first, sum_periods);
    assert!(close(s.duration_s, sum_periods as f64 / 1e9));
    assert!(close(s.tick_rate_hz, (N - 1 + 3) as f64 / (sum_periods as f64 / 1e9)));

    // Period jitter: |period − median| over the ticks with a period.
    let periods: Vec<u64> = (1..N).map(period_ns).collect();
    let median_ns = (nearest_rank_us(&periods, 50.0) * 1000.0).round() as u64;
    assert!(close(s.period_median_us, median_ns as f64 / 1000.0));
    let jitter: Vec<u64> = periods.iter().map(|&p| p.abs_diff(median_ns)).collect();
    assert!(close(s.period_jitter.p50_us, nearest_rank_us(&jitter, 50.0)));
    assert!(close(s.period_jitter.p90_us, nearest_rank_us(&jitter, 90.0)));
    assert!(close(s.period_jitter.p99_us, nearest_rank_us(&jitter, 99.0)));
    assert!(close(s.period_jitter.max_us, max_us(&jitter)));
    // The six +250 µs outliers set the max.
    assert!(s.period_jitter.max_us > 240.0 && s.period_jitter.p99_us < 2.0);

    let lat: Vec<u64> = (0..N).map(|i| latency_ns(i) as u64).collect();
    assert!(close(s.latency.p50_us, nearest_rank_us(&lat, 50.0)));
    assert!(close(s.latency.p90_us, nearest_rank_us(&lat, 90.0)));
    assert!(close(s.latency.p99_us, nearest_rank_us(&lat, 99.0)));
    assert!(close(s.latency.max_us, 400.0));

    let count = |f: &dyn Fn(u64) -> bool| (0..N).filter(|&i| f(i)).count() as u64;
    assert_eq!(s.deadline_misses, count(&|i| i % 7 == 0));
    assert_eq!(s.deadline_misses, 429);
    assert_eq!(s.fallbacks, 60);
    assert_eq!(s.estop_ticks, 110);
    assert_eq!(s.estop_events, 2);
    assert_eq!(s.clamped, count(&|i| i % 11 == 3));
    assert_eq!(s.rate_limited, count(&|i| i % 13 == 5));
    assert_eq!(s.kl_limited, count(&|i| i % 17 == 0));
    assert_eq!(s.episodes_ended, 6);

    let l = ticks[N as usize - 1].link;
    assert_eq!(
        (
            s.link.frames,
            s.link.crc_errors,
            s.link.other_errors,
            s.link.seq_gaps,
            s.link.duplicates,
            s.link.late_frames,
            s.link.reconnects
        ),
        (l.frames, l.crc_errors, l.other_errors, l.seq_gaps, l.duplicates, l.late_frames, l.reconnects)
    );
    assert_eq!((s.link.frames, s.link.crc_errors, s.link.reconnects), (N, 29, 1));

    // Add-on reward: overall mean and the mean in each tenth of the run's time span.
    let rewards: Vec<f64> = ticks.iter().map(|r| r.addon_reward as f64).collect();
    assert!(close(s.addon_reward_mean, rewards.iter().sum::<f64>() / N as f64));
    let span = (t_last - t_first) as f64;
    let mut sums = [0.0f64; 10];
    let mut counts = [0u64; 10];
    for r in &ticks {
        let k = ((10.0 * (r.t_ns - t_first) as f64 / span).floor() as usize).min(9);
        sums[k] += r.addon_reward as f64;
        counts[k] += 1;
    }
    assert_eq!(s.addon_reward_tenths.len(), 10);
    for k in 0..10 {
        assert!(counts[k] > 250, "tenth {k} has {} ticks", counts[k]);
        let got = s.addon_reward_tenths[k].unwrap();
        assert!(close(got, sums[k] / counts[k] as f64), "tenth {k}: {got}");
    }
    // The synthetic reward trends down over the run.
    assert!(s.addon_reward_tenths[0].unwrap() > s.addon_reward_tenths[9].unwrap());

    // The report names what it counts; --json serialises every field.
    let text = s.to_string();
    for needle in [
        "duration",
        "rate",
        "jitter",
        "latency",
        "deadline misses 429",
        "fallbacks 60",
        "e-stops 2 (110 ticks)",
        "CRC errors 29",
        "reconnects 1",
        "dropped 0",
        "episodes ended  6",
        "add-on reward",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    let json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(json["ticks"], N);
    assert_eq!(json["recorder"]["dropped"], 0);
    assert_eq!(json["addon_reward_tenths"].as_array().unwrap().len(), 10);
}

/// The Python that scripts/test.sh's venv provides (mcap, mcap-protobuf-support).
fn python() -> String {
    common::python("mcap, mcap-protobuf-support: reads records as Foxglove does")
}

fn f32_of(v: &serde_json::Value) -> f32 {
    match v {
        serde_json::Value::String(s) if s == "NaN" => f32::NAN,
        v => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32,
    }
}

fn same_f32(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The file is read back by an independent reader, as Foxglove reads it: Python's `mcap` with
/// `mcap-protobuf-support`, decoding every tick from the protobuf schema stored in the file
/// (scripts/read_record.py). Every value the loop recorded comes back, under the bundle's names.
#[test]
fn mcap_layout_is_what_foxglove_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.mcap");
    let ticks = synthetic();
    write_all(&path, &ticks[..600], 600);
    let bytes = std::fs::read(&path).unwrap();

    // The summary section (channels, schemas, statistics, chunk indexes) is there.
    let summary = mcap::Summary::read(&bytes).unwrap().expect("a summary section");
    let stats = summary.stats.as_ref().unwrap();
    assert_eq!(stats.message_count, 600 + 2);
    assert!(!summary.chunk_indexes.is_empty());
    assert!(summary.chunk_indexes.iter().all(|c| c.compression == "zstd"), "chunks are zstd-compressed");
    let topics: BTreeSet<&str> = summary.channels.values().map(|c| c.topic.as_str()).collect();
    assert_eq!(topics, BTreeSet::from(["/resq/meta", "/resq/tick", "/resq/stats"]));
    for c in summary.channels.values() {
        let schema = c.schema.as_ref().unwrap();
        if c.topic == "/resq/tick" {
            assert_eq!((c.message_encoding.as_str(), schema.encoding.as_str()), ("protobuf", "protobuf"));
            assert_eq!(schema.name, "resq.Tick");
        } else {
            assert_eq!((c.message_encoding.as_str(), schema.encoding.as_str()), ("json", "jsonschema"));
        }
    }

    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_record.py"))
        .arg(&path)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "read_record.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1 + 600);

    let m = &lines[0];
    assert_eq!(m["format"], "resq.record");
    assert_eq!(m["version"], 2);
    assert_eq!(m["bundle"], "models/cartpole");
    assert_eq!(m["manifest_fnv1a64"], "00112233445566ff");
    assert_eq!(m["prior_fnv1a64"], "ffeeddccbbaa9988");
    assert_eq!(m["actions"][1], "right");
    let started_unix_ns = m["started_unix_ns"].as_u64().unwrap();
    // Wall-clock log times: Foxglove shows the date of the run, not 1970.
    assert!(started_unix_ns > 1_700_000_000 * 1_000_000_000, "{started_unix_ns}");

    let zero = serde_json::json!(0);
    let no = serde_json::json!(false);
    // proto3 leaves zero values out: absent reads as 0 (or false).
    let get =
        |v: &serde_json::Value, k: &str| -> serde_json::Value { v.get(k).cloned().unwrap_or(zero.clone()) };
    let int = |v: serde_json::Value| -> u64 {
        match v {
            serde_json::Value::String(s) => s.parse().unwrap(), // 64-bit integers are strings in proto JSON
            v => v.as_u64().unwrap(),
        }
    };
    for (r, v) in ticks[..600].iter().zip(&lines[1..]) {
        assert_eq!(v["log_time"].as_u64().unwrap(), started_unix_ns + r.t_ns);
        assert_eq!(int(get(v, "tick")), r.tick);
        assert_eq!(int(get(v, "seq")), r.seq as u64);
        assert_eq!(int(get(v, "firmware_t_us")), r.firmware_t_us);
        let sig = &v["signals"];
        for (k, name) in ["x", "x_dot", "theta", "theta_dot"].iter().enumerate() {
            assert!(same_f32(f32_of(&get(sig, name)), r.signals[k]), "signals.{name}");
        }
        let arr = |k: &str| v[k].as_array().unwrap().iter().map(f32_of).collect::<Vec<_>>();
        assert_eq!(arr("obs"), &r.obs[..4]);
        assert_eq!(arr("logp0"), &r.logp0[..2]);
        let q = arr("q_r");
        assert!(same_f32(q[0], r.q_r[0]) && q[1] == r.q_r[1]);
        // The action is an enum whose values are the bundle's labels (0 is "left", left out).
        let label = v.get("action").map(|a| a.as_str().unwrap().to_string()).unwrap_or("left".into());
        assert_eq!(label, ["left", "right"][r.action as usize]);
        assert_eq!(f32_of(&get(&v["command"], "force")), r.command[0]);
        assert_eq!(f32_of(&get(&v["addon"], "centre")), r.addon_terms[0]);
        assert_eq!(f32_of(&get(&v["addon"], "smooth")), r.addon_terms[1]);
        assert_eq!(f32_of(&get(v, "addon_reward")), r.addon_reward);
        assert_eq!(f32_of(&get(v, "kl")), r.kl);
        assert!(same_f32(f32_of(&get(v, "logpi")), r.logpi), "logpi {:?} vs {}", v.get("logpi"), r.logpi);
        let d = v.get("decisions").cloned().unwrap_or_default();
        for (k, bit) in Decisions::NAMES {
            assert_eq!(
                d.get(k).unwrap_or(&no).as_bool().unwrap(),
                r.decisions.contains(bit),
                "decisions.{k}"
            );
        }
        assert_eq!(int(get(v, "latency_ns")), r.latency_ns as u64);
        assert_eq!(int(get(v, "period_ns")), r.period_ns);
        let l = &v["link"];
        assert_eq!(int(get(l, "frames")), r.link.frames);
        assert_eq!(int(get(l, "crc_errors")), r.link.crc_errors);
        assert_eq!(int(get(l, "late_frames")), r.link.late_frames);
        assert_eq!(int(get(l, "reconnects")), r.link.reconnects);
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burst.mcap");
    let ticks = synthetic();
    let rec = Recorder::start(&path, meta(), 4).unwrap();
    let pushed = 10_000u64;
    let mut refused = 0u64;
    let mut slowest = std::time::Duration::ZERO;
    let start = Instant::now();
    for i in 0..pushed {
        let mut r = ticks[(i % N) as usize];
        r.tick = i;
        r.t_ns = 1000 * i;
        let t = Instant::now();
        if !rec.record(&r) {
            refused += 1;
        }
        slowest = slowest.max(t.elapsed());
    }
    let burst = start.elapsed();
    assert_eq!(rec.dropped(), refused);
    let stats = rec.finish().unwrap();
    println!(
        "burst of {pushed} into a queue of 4: {:?} ({:.0} ns per record, slowest {:?}); written {}, dropped {}",
        burst,
        burst.as_nanos() as f64 / pushed as f64,
        slowest,
        stats.written,
        stats.dropped
    );
    assert_eq!(stats.dropped, refused);
    assert!(stats.dropped > 0, "the writer cannot keep up with a burst");
    assert!(stats.written >= 4);
    assert_eq!(stats.written + stats.dropped, pushed);

    let s = inspect(&path).unwrap();
    assert!(s.complete);
    assert_eq!(s.ticks, stats.written);
    assert_eq!(s.recorder, Some(stats));
    assert!(s.ticks_missing <= stats.dropped);
    assert!(s.to_string().contains(&format!("dropped {}", stats.dropped)));
}

#[test]
fn record_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alloc.mcap");
    let ticks = synthetic();
    let rec = Recorder::start(&path, meta(), 64).unwrap();
    let mut warm = 0u64;
    for r in &ticks[..100] {
        warm += rec.record(r) as u64; // warm-up
    }
    let mut accepted = 0u64;
    let n = allocations_during(|| {
        for i in 0..20_000u64 {
            let r = &ticks[(i % N) as usize];
            accepted += rec.record(r) as u64;
            if i % 100 == 99 {
                // Bursts of 100 into a queue of 64 (so records are both queued and dropped),
                // then let the writer catch up.
                let t = Instant::now();
                while rec.written() + 8 < warm + accepted && t.elapsed().as_secs() < 5 {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
        }
    });
    let stats = rec.finish().unwrap();
    println!("20 000 record() calls: {n} allocations; accepted {accepted}, dropped {}", stats.dropped);
    assert!(accepted > 0);
    assert_eq!(stats.written, warm + accepted);
    assert_eq!(n, 0, "Recorder::record allocated");
}

#[test]
fn counting_allocator_sees_allocations() {
    let n = allocations_during(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert!(n >= 1);
}

#[test]
fn writer_rate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rate.mcap");
    let ticks = synthetic();
    let total = 20_000u64;
    let rec = Recorder::start(&path, meta(), total as usize).unwrap();
    let start = Instant::now();
    for i in 0..total {
        let mut r = ticks[(i % N) as usize];
        r.tick = i;
        r.t_ns = 1000 * i;
        assert!(rec.record(&r));
    }
    let stats = rec.finish().unwrap();
    let write = start.elapsed();
    assert_eq!(stats.written, total);
    let size = std::fs::metadata(&path).unwrap().len();
    let start = Instant::now();
    let s = inspect(&path).unwrap();
    let read = start.elapsed();
    assert_eq!(s.ticks, total);
    println!(
        "writer: {total} ticks in {write:?} = {:.0} ticks/s ({:.0} bytes per tick); inspect: {:.0} ticks/s",
        total as f64 / write.as_secs_f64(),
        size as f64 / total as f64,
        total as f64 / read.as_secs_f64()
    );
}

/// A 7 s outage (a link that came back) shows as 7 s, not capped at u32 nanoseconds (4.29 s).
#[test]
fn a_long_gap_between_ticks_is_not_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gap.mcap");
    let rec = Recorder::start(&path, meta(), 16).unwrap();
    let gap_ns = 7_000_000_000u64;
    for (i, period) in [0, gap_ns, gap_ns].into_iter().enumerate() {
        let t = TickRecord {
            tick: i as u64 + 1,
            t_ns: i as u64 * gap_ns,
            period_ns: period,
            ..Default::default()
        };
        rec.record(&t);
    }
    rec.finish().unwrap();
    let s = inspect(&path).unwrap();
    assert!((s.period_median_us - 7e6).abs() < 1.0, "{}", s.period_median_us);
}

#[test]
fn an_empty_recording_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.mcap");
    let stats = Recorder::start(&path, meta(), 16).unwrap().finish().unwrap();
    assert_eq!(stats, RecorderStats::default());
    let s = inspect(&path).unwrap();
    assert!(s.complete);
    assert_eq!(s.ticks, 0);
    assert_eq!(s.recorder, Some(stats));
    assert!(s.addon_reward_tenths.is_empty());
    assert!(s.to_string().contains("no tick recorded"));
}

#[test]
fn dropping_a_recorder_finishes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.mcap");
    let ticks = synthetic();
    {
        let rec = Recorder::start(&path, meta(), 1000).unwrap();
        for r in &ticks[..500] {
            rec.record(r);
        }
    }
    let s = inspect(&path).unwrap();
    assert!(s.complete);
    assert_eq!(s.ticks, 500);
    assert_eq!(s.recorder.unwrap().written, 500);
}

#[test]
fn broken_files_give_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| format!("{:#}", inspect(p).unwrap_err());

    let missing = dir.path().join("missing.mcap");
    let e = err(&missing);
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let text = dir.path().join("notes.mcap");
    std::fs::write(&text, "these are not the bytes you are looking for").unwrap();
    let e = err(&text);
    assert!(e.contains(&text.display().to_string()) && e.contains("not an MCAP"), "{e}");

    let empty = dir.path().join("empty.mcap");
    std::fs::write(&empty, "").unwrap();
    let e = err(&empty);
    assert!(e.contains(&empty.display().to_string()), "{e}");

    // A recording cut short (a crash): summarised up to the cut, flagged incomplete; cut
    // before the first tick, it is an error naming the file.
    // All 3 000 synthetic ticks: several compressed chunks, so the cut falls inside the data.
    let good = dir.path().join("good.mcap");
    write_all(&good, &synthetic(), N as usize);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let s = inspect(&cut).unwrap();
    assert!(!s.complete && s.read_error.is_some() && s.recorder.is_none(), "{s:?}");
    assert!(s.ticks > 0 && s.ticks < N, "{}", s.ticks);
    assert_eq!(s.meta, meta());
    assert!(s.to_string().contains("INCOMPLETE"));
    std::fs::write(&cut, &bytes[..40]).unwrap();
    let e = err(&cut);
    assert!(e.contains(&cut.display().to_string()), "{e}");

    // A valid MCAP that is not a resq record.
    let other = dir.path().join("other.mcap");
    {
        let mut w = mcap::Writer::new(std::fs::File::create(&other).unwrap()).unwrap();
        let ch = w.add_channel(0, "/camera", "raw", &Default::default()).unwrap();
        w.write_to_known_channel(
            &mcap::records::MessageHeader { channel_id: ch, sequence: 0, log_time: 1, publish_time: 1 },
            b"pixels",
        )
        .unwrap();
        w.finish().unwrap();
    }
    let e = err(&other);
    assert!(e.contains(&other.display().to_string()) && e.contains("not a resq record"), "{e}");

    // The recorder names a file it cannot create.
    let blocked = dir.path().join("notes.mcap/record.mcap"); // a file is in the way
    let e = format!("{:#}", Recorder::start(&blocked, meta(), 8).err().unwrap());
    assert!(e.contains("notes.mcap"), "{e}");
}

/// A record written before ticks were protobuf (format 1, JSON ticks) is refused with a message
/// that says so and what to do, not misread.
#[test]
fn a_format_1_record_is_refused_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.mcap");
    {
        let mut w =
            mcap::Writer::new(std::io::BufWriter::new(std::fs::File::create(&path).unwrap())).unwrap();
        let none = std::collections::BTreeMap::new();
        let sm = w.add_schema("resq.RecordMeta", "jsonschema", b"{}").unwrap();
        let st = w.add_schema("resq.Tick", "jsonschema", b"{}").unwrap();
        let meta_ch = w.add_channel(sm, "/resq/meta", "json", &none).unwrap();
        let tick_ch = w.add_channel(st, "/resq/tick", "json", &none).unwrap();
        let h = |channel_id| mcap::records::MessageHeader {
            channel_id,
            sequence: 0,
            log_time: 1,
            publish_time: 1,
        };
        let meta = r#"{"format":"resq.record","version":1,"started_unix_ns":1,"bundle":"models/cartpole",
            "signals":[],"obs":[],"actions":[],"commands":[],"addon_terms":[],"source":"sim"}"#;
        w.write_to_known_channel(&h(meta_ch), meta.as_bytes()).unwrap();
        w.write_to_known_channel(&h(tick_ch), br#"{"t_ns":0,"tick":0}"#).unwrap();
        w.finish().unwrap();
    }
    let e = format!("{:#}", inspect(&path).unwrap_err());
    assert!(e.contains("old.mcap") && e.contains("format 1") && e.contains("fix:"), "{e}");
}
