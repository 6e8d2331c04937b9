//! ROS 2 as rmw_zenoh speaks it: the messages a robot's signals and commands travel in
//! ([`msg`], CDR little-endian behind the 4-byte encapsulation header), the fields a manifest
//! maps signals and commands to ([`fields`]), and the names rmw_zenoh gives them on Zenoh
//! ([`names`]: topic key expressions with the DDS type name and the RIHS01 type hash). Both are checked against an independent implementation (`rosbags`, in
//! Python) in `tests/ros2_wire.rs`.
//!
//! Used today to read ROS 2 bags as records (`store::record::bag`). The transport that joins a
//! robot's ROS 2 graph over Zenoh (`[robot] transport`) is to be built on it, not yet here.

pub mod fields;
pub mod msg;
pub mod names;
