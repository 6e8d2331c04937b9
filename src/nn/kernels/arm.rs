//! aarch64 kernels: NEON (4 lanes; part of the aarch64 baseline, so every aarch64 robot computer
//! has it). Each `*_entry` asserts the slice bounds the unsafe body relies on.

use std::arch::aarch64::*;

pub(super) fn affine_neon_entry(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    assert!(wt.len() >= x.len() * y.len() && b.len() >= y.len());
    // SAFETY: selected only after runtime detection of neon; bounds asserted above.
    unsafe { affine_neon(x, wt, b, y) }
}

#[target_feature(enable = "neon")]
unsafe fn affine_neon(x: &[f32], wt: &[f32], b: &[f32], y: &mut [f32]) {
    let (n_in, n_out) = (x.len(), y.len());
    let (wp, bp, yp) = (wt.as_ptr(), b.as_ptr(), y.as_mut_ptr());
    let mut o = 0;
    // 32 outputs at a time: eight 4-lane accumulators, enough independent FMAs to hide their
    // latency on the two FMA pipes of a Cortex-A7x.
    while o + 32 <= n_out {
        let mut a = [vdupq_n_f32(0.0); 8];
        for k in 0..8 {
            a[k] = vld1q_f32(bp.add(o + 4 * k));
        }
        for (i, &xi) in x.iter().enumerate() {
            let r = wp.add(i * n_out + o);
            for k in 0..8 {
                a[k] = vfmaq_n_f32(a[k], vld1q_f32(r.add(4 * k)), xi);
            }
        }
        for k in 0..8 {
            vst1q_f32(yp.add(o + 4 * k), a[k]);
        }
        o += 32;
    }
    while o + 4 <= n_out {
        let mut a0 = vld1q_f32(bp.add(o));
        for (i, &xi) in x.iter().enumerate() {
            a0 = vfmaq_n_f32(a0, vld1q_f32(wp.add(i * n_out + o)), xi);
        }
        vst1q_f32(yp.add(o), a0);
        o += 4;
    }
    // Tail (e.g. the 2 outputs of a CartPole head): a dot product per output.
    while o < n_out {
        let mut acc = *bp.add(o);
        for i in 0..n_in {
            acc = x[i].mul_add(*wp.add(i * n_out + o), acc);
        }
        *yp.add(o) = acc;
        o += 1;
    }
}

pub(super) fn affine_rows_neon_entry(x: &[f32], rows: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let n_in = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * n_in && y.len() == rows * n_out && wt.len() >= n_in * n_out);
    // SAFETY: selected only after runtime detection of neon; bounds asserted above.
    unsafe { affine_rows_neon(x, rows, n_in, wt, b, y) }
}

#[target_feature(enable = "neon")]
unsafe fn affine_rows_neon(x: &[f32], rows: usize, n_in: usize, wt: &[f32], b: &[f32], y: &mut [f32]) {
    let n_out = b.len();
    let (wp, bp, xp, yp) = (wt.as_ptr(), b.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let mut r = 0;
    // Four rows at a time: 8 outputs × 4 rows = 8 accumulators; each pair of weight vectors
    // loaded feeds eight FMAs.
    while r + 4 <= rows {
        let xr = [xp.add(r * n_in), xp.add((r + 1) * n_in), xp.add((r + 2) * n_in), xp.add((r + 3) * n_in)];
        let mut o = 0;
        while o + 8 <= n_out {
            let (b0, b1) = (vld1q_f32(bp.add(o)), vld1q_f32(bp.add(o + 4)));
            let mut acc = [[b0, b1]; 4];
            for i in 0..n_in {
                let w0 = vld1q_f32(wp.add(i * n_out + o));
                let w1 = vld1q_f32(wp.add(i * n_out + o + 4));
                for k in 0..4 {
                    let s = *xr[k].add(i);
                    acc[k][0] = vfmaq_n_f32(acc[k][0], w0, s);
                    acc[k][1] = vfmaq_n_f32(acc[k][1], w1, s);
                }
            }
            for k in 0..4 {
                vst1q_f32(yp.add((r + k) * n_out + o), acc[k][0]);
                vst1q_f32(yp.add((r + k) * n_out + o + 4), acc[k][1]);
            }
            o += 8;
        }
        while o + 4 <= n_out {
            let mut acc = [vld1q_f32(bp.add(o)); 4];
            for i in 0..n_in {
                let w0 = vld1q_f32(wp.add(i * n_out + o));
                for k in 0..4 {
                    acc[k] = vfmaq_n_f32(acc[k], w0, *xr[k].add(i));
                }
            }
            for k in 0..4 {
                vst1q_f32(yp.add((r + k) * n_out + o), acc[k]);
            }
            o += 4;
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
        affine_neon(&x[r * n_in..(r + 1) * n_in], wt, b, &mut y[r * n_out..(r + 1) * n_out]);
        r += 1;
    }
}

pub(super) fn sum_neon_entry(v: &[f32]) -> f32 {
    // SAFETY: selected only after runtime detection of neon; reads stay inside `v`.
    unsafe { sum_neon(v) }
}

#[target_feature(enable = "neon")]
unsafe fn sum_neon(v: &[f32]) -> f32 {
    let (p, n) = (v.as_ptr(), v.len());
    let mut a = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for k in 0..4 {
            a[k] = vaddq_f32(a[k], vld1q_f32(p.add(i + 4 * k)));
        }
        i += 16;
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]))) + v[i..].iter().sum::<f32>()
}
