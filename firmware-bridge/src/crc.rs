//! CRC-32C (Castagnoli), the frame checksum, and the layout hash built on it.
//!
//! Parameters (CRC catalogue name "CRC-32/ISCSI"): reflected polynomial `0x82F63B78`, initial
//! value `0xFFFFFFFF`, final XOR `0xFFFFFFFF`, input and output reflected. The check value of
//! the ASCII string `"123456789"` is `0xE3069283`.

/// Reflected CRC-32C polynomial.
pub const CRC32C_POLY: u32 = 0x82F6_3B78;

/// CRC-32C of ASCII `"123456789"`; the standard self-test value.
pub const CRC32C_CHECK: u32 = 0xE306_9283;

/// 256-entry lookup table (1 KiB), computed at compile time.
const TABLE: [u32; 256] = make_table();

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ CRC32C_POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Incremental CRC-32C, for checksumming data that is not in one slice.
///
/// `Crc32c::new().update(a).update(b).finish() == crc32c(a ++ b)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32c {
    state: u32,
}

impl Crc32c {
    /// A fresh computation (state `0xFFFFFFFF`).
    pub const fn new() -> Self {
        Self { state: 0xFFFF_FFFF }
    }

    /// Feeds `bytes` into the computation.
    #[must_use]
    pub const fn update(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            let idx = ((self.state ^ bytes[i] as u32) & 0xFF) as usize;
            self.state = (self.state >> 8) ^ TABLE[idx];
            i += 1;
        }
        self
    }

    /// The CRC of everything fed so far (final XOR applied; the computation is not consumed).
    pub const fn finish(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32C of `bytes` (see the module docs for the parameters). Total: never panics.
pub const fn crc32c(bytes: &[u8]) -> u32 {
    Crc32c::new().update(bytes).finish()
}

/// The layout hash exchanged in `Hello`: identifies the names and order of the signals the
/// firmware sends and of the actions it accepts.
///
/// Defined as CRC-32C over: each signal name's UTF-8 bytes followed by one `0x00`, then one
/// `0x01` byte, then each action name's UTF-8 bytes followed by one `0x00`. Order matters.
/// Names should not contain `0x00` (they would make distinct layouts hash alike).
pub fn layout_hash(signals: &[&str], actions: &[&str]) -> u32 {
    let mut crc = Crc32c::new();
    for name in signals {
        crc = crc.update(name.as_bytes()).update(&[0x00]);
    }
    crc = crc.update(&[0x01]);
    for name in actions {
        crc = crc.update(name.as_bytes()).update(&[0x00]);
    }
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), CRC32C_CHECK);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn bitwise_reference_agrees() {
        fn bitwise(bytes: &[u8]) -> u32 {
            let mut crc = 0xFFFF_FFFFu32;
            for &b in bytes {
                crc ^= b as u32;
                for _ in 0..8 {
                    crc = if crc & 1 != 0 { (crc >> 1) ^ CRC32C_POLY } else { crc >> 1 };
                }
            }
            !crc
        }
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in [0, 1, 2, 31, 32, 33, 255, 300] {
            assert_eq!(crc32c(&data[..len]), bitwise(&data[..len]));
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let a = b"12345";
        let b = b"6789";
        assert_eq!(Crc32c::new().update(a).update(b).finish(), CRC32C_CHECK);
    }

    #[test]
    fn layout_hash_is_crc_of_the_defined_bytes() {
        let bytes = b"x\0x_dot\0theta\0theta_dot\0\x01force\0";
        assert_eq!(layout_hash(&["x", "x_dot", "theta", "theta_dot"], &["force"]), crc32c(bytes));
        // Moving a name across the signal/action boundary changes the hash.
        assert_ne!(layout_hash(&["a", "b"], &[]), layout_hash(&["a"], &["b"]));
        assert_eq!(layout_hash(&[], &[]), crc32c(&[0x01]));
    }
}
