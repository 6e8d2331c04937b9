//! Checks PROTOCOL.md against the code: every hex test vector, the CRC check value and the
//! layout-hash worked example. The spec and the implementation cannot drift apart.
//!
//! To regenerate the vector block after a deliberate format change:
//! `cargo test --test spec_vectors -- --ignored --nocapture print_vectors`.

use firmware_bridge::*;

const SPEC: &str = include_str!("../PROTOCOL.md");

const CARTPOLE_SIGNALS: [&str; 4] = ["x", "x_dot", "theta", "theta_dot"];
const CARTPOLE_ACTIONS: [&str; 1] = ["force"];

fn cartpole_hash() -> u32 {
    layout_hash(&CARTPOLE_SIGNALS, &CARTPOLE_ACTIONS)
}

/// The messages behind the vectors in PROTOCOL.md, by vector name.
fn vector_messages() -> Vec<(&'static str, Message)> {
    let h = cartpole_hash();
    vec![
        ("hello_host", Message::Hello(Hello::host(Mode::LockStep, 0, h, 4, 1))),
        ("hello_firmware", Message::Hello(Hello::firmware(Mode::RealTime, 20_000, h, 4, 1, 0x5EED_B007))),
        (
            "reject_counts",
            Message::Reject(Reject {
                reason: RejectReason::Counts,
                version: 2,
                layout_hash: 0x1234_5678,
                n_signals: 6,
                n_actions: 2,
            }),
        ),
        ("name_signal", Message::Name(Name::new(NameKind::Signal, 2, 4, "theta").unwrap())),
        ("name_command", Message::Name(Name::new(NameKind::Command, 0, 1, "force").unwrap())),
        (
            "sensor_reset",
            Message::Sensor(Sensor {
                seq: 0,
                t_us: 1_000_000,
                flags: SensorFlags::RESET,
                values: Values::from_slice(&[0.5, -1.0, 0.25, 0.0]).unwrap(),
            }),
        ),
        (
            "sensor_estop_timeout",
            Message::Sensor(Sensor {
                seq: 258,
                t_us: 0x0123_4567_89AB,
                flags: SensorFlags::ESTOP | SensorFlags::COMMAND_TIMEOUT,
                values: Values::from_slice(&[1.0, 2.0, 3.0, 4.0]).unwrap(),
            }),
        ),
        (
            // 64 signals whose bytes are all non-zero: the payload has a run of more than 254
            // non-zero bytes, so its COBS encoding has a 0xFF block (section 2).
            "sensor_64_signals",
            Message::Sensor(Sensor {
                seq: 0x0101_0101,
                t_us: 0x0101_0101_0101_0101,
                flags: SensorFlags::TERMINATED,
                values: (0..MAX_SIGNALS as u32).map(|i| f32::from_bits(0x3F81_0101 + 0x0101 * i)).collect(),
            }),
        ),
        (
            "command",
            Message::Command(Command {
                seq: 258,
                valid_for_us: 40_000,
                values: Values::from_slice(&[-10.0]).unwrap(),
            }),
        ),
        ("reset", Message::Reset(Reset { seed: 42 })),
        ("heartbeat", Message::Heartbeat(Heartbeat { seq: 7, t_us: 123_456_789 })),
        ("fault_estop", Message::Fault(Fault { code: FaultCode::EStop, t_us: 5_000_000 })),
        ("clear_estop", Message::ClearEstop),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

/// Hex dump, 16 bytes a line; continuation lines indented to the value column.
fn hex_lines(key: &str, bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let head = if i == 0 { key } else { "" };
        s.push_str(&format!("  {head:<8} {}\n", hex(chunk)));
    }
    s
}

fn payload_of(msg: &Message) -> Vec<u8> {
    let mut p = [0u8; MAX_PAYLOAD];
    let n = encode_payload(msg, &mut p).unwrap();
    p[..n].to_vec()
}

fn frame_of(msg: &Message) -> Vec<u8> {
    let mut f = [0u8; MAX_FRAME];
    let n = encode(msg, &mut f).unwrap();
    f[..n].to_vec()
}

fn render_vectors() -> String {
    let mut s = String::new();
    for (name, msg) in vector_messages() {
        let p = payload_of(&msg);
        let crc = crc32c(&p[..p.len() - 4]);
        s.push_str(&format!("vector {name}\n"));
        s.push_str(&format!("  message  {msg:?}\n"));
        s.push_str(&hex_lines("payload", &p));
        s.push_str(&format!("  crc      0x{crc:08X}\n"));
        s.push_str(&hex_lines("frame", &frame_of(&msg)));
        s.push('\n');
    }
    s
}

#[test]
#[ignore = "prints the vector block for PROTOCOL.md"]
fn print_vectors() {
    println!("layout_hash(cartpole) = 0x{:08X}", cartpole_hash());
    print!("{}", render_vectors());
}

/// A vector parsed from the spec.
#[derive(Default, Debug)]
struct Vector {
    name: String,
    message: String,
    payload: Vec<u8>,
    crc: u32,
    frame: Vec<u8>,
}

fn parse_hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|t| u8::from_str_radix(t, 16).unwrap_or_else(|_| panic!("bad hex byte {t:?}")))
        .collect()
}

/// Parses the block between `<!-- vectors:begin -->` and `<!-- vectors:end -->`.
fn parse_vectors(spec: &str) -> Vec<Vector> {
    let begin = spec.find("<!-- vectors:begin -->").expect("vectors:begin marker");
    let end = spec.find("<!-- vectors:end -->").expect("vectors:end marker");
    let mut out: Vec<Vector> = Vec::new();
    let mut key = String::new();
    for line in spec[begin..end].lines() {
        if let Some(name) = line.strip_prefix("vector ") {
            out.push(Vector { name: name.trim().to_string(), ..Default::default() });
            continue;
        }
        if !line.starts_with("  ") || line.trim().is_empty() {
            continue;
        }
        let v = out.last_mut().expect("field before first vector");
        let body = &line[2..];
        let (k, rest) = if body.starts_with(' ') {
            (key.clone(), body.trim())
        } else {
            let (k, rest) = body.split_once(' ').expect("key value");
            key = k.to_string();
            (key.clone(), rest.trim())
        };
        match k.as_str() {
            "message" => v.message = rest.to_string(),
            "payload" => v.payload.extend(parse_hex(rest)),
            "frame" => v.frame.extend(parse_hex(rest)),
            "crc" => v.crc = u32::from_str_radix(rest.trim_start_matches("0x"), 16).expect("crc hex"),
            other => panic!("unknown vector field {other:?}"),
        }
    }
    out
}

#[test]
fn spec_vectors_match_code() {
    let vectors = parse_vectors(SPEC);
    let expected = vector_messages();
    let names: Vec<_> = vectors.iter().map(|v| v.name.as_str()).collect();
    let expected_names: Vec<_> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected_names, "vector names in PROTOCOL.md");

    let mut types = std::collections::BTreeSet::new();
    for (v, (_, msg)) in vectors.iter().zip(&expected) {
        types.insert(msg.msg_type());
        assert_eq!(v.message, format!("{msg:?}"), "{}: message line", v.name);
        assert_eq!(v.payload, payload_of(msg), "{}: payload", v.name);
        assert_eq!(v.crc, crc32c(&v.payload[..v.payload.len() - 4]), "{}: crc", v.name);
        assert_eq!(v.payload[v.payload.len() - 4..], v.crc.to_le_bytes(), "{}: crc bytes", v.name);
        assert_eq!(v.frame, frame_of(msg), "{}: frame", v.name);
        // The spec's bytes decode to the message, through both decoders.
        let mut d = Decoder::new();
        let got: Vec<_> = d.push_slice(&v.frame).collect();
        assert_eq!(got, vec![Ok(msg.clone())], "{}: Decoder", v.name);
        assert_eq!(decode_payload(&v.payload).as_ref(), Ok(msg));
    }
    assert_eq!(types.len(), 9, "one vector per message type at least");
    // The rendered block is exactly what the spec holds (formatting included).
    let begin = SPEC.find("<!-- vectors:begin -->").unwrap();
    let end = SPEC.find("<!-- vectors:end -->").unwrap();
    assert!(
        SPEC[begin..end].contains(render_vectors().trim_end()),
        "vector block differs from `print_vectors` output"
    );
}

#[test]
fn spec_states_check_values_and_sizes() {
    assert!(SPEC.contains("0xE3069283"), "CRC-32C check value");
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    let hash = format!("layout_hash(cartpole) = 0x{:08X}", cartpole_hash());
    assert!(SPEC.contains(&hash), "PROTOCOL.md must state `{hash}`");
    let layout_bytes = hex(b"x\0x_dot\0theta\0theta_dot\0\x01force\0");
    assert!(
        SPEC.replace('\n', " ").contains(&layout_bytes),
        "PROTOCOL.md must list the layout bytes {layout_bytes}"
    );
    assert!(SPEC.contains(&format!("MAX_PAYLOAD = {MAX_PAYLOAD}")));
    assert!(SPEC.contains(&format!("MAX_FRAME = {MAX_FRAME}")));
    assert!(SPEC.contains(&format!("PROTOCOL_VERSION = {PROTOCOL_VERSION}")));
}
