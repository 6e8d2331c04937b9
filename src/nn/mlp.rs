//! A small dense network (multi-layer perceptron), f32.
//!
//! Layer `l` computes `h_{l+1} = act_l(h_l · W_l + b_l)` with `W_l` stored `[n_in, n_out]`
//! row-major. The same weights serve two paths:
//! - the control path, batch 1, through [`Mlp::forward1`] and the SIMD kernels in
//!   [`super::kernels`], with no allocation (the caller owns a [`Scratch`]);
//! - the learner, batched, through [`Mlp::forward`] / [`Mlp::backward`] into a [`Trace`] the
//!   learner allocates once, whose products run on resq's GEMM ([`mod@super::kernels::gemm`]), with
//!   no allocation either.

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kernels;

/// Element-wise nonlinearity after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
    Sigmoid,
    LeakyRelu(f32),
    /// `x` for `x > 0`, `α·(eˣ − 1)` otherwise (priors only).
    Elu(f32),
    /// `ln(1 + eˣ)` (priors only).
    Softplus,
    /// SiLU (swish): `x·σ(x)` (priors only).
    Silu,
    /// GELU: `x·Φ(x) = ½x(1 + erf(x/√2))` (priors only).
    Gelu,
    /// GELU's tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (priors only).
    GeluTanh,
}

impl Activation {
    #[inline]
    pub fn apply(self, v: &mut [f32]) {
        match self {
            Activation::Identity => {}
            Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Activation::Tanh => v.iter_mut().for_each(|x| *x = x.tanh()),
            Activation::Sigmoid => v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
            Activation::LeakyRelu(a) => v.iter_mut().for_each(|x| {
                if *x < 0.0 {
                    *x *= a
                }
            }),
            Activation::Elu(a) => v.iter_mut().for_each(|x| {
                if *x < 0.0 {
                    *x = a * x.exp_m1()
                }
            }),
            // Stable: max(x, 0) + ln(1 + e^(−|x|)).
            Activation::Softplus => v.iter_mut().for_each(|x| *x = x.max(0.0) + (-x.abs()).exp().ln_1p()),
            Activation::Silu => v.iter_mut().for_each(|x| *x /= 1.0 + (-*x).exp()),
            Activation::Gelu => v
                .iter_mut()
                .for_each(|x| *x = 0.5 * *x * (1.0 + libm::erff(*x * std::f32::consts::FRAC_1_SQRT_2))),
            Activation::GeluTanh => v.iter_mut().for_each(|x| {
                const K: f32 = 0.797_884_6; // √(2/π)
                *x = 0.5 * *x * (1.0 + (K * (*x + 0.044715 * *x * *x * *x)).tanh())
            }),
        }
    }

    /// `d ← d ⊙ act'(x)` for the activation's outputs `y = act(x)`: the derivative written in
    /// terms of the output. One loop per activation, so that each vectorises.
    fn backprop_through(self, d: &mut [f32], y: &[f32]) {
        let each = |f: &dyn Fn(f32) -> f32, d: &mut [f32]| d.iter_mut().zip(y).for_each(|(d, &y)| *d *= f(y));
        match self {
            Activation::Identity => {}
            Activation::Relu => d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 }),
            Activation::Tanh => d.iter_mut().zip(y).for_each(|(d, &y)| *d *= 1.0 - y * y),
            Activation::Sigmoid => d.iter_mut().zip(y).for_each(|(d, &y)| *d *= y * (1.0 - y)),
            Activation::LeakyRelu(a) => {
                d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { a * *d })
            }
            // y = α(eˣ − 1) ⇒ dy/dx = α·eˣ = y + α.
            Activation::Elu(a) => each(&|y| if y > 0.0 { 1.0 } else { y + a }, d),
            // y = ln(1 + eˣ) ⇒ dy/dx = σ(x) = 1 − e^(−y).
            Activation::Softplus => each(&|y| -(-y).exp_m1(), d),
            // Not a function of the output alone; the compiler gives them to priors only, which
            // are never trained.
            Activation::Silu | Activation::Gelu | Activation::GeluTanh => {
                unreachable!("{self:?} is a prior-only activation; residual heads are never built with it")
            }
        }
    }
}

/// One dense layer: `act(x · w + b)`, `w` is `[n_in, n_out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
    pub act: Activation,
}

/// A stack of dense layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub layers: Vec<Dense>,
}

/// Ping-pong buffers for the allocation-free batch-1 forward pass.
#[derive(Clone, Debug)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// A batched forward pass recorded for backpropagation (the activations, input first, output
/// last), with the buffers the backward pass and the GEMMs work in: allocated once, by
/// [`Mlp::trace`], for up to `capacity` rows, then reused by every pass without allocating.
pub struct Trace {
    /// `acts[l]` is `[capacity, width_l]`; the first `rows` rows are this pass's.
    acts: Vec<Array2<f32>>,
    rows: usize,
    /// Two `[capacity, widest layer]` buffers for the backpropagated `∂L/∂pre-activation`.
    delta: [Vec<f32>; 2],
    /// The GEMM's packing buffer ([`kernels::gemm::pack_len`] for the largest product).
    pack: Vec<f32>,
}

impl Trace {
    /// Rows this trace can hold.
    pub fn capacity(&self) -> usize {
        self.acts[0].nrows()
    }

    /// Output of the last pass, `[rows, n_out]`.
    pub fn output(&self) -> ArrayView2<'_, f32> {
        self.acts.last().expect("a trace has an output").slice(s![..self.rows, ..])
    }
}

/// Gradients with the same shapes as an [`Mlp`]'s parameters.
#[derive(Clone, Debug)]
pub struct Grads {
    pub w: Vec<Array2<f32>>,
    pub b: Vec<Array1<f32>>,
}

impl Mlp {
    /// A new network with layer widths `sizes` (input first), `hidden` activation between layers
    /// and identity output. Weights are drawn like PyTorch's `nn.Linear` (U(±1/√n_in)); with
    /// `zero_output` the last layer starts at exactly zero, so the network outputs 0 everywhere.
    pub fn new(sizes: &[usize], hidden: Activation, zero_output: bool, rng: &mut impl Rng) -> Self {
        assert!(sizes.len() >= 2, "an MLP needs at least an input and an output width");
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
                let last = l + 1 == n;
                let bound = 1.0 / (fan_in as f32).sqrt();
                let mut draw = |_| {
                    if last && zero_output {
                        0.0
                    } else {
                        rng.random_range(-bound..bound)
                    }
                };
                Dense {
                    w: Array2::from_shape_fn((fan_in, fan_out), |ij| draw(ij.0)),
                    b: Array1::from_shape_fn(fan_out, draw),
                    act: if last { Activation::Identity } else { hidden },
                }
            })
            .collect();
        Mlp { layers }
    }

    pub fn n_in(&self) -> usize {
        self.layers[0].w.nrows()
    }

    pub fn n_out(&self) -> usize {
        self.layers.last().expect("non-empty").w.ncols()
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_in()).chain(self.layers.iter().map(|l| l.w.ncols())).collect()
    }

    pub fn n_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Buffers for [`Mlp::forward1`], allocated once at start-up.
    pub fn scratch(&self) -> Scratch {
        let width = self.sizes().into_iter().max().unwrap_or(1);
        Scratch { a: vec![0.0; width], b: vec![0.0; width] }
    }

    /// Buffers for [`Mlp::forward_rows`] of up to `rows` inputs (and for [`Mlp::forward1`]).
    pub fn scratch_rows(&self, rows: usize) -> Scratch {
        let width = self.sizes().into_iter().max().unwrap_or(1) * rows.max(1);
        Scratch { a: vec![0.0; width], b: vec![0.0; width] }
    }

    /// Forward pass of `rows` inputs at once on the control path (`xs` row-major
    /// `[rows, n_in]`), no allocation: the output `[rows, n_out]` lives in `s` (from
    /// [`Mlp::scratch_rows`] for at least `rows`) until the next call.
    pub fn forward_rows<'s>(&self, xs: &[f32], rows: usize, s: &'s mut Scratch) -> &'s [f32] {
        debug_assert_eq!(xs.len(), rows * self.n_in());
        let mut width = self.n_in();
        s.a[..rows * width].copy_from_slice(xs);
        for layer in &self.layers {
            let n_out = layer.w.ncols();
            let wt = layer.w.as_slice().expect("weights are standard-layout");
            let b = layer.b.as_slice().expect("biases are contiguous");
            kernels::affine_rows(&s.a[..rows * width], rows, wt, b, &mut s.b[..rows * n_out]);
            layer.act.apply(&mut s.b[..rows * n_out]);
            std::mem::swap(&mut s.a, &mut s.b);
            width = n_out;
        }
        &s.a[..rows * width]
    }

    /// Batch-1 forward pass on the control path: no allocation. Returns the output, which lives
    /// in `s` until the next call.
    pub fn forward1<'s>(&self, x: &[f32], s: &'s mut Scratch) -> &'s [f32] {
        debug_assert_eq!(x.len(), self.n_in());
        let mut width = x.len();
        s.a[..width].copy_from_slice(x);
        for layer in &self.layers {
            let n_out = layer.w.ncols();
            let wt = layer.w.as_slice().expect("weights are standard-layout");
            let b = layer.b.as_slice().expect("biases are contiguous");
            kernels::affine(&s.a[..width], wt, b, &mut s.b[..n_out]);
            layer.act.apply(&mut s.b[..n_out]);
            std::mem::swap(&mut s.a, &mut s.b);
            width = n_out;
        }
        &s.a[..width]
    }

    /// A [`Trace`] for batched passes of up to `rows` inputs.
    pub fn trace(&self, rows: usize) -> Trace {
        let sizes = self.sizes();
        let widest = sizes.iter().copied().max().unwrap_or(1);
        let pack = (0..self.layers.len())
            .map(|l| {
                let (i, o) = (sizes[l], sizes[l + 1]);
                // forward x·W, ∂W = xᵀ·δ, δ·Wᵀ
                let p = kernels::gemm::pack_len;
                p(rows, i, o).max(p(i, rows, o)).max(p(rows, o, i))
            })
            .max()
            .unwrap_or(0);
        Trace {
            acts: sizes.iter().map(|&w| Array2::zeros((rows, w))).collect(),
            rows: 0,
            delta: [vec![0.0; rows * widest], vec![0.0; rows * widest]],
            pack: vec![0.0; pack],
        }
    }

    /// Batched forward pass of `x` (`[rows, n_in]`, rows ≤ the trace's capacity), recorded in
    /// `t`, without allocating: `h_{l+1} = act_l(h_l · W_l + b_l)` by [`mod@kernels::gemm`].
    /// Returns the output `[rows, n_out]`.
    pub fn forward<'t>(&self, x: ArrayView2<f32>, t: &'t mut Trace) -> ArrayView2<'t, f32> {
        let rows = x.nrows();
        assert!(rows <= t.capacity(), "a batch of {rows} rows in a trace for {}", t.capacity());
        t.rows = rows;
        t.acts[0].slice_mut(s![..rows, ..]).assign(&x);
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, next) = t.acts.split_at_mut(l + 1);
            let mut z = next[0].slice_mut(s![..rows, ..]);
            let b = layer.b.as_slice().expect("biases are contiguous");
            let x = done[l].slice(s![..rows, ..]);
            if layer.act == Activation::Relu {
                kernels::gemm(x, layer.w.view(), z.view_mut(), kernels::Init::BiasRelu(b), &mut t.pack);
            } else {
                kernels::gemm(x, layer.w.view(), z.view_mut(), kernels::Init::Bias(b), &mut t.pack);
                layer.act.apply(z.as_slice_mut().expect("trace rows are contiguous"));
            }
        }
        t.output()
    }

    /// Batched forward pass that allocates its own trace (tests and cold paths; the learners keep
    /// a [`Trace`] and call [`Mlp::forward`]).
    pub fn forward_batch(&self, x: ArrayView2<f32>) -> Trace {
        let mut t = self.trace(x.nrows());
        self.forward(x, &mut t);
        t
    }

    /// Output of a batched forward pass, `[batch, n_out]`, allocated (tests and cold paths).
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.forward_batch(x).output().to_owned()
    }

    /// Backpropagates `d_out = ∂L/∂output` (`[rows, n_out]`) through the pass recorded in `t`
    /// and writes ∂L/∂W, ∂L/∂b into `grads` (overwriting), without allocating:
    ///
    /// ```text
    /// δ_l = ∂L/∂h_{l+1} ⊙ act_l'(h_{l+1}),   ∂L/∂W_l = h_lᵀ·δ_l,   ∂L/∂b_l = Σ_rows δ_l,
    /// ∂L/∂h_l = δ_l·W_lᵀ
    /// ```
    pub fn backward(&self, t: &mut Trace, d_out: ArrayView2<f32>, grads: &mut Grads) {
        self.backprop(t, d_out, Some(grads));
    }

    /// `∂L/∂input` (`[rows, n_in]`) for `d_out = ∂L/∂output` through the pass recorded in `t`,
    /// without parameter gradients: what residual SAC's actor needs from its critics (`∂Q/∂a`).
    /// It lives in `t` until its next use.
    pub fn input_grad<'t>(&self, t: &'t mut Trace, d_out: ArrayView2<f32>) -> ArrayView2<'t, f32> {
        self.backprop(t, d_out, None);
        // The pass starts in delta[0] and swaps buffers once per layer.
        let (rows, n_in) = (t.rows, self.n_in());
        let last = &t.delta[self.layers.len() % 2];
        ArrayView2::from_shape((rows, n_in), &last[..rows * n_in]).expect("delta buffer shape")
    }

    /// The backward pass; with `grads`, parameter gradients (and no `∂L/∂input`); without, the
    /// input gradient, left in `t.delta[layers % 2]` (one swap of the two buffers per layer).
    fn backprop(&self, t: &mut Trace, d_out: ArrayView2<f32>, mut grads: Option<&mut Grads>) {
        let rows = t.rows;
        assert_eq!(d_out.dim(), (rows, self.n_out()), "d_out must be shaped like the recorded output");
        let Trace { acts, delta, pack, .. } = t;
        let [d0, d1] = delta;
        let (mut cur, mut nxt) = (d0, d1);
        let width = self.n_out();
        ArrayViewMut2::from_shape((rows, width), &mut cur[..rows * width])
            .expect("delta shape")
            .assign(&d_out);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (n_in, n_out) = layer.w.dim();
            let y = acts[l + 1].slice(s![..rows, ..]);
            let y = y.as_slice().expect("trace rows are contiguous");
            layer.act.backprop_through(&mut cur[..rows * n_out], y);
            let d = ArrayView2::from_shape((rows, n_out), &cur[..rows * n_out]).expect("delta shape");
            if let Some(g) = grads.as_deref_mut() {
                let x = acts[l].slice(s![..rows, ..]);
                kernels::gemm(x.t(), d, g.w[l].view_mut(), kernels::Init::Overwrite, pack);
                let gb = g.b[l].as_slice_mut().expect("contiguous");
                gb.fill(0.0);
                // Over slices (an ndarray row iterator would not vectorise).
                for row in cur[..rows * n_out].chunks_exact(n_out) {
                    for (s, &v) in gb.iter_mut().zip(row) {
                        *s += v;
                    }
                }
                if l == 0 {
                    break;
                }
            }
            let out = ArrayViewMut2::from_shape((rows, n_in), &mut nxt[..rows * n_in]).expect("delta shape");
            kernels::gemm(d, layer.w.t(), out, kernels::Init::Overwrite, pack);
            std::mem::swap(&mut cur, &mut nxt);
        }
    }

    /// Zero gradients shaped like this network.
    pub fn zero_grads(&self) -> Grads {
        Grads {
            w: self.layers.iter().map(|l| Array2::zeros(l.w.raw_dim())).collect(),
            b: self.layers.iter().map(|l| Array1::zeros(l.b.raw_dim())).collect(),
        }
    }

    /// Copies every parameter from `other` (same shape) without allocating: the weight hand-over.
    pub fn copy_from(&mut self, other: &Mlp) {
        for (d, s) in self.layers.iter_mut().zip(&other.layers) {
            d.w.assign(&s.w);
            d.b.assign(&s.b);
        }
    }

    /// Polyak averaging `θ ← (1−τ)·θ + τ·θ_other`.
    pub fn soft_update(&mut self, other: &Mlp, tau: f32) {
        let mix = |d: &mut [f32], s: &[f32]| d.iter_mut().zip(s).for_each(|(a, &b)| *a += tau * (b - *a));
        for (d, s) in self.layers.iter_mut().zip(&other.layers) {
            mix(d.w.as_slice_mut().expect("standard layout"), s.w.as_slice().expect("standard layout"));
            mix(d.b.as_slice_mut().expect("contiguous"), s.b.as_slice().expect("contiguous"));
        }
    }

    /// True when every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.layers.iter().all(|l| {
            all_finite(l.w.as_slice().expect("standard layout"))
                && all_finite(l.b.as_slice().expect("contiguous"))
        })
    }
}

impl Grads {
    /// Global L2 norm over all gradients.
    pub fn norm(&self) -> f32 {
        let w = self.w.iter().map(|g| sum_sq(g.as_slice().expect("standard layout")));
        let b = self.b.iter().map(|g| sum_sq(g.as_slice().expect("contiguous")));
        w.chain(b).sum::<f32>().sqrt()
    }

    pub fn scale(&mut self, k: f32) {
        self.w.iter_mut().for_each(|g| *g *= k);
        self.b.iter_mut().for_each(|g| *g *= k);
    }
}

/// `Σ v²`, in 16 independent lanes (so that it vectorises: one chain would fix the order).
fn sum_sq(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// True when every value is finite: `x·0` is 0 for a finite `x` and NaN otherwise, summed in
/// lanes (vectorised, no early exit).
fn all_finite(v: &[f32]) -> bool {
    let mut acc = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder().iter().all(|x| x.is_finite());
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * 0.0;
        }
    }
    rest && acc.iter().all(|a| *a == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    fn net(act: Activation) -> Mlp {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        Mlp::new(&[5, 16, 12, 3], act, false, &mut rng)
    }

    #[test]
    fn forward1_matches_batched_forward() {
        let m = net(Activation::Tanh);
        let x = Array2::from_shape_fn((3, 5), |(i, j)| (i as f32 - 1.0) * 0.3 + j as f32 * 0.1);
        let batched = m.predict(x.view());
        let mut s = m.scratch();
        for i in 0..3 {
            let y = m.forward1(x.row(i).as_slice().unwrap(), &mut s);
            for (a, b) in y.iter().zip(batched.row(i)) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn forward_rows_matches_forward1() {
        let m = net(Activation::Relu);
        let rows = 7;
        let xs: Vec<f32> = (0..rows * 5).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut s = m.scratch_rows(rows);
        let batched = m.forward_rows(&xs, rows, &mut s).to_vec();
        let mut s1 = m.scratch();
        for r in 0..rows {
            let y = m.forward1(&xs[r * 5..(r + 1) * 5], &mut s1);
            for (a, b) in y.iter().zip(&batched[r * 3..(r + 1) * 3]) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn zero_output_layer_outputs_zero() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let m = Mlp::new(&[4, 8, 2], Activation::Relu, true, &mut rng);
        let mut s = m.scratch();
        assert_eq!(m.forward1(&[0.3, -1.0, 2.0, 0.5], &mut s), &[0.0, 0.0]);
    }

    /// Backward pass against central finite differences (in f64 arithmetic on the loss
    /// L = Σ c ⊙ output, with a fixed random c), for every activation.
    #[test]
    fn backward_matches_finite_differences() {
        for act in [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Elu(0.7),
            Activation::Softplus,
        ] {
            let mut m = net(act);
            let x = Array2::from_shape_fn((4, 5), |(i, j)| ((i * 5 + j) as f32 * 0.37).sin());
            let c = Array2::from_shape_fn((4, 3), |(i, j)| ((i * 3 + j) as f32 * 0.91).cos());
            let loss = |m: &Mlp| -> f64 {
                let y = m.predict(x.view());
                y.iter().zip(c.iter()).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
            };
            let mut trace = m.forward_batch(x.view());
            let mut g = m.zero_grads();
            m.backward(&mut trace, c.view(), &mut g);
            let h = 1e-3f32;
            let mut worst = 0.0f64;
            for l in 0..m.layers.len() {
                for idx in 0..m.layers[l].w.len() {
                    let orig = m.layers[l].w.as_slice().unwrap()[idx];
                    m.layers[l].w.as_slice_mut().unwrap()[idx] = orig + h;
                    let up = loss(&m);
                    m.layers[l].w.as_slice_mut().unwrap()[idx] = orig - h;
                    let down = loss(&m);
                    m.layers[l].w.as_slice_mut().unwrap()[idx] = orig;
                    let fd = (up - down) / (2.0 * h as f64);
                    let an = g.w[l].as_slice().unwrap()[idx] as f64;
                    worst = worst.max((fd - an).abs() / (1.0 + fd.abs()));
                }
                for idx in 0..m.layers[l].b.len() {
                    let orig = m.layers[l].b[idx];
                    m.layers[l].b[idx] = orig + h;
                    let up = loss(&m);
                    m.layers[l].b[idx] = orig - h;
                    let down = loss(&m);
                    m.layers[l].b[idx] = orig;
                    let fd = (up - down) / (2.0 * h as f64);
                    let an = g.b[l][idx] as f64;
                    worst = worst.max((fd - an).abs() / (1.0 + fd.abs()));
                }
            }
            // ReLU kinks can make a central difference straddle a corner; with these inputs
            // none do, and smooth activations agree to f32 rounding.
            assert!(worst < 2e-3, "{act:?}: worst relative error {worst}");
        }
    }

    /// `input_grad` against central finite differences in each input.
    #[test]
    fn input_grad_matches_finite_differences() {
        for act in [Activation::Tanh, Activation::Relu] {
            let m = net(act);
            let mut x = Array2::from_shape_fn((4, 5), |(i, j)| ((i * 5 + j) as f32 * 0.53).cos());
            let c = Array2::from_shape_fn((4, 3), |(i, j)| ((i * 3 + j) as f32 * 0.71).sin());
            let loss = |x: &Array2<f32>| -> f64 {
                let y = m.predict(x.view());
                y.iter().zip(c.iter()).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
            };
            let mut t = m.forward_batch(x.view());
            let g = m.input_grad(&mut t, c.view()).to_owned();
            let h = 1e-3f32;
            for i in 0..4 {
                for j in 0..5 {
                    let orig = x[[i, j]];
                    x[[i, j]] = orig + h;
                    let up = loss(&x);
                    x[[i, j]] = orig - h;
                    let down = loss(&x);
                    x[[i, j]] = orig;
                    let fd = (up - down) / (2.0 * h as f64);
                    let an = g[[i, j]] as f64;
                    assert!((fd - an).abs() < 2e-3 * (1.0 + fd.abs()), "{act:?} [{i},{j}]: {fd} vs {an}");
                }
            }
        }
    }
}
