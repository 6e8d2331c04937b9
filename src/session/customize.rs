//! A customization run: the learner of the bundle's method, resumed from its checkpoint; the
//! prior's temperature calibrated where the bundle asks; the training loop
//! ([`super::train`]) on the robot, with learning inline or on its own thread; then the prior
//! and the customized policy evaluated on the same starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{info, warn};

use super::confidence::{self, Confidence};
use super::curve::Curve;
use super::evaluate::{evaluate, evaluate_as, PolicyEval};
use super::guard::Baseline;
use super::learning::{
    hand_over, learner_thread, record_width, Learning, LoopLearning, Message, ThreadSide, Weights, QUEUE_LEN,
    RECORD_FLOATS,
};
pub use super::options::Options;
use super::trade_off::{self, TradeOff};
use super::train::{LoopEnd, PriorEpisodes, Training};
use crate::algo::core::{ResidualLearner, Settings};
use crate::algo::residual_sac::ResidualSac;
use crate::algo::rpg::{PolicyHead, PpoSettings, ResidualPg};
use crate::algo::rql_discrete::ResidualSoftQ;
use crate::algo::rql_sampled::ResidualSampledQ;
use crate::bundle::manifest::Traces;
use crate::bundle::{Bundle, Method};
use crate::control::{Controller, PolicyChoice, Supervisor};
use crate::error::Fixable;
use crate::policy::discrete::kl_budget;
use crate::robot::firmware_process::FirmwareProcess;
use crate::robot::link::LinkConfig;
use crate::robot::{Env, LinkCounters, SimEnv};
use crate::store::checkpoint::{self, History, Progress};
use crate::store::record::{RecordMeta, Recorder, RecorderStats, DEFAULT_CAPACITY};

/// What a run produced.
pub struct Outcome {
    pub env_steps: u64,
    /// The failure guard stopped the run at `env_steps`: why, and what to change. The learned
    /// residual is saved; nothing is evaluated (`prior` and `customized` have no episodes): the
    /// robot is driven no further.
    pub stopped: Option<Fixable>,
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
    /// The prior's own whole episodes acting as training acts — measured before the run
    /// (`[safety] prior_episodes`) or kept in the checkpoint, plus those that ended in the
    /// warm-up (the residual still zero) — and how many failed by `[episode] success`: the
    /// failure guard's baseline.
    pub prior_training_episodes: Baseline,
    /// RPG: training steps whose applied action the policy had not drawn (not learned from).
    pub not_drawn_steps: u64,
    /// Discrete actions: training steps whose command the supervisor changed into no action's
    /// (not learned from).
    pub unlearnable_commands: u64,
    /// Robot steps the prior acted greedily to calibrate its temperature (`"auto"`; 0 otherwise,
    /// and on a resumed run). Not training steps.
    pub calibration_steps: u64,
    /// The prior's own episodes, evaluated and measured before training, that failed early (by a
    /// termination): with an add-on ≤ 0 on every step, a pure penalty ending them escapes.
    pub prior_early_failures: usize,
    /// How confident the prior is on the states it visited in its evaluation.
    pub prior_confidence: Option<Confidence>,
    /// ω' and α̂ as the run ended (`session::trade_off`).
    pub trade_off: trade_off::Summary,
    /// The learning curve (`--eval-every`): one object per evaluation, `env_steps` and the
    /// numbers of [`PolicyEval::to_map`], oldest first (a resumed run's earlier points included).
    pub curve: Vec<serde_json::Map<String, serde_json::Value>>,
    pub controller: Controller,
    pub learner: Box<dyn ResidualLearner + Send>,
}

/// The learner settings a bundle asks for.
pub fn settings(bundle: &Bundle) -> Settings {
    let m = &bundle.manifest;
    let (omega, alpha) = bundle.weights();
    Settings {
        omega,
        alpha,
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
        // With a moving multiplier the replay holds another policy's behaviour than the one
        // whose value is learned: uncorrected n-step targets then expand (docs/results/priors.md).
        traces: match m.learning.traces {
            Traces::Retrace => true,
            Traces::None => false,
            Traces::Auto => m.residual.kl_per_step.is_some_and(|k| k > 0.0),
        },
    }
}

/// The learner of the bundle's method (its heads zero-initialised: the robot starts on the prior).
pub fn make_learner(bundle: &Bundle, seed: u64) -> Box<dyn ResidualLearner + Send> {
    let (n_obs, n_act, s) = (bundle.residual_inputs(), bundle.n_actions(), settings(bundle));
    match bundle.method {
        // (Planning learns nothing: its head stays zero and is never trained.)
        Method::DiscreteQ | Method::Plan => Box::new(ResidualSoftQ::new(s, n_obs, n_act, seed)),
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
                decoupled: bundle.manifest.exploration.kl_budget_start > 0.0
                    || bundle.manifest.exploration.kl_budget_end > 0.0,
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

/// Runs the customization loop on the bundle's simulated robot, then the evaluation.
pub fn run(bundle: Bundle, opts: &Options) -> Result<Outcome> {
    let mut sim = SimRobot::open(&bundle, opts.seed, &opts.out_dir)?;
    let opts = Options { source: sim.source.clone(), ..opts.clone() };
    run_in(bundle, sim.env.as_mut(), &opts)
}

/// A bundle's simulated robot (`[sim]`), open: the built-in plant in process, or a simulator's
/// firmware on a pseudo-terminal driven in lock-step over the link (stopped when this is
/// dropped).
pub struct SimRobot {
    pub env: Box<dyn Env>,
    /// Where the robot is, for records: "sim", or the firmware's command.
    pub source: String,
    /// Dropped after `env` (fields drop in order): the link closes before the firmware stops.
    _firmware: Option<FirmwareProcess>,
    /// A simulated ROS 2 robot's Zenoh router, in process; dropped last.
    _router: Option<crate::robot::ros2::Router>,
}

impl SimRobot {
    /// Opens the bundle's simulated robot (the plant seeded by `seed`; a firmware's output goes
    /// to `<out_dir>/firmware.log`), or says how to run a bundle that names none.
    pub fn open(b: &Bundle, seed: u64, out_dir: &std::path::Path) -> Result<SimRobot> {
        if let (Some(command), true) = (&b.sim_firmware, b.over_ros2()) {
            let router = crate::robot::ros2::Router::start_local()?;
            let log = out_dir.join("robot.log");
            let fw = FirmwareProcess::start_ros2(
                command,
                &router.endpoint,
                seed,
                &b.dir,
                &log,
                Duration::from_secs(120),
            )?;
            info!(
                "simulated ROS 2 robot: `{command}` via the Zenoh router at {} (log {})",
                router.endpoint,
                log.display()
            );
            let env = b.ros2_env(Some(&router.endpoint), false, Duration::from_secs(30))?;
            return Ok(SimRobot {
                env: Box::new(env),
                source: format!("{command} (ROS 2)"),
                _firmware: Some(fw),
                _router: Some(router),
            });
        }
        if let Some(command) = &b.sim_firmware {
            let log = out_dir.join("firmware.log");
            let fw = FirmwareProcess::start(command, &b.dir, &log, Duration::from_secs(120))?;
            info!("simulated robot: `{command}` on {} (log {})", fw.port.display(), log.display());
            let env = b.link_env(LinkConfig::lock_step(&fw.port.to_string_lossy()))?;
            return Ok(SimRobot {
                env: Box::new(env),
                source: format!("{command} (pty)"),
                _firmware: Some(fw),
                _router: None,
            });
        }
        let Some(plant) = &b.sim_plant else {
            return Err(Fixable::new(
                format!(
                    "the bundle {} names no simulated robot ([sim] plant or firmware), so it cannot be run or evaluated here",
                    b.dir.display()
                ),
                format!(
                    "run it over the link to its firmware: `resq run {} --port /dev/ttyACM0`; to try it on a simulator first, serve one with the reference firmware (`resq-firmware --env ... --port pty`, see docs/manifest.md, \"A new robot, step by step\")",
                    b.dir.display()
                ),
            )
            .into());
        };
        let env = SimEnv::new(plant, b.episode.time_limit(), seed).context("plant")?;
        Ok(SimRobot { env: Box::new(env), source: "sim".into(), _firmware: None, _router: None })
    }
}

/// Runs the customization loop in `env` (simulated in process, or firmware over a link), then
/// evaluates prior and customized policies in the same `env`.
pub fn run_in(mut bundle: Bundle, env: &mut dyn Env, opts: &Options) -> Result<Outcome> {
    // Planning learns nothing: it is evaluated against the prior straight away.
    let plan_opts;
    let opts = if bundle.method == Method::Plan {
        info!(
            "residual.method = \"plan\": no learning; the customized policy searches the model at every tick"
        );
        plan_opts = Options { steps: 0, ..opts.clone() };
        &plan_opts
    } else {
        opts
    };
    let mut learner = make_learner(&bundle, opts.seed);
    let ckpt_path = opts.out_dir.join(CHECKPOINT_FILE);
    let mut progress = Progress::default();
    if opts.prior_only && ckpt_path.exists() && !opts.fresh {
        return Err(Fixable::new(
            format!(
                "{} holds a checkpoint, and --prior-only learns nothing: the run would replace it with an untrained one",
                ckpt_path.display()
            ),
            "record the prior into another folder (`--out`), or pass --fresh to replace it",
        )
        .into());
    }
    if ckpt_path.exists() && !opts.fresh {
        progress = checkpoint::load(&ckpt_path, learner.as_mut(), &bundle.manifest_text)?;
        info!("resumed from {} at step {}", ckpt_path.display(), progress.env_steps);
        trade_off::resume(&mut bundle, learner.as_mut(), progress.weight_scale);
    }
    let resumed_from = progress.env_steps;
    let on_thread = bundle.manifest.learning.thread;
    let mut supervisor = Supervisor::for_bundle(&bundle);
    let recorder = match &opts.record {
        Some(path) => Some(Recorder::start(path, record_meta(&bundle, &opts.source)?, DEFAULT_CAPACITY)?),
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
                let c = crate::session::calibrate::run(&mut ctl, env, &mut supervisor, steps, opts.seed)?;
                calibration_steps = c.steps;
                c.temperature
            }
        };
        info!(
            "prior temperature {t:.4} (\"auto\": sampling gives up {:.0} % of the Q-value acting at random would, on the states the prior visits)",
            100.0 * crate::session::calibrate::REGRET_FRACTION
        );
        // The one place the prior's temperature is set: in the bundle, before the controller
        // that acts on it is made.
        let mut bundle = ctl.into_bundle();
        bundle.prior.kind = crate::policy::prior::PriorKind::DiscreteQ { temperature: t };
        ctl = Controller::with_learner(bundle, learner.as_ref());
        progress.prior_temperature = Some(t);
    }
    // The prior, first: as evaluated (the report's comparison and the learning curve's
    // baseline), and as training acts (the failure guard's baseline).
    let episodes = opts.eval_episodes.unwrap_or(ctl.bundle.manifest.evaluation.episodes);
    let prior = evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Prior, episodes, opts.seed)?;
    let prior_confidence = confidence::summarize(&prior.confidence, ctl.continuous.is_some());
    if let Some(c) = &prior_confidence {
        info!("{}", confidence::reading(c, &ctl.bundle));
    }
    let (kl_per_step, why) = trade_off::target(&ctl.bundle);
    let eta = ctl.bundle.manifest.residual.kl_rate.unwrap_or(trade_off::ETA);
    let trade = TradeOff::new(kl_per_step, ctl.bundle.weight_scale, eta);
    info!("{}", trade_off::reading(&trade, why, &ctl.bundle));
    // (The prior's episodes that failed early, by a termination: a pure penalty's way out.)
    let mut early_failures = prior.early_failures;
    let training_baseline = match progress.prior_episodes {
        Some((episodes, failed)) => Baseline { episodes, failed },
        None if opts.measure_prior && ctl.bundle.manifest.safety.prior_episodes > 0 => {
            let n = ctl.bundle.manifest.safety.prior_episodes;
            info!("measuring the prior's failure rate: {n} of its episodes, acting as training acts");
            let mode = ctl.bundle.manifest.exploration.mode;
            let e = evaluate_as(&mut ctl, env, &mut supervisor, PolicyChoice::Prior, mode, n, opts.seed)?;
            early_failures += e.early_failures;
            Baseline::of(&e.outcomes)
        }
        None => Baseline::default(),
    };
    progress.prior_episodes = Some((training_baseline.episodes, training_baseline.failed));
    if let Some(w) = prior.pure_penalty_warning(early_failures, &ctl.bundle) {
        warn!("{w}");
    }
    let prior_episodes = PriorEpisodes {
        training: training_baseline,
        evaluation: (opts.eval_every > 0).then(|| Baseline::of(&prior.outcomes)),
    };
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
    let mut drive = Training {
        env,
        ctl: &mut ctl,
        supervisor: &mut supervisor,
        recorder: recorder.as_ref(),
        opts,
        curve: &mut curve,
        prior: prior_episodes,
        trade,
    };
    // From here the loop (and the evaluations after it) run on this thread; the learner
    // thread spawned below puts itself in the background (`rt::background`).
    let _realtime = opts.rt_priority.map(crate::robot::rt::enter).transpose()?;
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
    // The learner hears of the multiplier every few ticks: its checkpoint takes the last one.
    if drive.trade.active() {
        learning.set_weights(drive.trade.scale(), drive.ctl.bundle.weights());
    }
    let trade_off = trade_off::Summary::of(&drive.trade, why, &drive.ctl.bundle);
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
        return Err(Fixable::new(
            format!("the robot reported an e-stop; the learned residual is saved in {}", ckpt_path.display()),
            format!(
                "make the robot safe, then clear its latch explicitly: `resq clear-estop {} --port {}` (with the run's `--mode`; a firmware reboot clears it too), and run again",
                ctl.bundle.dir.display(),
                opts.source
            ),
        )
        .into());
    }

    hand_over(learning.learner.as_ref(), &mut ctl);
    // Evaluate the policy as learned: the budget schedule's end value applies.
    let ex = &ctl.bundle.manifest.exploration;
    ctl.kl_budget = kl_budget(ex.kl_budget_start, ex.kl_budget_end, ex.kl_budget_ramp, end.env_steps);
    let customized = if end.stopped.is_some() {
        // The guard judged this policy costly to the robot's task: it drives the robot no
        // further, not even to evaluate it (the report says what training saw).
        PolicyEval::default()
    } else {
        evaluate(&mut ctl, env, &mut supervisor, PolicyChoice::Customized, episodes, opts.seed)?
    };
    let Learning { learner, progress, .. } = learning;
    let stopped = end.stopped.map(|s| {
        Fixable::new(
            format!("{}; the learned residual is saved in {}", s.problem, ckpt_path.display()),
            s.fix,
        )
    });
    let outcome = Outcome {
        stopped,
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
        signal_faults: end.counts.signal_faults,
        prior_faults: end.counts.prior_faults,
        late_steps: end.counts.late_steps,
        not_drawn_steps: end.counts.not_drawn,
        prior_training_episodes: end.prior_episodes,
        prior_early_failures: early_failures,
        unlearnable_commands: end.counts.unlearnable_commands,
        calibration_steps,
        prior_confidence,
        trade_off,
        curve: curve.points,
        controller: ctl,
        learner,
    };
    match outcome.stopped.clone() {
        Some(why) => Err(Stopped { outcome: std::sync::Mutex::new(Box::new(outcome)), why }.into()),
        None => Ok(outcome),
    }
}

/// The error of a run the failure guard stopped: why (and what to change), and the run's
/// outcome — the learned residual saved and evaluated — for its report and plot.
pub struct Stopped {
    /// Behind a mutex only so that the error is `Sync`, as `anyhow` needs.
    pub outcome: std::sync::Mutex<Box<Outcome>>,
    pub why: Fixable,
}

impl std::fmt::Debug for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stopped({:?})", self.why)
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.why, f)
    }
}

impl std::error::Error for Stopped {}

/// The outcome of `result`, also when the failure guard stopped the run (then with `stopped`
/// set); any other error as it is.
pub fn outcome_of(result: Result<Outcome>) -> Result<Outcome> {
    match result {
        Ok(o) => Ok(o),
        Err(e) => match e.downcast::<Stopped>() {
            Ok(s) => Ok(*s.outcome.into_inner().unwrap_or_else(|e| e.into_inner())),
            Err(e) => Err(e),
        },
    }
}

/// The record's header for this bundle.
pub fn record_meta(b: &Bundle, source: &str) -> Result<RecordMeta> {
    let prior_path = b.dir.join(&b.manifest.prior.file);
    let prior = std::fs::read(&prior_path).with_context(|| format!("reading {}", prior_path.display()))?;
    Ok(RecordMeta {
        manifest_fnv1a64: checkpoint::manifest_hash(&b.manifest_text),
        prior_fnv1a64: checkpoint::fnv1a64(&prior),
        ..RecordMeta::layout(b, source)
    })
}
