//! Time-bounded fuzzer for the streaming frame decoder.
//!
//! Usage: `cargo run --release --example fuzz_decoder -- [--seconds N] [--seed S]`
//! (default 10 s, seed from the clock; `scripts/fuzz_decoder.sh` wraps it).
//!
//! Each *execution* builds a byte stream by mixing valid frames of random messages, mutated
//! frames (bit flips, truncations, duplications, inserted 0x00, byte replacement/deletion),
//! random bytes, flush bytes and oversized runs, and feeds it to one long-lived [`Decoder`].
//! An independent oracle splits the stream at every 0x00 and checks, byte by byte:
//!
//! - `push` returns a result exactly at a 0x00 that ends a non-empty segment;
//! - a segment that is byte-for-byte the encoding of a message that was sent decodes to exactly
//!   that message; every other segment is rejected — so the only messages ever decoded are
//!   ones that were sent intact;
//! - a segment longer than `MAX_FRAME - 1` bytes is rejected as `Oversized`, shorter ones never;
//! - the stats move by exactly the results returned (one counter per frame; `bytes` by the
//!   stream length).
//!
//! Any violation prints the seed and execution number and exits with status 1; a panic in the
//! decoder aborts the run the same way. At the end it prints
//! `executions: <n> frames: <n> rejected: <n>`.

use std::collections::{HashMap, HashSet};
use std::process::exit;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use firmware_bridge::*;

/// xoshiro256** seeded through SplitMix64.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn f32(&mut self) -> f32 {
        match self.below(8) {
            0 => 0.0,
            1 => -0.0,
            2 => (self.below(2001) as f32 - 1000.0) / 8.0,
            _ => loop {
                let v = f32::from_bits(self.u64() as u32);
                if v.is_finite() {
                    break v;
                }
            },
        }
    }

    fn values(&mut self) -> Values {
        let n = self.below(MAX_VALUES + 1);
        let mut v = Values::new();
        for _ in 0..n {
            let _ = v.push(self.f32());
        }
        v
    }

    /// A random integer biased towards small values and zero bytes (which COBS must stuff).
    fn int(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => self.below(256) as u64,
            2 => self.u64() & 0x00FF_00FF_00FF_00FF,
            _ => self.u64(),
        }
    }

    fn message(&mut self) -> Message {
        match self.below(8) {
            0 => Message::Hello(Hello {
                version: self.int() as u16,
                role: if self.chance(2) { Role::Host } else { Role::Firmware },
                mode: if self.chance(2) { Mode::LockStep } else { Mode::RealTime },
                period_us: self.int() as u32,
                layout_hash: self.int() as u32,
                n_signals: self.int() as u8,
                n_actions: self.int() as u8,
                boot_id: self.int() as u32,
            }),
            1 => Message::Reject(Reject {
                reason: [
                    RejectReason::Version,
                    RejectReason::LayoutHash,
                    RejectReason::Counts,
                    RejectReason::Mode,
                    RejectReason::Busy,
                ][self.below(5)],
                version: self.int() as u16,
                layout_hash: self.int() as u32,
                n_signals: self.int() as u8,
                n_actions: self.int() as u8,
            }),
            2 => Message::Sensor(Sensor {
                seq: self.int() as u32,
                t_us: self.int(),
                flags: SensorFlags(self.int() as u8),
                values: self.values(),
            }),
            3 => Message::Command(Command {
                seq: self.int() as u32,
                valid_for_us: self.int() as u32,
                values: self.values(),
            }),
            4 => Message::Reset(Reset { seed: self.int() }),
            5 => Message::Heartbeat(Heartbeat { seq: self.int() as u32, t_us: self.int() }),
            6 => Message::Fault(Fault { code: FaultCode::from_u16(self.int() as u16), t_us: self.int() }),
            _ => Message::ClearEstop,
        }
    }

    fn bytes(&mut self, n: usize, zero_free: bool) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let b = self.u64() as u8;
                if zero_free && b == 0 {
                    1
                } else {
                    b
                }
            })
            .collect()
    }
}

/// Applies 1..=3 random mutations to a frame.
fn mutate(rng: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        if f.is_empty() {
            break;
        }
        let i = rng.below(f.len());
        match rng.below(7) {
            // Bit flip.
            0 | 1 => f[i] ^= 1 << rng.below(8),
            // Truncation (possibly removing the delimiter).
            2 => f.truncate(i),
            // Duplication of a slice, in place.
            3 => {
                let j = i + rng.below(f.len() - i + 1);
                let slice = f[i..j].to_vec();
                let at = rng.below(f.len() + 1);
                f.splice(at..at, slice);
            }
            // Inserted 0x00.
            4 => f.insert(i, 0),
            // Byte replacement.
            5 => f[i] = rng.u64() as u8,
            // Byte deletion.
            _ => {
                f.remove(i);
            }
        }
    }
    f
}

/// A frame whose payload was mutated *before* the CRC was computed: it passes the CRC check,
/// so it exercises the type, length and field checks. Returns the frame bytes.
fn recrc_frame(rng: &mut Rng, msg: &Message) -> Vec<u8> {
    let mut p = [0u8; MAX_PAYLOAD];
    let n = encode_payload(msg, &mut p).unwrap_or(0);
    let mut body: Vec<u8> = p[..n.saturating_sub(4)].to_vec();
    if body.is_empty() {
        body.push(msg.msg_type());
    }
    match rng.below(6) {
        0 => body[0] = rng.u64() as u8,
        1 => {
            let i = rng.below(body.len());
            body[i] = rng.u64() as u8;
        }
        2 => {
            let keep = rng.below(body.len()) + 1;
            body.truncate(keep);
        }
        3 => {
            let extra = 1 + rng.below(8);
            body.extend(rng.bytes(extra, false));
        }
        4 => {
            // A non-finite value where a Sensor/Command value would be.
            let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3)];
            let at = 1 + rng.below(body.len());
            let end = (at + 4).min(body.len());
            body.splice(at..end, bad.to_le_bytes());
        }
        _ => {
            // A random small count byte where Sensor/Command keep theirs.
            let at = match body[0] {
                0x10 => 14,
                0x11 => 9,
                _ => rng.below(body.len()),
            };
            if at < body.len() {
                body[at] = rng.below(40) as u8;
            }
        }
    }
    body.extend(crc32c(&body).to_le_bytes());
    let mut out = vec![0u8; cobs::max_encoded_len(body.len()) + 1];
    let k = cobs::encode(&body, &mut out).unwrap_or(0);
    out.truncate(k);
    out.push(0);
    out
}

struct Totals {
    executions: u64,
    frames: u64,
    rejected: u64,
    bytes: u64,
    mutated_frames: u64,
    recrc_frames: u64,
}

fn fail(seed: u64, exec: u64, what: String) -> ! {
    eprintln!("FUZZ FAILURE (seed {seed}, execution {exec}): {what}");
    exit(1);
}

fn main() {
    let mut seconds = 10.0f64;
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| {
                    eprintln!("{name} needs a value");
                    exit(2)
                })
                .clone()
        };
        match a.as_str() {
            "--seconds" => {
                seconds = value("--seconds").parse().unwrap_or_else(|_| {
                    eprintln!("--seconds: not a number");
                    exit(2)
                })
            }
            "--seed" => {
                seed = value("--seed").parse().unwrap_or_else(|_| {
                    eprintln!("--seed: not an integer");
                    exit(2)
                })
            }
            "-h" | "--help" => {
                println!("usage: fuzz_decoder [--seconds N] [--seed S]");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}");
                exit(2);
            }
        }
    }
    println!("fuzz_decoder: seed {seed}, {seconds} s");

    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut decoder = Decoder::new();
    let mut t =
        Totals { executions: 0, frames: 0, rejected: 0, bytes: 0, mutated_frames: 0, recrc_frames: 0 };
    // Oracle state, persistent across executions like the decoder's.
    let mut segment: Vec<u8> = Vec::new();
    let mut known_prev: HashMap<Vec<u8>, Message> = HashMap::new();
    let mut recrc_prev: HashSet<Vec<u8>> = HashSet::new();
    let mut stream: Vec<u8> = Vec::new();

    while Instant::now() < deadline {
        for _ in 0..64 {
            let exec = t.executions;
            // ---- Build the stream.
            let mut known: HashMap<Vec<u8>, Message> = HashMap::new();
            let mut recrc: HashSet<Vec<u8>> = HashSet::new();
            stream.clear();
            let mut resets_at: Vec<usize> = Vec::new();
            for _ in 0..1 + rng.below(24) {
                match rng.below(18) {
                    0..=5 => {
                        let m = rng.message();
                        let f = encode_to_vec(&m)
                            .unwrap_or_else(|e| fail(seed, exec, format!("encode {m:?}: {e}")));
                        if rng.chance(8) {
                            stream.extend_from_slice(&f); // duplicated frame
                        }
                        stream.extend_from_slice(&f);
                        known.insert(f.to_vec(), m);
                    }
                    6..=9 => {
                        let m = rng.message();
                        let f = encode_to_vec(&m)
                            .unwrap_or_else(|e| fail(seed, exec, format!("encode {m:?}: {e}")));
                        known.insert(f.to_vec(), m);
                        stream.extend(mutate(&mut rng, f.to_vec()));
                        t.mutated_frames += 1;
                    }
                    10..=11 => {
                        let n = rng.below(200);
                        let zero_free = rng.chance(2);
                        stream.extend(rng.bytes(n, zero_free));
                    }
                    12 => stream.push(0),
                    13 => {
                        let n = MAX_FRAME - 2 + rng.below(3 * MAX_FRAME);
                        let b = 1 + rng.below(255) as u8;
                        stream.extend(std::iter::repeat_n(b, n));
                    }
                    14 => {
                        // A run of exactly the boundary lengths, then a delimiter.
                        let n = MAX_FRAME - 2 + rng.below(3);
                        stream.extend(rng.bytes(n, true));
                        stream.push(0);
                    }
                    15 | 16 => {
                        let m = rng.message();
                        let f = recrc_frame(&mut rng, &m);
                        if rng.chance(2) {
                            stream.push(0);
                        }
                        stream.extend_from_slice(&f);
                        recrc.insert(f);
                        t.recrc_frames += 1;
                    }
                    _ => resets_at.push(stream.len()),
                }
            }

            // ---- Feed it, checking every byte against the oracle.
            let before = decoder.stats();
            let mut results = 0u64;
            let mut oks = 0u64;
            let mut errs: HashMap<std::mem::Discriminant<DecodeError>, u64> = HashMap::new();
            let mut next_reset = 0;
            for (i, &b) in stream.iter().enumerate() {
                while next_reset < resets_at.len() && resets_at[next_reset] == i {
                    decoder.reset();
                    segment.clear();
                    next_reset += 1;
                }
                let r = decoder.push(b);
                if b != 0 {
                    segment.push(b);
                    if let Some(r) = r {
                        fail(seed, exec, format!("result {r:?} at non-zero byte {i}"));
                    }
                    continue;
                }
                if segment.is_empty() {
                    if let Some(r) = r {
                        fail(seed, exec, format!("result {r:?} for empty frame at {i}"));
                    }
                    continue;
                }
                let Some(r) = r else {
                    fail(seed, exec, format!("no result at delimiter {i}"));
                };
                results += 1;
                segment.push(0);
                let expected = known.get(&segment).or_else(|| known_prev.get(&segment));
                let crc_valid = recrc.contains(&segment) || recrc_prev.contains(&segment);
                match (&r, expected) {
                    (Ok(got), Some(want)) if got == want => oks += 1,
                    // Re-checksummed frames: any verdict past the CRC check, but an accepted
                    // one must re-encode to exactly these bytes.
                    (Ok(got), None) if crc_valid => {
                        if encode_to_vec(got).map(|f| f.as_slice() == segment) != Ok(true) {
                            fail(seed, exec, format!("{got:?} does not re-encode to its frame"));
                        }
                        oks += 1;
                    }
                    (Err(e @ (DecodeError::Crc | DecodeError::Cobs)), None) if crc_valid => {
                        fail(seed, exec, format!("CRC-valid frame {segment:02x?} rejected as {e:?}"))
                    }
                    (Ok(got), _) => fail(
                        seed,
                        exec,
                        format!("decoded {got:?} from {segment:02x?}, expected {expected:?}"),
                    ),
                    (Err(e), Some(want)) => {
                        fail(seed, exec, format!("intact frame of {want:?} rejected with {e:?}"))
                    }
                    (Err(e), None) => {
                        let oversized = segment.len() > MAX_FRAME;
                        if oversized != (*e == DecodeError::Oversized) {
                            fail(seed, exec, format!("{} byte frame rejected as {e:?}", segment.len()));
                        }
                        *errs.entry(std::mem::discriminant(e)).or_default() += 1;
                    }
                }
                segment.clear();
            }

            // ---- Stats moved by exactly what was returned.
            let after = decoder.stats();
            let delta = |a: u64, b: u64| a.wrapping_sub(b);
            let err = |e: DecodeError| errs.get(&std::mem::discriminant(&e)).copied().unwrap_or(0);
            let checks = [
                ("bytes", delta(after.bytes, before.bytes), stream.len() as u64),
                ("frames", delta(after.frames, before.frames), oks),
                ("rejected", delta(after.rejected(), before.rejected()), results - oks),
                ("crc_errors", delta(after.crc_errors, before.crc_errors), err(DecodeError::Crc)),
                ("cobs_errors", delta(after.cobs_errors, before.cobs_errors), err(DecodeError::Cobs)),
                ("length_errors", delta(after.length_errors, before.length_errors), err(DecodeError::Length)),
                ("oversized", delta(after.oversized, before.oversized), err(DecodeError::Oversized)),
                (
                    "unknown_type",
                    delta(after.unknown_type, before.unknown_type),
                    err(DecodeError::UnknownType(0)),
                ),
                ("bad_field", delta(after.bad_field, before.bad_field), err(DecodeError::BadField)),
            ];
            for (name, got, want) in checks {
                if got != want {
                    fail(seed, exec, format!("stats.{name} moved by {got}, expected {want}"));
                }
            }

            t.executions += 1;
            t.frames += oks;
            t.rejected += results - oks;
            t.bytes += stream.len() as u64;
            // The oracle's segment may continue into the next execution; it can only hold
            // bytes sent since the last 0x00, so keep the frames of every execution since then.
            if stream.contains(&0) {
                known_prev = known;
                recrc_prev = recrc;
            } else {
                known_prev.extend(known);
                recrc_prev.extend(recrc);
            }
        }
    }

    let s = decoder.stats();
    if s.frames != t.frames || s.rejected() != t.rejected || s.bytes != t.bytes {
        fail(seed, t.executions, format!("final stats {s:?} disagree"));
    }
    println!("executions: {} frames: {} rejected: {}", t.executions, t.frames, t.rejected);
    println!(
        "bytes: {} mutated_frames: {} recrc_frames: {} stats: {:?}",
        t.bytes, t.mutated_frames, t.recrc_frames, s
    );
}
