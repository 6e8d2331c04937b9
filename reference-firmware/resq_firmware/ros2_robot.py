"""A gymnasium (MuJoCo) environment served as a ROS 2 robot over Zenoh, as rmw_zenoh speaks it.

The wire side is zenoh-ros2-sdk (a Python implementation of rmw_zenoh's conventions that resq's
authors did not write): its key expressions, RIHS01 type hashes (computed from the interface
definitions in ``ros2_interfaces/``), liveliness tokens, attachments and CDR (by ``rosbags``).
So a test that drives this robot from resq checks resq's side against a second implementation.

The robot, every step:

- publishes the observation as ``std_msgs/msg/Float64MultiArray`` on ``--observation``,
- then ``sensor_msgs/msg/JointState`` on ``--joint-states`` (the clock: published last, so a
  subscriber that ticks on it has the step's observation): the MuJoCo model's hinge and slide
  joints by name, with position, velocity and the actuator force on them as effort
  (no joints for an environment that is not MuJoCo's);
- takes its command from ``std_msgs/msg/Float64MultiArray`` on ``--commands`` (what
  ros2_control's forward_command_controller takes).

Episodes start when ``std_srvs/srv/Trigger`` ``--reset-service`` is called (the robot resets,
publishes its first state, then answers ``success``). The environment's own time limit is off
and its terminations are not acted on: the client decides when an episode ends, as on a robot.

Lock-step (the default): the robot steps when a command arrives. ``--rate HZ``: it steps on its
own clock, applying the newest command received within two periods, or ``--safe-command``.

``--faults JSON`` injects wire faults at given steps, for fault campaigns (see ``FAULTS``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

INTERFACES = Path(__file__).resolve().parent / "ros2_interfaces"

FAULTS = """faults, a JSON list of objects with "at" (the step) and "kind":
  pause_clock   {"seconds": S}: publish nothing for S seconds (the robot still steps in real time)
  drop_joint    {"joint": NAME, "steps": N}: leave NAME out of JointState for N steps
  wrong_type    publish a geometry_msgs/msg/Twist on the clock topic
  malformed     publish bytes that are not CDR on the clock topic's key
  estop         press the e-stop: --estop-topic says true from then on (false before)"""


def log(msg: str) -> None:
    print(f"resq-ros2-robot: {msg}", file=sys.stderr, flush=True)


def parse_router(router: str):
    """`tcp/127.0.0.1:7447` -> ("127.0.0.1", 7447)."""
    proto, _, addr = router.partition("/")
    host, _, port = addr.rpartition(":")
    if proto != "tcp" or not host or not port.isdigit():
        raise SystemExit(f"--router {router!r}: give a TCP endpoint, e.g. tcp/127.0.0.1:7447")
    return host.strip("[]"), int(port)


class Ros2Robot:
    def __init__(self, args: argparse.Namespace) -> None:
        import gymnasium as gym

        # Nodes stay on loopback unless told otherwise (rmw_zenoh listens on localhost:0 too).
        os.environ.setdefault("ZENOH_CONFIG_OVERRIDE", 'listen/endpoints=["tcp/127.0.0.1:0"]')
        from zenoh_ros2_sdk import (ROS2Publisher, ROS2ServiceServer, ROS2Subscriber, ZenohSession,
                                    get_registry)

        get_registry(messages_dir=str(INTERFACES))
        self.args = args
        host, port = parse_router(args.router)
        self.session = ZenohSession.get_instance(host, port)
        kwargs = json.loads(args.env_kwargs)
        self.env = gym.make(args.env, max_episode_steps=10**9, **kwargs)
        self.seed = args.seed
        self.safe = np.array([float(v) for v in args.safe_command.split(",")]) if args.safe_command else None
        self.low = np.asarray(self.env.action_space.low, dtype=np.float64).ravel()
        self.high = np.asarray(self.env.action_space.high, dtype=np.float64).ravel()
        if self.safe is None:
            self.safe = np.zeros_like(self.low)
        self.joints = self._mujoco_joints()
        common = dict(node_name=args.node, domain_id=args.domain, router_ip=host, router_port=port)
        self.pub_obs = ROS2Publisher(args.observation, "std_msgs/msg/Float64MultiArray", **common)
        self.pub_js = ROS2Publisher(args.joint_states, "sensor_msgs/msg/JointState", **common)
        self.pub_wrong = None
        self.pub_estop = ROS2Publisher(args.estop_topic, "std_msgs/msg/Bool", **common)
        self.estop = False
        self.after_estop: List[List[float]] = []
        self.events: "queue.Queue[tuple]" = queue.Queue()
        self.latest_cmd: Optional[tuple] = None
        self.sub_cmd = ROS2Subscriber(args.commands, "std_msgs/msg/Float64MultiArray", self._on_command, **common)
        self.srv = ROS2ServiceServer(args.reset_service, "std_srvs/srv/Trigger", callback=self._on_reset, **common)
        types = self.session.store.types
        self.Header = types["std_msgs/msg/Header"]
        self.Time = types["builtin_interfaces/msg/Time"]
        self.Layout = types["std_msgs/msg/MultiArrayLayout"]
        self.faults: List[Dict[str, Any]] = json.loads(args.faults) if args.faults else []
        self.steps = 0
        self.episodes = 0
        self.obs = None
        self.dropped_until = -1
        self.dropped_joint = None
        self.counts = {"commands": 0, "resets": 0, "published": 0, "safe_steps": 0}
        self.published_at: Optional[float] = None
        self.round_trips_us: List[int] = []

    # --- the environment --------------------------------------------------------------------

    def _mujoco_joints(self):
        u = self.env.unwrapped
        model = getattr(u, "model", None)
        if model is None:
            return []
        import mujoco

        joints = []
        for j in range(model.njnt):
            if int(model.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
                joints.append((name, int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])))
        return joints

    def reset_env(self) -> None:
        seed = self.seed if self.episodes == 0 else None
        obs, _ = self.env.reset(seed=seed)
        self.episodes += 1
        self.obs = np.asarray(obs, dtype=np.float64).ravel()

    def step_env(self, command) -> None:
        a = np.clip(np.asarray(command, dtype=np.float64), self.low, self.high)
        obs, _r, _term, _trunc, _info = self.env.step(a.astype(self.env.action_space.dtype))
        self.obs = np.asarray(obs, dtype=np.float64).ravel()
        self.steps += 1

    # --- the wire -----------------------------------------------------------------------------

    def _on_command(self, msg) -> None:
        self.counts["commands"] += 1
        now = time.monotonic()
        values = np.asarray(msg.data, dtype=np.float64)
        if self.estop:
            self.after_estop.append([float(v) for v in values])
        if self.published_at is not None:
            # The clock message to the first command after it: the client's round trip.
            self.round_trips_us.append(int((now - self.published_at) * 1e6))
            self.published_at = None
        self.latest_cmd = (now, values)
        self.events.put(("command", values))

    def _on_reset(self, _request):
        done = threading.Event()
        self.events.put(("reset", done))
        ok = done.wait(30.0)
        return self.srv.response_msg_class(success=ok, message="" if ok else "reset timed out")

    def publish_state(self) -> None:
        fault = self._fault_now()
        u = self.env.unwrapped
        data = getattr(u, "data", None)
        t = float(data.time) if data is not None else self.steps * 0.02
        stamp = self.Time(sec=int(t), nanosec=int((t - int(t)) * 1e9))
        names, pos, vel, eff = [], [], [], []
        for name, qa, da in self.joints:
            if name == self.dropped_joint and self.steps < self.dropped_until:
                continue
            names.append(name)
            pos.append(float(data.qpos[qa]))
            vel.append(float(data.qvel[da]))
            eff.append(float(data.qfrc_actuator[da]))
        self.pub_estop.publish(data=self.estop)
        self.pub_obs.publish(layout=self.Layout(dim=[], data_offset=0), data=self.obs.copy())
        if fault == "wrong_type":
            self._publish_wrong_type()
        elif fault == "malformed":
            self._publish_malformed()
        self.pub_js.publish(
            header=self.Header(stamp=stamp, frame_id=""),
            name=names,
            position=np.array(pos, dtype=np.float64),
            velocity=np.array(vel, dtype=np.float64),
            effort=np.array(eff, dtype=np.float64),
        )
        self.published_at = time.monotonic()
        self.counts["published"] += 1

    def _fault_now(self) -> Optional[str]:
        kind = None
        for f in self.faults:
            if f.get("at") == self.steps and not f.get("_done"):
                f["_done"] = True
                kind = f["kind"]
                log(f"fault at step {self.steps}: {kind}")
                if kind == "pause_clock":
                    time.sleep(float(f.get("seconds", 1.0)))
                elif kind == "estop":
                    self.estop = True
                elif kind == "drop_joint":
                    self.dropped_joint = f["joint"]
                    self.dropped_until = self.steps + int(f.get("steps", 1))
        return kind

    def _publish_wrong_type(self) -> None:
        from zenoh_ros2_sdk import ROS2Publisher

        if self.pub_wrong is None:
            host, port = parse_router(self.args.router)
            self.pub_wrong = ROS2Publisher(self.args.joint_states, "geometry_msgs/msg/Twist",
                                           node_name=self.args.node + "_wrong", domain_id=self.args.domain,
                                           router_ip=host, router_port=port)
        V = self.session.store.types["geometry_msgs/msg/Vector3"]
        self.pub_wrong.publish(linear=V(x=1.0, y=0.0, z=0.0), angular=V(x=0.0, y=0.0, z=0.0))

    def _publish_malformed(self) -> None:
        # The clock topic's own key, with a payload that is no JointState.
        self.session.session.put(self.pub_js.keyexpr, b"\x00\x01\x00\x00\xff\xff\xff\x7f")

    # --- the loops ------------------------------------------------------------------------------

    def handle_reset(self, done: threading.Event) -> None:
        self.reset_env()
        self.counts["resets"] += 1
        self.publish_state()
        done.set()

    def lock_step(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                kind, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "reset":
                self.handle_reset(payload)
            elif kind == "command" and self.obs is not None:
                self.step_env(payload[: len(self.low)])
                self.publish_state()

    def real_time(self, stop: threading.Event, rate: float) -> None:
        period = 1.0 / rate
        next_t = time.monotonic()
        while not stop.is_set():
            while True:
                try:
                    kind, payload = self.events.get_nowait()
                except queue.Empty:
                    break
                if kind == "reset":
                    self.handle_reset(payload)
                    next_t = time.monotonic()
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()
            if self.obs is None:
                continue
            c = self.latest_cmd
            if c is not None and time.monotonic() - c[0] <= 2 * period:
                self.step_env(c[1][: len(self.low)])
            else:
                self.counts["safe_steps"] += 1
                self.step_env(self.safe)
            self.publish_state()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="resq-ros2-robot",
        description="Serve a gymnasium (MuJoCo) environment as a ROS 2 robot over Zenoh (rmw_zenoh's wire format).",
        epilog=FAULTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--env", required=True, help="gymnasium environment id, e.g. Reacher-v5")
    ap.add_argument("--env-kwargs", default="{}", metavar="JSON")
    ap.add_argument("--router", default="tcp/127.0.0.1:7447", help="the Zenoh router (default tcp/127.0.0.1:7447)")
    ap.add_argument("--domain", type=int, default=0, help="ROS_DOMAIN_ID (default 0)")
    ap.add_argument("--node", default="sim_robot", help="the node's name (default sim_robot)")
    ap.add_argument("--joint-states", default="/joint_states", help="the clock topic (JointState)")
    ap.add_argument("--observation", default="/observation", help="the observation topic (Float64MultiArray)")
    ap.add_argument("--commands", default="/forward_effort_controller/commands",
                    help="the command topic (Float64MultiArray)")
    ap.add_argument("--reset-service", default="/reset", help="the episode reset service (std_srvs/srv/Trigger)")
    ap.add_argument("--estop-topic", default="/estop", help="the e-stop state (Bool), published every step")
    ap.add_argument("--rate", type=float, metavar="HZ", help="step on the robot's own clock at HZ (default: lock-step)")
    ap.add_argument("--safe-command", metavar="V1,V2,...", help="applied when no fresh command is there (default zeros)")
    ap.add_argument("--seed", type=int, help="seed of the first episode")
    ap.add_argument("--faults", metavar="JSON", help="wire faults to inject (below)")
    ap.add_argument("--ready", metavar="PATH", help="create PATH once the topics are served")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    robot = Ros2Robot(args)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    joints = ", ".join(n for n, _, _ in robot.joints) or "none"
    log(f"{args.env} as a ROS 2 robot via {args.router}: {args.joint_states} (joints: {joints}), "
        f"{args.observation} ({len(robot.low)} commands on {args.commands}), reset {args.reset_service}, "
        + (f"{args.rate} Hz" if args.rate else "lock-step"))
    if args.ready:
        Path(args.ready).write_text("ready\n")
    try:
        if args.rate:
            robot.real_time(stop, args.rate)
        else:
            robot.lock_step(stop)
    finally:
        from .firmware import round_trips

        trips = f", {round_trips(robot.round_trips_us)}" if robot.round_trips_us else ""
        log(f"stopped: {robot.counts}{trips}")
        if robot.estop:
            log(f"commands after the e-stop: {json.dumps(robot.after_estop)}")
    # Zenoh's threads can hold the interpreter at exit: leave at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
