//! Dense kernels, chosen once at run time: batch 1 for the control path, and the learner's GEMM
//! ([`mod@gemm`]).
//!
//! The control path's one operation is the affine map of a dense layer,
//!
//! ```text
//! y[o] = b[o] + Σ_i x[i] · Wt[i, o]        Wt row-major, shape [n_in, n_out]
//! ```
//!
//! computed as a sequence of `y += x[i] · Wt[i, :]` updates, so the SIMD lanes run along the
//! outputs and any input width (CartPole has 4) uses full vectors. At batch 1 the cost is reading
//! `Wt` once from cache. The kernels never allocate.
//!
//! [`affine_rows`] does the same for several inputs at once (the sampled actor's K candidates):
//! each weight vector loaded serves four rows.
//!
//! Dispatch, once at run time, to the best of four implementations this CPU has, in one
//! portable binary: AVX-512F on x86_64 (16 lanes; masked loads and stores for the tail),
//! AVX2+FMA (8 lanes), NEON on aarch64 (4 lanes; baseline there), and a portable scalar loop.
//! Each is tested against the scalar one ([`available`] lists what this CPU can run, and the
//! tests run every entry). `RESQ_KERNELS=scalar|avx2|avx512|neon` forces one (for measurements;
//! refused if the CPU lacks it).

use std::sync::OnceLock;

/// Signature of an affine kernel: `(x, wt, b, y)` with `wt.len() == x.len() * y.len()`.
pub type AffineFn = fn(&[f32], &[f32], &[f32], &mut [f32]);
/// Signature of a many-row affine kernel: `(x, rows, wt, b, y)`, `x` `[rows, n_in]`, `y` `[rows, n_out]`.
pub type AffineRowsFn = fn(&[f32], usize, &[f32], &[f32], &mut [f32]);
/// Signature of [`sum`]: the sum of a slice, reading it at the widest vector width.
pub type SumFn = fn(&[f32]) -> f32;

/// An instruction set the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
    Neon,
    Scalar,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Scalar];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }

    /// Whether this CPU can run the kernels for `self`.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Isa::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The kernels for `self`, if this CPU can run them.
    pub fn kernels(self) -> Option<Kernels> {
        if !self.supported() {
            return None;
        }
        let k = |affine, rows, sum, gemm, adam| Some(Kernels { affine, rows, sum, gemm, adam });
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => k(
                x86::affine_avx512_entry,
                x86::affine_rows_avx512_entry,
                x86::sum_avx512_entry,
                gemm::gemm_avx512_entry,
                adam::adam_avx512_entry,
            ),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => k(
                x86::affine_avx2_entry,
                x86::affine_rows_avx2_entry,
                x86::sum_avx2_entry,
                gemm::gemm_avx2_entry,
                adam::adam_avx2_entry,
            ),
            #[cfg(target_arch = "aarch64")]
            // NEON is the aarch64 baseline: the portable Adam loop already uses it.
            Isa::Neon => k(
                arm::affine_neon_entry,
                arm::affine_rows_neon_entry,
                arm::sum_neon_entry,
                gemm::gemm_neon_entry,
                adam::adam_scalar,
            ),
            Isa::Scalar => {
                k(affine_scalar, affine_rows_scalar, sum_scalar, gemm::gemm_scalar, adam::adam_scalar)
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// One instruction set's kernels.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub affine: AffineFn,
    pub rows: AffineRowsFn,
    pub sum: SumFn,
    pub gemm: gemm::GemmFn,
    pub adam: adam::AdamFn,
}

/// The instruction sets this CPU can run, best first (scalar always last).
pub fn available() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.supported()).collect()
}

static SELECTED: OnceLock<(Isa, Kernels)> = OnceLock::new();

fn select() -> (Isa, Kernels) {
    let forced = std::env::var("RESQ_KERNELS").ok().filter(|s| !s.is_empty());
    let isa = match forced {
        Some(name) => {
            let want =
                Isa::ALL.into_iter().find(|i| i.name() == name || i.name().split('+').next() == Some(&name));
            match want {
                Some(i) if i.supported() => i,
                _ => {
                    let names: Vec<_> = available().iter().map(|i| i.name()).collect();
                    log::warn!(
                        "RESQ_KERNELS={name}: this CPU cannot run it (it can run {}); using {}",
                        names.join(", "),
                        available()[0].name()
                    );
                    available()[0]
                }
            }
        }
        None => available()[0],
    };
    (isa, isa.kernels().expect("a supported instruction set has kernels"))
}

/// The instruction set chosen for this CPU.
pub fn isa() -> Isa {
    SELECTED.get_or_init(select).0
}

fn selected() -> &'static Kernels {
    &SELECTED.get_or_init(select).1
}

/// `y = b + x · Wt` with the fastest kernel this CPU supports.
#[inline]
pub fn affine(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    debug_assert_eq!(wt.len(), x.len() * y.len());
    debug_assert_eq!(b.len(), y.len());
    (SELECTED.get_or_init(select).1.affine)(x, wt, b, y)
}

/// `y[r] = b + x[r] · Wt` for each of `rows` inputs, with the fastest kernel this CPU supports.
#[inline]
pub fn affine_rows(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len() % rows.max(1), 0);
    debug_assert_eq!(y.len(), rows * b.len());
    (SELECTED.get_or_init(select).1.rows)(x, rows, wt, b, y)
}

/// One Adam step over a parameter slice ([`adam`]'s formula), with the dispatched instruction set.
pub fn adam_step(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    (selected().adam)(k, p, g, m, v)
}

/// `Σ v`, with the dispatched instruction set: what reading `v` from cache at full vector width
/// costs, with one add per vector. `resq bench` takes it as the floor of a batch-1 forward pass,
/// which must read every weight once (the FMAs ride along with the loads).
pub fn sum(v: &[f32]) -> f32 {
    (SELECTED.get_or_init(select).1.sum)(v)
}

/// Portable sum (eight partial sums, so it is not one dependent chain).
pub fn sum_scalar(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Portable many-row kernel: the one-row kernel per row.
pub fn affine_rows_scalar(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let (n_in, n_out) = (x.len() / rows.max(1), b.len());
    for r in 0..rows {
        affine_scalar(&x[r * n_in..(r + 1) * n_in], wt, b, &mut y[r * n_out..(r + 1) * n_out]);
    }
}

/// Portable reference kernel.
pub fn affine_scalar(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = y.len();
    y.copy_from_slice(b);
    for (i, &xi) in x.iter().enumerate() {
        let row = &wt[i * n_out..(i + 1) * n_out];
        for (yo, &w) in y.iter_mut().zip(row) {
            *yo += xi * w;
        }
    }
}

pub mod adam;
#[cfg(target_arch = "aarch64")]
mod arm;
pub mod gemm;
pub use adam::AdamStep;
pub use gemm::{gemm, Init};
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    /// Shapes that exercise every block size and tail of every implementation (64/32/16/8/4
    /// outputs at a time, masked or scalar tails, 4-row blocks and leftover rows).
    const ONE_ROW: [(usize, usize); 11] = [
        (4, 64),
        (64, 64),
        (64, 2),
        (3, 37),
        (17, 8),
        (1, 1),
        (5, 100),
        (256, 256),
        (7, 81),
        (2, 3),
        (9, 127),
    ];
    const MANY_ROWS: [(usize, usize, usize); 11] = [
        (16, 3, 64),
        (16, 64, 64),
        (16, 64, 1),
        (5, 4, 37),
        (3, 7, 16),
        (9, 17, 8),
        (1, 5, 100),
        (0, 3, 8),
        (7, 13, 45),
        (8, 6, 33),
        (6, 2, 5),
    ];

    #[test]
    fn every_kernel_this_cpu_has_matches_scalar() {
        let mut rnd = rng(12345);
        let isas = available();
        assert_eq!(isas.last(), Some(&Isa::Scalar));
        assert!(isas.contains(&isa()), "the dispatched kernel is one this CPU has");
        eprintln!("kernels on this CPU: {:?} (dispatched: {})", isas, isa().name());
        for i in isas {
            let one = i.kernels().unwrap().affine;
            for &(n_in, n_out) in &ONE_ROW {
                let x: Vec<f32> = (0..n_in).map(|_| rnd()).collect();
                let wt: Vec<f32> = (0..n_in * n_out).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..n_out).map(|_| rnd()).collect();
                let mut y1 = vec![0.0; n_out];
                let mut y2 = vec![f32::NAN; n_out];
                affine_scalar(&x, &wt, &b, &mut y1);
                one(&x, &wt, &b, &mut y2);
                for (a, b) in y1.iter().zip(&y2) {
                    assert!((a - b).abs() < 1e-5, "{n_in}x{n_out}: {a} vs {b} on {}", i.name());
                }
            }
        }
    }

    #[test]
    fn every_many_row_kernel_this_cpu_has_matches_scalar() {
        let mut rnd = rng(777);
        for i in available() {
            let many = i.kernels().unwrap().rows;
            for &(rows, n_in, n_out) in &MANY_ROWS {
                let x: Vec<f32> = (0..rows * n_in).map(|_| rnd()).collect();
                let wt: Vec<f32> = (0..n_in * n_out).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..n_out).map(|_| rnd()).collect();
                let mut y1 = vec![0.0; rows * n_out];
                let mut y2 = vec![f32::NAN; rows * n_out];
                affine_rows_scalar(&x, rows, &wt, &b, &mut y1);
                many(&x, rows, &wt, &b, &mut y2);
                for (a, b) in y1.iter().zip(&y2) {
                    assert!((a - b).abs() < 1e-5, "{rows}x{n_in}x{n_out}: {a} vs {b} on {}", i.name());
                }
            }
        }
    }

    #[test]
    fn every_sum_kernel_this_cpu_has_matches_scalar() {
        let mut rnd = rng(5);
        for i in available() {
            for n in [0usize, 1, 7, 16, 63, 64, 65, 1000, 4099] {
                let v: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let (a, b) = (sum_scalar(&v), (i.kernels().unwrap().sum)(&v));
                assert!((a - b).abs() < 1e-4, "{n}: {a} vs {b} on {}", i.name());
            }
        }
    }

    /// The kernels read exactly `wt[..n_in·n_out]` and write exactly `y`: a weight slice that is
    /// a window of a larger buffer (as layers in one parameter vector are) is used correctly, and
    /// nothing past `y` changes.
    #[test]
    fn kernels_stay_inside_their_slices() {
        let mut rnd = rng(99);
        for i in available() {
            let Kernels { affine: one, rows: many, .. } = i.kernels().unwrap();
            for &(rows, n_in, n_out) in &[(1usize, 5usize, 19usize), (5, 3, 21), (4, 2, 17)] {
                let x: Vec<f32> = (0..rows * n_in).map(|_| rnd()).collect();
                let wt: Vec<f32> = (0..n_in * n_out).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..n_out).map(|_| rnd()).collect();
                let mut y = vec![7.0f32; rows * n_out + 16];
                let mut want = vec![0.0; rows * n_out];
                affine_rows_scalar(&x, rows, &wt, &b, &mut want);
                if rows == 1 {
                    one(&x, &wt, &b, &mut y[..n_out]);
                } else {
                    many(&x, rows, &wt, &b, &mut y[..rows * n_out]);
                }
                assert!(y[rows * n_out..].iter().all(|&v| v == 7.0), "{} wrote past y", i.name());
                for (a, b) in want.iter().zip(&y) {
                    assert!((a - b).abs() < 1e-5, "{}: {a} vs {b}", i.name());
                }
            }
        }
    }
}
