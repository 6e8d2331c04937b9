"""The rules PROTOCOL.md marks *Settled:*, checked on the reference firmware's state machine.

The firmware (:class:`resq_firmware.firmware.Firmware`) is I/O-free: these tests feed it frames
and times (firmware clock, µs) directly and read the frames it emits, with a small fake plant
instead of a gymnasium environment, so each rule is checked at its exact boundary. Run from the
repository root:

    python -m unittest discover -s reference-firmware/tests
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unittest
from typing import List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(PKG_ROOT)
PROTOCOL_MD = os.path.join(REPO, "firmware-bridge", "PROTOCOL.md")
sys.path.insert(0, PKG_ROOT)

from resq_firmware import protocol as p  # noqa: E402
from resq_firmware.firmware import Firmware  # noqa: E402
from resq_firmware.plant import LayoutError, PlantFault, StepResult, _check_names  # noqa: E402

SIGNALS = ["a", "b"]
COMMANDS = ["u"]
HASH = p.layout_hash(SIGNALS, COMMANDS)
PERIOD = 20_000


class FakePlant:
    """Two signals (the reset seed, the step count), one command. ``steps`` records what each
    step ran on (None: the safe action)."""

    signal_names = SIGNALS
    command_names = COMMANDS
    layout_hash = HASH

    def __init__(self) -> None:
        self.last_values: List[float] = [0.0, 0.0]
        self.steps: List[Optional[List[float]]] = []
        self.resets: List[int] = []
        self.fail_step = False
        self.fail_reset = False
        self.t = 0

    def reset(self, seed: int) -> List[float]:
        if self.fail_reset:
            raise PlantFault("driver error")
        self.resets.append(seed)
        self.t = 0
        self.last_values = [float(seed % 1000), 0.0]
        return list(self.last_values)

    def step(self, values: Optional[Sequence[float]]) -> StepResult:
        if self.fail_step:
            raise PlantFault("driver error")
        self.steps.append(None if values is None else list(values))
        self.t += 1
        self.last_values = [self.last_values[0], float(self.t)]
        return StepResult(list(self.last_values), False, False, False)


class Bench:
    """A firmware, its plant, and what it sent (heartbeats left out)."""

    def __init__(self, **kwargs) -> None:
        self.plant = FakePlant()
        self.raw: List[bytes] = []
        self.fw = Firmware(self.plant, self.raw.append, log=lambda _msg: None, boot_id=0x5EED,
                           **kwargs)
        self.dec = p.Decoder()

    def send(self, msg: p.Message, t: int) -> List[p.Message]:
        self.fw.on_bytes(p.encode_frame(msg), t)
        return self.take()

    def poll(self, t: int) -> List[p.Message]:
        self.fw.poll(t)
        return self.take()

    def take(self) -> List[p.Message]:
        out = []
        for frame in self.raw:
            for m, e in self.dec.push(frame):
                if e is not None:
                    raise AssertionError(f"the firmware sent a broken frame: {e}")
                if m.TYPE != p.HEARTBEAT:
                    out.append(m)
        self.raw.clear()
        return out

    def hello(self, mode: int, period_us: int, t: int) -> p.Message:
        (h,) = self.send(p.Hello(p.PROTOCOL_VERSION, p.ROLE_HOST, mode, period_us, HASH, 2, 1, 0), t)
        return h

    def one_sensor(self, msgs: List[p.Message]) -> p.Sensor:
        sensors = [m for m in msgs if m.TYPE == p.SENSOR]
        if len(sensors) != 1:
            raise AssertionError(f"expected one Sensor, got {msgs}")
        return sensors[0]


def faults(msgs: List[p.Message]) -> List[int]:
    return [m.code for m in msgs if m.TYPE == p.FAULT]


class SpecMarkers(unittest.TestCase):
    def test_every_settled_section_is_marked(self) -> None:
        with open(PROTOCOL_MD, encoding="utf-8") as f:
            text = f.read()
        sections = {}
        current = None
        for line in text.splitlines():
            heading = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
            if heading:                               # "## 8. …", "### 8.1 …" ("### 0x01 …" is in 4)
                current = heading.group(1)
            elif "*Settled:*" in line and current is not None:
                sections[current] = sections.get(current, 0) + 1
        for sec in ("4", "6", "7", "8", "8.1", "8.2", "9", "10"):
            self.assertIn(sec, sections, f"PROTOCOL.md section {sec} has no *Settled:* rule")


class Section4LockStepPeriod(unittest.TestCase):
    def test_a_lock_step_hello_with_a_period_is_granted_with_period_0(self) -> None:
        b = Bench()
        h = b.hello(p.MODE_LOCKSTEP, 20_000, 0)
        self.assertIsInstance(h, p.Hello)
        self.assertEqual((h.role, h.mode, h.period_us), (p.ROLE_FIRMWARE, p.MODE_LOCKSTEP, 0))
        s = b.one_sensor(b.send(p.Reset(1), 1_000))
        self.assertEqual(s.flags, p.RESET_FLAG)


class Section6Names(unittest.TestCase):
    def test_empty_and_duplicate_names_are_refused(self) -> None:
        for names in ([""], ["x", "x"], ["a", "", "b"]):
            with self.subTest(names=names), self.assertRaises(LayoutError):
                _check_names(names, "signal")
        _check_names(["x", "y"], "signal")          # distinct, non-empty: fine

    def test_the_firmware_does_not_start_with_such_a_layout(self) -> None:
        import gymnasium  # noqa: F401  (fail loudly if missing)

        env = dict(os.environ)
        env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        for signals, says in (("x,x,theta,omega", "not unique"), ("x,,theta,omega", "empty")):
            with self.subTest(signals=signals):
                r = subprocess.run([sys.executable, "-m", "resq_firmware", "--env", "CartPole-v1",
                                    "--signals", signals, "--print-layout"],
                                   capture_output=True, text=True, env=env, timeout=120)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(says, r.stderr)

    def test_an_empty_name_frame_is_valid(self) -> None:
        n = p.Name(p.KIND_SIGNAL, 0, 1, "")
        self.assertEqual(p.decode_frame(p.encode_frame(n)), n)


class Section7GrantedPeriod(unittest.TestCase):
    def test_the_grant_is_the_request_or_the_firmwares_own(self) -> None:
        # The host refuses a grant that differs from a non-zero request: the firmware grants
        # exactly what was asked, its own period for a request of 0, or refuses (reason 4).
        b = Bench(period_us=PERIOD, any_period=True)
        self.assertEqual(b.hello(p.MODE_REALTIME, 10_000, 0).period_us, 10_000)
        self.assertEqual(b.hello(p.MODE_REALTIME, 0, 1_000).period_us, PERIOD)
        b = Bench(period_us=PERIOD, any_period=False)
        r = b.hello(p.MODE_REALTIME, 10_000, 0)
        self.assertEqual((r.TYPE, r.reason), (p.REJECT, p.REASON_MODE))
        b = Bench(modes=(p.MODE_REALTIME,), period_us=PERIOD)
        r = b.hello(p.MODE_LOCKSTEP, 0, 0)
        self.assertEqual((r.TYPE, r.reason), (p.REJECT, p.REASON_MODE))


class Section8OperatorReset(unittest.TestCase):
    def _wait_and_lose_the_reset_sensor(self, mode: int) -> Bench:
        b = Bench(operator_reset=True, operator_reset_after_us=300_000, period_us=PERIOD)
        b.hello(mode, 0, 0)
        w = b.one_sensor(b.send(p.Reset(9), 1_000))
        self.assertEqual(w.flags, p.WAITING)
        # A Command during the wait (answering a WAITING Sensor) is ignored.
        self.assertEqual(b.send(p.Command(w.seq, 40_000, [1.0]), 2_000), [])
        got: List[p.Message] = []
        for t in range(51_000, 301_000 + 1, 50_000):
            b.send(p.Heartbeat(t, t), t)              # the host heartbeats while it waits
            got += b.poll(t)
        waiting = [m for m in got if m.TYPE == p.SENSOR and m.flags & p.WAITING]
        resets = [m for m in got if m.TYPE == p.SENSOR and m.flags & p.RESET_FLAG]
        self.assertGreaterEqual(len(waiting), 2)
        self.assertEqual(len(resets), 1)              # ... and this one is lost on the way
        self.assertEqual(b.plant.steps, [])
        self.assertEqual(b.plant.resets, [9])
        b.lost = resets[0]
        return b

    def test_lock_step_a_resent_reset_gets_the_same_reset_sensor(self) -> None:
        b = self._wait_and_lose_the_reset_sensor(p.MODE_LOCKSTEP)
        # No WAITING Sensor for LINK_TIMEOUT_US: the host resends its Reset (same seed).
        t = 301_000 + p.LINK_TIMEOUT_US
        for hb in range(351_000, t, 100_000):
            b.send(p.Heartbeat(hb, hb), hb)
            self.assertEqual([m for m in b.poll(hb) if m.TYPE == p.SENSOR], [])
        again = b.send(p.Reset(9), t)
        self.assertEqual(again, [b.lost])             # unchanged, no second wait
        self.assertEqual(b.plant.resets, [9])
        s = b.one_sensor(b.send(p.Command(b.lost.seq, 0, [1.0]), t + 1_000))
        self.assertEqual(s.seq, b.lost.seq + 1)

    def test_real_time_a_resent_reset_waits_for_the_operator_again(self) -> None:
        b = self._wait_and_lose_the_reset_sensor(p.MODE_REALTIME)
        w = b.one_sensor(b.send(p.Reset(9), 320_000))
        self.assertEqual(w.flags & (p.WAITING | p.RESET_FLAG), p.WAITING)


class Section81AfterTheResetSensor(unittest.TestCase):
    def test_seq_last_minus_one_right_after_the_reset_sensor(self) -> None:
        b = Bench()
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        s0 = b.one_sensor(b.send(p.Reset(5), 1_000))
        self.assertEqual(s0.seq, 0)                   # the first Sensor after boot
        s1 = b.one_sensor(b.send(p.Command(s0.seq, 0, [1.0]), 2_000))
        r = b.one_sensor(b.send(p.Reset(6), 3_000))   # a new episode before the last one ended
        self.assertEqual((r.seq, r.flags), (s1.seq + 1, p.RESET_FLAG))
        # seq == last − 1 answers the previous episode's Sensor: the RESET Sensor again, no step.
        self.assertEqual(b.send(p.Command(r.seq - 1, 0, [1.0]), 4_000), [r])
        self.assertEqual(len(b.plant.steps), 1)
        # Not the episode's first Command: a resent Reset still re-sends the RESET Sensor.
        self.assertEqual(b.send(p.Reset(6), 5_000), [r])
        self.assertEqual(b.plant.resets, [5, 6])
        s = b.one_sensor(b.send(p.Command(r.seq, 0, [1.0]), 6_000))
        self.assertEqual(s.seq, r.seq + 1)

    def test_wrapping_last_minus_one(self) -> None:
        b = Bench()
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        r = b.one_sensor(b.send(p.Reset(5), 1_000))
        self.assertEqual(r.seq, 0)
        self.assertEqual(b.send(p.Command(0xFFFFFFFF, 0, [1.0]), 2_000), [r])


class Section82Expiry(unittest.TestCase):
    def _episode(self, valid_for_us: int, receipt: int = 2_000):
        b = Bench(modes=(p.MODE_REALTIME,), period_us=PERIOD)
        self.assertEqual(b.hello(p.MODE_REALTIME, 0, 0).period_us, PERIOD)
        r = b.one_sensor(b.send(p.Reset(1), 1_000))   # steps due at 21 000, 41 000, ...
        out = b.send(p.Command(r.seq, valid_for_us, [1.0]), receipt)
        out += b.poll(receipt)
        return b, r, out

    def test_valid_for_0_expires_on_receipt(self) -> None:
        b, r, out = self._episode(0)
        self.assertEqual(faults(out), [p.FAULT_COMMAND_TIMEOUT])
        s = b.one_sensor(b.poll(21_000))
        self.assertEqual(b.plant.steps, [None])       # never applied
        self.assertTrue(s.flags & p.COMMAND_TIMEOUT)
        self.assertFalse(s.flags & p.LATE_COMMAND)    # it was accepted: applied == last
        # It was accepted: a copy is stale, not a new command.
        b.send(p.Command(r.seq, 40_000, [1.0]), 22_000)
        b.poll(41_000)
        self.assertEqual(b.plant.steps, [None, None])

    def test_a_step_at_receipt_plus_valid_for_runs_on_the_safe_action(self) -> None:
        b, _, out = self._episode(19_000)             # expires at 21 000, the step's time
        self.assertEqual(faults(out), [])
        out = b.poll(21_000)
        self.assertEqual(b.plant.steps, [None])
        self.assertEqual(faults(out), [p.FAULT_COMMAND_TIMEOUT])

    def test_a_step_before_receipt_plus_valid_for_runs_on_the_command(self) -> None:
        b, _, _ = self._episode(19_001)
        out = b.poll(21_000)
        self.assertEqual(b.plant.steps, [[1.0]])
        self.assertEqual(faults(out), [])


class Section82Overrun(unittest.TestCase):
    def test_a_late_step_runs_once_and_missed_due_times_are_skipped(self) -> None:
        b = Bench(modes=(p.MODE_REALTIME,), period_us=PERIOD)
        b.hello(p.MODE_REALTIME, 0, 0)
        r = b.one_sensor(b.send(p.Reset(1), 0))       # due: 20 000, 40 000, ...
        s1 = b.one_sensor(b.poll(20_000))
        # Late by 3.5 periods: one step, not four.
        s2 = b.one_sensor(b.poll(90_000))
        self.assertEqual((s1.seq, s2.seq), (r.seq + 1, r.seq + 2))
        self.assertEqual(s2.t_us, 90_000)
        self.assertEqual(b.fw.stats["realtime_overruns"], 1)
        # A whole period was missed: the next step is due one period after the late one.
        self.assertEqual(b.poll(109_999), [])
        self.assertEqual(b.one_sensor(b.poll(110_000)).seq, r.seq + 3)
        # Late by less than a period: the schedule is kept (due 130 000, then 150 000).
        self.assertEqual(b.one_sensor(b.poll(145_000)).seq, r.seq + 4)
        self.assertEqual(b.poll(149_999), [])
        self.assertEqual(b.one_sensor(b.poll(150_000)).seq, r.seq + 5)
        self.assertEqual(b.fw.stats["realtime_overruns"], 1)
        self.assertEqual(len(b.plant.steps), 5)


class Section9PlantFault(unittest.TestCase):
    def test_lock_step_the_truncated_sensor_answers_the_command(self) -> None:
        b = Bench()
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        r = b.one_sensor(b.send(p.Reset(3), 1_000))
        s1 = b.one_sensor(b.send(p.Command(r.seq, 0, [1.0]), 2_000))
        b.plant.fail_step = True
        out = b.send(p.Command(s1.seq, 0, [1.0]), 3_000)
        self.assertEqual(faults(out), [p.FAULT_PLANT])
        end = b.one_sensor(out)
        self.assertEqual(end.seq, s1.seq + 1)
        self.assertEqual(end.flags & (p.TRUNCATED | p.TERMINATED), p.TRUNCATED)
        self.assertEqual(end.values, s1.values)       # the last finite readings
        # A duplicate of that Command re-sends it; one for the ended episode is ignored.
        self.assertEqual(b.send(p.Command(s1.seq, 0, [1.0]), 4_000), [end])
        self.assertEqual(b.send(p.Command(end.seq, 0, [1.0]), 5_000), [])
        # While the fault persists, Reset gets Fault{3}, every time.
        b.plant.fail_reset = True
        for t in (6_000, 106_000):
            self.assertEqual([m.TYPE for m in b.send(p.Reset(4), t)], [p.FAULT])
        # Cleared: the next Reset is answered with a RESET Sensor.
        b.plant.fail_reset = False
        b.plant.fail_step = False
        s = b.one_sensor(b.send(p.Reset(4), 206_000))
        self.assertEqual(s.flags, p.RESET_FLAG)

    def test_real_time_the_truncated_sensor_replaces_the_step(self) -> None:
        b = Bench(modes=(p.MODE_REALTIME,), period_us=PERIOD)
        b.hello(p.MODE_REALTIME, 0, 0)
        r = b.one_sensor(b.send(p.Reset(3), 0))
        b.plant.fail_step = True
        out = b.poll(20_000)
        self.assertEqual(faults(out), [p.FAULT_PLANT])
        end = b.one_sensor(out)
        self.assertEqual((end.seq, end.flags & p.TRUNCATED), (r.seq + 1, p.TRUNCATED))
        self.assertEqual([m for m in b.poll(40_000) + b.poll(60_000) if m.TYPE == p.SENSOR], [])


class Section9EStopLatch(unittest.TestCase):
    def test_the_latch_outlives_sessions_and_a_reset_starts_under_it(self) -> None:
        b = Bench()
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        b.one_sensor(b.send(p.Reset(1), 1_000))
        b.fw.press_estop(2_000)
        self.assertEqual(faults(b.take()), [p.FAULT_ESTOP])
        # The host goes away (closed port), a new one connects: the latch holds.
        b.fw.link_down(3_000)
        self.assertEqual(b.send(p.ClearEstop(), 3_500), [])   # outside a session: ignored
        b.hello(p.MODE_LOCKSTEP, 0, 4_000)
        s = b.one_sensor(b.send(p.Reset(2), 5_000))   # a Reset while latched: as usual
        self.assertEqual(s.flags, p.RESET_FLAG | p.ESTOP)
        s = b.one_sensor(b.send(p.Command(s.seq, 0, [1.0]), 6_000))
        self.assertTrue(s.flags & p.ESTOP)
        self.assertEqual(b.plant.steps, [None])       # the safe action
        # Only ClearEstop clears it.
        self.assertEqual(b.send(p.ClearEstop(), 7_000), [])
        s = b.one_sensor(b.send(p.Command(s.seq, 0, [1.0]), 8_000))
        self.assertFalse(s.flags & p.ESTOP)
        self.assertEqual(b.plant.steps, [None, [1.0]])

    def test_a_reboot_clears_it(self) -> None:
        b = Bench()                                   # a new boot: no latch
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        self.assertEqual(b.one_sensor(b.send(p.Reset(1), 1_000)).flags, p.RESET_FLAG)


class Section10HostDetection(unittest.TestCase):
    def test_only_a_hello_starts_a_session(self) -> None:
        b = Bench()
        b.fw.link_up(0)
        self.assertEqual(b.raw, [b"\x00"])            # a host attached: one 0x00, no session
        b.take()
        b.send(p.Heartbeat(1, 1), 1_000)
        self.assertEqual(faults(b.send(p.Reset(1), 2_000)), [p.FAULT_PROTOCOL])

    def test_a_closed_port_ends_the_session_at_once(self) -> None:
        b = Bench()
        b.hello(p.MODE_LOCKSTEP, 0, 0)
        r = b.one_sensor(b.send(p.Reset(1), 1_000))
        b.fw.link_down(2_000)                         # long before LINK_TIMEOUT_US
        b.fw.link_up(3_000)
        out = b.send(p.Command(r.seq, 0, [1.0]), 200_000)
        self.assertEqual(faults(out), [p.FAULT_PROTOCOL])
        self.assertEqual(b.plant.steps, [])


if __name__ == "__main__":
    unittest.main()
