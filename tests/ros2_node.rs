//! resq on a ROS 2 robot over Zenoh, checked by a second implementation of rmw_zenoh's
//! conventions: the reference ROS 2 robot (`resq-ros2-robot`) and a watching node
//! (`scripts/ros2_peer.py`) are built on zenoh-ros2-sdk, which resq's authors did not write, and
//! its CDR comes from rosbags. Everything runs on loopback, with a Zenoh router the test starts
//! (Python `eclipse-zenoh` in router mode) and multicast scouting off.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use resq::robot::ros2::names::{FLOAT64_MULTI_ARRAY, JOINT_STATE, TRIGGER};
use resq::robot::Env;
use resq::Bundle;

const NEEDS: &str = "eclipse-zenoh and zenoh-ros2-sdk: reference-firmware[ros2]";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Zenoh router on `port`, once it accepts connections.
fn router(port: u16, log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(common::python(NEEDS))
        .args(["-m", "resq_firmware.router", "--listen", &format!("tcp/127.0.0.1:{port}")])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the Zenoh router did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

/// The reference ROS 2 robot serving Reacher-v5, once it serves its topics.
fn robot(endpoint: &str, extra: &[&str], dir: &Path) -> Proc {
    let ready = dir.join("robot.ready");
    let out = std::fs::File::create(dir.join("robot.log")).unwrap();
    let child = Command::new(common::python(NEEDS))
        .args(["-m", "resq_firmware.ros2_robot", "--env", "Reacher-v5", "--router", endpoint, "--seed", "3"])
        .args(extra)
        .arg("--ready")
        .arg(&ready)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < until, "the ROS 2 robot did not serve: {}", log_of(dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("robot.log")).unwrap_or_default()
}

/// `resq run models/reacher-ros2` through the router at `endpoint`, 2 evaluation episodes, seed 0.
fn resq_run(endpoint: &str, mode: &str, steps: u32, out: &Path) -> Command {
    let mut c = common::resq_command();
    c.arg("run").arg(root().join("models/reacher-ros2"));
    c.args([
        "--router",
        endpoint,
        "--mode",
        mode,
        "--steps",
        &steps.to_string(),
        "--episodes",
        "2",
        "--seed",
        "0",
    ]);
    c.arg("--out").arg(out);
    c
}

fn bundle() -> Bundle {
    Bundle::load(&common::bundles::root().join("models/reacher-ros2")).unwrap()
}

fn root() -> PathBuf {
    common::bundles::root()
}

#[test]
fn resq_is_a_node_that_an_independent_implementation_sees_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = router(port, &dir.path().join("router.log"));
    let _robot = robot(&endpoint, &[], dir.path());
    let mut peer = Command::new(common::python(NEEDS))
        .arg(root().join("scripts/ros2_peer.py"))
        .args(["--router", &endpoint, "--seconds", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let b = bundle();
    let mut env = b.ros2_env(Some(&endpoint), false, Duration::from_secs(20)).unwrap();
    env.reset().unwrap();
    let (mut ticks, mut sent) = (vec![env.signals().to_vec()], vec![]);
    for i in 0..40 {
        let cmd = [0.8 * (i as f32 * 0.3).sin(), -0.6 * (i as f32 * 0.2).cos()];
        let end = env.step(&cmd).unwrap();
        assert!(!end.late && !end.interrupted, "step {i}: {end:?}");
        sent.push(cmd);
        ticks.push(env.signals().to_vec());
    }
    let report: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = peer.wait();
    let counts = env.ros2_counts();
    drop(env);

    // The graph, as `ros2 node list` and `ros2 topic list -v` read it.
    let nodes: Vec<&str> = report["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(nodes.contains(&"resq") && nodes.contains(&"sim_robot"), "nodes: {nodes:?}");
    let endpoint_of = |kind: &str, topic: &str| {
        report["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind && e["node_name"] == "resq" && e["qualified_name"] == topic)
    };
    let publisher =
        endpoint_of("MP", "/forward_effort_controller/commands").expect("resq's command publisher");
    assert_eq!(publisher["dds_type"], "std_msgs::msg::dds_::Float64MultiArray_");
    assert_eq!(publisher["type_hash"], FLOAT64_MULTI_ARRAY.hash);
    assert_eq!(
        endpoint_of("MS", "/joint_states").expect("resq's clock subscription")["type_hash"],
        JOINT_STATE.hash
    );
    assert!(endpoint_of("MS", "/observation").is_some());
    assert_eq!(endpoint_of("SC", "/reset").expect("resq's reset client")["type_hash"], TRIGGER.hash);

    // Every command, on the key the SDK assembles, decoded by rosbags' CDR, with an attachment
    // rmw_zenoh's reader accepts: sequence numbers 1, 2, … and one 16-byte GID.
    let seen = report["commands"].as_array().unwrap();
    assert_eq!(seen.len(), sent.len(), "commands the peer saw");
    let gid = seen[0]["gid"].as_str().unwrap();
    assert_eq!(gid.len(), 32);
    for (i, (c, s)) in seen.iter().zip(&sent).enumerate() {
        let data: Vec<f64> = c["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(data, vec![s[0] as f64, s[1] as f64], "command {i}");
        assert_eq!(c["seq"].as_i64().unwrap(), i as i64 + 1);
        assert_eq!(c["gid"].as_str().unwrap(), gid);
    }

    // Every tick's signals are the robot's message values (as f32): the observation's entries,
    // and the joint velocities from the JointState, which MuJoCo's observation repeats.
    let obs = report["observations"].as_array().unwrap();
    assert!(obs.len() >= ticks.len(), "{} observations for {} ticks", obs.len(), ticks.len());
    let obs = &obs[obs.len() - ticks.len()..];
    let names: Vec<&str> = b.signals.iter().map(String::as_str).collect();
    let at = |n: &str| names.iter().position(|s| *s == n).unwrap();
    for (t, (signals, o)) in ticks.iter().zip(obs).enumerate() {
        let o: Vec<f32> = o.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        for (name, i) in [
            ("cos1", 0),
            ("cos2", 1),
            ("sin1", 2),
            ("sin2", 3),
            ("target_x", 4),
            ("target_y", 5),
            ("dx", 8),
            ("dy", 9),
        ] {
            assert_eq!(signals[at(name)], o[i], "tick {t}: {name}");
        }
        assert_eq!(signals[at("vel1")], o[6], "tick {t}: vel1 from JointState velocity[joint0]");
        assert_eq!(signals[at("vel2")], o[7], "tick {t}: vel2 from JointState velocity[joint1]");
    }
    assert_eq!(counts.ticks as usize, ticks.len());
    assert_eq!((counts.wrong_type, counts.malformed, counts.missing_field, counts.stale_ticks), (0, 0, 0, 0));
}

/// The fault campaign's counts, from the log line resq writes when it leaves the graph.
fn count(log: &str, what: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("ROS 2: ") && l.contains(" ticks, "))
        .unwrap_or_else(|| panic!("no counts in:\n{log}"));
    let part = line
        .split(", ")
        .find(|p| p.ends_with(what) || p.contains(&format!(" {what}")))
        .unwrap_or_else(|| panic!("`{what}` in `{line}`"));
    part.trim_start_matches(|c: char| !c.is_ascii_digit()).split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn wire_faults_get_the_safe_command_and_a_count_and_the_customization_survives() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let router_log = dir.path().join("router.log");
    let first_router = router(port, &router_log);
    // At 50 Hz: the clock gone for 1 s, a joint missing from 5 JointStates, a Twist on the clock
    // topic, malformed CDR on it.
    let faults = r#"[{"at": 150, "kind": "pause_clock", "seconds": 1.0},
                     {"at": 300, "kind": "drop_joint", "joint": "joint1", "steps": 5},
                     {"at": 400, "kind": "wrong_type"}, {"at": 500, "kind": "malformed"}]"#;
    let _robot = robot(&endpoint, &["--rate", "50", "--faults", faults], dir.path());
    let out = dir.path().join("run");
    let resq = resq_run(&endpoint, "realtime", 1500, &out)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The router restarts mid-run (after the other faults: at 50 Hz step 500 is at 10 s).
    std::thread::sleep(Duration::from_secs(16));
    drop(first_router);
    std::thread::sleep(Duration::from_millis(500));
    let _second_router = router(port, &router_log);
    let done = resq.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(done.status.success(), "resq run failed:\n{log}\nrobot:\n{}", log_of(dir.path()));
    assert!(out.join("report.json").exists() && out.join("checkpoint.safetensors").exists());
    eprintln!(
        "{}",
        log.lines().filter(|l| l.contains("WARN") || l.contains("ROS 2:")).collect::<Vec<_>>().join("\n")
    );

    // Each fault is named once and counted.
    assert!(
        log.contains("geometry_msgs::msg::dds_::Twist_")
            && log.contains("declared `sensor_msgs/msg/JointState`"),
        "{log}"
    );
    assert_eq!(count(&log, "of another type"), 1);
    assert!(log.contains("a malformed sensor_msgs/msg/JointState on /joint_states"), "{log}");
    assert_eq!(count(&log, "malformed"), 1);
    assert!(log.contains("has no `velocity[joint1]` (its joints: joint0, target_x, target_y)"), "{log}");
    assert_eq!(count(&log, "missing a field"), 5);
    // Each tick without joint1 got the safe command instead of the policy's.
    assert!(count(&log, "stale ticks") >= 5);
    // The silent clock: the watchdog's safe commands, the episode cut; the run went on.
    assert!(count(&log, "silences") >= 1);
    assert!(count(&log, "watchdog commands") >= 1);
    assert!(log.contains("the clock was silent for"), "{log}");
}

/// The venv's bin folder first on a child's PATH (where `resq-ros2-robot` is).
fn venv_path() -> String {
    let python = common::python(NEEDS);
    let bin = Path::new(&python).parent().expect("RESQ_PYTHON is a path to python").to_path_buf();
    assert!(
        bin.join("resq-ros2-robot").exists(),
        "{} has no resq-ros2-robot: `pip install './reference-firmware[ros2]'`",
        bin.display()
    );
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

fn ratio(report: &serde_json::Value, metric: &str) -> f64 {
    report["customized"][metric].as_f64().unwrap() / report["prior"][metric].as_f64().unwrap()
}

#[test]
fn the_readme_command_customizes_reacher_over_ros2_to_the_serial_bar() {
    // `resq customize models/reacher-ros2`: a router in process, the robot beside it, lock-step.
    // models/reacher's bar: tau2^2 <= 0.6x the prior's with the final distance <= 1.2x.
    let out = tempfile::tempdir().unwrap();
    let seed = common::seed(0);
    let done = common::resq_command()
        .arg("customize")
        .arg(root().join("models/reacher-ros2"))
        .args(["--steps", "5000", "--episodes", "50", "--quiet", "--seed", &seed.to_string()])
        .arg("--out")
        .arg(out.path())
        .env("PATH", venv_path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    let (tau2, distance) = (ratio(&report, "tau2_sq"), ratio(&report, "final_distance"));
    common::figure("reacher-ros2 tau2_sq ratio at 5000", tau2, "<=", 0.6);
    common::figure("reacher-ros2 final_distance ratio at 5000", distance, "<=", 1.2);
    assert!(tau2 <= 0.6 && distance <= 1.2, "tau2^2 {tau2:.3}x, distance {distance:.3}x");
    assert!(log.contains("joined the ROS 2 graph as node /resq"), "{log}");
    assert!(log.contains("0 of another type, 0 malformed, 0 missing a field, 0 stale ticks"), "{log}");
}

#[test]
fn an_estop_on_its_topic_stops_the_run_with_the_safe_command() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = router(port, &dir.path().join("router.log"));
    let robot = robot(&endpoint, &["--faults", r#"[{"at": 120, "kind": "estop"}]"#], dir.path());
    let out = dir.path().join("run");
    let done = resq_run(&endpoint, "lockstep", 2000, &out).output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(log.contains("e-stop reported by the robot at step"), "{log}");
    assert!(log.contains("e-stop pressed (reported on the e-stop topic /estop)"), "{log}");
    // Stopped as an operator stops it, its log ends with the commands it received after the e-stop.
    let mut robot = robot;
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(robot.0.id() as libc::pid_t, libc::SIGTERM) };
    let _ = robot.0.wait();
    let robot_log = log_of(dir.path());
    let after = robot_log
        .lines()
        .find_map(|l| l.split("commands after the e-stop: ").nth(1))
        .unwrap_or_else(|| panic!("{robot_log}"));
    let after: Vec<Vec<f64>> = serde_json::from_str(after).unwrap();
    // One command answered the pressed e-stop, the safe one; then resq sent its safe command on
    // leaving; nothing else.
    assert!(!after.is_empty() && after.iter().all(|c| c == &vec![0.0, 0.0]), "{after:?}");
}

#[test]
fn a_period_clock_ticks_on_resqs_timer_and_goes_stale_without_the_robot() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = router(port, &dir.path().join("router.log"));
    let robot = robot(&endpoint, &[], dir.path());
    // models/reacher-ros2 ticking every 20 ms on resq's own timer instead of on /joint_states.
    let bundle_dir = dir.path().join("bundle");
    std::fs::create_dir(&bundle_dir).unwrap();
    let text = std::fs::read_to_string(root().join("models/reacher-ros2/manifest.toml")).unwrap();
    let prior = root().join("models/reacher/prior.onnx");
    let text = text
        .replace("clock = \"/joint_states\"", "clock_period_ms = 20")
        .replace("file = \"../reacher/prior.onnx\"", &format!("file = \"{}\"", prior.display()));
    std::fs::write(bundle_dir.join("manifest.toml"), text).unwrap();
    let b = Bundle::load(&bundle_dir).unwrap();
    let mut env = b.ros2_env(Some(&endpoint), true, Duration::from_secs(20)).unwrap();
    env.reset().unwrap();
    let mut fresh = 0;
    for _ in 0..50 {
        let end = env.step(&[0.1, -0.1]).unwrap();
        fresh += usize::from(!end.late);
    }
    let before = env.ros2_counts();
    assert!(fresh > 0 && before.ticks >= 50, "{fresh} fresh steps, {before:?}");
    // The robot stops: resq's clock goes on, every tick stale once its signals are 100 ms old,
    // and each gets the safe command instead of the policy's (late: not learned from).
    drop(robot);
    // (On a busy machine resq's own timer may stall past stale_ms: that tick cuts the episode
    // instead, also never learned from.)
    let ends: Vec<_> = (0..30).map(|_| env.step(&[0.1, -0.1]).unwrap()).collect();
    assert!(ends[20..].iter().all(|e| e.late || e.interrupted), "{ends:?}");
    let after = env.ros2_counts();
    assert!(after.stale_ticks >= 10, "{after:?}");
}

#[test]
fn a_missing_router_is_named_with_the_fix() {
    let port = free_port(); // nothing listens there
    let router = format!("tcp/127.0.0.1:{port}");
    let err =
        bundle().ros2_env(Some(&router), false, Duration::from_secs(2)).err().expect("no router").to_string();
    assert!(
        err.contains(&format!("no Zenoh router answered at {router}")) && err.contains("rmw_zenohd"),
        "{err}"
    );
}
