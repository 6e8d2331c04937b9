//! The supervisor: the last word before a command leaves the host.
//!
//! In order: a latched e-stop sends the safe command; a non-finite command becomes the safe
//! command; each value is clamped to `[command_min, command_max]`; then its change from the last
//! command sent is limited to `max_rate` per tick (0 = no limit). The e-stop latch is set by the
//! firmware's e-stop report (or by the host) and cleared only by an explicit reset.
//! Allocation-free after construction.

use super::Decisions;

#[derive(Clone, Debug)]
pub struct Supervisor {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
    pub max_rate: Vec<f32>,
    pub safe: Vec<f32>,
    last: Vec<f32>,
    has_last: bool,
    estop: bool,
}

impl Supervisor {
    pub fn new(min: Vec<f32>, max: Vec<f32>, max_rate: Vec<f32>, safe: Vec<f32>) -> Self {
        let n = min.len();
        Supervisor { min, max, max_rate, safe, last: vec![0.0; n], has_last: false, estop: false }
    }

    /// A supervisor enforcing `bundle`'s command limits (`[[robot.command]]`).
    pub fn for_bundle(bundle: &crate::Bundle) -> Self {
        let l = &bundle.safety.limits;
        Supervisor::new(l.min.clone(), l.max.clone(), l.max_rate.clone(), l.safe.clone())
    }

    /// Filters `proposed` into `out` and says what it changed.
    pub fn filter(&mut self, proposed: &[f32], out: &mut [f32]) -> Decisions {
        let mut d = Decisions::default();
        if self.estop {
            out.copy_from_slice(&self.safe);
            d.0 |= Decisions::ESTOP;
        } else if proposed.iter().any(|v| !v.is_finite()) {
            out.copy_from_slice(&self.safe);
            d.0 |= Decisions::FALLBACK;
        } else {
            for i in 0..out.len() {
                let mut v = proposed[i].clamp(self.min[i], self.max[i]);
                if v != proposed[i] {
                    d.0 |= Decisions::CLAMPED;
                }
                if self.has_last && self.max_rate[i] > 0.0 {
                    let lim = v.clamp(self.last[i] - self.max_rate[i], self.last[i] + self.max_rate[i]);
                    if lim != v {
                        d.0 |= Decisions::RATE_LIMITED;
                        v = lim;
                    }
                }
                out[i] = v;
            }
        }
        self.last.copy_from_slice(out);
        self.has_last = true;
        d
    }

    /// Forgets the last command (a new episode starts from rest: no rate limit on its first tick).
    pub fn new_episode(&mut self) {
        self.has_last = false;
    }

    pub fn latch_estop(&mut self) {
        self.estop = true;
    }

    /// The operator's explicit reset of the e-stop latch.
    pub fn clear_estop(&mut self) {
        self.estop = false;
    }

    pub fn estop_latched(&self) -> bool {
        self.estop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup() -> Supervisor {
        Supervisor::new(vec![-10.0], vec![10.0], vec![5.0], vec![0.0])
    }

    #[test]
    fn clamps_rate_limits_and_latches() {
        let mut s = sup();
        let mut out = [0.0];
        assert_eq!(s.filter(&[20.0], &mut out), Decisions(Decisions::CLAMPED));
        assert_eq!(out, [10.0]);
        let d = s.filter(&[-10.0], &mut out);
        assert!(d.contains(Decisions::RATE_LIMITED));
        assert_eq!(out, [5.0]);
        assert!(s.filter(&[f32::NAN], &mut out).contains(Decisions::FALLBACK));
        assert_eq!(out, [0.0]);
        s.latch_estop();
        for _ in 0..3 {
            assert!(s.filter(&[3.0], &mut out).contains(Decisions::ESTOP));
            assert_eq!(out, [0.0]);
        }
        s.clear_estop();
        assert_eq!(s.filter(&[3.0], &mut out), Decisions::default());
        assert_eq!(out, [3.0]);
    }
}
