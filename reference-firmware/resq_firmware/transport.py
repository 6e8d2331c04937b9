"""Byte links: a pseudo-terminal this process creates, or a real serial port (pyserial)."""

from __future__ import annotations

import errno
import os
import select
import termios
import time
import tty
from typing import Optional

WRITE_TIMEOUT_S = 0.05


class Transport:
    """``fileno()`` for select, ``read()`` → bytes (b"" if nothing), ``write(frame)``.
    ``host_present`` is False while nobody has the port open (pty) or the device is gone."""

    host_present = True
    description = ""

    def fileno(self) -> int:
        raise NotImplementedError

    def read(self) -> bytes:
        raise NotImplementedError

    def write(self, data: bytes) -> bool:
        raise NotImplementedError

    def probe(self) -> None:
        """Called every few ms while no host is present, before ``read()`` (which updates
        ``host_present``)."""

    def close(self) -> None:
        pass


def _write_all(fd: int, data: bytes, timeout_s: float) -> int:
    """Writes as much as possible within timeout_s; returns the number of bytes written."""
    done = 0
    deadline = time.monotonic() + timeout_s
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
            continue
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        select.select([], [fd], [], remaining)
    return done


class PtyTransport(Transport):
    """A pseudo-terminal pair in raw mode. The firmware keeps the master; the host opens the
    slave path. We do not keep the slave open ourselves, so a read on the master fails with EIO
    while no host has it open: then we neither read nor write, and probe every few ms."""

    def __init__(self, link: Optional[str] = None) -> None:
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                      | termios.IEXTEN)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.host_present = False
        self.aborted = False
        self.link = link
        self.description = self.slave_path
        if link:
            try:
                if os.path.islink(link) or os.path.exists(link):
                    os.unlink(link)
            except FileNotFoundError:
                pass
            os.symlink(self.slave_path, link)

    def fileno(self) -> int:
        return self.master

    def _raw_again(self) -> None:
        # On Linux a pty master's termios calls act on the slave: keep it raw for the next host.
        try:
            attrs = termios.tcgetattr(self.master)
            attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                          | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
            attrs[1] &= ~termios.OPOST
            attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
            attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                          | termios.IEXTEN)
            termios.tcsetattr(self.master, termios.TCSANOW, attrs)
        except termios.error:
            pass

    def read(self) -> bytes:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            self.host_present = True
            return b""
        except OSError as e:
            if e.errno == errno.EIO:      # no process has the slave open
                self.host_present = False
                return b""
            raise
        self.host_present = True
        return data

    def probe(self) -> None:
        if not self.host_present:
            self._raw_again()

    def write(self, data: bytes) -> bool:
        if not self.host_present:
            return False
        if self.aborted:
            data = b"\x00" + data
            self.aborted = False
        try:
            n = _write_all(self.master, data, WRITE_TIMEOUT_S)
        except OSError as e:
            if e.errno == errno.EIO:
                self.host_present = False
                return False
            raise
        if n < len(data):
            self.aborted = n > 0
            return False
        return True

    def close(self) -> None:
        if self.link:
            try:
                if os.path.islink(self.link) and os.readlink(self.link) == self.slave_path:
                    os.unlink(self.link)
            except OSError:
                pass
        try:
            os.close(self.master)
        except OSError:
            pass


class SerialTransport(Transport):
    """A serial device opened with pyserial (8N1, no flow control). If the device disappears
    (USB unplugged) it is reopened every 0.5 s."""

    def __init__(self, path: str, baud: int) -> None:
        try:
            import serial  # type: ignore
        except ImportError:
            raise SystemExit("resq-firmware: a serial port needs pyserial: "
                             "pip install 'pyserial' (or pip install './reference-firmware[serial]')")
        self._serial_mod = serial
        self.path = path
        self.baud = baud
        self.ser = None
        self.aborted = False
        self.description = f"{path} at {baud} baud"
        self.next_open = 0.0
        self._open()
        if self.ser is None:
            raise SystemExit(f"resq-firmware: cannot open {path}")

    def _open(self) -> None:
        try:
            self.ser = self._serial_mod.Serial(self.path, self.baud, timeout=0, write_timeout=0.2)
            self.host_present = True
        except (self._serial_mod.SerialException, OSError):
            self.ser = None
            self.host_present = False
            self.next_open = time.monotonic() + 0.5

    def fileno(self) -> int:
        return self.ser.fileno()

    def _lost(self) -> None:
        try:
            self.ser.close()
        except Exception:
            pass
        self.ser = None
        self.host_present = False
        self.next_open = time.monotonic() + 0.5

    def read(self) -> bytes:
        if self.ser is None:
            return b""
        try:
            n = self.ser.in_waiting
            return self.ser.read(n or 1)
        except (self._serial_mod.SerialException, OSError):
            self._lost()
            return b""

    def probe(self) -> None:
        if self.ser is None and time.monotonic() >= self.next_open:
            self._open()

    def write(self, data: bytes) -> bool:
        if self.ser is None:
            return False
        if self.aborted:
            data = b"\x00" + data
            self.aborted = False
        try:
            n = self.ser.write(data)
        except self._serial_mod.SerialTimeoutException:
            self.aborted = True
            return False
        except (self._serial_mod.SerialException, OSError):
            self._lost()
            return False
        return n == len(data)

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:
                pass
