//! Single-thread SGEMM for the learner's batched products, with no allocation:
//!
//! ```text
//! C ← A·B,   C ← 1·bᵀ + A·B (the bias row b added to every row),   or   C ← max(0, 1·bᵀ + A·B)
//! ```
//!
//! `A` (m×k), `B` (k×n) and `C` (m×n) are ndarray views with any strides, so a transposed
//! operand (`x.t()`, `w.t()`) is passed as it is.
//!
//! Method: `B` is packed into column panels NR wide (zero-padded) in a buffer the caller owns
//! ([`pack_len`] floats), and an MR×NR register-blocked micro-kernel runs each panel against
//! MR rows of `A` at a time (one broadcast of `A` per row and inner index, NR/lanes vector FMAs
//! per broadcast, MR·NR accumulators held in registers for the whole inner loop). The panel
//! stays in L1 while every row block of `A` streams past it.
//!
//! A narrow product (n < NR/2, the 2 outputs of a CartPole head) would waste most of every
//! panel, so it is computed another way: as dot products along `k` (lanes along the inner index)
//! when `A`'s rows are contiguous, and otherwise as `Cᵀ = Bᵀ·Aᵀ`, whose outputs are wide.
//!
//! The kernels are written once, generic over a vector type (`Simd`: AVX-512F, AVX2+FMA,
//! NEON, or a plain `f32`), MR and the vectors per row; each instruction set instantiates them
//! inside a function compiled for it (`#[target_feature]`): AVX-512F 12×32, AVX2+FMA 6×16, NEON
//! 8×8, scalar 4×4. The accumulators are arrays of the vector type, not of `f32`: an array of
//! MR·NR floats is more pieces than the compiler will split into registers, and the kernel then
//! runs from memory at a third of the speed. [`super::Kernels::gemm`] is the selected one; every
//! one is tested against a plain triple loop, on shapes that reach every tail.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayView2, ArrayViewMut2};

/// The widest panel any instruction set uses (AVX-512's 32 columns).
const MAX_NR: usize = 32;

/// What `C` starts from.
#[derive(Clone, Copy, Debug)]
pub enum Init<'a> {
    /// `C ← A·B`.
    Overwrite,
    /// `C ← 1·bᵀ + A·B`, `b` one value per column of `C`.
    Bias(&'a [f32]),
    /// `C ← max(0, 1·bᵀ + A·B)`: a dense layer with its ReLU, in one pass over `C`.
    BiasRelu(&'a [f32]),
}

/// Floating-point operations (`2·m·k·n` per product) done by [`gemm`] in this process: what
/// `resq bench` divides by an update's time to compare it with the GEMM rate.
static FLOPS: AtomicU64 = AtomicU64::new(0);

/// `FLOPS` so far.
pub fn flops_done() -> u64 {
    FLOPS.load(Ordering::Relaxed)
}

/// Floats of packing buffer [`gemm`] needs for any product of these sizes.
pub fn pack_len(m: usize, k: usize, n: usize) -> usize {
    k * m.max(n).div_ceil(MAX_NR) * MAX_NR
}

/// A strided operand, as raw parts.
#[derive(Clone, Copy)]
pub struct Op {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl Op {
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> f32 {
        *self.ptr.offset(i as isize * self.rs + j as isize * self.cs)
    }

    fn t(self) -> Op {
        Op { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

#[derive(Clone, Copy)]
enum RawInit {
    Overwrite,
    /// The bias, and whether a ReLU follows.
    Bias(*const f32, bool),
}

/// One product, checked by [`gemm`]: every pointer is valid for its shape and strides, `c`
/// does not overlap `a`, `b` or `pack`, and `pack` holds [`pack_len`] floats.
#[derive(Clone, Copy)]
pub struct Args {
    m: usize,
    k: usize,
    n: usize,
    a: Op,
    b: Op,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    init: RawInit,
    pack: *mut f32,
}

/// Signature of an instruction set's GEMM entry.
pub type GemmFn = fn(&Args);

/// `C ← init + A·B` with the dispatched instruction set (see the module documentation). Panics
/// if the shapes disagree or `pack` is shorter than [`pack_len`]`(m, k, n)`.
pub fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>, init: Init, pack: &mut [f32]) {
    gemm_on(super::selected().gemm, a, b, c, init, pack)
}

/// [`gemm`] with a given instruction set's kernel (`Isa::kernels().gemm`; for tests and
/// benchmarks).
pub fn gemm_on(
    kernel: GemmFn,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    init: Init,
    pack: &mut [f32],
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert_eq!(k, k2, "gemm: A is {m}x{k} but B is {k2}x{n}");
    assert_eq!(c.dim(), (m, n), "gemm: C must be {m}x{n}");
    assert!(pack.len() >= pack_len(m, k, n), "gemm: the packing buffer is too short");
    let init = match init {
        Init::Overwrite => RawInit::Overwrite,
        Init::Bias(b) | Init::BiasRelu(b) => {
            assert_eq!(b.len(), n, "gemm: the bias needs one value per column of C");
            RawInit::Bias(b.as_ptr(), matches!(init, Init::BiasRelu(_)))
        }
    };
    let op = |v: &ArrayView2<f32>| Op { ptr: v.as_ptr(), rs: v.strides()[0], cs: v.strides()[1] };
    let args = Args {
        m,
        k,
        n,
        a: op(&a),
        b: op(&b),
        rsc: c.strides()[0],
        csc: c.strides()[1],
        c: c.as_mut_ptr(),
        init,
        pack: pack.as_mut_ptr(),
    };
    FLOPS.fetch_add(2 * (m * k * n) as u64, Ordering::Relaxed);
    kernel(&args)
}

/// The vector operations the kernels need, for one instruction set. Every method is
/// `#[inline(always)]` and must only run inside a function compiled for that instruction set.
trait Simd {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a·b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sum(v: Self::V) -> f32;
}

/// Writes one computed value `v` of `C[i, j]` as `init` says.
#[inline(always)]
unsafe fn put(g: &Args, i: usize, j: usize, v: f32) {
    let p = g.c.offset(i as isize * g.rsc + j as isize * g.csc);
    *p = match g.init {
        RawInit::Overwrite => v,
        RawInit::Bias(b, relu) => {
            let x = *b.add(j) + v;
            if relu {
                x.max(0.0)
            } else {
                x
            }
        }
    };
}

/// The product for one instruction set: MR rows by NV vectors of `S` per micro-kernel.
#[inline(always)]
unsafe fn run<S: Simd, const MR: usize, const NV: usize>(g: &Args) {
    let nr = NV * S::LANES;
    if g.m == 0 || g.n == 0 {
        return;
    }
    if g.k == 0 {
        for i in 0..g.m {
            for j in 0..g.n {
                put(g, i, j, 0.0);
            }
        }
        return;
    }
    if 2 * g.n < nr {
        if g.a.cs == 1 {
            return dots::<S>(g);
        }
        if 2 * g.m >= nr && !matches!(g.init, RawInit::Bias(..)) {
            // Cᵀ = Bᵀ·Aᵀ: the outputs become wide.
            let swapped = Args { m: g.n, n: g.m, a: g.b.t(), b: g.a.t(), rsc: g.csc, csc: g.rsc, ..*g };
            return panels::<S, MR, NV>(&swapped);
        }
    }
    panels::<S, MR, NV>(g)
}

/// The panel method (module documentation).
#[inline(always)]
unsafe fn panels<S: Simd, const MR: usize, const NV: usize>(g: &Args) {
    let nr = NV * S::LANES;
    let (m, k, n) = (g.m, g.k, g.n);
    let n_panels = n.div_ceil(nr);
    // With few row blocks to serve, whole panels of a B with contiguous rows are read where
    // they are (packing would cost about as much as the product); otherwise panels are packed,
    // so that each is contiguous in L1 (B's own rows, a power of two apart, would crowd a few
    // cache sets).
    let in_place = |w: usize| g.b.cs == 1 && w == nr && m <= 8 * MR;
    for q in 0..n_panels {
        let (j0, w) = (q * nr, nr.min(n - q * nr));
        if in_place(w) {
            continue;
        }
        let dst = g.pack.add(q * k * nr);
        for p in 0..k {
            let row = dst.add(p * nr);
            if g.b.cs == 1 {
                std::ptr::copy_nonoverlapping(g.b.ptr.offset(p as isize * g.b.rs + j0 as isize), row, w);
            } else {
                for jj in 0..w {
                    *row.add(jj) = g.b.at(p, j0 + jj);
                }
            }
            for jj in w..nr {
                *row.add(jj) = 0.0;
            }
        }
    }
    // A partial panel (or a strided C) is computed into this tile, then copied out, so that the
    // micro-kernel only ever stores whole vectors.
    let mut tile = [0.0f32; 12 * MAX_NR];
    debug_assert!(MR * nr <= tile.len());
    for q in 0..n_panels {
        let (j0, w) = (q * nr, nr.min(n - q * nr));
        let (bp, ldb) = if in_place(w) {
            (g.b.ptr.add(j0), g.b.rs)
        } else {
            (g.pack.add(q * k * nr) as *const f32, nr as isize)
        };
        let direct = g.csc == 1 && w == nr;
        // Row blocks of nearly equal size (64 rows at MR = 12: four of 11 and two of 10, not
        // five of 12 and one of 4, whose few accumulators would leave the FMA units waiting).
        let blocks = m.div_ceil(MR);
        let mut i = 0;
        for blk in 0..blocks {
            let rows = m / blocks + (blk < m % blocks) as usize;
            let a = Op { ptr: g.a.ptr.offset(i as isize * g.a.rs), ..g.a };
            let (c, ldc, init) = if direct {
                let init = match g.init {
                    RawInit::Bias(b, relu) => RawInit::Bias(b.add(j0), relu),
                    other => other,
                };
                (g.c.offset(i as isize * g.rsc + j0 as isize), g.rsc, init)
            } else {
                (tile.as_mut_ptr(), nr as isize, RawInit::Overwrite)
            };
            macro_rules! by_rows {
                ($($r:literal)*) => {
                    match rows {
                        $($r if $r <= MR => micro::<S, $r, NV>(k, a, bp, ldb, c, ldc, init),)*
                        _ => unreachable!("MR is at most 12"),
                    }
                };
            }
            by_rows!(1 2 3 4 5 6 7 8 9 10 11 12);
            if !direct {
                for r in 0..rows {
                    for j in 0..w {
                        put(g, i + r, j0 + j, tile[r * nr + j]);
                    }
                }
            }
            i += rows;
        }
    }
}

/// `C[..R, ..NV·LANES] = init + A[..R, :] · panel`: `C` row-major with row stride `ldc`, the
/// panel `k × NV·LANES` at `bp` with row stride `ldb`, `init`'s bias already at the panel's
/// first column.
#[inline(always)]
unsafe fn micro<S: Simd, const R: usize, const NV: usize>(
    k: usize,
    a: Op,
    bp: *const f32,
    ldb: isize,
    c: *mut f32,
    ldc: isize,
    init: RawInit,
) {
    let mut acc = [[S::zero(); NV]; R];
    for p in 0..k {
        let mut b = [S::zero(); NV];
        let row = bp.offset(p as isize * ldb);
        for (v, b) in b.iter_mut().enumerate() {
            *b = S::load(row.add(v * S::LANES));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let ar = S::splat(a.at(r, p));
            for v in 0..NV {
                acc[v] = S::fma(ar, b[v], acc[v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for v in 0..NV {
            let p = c.offset(r as isize * ldc).add(v * S::LANES);
            let out = match init {
                RawInit::Overwrite => acc[v],
                RawInit::Bias(b, relu) => {
                    let x = S::add(S::load(b.add(v * S::LANES)), acc[v]);
                    if relu {
                        S::max(x, S::zero())
                    } else {
                        x
                    }
                }
            };
            S::store(p, out);
        }
    }
}

/// Narrow outputs: `C[i, j] = Σ_p A[i, p]·B[p, j]` with the lanes along `p` (`A`'s rows
/// contiguous), four rows at a time; `Bᵀ` is packed first (`n × k`).
#[inline(always)]
unsafe fn dots<S: Simd>(g: &Args) {
    let (m, k, n) = (g.m, g.k, g.n);
    for j in 0..n {
        for p in 0..k {
            *g.pack.add(j * k + p) = g.b.at(p, j);
        }
    }
    let kk = k / S::LANES * S::LANES;
    let row = |i: usize| g.a.ptr.offset(i as isize * g.a.rs);
    let mut i = 0;
    while i < m {
        let rows = 4.min(m - i);
        // Rows past the end repeat the last one (computed, never stored).
        let ap = [row(i), row(i + 1.min(rows - 1)), row(i + 2.min(rows - 1)), row(i + 3.min(rows - 1))];
        for j in 0..n {
            let bt = g.pack.add(j * k) as *const f32;
            let mut acc = [S::zero(); 4];
            let mut p = 0;
            while p < kk {
                let b = S::load(bt.add(p));
                for r in 0..4 {
                    acc[r] = S::fma(S::load(ap[r].add(p)), b, acc[r]);
                }
                p += S::LANES;
            }
            for r in 0..rows {
                let mut s = S::sum(acc[r]);
                for p in kk..k {
                    s += *ap[r].add(p) * *bt.add(p);
                }
                put(g, i + r, j, s);
            }
        }
        i += rows;
    }
}

/// Portable: `f32` "vectors", no FMA instruction assumed.
struct Scalar;

impl Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        a.max(b)
    }
    #[inline(always)]
    unsafe fn sum(v: f32) -> f32 {
        v
    }
}

pub(super) fn gemm_scalar(g: &Args) {
    // SAFETY: `Args` is only built by `gemm`, which checked every shape.
    unsafe { run::<Scalar, 4, 4>(g) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{run, Args, Simd};
    use std::arch::x86_64::*;

    pub(in super::super) struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
    }

    pub(in super::super) struct Avx2;

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
        }
    }

    pub(in super::super) fn gemm_avx512_entry(g: &Args) {
        // SAFETY: selected only after run-time detection of avx512f and fma; shapes checked by
        // `gemm`.
        unsafe { gemm_avx512(g) }
    }

    #[target_feature(enable = "avx512f,fma")]
    unsafe fn gemm_avx512(g: &Args) {
        run::<Avx512, 12, 2>(g)
    }

    pub(in super::super) fn gemm_avx2_entry(g: &Args) {
        // SAFETY: selected only after run-time detection of avx2 and fma; shapes checked by `gemm`.
        unsafe { gemm_avx2(g) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemm_avx2(g: &Args) {
        run::<Avx2, 6, 2>(g)
    }
}
#[cfg(target_arch = "x86_64")]
pub(super) use x86::{gemm_avx2_entry, gemm_avx512_entry};

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{run, Args, Simd};
    use std::arch::aarch64::*;

    pub(in super::super) struct Neon;

    impl Simd for Neon {
        type V = float32x4_t;
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            vdupq_n_f32(0.0)
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            vdupq_n_f32(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            vld1q_f32(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            vst1q_f32(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            vfmaq_f32(c, a, b)
        }
        #[inline(always)]
        unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            vaddq_f32(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            vmaxq_f32(a, b)
        }
        #[inline(always)]
        unsafe fn sum(v: float32x4_t) -> f32 {
            vaddvq_f32(v)
        }
    }

    pub(in super::super) fn gemm_neon_entry(g: &Args) {
        // SAFETY: NEON is part of the aarch64 baseline (and detected); shapes checked by `gemm`.
        unsafe { gemm_neon(g) }
    }

    #[target_feature(enable = "neon")]
    unsafe fn gemm_neon(g: &Args) {
        run::<Neon, 8, 2>(g)
    }
}
#[cfg(target_arch = "aarch64")]
pub(super) use arm::gemm_neon_entry;

#[cfg(test)]
mod tests {
    use super::super::{available, Isa};
    use super::*;
    use ndarray::{s, Array2};

    fn rnd(seed: u64, shape: (usize, usize)) -> Array2<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Array2::from_shape_fn(shape, |_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
    }

    /// The independent reference: a plain triple loop in f64.
    fn reference(a: ArrayView2<f32>, b: ArrayView2<f32>, c0: &Array2<f32>, init: Init) -> Array2<f32> {
        Array2::from_shape_fn(c0.dim(), |(i, j)| {
            let dot: f64 = (0..a.ncols()).map(|p| a[[i, p]] as f64 * b[[p, j]] as f64).sum();
            let start = match init {
                Init::Overwrite => 0.0,
                Init::Bias(bias) | Init::BiasRelu(bias) => bias[j] as f64,
            };
            let v = (start + dot) as f32;
            if matches!(init, Init::BiasRelu(_)) {
                v.max(0.0)
            } else {
                v
            }
        })
    }

    fn run_on(
        isa: Isa,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        c: ArrayViewMut2<f32>,
        init: Init,
        pack: &mut [f32],
    ) {
        gemm_on(isa.kernels().expect("available").gemm, a, b, c, init, pack)
    }

    /// Every instruction set this CPU has, against the triple loop: row and column tails of
    /// every block size, narrow outputs (dot products and the transposed product), k = 0, 1
    /// and odd, transposed operands, a strided output, the three ways `C` starts.
    #[test]
    fn every_gemm_this_cpu_has_matches_a_triple_loop() {
        let shapes = [
            (64, 256, 256),
            (13, 7, 33),
            (1, 1, 1),
            (37, 4, 100),
            (100, 64, 2),
            (5, 65, 3),
            (64, 2, 256),
            (256, 64, 2),
            (11, 0, 5),
            (25, 17, 48),
            (3, 300, 1),
            (12, 9, 31),
        ];
        for isa in available() {
            for (t, &(m, k, n)) in shapes.iter().enumerate() {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a_store = if ta { rnd(t as u64, (k, m)) } else { rnd(t as u64, (m, k)) };
                    let b_store = if tb { rnd(100 + t as u64, (n, k)) } else { rnd(100 + t as u64, (k, n)) };
                    let a = if ta { a_store.t() } else { a_store.view() };
                    let b = if tb { b_store.t() } else { b_store.view() };
                    let bias = rnd(200 + t as u64, (1, n)).into_raw_vec_and_offset().0;
                    for init in [Init::Overwrite, Init::Bias(&bias), Init::BiasRelu(&bias)] {
                        let c0 = rnd(300 + t as u64, (m, n));
                        let want = reference(a, b, &c0, init);
                        let mut pack = vec![f32::NAN; pack_len(m, k, n)];
                        let mut c = c0.clone();
                        run_on(isa, a, b, c.view_mut(), init, &mut pack);
                        // And into a strided (transposed) output.
                        let mut ct = c0.t().to_owned();
                        run_on(isa, a, b, ct.view_mut().reversed_axes(), init, &mut pack);
                        for (got, what) in [(&c, "C"), (&ct.t().to_owned(), "Cᵀ storage")] {
                            let err = (got - &want).iter().fold(0.0f32, |e, v| e.max(v.abs()));
                            assert!(
                                err < 1e-4 * (1.0 + k as f32).sqrt(),
                                "{}: {m}x{k}x{n} A{} B{} {init:?} into {what}: error {err}",
                                isa.name(),
                                if ta { "ᵀ" } else { "" },
                                if tb { "ᵀ" } else { "" },
                            );
                        }
                    }
                }
            }
        }
    }

    /// The product writes exactly `C`: rows and columns around a window of a larger array keep
    /// their values.
    #[test]
    fn gemm_stays_inside_its_output() {
        for isa in available() {
            for &(m, k, n) in &[(13usize, 5usize, 37usize), (20, 8, 2), (2, 8, 20)] {
                let (a, b) = (rnd(1, (m, k)), rnd(2, (k, n)));
                let mut big = Array2::from_elem((m + 4, n + 6), 7.0f32);
                let mut pack = vec![0.0; pack_len(m, k, n)];
                run_on(
                    isa,
                    a.view(),
                    b.view(),
                    big.slice_mut(s![2..2 + m, 3..3 + n]),
                    Init::Overwrite,
                    &mut pack,
                );
                let mut inside = Array2::from_elem((m + 4, n + 6), false);
                inside.slice_mut(s![2..2 + m, 3..3 + n]).fill(true);
                for ((ij, v), ins) in big.indexed_iter().zip(inside.iter()) {
                    assert!(*ins || *v == 7.0, "{}: wrote outside C at {ij:?}", isa.name());
                }
                let want = reference(a.view(), b.view(), &Array2::zeros((m, n)), Init::Overwrite);
                let err =
                    (&big.slice(s![2..2 + m, 3..3 + n]) - &want).iter().fold(0.0f32, |e, v| e.max(v.abs()));
                assert!(err < 1e-4, "{}: error {err}", isa.name());
            }
        }
    }

    /// The public entry checks shapes and dispatches.
    #[test]
    fn gemm_entry_uses_the_dispatched_set() {
        let (a, b) = (rnd(5, (9, 6)), rnd(6, (6, 40)));
        let mut c = Array2::zeros((9, 40));
        let mut pack = vec![0.0; pack_len(9, 6, 40)];
        gemm(a.view(), b.view(), c.view_mut(), Init::Overwrite, &mut pack);
        let err = (&c - &a.dot(&b)).iter().fold(0.0f32, |e, v| e.max(v.abs()));
        assert!(err < 1e-5);
    }
}
