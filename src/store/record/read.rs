//! Reading a record back: the file opened and checked to be an MCAP of resq ticks, its header,
//! and its ticks decoded into plain values (what `resq inspect` summarises and `resq learn
//! --from` learns from).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use prost::Message;

use super::proto::{decode_floats, DecisionsPb, TickPb};
use super::recorder::{
    MetaMessage, RecorderStats, FORMAT, FORMAT_VERSION, TOPIC_META, TOPIC_STATS, TOPIC_TICK,
};
use super::tick::RecordMeta;
use crate::error::Fixable;

/// One message of a record, decoded.
pub enum Item {
    Meta(RecordMeta),
    /// A tick and its log time (ns since the Unix epoch).
    Tick(Box<TickPb>, u64),
    Stats(RecorderStats),
}

/// The messages of the record at `path`, in file order: `Err` for a file that is not an MCAP
/// (named); each item `Err` where a message is unreadable (a cut or corrupt file ends there).
pub fn messages(path: &Path) -> Result<impl Iterator<Item = Result<Item>>> {
    let name = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot open record {name}"))?;
    let mut head = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut head).with_context(|| format!("cannot read record {name}"))?;
    if head != mcap::MAGIC {
        return Err(anyhow!("{name}: not an MCAP file (it does not start with the MCAP magic bytes)"));
    }
    file.rewind().with_context(|| format!("cannot read record {name}"))?;
    let reader = mcap::io::MessageReader::new(BufReader::with_capacity(1 << 16, file));
    Ok(reader.filter_map(move |msg| {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                return Some(Err(
                    anyhow!(e).context(format!("{name}: not a readable MCAP record (reading stopped)"))
                ))
            }
        };
        match msg.channel.topic.as_str() {
            TOPIC_TICK => Some(tick(&name, &msg).map(|t| Item::Tick(Box::new(t), msg.log_time))),
            TOPIC_META => Some(meta(&name, &msg.data).map(Item::Meta)),
            TOPIC_STATS => Some(
                serde_json::from_slice(&msg.data)
                    .with_context(|| format!("{name}: the {TOPIC_STATS} message is unreadable"))
                    .map(Item::Stats),
            ),
            _ => None,
        }
    }))
}

fn tick(name: &str, msg: &mcap::Message) -> Result<TickPb> {
    if msg.channel.message_encoding != "protobuf" {
        return Err(Fixable::new(
            format!(
                "{name}: its ticks are `{}` messages, written by an older resq (record format 1); this resq reads format {FORMAT_VERSION} (protobuf ticks)",
                msg.channel.message_encoding
            ),
            "open the file in Foxglove, or inspect it with the resq that wrote it",
        )
        .into());
    }
    TickPb::decode(&msg.data[..])
        .with_context(|| format!("{name}: {TOPIC_TICK} message {} is not a resq tick", msg.sequence))
}

fn meta(name: &str, data: &[u8]) -> Result<RecordMeta> {
    let m: MetaMessage = serde_json::from_slice(data)
        .with_context(|| format!("{name}: the {TOPIC_META} message is unreadable"))?;
    if m.format != FORMAT {
        return Err(anyhow!("{name}: not a resq record (format `{}`, expected `{FORMAT}`)", m.format));
    }
    if m.version > FORMAT_VERSION {
        log::warn!(
            "{name}: record format version {} is newer than this resq's ({FORMAT_VERSION})",
            m.version
        );
    }
    Ok(m.meta)
}

/// A recorded tick as plain values: what a learner reads back.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub tick: u64,
    /// The signals, in the header's order.
    pub signals: Vec<f32>,
    /// At an episode's last tick, the signals it ended on (records before they were kept: `None`).
    pub end_signals: Option<Vec<f32>>,
    /// The command sent (after the supervisor).
    pub command: Vec<f32>,
    /// `log π0(·|s)` as recorded (per action, or per candidate).
    pub logp0: Vec<f32>,
    /// `Q_R(s,·)` as recorded, per action or candidate as `logp0`.
    pub q_r: Vec<f32>,
    pub action: u32,
    /// `log π` of the command as drawn; NaN where it was not drawn.
    pub logpi: f32,
    pub addon_reward: f32,
    pub decisions: DecisionsPb,
    /// The link's reconnects so far (a change between two ticks: the link was cut there).
    pub reconnects: u64,
}

/// A whole record read back: its header and ticks, and whether reading reached its end.
#[derive(Debug)]
pub struct Recorded {
    pub meta: RecordMeta,
    pub ticks: Vec<Tick>,
    /// Why reading stopped before the end (a cut or corrupt file); the ticks before it are kept.
    pub read_error: Option<String>,
    /// Ticks whose message was readable but whose signals or command were not (skipped).
    pub malformed: u64,
}

/// Reads the record at `path`. Not an MCAP, or no resq header: an error naming the file. A file
/// cut short keeps the ticks before the cut (`read_error` says why).
pub fn read(path: &Path) -> Result<Recorded> {
    let mut meta = None;
    let mut out = Recorded { meta: RecordMeta::default(), ticks: Vec::new(), read_error: None, malformed: 0 };
    for item in messages(path)? {
        let item = match item {
            Ok(i) => i,
            Err(e) if meta.is_none() && out.ticks.is_empty() => return Err(e),
            // Not a cut: ticks this resq cannot read at all (an older format).
            Err(e) if e.downcast_ref::<Fixable>().is_some() => return Err(e),
            Err(e) => {
                out.read_error = Some(format!("{e:#}"));
                break;
            }
        };
        match item {
            Item::Meta(m) => meta = Some(m),
            Item::Tick(t, _) => {
                let Some(m) = &meta else { continue };
                let (ns, nc) = (m.signals.len(), m.commands.len());
                let signals = decode_floats(&t.signals, ns);
                let command = decode_floats(&t.command, nc);
                // Present where the tick says so (all zeros encode as nothing), or where written
                // by a resq before the flag.
                let kept = t.decisions.is_some_and(|d| d.end_state) || !t.end_signals.is_empty();
                let end_signals = if kept { decode_floats(&t.end_signals, ns).map(Some) } else { Some(None) };
                match (signals, command, end_signals) {
                    (Some(signals), Some(command), Some(end_signals)) => out.ticks.push(Tick {
                        tick: t.tick,
                        signals,
                        end_signals,
                        command,
                        logp0: t.logp0,
                        q_r: t.q_r,
                        reconnects: t.link.map_or(0, |l| l.reconnects),
                        action: t.action,
                        logpi: t.logpi,
                        addon_reward: t.addon_reward,
                        decisions: t.decisions.unwrap_or_default(),
                    }),
                    _ => out.malformed += 1,
                }
            }
            Item::Stats(_) => {}
        }
    }
    out.meta =
        meta.ok_or_else(|| anyhow!("{}: not a resq record (no {TOPIC_META} message)", path.display()))?;
    Ok(out)
}
