#!/usr/bin/env python3
"""A ROS 2 bag of gymnasium's Pendulum-v1 written by rosbags (not resq), as a ros2_control robot
would publish it: each step a Float64MultiArray `/pendulum/state` (cos θ, sin θ), then a
JointState `/joint_states` (the `hinge` joint's position θ and velocity, beside a `wheel` joint,
in varying order; it clocks the ticks), then the torque on `/effort_controller/commands`
(Float64MultiArray), and an Imu on `/imu` nobody declared. Faults on purpose: at step 40 the
JointState lacks `hinge` (that tick is left out), at step 70 no command follows (left out too).

Prints JSON: the ticks resq must read, each {"signals": [cos, sin, θ̇, θ], "command": [τ]}.

    python3 scripts/write_ros2_bag.py OUT_DIR [STEPS]

Needs rosbags and gymnasium (the test venv).
"""
import json
import sys

import gymnasium as gym
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

out, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300
ts = get_typestore(Stores.ROS2_JAZZY)
T = ts.types
JS, FA, IMU = "sensor_msgs/msg/JointState", "std_msgs/msg/Float64MultiArray", "sensor_msgs/msg/Imu"


def header(t_ns):
    stamp = T["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id="")


def array(values):
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T[FA](layout=layout, data=np.array(values, dtype=np.float64))


env = gym.make("Pendulum-v1")
env.reset(seed=0)
rng = np.random.default_rng(0)
ticks = []
with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as w:
    c_state = w.add_connection("/pendulum/state", FA, typestore=ts)
    c_js = w.add_connection("/joint_states", JS, typestore=ts)
    c_cmd = w.add_connection("/effort_controller/commands", FA, typestore=ts)
    c_imu = w.add_connection("/imu", IMU, typestore=ts)
    for k in range(steps):
        t = 10**9 + k * 50_000_000  # 20 Hz
        theta, theta_dot = (float(v) for v in env.unwrapped.state)
        cos, sin = float(np.cos(theta)), float(np.sin(theta))
        w.write(c_state, t, ts.serialize_cdr(array([cos, sin]), FA))
        names, pos, vel = ["hinge", "wheel"], [theta, 0.5 * k], [theta_dot, -1.0]
        if k % 2:
            names, pos, vel = names[::-1], pos[::-1], vel[::-1]
        if k == 40:
            names, pos, vel = ["wheel"], [0.0], [0.0]
        js = T[JS](header=header(t), name=names, position=np.array(pos), velocity=np.array(vel),
                   effort=np.array([], dtype=np.float64))
        w.write(c_js, t + 1_000_000, ts.serialize_cdr(js, JS))
        torque = float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0))
        if k != 70:
            w.write(c_cmd, t + 2_000_000, ts.serialize_cdr(array([torque]), FA))
        imu = T[IMU](header=header(t), orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                     orientation_covariance=np.zeros(9), angular_velocity=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=theta_dot),
                     angular_velocity_covariance=np.zeros(9), linear_acceleration=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=9.81),
                     linear_acceleration_covariance=np.zeros(9))
        w.write(c_imu, t + 3_000_000, ts.serialize_cdr(imu, IMU))
        if k not in (40, 70):
            ticks.append({"signals": [cos, sin, theta_dot, theta], "command": [torque]})
        env.step(np.array([torque], dtype=np.float32))
print(json.dumps(ticks))
