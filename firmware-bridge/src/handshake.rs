//! Handshake helpers: building `Hello`s and deciding whether to accept the peer's.
//!
//! The rules (PROTOCOL.md, "Handshake"): versions, layout hashes and counts must match
//! exactly; modes must match; real-time periods must match unless either side says 0.

use crate::message::{
    Hello, Mode, Name, NameKind, Reject, RejectReason, Role, MAX_COMMANDS, MAX_NAME_LEN, MAX_SIGNALS,
    PROTOCOL_VERSION,
};

impl Name {
    /// The `Name` of entry `index` of `count`; `None` if the name is longer than
    /// [`MAX_NAME_LEN`] bytes, holds a 0x00, or `index ≥ count`.
    pub fn new(kind: NameKind, index: usize, count: usize, name: &str) -> Option<Name> {
        if index >= count || count > 255 || name.len() > MAX_NAME_LEN || name.as_bytes().contains(&0) {
            return None;
        }
        let mut s = heapless::String::new();
        s.push_str(name).ok()?;
        Some(Name { kind, index: index as u8, count: count as u8, name: s })
    }

    /// The `Name` messages of a layout, in the order they are sent: every signal, then every
    /// command. Names that cannot be sent (too long) are skipped; layouts beyond
    /// [`MAX_SIGNALS`]/[`MAX_COMMANDS`] are cut there.
    pub fn layout<'a>(signals: &'a [&'a str], commands: &'a [&'a str]) -> impl Iterator<Item = Name> + 'a {
        let s = &signals[..signals.len().min(MAX_SIGNALS)];
        let c = &commands[..commands.len().min(MAX_COMMANDS)];
        let sig = s.iter().enumerate().filter_map(move |(i, n)| Name::new(NameKind::Signal, i, s.len(), n));
        let cmd = c.iter().enumerate().filter_map(move |(i, n)| Name::new(NameKind::Command, i, c.len(), n));
        sig.chain(cmd)
    }
}

impl Hello {
    /// The host's `Hello` (version [`PROTOCOL_VERSION`], `boot_id` 0). `period_us` is the
    /// requested real-time period, 0 for "any" (and always 0 in lock-step).
    pub const fn host(mode: Mode, period_us: u32, layout_hash: u32, n_signals: u8, n_actions: u8) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            role: Role::Host,
            mode,
            period_us,
            layout_hash,
            n_signals,
            n_actions,
            boot_id: 0,
        }
    }

    /// The firmware's `Hello` (version [`PROTOCOL_VERSION`]). `period_us` is the actual
    /// real-time period (0 in lock-step); `boot_id` the random non-zero per-boot value.
    pub const fn firmware(
        mode: Mode,
        period_us: u32,
        layout_hash: u32,
        n_signals: u8,
        n_actions: u8,
        boot_id: u32,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            role: Role::Firmware,
            mode,
            period_us,
            layout_hash,
            n_signals,
            n_actions,
            boot_id,
        }
    }

    /// Whether `peer`'s parameters are compatible with `self` (the local side's). Checks, in
    /// this order, and returns the first failure: version ([`RejectReason::Version`]), signal
    /// and action counts ([`RejectReason::Counts`]), layout hash
    /// ([`RejectReason::LayoutHash`]), mode and period ([`RejectReason::Mode`]: modes differ,
    /// or both periods are non-zero and differ). Does not look at `role` or `boot_id`.
    pub fn check_peer(&self, peer: &Hello) -> Result<(), RejectReason> {
        if peer.version != self.version {
            Err(RejectReason::Version)
        } else if peer.n_signals != self.n_signals || peer.n_actions != self.n_actions {
            Err(RejectReason::Counts)
        } else if peer.layout_hash != self.layout_hash {
            Err(RejectReason::LayoutHash)
        } else if peer.mode != self.mode
            || (peer.period_us != 0 && self.period_us != 0 && peer.period_us != self.period_us)
        {
            Err(RejectReason::Mode)
        } else {
            Ok(())
        }
    }

    /// The `Reject` this side sends for `reason`, carrying this side's own parameters.
    pub const fn reject(&self, reason: RejectReason) -> Reject {
        Reject {
            reason,
            version: self.version,
            layout_hash: self.layout_hash,
            n_signals: self.n_signals,
            n_actions: self.n_actions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_order_and_symmetry() {
        let fw = Hello::firmware(Mode::RealTime, 10_000, 0xAABB_CCDD, 4, 1, 0x1234);
        let host = Hello::host(Mode::RealTime, 0, 0xAABB_CCDD, 4, 1);
        assert_eq!(fw.check_peer(&host), Ok(()));
        assert_eq!(host.check_peer(&fw), Ok(()));

        let mut h = host.clone();
        h.period_us = 20_000;
        assert_eq!(fw.check_peer(&h), Err(RejectReason::Mode));
        h.period_us = 10_000;
        assert_eq!(fw.check_peer(&h), Ok(()));
        h.mode = Mode::LockStep;
        h.period_us = 0;
        assert_eq!(fw.check_peer(&h), Err(RejectReason::Mode));
        h.layout_hash = 1;
        assert_eq!(fw.check_peer(&h), Err(RejectReason::LayoutHash));
        h.n_actions = 2;
        assert_eq!(fw.check_peer(&h), Err(RejectReason::Counts));
        h.version = 1;
        assert_eq!(fw.check_peer(&h), Err(RejectReason::Version));

        let r = fw.reject(RejectReason::Counts);
        assert_eq!(r.n_signals, 4);
        assert_eq!(r.layout_hash, 0xAABB_CCDD);
    }
}
