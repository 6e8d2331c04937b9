//! What the control loop decided at a tick, as bit flags (recorded with every tick).

/// Supervisor decisions at this tick (bit flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decisions(pub u16);

impl Decisions {
    /// The residual was unusable (non-finite, learner diverged): the prior acted alone.
    pub const FALLBACK: u16 = 1 << 0;
    /// The tick missed its deadline: the prior's action (or a hold) was sent.
    pub const DEADLINE_MISS: u16 = 1 << 1;
    /// The e-stop latch is set: the safe action was sent.
    pub const ESTOP: u16 = 1 << 2;
    /// A command was clamped to the manifest's bounds.
    pub const CLAMPED: u16 = 1 << 3;
    /// A command was limited by the manifest's rate limit.
    pub const RATE_LIMITED: u16 = 1 << 4;
    /// The KL budget held the policy closer to the prior than π̂.
    pub const KL_LIMITED: u16 = 1 << 5;
    /// An episode ended at this tick (terminated or truncated).
    pub const EPISODE_END: u16 = 1 << 6;
    /// A signal was non-finite or outside its declared range: the prior acted alone.
    pub const SIGNAL_FAULT: u16 = 1 << 7;
    /// The prior failed (error, NaN, +∞, or every action −∞): the safe command was sent.
    pub const PRIOR_FAULT: u16 = 1 << 8;
    /// Real time: the step after this tick did not follow from its command alone (the robot
    /// stepped before the command arrived, or under its safe action, or Sensors were skipped):
    /// not learned from.
    pub const LATE: u16 = 1 << 9;
    /// The episode ended at this tick by a termination (a fall, a goal: the robot's or the
    /// bundle's `terminate`), not by a time limit: nothing follows it, where a truncated
    /// episode's value goes on. Set with [`Decisions::EPISODE_END`]; a learner reading the record
    /// needs the split (`docs/design.md` §2.6).
    pub const TERMINATED: u16 = 1 << 10;
    /// The tick's record keeps the state its episode ended on (`end_signals`), even where every
    /// value is 0 (which the record's encoding leaves out). Set with [`Decisions::EPISODE_END`].
    pub const END_STATE: u16 = 1 << 11;

    /// Every flag with its name in the record (the protobuf field `decisions.<name>`), in the
    /// order of their field numbers (1, 2, …) and bits.
    pub const NAMES: [(&'static str, u16); 12] = [
        ("fallback", Decisions::FALLBACK),
        ("deadline_miss", Decisions::DEADLINE_MISS),
        ("estop", Decisions::ESTOP),
        ("clamped", Decisions::CLAMPED),
        ("rate_limited", Decisions::RATE_LIMITED),
        ("kl_limited", Decisions::KL_LIMITED),
        ("episode_end", Decisions::EPISODE_END),
        ("signal_fault", Decisions::SIGNAL_FAULT),
        ("prior_fault", Decisions::PRIOR_FAULT),
        ("late", Decisions::LATE),
        ("terminated", Decisions::TERMINATED),
        ("end_state", Decisions::END_STATE),
    ];

    pub fn contains(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::Decisions;

    /// Every flag has a name, once, in bit order: the record's schema and readers take them from
    /// [`Decisions::NAMES`] alone.
    #[test]
    fn every_flag_is_named_once_in_bit_order() {
        for (i, (name, bit)) in Decisions::NAMES.iter().enumerate() {
            assert_eq!(*bit, 1 << i, "{name}");
            assert_eq!(Decisions::NAMES.iter().filter(|(n, _)| n == name).count(), 1, "{name}");
        }
        assert_eq!(
            Decisions::NAMES.last().map(|n| n.1),
            Some(Decisions::END_STATE),
            "the highest flag is named"
        );
    }
}
