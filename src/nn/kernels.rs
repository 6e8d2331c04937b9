//! Batch-1 dense kernels for the control path, chosen once at run time.
//!
//! The one operation is the affine map of a dense layer,
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
//! Dispatch: AVX2+FMA on x86_64 when the CPU has it, otherwise a portable scalar loop (which LLVM
//! vectorises with NEON on aarch64, where NEON is baseline). AVX-512 is not implemented: no
//! machine here has it to test on.

use std::sync::OnceLock;

/// Signature of an affine kernel: `(x, wt, b, y)` with `wt.len() == x.len() * y.len()`.
pub type AffineFn = fn(&[f32], &[f32], &[f32], &mut [f32]);
/// Signature of a many-row affine kernel: `(x, rows, wt, b, y)`, `x` `[rows, n_in]`, `y` `[rows, n_out]`.
pub type AffineRowsFn = fn(&[f32], usize, &[f32], &[f32], &mut [f32]);

/// Which instruction set the kernels run on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx2Fma,
    Scalar,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2Fma => "avx2+fma",
            Isa::Scalar => "scalar",
        }
    }
}

static SELECTED: OnceLock<(Isa, AffineFn, AffineRowsFn)> = OnceLock::new();

fn select() -> (Isa, AffineFn, AffineRowsFn) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return (Isa::Avx2Fma, affine_avx2_entry, affine_rows_avx2_entry);
        }
    }
    (Isa::Scalar, affine_scalar, affine_rows_scalar)
}

/// The instruction set chosen for this CPU.
pub fn isa() -> Isa {
    SELECTED.get_or_init(select).0
}

/// `y = b + x · Wt` with the fastest kernel this CPU supports.
#[inline]
pub fn affine(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    debug_assert_eq!(wt.len(), x.len() * y.len());
    debug_assert_eq!(b.len(), y.len());
    (SELECTED.get_or_init(select).1)(x, wt, b, y)
}

/// `y[r] = b + x[r] · Wt` for each of `rows` inputs, with the fastest kernel this CPU supports.
#[inline]
pub fn affine_rows(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len() % rows.max(1), 0);
    debug_assert_eq!(y.len(), rows * b.len());
    (SELECTED.get_or_init(select).2)(x, rows, wt, b, y)
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

#[cfg(target_arch = "x86_64")]
fn affine_avx2_entry(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    assert!(wt.len() >= x.len() * y.len() && b.len() >= y.len());
    // SAFETY: selected only after runtime detection of avx2 and fma; bounds asserted above.
    unsafe { affine_avx2(x, wt, b, y) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_avx2(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n_out = y.len();
    let n_in = x.len();
    let wp = wt.as_ptr();
    let yp = y.as_mut_ptr();
    let mut o = 0;
    // 32 outputs at a time: four accumulators stay in registers across the whole input loop.
    while o + 32 <= n_out {
        let mut a0 = _mm256_loadu_ps(b.as_ptr().add(o));
        let mut a1 = _mm256_loadu_ps(b.as_ptr().add(o + 8));
        let mut a2 = _mm256_loadu_ps(b.as_ptr().add(o + 16));
        let mut a3 = _mm256_loadu_ps(b.as_ptr().add(o + 24));
        for (i, &xi) in x.iter().enumerate() {
            let xv = _mm256_set1_ps(xi);
            let r = wp.add(i * n_out + o);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r.add(8)), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r.add(16)), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r.add(24)), a3);
        }
        _mm256_storeu_ps(yp.add(o), a0);
        _mm256_storeu_ps(yp.add(o + 8), a1);
        _mm256_storeu_ps(yp.add(o + 16), a2);
        _mm256_storeu_ps(yp.add(o + 24), a3);
        o += 32;
    }
    while o + 8 <= n_out {
        let mut a0 = _mm256_loadu_ps(b.as_ptr().add(o));
        for (i, &xi) in x.iter().enumerate() {
            let xv = _mm256_set1_ps(xi);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wp.add(i * n_out + o)), a0);
        }
        _mm256_storeu_ps(yp.add(o), a0);
        o += 8;
    }
    // Tail (e.g. the 2 outputs of a CartPole head): a dot product per output.
    while o < n_out {
        let mut acc = b[o];
        for i in 0..n_in {
            acc = x[i].mul_add(*wp.add(i * n_out + o), acc);
        }
        y[o] = acc;
        o += 1;
    }
}

#[cfg(target_arch = "x86_64")]
fn affine_rows_avx2_entry(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let n_in = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * n_in && y.len() == rows * n_out && wt.len() >= n_in * n_out);
    // SAFETY: selected only after runtime detection of avx2 and fma; bounds asserted above.
    unsafe { affine_rows_avx2(x, rows, n_in, wt, b, y) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_rows_avx2(x: &[f32], rows: usize, n_in: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n_out = b.len();
    let (wp, bp, xp, yp) = (wt.as_ptr(), b.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let mut r = 0;
    // Four rows at a time: 16 outputs × 4 rows = 8 accumulators; each pair of weight vectors
    // loaded feeds eight FMAs.
    while r + 4 <= rows {
        let xr = [xp.add(r * n_in), xp.add((r + 1) * n_in), xp.add((r + 2) * n_in), xp.add((r + 3) * n_in)];
        let mut o = 0;
        while o + 16 <= n_out {
            let (b0, b1) = (_mm256_loadu_ps(bp.add(o)), _mm256_loadu_ps(bp.add(o + 8)));
            let mut acc = [[b0, b1]; 4];
            for i in 0..n_in {
                let w0 = _mm256_loadu_ps(wp.add(i * n_out + o));
                let w1 = _mm256_loadu_ps(wp.add(i * n_out + o + 8));
                for k in 0..4 {
                    let s = _mm256_set1_ps(*xr[k].add(i));
                    acc[k][0] = _mm256_fmadd_ps(s, w0, acc[k][0]);
                    acc[k][1] = _mm256_fmadd_ps(s, w1, acc[k][1]);
                }
            }
            for k in 0..4 {
                _mm256_storeu_ps(yp.add((r + k) * n_out + o), acc[k][0]);
                _mm256_storeu_ps(yp.add((r + k) * n_out + o + 8), acc[k][1]);
            }
            o += 16;
        }
        while o + 8 <= n_out {
            let mut acc = [_mm256_loadu_ps(bp.add(o)); 4];
            for i in 0..n_in {
                let w0 = _mm256_loadu_ps(wp.add(i * n_out + o));
                for k in 0..4 {
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(*xr[k].add(i)), w0, acc[k]);
                }
            }
            for k in 0..4 {
                _mm256_storeu_ps(yp.add((r + k) * n_out + o), acc[k]);
            }
            o += 8;
        }
        while o < n_out {
            for k in 0..4 {
                let mut a = *bp.add(o);
                for i in 0..n_in {
                    a = (*xr[k].add(i)).mul_add(*wp.add(i * n_out + o), a);
                }
                *yp.add((r + k) * n_out + o) = a;
            }
            o += 1;
        }
        r += 4;
    }
    while r < rows {
        affine_avx2(&x[r * n_in..(r + 1) * n_in], wt, b, &mut y[r * n_out..(r + 1) * n_out]);
        r += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_kernel_matches_scalar() {
        let mut seed = 12345u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(n_in, n_out) in &[(4, 64), (64, 64), (64, 2), (3, 37), (17, 8), (1, 1), (5, 100)] {
            let x: Vec<f32> = (0..n_in).map(|_| rnd()).collect();
            let wt: Vec<f32> = (0..n_in * n_out).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..n_out).map(|_| rnd()).collect();
            let mut y1 = vec![0.0; n_out];
            let mut y2 = vec![0.0; n_out];
            affine_scalar(&x, &wt, &b, &mut y1);
            affine(&x, &wt, &b, &mut y2);
            for (a, b) in y1.iter().zip(&y2) {
                assert!((a - b).abs() < 1e-5, "{n_in}x{n_out}: {a} vs {b} on {}", isa().name());
            }
        }
    }

    #[test]
    fn dispatched_many_row_kernel_matches_scalar() {
        let mut seed = 777u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(rows, n_in, n_out) in &[
            (16, 3, 64),
            (16, 64, 64),
            (16, 64, 1),
            (5, 4, 37),
            (3, 7, 16),
            (9, 17, 8),
            (1, 5, 100),
            (0, 3, 8),
        ] {
            let x: Vec<f32> = (0..rows * n_in).map(|_| rnd()).collect();
            let wt: Vec<f32> = (0..n_in * n_out).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..n_out).map(|_| rnd()).collect();
            let mut y1 = vec![0.0; rows * n_out];
            let mut y2 = vec![0.0; rows * n_out];
            affine_rows_scalar(&x, rows, &wt, &b, &mut y1);
            affine_rows(&x, rows, &wt, &b, &mut y2);
            for (a, b) in y1.iter().zip(&y2) {
                assert!((a - b).abs() < 1e-5, "{rows}x{n_in}x{n_out}: {a} vs {b} on {}", isa().name());
            }
        }
    }
}
