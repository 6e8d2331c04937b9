//! Control-step and learner-update benchmarks, with tract running the same prior in the same
//! run as the baseline.
//!
//!     cargo bench --bench control_step
//!
//! - `prior/tract`: tract's optimised plan on the CartPole prior, batch 1 (the baseline);
//! - `prior/resq`: the same prior on resq's compiled kernels;
//! - `control_step/resq`: a whole tick — observe, prior, residual, policy, action;
//! - `learner/update`: one residual soft-Q update (batch and net from the manifest);
//! - `learner/update_256`: the same at robot size (models/cartpole-256: 2×256 head, batch 64,
//!   10-step returns), the update `scripts/bench_baselines.py` runs in PyTorch;
//! - `sac_prior/tract`: tract running the MountainCar SAC actor (mean, log-std), batch 1;
//! - `control_step/sampled_k{8,16,32}`: a continuous tick — prior, K candidates, K residual
//!   evaluations, importance-weighted choice.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use resq::algo::core::ResidualLearner;
use resq::algo::replay::Transition;
use resq::algo::rql_discrete::ResidualSoftQ;
use resq::control::{ActMode, Controller, PolicyChoice};
use resq::nn::Mlp;
use resq::session::customize::{make_learner, settings};
use resq::Bundle;

fn bundle() -> Bundle {
    Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole"))
        .expect("models/cartpole loads")
}

fn bundle_256() -> Bundle {
    Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-256"))
        .expect("models/cartpole-256 loads")
}

/// A CartPole soft-Q learner with `s`'s sizes and 10 000 transitions in its replay (episodes of
/// 200 steps), ready to update.
fn filled_soft_q(s: resq::algo::core::Settings) -> ResidualSoftQ {
    let mut learner = ResidualSoftQ::new(s.clone(), 4, 2, 0);
    for i in 0..s.replay_capacity.min(10_000) {
        let o = [(i as f32 * 0.01).sin(), 0.1, -0.1, 0.2];
        learner.core.replay.push(&Transition {
            obs: &o,
            action: i % 2,
            action_values: &[],
            pre_action: &[],
            next_candidates: &[],
            prior_params: &[],
            next_prior_params: &[],
            reward: -0.1,
            logp0_taken: -0.7,
            logpi_taken: -0.7,
            next_obs: &o,
            next_logp0: &[-0.7, -0.7],
            terminal: i % 200 == 199,
            truncated: false,
        });
    }
    learner
}

fn benches(c: &mut Criterion) {
    eprintln!("kernels: {}", resq::nn::kernels::isa().name());
    let mut b = bundle();
    let obs = [0.1f32, -0.2, 0.05, 0.3];
    let mut out = [0.0f32; 2];
    let mut g = c.benchmark_group("prior");
    g.bench_function("tract", |bch| bch.iter(|| b.prior.tract().run(black_box(&obs), &mut out).unwrap()));
    g.bench_function("resq", |bch| bch.iter(|| b.prior.raw(black_box(&obs), &mut out).unwrap()));
    g.finish();

    let b = bundle();
    let s = settings(&b);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let residual = Mlp::new(&[4, s.hidden[0], s.hidden[1], 2], b.hidden_activation, false, &mut rng);
    let mut ctl = Controller::new(b, residual);
    let signals = [0.1f32, -0.2, 0.05, 0.3];
    c.bench_function("control_step/resq", |bch| {
        bch.iter(|| {
            black_box(ctl.step(black_box(&signals), PolicyChoice::Customized, ActMode::Sample, &mut rng))
        })
    });

    for (name, s) in [("learner/update", s.clone()), ("learner/update_256", settings(&bundle_256()))] {
        let mut learner = filled_soft_q(s);
        c.bench_function(name, |bch| bch.iter(|| black_box(learner.update())));
    }

    // Continuous actions: the MountainCar SAC prior alone through tract (baseline), whole ticks
    // of the sampled residual with K candidates and of residual SAC, and learner updates.
    let mc = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar");
    let b = Bundle::load(&mc).expect("models/mountaincar loads");
    let obs = [-0.5f32, 0.01];
    let mut out = [0.0f32; 2];
    c.bench_function("sac_prior/tract", |bch| {
        bch.iter(|| b.prior.tract().run(black_box(&obs), &mut out).unwrap())
    });
    for k in [8, 16, 32] {
        let b = Bundle::load_with(
            &mc,
            &[format!("residual.candidates={k}"), "residual.method=\"sampled\"".into()],
        )
        .unwrap();
        let s = settings(&b);
        let residual = Mlp::new(&[3, s.hidden[0], s.hidden[1], 1], b.hidden_activation, false, &mut rng);
        let mut ctl = Controller::new(b, residual);
        let signals = [-0.5f32, 0.01];
        c.bench_function(&format!("control_step/sampled_k{k}"), |bch| {
            bch.iter(|| {
                black_box(ctl.step(black_box(&signals), PolicyChoice::Customized, ActMode::Sample, &mut rng))
            })
        });
    }
    let b = Bundle::load_with(&mc, &["residual.method=\"sac\"".into()]).unwrap();
    let s = settings(&b);
    let residual = Mlp::new(&[3, s.hidden[0], s.hidden[1], 1], b.hidden_activation, false, &mut rng);
    let mut ctl = Controller::new(b, residual);
    ctl.set_actor(Mlp::new(&[2, s.hidden[0], s.hidden[1], 2], s.activation, false, &mut rng));
    let signals = [-0.5f32, 0.01];
    c.bench_function("control_step/sac", |bch| {
        bch.iter(|| {
            black_box(ctl.step(black_box(&signals), PolicyChoice::Customized, ActMode::Sample, &mut rng))
        })
    });

    // Learner updates (batch and sizes of the bundle) on a replay filled by the controller.
    for method in ["sampled", "sac"] {
        let b = Bundle::load_with(&mc, &[format!("residual.method={method:?}")]).unwrap();
        let mut learner = make_learner(&b, 0);
        let mut ctl = Controller::new(b, learner.core().online.clone());
        let layout = learner.core().replay.layout();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
        for i in 0..5000 {
            let o = [-0.5 + 0.3 * (i as f32 * 0.01).sin(), 0.01 * (i as f32 * 0.02).cos()];
            let d = ctl.step(&o, PolicyChoice::Customized, ActMode::Sample, &mut rng);
            let sa = ctl.continuous.as_ref().unwrap();
            let (a, u, params) = (sa.action.clone(), sa.pre_action.clone(), sa.gauss.clone());
            let obs = ctl.res_obs.clone();
            ctl.observe(&[o[0] + 0.001, o[1]]);
            let sa = ctl.continuous.as_ref().unwrap();
            learner.core_mut().replay.push(&Transition {
                obs: &obs,
                action: d.action,
                action_values: &a,
                pre_action: &u,
                next_candidates: &sa.candidates[..layout.cand_width],
                prior_params: &params[..layout.param_width],
                next_prior_params: &sa.gauss[..layout.param_width],
                reward: -0.1,
                logp0_taken: d.logp0_taken,
                logpi_taken: d.logpi_taken,
                next_obs: &ctl.res_obs,
                next_logp0: &ctl.logp0,
                terminal: false,
                truncated: i % 999 == 998,
            });
        }
        c.bench_function(&format!("learner/update_{method}"), |bch| bch.iter(|| black_box(learner.update())));
    }
}

/// Each kernel this CPU has, on the shapes of a robot-sized network (batch 1: 256×256 and
/// 4×256; 16 rows: the sampled method's candidates), so the dispatch choice is measured, not
/// assumed.
fn kernels(c: &mut Criterion) {
    use resq::nn::kernels::available;
    let mut g = c.benchmark_group("kernels");
    for &(rows, n_in, n_out) in &[(1usize, 256usize, 256usize), (1, 4, 256), (1, 256, 2), (16, 256, 256)] {
        let x: Vec<f32> = (0..rows * n_in).map(|i| (i as f32 * 0.37).sin()).collect();
        let wt: Vec<f32> = (0..n_in * n_out).map(|i| (i as f32 * 0.11).cos() * 0.1).collect();
        let b = vec![0.1f32; n_out];
        let mut y = vec![0.0f32; rows * n_out];
        for isa in available() {
            let k = isa.kernels().unwrap();
            let (one, many) = (k.affine, k.rows);
            let name = format!("{}x{}x{}/{}", rows, n_in, n_out, isa.name());
            if rows == 1 {
                g.bench_function(&name, |bch| bch.iter(|| one(black_box(&x), &wt, &b, &mut y)));
            } else {
                g.bench_function(&name, |bch| bch.iter(|| many(black_box(&x), rows, &wt, &b, &mut y)));
            }
        }
    }
    g.finish();

    // The learner's GEMM (each instruction set, and matrixmultiply as the reference) on the
    // robot-sized update's largest product: 640 rows (64 × 10-step returns) of a 256×256 layer.
    use ndarray::Array2;
    use resq::nn::kernels::gemm::{gemm_on, pack_len, Init};
    let mut g = c.benchmark_group("gemm");
    let (m, k, n) = (640, 256, 256);
    let x = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = Array2::from_shape_fn((k, n), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut y = Array2::<f32>::zeros((m, n));
    let mut pack = vec![0.0f32; pack_len(m, k, n)];
    for isa in available() {
        let kernel = isa.kernels().unwrap().gemm;
        g.bench_function(format!("{m}x{k}x{n}/{}", isa.name()), |bch| {
            bch.iter(|| {
                gemm_on(kernel, black_box(x.view()), w.view(), y.view_mut(), Init::Overwrite, &mut pack)
            })
        });
    }
    g.bench_function(format!("{m}x{k}x{n}/matrixmultiply"), |bch| {
        bch.iter(|| black_box(x.dot(black_box(&w))))
    });
}

criterion_group!(name = group; config = Criterion::default().sample_size(50); targets = benches, kernels);
criterion_main!(group);
