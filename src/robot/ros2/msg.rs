//! The ROS 2 messages resq reads signals from and publishes commands in, as Rust values that
//! serialise to the bytes a ROS 2 node sends: XCDR1 ("plain" CDR), little-endian, after the
//! 4-byte encapsulation header `00 01 00 00` (CDR_LE). Field order and types follow the
//! messages' `.msg` definitions in ROS 2 Jazzy; fixed-size arrays carry no length, sequences
//! and strings a `u32` length (a string's counts its NUL).
//!
//! Serialisation is `cdr-encoding`'s (the crate RustDDS and ros2-client use); this module only
//! declares the types and the encapsulation.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The encapsulation header of little-endian plain CDR.
pub const CDR_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Why a payload is not the message it was read as.
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    #[error("the payload is {0} bytes: shorter than its 4-byte encapsulation header")]
    Short(usize),
    #[error("encapsulation {0:02x?} is not little-endian plain CDR (00 01)")]
    Encapsulation([u8; 2]),
    #[error("malformed CDR: {0}")]
    Cdr(#[from] cdr_encoding::Error),
    #[error("{0} bytes left over after the message")]
    Trailing(usize),
}

/// `msg` as a ROS 2 payload: the encapsulation header, then its CDR.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CdrError> {
    let body = cdr_encoding::to_vec::<T, byteorder::LittleEndian>(msg)?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&CDR_LE);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The message in a ROS 2 payload. Bytes after it beyond the padding to a multiple of 4 are an
/// error (a message of another type that happens to parse).
pub fn decode<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, CdrError> {
    if payload.len() < 4 {
        return Err(CdrError::Short(payload.len()));
    }
    if payload[..2] != CDR_LE[..2] {
        return Err(CdrError::Encapsulation([payload[0], payload[1]]));
    }
    let body = &payload[4..];
    let (msg, used) = cdr_encoding::from_bytes::<T, byteorder::LittleEndian>(body)?;
    let left = body.len() - used;
    if left > 3 {
        return Err(CdrError::Trailing(left));
    }
    Ok(msg)
}

/// `builtin_interfaces/msg/Time`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

/// `std_msgs/msg/Header`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `sensor_msgs/msg/JointState`: per joint `name`, and `position`, `velocity`, `effort` each
/// either empty or as long as `name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    pub header: Header,
    pub name: Vec<String>,
    pub position: Vec<f64>,
    pub velocity: Vec<f64>,
    pub effort: Vec<f64>,
}

/// `std_msgs/msg/MultiArrayDimension`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiArrayDimension {
    pub label: String,
    pub size: u32,
    pub stride: u32,
}

/// `std_msgs/msg/MultiArrayLayout`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiArrayLayout {
    pub dim: Vec<MultiArrayDimension>,
    pub data_offset: u32,
}

/// `std_msgs/msg/Float64MultiArray`: what ros2_control's `forward_command_controller` takes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Float64MultiArray {
    pub layout: MultiArrayLayout,
    pub data: Vec<f64>,
}

/// `geometry_msgs/msg/Vector3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vector3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// `geometry_msgs/msg/Point`.
pub type Point = Vector3;

/// `geometry_msgs/msg/Quaternion`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

/// `geometry_msgs/msg/Twist`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Twist {
    pub linear: Vector3,
    pub angular: Vector3,
}

/// `sensor_msgs/msg/Imu`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Imu {
    pub header: Header,
    pub orientation: Quaternion,
    pub orientation_covariance: [f64; 9],
    pub angular_velocity: Vector3,
    pub angular_velocity_covariance: [f64; 9],
    pub linear_acceleration: Vector3,
    pub linear_acceleration_covariance: [f64; 9],
}

/// `geometry_msgs/msg/Pose`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub position: Point,
    pub orientation: Quaternion,
}

/// A row-major 6×6 covariance, `float64[36]` (a fixed array: no length on the wire).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Covariance6(pub [f64; 36]);

impl Default for Covariance6 {
    fn default() -> Self {
        Covariance6([0.0; 36])
    }
}

impl Serialize for Covariance6 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(36)?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Covariance6 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Covariance6;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("36 float64")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Covariance6, A::Error> {
                let mut out = [0.0; 36];
                for (i, v) in out.iter_mut().enumerate() {
                    *v = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Covariance6(out))
            }
        }
        d.deserialize_tuple(36, V)
    }
}

/// `geometry_msgs/msg/PoseWithCovariance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    pub pose: Pose,
    pub covariance: Covariance6,
}

/// `geometry_msgs/msg/TwistWithCovariance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TwistWithCovariance {
    pub twist: Twist,
    pub covariance: Covariance6,
}

/// `nav_msgs/msg/Odometry`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Odometry {
    pub header: Header,
    pub child_frame_id: String,
    pub pose: PoseWithCovariance,
    pub twist: TwistWithCovariance,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload that is too short, big-endian, or a message with bytes to spare is named.
    #[test]
    fn a_wrong_payload_is_named() {
        assert!(matches!(decode::<Twist>(&[0, 1]), Err(CdrError::Short(2))));
        let mut be = encode(&Twist::default()).unwrap();
        be[1] = 0;
        assert!(matches!(decode::<Twist>(&be), Err(CdrError::Encapsulation(_))));
        let odom = encode(&Odometry::default()).unwrap();
        assert!(decode::<Twist>(&odom).is_err(), "an Odometry is not read as a Twist");
        let cut = encode(&JointState { name: vec!["j".into()], position: vec![1.0], ..Default::default() })
            .unwrap();
        assert!(decode::<JointState>(&cut[..cut.len() - 3]).is_err(), "a cut JointState");
    }
}
