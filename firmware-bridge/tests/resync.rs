//! Garbage, corruption and resynchronisation: valid frames after garbage still decode,
//! corrupt frames are rejected and counted, nothing panics.

mod common;

use common::*;
use firmware_bridge::*;
use proptest::prelude::*;

fn oks(run: &Run) -> Vec<Message> {
    run.results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect()
}

/// `[0x00] ++ frame`: how a sender makes a frame immune to whatever preceded it.
fn flushed(msg: &Message) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend(frame(msg));
    v
}

#[test]
fn random_garbage_before_and_between_frames() {
    let msgs = one_of_each();
    let mut rng = Rng(1);
    for round in 0..200 {
        let mut stream = Vec::new();
        for m in &msgs {
            let garbage = rng.some_bytes(300);
            stream.extend(&garbage);
            stream.extend(flushed(m));
        }
        stream.extend(rng.bytes(50)); // unterminated tail: no result
        let run = run(&stream);
        assert_eq!(oks(&run), msgs, "round {round}");
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let good = Message::Heartbeat(Heartbeat { seq: 1, t_us: 2 });
    for msg in one_of_each() {
        let f = frame(&msg);
        for bit in 0..f.len() * 8 {
            let mut bad = f.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut stream = bad;
            stream.extend(flushed(&good));
            let run = run(&stream);
            // Only the good frame is accepted; the corrupt one is rejected (once, or more
            // times if the flip created a 0x00 that split it), or merged away if the flip hit
            // its delimiter.
            assert_eq!(oks(&run), vec![good.clone()], "{msg:?} bit {bit}");
            assert!(run.stats.rejected() >= 1);
        }
    }
}

#[test]
fn truncated_frames_are_rejected() {
    let good = Message::ClearEstop;
    for msg in one_of_each() {
        let f = frame(&msg);
        for cut in 1..f.len() - 1 {
            let mut stream = f[..cut].to_vec();
            stream.push(0);
            stream.extend(frame(&good));
            let run = run(&stream);
            assert_eq!(oks(&run), vec![good.clone()]);
            assert_eq!(run.stats.rejected(), 1, "{msg:?} cut at {cut}");
        }
    }
}

#[test]
fn partial_frame_without_delimiter_costs_at_most_the_next_frame() {
    let a = Message::Reset(Reset { seed: 5 });
    let b = Message::Reset(Reset { seed: 6 });
    let f = frame(&a);
    for cut in 1..f.len() - 1 {
        // Without a flush byte, the partial frame merges with `a` and both are lost ...
        let mut stream = f[..cut].to_vec();
        stream.extend(frame(&a));
        stream.extend(frame(&b));
        assert_eq!(oks(&run(&stream)), vec![b.clone()]);
        // ... with one, only the partial frame is lost.
        let mut stream = f[..cut].to_vec();
        stream.extend(flushed(&a));
        stream.extend(flushed(&b));
        assert_eq!(oks(&run(&stream)), vec![a.clone(), b.clone()]);
    }
}

#[test]
fn oversized_runs_are_one_error_each() {
    let msgs = one_of_each();
    let mut stream = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        stream.extend(std::iter::repeat_n(0x5A, MAX_FRAME + i * 97));
        stream.extend(flushed(m));
    }
    let run = run(&stream);
    assert_eq!(oks(&run), msgs);
    assert_eq!(run.stats.oversized, msgs.len() as u64);
    assert_eq!(run.stats.rejected(), msgs.len() as u64);
}

#[test]
fn duplicated_and_concatenated_frames() {
    let msgs = one_of_each();
    let mut stream = Vec::new();
    for m in &msgs {
        stream.extend(frame(m));
        stream.extend(frame(m));
        stream.extend([0, 0, 0]);
    }
    let run = run(&stream);
    let expected: Vec<_> = msgs.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
    assert_eq!(oks(&run), expected);
    assert_eq!(run.stats.rejected(), 0);
}

#[test]
fn decoder_state_survives_many_frames() {
    // A long-lived decoder, mixed traffic, stats add up.
    let msgs = one_of_each();
    let mut rng = Rng(7);
    let mut stream = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..5000 {
        let m = &msgs[rng.below(msgs.len())];
        if rng.below(10) == 0 {
            stream.extend(rng.some_bytes(40));
            stream.push(0);
        }
        stream.extend(frame(m));
        sent.push(m.clone());
    }
    let run = run(&stream);
    assert_eq!(oks(&run), sent);
}

/// One chunk of a mixed byte stream.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => message().prop_map(|m| frame(&m)),
        2 => prop::collection::vec(any::<u8>(), 0..120),
        1 => Just(vec![0u8]),
        1 => (message(), any::<prop::sample::Index>()).prop_map(|(m, i)| {
            let f = frame(&m);
            f[..i.index(f.len())].to_vec()
        }),
        1 => (1usize..400).prop_map(|n| vec![0x77u8; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// (2) Arbitrary byte streams never panic; one result per non-empty delimited frame; the
    /// stats agree with the results; anything accepted re-encodes to its exact bytes.
    #[test]
    fn arbitrary_bytes_never_panic(stream in prop::collection::vec(any::<u8>(), 0..3000)) {
        run(&stream);
    }

    /// (2b) The same over streams mixing frames, partial frames, random bytes and long runs.
    #[test]
    fn mixed_streams_are_consistent(chunks in prop::collection::vec(chunk(), 0..30)) {
        let stream: Vec<u8> = chunks.concat();
        run(&stream);
    }

    /// (3) Valid frames with random single-byte corruptions: every frame whose bytes are all
    /// intact (and whose predecessor's delimiter is intact) decodes exactly; nothing else is
    /// accepted.
    #[test]
    fn corrupted_streams_only_yield_intact_frames(
        msgs in prop::collection::vec(message(), 1..25),
        corruptions in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
    ) {
        let frames: Vec<Vec<u8>> = msgs.iter().map(frame).collect();
        let mut stream: Vec<u8> = frames.concat();
        let original = stream.clone();
        for (idx, x) in &corruptions {
            let i = idx.index(stream.len());
            stream[i] ^= x;
        }
        // A byte hit twice with the same value is restored: "touched" means "differs now".
        let touched: Vec<bool> = stream.iter().zip(&original).map(|(a, b)| a != b).collect();
        let mut expected = Vec::new();
        let mut start = 0;
        let mut prev_delim_ok = true;
        for (m, f) in msgs.iter().zip(&frames) {
            let end = start + f.len();
            if prev_delim_ok && !touched[start..end].iter().any(|&t| t) {
                expected.push(m.clone());
            }
            prev_delim_ok = !touched[end - 1];
            start = end;
        }
        let run = run(&stream);
        prop_assert_eq!(oks(&run), expected);
    }
}
