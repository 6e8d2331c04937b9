//! `resq customize`: learn the residual online on the simulated plant, then compare the prior
//! and the customized policy.
//!
//! Per tick: the controller decides (π̂, sampled, within the KL budget) as soon as the signals
//! arrive, the supervisor filters the command and it is sent; while the robot moves, the learning
//! side takes its turn (see [`crate::learning`]: inline, `updates_per_tick` gradient steps and a
//! weight hand-over, bit-for-bit reproducible from a seed; or on its own thread, taking the
//! newest weights without waiting); then the new signals arrive, the add-on reward is evaluated
//! and the transition goes to the learner. Nothing of the learner's sits between a frame and its
//! command.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use log::{info, warn};
use rand::SeedableRng;

use crate::algo::core::{ResidualLearner, Settings};
use crate::algo::replay::Transition;
use crate::algo::residual_sac::ResidualSac;
use crate::algo::rpg::{PolicyHead, PpoSettings, ResidualPg};
use crate::algo::rql_discrete::ResidualSoftQ;
use crate::algo::rql_sampled::ResidualSampledQ;
use crate::bundle::{Bundle, Method};
use crate::checkpoint::{self, History, Progress};
use crate::control::{kl_budget, ActMode, Controller, Decision, PolicyChoice};
use crate::curve::{next_due, Curve};
use crate::evaluate::{evaluate, PolicyEval};
use crate::firmware_process::FirmwareProcess;
use crate::guard::{FailureGuard, Trip, WINDOW};
use crate::learning::{
    hand_over, learner_thread, record_width, Learning, LoopLearning, Message, ThreadSide, Weights, QUEUE_LEN,
    RECORD_FLOATS,
};
use crate::link::{LinkConfig, LinkEnv};
use crate::record::recorder::{RecordMeta, Recorder, RecorderStats};
use crate::record::{Decisions, LinkCounters, TickRecord};
use crate::sim::{Env, SimEnv};
use crate::supervisor::Supervisor;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Write every training tick to this MCAP file.
    pub record: Option<PathBuf>,
    /// Where the robot is (for the record): "sim" or the serial port.
    pub source: String,
    /// Evaluate the customized policy every this many environment steps (0: never), at the
    /// first episode end from there, for the learning curve (`<out>/curve.jsonl`).
    pub eval_every: u64,
    /// Run the control loop under `SCHED_FIFO` at this priority (1–99; see [`crate::rt`]).
    pub rt_priority: Option<u8>,
}

impl Options {
    /// A quiet in-process run to `steps` (no progress bar, no record, resumes a checkpoint in
    /// `out_dir`, the manifest's evaluation episodes); set the other fields with `..`.
    pub fn new(steps: u64, seed: u64, out_dir: impl Into<PathBuf>) -> Self {
        Options {
            steps,
            seed,
            out_dir: out_dir.into(),
            fresh: false,
            eval_episodes: None,
            progress: false,
            record: None,
            source: "sim".into(),
            eval_every: 0,
            rt_priority: None,
        }
    }
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
    /// Link counters at the end (zero in process).
    pub link: LinkCounters,
    pub record_stats: Option<RecorderStats>,
    /// Transitions the learner thread could not take (0 when learning inline).
    pub transitions_dropped: u64,
    /// Training ticks on which a signal was non-finite or outside its declared range (the prior
    /// acted alone on each).
    pub signal_faults: u64,
    /// Training ticks on which the prior failed (the safe command was sent; not learned from).
    pub prior_faults: u64,
    /// Real time: training steps that did not follow from their command alone (the robot
    /// stepped before the command arrived, or under its safe action, or Sensors were skipped);
    /// not learned from.
    pub late_steps: u64,
    /// Robot steps the prior acted greedily to calibrate its temperature (`"auto"`; 0 otherwise,
    /// and on a resumed run). Not training steps.
    pub calibration_steps: u64,
    /// The learning curve (`--eval-every`): one object per evaluation, `env_steps` and the
    /// numbers of [`PolicyEval::to_map`], oldest first (a resumed run's earlier points included).
    pub curve: Vec<serde_json::Map<String, serde_json::Value>>,
    pub controller: Controller,
    pub learner: Box<dyn ResidualLearner + Send>,
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

/// The learner of the bundle's method (its heads zero-initialised: the robot starts on the prior).
pub fn make_learner(bundle: &Bundle, seed: u64) -> Box<dyn ResidualLearner + Send> {
    let (n_obs, n_act, s) = (bundle.residual_inputs(), bundle.n_actions(), settings(bundle));
    match bundle.method {
        Method::DiscreteQ => Box::new(ResidualSoftQ::new(s, n_obs, n_act, seed)),
        Method::Sampled => {
            Box::new(ResidualSampledQ::new(s, n_obs, n_act, bundle.manifest.residual.candidates, seed))
        }
        Method::Sac => {
            let family = bundle.prior.kind.family().expect("validated: a continuous prior");
            Box::new(ResidualSac::new(s, n_obs, n_act, family, seed))
        }
        Method::Rpg => {
            let l = &bundle.manifest.learning;
            let ppo = PpoSettings {
                rollout: l.rollout,
                epochs: l.epochs,
                clip: l.clip,
                gae_lambda: l.gae_lambda,
                value_steps: l.value_steps,
            };
            let head = match bundle.prior.kind.family() {
                Some(family) => PolicyHead::Gaussian { family, act_dim: n_act },
                None => PolicyHead::Logits { n_actions: n_act },
            };
            Box::new(ResidualPg::new(s, ppo, n_obs, head, seed))
        }
    }
}

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Runs the customization loop on the built-in simulated plant, then the evaluation.
pub fn run(bundle: Bundle, opts: &Options) -> Result<Outcome> {
    if let Some(command) = bundle.sim_firmware.clone() {
        return run_on_firmware_process(bundle, &command, opts);
    }
    let Some(plant) = bundle.sim_plant.clone() else {
        anyhow::bail!(
            "the bundle {} names no simulated robot ([sim] plant or firmware), so `resq customize` cannot run it.\n  \
             fix: run it over the link to its firmware: `resq run {} --port /dev/ttyACM0`; to try it on a simulator \
             first, serve one with the reference firmware (`resq-firmware --env ... --port pty`, see the README's \
             \"Bring your own robot\")",
            bundle.dir.display(),
            bundle.dir.display()
        );
    };
    let mut env = SimEnv::new(&plant, bundle.episode.time_limit(), opts.seed).context("plant")?;
    run_in(bundle, &mut env, opts)
}

/// `[sim] firmware`: starts the simulator's firmware on a pseudo-terminal and runs over the
/// link to it, in lock-step (its output goes to `<out>/firmware.log`).
fn run_on_firmware_process(bundle: Bundle, command: &str, opts: &Options) -> Result<Outcome> {
    let log = opts.out_dir.join("firmware.log");
    let fw = FirmwareProcess::start(command, &bundle.dir, &log, Duration::from_secs(120))?;
    info!("simulated robot: `{command}` on {} (log {})", fw.port.display(), log.display());
    let cfg = LinkConfig::lock_step(&fw.port.to_string_lossy());
    let mut env = LinkEnv::for_bundle(cfg, &bundle)?;
    let opts = Options { source: format!("{command} (pty)"), ..opts.clone() };
    let outcome = run_in(bundle, &mut env, &opts);
    drop(fw);
    outcome
}

/// Runs the customization loop in `env` (simulated in process, or firmware over a link), then
/// evaluates prior and customized policies in the same `env`.
pub fn run_in(bundle: Bundle, env: &mut dyn Env, opts: &Options) -> Result<Outcome> {
    let mut learner = make_learner(&bundle, opts.seed);
    let ckpt_path = opts.out_dir.join(CHECKPOINT_FILE);
    let mut progress = Progress::default();
    if ckpt_path.exists() && !opts.fresh {
        progress = checkpoint::load(&ckpt_path, learner.as_mut(), &bundle.manifest_text)?;
        info!("resumed from {} at step {}", ckpt_path.display(), progress.env_steps);
    }
    let resumed_from = progress.env_steps;
    let on_thread = bundle.manifest.learning.thread;
    let mut supervisor = bundle.supervisor();
    let recorder = match &opts.record {
        Some(path) => Some(Recorder::start(path, record_meta(&bundle, &opts.source), 4096)?),
        None => None,
    };
    let mut ctl = Controller::with_learner(bundle, learner.as_ref());
    // `[prior] temperature = "auto"`: calibrated once, on the prior acting as deployed; a
    // resumed run takes the checkpoint's.
    let mut calibration_steps = 0;
    if let Some(steps) = ctl.bundle.auto_temperature {
        let t = match progress.prior_temperature {
            Some(t) => t,
            None => {
                info!("calibrating the prior's temperature: {steps} steps of the prior acting greedily, as deployed");
                let c = crate::calibrate::run(&mut ctl, env, &mut supervisor, steps, opts.seed)?;
                calibration_steps = c.steps;
                c.temperature
            }
        };
        info!(
            "prior temperature {t:.4} (\"auto\": sampling gives up {:.0} % of the Q-value acting at random would, on the states the prior visits)",
            100.0 * crate::calibrate::REGRET_FRACTION
        );
        ctl.bundle.prior.kind = crate::prior::PriorKind::DiscreteQ { temperature: t };
        progress.prior_temperature = Some(t);
    }
    let layout = learner.core().replay.layout();
    let mut learning = Learning::new(
        learner,
        progress,
        ckpt_path.clone(),
        ctl.bundle.manifest_text.clone(),
        ctl.bundle.manifest.run.checkpoint_every,
    )?;
    let mut curve =
        if opts.eval_every > 0 { Curve::open(&opts.out_dir, resumed_from)? } else { Curve::none() };
    let mut drive = Drive {
        env,
        ctl: &mut ctl,
        supervisor: &mut supervisor,
        recorder: recorder.as_ref(),
        opts,
        curve: &mut curve,
    };
    // From here the loop (and the evaluations after it) run on this thread; the learner
    // thread spawned below puts itself in the background (`rt::background`).
    let _realtime = opts.rt_priority.map(crate::rt::enter).transpose()?;
    let started = Instant::now();
    let (end, dropped, mut learning) = if on_thread {
        if record_width(&layout) > RECORD_FLOATS {
            anyhow::bail!(
                "a transition of this bundle has {} floats; the learner thread's queue carries at most {RECORD_FLOATS}: set `learning.thread = false`",
                record_width(&layout)
            );
        }
        // The queue lives on the heap (it is large) for the scope of the run.
        let mut queue: Box<heapless::spsc::Queue<Message, QUEUE_LEN>> =
            Box::new(heapless::spsc::Queue::new());
        let (tx, rx) = queue.split();
        let (w_in, w_out) = triple_buffer::triple_buffer(&Weights::of(learning.learner.as_ref()));
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<(Result<LoopEnd>, u64, Learning)> {
            let handle = std::thread::Builder::new()
                .name("resq-learner".into())
                .spawn_scoped(scope, || learner_thread(learning, rx, w_in, &stop))?;
            let mut side = ThreadSide::new(tx, w_out, layout);
            let end = drive.run(&mut side, resumed_from);
            stop.store(true, Ordering::Release);
            let learning = handle.join().map_err(|_| anyhow::anyhow!("the learner thread panicked"))??;
            Ok((end, side.dropped, learning))
        })?
    } else {
        (drive.run(&mut learning, resumed_from), 0, learning)
    };
    if dropped > 0 {
        warn!("{dropped} transition(s) dropped: the learner thread fell behind the robot");
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    // Whatever stopped the loop (the step budget, an e-stop, a link that failed for good), what
    // was learned is saved.
    learning.finish()?;
    let end = end.with_context(|| {
        format!("the run stopped; the learned residual is saved in {}", ckpt_path.display())
    })?;
    let record_stats = match recorder {
        Some(r) => Some(r.finish()?),
        None => None,
    };
    if end.estop {
        anyhow::bail!(
            "the robot reported an e-stop; the learned residual is saved in {}",
            ckpt_path.display()
        );
    }

    hand_over(learning.learner.as_ref(), &mut ctl);
    // Evaluate the policy as learned: the budget schedule's end value applies.
    let ex = &ctl.bundle.manifest.exploration;
    ctl.kl_budget = kl_budget(ex.kl_budget_start, ex.kl_budget_end, ex.kl_budget_ramp, end.env_steps);
    let episodes = opts.eval_episodes.unwrap_or(ctl.bundle.manifest.evaluation.episodes);
    let prior = evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Prior, episodes, opts.seed)?;
    let customized = evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Customized, episodes, opts.seed)?;
    let Learning { learner, progress, .. } = learning;
    Ok(Outcome {
        env_steps: end.env_steps,
        resumed_from,
        updates: learner.core().updates,
        diverged: learner.core().diverged,
        wall_seconds,
        history: progress.history,
        prior,
        customized,
        link: env.counters(),
        record_stats,
        transitions_dropped: dropped,
        signal_faults: end.signal_faults,
        prior_faults: end.prior_faults,
        late_steps: end.late_steps,
        calibration_steps,
        curve: curve.points,
        controller: ctl,
        learner,
    })
}

/// How the control loop ended.
struct LoopEnd {
    env_steps: u64,
    estop: bool,
    /// Training ticks with a signal non-finite or outside its declared range.
    signal_faults: u64,
    /// Training ticks on which the prior failed.
    prior_faults: u64,
    /// Training steps that did not follow from their command alone.
    late_steps: u64,
}

/// The control loop's parts.
struct Drive<'a> {
    env: &'a mut dyn Env,
    ctl: &'a mut Controller,
    supervisor: &'a mut Supervisor,
    recorder: Option<&'a Recorder>,
    opts: &'a Options,
    curve: &'a mut Curve,
}

impl Drive<'_> {
    /// Drives the robot from step `from` to `opts.steps`, feeding `learning`.
    fn run(&mut self, learning: &mut dyn LoopLearning, from: u64) -> Result<LoopEnd> {
        let (env, ctl, supervisor, opts) = (&mut *self.env, &mut *self.ctl, &mut *self.supervisor, self.opts);
        let curve = &mut *self.curve;
        let mut eval_due = if opts.eval_every > 0 { next_due(from, opts.eval_every) } else { u64::MAX };
        let eval_episodes = opts.eval_episodes.unwrap_or(ctl.bundle.manifest.evaluation.episodes);
        let mut guard = FailureGuard::new(
            ctl.bundle.manifest.safety.failed_episodes_stop,
            ctl.bundle.manifest.learning.warmup as u64,
        );
        // The highest add-on reward of any training step (for the guard's message).
        let mut addon_hi = f32::NEG_INFINITY;
        let explore =
            if ctl.bundle.manifest.exploration.mode == "greedy" { ActMode::Greedy } else { ActMode::Sample };
        let ex = ctl.bundle.manifest.exploration.clone();
        let deadline = Duration::from_secs_f32(ctl.bundle.safety.tick_deadline_ms / 1000.0);
        let layout = learning.layout();
        let (act_dim, cand_width, pw) = (layout.act_dim, layout.cand_width, layout.param_width);
        let n_obs = ctl.bundle.residual_inputs();
        let mut env_steps = from;
        let mut episodes = 0usize;

        // A resumed run draws fresh episodes from a stream keyed by where it resumed.
        env.reseed(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ from);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(opts.seed ^ from ^ 0xac7);
        // So are the prior's continuous draws (K candidates a tick for the sampled method).
        ctl.replace_draw_rng(rand_pcg::Pcg64Mcg::seed_from_u64(opts.seed ^ from ^ 0xd2a3));
        let bar = if opts.progress && env_steps < opts.steps {
            let bar = ProgressBar::new(opts.steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(env_steps);
            bar
        } else {
            ProgressBar::hidden()
        };

        let mut vals = vec![0.0f32; ctl.bundle.vars.len()];
        let mut terms = vec![0.0f32; ctl.bundle.addon.terms.len()];
        let mut obs = vec![0.0f32; n_obs];
        let mut next_logp0 = vec![0.0f32; ctl.logp0.len()];
        let n_cmd = ctl.bundle.commands.len();
        let mut cmd = vec![0.0f32; n_cmd];
        let mut prev_cmd = vec![0.0f32; n_cmd];
        // The continuous action taken, in [−1, 1] units (what the continuous heads take as input).
        let mut action_unit = [0.0f32; firmware_bridge::MAX_COMMANDS];
        // The prior at s, kept with the transition by the methods that need it: its Gaussian
        // (residual SAC, RPG) or `log π0(·|s)` (discrete RPG).
        let mut params = vec![0.0f32; pw];
        let started = Instant::now();
        let mut ep_addon = 0.0f32;
        let (continuing, window) = (ctl.bundle.episode.continuing, ctl.bundle.episode.window);
        let mut window_steps = 0u32;
        let mut tick = TickRecord::default();
        let mut last_tick_start: Option<Instant> = None;
        let mut estop = false;
        let mut signal_faults = 0u64;
        let mut prior_faults = 0u64;
        let mut late_steps = 0u64;
        let mut late_in_episode = 0u32;

        env.reset()?;
        supervisor.new_episode();
        ctl.new_episode();
        ctl.kl_budget = kl_budget(ex.kl_budget_start, ex.kl_budget_end, ex.kl_budget_ramp, env_steps);
        let mut frame_at = Instant::now();
        let mut d = ctl.step(env.signals(), PolicyChoice::Customized, explore, &mut rng);
        while env_steps < opts.steps {
            if env.estop() {
                supervisor.latch_estop();
            }
            // The decision for these signals was made when they arrived; check its deadline.
            let mut decisions = Decisions::default();
            if frame_at.elapsed() > deadline {
                decisions.0 |= Decisions::DEADLINE_MISS;
                ctl.prior_fallback(&mut d);
            }
            if d.fallback {
                decisions.0 |= Decisions::FALLBACK;
            }
            if d.signal_fault {
                decisions.0 |= Decisions::SIGNAL_FAULT;
                if signal_faults == 0 {
                    // Formatting allocates: once per run, on the first fault.
                    if let Some((i, v)) = ctl.bundle.signal_fault(env.signals()) {
                        let (lo, hi) = ctl.bundle.signal_range[i];
                        warn!(
                            "signal `{}` read {v}, outside its declared range [{lo}, {hi}] ([[robot.signal]] min/max): the prior acts alone on such ticks (counted as signal_faults)",
                            ctl.bundle.signals[i]
                        );
                    }
                }
                signal_faults += 1;
            }
            if d.prior_fault {
                decisions.0 |= Decisions::PRIOR_FAULT;
                if prior_faults == 0 {
                    warn!(
                        "the prior failed at step {env_steps} (an error, or NaN/+inf outputs, or every action at -inf): the safe command was sent; such ticks are counted as prior_faults and not learned from"
                    );
                }
                prior_faults += 1;
            }
            if d.lambda < 1.0 && !d.signal_fault && !d.prior_fault {
                decisions.0 |= Decisions::KL_LIMITED;
            }
            decisions.0 |= supervisor.filter(&ctl.command, &mut cmd).0;
            ctl.sent(&cmd);
            if supervisor.estop_latched() {
                // Honoured until an explicit reset: restarting resq is that reset. The tick that
                // sent the safe command is recorded like any other.
                warn!("e-stop reported by the robot at step {env_steps}: safe command sent, run stopped");
                fill_before(&mut tick, ctl, env, d, &cmd, frame_at, last_tick_start, started);
                if let Some(rec) = self.recorder {
                    tick.decisions = decisions;
                    tick.addon_reward = f32::NAN;
                    tick.n_terms = 0;
                    rec.record(&tick);
                }
                env.step(&cmd)?;
                estop = true;
                break;
            }
            obs.copy_from_slice(&ctl.res_obs);
            if let Some(sa) = &ctl.continuous {
                action_unit[..sa.act_dim].copy_from_slice(&sa.action);
                params.copy_from_slice(&sa.gauss[..pw]);
            } else {
                params.copy_from_slice(&ctl.logp0[..pw]);
            }
            let tick_start = Instant::now();
            fill_before(&mut tick, ctl, env, d, &cmd, frame_at, last_tick_start, started);
            last_tick_start = Some(tick_start);
            env.act(&cmd)?;
            // Learn while the robot moves; the command is already on its way.
            learning.between_ticks(ctl)?;
            let mut end = env.observe()?;
            frame_at = Instant::now();
            ctl.bundle.vars.fill(env.signals(), &cmd, &prev_cmd, &mut vals);
            prev_cmd.copy_from_slice(&cmd);
            ctl.bundle.episode.apply(&vals, &mut end);
            let r = ctl.bundle.addon.eval(&vals, &mut terms);
            ep_addon += r;
            addon_hi = addon_hi.max(r);
            env_steps += 1;
            ctl.kl_budget = kl_budget(ex.kl_budget_start, ex.kl_budget_end, ex.kl_budget_ramp, env_steps);
            // Act at s' now (this computes log π0(·|s') for the transition); at an episode's end
            // only observe s'.
            let (next, next_ok) = if end.done() {
                (None, ctl.observe(env.signals()))
            } else {
                let n = ctl.step(env.signals(), PolicyChoice::Customized, explore, &mut rng);
                (Some(n), !n.prior_fault)
            };
            next_logp0.copy_from_slice(&ctl.logp0);
            let next_candidates = ctl.continuous.as_ref().map_or(&[][..], |sa| &sa.candidates[..cand_width]);
            let next_params = match &ctl.continuous {
                Some(sa) => &sa.gauss[..pw],
                None => &next_logp0[..pw],
            };
            // A non-finite reading (possible in a simulation; the protocol refuses them) or a
            // failed prior at either end would poison the learner: such a transition is not
            // learned from.
            let finite = r.is_finite()
                && !d.prior_fault
                && next_ok
                && obs.iter().chain(ctl.res_obs.iter()).all(|v| v.is_finite());
            if end.late {
                decisions.0 |= Decisions::LATE;
                if late_steps == 0 {
                    warn!(
                        "step {env_steps} did not follow from resq's command alone (the robot stepped before the command arrived, or under its safe action, or Sensors were skipped): such steps are counted as late_steps and not learned from; many mean the loop does not keep up with the robot's period"
                    );
                }
                late_steps += 1;
                late_in_episode += 1;
            }
            // A late step is the robot's, not the policy's: learning from it would credit the
            // command with what another command (or the safe action) did.
            if finite && !end.late {
                learning.transition(
                    &Transition {
                        obs: &obs,
                        action: d.action,
                        action_values: &action_unit[..act_dim],
                        next_candidates,
                        prior_params: &params,
                        next_prior_params: next_params,
                        reward: r,
                        logp0_taken: d.logp0_taken,
                        logpi_taken: d.logpi_taken,
                        next_obs: &ctl.res_obs,
                        next_logp0: &next_logp0,
                        terminal: end.terminated,
                        truncated: end.truncated,
                    },
                    env_steps,
                )?;
            }
            if let Some(rec) = self.recorder {
                tick.decisions = Decisions(decisions.0 | if end.done() { Decisions::EPISODE_END } else { 0 });
                tick.addon_reward = r;
                let n = terms.len().min(crate::record::tick::MAX);
                tick.n_terms = n as u8;
                tick.addon_terms[..n].copy_from_slice(&terms[..n]);
                rec.record(&tick);
            }
            if learning.diverged() {
                warn!("the learner diverged at step {env_steps}: learning stopped, the prior acts alone");
                break;
            }
            window_steps += 1;
            let window_done = continuing && window_steps >= window;
            let ended = next.is_none() || window_done;
            if ended {
                // An episode (or a continuing task's window) ended.
                let success =
                    end.interrupted || ctl.bundle.episode.succeeded(end, &vals, window_steps, window_done);
                let len = window_steps.max(1);
                learning.episode_end(len, ep_addon / len as f32, success)?;
                let trip = guard.episode_end(env_steps, success, late_in_episode);
                late_in_episode = 0;
                if let Some(trip) = trip {
                    bar.finish_and_clear();
                    return Err(guard_stop(ctl, trip, addon_hi));
                }
                if next.is_none() {
                    episodes += 1;
                    if opts.progress {
                        // Formatting allocates: only when someone watches the bar.
                        bar.set_message(format!(
                            "episode {episodes} len {len} add-on/step {:.3}",
                            ep_addon / len as f32
                        ));
                    }
                }
                ep_addon = 0.0;
                window_steps = 0;
            }
            let mut restart = next.is_none();
            if ended && env_steps >= eval_due {
                // A point of the learning curve, on the evaluation starts; then training goes on
                // from a new episode (a continuing task is reset).
                bar.set_message(format!("evaluating at step {env_steps}"));
                let eval =
                    evaluate(ctl, env, supervisor, PolicyChoice::Customized, eval_episodes, opts.seed)?;
                curve.push(env_steps, &eval)?;
                info!("learning curve at step {env_steps}: {}", curve_line(&eval));
                eval_due = next_due(env_steps, opts.eval_every);
                env.reseed(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ env_steps);
                restart = true;
            }
            match next {
                Some(n) if !restart => d = n,
                _ => {
                    // (The add-on sum and the window's count were cleared when the episode ended.)
                    prev_cmd.iter_mut().for_each(|v| *v = 0.0);
                    env.reset()?;
                    supervisor.new_episode();
                    ctl.new_episode();
                    frame_at = Instant::now();
                    d = ctl.step(env.signals(), PolicyChoice::Customized, explore, &mut rng);
                }
            }
            bar.set_position(env_steps);
        }
        bar.finish_and_clear();
        Ok(LoopEnd { env_steps, estop, signal_faults, prior_faults, late_steps })
    }
}

/// Why the failure guard stopped the run, and what to change.
fn guard_stop(ctl: &Controller, trip: Trip, addon_hi: f32) -> anyhow::Error {
    let m = &ctl.bundle.manifest;
    let mut msg = format!(
        "{} of the last {WINDOW} training episodes failed by `[episode] success`, against {} of {} for the prior alone in the warm-up: the customization is costing the robot its task, so the run stopped (`[safety] failed_episodes_stop = {}`)",
        trip.failed, trip.prior_failed, trip.prior_episodes, m.safety.failed_episodes_stop
    );
    if trip.late_steps > 0 {
        msg += &format!(
            "\n  {} steps of these episodes ran late (the robot stepped before resq's command arrived, or under its safe action): the failures may be the loop's timing, not the customization; learn on a thread (`learning.thread = true`), lower `learning.updates_per_tick` (now {}), or run the loop under SCHED_FIFO (`resq run --rt-priority 50`)",
            trip.late_steps, m.learning.updates_per_tick
        );
    }
    if addon_hi <= 0.0 {
        msg += &format!(
            "\n  the add-on was <= 0 on every step (highest {addon_hi}): ending an episode early escapes it, so the residual learns to end episodes"
        );
    }
    msg += &format!(
        "\n  fix: hold the prior's task more strongly: raise `residual.omega` and `residual.alpha` together (now {} and {}), or set a KL budget (`exploration.kl_budget_end`); write the add-on so that doing well scores >= 0 (e.g. add a constant); then start over with --fresh",
        m.residual.omega, m.residual.alpha
    );
    anyhow::anyhow!(msg)
}

/// One point of the curve for the log: success rate and the bundle's metrics.
fn curve_line(e: &PolicyEval) -> String {
    let mut s = format!("success {:.2}", e.success_rate);
    for (k, v) in &e.metrics {
        s += &format!(", {k} {v:.4}");
    }
    s
}

/// Fills the parts of a tick record known before the command is sent.
#[allow(clippy::too_many_arguments)]
fn fill_before(
    t: &mut TickRecord,
    ctl: &Controller,
    env: &dyn Env,
    d: Decision,
    cmd: &[f32],
    frame_at: Instant,
    last_tick: Option<Instant>,
    started: Instant,
) {
    let now = Instant::now();
    t.t_ns = now.duration_since(started).as_nanos() as u64;
    t.tick += 1;
    (t.seq, t.firmware_t_us) = env.frame_stamp();
    let sig = env.signals();
    let n = sig.len().min(crate::record::tick::MAX);
    t.n_signals = n as u8;
    t.signals[..n].copy_from_slice(&sig[..n]);
    let n = ctl.obs.len().min(crate::record::tick::MAX);
    t.n_obs = n as u8;
    t.obs[..n].copy_from_slice(&ctl.obs[..n]);
    // Discrete: per action; continuous: per candidate (the first MAX of them).
    let n = ctl.logp0.len().min(crate::record::tick::MAX);
    t.n_actions = n as u8;
    t.logp0[..n].copy_from_slice(&ctl.logp0[..n]);
    t.q_r[..n].copy_from_slice(&ctl.q_r[..n]);
    t.action = d.action as u32;
    t.n_commands = cmd.len() as u8;
    t.command[..cmd.len()].copy_from_slice(cmd);
    t.kl = d.kl;
    t.latency_ns = now.duration_since(frame_at).as_nanos().min(u32::MAX as u128) as u32;
    t.period_ns = last_tick.map_or(0, |l| now.duration_since(l).as_nanos().min(u64::MAX as u128) as u64);
    t.link = env.counters();
}

/// The record's header for this bundle.
pub fn record_meta(b: &Bundle, source: &str) -> RecordMeta {
    RecordMeta {
        bundle: b.manifest.bundle.name.clone(),
        signals: b.signals.clone(),
        obs: b.obs.names.clone(),
        actions: (0..b.n_actions()).map(|i| b.action_label(i)).collect(),
        commands: b.commands.clone(),
        addon_terms: b.addon.term_names().map(str::to_string).collect(),
        source: source.to_string(),
    }
}
