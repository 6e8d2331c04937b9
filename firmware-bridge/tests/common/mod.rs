//! Shared test helpers: proptest strategies, a stream oracle, a tiny deterministic PRNG.
#![allow(dead_code)]

use firmware_bridge::*;
use proptest::prelude::*;

/// Any finite f32 (the protocol rejects NaN and ±∞).
pub fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>().prop_filter("finite", |v| v.is_finite()),
        Just(0.0f32),
        Just(-0.0f32),
        Just(f32::MAX),
        Just(f32::MIN),
        Just(f32::MIN_POSITIVE),
        Just(1.0e-45f32),
    ]
}

pub fn values(max: usize) -> impl Strategy<Value = Values> {
    prop::collection::vec(finite_f32(), 0..=max)
        .prop_map(|v| Values::from_slice(&v).expect("at most MAX_VALUES"))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Host), Just(Role::Firmware)]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::LockStep), Just(Mode::RealTime)]
}

fn reason() -> impl Strategy<Value = RejectReason> {
    prop_oneof![
        Just(RejectReason::Version),
        Just(RejectReason::LayoutHash),
        Just(RejectReason::Counts),
        Just(RejectReason::Mode),
        Just(RejectReason::Busy),
    ]
}

/// Any message that the protocol can carry (finite values; `FaultCode` in canonical form).
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), role(), mode(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u8>(), any::<u32>())
            .prop_map(|(version, role, mode, period_us, layout_hash, ns, na, boot_id)| {
                Message::Hello(Hello {
                    version,
                    role,
                    mode,
                    period_us,
                    layout_hash,
                    n_signals: ns,
                    n_actions: na,
                    boot_id,
                })
            }),
        (reason(), any::<u16>(), any::<u32>(), any::<u8>(), any::<u8>()).prop_map(
            |(reason, version, layout_hash, n_signals, n_actions)| {
                Message::Reject(Reject { reason, version, layout_hash, n_signals, n_actions })
            }
        ),
        (any::<u32>(), any::<u64>(), any::<u8>(), values(MAX_SIGNALS)).prop_map(|(seq, t_us, f, values)| {
            Message::Sensor(Sensor { seq, t_us, flags: SensorFlags(f), values })
        }),
        (any::<u32>(), any::<u32>(), values(MAX_COMMANDS)).prop_map(|(seq, valid_for_us, values)| {
            Message::Command(Command { seq, valid_for_us, values })
        }),
        (any::<bool>(), 1usize..=255, any::<u8>(), "[a-zA-Z0-9_ .é]{0,16}").prop_map(
            |(cmd, count, i, text)| {
                let kind = if cmd { NameKind::Command } else { NameKind::Signal };
                Message::Name(Name::new(kind, i as usize % count, count, &text).expect("a valid name"))
            }
        ),
        any::<u64>().prop_map(|seed| Message::Reset(Reset { seed })),
        (any::<u32>(), any::<u64>()).prop_map(|(seq, t_us)| Message::Heartbeat(Heartbeat { seq, t_us })),
        (any::<u16>(), any::<u64>())
            .prop_map(|(c, t_us)| Message::Fault(Fault { code: FaultCode::from_u16(c), t_us })),
        Just(Message::ClearEstop),
    ]
}

/// The frame bytes of `msg` (COBS + trailing 0x00).
pub fn frame(msg: &Message) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = encode(msg, &mut out).expect("encodable");
    out[..n].to_vec()
}

/// Everything a decoder returned for a stream, plus its final stats.
pub struct Run {
    pub results: Vec<Result<Message, DecodeError>>,
    pub stats: DecoderStats,
}

/// Feeds `stream` byte by byte to a fresh decoder. Checks, for every byte, that `push`
/// returns `Some` exactly at a 0x00 ending a non-empty segment, and that an accepted message
/// re-encodes to exactly the segment's bytes (decoding is injective).
pub fn run(stream: &[u8]) -> Run {
    let mut d = Decoder::new();
    let mut results = Vec::new();
    let mut seg_start = 0usize;
    for (i, &b) in stream.iter().enumerate() {
        let r = d.push(b);
        let ends_nonempty = b == 0 && i > seg_start;
        assert_eq!(r.is_some(), ends_nonempty, "byte {i}: result presence");
        if let Some(Ok(m)) = &r {
            assert_eq!(frame(m), &stream[seg_start..=i], "accepted message does not re-encode to its frame");
        }
        if b == 0 {
            seg_start = i + 1;
        }
        if let Some(r) = r {
            results.push(r);
        }
    }
    let stats = d.stats();
    check_stats(&results, &stats, stream.len());
    Run { results, stats }
}

/// Stats must match the returned results one for one.
pub fn check_stats(results: &[Result<Message, DecodeError>], s: &DecoderStats, bytes: usize) {
    assert_eq!(s.bytes, bytes as u64);
    assert_eq!(s.frames + s.rejected(), results.len() as u64);
    assert_eq!(s.frames, results.iter().filter(|r| r.is_ok()).count() as u64);
    for e in [
        DecodeError::Crc,
        DecodeError::Cobs,
        DecodeError::Length,
        DecodeError::Oversized,
        DecodeError::UnknownType(0),
        DecodeError::BadField,
    ] {
        let n = results
            .iter()
            .filter(|r| match r {
                Err(x) => core::mem::discriminant(x) == core::mem::discriminant(&e),
                Ok(_) => false,
            })
            .count() as u64;
        assert_eq!(s.count_of(e), n, "counter for {e:?}");
    }
}

/// SplitMix64: deterministic randomness for the non-proptest tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Between 0 and `max - 1` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

/// One message of each type, with non-trivial field values.
pub fn one_of_each() -> Vec<Message> {
    vec![
        Message::Hello(Hello::host(Mode::LockStep, 0, 0xDEAD_BEEF, 4, 1)),
        Message::Hello(Hello::firmware(Mode::RealTime, 20_000, 0x0102_0300, 16, 16, 0xFFFF_FFFF)),
        Message::Reject(Reject {
            reason: RejectReason::Busy,
            version: 0xFFFF,
            layout_hash: 0,
            n_signals: 255,
            n_actions: 0,
        }),
        Message::Sensor(Sensor {
            seq: u32::MAX,
            t_us: u64::MAX,
            flags: SensorFlags::RESET | SensorFlags::ESTOP,
            values: Values::from_slice(&[0.0, -0.0, 1.5, -3.25e-7, f32::MAX]).unwrap(),
        }),
        Message::Sensor(Sensor { seq: 0, t_us: 0, flags: SensorFlags(0xFF), values: Values::new() }),
        Message::Sensor(Sensor {
            seq: 7,
            t_us: 7,
            flags: SensorFlags::NONE,
            values: Values::from_slice(&[1.0e-3; MAX_SIGNALS]).unwrap(),
        }),
        Message::Command(Command {
            seq: 12,
            valid_for_us: 50_000,
            values: Values::from_slice(&[-10.0]).unwrap(),
        }),
        Message::Command(Command {
            seq: 0x0100_0000,
            valid_for_us: 0,
            values: Values::from_slice(&[f32::MIN_POSITIVE; MAX_COMMANDS]).unwrap(),
        }),
        Message::Name(Name::new(NameKind::Signal, 0, 1, "x").unwrap()),
        Message::Name(Name::new(NameKind::Command, 31, 32, "joint_31_torque_with_a_long_name").unwrap()),
        Message::Reset(Reset { seed: 0 }),
        Message::Reset(Reset { seed: 0x0123_4567_89AB_CDEF }),
        Message::Heartbeat(Heartbeat { seq: 1, t_us: 1 << 40 }),
        Message::Fault(Fault { code: FaultCode::EStop, t_us: 1 }),
        Message::Fault(Fault { code: FaultCode::Other(0xBEEF), t_us: 2 }),
        Message::ClearEstop,
    ]
}
