//! The names rmw_zenoh gives ROS 2 entities on Zenoh (rmw_zenoh's `docs/design.md`, "Topic and
//! Service name mapping"): a topic's data travel on the key expression
//!
//! ```text
//! <domain id>/<topic, without its leading '/'>/<DDS type name>/<type hash>
//! ```
//!
//! e.g. `0/joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13e…`, where the DDS type
//! name of `pkg/msg/Name` is `pkg::msg::dds_::Name_` and the type hash is the RIHS01 hash of the
//! type's description (REP 2011), which a subscriber must match.

/// A message type resq speaks: its ROS name and RIHS01 hash (ROS 2 Jazzy; `tests/ros2_wire.rs`
/// checks each against `rosbags`' own computation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgType {
    /// `pkg/msg/Name`.
    pub name: &'static str,
    /// `RIHS01_` and 64 hex digits.
    pub hash: &'static str,
}

pub const JOINT_STATE: MsgType = MsgType {
    name: "sensor_msgs/msg/JointState",
    hash: "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
};
pub const FLOAT64_MULTI_ARRAY: MsgType = MsgType {
    name: "std_msgs/msg/Float64MultiArray",
    hash: "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f",
};
pub const TWIST: MsgType = MsgType {
    name: "geometry_msgs/msg/Twist",
    hash: "RIHS01_9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a",
};
pub const IMU: MsgType = MsgType {
    name: "sensor_msgs/msg/Imu",
    hash: "RIHS01_7d9a00ff131080897a5ec7e26e315954b8eae3353c3f995c55faf71574000b5b",
};
pub const ODOMETRY: MsgType = MsgType {
    name: "nav_msgs/msg/Odometry",
    hash: "RIHS01_3cc97dc7fb7502f8714462c526d369e35b603cfc34d946e3f2eda2766dfec6e0",
};

/// Every message type resq speaks.
pub const TYPES: [MsgType; 5] = [JOINT_STATE, FLOAT64_MULTI_ARRAY, TWIST, IMU, ODOMETRY];

impl MsgType {
    /// The DDS name of the type: `pkg/msg/Name` → `pkg::msg::dds_::Name_`.
    pub fn dds_name(&self) -> String {
        let mut parts = self.name.split('/');
        let (pkg, kind, name) =
            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("{pkg}::{kind}::dds_::{name}_")
    }

    /// The type of a ROS name (`sensor_msgs/msg/JointState`), if resq speaks it.
    pub fn of(name: &str) -> Option<MsgType> {
        TYPES.into_iter().find(|t| t.name == name)
    }
}

/// The key expression a topic's samples travel on in `domain`. `topic` is a ROS topic name,
/// absolute or relative to the root namespace (`/joint_states` or `joint_states`).
pub fn topic_key(domain: u32, topic: &str, ty: MsgType) -> String {
    format!("{domain}/{}/{}/{}", topic.trim_start_matches('/'), ty.dds_name(), ty.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_key_follows_rmw_zenoh() {
        assert_eq!(
            topic_key(0, "/joint_states", JOINT_STATE),
            "0/joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
        );
        assert_eq!(FLOAT64_MULTI_ARRAY.dds_name(), "std_msgs::msg::dds_::Float64MultiArray_");
        assert_eq!(MsgType::of("geometry_msgs/msg/Twist"), Some(TWIST));
        assert_eq!(MsgType::of("std_msgs/msg/String"), None);
    }
}
