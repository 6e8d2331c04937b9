"""The firmware state machine of PROTOCOL.md sections 7-10, free of I/O.

Bytes come in through :meth:`Firmware.on_bytes`, time is passed in (microseconds of the
firmware's monotonic clock, which starts at boot), frames go out through the ``emit`` callback.
The loop in :mod:`resq_firmware.cli` drives it from a pty or a serial port.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import protocol as p
from .plant import GymPlant, PlantFault

# Episode states.
NO_EPISODE = "none"        # after a handshake, after link loss: no Sensors, safe action
WAITING = "waiting"        # --operator-reset: waiting for the operator (WAITING Sensors)
RUNNING = "running"        # an episode is live
ENDED = "ended"            # the episode's last Sensor (TERMINATED/TRUNCATED) was sent

NAMES_WAIT_US = 300_000    # print an incomplete set of the peer's Names after this long


def round_trips(us: Sequence[int]) -> str:
    """The sensor-to-command round trips (real time), as `round_trip_ms(n, p50, p99, max)`."""
    r = sorted(us)
    q = lambda f: r[min(len(r) - 1, int(f * len(r)))] / 1000.0
    return f"round_trip_ms(n={len(r)}, p50={q(0.5):.2f}, p99={q(0.99):.2f}, max={r[-1] / 1000.0:.2f})"


def _log_default(msg: str) -> None:
    print(f"resq-firmware: {msg}", file=sys.stderr, flush=True)


class Firmware:
    def __init__(
        self,
        plant: GymPlant,
        emit: Callable[[bytes], None],
        modes: Sequence[int] = (p.MODE_LOCKSTEP, p.MODE_REALTIME),
        period_us: int = 20_000,
        any_period: bool = False,
        operator_reset: bool = False,
        operator_reset_after_us: Optional[int] = None,
        log: Callable[[str], None] = _log_default,
        verbose: bool = False,
        boot_id: Optional[int] = None,
    ) -> None:
        self.plant = plant
        self._emit = emit
        self.modes = tuple(modes)
        self.default_period_us = int(period_us)
        self.any_period = any_period
        self.operator_reset = operator_reset
        self.operator_reset_after_us = operator_reset_after_us
        self.log = log
        self.verbose = verbose
        self.n_signals = len(plant.signal_names)
        self.n_actions = len(plant.command_names)
        self.layout_hash = plant.layout_hash
        if boot_id is None:
            boot_id = struct.unpack("<I", os.urandom(4))[0] or 1
        self.boot_id = boot_id
        self.decoder = p.Decoder()

        # Session.
        self.session = False
        self.mode = self.modes[0]
        self.period_us = 0
        # Episode.
        self.state = NO_EPISODE
        self.next_seq = 0                       # seq of the next new Sensor (0 at boot)
        self.last_sensor: Optional[p.Sensor] = None   # last Sensor sent in this session
        self.last_sensor_frame = b""
        self.episode_seed: Optional[int] = None
        self.first_seq = 0
        self.commanded = False                  # a Command was applied in this episode
        # Real-time.
        self.next_tick_us = 0
        self.cmd_values: Optional[List[float]] = None   # command in force
        self.cmd_expiry_us = 0
        self.last_accepted_seq: Optional[int] = None
        self.timeout_active = False
        self.timeout_since_sensor = False
        # Operator reset.
        self.wait_seed = 0
        self.next_waiting_us = 0
        self.operator_deadline_us: Optional[int] = None
        # Safety.
        self.estop_latched = False
        self.estop_pressed = False
        self.plant_fault = False
        # Liveness.
        self.last_rx_us = 0
        self.last_tx_us = -p.HEARTBEAT_IDLE_US
        self.hb_seq = struct.unpack("<I", os.urandom(4))[0]
        self.last_proto_fault_us: Optional[int] = None
        # Names of the peer (after a Reject for layout hash or counts).
        self.peer_expect: Optional[Tuple[int, int, int]] = None   # hash, n_signals, n_actions
        self.peer_names: Dict[int, Dict[int, str]] = {0: {}, 1: {}}
        self.peer_counts: Dict[int, int] = {}
        self.names_deadline_us: Optional[int] = None
        self.names_printed: Optional[tuple] = None
        self.names_sent_us: Optional[int] = None

        self.round_trips_us: List[int] = []
        self.stats: Dict[str, int] = {
            k: 0 for k in (
                "handshakes", "rejects_sent", "rejects_received", "resets", "steps",
                "sensors_sent", "sensors_resent", "waiting_sensors", "commands_applied",
                "commands_ignored", "commands_wrong_n", "command_timeouts", "link_timeouts",
                "protocol_faults_sent", "plant_faults", "heartbeats_sent", "unexpected_frames",
                "faults_received", "realtime_overruns", "late_steps")
        }

    # ------------------------------------------------------------------------------------------
    # Output

    def send(self, msg: p.Message, now_us: int) -> None:
        frame = p.encode_frame(msg)
        self._emit(frame)
        self.last_tx_us = now_us
        if self.verbose:
            self.log(f"tx {p.describe(msg)}")

    def _send_frame(self, frame: bytes, now_us: int, what: str) -> None:
        self._emit(frame)
        self.last_tx_us = now_us
        if self.verbose:
            self.log(f"tx {what}")

    def hello(self) -> p.Hello:
        return p.Hello(p.PROTOCOL_VERSION, p.ROLE_FIRMWARE, self.mode,
                       self.period_us if self.mode == p.MODE_REALTIME else 0,
                       self.layout_hash, self.n_signals, self.n_actions, self.boot_id)

    def _reject(self, reason: int, now_us: int) -> None:
        self.send(p.Reject(reason, p.PROTOCOL_VERSION, self.layout_hash, self.n_signals,
                           self.n_actions), now_us)
        self.stats["rejects_sent"] += 1
        if reason in (p.REASON_LAYOUT_HASH, p.REASON_COUNTS):
            self._send_names(now_us)

    def _send_names(self, now_us: int) -> None:
        for kind, names in ((p.KIND_SIGNAL, self.plant.signal_names),
                            (p.KIND_COMMAND, self.plant.command_names)):
            for i, n in enumerate(names):
                self.send(p.Name(kind, i, len(names), n), now_us)
        self.names_sent_us = now_us

    def _fault(self, code: int, now_us: int) -> None:
        self.send(p.Fault(code, now_us), now_us)

    def _protocol_fault(self, now_us: int, why: str) -> None:
        if (self.last_proto_fault_us is None
                or now_us - self.last_proto_fault_us >= p.PROTOCOL_FAULT_INTERVAL_US):
            self.last_proto_fault_us = now_us
            self.stats["protocol_faults_sent"] += 1
            self.log(f"protocol error ({why}): sending Fault{{4}}")
            self._fault(p.FAULT_PROTOCOL, now_us)
        elif self.verbose:
            self.log(f"protocol error ({why}); Fault{{4}} rate-limited")

    def _new_sensor(self, flags: int, values: Sequence[float], now_us: int) -> p.Sensor:
        if self.estop_latched:
            flags |= p.ESTOP
        s = p.Sensor(self.next_seq, now_us, flags, list(values))
        self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF
        frame = p.encode_frame(s)
        self.last_sensor = s
        self.last_sensor_frame = frame
        self._send_frame(frame, now_us, p.describe(s))
        self.stats["sensors_sent"] += 1
        return s

    def _resend_last_sensor(self, now_us: int) -> None:
        if self.last_sensor is not None:
            self.stats["sensors_resent"] += 1
            self._send_frame(self.last_sensor_frame, now_us,
                             "(again) " + p.describe(self.last_sensor))

    # ------------------------------------------------------------------------------------------
    # Events from the driver loop

    def link_up(self, now_us: int) -> None:
        """The host opened the port (a pty's slave was opened): flush its receiver."""
        self._emit(b"\x00")

    def link_down(self, now_us: int, why: str = "host closed the port") -> None:
        """The host is gone (pty hang-up, device vanished)."""
        self.decoder.reset()
        if self.session:
            self.log(f"link lost ({why}): safe action, session ended")
            self._end_session()

    def press_estop(self, now_us: int) -> None:
        """A momentary e-stop press: latches until ClearEstop."""
        self.log("e-stop pressed: latched, safe action applied")
        self.estop_latched = True
        self.estop_pressed = False
        self.cmd_values = None
        self.timeout_active = False
        self._fault(p.FAULT_ESTOP, now_us)

    def operator_done(self, now_us: int) -> None:
        """The operator has reset the robot (Enter on stdin)."""
        if self.state != WAITING:
            self.log("operator input ignored: not waiting for an operator reset")
            return
        self.log("operator reset done")
        self._start_episode(self.wait_seed, now_us)

    # ------------------------------------------------------------------------------------------
    # Receiving

    def on_bytes(self, data: bytes, now_us: int) -> None:
        for msg, err in self.decoder.push(data):
            if err is not None:
                if self.verbose:
                    self.log(f"rx rejected frame: {err}")
                continue
            self.last_rx_us = now_us
            if self.verbose:
                self.log(f"rx {p.describe(msg)}")
            self.on_message(msg, now_us)

    def on_message(self, msg: p.Message, now_us: int) -> None:
        t = msg.TYPE
        if t == p.HELLO:
            self._on_hello(msg, now_us)
        elif t == p.REJECT:
            self._on_reject(msg, now_us)
        elif t == p.NAME:
            self._on_name(msg, now_us)
        elif t == p.HEARTBEAT:
            pass
        elif t == p.FAULT:
            self.stats["faults_received"] += 1
            self.log(f"host reports {p.FAULT_NAMES.get(msg.code, f'fault code {msg.code}')}")
        elif t in (p.COMMAND, p.RESET):
            if not self.session:
                self._protocol_fault(now_us, f"{p.TYPE_NAMES[t]} outside a session")
            elif t == p.RESET:
                self._on_reset(msg, now_us)
            else:
                self._on_command(msg, now_us)
        elif t == p.CLEAR_ESTOP:
            if self.session:
                self._on_clear_estop(now_us)
            else:
                self.stats["unexpected_frames"] += 1
        else:  # Sensor: never sent to the firmware
            self.stats["unexpected_frames"] += 1

    def _on_hello(self, h: p.Hello, now_us: int) -> None:
        if h.role != p.ROLE_HOST:
            self.stats["unexpected_frames"] += 1   # an echo of our own Hello
            return
        reason = None
        period = 0
        if h.version != p.PROTOCOL_VERSION:
            reason = p.REASON_VERSION
        elif h.n_signals != self.n_signals or h.n_actions != self.n_actions:
            reason = p.REASON_COUNTS
        elif h.layout_hash != self.layout_hash:
            reason = p.REASON_LAYOUT_HASH
        elif h.mode not in self.modes:
            reason = p.REASON_MODE
        elif h.mode == p.MODE_REALTIME:
            if h.period_us == 0 or h.period_us == self.default_period_us:
                period = self.default_period_us
            elif self.any_period and 1_000 <= h.period_us <= 10_000_000:
                period = h.period_us
            else:
                reason = p.REASON_MODE
        if reason is not None:
            self.log(f"rejecting the host's Hello ({p.REASON_NAMES[reason]}): host has "
                     f"v{h.version}, {p.MODE_NAMES.get(h.mode)} period_us={h.period_us}, "
                     f"0x{h.layout_hash:08X} ({p.counts(h.n_signals, h.n_actions)}); "
                     f"firmware has v{p.PROTOCOL_VERSION}, "
                     f"{'/'.join(p.MODE_NAMES[m] for m in self.modes)}, 0x{self.layout_hash:08X} "
                     f"({p.counts(self.n_signals, self.n_actions)})")
            if self.session:
                self._end_session()
            if reason in (p.REASON_LAYOUT_HASH, p.REASON_COUNTS):
                self._expect_peer_names(h.layout_hash, h.n_signals, h.n_actions, now_us)
            self._reject(reason, now_us)
            return
        self.stats["handshakes"] += 1
        if self.session:
            self.log("new handshake: the running session ends")
        self._end_session()
        self.session = True
        self.peer_expect = None          # Names are expected only after a Reject
        self.names_deadline_us = None
        self.mode = h.mode
        self.period_us = period
        self.last_rx_us = now_us
        self.send(self.hello(), now_us)
        self.log(f"session started: {p.MODE_NAMES[self.mode]}"
                 + (f", period {self.period_us} us" if self.mode == p.MODE_REALTIME else ""))

    def _end_session(self) -> None:
        """End any episode and the session: safe action, forget the last Command."""
        self.session = False
        self.state = NO_EPISODE
        self.last_sensor = None
        self.last_sensor_frame = b""
        self.episode_seed = None
        self.cmd_values = None
        self.last_accepted_seq = None
        self.timeout_active = False
        self.timeout_since_sensor = False
        self.operator_deadline_us = None

    def _on_reject(self, r: p.Reject, now_us: int) -> None:
        self.stats["rejects_received"] += 1
        self.log(f"the host rejected our Hello ({p.REASON_NAMES.get(r.reason)}): host has "
                 f"v{r.version}, 0x{r.layout_hash:08X} ({p.counts(r.n_signals, r.n_actions)})")
        if self.session:
            self.log("session ended by the host's Reject")
            self._end_session()
        if r.reason in (p.REASON_LAYOUT_HASH, p.REASON_COUNTS):
            self._expect_peer_names(r.layout_hash, r.n_signals, r.n_actions, now_us)
            # Answer with our own Names, once (not again if we have just sent them).
            if self.names_sent_us is None or now_us - self.names_sent_us >= p.RETRY_US:
                self._send_names(now_us)

    # ------------------------------------------------------------------------------------------
    # Names of the peer, to print the differences

    def _expect_peer_names(self, peer_hash: int, n_sig: int, n_cmd: int, now_us: int) -> None:
        key = (peer_hash, n_sig, n_cmd)
        if self.peer_expect != key:
            self.peer_names = {0: {}, 1: {}}
        self.peer_expect = key
        self.peer_counts = {0: n_sig, 1: n_cmd}
        self.names_deadline_us = now_us + NAMES_WAIT_US

    def _on_name(self, n: p.Name, now_us: int) -> None:
        if self.peer_expect is None:
            self.stats["unexpected_frames"] += 1
            return
        if self.peer_counts.get(n.kind) != n.count:
            self.peer_counts[n.kind] = n.count
            self.peer_names[n.kind] = {}
        self.peer_names[n.kind][n.index] = n.name
        self.names_deadline_us = now_us + NAMES_WAIT_US
        if all(len(self.peer_names[k]) >= self.peer_counts.get(k, 0) for k in (0, 1)):
            self._print_name_diff(complete=True)

    def _print_name_diff(self, complete: bool) -> None:
        self.names_deadline_us = None
        key = (self.peer_expect, tuple(sorted(self.peer_names[0].items())),
               tuple(sorted(self.peer_names[1].items())))
        if key == self.names_printed:
            return
        self.names_printed = key
        peer_hash = self.peer_expect[0] if self.peer_expect else 0
        lines = [f"layout differs: firmware 0x{self.layout_hash:08X} "
                 f"({p.counts(self.n_signals, self.n_actions)}), host 0x{peer_hash:08X} "
                 f"({p.counts(self.peer_counts.get(0, 0), self.peer_counts.get(1, 0))})"
                 + ("" if complete else " [some host Names did not arrive]")]
        ndiff = 0
        for kind, mine, label in ((0, self.plant.signal_names, "signal"),
                                  (1, self.plant.command_names, "command")):
            theirs = self.peer_names[kind]
            count = max(len(mine), self.peer_counts.get(kind, 0))
            for i in range(count):
                a = mine[i] if i < len(mine) else None
                if i < self.peer_counts.get(kind, 0):
                    b = theirs.get(i, "?")
                else:
                    b = None
                if a != b:
                    ndiff += 1
                    fa = "(none)" if a is None else repr(a)
                    fb = "(none)" if b is None else ("(not received)" if b == "?" and i not in theirs
                                                    else repr(b))
                    lines.append(f"  {label} {i}: firmware {fa}, host {fb}")
        if ndiff == 0:
            lines.append("  (every name is the same)")
        self.log("\n".join(lines))

    # ------------------------------------------------------------------------------------------
    # Episodes

    def _on_reset(self, r: p.Reset, now_us: int) -> None:
        seed = r.seed
        # Lock-step idempotent retransmission: same seed, no Command applied yet.
        if (self.mode == p.MODE_LOCKSTEP and self.state == RUNNING and self.episode_seed == seed
                and not self.commanded and self.last_sensor is not None):
            self._resend_last_sensor(now_us)
            return
        self.stats["resets"] += 1
        self.cmd_values = None
        self.last_accepted_seq = None
        self.timeout_active = False
        self.timeout_since_sensor = False
        if self.operator_reset:
            first = self.state != WAITING
            self.wait_seed = seed
            self.episode_seed = None
            if first:
                self.log("Reset: waiting for the operator to reset the robot"
                         + ("" if self.operator_reset_after_us is not None
                            else " (press Enter when done)"))
                self.state = WAITING
                if self.operator_reset_after_us is not None:
                    self.operator_deadline_us = now_us + self.operator_reset_after_us
            self._new_sensor(p.WAITING, self.plant.last_values, now_us)
            self.stats["waiting_sensors"] += 1
            self.next_waiting_us = now_us + p.WAITING_INTERVAL_US
            return
        self._start_episode(seed, now_us)

    def _start_episode(self, seed: int, now_us: int) -> None:
        self.operator_deadline_us = None
        try:
            values = self.plant.reset(seed)
        except PlantFault as e:
            self.stats["plant_faults"] += 1
            self.plant_fault = True
            self.state = NO_EPISODE
            self.episode_seed = None
            self.log(f"plant fault at reset: {e}; answering with Fault{{3}}")
            self._fault(p.FAULT_PLANT, now_us)
            return
        self.plant_fault = False
        self.state = RUNNING
        self.episode_seed = seed
        self.commanded = False
        self.cmd_values = None
        self.last_accepted_seq = None
        self.timeout_active = False
        self.timeout_since_sensor = False
        s = self._new_sensor(p.RESET_FLAG, values, now_us)
        self.first_seq = s.seq
        self.next_tick_us = now_us + self.period_us

    def _step(self, values: Optional[Sequence[float]], extra_flags: int, now_us: int) -> None:
        """One control step, then the Sensor (the episode's last one if it ended)."""
        self.stats["steps"] += 1
        if values is not None and not self.estop_latched:
            self.stats["commands_applied"] += 1
            cmd = values
        else:
            cmd = None
        try:
            res = self.plant.step(cmd)
        except PlantFault as e:
            self.stats["plant_faults"] += 1
            self.plant_fault = True
            self.log(f"plant fault: {e}; episode truncated")
            self._fault(p.FAULT_PLANT, now_us)
            self._new_sensor(extra_flags | p.TRUNCATED, self.plant.last_values, now_us)
            self.state = ENDED
            return
        flags = extra_flags
        if res.terminated:
            flags |= p.TERMINATED
        if res.truncated:
            flags |= p.TRUNCATED
        if (res.terminated or res.truncated) and res.success:
            flags |= p.SUCCESS
        self._new_sensor(flags, res.values, now_us)
        if res.terminated or res.truncated:
            self.state = ENDED
            self.cmd_values = None
            if self.verbose:
                self.log(f"episode ended ({p.flags_str(flags)})")

    def _on_command(self, c: p.Command, now_us: int) -> None:
        if len(c.values) != self.n_actions:
            self.stats["commands_wrong_n"] += 1
            self._protocol_fault(now_us, f"Command with {len(c.values)} values, the layout has "
                                         f"{self.n_actions}")
            return
        last = self.last_sensor.seq if self.last_sensor is not None else None
        if self.mode == p.MODE_LOCKSTEP:
            if self.state == RUNNING and last is not None and c.seq == last:
                self.commanded = True
                self._step(c.values, 0, now_us)
            elif (last is not None and self.state in (RUNNING, ENDED)
                  and c.seq == ((last - 1) & 0xFFFFFFFF)):
                # Our answer was lost: send it again (also after the episode's last Sensor).
                self._resend_last_sensor(now_us)
            else:
                self.stats["commands_ignored"] += 1
            return
        # Real-time (section 8.2).
        if (self.state != RUNNING or last is None or p.seq_after(c.seq, last)
                or p.seq_after(self.first_seq, c.seq)
                or (self.last_accepted_seq is not None
                    and not p.seq_after(c.seq, self.last_accepted_seq))):
            self.stats["commands_ignored"] += 1
            return
        self.last_accepted_seq = c.seq
        if c.seq == last and self.last_sensor is not None:
            # Sensor sent to the Command that answers it: the host's round trip, link included.
            self.round_trips_us.append(now_us - self.last_sensor.t_us)
        self.commanded = True
        if self.estop_latched:
            return      # commands are not applied while the e-stop is latched
        self.cmd_values = list(c.values)
        self.cmd_expiry_us = now_us + c.valid_for_us
        if self.timeout_active:
            self.log("command timeout over: a new Command was accepted")
        self.timeout_active = False

    def _on_clear_estop(self, now_us: int) -> None:
        if not self.estop_latched:
            return
        if self.estop_pressed:
            self.log("ClearEstop: the e-stop is still pressed; latch kept")
            self._fault(p.FAULT_ESTOP, now_us)
            return
        self.log("ClearEstop: e-stop latch cleared")
        self.estop_latched = False
        self.cmd_values = None

    # ------------------------------------------------------------------------------------------
    # Time

    def _check_expiry(self, now_us: int) -> None:
        if self.cmd_values is not None and now_us >= self.cmd_expiry_us:
            self.cmd_values = None
            self.timeout_active = True
            self.timeout_since_sensor = True
            self.stats["command_timeouts"] += 1
            if self.verbose:
                self.log("command expired: safe action, Fault{2}")
            self._fault(p.FAULT_COMMAND_TIMEOUT, now_us)

    def poll(self, now_us: int) -> None:
        if self.session and now_us - self.last_rx_us > p.LINK_TIMEOUT_US:
            self.stats["link_timeouts"] += 1
            self.log("link lost (nothing received for 500 ms): safe action, session ended")
            self._end_session()
        if self.session and self.mode == p.MODE_REALTIME and self.state == RUNNING:
            self._check_expiry(now_us)
            if now_us >= self.next_tick_us:
                flags = 0
                if self.timeout_active or self.timeout_since_sensor:
                    flags |= p.COMMAND_TIMEOUT
                self.timeout_since_sensor = False
                # The step runs on the answer to the Sensor just before it, or it is late.
                if self.last_sensor is None or self.last_accepted_seq != self.last_sensor.seq:
                    flags |= p.LATE_COMMAND
                    self.stats["late_steps"] += 1
                self._step(self.cmd_values, flags, now_us)
                self.next_tick_us += self.period_us
                if self.next_tick_us <= now_us:
                    self.stats["realtime_overruns"] += 1
                    self.next_tick_us = now_us + self.period_us
        if self.state == WAITING:
            if self.operator_deadline_us is not None and now_us >= self.operator_deadline_us:
                self.log("operator reset simulated (--operator-reset-after)")
                self._start_episode(self.wait_seed, now_us)
            elif now_us >= self.next_waiting_us:
                self._new_sensor(p.WAITING, self.plant.last_values, now_us)
                self.stats["waiting_sensors"] += 1
                self.next_waiting_us += p.WAITING_INTERVAL_US
                if self.next_waiting_us <= now_us:
                    self.next_waiting_us = now_us + p.WAITING_INTERVAL_US
        if self.names_deadline_us is not None and now_us >= self.names_deadline_us:
            if any(self.peer_names[k] for k in (0, 1)):
                self._print_name_diff(complete=False)
            self.names_deadline_us = None
        if now_us - self.last_tx_us >= p.HEARTBEAT_IDLE_US:
            self.hb_seq = (self.hb_seq + 1) & 0xFFFFFFFF
            self.stats["heartbeats_sent"] += 1
            self.send(p.Heartbeat(self.hb_seq, now_us), now_us)

    def next_deadline(self, now_us: int) -> int:
        """When :meth:`poll` has work to do next (µs)."""
        d = self.last_tx_us + p.HEARTBEAT_IDLE_US
        if self.session:
            d = min(d, self.last_rx_us + p.LINK_TIMEOUT_US + 1)
            if self.mode == p.MODE_REALTIME and self.state == RUNNING:
                d = min(d, self.next_tick_us)
                if self.cmd_values is not None:
                    d = min(d, self.cmd_expiry_us)
        if self.state == WAITING:
            d = min(d, self.next_waiting_us)
            if self.operator_deadline_us is not None:
                d = min(d, self.operator_deadline_us)
        if self.names_deadline_us is not None:
            d = min(d, self.names_deadline_us)
        return max(d, now_us)

    def stats_text(self) -> str:
        parts = [f"{k}={v}" for k, v in self.stats.items() if v]
        dec = self.decoder.stats
        parts.append(f"frames_received={dec['frames']}")
        errs = [f"{k}={dec[k]}" for k in p.ERROR_CLASSES if dec[k]]
        if errs:
            parts.append("rejected_frames(" + ", ".join(errs) + ")")
        if self.round_trips_us:
            parts.append(round_trips(self.round_trips_us))
        return ", ".join(parts)

