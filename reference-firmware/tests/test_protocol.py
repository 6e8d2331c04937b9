"""Tests of the reference firmware against PROTOCOL.md.

Run from the repository root:

    python -m unittest discover -s reference-firmware/tests

The end-to-end tests start the firmware in a subprocess on a pseudo-terminal; they need
gymnasium (CartPole-v1, Pendulum-v1). Nothing is skipped silently: a missing dependency fails.
"""

from __future__ import annotations

import os
import random
import re
import select
import struct
import subprocess
import sys
import time
import tty
import unittest
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(PKG_ROOT)
PROTOCOL_MD = os.path.join(REPO, "firmware-bridge", "PROTOCOL.md")
sys.path.insert(0, PKG_ROOT)

from resq_firmware import protocol as p  # noqa: E402


# ----------------------------------------------------------------------------------------------
# PROTOCOL.md test vectors

def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def load_vectors(path: str = PROTOCOL_MD) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- vectors:begin -->(.*?)<!-- vectors:end -->", text, re.S)
    if not m:
        raise AssertionError("no <!-- vectors:begin --> ... <!-- vectors:end --> block in PROTOCOL.md")
    vectors: List[Dict[str, Any]] = []
    cur: Optional[Dict[str, Any]] = None
    key: Optional[str] = None
    for line in m.group(1).splitlines():
        if not line.strip() or line.strip().startswith("```"):
            key = None
            continue
        mv = re.match(r"^vector\s+(\S+)\s*$", line)
        if mv:
            cur = {"name": mv.group(1)}
            vectors.append(cur)
            key = None
            continue
        mk = re.match(r"^\s+(message|payload|crc|frame)\s+(.*)$", line)
        if mk and cur is not None:
            key = mk.group(1)
            cur[key] = mk.group(2).strip()
            continue
        if cur is not None and key in ("payload", "frame") and line.startswith(" "):
            cur[key] += " " + line.strip()       # hex continued on an indented line
            continue
        raise AssertionError(f"cannot parse vector line: {line!r}")
    for v in vectors:
        for k in ("message", "payload", "crc", "frame"):
            if k not in v:
                raise AssertionError(f"vector {v['name']} has no {k} line")
        v["payload_bytes"] = _hex(v["payload"])
        v["frame_bytes"] = _hex(v["frame"])
        v["crc_value"] = int(v["crc"], 16)
    return vectors


class RustDebug:
    """A small parser for Rust `Debug` output: `Name`, `Name(args)`, `Name { k: v }`, lists,
    numbers, strings, `true`/`false`."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, c: str) -> None:
        self.ws()
        if not self.s.startswith(c, self.i):
            raise ValueError(f"expected {c!r} at {self.i} in {self.s!r}")
        self.i += len(c)

    def value(self) -> Any:
        c = self.peek()
        if c == "[":
            self.expect("[")
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.expect(",")
            self.expect("]")
            return items
        if c == '"':
            m = re.compile(r'"((?:[^"\\]|\\.)*)"').match(self.s, self.i)
            self.i = m.end()
            return bytes(m.group(1), "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
        m = re.compile(r"-?(?:inf|NaN|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)").match(self.s, self.i)
        if m and (c.isdigit() or c == "-"):
            self.i = m.end()
            t = m.group(0)
            return float(t) if any(ch in t for ch in ".eEin") else int(t)
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*").match(self.s, self.i)
        if not m:
            raise ValueError(f"cannot parse at {self.i}: {self.s[self.i:]!r}")
        self.i = m.end()
        ident = m.group(0)
        if ident in ("true", "false"):
            return ident == "true"
        c = self.peek()
        if c == "(":
            self.expect("(")
            args = []
            while self.peek() != ")":
                args.append(self.value())
                if self.peek() == ",":
                    self.expect(",")
            self.expect(")")
            return (ident, args)
        if c == "{":
            self.expect("{")
            fields: Dict[str, Any] = {}
            while self.peek() != "}":
                m = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:").match(self.s, self.i)
                if not m:
                    raise ValueError(f"expected a field at {self.i} in {self.s!r}")
                self.i = m.end()
                fields[m.group(1)] = self.value()
                if self.peek() == ",":
                    self.expect(",")
            self.expect("}")
            return (ident, fields)
        return (ident, None)


def _enum(v: Any, table: Dict[str, int]) -> int:
    """`Host` → table['Host']; `Other(7)` → 7; a bare int stays."""
    if isinstance(v, int):
        return v
    name, args = v
    if name in table:
        return table[name]
    if args and isinstance(args, list) and isinstance(args[0], int):
        return args[0]
    raise ValueError(f"unknown enum value {v!r}")


def _flags(v: Any) -> int:
    if isinstance(v, int):
        return v
    name, args = v
    if name == "SensorFlags" and isinstance(args, list):
        return int(args[0])
    raise ValueError(f"cannot read flags {v!r}")


def _as_f32(x: Any) -> float:
    """A Debug-printed f32 (shortest round-trip form) as the f32 value it denotes."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def message_from_debug(s: str) -> Optional[p.Message]:
    """The message of a vector's `message` line, or None for a type this package lacks."""
    outer, args = RustDebug(s).value()
    if outer == "ClearEstop":
        return p.ClearEstop()
    if not args:
        return None
    inner = args[0]
    if not (isinstance(inner, tuple) and isinstance(inner[1], dict)):
        return None
    f = inner[1]
    roles = {"Host": 0, "Firmware": 1}
    modes = {"LockStep": 0, "RealTime": 1}
    reasons = {"Version": 1, "LayoutHash": 2, "Counts": 3, "Mode": 4, "Busy": 5}
    kinds = {"Signal": 0, "Command": 1}
    codes = {"EStop": 1, "CommandTimeout": 2, "Plant": 3, "Protocol": 4}
    if outer == "Hello":
        return p.Hello(f["version"], _enum(f["role"], roles), _enum(f["mode"], modes),
                       f["period_us"], f["layout_hash"], f["n_signals"], f["n_actions"],
                       f["boot_id"])
    if outer == "Reject":
        return p.Reject(_enum(f["reason"], reasons), f["version"], f["layout_hash"],
                        f["n_signals"], f["n_actions"])
    if outer == "Name":
        return p.Name(_enum(f["kind"], kinds), f["index"], f["count"], f["name"])
    if outer == "Sensor":
        return p.Sensor(f["seq"], f["t_us"], _flags(f["flags"]), [_as_f32(x) for x in f["values"]])
    if outer == "Command":
        return p.Command(f["seq"], f["valid_for_us"], [_as_f32(x) for x in f["values"]])
    if outer == "Reset":
        return p.Reset(f["seed"])
    if outer == "Heartbeat":
        return p.Heartbeat(f["seq"], f["t_us"])
    if outer == "Fault":
        return p.Fault(_enum(f["code"], codes), f["t_us"])
    return None


TYPE_BY_NAME = {v: k for k, v in p.TYPE_NAMES.items()}


class VectorTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.vectors = load_vectors()

    def test_there_are_vectors(self) -> None:
        self.assertGreaterEqual(len(self.vectors), 10)
        names = [v["name"] for v in self.vectors]
        self.assertEqual(len(names), len(set(names)), "duplicate vector names")
        types = {v["payload_bytes"][0] for v in self.vectors}
        self.assertEqual(types, set(p.TYPE_NAMES), "one vector per message type at least")

    def test_crc(self) -> None:
        self.assertEqual(p.crc32c(b"123456789"), 0xE3069283)
        for v in self.vectors:
            with self.subTest(v["name"]):
                pl = v["payload_bytes"]
                self.assertEqual(p.crc32c(pl[:-4]), v["crc_value"])
                self.assertEqual(struct.unpack("<I", pl[-4:])[0], v["crc_value"])

    def test_cobs_encode_and_decode(self) -> None:
        for v in self.vectors:
            with self.subTest(v["name"]):
                frame = v["frame_bytes"]
                self.assertEqual(frame[-1:], b"\x00")
                self.assertNotIn(0, frame[:-1])
                self.assertEqual(p.cobs_encode(v["payload_bytes"]) + b"\x00", frame)
                self.assertEqual(p.cobs_decode(frame[:-1]), v["payload_bytes"])
                self.assertLessEqual(len(frame), p.MAX_FRAME)

    def test_message_fields_reproduce_payload(self) -> None:
        for v in self.vectors:
            with self.subTest(v["name"]):
                outer = RustDebug(v["message"]).value()[0]
                self.assertIn(outer, TYPE_BY_NAME, f"unknown message type {outer}")
                self.assertEqual(v["payload_bytes"][0], TYPE_BY_NAME[outer])
                msg = message_from_debug(v["message"])
                self.assertIsNotNone(msg, f"cannot read the fields of {v['message']}")
                self.assertEqual(p.encode_payload(msg), v["payload_bytes"])
                self.assertEqual(p.encode_frame(msg), v["frame_bytes"])
                self.assertEqual(p.decode_frame(v["frame_bytes"]), msg)

    def test_hello_vectors_carry_this_version(self) -> None:
        hellos = [message_from_debug(v["message"]) for v in self.vectors
                  if v["message"].startswith("Hello(")]
        self.assertTrue(hellos)
        for h in hellos:
            self.assertEqual(h.version, p.PROTOCOL_VERSION)

    def test_single_bit_flips_are_rejected(self) -> None:
        for v in self.vectors:
            frame = v["frame_bytes"][:-1]
            for i in range(len(frame)):
                for bit in range(8):
                    bad = bytearray(frame)
                    bad[i] ^= 1 << bit
                    dec = p.Decoder()
                    out = dec.push(bytes(bad) + b"\x00")
                    msgs = [m for m, e in out if m is not None]
                    self.assertEqual(msgs, [], f"{v['name']}: flip of byte {i} bit {bit} accepted")

    def test_back_to_back_with_garbage(self) -> None:
        rng = random.Random(1234)
        for trial in range(20):
            stream = bytearray()
            expect = []
            for v in self.vectors:
                garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
                stream += garbage + b"\x00" + v["frame_bytes"]
                expect.append(p.decode_frame(v["frame_bytes"]))
            dec = p.Decoder()
            got = []
            # Feed in random chunks.
            i = 0
            while i < len(stream):
                n = rng.randrange(1, 64)
                got += [m for m, e in dec.push(bytes(stream[i:i + n])) if m is not None]
                i += n
            # Random garbage may itself decode as a valid frame only with probability ~2^-32.
            self.assertEqual(got, expect, f"trial {trial}")


class CodecTests(unittest.TestCase):
    def test_sizes(self) -> None:
        self.assertEqual(p.PROTOCOL_VERSION, 2)
        self.assertEqual(p.MAX_PAYLOAD, 275)
        self.assertEqual(p.MAX_FRAME, 278)

    def test_cobs_examples(self) -> None:
        cases = [(b"", "01"), (b"\x00", "01 01"), (_hex("11 22 00 33"), "03 11 22 02 33"),
                 (_hex("11 00 00 00"), "02 11 01 01 01")]
        for raw, enc in cases:
            self.assertEqual(p.cobs_encode(raw), _hex(enc))
            self.assertEqual(p.cobs_decode(_hex(enc)), raw)

    def test_cobs_long_runs(self) -> None:
        run = bytes(range(1, 255))                       # 254 non-zero bytes
        self.assertEqual(p.cobs_encode(run), b"\xff" + run)
        self.assertEqual(p.cobs_decode(b"\xff" + run), run)
        self.assertEqual(p.cobs_decode(b"\xff" + run + b"\x01"), run)   # trailing empty block
        self.assertEqual(p.cobs_encode(run + b"\x07"), b"\xff" + run + b"\x02\x07")
        self.assertEqual(p.cobs_encode(run + b"\x00"), b"\xff" + run + b"\x01\x01")
        rng = random.Random(7)
        for _ in range(500):
            n = rng.randrange(0, 800)
            data = bytes(rng.choice([0, rng.randrange(1, 256)]) if rng.random() < 0.05
                         else rng.randrange(1, 256) for _ in range(n))
            enc = p.cobs_encode(data)
            self.assertNotIn(0, enc)
            self.assertLessEqual(len(enc), p.cobs_max_encoded_len(n))
            self.assertEqual(p.cobs_decode(enc), data)
        for bad in (b"", b"\x03\x11", b"\x02\x00"):
            with self.assertRaises(p.CobsError):
                p.cobs_decode(bad)

    def test_layout_hash_cartpole(self) -> None:
        self.assertEqual(p.layout_hash(["x", "x_dot", "theta", "theta_dot"], ["force"]), 0xB3E3FB95)

    def test_64_signal_sensor_round_trip(self) -> None:
        # Values whose bytes are all non-zero: the payload holds a run of more than 254 non-zero
        # bytes, so the encoding needs a 0xFF block.
        values = [struct.unpack("<f", bytes([0x11 + i, 0x22, 0x33, 0x3F]))[0]
                  for i in range(p.MAX_SIGNALS)]
        s = p.Sensor(0x01020304, 0x0102030405060708, p.SUCCESS | p.TERMINATED | p.TRUNCATED,
                     values)
        frame = p.encode_frame(s)
        payload = p.encode_payload(s)
        self.assertEqual(len(payload), p.MAX_PAYLOAD)
        self.assertLessEqual(len(frame), p.MAX_FRAME)
        self.assertEqual(frame[0], 0xFF)                # a block of 254 data bytes
        self.assertEqual(len(frame), len(payload) + 2 + 1)
        dec = p.Decoder()
        out = dec.push(b"\x00" + frame)
        self.assertEqual(out, [(s, None)])
        c = p.Command(9, 40000, [float(i + 1) for i in range(p.MAX_COMMANDS)])
        self.assertEqual(p.decode_frame(p.encode_frame(c)), c)

    def _payload(self, t: int, body: bytes) -> bytes:
        data = bytes([t]) + body
        return p.cobs_encode(data + struct.pack("<I", p.crc32c(data))) + b"\x00"

    def _err(self, frame: bytes) -> str:
        dec = p.Decoder()
        (m, e), = dec.push(frame)
        self.assertIsNone(m)
        return e.kind

    def test_error_classes(self) -> None:
        # Sensor/Command: too short for n → length; n too large → bad field; wrong length → length.
        self.assertEqual(self._err(self._payload(p.SENSOR, bytes(13))), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.SENSOR, bytes(13) + bytes([65]))), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.SENSOR, bytes(13) + bytes([1]))), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.COMMAND, bytes(8))), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.COMMAND, bytes(8) + bytes([33]))), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.COMMAND, bytes(8) + bytes([1]) + bytes(3))),
                         p.LENGTH)
        nan = struct.pack("<f", float("nan"))
        self.assertEqual(self._err(self._payload(p.COMMAND, bytes(8) + bytes([1]) + nan)),
                         p.BAD_FIELD)
        # Name.
        ok = p.Name(0, 1, 2, "theta")
        self.assertEqual(p.decode_frame(p.encode_frame(ok)), ok)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 0, 1]))), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 0, 1, 3]) + b"ab")), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([2, 0, 1, 1]) + b"a")), p.BAD_FIELD)
        # Section 5, check 5: kind and len are checked before the body's length.
        self.assertEqual(self._err(self._payload(p.NAME, bytes([2, 0, 1, 3]) + b"a")), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 0, 1, 2]) + b"\xff\xfe")),
                         p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 1, 1, 1]) + b"a")), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 0, 1, 33]) + b"a" * 33)),
                         p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.NAME, bytes([0, 0, 1, 2]) + b"a\x00")),
                         p.BAD_FIELD)
        # Hello/Reject fields, unknown type, CRC, COBS.
        h = p.encode_body(p.Hello(2, 0, 0, 0, 1, 4, 1, 0))
        self.assertEqual(self._err(self._payload(p.HELLO, h[:2] + b"\x02" + h[3:])), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(p.HELLO, h[:17])), p.LENGTH)
        self.assertEqual(self._err(self._payload(p.REJECT, bytes([6]) + bytes(8))), p.BAD_FIELD)
        self.assertEqual(self._err(self._payload(0x7E, b"")), p.UNKNOWN_TYPE)
        self.assertEqual(self._err(b"\x02\x31\x00"), p.LENGTH)
        self.assertEqual(self._err(b"\x06\x31\xE3\x99\xF5\x91\x00"), p.CRC)
        self.assertEqual(self._err(b"\x07\x31\xE3\x99\xF5\x90\x00"), p.COBS)

    def test_oversized(self) -> None:
        dec = p.Decoder()
        ok = p.encode_frame(p.Reset(42))
        out = dec.push(b"\x05" * (p.MAX_FRAME - 1) + b"\x00" + ok)   # 277 bytes: not oversized
        self.assertEqual([e.kind if e else "ok" for m, e in out], [p.COBS, "ok"])
        out = dec.push(b"\x01" * p.MAX_FRAME + b"\x00" + ok)
        self.assertEqual([e.kind if e else "ok" for m, e in out], [p.OVERSIZED, "ok"])
        self.assertEqual(dec.push(b"\x00\x00"), [])                  # empty frames: nothing

    def test_seq_after(self) -> None:
        self.assertTrue(p.seq_after(1, 0))
        self.assertFalse(p.seq_after(0, 0))
        self.assertTrue(p.seq_after(0, 0xFFFFFFFF))
        self.assertFalse(p.seq_after(5, 0xFFFFFFFF - 5 + 0x80000000))


# ----------------------------------------------------------------------------------------------
# End to end: the firmware in a subprocess on a pty

class Host:
    """A minimal Python host: opens the firmware's pty, sends messages, reads frames."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.dec = p.Decoder()
        self.queue: List[Tuple[float, p.Message]] = []
        os.write(self.fd, b"\x00")

    def send(self, msg: p.Message) -> None:
        os.write(self.fd, p.encode_frame(msg))

    def _pump(self, timeout: float) -> None:
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if r:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return
            t = time.monotonic()
            for m, e in self.dec.push(data):
                if m is not None:
                    self.queue.append((t, m))

    def recv(self, types=None, timeout: float = 2.0, skip_heartbeats: bool = True):
        """Next message (of one of ``types``), with its arrival time; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            while self.queue:
                t, m = self.queue.pop(0)
                if skip_heartbeats and m.TYPE == p.HEARTBEAT:
                    continue
                if types is None or m.TYPE in types:
                    return t, m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._pump(left)

    def drain(self, seconds: float) -> List[p.Message]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(end - time.monotonic())
        out = [m for _, m in self.queue]
        self.queue.clear()
        return out

    def close(self) -> None:
        os.close(self.fd)


class FirmwareProcess:
    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resq_firmware", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self._readline(60.0)
        m = re.match(r"resq-firmware: serving (\S+) on (\S+)$", line.strip())
        if not m:
            self.stop()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.stderr}")
        self.path = m.group(2)
        self.stderr = ""

    def _readline(self, timeout: float) -> str:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            self.stop()
            raise AssertionError(f"firmware did not start; stderr: {self.stderr}")
        return self.proc.stdout.readline()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err or ""
        return self.proc.returncode


CARTPOLE_SIGNALS = ["obs0", "obs1", "obs2", "obs3"]
CARTPOLE_COMMANDS = ["action"]
CARTPOLE_HASH = p.layout_hash(CARTPOLE_SIGNALS, CARTPOLE_COMMANDS)


def host_hello(mode: int, period_us: int, layout_hash: int, n_sig: int, n_act: int) -> p.Hello:
    return p.Hello(p.PROTOCOL_VERSION, p.ROLE_HOST, mode, period_us, layout_hash, n_sig, n_act, 0)


class LockStepEndToEnd(unittest.TestCase):
    def lockstep_session(self, fw: "FirmwareProcess") -> Host:
        """A host on the firmware's port with a CartPole lock-step session handshaken."""
        host = Host(fw.path)
        host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 4, 1))
        self.assertIsInstance(host.recv({p.HELLO})[1], p.Hello)
        return host

    def test_cartpole_lockstep(self) -> None:
        import gymnasium  # noqa: F401  (fail loudly if missing)

        fw = FirmwareProcess("--env", "CartPole-v1", "--port", "pty", "--mode", "lockstep",
                             "--seed", "3")
        host = None
        try:
            host = Host(fw.path)
            # Before any handshake the firmware heartbeats.
            got = host.recv({p.HEARTBEAT}, timeout=1.0, skip_heartbeats=False)
            self.assertIsNotNone(got, "no Heartbeat before the handshake")
            # A Hello with the firmware role (an echo) is ignored.
            host.send(p.Hello(2, p.ROLE_FIRMWARE, 0, 0, CARTPOLE_HASH, 4, 1, 5))
            # A Reset outside a session: Fault{4}.
            host.send(p.Reset(1))
            _, f = host.recv({p.FAULT, p.HELLO, p.SENSOR})
            self.assertEqual((f.TYPE, f.code), (p.FAULT, p.FAULT_PROTOCOL))

            host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 4, 1))
            _, h = host.recv({p.HELLO, p.REJECT})
            self.assertIsInstance(h, p.Hello)
            self.assertEqual((h.version, h.role, h.mode, h.period_us, h.layout_hash, h.n_signals,
                              h.n_actions), (2, 1, 0, 0, CARTPOLE_HASH, 4, 1))
            self.assertNotEqual(h.boot_id, 0)

            # Reset → RESET Sensor; a resent Reset (same seed, no Command yet) → the same frame.
            host.send(p.Reset(7))
            _, s0 = host.recv({p.SENSOR})
            self.assertEqual(s0.flags, p.RESET_FLAG)
            self.assertEqual(len(s0.values), 4)
            host.send(p.Reset(7))
            _, s0b = host.recv({p.SENSOR})
            self.assertEqual(s0b, s0)
            # Same seed again after a different one → same initial state (seeded env.reset).
            host.send(p.Reset(8))
            _, s_other = host.recv({p.SENSOR})
            self.assertEqual(s_other.flags, p.RESET_FLAG)
            self.assertEqual(s_other.seq, (s0.seq + 1) & 0xFFFFFFFF)
            host.send(p.Reset(7))
            _, s1 = host.recv({p.SENSOR})
            self.assertEqual(s1.values, s0.values)
            self.assertEqual(s1.seq, (s_other.seq + 1) & 0xFFFFFFFF)

            last = s1
            ended = False
            for k in range(10):
                host.send(p.Command(last.seq, 0, [float(k % 2)]))
                _, s = host.recv({p.SENSOR})
                self.assertEqual(s.seq, (last.seq + 1) & 0xFFFFFFFF)
                self.assertEqual(s.flags & (p.RESET_FLAG | p.WAITING | p.ESTOP), 0)
                self.assertGreaterEqual(s.t_us, last.t_us)
                last = s
                if s.flags & (p.TERMINATED | p.TRUNCATED):
                    # No --success-info: SUCCESS = terminated.
                    self.assertEqual(bool(s.flags & p.SUCCESS), bool(s.flags & p.TERMINATED))
                    ended = True
                    break
            self.assertFalse(ended, "CartPole fell within 10 alternating steps")
            # A duplicate Command (seq = last − 1): the last Sensor again, unchanged.
            host.send(p.Command(last.seq - 1, 0, [1.0]))
            _, again = host.recv({p.SENSOR})
            self.assertEqual(again, last)
            # A stale Command: ignored (nothing comes back but heartbeats).
            host.send(p.Command(last.seq - 5, 0, [1.0]))
            self.assertIsNone(host.recv({p.SENSOR}, timeout=0.3))
            # Wrong number of values: Fault{4}.
            host.send(p.Command(last.seq, 0, [1.0, 0.0]))
            _, f = host.recv({p.FAULT, p.SENSOR})
            self.assertEqual((f.TYPE, f.code), (p.FAULT, p.FAULT_PROTOCOL))
            # Run the episode to its end: always push right until the pole falls.
            for _ in range(600):
                host.send(p.Command(last.seq, 0, [1.0]))
                _, s = host.recv({p.SENSOR})
                self.assertEqual(s.seq, (last.seq + 1) & 0xFFFFFFFF)
                last = s
                if s.flags & (p.TERMINATED | p.TRUNCATED):
                    break
            self.assertTrue(last.flags & p.TERMINATED)
            self.assertTrue(last.flags & p.SUCCESS)          # SUCCESS = terminated by default
            # Between episodes: Command for the last seq ignored, duplicate re-sends the last.
            host.send(p.Command(last.seq, 0, [1.0]))
            self.assertIsNone(host.recv({p.SENSOR}, timeout=0.3))
            host.send(p.Command(last.seq - 1, 0, [1.0]))
            _, again = host.recv({p.SENSOR})
            self.assertEqual(again, last)

            # Wrong layout hash: Reject(2) followed by 4 signal Names and 1 command Name.
            host.drain(0.05)
            host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH ^ 1, 4, 1))
            _, r = host.recv({p.REJECT, p.HELLO})
            self.assertIsInstance(r, p.Reject)
            self.assertEqual((r.reason, r.version, r.layout_hash, r.n_signals, r.n_actions),
                             (p.REASON_LAYOUT_HASH, 2, CARTPOLE_HASH, 4, 1))
            names = [host.recv({p.NAME}, timeout=1.0) for _ in range(5)]
            self.assertNotIn(None, names)
            names = [(m.kind, m.index, m.count, m.name) for _, m in names]
            self.assertEqual(names, [(0, 0, 4, "obs0"), (0, 1, 4, "obs1"), (0, 2, 4, "obs2"),
                                     (0, 3, 4, "obs3"), (1, 0, 1, "action")])
            # The host answers with its own Names; the firmware prints the differences.
            for i, n in enumerate(["x", "obs1", "obs2", "obs3"]):
                host.send(p.Name(0, i, 4, n))
            host.send(p.Name(1, 0, 1, "force"))
            # The session ended with the Reject: a Command is now a protocol error.
            host.send(p.Command(last.seq, 0, [1.0]))
            _, f = host.recv({p.FAULT, p.SENSOR})
            self.assertEqual((f.TYPE, f.code), (p.FAULT, p.FAULT_PROTOCOL))
            # Wrong counts: Reject(3) + Names; wrong version: Reject(1), no Names.
            host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 5, 1))
            _, r = host.recv({p.REJECT})
            self.assertEqual(r.reason, p.REASON_COUNTS)
            self.assertEqual(len([host.recv({p.NAME}, timeout=1.0) for _ in range(5)]), 5)
            bad_version = host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 4, 1)
            bad_version.version = 1
            host.send(bad_version)
            _, r = host.recv({p.REJECT})
            self.assertEqual(r.reason, p.REASON_VERSION)
            rest = host.drain(0.2)
            self.assertFalse([m for m in rest if m.TYPE == p.NAME])
        finally:
            if host is not None:
                host.close()
            rc = fw.stop()
        self.assertEqual(rc, 0, fw.stderr)
        self.assertIn("signal 0: firmware 'obs0', host 'x'", fw.stderr)
        self.assertIn("command 0: firmware 'action', host 'force'", fw.stderr)
        self.assertNotIn("signal 1:", fw.stderr)

    def test_estop_latch(self) -> None:
        import gymnasium  # noqa: F401
        import signal

        fw = FirmwareProcess("--env", "CartPole-v1", "--port", "pty", "--mode", "lockstep")
        host = None
        try:
            host = self.lockstep_session(fw)
            host.send(p.Reset(2))
            _, s = host.recv({p.SENSOR})
            os.kill(fw.proc.pid, signal.SIGUSR1)          # the e-stop button
            _, f = host.recv({p.FAULT})
            self.assertEqual(f.code, p.FAULT_ESTOP)
            for _ in range(2):                             # Commands still step (safe action)
                host.send(p.Command(s.seq, 0, [1.0]))
                _, s2 = host.recv({p.SENSOR})
                self.assertEqual(s2.seq, s.seq + 1)
                self.assertTrue(s2.flags & p.ESTOP)
                s = s2
            host.send(p.ClearEstop())
            host.send(p.Command(s.seq, 0, [1.0]))
            _, s2 = host.recv({p.SENSOR})
            self.assertEqual(s2.flags & p.ESTOP, 0)
        finally:
            if host is not None:
                host.close()
            rc = fw.stop()
        self.assertEqual(rc, 0, fw.stderr)

    def test_host_reconnects_and_operator_reset(self) -> None:
        import gymnasium  # noqa: F401

        fw = FirmwareProcess("--env", "CartPole-v1", "--port", "pty", "--operator-reset-after",
                             "0.35")
        try:
            # A first host handshakes and goes away; the firmware keeps serving.
            host = self.lockstep_session(fw)
            host.close()
            time.sleep(0.2)
            host = Host(fw.path)
            host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 4, 1))
            _, h = host.recv({p.HELLO})
            self.assertIsInstance(h, p.Hello)
            t0 = time.monotonic()
            host.send(p.Reset(11))
            waiting = []
            while True:
                got = host.recv({p.SENSOR}, timeout=2.0)
                self.assertIsNotNone(got, "no RESET Sensor after the operator reset")
                t, s = got
                # Keep the link alive while waiting (the host heartbeats).
                host.send(p.Heartbeat(len(waiting), int(t * 1e6)))
                if s.flags & p.WAITING:
                    waiting.append((t, s))
                    continue
                break
            self.assertEqual(s.flags, p.RESET_FLAG)
            self.assertGreaterEqual(len(waiting), 3)                 # at 0, 100, 200, 300 ms
            self.assertLess(waiting[0][0] - t0, 0.1)                 # answered at once
            seqs = [w.seq for _, w in waiting] + [s.seq]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
            gaps = [b[0] - a[0] for a, b in zip(waiting, waiting[1:])]
            self.assertTrue(all(0.05 < g < 0.2 for g in gaps), gaps)
            self.assertGreater(t - t0, 0.3)
            host.send(p.Command(s.seq, 0, [0.0]))
            _, s2 = host.recv({p.SENSOR})
            self.assertEqual(s2.seq, s.seq + 1)
            host.close()
        finally:
            rc = fw.stop()
        self.assertEqual(rc, 0, fw.stderr)
        self.assertIn("host attached", fw.stderr)

    def test_a_closed_pty_ends_the_session_at_once(self) -> None:
        # PROTOCOL.md section 10 (settled): a firmware that sees the host close the port ends
        # the session at once, not after LINK_TIMEOUT_US; a host that opens it again handshakes.
        import gymnasium  # noqa: F401

        fw = FirmwareProcess("--env", "CartPole-v1", "--port", "pty", "--mode", "lockstep")
        host = None
        try:
            host = self.lockstep_session(fw)
            host.send(p.Reset(3))
            _, s = host.recv({p.SENSOR})
            t_closed = time.monotonic()
            host.close()
            host = None
            time.sleep(0.1)
            host = Host(fw.path)
            host.send(p.Command(s.seq, 0, [1.0]))     # the old session's next Command
            _, m = host.recv({p.FAULT, p.SENSOR})
            self.assertEqual((m.TYPE, m.code), (p.FAULT, p.FAULT_PROTOCOL))
            self.assertLess(time.monotonic() - t_closed, p.LINK_TIMEOUT_US / 1e6)
            host.send(host_hello(p.MODE_LOCKSTEP, 0, CARTPOLE_HASH, 4, 1))
            self.assertIsInstance(host.recv({p.HELLO})[1], p.Hello)
        finally:
            if host is not None:
                host.close()
            rc = fw.stop()
        self.assertEqual(rc, 0, fw.stderr)
        self.assertIn("link lost (host closed the port)", fw.stderr)
        self.assertNotIn("nothing received for 500 ms", fw.stderr)


class RealTimeEndToEnd(unittest.TestCase):
    def test_pendulum_realtime_50hz(self) -> None:
        import gymnasium  # noqa: F401

        fw = FirmwareProcess("--env", "Pendulum-v1", "--port", "pty", "--mode", "realtime",
                             "--rate", "50", "--env-kwargs", '{"max_episode_steps": 80}',
                             "--signals", "cos,sin,omega", "--commands", "torque")
        names_hash = p.layout_hash(["cos", "sin", "omega"], ["torque"])
        host = None
        try:
            host = Host(fw.path)
            # A period the firmware cannot run (--rate given): Reject(4).
            host.send(host_hello(p.MODE_REALTIME, 10_000, names_hash, 3, 1))
            _, r = host.recv({p.REJECT, p.HELLO})
            self.assertEqual((r.TYPE, r.reason), (p.REJECT, p.REASON_MODE))
            # Lock-step is not offered with --mode realtime: Reject(4).
            host.send(host_hello(p.MODE_LOCKSTEP, 0, names_hash, 3, 1))
            _, r = host.recv({p.REJECT, p.HELLO})
            self.assertEqual((r.TYPE, r.reason), (p.REJECT, p.REASON_MODE))
            host.send(host_hello(p.MODE_REALTIME, 0, names_hash, 3, 1))
            _, h = host.recv({p.HELLO})
            self.assertEqual((h.mode, h.period_us), (p.MODE_REALTIME, 20_000))

            host.send(p.Reset(5))
            _, s = host.recv({p.SENSOR})
            self.assertEqual(s.flags, p.RESET_FLAG)
            first = s
            arrivals = [(time.monotonic(), s)]
            # Answer 25 Sensors with commands valid for two periods.
            for _ in range(25):
                host.send(p.Command(s.seq, 40_000, [0.5]))
                got = host.recv({p.SENSOR}, timeout=1.0)
                self.assertIsNotNone(got)
                t, s = got
                arrivals.append((t, s))
                self.assertEqual(s.flags & p.COMMAND_TIMEOUT, 0, s)
            seqs = [x.seq for _, x in arrivals]
            self.assertEqual(seqs, list(range(first.seq, first.seq + 26)))
            fw_period = (arrivals[-1][1].t_us - arrivals[0][1].t_us) / 25 / 1e6
            host_period = (arrivals[-1][0] - arrivals[0][0]) / 25
            self.assertTrue(0.017 < fw_period < 0.024, fw_period)
            self.assertTrue(0.015 < host_period < 0.030, host_period)
            # A stale or duplicate Command is ignored (no effect we can see, but no Fault either).
            host.send(p.Command(s.seq - 1, 40_000, [0.5]))
            # Stop commanding: one Fault{2}, then COMMAND_TIMEOUT on every Sensor.
            got_fault = None
            timeouts = []
            t_stop = time.monotonic()
            while time.monotonic() - t_stop < 0.4:
                got = host.recv({p.SENSOR, p.FAULT}, timeout=0.5)
                self.assertIsNotNone(got)
                _, m = got
                if m.TYPE == p.FAULT:
                    self.assertEqual(m.code, p.FAULT_COMMAND_TIMEOUT)
                    self.assertIsNone(got_fault, "more than one Fault{2}")
                    got_fault = m
                else:
                    timeouts.append(m)
                    host.send(p.Heartbeat(0, 0))
            self.assertIsNotNone(got_fault)
            self.assertTrue(all(x.flags & p.COMMAND_TIMEOUT for x in timeouts[2:]),
                            [p.flags_str(x.flags) for x in timeouts])
            # Unanswered, every step ran before its command: LATE_COMMAND on each.
            self.assertTrue(all(x.flags & p.LATE_COMMAND for x in timeouts),
                            [p.flags_str(x.flags) for x in timeouts])
            self.assertGreaterEqual(len(timeouts), 10)
            # A new Command ends the timeout condition.
            s = timeouts[-1]
            host.send(p.Command(s.seq, 60_000, [0.0]))
            later = []
            for _ in range(3):
                later.append(host.recv({p.SENSOR}, timeout=1.0)[1])
                host.send(p.Command(later[-1].seq, 60_000, [0.0]))
            self.assertEqual(later[-1].flags & p.COMMAND_TIMEOUT, 0)
            # The episode ends at the firmware's own limit (80 steps): TRUNCATED, not SUCCESS.
            end = None
            for _ in range(100):
                got = host.recv({p.SENSOR}, timeout=1.0)
                if got is None:
                    break
                m = got[1]
                host.send(p.Command(m.seq, 60_000, [0.0]))
                if m.flags & (p.TERMINATED | p.TRUNCATED):
                    end = m
                    break
            self.assertIsNotNone(end)
            self.assertEqual(end.flags & (p.TRUNCATED | p.TERMINATED | p.SUCCESS), p.TRUNCATED)
            self.assertEqual(end.seq, first.seq + 80)
            # After the episode: no more Sensors.
            rest = host.drain(0.15)
            self.assertFalse([m for m in rest if m.TYPE == p.SENSOR])
        finally:
            if host is not None:
                host.close()
            rc = fw.stop()
        self.assertEqual(rc, 0, fw.stderr)


if __name__ == "__main__":
    unittest.main()
