//! Zero-shot customization by planning (`residual.method = "plan"`, `control::plan`): the
//! search's backup checked against a recursive computation on the plant itself, and the robot
//! checked by what it does: CartPole "more centre" nearer the centre with its task kept and
//! nothing learned.

mod common;

use resq::control::plan::{PlanSettings, Planner};
use resq::policy::discrete::soft_value;
use resq::session::customize::{self, Options};
use resq::Bundle;
use sim_robot::plant::{CartPole, Plant};

fn cartpole(extra: &[&str]) -> Bundle {
    let mut overrides = vec!["residual.method=\"plan\"".to_string()];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    Bundle::load_with(&common::bundles::root().join("models/cartpole"), &overrides).unwrap()
}

/// `V(s)` to `depth` steps with no rollouts beyond (their value 0), by recursion on a copy of
/// the plant: `Q(s,a) = r_R + γ(1−d)·V(s')`, `V = α̂·log Σ_a exp((Q + ω'·log π0)/α̂)`.
fn q_by_recursion(b: &mut Bundle, state: [f64; 4], prev: f32, depth: usize) -> Vec<f64> {
    let (omega, alpha) = b.acting_weights();
    let gamma = b.manifest.residual.gamma as f64;
    let mut q = Vec::new();
    for a in 0..b.n_actions() {
        let mut p = CartPole { state };
        let cmd = b.action_table[a].clone();
        let done = p.step(&cmd);
        let mut sig = [0.0f32; 4];
        p.signals(&mut sig);
        let mut vals = vec![0.0; b.vars.len()];
        b.vars.fill(&sig, &cmd, &[prev], &mut vals);
        let mut terms = vec![0.0; b.addon.terms.len()];
        let r = b.addon.eval(&vals, &mut terms) as f64;
        let next = if done || depth == 1 {
            0.0
        } else {
            let qn = q_by_recursion(b, sig.map(|v| v as f64), cmd[0], depth - 1);
            let mut obs = vec![0.0; b.obs.len()];
            b.obs.observe(&sig, &mut obs);
            let mut lp = vec![0.0f32; b.n_actions()];
            b.prior.log_probs(&obs, &mut lp).unwrap();
            let lp: Vec<f64> = lp.iter().map(|v| *v as f64).collect();
            soft_value(&qn, &lp, omega as f64, alpha as f64)
        };
        q.push(r + gamma * next);
    }
    q
}

/// With no rollouts beyond the tree (horizon 0), the search's `Q_R` at the root is the exact
/// depth-limited residual soft value, computed here by recursion on the plant.
#[test]
fn the_search_backs_up_the_residual_soft_value_exactly() {
    // (A failure valued at 0, RQL as written: the recursion below adds no failure value.)
    let mut b = cartpole(&["residual.omega=0.7", "residual.alpha=0.4", "residual.failure_value=0"]);
    let settings =
        PlanSettings { depth: 3, horizon: 0, rollouts: 1, budget: std::time::Duration::from_secs(1) };
    let mut planner = Planner::for_bundle(&b, settings).expect("cartpole has a model");
    for state in [[0.3f64, -0.2, 0.05, 0.1], [-1.0, 0.5, -0.1, -0.3], [2.35, 1.0, 0.0, 0.0]] {
        let signals = state.map(|v| v as f32);
        // The plant's state as the signals show it (f32), as the planner sees it.
        let seen = signals.map(|v| v as f64);
        let mut q = vec![0.0f32; 2];
        assert!(planner.q(&mut b, &signals, &[10.0], &mut q));
        let want = q_by_recursion(&mut b, seen, 10.0, 3);
        for (got, want) in q.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-4, "state {state:?}: search {q:?}, recursion {want:?}");
        }
    }
}

/// A failure is worth to the search what training makes it (`residual.failure_value`, default
/// the worst add-on forever): near the track's end, where every branch leaves it, the search's
/// `Q_R` lies far below the same search's with failures valued at 0, so leaving the track is
/// never its cheap way out of the penalty.
#[test]
fn the_search_values_a_failure_as_training_does() {
    let settings =
        PlanSettings { depth: 3, horizon: 0, rollouts: 1, budget: std::time::Duration::from_secs(1) };
    let leaving = [2.38f32, 1.5, 0.0, 0.0];
    let q = |extra: &[&str]| {
        let mut b = cartpole(extra);
        let mut p = Planner::for_bundle(&b, settings).unwrap();
        let mut q = vec![0.0f32; 2];
        // A state well inside first: the search's worst add-on so far (as training's).
        assert!(p.q(&mut b, &[0.0, 0.0, 0.0, 0.0], &[0.0], &mut q));
        assert!(p.q(&mut b, &leaving, &[0.0], &mut q));
        q
    };
    let (worst, zero) = (q(&[]), q(&["residual.failure_value=0"]));
    for (w, z) in worst.iter().zip(&zero) {
        assert!(*w < z - 1.0, "a failure valued {worst:?} against {zero:?} at 0");
    }
}

/// CartPole "more centre" by planning alone: mean |x| at most 0.6× the prior's with the pole
/// kept up, zero learning steps, and every decision searched.
#[test]
fn planning_alone_brings_the_cart_nearer_the_centre() {
    let b = cartpole(&[]);
    let out = tempfile::tempdir().unwrap();
    let opts = Options { eval_episodes: Some(5), ..Options::new(20_000, common::seed(0), out.path()) };
    let o = customize::run(b, &opts).unwrap();
    assert_eq!((o.env_steps, o.updates), (0, 0), "nothing learned");
    let x = |e: &resq::session::evaluate::PolicyEval| {
        e.metrics.iter().find(|(k, _)| k == "mean_abs_x").unwrap().1
    };
    let ratio = x(&o.customized) / x(&o.prior);
    common::figure("cartpole plan mean |x| ratio", ratio, "<=", 0.6);
    assert!(ratio <= 0.6, "mean |x| {ratio:.3}x the prior's");
    assert!(o.customized.success_rate >= 0.95, "success {}", o.customized.success_rate);
    let plan = o.controller.planner.as_ref().expect("a planner");
    assert!(plan.searches.len() >= 5 * 500, "{} decisions searched", plan.searches.len());
}
