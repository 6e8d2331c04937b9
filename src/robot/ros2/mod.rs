//! ROS 2 as rmw_zenoh speaks it: the messages a robot's signals and commands travel in
//! ([`msg`], CDR little-endian behind the 4-byte encapsulation header) and the names rmw_zenoh
//! gives them on Zenoh ([`names`]: topic key expressions with the DDS type name and the
//! RIHS01 type hash). Both are checked against an independent implementation (`rosbags`, in
//! Python) in `tests/ros2_wire.rs`.
//!
//! This is the wire format only: the transport that joins a robot's ROS 2 graph over Zenoh
//! (`[robot] transport`) is built on it, not yet here.

pub mod msg;
pub mod names;
