//! Every message survives encode → decode; malformed payloads get the documented error.

mod common;

use common::*;
use firmware_bridge::*;
use proptest::prelude::*;

fn decode_with_decoder(frame: &[u8]) -> Result<Message, DecodeError> {
    let mut d = Decoder::new();
    let results: Vec<_> = d.push_slice(frame).collect();
    assert_eq!(results.len(), 1, "one frame, one result");
    results.into_iter().next().unwrap()
}

fn assert_roundtrip(msg: &Message) {
    let f = frame(msg);
    assert!(f.len() <= MAX_FRAME);
    assert_eq!(f.last(), Some(&0));
    assert!(!f[..f.len() - 1].contains(&0), "COBS output contains 0x00");
    assert_eq!(decode_with_decoder(&f).as_ref(), Ok(msg));
    assert_eq!(decode_frame(&f).as_ref(), Ok(msg));
    let mut p = [0u8; MAX_PAYLOAD];
    let n = encode_payload(msg, &mut p).unwrap();
    assert_eq!(p[0], msg.msg_type());
    assert_eq!(decode_payload(&p[..n]).as_ref(), Ok(msg));
    assert_eq!(encode_to_vec(msg).unwrap().as_slice(), &f[..]);
}

#[test]
fn one_of_each_type_round_trips() {
    let msgs = one_of_each();
    let types: std::collections::BTreeSet<u8> = msgs.iter().map(|m| m.msg_type()).collect();
    assert_eq!(types.len(), 9, "all nine message types covered");
    for m in &msgs {
        assert_roundtrip(m);
    }
}

#[test]
fn largest_message_fills_max_payload() {
    // A Sensor with MAX_SIGNALS values whose bytes are all non-zero is the longest frame (its
    // COBS encoding has a 254-byte block).
    let msg = Message::Sensor(Sensor {
        seq: 0x0101_0101,
        t_us: 0x0101_0101_0101_0101,
        flags: SensorFlags(1),
        values: Values::from_slice(&[f32::from_bits(0x3F81_0101); MAX_SIGNALS]).unwrap(),
    });
    let mut p = [0u8; MAX_PAYLOAD];
    assert_eq!(encode_payload(&msg, &mut p), Ok(MAX_PAYLOAD));
    let f = frame(&msg);
    assert!(f.len() <= MAX_FRAME);
    assert_roundtrip(&msg);
}

#[test]
fn fault_code_other_is_normalised() {
    for (c, named) in [
        (1, FaultCode::EStop),
        (2, FaultCode::CommandTimeout),
        (3, FaultCode::Plant),
        (4, FaultCode::Protocol),
    ] {
        let m = Message::Fault(Fault { code: FaultCode::Other(c), t_us: 0 });
        let back = decode_frame(&frame(&m)).unwrap();
        assert_eq!(back, Message::Fault(Fault { code: named, t_us: 0 }));
        assert_eq!(named.to_u16(), c);
    }
    assert_eq!(FaultCode::from_u16(0), FaultCode::Other(0));
}

#[test]
fn sensor_flags_helpers() {
    let mut f = SensorFlags::NONE;
    assert!(f.is_empty());
    f.insert(SensorFlags::RESET);
    f |= SensorFlags::ESTOP;
    assert!(f.contains(SensorFlags::RESET | SensorFlags::ESTOP));
    assert!(!f.contains(SensorFlags::TERMINATED));
    f.set(SensorFlags::ESTOP, false);
    assert_eq!(f, SensorFlags::RESET);
    assert_eq!(
        SensorFlags::ALL.0,
        (SensorFlags::TERMINATED
            | SensorFlags::TRUNCATED
            | SensorFlags::RESET
            | SensorFlags::ESTOP
            | SensorFlags::COMMAND_TIMEOUT
            | SensorFlags::WAITING
            | SensorFlags::SUCCESS
            | SensorFlags::LATE_COMMAND)
            .0
    );
    assert!(
        f.intersects(SensorFlags::ESTOP | SensorFlags::RESET) && !f.intersects(SensorFlags::LATE_COMMAND)
    );
}

/// Builds a frame around an arbitrary payload: `type ++ body ++ crc32c(type ++ body)`.
fn frame_for(type_and_body: &[u8]) -> Vec<u8> {
    let mut p = type_and_body.to_vec();
    p.extend_from_slice(&crc32c(type_and_body).to_le_bytes());
    let mut out = vec![0u8; cobs::max_encoded_len(p.len()) + 1];
    let n = cobs::encode(&p, &mut out).unwrap();
    out.truncate(n);
    out.push(0);
    out
}

fn body_of(msg: &Message) -> Vec<u8> {
    let mut p = [0u8; MAX_PAYLOAD];
    let n = encode_payload(msg, &mut p).unwrap();
    p[..n - 4].to_vec()
}

fn expect(type_and_body: &[u8], e: DecodeError) {
    let f = frame_for(type_and_body);
    // Anything longer than MAX_FRAME is rejected before it is looked at.
    let e = if f.len() > MAX_FRAME { DecodeError::Oversized } else { e };
    assert_eq!(decode_frame(&f), Err(e), "{type_and_body:02x?}");
    assert_eq!(decode_with_decoder(&f), Err(e));
}

#[test]
fn malformed_payloads_get_the_documented_error() {
    // Too short to hold type + CRC.
    for p in [&[][..], &[0x31], &[0x31, 0, 0], &[0x31, 0, 0, 0]] {
        let mut out = [0u8; 16];
        let n = cobs::encode(p, &mut out).unwrap();
        assert_eq!(decode_frame(&out[..n]), Err(DecodeError::Length));
    }
    // Bad CRC.
    let mut f = frame(&Message::ClearEstop);
    f[2] ^= 0x01;
    assert_eq!(decode_frame(&f), Err(DecodeError::Crc));
    // Unknown type with a good CRC.
    expect(&[0x7F, 1, 2, 3], DecodeError::UnknownType(0x7F));
    expect(&[0x00], DecodeError::UnknownType(0x00));

    for msg in one_of_each() {
        let body = body_of(&msg);
        // One byte too many or too few.
        let mut longer = body.clone();
        longer.push(0xAA);
        expect(&longer, DecodeError::Length);
        if body.len() > 1 {
            expect(&body[..body.len() - 1], DecodeError::Length);
        }
    }

    let hello = body_of(&Message::Hello(Hello::host(Mode::LockStep, 0, 1, 1, 1)));
    let mut h = hello.clone();
    h[3] = 2; // role
    expect(&h, DecodeError::BadField);
    let mut h = hello.clone();
    h[4] = 2; // mode
    expect(&h, DecodeError::BadField);

    let reject = body_of(&Message::Reject(Reject {
        reason: RejectReason::Version,
        version: 1,
        layout_hash: 2,
        n_signals: 3,
        n_actions: 4,
    }));
    for bad in [0u8, 6, 0xFF] {
        let mut r = reject.clone();
        r[1] = bad;
        expect(&r, DecodeError::BadField);
    }

    // Sensor: n above MAX_SIGNALS is BadField; n not matching the length is Length.
    let mut s = vec![0x10];
    s.extend_from_slice(&[0u8; 13]);
    s.push(65);
    s.extend_from_slice(&[0u8; 260]);
    expect(&s, DecodeError::BadField);
    // Command: n above MAX_COMMANDS (32) is BadField, even with a body of the right length.
    let mut c = vec![0x11];
    c.extend_from_slice(&[0u8; 8]);
    c.push(33);
    c.extend_from_slice(&[0u8; 132]);
    expect(&c, DecodeError::BadField);
    // Name: length, kind, index and content rules.
    let name = |kind: u8, index: u8, count: u8, text: &[u8]| {
        let mut b = vec![0x03, kind, index, count, text.len() as u8];
        b.extend_from_slice(text);
        b
    };
    expect(&name(2, 0, 1, b"x"), DecodeError::BadField);
    expect(&name(0, 1, 1, b"x"), DecodeError::BadField);
    expect(&name(0, 0, 1, &[b'a'; 33]), DecodeError::BadField);
    expect(&name(0, 0, 1, b"a\0b"), DecodeError::BadField);
    expect(&name(0, 0, 1, &[0xFF, 0xFE]), DecodeError::BadField);
    let mut short = name(0, 0, 1, b"abc");
    short.pop();
    expect(&short, DecodeError::Length);
    expect(&[0x03, 0, 0], DecodeError::Length);
    let mut s = vec![0x10];
    s.extend_from_slice(&[0u8; 13]);
    s.push(2);
    s.extend_from_slice(&[0u8; 4]);
    expect(&s, DecodeError::Length);
    // Non-finite values.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut c = vec![0x11];
        c.extend_from_slice(&[0u8; 8]);
        c.push(2);
        c.extend_from_slice(&1.0f32.to_le_bytes());
        c.extend_from_slice(&bad.to_le_bytes());
        expect(&c, DecodeError::BadField);
    }
    // Truncated headers.
    expect(&[0x10, 1, 2, 3], DecodeError::Length);
    expect(&[0x11, 1, 2, 3], DecodeError::Length);
}

#[test]
fn encode_reports_small_buffers() {
    for m in one_of_each() {
        let n = frame(&m).len();
        let mut out = vec![0u8; n];
        for len in 0..n {
            assert_eq!(encode(&m, &mut out[..len]), Err(EncodeError::BufferTooSmall));
        }
        assert_eq!(encode(&m, &mut out), Ok(n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// (1) Any message round-trips through encode and both decoders.
    #[test]
    fn any_message_round_trips(msg in message()) {
        assert_roundtrip(&msg);
    }
}
