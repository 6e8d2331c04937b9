//! Evaluation: run a policy (the prior alone, or the customized one) for a number of episodes
//! on the simulated plant and reduce what happened to the bundle's numbers.

use rand::SeedableRng;
use serde::Serialize;

use crate::bundle::Reduce;
use crate::control::{ActMode, Controller, PolicyChoice};
use crate::sim::{Env, EnvError};
use crate::supervisor::Supervisor;

/// Seeds of evaluation episodes are offset from training seeds so the two never share starts.
pub const EVAL_SEED_OFFSET: u64 = 1_000_003;

/// One policy's results.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyEval {
    pub episodes: usize,
    pub mean_episode_length: f64,
    /// Fraction of episodes that reached the time limit without terminating.
    pub success_rate: f64,
    /// Mean per-episode sum of the prior's base reward (`[task] base_reward`), if given.
    pub base_return: Option<f64>,
    /// Mean per-episode sum of the add-on reward.
    pub addon_return: f64,
    /// Mean per-episode sum of each add-on term.
    pub addon_terms: Vec<(String, f64)>,
    /// The bundle's metrics.
    pub metrics: Vec<(String, f64)>,
    /// Per-step values of the first metric (for the distribution plot).
    #[serde(skip)]
    pub first_metric_samples: Vec<f32>,
    /// Steps on which the residual was unusable and the prior acted alone.
    pub fallbacks: u64,
}

impl PolicyEval {
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
/// seeded by `seed + EVAL_SEED_OFFSET`, so prior and customized face the same starts. Commands
/// pass through the supervisor, as in training.
pub fn evaluate(
    ctl: &mut Controller,
    env: &mut dyn Env,
    supervisor: &mut Supervisor,
    policy: PolicyChoice,
    episodes: usize,
    seed: u64,
) -> Result<PolicyEval, EnvError> {
    let b = &ctl.bundle;
    let mode = if b.manifest.evaluation.policy == "sample" {
        ActMode::Sample
    } else {
        ActMode::Greedy
    };
    env.reseed(seed + EVAL_SEED_OFFSET);
    let mut cmd = [0.0f32];
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ 0xe7a1);
    let n_terms = b.addon.terms.len();
    let n_metrics = b.metrics.len();
    let mut vals = vec![0.0; b.vars.len()];
    let mut terms = vec![0.0; n_terms];
    let (mut len_sum, mut successes, mut base_sum, mut addon_sum) = (0u64, 0usize, 0.0f64, 0.0f64);
    let mut term_sums = vec![0.0f64; n_terms];
    let mut metric_step_sum = vec![0.0f64; n_metrics];
    let mut metric_steps = 0u64;
    let mut metric_episode_sum = vec![0.0f64; n_metrics];
    let mut samples = Vec::new();
    let mut fallbacks = 0;
    for _ in 0..episodes {
        env.reset()?;
        supervisor.new_episode();
        let mut prev = 0.0f32;
        loop {
            let d = ctl.step(env.signals(), policy, mode, &mut rng);
            fallbacks += d.fallback as u64;
            let b = &ctl.bundle;
            supervisor.filter(&[b.action_values[d.action]], &mut cmd);
            let end = env.step(&cmd)?;
            b.vars.fill(env.signals(), &cmd, &[prev], &mut vals);
            prev = cmd[0];
            addon_sum += b.addon.eval(&vals, &mut terms) as f64;
            for (s, t) in term_sums.iter_mut().zip(&terms) {
                *s += *t as f64;
            }
            if let Some(base) = &b.base_reward {
                base_sum += base.expr.eval(&vals) as f64;
            }
            for (i, m) in b.metrics.iter().enumerate() {
                let v = m.expr.eval(&vals);
                metric_step_sum[i] += v as f64;
                metric_episode_sum[i] += v as f64;
                if i == 0 {
                    samples.push(v);
                }
            }
            metric_steps += 1;
            if end.done() {
                len_sum += env.episode_steps() as u64;
                successes += end.truncated as usize;
                break;
            }
        }
    }
    let b = &ctl.bundle;
    let n = episodes.max(1) as f64;
    Ok(PolicyEval {
        episodes,
        mean_episode_length: len_sum as f64 / n,
        success_rate: successes as f64 / n,
        base_return: b.base_reward.as_ref().map(|_| base_sum / n),
        addon_return: addon_sum / n,
        addon_terms: b
            .addon
            .term_names()
            .zip(&term_sums)
            .map(|(k, v)| (k.to_string(), v / n))
            .collect(),
        metrics: b
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let v = match m.reduce {
                    Reduce::Mean => metric_step_sum[i] / metric_steps.max(1) as f64,
                    Reduce::EpisodeSum => metric_episode_sum[i] / n,
                };
                (m.name.clone(), v)
            })
            .collect(),
        first_metric_samples: samples,
        fallbacks,
    })
}
