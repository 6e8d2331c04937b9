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
//!
//! The graph (what `ros2 node list` and `ros2 topic list` show) is made of liveliness tokens
//! (rmw_zenoh's `liveliness_utils`):
//!
//! ```text
//! @ros2_lv/<domain>/<session id>/<node id>/<node id>/NN/<enclave>/<namespace>/<node>
//! @ros2_lv/<domain>/<session id>/<node id>/<entity id>/<MP|MS|SS|SC>/<enclave>/<namespace>/<node>/<name>/<DDS type>/<hash>/<QoS>
//! ```
//!
//! where names are mangled (`/` → `%`, an empty namespace or enclave is `%`). Every sample and
//! query carries an attachment: the sequence number (i64 LE), the source timestamp in ns (i64 LE),
//! the length of the source GID (a one-byte varint, 16) and its 16 bytes.

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

/// The e-stop topic's type: `data` true while the robot's e-stop is pressed.
pub const BOOL: MsgType = MsgType {
    name: "std_msgs/msg/Bool",
    hash: "RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9",
};

/// The episode reset service's type: an empty request; `success` and a `message` in the reply.
/// Its hash is the service type's (request, response and event), as zenoh-ros2-sdk computes it
/// (`tests/ros2_node.rs`).
pub const TRIGGER: MsgType = MsgType {
    name: "std_srvs/srv/Trigger",
    hash: "RIHS01_eeff2cd6fa5ad9d27cdf4dec64818317839b62f212a91e6b5304b634b2062c5f",
};

/// The QoS rmw_zenoh writes for the default profile (reliable, volatile, keep last 10).
pub const DEFAULT_QOS: &str = "::,10:,:,:,,";

/// What a liveliness token declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    Publisher,
    Subscription,
    Client,
}

impl EntityKind {
    fn code(self) -> &'static str {
        match self {
            EntityKind::Publisher => "MP",
            EntityKind::Subscription => "MS",
            EntityKind::Client => "SC",
        }
    }
}

/// A ROS name with its slashes mangled for a key expression (`/a/b` → `%a%b`; empty → `%`).
pub fn mangle(name: &str) -> String {
    if name.is_empty() {
        "%".into()
    } else {
        name.replace('/', "%")
    }
}

/// The liveliness token of node `node` in namespace `ns` (`/` for the root) of session `zid`.
pub fn node_token(domain: u32, zid: &str, node_id: u32, ns: &str, node: &str) -> String {
    format!("@ros2_lv/{domain}/{zid}/{node_id}/{node_id}/NN/%/{}/{}", mangle(ns), mangle(node))
}

/// The liveliness token of an endpoint (publisher, subscription, service client) of that node
/// on topic or service `name`.
#[allow(clippy::too_many_arguments)]
pub fn endpoint_token(
    domain: u32,
    zid: &str,
    node_id: u32,
    entity_id: u32,
    kind: EntityKind,
    ns: &str,
    node: &str,
    name: &str,
    ty: MsgType,
) -> String {
    let topic = format!("/{}", name.trim_start_matches('/'));
    format!(
        "@ros2_lv/{domain}/{zid}/{node_id}/{entity_id}/{}/%/{}/{}/{}/{}/{}/{DEFAULT_QOS}",
        kind.code(),
        mangle(ns),
        mangle(node),
        mangle(&topic),
        ty.dds_name(),
        ty.hash
    )
}

/// The attachment of a sample or query: sequence number, timestamp (ns) and source GID.
pub fn attachment(seq: i64, stamp_ns: i64, gid: &[u8; 16]) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[..8].copy_from_slice(&seq.to_le_bytes());
    a[8..16].copy_from_slice(&stamp_ns.to_le_bytes());
    a[16] = 16;
    a[17..].copy_from_slice(gid);
    a
}

/// An attachment read back: `(sequence number, timestamp ns, GID)`; `None` if it is not one.
pub fn read_attachment(a: &[u8]) -> Option<(i64, i64, [u8; 16])> {
    if a.len() != 33 || a[16] != 16 {
        return None;
    }
    let seq = i64::from_le_bytes(a[..8].try_into().ok()?);
    let stamp = i64::from_le_bytes(a[8..16].try_into().ok()?);
    Some((seq, stamp, a[17..].try_into().ok()?))
}

impl MsgType {
    /// The DDS name of the type: `pkg/msg/Name` → `pkg::msg::dds_::Name_` (a service's:
    /// `pkg::srv::dds_::Name_`).
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
        assert_eq!(TRIGGER.dds_name(), "std_srvs::srv::dds_::Trigger_");
    }

    #[test]
    fn tokens_and_attachments_follow_rmw_zenoh() {
        assert_eq!(node_token(0, "ab12", 0, "/", "resq"), "@ros2_lv/0/ab12/0/0/NN/%/%/resq");
        assert_eq!(
            endpoint_token(3, "ab12", 0, 2, EntityKind::Publisher, "/", "resq", "/arm/commands", FLOAT64_MULTI_ARRAY),
            format!("@ros2_lv/3/ab12/0/2/MP/%/%/resq/%arm%commands/std_msgs::msg::dds_::Float64MultiArray_/{}/::,10:,:,:,,", FLOAT64_MULTI_ARRAY.hash)
        );
        let gid = [7u8; 16];
        let a = attachment(5, -1, &gid);
        assert_eq!(read_attachment(&a), Some((5, -1, gid)));
        assert_eq!(read_attachment(&a[..32]), None);
    }
}
