//! The training loop of `resq customize` and `resq run`: the robot is stepped through the one
//! [`Stepper`], with learning fitted between a command leaving and the robot's answer.
//!
//! Per tick: the controller decides (π̂, sampled, within the KL budget) as soon as the signals
//! arrive, the supervisor filters the command and it is sent; while the robot moves, the learning
//! side takes its turn (see [`crate::session::learning`]: inline, `updates_per_tick` gradient
//! steps and a weight hand-over, bit-for-bit reproducible from a seed; or on its own thread,
//! taking the newest weights without waiting); then the new signals arrive, the add-on reward is
//! evaluated, the controller decides at `s'`, and the transition `(s, a, r_R, s')` goes to the
//! learner. Nothing of the learner's sits between a frame and its command.
//!
//! A transition is learned from only if the robot did what was recorded: never from a late step
//! (the robot stepped before the command arrived), a failed prior or a non-finite value.

use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use log::{info, warn};

use super::curve::{next_due, Curve};
use super::evaluate::{evaluate, PolicyEval};
use super::guard::{Baseline, FailureGuard, PointTest, SequentialTest, Trip};
use super::learning::LoopLearning;
use super::options::Options;
use super::trade_off::TradeOff;
use crate::algo::replay::Transition;
use crate::bundle::ActionSpace;
use crate::control::{Controller, Decision, Decisions, PolicyChoice, Stepper, Supervisor};
use crate::error::Fixable;
use crate::policy::discrete::kl_budget;
use crate::robot::{Env, StepEnd};
use crate::store::record::{tick, Recorder, TickRecord};
use crate::streams;

/// How the training loop ended.
pub struct LoopEnd {
    pub env_steps: u64,
    /// The robot reported an e-stop.
    pub estop: bool,
    /// The failure guard stopped the run: why, and what to change.
    pub stopped: Option<Fixable>,
    /// The prior's own whole episodes acting as training acts (before the run, in the warm-up,
    /// or from the checkpoint), and how many failed.
    pub prior_episodes: Baseline,
    pub counts: Counts,
}

impl LoopEnd {
    /// The failure guard stopped the loop at `env_steps`, for `why`.
    fn stopped(env_steps: u64, estop: bool, why: Fixable, prior_episodes: Baseline, counts: Counts) -> Self {
        LoopEnd { env_steps, estop, stopped: Some(why), prior_episodes, counts }
    }
}

/// Training ticks that were not ordinary, counted for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// A signal was non-finite or outside its declared range (the prior acted alone).
    pub signal_faults: u64,
    /// The prior failed (the safe command was sent; not learned from).
    pub prior_faults: u64,
    /// The step did not follow from its command alone (not learned from).
    pub late_steps: u64,
    /// RPG: the action applied was not drawn from the acting policy (the deadline fallback's,
    /// or the supervisor changed it), so the behaviour's probability is unknown: not learned from.
    pub not_drawn: u64,
    /// Discrete actions: the supervisor changed the command into one that is no action's (a
    /// rate limit between two table rows): not learned from.
    pub unlearnable_commands: u64,
}

/// The training loop's parts.
pub struct Training<'a> {
    pub env: &'a mut dyn Env,
    pub ctl: &'a mut Controller,
    pub supervisor: &'a mut Supervisor,
    pub recorder: Option<&'a Recorder>,
    pub opts: &'a Options,
    pub curve: &'a mut Curve,
    /// The prior's own whole episodes known before training (the failure guard's baselines).
    pub prior: PriorEpisodes,
    /// The multiplier on ω' and α̂ and how it moves.
    pub trade: TradeOff,
}

/// The prior's own whole episodes: acting as training acts (the baseline for training episodes)
/// and as evaluation acts (the baseline for the learning curve's points, when there is a curve).
#[derive(Clone, Copy, Debug, Default)]
pub struct PriorEpisodes {
    pub training: Baseline,
    pub evaluation: Option<Baseline>,
}

/// Buffers a transition needs beyond the stepper's, allocated once.
struct Buffers {
    /// Width of the prior's parameters kept with a transition (`params`).
    pw: usize,
    /// The residual's input at `s`.
    obs: Vec<f32>,
    /// `log π0(·|s')` (discrete: per action; continuous: per candidate).
    next_logp0: Vec<f32>,
    /// The continuous action taken, in [−1, 1] units (what the continuous heads take as input).
    action_unit: [f32; firmware_bridge::MAX_COMMANDS],
    /// Its pre-action `u` (NaN where the supervisor changed the action).
    pre_action: [f32; firmware_bridge::MAX_COMMANDS],
    /// The prior at `s`, kept with the transition by the methods that need it: its Gaussian
    /// (residual SAC, RPG) or `log π0(·|s)` (discrete RPG).
    params: Vec<f32>,
}

impl Buffers {
    /// Keeps what the transition needs of the state `s` the controller just decided at: the
    /// residual's input, the continuous action taken, and the prior's parameters.
    fn capture(&mut self, ctl: &Controller) {
        self.obs.copy_from_slice(&ctl.res_obs);
        if let Some(sa) = &ctl.continuous {
            self.action_unit[..sa.act_dim].copy_from_slice(&sa.action);
            self.pre_action[..sa.act_dim].copy_from_slice(&sa.pre_action);
            self.params.copy_from_slice(&sa.gauss[..self.pw]);
        } else {
            self.params.copy_from_slice(&ctl.logp0[..self.pw]);
        }
    }
}

impl Training<'_> {
    /// Drives the robot from step `from` to `opts.steps`, feeding `learning`.
    pub fn run(&mut self, learning: &mut dyn LoopLearning, from: u64) -> Result<LoopEnd> {
        let (env, ctl, supervisor, opts) = (&mut *self.env, &mut *self.ctl, &mut *self.supervisor, self.opts);
        let mut eval_due = if opts.eval_every > 0 { next_due(from, opts.eval_every) } else { u64::MAX };
        let eval_episodes = opts.eval_episodes.unwrap_or(ctl.bundle.manifest.evaluation.episodes);
        let safety = &ctl.bundle.manifest.safety;
        let mut guard = FailureGuard::new(
            safety.failed_episodes_stop,
            safety.guard_false_alarm,
            ctl.bundle.manifest.learning.warmup as u64,
            self.prior.training,
            safety.prior_failure_rate,
        );
        // The curve's points (greedy, as evaluation acts) against the prior's evaluation: half
        // the false-alarm budget bounds the prior's rate, a quarter each goes to the test of the
        // episodes in order and to the test of each point as a batch.
        let half = 0.5 * safety.guard_false_alarm;
        let mut curve_test = self.prior.evaluation.map(|b| {
            let p0 = b.rate_upper(half);
            let stop = safety.failed_episodes_stop;
            (
                b,
                SequentialTest::new(p0, stop, half / 2.0),
                PointTest::new(p0, if stop > 0 { half / 2.0 } else { 0.0 }),
            )
        });
        // The highest add-on reward of any training step (for the guard's message).
        let mut addon_hi = f32::NEG_INFINITY;
        let explore = ctl.bundle.manifest.exploration.mode;
        let ex = ctl.bundle.manifest.exploration.clone();
        let budget_at = |step| kl_budget(ex.kl_budget_start, ex.kl_budget_end, ex.kl_budget_ramp, step);
        let deadline = Duration::from_secs_f32(ctl.bundle.safety.tick_deadline_ms / 1000.0);
        let layout = learning.layout();
        // RPG's ratio and entropy term need the probability the action was drawn with.
        let needs_behaviour = ctl.bundle.method == crate::bundle::Method::Rpg;
        let (act_dim, cand_width, pw) = (layout.act_dim, layout.cand_width, layout.param_width);
        let mut env_steps = from;
        let mut episodes = 0usize;
        // The step of the first update of a fresh run (RPG updates per rollout instead).
        let first_update = match ctl.bundle.method {
            crate::bundle::Method::Rpg => u64::MAX,
            _ if from > 0 => u64::MAX,
            _ => ctl.bundle.manifest.learning.warmup as u64,
        };

        // A resumed run draws fresh episodes, actions and prior draws from streams keyed by
        // where it resumed.
        env.reseed(streams::training_episodes(opts.seed, from));
        let mut rng = streams::training_actions(opts.seed, from);
        ctl.replace_draw_rng(streams::prior_draws(opts.seed, from));
        let bar = progress_bar(opts, env_steps);

        let mut stepper = Stepper::new(&ctl.bundle);
        let mut buf = Buffers {
            pw,
            obs: vec![0.0; ctl.bundle.residual_inputs()],
            next_logp0: vec![0.0; ctl.logp0.len()],
            action_unit: [0.0; firmware_bridge::MAX_COMMANDS],
            pre_action: [0.0; firmware_bridge::MAX_COMMANDS],
            params: vec![0.0; pw],
        };
        let started = Instant::now();
        let mut ep_addon = 0.0f32;
        let (continuing, window) = (ctl.bundle.episode.continuing, ctl.bundle.episode.window);
        let mut window_steps = 0u32;
        let mut tick = TickRecord::default();
        let mut last_tick_start: Option<Instant> = None;
        let mut estop = false;
        let mut counts = Counts::default();
        let mut late_in_episode = 0u32;
        // The lowest add-on reward seen (what `failure_value = "worst"` is made of).
        let mut addon_lo = 0.0f32;
        let warmup = ctl.bundle.manifest.learning.warmup as u64;

        stepper.new_episode(ctl, env, supervisor)?;
        ctl.kl_budget = budget_at(env_steps);
        let mut frame_at = Instant::now();
        // `--prior-only`: the prior acts alone and nothing is learned (a record of it at work).
        let acting = if opts.prior_only { PolicyChoice::Prior } else { PolicyChoice::Customized };
        let mut d = ctl.step(env.signals(), acting, explore, &mut rng);
        while env_steps < opts.steps {
            if env.estop() {
                supervisor.latch_estop();
            }
            // The decision for these signals was made when they arrived; check its deadline (a
            // lock-step robot waits for it: `Env::real_time`).
            let missed = env.real_time() && frame_at.elapsed() > deadline;
            let mut decisions = decision_flags(ctl, env, &mut d, missed, &mut counts, env_steps);
            decisions.0 |= stepper.filter(ctl, supervisor).0;
            if supervisor.estop_latched() {
                // Honoured until an explicit reset: restarting resq is that reset. The tick that
                // sent the safe command is recorded like any other.
                warn!("e-stop reported by the robot at step {env_steps}: safe command sent, run stopped");
                fill_before(&mut tick, ctl, env, d, &stepper.cmd, frame_at, last_tick_start, started);
                if let Some(rec) = self.recorder {
                    tick.decisions = decisions;
                    tick.addon_reward = f32::NAN;
                    tick.n_terms = 0;
                    keep(rec, &tick, env.real_time());
                }
                stepper.act(env)?;
                env.observe()?;
                estop = true;
                break;
            }
            buf.capture(ctl);
            // Learn from what the robot received: where the supervisor clamped or rate-limited
            // the command, the transition is about the applied command, not the chosen one.
            let supervised =
                decisions.contains(Decisions::CLAMPED) || decisions.contains(Decisions::RATE_LIMITED);
            let applied_known = !supervised
                || applied_action(ctl, &stepper.cmd, &mut d, &mut buf.action_unit, &mut buf.pre_action);
            if !applied_known {
                counts.unlearnable_commands += 1;
            }
            let tick_start = Instant::now();
            fill_before(&mut tick, ctl, env, d, &stepper.cmd, frame_at, last_tick_start, started);
            last_tick_start = Some(tick_start);
            stepper.act(env)?;
            // Learn while the robot moves; the command is already on its way.
            if !opts.prior_only {
                learning.between_ticks(ctl)?;
            }
            let out = stepper.observe(&ctl.bundle, env)?;
            let (end, r) = (out.end, out.reward);
            frame_at = Instant::now();
            ep_addon += r;
            addon_hi = addon_hi.max(r);
            env_steps += 1;
            ctl.kl_budget = budget_at(env_steps);
            // Act at s' now (this computes log π0(·|s') for the transition); at an episode's end
            // only observe s'.
            let (next, next_ok) = if end.done() {
                (None, ctl.observe(env.signals()))
            } else {
                let n = ctl.step(env.signals(), acting, explore, &mut rng);
                (Some(n), !n.prior_fault)
            };
            buf.next_logp0.copy_from_slice(&ctl.logp0);
            let next_candidates = ctl.continuous.as_ref().map_or(&[][..], |sa| &sa.candidates[..cand_width]);
            let next_params = match &ctl.continuous {
                Some(sa) => &sa.gauss[..pw],
                None => &buf.next_logp0[..pw],
            };
            // A non-finite reading (possible in a simulation; the protocol refuses them) or a
            // failed prior at either end would poison the learner: such a transition is not
            // learned from.
            let finite = r.is_finite()
                && !d.prior_fault
                && next_ok
                && buf.obs.iter().chain(ctl.res_obs.iter()).all(|v| v.is_finite());
            if end.late {
                decisions.0 |= Decisions::LATE;
                late_in_episode += 1;
            }
            // (Counted whatever else holds the step back.)
            let learnable = learnable(end, &d, needs_behaviour, &mut counts, env_steps);
            addon_lo = addon_lo.min(r);
            // A termination the bundle counts as a failure ends the add-on's stream: valued at 0
            // it would make failing the cheapest way out of a penalty. Its value is folded into
            // the last reward the learner sees (the recorded add-on stays the robot's).
            let failed_end = end.terminated
                && !ctl.bundle.episode.succeeded(end, &stepper.vals, env.episode_steps(), false);
            let r_learn = if failed_end {
                r + ctl.bundle.manifest.residual.gamma * ctl.bundle.failure_value(addon_lo)
            } else {
                r
            };
            if finite && applied_known && learnable && !opts.prior_only {
                learning.transition(
                    &Transition {
                        obs: &buf.obs,
                        action: d.action,
                        action_values: &buf.action_unit[..act_dim],
                        pre_action: &buf.pre_action[..act_dim],
                        next_candidates,
                        prior_params: &buf.params,
                        next_prior_params: next_params,
                        reward: r_learn,
                        logp0_taken: d.logp0_taken,
                        // The probability the applied action was taken with: 1 for one the
                        // policy did not draw (greedy acting, the deadline fallback).
                        logpi_taken: if d.not_drawn { 0.0 } else { d.logpi_taken },
                        next_obs: &ctl.res_obs,
                        next_logp0: &buf.next_logp0,
                        terminal: end.terminated,
                        truncated: end.truncated,
                    },
                    env_steps,
                )?;
            }
            // The trade-off measures the policy that acted, after the warm-up (before it, the
            // residual is zero and π̂ the tempered prior).
            if env_steps > warmup && !opts.prior_only && self.trade.tick(d.kl) {
                set_scale(ctl, learning, &self.trade, env_steps, false);
            }
            if let Some(rec) = self.recorder {
                let ended = if end.done() { Decisions::EPISODE_END } else { 0 };
                let terminated = if end.terminated { Decisions::TERMINATED } else { 0 };
                let end_state = if end.done() {
                    let (sig, n) = (env.signals(), tick.n_signals as usize);
                    tick.end_signals[..n].copy_from_slice(&sig[..n]);
                    Decisions::END_STATE
                } else {
                    0
                };
                tick.decisions = Decisions(decisions.0 | ended | terminated | end_state);
                tick.addon_reward = r;
                let n = stepper.terms.len().min(tick::MAX);
                tick.n_terms = n as u8;
                tick.addon_terms[..n].copy_from_slice(&stepper.terms[..n]);
                keep(rec, &tick, env.real_time());
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
                // The episode's length is the robot's count (in real time resq may skip
                // Sensors after a stall; they were steps all the same).
                let steps = if continuing { window_steps } else { env.episode_steps() };
                let success =
                    end.interrupted || ctl.bundle.episode.succeeded(end, &stepper.vals, steps, window_done);
                let len = window_steps.max(1);
                learning.episode_end(len, ep_addon / len as f32, success)?;
                if !success && self.trade.failed() {
                    set_scale(ctl, learning, &self.trade, env_steps, true);
                }
                let trip = guard.episode_end(env_steps, success, late_in_episode);
                late_in_episode = 0;
                if let Some(trip) = trip {
                    bar.finish_and_clear();
                    let why = guard_stop(ctl, trip, (addon_lo, addon_hi), env_steps);
                    return Ok(LoopEnd::stopped(env_steps, estop, why, guard.baseline(), counts));
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
            if env_steps == first_update && episodes < 2 && !continuing {
                warn!("{}", early_first_update(env_steps, episodes, &ctl.bundle.manifest.learning));
            }
            let mut restart = next.is_none();
            if ended && env_steps >= eval_due {
                // A point of the learning curve, on the evaluation starts; then training goes on
                // from a new episode (a continuing task is reset).
                bar.set_message(format!("evaluating at step {env_steps}"));
                let eval =
                    evaluate(ctl, env, supervisor, PolicyChoice::Customized, eval_episodes, opts.seed)?;
                self.curve.push(env_steps, &eval)?;
                info!("learning curve at step {env_steps}: {}", curve_line(&eval));
                if let Some((prior, test, point)) = curve_test.as_mut() {
                    // Every episode is a trial, in the order it ran; and the point as a whole
                    // (`|`, not `||`: the point test counts every point).
                    let failed = Baseline::of(&eval.outcomes).failed;
                    let in_order = eval.outcomes.iter().any(|ok| test.episode(!ok));
                    if in_order | point.point(failed, eval.outcomes.len() as u32) {
                        bar.finish_and_clear();
                        let why = curve_stop(ctl, &eval, *prior, test.p0, env_steps);
                        return Ok(LoopEnd::stopped(env_steps, estop, why, guard.baseline(), counts));
                    }
                }
                eval_due = next_due(env_steps, opts.eval_every);
                env.reseed(streams::training_episodes(opts.seed, env_steps));
                restart = true;
            }
            match next {
                Some(n) if !restart => d = n,
                _ => {
                    // (The add-on sum and the window's count were cleared when the episode ended.)
                    stepper.new_episode(ctl, env, supervisor)?;
                    frame_at = Instant::now();
                    d = ctl.step(env.signals(), acting, explore, &mut rng);
                }
            }
            bar.set_position(env_steps);
        }
        bar.finish_and_clear();
        Ok(LoopEnd { env_steps, estop, stopped: None, prior_episodes: guard.baseline(), counts })
    }
}

/// Hands `tick` to the recorder: never waiting on a robot with its own clock (`real_time`);
/// waiting for room on one that waits for resq, so that a simulation's record is whole.
fn keep(rec: &Recorder, tick: &TickRecord, real_time: bool) {
    if real_time {
        rec.record(tick);
    } else {
        rec.record_waiting(tick);
    }
}

/// Acts at the trade-off's new multiplier from the next tick on. The learner hears of it every
/// 16 steps, or at once (`now`) when a failure moved it: a change of `η` a tick matters only
/// over many ticks, and a message a tick would double the learner thread's queue.
fn set_scale(
    ctl: &mut Controller,
    learning: &mut dyn LoopLearning,
    trade: &TradeOff,
    env_steps: u64,
    now: bool,
) {
    ctl.bundle.weight_scale = trade.scale();
    if now || env_steps.is_multiple_of(16) {
        learning.set_weights(trade.scale(), ctl.bundle.weights());
    }
    if env_steps.is_multiple_of(1000) {
        info!(
            "trade-off at step {env_steps}: omega' and alpha at {:.4}x the manifest's, KL from the prior {:.3} nats per step (target {})",
            trade.scale(),
            trade.kl_avg(),
            trade.target
        );
    }
}

/// Whether a step may be learned from, counting (and warning once about) why not. A late step is
/// the robot's, not the policy's: learning from it would credit the command with what another
/// command (or the safe action) did. Nor is a step the link cut (the firmware rebooted, the
/// cable went): what followed the command is unknown. Nor, for RPG, a step whose action the
/// policy did not draw: its probability under the behaviour is unknown.
fn learnable(end: StepEnd, d: &Decision, needs_behaviour: bool, counts: &mut Counts, env_steps: u64) -> bool {
    if end.late {
        if counts.late_steps == 0 {
            warn!(
                "step {env_steps} did not follow from resq's command alone (the robot stepped before the command arrived, or under its safe action, or Sensors were skipped): such steps are counted as late_steps and not learned from; many mean the loop does not keep up with the robot's period"
            );
        }
        counts.late_steps += 1;
    }
    let unknown_behaviour = needs_behaviour && d.not_drawn;
    if unknown_behaviour && !d.prior_fault {
        if counts.not_drawn == 0 {
            warn!(
                "step {env_steps}: the robot received an action the policy did not draw (the deadline fallback's, or the supervisor's clamp or rate limit); residual policy gradient needs the probability an action was drawn with, so such steps are not learned from (counted as not_drawn_steps)"
            );
        }
        counts.not_drawn += 1;
    }
    !end.late && !end.interrupted && !unknown_behaviour
}

/// The warning for a first update that comes before two whole episodes have ended.
fn early_first_update(step: u64, episodes: usize, l: &crate::bundle::manifest::LearningSection) -> String {
    format!(
        "learning starts at step {step}, after {episodes} whole episode(s): a residual fitted to fewer than two episodes at {} updates a tick can overshoot on starts it has not seen (docs/results/customization.md, \"The first steps\"). fix: raise learning.warmup (now {}) to span two episodes",
        l.updates_per_tick, l.warmup
    )
}

/// The action the robot received when the supervisor changed the command `cmd`: continuous, the
/// command mapped back to `[−1, 1]` units into `unit` (inside the squashed families' open
/// interval; its pre-action in `pre` becomes unknown, NaN); discrete, the table row it equals, whose log-probabilities then go into `d`.
/// Either way the applied action was not drawn from the acting policy (`d.not_drawn`: RPG does
/// not learn from it; the Q-learners do, about the action applied). Returns false when the
/// command is no action's: a discrete command between two table rows, or a continuous one
/// outside the action's `[low, high]` (e.g. on its way to a `safe` value outside them).
fn applied_action(
    ctl: &Controller,
    cmd: &[f32],
    d: &mut Decision,
    unit: &mut [f32],
    pre: &mut [f32],
) -> bool {
    match &ctl.bundle.action_space {
        ActionSpace::Continuous { .. } => {
            let mut drawn = [0.0f32; firmware_bridge::MAX_COMMANDS];
            drawn[..unit.len()].copy_from_slice(unit);
            if !ctl.bundle.unit_of(cmd, unit) {
                return false;
            }
            for (j, (u, was)) in unit.iter().zip(&drawn).enumerate() {
                if u != was {
                    d.not_drawn = true;
                    pre[j] = f32::NAN;
                }
            }
            true
        }
        ActionSpace::Discrete => match ctl.bundle.action_of(cmd) {
            Some(i) => {
                if i != d.action {
                    (d.action, d.logp0_taken, d.logpi_taken, d.not_drawn) =
                        (i, ctl.logp0[i], ctl.log_pi[i], true);
                }
                true
            }
            None => false,
        },
    }
}

/// The controller's part of a tick's decisions: a missed deadline (the prior's fallback acts
/// instead, written into `d`), a fallback, a signal or prior fault (each warned about once a run,
/// and counted), a KL-limited policy.
fn decision_flags(
    ctl: &mut Controller,
    env: &dyn Env,
    d: &mut Decision,
    deadline_missed: bool,
    counts: &mut Counts,
    env_steps: u64,
) -> Decisions {
    let mut decisions = Decisions::default();
    if deadline_missed {
        decisions.0 |= Decisions::DEADLINE_MISS;
        ctl.prior_fallback(d);
    }
    if d.fallback {
        decisions.0 |= Decisions::FALLBACK;
    }
    if d.signal_fault {
        decisions.0 |= Decisions::SIGNAL_FAULT;
        if counts.signal_faults == 0 {
            // Formatting allocates: once per run, on the first fault.
            if let Some((i, v)) = ctl.bundle.signal_fault(env.signals()) {
                let (lo, hi) = ctl.bundle.signal_range[i];
                warn!(
                    "signal `{}` read {v}, outside its declared range [{lo}, {hi}] ([[robot.signal]] min/max): the prior acts alone on such ticks (counted as signal_faults)",
                    ctl.bundle.signals[i]
                );
            }
        }
        counts.signal_faults += 1;
    }
    if d.prior_fault {
        decisions.0 |= Decisions::PRIOR_FAULT;
        if counts.prior_faults == 0 {
            warn!(
                "the prior failed at step {env_steps} (an error, or NaN/+inf outputs, or every action at -inf): the safe command was sent; such ticks are counted as prior_faults and not learned from"
            );
        }
        counts.prior_faults += 1;
    }
    if d.lambda < 1.0 && !d.signal_fault && !d.prior_fault {
        decisions.0 |= Decisions::KL_LIMITED;
    }
    decisions
}

fn progress_bar(opts: &Options, env_steps: u64) -> ProgressBar {
    if !opts.progress || env_steps >= opts.steps {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(opts.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(env_steps);
    bar
}

/// Why the failure guard stopped the run, and what to change.
fn guard_stop(ctl: &Controller, trip: Trip, (addon_lo, addon_hi): (f32, f32), env_steps: u64) -> Fixable {
    let m = &ctl.bundle.manifest;
    let baseline = if trip.declared {
        format!("the prior's declared rate {:.3} (`[safety] prior_failure_rate`)", trip.p0)
    } else {
        format!(
            "the prior's rate of at most {:.3} ({} of its {} whole episodes failed)",
            trip.p0, trip.baseline.failed, trip.baseline.episodes
        )
    };
    let mut msg = format!(
        "{} of the last {} training episodes failed by `[episode] success`, against {baseline}: more than the prior fails, at a false-alarm rate of {} over the run (`[safety] guard_false_alarm`); the customization is costing the robot its task, so the run stopped at step {env_steps}",
        trip.failed, trip.window, m.safety.guard_false_alarm
    );
    if trip.late_steps > 0 {
        msg += &format!(
            "\n  {} steps of these episodes ran late (the robot stepped before resq's command arrived, or under its safe action): the failures may be the loop's timing, not the customization; learn on a thread (`learning.thread = true`), lower `learning.updates_per_tick` (now {}), or run the loop under SCHED_FIFO (`resq run --rt-priority 50`)",
            trip.late_steps, m.learning.updates_per_tick
        );
    }
    let escapes = ctl.bundle.failure_escapes(addon_lo, addon_hi);
    if escapes {
        msg += &format!(
            "\n  the add-on was <= 0 on every step (highest {addon_hi}) and `residual.failure_value` is {}: ending an episode early escapes it, so the residual learns to end episodes",
            ctl.bundle.failure_value(addon_lo)
        );
    }
    Fixable::new(msg, hold_the_task(m, escapes))
}

/// Why a point of the learning curve stopped the run.
fn curve_stop(ctl: &Controller, eval: &PolicyEval, prior: Baseline, p0: f64, env_steps: u64) -> Fixable {
    let m = &ctl.bundle.manifest;
    let failed = Baseline::of(&eval.outcomes).failed;
    let msg = format!(
        "the learning curve's point at step {env_steps} failed {failed} of {} evaluation episodes (success {:.2}), against at most {:.3} for the prior ({} of its {} evaluation episodes failed): the customized policy, as evaluated, is costing the robot its task, so the run stopped at step {env_steps} (false-alarm rate {} over the run, `[safety] guard_false_alarm`)",
        eval.outcomes.len(),
        eval.success_rate,
        p0,
        prior.failed,
        prior.episodes,
        m.safety.guard_false_alarm
    );
    Fixable::new(msg, hold_the_task(m, false))
}

/// What to change when the customization costs the robot its task.
fn hold_the_task(m: &crate::bundle::manifest::Manifest, addon_escapes: bool) -> String {
    let budget = if m.exploration.kl_budget_end > 0.0 {
        format!("tighten the KL budget (`exploration.kl_budget_end`, now {})", m.exploration.kl_budget_end)
    } else {
        "set a KL budget (`exploration.kl_budget_end`)".to_string()
    };
    // Advice about the add-on's sign only where it applies: it was <= 0 on every step and a
    // failure was valued above its worst.
    let addon = if addon_escapes {
        "; leave `residual.failure_value` out (\"worst\"), or write the add-on so that doing well scores >= 0 (e.g. add a constant)"
    } else {
        ""
    };
    let weights = match m.residual.kl_per_step {
        Some(k) if k > 0.0 => format!("lower `residual.kl_per_step` (now {k} nats per step)"),
        _ => format!(
            "raise `residual.omega` and `residual.alpha` together (now {} and {})",
            m.residual.omega, m.residual.alpha
        ),
    };
    format!(
        "hold the prior's task more strongly: {weights}, or {budget}{addon}; then start over with --fresh"
    )
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
    let n = sig.len().min(tick::MAX);
    t.n_signals = n as u8;
    t.signals[..n].copy_from_slice(&sig[..n]);
    let n = ctl.obs.len().min(tick::MAX);
    t.n_obs = n as u8;
    t.obs[..n].copy_from_slice(&ctl.obs[..n]);
    // Discrete: per action; continuous: per candidate (the first MAX of them).
    let n = ctl.logp0.len().min(tick::MAX);
    t.n_actions = n as u8;
    t.logp0[..n].copy_from_slice(&ctl.logp0[..n]);
    t.q_r[..n].copy_from_slice(&ctl.q_r[..n]);
    t.action = d.action as u32;
    t.n_commands = cmd.len() as u8;
    t.command[..cmd.len()].copy_from_slice(cmd);
    t.kl = d.kl;
    t.logpi = if d.not_drawn { f32::NAN } else { d.logpi_taken };
    t.latency_ns = now.duration_since(frame_at).as_nanos().min(u32::MAX as u128) as u32;
    t.period_ns = last_tick.map_or(0, |l| now.duration_since(l).as_nanos().min(u64::MAX as u128) as u64);
    t.link = env.counters();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The early-update warning names the step, the episodes behind it and the field to raise.
    #[test]
    fn an_early_first_update_names_its_fix() {
        let l = crate::bundle::manifest::LearningSection {
            warmup: 100,
            updates_per_tick: 16,
            ..Default::default()
        };
        let w = early_first_update(100, 0, &l);
        assert!(w.contains("step 100, after 0 whole episode") && w.contains("16 updates a tick"), "{w}");
        assert!(w.contains("raise learning.warmup (now 100)"), "{w}");
    }
}
