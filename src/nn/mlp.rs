//! A small dense network (multi-layer perceptron), f32.
//!
//! Layer `l` computes `h_{l+1} = act_l(h_l · W_l + b_l)` with `W_l` stored `[n_in, n_out]`
//! row-major. The same weights serve two paths:
//! - the control path, batch 1, through [`Mlp::forward1`] and the SIMD kernels in
//!   [`super::kernels`], with no allocation (the caller owns a [`Scratch`]);
//! - the learner, batched, through [`Mlp::forward_batch`] / [`Mlp::backward`], whose products are
//!   GEMMs run by ndarray (matrixmultiply).

use ndarray::{Array1, Array2, ArrayView2, Axis};
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

    /// d act / d pre-activation, written in terms of the activation's output `y`.
    #[inline]
    fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => (y > 0.0) as u8 as f32,
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
            Activation::LeakyRelu(a) => {
                if y > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            // y = α(eˣ − 1) ⇒ dy/dx = α·eˣ = y + α.
            Activation::Elu(a) => {
                if y > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
            // y = ln(1 + eˣ) ⇒ dy/dx = σ(x) = 1 − e^(−y).
            Activation::Softplus => -(-y).exp_m1(),
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

/// Activations recorded by a batched forward pass, input first, output last.
pub struct Trace {
    pub acts: Vec<Array2<f32>>,
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

    /// Batched forward pass for the learner; `x` is `[batch, n_in]`.
    pub fn forward_batch(&self, x: ArrayView2<f32>) -> Trace {
        let mut acts = Vec::with_capacity(self.layers.len() + 1);
        acts.push(x.to_owned());
        for layer in &self.layers {
            let mut z = acts.last().expect("input pushed").dot(&layer.w);
            z += &layer.b;
            if let Some(s) = z.as_slice_mut() {
                layer.act.apply(s);
            } else {
                z.mapv_inplace(|v| {
                    let mut t = [v];
                    layer.act.apply(&mut t);
                    t[0]
                });
            }
            acts.push(z);
        }
        Trace { acts }
    }

    /// Output of a batched forward pass, `[batch, n_out]`.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.forward_batch(x).acts.pop().expect("output")
    }

    /// Backpropagates `d_out = ∂L/∂output` (`[batch, n_out]`) through the recorded trace and
    /// writes ∂L/∂W, ∂L/∂b into `grads` (overwriting).
    pub fn backward(&self, trace: &Trace, d_out: &Array2<f32>, grads: &mut Grads) {
        let mut delta = d_out.clone();
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let y = &trace.acts[l + 1];
            ndarray::Zip::from(&mut delta).and(y).for_each(|d, &y| *d *= layer.act.derivative_from_output(y));
            let x = &trace.acts[l];
            ndarray::linalg::general_mat_mul(1.0, &x.t(), &delta, 0.0, &mut grads.w[l]);
            grads.b[l] = delta.sum_axis(Axis(0));
            if l > 0 {
                delta = delta.dot(&layer.w.t());
            }
        }
    }

    /// `∂L/∂input` (`[batch, n_in]`) for `d_out = ∂L/∂output` through the recorded trace, without
    /// parameter gradients: what residual SAC's actor needs from its critics (`∂Q/∂a`).
    pub fn input_grad(&self, trace: &Trace, d_out: &Array2<f32>) -> Array2<f32> {
        let mut delta = d_out.clone();
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            ndarray::Zip::from(&mut delta)
                .and(&trace.acts[l + 1])
                .for_each(|d, &y| *d *= layer.act.derivative_from_output(y));
            delta = delta.dot(&layer.w.t());
        }
        delta
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
        for (d, s) in self.layers.iter_mut().zip(&other.layers) {
            d.w.zip_mut_with(&s.w, |a, &b| *a += tau * (b - *a));
            d.b.zip_mut_with(&s.b, |a, &b| *a += tau * (b - *a));
        }
    }

    /// True when every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.layers.iter().all(|l| l.w.iter().all(|v| v.is_finite()) && l.b.iter().all(|v| v.is_finite()))
    }
}

impl Grads {
    /// Global L2 norm over all gradients.
    pub fn norm(&self) -> f32 {
        let sq: f32 = self.w.iter().map(|g| g.iter().map(|v| v * v).sum::<f32>()).sum::<f32>()
            + self.b.iter().map(|g| g.iter().map(|v| v * v).sum::<f32>()).sum::<f32>();
        sq.sqrt()
    }

    pub fn scale(&mut self, k: f32) {
        self.w.iter_mut().for_each(|g| *g *= k);
        self.b.iter_mut().for_each(|g| *g *= k);
    }
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
            let trace = m.forward_batch(x.view());
            let mut g = m.zero_grads();
            m.backward(&trace, &c, &mut g);
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
            let g = m.input_grad(&m.forward_batch(x.view()), &c);
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
