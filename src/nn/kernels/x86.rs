//! x86_64 kernels: AVX2+FMA (8 lanes) and AVX-512F (16 lanes). Each `*_entry` is safe to call
//! only after [`super::Isa::supported`] said so; it asserts the slice bounds the unsafe body
//! relies on.

use std::arch::x86_64::*;

pub(super) fn affine_avx2_entry(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    assert!(wt.len() >= x.len() * y.len() && b.len() >= y.len());
    // SAFETY: selected only after runtime detection of avx2 and fma; bounds asserted above.
    unsafe { affine_avx2(x, wt, b, y) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn affine_avx2(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
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
    // Tail (e.g. the 2 outputs of a CartPole head): a dot product per output, the inputs going
    // round four accumulators so the FMAs are not one dependent chain.
    while o < n_out {
        let mut acc = [b[o], 0.0, 0.0, 0.0];
        let mut i = 0;
        while i + 4 <= n_in {
            for k in 0..4 {
                acc[k] = x[i + k].mul_add(*wp.add((i + k) * n_out + o), acc[k]);
            }
            i += 4;
        }
        while i < n_in {
            acc[0] = x[i].mul_add(*wp.add(i * n_out + o), acc[0]);
            i += 1;
        }
        y[o] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        o += 1;
    }
}

pub(super) fn affine_rows_avx2_entry(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let n_in = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * n_in && y.len() == rows * n_out && wt.len() >= n_in * n_out);
    // SAFETY: selected only after runtime detection of avx2 and fma; bounds asserted above.
    unsafe { affine_rows_avx2(x, rows, n_in, wt, b, y) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn affine_rows_avx2(x: &[f32], rows: usize, n_in: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
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

/// Mask of the first `n.min(16)` lanes.
#[inline]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

pub(super) fn affine_avx512_entry(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    assert!(wt.len() >= x.len() * y.len() && b.len() >= y.len());
    // SAFETY: selected only after runtime detection of avx512f; bounds asserted above.
    unsafe { affine_avx512(x, wt, b, y) }
}

#[target_feature(enable = "avx512f")]
unsafe fn affine_avx512(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = y.len();
    let (wp, bp, yp) = (wt.as_ptr(), b.as_ptr(), y.as_mut_ptr());
    let mut o = 0;
    // 64 outputs at a time: four 16-lane accumulators stay in registers across the input loop.
    while o + 64 <= n_out {
        let mut a0 = _mm512_loadu_ps(bp.add(o));
        let mut a1 = _mm512_loadu_ps(bp.add(o + 16));
        let mut a2 = _mm512_loadu_ps(bp.add(o + 32));
        let mut a3 = _mm512_loadu_ps(bp.add(o + 48));
        for (i, &xi) in x.iter().enumerate() {
            let xv = _mm512_set1_ps(xi);
            let r = wp.add(i * n_out + o);
            a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r.add(16)), a1);
            a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r.add(32)), a2);
            a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r.add(48)), a3);
        }
        _mm512_storeu_ps(yp.add(o), a0);
        _mm512_storeu_ps(yp.add(o + 16), a1);
        _mm512_storeu_ps(yp.add(o + 32), a2);
        _mm512_storeu_ps(yp.add(o + 48), a3);
        o += 64;
    }
    // 16 at a time; the last block masked (masked-off lanes are neither read nor written). The
    // inputs go round four accumulators, so a narrow head (2 outputs of a 256-wide layer) is not
    // one chain of 256 dependent FMAs.
    let n_in = x.len();
    while o < n_out {
        let m = lanes(n_out - o);
        let w = |i: usize| _mm512_maskz_loadu_ps(m, wp.add(i * n_out + o));
        let mut a = [
            _mm512_maskz_loadu_ps(m, bp.add(o)),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
        ];
        let mut i = 0;
        while i + 4 <= n_in {
            for k in 0..4 {
                a[k] = _mm512_fmadd_ps(_mm512_set1_ps(x[i + k]), w(i + k), a[k]);
            }
            i += 4;
        }
        while i < n_in {
            a[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), w(i), a[0]);
            i += 1;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
        _mm512_mask_storeu_ps(yp.add(o), m, sum);
        o += 16;
    }
}

pub(super) fn affine_rows_avx512_entry(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let n_in = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * n_in && y.len() == rows * n_out && wt.len() >= n_in * n_out);
    // SAFETY: selected only after runtime detection of avx512f; bounds asserted above.
    unsafe { affine_rows_avx512(x, rows, n_in, wt, b, y) }
}

#[target_feature(enable = "avx512f")]
unsafe fn affine_rows_avx512(x: &[f32], rows: usize, n_in: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let (wp, bp, xp, yp) = (wt.as_ptr(), b.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let mut r = 0;
    // Four rows at a time: 32 outputs × 4 rows = 8 accumulators; each pair of weight vectors
    // loaded feeds eight FMAs. The last block of 16 outputs is masked.
    while r + 4 <= rows {
        let xr = [xp.add(r * n_in), xp.add((r + 1) * n_in), xp.add((r + 2) * n_in), xp.add((r + 3) * n_in)];
        let mut o = 0;
        while o + 32 <= n_out {
            let (b0, b1) = (_mm512_loadu_ps(bp.add(o)), _mm512_loadu_ps(bp.add(o + 16)));
            let mut acc = [[b0, b1]; 4];
            for i in 0..n_in {
                let w0 = _mm512_loadu_ps(wp.add(i * n_out + o));
                let w1 = _mm512_loadu_ps(wp.add(i * n_out + o + 16));
                for k in 0..4 {
                    let s = _mm512_set1_ps(*xr[k].add(i));
                    acc[k][0] = _mm512_fmadd_ps(s, w0, acc[k][0]);
                    acc[k][1] = _mm512_fmadd_ps(s, w1, acc[k][1]);
                }
            }
            for k in 0..4 {
                _mm512_storeu_ps(yp.add((r + k) * n_out + o), acc[k][0]);
                _mm512_storeu_ps(yp.add((r + k) * n_out + o + 16), acc[k][1]);
            }
            o += 32;
        }
        while o < n_out {
            let m = lanes(n_out - o);
            let mut acc = [_mm512_maskz_loadu_ps(m, bp.add(o)); 4];
            for i in 0..n_in {
                let w0 = _mm512_maskz_loadu_ps(m, wp.add(i * n_out + o));
                for k in 0..4 {
                    acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(*xr[k].add(i)), w0, acc[k]);
                }
            }
            for k in 0..4 {
                _mm512_mask_storeu_ps(yp.add((r + k) * n_out + o), m, acc[k]);
            }
            o += 16;
        }
        r += 4;
    }
    while r < rows {
        affine_avx512(&x[r * n_in..(r + 1) * n_in], wt, b, &mut y[r * n_out..(r + 1) * n_out]);
        r += 1;
    }
}

pub(super) fn sum_avx2_entry(v: &[f32]) -> f32 {
    // SAFETY: selected only after runtime detection of avx2; reads stay inside `v`.
    unsafe { sum_avx2(v) }
}

#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(v: &[f32]) -> f32 {
    let (p, n) = (v.as_ptr(), v.len());
    let mut a = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for k in 0..4 {
            a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p.add(i + 8 * k)));
        }
        i += 32;
    }
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
    lanes.iter().sum::<f32>() + v[i..].iter().sum::<f32>()
}

pub(super) fn sum_avx512_entry(v: &[f32]) -> f32 {
    // SAFETY: selected only after runtime detection of avx512f; reads stay inside `v`.
    unsafe { sum_avx512(v) }
}

#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(v: &[f32]) -> f32 {
    let (p, n) = (v.as_ptr(), v.len());
    let mut a = [_mm512_setzero_ps(); 8];
    let mut i = 0;
    while i + 128 <= n {
        for k in 0..8 {
            a[k] = _mm512_add_ps(a[k], _mm512_loadu_ps(p.add(i + 16 * k)));
        }
        i += 128;
    }
    for k in 4..8 {
        a[k - 4] = _mm512_add_ps(a[k - 4], a[k]);
    }
    while i < n {
        a[0] = _mm512_add_ps(a[0], _mm512_maskz_loadu_ps(lanes(n - i), p.add(i)));
        i += 16;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])))
}
