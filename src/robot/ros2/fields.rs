//! A robot's signals and commands as fields of ROS 2 messages: a message of any type resq speaks
//! ([`Msg`], decoded by its declared type) and a field path into it ([`Field`], parsed once from
//! the manifest), e.g. `position[elbow]` of a JointState (by joint name), `data[2]` of a
//! Float64MultiArray, `angular_velocity.z` of an Imu, `twist.linear.x` of an Odometry,
//! `linear.x` of a Twist.

use super::msg::{self, CdrError, Float64MultiArray, Imu, JointState, Odometry, Quaternion, Twist, Vector3};
use super::names::{MsgType, FLOAT64_MULTI_ARRAY, IMU, JOINT_STATE, ODOMETRY, TWIST};

/// A decoded message of a type resq speaks.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    JointState(JointState),
    Float64MultiArray(Float64MultiArray),
    Twist(Twist),
    Imu(Box<Imu>),
    Odometry(Box<Odometry>),
}

impl Msg {
    /// The payload read as a message of type `ty`.
    pub fn decode(ty: MsgType, payload: &[u8]) -> Result<Msg, CdrError> {
        Ok(match ty.name {
            n if n == JOINT_STATE.name => Msg::JointState(msg::decode(payload)?),
            n if n == FLOAT64_MULTI_ARRAY.name => Msg::Float64MultiArray(msg::decode(payload)?),
            n if n == TWIST.name => Msg::Twist(msg::decode(payload)?),
            n if n == IMU.name => Msg::Imu(Box::new(msg::decode(payload)?)),
            n if n == ODOMETRY.name => Msg::Odometry(Box::new(msg::decode(payload)?)),
            _ => unreachable!("MsgType values are resq's own"),
        })
    }
}

/// Which of a JointState's per-joint arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointArray {
    Position,
    Velocity,
    Effort,
}

/// A field path into a message of one type, parsed once.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// JointState: the joint's entry of one array, found by name in each message.
    Joint(JointArray, String),
    /// Float64MultiArray: `data[i]`.
    Data(usize),
    /// A fixed scalar of a Twist, Imu or Odometry, by path.
    Path(String),
}

/// The scalar paths of each fixed-layout type.
const VEC3: [&str; 3] = ["x", "y", "z"];
const QUAT: [&str; 4] = ["x", "y", "z", "w"];

fn paths(ty: MsgType) -> Vec<String> {
    let join =
        |prefix: &str, leaves: &[&str]| leaves.iter().map(|l| format!("{prefix}.{l}")).collect::<Vec<_>>();
    match ty.name {
        n if n == TWIST.name => [join("linear", &VEC3), join("angular", &VEC3)].concat(),
        n if n == IMU.name => {
            [join("orientation", &QUAT), join("angular_velocity", &VEC3), join("linear_acceleration", &VEC3)]
                .concat()
        }
        n if n == ODOMETRY.name => [
            join("pose.position", &VEC3),
            join("pose.orientation", &QUAT),
            join("twist.linear", &VEC3),
            join("twist.angular", &VEC3),
        ]
        .concat(),
        _ => Vec::new(),
    }
}

/// What the field paths of a type look like, for an error message.
pub fn field_help(ty: MsgType) -> String {
    match ty.name {
        n if n == JOINT_STATE.name => {
            "`position[<joint name>]`, `velocity[<joint name>]` or `effort[<joint name>]`".into()
        }
        n if n == FLOAT64_MULTI_ARRAY.name => "`data[<index>]`".into(),
        _ => format!("one of {}", paths(ty).iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")),
    }
}

impl Field {
    /// Parses `path` as a field of a `ty` message; `None` if it names none.
    pub fn parse(ty: MsgType, path: &str) -> Option<Field> {
        let path = path.trim();
        if ty.name == JOINT_STATE.name {
            let (array, rest) = path.split_once('[')?;
            let joint = rest.strip_suffix(']')?.trim();
            let array = match array.trim() {
                "position" => JointArray::Position,
                "velocity" => JointArray::Velocity,
                "effort" => JointArray::Effort,
                _ => return None,
            };
            return (!joint.is_empty()).then(|| Field::Joint(array, joint.to_string()));
        }
        if ty.name == FLOAT64_MULTI_ARRAY.name {
            let i = path.strip_prefix("data[")?.strip_suffix(']')?.trim().parse().ok()?;
            return Some(Field::Data(i));
        }
        paths(ty).into_iter().find(|p| p == path).map(Field::Path)
    }

    /// The field's value in `m`; `None` where the message lacks it (a joint not named, an array
    /// too short, another type).
    pub fn read(&self, m: &Msg) -> Option<f64> {
        match (self, m) {
            (Field::Joint(array, joint), Msg::JointState(js)) => {
                let i = js.name.iter().position(|n| n == joint)?;
                let values = match array {
                    JointArray::Position => &js.position,
                    JointArray::Velocity => &js.velocity,
                    JointArray::Effort => &js.effort,
                };
                values.get(i).copied()
            }
            (Field::Data(i), Msg::Float64MultiArray(a)) => a.data.get(*i).copied(),
            (Field::Path(p), Msg::Twist(t)) => twist(t, p),
            (Field::Path(p), Msg::Imu(imu)) => {
                let (head, leaf) = p.split_once('.')?;
                match head {
                    "orientation" => quat(&imu.orientation, leaf),
                    "angular_velocity" => vec3(&imu.angular_velocity, leaf),
                    "linear_acceleration" => vec3(&imu.linear_acceleration, leaf),
                    _ => None,
                }
            }
            (Field::Path(p), Msg::Odometry(o)) => match p.split_once('.')? {
                ("pose", rest) => match rest.split_once('.')? {
                    ("position", leaf) => vec3(&o.pose.pose.position, leaf),
                    ("orientation", leaf) => quat(&o.pose.pose.orientation, leaf),
                    _ => None,
                },
                ("twist", rest) => twist(&o.twist.twist, rest),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A command message of type `ty` (a Float64MultiArray or a Twist) whose `fields` hold
/// `values`; every other field zero. `data` is as long as the highest index written.
pub fn command_msg(ty: MsgType, fields: &[Field], values: &[f32]) -> Msg {
    if ty.name == TWIST.name {
        let mut t = Twist::default();
        for (f, v) in fields.iter().zip(values) {
            if let Field::Path(p) = f {
                if let Some(slot) = twist_mut(&mut t, p) {
                    *slot = *v as f64;
                }
            }
        }
        return Msg::Twist(t);
    }
    let n = fields.iter().map(|f| if let Field::Data(i) = f { i + 1 } else { 0 }).max().unwrap_or(0);
    let mut data = vec![0.0; n];
    for (f, v) in fields.iter().zip(values) {
        if let Field::Data(i) = f {
            data[*i] = *v as f64;
        }
    }
    Msg::Float64MultiArray(Float64MultiArray { data, ..Default::default() })
}

impl Msg {
    /// The message as a ROS 2 payload.
    pub fn encode(&self) -> Result<Vec<u8>, CdrError> {
        match self {
            Msg::JointState(m) => msg::encode(m),
            Msg::Float64MultiArray(m) => msg::encode(m),
            Msg::Twist(m) => msg::encode(m),
            Msg::Imu(m) => msg::encode(m.as_ref()),
            Msg::Odometry(m) => msg::encode(m.as_ref()),
        }
    }
}

fn twist_mut<'a>(t: &'a mut Twist, path: &str) -> Option<&'a mut f64> {
    let (head, leaf) = path.split_once('.')?;
    let v = match head {
        "linear" => &mut t.linear,
        "angular" => &mut t.angular,
        _ => return None,
    };
    Some(match leaf {
        "x" => &mut v.x,
        "y" => &mut v.y,
        "z" => &mut v.z,
        _ => return None,
    })
}

fn vec3(v: &Vector3, leaf: &str) -> Option<f64> {
    Some(match leaf {
        "x" => v.x,
        "y" => v.y,
        "z" => v.z,
        _ => return None,
    })
}

fn quat(q: &Quaternion, leaf: &str) -> Option<f64> {
    Some(match leaf {
        "x" => q.x,
        "y" => q.y,
        "z" => q.z,
        "w" => q.w,
        _ => return None,
    })
}

fn twist(t: &Twist, path: &str) -> Option<f64> {
    match path.split_once('.')? {
        ("linear", leaf) => vec3(&t.linear, leaf),
        ("angular", leaf) => vec3(&t.angular, leaf),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_name_index_and_path() {
        let js = Msg::JointState(JointState {
            name: vec!["a".into(), "b".into()],
            position: vec![1.0, 2.0],
            velocity: vec![],
            effort: vec![5.0, 6.0],
            ..Default::default()
        });
        assert_eq!(Field::parse(JOINT_STATE, "position[b]").unwrap().read(&js), Some(2.0));
        assert_eq!(Field::parse(JOINT_STATE, "effort[ a ]").unwrap().read(&js), Some(5.0));
        assert_eq!(Field::parse(JOINT_STATE, "velocity[a]").unwrap().read(&js), None, "an empty array");
        assert_eq!(Field::parse(JOINT_STATE, "position[c]").unwrap().read(&js), None, "no such joint");
        assert_eq!(Field::parse(JOINT_STATE, "angle[a]"), None);
        let odom = Msg::Odometry(Box::new(Odometry {
            twist: msg::TwistWithCovariance {
                twist: Twist { angular: Vector3 { z: -0.4, ..Default::default() }, ..Default::default() },
                ..Default::default()
            },
            ..Default::default()
        }));
        assert_eq!(Field::parse(ODOMETRY, "twist.angular.z").unwrap().read(&odom), Some(-0.4));
        assert_eq!(Field::parse(ODOMETRY, "twist.angular.w"), None);
        assert_eq!(Field::parse(FLOAT64_MULTI_ARRAY, "data[3]"), Some(Field::Data(3)));
        assert_eq!(Field::parse(IMU, "orientation.w"), Some(Field::Path("orientation.w".into())));
        assert!(field_help(TWIST).contains("`angular.z`"));
    }

    #[test]
    fn a_command_message_holds_each_command_in_its_field() {
        let Msg::Float64MultiArray(a) =
            command_msg(FLOAT64_MULTI_ARRAY, &[Field::Data(2), Field::Data(0)], &[1.5, -2.0])
        else {
            panic!()
        };
        assert_eq!(a.data, vec![-2.0, 0.0, 1.5]);
        let fields = [Field::parse(TWIST, "linear.x").unwrap(), Field::parse(TWIST, "angular.z").unwrap()];
        let m = command_msg(TWIST, &fields, &[0.5, -0.25]);
        assert_eq!(fields[0].read(&m), Some(0.5));
        assert_eq!(fields[1].read(&m), Some(-0.25));
        assert_eq!(Field::parse(TWIST, "linear.y").unwrap().read(&m), Some(0.0));
    }
}
