//! Consistent Overhead Byte Stuffing (COBS): removes every `0x00` from a payload so that `0x00`
//! can delimit frames.
//!
//! The encoding is the canonical one (Cheshire & Baker, as on Wikipedia): the output is a
//! sequence of blocks, each a code byte `c` (1..=255) followed by `c - 1` non-zero data bytes.
//! A block with `c < 255` stands for its data bytes followed by one `0x00`, except that the
//! last block's `0x00` is dropped; a block with `c == 255` stands for its 254 data bytes alone.
//! The encoder never emits a trailing empty block after a final `0xFF` block (the decoder
//! accepts one). Encoded output contains no `0x00` and is at most [`max_encoded_len`] bytes.
//! The frame delimiter is not part of this module's output or input.

/// Why a COBS operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CobsError {
    /// The input is not a valid COBS encoding: empty, contains `0x00`, or a code byte
    /// promises more bytes than remain.
    Invalid,
    /// The output buffer is too small.
    OutputTooSmall,
}

/// Largest COBS encoding of `n` input bytes (without delimiter): `n + n / 254 + 1`.
pub const fn max_encoded_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Encodes `input` into `out` and returns the encoded length (no delimiter appended).
///
/// Fails without panicking if `out` is too small; `out` may then hold a partial encoding.
pub fn encode(input: &[u8], out: &mut [u8]) -> Result<usize, CobsError> {
    // `code_idx` is where the current block's code byte goes, `w` the next data position.
    let mut code_idx = 0usize;
    let mut w = 1usize;
    let mut code: u8 = 1;
    for &b in input {
        if code == 0xFF {
            // Full block of 254 data bytes: close it (no implied zero), open the next.
            *out.get_mut(code_idx).ok_or(CobsError::OutputTooSmall)? = code;
            code_idx = w;
            w += 1;
            code = 1;
        }
        if b == 0 {
            *out.get_mut(code_idx).ok_or(CobsError::OutputTooSmall)? = code;
            code_idx = w;
            w += 1;
            code = 1;
        } else {
            *out.get_mut(w).ok_or(CobsError::OutputTooSmall)? = b;
            w += 1;
            code += 1;
        }
    }
    *out.get_mut(code_idx).ok_or(CobsError::OutputTooSmall)? = code;
    // Every reserved code slot (`< w`) has been written, so `w <= out.len()`.
    Ok(w)
}

/// Decodes `input` (one encoded frame without its delimiter) into `out`; returns the decoded
/// length, which is always less than `input.len()`.
pub fn decode(input: &[u8], out: &mut [u8]) -> Result<usize, CobsError> {
    if input.is_empty() {
        return Err(CobsError::Invalid);
    }
    let mut r = 0usize;
    let mut w = 0usize;
    while r < input.len() {
        let code = input[r];
        if code == 0 {
            return Err(CobsError::Invalid);
        }
        r += 1;
        let len = code as usize - 1;
        let block = input.get(r..r + len).ok_or(CobsError::Invalid)?;
        if block.contains(&0) {
            return Err(CobsError::Invalid);
        }
        out.get_mut(w..w + len).ok_or(CobsError::OutputTooSmall)?.copy_from_slice(block);
        w += len;
        r += len;
        if code != 0xFF && r < input.len() {
            *out.get_mut(w).ok_or(CobsError::OutputTooSmall)? = 0;
            w += 1;
        }
    }
    Ok(w)
}

/// Decodes the COBS data in `buf` in place (decoded bytes start at `buf[0]`); returns the
/// decoded length. Same rules as [`decode`]; on error `buf` holds unspecified bytes.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, CobsError> {
    if buf.is_empty() {
        return Err(CobsError::Invalid);
    }
    let n = buf.len();
    let mut r = 0usize;
    let mut w = 0usize;
    // Invariant: w <= r, so writes never overtake unread input.
    while r < n {
        let code = buf[r];
        if code == 0 {
            return Err(CobsError::Invalid);
        }
        r += 1;
        let len = code as usize - 1;
        if len > n - r || buf[r..r + len].contains(&0) {
            return Err(CobsError::Invalid);
        }
        buf.copy_within(r..r + len, w);
        w += len;
        r += len;
        if code != 0xFF && r < n {
            buf[w] = 0;
            w += 1;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> usize {
        let mut enc = [0u8; 1024];
        let n = encode(data, &mut enc).unwrap();
        assert!(n <= max_encoded_len(data.len()));
        assert!(!enc[..n].contains(&0), "encoding contains 0x00");
        let mut dec = [0u8; 1024];
        let m = decode(&enc[..n], &mut dec).unwrap();
        assert_eq!(&dec[..m], data);
        let mut buf = enc;
        let m2 = decode_in_place(&mut buf[..n]).unwrap();
        assert_eq!(&buf[..m2], data);
        // Exactly-sized output buffer suffices; one byte less fails.
        let mut exact = [0u8; 1024];
        assert_eq!(encode(data, &mut exact[..n]), Ok(n));
        assert_eq!(encode(data, &mut exact[..n - 1]), Err(CobsError::OutputTooSmall));
        n
    }

    #[test]
    fn known_vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x00, 0x11, 0x00], &[0x01, 0x02, 0x11, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, enc) in cases {
            let mut out = [0u8; 16];
            let n = encode(raw, &mut out).unwrap();
            assert_eq!(&out[..n], *enc, "encoding {raw:02x?}");
            roundtrip(raw);
        }
    }

    #[test]
    fn long_runs() {
        // 254 non-zero bytes: one full block, no trailing empty block.
        let run254: [u8; 254] = core::array::from_fn(|i| (i + 1) as u8);
        let mut out = [0u8; 300];
        let n = encode(&run254, &mut out).unwrap();
        assert_eq!(n, 255);
        assert_eq!(out[0], 0xFF);
        assert_eq!(&out[1..255], &run254[..]);

        // 0x00 then 254 non-zero bytes.
        let mut zrun = [0u8; 255];
        zrun[1..].copy_from_slice(&run254);
        let n = encode(&zrun, &mut out).unwrap();
        assert_eq!(n, 256);
        assert_eq!(&out[..2], &[0x01, 0xFF]);

        // 255 non-zero bytes: FF block then a 2-byte block.
        let run255: [u8; 255] = core::array::from_fn(|i| (i % 255 + 1) as u8);
        let n = encode(&run255, &mut out).unwrap();
        assert_eq!(n, 257);
        assert_eq!(out[0], 0xFF);
        assert_eq!(&out[255..257], &[0x02, run255[254]]);

        // 254 non-zero bytes then 0x00: FF block, then 01 (the zero), then 01 (empty tail).
        let mut runz = [0u8; 255];
        runz[..254].copy_from_slice(&run254);
        let n = encode(&runz, &mut out).unwrap();
        assert_eq!(n, 257);
        assert_eq!(&out[255..257], &[0x01, 0x01]);

        for data in [&run254[..], &zrun[..], &run255[..], &runz[..]] {
            roundtrip(data);
        }
        for len in [253, 254, 255, 256, 507, 508, 509, 600] {
            let ones = [0x5Au8; 600];
            roundtrip(&ones[..len]);
            let zeros = [0u8; 600];
            assert_eq!(roundtrip(&zeros[..len]), len + 1);
        }
    }

    #[test]
    fn decoder_accepts_trailing_empty_block_after_full_block() {
        let mut enc = [0u8; 256];
        enc[0] = 0xFF;
        for (i, b) in enc[1..255].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        enc[255] = 0x01;
        let mut out = [0u8; 300];
        assert_eq!(decode(&enc, &mut out), Ok(254));
    }

    #[test]
    fn invalid_inputs() {
        let mut out = [0u8; 16];
        assert_eq!(decode(&[], &mut out), Err(CobsError::Invalid));
        assert_eq!(decode(&[0x00], &mut out), Err(CobsError::Invalid));
        assert_eq!(decode(&[0x03, 0x11], &mut out), Err(CobsError::Invalid));
        assert_eq!(decode(&[0x03, 0x11, 0x00], &mut out), Err(CobsError::Invalid));
        assert_eq!(decode(&[0x05, 1, 2, 3, 4], &mut out[..3]), Err(CobsError::OutputTooSmall));
        assert_eq!(decode_in_place(&mut []), Err(CobsError::Invalid));
        assert_eq!(decode_in_place(&mut [0x02]), Err(CobsError::Invalid));
        assert_eq!(decode_in_place(&mut [0x02, 0x01, 0x00]), Err(CobsError::Invalid));
    }

    #[test]
    fn exhaustive_short_inputs_never_panic() {
        // Every 1- and 2-byte input, and every 3-byte input over a small alphabet.
        let alphabet = [0x00, 0x01, 0x02, 0x03, 0xFE, 0xFF];
        let mut out = [0u8; 8];
        for a in 0..=255u8 {
            let _ = decode(&[a], &mut out);
            for b in 0..=255u8 {
                let _ = decode(&[a, b], &mut out);
                let _ = decode_in_place(&mut [a, b]);
            }
        }
        for &a in &alphabet {
            for &b in &alphabet {
                for &c in &alphabet {
                    let _ = decode(&[a, b, c], &mut out[..1]);
                    let _ = decode_in_place(&mut [a, b, c]);
                }
            }
        }
    }
}
