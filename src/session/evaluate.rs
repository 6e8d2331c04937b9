//! Evaluation: run a policy (the prior alone, or the customized one) for a number of episodes
//! on the simulated plant and reduce what happened to the bundle's numbers.

use serde::Serialize;

use super::confidence;
use crate::bundle::{Bundle, Reduce};
use crate::control::{ActMode, Controller, PolicyChoice, Stepper, Supervisor};
use crate::robot::{Env, EnvError};
use crate::streams;

/// One policy's results.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyEval {
    pub episodes: usize,
    pub mean_episode_length: f64,
    /// Fraction of successful episodes (`[evaluation] success`: reached the time limit, or
    /// reached the terminal goal). Episodes cut by the link are not counted (see `episodes`).
    pub success_rate: f64,
    /// Mean per-episode sum of the prior's base reward (`[task] base_reward`), if given.
    pub base_return: Option<f64>,
    /// Mean per-episode sum of `|base reward|`: the scale a change of the base return is judged
    /// against (a return near zero, or negative, makes a relative change meaningless).
    pub base_magnitude: Option<f64>,
    /// Mean per-episode sum of the add-on reward.
    pub addon_return: f64,
    /// The add-on reward's highest and lowest value on any step (±∞ with no step).
    #[serde(skip)]
    pub addon_range: (f64, f64),
    /// Failed episodes that ended early, by a termination (not the time limit).
    #[serde(skip)]
    pub early_failures: usize,
    /// Mean per-episode sum of each add-on term.
    pub addon_terms: Vec<(String, f64)>,
    /// The bundle's metrics.
    pub metrics: Vec<(String, f64)>,
    /// Per-step values of the first metric (for the distribution plot).
    #[serde(skip)]
    pub first_metric_samples: Vec<f32>,
    /// Steps on which the residual was unusable and the prior acted alone.
    pub fallbacks: u64,
    /// Each counted episode's success, in the order they ran (the failure guard's trials).
    #[serde(skip)]
    pub outcomes: Vec<bool>,
    /// The prior alone: its confidence at every state it decided at ([`confidence::sample`]).
    #[serde(skip)]
    pub confidence: Vec<f32>,
}

impl PolicyEval {
    /// A requirement written as a pure penalty (the add-on ≤ 0 on every step of this evaluation of
    /// the prior) on a robot whose episodes end early in failure (`early_failures` of the prior's
    /// own did), where the bundle values a failure (`[residual] failure_value`, `value` of
    /// [`Bundle::failure_value`] at the lowest add-on seen) above the penalty's worst forever,
    /// `lo/(1−γ)`: ending an episode early escapes the penalty, so the residual can learn to
    /// fail. Says what to write instead. With `failure_value = "worst"` (the default) it never
    /// escapes.
    pub fn pure_penalty_warning(&self, early_failures: usize, bundle: &Bundle) -> Option<String> {
        let (hi, lo) = self.addon_range;
        let worst = lo / (1.0 - bundle.manifest.residual.gamma as f64);
        let value = bundle.failure_value(lo as f32);
        (early_failures > 0 && bundle.failure_escapes(lo as f32, hi as f32)).then(|| {
            format!(
                "the add-on is <= 0 on every step the prior was evaluated on (lowest {lo:.4}) and {early_failures} of the prior's own episodes ended early in failure: with `residual.failure_value = {value}` ending an episode early escapes a pure penalty, so the residual can learn to fail; leave `failure_value` out (\"worst\": {worst:.2}), or write the add-on so that doing well scores >= 0, e.g. add a constant of at least {:.4} to it (`[[addon.term]] expr = \"{:.4}\"`)",
                -lo,
                -lo
            )
        })
    }

    /// Flat `name → number` map for the JSON report.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("episodes".into(), self.episodes.into());
        m.insert("episode_length".into(), self.mean_episode_length.into());
        m.insert("success_rate".into(), self.success_rate.into());
        if let Some(b) = self.base_return {
            m.insert("base_return".into(), b.into());
        }
        m.insert("addon_return".into(), self.addon_return.into());
        for (k, v) in &self.addon_terms {
            m.insert(format!("addon_{k}"), (*v).into());
        }
        for (k, v) in &self.metrics {
            m.insert(k.clone(), (*v).into());
        }
        m.insert("fallbacks".into(), self.fallbacks.into());
        m
    }
}

/// Runs `episodes` episodes of `policy` and reduces them. Episode `i` starts from the state
/// seeded by [`streams::evaluation_episodes`], so prior and customized face the same starts. Commands
/// pass through the supervisor, as in training. Episodes end as in training: the robot's
/// termination, the bundle's `terminate` expression, or its time limit. A continuing task is
/// reset once and then evaluated on consecutive windows of `[episode] window` steps.
///
/// Sampled actions come from streams of the evaluation's own, seeded by `seed`: the action
/// noise and the prior's continuous draws (the controller's candidate stream, set aside and
/// restored afterwards). So an evaluation of a policy gives the same result whenever it runs,
/// however long training ran, and training's own stream goes on untouched.
pub fn evaluate(
    ctl: &mut Controller,
    env: &mut dyn Env,
    supervisor: &mut Supervisor,
    policy: PolicyChoice,
    episodes: usize,
    seed: u64,
) -> Result<PolicyEval, EnvError> {
    let mode = ctl.bundle.manifest.evaluation.policy;
    evaluate_as(ctl, env, supervisor, policy, mode, episodes, seed)
}

/// [`evaluate`], acting in `mode` instead of `[evaluation] policy` (the failure guard measures
/// the prior acting as training acts).
pub fn evaluate_as(
    ctl: &mut Controller,
    env: &mut dyn Env,
    supervisor: &mut Supervisor,
    policy: PolicyChoice,
    mode: ActMode,
    episodes: usize,
    seed: u64,
) -> Result<PolicyEval, EnvError> {
    let training_draws = ctl.replace_draw_rng(streams::evaluation_prior_draws(seed));
    let result = run_episodes(ctl, env, supervisor, policy, mode, episodes, seed);
    ctl.replace_draw_rng(training_draws);
    result
}

fn run_episodes(
    ctl: &mut Controller,
    env: &mut dyn Env,
    supervisor: &mut Supervisor,
    policy: PolicyChoice,
    mode: ActMode,
    episodes: usize,
    seed: u64,
) -> Result<PolicyEval, EnvError> {
    let b = &ctl.bundle;
    env.reseed(streams::evaluation_episodes(seed));
    let mut stepper = Stepper::new(b);
    let mut rng = streams::evaluation_actions(seed);
    let n_terms = b.addon.terms.len();
    let n_metrics = b.metrics.len();
    let continuing = b.episode.continuing;
    let mut total = Tally::new(n_terms, n_metrics);
    let mut ep = Tally::new(n_terms, n_metrics);
    let mut samples = Vec::new();
    let mut ep_samples = Vec::new();
    let mut fallbacks = 0;
    let mut counted = 0;
    let mut outcomes = Vec::with_capacity(episodes);
    let mut confidence = Vec::new();
    let mut addon_range = (f64::NEG_INFINITY, f64::INFINITY);
    let mut early_failures = 0;
    // Episodes cut by the link are void and run again (at most as many again).
    let mut attempts = 0;
    let mut fresh = true;
    while counted < episodes && attempts < 2 * episodes {
        attempts += 1;
        if fresh || !continuing {
            stepper.new_episode(ctl, env, supervisor)?;
        }
        ep.clear();
        ep_samples.clear();
        loop {
            let (d, out) = stepper.step(ctl, env, supervisor, policy, mode, &mut rng)?;
            if policy == PolicyChoice::Prior && !d.prior_fault {
                confidence.extend(confidence::sample(ctl));
            }
            let end = out.end;
            fallbacks += d.fallback as u64;
            let (b, vals) = (&ctl.bundle, &stepper.vals);
            ep.addon += out.reward as f64;
            if out.reward.is_finite() {
                addon_range = (addon_range.0.max(out.reward as f64), addon_range.1.min(out.reward as f64));
            }
            for (s, t) in ep.terms.iter_mut().zip(&stepper.terms) {
                *s += *t as f64;
            }
            if let Some(base) = &b.base_reward {
                let r = base.expr.eval(vals) as f64;
                ep.base += r;
                ep.base_abs += r.abs();
            }
            for (i, m) in b.metrics.iter().enumerate() {
                let v = m.expr.eval(vals);
                ep.metric[i] += v as f64;
                ep.last[i] = v as f64;
                if i == 0 {
                    ep_samples.push(v);
                }
            }
            ep.steps += 1;
            let window_done = continuing && ep.steps >= b.episode.window as u64;
            if end.done() || window_done {
                if !end.interrupted {
                    ep.successes = b.episode.succeeded(end, vals, env.episode_steps(), window_done) as u64;
                    // The robot's count: in real time resq may skip Sensors after a stall.
                    ep.length = if continuing { ep.steps } else { env.episode_steps() as u64 };
                    total.add(&ep);
                    outcomes.push(ep.successes > 0);
                    early_failures += (ep.successes == 0 && end.terminated) as usize;
                    samples.extend_from_slice(&ep_samples);
                    counted += 1;
                }
                // A continuing task goes on from here, unless the robot ended the episode.
                fresh = end.done();
                break;
            }
        }
    }
    let episodes = counted;
    let b = &ctl.bundle;
    let n = episodes.max(1) as f64;
    Ok(PolicyEval {
        episodes,
        mean_episode_length: total.length as f64 / n,
        success_rate: total.successes as f64 / n,
        base_return: b.base_reward.as_ref().map(|_| total.base / n),
        base_magnitude: b.base_reward.as_ref().map(|_| total.base_abs / n),
        addon_return: total.addon / n,
        addon_range,
        early_failures,
        addon_terms: b.addon.term_names().zip(&total.terms).map(|(k, v)| (k.to_string(), v / n)).collect(),
        metrics: b
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let v = match m.reduce {
                    Reduce::Mean => total.metric[i] / total.steps.max(1) as f64,
                    Reduce::EpisodeSum => total.metric[i] / n,
                    Reduce::Final => total.last[i] / n,
                };
                (m.name.clone(), v)
            })
            .collect(),
        first_metric_samples: samples,
        fallbacks,
        outcomes,
        confidence,
    })
}

/// Sums over steps (of one episode, or of all counted episodes).
struct Tally {
    /// Steps resq acted on (the denominator of per-step means).
    steps: u64,
    /// Episode lengths as the robot counts them.
    length: u64,
    successes: u64,
    base: f64,
    base_abs: f64,
    addon: f64,
    terms: Vec<f64>,
    metric: Vec<f64>,
    /// Each metric's value at the last step (summed over episodes in a total).
    last: Vec<f64>,
}

impl Tally {
    fn new(n_terms: usize, n_metrics: usize) -> Self {
        Tally {
            steps: 0,
            length: 0,
            successes: 0,
            base: 0.0,
            base_abs: 0.0,
            addon: 0.0,
            terms: vec![0.0; n_terms],
            metric: vec![0.0; n_metrics],
            last: vec![0.0; n_metrics],
        }
    }

    fn clear(&mut self) {
        self.steps = 0;
        self.length = 0;
        self.successes = 0;
        self.base = 0.0;
        self.base_abs = 0.0;
        self.addon = 0.0;
        self.terms.iter_mut().for_each(|v| *v = 0.0);
        self.metric.iter_mut().for_each(|v| *v = 0.0);
        self.last.iter_mut().for_each(|v| *v = 0.0);
    }

    fn add(&mut self, o: &Tally) {
        self.steps += o.steps;
        self.length += o.length;
        self.successes += o.successes;
        self.base += o.base;
        self.base_abs += o.base_abs;
        self.addon += o.addon;
        self.terms.iter_mut().zip(&o.terms).for_each(|(a, b)| *a += b);
        self.metric.iter_mut().zip(&o.metric).for_each(|(a, b)| *a += b);
        self.last.iter_mut().zip(&o.last).for_each(|(a, b)| *a += b);
    }
}
