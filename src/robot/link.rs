//! The host side of the serial link: handshake, framing, timeouts, reconnection, counters — and
//! [`LinkEnv`], which drives firmware (simulated or real) through the [`Env`] interface so the
//! learning loop is the same on a rig as in process.
//!
//! Lock-step protocol (PROTOCOL.md): the host sends a Command echoing the last Sensor's `seq`;
//! the firmware steps and answers with Sensor `seq + 1`. A lost frame either way is repaired by
//! resending the Command after `RETRY_US` (the firmware answers a repeated Command by repeating
//! its Sensor, never by stepping twice). After `MAX_RETRIES` silent retries, or an I/O error (an
//! unplugged cable), the host reopens the port and handshakes again, for at most
//! `reconnect_within`; the interrupted episode ends as a truncation and a new one starts.
//! A firmware reboot shows up as a new `boot_id` in the handshake (or a Sensor whose sequence
//! number jumps backwards), and is handled the same way.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use firmware_bridge::timing::{seq_after, HELLO_RETRY_US, MAX_RETRIES, RETRY_US};
use firmware_bridge::{
    encode, Command, Decoder, DecoderStats, Hello, Message, Mode, NameKind, RejectReason, Reset, Sensor,
    SensorFlags, MAX_FRAME, PROTOCOL_VERSION,
};
use log::{info, warn};

use super::LinkCounters;

/// One line per position where the firmware's and the host's names differ.
pub fn layout_diff(what: &str, firmware: &[String], host: &[String]) -> Vec<String> {
    let mut out = vec![];
    for i in 0..firmware.len().max(host.len()) {
        match (firmware.get(i), host.get(i)) {
            (Some(f), Some(h)) if f == h => {}
            (Some(f), Some(h)) => out.push(format!("{what} {i}: firmware has `{f}`, the bundle has `{h}`")),
            (Some(f), None) => out.push(format!("{what} {i}: firmware has `{f}`, the bundle has none")),
            (None, Some(h)) => out.push(format!("{what} {i}: the bundle has `{h}`, firmware has none")),
            (None, None) => {}
        }
    }
    out
}
use crate::robot::{Env, EnvError, StepEnd};

/// How to reach the firmware.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Serial device path, e.g. /dev/ttyACM0 or a pseudo-terminal from `resq rig`.
    pub port: String,
    pub baud: u32,
    pub mode: Mode,
    /// Real-time control period the host expects (0 in lock-step).
    pub period_us: u32,
    /// Give up reconnecting after this long.
    pub reconnect_within: Duration,
    /// How long a command stays valid at the firmware (real-time mode), at most: commands are
    /// sent valid for two of the firmware's periods (PROTOCOL.md §8.2) if that is shorter, so a
    /// host that stalls leaves the robot on its safe action, not on a stale command.
    pub command_valid_for: Duration,
}

impl LinkConfig {
    pub fn lock_step(port: &str) -> Self {
        LinkConfig {
            port: port.to_string(),
            baud: 115_200,
            mode: Mode::LockStep,
            period_us: 0,
            reconnect_within: Duration::from_secs(10),
            command_valid_for: Duration::from_millis(100),
        }
    }
}

/// A live serial link to the firmware.
pub struct Link {
    cfg: LinkConfig,
    hello: Hello,
    /// The bundle's signal and command names (sent as `Name`s after a layout mismatch).
    signals: Vec<String>,
    commands: Vec<String>,
    port: Option<Box<dyn serialport::SerialPort>>,
    decoder: Decoder,
    /// Decoder stats of decoders replaced at reconnection.
    past: DecoderStats,
    rx: [u8; 256],
    tx: [u8; MAX_FRAME],
    /// Messages decoded but not yet taken.
    pending: heapless::Deque<Message, 8>,
    pub firmware: Option<Hello>,
    pub counters: LinkCounters,
    /// When the host last sent a frame (for heartbeats while it waits).
    last_tx: Instant,
    heartbeat_seq: u32,
    started: Instant,
    /// Sensors with the wrong number of values (ignored; counted in `other_errors`).
    wrong_sensors: u64,
    /// When the host last sent `Fault{4}` (at most one per `PROTOCOL_FAULT_INTERVAL_US`).
    last_protocol_fault: Option<Instant>,
}

fn port_err(port: &str, detail: impl std::fmt::Display) -> EnvError {
    EnvError::Port { port: port.to_string(), detail: detail.to_string() }
}

impl Link {
    /// Opens the port and handshakes. `signals` and `commands` are the bundle's names, whose
    /// layout hash the firmware must share.
    pub fn open(cfg: LinkConfig, signals: &[&str], commands: &[&str]) -> Result<Link, EnvError> {
        if signals.len() > firmware_bridge::MAX_SIGNALS || commands.len() > firmware_bridge::MAX_COMMANDS {
            return Err(EnvError::Protocol(format!(
                "{} signals and {} commands: the protocol carries at most {} and {}",
                signals.len(),
                commands.len(),
                firmware_bridge::MAX_SIGNALS,
                firmware_bridge::MAX_COMMANDS
            )));
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            role: firmware_bridge::Role::Host,
            mode: cfg.mode,
            period_us: cfg.period_us,
            layout_hash: firmware_bridge::layout_hash(signals, commands),
            n_signals: signals.len() as u8,
            n_actions: commands.len() as u8,
            boot_id: 0,
        };
        let mut link = Link {
            cfg,
            hello,
            signals: signals.iter().map(|s| s.to_string()).collect(),
            commands: commands.iter().map(|s| s.to_string()).collect(),
            port: None,
            decoder: Decoder::new(),
            past: DecoderStats::default(),
            rx: [0; 256],
            tx: [0; MAX_FRAME],
            pending: heapless::Deque::new(),
            firmware: None,
            counters: LinkCounters::default(),
            last_tx: Instant::now(),
            heartbeat_seq: 0,
            started: Instant::now(),
            wrong_sensors: 0,
            last_protocol_fault: None,
        };
        // A firmware still booting (or a simulator starting) gets the reconnect bound too.
        let within = link.cfg.reconnect_within.max(Duration::from_secs(5));
        link.connect(within)?;
        Ok(link)
    }

    fn open_port(&mut self) -> Result<(), EnvError> {
        let port = serialport::new(&self.cfg.port, self.cfg.baud)
            .timeout(Duration::from_millis(5))
            .open()
            .map_err(|e| port_err(&self.cfg.port, format_args!("cannot open the serial port: {e}")))?;
        self.port = Some(port);
        self.past = self.past.plus(&self.decoder.stats());
        self.decoder = Decoder::new();
        self.pending.clear();
        Ok(())
    }

    /// Opens (or reopens) the port and handshakes, retrying until `within` has passed. A
    /// firmware that answers *busy* is asked again (PROTOCOL.md §7); one that refuses for any
    /// other reason ends the attempt at once with the reason.
    fn connect(&mut self, within: Duration) -> Result<(), EnvError> {
        let until = Instant::now() + within;
        let mut last_error;
        loop {
            match self
                .open_port()
                .and_then(|_| self.handshake(until.max(Instant::now() + Duration::from_millis(1000))))
            {
                Ok(()) => return Ok(()),
                Err(e @ EnvError::Refused(_)) => return Err(e),
                Err(e) => last_error = e.to_string(),
            }
            self.port = None;
            if Instant::now() >= until {
                let fix = if last_error.contains("busy") {
                    "the firmware is up but not ready (still calibrating?): wait for it, or raise `--reconnect-within`"
                } else {
                    "check the cable and that the firmware (or `resq rig`) is running"
                };
                return Err(EnvError::Handshake(format!(
                    "no firmware session on {} within {:.1} s: {last_error}\n  fix: {fix}",
                    self.cfg.port,
                    within.as_secs_f32()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn handshake(&mut self, until: Instant) -> Result<(), EnvError> {
        let mut next_hello = Instant::now();
        let mut busy_since: Option<Instant> = None;
        loop {
            if Instant::now() >= next_hello {
                // A leading 0x00 flushes whatever partial frame the firmware holds.
                self.write_raw(&[0])?;
                self.send(&Message::Hello(self.hello.clone()))?;
                next_hello = Instant::now() + Duration::from_micros(HELLO_RETRY_US);
            }
            match self.recv_until(next_hello.min(until))? {
                Some(Message::Hello(fw)) if fw.role == firmware_bridge::Role::Firmware => {
                    // PROTOCOL.md §7: the host checks the firmware's Hello exactly as the firmware
                    // checks the host's; a firmware that should have refused is refused, and the
                    // robot is never driven by a firmware of another layout or version.
                    if let Err(reason) = self.hello.check_peer(&fw) {
                        self.send(&Message::Reject(self.hello.reject(reason)))?;
                        return Err(self.mismatch(&fw, reason));
                    }
                    if let Some(old) = &self.firmware {
                        if old.boot_id != fw.boot_id {
                            warn!(
                                "firmware on {} rebooted (boot id {:08x} -> {:08x})",
                                self.cfg.port, old.boot_id, fw.boot_id
                            );
                        }
                    }
                    info!("handshake with firmware on {} (boot id {:08x})", self.cfg.port, fw.boot_id);
                    self.firmware = Some(fw);
                    return Ok(());
                }
                Some(Message::Reject(r)) if r.reason == RejectReason::Busy => {
                    // Not ready yet (e.g. calibrating): ask again every HELLO_RETRY_US.
                    if busy_since.is_none() {
                        info!("the firmware on {} is busy; asking again until it is ready", self.cfg.port);
                    }
                    busy_since.get_or_insert_with(Instant::now);
                }
                Some(Message::Reject(r)) => return Err(self.refusal(&r)),
                _ => {}
            }
            if Instant::now() >= until {
                return Err(EnvError::Handshake(match busy_since {
                    Some(t) => {
                        format!("the firmware kept answering busy for {:.1} s", t.elapsed().as_secs_f32())
                    }
                    None => "no handshake reply".into(),
                }));
            }
        }
    }

    /// The error for a firmware `Hello` that does not match the bundle (`reason`, the first
    /// check that failed), naming both sides' values.
    fn mismatch(&self, fw: &Hello, reason: RejectReason) -> EnvError {
        let h = &self.hello;
        EnvError::Refused(format!(
            "the firmware on {} answered with a Hello that does not match the bundle ({reason:?}): protocol v{} (resq v{}), layout hash {:08x} (resq {:08x}), {} signals and {} commands (resq {} and {}), {:?} mode at {} µs (resq {:?} at {} µs); resq refused it and stopped\n  fix: flash or start the firmware this bundle is written for, or make [robot] list this firmware's signals and commands in wire order (resq check shows the bundle's)",
            self.cfg.port,
            fw.version,
            h.version,
            fw.layout_hash,
            h.layout_hash,
            fw.n_signals,
            fw.n_actions,
            h.n_signals,
            h.n_actions,
            fw.mode,
            fw.period_us,
            h.mode,
            h.period_us,
        ))
    }

    /// The error for a handshake the firmware refused, naming what differs. For a layout or
    /// count mismatch, the firmware's `Name`s follow its `Reject`: they are collected (for up to
    /// `HELLO_RETRY_US`), the host's own are sent once, and every differing name is listed.
    fn refusal(&mut self, r: &firmware_bridge::Reject) -> EnvError {
        let port = self.cfg.port.clone();
        let head = format!("the firmware on {port} refused the handshake");
        match r.reason {
            RejectReason::Version => EnvError::Refused(format!(
                "{head}: the firmware speaks protocol v{}, resq speaks v{}\n  fix: {}",
                r.version,
                self.hello.version,
                if r.version < self.hello.version {
                    "update the firmware to the protocol in firmware-bridge/PROTOCOL.md (v2 carries up to 64 signals and 32 commands and names a layout mismatch)"
                } else {
                    "update resq to a version that speaks the firmware's protocol"
                }
            )),
            RejectReason::Mode => EnvError::Refused(format!(
                "{head}: it cannot run {:?} mode{}\n  fix: choose the mode (and period) the firmware supports (`--mode`, `[robot] period_ms`)",
                self.hello.mode,
                if self.hello.period_us > 0 { format!(" at a period of {} µs", self.hello.period_us) } else { String::new() }
            )),
            RejectReason::LayoutHash | RejectReason::Counts => {
                let theirs = self.collect_names(r.n_signals as usize, r.n_actions as usize);
                let (signals, commands) = (self.signals.clone(), self.commands.clone());
                let sig: Vec<&str> = signals.iter().map(String::as_str).collect();
                let cmd: Vec<&str> = commands.iter().map(String::as_str).collect();
                for n in firmware_bridge::Name::layout(&sig, &cmd) {
                    let _ = self.send(&Message::Name(n));
                }
                let diff = match theirs {
                    Some((fs, fc)) => {
                        let mut lines = layout_diff("signal", &fs, &signals);
                        lines.extend(layout_diff("command", &fc, &commands));
                        if lines.is_empty() {
                            "the names agree but the hashes differ: one side hashes them differently (PROTOCOL.md §6)".to_string()
                        } else {
                            lines.join("\n    ")
                        }
                    }
                    None => format!(
                        "firmware has {} signals, {} commands (layout hash {:08x}); the bundle has {}, {} ({:08x}); the firmware did not name them",
                        r.n_signals, r.n_actions, r.layout_hash, self.hello.n_signals, self.hello.n_actions, self.hello.layout_hash
                    ),
                };
                EnvError::Refused(format!(
                    "{head}: its signals or commands differ from the bundle's [robot] section:\n    {diff}\n  fix: make [[robot.signal]] and [[robot.command]] list the firmware's names, in wire order (or flash firmware that matches the bundle)"
                ))
            }
            RejectReason::Busy => EnvError::Refused(format!("{head}: busy")),
        }
    }

    /// The firmware's signal and command names, from the `Name`s that follow its `Reject`.
    fn collect_names(&mut self, n_sig: usize, n_cmd: usize) -> Option<(Vec<String>, Vec<String>)> {
        let mut sig = vec![None; n_sig];
        let mut cmd = vec![None; n_cmd];
        let until = Instant::now() + Duration::from_micros(HELLO_RETRY_US);
        while Instant::now() < until && (sig.iter().any(Option::is_none) || cmd.iter().any(Option::is_none)) {
            match self.recv_until(until) {
                Ok(Some(Message::Name(n))) => {
                    let slot = match n.kind {
                        NameKind::Signal => sig.get_mut(n.index as usize),
                        NameKind::Command => cmd.get_mut(n.index as usize),
                    };
                    if let Some(slot) = slot {
                        *slot = Some(n.name.as_str().to_string());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let all = |v: Vec<Option<String>>| v.into_iter().collect::<Option<Vec<String>>>();
        Some((all(sig)?, all(cmd)?))
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), EnvError> {
        let port = self.port.as_mut().ok_or_else(|| port_err(&self.cfg.port, "not connected"))?;
        port.write_all(bytes).map_err(|e| port_err(&self.cfg.port, format_args!("write: {e}")))
    }

    /// Encodes and sends one message.
    pub fn send(&mut self, msg: &Message) -> Result<(), EnvError> {
        let n = encode(msg, &mut self.tx).map_err(|e| EnvError::Protocol(format!("encode: {e:?}")))?;
        let frame = self.tx;
        self.write_raw(&frame[..n])?;
        self.last_tx = Instant::now();
        Ok(())
    }

    /// Sends a `Heartbeat` if the host has sent nothing for `HEARTBEAT_IDLE_US` (PROTOCOL.md
    /// §10), so the firmware keeps the session while the host only listens.
    pub fn heartbeat_if_idle(&mut self) -> Result<(), EnvError> {
        if self.last_tx.elapsed() >= Duration::from_micros(firmware_bridge::HEARTBEAT_IDLE_US) {
            self.heartbeat_seq = self.heartbeat_seq.wrapping_add(1);
            let t_us = self.started.elapsed().as_micros() as u64;
            self.send(&Message::Heartbeat(firmware_bridge::Heartbeat { seq: self.heartbeat_seq, t_us }))?;
        }
        Ok(())
    }

    /// The next message (heartbeats are consumed), or `None` at `deadline`.
    fn recv_until(&mut self, deadline: Instant) -> Result<Option<Message>, EnvError> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(Some(m));
            }
            self.read_once()?;
            if !self.pending.is_empty() {
                continue;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Reads what the port has (waiting up to its timeout if nothing) into `pending`.
    fn read_once(&mut self) -> Result<(), EnvError> {
        let port = self.port.as_mut().ok_or_else(|| port_err(&self.cfg.port, "not connected"))?;
        let n = match port.read(&mut self.rx) {
            Ok(0) => return Err(port_err(&self.cfg.port, "the port closed")),
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                0
            }
            Err(e) => return Err(port_err(&self.cfg.port, format_args!("read: {e}"))),
        };
        let mut wrong_count = false;
        for i in 0..n {
            if let Some(Ok(m)) = self.decoder.push(self.rx[i]) {
                if matches!(m, Message::Heartbeat(_)) {
                    continue;
                }
                if let Message::Sensor(s) = &m {
                    if s.values.len() != self.hello.n_signals as usize {
                        // PROTOCOL.md §9: a Sensor whose n ≠ n_signals is a protocol error:
                        // counted, answered with Fault{4}, never read (no value is made up).
                        self.wrong_sensors += 1;
                        wrong_count = true;
                        continue;
                    }
                }
                if self.pending.push_back(m).is_err() {
                    // More than the queue holds in one read: the oldest are stale anyway.
                    self.pending.pop_front();
                    self.counters.late_frames += 1;
                }
            }
        }
        self.sync_counters();
        if wrong_count {
            if self.wrong_sensors == 1 {
                warn!(
                    "the firmware on {} sent a Sensor with the wrong number of values (the bundle has {} signals): ignored and answered with Fault{{4}}; such frames are counted as other_errors",
                    self.cfg.port, self.hello.n_signals
                );
            }
            let due = self.last_protocol_fault.is_none_or(|t| {
                t.elapsed() >= Duration::from_micros(firmware_bridge::PROTOCOL_FAULT_INTERVAL_US)
            });
            if due {
                self.last_protocol_fault = Some(Instant::now());
                let t_us = self.started.elapsed().as_micros() as u64;
                let fault = firmware_bridge::Fault { code: firmware_bridge::FaultCode::Protocol, t_us };
                self.send(&Message::Fault(fault))?;
            }
        }
        Ok(())
    }

    /// Real time: `s` with any newer Sensor of its episode already received in its place (the
    /// skipped ones are counted as gaps). The robot does not wait: a Sensor that already has a
    /// successor is stale, and answering it acts on a state the robot has left; each answer
    /// stays late until the backlog drains (never, while the host's step takes a whole period).
    /// No allocation; other messages keep their order.
    fn newest_sensor(&mut self, mut s: Sensor) -> Result<Sensor, EnvError> {
        let available = self.port.as_mut().map_or(0, |p| p.bytes_to_read().unwrap_or(0));
        if available > 0 {
            self.read_once()?;
        }
        for _ in 0..self.pending.len() {
            match self.pending.pop_front() {
                Some(Message::Sensor(n))
                    if firmware_bridge::seq_after(n.seq, s.seq)
                        && !n.flags.intersects(SensorFlags::RESET | SensorFlags::WAITING) =>
                {
                    self.counters.seq_gaps += n.seq.wrapping_sub(s.seq) as u64;
                    s = n;
                }
                Some(m) => {
                    let _ = self.pending.push_back(m);
                }
                None => break,
            }
        }
        Ok(s)
    }

    fn sync_counters(&mut self) {
        let s = self.past.plus(&self.decoder.stats());
        // A Sensor of the wrong length decoded as a frame, but was rejected.
        self.counters.frames = s.frames - self.wrong_sensors.min(s.frames);
        self.counters.crc_errors = s.crc_errors;
        self.counters.other_errors =
            s.cobs_errors + s.length_errors + s.oversized + s.unknown_type + s.bad_field + self.wrong_sensors;
    }
}

/// Episodes on firmware over a [`Link`].
pub struct LinkEnv {
    pub link: Link,
    max_steps: u32,
    t: u32,
    signals: Vec<f32>,
    last: Option<Sensor>,
    estop: bool,
    seed_stream: u64,
    episode: u64,
    /// Longest time from a reconnect's start to the link being back.
    pub worst_reconnect: Duration,
    /// The command sent by `act` and the sequence number of the Sensor that answers it.
    in_flight: Option<(Message, u32)>,
    /// How long the last operator reset took, s (0 if the firmware resets itself).
    pub waiting_s: f64,
    /// The bundle says an operator resets the robot (`[episode] reset = "operator"`): a
    /// firmware that reports WAITING is expected (otherwise resq still waits, and warns).
    pub operator_reset: bool,
    sent_intact: bool,
    /// The seq of the episode's RESET Sensor (the firmware's step count is counted from it).
    episode_seq0: u32,
}

impl LinkEnv {
    /// The operator's explicit clear of a latched e-stop (PROTOCOL.md §9): logs it, sends
    /// `ClearEstop` and starts an episode to read the firmware's answer. Returns whether the latch
    /// is clear (false: the firmware keeps it, e.g. while the physical e-stop is pressed). resq
    /// never sends `ClearEstop` on its own.
    pub fn clear_estop(&mut self) -> Result<bool, EnvError> {
        warn!("operator: clearing the e-stop latch of the robot on {} (ClearEstop sent)", self.link.cfg.port);
        self.link.send(&Message::ClearEstop)?;
        Env::reset(self)?;
        Ok(!self.estop)
    }

    pub fn new(link: Link, n_signals: usize, max_steps: u32) -> Self {
        LinkEnv {
            link,
            max_steps,
            t: 0,
            signals: vec![0.0; n_signals],
            last: None,
            estop: false,
            seed_stream: 0,
            episode: 0,
            worst_reconnect: Duration::ZERO,
            in_flight: None,
            waiting_s: 0.0,
            operator_reset: false,
            sent_intact: false,
            episode_seq0: 0,
        }
    }

    fn reconnect(&mut self, why: &str) -> Result<(), EnvError> {
        warn!("link to {} lost ({why}); reconnecting", self.link.cfg.port);
        let started = Instant::now();
        self.link.port = None;
        self.link.connect(self.link.cfg.reconnect_within)?;
        self.link.counters.reconnects += 1;
        self.worst_reconnect = self.worst_reconnect.max(started.elapsed());
        Ok(())
    }

    /// Takes a Sensor frame into the env's state.
    fn accept(&mut self, s: Sensor) {
        for (o, v) in self.signals.iter_mut().zip(s.values.iter()) {
            *o = *v;
        }
        self.estop = s.flags.contains(SensorFlags::ESTOP);
        self.last = Some(s);
    }

    /// Sends `msg` and waits for the Sensor frame with sequence number `want` (any, if None),
    /// retrying and reconnecting as the protocol says. Returns false if the link was re-established
    /// on the way (the episode is broken).
    fn exchange(&mut self, msg: &Message, want: Option<u32>) -> Result<bool, EnvError> {
        if let Err(e) = self.link.send(msg) {
            self.reconnect(&e.to_string())?;
            return Ok(false);
        }
        self.await_answer(msg, want)
    }

    /// Waits for the answer to `msg` (already sent), resending it after each `RETRY_US`. While
    /// the firmware reports WAITING (an operator is resetting the robot) the host neither
    /// answers nor resends: it waits, for as long as the Sensors keep coming.
    fn await_answer(&mut self, msg: &Message, want: Option<u32>) -> Result<bool, EnvError> {
        let mut retries = 0;
        let mut waiting_since: Option<Instant> = None;
        // When the last WAITING Sensor arrived: the wait lasts while they keep coming.
        let mut last_waiting: Option<Instant> = None;
        loop {
            if retries > 0 {
                if let Err(e) = self.link.send(msg) {
                    self.reconnect(&e.to_string())?;
                    return Ok(false);
                }
            }
            let mut deadline = Instant::now() + Duration::from_micros(RETRY_US);
            loop {
                match self.link.recv_until(deadline) {
                    Ok(Some(Message::Sensor(s)))
                        if want.is_none() && s.flags.contains(SensorFlags::WAITING) =>
                    {
                        // The firmware waits for an operator to reset the robot: so do we.
                        let since = *waiting_since.get_or_insert_with(|| {
                            if self.operator_reset {
                                info!("waiting for an operator to reset the robot on {} (the firmware reports WAITING)", self.link.cfg.port);
                            } else {
                                warn!("the firmware on {} waits for an operator to reset the robot, but the bundle says `[episode] reset = \"firmware\"`; waiting", self.link.cfg.port);
                            }
                            Instant::now()
                        });
                        self.waiting_s = since.elapsed().as_secs_f64();
                        retries = 0;
                        last_waiting = Some(Instant::now());
                        if let Err(e) = self.link.heartbeat_if_idle() {
                            self.reconnect(&e.to_string())?;
                            return Ok(false);
                        }
                        deadline = Instant::now() + Duration::from_micros(RETRY_US);
                        continue;
                    }
                    Ok(Some(Message::Sensor(s))) => {
                        let expected = match want {
                            // Real time: the firmware moves on without us; any newer frame is
                            // the current state (frames skipped are counted as gaps).
                            Some(w)
                                if self.link.cfg.mode == Mode::RealTime
                                    && (s.seq == w || seq_after(s.seq, w)) =>
                            {
                                self.link.counters.seq_gaps += s.seq.wrapping_sub(w) as u64;
                                true
                            }
                            Some(w) => s.seq == w,
                            None => s.flags.contains(SensorFlags::RESET),
                        };
                        if expected {
                            let s = if want.is_some() && self.link.cfg.mode == Mode::RealTime {
                                self.link.newest_sensor(s)?
                            } else {
                                s
                            };
                            self.accept(s);
                            return Ok(true);
                        }
                        let last = self.last.as_ref().map(|l| l.seq);
                        if Some(s.seq) == last || want.is_some_and(|w| s.seq.wrapping_add(1) == w) {
                            // A repeat of a frame we already have (a retry crossed its answer).
                            self.link.counters.duplicates += 1;
                        } else if last.is_some_and(|l| s.seq < l && l - s.seq > 2) {
                            // The sequence went backwards: the firmware restarted.
                            self.reconnect("sequence numbers restarted: firmware reboot")?;
                            return Ok(false);
                        } else {
                            self.link.counters.seq_gaps += 1;
                        }
                    }
                    Ok(Some(Message::Fault(f))) => {
                        if f.code == firmware_bridge::FaultCode::EStop {
                            // The e-stop is latched; the answering Sensor (flagged ESTOP) still
                            // follows, and the next Command must answer it, not the last one.
                            self.estop = true;
                            continue;
                        }
                        if f.code == firmware_bridge::FaultCode::Plant && want.is_none() {
                            // PROTOCOL.md §9: a plant fault answers Reset; retrying cannot help.
                            return Err(EnvError::Robot(format!(
                                "the robot on {} reports a plant fault (driver, sensor or limits) and cannot start an episode\n  fix: clear the fault on the robot, then run again (what was learned is saved)",
                                self.link.cfg.port
                            )));
                        }
                        if f.code == firmware_bridge::FaultCode::Protocol {
                            // The firmware lost our handshake (e.g. it rebooted).
                            self.reconnect("the firmware no longer knows this host")?;
                            return Ok(false);
                        }
                    }
                    Ok(Some(_)) => {}
                    // Between WAITING Sensors (due every 100 ms) the host keeps the session with
                    // heartbeats; silence for the link timeout ends the wait (Reset is resent).
                    Ok(None)
                        if last_waiting.is_some_and(|t| {
                            t.elapsed() < Duration::from_micros(firmware_bridge::LINK_TIMEOUT_US)
                        }) =>
                    {
                        if let Err(e) = self.link.heartbeat_if_idle() {
                            self.reconnect(&e.to_string())?;
                            return Ok(false);
                        }
                        deadline = Instant::now() + Duration::from_micros(RETRY_US);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.reconnect(&e.to_string())?;
                        return Ok(false);
                    }
                }
            }
            retries += 1;
            self.link.counters.late_frames += 1;
            if retries >= MAX_RETRIES {
                self.reconnect("no answer after retries")?;
                return Ok(false);
            }
        }
    }
}

impl Env for LinkEnv {
    fn real_time(&self) -> bool {
        self.link.cfg.mode == Mode::RealTime
    }

    fn reset(&mut self) -> Result<(), EnvError> {
        self.waiting_s = 0.0;
        for _ in 0..3 {
            self.episode += 1;
            let seed = crate::streams::link_episode(self.seed_stream, self.episode);
            if self.exchange(&Message::Reset(Reset { seed }), None)? {
                self.t = 0;
                self.episode_seq0 = self.last.as_ref().map_or(0, |s| s.seq);
                return Ok(());
            }
        }
        Err(EnvError::Robot(format!("{}: could not start an episode after reconnecting", self.link.cfg.port)))
    }

    fn act(&mut self, command: &[f32]) -> Result<(), EnvError> {
        let last = self.last.as_ref().ok_or(EnvError::Misuse("a step before a reset"))?;
        let seq = last.seq;
        let mut values = firmware_bridge::Values::new();
        for v in command {
            values.push(*v).map_err(|_| EnvError::Protocol("too many command values".into()))?;
        }
        let period = self.link.firmware.as_ref().map_or(0, |h| h.period_us as u64);
        let mut valid_for = self.link.cfg.command_valid_for.as_micros() as u64;
        if self.link.cfg.mode == Mode::RealTime && period > 0 {
            valid_for = valid_for.min(2 * period);
        }
        let cmd = Command { seq, valid_for_us: valid_for as u32, values };
        let msg = Message::Command(cmd);
        self.sent_intact = match self.link.send(&msg) {
            Ok(()) => true,
            Err(e) => {
                self.reconnect(&e.to_string())?;
                false
            }
        };
        self.in_flight = Some((msg, seq.wrapping_add(1)));
        Ok(())
    }

    fn observe(&mut self) -> Result<StepEnd, EnvError> {
        let (msg, want) = self.in_flight.take().ok_or(EnvError::Misuse("an observe without an act"))?;
        let intact = self.sent_intact && self.await_answer(&msg, Some(want))?;
        // The firmware's own step count (one Sensor a step): in real time the Sensors resq
        // skipped after a stall are steps of the episode too.
        self.t = match (&self.last, intact) {
            (Some(s), true) => s.seq.wrapping_sub(self.episode_seq0),
            _ => self.t + 1,
        };
        if !intact {
            // The link was re-established: this episode cannot continue; end it as a truncation.
            // (Not `late`: the loop kept up; the robot went away. Not learned from either.)
            return Ok(StepEnd::CUT);
        }
        let flags = self.last.as_ref().map_or(SensorFlags::NONE, |s| s.flags);
        if flags.contains(SensorFlags::RESET) {
            // A late answer to a resent Reset (real time takes any newer Sensor): a new episode
            // began at the firmware; this one ended there, cut.
            self.episode_seq0 = self.last.as_ref().map_or(0, |s| s.seq);
            self.t = 0;
            return Ok(StepEnd::CUT);
        }
        // Both flags: a terminal state at the firmware's own time limit counts as terminal.
        let terminated = flags.contains(SensorFlags::TERMINATED);
        let truncated = !terminated && (flags.contains(SensorFlags::TRUNCATED) || self.t >= self.max_steps);
        // Real time: a Sensor newer than the one this command was for means steps were skipped.
        let skipped = self.last.as_ref().is_some_and(|s| s.seq != want);
        let late = flags.intersects(SensorFlags::LATE_COMMAND | SensorFlags::COMMAND_TIMEOUT) || skipped;
        Ok(StepEnd {
            terminated,
            truncated,
            interrupted: false,
            success: flags.contains(SensorFlags::SUCCESS),
            late,
        })
    }

    fn signals(&self) -> &[f32] {
        &self.signals
    }

    fn episode_steps(&self) -> u32 {
        self.t
    }

    fn reseed(&mut self, seed: u64) {
        self.seed_stream = seed;
        self.episode = 0;
    }

    fn estop(&self) -> bool {
        self.estop
    }

    fn counters(&self) -> LinkCounters {
        self.link.counters
    }

    fn frame_stamp(&self) -> (u32, u64) {
        self.last.as_ref().map_or((0, 0), |s| (s.seq, s.t_us))
    }
}
