#!/usr/bin/env python3
"""A second node on a ROS 2 graph over Zenoh, by zenoh-ros2-sdk (a Python implementation of
rmw_zenoh's conventions that resq's authors did not write): what resq publishes and what the
graph shows, read independently of resq (tests/ros2_node.rs).

For --seconds it records every command on --commands (decoded by the SDK's CDR, from rosbags;
its attachment parsed by the SDK's rmw_zenoh attachment reader) and every observation on
--observation; then it reads the graph from the liveliness tokens as `ros2 node list` and
`ros2 topic list -v` do, and prints one JSON document. It prints "ready" once subscribed.

    python3 scripts/ros2_peer.py --router tcp/127.0.0.1:7447 --seconds 5
"""
import argparse
import json
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--router", default="tcp/127.0.0.1:7447")
p.add_argument("--seconds", type=float, default=5.0)
p.add_argument("--commands", default="/forward_effort_controller/commands")
p.add_argument("--observation", default="/observation")
p.add_argument("--domain", type=int, default=0)
args = p.parse_args()

os.environ.setdefault("ZENOH_CONFIG_OVERRIDE", 'listen/endpoints=["tcp/127.0.0.1:0"]')
from resq_firmware.ros2_robot import INTERFACES, parse_router  # noqa: E402 (the interface files)
from zenoh_ros2_sdk import ROS2Subscriber, ZenohSession, get_registry  # noqa: E402
from zenoh_ros2_sdk.attachment import Attachment  # noqa: E402
from zenoh_ros2_sdk.discovery import _parse_liveliness_keyexpr  # noqa: E402
from zenoh_ros2_sdk.keyexpr import topic_keyexpr  # noqa: E402

get_registry(messages_dir=str(INTERFACES))
host, port = parse_router(args.router)
common = dict(node_name="resq_test_peer", domain_id=args.domain, router_ip=host, router_port=port)
session = ZenohSession.get_instance(host, port)
observations = []
commands = []
obs_sub = ROS2Subscriber(args.observation, "std_msgs/msg/Float64MultiArray",
                         lambda m: observations.append([float(v) for v in m.data]), **common)
# The command topic's key as the SDK assembles it (its own type hash): resq's samples must land
# on it. Raw, to read each sample's attachment beside its payload.
cmd_key = topic_keyexpr(args.domain, args.commands, "std_msgs::msg::dds_::Float64MultiArray_",
                        obs_sub.type_hash)


def on_command(sample):
    att = Attachment.from_bytes(sample.attachment.to_bytes()) if sample.attachment is not None else None
    msg = session.store.deserialize_cdr(bytes(sample.payload.to_bytes()), "std_msgs/msg/Float64MultiArray")
    commands.append({
        "data": [float(v) for v in msg.data],
        "seq": att.sequence_id if att else None,
        "stamp_ns": att.timestamp_ns if att else None,
        "gid": att.gid.hex() if att else None,
    })


raw = session.session.declare_subscriber(cmd_key, on_command)
print("ready", flush=True)
time.sleep(args.seconds)

nodes, endpoints = set(), []
for reply in session.liveliness.get("@ros2_lv/**", timeout=1.0):
    if reply.ok is None:
        continue
    key = str(reply.ok.key_expr)
    parts = key.split("/")
    if len(parts) >= 9 and parts[5] == "NN":
        nodes.add(parts[8])
    e = _parse_liveliness_keyexpr(key)
    if e is not None:
        endpoints.append({k: e[k] for k in ("kind", "node_name", "qualified_name", "dds_type", "type_hash")})
print(json.dumps({
    "command_key": cmd_key,
    "commands": commands,
    "observations": observations,
    "nodes": sorted(nodes),
    "endpoints": endpoints,
}), flush=True)
sys.stdout.flush()
os._exit(0)  # Zenoh's threads can hold the interpreter at exit
