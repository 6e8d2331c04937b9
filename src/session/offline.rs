//! Offline customization, `resq learn <bundle> --from <record.mcap>...`: the residual learned
//! from what the robot already recorded (the prior at work, or an earlier customization; resq's
//! records, or ROS 2 bags read through the manifest's `[ros2]`, [`bag`]), with
//! no robot in the loop; then, where the bundle has a simulated robot, judged the way
//! `resq customize` judges (prior and customized policy on the same starts) before it ever
//! moves a robot. The checkpoint it writes is the one `resq customize`, `resq run` and
//! `resq export` take.
//!
//! Each recorded tick `t` with the tick after it gives one transition `(s, a, r_R, s')`:
//!
//! - `s` is tick `t`'s signals, `s'` the next tick's, or at an episode's last tick the signals
//!   it ended on (`end_signals`); the residual's inputs and `log π0` at both are recomputed by
//!   this bundle's prior (which must be the record's: the header's hash, and the recorded
//!   `log π0` against the recomputed one);
//! - `a` is the command the robot *received* (after the supervisor): a row of the action table,
//!   or the continuous command in `[−1, 1]` units;
//! - `r_R` is recomputed by this manifest's add-on from the recorded signals and commands (a
//!   new requirement applies to old records), with a failed termination's value as online;
//! - the step is learned from only if the robot did what was recorded: not a late step, not a
//!   faulted one (prior, signal, e-stop), not one the link cut, not one with a non-finite value.
//!   Each skipped tick is counted by reason; the replay's chain of steps is cut there.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use log::{info, warn};
use serde::Serialize;

use super::customize::{make_learner, SimRobot, CHECKPOINT_FILE};
use super::evaluate::{evaluate, PolicyEval};
use super::learning::hand_over;
use crate::algo::core::ResidualLearner;
use crate::algo::replay::Transition;
use crate::bundle::{ActionSpace, Bundle, Method, Success};
use crate::control::{Controller, PolicyChoice, Supervisor};
use crate::error::Fixable;
use crate::robot::StepEnd;
use crate::store::checkpoint::{self, Progress};
use crate::store::record::bag;
use crate::store::record::read::{self, Tick};
use crate::store::record::RecordMeta;

/// What `resq learn` is asked to do.
#[derive(Clone, Debug)]
pub struct OfflineOptions {
    pub records: Vec<PathBuf>,
    /// Gradient steps (default: `learning.updates_per_tick` per transition, as many as learning
    /// online over the same steps would take).
    pub updates: Option<u64>,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Start from a zero residual even if `out_dir` holds a checkpoint.
    pub fresh: bool,
    pub eval_episodes: Option<usize>,
    pub progress: bool,
}

/// What the records gave, tick by tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub records: usize,
    /// Records read only up to a cut or corrupt part (the ticks before it were used).
    pub records_cut: usize,
    pub ticks: u64,
    /// Transitions learned from.
    pub transitions: u64,
    /// Of those, the ones whose action no policy drew (greedy acting, the deadline fallback, a
    /// supervisor change): they show one action at their state, not a distribution.
    pub not_drawn: u64,
    /// Skipped: the robot stepped before the command arrived, or under its safe action.
    pub late: u64,
    /// Skipped: the prior failed, a signal was out of range, or the robot was e-stopped.
    pub faulted: u64,
    /// Skipped: the command received is no action's (a rate limit between two table rows, a
    /// continuous command outside the action's range).
    pub unlearnable_commands: u64,
    /// Skipped: a non-finite value at either end (signals, the residual's inputs, the add-on).
    pub non_finite: u64,
    /// Skipped: an episode's last tick in a record that does not keep the state it ended on
    /// (written before `end_signals`).
    pub no_end_state: u64,
    /// Skipped: the tick after it is missing (dropped by the recorder, the link cut, the end
    /// of the file), so `s'` is unknown.
    pub cut: u64,
    /// Tick messages whose signals or command could not be decoded.
    pub malformed: u64,
    /// Discrete actions: the actions the records support, summed over the transitions (see
    /// `[learning] offline_support`); over `transitions × actions`, the share of the action
    /// space the records show.
    pub supported_actions: u64,
}

impl Counts {
    /// Ticks that gave no transition.
    pub fn skipped(&self) -> u64 {
        self.late + self.faulted + self.unlearnable_commands + self.non_finite + self.no_end_state + self.cut
    }
}

/// What an offline customization produced.
pub struct OfflineOutcome {
    pub counts: Counts,
    /// Discrete actions: the share of the action space the records support at their states
    /// (1: every action at every state; `1/actions`: one action a state, as greedy records).
    pub action_support: Option<f64>,
    /// `[learning] offline_support` as used (0: the plain target).
    pub offline_support: f32,
    pub updates: u64,
    pub diverged: bool,
    pub wall_seconds: f64,
    /// The prior and the customized policy on the same starts (`None` without a simulated robot).
    pub evaluation: Option<(PolicyEval, PolicyEval)>,
    pub checkpoint: PathBuf,
}

/// Learns the residual of `bundle` from `opts.records`, writes the checkpoint to
/// `opts.out_dir`, and evaluates it where the bundle has a simulated robot.
pub fn learn(bundle: Bundle, opts: &OfflineOptions) -> Result<OfflineOutcome> {
    refuse_unsupported(&bundle)?;
    let mut learner = make_learner(&bundle, opts.seed);
    let ckpt_path = opts.out_dir.join(CHECKPOINT_FILE);
    let mut progress = Progress::default();
    let mut bundle = bundle;
    if ckpt_path.exists() && !opts.fresh {
        progress = checkpoint::load(&ckpt_path, learner.as_mut(), &bundle.manifest_text)?;
        info!("continuing from {} (step {})", ckpt_path.display(), progress.env_steps);
        super::trade_off::resume(&mut bundle, learner.as_mut(), progress.weight_scale);
    }
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create the output folder {}", opts.out_dir.display()))?;
    let share = bundle.manifest.learning.offline_support;
    if share == 0.0 {
        // The plain target asked for: entries a checkpoint holds from records learn plainly too.
        learner.core_mut().replay.support = None;
    } else if bundle.action_space == ActionSpace::Discrete && bundle.n_actions() > 64 {
        warn!(
            "{} actions: the support constraint covers at most 64, so these records are learned with the plain target (as `learning.offline_support = 0`)",
            bundle.n_actions()
        );
    }
    let mut ctl = Controller::with_learner(bundle, learner.as_ref());
    let mut counts = Counts::default();
    let mut feed = Feed::new(&ctl, learner.core().replay.layout().param_width);
    for path in &opts.records {
        feed.record(&mut ctl, learner.as_mut(), path, &mut counts)?;
    }
    info!(
        "{} transitions from {} ticks of {} record(s); skipped: {} late, {} faulted, {} unlearnable commands, {} non-finite, {} without the state after",
        counts.transitions,
        counts.ticks,
        counts.records,
        counts.late,
        counts.faulted,
        counts.unlearnable_commands,
        counts.non_finite,
        counts.no_end_state + counts.cut
    );
    if counts.transitions == 0 {
        return Err(Fixable::new(
            format!("no transition to learn from in {} record(s)", counts.records),
            "record the robot with `resq run` or `resq customize --record PATH` (records of this bundle and prior)",
        )
        .into());
    }
    let need = {
        let l = &ctl.bundle.manifest.learning;
        l.warmup.max(l.batch)
    };
    if learner.core().replay.len() < need {
        return Err(Fixable::new(
            format!(
                "{} transitions from {} record(s): the learner starts at {need} (`learning.warmup`, at least `learning.batch`)",
                learner.core().replay.len(),
                counts.records
            ),
            format!("record more steps, or learn from these with `--set learning.warmup={}`", learner.core().replay.len().max(1)),
        )
        .into());
    }
    let capacity = learner.core().replay.capacity;
    if counts.transitions > capacity as u64 {
        warn!(
            "the records hold {} transitions, the replay {capacity} (`learning.replay_capacity`): only the newest {capacity} are learned from",
            counts.transitions
        );
    }
    let per = ctl.bundle.manifest.learning.updates_per_tick.max(1) as u64;
    let n_updates = opts.updates.unwrap_or(per * counts.transitions.min(capacity as u64));
    let started = Instant::now();
    let bar = progress_bar(opts.progress, n_updates);
    let mut updates = 0u64;
    for k in 0..n_updates {
        if learner.update().is_none() {
            break;
        }
        updates += 1;
        if k % 1024 == 0 {
            bar.set_position(k);
        }
    }
    bar.finish_and_clear();
    let wall_seconds = started.elapsed().as_secs_f64();
    let diverged = learner.core().diverged;
    if diverged {
        warn!(
            "the learner diverged after {updates} updates: the checkpoint holds the residual as it was then"
        );
    }
    info!("{updates} updates in {wall_seconds:.1} s");
    checkpoint::save(&ckpt_path, learner.as_ref(), &progress, &ctl.bundle.manifest_text)?;
    hand_over(learner.as_ref(), &mut ctl);
    let evaluation = if ctl.bundle.sim_plant.is_some() || ctl.bundle.sim_firmware.is_some() {
        let episodes = opts.eval_episodes.unwrap_or(ctl.bundle.manifest.evaluation.episodes);
        let seed = opts.seed;
        let mut sim = SimRobot::open(&ctl.bundle, seed, &opts.out_dir)?;
        let env = sim.env.as_mut();
        let mut supervisor = Supervisor::for_bundle(&ctl.bundle);
        let prior = evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Prior, episodes, seed)?;
        let customized = evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Customized, episodes, seed)?;
        Some((prior, customized))
    } else {
        None
    };
    let action_support = ctl.continuous.is_none().then(|| {
        counts.supported_actions as f64 / (counts.transitions * ctl.bundle.n_actions() as u64).max(1) as f64
    });
    Ok(OfflineOutcome {
        counts,
        action_support,
        offline_support: ctl.bundle.manifest.learning.offline_support,
        updates,
        diverged,
        wall_seconds,
        evaluation,
        checkpoint: ckpt_path,
    })
}

/// The methods that learn from another policy's data: not RPG (on-policy), not a prior whose
/// temperature is calibrated on the robot.
fn refuse_unsupported(b: &Bundle) -> Result<()> {
    let manifest = &b.manifest_path;
    if b.method == Method::Rpg {
        return Err(Fixable::new(
            format!(
                "{}: `residual.method = \"rpg\"` learns on-policy, from the rollouts of the policy it is improving: it cannot learn from records",
                manifest.display()
            ),
            "learn from records with a residual Q method (leave `residual.method` out, or set it to \"sampled\" for continuous actions), e.g. `resq learn ... --set 'residual.method=\"sampled\"'`",
        )
        .into());
    }
    if b.method == Method::Plan {
        return Err(Fixable::new(
            format!(
                "{}: `residual.method = \"plan\"` learns nothing: it searches the model at every tick",
                manifest.display()
            ),
            "run it as it is (`resq customize`), or learn from the records with a residual Q method (remove `method`)",
        )
        .into());
    }
    if b.auto_temperature.is_some() {
        return Err(Fixable::new(
            format!(
                "{}: `prior.temperature = \"auto\"` is calibrated on the robot, acting; records cannot calibrate it",
                manifest.display()
            ),
            "set `prior.temperature` to the number the robot's run calibrated (its report's `training.prior_temperature`), e.g. `--set prior.temperature=0.02`",
        )
        .into());
    }
    Ok(())
}

/// Turns recorded ticks into the learner's transitions (buffers allocated once).
struct Feed {
    prior_hash: String,
    obs: Vec<f32>,
    logp0: Vec<f32>,
    params: Vec<f32>,
    next_logp0: Vec<f32>,
    unit: Vec<f32>,
    pre: Vec<f32>,
    vals: Vec<f32>,
    terms: Vec<f32>,
    /// The lowest add-on reward seen (the failure value's `r_lo`, as online).
    addon_lo: f32,
    /// The replay's step counter: a tick that gives no transition leaves a gap, which cuts the
    /// n-step chain there.
    step: u64,
}

/// Why a tick gave no transition.
enum Skip {
    Late,
    Faulted,
    Unlearnable,
    NonFinite,
    NoEndState,
    Cut,
}

/// The actions the recorded tick supports at its state (bit `a` for action `a`, at most 64
/// actions): the one
/// applied, if no policy drew it; else every action the recording policy drew with probability
/// at least `share` of its most likely one's, that policy recomputed from the recorded
/// `log π0` and `Q_R` at this bundle's ω' and α̂ (the KL budget's blend aside), or the prior
/// itself where it acted alone (`--prior-only`: zero `Q_R`, and the drawn action's `log π` is
/// its `log π0`).
fn support_mask(a: &Tick, applied: usize, drawn: bool, share: f32, (omega, alpha): (f32, f32)) -> u64 {
    let n = a.logp0.len();
    if !drawn || a.q_r.len() != n {
        return 1u64 << applied;
    }
    let mut log_pi = vec![0.0f32; n];
    if (a.logpi - a.logp0[applied]).abs() < 1e-5 && a.q_r.iter().all(|q| *q == 0.0) {
        // The prior itself acted (`--prior-only`), untempered.
        log_pi.copy_from_slice(&a.logp0);
    } else {
        crate::policy::discrete::policy_log_probs(&a.q_r, &a.logp0, omega, alpha, &mut log_pi);
    }
    let top = log_pi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = top + share.ln();
    let mut mask = 1u64 << applied;
    for (i, l) in log_pi.iter().enumerate() {
        if *l >= floor {
            mask |= 1u64 << i;
        }
    }
    mask
}

impl Feed {
    /// Buffers for `ctl`'s bundle; `pw`: the width of the prior's parameters the learner keeps.
    fn new(ctl: &Controller, pw: usize) -> Feed {
        let b = &ctl.bundle;
        let prior = std::fs::read(b.dir.join(&b.manifest.prior.file)).unwrap_or_default();
        let act_dim = match &b.action_space {
            ActionSpace::Continuous { low, .. } => low.len(),
            ActionSpace::Discrete => 0,
        };
        Feed {
            prior_hash: checkpoint::fnv1a64(&prior),
            obs: vec![0.0; ctl.res_obs.len()],
            logp0: vec![0.0; ctl.logp0.len()],
            params: vec![0.0; pw],
            next_logp0: vec![0.0; ctl.logp0.len()],
            unit: vec![0.0; act_dim],
            pre: vec![f32::NAN; act_dim],
            vals: vec![0.0; b.vars.len()],
            terms: vec![0.0; b.addon.terms.len()],
            addon_lo: 0.0,
            step: 0,
        }
    }

    /// Reads one record and feeds its transitions to `learner`.
    fn record(
        &mut self,
        ctl: &mut Controller,
        learner: &mut dyn ResidualLearner,
        path: &Path,
        counts: &mut Counts,
    ) -> Result<()> {
        // A ROS 2 bag is read through the manifest's `[ros2]`: its layout is the bundle's own.
        let is_bag = bag::is_bag(path)?;
        let rec = if is_bag {
            bag::read(path, &ctl.bundle)?
        } else {
            let rec = read::read(path)?;
            check_header(&rec.meta, ctl, &self.prior_hash, path)?;
            rec
        };
        if let Some(e) = &rec.read_error {
            warn!("{}: read up to a cut or corrupt part ({e}); the ticks before it are used", path.display());
            counts.records_cut += 1;
        }
        counts.records += 1;
        counts.malformed += rec.malformed;
        counts.ticks += rec.ticks.len() as u64;
        let ticks = &rec.ticks;
        // Whether the command before tick i is known: a record starts with an episode (a bag
        // anywhere); after a missing tick it is not, until the tick after it.
        let mut synced = !is_bag;
        let mut prev_cmd = vec![0.0f32; ctl.bundle.commands.len()];
        let mut ep_steps = 0u32;
        let mut checked = false;
        for (i, a) in ticks.iter().enumerate() {
            ep_steps += 1;
            self.step += 1;
            let end = a.decisions.episode_end;
            let next = ticks.get(i + 1).filter(|n| n.tick == a.tick + 1 && n.reconnects == a.reconnects);
            let s_next = if end { a.end_signals.as_deref() } else { next.map(|n| &n.signals[..]) };
            let got = match s_next {
                // (Only where the add-on, and so the residual's input, reads the previous command.)
                _ if !synced && ctl.bundle.prev_command_input => Err(Skip::Cut),
                Some(s_next) => {
                    self.transition(ctl, learner, a, s_next, &prev_cmd, ep_steps, &mut checked, path)?
                }
                None if end => Err(Skip::NoEndState),
                None => Err(Skip::Cut),
            };
            match got {
                Ok((drawn, supported)) => {
                    counts.transitions += 1;
                    counts.not_drawn += !drawn as u64;
                    counts.supported_actions += supported as u64;
                }
                Err(Skip::Late) => counts.late += 1,
                Err(Skip::Faulted) => counts.faulted += 1,
                Err(Skip::Unlearnable) => counts.unlearnable_commands += 1,
                Err(Skip::NonFinite) => counts.non_finite += 1,
                Err(Skip::NoEndState) => counts.no_end_state += 1,
                Err(Skip::Cut) => counts.cut += 1,
            }
            if end {
                (synced, ep_steps) = (true, 0);
                prev_cmd.iter_mut().for_each(|v| *v = 0.0);
            } else if next.is_some() {
                prev_cmd.copy_from_slice(&a.command);
                synced = true;
            } else {
                // The command before the next recorded tick is unknown.
                synced = false;
            }
        }
        // Records are separate runs: the chain never runs from one into the next.
        self.step += 1;
        Ok(())
    }

    /// Pushes the transition from tick `a` to the signals `s_next`; if learned from, whether its
    /// action was drawn and how many actions it supports.
    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        ctl: &mut Controller,
        learner: &mut dyn ResidualLearner,
        a: &Tick,
        s_next: &[f32],
        prev_cmd: &[f32],
        ep_steps: u32,
        checked: &mut bool,
        path: &Path,
    ) -> Result<Result<(bool, u32), Skip>> {
        let d = &a.decisions;
        if d.late {
            return Ok(Err(Skip::Late));
        }
        if d.prior_fault || d.signal_fault || d.estop {
            return Ok(Err(Skip::Faulted));
        }
        if a.signals.iter().chain(s_next).chain(&a.command).any(|v| !v.is_finite()) {
            return Ok(Err(Skip::NonFinite));
        }
        // s: the residual's inputs and the prior there, recomputed.
        ctl.sent(prev_cmd);
        if !ctl.observe(&a.signals) {
            return Ok(Err(Skip::Faulted));
        }
        if ctl.continuous.is_none() && !*checked && !a.logp0.is_empty() {
            same_prior(&a.logp0, &ctl.logp0, a.tick, path)?;
            *checked = true;
        }
        self.obs.copy_from_slice(&ctl.res_obs);
        self.logp0.copy_from_slice(&ctl.logp0);
        if let Some(sa) = &ctl.continuous {
            let pw = self.params.len();
            self.params.copy_from_slice(&sa.gauss[..pw]);
        }
        // a: what the robot received.
        let supervised = d.clamped || d.rate_limited;
        let (action, drawn) = match &ctl.bundle.action_space {
            ActionSpace::Discrete => match ctl.bundle.action_of(&a.command) {
                Some(i) => (i, a.logpi.is_finite() && i == a.action as usize),
                None => return Ok(Err(Skip::Unlearnable)),
            },
            ActionSpace::Continuous { .. } => {
                if !ctl.bundle.unit_of(&a.command, &mut self.unit) {
                    return Ok(Err(Skip::Unlearnable));
                }
                (0, a.logpi.is_finite() && !supervised)
            }
        };
        // r_R: this manifest's add-on over the recorded signals and commands.
        let b = &ctl.bundle;
        b.vars.fill(s_next, &a.command, prev_cmd, &mut self.vals);
        let mut end = StepEnd {
            terminated: d.terminated,
            truncated: d.episode_end && !d.terminated,
            ..StepEnd::default()
        };
        b.episode.apply(&self.vals, &mut end);
        let r = b.addon.eval(&self.vals, &mut self.terms);
        if !r.is_finite() {
            return Ok(Err(Skip::NonFinite));
        }
        self.addon_lo = self.addon_lo.min(r);
        // The firmware's SUCCESS flag is not recorded: a `success = "flag"` bundle's termination
        // is taken as its goal, never as a failure.
        let failed_end = end.terminated
            && !matches!(b.episode.success, Success::Flag)
            && !b.episode.succeeded(end, &self.vals, ep_steps, false);
        let reward =
            if failed_end { r + b.manifest.residual.gamma * b.failure_value(self.addon_lo) } else { r };
        // log π0 of the received action: per action, or the prior's density at s.
        let logp0_taken = match &ctl.continuous {
            None => self.logp0[action],
            Some(sa) => {
                let (mean, log_std) = sa.gauss.split_at(self.unit.len());
                sa.family.log_prob(mean, &log_std[..self.unit.len()], &self.unit)
            }
        };
        // s': the residual's inputs and the prior there.
        ctl.sent(&a.command);
        if !ctl.observe(s_next) {
            return Ok(Err(Skip::Faulted));
        }
        if self.obs.iter().chain(&ctl.res_obs).any(|v| !v.is_finite()) {
            return Ok(Err(Skip::NonFinite));
        }
        self.next_logp0.copy_from_slice(&ctl.logp0);
        let act_dim = self.unit.len();
        let (next_candidates, next_params) = match &ctl.continuous {
            Some(sa) => (&sa.candidates[..sa.k * act_dim], &sa.gauss[..self.params.len()]),
            None => (&[][..], &[][..]),
        };
        let t = Transition {
            obs: &self.obs,
            action,
            action_values: &self.unit,
            pre_action: &self.pre,
            reward,
            logp0_taken,
            logpi_taken: if drawn { a.logpi } else { 0.0 },
            next_obs: &ctl.res_obs,
            next_logp0: &self.next_logp0,
            next_candidates,
            prior_params: &self.params,
            next_prior_params: next_params,
            terminal: end.terminated,
            truncated: end.truncated,
        };
        let replay = &mut learner.core_mut().replay;
        replay.push_step(&t, self.step);
        let b = &ctl.bundle;
        let share = b.manifest.learning.offline_support;
        // (The support is a 64-bit mask: a bundle with more actions learns with the plain target,
        // as `learn` warned.)
        let supported = if ctl.continuous.is_none() && share > 0.0 && b.n_actions() <= 64 {
            let mask = support_mask(a, action, drawn, share, b.weights());
            replay.set_support(mask, &self.logp0);
            mask.count_ones()
        } else {
            b.n_actions() as u32
        };
        Ok(Ok((drawn, supported)))
    }
}

/// A record is learned from by the bundle whose robot and prior made it: the same signals,
/// commands and actions, and the same prior (by the header's hash where it has one).
fn check_header(meta: &RecordMeta, ctl: &Controller, prior_hash: &str, path: &Path) -> Result<()> {
    let b = &ctl.bundle;
    let name = path.display();
    let fix = format!(
        "learn from records of `{}` (made by `resq run` or `resq customize --record` with this bundle), or pass the bundle that made this record",
        b.dir.display()
    );
    let differ = |what: &str, rec: &[String], ours: &[String]| -> Result<()> {
        if rec != ours {
            return Err(Fixable::new(
                format!(
                    "{name} was recorded by bundle `{}` with {what} {rec:?}; {} has {ours:?}",
                    meta.bundle,
                    b.dir.join("manifest.toml").display()
                ),
                fix.clone(),
            )
            .into());
        }
        Ok(())
    };
    let ours = RecordMeta::layout(b, "");
    differ("signals", &meta.signals, &ours.signals)?;
    differ("commands", &meta.commands, &ours.commands)?;
    if ctl.continuous.is_none() {
        differ("actions", &meta.actions, &ours.actions)?;
    }
    if !meta.prior_fnv1a64.is_empty() && meta.prior_fnv1a64 != prior_hash {
        return Err(Fixable::new(
            format!(
                "{name} was recorded with another prior (FNV-1a {}) than {} ({prior_hash}): its log π0 and actions are another policy's",
                meta.prior_fnv1a64,
                b.dir.join(&b.manifest.prior.file).display()
            ),
            fix,
        )
        .into());
    }
    if !meta.manifest_fnv1a64.is_empty()
        && meta.manifest_fnv1a64 != checkpoint::manifest_hash(&b.manifest_text)
    {
        info!(
            "{name}: recorded under another manifest than {}'s (a new add-on, say): the add-on is recomputed from the recorded signals",
            b.dir.display()
        );
    }
    Ok(())
}

/// The recorded `log π0(·|s)` must be what this bundle's prior gives at the recorded signals
/// (an older record has no prior hash; a prior's temperature can differ with the same file).
fn same_prior(recorded: &[f32], ours: &[f32], tick: u64, path: &Path) -> Result<()> {
    let gap = recorded
        .iter()
        .zip(ours)
        .filter(|(r, o)| r.is_finite() && o.is_finite())
        .map(|(r, o)| (r - o).abs())
        .fold(0.0f32, f32::max);
    if recorded.len() != ours.len() || gap > 1e-3 {
        return Err(Fixable::new(
            format!(
                "{}: at tick {tick} the recorded log π0 {recorded:?} differ from this bundle's prior at the same signals {ours:?} (by {gap:.2e}): the record was made with another prior or `prior.temperature`",
                path.display()
            ),
            "pass the bundle (and `prior.temperature`) the record was made with",
        )
        .into());
    }
    Ok(())
}

fn progress_bar(show: bool, n: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} updates eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// The report of an offline customization.
pub fn to_json(bundle_name: &str, opts: &OfflineOptions, o: &OfflineOutcome) -> serde_json::Value {
    let c = &o.counts;
    serde_json::json!({
        "bundle": bundle_name,
        "seed": opts.seed,
        "records": opts.records.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "offline": {
            "counts": c,
            // How much of the action space the records show: a state acted on greedily shows
            // one action, never the alternatives.
            "drawn_share": if c.transitions > 0 { (c.transitions - c.not_drawn) as f64 / c.transitions as f64 } else { 0.0 },
            "action_support": o.action_support,
            "offline_support": o.offline_support,
            "updates": o.updates,
            "diverged": o.diverged,
            "wall_seconds": o.wall_seconds,
        },
        "prior": o.evaluation.as_ref().map(|(p, _)| p.to_map()),
        "customized": o.evaluation.as_ref().map(|(_, c)| c.to_map()),
    })
}
