//! Adam (Kingma & Ba) over an [`Mlp`]'s parameters:
//!
//! ```text
//! m ← β1·m + (1−β1)·g      v ← β2·v + (1−β2)·g²
//! θ ← θ − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)
//! ```
//!
//! run per parameter slice by the dispatched kernel ([`super::kernels::adam`], which also
//! flushes moments that would become subnormal).

use super::kernels::{self, AdamStep};
use super::mlp::{Grads, Mlp};

#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Steps taken so far (the `t` of the bias correction).
    pub t: u64,
    /// First moments, shaped like the network.
    pub m: Grads,
    /// Second moments, shaped like the network.
    pub v: Grads,
}

impl Adam {
    pub fn new(net: &Mlp, lr: f32) -> Self {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, m: net.zero_grads(), v: net.zero_grads() }
    }

    /// One update of `net` along `g`.
    pub fn step(&mut self, net: &mut Mlp, g: &Grads) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t.min(i32::MAX as u64) as i32);
        let c2 = 1.0 - b2.powi(self.t.min(i32::MAX as u64) as i32);
        let k = AdamStep { lr: self.lr, beta1: b1, beta2: b2, eps: self.eps, c1, c2 };
        let upd = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| kernels::adam_step(&k, p, g, m, v);
        for (l, layer) in net.layers.iter_mut().enumerate() {
            upd(
                layer.w.as_slice_mut().expect("standard layout"),
                g.w[l].as_slice().expect("standard layout"),
                self.m.w[l].as_slice_mut().expect("standard layout"),
                self.v.w[l].as_slice_mut().expect("standard layout"),
            );
            upd(
                layer.b.as_slice_mut().expect("contiguous"),
                g.b[l].as_slice().expect("contiguous"),
                self.m.b[l].as_slice_mut().expect("contiguous"),
                self.v.b[l].as_slice_mut().expect("contiguous"),
            );
        }
    }
}
