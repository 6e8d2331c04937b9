//! The `/resq/tick` message in protobuf, the binary encoding Foxglove (and every MCAP reader
//! with a protobuf decoder) reads from the schema stored in the file.
//!
//! The schema is made per record from its [`super::RecordMeta`], so that signals,
//! commands and add-on terms are fields *named* after the bundle's (`/resq/tick.signals.theta`
//! in a Foxglove plot), and a discrete action is an enum whose values are the action labels:
//!
//! ```proto
//! syntax = "proto3";
//! package resq;
//! enum Action { left = 0; right = 1; }              // the meta's action labels, if any
//! message Tick {
//!   message Signals  { float x = 1; float x_dot = 2; ... }   // the meta's signal names
//!   message Command  { float force = 1; ... }                // command names
//!   message Addon    { float centre = 1; ... }               // add-on term names
//!   message Decisions { bool fallback = 1; ... bool terminated = 11; bool end_state = 12; }
//!   message Link     { uint64 frames = 1; ... uint64 reconnects = 7; }
//!   uint64 tick = 2;            uint32 seq = 3;         uint64 firmware_t_us = 4;
//!   Signals signals = 5;        repeated float obs = 6; repeated float logp0 = 7;
//!   repeated float q_r = 8;     Action action = 9;      // uint32 when there are no labels
//!   Command command = 10;       Addon addon = 11;       float addon_reward = 12;
//!   float kl = 13;              Decisions decisions = 14;
//!   uint32 latency_ns = 15;     uint64 period_ns = 16;  Link link = 17;
//!   float logpi = 18;           // log π of the command sent, as drawn; NaN: not drawn
//!   Signals end_signals = 19;   // at an episode's last tick: the signals it ended on (s')
//! }
//! ```
//!
//! A tick's time is the MCAP message's `log_time` (wall clock); field 1 is left free for it
//! because storing it twice costs bytes on every tick. Proto3 leaves out zero values, so a
//! decision that was not taken or a link counter still at 0 costs nothing. [`TickPb`] is the
//! same message for prost: the three named groups are embedded messages, encoded by hand into
//! `bytes` fields (the wire format of an embedded message and of `bytes` is the same).

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto, FileDescriptorSet,
};

use super::tick::{RecordMeta, TickRecord, MAX};
use crate::control::Decisions;
use crate::robot::LinkCounters;

/// The tick message's full name (the MCAP schema's name).
pub const TICK_MESSAGE: &str = "resq.Tick";

/// Link counters in the order of their field numbers (1, 2, …).
pub(crate) const LINK_NAMES: [&str; 7] =
    ["frames", "crc_errors", "other_errors", "seq_gaps", "duplicates", "late_frames", "reconnects"];

/// `resq.Tick` for prost (field numbers as in the module's schema).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TickPb {
    #[prost(uint64, tag = "2")]
    pub tick: u64,
    #[prost(uint32, tag = "3")]
    pub seq: u32,
    #[prost(uint64, tag = "4")]
    pub firmware_t_us: u64,
    /// `resq.Tick.Signals`, encoded.
    #[prost(bytes = "vec", tag = "5")]
    pub signals: Vec<u8>,
    #[prost(float, repeated, tag = "6")]
    pub obs: Vec<f32>,
    #[prost(float, repeated, tag = "7")]
    pub logp0: Vec<f32>,
    #[prost(float, repeated, tag = "8")]
    pub q_r: Vec<f32>,
    #[prost(uint32, tag = "9")]
    pub action: u32,
    /// `resq.Tick.Command`, encoded.
    #[prost(bytes = "vec", tag = "10")]
    pub command: Vec<u8>,
    /// `resq.Tick.Addon`, encoded.
    #[prost(bytes = "vec", tag = "11")]
    pub addon: Vec<u8>,
    #[prost(float, tag = "12")]
    pub addon_reward: f32,
    #[prost(float, tag = "13")]
    pub kl: f32,
    #[prost(message, optional, tag = "14")]
    pub decisions: Option<DecisionsPb>,
    #[prost(uint32, tag = "15")]
    pub latency_ns: u32,
    #[prost(uint64, tag = "16")]
    pub period_ns: u64,
    #[prost(message, optional, tag = "17")]
    pub link: Option<LinkPb>,
    #[prost(float, tag = "18")]
    pub logpi: f32,
    /// `resq.Tick.Signals`, encoded: at the last tick of an episode, the signals it ended on
    /// (the state `s'` no later tick shows); empty otherwise, and in records before it was kept.
    #[prost(bytes = "vec", tag = "19")]
    pub end_signals: Vec<u8>,
}

/// `resq.Tick.Decisions`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct DecisionsPb {
    #[prost(bool, tag = "1")]
    pub fallback: bool,
    #[prost(bool, tag = "2")]
    pub deadline_miss: bool,
    #[prost(bool, tag = "3")]
    pub estop: bool,
    #[prost(bool, tag = "4")]
    pub clamped: bool,
    #[prost(bool, tag = "5")]
    pub rate_limited: bool,
    #[prost(bool, tag = "6")]
    pub kl_limited: bool,
    #[prost(bool, tag = "7")]
    pub episode_end: bool,
    #[prost(bool, tag = "8")]
    pub signal_fault: bool,
    #[prost(bool, tag = "9")]
    pub prior_fault: bool,
    #[prost(bool, tag = "10")]
    pub late: bool,
    #[prost(bool, tag = "11")]
    pub terminated: bool,
    #[prost(bool, tag = "12")]
    pub end_state: bool,
}

impl DecisionsPb {
    fn from_bits(d: Decisions) -> DecisionsPb {
        let b = |bit| d.contains(bit);
        DecisionsPb {
            fallback: b(Decisions::FALLBACK),
            deadline_miss: b(Decisions::DEADLINE_MISS),
            estop: b(Decisions::ESTOP),
            clamped: b(Decisions::CLAMPED),
            rate_limited: b(Decisions::RATE_LIMITED),
            kl_limited: b(Decisions::KL_LIMITED),
            episode_end: b(Decisions::EPISODE_END),
            signal_fault: b(Decisions::SIGNAL_FAULT),
            prior_fault: b(Decisions::PRIOR_FAULT),
            late: b(Decisions::LATE),
            terminated: b(Decisions::TERMINATED),
            end_state: b(Decisions::END_STATE),
        }
    }
}

/// `resq.Tick.Link`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct LinkPb {
    #[prost(uint64, tag = "1")]
    pub frames: u64,
    #[prost(uint64, tag = "2")]
    pub crc_errors: u64,
    #[prost(uint64, tag = "3")]
    pub other_errors: u64,
    #[prost(uint64, tag = "4")]
    pub seq_gaps: u64,
    #[prost(uint64, tag = "5")]
    pub duplicates: u64,
    #[prost(uint64, tag = "6")]
    pub late_frames: u64,
    #[prost(uint64, tag = "7")]
    pub reconnects: u64,
}

impl From<&LinkCounters> for LinkPb {
    fn from(l: &LinkCounters) -> LinkPb {
        let LinkCounters { frames, crc_errors, other_errors, seq_gaps, duplicates, late_frames, reconnects } =
            *l;
        LinkPb { frames, crc_errors, other_errors, seq_gaps, duplicates, late_frames, reconnects }
    }
}

impl LinkPb {
    pub fn counters(&self) -> LinkCounters {
        LinkCounters {
            frames: self.frames,
            crc_errors: self.crc_errors,
            other_errors: self.other_errors,
            seq_gaps: self.seq_gaps,
            duplicates: self.duplicates,
            late_frames: self.late_frames,
            reconnects: self.reconnects,
        }
    }
}

/// Encodes ticks into a reused message and buffer (no allocation once they have grown).
#[derive(Default)]
pub(crate) struct TickEncoder {
    msg: TickPb,
    buf: Vec<u8>,
}

impl TickEncoder {
    /// The encoded `resq.Tick` of `r`, valid until the next call.
    pub fn encode(&mut self, r: &TickRecord) -> &[u8] {
        let n_act = len(r.n_actions);
        let m = &mut self.msg;
        m.tick = r.tick;
        m.seq = r.seq;
        m.firmware_t_us = r.firmware_t_us;
        floats_message(&r.signals[..len(r.n_signals)], &mut m.signals);
        refill(&mut m.obs, &r.obs[..len(r.n_obs)]);
        refill(&mut m.logp0, &r.logp0[..n_act]);
        refill(&mut m.q_r, &r.q_r[..n_act]);
        m.action = r.action;
        floats_message(&r.command[..len(r.n_commands)], &mut m.command);
        floats_message(&r.addon_terms[..len(r.n_terms)], &mut m.addon);
        m.addon_reward = r.addon_reward;
        m.kl = r.kl;
        m.logpi = r.logpi;
        m.decisions = (r.decisions != Decisions::default()).then(|| DecisionsPb::from_bits(r.decisions));
        m.latency_ns = r.latency_ns;
        m.period_ns = r.period_ns;
        m.link = (r.link != LinkCounters::default()).then(|| LinkPb::from(&r.link));
        if r.decisions.contains(Decisions::EPISODE_END) {
            floats_message(&r.end_signals[..len(r.n_signals)], &mut m.end_signals);
        } else {
            m.end_signals.clear();
        }
        self.buf.clear();
        m.encode(&mut self.buf).expect("a Vec grows as needed");
        &self.buf
    }
}

#[inline]
fn len(n: u8) -> usize {
    (n as usize).min(MAX)
}

fn refill(v: &mut Vec<f32>, from: &[f32]) {
    v.clear();
    v.extend_from_slice(from);
}

/// Encodes `values` as a message whose fields 1, 2, … are floats (a zero is left out, as
/// proto3 does).
fn floats_message(values: &[f32], out: &mut Vec<u8>) {
    out.clear();
    for (i, v) in values.iter().enumerate() {
        if *v != 0.0 {
            prost::encoding::float::encode(i as u32 + 1, v, out);
        }
    }
}

/// Decodes a message of floats numbered 1, 2, … (as the encoder writes signals, commands and add-on terms) into `n` values (absent fields are 0);
/// `None` if it is not such a message (another wire type, a field number outside `1..=n`, cut).
pub fn decode_floats(mut bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    use prost::encoding::{decode_key, WireType};
    let mut out = vec![0.0f32; n];
    while !bytes.is_empty() {
        let (tag, wire) = decode_key(&mut bytes).ok()?;
        if wire != WireType::ThirtyTwoBit || tag == 0 || tag as usize > n || bytes.len() < 4 {
            return None;
        }
        out[tag as usize - 1] = f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        bytes = &bytes[4..];
    }
    Some(out)
}

/// The names a record's schema gives to `given` (completed to [`MAX`] entries with
/// `<prefix><i>`): valid protobuf identifiers (`[A-Za-z_][A-Za-z0-9_]*`, other characters
/// become `_`), unique, and none of `reserved`.
pub fn field_names(given: &[String], prefix: &str, reserved: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(MAX);
    for i in 0..MAX {
        let raw = match given.get(i) {
            Some(s) if !s.is_empty() => s.as_str(),
            _ => "",
        };
        let mut k: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        if k.is_empty() {
            k = format!("{prefix}{i}");
        } else if k.starts_with(|c: char| c.is_ascii_digit()) {
            k.insert(0, '_');
        }
        if out.contains(&k) || reserved.contains(&k.as_str()) {
            k = format!("{k}_{i}");
        }
        out.push(k);
    }
    out
}

fn field(name: &str, number: i32, ty: Type, type_name: Option<&str>, repeated: bool) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(name.into()),
        number: Some(number),
        label: Some(if repeated { Label::Repeated } else { Label::Optional } as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(str::to_string),
        ..Default::default()
    }
}

fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto { name: Some(name.into()), field: fields, ..Default::default() }
}

fn numbered(names: &[String], n: usize, ty: Type) -> Vec<FieldDescriptorProto> {
    names.iter().take(n).enumerate().map(|(i, k)| field(k, i as i32 + 1, ty, None, false)).collect()
}

/// The `FileDescriptorSet` (serialized) that describes `resq.Tick` for the record `meta`: the
/// MCAP schema data of the tick channel (schema encoding `protobuf`).
pub fn tick_schema(meta: &RecordMeta) -> Vec<u8> {
    let n = |v: &Vec<String>| v.len().min(MAX);
    let signals = field_names(&meta.signals, "signal", &[]);
    let commands = field_names(&meta.commands, "command", &[]);
    let terms = field_names(&meta.addon_terms, "term", &[]);
    // Enum values live in the package's scope, beside the two type names.
    let actions = field_names(&meta.actions, "action", &["Tick", "Action"]);
    let decisions = Decisions::NAMES
        .iter()
        .enumerate()
        .map(|(i, (k, _))| field(k, i as i32 + 1, Type::Bool, None, false));
    let link = LINK_NAMES.iter().enumerate().map(|(i, k)| field(k, i as i32 + 1, Type::Uint64, None, false));
    let labelled = !meta.actions.is_empty();

    let tick = DescriptorProto {
        name: Some("Tick".into()),
        nested_type: vec![
            message("Signals", numbered(&signals, n(&meta.signals), Type::Float)),
            message("Command", numbered(&commands, n(&meta.commands), Type::Float)),
            message("Addon", numbered(&terms, n(&meta.addon_terms), Type::Float)),
            message("Decisions", decisions.collect()),
            message("Link", link.collect()),
        ],
        field: vec![
            field("tick", 2, Type::Uint64, None, false),
            field("seq", 3, Type::Uint32, None, false),
            field("firmware_t_us", 4, Type::Uint64, None, false),
            field("signals", 5, Type::Message, Some(".resq.Tick.Signals"), false),
            field("obs", 6, Type::Float, None, true),
            field("logp0", 7, Type::Float, None, true),
            field("q_r", 8, Type::Float, None, true),
            if labelled {
                field("action", 9, Type::Enum, Some(".resq.Action"), false)
            } else {
                field("action", 9, Type::Uint32, None, false)
            },
            field("command", 10, Type::Message, Some(".resq.Tick.Command"), false),
            field("addon", 11, Type::Message, Some(".resq.Tick.Addon"), false),
            field("addon_reward", 12, Type::Float, None, false),
            field("kl", 13, Type::Float, None, false),
            field("decisions", 14, Type::Message, Some(".resq.Tick.Decisions"), false),
            field("latency_ns", 15, Type::Uint32, None, false),
            field("period_ns", 16, Type::Uint64, None, false),
            field("link", 17, Type::Message, Some(".resq.Tick.Link"), false),
            field("logpi", 18, Type::Float, None, false),
            field("end_signals", 19, Type::Message, Some(".resq.Tick.Signals"), false),
        ],
        ..Default::default()
    };
    let enums = if labelled {
        vec![EnumDescriptorProto {
            name: Some("Action".into()),
            value: actions
                .iter()
                .take(n(&meta.actions))
                .enumerate()
                .map(|(i, k)| EnumValueDescriptorProto {
                    name: Some(k.clone()),
                    number: Some(i as i32),
                    options: None,
                })
                .collect(),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };
    let file = FileDescriptorProto {
        name: Some("resq/tick.proto".into()),
        package: Some("resq".into()),
        message_type: vec![tick],
        enum_type: enums,
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    FileDescriptorSet { file: vec![file] }.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers_completed_and_unique() {
        let k = field_names(
            &["x".into(), "".into(), "x".into(), "2nd-try".into(), "Tick".into()],
            "signal",
            &["Tick"],
        );
        assert_eq!(k.len(), MAX);
        assert_eq!(&k[..6], ["x", "signal1", "x_2", "_2nd_try", "Tick_4", "signal5"]);
    }

    #[test]
    fn floats_round_trip_with_zeros_left_out() {
        let v = [1.5f32, 0.0, -2.25, f32::NAN];
        let mut buf = Vec::new();
        floats_message(&v, &mut buf);
        assert_eq!(buf.len(), 3 * 5, "three non-zero floats, 5 bytes each");
        let back = decode_floats(&buf, 4).unwrap();
        assert_eq!(&back[..3], &v[..3]);
        assert!(back[3].is_nan());
    }

    #[test]
    fn the_schema_names_the_meta_fields() {
        let meta = RecordMeta {
            signals: vec!["x".into(), "theta".into()],
            commands: vec!["force".into()],
            actions: vec!["left".into(), "right".into()],
            addon_terms: vec!["centre".into()],
            ..RecordMeta::default()
        };
        let set = FileDescriptorSet::decode(tick_schema(&meta).as_slice()).unwrap();
        let file = &set.file[0];
        assert_eq!(file.package(), "resq");
        let tick = &file.message_type[0];
        let nested = |name: &str| tick.nested_type.iter().find(|m| m.name() == name).unwrap();
        let names = |m: &DescriptorProto| m.field.iter().map(|f| f.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(nested("Signals")), ["x", "theta"]);
        assert_eq!(names(nested("Command")), ["force"]);
        assert_eq!(names(nested("Addon")), ["centre"]);
        assert_eq!(names(nested("Decisions")).len(), Decisions::NAMES.len());
        assert_eq!(file.enum_type[0].value[1].name(), "right");
        // Every field of TickPb is in the schema, with the same number.
        let numbers: Vec<i32> = tick.field.iter().map(|f| f.number()).collect();
        assert_eq!(numbers, (2..=19).collect::<Vec<_>>());
    }
}
