//! The simulated firmware: a plant behind the wire protocol, exactly as a microcontroller would
//! serve it (PROTOCOL.md). It is I/O-free — bytes in through [`SimFirmware::on_bytes`], bytes out
//! through a callback, time passed in — so the same state machine runs behind a pseudo-terminal
//! (`resq rig`), in tests, and in a fault-injection harness.
//!
//! - **Lock-step**: the plant advances one step per valid Command and the firmware answers with the
//!   next Sensor frame. A Command for a sequence number already answered (a retry after a lost
//!   frame) is not applied twice: the last Sensor frame is sent again.
//! - **Real-time**: every `period_us` the plant advances with the last valid Command, or with the
//!   safe action (all zeros) once that Command is older than its `valid_for_us` (flag
//!   COMMAND_TIMEOUT), and a Sensor frame is sent.
//!
//! Either way, a Hello with the wrong version, layout or counts is answered with a Reject; nothing
//! moves before a valid handshake; silence from the host for `LINK_TIMEOUT_US` applies the safe
//! action and waits for a new Hello; an e-stop latches until an explicit ClearEstop; a Command
//! with the wrong number of values is ignored and answered with `Fault{Protocol}`. A layout or
//! count mismatch is followed by the firmware's `Name`s. Optionally it stays *busy* for a while
//! after boot ([`SimFirmware::set_busy_until`]), or waits for a simulated operator at each reset
//! ([`SimFirmware::set_operator_reset`]: WAITING Sensors, then the RESET Sensor).

use crate::plant::{self, Plant};
use firmware_bridge::timing::{HEARTBEAT_IDLE_US, LINK_TIMEOUT_US, PROTOCOL_FAULT_INTERVAL_US};
use firmware_bridge::{
    encode, Command, Decoder, Fault, FaultCode, Heartbeat, Hello, Message, Mode, Role, Sensor, SensorFlags,
    Values, MAX_FRAME, PROTOCOL_VERSION,
};

/// SplitMix64: the firmware's own small random source (plant resets, boot ids).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl rand_core::RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Counters the simulated firmware keeps (what a real firmware would report over a debug port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirmwareStats {
    pub handshakes: u64,
    pub rejects: u64,
    pub steps: u64,
    pub resets: u64,
    pub repeated_sensor_frames: u64,
    pub stale_commands: u64,
    pub command_timeouts: u64,
    /// Real-time steps that did not run on the answer to the Sensor before them (LATE_COMMAND).
    pub late_steps: u64,
    pub link_timeouts: u64,
    /// Commands received outside the plant's physical range (the plant clamps them).
    pub commands_out_of_range: u64,
}

/// A plant served over the protocol.
pub struct SimFirmware {
    plant: Box<dyn Plant>,
    mode: Mode,
    period_us: u32,
    layout_hash: u32,
    boot_id: u32,
    decoder: Decoder,
    past_decoder: firmware_bridge::DecoderStats,
    rng: SplitMix64,
    connected: bool,
    episode_live: bool,
    terminated: bool,
    seq: u32,
    last_sensor: Option<Sensor>,
    command: Option<(Values, u64)>,
    estop: bool,
    last_rx_us: u64,
    last_tx_us: u64,
    next_tick_us: u64,
    heartbeat_seq: u32,
    last_fault_us: u64,
    last_reset_seed: Option<u64>,
    /// A Command was applied since the last Reset.
    commanded: bool,
    /// Real time: the seq of the episode's RESET Sensor, and of the last Command accepted in
    /// the episode (PROTOCOL.md §8.2).
    first_seq: u32,
    applied_seq: Option<u32>,
    /// Answer Hellos with `Reject{busy}` until this time (a firmware still calibrating).
    busy_until_us: u64,
    /// A robot that an operator resets: how long each reset takes (0: the firmware resets it).
    operator_reset_us: u64,
    /// While an operator resets: (ready at, next WAITING Sensor at, the Reset's seed).
    waiting: Option<(u64, u64, u64)>,
    pub stats: FirmwareStats,
}

impl SimFirmware {
    /// A firmware for the named plant; `None` for an unknown plant. `period_us` applies to
    /// real-time mode. `boot_seed` makes boot ids (and nothing else) differ between boots.
    pub fn new(plant_name: &str, mode: Mode, period_us: u32, boot_seed: u64) -> Option<Self> {
        let plant = plant::make(plant_name)?;
        let layout_hash = firmware_bridge::layout_hash(plant.signal_names(), plant.command_names());
        let mut rng = SplitMix64(boot_seed);
        let boot_id = rand_core::RngCore::next_u32(&mut rng) | 1;
        Some(SimFirmware {
            plant,
            mode,
            period_us,
            layout_hash,
            boot_id,
            decoder: Decoder::new(),
            past_decoder: firmware_bridge::DecoderStats::default(),
            rng,
            connected: false,
            episode_live: false,
            terminated: false,
            seq: 0,
            last_sensor: None,
            command: None,
            estop: false,
            last_rx_us: 0,
            last_tx_us: 0,
            next_tick_us: 0,
            heartbeat_seq: 0,
            last_fault_us: 0,
            last_reset_seed: None,
            commanded: false,
            first_seq: 0,
            applied_seq: None,
            busy_until_us: 0,
            operator_reset_us: 0,
            waiting: None,
            stats: FirmwareStats::default(),
        })
    }

    /// Answers every Hello with `Reject{busy}` until the firmware clock reaches `t_us` (as a
    /// firmware that is still calibrating does).
    pub fn set_busy_until(&mut self, t_us: u64) {
        self.busy_until_us = t_us;
    }

    /// Simulates a robot that an operator resets: each `Reset` is answered with WAITING Sensors
    /// (one every `WAITING_INTERVAL_US`) for `reset_us`, then the RESET Sensor.
    pub fn set_operator_reset(&mut self, reset_us: u64) {
        self.operator_reset_us = reset_us;
    }

    pub fn boot_id(&self) -> u32 {
        self.boot_id
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Decoder counters since power-on of the simulation (summed over reboots).
    pub fn decoder_stats(&self) -> firmware_bridge::DecoderStats {
        self.past_decoder.plus(&self.decoder.stats())
    }

    /// Simulates a power cycle: new boot id, sequence numbers restart, the handshake and the
    /// episode are lost.
    pub fn reboot(&mut self) {
        let boot_id = rand_core::RngCore::next_u32(&mut self.rng) | 1;
        self.boot_id = boot_id;
        self.past_decoder = self.decoder_stats();
        self.decoder = Decoder::new();
        self.connected = false;
        self.episode_live = false;
        self.terminated = false;
        self.seq = 0;
        self.last_sensor = None;
        self.command = None;
        self.estop = false;
    }

    /// Presses the (simulated) e-stop: the safe action applies and a Fault is sent.
    pub fn press_estop(&mut self, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        self.estop = true;
        self.send(&Message::Fault(Fault { code: FaultCode::EStop, t_us: now_us }), now_us, emit);
    }

    fn send(&mut self, msg: &Message, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        let mut buf = [0u8; MAX_FRAME];
        if let Ok(n) = encode(msg, &mut buf) {
            emit(&buf[..n]);
            self.last_tx_us = now_us;
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            role: Role::Firmware,
            mode: self.mode,
            period_us: if self.mode == Mode::RealTime { self.period_us } else { 0 },
            layout_hash: self.layout_hash,
            n_signals: self.plant.signal_names().len() as u8,
            n_actions: self.plant.command_names().len() as u8,
            boot_id: self.boot_id,
        }
    }

    fn sensor(&mut self, flags: SensorFlags, now_us: u64) -> Sensor {
        let mut signals = [0.0f32; firmware_bridge::MAX_VALUES];
        let n = self.plant.signal_names().len();
        self.plant.signals(&mut signals[..n]);
        let mut values = Values::new();
        for v in &signals[..n] {
            let _ = values.push(*v);
        }
        let mut flags = flags;
        if self.estop {
            flags.insert(SensorFlags::ESTOP);
        }
        Sensor { seq: self.seq, t_us: now_us, flags, values }
    }

    fn emit_sensor(&mut self, flags: SensorFlags, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        let s = self.sensor(flags, now_us);
        self.send(&Message::Sensor(s.clone()), now_us, emit);
        self.last_sensor = Some(s);
    }

    /// Advances the plant one step with `values` (or the safe action) and returns the flags.
    fn step_plant(&mut self, values: Option<&[f32]>) -> SensorFlags {
        let n = self.plant.command_names().len();
        let mut cmd = [0.0f32; firmware_bridge::MAX_VALUES];
        if let (Some(v), false) = (values, self.estop) {
            cmd[..n].copy_from_slice(&v[..n]);
            let bounds = self.plant.command_bounds();
            if cmd[..n].iter().zip(bounds).any(|(c, (lo, hi))| !(*lo..=*hi).contains(c)) {
                self.stats.commands_out_of_range += 1;
            }
        }
        let mut flags = SensorFlags(0);
        if !self.terminated {
            self.terminated = self.plant.step(&cmd[..n]);
            self.stats.steps += 1;
        }
        if self.terminated {
            flags.insert(SensorFlags::TERMINATED);
        }
        flags
    }

    /// Handles received bytes at time `now_us`; replies go to `emit`.
    pub fn on_bytes(&mut self, bytes: &[u8], now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        for &b in bytes {
            let Some(result) = self.decoder.push(b) else {
                continue;
            };
            let Ok(msg) = result else { continue };
            self.last_rx_us = now_us;
            self.on_message(msg, now_us, emit);
        }
    }

    fn on_message(&mut self, msg: Message, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        match msg {
            Message::Hello(h) => {
                let me = self.hello();
                match me.check_peer(&h) {
                    Err(reason) => {
                        self.stats.rejects += 1;
                        self.send(&Message::Reject(me.reject(reason)), now_us, emit);
                        if matches!(
                            reason,
                            firmware_bridge::RejectReason::LayoutHash | firmware_bridge::RejectReason::Counts
                        ) {
                            // Name every signal and command, so the host can say which differ.
                            let names = firmware_bridge::Name::layout(
                                self.plant.signal_names(),
                                self.plant.command_names(),
                            );
                            for n in names {
                                self.send(&Message::Name(n), now_us, emit);
                            }
                        }
                    }
                    Ok(()) if now_us < self.busy_until_us => {
                        self.send(
                            &Message::Reject(me.reject(firmware_bridge::RejectReason::Busy)),
                            now_us,
                            emit,
                        );
                    }
                    Ok(()) => {
                        self.stats.handshakes += 1;
                        self.connected = true;
                        // A new session ends any running episode (and any wait for an operator).
                        self.episode_live = false;
                        self.command = None;
                        self.waiting = None;
                        self.send(&Message::Hello(me), now_us, emit);
                    }
                }
            }
            Message::Command(_) | Message::Reset(_) if !self.connected => {
                if now_us.saturating_sub(self.last_fault_us) >= PROTOCOL_FAULT_INTERVAL_US
                    || self.last_fault_us == 0
                {
                    self.last_fault_us = now_us.max(1);
                    self.send(
                        &Message::Fault(Fault { code: FaultCode::Protocol, t_us: now_us }),
                        now_us,
                        emit,
                    );
                }
            }
            _ if !self.connected => {}
            Message::Reset(r)
                if self.episode_live && self.last_reset_seed == Some(r.seed) && !self.commanded =>
            {
                // A retried Reset whose answer was lost: the same episode start, sent again.
                self.stats.repeated_sensor_frames += 1;
                if let Some(s) = self.last_sensor.clone() {
                    self.send(&Message::Sensor(s), now_us, emit);
                }
            }
            // An operator is already resetting the robot: keep waiting (the same deadline), take
            // the newest seed, and say so (PROTOCOL.md §8, operator resets).
            Message::Reset(r) if self.waiting.is_some() => {
                if let Some((ready, next, _)) = self.waiting {
                    self.waiting = Some((ready, next, r.seed));
                }
                self.seq = self.seq.wrapping_add(1);
                self.emit_sensor(SensorFlags::WAITING, now_us, emit);
            }
            Message::Reset(r) if self.operator_reset_us > 0 => {
                self.episode_live = false;
                self.command = None;
                self.waiting = Some((
                    now_us + self.operator_reset_us,
                    now_us + firmware_bridge::timing::WAITING_INTERVAL_US,
                    r.seed,
                ));
                self.seq = self.seq.wrapping_add(1);
                self.emit_sensor(SensorFlags::WAITING, now_us, emit);
            }
            Message::Reset(r) => self.start_episode(r.seed, now_us, emit),
            Message::Command(c) => self.on_command(c, now_us, emit),
            Message::ClearEstop => self.estop = false,
            // A Reject from the host ends the session (it refused our Hello).
            Message::Reject(_) => {
                self.connected = false;
                self.episode_live = false;
                self.command = None;
            }
            Message::Heartbeat(_) | Message::Fault(_) | Message::Sensor(_) | Message::Name(_) => {}
        }
    }

    /// Starts an episode from the plant's initial state drawn with `seed`: the RESET Sensor.
    fn start_episode(&mut self, seed: u64, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        self.stats.resets += 1;
        let mut rng = SplitMix64(seed);
        self.plant.reset(&mut rng);
        self.terminated = false;
        self.episode_live = true;
        self.commanded = false;
        self.last_reset_seed = Some(seed);
        self.command = None;
        self.waiting = None;
        self.seq = self.seq.wrapping_add(1);
        self.first_seq = self.seq;
        self.applied_seq = None;
        self.next_tick_us = now_us + self.period_us as u64;
        self.emit_sensor(SensorFlags::RESET, now_us, emit);
    }

    fn on_command(&mut self, c: Command, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        if !self.episode_live {
            return;
        }
        if self.terminated {
            // Between episodes only a retry of the last applied Command is answered: the
            // episode's last Sensor was lost, so it is sent again.
            if self.mode == Mode::LockStep && c.seq.wrapping_add(1) == self.seq {
                self.stats.repeated_sensor_frames += 1;
                if let Some(s) = self.last_sensor.clone() {
                    self.send(&Message::Sensor(s), now_us, emit);
                }
            }
            return;
        }
        if c.values.len() != self.plant.command_names().len() {
            self.send(&Message::Fault(Fault { code: FaultCode::Protocol, t_us: now_us }), now_us, emit);
            return;
        }
        self.commanded = true;
        match self.mode {
            Mode::LockStep => {
                if c.seq == self.seq {
                    let flags = self.step_plant(Some(&c.values));
                    self.seq = self.seq.wrapping_add(1);
                    self.emit_sensor(flags, now_us, emit);
                } else if c.seq.wrapping_add(1) == self.seq {
                    // A retry of the command we already applied: our answer was lost.
                    self.stats.repeated_sensor_frames += 1;
                    if let Some(s) = self.last_sensor.clone() {
                        self.send(&Message::Sensor(s), now_us, emit);
                    }
                } else {
                    self.stats.stale_commands += 1;
                }
            }
            Mode::RealTime => {
                // §8.2: an answer to a Sensor of this episode already sent, newer than the last
                // accepted one (a late answer is still the newest command the host has).
                let sent = c.seq.wrapping_sub(self.first_seq) <= self.seq.wrapping_sub(self.first_seq);
                let newer = self.applied_seq.is_none_or(|a| firmware_bridge::timing::seq_after(c.seq, a));
                if sent && newer {
                    self.applied_seq = Some(c.seq);
                    self.command = Some((c.values, now_us + c.valid_for_us as u64));
                } else {
                    self.stats.stale_commands += 1;
                }
            }
        }
    }

    /// Real time: when the next step is due (firmware clock, µs), while an episode runs.
    pub fn next_step_us(&self) -> Option<u64> {
        (self.mode == Mode::RealTime && self.connected && self.episode_live).then_some(self.next_tick_us)
    }

    /// Time-driven work at `now_us`: real-time steps, command and link timeouts, heartbeats.
    pub fn poll(&mut self, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        if let (Some((ready, next, seed)), true) = (self.waiting, self.connected) {
            if now_us >= ready {
                self.start_episode(seed, now_us, emit);
            } else if now_us >= next {
                self.waiting = Some((ready, next + firmware_bridge::timing::WAITING_INTERVAL_US, seed));
                self.seq = self.seq.wrapping_add(1);
                self.emit_sensor(SensorFlags::WAITING, now_us, emit);
            }
        }
        if self.connected && now_us.saturating_sub(self.last_rx_us) > LINK_TIMEOUT_US {
            // The host is gone: safe action, wait for a new Hello.
            self.stats.link_timeouts += 1;
            self.connected = false;
            self.episode_live = false;
            self.command = None;
            self.waiting = None;
        }
        if self.mode == Mode::RealTime && self.connected && self.episode_live && now_us >= self.next_tick_us {
            self.next_tick_us += self.period_us as u64;
            if self.next_tick_us < now_us {
                self.next_tick_us = now_us + self.period_us as u64;
            }
            let valid = match &self.command {
                Some((_, deadline)) => now_us <= *deadline,
                None => false,
            };
            let values = if valid { self.command.as_ref().map(|(v, _)| v.clone()) } else { None };
            // The step runs on the answer to the Sensor just before it, or it is late.
            let answered = self.applied_seq == Some(self.seq);
            let mut flags = self.step_plant(values.as_deref());
            if !valid && self.commanded {
                self.stats.command_timeouts += 1;
                flags.insert(SensorFlags::COMMAND_TIMEOUT);
            }
            if !answered {
                self.stats.late_steps += 1;
                flags.insert(SensorFlags::LATE_COMMAND);
            }
            self.seq = self.seq.wrapping_add(1);
            self.emit_sensor(flags, now_us, emit);
        }
        if now_us.saturating_sub(self.last_tx_us) > HEARTBEAT_IDLE_US {
            self.heartbeat_seq = self.heartbeat_seq.wrapping_add(1);
            let hb = Heartbeat { seq: self.heartbeat_seq, t_us: now_us };
            self.send(&Message::Heartbeat(hb), now_us, emit);
        }
    }
}
