#!/usr/bin/env python3
"""ROS 2 messages as an independent implementation writes them (rosbags, not resq): for each
message type resq speaks, a sample with awkward values (NaN-free, negative, empty and non-empty
sequences, unicode, odd string lengths for padding) serialised to CDR little-endian, printed as
JSON {type: {"hex": payload, "value": fields, "hash": RIHS01}}. tests/ros2_wire.rs decodes each
payload with resq, compares every field, re-encodes it and compares the bytes.

    python3 scripts/ros2_wire.py

Needs rosbags (scripts/test-requirements.txt).
"""
import dataclasses
import json

import numpy as np
from rosbags.typesys import Stores, get_typestore

ts = get_typestore(Stores.ROS2_JAZZY)
T = ts.types


def header(sec, nanosec, frame):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame)


def vec3(x, y, z):
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def quat(x, y, z, w):
    return T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


f64 = lambda v: np.array(v, dtype=np.float64)  # noqa: E731

SAMPLES = {
    "sensor_msgs/msg/JointState": T["sensor_msgs/msg/JointState"](
        header=header(-3, 999_999_999, "base_link"),
        name=["shoulder", "elbow_ü", "w"],
        position=f64([0.5, -1.25, 3.0e-9]),
        velocity=f64([]),
        effort=f64([1.0, 2.0, -7.5]),
    ),
    "std_msgs/msg/Float64MultiArray": T["std_msgs/msg/Float64MultiArray"](
        layout=T["std_msgs/msg/MultiArrayLayout"](
            dim=[T["std_msgs/msg/MultiArrayDimension"](label="joints", size=2, stride=2)], data_offset=1
        ),
        data=f64([0.1, -0.2]),
    ),
    "geometry_msgs/msg/Twist": T["geometry_msgs/msg/Twist"](linear=vec3(1.5, 0.0, -2.0), angular=vec3(0.0, 0.25, -0.125)),
    "sensor_msgs/msg/Imu": T["sensor_msgs/msg/Imu"](
        header=header(17, 5, "imu"),
        orientation=quat(0.0, 0.1, 0.2, 0.97),
        orientation_covariance=f64([i * 0.5 for i in range(9)]),
        angular_velocity=vec3(0.01, -0.02, 0.03),
        angular_velocity_covariance=f64([-float(i) for i in range(9)]),
        linear_acceleration=vec3(0.0, 0.0, 9.81),
        linear_acceleration_covariance=f64([1e-3] * 9),
    ),
    "nav_msgs/msg/Odometry": T["nav_msgs/msg/Odometry"](
        header=header(1, 2, "odom"),
        child_frame_id="base_footprint",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=1.0, y=-2.0, z=0.5), orientation=quat(0.0, 0.0, 0.38, 0.92)),
            covariance=f64([i / 7 for i in range(36)]),
        ),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vec3(0.3, 0.0, 0.0), angular=vec3(0.0, 0.0, -0.4)),
            covariance=f64([-float(i) for i in range(36)]),
        ),
    ),
}


def plain(v):
    """A message as JSON values: dataclasses to objects, arrays to lists."""
    if dataclasses.is_dataclass(v):
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.name != "__msgtype__"}
    if isinstance(v, np.ndarray):
        return [float(x) for x in v]
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


out = {}
for name, msg in SAMPLES.items():
    payload = bytes(ts.serialize_cdr(msg, name))
    assert ts.deserialize_cdr(payload, name) is not None
    out[name] = {"hex": payload.hex(), "value": plain(msg), "hash": ts.hash_rihs01(name)}
print(json.dumps(out))
