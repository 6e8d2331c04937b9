//! Hardware in the loop without hardware: resq drives the simulated firmware over a real serial
//! device (a pseudo-terminal pair), through the fault-injecting proxy of `resq::robot::rig`.
//!
//! Required under faults (corrupted, dropped, duplicated, delayed frames, garbage and oversized
//! frames, unplug/re-plug, firmware reboots): no panic; no command outside the manifest's limits
//! reaches the firmware; every corrupted frame is rejected and counted; the link comes back after
//! every unplug and reboot (the bound is `LinkConfig::reconnect_within`, 5 s here: a reconnect
//! that takes longer fails the run); and CartPole "more centre" still customizes, in lock-step,
//! with the same acceptance as in process.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use firmware_bridge::Mode;
use resq::robot::link::{Link, LinkConfig, LinkEnv};
use resq::robot::rig::{self, Faults, Rig, RigReport};
use resq::session::customize::{self, Options};
use resq::Bundle;
use sim_robot::firmware::SimFirmware;

/// The real-time tests measure timing and learn on a thread against a 200 Hz robot: they run
/// alone, the others (lock-step, each as heavy as a CPU core) share the machine among themselves.
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|e| e.into_inner())
}

/// SCHED_FIFO priorities of the real-time rig (a microcontroller keeps its period whatever the
/// host computer does) and of resq's control loop (`--rt-priority`), where this machine permits
/// them: on a shared CI machine, other work would otherwise decide whether the robot keeps its
/// period. Where it does not (or with `RESQ_TEST_NO_RT=1`, to try them as such a machine runs
/// them), the tests run without and say so.
const RIG_PRIORITY: u8 = 40;
const LOOP_PRIORITY: u8 = 30;

fn realtime_priority(p: u8) -> Option<u8> {
    static PERMITTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *PERMITTED.get_or_init(|| {
        let refused = std::env::var("RESQ_TEST_NO_RT").is_ok_and(|v| v == "1");
        let ok = !refused && resq::robot::rt::permitted(RIG_PRIORITY);
        if !ok {
            eprintln!("SCHED_FIFO is not permitted here: the real-time tests run with ordinary scheduling, at the mercy of this machine's load");
        }
        ok
    });
    ok.then_some(p)
}

fn bundle() -> Bundle {
    Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole")).unwrap()
}

fn start_rig(
    dir: &Path,
    plant: &str,
    mode: Mode,
    period_us: u32,
    faults: Faults,
    seed: u64,
) -> (PathBuf, impl FnOnce() -> RigReport) {
    let fw = SimFirmware::new(plant, mode, period_us, seed).unwrap();
    let link = dir.join("ttyROBOT");
    let mut r = Rig::new(fw, faults, link.clone(), seed);
    if mode == Mode::RealTime {
        r.rt_priority = realtime_priority(RIG_PRIORITY);
    }
    let (stop, handle) = rig::spawn(r).unwrap();
    let finish = move || {
        stop.store(true, Ordering::Relaxed);
        handle.join().expect("the rig thread panicked").unwrap()
    };
    (link, finish)
}

fn connect(b: &Bundle, port: &Path, mode: Mode, period_us: u32) -> Result<LinkEnv, resq::robot::EnvError> {
    let mut cfg = LinkConfig::lock_step(port.to_str().unwrap());
    cfg.mode = mode;
    cfg.period_us = period_us;
    cfg.reconnect_within = Duration::from_secs(5);
    b.link_env(cfg)
}

/// As `resq run` drives a robot: the prior's failure rate from its warm-up episodes, no extra
/// episodes of the prior before learning.
fn options(out: &Path, steps: u64, episodes: usize) -> Options {
    Options {
        fresh: true,
        measure_prior: false,
        eval_episodes: Some(episodes),
        record: Some(out.join("record.mcap")),
        source: "pty".into(),
        ..Options::new(steps, 0, out)
    }
}

/// [`options`] for a real-time robot: the control loop under SCHED_FIFO where permitted.
/// The failure guard is off in the real-time tests: on these shared virtual machines the robot
/// sometimes steps before its command arrives whatever resq does (vCPU scheduling; such steps are
/// counted and not learned from), and the prior alone then fails an episode now and then, which
/// the guard would take for the customization's doing. The guard is tested in lock-step
/// (`tests/failure_guard.rs`); these tests judge the customization by its evaluation.
const GUARD_OFF: &str = "safety.failed_episodes_stop=0";

/// A real-time run on a busy machine says so: its late steps (the robot stepped before the
/// command arrived) are the load's measure. Measured with six busy loops and no SCHED_FIFO
/// (`RESQ_TEST_NO_RT=1`): 448 of 20 000 steps late, and RPG on its thread still met its bar
/// (0.032 against the prior's 0.19).
fn say_if_busy(late: u64, steps: u64) {
    if late * 100 > steps {
        eprintln!("this machine was busy: {late} of {steps} steps ran late (not learned from)");
    }
}

fn realtime_options(out: &Path, steps: u64, episodes: usize) -> Options {
    Options { rt_priority: realtime_priority(LOOP_PRIORITY), ..options(out, steps, episodes) }
}

fn metric(e: &resq::session::evaluate::PolicyEval) -> f64 {
    e.metrics.iter().find(|(k, _)| k == "mean_abs_x").unwrap().1
}

#[test]
fn customizes_over_the_link_in_lock_step() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, Faults::default(), 1);
    let b = bundle();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let o = customize::run_in(b, &mut env, &options(dir.path(), 6_000, 20)).unwrap();
    let report = finish();
    let (p, c) = (metric(&o.prior), metric(&o.customized));
    eprintln!(
        "over the link: mean|x| prior {p:.4} customized {c:.4}, success {:.2}; {:?}",
        o.customized.success_rate, o.link
    );
    assert!(c <= 0.5 * p, "customized {c} vs prior {p}");
    assert!(o.customized.success_rate >= 0.95);
    assert_eq!(o.link.crc_errors + o.link.other_errors + o.link.reconnects, 0, "a clean link has no errors");
    assert_eq!(report.firmware.commands_out_of_range, 0);
    // Every training tick is in the record.
    let record = dir.path().join("record.mcap");
    let s = resq::store::record::inspect(&record).unwrap();
    assert_eq!(s.ticks, 6_000);
    assert_eq!(s.recorder.unwrap().dropped, 0);
    // A record a robot can keep all day: ≤ 100 bytes per tick, file overhead included
    // (protobuf ticks in zstd chunks; measured about 60).
    let per_tick = std::fs::metadata(&record).unwrap().len() as f64 / s.ticks as f64;
    eprintln!("record: {per_tick:.1} bytes per tick");
    assert!(per_tick <= 100.0, "{per_tick:.1} bytes per tick");
}

/// Residual policy gradient over the link (`models/cartpole-rpg`, in lock step): the same bar as
/// residual Q-learning above (mean |x| ≤ 0.5× the prior's, ≥ 95 % reach the limit), at the
/// budget where every seed meets it in process (20 000 steps: 0.185× median, 0.255× worst; at
/// 15 000 one run over the link reached 0.51×), with every tick recorded.
#[test]
fn rpg_customizes_over_the_link_in_lock_step() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, Faults::default(), 1);
    let b = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-rpg")).unwrap();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let o = customize::run_in(b, &mut env, &options(dir.path(), 20_000, 20)).unwrap();
    let report = finish();
    let (p, c) = (metric(&o.prior), metric(&o.customized));
    eprintln!(
        "rpg over the link: mean|x| prior {p:.4} customized {c:.4}, success {:.2}; {} updates; {:?}",
        o.customized.success_rate, o.updates, o.link
    );
    assert!(c <= 0.5 * p, "customized {c} vs prior {p}");
    assert!(o.customized.success_rate >= 0.95);
    assert_eq!(o.link.crc_errors + o.link.other_errors + o.link.reconnects, 0, "a clean link has no errors");
    assert_eq!(report.firmware.commands_out_of_range, 0);
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    assert_eq!(s.ticks, 20_000);
}

/// A continuous plant over the link: Pendulum "save energy" by residual SAC (the bundle's
/// method): ≥ 5 % less torque² (measured −12 %; the evaluation episodes differ from the
/// in-process ones, and a tick that misses its deadline under load falls back to the prior),
/// time upright within 10 %.
#[test]
fn customizes_a_continuous_plant_over_the_link() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "pendulum", Mode::LockStep, 0, Faults::default(), 1);
    let b = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/pendulum")).unwrap();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let o = customize::run_in(b, &mut env, &options(dir.path(), 10_000, 20)).unwrap();
    let report = finish();
    let m =
        |e: &resq::session::evaluate::PolicyEval, k: &str| e.metrics.iter().find(|(n, _)| n == k).unwrap().1;
    let (tp, tc) = (m(&o.prior, "mean_torque_sq"), m(&o.customized, "mean_torque_sq"));
    let (up, uc) = (m(&o.prior, "upright_fraction"), m(&o.customized, "upright_fraction"));
    eprintln!(
        "over the link: torque² prior {tp:.4} customized {tc:.4}; upright {up:.3} -> {uc:.3}; {:?}",
        o.link
    );
    assert!(tc <= 0.95 * tp, "customized torque² {tc} vs prior {tp}");
    assert!(uc >= 0.9 * up, "upright {uc} vs prior {up}");
    assert_eq!(o.link.crc_errors + o.link.other_errors + o.link.reconnects, 0, "a clean link has no errors");
    assert_eq!(report.firmware.commands_out_of_range, 0);
}

#[test]
fn survives_a_fault_campaign_and_still_customizes() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults {
        corrupt: 0.003,
        drop: 0.003,
        duplicate: 0.005,
        delay_max: Duration::from_micros(300),
        garbage: 0.002,
        oversized: 0.001,
        unplug_every: Some(Duration::from_millis(4000)),
        unplugged_for: Duration::from_millis(200),
        reboot_every: Some(Duration::from_millis(6900)),
        garbage_on_connect: true,
        estop_after: None,
    };
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, faults, 7);
    let b = bundle();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let result = customize::run_in(b, &mut env, &options(dir.path(), 8_000, 20));
    let worst_reconnect = env.worst_reconnect;
    let report = finish();
    let o = result.expect("the run survives the faults");
    let (p, c) = (metric(&o.prior), metric(&o.customized));
    let rejected_by_host = o.link.crc_errors + o.link.other_errors;
    let rejected_by_firmware = report.decoder.crc_errors
        + report.decoder.cobs_errors
        + report.decoder.length_errors
        + report.decoder.oversized
        + report.decoder.unknown_type
        + report.decoder.bad_field;
    eprintln!(
        "fault campaign: proxy {:?}\n  firmware {:?}\n  host link {:?}\n  rejected: host {rejected_by_host}, firmware {rejected_by_firmware}; worst reconnect {:?}\n  mean|x| prior {p:.4} customized {c:.4}, success {:.2}",
        report.proxy, report.firmware, o.link, worst_reconnect, o.customized.success_rate
    );
    // The campaign really happened.
    let px = report.proxy;
    assert!(
        px.corrupted_to_host > 5 && px.corrupted_to_firmware > 5 && px.dropped > 10 && px.duplicated > 10
    );
    assert!(report.proxy.unplugs >= 1 && report.proxy.reboots >= 1);
    // Corrupted frames are rejected and counted on the side that receives them. (Frames in
    // flight when the device is unplugged are lost uncounted, and garbage adds rejections, so
    // the counts are bounded, not equal; firmware-bridge's tests account for every frame.)
    assert!(
        rejected_by_host >= px.corrupted_to_host / 2,
        "host rejected {rejected_by_host} of {} corrupted",
        px.corrupted_to_host
    );
    assert!(
        rejected_by_firmware >= px.corrupted_to_firmware / 2,
        "firmware rejected {rejected_by_firmware} of {}",
        px.corrupted_to_firmware
    );
    // The link came back after each unplug and reboot.
    assert!(o.link.reconnects >= 1);
    // In lock-step nothing runs late: a step the link cut is interrupted (and not learned
    // from), not reported as the loop falling behind.
    assert_eq!(o.late_steps, 0, "lock-step steps reported late");
    // Nothing outside the limits ever reached the firmware, and the record agrees.
    assert_eq!(report.firmware.commands_out_of_range, 0);
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    assert_eq!(s.clamped, 0, "the policy's commands are inside the limits; nothing needed clamping");
    // And the customization still works.
    assert!(c <= 0.5 * p, "customized {c} vs prior {p}");
    assert!(o.customized.success_rate >= 0.95, "success {}", o.customized.success_rate);
}

#[test]
fn a_layout_mismatch_is_refused_on_both_sides() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, Faults::default(), 3);
    let mut cfg = LinkConfig::lock_step(port.to_str().unwrap());
    cfg.reconnect_within = Duration::from_secs(2);
    let err = match Link::open(cfg, &["x", "x_dot", "angle", "angle_rate"], &["force"]) {
        Ok(_) => panic!("a mismatched layout must be refused"),
        Err(e) => e.to_string(),
    };
    let report = finish();
    assert!(err.contains("refused the handshake"), "{err}");
    // Every differing name, position by position, from the firmware's Name messages.
    assert!(err.contains("signal 2: firmware has `theta`, the bundle has `angle`"), "{err}");
    assert!(err.contains("signal 3: firmware has `theta_dot`, the bundle has `angle_rate`"), "{err}");
    assert!(!err.contains("signal 0") && !err.contains("command 0"), "only the differences: {err}");
    assert!(err.contains("fix:"), "{err}");
    assert!(report.firmware.rejects >= 1 && report.firmware.handshakes == 0);
}

#[test]
fn a_count_mismatch_names_the_missing_commands() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, Faults::default(), 4);
    let mut cfg = LinkConfig::lock_step(port.to_str().unwrap());
    cfg.reconnect_within = Duration::from_secs(2);
    let err = match Link::open(cfg, &["x", "x_dot", "theta", "theta_dot"], &["force", "brake"]) {
        Ok(_) => panic!("a mismatched layout must be refused"),
        Err(e) => e.to_string(),
    };
    finish();
    assert!(err.contains("command 1: the bundle has `brake`, firmware has none"), "{err}");
}

/// PROTOCOL.md §7: a firmware that answers *busy* (still calibrating) is asked again until it is
/// ready; the run then goes on as usual.
#[test]
fn a_busy_firmware_is_asked_again_until_it_is_ready() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let mut fw = SimFirmware::new("cartpole", Mode::LockStep, 0, 11).unwrap();
    fw.set_busy_until(1_500_000);
    let link = dir.path().join("ttyROBOT");
    let (stop, handle) = rig::spawn(Rig::new(fw, Faults::default(), link.clone(), 11)).unwrap();
    let b = bundle();
    let started = std::time::Instant::now();
    let mut env = connect(&b, &link, Mode::LockStep, 0).expect("busy is not a refusal");
    assert!(started.elapsed() >= Duration::from_millis(1000), "connected while the firmware was busy");
    let o = customize::run_in(b, &mut env, &options(dir.path(), 300, 1)).expect("the run goes on");
    stop.store(true, Ordering::Relaxed);
    let report = handle.join().unwrap().unwrap();
    assert_eq!(o.env_steps, 300);
    assert!(report.firmware.handshakes >= 1);
}

/// A robot that an operator resets: the firmware answers each Reset with WAITING Sensors until
/// the robot is ready; resq waits (sending heartbeats, so the session survives) instead of
/// resending Reset or giving up, and the run completes.
#[test]
fn resq_waits_for_an_operator_reset() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let mut fw = SimFirmware::new("cartpole", Mode::LockStep, 0, 12).unwrap();
    // Longer than the link timeout (0.5 s) and than MAX_RETRIES resends of Reset (0.5 s).
    fw.set_operator_reset(1_200_000);
    let link = dir.path().join("ttyROBOT");
    let (stop, handle) = rig::spawn(Rig::new(fw, Faults::default(), link.clone(), 12)).unwrap();
    let b = Bundle::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole"),
        &["episode.reset=\"operator\"".into(), "episode.max_steps=100".into()],
    )
    .unwrap();
    let mut env = connect(&b, &link, Mode::LockStep, 0).unwrap();
    let o = customize::run_in(b, &mut env, &options(dir.path(), 150, 1)).expect("the run completes");
    let waited = env.waiting_s;
    stop.store(true, Ordering::Relaxed);
    let report = handle.join().unwrap().unwrap();
    assert_eq!(o.env_steps, 150);
    assert!(waited >= 1.0, "resq waited {waited} s for the operator");
    assert_eq!(o.link.reconnects, 0, "the session survived the waits");
    assert_eq!(report.firmware.link_timeouts, 0);
    // Two training episodes (100 + 50 steps) and one evaluation episode per policy.
    assert!(report.firmware.resets >= 4, "{:?}", report.firmware);
}

#[test]
fn an_estop_latches_and_stops_the_run() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults { estop_after: Some(Duration::from_millis(700)), ..Faults::default() };
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, faults, 5);
    let b = bundle();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let err = customize::run_in(b, &mut env, &options(dir.path(), 1_000_000, 1))
        .err()
        .expect("the e-stop stops the run");
    assert!(err.to_string().contains("resq clear-estop"), "the stop names the explicit clear: {err}");
    // The latch holds across sessions until the operator clears it, explicitly (PROTOCOL.md §9).
    drop(env);
    let b = bundle();
    let mut again = connect(&b, &port, Mode::LockStep, 0).unwrap();
    resq::robot::Env::reset(&mut again).unwrap();
    assert!(resq::robot::Env::estop(&again), "a new session finds the e-stop still latched");
    assert!(again.clear_estop().unwrap(), "ClearEstop clears the latch");
    assert!(!resq::robot::Env::estop(&again));
    drop(again);
    let report = finish();
    assert!(err.to_string().contains("e-stop"), "{err}");
    // The learned residual was saved before stopping.
    assert!(dir.path().join(customize::CHECKPOINT_FILE).exists());
    assert_eq!(report.firmware.commands_out_of_range, 0);
    // The safe command answered the Sensor that reported the e-stop (a new seq), so the
    // firmware stepped on it instead of taking it for a duplicate of the last command.
    assert_eq!(report.firmware.stale_commands, 0, "{:?}", report.firmware);
    assert_eq!(report.firmware.repeated_sensor_frames, 0, "{:?}", report.firmware);
    // The record counts the e-stop that stopped the run.
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    assert!(s.estop_events >= 1 && s.estop_ticks >= 1, "{s:?}");
}

/// A real-time robot (200 Hz) with the learner on its own thread (`learning.thread = true`): the
/// loop hands every transition over without waiting, none is dropped, the learner keeps its
/// update-to-data ratio, and CartPole still customizes. 200 Hz, not faster: on these shared
/// virtual machines a tick is held up by 2 ms at p90 and 5 ms at p99 even with the loop under
/// SCHED_FIFO (vCPU scheduling), so at 500 Hz 6–8 % of the steps ran late and the prior alone
/// failed 1 or 2 of 6 episodes; at 200 Hz about 1 % ran late, none failed. Threads make the run vary (which updates
/// land before which ticks), so the budget is the one where every seed in process has a margin
/// (10 000 steps: inline, 5/5 at ≤ 0.36×; this test 0.215× once); at 6 000 (worst in process with
/// the thread 0.66×) a CI run once reached 0.755×.
#[test]
fn a_learner_thread_customizes_a_real_time_robot() {
    let _cpu = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let period_us = 5_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 11);
    let dir_b = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    // 4 updates a tick (the bundle's 16 take up to 1.6 ms on a slow core),
    // and the recipe this budget was measured with (lr 0.001 from step 500): with the bundle's
    // faster one (lr 0.003 from step 100) one CI run's learner thread dropped the pole in 3 of
    // 10 training episodes and the failure guard stopped it.
    let b = Bundle::load_with(
        &dir_b,
        &[
            "learning.thread=true".into(),
            "learning.updates_per_tick=4".into(),
            "learning.lr=0.001".into(),
            "learning.warmup=500".into(),
            GUARD_OFF.into(),
        ],
    )
    .unwrap();
    let (warmup, per_tick) = (b.manifest.learning.warmup as u64, b.manifest.learning.updates_per_tick as u64);
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    let steps = 10_000;
    let o = customize::run_in(b, &mut env, &realtime_options(dir.path(), steps, 5)).unwrap();
    let report = finish();
    let (p, c) = (metric(&o.prior), metric(&o.customized));
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    eprintln!(
        "learner thread, 200 Hz: mean|x| prior {p:.4} customized {c:.4}; {} updates, {} dropped, {} late\n{s}\nfirmware {:?}",
        o.updates, o.transitions_dropped, o.late_steps, report.firmware
    );
    say_if_busy(o.late_steps, steps);
    assert_eq!(o.transitions_dropped, 0);
    // Late steps (the robot stepped before the command arrived) are not learned from.
    assert!(o.updates >= (steps - warmup - o.late_steps) * per_tick * 9 / 10, "{} updates", o.updates);
    assert_eq!(s.ticks, steps);
    assert!(c <= 0.7 * p, "customized {c} vs prior {p}");
    assert!(o.customized.success_rate >= 0.8);
    assert_eq!(report.firmware.commands_out_of_range, 0);
}

/// Residual policy gradient with the learner on its own thread, at 200 Hz: update phases run
/// there while the loop keeps collecting the next rollout; no transition is dropped, every
/// completed rollout gets its phase (no phase is dropped), and CartPole customizes. The bar is
/// the learner-thread test's above (≤ 0.7× the prior's mean |x|), at the budget where every seed
/// meets the lock-step bar in process (20 000 steps; at 15 000 one CI run stayed at 0.92×).
#[test]
fn rpg_learns_on_its_own_thread_in_real_time() {
    let _cpu = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let period_us = 5_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 11);
    let dir_b = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-rpg");
    let b = Bundle::load_with(&dir_b, &["learning.thread=true".into(), GUARD_OFF.into()]).unwrap();
    let (rollout, per_phase) = (
        b.manifest.learning.rollout as u64,
        (b.manifest.learning.epochs * b.manifest.learning.rollout / b.manifest.learning.batch) as u64,
    );
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    let steps = 20_000;
    let o = customize::run_in(b, &mut env, &realtime_options(dir.path(), steps, 10)).unwrap();
    let report = finish();
    let (p, c) = (metric(&o.prior), metric(&o.customized));
    eprintln!(
        "rpg, learner thread, 200 Hz: mean|x| prior {p:.4} customized {c:.4}; {} updates, {} dropped, {} late\nfirmware {:?}",
        o.updates, o.transitions_dropped, o.late_steps, report.firmware
    );
    say_if_busy(o.late_steps, steps);
    assert_eq!(o.transitions_dropped, 0);
    // Every rollout but the last (whose phase may still be running at the end) had its phase.
    // (Late steps are not learned from: they fill no rollout.)
    assert!(o.updates >= ((steps - o.late_steps) / rollout - 1) * per_phase, "{} updates", o.updates);
    assert!(c <= 0.7 * p, "customized {c} vs prior {p}");
    assert!(o.customized.success_rate >= 0.8);
    assert_eq!(report.firmware.commands_out_of_range, 0);
}

/// The robot goes away for good mid-run (the rig stops, the device disappears): after the
/// reconnect bound the run fails with an error that says where the learned residual is saved, and
/// the checkpoint there resumes.
#[test]
fn a_link_lost_for_good_fails_the_run_and_keeps_what_was_learned() {
    let _cpu = shared();
    let dir = tempfile::tempdir().unwrap();
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::LockStep, 0, Faults::default(), 13);
    let b = bundle();
    let text = b.manifest_text.clone();
    let mut env = connect(&b, &port, Mode::LockStep, 0).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        finish()
    });
    let err =
        customize::run_in(b, &mut env, &options(dir.path(), 10_000_000, 1)).err().expect("the link is gone");
    killer.join().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("saved in"), "{msg}");
    let path = dir.path().join(customize::CHECKPOINT_FILE);
    let mut learner = customize::make_learner(&bundle(), 0);
    let progress = resq::store::checkpoint::load(&path, learner.as_mut(), &text).unwrap();
    eprintln!("{msg}\nsaved at step {}", progress.env_steps);
    // The final checkpoint, not only a periodic one (every 2 000 steps): it holds every step the
    // record saw (the recorder may drop records under load, never add them).
    let record = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    assert!(record.last_tick > 0);
    assert!(
        progress.env_steps >= record.last_tick,
        "saved at step {}, recorded {}",
        progress.env_steps,
        record.last_tick
    );
}

#[test]
fn real_time_mode_runs_at_its_rate() {
    let _cpu = exclusive();
    // 200 Hz for 600 ticks (3 s). Timing is reported, not asserted (shared, noisy machines).
    let dir = tempfile::tempdir().unwrap();
    let period_us = 5_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 9);
    let b = Bundle::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole"),
        &[GUARD_OFF.into()],
    )
    .unwrap();
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    let o = customize::run_in(b, &mut env, &realtime_options(dir.path(), 600, 1)).unwrap();
    let report = finish();
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    eprintln!("real time 200 Hz: {s}\nlink {:?}\nfirmware {:?}", o.link, report.firmware);
    assert_eq!(s.ticks, 600);
    assert_eq!(s.late_steps, o.late_steps);
    assert_eq!(report.firmware.commands_out_of_range, 0);
    assert!(s.tick_rate_hz > 0.0);
}

/// A firmware written for protocol v1 answers a v2 host's Hello with `Reject{version}` (Hello and
/// Reject keep their layout in every version); resq stops at once and says which versions.
#[test]
fn an_old_firmware_is_refused_with_a_clear_message() {
    let _cpu = shared();
    let (path, stop, old, slave) = play_firmware(|m, _| match m {
        firmware_bridge::Message::Hello(_) => {
            vec![firmware_bridge::Message::Reject(firmware_bridge::Reject {
                reason: firmware_bridge::RejectReason::Version,
                version: 1,
                layout_hash: 0x1234_5678,
                n_signals: 4,
                n_actions: 1,
            })]
        }
        _ => vec![],
    });
    let started = std::time::Instant::now();
    let err =
        match Link::open(LinkConfig::lock_step(&path), &["x", "x_dot", "theta", "theta_dot"], &["force"]) {
            Ok(_) => panic!("a v1 firmware must be refused"),
            Err(e) => e.to_string(),
        };
    stop.store(true, Ordering::Relaxed);
    old.join().unwrap();
    drop(slave);
    assert!(err.contains("the firmware speaks protocol v1, resq speaks v2"), "{err}");
    assert!(err.contains("update the firmware"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "refused at once, not after retries");
}

/// A hand-played firmware on a pseudo-terminal: `reply` answers each message the host sends (or
/// not); returns the messages the host sent, when `stop` is set.
fn play_firmware(
    reply: impl Fn(&firmware_bridge::Message, usize) -> Vec<firmware_bridge::Message> + Send + 'static,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<firmware_bridge::Message>>,
    serialport::TTYPort,
) {
    use serialport::SerialPort;
    use std::io::{Read, Write};
    let (mut master, slave) = rig::pty_pair().unwrap();
    master.set_timeout(Duration::from_millis(10)).unwrap();
    let path = slave.name().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let fw = std::thread::spawn(move || {
        let (mut decoder, mut buf, mut frame) =
            (firmware_bridge::Decoder::new(), [0u8; 256], [0u8; firmware_bridge::MAX_FRAME]);
        let mut got = Vec::new();
        while !s.load(Ordering::Relaxed) {
            let n = master.read(&mut buf).unwrap_or(0);
            for &b in &buf[..n] {
                if let Some(Ok(m)) = decoder.push(b) {
                    for r in reply(&m, got.len()) {
                        let n = firmware_bridge::encode(&r, &mut frame).unwrap();
                        master.write_all(&frame[..n]).unwrap();
                    }
                    got.push(m);
                }
            }
        }
        got
    });
    (path, stop, fw, slave)
}

/// PROTOCOL.md §7: the host checks the firmware's Hello as the firmware checks the host's. A
/// firmware that accepts any Hello — here one serving Acrobot (six signals), one with CartPole's
/// counts but other names, one of another protocol version — is refused with a Reject, and
/// resq stops naming both sides' values: a robot is never driven by a firmware it was not
/// configured for.
#[test]
fn a_firmware_of_another_robot_is_refused_at_handshake() {
    use firmware_bridge::{layout_hash, Hello, Message, RejectReason};
    let _cpu = shared();
    let acrobot = ["cos1", "sin1", "cos2", "sin2", "dtheta1", "dtheta2"];
    let cases = [
        (
            "another robot",
            Hello::firmware(Mode::LockStep, 0, layout_hash(&acrobot, &["torque"]), 6, 1, 7),
            "Counts",
        ),
        (
            "other names",
            Hello::firmware(Mode::LockStep, 0, layout_hash(&["a", "b", "c", "d"], &["force"]), 4, 1, 7),
            "LayoutHash",
        ),
        (
            "another protocol version",
            Hello {
                version: firmware_bridge::PROTOCOL_VERSION + 1,
                ..Hello::firmware(
                    Mode::LockStep,
                    0,
                    layout_hash(&["x", "x_dot", "theta", "theta_dot"], &["force"]),
                    4,
                    1,
                    7,
                )
            },
            "Version",
        ),
    ];
    for (what, hello, reason) in cases {
        let answer = hello.clone();
        let (path, stop, fw, slave) = play_firmware(move |m, _| match m {
            Message::Hello(_) => vec![Message::Hello(answer.clone())],
            _ => vec![],
        });
        let started = std::time::Instant::now();
        let result =
            Link::open(LinkConfig::lock_step(&path), &["x", "x_dot", "theta", "theta_dot"], &["force"]);
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        let got = fw.join().unwrap();
        drop(slave);
        let err = match result {
            Ok(_) => panic!("{what}: a firmware that does not match the bundle must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("does not match the bundle") && err.contains(reason), "{what}: {err}");
        assert!(err.contains("fix:"), "{what}: {err}");
        let rejected = got.iter().any(|m| matches!(m, Message::Reject(r) if r.reason != RejectReason::Busy));
        assert!(rejected, "{what}: the host sends the firmware a Reject (got {got:?})");
        assert!(started.elapsed() < Duration::from_secs(3), "{what}: refused at once, not after retries");
    }
}

/// PROTOCOL.md §9: a Sensor whose number of values is not the bundle's is a protocol error: the
/// host answers `Fault{4}`, counts it and never reads it — no value is made up (a short frame
/// used to be zero-filled). The firmware's next, well-formed answer is the one the host takes.
#[test]
fn a_sensor_with_the_wrong_number_of_values_is_never_read() {
    use firmware_bridge::{layout_hash, FaultCode, Hello, Message, Sensor, SensorFlags, Values};
    let _cpu = shared();
    let b = bundle();
    let signals: Vec<&str> = b.signals.iter().map(String::as_str).collect();
    let hash = layout_hash(&signals, &["force"]);
    let resets = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let r = resets.clone();
    let (path, stop, fw, slave) = play_firmware(move |m, _| match m {
        Message::Hello(_) => vec![Message::Hello(Hello::firmware(Mode::LockStep, 0, hash, 4, 1, 0xB0))],
        Message::Reset(_) => {
            // The first two answers are short (three values), then one well-formed.
            let k = r.fetch_add(1, Ordering::Relaxed);
            let values: &[f32] = if k < 2 { &[0.1, 0.2, 0.3] } else { &[0.1, 0.2, 0.3, 0.4] };
            let values = Values::from_slice(values).unwrap();
            vec![Message::Sensor(Sensor { seq: k, t_us: k as u64, flags: SensorFlags::RESET, values })]
        }
        _ => vec![],
    });
    let mut env = connect(&b, Path::new(&path), Mode::LockStep, 0).unwrap();
    resq::robot::Env::reset(&mut env).expect("the well-formed answer starts the episode");
    let signals = resq::robot::Env::signals(&env).to_vec();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let got = fw.join().unwrap();
    drop(slave);
    assert_eq!(
        signals,
        [0.1, 0.2, 0.3, 0.4],
        "the signals are the well-formed Sensor's, never a short one's"
    );
    assert!(resets.load(Ordering::Relaxed) >= 3, "the host asked again after each short answer");
    assert!(env.link.counters.other_errors >= 2, "short Sensors are counted: {:?}", env.link.counters);
    let faults =
        got.iter().filter(|m| matches!(m, Message::Fault(f) if f.code == FaultCode::Protocol)).count();
    assert!(faults >= 1, "the host answers a short Sensor with Fault{{4}} (got {got:?})");
}

/// An episode's length is the robot's count, not resq's ticks: in real time, Sensors resq skipped
/// after a stall are steps all the same. Here the firmware steps twice for every command it gets
/// (one Sensor is always skipped) and truncates at its own 500th step, the bundle's time limit:
/// resq answered 250 times, and the episode is 500 steps long and a success by its time limit
/// (it used to be 250 ticks long, and a failure).
#[test]
fn real_time_episodes_last_as_long_as_the_robot_counts() {
    use firmware_bridge::{layout_hash, Hello, Message, Sensor, SensorFlags, Values};
    let _cpu = shared();
    let b = bundle();
    let signals: Vec<&str> = b.signals.iter().map(String::as_str).collect();
    let hash = layout_hash(&signals, &["force"]);
    let sensor = |seq: u32| {
        let mut flags = if seq == 100 { SensorFlags::RESET } else { SensorFlags::NONE };
        if seq >= 600 {
            flags |= SensorFlags::TRUNCATED;
        }
        let values = Values::from_slice(&[0.0, 0.0, 0.01, 0.0]).unwrap();
        Message::Sensor(Sensor { seq, t_us: seq as u64 * 10_000, flags, values })
    };
    let (path, stop, fw, slave) = play_firmware(move |m, _| match m {
        Message::Hello(_) => vec![Message::Hello(Hello::firmware(Mode::RealTime, 10_000, hash, 4, 1, 0xB1))],
        Message::Reset(_) => vec![sensor(100)],
        // The answer to the command for Sensor `seq`: two steps later.
        Message::Command(c) => vec![sensor(c.seq + 2)],
        _ => vec![],
    });
    let mut env = connect(&b, Path::new(&path), Mode::RealTime, 0).unwrap();
    use resq::robot::Env;
    env.reset().unwrap();
    let mut ticks = 0;
    let end = loop {
        let end = env.step(&[0.0]).unwrap();
        ticks += 1;
        if end.done() || ticks > 1_000 {
            break end;
        }
    };
    stop.store(true, Ordering::Relaxed);
    fw.join().unwrap();
    drop(slave);
    assert_eq!(ticks, 250, "resq answered every other step");
    assert_eq!(env.episode_steps(), 500, "the episode is as long as the robot counts");
    assert!(end.truncated && !end.terminated);
    let values = vec![0.0; b.vars.len()];
    assert!(b.episode.succeeded(end, &values, env.episode_steps(), false), "a success by its time limit");
}

/// PROTOCOL.md §9: while a plant fault persists, the firmware answers Reset with `Fault{plant}`;
/// resq stops with that reason (retrying cannot help) instead of reconnecting in a loop.
#[test]
fn a_plant_fault_at_reset_stops_with_its_reason() {
    let _cpu = shared();
    use firmware_bridge::{Fault, FaultCode, Hello, Message};
    let b = bundle();
    let signals: Vec<&str> = b.signals.iter().map(String::as_str).collect();
    let hash = firmware_bridge::layout_hash(&signals, &["force"]);
    let (path, stop, faulty, slave) = play_firmware(move |m, _| match m {
        Message::Hello(_) => vec![Message::Hello(Hello::firmware(Mode::LockStep, 0, hash, 4, 1, 0xFA17))],
        Message::Reset(_) => vec![Message::Fault(Fault { code: FaultCode::Plant, t_us: 1 })],
        _ => vec![],
    });
    let mut env = connect(&b, Path::new(&path), Mode::LockStep, 0).unwrap();
    let err = resq::robot::Env::reset(&mut env).expect_err("a plant fault stops the start of an episode");
    stop.store(true, Ordering::Relaxed);
    faulty.join().unwrap();
    drop(slave);
    assert!(err.to_string().contains("plant fault"), "{err}");
    assert_eq!(env.link.counters.reconnects, 0);
}

/// PROTOCOL.md §8.2, driven on the firmware's own clock (no wall time): a step that runs on the
/// answer to the Sensor before it carries no LATE_COMMAND; one that runs before the answer
/// arrived does, and so does the step after a late answer (accepted, but for an older Sensor);
/// an answer older than the last accepted one is stale.
#[test]
fn the_firmware_flags_steps_that_ran_before_their_command() {
    use firmware_bridge::{Command, Decoder, Hello, Message, Reset, SensorFlags, Values};
    let period = 10_000u32;
    let mut fw = SimFirmware::new("cartpole", Mode::RealTime, period, 3).unwrap();
    let (names_s, names_c) = (["x", "x_dot", "theta", "theta_dot"], ["force"]);
    let hash = firmware_bridge::layout_hash(&names_s, &names_c);
    let mut out = Vec::new();
    let send = |fw: &mut SimFirmware, msg: Message, t: u64, out: &mut Vec<u8>| {
        let f = firmware_bridge::encode_to_vec(&msg).unwrap();
        fw.on_bytes(&f, t, &mut |b| out.extend_from_slice(b));
    };
    let sensors = |out: &mut Vec<u8>| -> Vec<firmware_bridge::Sensor> {
        let mut d = Decoder::new();
        let got = d
            .push_slice(out)
            .filter_map(|m| match m {
                Ok(Message::Sensor(s)) => Some(s),
                _ => None,
            })
            .collect();
        out.clear();
        got
    };
    send(&mut fw, Message::Hello(Hello::host(Mode::RealTime, 0, hash, 4, 1)), 0, &mut out);
    send(&mut fw, Message::Reset(Reset { seed: 1 }), 100, &mut out);
    let reset = sensors(&mut out).pop().expect("the RESET Sensor");
    assert!(reset.flags.contains(SensorFlags::RESET) && !reset.flags.contains(SensorFlags::LATE_COMMAND));
    let cmd = |seq: u32| {
        Message::Command(Command { seq, valid_for_us: 100_000, values: Values::from_slice(&[1.0]).unwrap() })
    };
    let tick = |fw: &mut SimFirmware, k: u64, out: &mut Vec<u8>| {
        fw.poll(100 + k * period as u64, &mut |b| out.extend_from_slice(b));
    };
    // On time: answered before the step.
    send(&mut fw, cmd(reset.seq), 2_000, &mut out);
    tick(&mut fw, 1, &mut out);
    let s1 = sensors(&mut out).pop().unwrap();
    assert_eq!(s1.seq, reset.seq + 1);
    assert!(!s1.flags.contains(SensorFlags::LATE_COMMAND), "{:?}", s1.flags);
    // No answer before the step: it runs on the older command.
    tick(&mut fw, 2, &mut out);
    let s2 = sensors(&mut out).pop().unwrap();
    assert!(s2.flags.contains(SensorFlags::LATE_COMMAND), "{:?}", s2.flags);
    assert!(!s2.flags.contains(SensorFlags::COMMAND_TIMEOUT), "the older command is still valid");
    // The answer to s1 arrives after s2: accepted (the newest the host has), still late for s2's step.
    send(&mut fw, cmd(s1.seq), 2 * period as u64 + 3_000, &mut out);
    tick(&mut fw, 3, &mut out);
    let s3 = sensors(&mut out).pop().unwrap();
    assert!(s3.flags.contains(SensorFlags::LATE_COMMAND), "{:?}", s3.flags);
    // Back on time; a copy of an older answer is stale and changes nothing.
    send(&mut fw, cmd(s3.seq), 3 * period as u64 + 2_000, &mut out);
    send(&mut fw, cmd(s2.seq), 3 * period as u64 + 2_500, &mut out);
    tick(&mut fw, 4, &mut out);
    let s4 = sensors(&mut out).pop().unwrap();
    assert!(!s4.flags.contains(SensorFlags::LATE_COMMAND), "{:?}", s4.flags);
    assert_eq!(fw.stats.late_steps, 2);
    assert_eq!(fw.stats.stale_commands, 1);
}

/// A control loop that cannot keep up with its robot (200 learner updates inline in every 2 ms
/// tick): the robot steps before most commands arrive; resq counts those steps as late (outcome,
/// record and warning agree) and learns from none of them (the replay holds exactly the others).
#[test]
fn late_steps_are_counted_and_not_learned_from() {
    let _cpu = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let period_us = 2_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 21);
    let dir_b = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let b = Bundle::load_with(
        &dir_b,
        &[
            "learning.updates_per_tick=200".into(),
            "learning.warmup=100".into(),
            "safety.failed_episodes_stop=0".into(),
        ],
    )
    .unwrap();
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    let steps = 400;
    let o = customize::run_in(b, &mut env, &options(dir.path(), steps, 1)).unwrap();
    let report = finish();
    let s = resq::store::record::inspect(&dir.path().join("record.mcap")).unwrap();
    eprintln!(
        "{} late of {steps}; replay {}\n{s}\nfirmware {:?}",
        o.late_steps,
        o.learner.core().replay.len(),
        report.firmware
    );
    assert!(o.late_steps >= 150, "{} late steps", o.late_steps);
    assert_eq!(o.learner.core().replay.len() as u64, steps - o.late_steps);
    assert_eq!(s.late_steps, o.late_steps);
    assert!(report.firmware.late_steps >= o.late_steps / 2, "{:?}", report.firmware);
    let w = resq::session::report::warnings(&o).join("\n");
    assert!(w.contains("ran late") && w.contains("learning.thread"), "{w}");
}

/// Real time: after the host stalls for a few periods, Sensors queue up. The host answers the
/// newest (PROTOCOL.md §8.2; the stale ones count as gaps, that step as late) and is back on time
/// at once. Answering the oldest instead (as resq did) skips nothing and acts on states the robot
/// has left until the backlog drains: this test then fails on the gaps.
#[test]
fn after_a_stall_the_host_answers_the_newest_sensor() {
    use resq::robot::Env;
    let _cpu = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let period_us = 10_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 23);
    let b = bundle();
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    env.reset().unwrap();
    // A PD law on the pole keeps it up for the 40 steps.
    let mut late_after = 0;
    for step in 0..40 {
        if step == 10 {
            std::thread::sleep(Duration::from_micros(3 * period_us as u64 + period_us as u64 / 2));
        }
        let s = env.signals();
        env.act(&[(50.0 * s[2] + 10.0 * s[3]).clamp(-10.0, 10.0)]).unwrap();
        let end = env.observe().unwrap();
        assert!(!end.done(), "step {step}");
        if step > 10 {
            late_after += end.late as u32;
        }
    }
    let report = finish();
    eprintln!(
        "late steps after the stall: {late_after} of 29; link {:?}; firmware {:?}",
        env.counters(),
        report.firmware
    );
    assert!(env.counters().seq_gaps >= 2, "the stale Sensors were skipped: {:?}", env.counters());
    // Back on time after the stall (a few late steps allowed for this shared machine's own
    // hiccups).
    assert!(late_after <= 8, "{late_after} of 29 steps after the stall were late");
}

/// The failure guard on a loop that cannot keep up: the episodes it stops on failed while
/// commands came late, and its message says so and how to fix the timing. (On a robot the
/// guard's baseline is the prior's warm-up episodes, none of which ends in 100 steps here, so
/// the prior's rate is declared, as a user who knows it would.)
#[test]
fn a_guard_stop_with_late_steps_points_at_the_timing() {
    let _cpu = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let period_us = 2_000;
    let (port, finish) = start_rig(dir.path(), "cartpole", Mode::RealTime, period_us, Faults::default(), 25);
    let dir_b = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole");
    let b = Bundle::load_with(
        &dir_b,
        &[
            "learning.updates_per_tick=200".into(),
            "learning.warmup=100".into(),
            "safety.prior_failure_rate=0.01".into(),
        ],
    )
    .unwrap();
    let mut env = connect(&b, &port, Mode::RealTime, period_us).unwrap();
    let err = customize::run_in(b, &mut env, &options(dir.path(), 2_000, 1))
        .err()
        .expect("the guard stops the run");
    finish();
    let msg = format!("{err:#}");
    eprintln!("{msg}");
    assert!(msg.contains("training episodes failed") && msg.contains("ran late"), "{msg}");
    assert!(msg.contains("learning.thread = true") && msg.contains("--rt-priority"), "{msg}");
}
