//! Timing constants of the link rules, and sequence-number arithmetic.
//!
//! The behaviour they parameterise is specified in PROTOCOL.md ("Timing and liveness").

/// The host resends its `Hello` this often until it gets a `Hello` or `Reject` back.
pub const HELLO_RETRY_US: u64 = 200_000;

/// A side that has sent nothing for this long sends a `Heartbeat`.
pub const HEARTBEAT_IDLE_US: u64 = 100_000;

/// A side that has received no valid frame for this long declares the link lost.
pub const LINK_TIMEOUT_US: u64 = 500_000;

/// The host resends a `Reset` (both modes) or, in lock-step, its last `Command`, if the
/// answering `Sensor` has not arrived after this long.
pub const RETRY_US: u64 = 100_000;

/// After this many resends of the same `Reset`/`Command` without an answer, the host gives up
/// on the session and handshakes again.
pub const MAX_RETRIES: u32 = 5;

/// A side sends at most one `Fault{Protocol}` per this interval.
pub const PROTOCOL_FAULT_INTERVAL_US: u64 = 100_000;

/// A firmware waiting for an operator to reset the robot sends a WAITING `Sensor` this often.
pub const WAITING_INTERVAL_US: u64 = 100_000;

/// True if sequence number `a` is later than `b` in wrapping (serial-number) arithmetic:
/// `0 < a - b < 2^31` (mod 2^32).
pub const fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_order() {
        assert!(seq_after(1, 0));
        assert!(!seq_after(0, 0));
        assert!(!seq_after(0, 1));
        assert!(seq_after(0, u32::MAX));
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX - 5, 5));
    }
}
