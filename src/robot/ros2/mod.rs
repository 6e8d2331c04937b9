//! ROS 2 as rmw_zenoh speaks it: the messages a robot's signals and commands travel in
//! ([`msg`], CDR little-endian behind the 4-byte encapsulation header), the fields a manifest
//! maps signals and commands to ([`fields`]), and the names rmw_zenoh gives them on Zenoh
//! ([`names`]: topic key expressions with the DDS type name and the RIHS01 type hash). Both are checked against an independent implementation (`rosbags`, in
//! Python) in `tests/ros2_wire.rs`.
//!
//! On them: [`node`], resq as a node of the robot's graph over Zenoh (`[robot] transport =
//! "ros2"`), and ROS 2 bags read as records (`store::record::bag`).

pub mod fields;
pub mod msg;
pub mod names;
pub mod node;

pub use node::{Layout, Ros2Config, Ros2Counts, Ros2Env, Router};
