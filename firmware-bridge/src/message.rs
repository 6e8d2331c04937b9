//! The protocol's messages as Rust values, and the constants that size them.
//!
//! Wire layouts are in `PROTOCOL.md` and in [`crate::wire`]; this module only defines the
//! values. All message types are `Clone + Debug + PartialEq`.

/// Protocol version carried in `Hello`/`Reject`; both sides must use the same one.
///
/// Version 2 raised the value limits (64 signals, 32 commands), added the `Name` message and the
/// WAITING and SUCCESS flags. `Hello` and `Reject` keep their layouts in every version, so a
/// mismatch is always reported.
pub const PROTOCOL_VERSION: u16 = 2;

/// Largest number of signals in one `Sensor`.
pub const MAX_SIGNALS: usize = 64;

/// Largest number of commands (actions) in one `Command`.
pub const MAX_COMMANDS: usize = 32;

/// Capacity of [`Values`]: the larger of [`MAX_SIGNALS`] and [`MAX_COMMANDS`].
pub const MAX_VALUES: usize = MAX_SIGNALS;

/// Longest signal or command name a `Name` message carries, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Signal or action values of one frame (at most [`MAX_SIGNALS`] in a `Sensor`, [`MAX_COMMANDS`]
/// in a `Command`).
pub type Values = heapless::Vec<f32, MAX_VALUES>;

/// Message type bytes (the first payload byte).
pub mod msg_type {
    /// `Hello`.
    pub const HELLO: u8 = 0x01;
    /// `Reject`.
    pub const REJECT: u8 = 0x02;
    /// `Name`.
    pub const NAME: u8 = 0x03;
    /// `Sensor`.
    pub const SENSOR: u8 = 0x10;
    /// `Command`.
    pub const COMMAND: u8 = 0x11;
    /// `Reset`.
    pub const RESET: u8 = 0x12;
    /// `Heartbeat`.
    pub const HEARTBEAT: u8 = 0x20;
    /// `Fault`.
    pub const FAULT: u8 = 0x30;
    /// `ClearEstop`.
    pub const CLEAR_ESTOP: u8 = 0x31;
}

/// Which end of the link sent a `Hello`. Wire: `0` host, `1` firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// resq, the computer running the policy.
    Host,
    /// The microcontroller (or the simulated firmware).
    Firmware,
}

/// How control steps are timed. Wire: `0` lock-step, `1` real-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The firmware advances the plant by one step per `Command` and answers with the next
    /// `Sensor`.
    LockStep,
    /// The firmware sends a `Sensor` every `period_us` and applies the latest valid `Command`.
    RealTime,
}

/// Handshake message (type `0x01`). The host sends it first; the firmware answers with its own
/// `Hello` (accepted) or a [`Reject`].
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// Sender's role.
    pub role: Role,
    /// Requested (host) or granted (firmware) timing mode.
    pub mode: Mode,
    /// Real-time control period in µs; 0 in lock-step. From the host, 0 in real-time mode means
    /// "whatever the firmware's period is".
    pub period_us: u32,
    /// [`crate::layout_hash`] of the sender's signal and action names.
    pub layout_hash: u32,
    /// Number of values in every `Sensor`.
    pub n_signals: u8,
    /// Number of values in every `Command`.
    pub n_actions: u8,
    /// Firmware: random non-zero value chosen at each boot. Host: 0.
    pub boot_id: u32,
}

/// Why a handshake was refused. Wire: 1 version, 2 layout hash, 3 counts, 4 mode, 5 busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Protocol versions differ.
    Version,
    /// Signal/action names or order differ.
    LayoutHash,
    /// Signal or action counts differ.
    Counts,
    /// The requested mode or period is not supported.
    Mode,
    /// Temporarily unable to start a session; retry.
    Busy,
}

/// Handshake refusal (type `0x02`), carrying the rejecting side's own parameters so the other
/// side can report "firmware has X, host has Y".
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    /// The first mismatch found.
    pub reason: RejectReason,
    /// The rejecting side's protocol version.
    pub version: u16,
    /// The rejecting side's layout hash.
    pub layout_hash: u32,
    /// The rejecting side's signal count.
    pub n_signals: u8,
    /// The rejecting side's action count.
    pub n_actions: u8,
}

/// Flags of a [`Sensor`] frame (a bit set); every bit is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SensorFlags(pub u8);

impl SensorFlags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// bit0: the episode ended in a terminal state.
    pub const TERMINATED: Self = Self(1 << 0);
    /// bit1: the episode was cut off (time limit, operator) without a terminal state.
    pub const TRUNCATED: Self = Self(1 << 1);
    /// bit2: first frame of an episode (the answer to `Reset`).
    pub const RESET: Self = Self(1 << 2);
    /// bit3: the e-stop latch is active; the firmware is applying the safe action.
    pub const ESTOP: Self = Self(1 << 3);
    /// bit4: the safe action was applied since the previous `Sensor` because no valid command
    /// was in force.
    pub const COMMAND_TIMEOUT: Self = Self(1 << 4);
    /// bit5: the firmware waits for an operator to reset the robot (the answer to `Reset` on a
    /// robot that cannot reset itself); not an episode step.
    pub const WAITING: Self = Self(1 << 5);
    /// bit6: set on an episode's last Sensor when the episode reached its goal.
    pub const SUCCESS: Self = Self(1 << 6);
    /// bit7, real time: the step before this Sensor did not run on the answer to the Sensor
    /// before it (that answer arrived after the step, or never): it ran on an older command or
    /// the safe action, so it is not the host's step to learn from.
    pub const LATE_COMMAND: Self = Self(1 << 7);
    /// All defined bits.
    pub const ALL: Self = Self(0xFF);

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }

    /// Sets or clears the bits of `other`.
    pub fn set(&mut self, other: Self, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }

    /// `self` with the bits of `other` set.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True if any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for SensorFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for SensorFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Whether a [`Name`] names a signal or a command. Wire: `0` signal, `1` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A value of `Sensor`.
    Signal,
    /// A value of `Command`.
    Command,
}

/// One signal or command name (type `0x03`). The side that sends a `Reject` for a layout or
/// count mismatch follows it with one `Name` per signal, then one per command; the other side
/// answers with its own, once. Both can then say which names differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    pub kind: NameKind,
    /// Position in the layout, `< count`.
    pub index: u8,
    /// How many signals (or commands) the sender has.
    pub count: u8,
    /// The name, at most [`MAX_NAME_LEN`] bytes of UTF-8.
    pub name: heapless::String<MAX_NAME_LEN>,
}

/// Observation from the firmware (type `0x10`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sensor {
    /// Firmware's Sensor counter: 0 at boot, +1 (wrapping) per new Sensor; a retransmitted
    /// Sensor keeps its seq.
    pub seq: u32,
    /// Firmware clock, µs since boot (monotonic).
    pub t_us: u64,
    /// Episode and safety flags.
    pub flags: SensorFlags,
    /// `n_signals` finite values, in layout order.
    pub values: Values,
}

/// Action from the host (type `0x11`).
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// `seq` of the `Sensor` this command answers.
    pub seq: u32,
    /// The firmware applies this command for at most this long after receipt, then the safe
    /// action.
    pub valid_for_us: u32,
    /// `n_actions` finite values, in layout order.
    pub values: Values,
}

/// Host request to start a new episode (type `0x12`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reset {
    /// Seed for the plant's initial state (simulated plants; real plants may ignore it).
    pub seed: u64,
}

/// Liveness message (type `0x20`), sent by either side after 100 ms without sending anything.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    /// Sender's Heartbeat counter (+1 wrapping per Heartbeat, arbitrary start; independent of
    /// Sensor seq; diagnostics only).
    pub seq: u32,
    /// Sender's clock, µs (firmware: since boot, same clock as `Sensor::t_us`).
    pub t_us: u64,
}

/// Fault code. Wire: 1 e-stop pressed, 2 command timeout, 3 plant fault, 4 protocol error;
/// anything else is [`FaultCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCode {
    /// 1: the e-stop was pressed (latched until `ClearEstop`).
    EStop,
    /// 2: the command in force expired; the safe action is applied.
    CommandTimeout,
    /// 3: the plant reported a fault (driver, sensor, limits).
    Plant,
    /// 4: a well-formed frame was not valid in the receiver's state.
    Protocol,
    /// Any other code. `Other(1..=4)` is encoded as that code and decodes as the named variant.
    Other(u16),
}

impl FaultCode {
    /// Wire value.
    pub const fn to_u16(self) -> u16 {
        match self {
            FaultCode::EStop => 1,
            FaultCode::CommandTimeout => 2,
            FaultCode::Plant => 3,
            FaultCode::Protocol => 4,
            FaultCode::Other(c) => c,
        }
    }

    /// From the wire value (total).
    pub const fn from_u16(code: u16) -> Self {
        match code {
            1 => FaultCode::EStop,
            2 => FaultCode::CommandTimeout,
            3 => FaultCode::Plant,
            4 => FaultCode::Protocol,
            c => FaultCode::Other(c),
        }
    }
}

/// Fault event (type `0x30`): edge-triggered report; the level state is in `Sensor` flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// What happened.
    pub code: FaultCode,
    /// Sender's clock when it happened, µs.
    pub t_us: u64,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `0x01`.
    Hello(Hello),
    /// `0x02`.
    Reject(Reject),
    /// `0x03`.
    Name(Name),
    /// `0x10`.
    Sensor(Sensor),
    /// `0x11`.
    Command(Command),
    /// `0x12`.
    Reset(Reset),
    /// `0x20`.
    Heartbeat(Heartbeat),
    /// `0x30`.
    Fault(Fault),
    /// `0x31`: operator reset of the e-stop latch (empty body).
    ClearEstop,
}

impl Message {
    /// The message's type byte.
    pub const fn msg_type(&self) -> u8 {
        match self {
            Message::Hello(_) => msg_type::HELLO,
            Message::Reject(_) => msg_type::REJECT,
            Message::Name(_) => msg_type::NAME,
            Message::Sensor(_) => msg_type::SENSOR,
            Message::Command(_) => msg_type::COMMAND,
            Message::Reset(_) => msg_type::RESET,
            Message::Heartbeat(_) => msg_type::HEARTBEAT,
            Message::Fault(_) => msg_type::FAULT,
            Message::ClearEstop => msg_type::CLEAR_ESTOP,
        }
    }
}

impl From<Hello> for Message {
    fn from(m: Hello) -> Self {
        Message::Hello(m)
    }
}
impl From<Reject> for Message {
    fn from(m: Reject) -> Self {
        Message::Reject(m)
    }
}
impl From<Name> for Message {
    fn from(m: Name) -> Self {
        Message::Name(m)
    }
}
impl From<Sensor> for Message {
    fn from(m: Sensor) -> Self {
        Message::Sensor(m)
    }
}
impl From<Command> for Message {
    fn from(m: Command) -> Self {
        Message::Command(m)
    }
}
impl From<Reset> for Message {
    fn from(m: Reset) -> Self {
        Message::Reset(m)
    }
}
impl From<Heartbeat> for Message {
    fn from(m: Heartbeat) -> Self {
        Message::Heartbeat(m)
    }
}
impl From<Fault> for Message {
    fn from(m: Fault) -> Self {
        Message::Fault(m)
    }
}
