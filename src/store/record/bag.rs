//! ROS 2 bags (MCAP with CDR messages, as `ros2 bag record` and `rosbags` write them) read as
//! records, through the bundle's `[ros2]` section: every message of the clock topic is a tick,
//! its signals the declared fields as they stand when it arrives, its command the first command
//! message after it and before the next tick. A tick whose signals are not all known yet (a
//! topic not heard from, a joint missing from the last JointState) or that no command followed
//! is left out, and the tick before it then has no successor (`resq learn` counts it as cut).
//! Nothing in a bag says how the commands were chosen: every action is taken as not drawn, so
//! the records support only the action applied (`[learning] offline_support`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::proto::DecisionsPb;
use super::read::{Recorded, Tick};
use super::tick::RecordMeta;
use crate::bundle::{Bundle, Ros2Layout};
use crate::error::Fixable;
use crate::robot::ros2::fields::Msg;

/// The message encoding of a ROS 2 bag's channels.
pub const CDR: &str = "cdr";

/// Whether the MCAP file at `path` is a ROS 2 bag (its first message is CDR).
pub fn is_bag(path: &Path) -> Result<bool> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = mcap::io::MessageReader::new(BufReader::new(file));
    Ok(matches!(reader.next(), Some(Ok(m)) if m.channel.message_encoding == CDR))
}

/// Where a message goes.
enum Route {
    Topic(usize),
    Command,
}

/// Reads the ROS 2 bag at `path` as ticks of `b`'s robot.
pub fn read(path: &Path, b: &Bundle) -> Result<Recorded> {
    let name = path.display();
    let layout = b.ros2.as_ref().ok_or_else(|| {
        Fixable::new(
            format!("{name} is a ROS 2 bag, and {} has no `[ros2]` to map its topics to signals", b.manifest_path.display()),
            "add `[ros2]` (the clock topic, the command topic and type, a `[[ros2.topic]]` per topic) and `topic`/`field` to each `[[robot.signal]]` (docs/manifest.md)",
        )
    })?;
    if layout.clock_topic().is_none() {
        return Err(Fixable::new(
            format!("{name}: {} ticks on resq's own timer (`[ros2] clock_period_ms`), which a bag does not record", b.manifest_path.display()),
            "give `[ros2] clock` a topic of the bag whose every message is a tick (typically /joint_states) to learn from it",
        )
        .into());
    }
    let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let reader = mcap::io::MessageReader::new(BufReader::with_capacity(1 << 16, file));
    let mut messages: Vec<(u64, usize, Route, Vec<u8>)> = Vec::new();
    let mut read_error = None;
    for (k, msg) in reader.enumerate() {
        let msg = match msg {
            Ok(m) => m,
            Err(e) if messages.is_empty() => {
                return Err(anyhow!(e).context(format!("{name}: not a readable MCAP bag")))
            }
            Err(e) => {
                read_error = Some(format!("{name}: reading stopped: {e}"));
                break;
            }
        };
        let topic = msg.channel.topic.as_str();
        let route = if topic == layout.command_topic {
            expect_type(&name, topic, &msg, layout.command_type.name)?;
            Route::Command
        } else if let Some(i) = layout.topics.iter().position(|(t, _)| t == topic) {
            expect_type(&name, topic, &msg, layout.topics[i].1.name)?;
            Route::Topic(i)
        } else {
            continue;
        };
        messages.push((msg.log_time, k, route, msg.data.into_owned()));
    }
    // In time order (a bag's chunks need not be); ties in file order.
    messages.sort_by_key(|(t, k, _, _)| (*t, *k));
    let a = assemble(layout, &messages);
    if a.ticks.is_empty() {
        return Err(no_ticks(&name, b, layout, &a).into());
    }
    let (ticks, malformed) = (a.ticks, a.malformed);
    let meta = RecordMeta::layout(b, &format!("ROS 2 bag {name}"));
    Ok(Recorded { meta, ticks, read_error, malformed })
}

/// A declared topic must carry the declared type.
fn expect_type(
    name: &impl std::fmt::Display,
    topic: &str,
    msg: &mcap::Message,
    declared: &str,
) -> Result<()> {
    let in_bag = msg.channel.schema.as_ref().map(|s| s.name.as_str()).unwrap_or("");
    if msg.channel.message_encoding != CDR || in_bag != declared {
        return Err(Fixable::new(
            format!(
                "{name}: topic `{topic}` holds `{in_bag}` messages ({}), the manifest declares `{declared}`",
                msg.channel.message_encoding
            ),
            "declare the topic's type as the bag has it (`[[ros2.topic]] type`, `[ros2] command_type`), or map the signals from another topic",
        )
        .into());
    }
    Ok(())
}

/// What a bag gave: its ticks, the messages that could not be decoded, and (to say why a bag
/// gave no tick) which signals were ever read, how many clock and command messages came.
struct Assembled {
    ticks: Vec<Tick>,
    malformed: u64,
    seen: Vec<bool>,
    clocks: u64,
    commands: u64,
}

/// Why a bag gave no tick: the signals never read (a joint or topic named otherwise in the
/// bag), or no clock or command message.
fn no_ticks(name: &impl std::fmt::Display, b: &Bundle, layout: &Ros2Layout, a: &Assembled) -> Fixable {
    let unseen: Vec<String> = b
        .manifest
        .robot
        .signals
        .iter()
        .zip(&a.seen)
        .filter(|(_, seen)| !**seen)
        .map(|(s, _)| {
            let (topic, field) = (s.topic.as_deref().unwrap_or(""), s.field.as_deref().unwrap_or(""));
            format!("`{}` (`{field}` of `{topic}`)", s.name)
        })
        .collect();
    let why = if a.clocks == 0 {
        format!(
            "no message on the clock topic `{}`",
            layout.clock_topic().map_or("", |i| layout.topics[i].0.as_str())
        )
    } else if !unseen.is_empty() {
        format!("these signals were never in its messages: {}", unseen.join(", "))
    } else if a.commands == 0 {
        format!("no message on the command topic `{}`", layout.command_topic)
    } else {
        "no clock message was followed by a command before the next one".to_string()
    };
    Fixable::new(
        format!("{name}: no tick: {why}"),
        "check the names in `[ros2]` and each signal's `topic` and `field` against the bag (`ros2 bag info`, or Foxglove)",
    )
}

/// The ticks of time-ordered messages.
fn assemble(layout: &Ros2Layout, messages: &[(u64, usize, Route, Vec<u8>)]) -> Assembled {
    let n = layout.signals.len();
    let mut latest: Vec<Option<f64>> = vec![None; n];
    let mut seen = vec![false; n];
    let mut commands = 0u64;
    let mut ticks = Vec::new();
    let mut malformed = 0;
    // The tick waiting for its command (its number counts every clock message).
    let mut pending: Option<Tick> = None;
    let mut clock_count = 0u64;
    for (_, _, route, payload) in messages {
        match route {
            Route::Topic(i) => {
                let Ok(m) = Msg::decode(layout.topics[*i].1, payload) else {
                    malformed += 1;
                    continue;
                };
                for (s, (topic, field)) in layout.signals.iter().enumerate() {
                    if topic == i {
                        latest[s] = field.read(&m);
                        seen[s] |= latest[s].is_some();
                    }
                }
                if Some(*i) == layout.clock_topic() {
                    clock_count += 1;
                    // A tick no command followed is left out.
                    pending = latest.iter().all(Option::is_some).then(|| Tick {
                        tick: clock_count,
                        signals: latest.iter().map(|v| v.unwrap_or(f64::NAN) as f32).collect(),
                        end_signals: None,
                        command: Vec::new(),
                        logp0: Vec::new(),
                        q_r: Vec::new(),
                        action: 0,
                        logpi: f32::NAN,
                        addon_reward: f32::NAN,
                        decisions: DecisionsPb::default(),
                        reconnects: 0,
                    });
                }
            }
            Route::Command => {
                let Ok(m) = Msg::decode(layout.command_type, payload) else {
                    malformed += 1;
                    continue;
                };
                commands += 1;
                if let Some(mut t) = pending.take() {
                    t.command =
                        layout.commands.iter().map(|f| f.read(&m).unwrap_or(f64::NAN) as f32).collect();
                    ticks.push(t);
                }
            }
        }
    }
    Assembled { ticks, malformed, seen, clocks: clock_count, commands }
}
