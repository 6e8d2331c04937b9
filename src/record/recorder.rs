//! The recorder: the control loop hands each [`TickRecord`] to [`Recorder::record`], which
//! never blocks and never allocates (a `try_send` into a preallocated bounded queue; a full
//! queue drops the record and counts it). A writer thread turns the records into JSON messages
//! of an MCAP file that Foxglove opens and plots:
//!
//! | topic | message encoding | schema | what |
//! |---|---|---|---|
//! | `/resq/meta` | `json` | `jsonschema` `resq.RecordMeta` | one message at the start: [`RecordMeta`] plus `format`, `version`, `started_unix_ns` |
//! | `/resq/tick` | `json` | `jsonschema` `resq.Tick` | one message per recorded tick, `log_time = publish_time = started_unix_ns + t_ns` |
//! | `/resq/stats` | `json` | `jsonschema` `resq.RecorderStats` | one message at the end: `{written, dropped}` |
//!
//! Log times are wall-clock (ns since the Unix epoch), so Foxglove shows the real date; `t_ns`
//! in a message counts from the run's start. Chunks are zstd-compressed (by the writer thread,
//! never on the loop), which Foxglove and every MCAP reader decompress.
//!
//! A tick message reads, e.g.
//!
//! ```json
//! {"t_ns":20000000,"tick":20,"seq":20,"firmware_t_us":20000,
//!  "signals":{"x":0.01,"x_dot":-0.2,"theta":0.003,"theta_dot":0.1},
//!  "obs":[0.004,-0.1,0.01,0.05],"logp0":[-0.7,-0.69],"q_r":[0.01,-0.02],
//!  "action":1,"action_label":"right","command":{"force":10.0},
//!  "addon":{"centre":-0.004},"addon_reward":-0.004,"kl":0.0001,
//!  "decisions":{"fallback":false,"deadline_miss":false,"estop":false,"clamped":false,
//!               "rate_limited":false,"kl_limited":false,"episode_end":false,
//!               "signal_fault":false,"prior_fault":false},
//!  "latency_ns":41000,"period_ns":1000000,
//!  "link":{"frames":21,"crc_errors":0,"other_errors":0,"seq_gaps":0,"duplicates":0,
//!          "late_frames":0,"reconnects":0}}
//! ```
//!
//! Non-finite floats are written as `null`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use super::tick::{Decisions, LinkCounters, TickRecord, MAX};

pub const TOPIC_META: &str = "/resq/meta";
pub const TOPIC_TICK: &str = "/resq/tick";
pub const TOPIC_STATS: &str = "/resq/stats";
/// Value of the meta message's `format` field.
pub const FORMAT: &str = "resq.record";
/// Value of the meta message's `version` field.
pub const FORMAT_VERSION: u32 = 1;
/// A reasonable queue length: 8192 records (≈ 4 MB), 0.8 s of ticks at 10 kHz.
pub const DEFAULT_CAPACITY: usize = 8192;
/// Target size of an MCAP chunk. Smaller than mcap's 1 MiB default so a crash loses less.
const CHUNK_SIZE: u64 = 256 * 1024;

/// What a record is about; written once, as the `/resq/meta` message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The bundle's folder.
    pub bundle: String,
    /// Names of the robot's signals (keys of a tick's `signals`).
    pub signals: Vec<String>,
    /// Names of the observation entries (a tick's `obs` is in this order).
    pub obs: Vec<String>,
    /// Labels of the discrete actions (a tick's `action_label`).
    pub actions: Vec<String>,
    /// Names of the commands (keys of a tick's `command`).
    pub commands: Vec<String>,
    /// Names of the add-on reward terms (keys of a tick's `addon`).
    pub addon_terms: Vec<String>,
    /// `"sim"` or the serial port path.
    pub source: String,
}

/// Counts of a finished recording, also written as the `/resq/stats` message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderStats {
    /// Tick records written to the file.
    pub written: u64,
    /// Tick records dropped because the queue was full (or the writer had failed).
    pub dropped: u64,
}

/// The `/resq/meta` message: [`RecordMeta`] and what identifies the file.
#[derive(Serialize, Deserialize)]
pub(crate) struct MetaMessage {
    pub format: String,
    pub version: u32,
    /// Wall-clock time when recording started, ns since the Unix epoch (ticks' `t_ns` count
    /// from the run's start instead).
    pub started_unix_ns: u64,
    #[serde(flatten)]
    pub meta: RecordMeta,
}

struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

type Mcap = mcap::Writer<BufWriter<File>>;

/// What the writer thread hands back when the queue closes.
struct Done {
    out: Mcap,
    stats_channel: u16,
    last_log_time: u64,
}

/// Writes [`TickRecord`]s to an MCAP file from its own thread. Dropping a `Recorder` finishes
/// the file too (errors are logged); call [`Recorder::finish`] to see them.
pub struct Recorder {
    tx: Option<SyncSender<TickRecord>>,
    worker: Option<JoinHandle<anyhow::Result<Done>>>,
    counters: Arc<Counters>,
    path: PathBuf,
}

impl Recorder {
    /// Creates `path` (and its parent folders), writes the meta message, and starts the writer
    /// thread behind a queue of `capacity` records (≥ 1; see [`DEFAULT_CAPACITY`]).
    pub fn start(path: &Path, meta: RecordMeta, capacity: usize) -> anyhow::Result<Recorder> {
        if capacity == 0 {
            bail!("record {}: the recorder's queue capacity must be at least 1", path.display());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the folder {} for record {}", dir.display(), path.display())
            })?;
        }
        let file =
            File::create(path).with_context(|| format!("cannot create record file {}", path.display()))?;
        let ctx = || format!("writing record file {}", path.display());
        let opts = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .chunk_size(Some(CHUNK_SIZE))
            .library(format!("resq/{}", env!("CARGO_PKG_VERSION")));
        let mut out = opts.create(BufWriter::with_capacity(1 << 16, file)).with_context(ctx)?;

        let names = Names::new(&meta);
        let meta_schema =
            out.add_schema("resq.RecordMeta", "jsonschema", &meta_schema()).with_context(ctx)?;
        let tick_schema =
            out.add_schema("resq.Tick", "jsonschema", &tick_schema(&names)).with_context(ctx)?;
        let stats_schema =
            out.add_schema("resq.RecorderStats", "jsonschema", &stats_schema()).with_context(ctx)?;
        let none = BTreeMap::new();
        let meta_channel = out.add_channel(meta_schema, TOPIC_META, "json", &none).with_context(ctx)?;
        let tick_channel = out.add_channel(tick_schema, TOPIC_TICK, "json", &none).with_context(ctx)?;
        let stats_channel = out.add_channel(stats_schema, TOPIC_STATS, "json", &none).with_context(ctx)?;

        let started_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let meta_msg = serde_json::to_vec(&MetaMessage {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            started_unix_ns,
            meta,
        })?;
        out.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: meta_channel,
                sequence: 0,
                log_time: started_unix_ns,
                publish_time: started_unix_ns,
            },
            &meta_msg,
        )
        .with_context(ctx)?;

        let (tx, rx) = sync_channel::<TickRecord>(capacity);
        let counters = Arc::new(Counters { written: AtomicU64::new(0), dropped: AtomicU64::new(0) });
        let worker = {
            let counters = counters.clone();
            let file_path = path.to_path_buf();
            std::thread::Builder::new()
                .name("resq-recorder".into())
                .spawn(move || {
                    let r = write_ticks(&mut out, rx, tick_channel, names, &counters, started_unix_ns);
                    match r {
                        Ok(last_log_time) => Ok(Done { out, stats_channel, last_log_time }),
                        Err(e) => {
                            let e = e.context(format!("writing record file {}", file_path.display()));
                            log::error!("recorder stopped: {e:#}");
                            Err(e)
                        }
                    }
                })
                .with_context(|| format!("starting the recorder thread for {}", path.display()))?
        };
        Ok(Recorder { tx: Some(tx), worker: Some(worker), counters, path: path.to_path_buf() })
    }

    /// Queues one record for the writer. Never blocks, never allocates: if the queue is full
    /// (or the writer has failed) the record is dropped, counted, and `false` is returned.
    #[inline]
    pub fn record(&self, r: &TickRecord) -> bool {
        if let Some(tx) = &self.tx {
            if tx.try_send(*r).is_ok() {
                return true;
            }
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records written to the file so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the queue, waits for the writer to write every queued record, writes the
    /// `/resq/stats` message and the MCAP summary (channel, chunk and message indexes,
    /// statistics), and fsyncs the file.
    pub fn finish(mut self) -> anyhow::Result<RecorderStats> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> anyhow::Result<RecorderStats> {
        drop(self.tx.take());
        let worker =
            self.worker.take().ok_or_else(|| anyhow!("record {}: already finished", self.path.display()))?;
        let done = worker
            .join()
            .map_err(|_| anyhow!("record {}: the recorder thread panicked", self.path.display()))??;
        let stats = RecorderStats {
            written: self.counters.written.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        };
        let ctx = || format!("finishing record file {}", self.path.display());
        let Done { mut out, stats_channel, last_log_time } = done;
        out.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: stats_channel,
                sequence: 0,
                log_time: last_log_time,
                publish_time: last_log_time,
            },
            &serde_json::to_vec(&stats)?,
        )
        .with_context(ctx)?;
        out.finish().with_context(ctx)?;
        let file = out.into_inner().into_inner().map_err(|e| e.into_error()).with_context(ctx)?;
        file.sync_all().with_context(ctx)?;
        Ok(stats)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.worker.is_some() {
            if let Err(e) = self.finish_inner() {
                log::error!("{e:#}");
            }
        }
    }
}

/// The writer thread's loop: until the queue closes, one JSON message per record. Returns the
/// last `t_ns` written.
fn write_ticks(
    out: &mut Mcap,
    rx: Receiver<TickRecord>,
    channel_id: u16,
    names: Names,
    counters: &Counters,
    started_unix_ns: u64,
) -> anyhow::Result<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut sequence = 0u32;
    let mut last_log_time = started_unix_ns;
    while let Ok(r) = rx.recv() {
        let t = started_unix_ns + r.t_ns;
        buf.clear();
        serde_json::to_writer(&mut buf, &TickJson { r: &r, n: &names })?;
        out.write_to_known_channel(
            &mcap::records::MessageHeader { channel_id, sequence, log_time: t, publish_time: t },
            &buf,
        )?;
        sequence = sequence.wrapping_add(1);
        last_log_time = last_log_time.max(t);
        counters.written.fetch_add(1, Ordering::Relaxed);
    }
    Ok(last_log_time)
}

/// Keys of a tick's objects: the meta's names, completed to [`MAX`] with `<prefix><i>` and made
/// unique.
struct Names {
    signals: Vec<String>,
    commands: Vec<String>,
    terms: Vec<String>,
    actions: Vec<String>,
}

impl Names {
    fn new(meta: &RecordMeta) -> Names {
        Names {
            signals: keys(&meta.signals, "signal"),
            commands: keys(&meta.commands, "command"),
            terms: keys(&meta.addon_terms, "term"),
            actions: keys(&meta.actions, "action"),
        }
    }
}

fn keys(given: &[String], prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(MAX);
    for i in 0..MAX {
        let mut k = match given.get(i) {
            Some(s) if !s.is_empty() => s.clone(),
            _ => format!("{prefix}{i}"),
        };
        if out.contains(&k) {
            k = format!("{k}#{i}");
        }
        out.push(k);
    }
    out
}

#[inline]
fn len(n: u8) -> usize {
    (n as usize).min(MAX)
}

struct TickJson<'a> {
    r: &'a TickRecord,
    n: &'a Names,
}

impl Serialize for TickJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, n) = (self.r, self.n);
        let n_act = len(r.n_actions);
        let label = n.actions.get(r.action as usize).map(String::as_str).unwrap_or("");
        let mut m = s.serialize_struct("Tick", 20)?;
        m.serialize_field("t_ns", &r.t_ns)?;
        m.serialize_field("tick", &r.tick)?;
        m.serialize_field("seq", &r.seq)?;
        m.serialize_field("firmware_t_us", &r.firmware_t_us)?;
        m.serialize_field("signals", &Named(&n.signals, &r.signals[..len(r.n_signals)]))?;
        m.serialize_field("obs", &r.obs[..len(r.n_obs)])?;
        m.serialize_field("logp0", &r.logp0[..n_act])?;
        m.serialize_field("q_r", &r.q_r[..n_act])?;
        m.serialize_field("action", &r.action)?;
        m.serialize_field("action_label", label)?;
        m.serialize_field("command", &Named(&n.commands, &r.command[..len(r.n_commands)]))?;
        m.serialize_field("addon", &Named(&n.terms, &r.addon_terms[..len(r.n_terms)]))?;
        m.serialize_field("addon_reward", &r.addon_reward)?;
        m.serialize_field("kl", &r.kl)?;
        m.serialize_field("decisions", &Flags(r.decisions))?;
        m.serialize_field("latency_ns", &r.latency_ns)?;
        m.serialize_field("period_ns", &r.period_ns)?;
        m.serialize_field("link", &Link(&r.link))?;
        m.end()
    }
}

struct Named<'a>(&'a [String], &'a [f32]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.1.len()))?;
        for (k, v) in self.0.iter().zip(self.1) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Decision flags in the order of [`Decisions`]' bits.
pub(crate) const DECISION_NAMES: [(&str, u16); 9] = [
    ("fallback", Decisions::FALLBACK),
    ("deadline_miss", Decisions::DEADLINE_MISS),
    ("estop", Decisions::ESTOP),
    ("clamped", Decisions::CLAMPED),
    ("rate_limited", Decisions::RATE_LIMITED),
    ("kl_limited", Decisions::KL_LIMITED),
    ("episode_end", Decisions::EPISODE_END),
    ("signal_fault", Decisions::SIGNAL_FAULT),
    ("prior_fault", Decisions::PRIOR_FAULT),
];

struct Flags(Decisions);

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Decisions", DECISION_NAMES.len())?;
        for (k, bit) in DECISION_NAMES {
            m.serialize_field(k, &self.0.contains(bit))?;
        }
        m.end()
    }
}

pub(crate) const LINK_NAMES: [&str; 7] =
    ["frames", "crc_errors", "other_errors", "seq_gaps", "duplicates", "late_frames", "reconnects"];

struct Link<'a>(&'a LinkCounters);

impl Serialize for Link<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let v =
            [l.frames, l.crc_errors, l.other_errors, l.seq_gaps, l.duplicates, l.late_frames, l.reconnects];
        let mut m = s.serialize_struct("LinkCounters", LINK_NAMES.len())?;
        for (k, v) in LINK_NAMES.iter().zip(v) {
            m.serialize_field(k, &v)?;
        }
        m.end()
    }
}

fn number(description: &str) -> serde_json::Value {
    json!({"type": ["number", "null"], "description": description})
}

fn integer(description: &str) -> serde_json::Value {
    json!({"type": "integer", "minimum": 0, "description": description})
}

fn numbers_by_name(names: &[String], description: &str) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> =
        names.iter().map(|k| (k.clone(), number(description))).collect();
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

fn number_array(description: &str) -> serde_json::Value {
    json!({"type": "array", "items": {"type": ["number", "null"]}, "description": description})
}

/// The JSON Schema of `/resq/tick` messages (every field; objects keyed by the meta's names).
fn tick_schema(n: &Names) -> Vec<u8> {
    let decisions: serde_json::Map<String, serde_json::Value> =
        DECISION_NAMES.iter().map(|(k, _)| (k.to_string(), json!({"type": "boolean"}))).collect();
    let link: serde_json::Map<String, serde_json::Value> =
        LINK_NAMES.iter().map(|k| (k.to_string(), integer("cumulative count"))).collect();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "resq.Tick",
        "description": "One control tick of resq: what the robot saw, did, and why",
        "type": "object",
        "properties": {
            "t_ns": integer("host monotonic time at the start of the tick, ns since the run started"),
            "tick": integer("tick counter"),
            "seq": integer("sequence number of the sensor frame this tick answered (0 in-process)"),
            "firmware_t_us": integer("firmware timestamp of that frame, µs (0 in-process)"),
            "signals": numbers_by_name(&n.signals, "signal value"),
            "obs": number_array("scaled observation"),
            "logp0": number_array("log π0(a|s) per action"),
            "q_r": number_array("residual Q_R(s,a) per action"),
            "action": integer("index of the action chosen"),
            "action_label": {"type": "string", "description": "label of the action chosen"},
            "command": numbers_by_name(&n.commands, "command value sent (after the supervisor)"),
            "addon": numbers_by_name(&n.terms, "add-on reward term"),
            "addon_reward": number("add-on reward of the transition that ended at this tick"),
            "kl": number("KL(π_acting ‖ π0), nats"),
            "decisions": {"type": "object", "properties": decisions, "additionalProperties": false},
            "latency_ns": integer("time from frame received to command written, ns"),
            "period_ns": integer("time since the previous tick started, ns (0 for the first)"),
            "link": {"type": "object", "properties": link, "additionalProperties": false},
        },
        "additionalProperties": false,
    });
    serde_json::to_vec(&schema).expect("a JSON value serialises")
}

fn meta_schema() -> Vec<u8> {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "resq.RecordMeta",
        "type": "object",
        "properties": {
            "format": {"type": "string"},
            "version": {"type": "integer"},
            "started_unix_ns": integer("wall-clock start of the recording, ns since the Unix epoch"),
            "bundle": {"type": "string"},
            "signals": strings,
            "obs": strings,
            "actions": strings,
            "commands": strings,
            "addon_terms": strings,
            "source": {"type": "string", "description": "\"sim\" or the serial port path"},
        },
    });
    serde_json::to_vec(&schema).expect("a JSON value serialises")
}

fn stats_schema() -> Vec<u8> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "resq.RecorderStats",
        "type": "object",
        "properties": {
            "written": integer("tick records written"),
            "dropped": integer("tick records dropped (queue full)"),
        },
    });
    serde_json::to_vec(&schema).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_completed_and_unique() {
        let k = keys(&["x".into(), "".into(), "x".into()], "signal");
        assert_eq!(k.len(), MAX);
        assert_eq!(&k[..4], ["x", "signal1", "x#2", "signal3"]);
    }

    #[test]
    fn the_schema_lists_the_meta_names() {
        let meta = RecordMeta {
            signals: vec!["x".into(), "theta".into()],
            commands: vec!["force".into()],
            addon_terms: vec!["centre".into()],
            ..RecordMeta::default()
        };
        let s: serde_json::Value = serde_json::from_slice(&tick_schema(&Names::new(&meta))).unwrap();
        let p = &s["properties"];
        assert!(p["signals"]["properties"]["theta"].is_object());
        assert!(p["command"]["properties"]["force"].is_object());
        assert!(p["addon"]["properties"]["centre"].is_object());
        assert_eq!(p["decisions"]["properties"]["kl_limited"]["type"], "boolean");
        assert_eq!(p["link"]["properties"]["reconnects"]["type"], "integer");
    }
}
