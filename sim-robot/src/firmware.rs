//! The simulated firmware: a plant behind the wire protocol, exactly as a microcontroller would
//! serve it (PROTOCOL.md). It is I/O-free — bytes in through [`SimFirmware::on_bytes`], bytes out
//! through a callback, time passed in — so the same state machine runs behind a pseudo-terminal
//! (`resq rig`), in tests, and in a fault-injection harness.
//!
//! - **Lock-step**: the plant advances one step per valid Command and the firmware answers with the
//!   next Sensor frame. A Command for a sequence number already answered (a retry after a lost
//!   frame) is not applied twice: the last Sensor frame is sent again.
//! - **Real-time**: every `period_us` the plant advances with the command in force, or with the
//!   safe action (all zeros) once that command has expired (`valid_for_us` after its receipt: one
//!   `Fault{CommandTimeout}` per expiry, and the flag COMMAND_TIMEOUT), and a Sensor frame is sent.
//!   A step that runs late (an overrun) does not make up for the due times it missed.
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
    /// Real-time commands that expired while in force (each sent one `Fault{CommandTimeout}`).
    pub command_timeouts: u64,
    /// Real-time steps that ran a whole period or more after their due time (PROTOCOL.md §8.2).
    pub overruns: u64,
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
    /// Real time: the command in force and when it expires (firmware clock, µs): it is in force
    /// at `t` iff `t < expiry` (PROTOCOL.md §8.2).
    command: Option<(Values, u64)>,
    /// Real time: the command in force expired and no Command was accepted since (§9).
    timeout_active: bool,
    /// Real time: a command expired since the last Sensor (that Sensor's period had the safe
    /// action for a timeout, even if a new Command ended the timeout before the step).
    timeout_since_sensor: bool,
    estop: bool,
    last_rx_us: u64,
    last_tx_us: u64,
    next_tick_us: u64,
    heartbeat_seq: u32,
    last_fault_us: u64,
    last_reset_seed: Option<u64>,
    /// Lock-step: a Command was applied (the plant stepped on it) since the episode started;
    /// only then does a `Reset` with the same seed start a new episode (PROTOCOL.md §8.1).
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
            timeout_active: false,
            timeout_since_sensor: false,
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

    /// Presses the (simulated) e-stop: the safe action applies and a Fault is sent. The command
    /// in force is dropped, and no command times out while the latch is set (PROTOCOL.md §9).
    pub fn press_estop(&mut self, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        self.estop = true;
        self.command = None;
        self.timeout_active = false;
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
            // Lock-step only (PROTOCOL.md §8.1): a retried Reset whose answer was lost, the same
            // episode start, sent again. In real time every Reset starts a new episode (§8.2).
            Message::Reset(r)
                if self.mode == Mode::LockStep
                    && self.episode_live
                    && self.last_reset_seed == Some(r.seed)
                    && !self.commanded =>
            {
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
        self.timeout_active = false;
        self.timeout_since_sensor = false;
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
        match self.mode {
            Mode::LockStep => {
                if c.seq == self.seq {
                    // Only a Command that is applied is the episode's first (PROTOCOL.md §8.1):
                    // not a stale one, nor one with `seq == last − 1`, also right after the RESET
                    // Sensor, where it answers a Sensor from before the episode.
                    self.commanded = true;
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
                    // While the e-stop is latched it is accepted but not put in force (§9).
                    if !self.estop {
                        self.command = Some((c.values, now_us.saturating_add(c.valid_for_us as u64)));
                        self.timeout_active = false;
                        // `valid_for_us = 0` expires on receipt: a command timeout (§8.2).
                        self.expire_command(now_us, emit);
                    }
                } else {
                    self.stats.stale_commands += 1;
                }
            }
        }
    }

    /// Real time: ends the command in force if it has expired at `now_us` (in force iff
    /// `now_us < t_r + valid_for_us`, PROTOCOL.md §8.2): the safe action applies, one
    /// `Fault{CommandTimeout}` is sent for this expiry, and the timeout lasts until the next
    /// accepted Command (§9).
    fn expire_command(&mut self, now_us: u64, emit: &mut dyn FnMut(&[u8])) {
        let Some((_, expiry)) = &self.command else { return };
        if now_us < *expiry {
            return;
        }
        self.command = None;
        self.timeout_active = true;
        self.timeout_since_sensor = true;
        self.stats.command_timeouts += 1;
        self.send(&Message::Fault(Fault { code: FaultCode::CommandTimeout, t_us: now_us }), now_us, emit);
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
        let running = self.mode == Mode::RealTime && self.connected && self.episode_live;
        if running && !self.terminated {
            self.expire_command(now_us, emit);
        }
        if running && now_us >= self.next_tick_us {
            // §8.2, overruns: the next step is due one period after this one's due time or, if
            // that is not after now (a whole period or more was missed), one period after now.
            // The due times missed are skipped.
            self.next_tick_us = self.next_tick_us.saturating_add(self.period_us as u64);
            if self.next_tick_us <= now_us {
                self.stats.overruns += 1;
                self.next_tick_us = now_us.saturating_add(self.period_us as u64);
            }
            // The command in force (expired ones were dropped just above), or the safe action.
            let values = self.command.as_ref().map(|(v, _)| v.clone());
            // The step runs on the answer to the Sensor just before it, or it is late.
            let answered = self.applied_seq == Some(self.seq);
            let mut flags = self.step_plant(values.as_deref());
            // The period before this Sensor had the safe action for a command timeout (§9).
            if self.timeout_active || self.timeout_since_sensor {
                flags.insert(SensorFlags::COMMAND_TIMEOUT);
            }
            self.timeout_since_sensor = false;
            if self.terminated {
                // The episode ended: no command is in force any more (and none expires).
                self.command = None;
                self.timeout_active = false;
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

#[cfg(test)]
mod tests {
    //! The rules PROTOCOL.md marks *Settled:* that this firmware used to get wrong (and the
    //! command timeout of §9 they lean on), each at its exact boundary: frames in, the firmware's
    //! own clock (µs) passed in, frames out.

    use super::*;
    use crate::plant::CartPole;
    use firmware_bridge::timing::WAITING_INTERVAL_US;
    use firmware_bridge::Reset;

    const PERIOD: u32 = 20_000;

    /// A cartpole firmware in session from t = 0, and what it sent (Heartbeats left out).
    struct Bench {
        fw: SimFirmware,
        out: Vec<u8>,
    }

    impl Bench {
        fn new(mode: Mode) -> Self {
            let period = if mode == Mode::RealTime { PERIOD } else { 0 };
            let fw = SimFirmware::new("cartpole", mode, period, 1).expect("a known plant");
            let mut b = Bench { fw, out: Vec::new() };
            let hash = firmware_bridge::layout_hash(&CartPole::SIGNALS, &["force"]);
            let got = b.send(Message::Hello(Hello::host(mode, 0, hash, 4, 1)), 0);
            assert!(matches!(got.as_slice(), [Message::Hello(_)]), "{got:?}");
            b
        }

        fn send(&mut self, msg: Message, t: u64) -> Vec<Message> {
            let frame = firmware_bridge::encode_to_vec(&msg).expect("encodes");
            let out = &mut self.out;
            self.fw.on_bytes(&frame, t, &mut |b| out.extend_from_slice(b));
            self.take()
        }

        fn poll(&mut self, t: u64) -> Vec<Message> {
            let out = &mut self.out;
            self.fw.poll(t, &mut |b| out.extend_from_slice(b));
            self.take()
        }

        /// The host keeps the session alive.
        fn heartbeat(&mut self, t: u64) -> Vec<Message> {
            self.send(Message::Heartbeat(Heartbeat { seq: 0, t_us: t }), t)
        }

        fn take(&mut self) -> Vec<Message> {
            let mut d = Decoder::new();
            let got = d
                .push_slice(&self.out)
                .map(|m| m.expect("the firmware sent a broken frame"))
                .filter(|m| !matches!(m, Message::Heartbeat(_)))
                .collect();
            self.out.clear();
            got
        }
    }

    fn reset(seed: u64) -> Message {
        Message::Reset(Reset { seed })
    }

    fn command(seq: u32, valid_for_us: u32, force: f32) -> Message {
        Message::Command(Command { seq, valid_for_us, values: Values::from_slice(&[force]).unwrap() })
    }

    fn sensors(msgs: &[Message]) -> Vec<Sensor> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Sensor(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn one_sensor(msgs: &[Message]) -> Sensor {
        let s = sensors(msgs);
        assert_eq!(s.len(), 1, "expected one Sensor, got {msgs:?}");
        s[0].clone()
    }

    fn faults(msgs: &[Message]) -> Vec<FaultCode> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Fault(f) => Some(f.code),
                _ => None,
            })
            .collect()
    }

    /// The signals of a cartpole started from `seed` after one step on each of `forces` (0.0 is
    /// the safe action): what a Sensor shows if the firmware's steps ran on exactly these.
    fn after(seed: u64, forces: &[f32]) -> Values {
        let mut p = plant::make("cartpole").unwrap();
        p.reset(&mut SplitMix64(seed));
        for f in forces {
            p.step(&[*f]);
        }
        let mut s = [0.0f32; 4];
        p.signals(&mut s);
        Values::from_slice(&s).unwrap()
    }

    // ---- §8.1: which Command is the episode's first --------------------------------------

    /// §8.1 *Settled:* right after the RESET Sensor, `seq == last − 1` re-sends the RESET Sensor,
    /// does not step, and is not the episode's first Command: a resent `Reset` (same seed) still
    /// re-sends the RESET Sensor.
    #[test]
    fn lock_step_last_minus_one_after_the_reset_sensor_is_not_the_first_command() {
        let mut b = Bench::new(Mode::LockStep);
        let r0 = one_sensor(&b.send(reset(5), 1_000));
        let s1 = one_sensor(&b.send(command(r0.seq, 0, 1.0), 2_000));
        // A new episode before the last one ended.
        let r = one_sensor(&b.send(reset(6), 3_000));
        assert_eq!((r.seq, r.flags), (s1.seq.wrapping_add(1), SensorFlags::RESET));
        // It answers the previous episode's Sensor: the RESET Sensor again, no step.
        assert_eq!(b.send(command(r.seq.wrapping_sub(1), 0, 1.0), 4_000), [Message::Sensor(r.clone())]);
        assert_eq!(b.fw.stats.steps, 1);
        assert_eq!(b.send(reset(6), 5_000), [Message::Sensor(r.clone())]);
        assert_eq!(b.fw.stats.resets, 2);
        let s = one_sensor(&b.send(command(r.seq, 0, 1.0), 6_000));
        assert_eq!(s.seq, r.seq.wrapping_add(1));
        assert_eq!(s.values, after(6, &[1.0]));
    }

    /// §8.1: the `Reset` exception holds until a Command is *applied*; ignored (stale) Commands
    /// do not count.
    #[test]
    fn lock_step_a_stale_command_is_not_the_first_command() {
        let mut b = Bench::new(Mode::LockStep);
        let r = one_sensor(&b.send(reset(5), 1_000));
        for seq in [r.seq.wrapping_add(1), r.seq.wrapping_sub(2), r.seq.wrapping_add(1_000)] {
            assert!(b.send(command(seq, 0, 1.0), 2_000).is_empty());
        }
        assert_eq!(b.fw.stats.stale_commands, 3);
        assert_eq!(b.send(reset(5), 3_000), [Message::Sensor(r.clone())]);
        assert_eq!((b.fw.stats.resets, b.fw.stats.steps), (1, 0));
    }

    // ---- §8: a lost RESET Sensor after an operator wait ----------------------------------

    /// Waits for a (simulated) operator from t = 1 000 to 301 000 with the host heartbeating;
    /// returns the last WAITING Sensor and the RESET Sensor that ends the wait (lost on its way
    /// to the host).
    fn wait_and_lose_the_reset_sensor(b: &mut Bench) -> (Sensor, Sensor) {
        b.fw.set_operator_reset(300_000);
        let w = one_sensor(&b.send(reset(9), 1_000));
        assert_eq!(w.flags, SensorFlags::WAITING);
        // A Command during the wait is ignored.
        assert!(b.send(command(w.seq, 40_000, 1.0), 2_000).is_empty());
        let mut got = Vec::new();
        for t in (51_000..=301_000).step_by(50_000) {
            got.extend(b.heartbeat(t));
            got.extend(b.poll(t));
        }
        let got = sensors(&got);
        let waiting: Vec<_> = got.iter().filter(|s| s.flags == SensorFlags::WAITING).collect();
        let resets: Vec<_> = got.iter().filter(|s| s.flags.contains(SensorFlags::RESET)).collect();
        assert_eq!((waiting.len(), resets.len()), (2, 1), "{got:?}");
        assert_eq!(waiting[1].t_us, 1_000 + 2 * WAITING_INTERVAL_US);
        assert_eq!(resets[0].seq, waiting[1].seq.wrapping_add(1));
        assert_eq!(b.fw.stats.resets, 1);
        (waiting[1].clone(), resets[0].clone())
    }

    /// §8 *Settled:* lock-step: the host resends its `Reset` (same seed) once no WAITING Sensor
    /// came for `LINK_TIMEOUT_US`; the firmware re-sends the RESET Sensor unchanged and does not
    /// wait again, also when late Commands for the WAITING Sensors arrived after it.
    #[test]
    fn lock_step_a_lost_reset_sensor_after_an_operator_wait_is_sent_again() {
        let mut b = Bench::new(Mode::LockStep);
        let (last_waiting, lost) = wait_and_lose_the_reset_sensor(&mut b);
        // Late answers to WAITING Sensors: one stale, one with seq == last − 1 (the RESET Sensor
        // is re-sent, lost again). Neither is applied.
        let first_waiting = last_waiting.seq.wrapping_sub(2);
        assert!(b.send(command(first_waiting, 40_000, 1.0), 302_000).is_empty());
        assert_eq!(b.send(command(last_waiting.seq, 40_000, 1.0), 303_000), [Message::Sensor(lost.clone())]);
        let t = 301_000 + LINK_TIMEOUT_US;
        for hb in (351_000..t).step_by(100_000) {
            b.heartbeat(hb);
            assert!(sensors(&b.poll(hb)).is_empty());
        }
        assert_eq!(b.send(reset(9), t), [Message::Sensor(lost.clone())]);
        assert_eq!((b.fw.stats.resets, b.fw.stats.steps), (1, 0));
        let s = one_sensor(&b.send(command(lost.seq, 0, 1.0), t + 1_000));
        assert_eq!((s.seq, s.flags), (lost.seq.wrapping_add(1), SensorFlags::NONE));
        assert_eq!(s.values, after(9, &[1.0]));
    }

    /// §8 *Settled:* in real time the resent `Reset` starts a new episode: the robot waits for
    /// the operator again.
    #[test]
    fn real_time_a_resent_reset_after_an_operator_wait_waits_again() {
        let mut b = Bench::new(Mode::RealTime);
        let (_, lost) = wait_and_lose_the_reset_sensor(&mut b);
        let w = one_sensor(&b.send(reset(9), 320_000));
        assert_eq!((w.seq, w.flags), (lost.seq.wrapping_add(1), SensorFlags::WAITING));
        assert_eq!(b.fw.next_step_us(), None, "no episode runs while the operator works");
    }

    // ---- §8.2: Reset in real time --------------------------------------------------------

    /// §8.2: `Reset` in real time always starts a new episode (a new RESET Sensor), also with the
    /// same seed and no Command yet.
    #[test]
    fn real_time_a_repeated_reset_starts_a_new_episode() {
        let mut b = Bench::new(Mode::RealTime);
        let r = one_sensor(&b.send(reset(3), 1_000));
        let again = one_sensor(&b.send(reset(3), 2_000));
        assert_eq!((again.seq, again.flags), (r.seq.wrapping_add(1), SensorFlags::RESET));
        assert_eq!((again.t_us, b.fw.stats.resets), (2_000, 2));
        // Its period timer starts from the new RESET Sensor.
        assert_eq!(b.fw.next_step_us(), Some(2_000 + PERIOD as u64));
        assert_eq!(b.fw.stats.repeated_sensor_frames, 0);
    }

    // ---- §8.2 / §9: expiry and command timeouts -------------------------------------------

    /// A real-time episode whose RESET Sensor goes out at 1 000: steps are due at 21 000,
    /// 41 000, …
    fn real_time_episode(seed: u64) -> (Bench, Sensor) {
        let mut b = Bench::new(Mode::RealTime);
        let r = one_sensor(&b.send(reset(seed), 1_000));
        assert_eq!(b.fw.next_step_us(), Some(21_000));
        (b, r)
    }

    /// §8.2 *Settled:* in force iff `t_r ≤ t < t_r + valid_for_us`: the step at exactly
    /// `t_r + valid_for_us` runs on the safe action, and the expiry is a command timeout (§9:
    /// `Fault{2}`, COMMAND_TIMEOUT).
    #[test]
    fn real_time_a_step_at_receipt_plus_valid_for_runs_on_the_safe_action() {
        let (mut b, r) = real_time_episode(1);
        assert!(b.send(command(r.seq, 19_000, 1.0), 2_000).is_empty()); // expires at 21 000
        assert!(b.poll(20_999).is_empty());
        let out = b.poll(21_000);
        assert_eq!(faults(&out), [FaultCode::CommandTimeout]);
        assert!(
            matches!(out[0], Message::Fault(Fault { t_us: 21_000, .. })),
            "the Fault comes first: {out:?}"
        );
        let s = one_sensor(&out);
        assert_eq!(s.values, after(1, &[0.0]));
        assert!(s.flags.contains(SensorFlags::COMMAND_TIMEOUT), "{:?}", s.flags);
        assert!(!s.flags.contains(SensorFlags::LATE_COMMAND), "{:?}", s.flags);
        assert_eq!(b.fw.stats.command_timeouts, 1);
    }

    /// The other side of the boundary: one microsecond more and the step runs on the command.
    #[test]
    fn real_time_a_step_before_receipt_plus_valid_for_runs_on_the_command() {
        let (mut b, r) = real_time_episode(1);
        assert!(b.send(command(r.seq, 19_001, 1.0), 2_000).is_empty());
        let out = b.poll(21_000);
        assert_eq!(faults(&out), []);
        let s = one_sensor(&out);
        assert_eq!(s.values, after(1, &[1.0]));
        assert_eq!(s.flags, SensorFlags::NONE);
        // ... and it expires one microsecond later.
        assert_eq!(faults(&b.poll(21_001)), [FaultCode::CommandTimeout]);
    }

    /// §8.2 *Settled:* `valid_for_us = 0` is accepted (it becomes `applied`) but expires on
    /// receipt: never applied, and a command timeout like any other (`Fault{2}` at once).
    #[test]
    fn real_time_valid_for_0_expires_on_receipt() {
        let (mut b, r) = real_time_episode(1);
        let out = b.send(command(r.seq, 0, 1.0), 2_000);
        assert_eq!(out, [Message::Fault(Fault { code: FaultCode::CommandTimeout, t_us: 2_000 })]);
        let s = one_sensor(&b.poll(21_000));
        assert_eq!(s.values, after(1, &[0.0]));
        assert!(s.flags.contains(SensorFlags::COMMAND_TIMEOUT), "{:?}", s.flags);
        assert!(!s.flags.contains(SensorFlags::LATE_COMMAND), "accepted: applied == last");
        // It was accepted: a copy is stale, not a new command; no second Fault.
        assert!(b.send(command(r.seq, 40_000, 1.0), 22_000).is_empty());
        assert_eq!(b.fw.stats.stale_commands, 1);
        let out = b.poll(41_000);
        assert_eq!(faults(&out), []);
        assert_eq!(one_sensor(&out).values, after(1, &[0.0, 0.0]));
        assert_eq!(b.fw.stats.command_timeouts, 1);
    }

    /// §9: one `Fault{2}` per expiry; COMMAND_TIMEOUT on every Sensor after a period under the
    /// safe action for it; a new accepted Command ends the timeout, and its own expiry is a new
    /// one.
    #[test]
    fn real_time_one_fault_per_expiry() {
        let (mut b, r) = real_time_episode(2);
        b.send(command(r.seq, 19_000, 1.0), 2_000); // expires at 21 000
        let out = b.poll(21_000);
        assert_eq!(faults(&out), [FaultCode::CommandTimeout]);
        assert!(one_sensor(&out).flags.contains(SensorFlags::COMMAND_TIMEOUT));
        let out = b.poll(41_000);
        assert_eq!(faults(&out), []);
        let s2 = one_sensor(&out);
        assert!(s2.flags.contains(SensorFlags::COMMAND_TIMEOUT), "{:?}", s2.flags);
        assert!(b.send(command(s2.seq, 30_000, -1.0), 42_000).is_empty()); // in force until 72 000
        let out = b.poll(61_000);
        assert_eq!(faults(&out), []);
        let s3 = one_sensor(&out);
        assert_eq!(s3.flags, SensorFlags::NONE);
        assert_eq!(s3.values, after(2, &[0.0, 0.0, -1.0]));
        let out = b.poll(81_000);
        assert_eq!(faults(&out), [FaultCode::CommandTimeout]);
        assert!(one_sensor(&out).flags.contains(SensorFlags::COMMAND_TIMEOUT));
        assert_eq!(faults(&b.poll(101_000)), []);
        assert_eq!(b.fw.stats.command_timeouts, 2);
    }

    /// §8.2: until the episode's first Command is *accepted* the safe action is applied, and
    /// that is not a timeout; a stale Command does not change that.
    #[test]
    fn real_time_a_stale_command_before_the_first_is_not_a_timeout() {
        let (mut b, r) = real_time_episode(1);
        // For a Sensor not sent yet, and for one from before the episode.
        assert!(b.send(command(r.seq.wrapping_add(1), 40_000, 1.0), 2_000).is_empty());
        assert!(b.send(command(r.seq.wrapping_sub(1), 40_000, 1.0), 3_000).is_empty());
        assert_eq!(b.fw.stats.stale_commands, 2);
        let out = b.poll(21_000);
        assert_eq!(faults(&out), []);
        let s = one_sensor(&out);
        assert_eq!(s.values, after(1, &[0.0]));
        assert_eq!(s.flags, SensorFlags::LATE_COMMAND);
    }

    /// §9: no command times out while the e-stop is latched (no COMMAND_TIMEOUT, no `Fault{2}`);
    /// a Command received while latched is accepted but not put in force; after `ClearEstop`,
    /// commands apply again from the next accepted one, and time out again.
    #[test]
    fn real_time_no_command_times_out_while_the_estop_is_latched() {
        let (mut b, r) = real_time_episode(4);
        b.send(command(r.seq, 19_000, 1.0), 2_000); // would expire at 21 000
        let out = &mut b.out;
        b.fw.press_estop(10_000, &mut |x| out.extend_from_slice(x));
        assert_eq!(faults(&b.take()), [FaultCode::EStop]);
        let out = b.poll(21_000);
        assert_eq!(faults(&out), []);
        let s1 = one_sensor(&out);
        assert_eq!(s1.flags, SensorFlags::ESTOP);
        assert!(b.send(command(s1.seq, 100_000, 1.0), 22_000).is_empty());
        let out = b.poll(41_000);
        assert_eq!(faults(&out), []);
        assert_eq!(one_sensor(&out).flags, SensorFlags::ESTOP, "accepted (not late), not in force");
        assert!(b.send(Message::ClearEstop, 42_000).is_empty());
        let out = b.poll(61_000);
        assert_eq!(faults(&out), []);
        let s3 = one_sensor(&out);
        assert!(!s3.flags.intersects(SensorFlags::ESTOP | SensorFlags::COMMAND_TIMEOUT), "{:?}", s3.flags);
        assert_eq!(s3.values, after(4, &[0.0, 0.0, 0.0]));
        b.send(command(s3.seq, 30_000, 1.0), 62_000); // in force until 92 000
        let out = b.poll(81_000);
        assert_eq!(faults(&out), []);
        assert_eq!(one_sensor(&out).values, after(4, &[0.0, 0.0, 0.0, 1.0]));
        assert_eq!(faults(&b.poll(101_000)), [FaultCode::CommandTimeout]);
        assert_eq!(b.fw.stats.command_timeouts, 1);
    }

    // ---- §8.2: overruns ------------------------------------------------------------------

    /// §8.2 *Settled:* a late step runs once; the next is due one period after its due time or,
    /// if that is not after its start, one period after its start. Late by exactly one period,
    /// `due + period == start` is not after the start: no second step at once.
    #[test]
    fn real_time_an_overrun_does_not_catch_up() {
        let mut b = Bench::new(Mode::RealTime);
        let r = one_sensor(&b.send(reset(1), 0)); // due: 20 000, 40 000, …
        let s1 = one_sensor(&b.poll(20_000));
        assert_eq!(b.fw.next_step_us(), Some(40_000));
        // Due at 40 000, runs at 60 000: exactly one period late.
        let s2 = one_sensor(&b.poll(60_000));
        assert_eq!((s1.seq, s2.seq, s2.t_us), (r.seq + 1, r.seq + 2, 60_000));
        assert_eq!(b.fw.next_step_us(), Some(80_000));
        assert!(sensors(&b.poll(60_000)).is_empty(), "no catching up");
        assert!(sensors(&b.poll(79_999)).is_empty());
        assert_eq!(one_sensor(&b.poll(80_000)).seq, r.seq + 3);
        // Due at 100 000, runs at 150 000: one step, not three; due times skipped, no seq gap.
        assert_eq!(one_sensor(&b.poll(150_000)).seq, r.seq + 4);
        assert_eq!(b.fw.next_step_us(), Some(170_000));
        // Late by less than a period: the schedule is kept.
        assert_eq!(one_sensor(&b.poll(185_000)).seq, r.seq + 5);
        assert_eq!(b.fw.next_step_us(), Some(190_000));
        assert_eq!((b.fw.stats.overruns, b.fw.stats.steps), (2, 5));
    }
}
