//! The hardware-in-the-loop rig: the simulated firmware ([`SimFirmware`]) served on a fresh
//! pseudo-terminal, so resq talks to it over a real serial device exactly as to a robot.
//!
//! Between the pseudo-terminal and the firmware sits a fault-injecting proxy ([`Faults`]): it
//! splits each direction's byte stream into frames and can corrupt, drop, duplicate and delay
//! them, inject garbage and oversized frames, unplug the device (the pseudo-terminal disappears
//! and comes back under the same stable path, like a USB serial adapter's /dev/serial/by-id
//! link) and reboot the firmware. With no faults configured it is a plain pass-through.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serialport::{SerialPort, TTYPort};
use sim_robot::firmware::SimFirmware;

/// What the proxy does to frames, per frame in each direction.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability of flipping one random bit of a frame.
    pub corrupt: f64,
    pub drop: f64,
    pub duplicate: f64,
    /// Each frame is held back a random 0..=delay_max before delivery (jitter).
    pub delay_max: Duration,
    /// Probability, per frame, of injecting random garbage bytes before it.
    pub garbage: f64,
    /// Probability, per frame, of injecting an oversized frame (300 non-zero bytes + 0x00).
    pub oversized: f64,
    /// Unplug the device this long after start and every `unplug_every` after that.
    pub unplug_every: Option<Duration>,
    pub unplugged_for: Duration,
    /// Reboot the firmware every this long.
    pub reboot_every: Option<Duration>,
    /// Send garbage to the host right after each (re)connect.
    pub garbage_on_connect: bool,
    /// Press the firmware's e-stop this long after start.
    pub estop_after: Option<Duration>,
}

/// What the proxy did (the fault campaign's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RigStats {
    pub frames_to_host: u64,
    pub frames_to_firmware: u64,
    pub corrupted_to_host: u64,
    pub corrupted_to_firmware: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub garbage_injections: u64,
    pub oversized_injections: u64,
    pub unplugs: u64,
    pub reboots: u64,
}

/// Everything the rig counted: the proxy's faults, the firmware's view, its decoder's rejections.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RigReport {
    pub proxy: RigStats,
    pub firmware: sim_robot::firmware::FirmwareStats,
    pub decoder: firmware_bridge::DecoderStats,
}

/// A pseudo-terminal pair. The rig keeps the slave side open too, so the master never sees a
/// hang-up when the host closes and reopens the device.
struct Pty {
    master: TTYPort,
    _slave: TTYPort,
    path: String,
}

/// Pseudo-terminal creation is not thread-safe: one at a time, process-wide.
static PTY_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pseudo-terminal pair `(master, slave)`, created under the process-wide lock (for tests
/// that play firmware by hand).
pub fn pty_pair() -> Result<(TTYPort, TTYPort)> {
    let _guard = PTY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    TTYPort::pair().context("creating a pseudo-terminal pair")
}

/// The longest the rig waits for bytes before it looks at the time again.
const READ_TIMEOUT: Duration = Duration::from_millis(1);

fn open_pty() -> Result<Pty> {
    let (mut master, slave) = pty_pair()?;
    master.set_timeout(READ_TIMEOUT)?;
    let path = slave.name().context("pseudo-terminal without a name")?;
    Ok(Pty { master, _slave: slave, path })
}

/// Points `link` at `target` (replacing an old link atomically).
fn point_link(link: &Path, target: &str) -> Result<()> {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("renaming symlink to {}", link.display()))?;
    Ok(())
}

/// Frame-splitting, fault-injecting byte pipe for one direction.
struct Direction {
    partial: Vec<u8>,
}

impl Direction {
    fn new() -> Self {
        Direction { partial: Vec::new() }
    }

    /// Appends bytes and returns the complete frames (each ending in 0x00).
    fn frames(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            self.partial.push(b);
            if b == 0 {
                out.push(std::mem::take(&mut self.partial));
            }
        }
        out
    }
}

/// The rig: firmware + proxy + pseudo-terminal, served until `stop` is set.
pub struct Rig {
    pub firmware: SimFirmware,
    pub faults: Faults,
    pub stats: RigStats,
    /// Stable path the host opens (a symlink to the current pseudo-terminal).
    pub link: PathBuf,
    /// Serve under `SCHED_FIFO` at this priority (the simulated robot then keeps its period on
    /// a busy computer, as a microcontroller would; see [`crate::robot::rt`]).
    pub rt_priority: Option<u8>,
    rng: rand_pcg::Pcg64Mcg,
}

impl Rig {
    pub fn new(firmware: SimFirmware, faults: Faults, link: PathBuf, seed: u64) -> Self {
        Rig {
            firmware,
            faults,
            stats: RigStats::default(),
            link,
            rt_priority: None,
            rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed),
        }
    }

    /// Creates the device, then calls `ready(path)` once and serves until `stop`.
    pub fn serve(&mut self, stop: &AtomicBool, ready: impl FnOnce(&str)) -> Result<RigReport> {
        let _realtime = self.rt_priority.map(crate::robot::rt::enter).transpose()?;
        let start = Instant::now();
        let now_us = |t: Instant| t.duration_since(start).as_micros() as u64;
        let mut pty = open_pty()?;
        point_link(&self.link, &pty.path)?;
        ready(&pty.path);
        let mut to_fw = Direction::new();
        let mut to_host = Direction::new();
        let mut next_unplug = self.faults.unplug_every.map(|d| start + d);
        let mut next_reboot = self.faults.reboot_every.map(|d| start + d);
        let mut estop_at = self.faults.estop_after.map(|d| start + d);
        let mut buf = [0u8; 512];
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let mut connected_once = false;
        let mut rejects_logged = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next_unplug.is_some_and(|t| now >= t) {
                // Unplug: the device vanishes; after a while a new one appears at the same link.
                self.stats.unplugs += 1;
                let _ = std::fs::remove_file(&self.link);
                drop(pty);
                std::thread::sleep(self.faults.unplugged_for);
                pty = open_pty()?;
                point_link(&self.link, &pty.path)?;
                to_fw = Direction::new();
                to_host = Direction::new();
                next_unplug = self.faults.unplug_every.map(|d| Instant::now() + d);
                connected_once = false;
                continue;
            }
            if estop_at.is_some_and(|t| now >= t) {
                estop_at = None;
                let t = now_us(now);
                self.firmware.press_estop(t, &mut |bytes| out.extend_from_slice(bytes));
                let _ = pty.master.write_all(&out);
                out.clear();
            }
            if next_reboot.is_some_and(|t| now >= t) {
                self.stats.reboots += 1;
                self.firmware.reboot();
                next_reboot = self.faults.reboot_every.map(|d| now + d);
            }
            // Wait for bytes at most until the firmware's next real-time step is due, so that
            // steps run on time rather than up to a read timeout late.
            let wait = match self.firmware.next_step_us() {
                Some(due) => Duration::from_micros(due.saturating_sub(now_us(now))).min(READ_TIMEOUT),
                None => READ_TIMEOUT,
            };
            // (Only a field of the port: no system call.)
            pty.master.set_timeout(wait)?;
            let n = match pty.master.read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    0
                }
                // EIO: nobody has the device open right now.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(1));
                    0
                }
            };
            if n > 0 && !connected_once {
                connected_once = true;
                if self.faults.garbage_on_connect {
                    let junk: Vec<u8> = (0..64).map(|_| self.rng.random()).collect();
                    self.stats.garbage_injections += 1;
                    let _ = pty.master.write_all(&junk);
                }
            }
            out.clear();
            for frame in to_fw.frames(&buf[..n]) {
                self.stats.frames_to_firmware += 1;
                for f in self.mangle(frame, false) {
                    let t = now_us(Instant::now());
                    self.firmware.on_bytes(&f, t, &mut |bytes| out.extend_from_slice(bytes));
                }
            }
            let t = now_us(Instant::now());
            self.firmware.poll(t, &mut |bytes| out.extend_from_slice(bytes));
            if self.firmware.stats.rejects > rejects_logged {
                rejects_logged = self.firmware.stats.rejects;
                log::warn!(
                    "rig: refused a host handshake (protocol version, layout hash of signal/command names, or counts differ from this firmware's); the host prints both sides' values"
                );
            }
            let produced = std::mem::take(&mut out);
            for frame in to_host.frames(&produced) {
                self.stats.frames_to_host += 1;
                for f in self.mangle(frame, true) {
                    let _ = pty.master.write_all(&f);
                }
            }
            out = produced;
        }
        let _ = std::fs::remove_file(&self.link);
        Ok(RigReport {
            proxy: self.stats,
            firmware: self.firmware.stats,
            decoder: self.firmware.decoder_stats(),
        })
    }

    /// Applies the configured faults to one frame; returns what to deliver.
    fn mangle(&mut self, mut frame: Vec<u8>, to_host: bool) -> Vec<Vec<u8>> {
        let f = &self.faults;
        let mut out = Vec::new();
        if self.rng.random_bool(f.garbage.clamp(0.0, 1.0)) {
            self.stats.garbage_injections += 1;
            let len = self.rng.random_range(1..40);
            out.push((0..len).map(|_| self.rng.random()).collect());
        }
        if self.rng.random_bool(f.oversized.clamp(0.0, 1.0)) {
            self.stats.oversized_injections += 1;
            let mut big: Vec<u8> = (0..300).map(|_| self.rng.random_range(1..=255u8)).collect();
            big.push(0);
            out.push(big);
        }
        if !f.delay_max.is_zero() {
            let us = self.rng.random_range(0..=f.delay_max.as_micros() as u64);
            std::thread::sleep(Duration::from_micros(us));
        }
        if self.rng.random_bool(f.drop.clamp(0.0, 1.0)) {
            self.stats.dropped += 1;
            return out;
        }
        if frame.len() > 1 && self.rng.random_bool(f.corrupt.clamp(0.0, 1.0)) {
            if to_host {
                self.stats.corrupted_to_host += 1;
            } else {
                self.stats.corrupted_to_firmware += 1;
            }
            let i = self.rng.random_range(0..frame.len() - 1);
            frame[i] ^= 1 << self.rng.random_range(0..8);
        }
        if self.rng.random_bool(f.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            out.push(frame.clone());
        }
        out.push(frame);
        out
    }
}

/// Starts a rig in a thread; returns once the device exists.
pub fn spawn(mut rig: Rig) -> Result<(Arc<AtomicBool>, std::thread::JoinHandle<Result<RigReport>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        rig.serve(&s, |path| {
            let _ = tx.send(path.to_string());
        })
    });
    rx.recv_timeout(Duration::from_secs(10)).context("the rig did not start")?;
    Ok((stop, handle))
}
