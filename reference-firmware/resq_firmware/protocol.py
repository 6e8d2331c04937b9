"""The resq firmware-bridge wire protocol, version 2 (firmware-bridge/PROTOCOL.md).

Pure Python, no I/O: CRC-32C, COBS, message layouts, a streaming decoder with the receiver
checks of PROTOCOL.md section 5, the layout hash of section 6 and the serial-number
comparison of section 8.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

PROTOCOL_VERSION = 2

MAX_SIGNALS = 64
MAX_COMMANDS = 32
MAX_NAME_LEN = 32

# Message type bytes (section 4).
HELLO = 0x01
REJECT = 0x02
NAME = 0x03
SENSOR = 0x10
COMMAND = 0x11
RESET = 0x12
HEARTBEAT = 0x20
FAULT = 0x30
CLEAR_ESTOP = 0x31
TYPE_NAMES = {
    HELLO: "Hello",
    REJECT: "Reject",
    NAME: "Name",
    SENSOR: "Sensor",
    COMMAND: "Command",
    RESET: "Reset",
    HEARTBEAT: "Heartbeat",
    FAULT: "Fault",
    CLEAR_ESTOP: "ClearEstop",
}

HELLO_BODY_LEN = 18
REJECT_BODY_LEN = 9
SENSOR_HEADER_LEN = 14
COMMAND_HEADER_LEN = 9
NAME_HEADER_LEN = 4
RESET_BODY_LEN = 8
HEARTBEAT_BODY_LEN = 12
FAULT_BODY_LEN = 10
CRC_LEN = 4
MIN_PAYLOAD = 1 + CRC_LEN

MAX_BODY = max(
    HELLO_BODY_LEN,
    REJECT_BODY_LEN,
    SENSOR_HEADER_LEN + 4 * MAX_SIGNALS,
    COMMAND_HEADER_LEN + 4 * MAX_COMMANDS,
    NAME_HEADER_LEN + MAX_NAME_LEN,
    RESET_BODY_LEN,
    HEARTBEAT_BODY_LEN,
    FAULT_BODY_LEN,
)
MAX_PAYLOAD = 1 + MAX_BODY + CRC_LEN  # 275


def cobs_max_encoded_len(n: int) -> int:
    return n + n // 254 + 1


MAX_FRAME = cobs_max_encoded_len(MAX_PAYLOAD) + 1  # 278

# Roles, modes (Hello).
ROLE_HOST = 0
ROLE_FIRMWARE = 1
MODE_LOCKSTEP = 0
MODE_REALTIME = 1
MODE_NAMES = {MODE_LOCKSTEP: "lock-step", MODE_REALTIME: "real-time"}

# Reject reasons.
REASON_VERSION = 1
REASON_LAYOUT_HASH = 2
REASON_COUNTS = 3
REASON_MODE = 4
REASON_BUSY = 5
REASON_NAMES = {1: "version", 2: "layout hash", 3: "counts", 4: "mode", 5: "busy"}

# Name kinds.
KIND_SIGNAL = 0
KIND_COMMAND = 1

# Sensor flags.
TERMINATED = 0x01
TRUNCATED = 0x02
RESET_FLAG = 0x04
ESTOP = 0x08
COMMAND_TIMEOUT = 0x10
WAITING = 0x20
SUCCESS = 0x40
LATE_COMMAND = 0x80
FLAG_NAMES = [
    (TERMINATED, "TERMINATED"),
    (TRUNCATED, "TRUNCATED"),
    (RESET_FLAG, "RESET"),
    (ESTOP, "ESTOP"),
    (COMMAND_TIMEOUT, "COMMAND_TIMEOUT"),
    (WAITING, "WAITING"),
    (SUCCESS, "SUCCESS"),
    (LATE_COMMAND, "LATE_COMMAND"),
]

# Fault codes.
FAULT_ESTOP = 1
FAULT_COMMAND_TIMEOUT = 2
FAULT_PLANT = 3
FAULT_PROTOCOL = 4
FAULT_NAMES = {1: "e-stop", 2: "command timeout", 3: "plant fault", 4: "protocol error"}

# Timing (section 10), microseconds.
HELLO_RETRY_US = 200_000
HEARTBEAT_IDLE_US = 100_000
LINK_TIMEOUT_US = 500_000
RETRY_US = 100_000
MAX_RETRIES = 5
PROTOCOL_FAULT_INTERVAL_US = 100_000
WAITING_INTERVAL_US = 100_000


def counts(n_signals, n_commands) -> str:
    """'4 signals, 1 command'."""
    def one(n, word):
        return f"{n} {word}" + ("" if n == 1 else "s")
    return f"{one(n_signals, 'signal')}, {one(n_commands, 'command')}"


def flags_str(flags: int) -> str:
    names = [n for bit, n in FLAG_NAMES if flags & bit]
    if flags & 0x80:
        names.append("bit7")
    return "|".join(names) if names else "-"


# --------------------------------------------------------------------------------------------
# CRC-32C (section 3)

def _make_table() -> List[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli). ``crc32c(b"123456789") == 0xE3069283``."""
    c = crc ^ 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def layout_hash(signals: Sequence[str], commands: Sequence[str]) -> int:
    """Section 6: CRC-32C of ``sig 00 sig 00 ... 01 cmd 00 cmd 00 ...``."""
    return crc32c(layout_bytes(signals, commands))


def layout_bytes(signals: Sequence[str], commands: Sequence[str]) -> bytes:
    out = bytearray()
    for s in signals:
        b = s.encode("utf-8")
        if 0 in b:
            raise ValueError(f"name {s!r} contains a NUL byte")
        out += b + b"\x00"
    out.append(0x01)
    for c in commands:
        b = c.encode("utf-8")
        if 0 in b:
            raise ValueError(f"name {c!r} contains a NUL byte")
        out += b + b"\x00"
    return bytes(out)


# --------------------------------------------------------------------------------------------
# COBS (section 2)

def cobs_encode(data: bytes) -> bytes:
    """COBS-encodes ``data`` (no delimiter). Blocks of 254 data bytes get code 0xFF; no empty
    block is added after a final 0xFF block."""
    out = bytearray([0])
    code_idx = 0
    code = 1
    for b in data:
        if code == 0xFF:
            out[code_idx] = code
            code_idx = len(out)
            out.append(0)
            code = 1
        if b == 0:
            out[code_idx] = code
            code_idx = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
    out[code_idx] = code
    return bytes(out)


class CobsError(ValueError):
    pass


def cobs_decode(enc: bytes) -> bytes:
    """Decodes one COBS-encoded frame (without its delimiter). Raises CobsError if empty, if it
    contains 0x00 or if a code byte promises more bytes than remain."""
    n = len(enc)
    if n == 0:
        raise CobsError("empty")
    out = bytearray()
    r = 0
    while r < n:
        code = enc[r]
        r += 1
        if code == 0:
            raise CobsError("zero byte")
        ln = code - 1
        if ln > n - r:
            raise CobsError("block runs past the end")
        block = enc[r:r + ln]
        if 0 in block:
            raise CobsError("zero byte")
        out += block
        r += ln
        if code != 0xFF and r < n:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Messages (section 4)

@dataclass
class Hello:
    version: int
    role: int
    mode: int
    period_us: int
    layout_hash: int
    n_signals: int
    n_actions: int
    boot_id: int
    TYPE = HELLO


@dataclass
class Reject:
    reason: int
    version: int
    layout_hash: int
    n_signals: int
    n_actions: int
    TYPE = REJECT


@dataclass
class Name:
    kind: int
    index: int
    count: int
    name: str
    TYPE = NAME


@dataclass
class Sensor:
    seq: int
    t_us: int
    flags: int
    values: List[float] = field(default_factory=list)
    TYPE = SENSOR


@dataclass
class Command:
    seq: int
    valid_for_us: int
    values: List[float] = field(default_factory=list)
    TYPE = COMMAND


@dataclass
class Reset:
    seed: int
    TYPE = RESET


@dataclass
class Heartbeat:
    seq: int
    t_us: int
    TYPE = HEARTBEAT


@dataclass
class Fault:
    code: int
    t_us: int
    TYPE = FAULT


@dataclass
class ClearEstop:
    TYPE = CLEAR_ESTOP


Message = Union[Hello, Reject, Name, Sensor, Command, Reset, Heartbeat, Fault, ClearEstop]


class EncodeError(ValueError):
    pass


def _f32(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def encode_body(msg: Message) -> bytes:
    t = msg.TYPE
    if t == HELLO:
        return struct.pack("<HBBIIBBI", msg.version, msg.role, msg.mode, msg.period_us,
                           msg.layout_hash, msg.n_signals, msg.n_actions, msg.boot_id)
    if t == REJECT:
        return struct.pack("<BHIBB", msg.reason, msg.version, msg.layout_hash, msg.n_signals,
                           msg.n_actions)
    if t == NAME:
        b = msg.name.encode("utf-8")
        if len(b) > MAX_NAME_LEN or 0 in b or not 0 <= msg.index < msg.count:
            raise EncodeError(f"bad Name {msg!r}")
        return struct.pack("<BBBB", msg.kind, msg.index, msg.count, len(b)) + b
    if t == SENSOR:
        if len(msg.values) > MAX_SIGNALS:
            raise EncodeError("too many signals")
        return struct.pack("<IQBB", msg.seq, msg.t_us, msg.flags, len(msg.values)) + _f32(msg.values)
    if t == COMMAND:
        if len(msg.values) > MAX_COMMANDS:
            raise EncodeError("too many commands")
        return struct.pack("<IIB", msg.seq, msg.valid_for_us, len(msg.values)) + _f32(msg.values)
    if t == RESET:
        return struct.pack("<Q", msg.seed)
    if t == HEARTBEAT:
        return struct.pack("<IQ", msg.seq, msg.t_us)
    if t == FAULT:
        return struct.pack("<HQ", msg.code, msg.t_us)
    if t == CLEAR_ESTOP:
        return b""
    raise EncodeError(f"unknown message {msg!r}")


def encode_payload(msg: Message) -> bytes:
    """type | body | CRC-32C (little-endian)."""
    data = bytes([msg.TYPE]) + encode_body(msg)
    return data + struct.pack("<I", crc32c(data))


def encode_frame(msg: Message) -> bytes:
    """COBS(payload) followed by the 0x00 delimiter."""
    return cobs_encode(encode_payload(msg)) + b"\x00"


# Error classes of section 5.
OVERSIZED = "oversized"
COBS = "cobs"
LENGTH = "length"
CRC = "crc"
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"
ERROR_CLASSES = (OVERSIZED, COBS, LENGTH, CRC, UNKNOWN_TYPE, BAD_FIELD)


class DecodeError(ValueError):
    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}{': ' + detail if detail else ''}")
        self.kind = kind


def _values(body: bytes, off: int, n: int) -> List[float]:
    vals = list(struct.unpack_from(f"<{n}f", body, off))
    for v in vals:
        if not math.isfinite(v):
            raise DecodeError(BAD_FIELD, "non-finite value")
    return vals


def decode_payload(payload: bytes) -> Message:
    """Checks 2-6 of section 5 on a COBS-decoded payload and parses it."""
    if len(payload) < MIN_PAYLOAD:
        raise DecodeError(LENGTH, "payload shorter than 5 bytes")
    data, crc = payload[:-CRC_LEN], payload[-CRC_LEN:]
    if crc32c(data) != struct.unpack("<I", crc)[0]:
        raise DecodeError(CRC)
    t, body = data[0], data[1:]
    bl = len(body)

    def fixed(n: int) -> None:
        if bl != n:
            raise DecodeError(LENGTH, f"{TYPE_NAMES[t]} body of {bl} bytes, not {n}")

    if t == HELLO:
        fixed(HELLO_BODY_LEN)
        h = Hello(*struct.unpack("<HBBIIBBI", body))
        if h.role not in (0, 1) or h.mode not in (0, 1):
            raise DecodeError(BAD_FIELD, "role or mode")
        return h
    if t == REJECT:
        fixed(REJECT_BODY_LEN)
        r = Reject(*struct.unpack("<BHIBB", body))
        if not 1 <= r.reason <= 5:
            raise DecodeError(BAD_FIELD, "reject reason")
        return r
    if t == NAME:
        if bl < NAME_HEADER_LEN:
            raise DecodeError(LENGTH, "Name body shorter than 4 bytes")
        kind, index, count, ln = body[0], body[1], body[2], body[3]
        # Section 5, check 5: kind and len ≤ 32 (else bad field), then exactly 4 + len bytes
        # (else length); check 6: index < count, the text.
        if kind not in (KIND_SIGNAL, KIND_COMMAND):
            raise DecodeError(BAD_FIELD, "Name kind")
        if ln > MAX_NAME_LEN:
            raise DecodeError(BAD_FIELD, "Name longer than 32 bytes")
        if bl != NAME_HEADER_LEN + ln:
            raise DecodeError(LENGTH, "Name body is not 4 + len bytes")
        raw = body[4:]
        if index >= count or 0 in raw:
            raise DecodeError(BAD_FIELD, "Name index or text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(BAD_FIELD, "Name is not UTF-8") from None
        return Name(kind, index, count, text)
    if t == SENSOR:
        if bl < SENSOR_HEADER_LEN:
            raise DecodeError(LENGTH, "Sensor body shorter than 14 bytes")
        seq, t_us, flags, n = struct.unpack_from("<IQBB", body)
        if n > MAX_SIGNALS:
            raise DecodeError(BAD_FIELD, f"Sensor n = {n} > {MAX_SIGNALS}")
        if bl != SENSOR_HEADER_LEN + 4 * n:
            raise DecodeError(LENGTH, "Sensor body is not 14 + 4n bytes")
        return Sensor(seq, t_us, flags, _values(body, SENSOR_HEADER_LEN, n))
    if t == COMMAND:
        if bl < COMMAND_HEADER_LEN:
            raise DecodeError(LENGTH, "Command body shorter than 9 bytes")
        seq, valid_for_us, n = struct.unpack_from("<IIB", body)
        if n > MAX_COMMANDS:
            raise DecodeError(BAD_FIELD, f"Command n = {n} > {MAX_COMMANDS}")
        if bl != COMMAND_HEADER_LEN + 4 * n:
            raise DecodeError(LENGTH, "Command body is not 9 + 4n bytes")
        return Command(seq, valid_for_us, _values(body, COMMAND_HEADER_LEN, n))
    if t == RESET:
        fixed(RESET_BODY_LEN)
        return Reset(*struct.unpack("<Q", body))
    if t == HEARTBEAT:
        fixed(HEARTBEAT_BODY_LEN)
        return Heartbeat(*struct.unpack("<IQ", body))
    if t == FAULT:
        fixed(FAULT_BODY_LEN)
        return Fault(*struct.unpack("<HQ", body))
    if t == CLEAR_ESTOP:
        fixed(0)
        return ClearEstop()
    raise DecodeError(UNKNOWN_TYPE, f"type 0x{t:02X}")


def decode_frame(frame: bytes) -> Message:
    """Decodes one frame (COBS bytes, with or without the trailing 0x00)."""
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    if len(frame) > MAX_FRAME - 1:
        raise DecodeError(OVERSIZED)
    try:
        payload = cobs_decode(frame)
    except CobsError as e:
        raise DecodeError(COBS, str(e)) from None
    return decode_payload(payload)


class Decoder:
    """Streaming receiver (sections 2 and 5): push bytes, get ``(message, error)`` results, one
    per non-empty frame. Empty frames are ignored; more than MAX_FRAME − 1 bytes without a 0x00
    are discarded up to the next 0x00, where one *oversized* error is counted."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.discarding = False
        self.stats: Dict[str, int] = {"frames": 0, **{k: 0 for k in ERROR_CLASSES}}

    def reset(self) -> None:
        self.buf.clear()
        self.discarding = False

    def push(self, data: bytes) -> List[Tuple[Optional[Message], Optional[DecodeError]]]:
        results: List[Tuple[Optional[Message], Optional[DecodeError]]] = []
        start = 0
        n = len(data)
        while start < n:
            z = data.find(b"\x00", start)
            chunk = data[start:] if z < 0 else data[start:z]
            if not self.discarding:
                self.buf += chunk
                if len(self.buf) > MAX_FRAME - 1:
                    self.discarding = True
                    self.buf.clear()
            if z < 0:
                break
            start = z + 1
            if self.discarding:
                self.discarding = False
                self.stats[OVERSIZED] += 1
                results.append((None, DecodeError(OVERSIZED)))
                continue
            if not self.buf:
                continue
            frame = bytes(self.buf)
            self.buf.clear()
            try:
                msg = decode_frame(frame)
            except DecodeError as e:
                self.stats[e.kind] += 1
                results.append((None, e))
            else:
                self.stats["frames"] += 1
                results.append((msg, None))
        return results

    def rejected(self) -> int:
        return sum(self.stats[k] for k in ERROR_CLASSES)


# --------------------------------------------------------------------------------------------
# Sequence numbers (section 8)

def seq_after(a: int, b: int) -> bool:
    """True iff ``a`` is after ``b``: 0 < (a − b) mod 2³² < 2³¹."""
    d = (a - b) & 0xFFFFFFFF
    return 0 < d < 0x80000000


def describe(msg: Message) -> str:
    """One-line description for logs."""
    t = msg.TYPE
    if t == SENSOR:
        return (f"Sensor seq={msg.seq} t_us={msg.t_us} flags={flags_str(msg.flags)} "
                f"n={len(msg.values)}")
    if t == COMMAND:
        vals = ", ".join(f"{v:.4g}" for v in msg.values[:8])
        more = ", …" if len(msg.values) > 8 else ""
        return f"Command seq={msg.seq} valid_for_us={msg.valid_for_us} values=[{vals}{more}]"
    if t == HELLO:
        return (f"Hello v{msg.version} role={'firmware' if msg.role else 'host'} "
                f"mode={MODE_NAMES.get(msg.mode)} period_us={msg.period_us} "
                f"hash=0x{msg.layout_hash:08X} n_signals={msg.n_signals} n_actions={msg.n_actions} "
                f"boot_id=0x{msg.boot_id:08X}")
    if t == REJECT:
        return (f"Reject reason={REASON_NAMES.get(msg.reason)} v{msg.version} "
                f"hash=0x{msg.layout_hash:08X} n_signals={msg.n_signals} n_actions={msg.n_actions}")
    if t == FAULT:
        return f"Fault {FAULT_NAMES.get(msg.code, f'code {msg.code}')} t_us={msg.t_us}"
    return repr(msg)
