"""``resq-firmware``: serve a gymnasium environment as robot firmware over a serial link."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from typing import List, Optional

from . import __version__
from . import protocol as p

NO_HOST_POLL_S = 0.02


def _names(s: Optional[str]) -> Optional[List[str]]:
    if s is None:
        return None
    return [x.strip() for x in s.split(",")] if s.strip() else []


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="resq-firmware",
        description="Serve a gymnasium environment as robot firmware speaking the resq "
                    f"firmware-bridge protocol (version {p.PROTOCOL_VERSION}) over a serial port "
                    "or a pseudo-terminal.")
    ap.add_argument("--env", required=True, help="gymnasium environment id, e.g. MountainCar-v0")
    ap.add_argument("--env-kwargs", default="{}", metavar="JSON",
                    help="keyword arguments for gymnasium.make, as a JSON object, e.g. "
                         "'{\"max_episode_steps\": 500}'")
    ap.add_argument("--port", default="pty",
                    help="'pty' (default): create a pseudo-terminal and print its path; "
                         "otherwise a serial device such as /dev/ttyUSB0 (needs pyserial)")
    ap.add_argument("--link", metavar="PATH",
                    help="with --port pty: make PATH a symlink to the pty (replaced if it exists, "
                         "removed on exit)")
    ap.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    ap.add_argument("--mode", choices=("lockstep", "realtime", "any"), default="any",
                    help="modes the firmware grants (default any: whatever the host asks)")
    ap.add_argument("--rate", type=float, metavar="HZ",
                    help="real-time control rate. Given: the host must ask for this period or 0. "
                         "Not given: 50 Hz when the host asks for period 0, and any requested "
                         "period from 1 ms to 10 s is granted")
    ap.add_argument("--signals", metavar="N1,N2,...",
                    help="names of the observation values (exactly as many as the flattened "
                         "observation; default obs0..obsN-1)")
    ap.add_argument("--info", metavar="KEY1,KEY2,...",
                    help="info keys appended to the signals (0.0 when missing, e.g. after reset)")
    ap.add_argument("--commands", metavar="N1,N2,...",
                    help="names of the commands (default a0..aM-1 for Box/MultiDiscrete/"
                         "MultiBinary, 'action' for Discrete)")
    ap.add_argument("--safe-command", metavar="V1,V2,...",
                    help="the safe action (default: zeros clipped into the Box bounds; action "
                         "index 0 for Discrete)")
    ap.add_argument("--success-info", metavar="KEY",
                    help="info key whose truthy value on an episode's last step sets SUCCESS "
                         "(default: SUCCESS = terminated)")
    ap.add_argument("--operator-reset", action="store_true",
                    help="answer Reset with WAITING Sensors until an operator presses Enter on "
                         "stdin (a robot that cannot reset itself)")
    ap.add_argument("--operator-reset-after", type=float, metavar="SECONDS",
                    help="simulate the operator: the reset is done this long after Reset "
                         "(implies --operator-reset)")
    ap.add_argument("--seed", type=int, help="seed for the first env.reset and the action space")
    ap.add_argument("--print-layout", action="store_true",
                    help="print the signal and command names, counts and the layout hash, then exit")
    ap.add_argument("--verbose", "-v", action="store_true", help="log every frame to stderr")
    ap.add_argument("--version", action="version",
                    version=f"resq-firmware {__version__} (protocol {p.PROTOCOL_VERSION})")
    return ap


def log(msg: str) -> None:
    print(f"resq-firmware: {msg}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        env_kwargs = json.loads(args.env_kwargs)
        if not isinstance(env_kwargs, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        log(f"--env-kwargs: {e}")
        return 2
    safe = None
    if args.safe_command is not None:
        try:
            safe = [float(v) for v in _names(args.safe_command)]
        except ValueError:
            log(f"--safe-command: not a list of numbers: {args.safe_command}")
            return 2
    if args.rate is not None and not (0.1 <= args.rate <= 1000.0):
        log("--rate must be between 0.1 and 1000 Hz")
        return 2
    operator_after_us = None
    if args.operator_reset_after is not None:
        if args.operator_reset_after < 0:
            log("--operator-reset-after must be >= 0")
            return 2
        operator_after_us = int(args.operator_reset_after * 1e6)
        args.operator_reset = True

    from .plant import GymPlant, LayoutError, PlantFault

    try:
        plant = GymPlant(args.env, env_kwargs, signal_names=_names(args.signals),
                         command_names=_names(args.commands), info_keys=_names(args.info) or [],
                         safe_command=safe, success_info=args.success_info, seed=args.seed)
    except LayoutError as e:
        log(f"layout: {e}")
        return 2
    except PlantFault as e:
        log(f"{args.env}: {e}")
        return 1
    except Exception as e:  # gymnasium.make errors: unknown env, missing dependency
        log(f"cannot make {args.env}: {type(e).__name__}: {e}")
        return 1

    if args.print_layout:
        print(plant.layout_text(), flush=True)
        plant.close()
        return 0

    from .firmware import Firmware
    from .transport import PtyTransport, SerialTransport

    modes = {"lockstep": (p.MODE_LOCKSTEP,), "realtime": (p.MODE_REALTIME,),
             "any": (p.MODE_LOCKSTEP, p.MODE_REALTIME)}[args.mode]
    period_us = int(round(1e6 / (args.rate if args.rate is not None else 50.0)))

    if args.port == "pty":
        transport = PtyTransport(args.link)
    else:
        if args.link:
            log("--link only applies to --port pty")
            return 2
        transport = SerialTransport(args.port, args.baud)

    def emit(frame: bytes) -> None:
        transport.write(frame)

    fw = Firmware(plant, emit, modes=modes, period_us=period_us, any_period=args.rate is None,
                  operator_reset=args.operator_reset, operator_reset_after_us=operator_after_us,
                  log=log, verbose=args.verbose)

    # Signals: SIGINT/SIGTERM stop, SIGUSR1 presses the e-stop. A wake-up pipe interrupts select.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    pending = {"stop": None, "estop": 0}

    def on_stop(signum, _frame):
        pending["stop"] = signum

    def on_usr1(_signum, _frame):
        pending["estop"] += 1

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, on_usr1)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    boot = time.monotonic_ns()

    def now_us() -> int:
        return (time.monotonic_ns() - boot) // 1000

    stdin_fd: Optional[int] = None
    if args.operator_reset:
        try:
            stdin_fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            stdin_fd = None

    mode_txt = {"lockstep": "lock-step", "realtime": f"real-time", "any": "lock-step or real-time"}
    log(f"{args.env}: {p.counts(len(plant.signal_names), len(plant.command_names))}, "
        f"layout hash 0x{plant.layout_hash:08X}, {mode_txt[args.mode]}"
        + (f", {1e6 / period_us:g} Hz" if args.mode != "lockstep" else "")
        + (", operator reset" if args.operator_reset else "")
        + f", boot id 0x{fw.boot_id:08X}")
    if isinstance(transport, PtyTransport):
        where = transport.slave_path
        print(f"resq-firmware: serving {args.env} on {where}", flush=True)
        if args.link:
            log(f"{args.link} -> {where}")
    else:
        print(f"resq-firmware: serving {args.env} on {transport.description}", flush=True)
        fw.link_up(now_us())

    rc = 0
    try:
        while pending["stop"] is None:
            t = now_us()
            if pending["estop"]:
                pending["estop"] = 0
                fw.press_estop(t)
            fw.poll(t)
            t = now_us()
            timeout = max(0.0, (fw.next_deadline(t) - t) / 1e6)
            present = transport.host_present
            rlist = [wake_r]
            if present:
                rlist.append(transport.fileno())
            else:
                timeout = min(timeout, NO_HOST_POLL_S)
            if stdin_fd is not None:
                rlist.append(stdin_fd)
            try:
                r, _, _ = select.select(rlist, [], [], timeout)
            except InterruptedError:
                r = []
            if wake_r in r:
                try:
                    os.read(wake_r, 1024)
                except BlockingIOError:
                    pass
            if stdin_fd is not None and stdin_fd in r:
                data = os.read(stdin_fd, 4096)
                if not data:
                    log("stdin closed: operator resets only via --operator-reset-after"
                        if operator_after_us is not None
                        else "stdin closed: no operator can confirm resets any more")
                    stdin_fd = None
                elif b"\n" in data or b"\r" in data:
                    fw.operator_done(now_us())
            if present and transport.fileno() not in r:
                continue
            if not present:
                transport.probe()
            data = transport.read()
            t = now_us()
            if transport.host_present and not present:
                log("host attached")
                fw.link_up(t)
            elif present and not transport.host_present:
                fw.link_down(t, "host closed the port" if isinstance(transport, PtyTransport)
                             else "device lost")
            if data:
                fw.on_bytes(data, t)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # pragma: no cover - unexpected: report, clean up, fail
        log(f"error: {type(e).__name__}: {e}")
        rc = 1
    finally:
        if pending["stop"] is not None:
            log(f"stopping ({signal.Signals(pending['stop']).name})")
        log("stats: " + fw.stats_text())
        transport.close()
        plant.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
