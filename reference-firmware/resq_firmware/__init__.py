"""resq reference firmware: serves any gymnasium environment over the resq firmware-bridge wire
protocol (firmware-bridge/PROTOCOL.md), on a serial port or a pseudo-terminal."""

__version__ = "0.2.0"
