//! The control path allocates nothing after warm-up: a counting global allocator watches one
//! thread while the controller runs full ticks (observe → prior → residual → KL-budgeted action
//! choice → supervisor), the add-on reward is evaluated and the transition is stored.

use std::path::Path;

use rand::SeedableRng;
use resq::algo::replay::{Layout, Replay, Transition};
use resq::control::{ActMode, Controller, PolicyChoice, Supervisor};
use resq::nn::{Activation, Mlp};
use resq::robot::{Env, SimEnv};
use resq::Bundle;

mod common;
use common::alloc::{allocations_during, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the guard: an allocation on the watched thread is counted.
    let n = allocations_during(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert!(n >= 1);
}

#[test]
fn control_tick_allocates_nothing_after_warm_up() {
    discrete_ticks_allocate_nothing("models/cartpole");
}

/// The robot-sized step of `resq bench models/cartpole-256`: prior 4-256-256-2 on resq's kernels,
/// residual 2×256, action choice.
#[test]
fn a_robot_sized_control_tick_allocates_nothing() {
    discrete_ticks_allocate_nothing("models/cartpole-256");
}

/// Full discrete ticks of `bundle` (a CartPole one) with a random (non-zero) residual head.
fn discrete_ticks_allocate_nothing(bundle: &str) {
    let bundle = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(bundle)).unwrap();
    assert!(bundle.prior.is_realtime_safe(), "the CartPole prior must run on resq's kernels");
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
    // A residual with non-zero output so the KL-budget path (bisection) runs too.
    let residual = Mlp::new(&[4, 64, 64, 2], Activation::Relu, false, &mut rng);
    let (n_obs, n_act) = (bundle.obs.len(), bundle.n_actions());
    let mut ctl = Controller::new(bundle, residual);
    ctl.kl_budget = 1e-4;
    let mut env = SimEnv::new("cartpole", 500, 1).unwrap();
    let mut replay = Replay::new(1000, Layout { n_obs, n_actions: n_act, ..Layout::default() });
    let mut vals = vec![0.0; ctl.bundle.vars.len()];
    let mut terms = vec![0.0; ctl.bundle.addon.terms.len()];
    let mut obs = vec![0.0; n_obs];
    let mut next_logp0 = vec![0.0; n_act];
    let mut supervisor = Supervisor::for_bundle(&ctl.bundle);
    let mut tick = |ctl: &mut Controller, env: &mut SimEnv| {
        obs.copy_from_slice(&ctl.res_obs);
        let d = ctl.step(env.signals(), PolicyChoice::Customized, ActMode::Sample, &mut rng);
        let cmd = ctl.bundle.action_table[d.action][0];
        let mut sent = [0.0f32];
        supervisor.filter(&[cmd], &mut sent);
        let end = env.step(&sent).unwrap();
        ctl.bundle.vars.fill(env.signals(), &[cmd], &[0.0], &mut vals);
        let r = ctl.bundle.addon.eval(&vals, &mut terms);
        ctl.observe(env.signals());
        next_logp0.copy_from_slice(&ctl.logp0);
        replay.push(&Transition {
            obs: &obs,
            action: d.action,
            action_values: &[],
            pre_action: &[],
            next_candidates: &[],
            prior_params: &[],
            next_prior_params: &[],
            reward: r,
            logp0_taken: d.logp0_taken,
            logpi_taken: d.logpi_taken,
            next_obs: &ctl.res_obs,
            next_logp0: &next_logp0,
            terminal: end.terminated,
            truncated: end.truncated,
        });
        if end.done() {
            env.reset().unwrap();
        }
        d
    };
    env.reset().unwrap();
    for _ in 0..100 {
        tick(&mut ctl, &mut env);
    }
    let mut blended = 0;
    let n = allocations_during(|| {
        for _ in 0..2000 {
            let d = tick(&mut ctl, &mut env);
            blended += (d.lambda < 1.0) as u32;
        }
    });
    assert_eq!(n, 0, "the control path allocated {n} times in 2000 ticks");
    assert!(blended > 0, "the KL-budget blend never ran, so it was not checked");
}

/// `residual.method = "plan"`: a tick searches the model (tree, rollouts, backup) and acts,
/// allocating nothing.
#[test]
fn a_planning_tick_allocates_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let overrides = ["residual.method=\"plan\"".to_string(), "plan.horizon=20".to_string()];
    let bundle = Bundle::load_with(&dir, &overrides).unwrap();
    let residual =
        Mlp::new(&[4, 64, 64, 2], Activation::Relu, true, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
    let mut ctl = Controller::new(bundle, residual);
    assert!(ctl.planner.is_some());
    let mut env = SimEnv::new("cartpole", 500, 1).unwrap();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
    env.reset().unwrap();
    let mut tick = |ctl: &mut Controller, env: &mut SimEnv| {
        let d = ctl.step(env.signals(), PolicyChoice::Customized, ActMode::Sample, &mut rng);
        assert!(!d.fallback, "the search gave a usable Q_R");
        let cmd = [ctl.bundle.action_table[d.action][0]];
        if env.step(&cmd).unwrap().done() {
            env.reset().unwrap();
        }
    };
    for _ in 0..10 {
        tick(&mut ctl, &mut env);
    }
    let n = allocations_during(|| {
        for _ in 0..200 {
            tick(&mut ctl, &mut env);
        }
    });
    assert_eq!(n, 0, "a planning tick allocated {n} times in 200 ticks");
}

/// Continuous ticks of `method` over the MountainCar SAC prior, with random (non-zero) heads.
fn continuous_ticks_allocate_nothing(method: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar");
    let bundle = Bundle::load_with(&dir, &[format!("residual.method={method:?}")]).unwrap();
    assert!(bundle.prior.is_realtime_safe());
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
    let residual = Mlp::new(&[3, 64, 64, 1], Activation::Relu, false, &mut rng);
    let mut ctl = Controller::new(bundle, residual);
    if method == "sac" || method == "rpg" {
        ctl.set_actor(Mlp::new(&[2, 64, 64, 2], Activation::Relu, false, &mut rng));
    }
    let mut supervisor = Supervisor::for_bundle(&ctl.bundle);
    let mut env = SimEnv::new("mountaincar", 999, 2).unwrap();
    let mut sent = [0.0f32];
    let mut tick = |ctl: &mut Controller, env: &mut SimEnv, mode: ActMode| {
        ctl.step(env.signals(), PolicyChoice::Customized, mode, &mut rng);
        supervisor.filter(&ctl.command, &mut sent);
        if env.step(&sent).unwrap().done() {
            env.reset().unwrap();
        }
    };
    env.reset().unwrap();
    for _ in 0..100 {
        tick(&mut ctl, &mut env, ActMode::Sample);
    }
    let n = allocations_during(|| {
        for i in 0..2000 {
            tick(&mut ctl, &mut env, if i % 2 == 0 { ActMode::Sample } else { ActMode::Greedy });
        }
    });
    assert_eq!(n, 0, "the {method} control path allocated {n} times in 2000 ticks");
}

/// The sampled actor: prior → K candidates → K residual evaluations → weighted choice.
#[test]
fn sampled_control_tick_allocates_nothing_after_warm_up() {
    continuous_ticks_allocate_nothing("sampled");
}

/// Residual SAC: prior → actor offsets → one draw.
#[test]
fn sac_control_tick_allocates_nothing_after_warm_up() {
    continuous_ticks_allocate_nothing("sac");
}

/// Residual policy gradient, Gaussian: prior → offsets to its mean and log-std → one draw.
#[test]
fn rpg_continuous_control_tick_allocates_nothing_after_warm_up() {
    continuous_ticks_allocate_nothing("rpg");
}

/// Residual policy gradient, discrete: prior → logit offsets → KL-budgeted choice.
#[test]
fn rpg_discrete_control_tick_allocates_nothing_after_warm_up() {
    discrete_ticks_allocate_nothing("models/cartpole-rpg");
}

/// The loop's side of a learner thread: handing a transition over the queue and taking new
/// weights from the triple buffer allocate nothing.
#[test]
fn handing_over_to_a_learner_thread_allocates_nothing() {
    use resq::session::learning::{LoopLearning, Message, ThreadSide, Weights, QUEUE_LEN};
    let bundle = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mountaincar")).unwrap();
    let learner = resq::session::customize::make_learner(&bundle, 0);
    let layout = learner.core().replay.layout();
    let mut ctl = Controller::new(bundle, learner.core().online.clone());
    ctl.set_actor(learner.actor().unwrap().clone());
    let mut queue: Box<heapless::spsc::Queue<Message, QUEUE_LEN>> = Box::new(heapless::spsc::Queue::new());
    let (tx, mut rx) = queue.split();
    let (mut w_in, w_out) = triple_buffer::triple_buffer(&Weights::of(learner.as_ref()));
    let mut side = ThreadSide::new(tx, w_out, layout);
    let v = vec![0.25f32; 64];
    let t = Transition {
        obs: &v[..layout.n_obs],
        action: 0,
        action_values: &v[..layout.act_dim],
        pre_action: &v[..layout.act_dim],
        next_candidates: &v[..layout.cand_width],
        prior_params: &v[..layout.param_width],
        next_prior_params: &v[..layout.param_width],
        reward: -0.1,
        logp0_taken: -1.0,
        logpi_taken: -1.0,
        next_obs: &v[..layout.n_obs],
        next_logp0: &v[..layout.n_actions],
        terminal: false,
        truncated: false,
    };
    let n = allocations_during(|| {
        for i in 0..1000u64 {
            side.transition(&t, i).unwrap();
            if i % 100 == 99 {
                side.episode_end(100, -0.1, true).unwrap();
            }
            // The learner's end (here on the same thread): take the messages, publish weights.
            while rx.dequeue().is_some() {}
            w_in.publish();
            side.between_ticks(&mut ctl).unwrap();
        }
    });
    assert_eq!(n, 0, "handing over allocated {n} times in 1000 ticks");
    assert_eq!(side.dropped, 0);
}

/// A learner update allocates nothing after the learner is made: every batched pass, the
/// backward pass, the GEMMs' packing and Adam work in buffers allocated once. Checked for
/// residual soft-Q at robot size (models/cartpole-256: 2×256 head, batch 64, 10-step returns,
/// `resq bench`'s update) and for the sampled residual Q on MountainCar. (Residual SAC and RPG
/// still allocate per update; see docs/results/performance.md.)
#[test]
fn learner_updates_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (bundle, overrides) in [
        ("models/cartpole-256", vec![]),
        ("models/mountaincar", vec!["residual.method=\"sampled\"".to_string()]),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(bundle);
        let load = || Bundle::load_with(&path, &overrides);
        let b = load().unwrap();
        let l = &b.manifest.learning;
        // Enough steps to fill the replay past its warm-up (RPG: two rollouts, so that a phase
        // of minibatch steps is under way) and take a few updates.
        let steps = match b.method {
            resq::bundle::Method::Rpg => 2 * l.rollout as u64 + 2,
            _ => (l.warmup.max(l.batch) + 2 * l.batch) as u64,
        };
        let opts = resq::session::customize::Options {
            fresh: true,
            eval_episodes: Some(1),
            ..resq::session::customize::Options::new(steps, 0, dir.path().join(bundle.replace('/', "-")))
        };
        let mut learner = resq::session::customize::run(load().unwrap(), &opts).unwrap().learner;
        assert!(learner.update().is_some(), "{bundle} {overrides:?}: the learner is ready");
        let mut updates = 0;
        let n = allocations_during(|| {
            for _ in 0..20 {
                updates += learner.update().is_some() as usize;
            }
        });
        assert!(updates >= 10, "{bundle} {overrides:?}: only {updates} of 20 updates ran");
        assert_eq!(n, 0, "{bundle} {overrides:?}: {n} allocations in 20 updates");
    }
}
