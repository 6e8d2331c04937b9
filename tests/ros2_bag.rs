//! ROS 2 bags as records (`store::record::bag`, `resq learn --from <bag>`): a bag of gymnasium's
//! Pendulum written by `rosbags` (`scripts/write_ros2_bag.py`, no resq code), read through a
//! bundle's `[ros2]` section with every signal and command checked against what the writer
//! published; the faults it holds (a JointState without the joint, a tick no command followed,
//! an undeclared topic) left out as documented; `resq learn` learns from it; a bag whose topic
//! holds another type than declared, and a bundle with no `[ros2]`, are refused by name.

mod common;

use std::path::{Path, PathBuf};

use resq::store::record::bag;
use resq::Bundle;

/// `models/pendulum` with its signals on ROS 2 topics, in `dir`; `edit` changes the manifest.
fn pendulum_on_ros2(dir: &Path, edit: impl Fn(String) -> String) -> Bundle {
    let root = common::bundles::root().join("models/pendulum");
    let mut m = std::fs::read_to_string(root.join("manifest.toml")).unwrap();
    for (signal, topic, field) in [
        ("cos_theta", "/pendulum/state", "data[0]"),
        ("sin_theta", "/pendulum/state", "data[1]"),
        ("theta_dot", "/joint_states", "velocity[hinge]"),
        ("theta", "/joint_states", "position[hinge]"),
    ] {
        let line = format!("name = \"{signal}\"\n");
        assert!(m.contains(&line), "{signal} in the manifest");
        m = m.replacen(&line, &format!("{line}topic = \"{topic}\"\nfield = \"{field}\"\n"), 1);
    }
    m += r#"
[ros2]
clock = "/joint_states"
command_topic = "/effort_controller/commands"
command_type = "std_msgs/msg/Float64MultiArray"
[[ros2.topic]]
name = "/joint_states"
type = "sensor_msgs/msg/JointState"
[[ros2.topic]]
name = "/pendulum/state"
type = "std_msgs/msg/Float64MultiArray"
"#;
    std::fs::write(dir.join("manifest.toml"), edit(m)).unwrap();
    std::fs::copy(root.join("prior.onnx"), dir.join("prior.onnx")).unwrap();
    Bundle::load(dir).unwrap()
}

/// Writes the bag (`steps` steps) into `dir/bag`; its file and the ticks the writer published.
fn write_bag(dir: &Path, steps: usize) -> (PathBuf, serde_json::Value) {
    let out = std::process::Command::new(common::python("rosbags and gymnasium"))
        .arg(common::bundles::root().join("scripts/write_ros2_bag.py"))
        .arg(dir.join("bag"))
        .arg(steps.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir.join("bag/bag.mcap"), serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn a_bag_written_by_rosbags_is_read_value_for_value_and_learned_from() {
    let dir = tempfile::tempdir().unwrap();
    let bundle_dir = dir.path().join("bundle");
    std::fs::create_dir(&bundle_dir).unwrap();
    let b = pendulum_on_ros2(&bundle_dir, |m| m);
    let (path, want) = write_bag(dir.path(), 100);
    let want = want.as_array().unwrap();
    assert_eq!(want.len(), 98, "the writer left out two of 100 steps");

    let got = bag::read(&path, &b).unwrap();
    assert!(got.read_error.is_none() && got.malformed == 0);
    assert_eq!(got.ticks.len(), want.len(), "a tick per clock message with its signals and a command");
    let f32s = |v: &serde_json::Value| {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>()
    };
    for (t, w) in got.ticks.iter().zip(want) {
        assert_eq!(t.signals, f32s(&w["signals"]), "tick {}: signals", t.tick);
        assert_eq!(t.command, f32s(&w["command"]), "tick {}: command", t.tick);
        assert!(t.logpi.is_nan(), "a bag says nothing of how a command was chosen");
    }
    // The clock's 41st and 71st messages (steps 40 and 70) are no ticks: their predecessors
    // have no successor.
    let numbers: Vec<u64> = got.ticks.iter().map(|t| t.tick).collect();
    assert!(!numbers.contains(&41) && !numbers.contains(&71) && numbers.contains(&42));

    let out = common::resq_command()
        .args(["learn", bundle_dir.to_str().unwrap(), "--from", path.to_str().unwrap()])
        .args([
            "--updates",
            "50",
            "--episodes",
            "1",
            "--quiet",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ])
        // (95 transitions: the learner starts once it holds a batch.)
        .args(["--set", "learning.warmup=32", "--set", "learning.batch=32"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        shown.contains("98 ticks, 95 transitions learned from (95 with an action no policy drew), 3 skipped"),
        "{shown}"
    );
}

#[test]
fn a_topic_of_another_type_and_a_bundle_without_ros2_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_bag(dir.path(), 5);
    let wrong = dir.path().join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    let b = pendulum_on_ros2(&wrong, |m| {
        m.replace(
            "name = \"/pendulum/state\"\ntype = \"std_msgs/msg/Float64MultiArray\"",
            "name = \"/pendulum/state\"\ntype = \"sensor_msgs/msg/Imu\"",
        )
        .replace("field = \"data[0]\"", "field = \"orientation.x\"")
        .replace("field = \"data[1]\"", "field = \"orientation.y\"")
    });
    let e = format!("{:#}", bag::read(&path, &b).unwrap_err());
    assert!(
        e.contains("`/pendulum/state` holds `std_msgs/msg/Float64MultiArray`")
            && e.contains("declares `sensor_msgs/msg/Imu`"),
        "{e}"
    );

    // A joint named otherwise in the bag: no tick, and the error names the signal and its field.
    let renamed = dir.path().join("renamed");
    std::fs::create_dir(&renamed).unwrap();
    let b = pendulum_on_ros2(&renamed, |m| m.replace("position[hinge]", "position[elbow]"));
    let e = format!("{:#}", bag::read(&path, &b).unwrap_err());
    assert!(e.contains("no tick") && e.contains("`theta` (`position[elbow]` of `/joint_states`)"), "{e}");

    let plain = Bundle::load(&common::bundles::root().join("models/pendulum")).unwrap();
    let e = format!("{:#}", bag::read(&path, &plain).unwrap_err());
    assert!(e.contains("ROS 2 bag") && e.contains("[ros2]"), "{e}");
}
