//! Encode and decode errors.

use core::fmt;

/// Why [`crate::encode`] failed. Nothing useful is left in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// More than [`crate::MAX_SIGNALS`] values in a `Sensor` or [`crate::MAX_COMMANDS`] in a
    /// `Command`.
    TooManyValues,
    /// A `Name` whose index is not below its count.
    BadName,
    /// The output buffer is shorter than the frame; [`crate::MAX_FRAME`] bytes always suffice.
    BufferTooSmall,
}

/// Why a received frame was rejected. Each rejected frame has exactly one of these, and
/// increments exactly one counter of [`crate::DecoderStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The CRC-32C does not match the payload.
    Crc,
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// The payload is shorter than type + CRC, or its body length does not match its type
    /// (and, for `Sensor`/`Command`, its value count).
    Length,
    /// More than [`crate::MAX_FRAME`] bytes before the delimiter; discarded up to the next
    /// `0x00`.
    Oversized,
    /// A frame with a correct CRC but an unknown type byte.
    UnknownType(u8),
    /// A field has a value outside its domain (role, mode, reject reason, value count above
    /// [`crate::MAX_SIGNALS`] / [`crate::MAX_COMMANDS`], a NaN or infinite value, a bad name).
    BadField,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooManyValues => {
                write!(f, "more than {} signals or {} commands", crate::MAX_SIGNALS, crate::MAX_COMMANDS)
            }
            EncodeError::BadName => write!(f, "a Name's index must be below its count"),
            EncodeError::BufferTooSmall => write!(f, "output buffer too small for the frame"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Crc => write!(f, "CRC mismatch"),
            DecodeError::Cobs => write!(f, "invalid COBS encoding"),
            DecodeError::Length => write!(f, "wrong payload length for the message type"),
            DecodeError::Oversized => write!(f, "frame longer than {} bytes", crate::MAX_FRAME),
            DecodeError::UnknownType(t) => write!(f, "unknown message type 0x{t:02x}"),
            DecodeError::BadField => write!(f, "field value out of range"),
        }
    }
}

impl core::error::Error for EncodeError {}

impl core::error::Error for DecodeError {}
