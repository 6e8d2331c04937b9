//! "Never worse than the prior on the way", for a prior of each common origin, with its bundle's
//! defaults (no per-prior tuning). Each run evaluates its policy every 1 000 steps (the learning
//! curve) and must hold, at every point:
//! - the success rate ≥ the prior's − 0.05;
//! - the add-on return no more than 20 % worse than the prior's (`(prior − point)/|prior| ≤ 0.2`;
//!   the plain Gaussian prior misses this, see its test);
//! - where the task is a metric rather than success (Pendulum: time upright), that metric ≥ 0.9×
//!   the prior's;
//!
//! and its training episodes may fail no more often than the prior as deployed, + 0.05.
//!
//! The origins: a soft-Q prior (the project's), a plain DQN (Stable-Baselines3, `temperature =
//! "auto"`), behaviour-cloned logits, a PPO actor's logits (Stable-Baselines3), a SAC actor, a
//! plain Gaussian actor and a deterministic behaviour clone. docs/results/priors.md ("By
//! prior origin") gives the same rule over five seeds (`scripts/steps_to_customize.py`).

use std::path::Path;

use resq::session::customize::{self, Options, Outcome};
use resq::Bundle;

mod common;
use common::bundles::{
    root, write_sb3_dqn_cartpole, write_sb3_ppo_cartpole, write_sb3_ppo_pendulum, write_sb3_sac_pendulum,
};

const EVAL_EVERY: u64 = 1_000;

/// Customizes `b` for `steps` with a learning curve, and asserts the rule above, with the add-on
/// return allowed `max_shortfall` worse than the prior's (0.2 but for one origin, below).
fn never_worse(name: &str, b: Bundle, steps: u64, task_metric: Option<&str>, max_shortfall: f64) -> Outcome {
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        fresh: true,
        eval_episodes: Some(20),
        eval_every: EVAL_EVERY,
        ..Options::new(steps, 0, out.path())
    };
    let o = customize::run(b, &opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(!o.diverged, "{name}: diverged");
    assert!(o.curve.len() as u64 >= steps / EVAL_EVERY - 1, "{name}: {} curve points", o.curve.len());
    let prior = &o.prior;
    let task = |m: &serde_json::Map<String, serde_json::Value>| task_metric.map(|k| m[k].as_f64().unwrap());
    let prior_task = task(&prior.to_map());
    for p in &o.curve {
        let at = p["env_steps"].as_u64().unwrap();
        let success = p["success_rate"].as_f64().unwrap();
        let shortfall = (prior.addon_return - p["addon_return"].as_f64().unwrap()) / prior.addon_return.abs();
        eprintln!("{name} @ {at}: success {success:.2} (prior {:.2}), add-on shortfall {shortfall:+.3}, task {:?} (prior {prior_task:?})",
            prior.success_rate, task(p));
        assert!(
            success >= prior.success_rate - 0.05,
            "{name} @ {at}: success {success} vs the prior's {}",
            prior.success_rate
        );
        assert!(
            shortfall <= max_shortfall,
            "{name} @ {at}: add-on return {shortfall:+.3} worse than the prior's"
        );
        if let (Some(t), Some(t0)) = (task(p), prior_task) {
            assert!(t >= 0.9 * t0, "{name} @ {at}: {} {t} vs the prior's {t0}", task_metric.unwrap());
        }
    }
    let deployed = 1.0 - prior.success_rate;
    eprintln!(
        "{name}: {} of {} training episodes failed ({:.3}; the prior as deployed {deployed:.3})",
        o.history.episodes_failed(),
        o.history.episode_success.len(),
        o.history.failure_rate()
    );
    assert!(
        o.history.failure_rate() <= deployed + 0.05,
        "{name}: training failure rate {}",
        o.history.failure_rate()
    );
    o
}

fn bundle(dir: &Path, overrides: &[&str]) -> Bundle {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Bundle::load_with(dir, &o).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn soft_q_prior() {
    never_worse("soft Q", bundle(&root().join("models/cartpole"), &[]), 6_000, None, 0.2);
}

#[test]
fn plain_dqn_prior_with_auto_temperature() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_dqn_cartpole(dir.path());
    never_worse("DQN", bundle(dir.path(), &["prior.temperature=\"auto\""]), 6_000, None, 0.2);
}

#[test]
fn behaviour_cloned_logits() {
    never_worse("BC logits", bundle(&root().join("models/cartpole-bc"), &[]), 6_000, None, 0.2);
}

/// Stable-Baselines3 PPO's actor (`scripts/train_sb3_ppo_cartpole.py`): logits over raw
/// observations.
#[test]
fn ppo_actor_logits() {
    let dir = tempfile::tempdir().unwrap();
    write_sb3_ppo_cartpole(dir.path());
    never_worse("PPO logits", bundle(dir.path(), &[]), 6_000, None, 0.2);
}

#[test]
fn sac_actor() {
    never_worse("SAC", bundle(&root().join("models/pendulum"), &[]), 10_000, Some("upright_fraction"), 0.2);
}

/// The one origin that misses the add-on part of the rule: right after its actor starts
/// learning (2 000 steps) the torque² gets worse before it gets better, +21 % on this seed and
/// up to +71 % over five (docs/results/priors.md, "By prior origin"). The task (time upright) and
/// the training episodes keep the rule; the add-on is held to a stated +50 % here.
#[test]
fn plain_gaussian_actor() {
    let b = bundle(&root().join("models/pendulum-gaussian"), &[]);
    never_worse("Gaussian", b, 10_000, Some("upright_fraction"), 0.5);
}

#[test]
fn deterministic_behaviour_clone() {
    let b = bundle(&root().join("models/pendulum-bc"), &[]);
    never_worse("deterministic BC", b, 10_000, Some("upright_fraction"), 0.2);
}

/// Stable-Baselines3's continuous Pendulum actors (`scripts/train_sb3_pendulum.py`) with
/// docs/priors.md's recipe for them, `kl_per_step = 2` (the SAC actor at ω' = α̂ = the entropy
/// coefficient it ended training with and `kl_rate = 0.0003`; the PPO actor at
/// `models/pendulum-gaussian`'s 0.03), save
/// energy within 20 000 steps: torque² at most the task's bar times the prior's (PPO 0.6, SAC
/// `models/pendulum`'s 0.8), the time upright at least 0.9× the prior's (the SAC actor's at every
/// curve point too), every curve point (one every 5 000 steps) and training episode successful.
/// Evaluated every 1 000 steps, the PPO actor's curve dips below 0.9× the prior's time upright
/// once, early (docs/results/priors.md, "Stable-Baselines3's continuous actors"), so the
/// never-worse rule is not asserted for it.
#[test]
fn sb3_continuous_actors_save_energy_with_the_recipe() {
    type Write = fn(&Path, f32);
    let origins: [(&str, Write, f64); 2] =
        [("SB3 PPO Gaussian", write_sb3_ppo_pendulum, 0.6), ("SB3 SAC", write_sb3_sac_pendulum, 0.8)];
    for (name, write, bar) in origins {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 2.0);
        let out = tempfile::tempdir().unwrap();
        let opts = Options {
            fresh: true,
            eval_episodes: Some(20),
            eval_every: 5_000,
            ..Options::new(20_000, 0, out.path())
        };
        let o = customize::run(bundle(dir.path(), &[]), &opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let (p, c) = (o.prior.to_map(), o.customized.to_map());
        let ratio = |k: &str| c[k].as_f64().unwrap() / p[k].as_f64().unwrap();
        let (torque, upright) = (ratio("mean_torque_sq"), ratio("upright_fraction"));
        eprintln!("{name}: torque² {torque:.3}x, upright {upright:.3}x the prior's");
        assert!(torque <= bar, "{name}: torque² {torque:.3}x the prior's, the bar {bar}");
        assert!(upright >= 0.9, "{name}: time upright {upright:.3}x the prior's");
        assert!(o.curve.iter().all(|pt| pt["success_rate"].as_f64() == Some(1.0)), "{name}: {:?}", o.curve);
        assert_eq!(o.history.episodes_failed(), 0, "{name}");
        if name == "SB3 SAC" {
            // At the slower multiplier the SAC actor keeps its task at every point.
            let prior_upright = p["upright_fraction"].as_f64().unwrap();
            for pt in &o.curve {
                let u = pt["upright_fraction"].as_f64().unwrap() / prior_upright;
                assert!(u >= 0.9, "{name} @ {}: time upright {u:.3}x the prior's", pt["env_steps"]);
            }
        }
    }
}

/// What resq reads of a prior's confidence before it customizes (`session::confidence`): the
/// project's soft-Q and behaviour-cloned CartPole priors are not confident (median gap between
/// their best and second action about 2 nats on the states they visit), the SB3 PPO actor is
/// (about 4.6), and the report says so with the settings it will use; SB3's PPO Gaussian
/// Pendulum actor is not (std a sixth of the half-range), and the reading names its KL target.
#[test]
fn the_report_reads_the_priors_confidence() {
    let read = |b: Bundle| {
        let out = tempfile::tempdir().unwrap();
        let opts = Options { fresh: true, eval_episodes: Some(5), ..Options::new(200, 0, out.path()) };
        let o = customize::run(b, &opts).unwrap();
        let json = resq::session::report::to_json("c", 0, &o);
        (
            o.prior_confidence.expect("measured"),
            json["prior_confidence"]["reading"].as_str().unwrap().to_string(),
        )
    };
    for model in ["cartpole", "cartpole-bc"] {
        let (c, reading) = read(bundle(&root().join("models").join(model), &[]));
        assert!(!c.confident && (1.0..3.0).contains(&c.median), "{model}: {c:?}");
        assert!(reading.contains("not a confident prior") && reading.contains("omega' = 1"), "{reading}");
    }
    let dir = tempfile::tempdir().unwrap();
    write_sb3_ppo_cartpole(dir.path());
    let (c, reading) = read(bundle(dir.path(), &[]));
    assert!(c.confident && c.median > 4.0 && c.states >= 5 * 500, "{c:?}");
    assert!(reading.contains("a confident prior") && reading.contains("docs/priors.md"), "{reading}");
    // SB3's PPO Gaussian Pendulum actor: std 0.33 N·m, a sixth of the half-range; the reading
    // points at the KL target that moved it.
    let dir = tempfile::tempdir().unwrap();
    write_sb3_ppo_pendulum(dir.path(), 0.0);
    let (c, reading) = read(bundle(dir.path(), &[]));
    assert!(!c.confident && (0.15..0.18).contains(&c.median), "{c:?}");
    assert!(reading.contains("not a confident prior") && reading.contains("kl_per_step = 2"), "{reading}");
}
