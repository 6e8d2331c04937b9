//! firmware-bridge: the wire protocol between resq (the host) and robot firmware.
//!
//! The protocol core is `no_std` with no allocator (fixed-size `heapless` buffers), so the same
//! code runs on a microcontroller and on the host. `PROTOCOL.md` specifies it byte by byte.
//!
//! The simulated plants and the simulated firmware that serves them live in the `sim-robot`
//! crate beside this one: a firmware author depends on the protocol alone.
//!
//! Modules: [`message`] (the values), [`wire`] (byte layouts, [`encode`]), [`decoder`]
//! (streaming [`Decoder`]), [`cobs`], [`crc`] ([`crc32c`], [`layout_hash`]), [`handshake`]
//! (accepting a peer's [`Hello`]), [`timing`] (link timing constants).
//!
//! Contract: nothing in the protocol core panics on any input or allocates.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod cobs;
pub mod crc;
pub mod decoder;
pub mod error;
pub mod handshake;
pub mod message;
pub mod timing;
pub mod wire;

pub use crc::{crc32c, layout_hash};
pub use decoder::{Decoder, DecoderStats};
pub use error::{DecodeError, EncodeError};
pub use message::{
    msg_type, Command, Fault, FaultCode, Heartbeat, Hello, Message, Mode, Name, NameKind, Reject,
    RejectReason, Reset, Role, Sensor, SensorFlags, Values, MAX_COMMANDS, MAX_NAME_LEN, MAX_SIGNALS,
    MAX_VALUES, PROTOCOL_VERSION,
};
pub use timing::{
    seq_after, HEARTBEAT_IDLE_US, HELLO_RETRY_US, LINK_TIMEOUT_US, MAX_RETRIES, PROTOCOL_FAULT_INTERVAL_US,
    RETRY_US, WAITING_INTERVAL_US,
};
pub use wire::{
    decode_frame, decode_payload, encode, encode_payload, encode_to_vec, FrameBuf, MAX_FRAME, MAX_PAYLOAD,
};
