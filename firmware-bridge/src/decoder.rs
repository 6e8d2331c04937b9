//! Streaming frame decoder: bytes in, messages (or rejections) out.

use crate::cobs;
use crate::error::DecodeError;
use crate::message::Message;
use crate::wire::{decode_payload, MAX_FRAME};

/// Counters kept by a [`Decoder`] since [`Decoder::new`] (or [`Decoder::clear_stats`]).
///
/// Every non-empty frame (bytes ended by `0x00`) increments exactly one of `frames` (accepted)
/// or one error counter (rejected), so `frames + rejected()` is the number of non-empty
/// delimited frames, which equals the number of `Some` results of [`Decoder::push`].
/// Counters saturate instead of overflowing.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub struct DecoderStats {
    /// Frames decoded successfully.
    pub frames: u64,
    /// Frames rejected with [`DecodeError::Crc`].
    pub crc_errors: u64,
    /// Frames rejected with [`DecodeError::Cobs`].
    pub cobs_errors: u64,
    /// Frames rejected with [`DecodeError::Length`].
    pub length_errors: u64,
    /// Frames rejected with [`DecodeError::Oversized`].
    pub oversized: u64,
    /// Frames rejected with [`DecodeError::UnknownType`].
    pub unknown_type: u64,
    /// Frames rejected with [`DecodeError::BadField`].
    pub bad_field: u64,
    /// Bytes pushed, delimiters included.
    pub bytes: u64,
}

impl DecoderStats {
    /// Counter-wise sum (e.g. over the decoders a link used across reconnects).
    pub fn plus(&self, o: &DecoderStats) -> DecoderStats {
        DecoderStats {
            frames: self.frames + o.frames,
            crc_errors: self.crc_errors + o.crc_errors,
            cobs_errors: self.cobs_errors + o.cobs_errors,
            length_errors: self.length_errors + o.length_errors,
            oversized: self.oversized + o.oversized,
            unknown_type: self.unknown_type + o.unknown_type,
            bad_field: self.bad_field + o.bad_field,
            bytes: self.bytes + o.bytes,
        }
    }

    /// Total rejected frames (sum of the error counters).
    pub fn rejected(&self) -> u64 {
        self.crc_errors
            .saturating_add(self.cobs_errors)
            .saturating_add(self.length_errors)
            .saturating_add(self.oversized)
            .saturating_add(self.unknown_type)
            .saturating_add(self.bad_field)
    }

    /// The error counter for `e`.
    pub fn count_of(&self, e: DecodeError) -> u64 {
        match e {
            DecodeError::Crc => self.crc_errors,
            DecodeError::Cobs => self.cobs_errors,
            DecodeError::Length => self.length_errors,
            DecodeError::Oversized => self.oversized,
            DecodeError::UnknownType(_) => self.unknown_type,
            DecodeError::BadField => self.bad_field,
        }
    }

    fn count(&mut self, result: &Result<Message, DecodeError>) {
        let counter = match result {
            Ok(_) => &mut self.frames,
            Err(DecodeError::Crc) => &mut self.crc_errors,
            Err(DecodeError::Cobs) => &mut self.cobs_errors,
            Err(DecodeError::Length) => &mut self.length_errors,
            Err(DecodeError::Oversized) => &mut self.oversized,
            Err(DecodeError::UnknownType(_)) => &mut self.unknown_type,
            Err(DecodeError::BadField) => &mut self.bad_field,
        };
        *counter = counter.saturating_add(1);
    }
}

/// Streaming decoder with a fixed [`MAX_FRAME`]-byte buffer; no allocation, never panics.
///
/// Feed it every received byte with [`Decoder::push`]. Bytes accumulate until a `0x00`
/// delimiter; then the accumulated frame is COBS-decoded, CRC-checked and parsed, and the
/// result returned. After garbage it resynchronises at the next `0x00`: a frame can only be
/// lost together with the bytes that share its delimiter.
///
/// - Empty frames (a `0x00` right after a `0x00`, or first after `new`/`reset`) return `None`
///   and count nothing: senders may send a `0x00` to flush the receiver.
/// - More than `MAX_FRAME - 1` bytes without a `0x00`: the decoder discards everything up to
///   the next `0x00`, where it returns `Err(Oversized)`.
/// - A decoder started in the middle of a frame rejects that partial frame (usually as `Crc`
///   or `Cobs`); one rejection at link start is normal.
///
/// ```
/// use firmware_bridge::{encode, Decoder, Message, Reset, MAX_FRAME};
///
/// let mut frame = [0u8; MAX_FRAME];
/// let n = encode(&Message::Reset(Reset { seed: 42 }), &mut frame).unwrap();
///
/// let mut decoder = Decoder::new();
/// let mut got = None;
/// for &b in [0x13, 0x37, 0x00].iter().chain(&frame[..n]) {
///     if let Some(result) = decoder.push(b) {
///         got = Some(result); // the garbage first (rejected), then the Reset
///     }
/// }
/// assert_eq!(got, Some(Ok(Message::Reset(Reset { seed: 42 }))));
/// assert_eq!((decoder.stats().frames, decoder.stats().rejected()), (1, 1));
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    buf: [u8; MAX_FRAME],
    len: usize,
    discarding: bool,
    stats: DecoderStats,
}

impl Decoder {
    /// An empty decoder with zero stats.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME],
            len: 0,
            discarding: false,
            stats: DecoderStats {
                frames: 0,
                crc_errors: 0,
                cobs_errors: 0,
                length_errors: 0,
                oversized: 0,
                unknown_type: 0,
                bad_field: 0,
                bytes: 0,
            },
        }
    }

    /// Feeds one received byte. Returns `Some` exactly when `byte` is a `0x00` ending a
    /// non-empty frame: `Ok(message)` if the frame is valid, else the reason it was rejected
    /// (and the matching [`DecoderStats`] counter is incremented). Otherwise `None`.
    pub fn push(&mut self, byte: u8) -> Option<Result<Message, DecodeError>> {
        self.stats.bytes = self.stats.bytes.saturating_add(1);
        if byte != 0 {
            if self.discarding {
                return None;
            }
            match self.buf.get_mut(self.len) {
                Some(slot) if self.len < MAX_FRAME - 1 => {
                    *slot = byte;
                    self.len += 1;
                }
                _ => {
                    self.discarding = true;
                    self.len = 0;
                }
            }
            return None;
        }
        let result = if self.discarding {
            self.discarding = false;
            Err(DecodeError::Oversized)
        } else if self.len == 0 {
            return None;
        } else {
            let len = core::mem::take(&mut self.len);
            match self.buf.get_mut(..len).map(cobs::decode_in_place) {
                Some(Ok(n)) => decode_payload(self.buf.get(..n).unwrap_or(&[])),
                _ => Err(DecodeError::Cobs),
            }
        };
        self.stats.count(&result);
        Some(result)
    }

    /// Pushes `bytes` lazily: the iterator yields each `Some` result of [`Decoder::push`].
    /// Bytes not yet reached when the iterator is dropped are not pushed.
    pub fn push_slice<'a>(&'a mut self, bytes: &'a [u8]) -> PushSlice<'a> {
        PushSlice { decoder: self, bytes }
    }

    /// Counters since creation or the last [`Decoder::clear_stats`].
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Drops any partially received frame, as if a `0x00` had arrived, without counting it.
    /// The stats are kept (use [`Decoder::clear_stats`] too for a fresh start). Call it when
    /// the link is (re)opened.
    pub fn reset(&mut self) {
        self.len = 0;
        self.discarding = false;
    }

    /// Zeroes the stats.
    pub fn clear_stats(&mut self) {
        self.stats = DecoderStats::default();
    }

    /// True if no partial frame is buffered (the last byte was a `0x00`, or nothing yet).
    pub fn is_idle(&self) -> bool {
        self.len == 0 && !self.discarding
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Iterator returned by [`Decoder::push_slice`].
#[derive(Debug)]
pub struct PushSlice<'a> {
    decoder: &'a mut Decoder,
    bytes: &'a [u8],
}

impl Iterator for PushSlice<'_> {
    type Item = Result<Message, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((&b, rest)) = self.bytes.split_first() {
            self.bytes = rest;
            if let Some(r) = self.decoder.push(b) {
                return Some(r);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Heartbeat, Message};
    use crate::wire::encode;

    fn frame(msg: &Message) -> ([u8; MAX_FRAME], usize) {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(msg, &mut out).unwrap();
        (out, n)
    }

    #[test]
    fn empty_frames_are_silent() {
        let mut d = Decoder::new();
        for _ in 0..10 {
            assert_eq!(d.push(0), None);
        }
        assert_eq!(d.stats().rejected() + d.stats().frames, 0);
        assert_eq!(d.stats().bytes, 10);
    }

    #[test]
    fn oversized_run_is_one_error_then_resync() {
        let mut d = Decoder::new();
        for _ in 0..1000 {
            assert_eq!(d.push(0x41), None);
        }
        assert_eq!(d.push(0), Some(Err(DecodeError::Oversized)));
        let msg = Message::Heartbeat(Heartbeat { seq: 7, t_us: 9 });
        let (f, n) = frame(&msg);
        let out: heapless::Vec<_, 4> = d.push_slice(&f[..n]).collect();
        assert_eq!(out.as_slice(), &[Ok(msg)]);
        assert_eq!(d.stats().oversized, 1);
        assert_eq!(d.stats().frames, 1);
    }

    #[test]
    fn longest_accepted_and_shortest_oversized() {
        let mut d = Decoder::new();
        // MAX_FRAME - 1 non-zero bytes: not oversized (rejected for another reason).
        for _ in 0..MAX_FRAME - 1 {
            d.push(0x01);
        }
        assert_ne!(d.push(0), Some(Err(DecodeError::Oversized)));
        for _ in 0..MAX_FRAME {
            d.push(0x01);
        }
        assert_eq!(d.push(0), Some(Err(DecodeError::Oversized)));
    }

    #[test]
    fn reset_drops_partial_frame() {
        let msg = Message::ClearEstop;
        let (f, n) = frame(&msg);
        let mut d = Decoder::new();
        d.push(0x55);
        d.push(0x66);
        assert!(!d.is_idle());
        d.reset();
        assert!(d.is_idle());
        let out: heapless::Vec<_, 4> = d.push_slice(&f[..n]).collect();
        assert_eq!(out.as_slice(), &[Ok(msg)]);
        assert_eq!(d.stats().rejected(), 0);
    }
}
