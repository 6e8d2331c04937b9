//! resq's CartPole against gymnasium's CartPole-v1: trajectories recorded from gymnasium by
//! scripts/record_gym_cartpole.py (state after every step, terminated/truncated flags) are
//! stepped by resq's plant from each recorded state with the recorded action.

use resq::robot::StepEnd;
use sim_robot::plant::{CartPole, Plant};

/// Each step starts from gymnasium's recorded state, so the check is of the one-step dynamics.
/// (Replaying the actions open loop cannot work: the inverted pendulum grows any last-bit
/// difference between libm's and numpy's sin/cos by ~12 % per step.) Same f64 arithmetic, so
/// only last-bit differences remain; a wrong constant misses this by many orders.
const TOLERANCE: f64 = 1e-12;

#[derive(serde::Deserialize)]
struct Episode {
    initial_state: [f64; 4],
    actions: Vec<u8>,
    states: Vec<[f64; 4]>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

#[derive(serde::Deserialize)]
struct Recording {
    episodes: Vec<Episode>,
}

#[test]
fn matches_gymnasium_trajectories() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cartpole_gym_trajectories.json"
    ))
    .unwrap();
    let rec: Recording = serde_json::from_str(&text).unwrap();
    assert!(rec.episodes.len() >= 3);
    let (mut saw_terminated, mut saw_truncated, mut steps, mut worst) = (false, false, 0, 0.0f64);
    for (e, ep) in rec.episodes.iter().enumerate() {
        for (t, &a) in ep.actions.iter().enumerate() {
            let mut plant = CartPole { state: if t == 0 { ep.initial_state } else { ep.states[t - 1] } };
            // gymnasium's action 1 pushes right with 10 N, action 0 left.
            let terminated = plant.step(&[if a == 1 { 10.0 } else { -10.0 }]);
            let end = StepEnd {
                interrupted: false,
                terminated,
                truncated: !terminated && t + 1 >= 500,
                success: false,
                late: false,
            };
            for (ours, theirs) in plant.state.iter().zip(&ep.states[t]) {
                worst = worst.max((ours - theirs).abs());
                assert!(
                    (ours - theirs).abs() <= TOLERANCE,
                    "episode {e} step {t}: {:?} vs {:?}",
                    plant.state,
                    ep.states[t]
                );
            }
            assert_eq!(end.terminated, ep.terminated[t], "episode {e} step {t}: terminated");
            assert_eq!(end.truncated, ep.truncated[t], "episode {e} step {t}: truncated");
            saw_terminated |= end.terminated;
            saw_truncated |= end.truncated;
            steps += 1;
        }
    }
    assert!(saw_terminated && saw_truncated, "the recording should cover both endings");
    assert!(steps > 500);
    eprintln!("{steps} steps, largest state difference {worst:e}");
}
