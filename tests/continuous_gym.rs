//! resq's MountainCar and Pendulum against gymnasium's MountainCarContinuous-v0 and Pendulum-v1:
//! trajectories recorded from gymnasium 1.4.0 (NumPy 2.4) by scripts/record_gym_continuous.py
//! (state after every step, rewards, terminated/truncated flags) are stepped by resq's plants
//! from each recorded state with the recorded float32 action.
//!
//! Tolerances:
//! - MountainCar: **bit-exact** (state, observation, reward, flags), one step at a time and also
//!   replayed open loop over whole episodes. The plant repeats gymnasium's mixed float32/float64
//!   arithmetic operation by operation; the only libm call is an f64 `cos` whose result is
//!   rounded to f32 before it reaches the state, so even a libm one ulp off glibc's would change
//!   a step with probability ~1e-9. A naive port is not exact: all-f64 or all-f32 arithmetic
//!   differs in the last bit on 22 % / 34 % of the recorded steps (see the recording's
//!   `reference_check`), and any wrong constant or comparison fails by far more.
//! - Pendulum state: bit-exact where libm is glibc (as on the recording machine, whose NumPy
//!   used libm's sin): the plant repeats gymnasium's f64 operations in order, with the float32
//!   torque product widened. Elsewhere 1 f64 ulp per component: a `sin` one ulp off glibc's
//!   moves θ̇ and θ by at most one ulp. An f64 torque product is already ~1e-8 off, seven orders
//!   above either bound; a wrong constant, clip or update order is off by far more.
//! - Pendulum reward: bit-exact where libm is glibc (as on the recording machine). Gymnasium
//!   squares with NumPy scalar `** 2`, i.e. libm `pow`/`powf`, which are not correctly rounded;
//!   the plant calls them too. Elsewhere a libm may round each square the other way, so the bound
//!   there is one float32 ulp of `0.001·u²` (≤ 4.7e-10) plus 4 f64 ulps of the reward. With
//!   `x * x` squares (correctly rounded) 1 of the 1000 recorded rewards is off, by 1.2e-10.

use resq::robot::{Env, SimEnv, StepEnd};
use sim_robot::plant::mountaincar::{self, State};
use sim_robot::plant::pendulum;
use sim_robot::plant::{MountainCar, Pendulum, Plant};

/// A JSON number read from its text with Rust's correctly rounded `str::parse`: serde_json
/// without its `float_roundtrip` feature parses some decimals one ulp off (e.g.
/// -0.0010418638121336699), which a bit-exact comparison cannot afford.
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(try_from = "String")]
struct Num(f64);

impl TryFrom<String> for Num {
    type Error = std::num::ParseFloatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(Num)
    }
}

/// Puts every number of a JSON text in quotes, to be read as [`Num`].
fn quote_numbers(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 5 / 4);
    let (mut in_string, mut escaped, mut in_number) = (false, false, false);
    for c in json.chars() {
        let number_char = c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E');
        if in_number && !number_char {
            out.push('"');
            in_number = false;
        }
        if in_string {
            (escaped, in_string) = (!escaped && c == '\\', escaped || c != '"');
        } else if c == '"' {
            in_string = true;
        } else if !in_number && (c.is_ascii_digit() || c == '-') {
            out.push('"');
            in_number = true;
        }
        out.push(c);
    }
    if in_number {
        out.push('"');
    }
    out
}

#[derive(serde::Deserialize)]
struct RawEpisode {
    seed: Num,
    initial_state: [Num; 2],
    actions: Vec<[Num; 1]>,
    states: Vec<[Num; 2]>,
    rewards: Vec<Num>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

#[derive(serde::Deserialize)]
struct RawRecording {
    env_id: String,
    max_episode_steps: Num,
    episodes: Vec<RawEpisode>,
}

struct Episode {
    seed: u64,
    initial_state: [f64; 2],
    actions: Vec<f32>,
    states: Vec<[f64; 2]>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

struct Recording {
    env_id: String,
    max_episode_steps: usize,
    episodes: Vec<Episode>,
}

fn load(name: &str) -> Recording {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = quote_numbers(&std::fs::read_to_string(&path).unwrap());
    let raw: RawRecording = serde_json::from_str(&text).unwrap();
    let f = |n: [Num; 2]| n.map(|x| x.0);
    let rec = Recording {
        env_id: raw.env_id,
        max_episode_steps: raw.max_episode_steps.0 as usize,
        episodes: raw
            .episodes
            .into_iter()
            .map(|e| Episode {
                seed: e.seed.0 as u64,
                initial_state: f(e.initial_state),
                actions: e.actions.iter().map(|a| exact_f32(a[0].0)).collect(),
                states: e.states.into_iter().map(f).collect(),
                rewards: e.rewards.iter().map(|r| r.0).collect(),
                terminated: e.terminated,
                truncated: e.truncated,
            })
            .collect(),
    };
    assert!(rec.episodes.len() >= 3, "{path}: too few episodes");
    for e in &rec.episodes {
        let n = e.actions.len();
        assert!(n > 0 && [e.states.len(), e.rewards.len(), e.terminated.len(), e.truncated.len()] == [n; 4]);
    }
    rec
}

/// The float32 value a recording wrote as f64 (it must be exact).
fn exact_f32(x: f64) -> f32 {
    assert_eq!(x as f32 as f64, x, "{x} is not a float32 value");
    x as f32
}

/// Distance in units in the last place between two finite f64 (0 for equal values, ±0 alike).
fn ulps(a: f64, b: f64) -> u64 {
    let key = |x: f64| {
        let i = x.to_bits() as i64;
        if i < 0 {
            i64::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

/// The episode runner's flags (resq::robot::sim::SimEnv) for step `t` (0-based).
fn step_end(terminated: bool, t: usize, max_steps: usize) -> StepEnd {
    StepEnd {
        interrupted: false,
        terminated,
        truncated: !terminated && t + 1 >= max_steps,
        success: false,
        late: false,
    }
}

#[test]
fn mountaincar_matches_gymnasium_bit_for_bit() {
    let rec = load("mountaincar_gym_trajectories.json");
    assert_eq!(rec.env_id, "MountainCarContinuous-v0");
    assert_eq!(rec.max_episode_steps, 999);
    let (mut steps, mut saw_terminated, mut saw_truncated, mut saw_clipped) = (0, false, false, false);
    let mut signals = [0.0f32; 2];
    for ep in &rec.episodes {
        let e = ep.seed;
        // Gymnasium's state is float64 until the first step, float32 afterwards.
        let mut replay = MountainCar { state: State::F64(ep.initial_state) };
        for (t, &a) in ep.actions.iter().enumerate() {
            saw_clipped |= a.abs() > 1.0;
            let start = if t == 0 {
                State::F64(ep.initial_state)
            } else {
                State::F32(ep.states[t - 1].map(exact_f32))
            };
            let expected = State::F32(ep.states[t].map(exact_f32));
            let mut plant = MountainCar { state: start };
            let terminated = plant.step(&[a]);
            let bits = |s: State| match s {
                State::F32(v) => v.map(f32::to_bits),
                State::F64(_) => panic!("episode {e} step {t}: the state must be float32 after a step"),
            };
            assert_eq!(
                bits(plant.state),
                bits(expected),
                "episode {e} step {t}: {start:?} with a = {a:e} gives {:?}, gymnasium {expected:?}",
                plant.state
            );
            plant.signals(&mut signals);
            assert_eq!(signals.map(f32::to_bits), bits(expected), "episode {e} step {t}: signals");
            let reward = mountaincar::reward(a, terminated);
            assert_eq!(reward.to_bits(), ep.rewards[t].to_bits(), "episode {e} step {t}: reward {reward}");
            let end = step_end(terminated, t, rec.max_episode_steps);
            assert_eq!(end.terminated, ep.terminated[t], "episode {e} step {t}: terminated");
            assert_eq!(end.truncated, ep.truncated[t], "episode {e} step {t}: truncated");
            // Open loop: exact arithmetic cannot drift.
            assert_eq!(replay.step(&[a]), terminated, "episode {e} step {t}: open-loop terminated");
            assert_eq!(bits(replay.state), bits(expected), "episode {e} step {t}: open loop");
            saw_terminated |= end.terminated;
            saw_truncated |= end.truncated;
            steps += 1;
        }
    }
    assert!(
        saw_terminated && saw_truncated && saw_clipped,
        "the recording should cover both endings and clipping"
    );
    assert!(steps > 3000);
    eprintln!("MountainCarContinuous-v0: {steps} steps, all bit-exact (state, signals, reward, flags)");
}

/// Single steps from states the recording never reaches (speed limit, right edge, the goal line
/// in float32), computed by gymnasium 1.4.0 / NumPy 2.4.6: `env = gym.make(
/// "MountainCarContinuous-v0").unwrapped; env.reset(seed=0); env.state = np.array(state, dtype);
/// env.step(np.array([a], np.float32))` with dtype float64 for the first field `true`, else float32.
/// (state in f64?, state, action, next state, reward, terminated)
type Edge = (bool, [f64; 2], f64, [f64; 2], f64, bool);

#[rustfmt::skip]
const MOUNTAINCAR_EDGES: [Edge; 9] = [
    // speed clip at +0.07
    (false, [-0.800000011920929, 0.0689999982714653], 1.0, [-0.7300000190734863, 0.07000000029802322], -0.1, false),
    // speed clip at -0.07
    (false, [0.0, -0.0689999982714653], -1.0, [-0.07000000029802322, -0.07000000029802322], -0.1, false),
    // position clip at 0.6 (terminates)
    (false, [0.5799999833106995, 0.05000000074505806], 1.0, [0.6000000238418579, 0.051920995116233826], 99.9, true),
    // left wall: velocity reset to 0
    (false, [-1.190000057220459, -0.05000000074505806], -0.5, [-1.2000000476837158, 0.0], -0.025, false),
    // lands on f32(0.45) = 0.449999988: terminates (float32 compare)
    (false, [0.4200144410133362, 0.029999999329447746], 0.5, [0.44999998807907104, 0.029985560104250908], 99.975, true),
    // clipped action + speed clip
    (false, [-0.800000011920929, 0.0689999982714653], 1.5, [-0.7300000190734863, 0.07000000029802322], -0.225, false),
    // first step (float64 state): clipped action + speed clip
    (true, [-0.8, 0.069], 1.5, [-0.7300000190734863, 0.07000000029802322], -0.225, false),
    // first step: position clip at 0.6
    (true, [0.58, 0.05], 0.30000001192092896, [0.6000000238418579, 0.05087099224328995], 99.99099999928474, true),
    // first step: left wall
    (true, [-1.19, -0.05], -2.0, [-1.2000000476837158, 0.0], -0.4, false),
];

#[test]
fn mountaincar_edges_match_gymnasium() {
    for (i, &(f64_state, start, a, next, reward, terminated)) in MOUNTAINCAR_EDGES.iter().enumerate() {
        let start = if f64_state { State::F64(start) } else { State::F32(start.map(exact_f32)) };
        let mut plant = MountainCar { state: start };
        let a = exact_f32(a);
        assert_eq!(plant.step(&[a]), terminated, "case {i}: terminated");
        assert_eq!(plant.state, State::F32(next.map(exact_f32)), "case {i}: {start:?}, a = {a}");
        assert_eq!(mountaincar::reward(a, terminated).to_bits(), reward.to_bits(), "case {i}: reward");
    }
}

/// The recording was made with glibc's libm; elsewhere `pow`/`powf` may round differently.
const GLIBC: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

#[test]
fn pendulum_matches_gymnasium() {
    let rec = load("pendulum_gym_trajectories.json");
    assert_eq!(rec.env_id, "Pendulum-v1");
    assert_eq!(rec.max_episode_steps, 200);
    let (mut steps, mut exact_states, mut worst_state) = (0, 0, 0u64);
    let (mut exact_rewards, mut worst_reward) = (0, 0.0f64);
    let (mut saw_speed_clip, mut saw_torque_clip, mut saw_wrap) = (false, false, false);
    let mut signals = [0.0f32; 4];
    for ep in &rec.episodes {
        let e = ep.seed;
        for (t, &a) in ep.actions.iter().enumerate() {
            let start = if t == 0 { ep.initial_state } else { ep.states[t - 1] };
            let expected = ep.states[t];
            let mut plant = Pendulum { state: start };
            // Gymnasium's reward is that of the state the step starts from.
            let reward = plant.reward(a);
            let d_reward = (reward - ep.rewards[t]).abs();
            worst_reward = worst_reward.max(d_reward);
            exact_rewards += usize::from(reward.to_bits() == ep.rewards[t].to_bits());
            let bound =
                if GLIBC { 0.0 } else { 0.004 * f32::EPSILON as f64 + 4.0 * f64::EPSILON * reward.abs() };
            assert!(d_reward <= bound, "episode {e} step {t}: reward {reward:e} vs {:e}", ep.rewards[t]);
            let terminated = plant.step(&[a]);
            let d_state = ulps(plant.state[0], expected[0]).max(ulps(plant.state[1], expected[1]));
            worst_state = worst_state.max(d_state);
            exact_states += usize::from(d_state == 0);
            let allowed_ulps: u64 = if GLIBC { 0 } else { 1 };
            assert!(
                d_state <= allowed_ulps,
                "episode {e} step {t}: {start:?} with u = {a:e} gives {:?}, gymnasium {expected:?}",
                plant.state
            );
            let end = step_end(terminated, t, rec.max_episode_steps);
            assert_eq!(end.terminated, ep.terminated[t], "episode {e} step {t}: terminated");
            assert_eq!(end.truncated, ep.truncated[t], "episode {e} step {t}: truncated");
            // Observation [cos, sin, theta_dot] (f64 then float32), then the normalised angle.
            plant.signals(&mut signals);
            let [theta, theta_dot] = expected;
            let obs = [theta.cos() as f32, theta.sin() as f32, theta_dot as f32];
            assert_eq!(signals[..3], obs, "episode {e} step {t}: observation");
            let wrapped = signals[3] as f64;
            assert!((-std::f64::consts::PI..=std::f64::consts::PI as f32 as f64).contains(&wrapped));
            let turns = (theta - wrapped) / std::f64::consts::TAU;
            assert!((turns - turns.round()).abs() < 1e-6, "episode {e} step {t}: theta {theta} -> {wrapped}");
            saw_wrap |= turns.round() != 0.0;
            saw_speed_clip |= theta_dot.abs() == pendulum::MAX_SPEED;
            saw_torque_clip |= a.abs() > 2.0;
            steps += 1;
        }
    }
    assert!(saw_speed_clip && saw_torque_clip && saw_wrap, "the recording should cover the clips and spins");
    assert!(steps >= 1000);
    eprintln!(
        "Pendulum-v1: {steps} steps, {exact_states} states bit-exact (largest difference {worst_state} ulp), \
         {exact_rewards} rewards bit-exact (largest difference {worst_reward:e})"
    );
}

#[test]
fn registry_names_bounds_and_resets() {
    let mut rng = rand_pcg::Pcg64Mcg::new(7);
    let mc = sim_robot::plant::make("mountaincar").unwrap();
    assert_eq!(mc.signal_names(), ["position", "velocity"]);
    assert_eq!(mc.command_names(), ["force"]);
    assert_eq!(mc.command_bounds(), [(-1.0, 1.0)]);
    let pd = sim_robot::plant::make("pendulum").unwrap();
    assert_eq!(pd.signal_names(), ["cos_theta", "sin_theta", "theta_dot", "theta"]);
    assert_eq!(pd.command_names(), ["torque"]);
    assert_eq!(pd.command_bounds(), [(-2.0, 2.0)]);
    assert!(
        sim_robot::plant::PLANTS.contains(&"mountaincar") && sim_robot::plant::PLANTS.contains(&"pendulum")
    );

    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let mut car = MountainCar::default();
    for _ in 0..2000 {
        car.reset(&mut rng);
        let State::F64([p, v]) = car.state else { panic!("reset state must be float64") };
        assert!((-0.6..-0.4).contains(&p) && v == 0.0);
        (lo, hi) = (lo.min(p), hi.max(p));
    }
    assert!(lo < -0.59 && hi > -0.41, "positions span [{lo}, {hi}]");
    let mut pend = Pendulum::default();
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for _ in 0..2000 {
        pend.reset(&mut rng);
        let [th, thd] = pend.state;
        assert!((-std::f64::consts::PI..std::f64::consts::PI).contains(&th) && (-1.0..1.0).contains(&thd));
        for i in 0..2 {
            (lo[i], hi[i]) = (lo[i].min(pend.state[i]), hi[i].max(pend.state[i]));
        }
    }
    assert!(lo[0] < -3.1 && hi[0] > 3.1 && lo[1] < -0.99 && hi[1] > 0.99);
}

#[test]
fn episodes_end_as_gymnasium_through_the_runner() {
    // Pendulum never terminates: every episode is truncated by the runner's 200-step limit.
    let mut env = SimEnv::new("pendulum", 200, 3).unwrap();
    env.reset().unwrap();
    for t in 1..=200 {
        let end = env.step(&[5.0]).unwrap();
        assert!(!end.terminated);
        assert_eq!(end.truncated, t == 200);
    }
    // Pushing along the velocity reaches MountainCar's goal: a termination, well before 999 steps.
    let mut env = SimEnv::new("mountaincar", 999, 3).unwrap();
    env.reset().unwrap();
    let mut t = 0;
    loop {
        let v = env.signals()[1];
        let end = env.step(&[if v >= 0.0 { 1.0 } else { -1.0 }]).unwrap();
        t += 1;
        if end.done() {
            assert!(end.terminated && !end.truncated && t < 999, "step {t}: {end:?}");
            assert!(env.signals()[0] >= 0.45);
            break;
        }
    }
}
