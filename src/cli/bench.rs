//! `resq bench <bundle>`: on the robot computer itself, what decides whether a bundle fits its
//! control period, measured in one run with tract running the same prior as the baseline:
//!
//! - the prior alone, through tract and on resq's kernels (median per call);
//! - the whole control step (observe, prior, residual, action choice; median and p99.9);
//! - its floor at batch 1: reading the prior's and the residual's weights once from cache, at
//!   the widest vector width (`nn::kernels::sum` over as many floats; the FMAs of a forward pass
//!   ride along with those loads, so no batch-1 implementation can beat it);
//! - one learner update at the bundle's batch and sizes (median), after a short customization
//!   on its simulated robot fills the replay (no simulated robot: not measured), and the rate of
//!   its matrix products (the GEMM FLOPs an update does, counted by `nn::kernels::gemm`, over its
//!   median time);
//! - the single-thread GEMM rate of the learner's largest product (`batch·n × h` by `h × h`, the
//!   target head's pass over the bootstrap and intermediate states of n-step returns; RPG:
//!   `2·rollout × h`, the value pass over a rollout), by resq's
//!   GEMM and by matrixmultiply (ndarray's) as an independent reference; the update's rate as a
//!   fraction of the better of the two;
//! - the process's resident memory, now and at its peak, and the bytes the replay holds when full
//!   (allocated at start, resident as it fills, so a short run's RSS does not show them yet).
//!
//! The states come from the prior driving the simulated robot (or, with none, from readings drawn
//! within the declared signal ranges). Timing is wall-clock on a possibly shared machine: the
//! medians are the figures to quote; the p99.9 shows the jitter the control loop would see.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::bundle::Bundle;
use crate::control::{ActMode, Controller, PolicyChoice};
use crate::robot::{Env, SimEnv};
use crate::session::customize::{self, make_learner, Options};

/// A time per call, ns.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub median_ns: f64,
    /// Per-call p99.9 (only where each call is timed on its own).
    pub p999_ns: Option<f64>,
}

/// What `resq bench` measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub bundle: String,
    pub kernels: &'static str,
    pub method: String,
    pub prior_tract: Timing,
    /// `None` when the prior falls back to tract (`prior_fallback` says why).
    pub prior_resq: Option<Timing>,
    pub prior_fallback: Option<String>,
    pub control_step: Timing,
    /// Bytes of weights a control step reads (prior + acting residual), and the time to read
    /// that many from cache (`None` when the prior runs through tract).
    pub weight_bytes: usize,
    pub floor: Option<Timing>,
    /// `None` without a simulated robot to fill the replay.
    pub learner_update: Option<Timing>,
    /// GEMM floating-point operations per update, and their rate at the median update time.
    pub update_flops: Option<f64>,
    pub update_gflops: Option<f64>,
    pub batch: usize,
    /// `(rows, inner, cols)` of the GEMM measured, and its rate with resq's GEMM and with
    /// matrixmultiply.
    pub gemm_shape: (usize, usize, usize),
    pub gemm_gflops: f64,
    pub gemm_gflops_matrixmultiply: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    /// The replay's capacity (transitions) and the bytes it holds when full.
    pub replay_capacity: usize,
    pub replay_bytes: usize,
}

/// Median and (optionally) p99.9 of `samples` (ns).
fn timing(mut samples: Vec<f64>, tail: bool) -> Timing {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Timing { median_ns: at(0.5), p999_ns: tail.then(|| at(0.999)) }
}

/// Median time per call of `f`, timed in groups of `per` calls.
fn grouped(groups: usize, per: usize, mut f: impl FnMut(usize)) -> Timing {
    let mut samples = Vec::with_capacity(groups);
    let mut i = 0;
    for _ in 0..groups {
        let t = Instant::now();
        for _ in 0..per {
            f(i);
            i += 1;
        }
        samples.push(t.elapsed().as_nanos() as f64 / per as f64);
    }
    timing(samples, false)
}

/// `VmRSS` and `VmHWM` of this process, MiB (0 where /proc is not there).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Signal vectors the robot would read: the prior driving the simulated robot, or readings
/// drawn within the declared ranges (±1 where none is declared).
fn states(load: &dyn Fn() -> Result<Bundle>, n: usize, seed: u64) -> Result<Vec<Vec<f32>>> {
    let bundle = &load()?;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    if let Some(plant) = &bundle.sim_plant {
        let mut env = SimEnv::new(plant, bundle.episode.time_limit(), seed)
            .ok_or_else(|| anyhow::anyhow!("unknown plant {plant}"))?;
        let mut ctl = Controller::new(load()?, make_learner(bundle, seed).core().online.clone());
        env.reset()?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(env.signals().to_vec());
            ctl.step(env.signals(), PolicyChoice::Prior, ActMode::Sample, &mut rng);
            if env.step(&ctl.command.clone())?.done() {
                env.reset()?;
            }
        }
        return Ok(out);
    }
    Ok((0..n)
        .map(|_| {
            bundle
                .signal_range
                .iter()
                .map(|(lo, hi)| {
                    let (lo, hi) = if lo.is_finite() && hi.is_finite() { (*lo, *hi) } else { (-1.0, 1.0) };
                    rng.random_range(lo..=hi)
                })
                .collect()
        })
        .collect())
}

/// Runs every measurement on the bundle `load` loads (each call a fresh copy); `scratch` is a
/// folder for the short customization.
pub fn run(load: &dyn Fn() -> Result<Bundle>, scratch: &std::path::Path, seed: u64) -> Result<BenchReport> {
    let states = states(load, 2000, seed)?;
    let mut b = load()?;
    let n_obs = b.obs.len();
    let obs: Vec<Vec<f32>> = states
        .iter()
        .map(|s| {
            let mut o = vec![0.0; n_obs];
            b.obs.observe(s, &mut o);
            o
        })
        .collect();
    let mut raw = vec![0.0f32; b.prior.kind.raw_width(b.n_actions())];
    let prior_tract = grouped(200, 100, |i| {
        black_box(b.prior.tract().run(black_box(&obs[i % obs.len()]), &mut raw)).ok();
    });
    let prior_fallback = b.prior.fallback_reason.clone();
    let prior_resq = prior_fallback.is_none().then(|| {
        grouped(200, 100, |i| {
            black_box(b.prior.raw(black_box(&obs[i % obs.len()]), &mut raw)).ok();
        })
    });

    // A short customization fills the replay (and trains the heads a little) so that the
    // update and the control step run on realistic data and weights.
    let learner = if b.sim_plant.is_some() || b.sim_firmware.is_some() {
        let l = &b.manifest.learning;
        let steps = match b.method {
            crate::bundle::Method::Rpg => 2 * l.rollout as u64 + 2,
            _ => (l.warmup.max(l.batch) + 2 * l.batch) as u64,
        };
        let opts = Options { fresh: true, eval_episodes: Some(1), ..Options::new(steps, seed, scratch) };
        Some(customize::run(load()?, &opts)?.learner)
    } else {
        None
    };
    // Without a simulated robot: the fresh (zero) heads, which act as the prior would.
    let fresh = make_learner(&b, seed);
    let acting = learner.as_ref().map_or(fresh.as_ref(), |l| l.as_ref());
    let residual_params = acting.actor().unwrap_or(&acting.core().online).n_params();
    let (replay_capacity, replay_bytes) = (acting.core().replay.capacity, acting.core().replay.bytes());
    let weight_bytes = 4 * (b.prior.n_params().unwrap_or(0) + residual_params);
    let floor = b.prior.n_params().map(|_| {
        // Aligned to a cache line, so that no vector load straddles two.
        let buf = vec![0.5f32; weight_bytes / 4 + 16];
        let skip = buf.as_ptr().align_offset(64).min(16);
        let weights = &buf[skip..skip + weight_bytes / 4];
        grouped(200, 100, |_| {
            black_box(crate::nn::kernels::sum(black_box(weights)));
        })
    });
    let mut ctl = Controller::with_learner(load()?, acting);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ 0xbe);
    for s in states.iter().take(200) {
        ctl.step(s, PolicyChoice::Customized, ActMode::Sample, &mut rng);
    }
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let s = &states[i % states.len()];
        let t = Instant::now();
        black_box(ctl.step(black_box(s), PolicyChoice::Customized, ActMode::Sample, &mut rng));
        samples.push(t.elapsed().as_nanos() as f64);
    }
    let control_step = timing(samples, true);

    // The learner's largest product, by h × h (h the widest hidden layer): the target pass of
    // n-step returns (batch·n rows), or for RPG the value pass over a rollout's s and s′
    // (2·rollout rows).
    let batch = b.manifest.learning.batch;
    let rows = match b.method {
        crate::bundle::Method::Rpg => 2 * b.manifest.learning.rollout,
        _ => batch * b.manifest.learning.n_step.max(1),
    };
    let h = b.manifest.residual.hidden.iter().copied().max().unwrap_or(64);
    let x = ndarray::Array2::<f32>::from_shape_fn((rows, h), |(i, j)| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = ndarray::Array2::<f32>::from_shape_fn((h, h), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut c = ndarray::Array2::<f32>::zeros((rows, h));
    let mut pack = vec![0.0f32; crate::nn::kernels::gemm::pack_len(rows, h, h)];
    let gemm_flops = 2.0 * (rows * h * h) as f64;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_nanos() as f64
    };
    let mut ours = || {
        use crate::nn::kernels::{gemm, Init};
        gemm(black_box(x.view()), w.view(), c.view_mut(), Init::Overwrite, &mut pack)
    };
    let mut theirs = || {
        black_box(x.dot(black_box(&w)));
    };

    // Updates and both GEMMs alternate, in rounds, so that a shared machine's changing speed
    // weighs on all three alike and their ratio holds.
    let (mut upd, mut flops, mut g_ours, mut g_theirs) = (Vec::new(), 0u64, Vec::new(), Vec::new());
    let mut learner = learner;
    for _ in 0..40 {
        if let Some(l) = learner.as_mut() {
            for _ in 0..5 {
                let f0 = crate::nn::kernels::gemm::flops_done();
                let t = Instant::now();
                let done = l.update().is_some();
                let ns = t.elapsed().as_nanos() as f64;
                if done {
                    upd.push(ns);
                    flops += crate::nn::kernels::gemm::flops_done() - f0;
                }
            }
        }
        for _ in 0..3 {
            g_ours.push(time(&mut ours));
            g_theirs.push(time(&mut theirs));
        }
    }
    let update_flops = (!upd.is_empty()).then(|| flops as f64 / upd.len() as f64);
    let learner_update = (!upd.is_empty()).then(|| timing(upd, false));
    let update_gflops = learner_update.zip(update_flops).map(|(t, f)| f / t.median_ns);
    let gemm_gflops = gemm_flops / timing(g_ours, false).median_ns;
    let gemm_gflops_matrixmultiply = gemm_flops / timing(g_theirs, false).median_ns;
    let (rss, peak) = rss_mib();
    Ok(BenchReport {
        bundle: b.manifest.bundle.name.clone(),
        kernels: crate::nn::kernels::isa().name(),
        method: format!("{:?}", b.method),
        prior_tract,
        prior_resq,
        prior_fallback,
        control_step,
        weight_bytes,
        floor,
        learner_update,
        update_flops,
        update_gflops,
        batch,
        gemm_shape: (rows, h, h),
        gemm_gflops,
        gemm_gflops_matrixmultiply,
        rss_mib: rss,
        peak_rss_mib: peak,
        replay_capacity,
        replay_bytes,
    })
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1000.0)
}

impl BenchReport {
    /// The table `resq bench` prints.
    pub fn table(&self) -> String {
        let base = self.prior_tract.median_ns;
        let ratio = |ns: f64| format!("{:.2}x", ns / base);
        let mut t = format!(
            "resq bench {} (kernels {}, method {})\n{:<40} {:>12} {:>12} {:>16}\n",
            self.bundle, self.kernels, self.method, "", "median", "p99.9", "vs tract prior"
        );
        let mut row = |name: &str, tm: Option<&Timing>, note: &str| match tm {
            Some(tm) => t.push_str(&format!(
                "{name:<40} {:>12} {:>12} {:>16}\n",
                us(tm.median_ns),
                tm.p999_ns.map_or("-".into(), us),
                ratio(tm.median_ns)
            )),
            None => t.push_str(&format!("{name:<40} {note}\n")),
        };
        row("prior alone, tract", Some(&self.prior_tract), "");
        let why = format!("runs through tract: {}", self.prior_fallback.as_deref().unwrap_or("?"));
        row("prior alone, resq kernels", self.prior_resq.as_ref(), &why);
        row("control step (prior, residual, act)", Some(&self.control_step), "");
        row(
            &format!("learner update (batch {})", self.batch),
            self.learner_update.as_ref(),
            "not measured: the bundle names no simulated robot to fill the replay",
        );
        if let Some(f) = &self.floor {
            t.push_str(&format!(
                "{:<40} {:>12} {:>12} {:>16}\n",
                format!("floor: read {:.0} KiB of weights", self.weight_bytes as f64 / 1024.0),
                us(f.median_ns),
                "-",
                format!("step {:.2}x floor", self.control_step.median_ns / f.median_ns)
            ));
        }
        let (m, k, n) = self.gemm_shape;
        t.push_str(&format!(
            "{:<40} {:>12.1} GFLOP/s (one thread; matrixmultiply {:.1})\n",
            format!("GEMM {m}x{k} by {k}x{n}"),
            self.gemm_gflops,
            self.gemm_gflops_matrixmultiply
        ));
        if let (Some(f), Some(r)) = (self.update_flops, self.update_gflops) {
            t.push_str(&format!(
                "{:<40} {:>12.1} GFLOP/s ({:.1} MFLOP; {:.0} % of the GEMM rate)\n",
                "learner update's products",
                r,
                f / 1e6,
                100.0 * self.update_vs_gemm().unwrap_or(0.0)
            ));
        }
        t.push_str(&format!(
            "{:<40} {:>12.1} MiB (peak {:.1} MiB)\n",
            "resident memory", self.rss_mib, self.peak_rss_mib
        ));
        t.push_str(&format!(
            "{:<40} {:>12.1} MiB when full ({:.0} bytes a transition)\n",
            format!("replay, {} transitions", self.replay_capacity),
            self.replay_bytes as f64 / (1024.0 * 1024.0),
            self.replay_bytes as f64 / self.replay_capacity.max(1) as f64
        ));
        t
    }

    /// The update's GEMM rate over the better single-thread GEMM rate measured in the run.
    pub fn update_vs_gemm(&self) -> Option<f64> {
        self.update_gflops.map(|r| r / self.gemm_gflops.max(self.gemm_gflops_matrixmultiply))
    }

    /// The JSON `--json` writes: every figure, in ns, and the ratios to tract's prior.
    pub fn to_json(&self) -> serde_json::Value {
        let tm = |t: &Timing| json!({"median_ns": t.median_ns, "p999_ns": t.p999_ns});
        let base = self.prior_tract.median_ns;
        json!({
            "bundle": self.bundle,
            "kernels": self.kernels,
            "method": self.method,
            "prior_tract": tm(&self.prior_tract),
            "prior_resq": self.prior_resq.as_ref().map(tm),
            "prior_fallback": self.prior_fallback,
            "control_step": tm(&self.control_step),
            "weight_bytes": self.weight_bytes,
            "floor": self.floor.as_ref().map(tm),
            "learner_update": self.learner_update.as_ref().map(tm),
            "learner_update_flops": self.update_flops,
            "learner_update_gflops": self.update_gflops,
            "batch": self.batch,
            "gemm": {
                "shape": [self.gemm_shape.0, self.gemm_shape.1, self.gemm_shape.2],
                "gflops": self.gemm_gflops,
                "gflops_matrixmultiply": self.gemm_gflops_matrixmultiply,
            },
            "rss_mib": self.rss_mib,
            "peak_rss_mib": self.peak_rss_mib,
            "replay": {"capacity": self.replay_capacity, "bytes_when_full": self.replay_bytes},
            "ratios": {
                "prior_resq_vs_tract": self.prior_resq.as_ref().map(|t| t.median_ns / base),
                "control_step_vs_tract_prior": self.control_step.median_ns / base,
                "control_step_vs_floor": self.floor.as_ref().map(|f| self.control_step.median_ns / f.median_ns),
                "learner_update_vs_gemm": self.update_vs_gemm(),
            },
        })
    }
}

/// `resq bench`: measures the bundle (with `sets` applied) and prints the table; also writes
/// the figures as JSON to `json`.
pub fn command(bundle: &Path, json: Option<PathBuf>, sets: &[String]) -> Result<()> {
    let load = || -> Result<Bundle> { Ok(Bundle::load_with(bundle, sets)?) };
    let scratch = tempfile::tempdir()?;
    eprintln!("measuring {} (a short customization fills the replay first) ...", bundle.display());
    let r = run(&load, scratch.path(), 0)?;
    print!("{}", r.table());
    if let Some(path) = json {
        crate::session::report::write_json(&path, &r.to_json())?;
        println!("json: {}", path.display());
    }
    Ok(())
}
