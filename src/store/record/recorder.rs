//! The recorder: the control loop hands each [`TickRecord`] to [`Recorder::record`], which
//! never blocks and never allocates (a `try_send` into a preallocated bounded queue; a full
//! queue drops the record and counts it). A writer thread turns the records into messages of an
//! MCAP file that Foxglove opens and plots:
//!
//! | topic | message encoding | schema | what |
//! |---|---|---|---|
//! | `/resq/meta` | `json` | `jsonschema` `resq.RecordMeta` | one message at the start: [`RecordMeta`] plus `format`, `version`, `started_unix_ns` |
//! | `/resq/tick` | `protobuf` | `protobuf` `resq.Tick` (see [`super::proto`]) | one message per recorded tick, `log_time = publish_time = started_unix_ns + t_ns` |
//! | `/resq/stats` | `json` | `jsonschema` `resq.RecorderStats` | one message at the end: `{written, dropped}` |
//!
//! Log times are wall-clock (ns since the Unix epoch), so Foxglove shows the real date; a
//! tick's `t_ns` (host monotonic time since the run started) is its log time minus
//! `started_unix_ns`. Ticks are binary protobuf and chunks zstd-compressed (by the writer
//! thread, never on the loop): about 85 bytes per tick on CartPole, against 770 as plain
//! JSON. Foxglove and every MCAP reader with a protobuf decoder read them from the schema in
//! the file (`scripts/read_record.py` is such a reader, in Python).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::proto::{tick_schema, TickEncoder, TICK_MESSAGE};
use super::tick::{RecordMeta, TickRecord};

pub const TOPIC_META: &str = "/resq/meta";
pub const TOPIC_TICK: &str = "/resq/tick";
pub const TOPIC_STATS: &str = "/resq/stats";
/// Value of the meta message's `format` field.
pub const FORMAT: &str = "resq.record";
/// Value of the meta message's `version` field: 2 since ticks are protobuf (1: JSON ticks).
pub const FORMAT_VERSION: u32 = 2;
/// The queue length runs use: 4096 records (≈ 2 MB), 0.4 s of ticks at 10 kHz, 80 s at 50 Hz.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Target size of an MCAP chunk. Smaller than mcap's 1 MiB default so a crash loses less.
const CHUNK_SIZE: u64 = 256 * 1024;

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
            // Message indexes are optional (readers find messages through the chunk indexes) and
            // are not compressed: they would cost 16 bytes a tick. zstd level 18 on the writer
            // thread; bytes per tick on CartPole over the rig (tests/hil.rs) and, in brackets, the
            // writer's rate (tests/record.rs `writer_rate`): default 3: 99.5, 12: 99.5 (100 k
            // ticks/s), 16: 95.2 (31 k/s), 18: 85.3 (24 k/s), 19: 84.8 (15 k/s).
            .emit_message_indexes(false)
            .compression_level(18)
            .library(format!("resq/{}", env!("CARGO_PKG_VERSION")));
        let mut out = opts.create(BufWriter::with_capacity(1 << 16, file)).with_context(ctx)?;

        let meta_schema =
            out.add_schema("resq.RecordMeta", "jsonschema", &meta_schema()).with_context(ctx)?;
        let tick_schema = out.add_schema(TICK_MESSAGE, "protobuf", &tick_schema(&meta)).with_context(ctx)?;
        let stats_schema =
            out.add_schema("resq.RecorderStats", "jsonschema", &stats_schema()).with_context(ctx)?;
        let none = BTreeMap::new();
        let meta_channel = out.add_channel(meta_schema, TOPIC_META, "json", &none).with_context(ctx)?;
        let tick_channel = out.add_channel(tick_schema, TOPIC_TICK, "protobuf", &none).with_context(ctx)?;
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
                    let r = write_ticks(&mut out, rx, tick_channel, &counters, started_unix_ns);
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

    /// Queues one record, waiting for room when the queue is full: for a robot that waits for
    /// resq (a simulation in process or in lock-step), where a faster-than-real-time loop would
    /// otherwise outrun the writer and drop ticks an offline learner needs. Never on a robot
    /// with its own clock. `false` (counted as dropped) only if the writer has failed.
    pub fn record_waiting(&self, r: &TickRecord) -> bool {
        if let Some(tx) = &self.tx {
            if tx.send(*r).is_ok() {
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

/// The writer thread's loop: until the queue closes, one protobuf message per record. Returns
/// the last log time written.
fn write_ticks(
    out: &mut Mcap,
    rx: Receiver<TickRecord>,
    channel_id: u16,
    counters: &Counters,
    started_unix_ns: u64,
) -> anyhow::Result<u64> {
    let mut encoder = TickEncoder::default();
    let mut sequence = 0u32;
    let mut last_log_time = started_unix_ns;
    while let Ok(r) = rx.recv() {
        let t = started_unix_ns + r.t_ns;
        out.write_to_known_channel(
            &mcap::records::MessageHeader { channel_id, sequence, log_time: t, publish_time: t },
            encoder.encode(&r),
        )?;
        sequence = sequence.wrapping_add(1);
        last_log_time = last_log_time.max(t);
        counters.written.fetch_add(1, Ordering::Relaxed);
    }
    Ok(last_log_time)
}

fn integer(description: &str) -> serde_json::Value {
    json!({"type": "integer", "minimum": 0, "description": description})
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
            "manifest_fnv1a64": {"type": "string", "description": "FNV-1a 64 of the manifest text the run used"},
            "prior_fnv1a64": {"type": "string", "description": "FNV-1a 64 of the prior's ONNX file"},
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
