//! ROS 2's wire format against an independent implementation: `rosbags` (Python; not resq's
//! authors') serialises a sample of every message type resq speaks (`scripts/ros2_wire.py`);
//! resq decodes each payload, every field is compared with rosbags' values, resq's own encoding
//! of the decoded message is compared byte for byte with rosbags', and resq's RIHS01 type hashes
//! with rosbags' computation of them.

mod common;

use resq::robot::ros2::msg::{self, Float64MultiArray, Imu, JointState, Odometry, Twist};
use resq::robot::ros2::names::MsgType;
use serde::{de::DeserializeOwned, Serialize};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Decodes `sample`'s payload as `T`, compares its fields with rosbags' values and its
/// re-encoding with rosbags' bytes.
fn check<T: DeserializeOwned + Serialize>(name: &str, sample: &serde_json::Value) {
    let payload = hex(sample["hex"].as_str().unwrap());
    let m: T = msg::decode(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(serde_json::to_value(&m).unwrap(), sample["value"], "{name}: the decoded fields");
    let ours = msg::encode(&m).unwrap();
    // (rosbags pads nothing after the last field; a ROS 2 node may pad to 4: both decode.)
    assert_eq!(ours, payload, "{name}: resq's encoding differs from rosbags'");
}

#[test]
fn every_message_type_matches_rosbags_field_for_field_and_byte_for_byte() {
    let out = std::process::Command::new(common::python("rosbags"))
        .arg(common::bundles::root().join("scripts/ros2_wire.py"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |n: &str| &samples[n];
    check::<JointState>("JointState", s("sensor_msgs/msg/JointState"));
    check::<Float64MultiArray>("Float64MultiArray", s("std_msgs/msg/Float64MultiArray"));
    check::<Twist>("Twist", s("geometry_msgs/msg/Twist"));
    check::<Imu>("Imu", s("sensor_msgs/msg/Imu"));
    check::<Odometry>("Odometry", s("nav_msgs/msg/Odometry"));
    for (name, sample) in samples.as_object().unwrap() {
        let ty = MsgType::of(name).unwrap_or_else(|| panic!("{name}: not a type resq names"));
        assert_eq!(ty.hash, sample["hash"], "{name}: RIHS01 type hash");
    }
    assert_eq!(samples.as_object().unwrap().len(), resq::robot::ros2::names::TYPES.len());
}
