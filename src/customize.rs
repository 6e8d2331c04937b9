//! `resq customize`: learn the residual online on the simulated plant, then compare the prior
//! and the customized policy.
//!
//! Per tick: the controller acts (π̂, sampled, within the KL budget), the plant steps, the add-on
//! reward is evaluated on the new signals, the transition goes to the replay ring, the learner
//! takes `updates_per_tick` gradient steps and hands its weights to the controller. In process
//! the learner runs in the same thread, which keeps runs bit-for-bit reproducible from a seed;
//! a real-time link (the rig) moves it to its own thread.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use log::{info, warn};
use rand::SeedableRng;

use crate::algo::replay::Transition;
use crate::algo::rql_discrete::{ResidualSoftQ, Settings};
use crate::bundle::Bundle;
use crate::checkpoint::{self, History, Progress};
use crate::control::{kl_budget, ActMode, Controller, PolicyChoice};
use crate::evaluate::{evaluate, PolicyEval};
use crate::sim::SimEnv;

/// Options of one `resq customize` run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Total environment steps to learn for (a resumed run continues up to it).
    pub steps: u64,
    pub seed: u64,
    /// Folder for the checkpoint (and default report and plot paths).
    pub out_dir: PathBuf,
    /// Ignore an existing checkpoint.
    pub fresh: bool,
    /// Evaluation episodes (the manifest's by default).
    pub eval_episodes: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a run produced.
pub struct Outcome {
    pub env_steps: u64,
    pub resumed_from: u64,
    pub updates: u64,
    pub diverged: bool,
    pub wall_seconds: f64,
    pub history: History,
    pub prior: PolicyEval,
    pub customized: PolicyEval,
    pub controller: Controller,
    pub learner: ResidualSoftQ,
}

/// The learner settings a bundle asks for.
pub fn settings(bundle: &Bundle) -> Settings {
    let m = &bundle.manifest;
    Settings {
        omega: m.residual.omega,
        alpha: m.residual.alpha,
        gamma: m.residual.gamma,
        hidden: m.residual.hidden.clone(),
        activation: bundle.hidden_activation,
        lr: m.learning.lr,
        batch: m.learning.batch,
        replay_capacity: m.learning.replay_capacity,
        n_step: m.learning.n_step,
        target_tau: m.learning.target_tau,
        huber_delta: m.learning.huber_delta,
        grad_clip: m.learning.grad_clip,
        warmup: m.learning.warmup,
        updates_per_tick: m.learning.updates_per_tick,
    }
}

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Runs the customization loop and the evaluation.
pub fn run(bundle: Bundle, opts: &Options) -> Result<Outcome> {
    let n_obs = bundle.obs.len();
    let n_act = bundle.n_actions();
    let mut learner = ResidualSoftQ::new(settings(&bundle), n_obs, n_act, opts.seed);
    let ckpt_path = opts.out_dir.join(CHECKPOINT_FILE);
    let mut progress = Progress::default();
    if ckpt_path.exists() && !opts.fresh {
        progress = checkpoint::load(&ckpt_path, &mut learner, &bundle.manifest_text)?;
        info!(
            "resumed from {} at step {}",
            ckpt_path.display(),
            progress.env_steps
        );
    }
    let resumed_from = progress.env_steps;
    let checkpoint_every = bundle.manifest.run.checkpoint_every;
    let explore = if bundle.manifest.exploration.mode == "greedy" {
        ActMode::Greedy
    } else {
        ActMode::Sample
    };
    let plant_name = bundle.manifest.plant.name.clone();
    let max_steps = bundle.manifest.plant.max_episode_steps;
    let manifest_text = bundle.manifest_text.clone();
    let ex = bundle.manifest.exploration.clone();
    let mut ctl = Controller::new(bundle, learner.online.clone());

    // A resumed run draws fresh episodes from a stream keyed by where it resumed.
    let stream = opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ resumed_from;
    let mut env = SimEnv::new(&plant_name, max_steps, stream).context("plant")?;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(stream ^ 0xac7);
    let bar = if opts.progress && progress.env_steps < opts.steps {
        let bar = ProgressBar::new(opts.steps);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .expect("valid template"),
        );
        bar.set_position(progress.env_steps);
        bar
    } else {
        ProgressBar::hidden()
    };

    let n_vars = ctl.bundle.vars.len();
    let mut vals = vec![0.0f32; n_vars];
    let mut terms = vec![0.0f32; ctl.bundle.addon.terms.len()];
    let mut obs = vec![0.0f32; n_obs];
    let mut next_logp0 = vec![0.0f32; n_act];
    let started = Instant::now();
    let (mut ep_addon, mut prev_cmd) = (0.0f32, 0.0f32);

    env.reset();
    ctl.kl_budget = kl_budget(
        ex.kl_budget_start,
        ex.kl_budget_end,
        ex.kl_budget_ramp,
        progress.env_steps,
    );
    let mut d = ctl.step(&env.signals, PolicyChoice::Customized, explore, &mut rng);
    while progress.env_steps < opts.steps {
        obs.copy_from_slice(&ctl.obs);
        let cmd = ctl.bundle.action_values[d.action];
        let end = env.step(&[cmd]);
        ctl.bundle
            .vars
            .fill(&env.signals, &[cmd], &[prev_cmd], &mut vals);
        prev_cmd = cmd;
        let r = ctl.bundle.addon.eval(&vals, &mut terms);
        ep_addon += r;
        progress.env_steps += 1;
        ctl.kl_budget = kl_budget(
            ex.kl_budget_start,
            ex.kl_budget_end,
            ex.kl_budget_ramp,
            progress.env_steps,
        );
        // Act at s' now (this computes log π0(·|s') for the transition); at an episode's end
        // only observe s'.
        let next = if end.done() {
            ctl.observe(&env.signals);
            None
        } else {
            Some(ctl.step(&env.signals, PolicyChoice::Customized, explore, &mut rng))
        };
        next_logp0.copy_from_slice(&ctl.logp0);
        learner.replay.push(&Transition {
            obs: &obs,
            action: d.action,
            reward: r,
            logp0_taken: d.logp0_taken,
            logpi_taken: d.logpi_taken,
            next_obs: &ctl.obs,
            next_logp0: &next_logp0,
            terminal: end.terminated,
            truncated: end.truncated,
        });
        let mut updated = false;
        for _ in 0..learner.settings.updates_per_tick {
            updated |= learner.update().is_some();
        }
        if updated {
            ctl.residual.copy_from(&learner.online);
        }
        if learner.diverged {
            warn!(
                "the learner diverged at step {}: learning stopped, the prior acts alone",
                progress.env_steps
            );
            break;
        }
        match next {
            Some(n) => d = n,
            None => {
                let h = &mut progress.history;
                h.episode_end_step.push(progress.env_steps as f64);
                h.episode_addon_per_step.push(ep_addon / env.t as f32);
                h.episode_length.push(env.t as f32);
                bar.set_message(format!(
                    "episode {} len {} add-on/step {:.3}",
                    h.episode_length.len(),
                    env.t,
                    ep_addon / env.t as f32
                ));
                ep_addon = 0.0;
                prev_cmd = 0.0;
                env.reset();
                d = ctl.step(&env.signals, PolicyChoice::Customized, explore, &mut rng);
            }
        }
        bar.set_position(progress.env_steps);
        if checkpoint_every > 0 && progress.env_steps % checkpoint_every == 0 {
            checkpoint::save(&ckpt_path, &learner, &progress, &manifest_text)?;
        }
    }
    bar.finish_and_clear();
    let wall_seconds = started.elapsed().as_secs_f64();
    checkpoint::save(&ckpt_path, &learner, &progress, &manifest_text)?;

    ctl.residual.copy_from(&learner.online);
    // Evaluate the policy as learned: the budget schedule's end value applies.
    ctl.kl_budget = kl_budget(
        ex.kl_budget_start,
        ex.kl_budget_end,
        ex.kl_budget_ramp,
        progress.env_steps,
    );
    let episodes = opts
        .eval_episodes
        .unwrap_or(ctl.bundle.manifest.evaluation.episodes);
    let prior = evaluate(&mut ctl, PolicyChoice::Prior, episodes, opts.seed);
    let customized = evaluate(&mut ctl, PolicyChoice::Customized, episodes, opts.seed);
    Ok(Outcome {
        env_steps: progress.env_steps,
        resumed_from,
        updates: learner.updates,
        diverged: learner.diverged,
        wall_seconds,
        history: progress.history,
        prior,
        customized,
        controller: ctl,
        learner,
    })
}
