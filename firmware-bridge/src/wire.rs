//! Byte layouts: message ⇄ payload (`type`, body, CRC-32C) and message → frame
//! (COBS(payload) + `0x00`).
//!
//! All multi-byte fields are little-endian; floats are IEEE-754 binary32 little-endian.

use crate::cobs;
use crate::crc::crc32c;
use crate::error::{DecodeError, EncodeError};
use crate::message::{
    msg_type, Command, Fault, FaultCode, Heartbeat, Hello, Message, Mode, Name, NameKind, Reject,
    RejectReason, Reset, Role, Sensor, SensorFlags, Values, MAX_COMMANDS, MAX_NAME_LEN, MAX_SIGNALS,
};

/// Body length of `Hello`.
pub const HELLO_BODY_LEN: usize = 18;
/// Body length of `Reject`.
pub const REJECT_BODY_LEN: usize = 9;
/// Body length of `Sensor` before its values (seq, t_us, flags, n).
pub const SENSOR_HEADER_LEN: usize = 14;
/// Body length of `Command` before its values (seq, valid_for_us, n).
pub const COMMAND_HEADER_LEN: usize = 9;
/// Body length of `Name` before the name's bytes (kind, index, count, len).
pub const NAME_HEADER_LEN: usize = 4;
/// Body length of `Reset`.
pub const RESET_BODY_LEN: usize = 8;
/// Body length of `Heartbeat`.
pub const HEARTBEAT_BODY_LEN: usize = 12;
/// Body length of `Fault`.
pub const FAULT_BODY_LEN: usize = 10;
/// Length of the CRC trailer.
pub const CRC_LEN: usize = 4;
/// Shortest valid payload: type byte + CRC (an empty body, e.g. `ClearEstop`).
pub const MIN_PAYLOAD: usize = 1 + CRC_LEN;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Longest body: a `Sensor` with [`MAX_SIGNALS`] values (270 bytes).
pub const MAX_BODY: usize = max(
    max(
        max(HELLO_BODY_LEN, REJECT_BODY_LEN),
        max(SENSOR_HEADER_LEN + 4 * MAX_SIGNALS, COMMAND_HEADER_LEN + 4 * MAX_COMMANDS),
    ),
    max(max(RESET_BODY_LEN, HEARTBEAT_BODY_LEN), max(FAULT_BODY_LEN, NAME_HEADER_LEN + MAX_NAME_LEN)),
);

/// Longest payload (type + body + CRC): 275 bytes.
pub const MAX_PAYLOAD: usize = 1 + MAX_BODY + CRC_LEN;

/// Longest frame on the wire, COBS-encoded payload plus the `0x00` delimiter: 278 bytes.
pub const MAX_FRAME: usize = cobs::max_encoded_len(MAX_PAYLOAD) + 1;

/// A buffer holding one encoded frame.
pub type FrameBuf = heapless::Vec<u8, MAX_FRAME>;

/// Sequential writer that never panics: overflow is reported once, at the end.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0, overflow: false }
    }

    fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.pos..self.pos + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.pos += b.len();
            }
            None => self.overflow = true,
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn values(&mut self, values: &[f32]) {
        // `n` is a u8 on the wire; the limits are far below 256.
        self.u8(values.len() as u8);
        for v in values {
            self.bytes(&v.to_le_bytes());
        }
    }
}

/// Sequential reader; every getter returns `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.buf.split_first_chunk::<N>()?;
        self.buf = tail;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn remaining(&self) -> usize {
        self.buf.len()
    }
}

const fn role_to_u8(r: Role) -> u8 {
    match r {
        Role::Host => 0,
        Role::Firmware => 1,
    }
}

const fn mode_to_u8(m: Mode) -> u8 {
    match m {
        Mode::LockStep => 0,
        Mode::RealTime => 1,
    }
}

const fn reason_to_u8(r: RejectReason) -> u8 {
    match r {
        RejectReason::Version => 1,
        RejectReason::LayoutHash => 2,
        RejectReason::Counts => 3,
        RejectReason::Mode => 4,
        RejectReason::Busy => 5,
    }
}

/// Writes the payload of `msg` (type, body, CRC-32C) into `out`; returns its length
/// (at most [`MAX_PAYLOAD`]). This is the data that [`encode`] COBS-encodes.
pub fn encode_payload(msg: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(out);
    w.u8(msg.msg_type());
    match msg {
        Message::Hello(h) => {
            w.u16(h.version);
            w.u8(role_to_u8(h.role));
            w.u8(mode_to_u8(h.mode));
            w.u32(h.period_us);
            w.u32(h.layout_hash);
            w.u8(h.n_signals);
            w.u8(h.n_actions);
            w.u32(h.boot_id);
        }
        Message::Reject(r) => {
            w.u8(reason_to_u8(r.reason));
            w.u16(r.version);
            w.u32(r.layout_hash);
            w.u8(r.n_signals);
            w.u8(r.n_actions);
        }
        Message::Name(n) => {
            if n.name.len() > MAX_NAME_LEN || n.index >= n.count {
                return Err(EncodeError::BadName);
            }
            w.u8(match n.kind {
                NameKind::Signal => 0,
                NameKind::Command => 1,
            });
            w.u8(n.index);
            w.u8(n.count);
            w.u8(n.name.len() as u8);
            w.bytes(n.name.as_bytes());
        }
        Message::Sensor(s) => {
            if s.values.len() > MAX_SIGNALS {
                return Err(EncodeError::TooManyValues);
            }
            w.u32(s.seq);
            w.u64(s.t_us);
            w.u8(s.flags.0);
            w.values(&s.values);
        }
        Message::Command(c) => {
            if c.values.len() > MAX_COMMANDS {
                return Err(EncodeError::TooManyValues);
            }
            w.u32(c.seq);
            w.u32(c.valid_for_us);
            w.values(&c.values);
        }
        Message::Reset(r) => w.u64(r.seed),
        Message::Heartbeat(h) => {
            w.u32(h.seq);
            w.u64(h.t_us);
        }
        Message::Fault(f) => {
            w.u16(f.code.to_u16());
            w.u64(f.t_us);
        }
        Message::ClearEstop => {}
    }
    if w.overflow {
        return Err(EncodeError::BufferTooSmall);
    }
    let len = w.pos;
    let crc = crc32c(&w.buf[..len]);
    w.u32(crc);
    if w.overflow {
        return Err(EncodeError::BufferTooSmall);
    }
    Ok(w.pos)
}

/// Writes one complete frame for `msg` — COBS(payload) followed by one `0x00` — into `out`
/// and returns its length (at most [`MAX_FRAME`]).
///
/// Does not check that values are finite: a frame carrying NaN or ±∞ is rejected by the
/// receiver as [`DecodeError::BadField`]. Never panics.
pub fn encode(msg: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = encode_payload(msg, &mut payload)?;
    let enc = cobs::encode(&payload[..n], out).map_err(|_| EncodeError::BufferTooSmall)?;
    *out.get_mut(enc).ok_or(EncodeError::BufferTooSmall)? = 0;
    Ok(enc + 1)
}

/// [`encode`] into a fresh [`FrameBuf`] (fails only with [`EncodeError::TooManyValues`]).
pub fn encode_to_vec(msg: &Message) -> Result<FrameBuf, EncodeError> {
    let mut buf = [0u8; MAX_FRAME];
    let n = encode(msg, &mut buf)?;
    FrameBuf::from_slice(&buf[..n]).map_err(|_| EncodeError::BufferTooSmall)
}

fn read_values(r: &mut Reader<'_>, max: usize) -> Result<Values, DecodeError> {
    let n = r.u8().ok_or(DecodeError::Length)? as usize;
    if n > max {
        return Err(DecodeError::BadField);
    }
    if r.remaining() != 4 * n {
        return Err(DecodeError::Length);
    }
    let mut values = Values::new();
    for _ in 0..n {
        let v = f32::from_le_bytes(r.take().ok_or(DecodeError::Length)?);
        if !v.is_finite() {
            return Err(DecodeError::BadField);
        }
        values.push(v).map_err(|_| DecodeError::BadField)?;
    }
    Ok(values)
}

/// Checks the CRC of a decoded payload (type, body, CRC-32C) and parses it.
///
/// Checks, in order: length ≥ 5 ([`DecodeError::Length`]), CRC ([`DecodeError::Crc`]), type
/// ([`DecodeError::UnknownType`]), then the body: exact length for the type
/// ([`DecodeError::Length`]) and field domains ([`DecodeError::BadField`]). For `Sensor` and
/// `Command`, a body too short to hold `n` is `Length`, `n` above [`MAX_SIGNALS`] (resp.
/// [`MAX_COMMANDS`]) is `BadField`, a body not of `header + 4·n` bytes is `Length`. For `Name`, a
/// body not of `4 + len` bytes is `Length`; a kind other than 0/1, `len > 32`, `index ≥ count`,
/// a 0x00 or invalid UTF-8 in the name is `BadField`.
pub fn decode_payload(payload: &[u8]) -> Result<Message, DecodeError> {
    if payload.len() < MIN_PAYLOAD {
        return Err(DecodeError::Length);
    }
    let (data, crc) = payload.split_at(payload.len() - CRC_LEN);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c(data) != crc {
        return Err(DecodeError::Crc);
    }
    let (ty, body) = match data.split_first() {
        Some((ty, body)) => (*ty, body),
        None => return Err(DecodeError::Length),
    };
    let fixed = |len: usize| {
        if body.len() == len {
            Ok(Reader { buf: body })
        } else {
            Err(DecodeError::Length)
        }
    };
    let l = DecodeError::Length;
    let msg = match ty {
        msg_type::HELLO => {
            let mut r = fixed(HELLO_BODY_LEN)?;
            let version = r.u16().ok_or(l)?;
            let role = match r.u8().ok_or(l)? {
                0 => Role::Host,
                1 => Role::Firmware,
                _ => return Err(DecodeError::BadField),
            };
            let mode = match r.u8().ok_or(l)? {
                0 => Mode::LockStep,
                1 => Mode::RealTime,
                _ => return Err(DecodeError::BadField),
            };
            Message::Hello(Hello {
                version,
                role,
                mode,
                period_us: r.u32().ok_or(l)?,
                layout_hash: r.u32().ok_or(l)?,
                n_signals: r.u8().ok_or(l)?,
                n_actions: r.u8().ok_or(l)?,
                boot_id: r.u32().ok_or(l)?,
            })
        }
        msg_type::REJECT => {
            let mut r = fixed(REJECT_BODY_LEN)?;
            let reason = match r.u8().ok_or(l)? {
                1 => RejectReason::Version,
                2 => RejectReason::LayoutHash,
                3 => RejectReason::Counts,
                4 => RejectReason::Mode,
                5 => RejectReason::Busy,
                _ => return Err(DecodeError::BadField),
            };
            Message::Reject(Reject {
                reason,
                version: r.u16().ok_or(l)?,
                layout_hash: r.u32().ok_or(l)?,
                n_signals: r.u8().ok_or(l)?,
                n_actions: r.u8().ok_or(l)?,
            })
        }
        msg_type::SENSOR => {
            if body.len() < SENSOR_HEADER_LEN {
                return Err(l);
            }
            let mut r = Reader { buf: body };
            let seq = r.u32().ok_or(l)?;
            let t_us = r.u64().ok_or(l)?;
            let flags = SensorFlags(r.u8().ok_or(l)?);
            let values = read_values(&mut r, MAX_SIGNALS)?;
            Message::Sensor(Sensor { seq, t_us, flags, values })
        }
        msg_type::COMMAND => {
            if body.len() < COMMAND_HEADER_LEN {
                return Err(l);
            }
            let mut r = Reader { buf: body };
            let seq = r.u32().ok_or(l)?;
            let valid_for_us = r.u32().ok_or(l)?;
            let values = read_values(&mut r, MAX_COMMANDS)?;
            Message::Command(Command { seq, valid_for_us, values })
        }
        msg_type::NAME => {
            if body.len() < NAME_HEADER_LEN {
                return Err(l);
            }
            let mut r = Reader { buf: body };
            let kind = match r.u8().ok_or(l)? {
                0 => NameKind::Signal,
                1 => NameKind::Command,
                _ => return Err(DecodeError::BadField),
            };
            let (index, count, len) = (r.u8().ok_or(l)?, r.u8().ok_or(l)?, r.u8().ok_or(l)? as usize);
            if len > MAX_NAME_LEN {
                return Err(DecodeError::BadField);
            }
            if r.remaining() != len {
                return Err(l);
            }
            if index >= count || r.buf.contains(&0) {
                return Err(DecodeError::BadField);
            }
            let text = core::str::from_utf8(r.buf).map_err(|_| DecodeError::BadField)?;
            let mut name = heapless::String::new();
            name.push_str(text).map_err(|_| DecodeError::BadField)?;
            Message::Name(Name { kind, index, count, name })
        }
        msg_type::RESET => Message::Reset(Reset { seed: fixed(RESET_BODY_LEN)?.u64().ok_or(l)? }),
        msg_type::HEARTBEAT => {
            let mut r = fixed(HEARTBEAT_BODY_LEN)?;
            Message::Heartbeat(Heartbeat { seq: r.u32().ok_or(l)?, t_us: r.u64().ok_or(l)? })
        }
        msg_type::FAULT => {
            let mut r = fixed(FAULT_BODY_LEN)?;
            Message::Fault(Fault { code: FaultCode::from_u16(r.u16().ok_or(l)?), t_us: r.u64().ok_or(l)? })
        }
        msg_type::CLEAR_ESTOP => {
            fixed(0)?;
            Message::ClearEstop
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(msg)
}

/// Decodes one complete frame: COBS data with or without its trailing `0x00` (no other
/// `0x00` allowed). Same checks as [`crate::Decoder`], without the streaming and statistics.
pub fn decode_frame(frame: &[u8]) -> Result<Message, DecodeError> {
    let data = match frame.split_last() {
        Some((0, rest)) => rest,
        _ => frame,
    };
    if data.len() >= MAX_FRAME {
        return Err(DecodeError::Oversized);
    }
    let mut buf = [0u8; MAX_FRAME];
    buf[..data.len()].copy_from_slice(data);
    let n = cobs::decode_in_place(&mut buf[..data.len()]).map_err(|_| DecodeError::Cobs)?;
    decode_payload(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(MAX_BODY, 270);
        assert_eq!(MAX_PAYLOAD, 275);
        assert_eq!(MAX_FRAME, 278);
    }

    #[test]
    fn clear_estop_frame() {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(&Message::ClearEstop, &mut out).unwrap();
        assert_eq!(n, 7);
        assert_eq!(decode_frame(&out[..n]), Ok(Message::ClearEstop));
        assert_eq!(decode_frame(&out[..n - 1]), Ok(Message::ClearEstop));
    }

    #[test]
    fn buffer_too_small_never_panics() {
        let mut values = Values::new();
        for i in 0..MAX_SIGNALS {
            values.push(i as f32).unwrap();
        }
        let msg = Message::Sensor(Sensor { seq: 1, t_us: 2, flags: SensorFlags::NONE, values });
        let mut out = [0u8; MAX_FRAME];
        let n = encode(&msg, &mut out).unwrap();
        for len in 0..n {
            assert_eq!(encode(&msg, &mut out[..len]), Err(EncodeError::BufferTooSmall));
        }
        assert_eq!(encode_to_vec(&msg).unwrap().len(), n);
    }
}
