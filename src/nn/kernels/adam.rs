//! The Adam step over one parameter slice, compiled for each instruction set (the rest of the
//! crate is built for the x86-64 baseline, SSE2, which would run it four lanes at a time):
//!
//! ```text
//! m ← β1·m + (1−β1)·g      v ← β2·v + (1−β2)·g²
//! θ ← θ − lr · (m / c1) / (√(v / c2) + ε)          c1 = 1−β1^t, c2 = 1−β2^t
//! ```
//!
//! Moments below `TINY` are set to 0: a parameter whose gradient stays 0 (a dead ReLU) would
//! otherwise decay its moments into subnormal floats, which the CPU computes about a hundred
//! times more slowly, and its step (below lr·1e-30/ε) is nothing.

/// The constants of one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 − β1^t`, `1 − β2^t`.
    pub c1: f32,
    pub c2: f32,
}

/// Signature of an instruction set's Adam kernel: `(step, θ, g, m, v)`, all the same length.
pub type AdamFn = fn(&AdamStep, &mut [f32], &[f32], &mut [f32], &mut [f32]);

const TINY: f32 = 1e-30;

/// The step, written once; zipped slices, so the loop has no bounds checks and vectorises.
#[inline(always)]
fn body(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
    let (b1, b2) = (k.beta1, k.beta2);
    let (step, inv_c2) = (k.lr / k.c1, 1.0 / k.c2);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mm = b1 * *m + (1.0 - b1) * g;
        let vv = b2 * *v + (1.0 - b2) * g * g;
        *m = if mm.abs() < TINY { 0.0 } else { mm };
        *v = if vv < TINY { 0.0 } else { vv };
        *p -= step * *m / ((*v * inv_c2).sqrt() + k.eps);
    }
}

pub(super) fn adam_scalar(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    body(k, p, g, m, v)
}

#[cfg(target_arch = "x86_64")]
pub(super) fn adam_avx512_entry(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    #[target_feature(enable = "avx512f")]
    unsafe fn adam_avx512(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        body(k, p, g, m, v)
    }
    // SAFETY: selected only after run-time detection of avx512f.
    unsafe { adam_avx512(k, p, g, m, v) }
}

#[cfg(target_arch = "x86_64")]
pub(super) fn adam_avx2_entry(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    #[target_feature(enable = "avx2,fma")]
    unsafe fn adam_avx2(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        body(k, p, g, m, v)
    }
    // SAFETY: selected only after run-time detection of avx2 and fma.
    unsafe { adam_avx2(k, p, g, m, v) }
}

#[cfg(test)]
mod tests {
    use super::super::available;
    use super::*;

    /// Every instruction set's step against the formula in f64, including a parameter whose
    /// moments fall below TINY (set to 0) and a zero gradient.
    #[test]
    fn every_adam_kernel_this_cpu_has_matches_the_formula() {
        let k = AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            c1: 1.0 - 0.9f32.powi(7),
            c2: 1.0 - 0.999f32.powi(7),
        };
        let n = 37;
        let g0: Vec<f32> = (0..n).map(|i| if i == 5 { 0.0 } else { ((i as f32) * 0.7).sin() }).collect();
        let m0: Vec<f32> =
            (0..n).map(|i| if i == 5 { 1e-31 } else { ((i as f32) * 0.3).cos() * 0.1 }).collect();
        let v0: Vec<f32> = (0..n).map(|i| if i == 5 { 1e-31 } else { 0.01 + (i as f32) * 1e-3 }).collect();
        let p0: Vec<f32> = (0..n).map(|i| (i as f32) * 0.01 - 0.2).collect();
        for isa in available() {
            let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
            (isa.kernels().unwrap().adam)(&k, &mut p, &g0, &mut m, &mut v);
            for i in 0..n {
                let (b1, b2, g) = (0.9f64, 0.999f64, g0[i] as f64);
                let mut mm = b1 * m0[i] as f64 + (1.0 - b1) * g;
                let mut vv = b2 * v0[i] as f64 + (1.0 - b2) * g * g;
                if mm.abs() < 1e-30 {
                    mm = 0.0;
                }
                if vv < 1e-30 {
                    vv = 0.0;
                }
                let want = p0[i] as f64 - 1e-3 * (mm / k.c1 as f64) / ((vv / k.c2 as f64).sqrt() + 1e-8);
                assert!((p[i] as f64 - want).abs() < 1e-6, "{}: θ[{i}] {} vs {want}", isa.name(), p[i]);
                assert!(
                    (m[i] as f64 - mm).abs() < 1e-6 && (v[i] as f64 - vv).abs() < 1e-6,
                    "{}: moments",
                    isa.name()
                );
            }
            assert_eq!(
                (m[5], v[5], p[5]),
                (0.0, 0.0, p0[5]),
                "{}: subnormal-bound moments are flushed",
                isa.name()
            );
        }
    }
}
