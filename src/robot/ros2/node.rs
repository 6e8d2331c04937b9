//! resq as a node of the robot's ROS 2 graph, over Zenoh as rmw_zenoh speaks it ([`Ros2Env`]):
//! the same [`Env`] the control loop drives over the serial link, with signals read from the
//! fields of declared topics and commands published to a controller's topic.
//!
//! - **Session.** A Zenoh peer that connects to the router at `[ros2] router` (rmw_zenoh's
//!   default `tcp/localhost:7447`), multicast scouting off, as rmw_zenoh's default session
//!   config; or the user's own Zenoh config file (TLS, other endpoints).
//! - **Graph.** Liveliness tokens for the node, its command publisher, its subscriptions and its
//!   reset client ([`names`]), so `ros2 node list` and `ros2 topic list` on the robot see resq.
//! - **Ticks.** Each subscription's callback (a Zenoh thread) decodes the message and stores the
//!   fields of the signals it carries. A message on the clock topic is a tick: the signals as
//!   they stand then (or, with `[ros2] clock_period_ms`, each period of resq's own timer). A signal not read within `stale_after` of a tick, or missing from the
//!   clock message itself, makes the tick stale: resq sends the safe command in its place and
//!   does not learn from it. Messages of another type on a declared topic, malformed CDR and
//!   fields a message lacks (a joint name missing from a JointState) are counted and named
//!   once in the log.
//! - **Commands.** `act` hands the command to a publisher thread (no allocation, no blocking on
//!   the control thread), which serialises it and puts it with rmw_zenoh's attachment. On a
//!   real-time robot the same thread is the watchdog: when the clock falls silent for
//!   `stale_after`, or no command has come from the loop for as long (a stall, a reset), it
//!   publishes the safe command, as a firmware applies its safe action when commands stop. The
//!   safe command is published once more when resq leaves.
//! - **Episodes.** A reset calls the `std_srvs/srv/Trigger` service `[ros2] reset_service`
//!   (where configured) and waits for the first tick after it; a reply with `success = false`
//!   (the robot is not ready, e.g. an operator resets it) is retried every second. Without a
//!   service, an episode starts from the robot's current state. A clock silence longer than
//!   `stale_after` cuts the episode (as a reconnect does on the link); a silence longer than
//!   `reconnect_within` stops the run.
//! - **E-stop.** A `std_msgs/msg/Bool` topic (`[ros2] estop_topic`) whose `data` is true while
//!   the robot's e-stop is pressed.
//!
//! [`names`]: super::names

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use zenoh::Wait;

use super::fields::{command_msg, Field, Msg};
use super::msg;
use super::names::{self, EntityKind, MsgType, BOOL, TRIGGER};
use crate::robot::{Env, EnvError, LinkCounters, StepEnd};

/// Where each signal and command lives in ROS 2 messages (the manifest's `[ros2]`, checked at
/// load).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The declared topics and their types.
    pub topics: Vec<(String, MsgType)>,
    /// What clocks the ticks.
    pub clock: Clock,
    /// Per signal: its topic's index and its field.
    pub signals: Vec<(usize, Field)>,
    pub command_topic: String,
    pub command_type: MsgType,
    /// Per command: its field in the command message.
    pub commands: Vec<Field>,
}

/// What makes a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// Every message on this topic (its index in [`Layout::topics`]).
    Topic(usize),
    /// resq's own timer, at this period: the signals as they stand then.
    Period(Duration),
}

impl Layout {
    /// The clock topic's index, if a topic clocks the ticks.
    pub fn clock_topic(&self) -> Option<usize> {
        match self.clock {
            Clock::Topic(i) => Some(i),
            Clock::Period(_) => None,
        }
    }
}

/// How to join the robot's graph (the manifest's `[ros2]` and `[robot]`, and `resq run`'s mode).
#[derive(Clone, Debug)]
pub struct Ros2Config {
    /// The Zenoh router's endpoint, e.g. `tcp/localhost:7447`.
    pub router: String,
    /// A Zenoh config file used instead of resq's (TLS, several endpoints); `router` is ignored.
    pub zenoh_config: Option<std::path::PathBuf>,
    /// `ROS_DOMAIN_ID`.
    pub domain: u32,
    /// The node's name (`ros2 node list`), in the root namespace.
    pub node: String,
    /// The robot keeps its own time (true), or steps when a command arrives (a simulator in
    /// lock-step: resq waits for it).
    pub real_time: bool,
    /// A signal older than this at a tick, or a clock silent this long, is stale.
    pub stale_after: Duration,
    /// A clock silent this long stops the run; also how long the router may take to answer.
    pub reconnect_within: Duration,
    /// A `std_srvs/srv/Trigger` service that starts an episode.
    pub reset_service: Option<String>,
    /// An operator resets the robot: a reset service that answers "not ready" is waited for
    /// without limit.
    pub operator_reset: bool,
    /// A `std_msgs/msg/Bool` topic, true while the e-stop is pressed.
    pub estop_topic: Option<String>,
    /// The safe command (the commands' `safe` values).
    pub safe: Vec<f32>,
    /// Signal names, for messages.
    pub signal_names: Vec<String>,
    /// The episode's time limit in ticks.
    pub max_steps: u32,
}

/// What went wrong on the wire, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ros2Counts {
    /// Ticks (messages on the clock topic).
    pub ticks: u64,
    /// Messages on declared topics, of every kind.
    pub messages: u64,
    /// Messages on a declared topic with another type or type hash (ignored).
    pub wrong_type: u64,
    /// Payloads that are not the declared type's CDR.
    pub malformed: u64,
    /// Messages without a field a signal reads (e.g. a joint name missing from a JointState).
    pub missing_field: u64,
    /// Ticks with a stale signal: the safe command was sent instead.
    pub stale_ticks: u64,
    /// Ticks resq did not see (real time: it was busy), as sequence gaps on the link.
    pub skipped_ticks: u64,
    /// Clock silences longer than `stale_after` (each cut an episode).
    pub silences: u64,
    /// Safe commands the watchdog published during silences.
    pub watchdog_commands: u64,
    /// Commands published.
    pub commands: u64,
}

/// What the subscription callbacks share with the control thread.
struct State {
    /// The latest value of each signal, and when it was read.
    values: Vec<f32>,
    read_at: Vec<Option<Instant>>,
    /// The last tick: its number (0: none yet), the signals then, when it arrived, and the first
    /// stale signal at it.
    seq: u64,
    tick: Vec<f32>,
    tick_at: Option<Instant>,
    tick_stale: Option<usize>,
    counts: Ros2Counts,
    /// Each kind of wire error is named in the log once per topic.
    warned: Vec<[bool; 3]>,
}

struct Shared {
    state: Mutex<State>,
    ticked: Condvar,
    /// `State::seq`, readable without the lock (the control thread's `act`).
    ticks: AtomicU64,
    estop: AtomicBool,
    stale_after: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The command handed from the control thread to the publisher thread.
struct Out {
    seq: u64,
    values: [f32; firmware_bridge::MAX_COMMANDS],
    stop: bool,
}

struct Outbox {
    slot: Mutex<Out>,
    cv: Condvar,
}

/// One subscription's routing: the signals it feeds.
struct Route {
    topic: String,
    ty: MsgType,
    /// `<domain>/<topic>/`: a sample's key continues with `<type>/<hash>`.
    prefix: String,
    clock: bool,
    /// (signal index, field).
    fields: Vec<(usize, Field)>,
}

/// Episodes on a ROS 2 robot over Zenoh.
pub struct Ros2Env {
    cfg: Ros2Config,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    publisher: Option<std::thread::JoinHandle<()>>,
    /// resq's own clock, where `[ros2] clock_period_ms` gives one.
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    signals: Vec<f32>,
    /// The tick whose signals are in `signals`.
    seen: u64,
    /// When the tick in `signals` arrived.
    seen_at: Option<Instant>,
    /// The tick the last command answered; whether it was replaced by the safe command; whether
    /// a newer tick had already arrived when it was sent (real time: the robot moved on).
    acted: Option<(u64, bool, bool)>,
    /// What clocks the ticks, for messages.
    clock_name: String,
    stale_now: bool,
    t: u32,
    out_seq: u64,
    _session: zenoh::Session,
    _subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    _tokens: Vec<zenoh::liveliness::LivelinessToken>,
    gid: [u8; 16],
    query_seq: i64,
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn zerr(what: &str, e: impl std::fmt::Display) -> EnvError {
    EnvError::Robot(format!("ROS 2 over Zenoh: {what}: {e}"))
}

/// The Zenoh session config: rmw_zenoh's defaults for a node (a peer connecting to the router,
/// multicast scouting off), with the connect timeout bounded.
fn session_config(cfg: &Ros2Config) -> Result<zenoh::Config, EnvError> {
    if let Some(path) = &cfg.zenoh_config {
        return zenoh::Config::from_file(path).map_err(|e| {
            EnvError::Robot(format!(
                "{}: not a Zenoh config: {e}\n  fix: write it as Zenoh's DEFAULT_CONFIG.json5 describes, or remove `[ros2] zenoh_config`",
                path.display()
            ))
        });
    }
    let ms = cfg.reconnect_within.as_millis().max(1000);
    let text = format!(
        r#"{{
          mode: "peer",
          connect: {{
            endpoints: ["{router}"],
            timeout_ms: {{ router: -1, peer: {ms}, client: {ms} }},
            exit_on_failure: {{ router: false, peer: true, client: true }},
            retry: {{ period_init_ms: 200, period_max_ms: 1000, period_increase_factor: 2 }},
          }},
          listen: {{ endpoints: ["tcp/127.0.0.1:0"] }},
          scouting: {{ multicast: {{ enabled: false }}, gossip: {{ enabled: true }} }},
        }}"#,
        router = cfg.router
    );
    zenoh::Config::from_json5(&text).map_err(|e| {
        EnvError::Robot(format!(
            "`[ros2] router = \"{}\"` is not a Zenoh endpoint: {e}\n  fix: write it as rmw_zenoh does, e.g. `tcp/localhost:7447`",
            cfg.router
        ))
    })
}

impl Ros2Env {
    /// Joins the graph: opens the session, declares the node, its subscriptions and its command
    /// publisher, and starts the publisher thread. Fails, naming the router, when none answers.
    pub fn open(layout: &Layout, cfg: Ros2Config) -> Result<Ros2Env, EnvError> {
        let n = layout.signals.len();
        if layout.commands.len() > firmware_bridge::MAX_COMMANDS {
            return Err(EnvError::Protocol(format!(
                "{} commands: resq sends at most {}",
                layout.commands.len(),
                firmware_bridge::MAX_COMMANDS
            )));
        }
        let session = zenoh::open(session_config(&cfg)?).wait().map_err(|e| {
            EnvError::Handshake(format!(
                "no Zenoh router answered at {} ({e})\n  fix: start the robot's router (`ros2 run rmw_zenoh_cpp rmw_zenohd`), or set `[ros2] router` to its endpoint",
                cfg.router
            ))
        })?;
        let zid = session.zid().to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                values: vec![f32::NAN; n],
                read_at: vec![None; n],
                seq: 0,
                tick: vec![0.0; n],
                tick_at: None,
                tick_stale: None,
                counts: Ros2Counts::default(),
                warned: vec![[false; 3]; layout.topics.len() + 1],
            }),
            ticked: Condvar::new(),
            ticks: AtomicU64::new(0),
            estop: AtomicBool::new(false),
            stale_after: cfg.stale_after,
        });
        let (domain, node) = (cfg.domain, cfg.node.clone());
        let mut tokens = Vec::new();
        let mut token = |key: String| -> Result<(), EnvError> {
            let t = session.liveliness().declare_token(key.as_str()).wait().map_err(|e| zerr(&key, e))?;
            tokens.push(t);
            Ok(())
        };
        token(names::node_token(domain, &zid, 0, "/", &node))?;
        let mut entity = 0u32;
        let mut endpoint = |kind, name: &str, ty| {
            entity += 1;
            names::endpoint_token(domain, &zid, 0, entity, kind, "/", &node, name, ty)
        };

        let mut subscribers = Vec::new();
        for (ti, (topic, ty)) in layout.topics.iter().enumerate() {
            let route = Arc::new(Route {
                topic: topic.clone(),
                ty: *ty,
                prefix: format!("{domain}/{}/", topic.trim_start_matches('/')),
                clock: layout.clock_topic() == Some(ti),
                fields: layout
                    .signals
                    .iter()
                    .enumerate()
                    .filter(|(_, (t, _))| *t == ti)
                    .map(|(i, (_, f))| (i, f.clone()))
                    .collect(),
            });
            let (sh, names_) = (shared.clone(), cfg.signal_names.clone());
            let key = format!("{}**", route.prefix);
            let sub = session
                .declare_subscriber(key.as_str())
                .callback(move |sample: zenoh::sample::Sample| {
                    let payload = sample.payload().to_bytes();
                    on_sample(&sh, &route, ti, &names_, sample.key_expr().as_str(), &payload);
                })
                .wait()
                .map_err(|e| zerr(&key, e))?;
            subscribers.push(sub);
            token(endpoint(EntityKind::Subscription, topic, *ty))?;
        }
        if let Some(topic) = &cfg.estop_topic {
            let (sh, slot) = (shared.clone(), layout.topics.len());
            let prefix = format!("{domain}/{}/", topic.trim_start_matches('/'));
            let key = format!("{prefix}**");
            let name = topic.clone();
            let sub = session
                .declare_subscriber(key.as_str())
                .callback(move |sample: zenoh::sample::Sample| {
                    on_estop(
                        &sh,
                        slot,
                        &name,
                        &prefix,
                        sample.key_expr().as_str(),
                        &sample.payload().to_bytes(),
                    )
                })
                .wait()
                .map_err(|e| zerr(&key, e))?;
            subscribers.push(sub);
            token(endpoint(EntityKind::Subscription, topic, BOOL))?;
        }
        if let Some(service) = &cfg.reset_service {
            token(endpoint(EntityKind::Client, service, TRIGGER))?;
        }
        let command_key = names::topic_key(domain, &layout.command_topic, layout.command_type);
        let publisher = session
            .declare_publisher(command_key.clone())
            .congestion_control(zenoh::qos::CongestionControl::Drop)
            .wait()
            .map_err(|e| zerr(&command_key, e))?;
        token(endpoint(EntityKind::Publisher, &layout.command_topic, layout.command_type))?;

        let gid: [u8; 16] = rand::random();
        let outbox = Arc::new(Outbox {
            slot: Mutex::new(Out { seq: 0, values: [0.0; firmware_bridge::MAX_COMMANDS], stop: false }),
            cv: Condvar::new(),
        });
        let pub_thread = {
            let (outbox, shared) = (outbox.clone(), shared.clone());
            let sender = Sender {
                publisher,
                ty: layout.command_type,
                fields: layout.commands.clone(),
                gid,
                sent: 0,
                safe: cfg.safe.clone(),
                real_time: cfg.real_time,
            };
            std::thread::Builder::new()
                .name("resq-ros2-publisher".into())
                .spawn(move || sender.run(&outbox, &shared))
                .map_err(|e| zerr("cannot start the publisher thread", e))?
        };
        let ticker = match layout.clock {
            Clock::Topic(_) => None,
            Clock::Period(period) => {
                let (stop, sh) = (Arc::new(AtomicBool::new(false)), shared.clone());
                let stop2 = stop.clone();
                let h = std::thread::Builder::new()
                    .name("resq-ros2-clock".into())
                    .spawn(move || run_ticker(&sh, period, &stop2))
                    .map_err(|e| zerr("cannot start the clock thread", e))?;
                Some((stop, h))
            }
        };
        let clock = match layout.clock {
            Clock::Topic(i) => layout.topics[i].0.clone(),
            Clock::Period(p) => format!("resq's own, every {} ms", p.as_secs_f64() * 1000.0),
        };
        info!(
            "joined the ROS 2 graph as node /{node} (domain {domain}, Zenoh session {zid}) via {}: clock {clock}, commands on {}",
            cfg.router, layout.command_topic
        );
        Ok(Ros2Env {
            signals: vec![0.0; n],
            cfg,
            shared,
            outbox,
            publisher: Some(pub_thread),
            ticker,
            seen: 0,
            seen_at: None,
            acted: None,
            clock_name: clock.clone(),
            stale_now: false,
            t: 0,
            out_seq: 0,
            _session: session,
            _subscribers: subscribers,
            _tokens: tokens,
            gid,
            query_seq: 0,
        })
    }

    /// The wire counts so far.
    pub fn ros2_counts(&self) -> Ros2Counts {
        self.shared.lock().counts
    }

    /// Waits until a tick newer than `after` (by number) that arrived after `since` is there,
    /// for at most `within`; takes it into `signals`. Returns the time between its arrival and
    /// that of the tick taken before (zero for the first), or None on a timeout.
    fn take_tick(&mut self, after: u64, since: Option<Instant>, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut st = self.shared.lock();
        loop {
            let fresh = st.seq > after && since.is_none_or(|s| st.tick_at.is_some_and(|t| t > s));
            if fresh {
                break;
            }
            let left = within.checked_sub(start.elapsed())?;
            st = self.shared.ticked.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        self.signals.copy_from_slice(&st.tick);
        if self.cfg.real_time && self.seen > 0 && st.seq > self.seen + 1 && since.is_none() {
            st.counts.skipped_ticks += st.seq - self.seen - 1;
        }
        self.stale_now = st.tick_stale.is_some();
        if let Some(i) = st.tick_stale {
            st.counts.stale_ticks += 1;
            if st.counts.stale_ticks == 1 {
                warn!(
                    "signal `{}` is stale (not read within {} ms of the tick, or missing from the clock message): the safe command is sent in its place; further stale ticks are counted",
                    self.cfg.signal_names.get(i).map_or("?", String::as_str),
                    self.cfg.stale_after.as_millis()
                );
            }
        }
        self.seen = st.seq;
        let gap = match (st.tick_at, self.seen_at) {
            (Some(now), Some(before)) => now.saturating_duration_since(before),
            _ => Duration::ZERO,
        };
        self.seen_at = st.tick_at;
        Some(gap)
    }

    /// Calls the reset service until the robot answers ready; returns when it answered.
    fn call_reset(&mut self, service: &str) -> Result<(), EnvError> {
        let key = names::topic_key(self.cfg.domain, service, TRIGGER);
        // An empty request is one byte (`structure_needs_at_least_one_member`).
        let request = msg::encode(&0u8).map_err(|e| zerr("reset request", e))?;
        let started = Instant::now();
        let mut waiting_logged = false;
        loop {
            self.query_seq += 1;
            let att = names::attachment(self.query_seq, now_ns(), &self.gid);
            let replies = self
                ._session
                .get(key.as_str())
                .payload(request.clone())
                .attachment(att.to_vec())
                .target(zenoh::query::QueryTarget::AllComplete)
                .consolidation(zenoh::query::ConsolidationMode::None)
                .timeout(self.cfg.reconnect_within)
                .wait()
                .map_err(|e| zerr(&key, e))?;
            let reply = replies.recv_timeout(self.cfg.reconnect_within).ok().flatten();
            if reply.is_none() && started.elapsed() < self.cfg.reconnect_within {
                // No server known yet (its declaration is on its way, or it is restarting).
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let answer = match reply.map(|r| r.into_result()) {
                Some(Ok(sample)) => msg::decode::<TriggerResponse>(&sample.payload().to_bytes())
                    .map_err(|e| format!("its reply is not a std_srvs/srv/Trigger response: {e}")),
                Some(Err(e)) => Err(format!(
                    "it answered with an error: {}",
                    String::from_utf8_lossy(&e.payload().to_bytes())
                )),
                None => Err(format!("no answer within {:.0} s", self.cfg.reconnect_within.as_secs_f32())),
            };
            match answer {
                Ok(r) if r.success => return Ok(()),
                Ok(r) => {
                    if !waiting_logged {
                        info!("waiting for the robot to be ready: {service} answered `{}`", r.message);
                        waiting_logged = true;
                    }
                    if !self.cfg.operator_reset && started.elapsed() > self.cfg.reconnect_within {
                        return Err(EnvError::Robot(format!(
                            "the reset service {service} kept answering not ready (`{}`) for {:.0} s\n  fix: make the robot ready; if an operator resets it, say `[episode] reset = \"operator\"` and resq waits without limit",
                            r.message,
                            started.elapsed().as_secs_f32()
                        )));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(why) => {
                    return Err(EnvError::Robot(format!(
                        "the reset service {service} (std_srvs/srv/Trigger) did not start an episode: {why}\n  fix: check that the robot serves it (`ros2 service list`), or remove `[ros2] reset_service` to start episodes where the robot stands"
                    )))
                }
            }
        }
    }
}

/// Hands `values` to the publisher thread (a copy into its slot under a lock it holds only to
/// copy; no allocation).
fn hand_over(outbox: &Outbox, out_seq: &mut u64, values: &[f32]) {
    *out_seq += 1;
    {
        let mut o = outbox.slot.lock().unwrap_or_else(|p| p.into_inner());
        o.seq = *out_seq;
        o.values[..values.len()].copy_from_slice(values);
    }
    outbox.cv.notify_one();
}

/// `std_srvs/srv/Trigger`'s response.
#[derive(serde::Deserialize)]
struct TriggerResponse {
    success: bool,
    message: String,
}

/// The publisher thread: serialises each command the control thread hands over and puts it;
/// on a real-time robot, the watchdog of a silent clock.
struct Sender {
    publisher: zenoh::pubsub::Publisher<'static>,
    ty: MsgType,
    fields: Vec<Field>,
    gid: [u8; 16],
    sent: i64,
    safe: Vec<f32>,
    real_time: bool,
}

impl Sender {
    fn put(&mut self, values: &[f32]) {
        let m = command_msg(self.ty, &self.fields, values);
        let Ok(payload) = m.encode() else { return };
        self.sent += 1;
        let att = names::attachment(self.sent, now_ns(), &self.gid);
        if let Err(e) = self.publisher.put(payload).attachment(att.to_vec()).wait() {
            warn!("publishing a command failed: {e}");
        }
    }

    fn put_safe(&mut self) {
        let safe = std::mem::take(&mut self.safe);
        self.put(&safe);
        self.safe = safe;
    }

    fn run(mut self, outbox: &Outbox, shared: &Shared) {
        let n = self.fields.len();
        let mut done = 0u64;
        let mut handed = Instant::now();
        let mut values = [0.0f32; firmware_bridge::MAX_COMMANDS];
        let period = shared.stale_after / 2;
        loop {
            let (seq, stop) = {
                let g = outbox.slot.lock().unwrap_or_else(|p| p.into_inner());
                let (g, _) = outbox
                    .cv
                    .wait_timeout_while(g, period, |o| o.seq == done && !o.stop)
                    .unwrap_or_else(|p| p.into_inner());
                values[..n].copy_from_slice(&g.values[..n]);
                (g.seq, g.stop)
            };
            if stop {
                self.put_safe();
                return;
            }
            if seq != done {
                done = seq;
                handed = Instant::now();
                self.put(&values[..n]);
                shared.lock().counts.commands += 1;
                continue;
            }
            // Nothing new for half the staleness bound: on a real-time robot, is the clock
            // silent, or has resq itself stopped commanding (a stalled loop, a long reset)?
            let silent = {
                let st = shared.lock();
                st.tick_at.is_some_and(|t| t.elapsed() > shared.stale_after)
            };
            if self.real_time && (silent || handed.elapsed() > shared.stale_after) {
                self.put_safe();
                shared.lock().counts.watchdog_commands += 1;
            }
        }
    }
}

/// A sample on a declared topic: checks its type, decodes it, stores its signals' fields; on the
/// clock topic, makes the tick.
fn on_sample(sh: &Shared, r: &Route, ti: usize, signal_names: &[String], key: &str, payload: &[u8]) {
    let Some(rest) = key.strip_prefix(r.prefix.as_str()) else { return };
    let mut parts = rest.split('/');
    let (Some(ty), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        return; // a topic below this one (`/a/b` under `/a`)
    };
    // Decoded before the lock: the control thread waits on it for ticks.
    let type_ok = ty == r.ty.dds_name() && hash == r.ty.hash;
    let decoded = type_ok.then(|| Msg::decode(r.ty, payload));
    let read: Vec<Option<f64>> = match &decoded {
        Some(Ok(m)) => r.fields.iter().map(|(_, f)| f.read(m)).collect(),
        _ => Vec::new(),
    };
    let now = Instant::now();
    let mut st = sh.lock();
    st.counts.messages += 1;
    let m = match decoded {
        None => {
            st.counts.wrong_type += 1;
            if !std::mem::replace(&mut st.warned[ti][0], true) {
                warn!(
                    "a message of type `{ty}` ({hash}) on {}, declared `{}` ({}): ignored; further ones are counted",
                    r.topic, r.ty.name, r.ty.hash
                );
            }
            return;
        }
        Some(Err(e)) => {
            st.counts.malformed += 1;
            if !std::mem::replace(&mut st.warned[ti][1], true) {
                warn!("a malformed {} on {}: {e}; ignored, further ones are counted", r.ty.name, r.topic);
            }
            return;
        }
        Some(Ok(m)) => m,
    };
    let mut missing = None;
    for ((i, _), v) in r.fields.iter().zip(read) {
        match v {
            Some(v) => {
                st.values[*i] = v as f32;
                st.read_at[*i] = Some(now);
            }
            None => missing = Some(*i),
        }
    }
    if let Some(i) = missing {
        st.counts.missing_field += 1;
        if !std::mem::replace(&mut st.warned[ti][2], true) {
            let joints = match &m {
                Msg::JointState(js) => format!(" (its joints: {})", js.name.join(", ")),
                _ => String::new(),
            };
            warn!(
                "signal `{}`: the {} on {} has no `{}`{joints}; the signal is stale until it does; further ones are counted\n  fix: correct `field` in the signal's [[robot.signal]], or the robot's message",
                signal_names.get(i).map_or("?", String::as_str),
                r.ty.name,
                r.topic,
                field_name(&r.fields, i)
            );
        }
    }
    if r.clock {
        make_tick(sh, st, now, missing);
    }
}

/// A tick: the signals as they stand at `now`; stale if `missing` (a signal the clock message
/// lacks) or a signal was last read longer than `stale_after` ago. Wakes the control thread.
fn make_tick(sh: &Shared, mut st: MutexGuard<'_, State>, now: Instant, missing: Option<usize>) {
    st.seq += 1;
    sh.ticks.store(st.seq, Ordering::Release);
    st.counts.ticks += 1;
    let State { values, tick, .. } = &mut *st;
    tick.copy_from_slice(values);
    let bound = sh.stale_after;
    st.tick_stale = missing.or_else(|| st.read_at.iter().position(|t| t.is_none_or(|t| now - t > bound)));
    st.tick_at = Some(now);
    drop(st);
    sh.ticked.notify_all();
}

/// resq's own clock (`[ros2] clock_period_ms`): a tick every `period` until `stop`, on absolute
/// deadlines (a late wake-up does not shift the ones after it).
fn run_ticker(sh: &Shared, period: Duration, stop: &AtomicBool) {
    let mut next = Instant::now() + period;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += period;
        if next < Instant::now() {
            next = Instant::now() + period;
        }
        make_tick(sh, sh.lock(), Instant::now(), None);
    }
}

/// A sample on the e-stop topic: a `std_msgs/msg/Bool`, true while pressed. Latched: once
/// pressed, resq sees it pressed until it leaves (the supervisor stops the run); another type or
/// malformed CDR is named once and counted, as on the signal topics.
fn on_estop(sh: &Shared, slot: usize, topic: &str, prefix: &str, key: &str, payload: &[u8]) {
    let Some(rest) = key.strip_prefix(prefix) else { return };
    let mut parts = rest.split('/');
    let (Some(ty), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else { return };
    let pressed = (ty == BOOL.dds_name() && hash == BOOL.hash).then(|| msg::decode::<bool>(payload));
    let mut st = sh.lock();
    st.counts.messages += 1;
    match pressed {
        Some(Ok(true)) => {
            if !sh.estop.swap(true, Ordering::SeqCst) {
                warn!("e-stop pressed (reported on the e-stop topic {topic})");
            }
        }
        Some(Ok(false)) => {}
        None => {
            st.counts.wrong_type += 1;
            if !std::mem::replace(&mut st.warned[slot][0], true) {
                warn!("a message of type `{ty}` on the e-stop topic {topic}, declared `{}`: ignored; further ones are counted", BOOL.name);
            }
        }
        Some(Err(e)) => {
            st.counts.malformed += 1;
            if !std::mem::replace(&mut st.warned[slot][1], true) {
                warn!(
                    "a malformed {} on the e-stop topic {topic}: {e}; ignored, further ones are counted",
                    BOOL.name
                );
            }
        }
    }
}

fn field_name(fields: &[(usize, Field)], signal: usize) -> String {
    match fields.iter().find(|(i, _)| *i == signal).map(|(_, f)| f) {
        Some(Field::Joint(a, j)) => format!("{}[{j}]", format!("{a:?}").to_lowercase()),
        Some(Field::Data(i)) => format!("data[{i}]"),
        Some(Field::Path(p)) => p.clone(),
        None => "?".into(),
    }
}

impl Env for Ros2Env {
    fn reset(&mut self) -> Result<(), EnvError> {
        if self.cfg.real_time {
            // Between episodes the robot holds the safe command, not the last policy's.
            hand_over(&self.outbox, &mut self.out_seq, &self.cfg.safe);
        }
        let sent = Instant::now();
        if let Some(service) = self.cfg.reset_service.clone() {
            self.call_reset(&service)?;
        }
        let answered = Instant::now();
        // Lock-step: the robot publishes the new episode's first state once reset (no other
        // tick can come meanwhile: it waits for a command). Real time: the first tick after the
        // answer. Without a service, lock-step starts from the state the robot is in.
        let (after, since) = match (self.cfg.real_time, self.cfg.reset_service.is_some()) {
            (false, true) => (0, Some(sent)),
            (false, false) => (if self.seen > 0 { self.seen - 1 } else { 0 }, None),
            (true, _) => (0, Some(answered)),
        };
        let within = self.cfg.reconnect_within;
        if self.take_tick(after, since, within).is_none() {
            return Err(EnvError::Robot(format!(
                "no tick from {} within {:.0} s of starting an episode\n  fix: check that the robot publishes its topics (`ros2 topic hz`), and `[ros2] router`/`domain`",
                self.clock_name,
                within.as_secs_f32()
            )));
        }
        self.t = 0;
        self.acted = None;
        Ok(())
    }

    fn act(&mut self, command: &[f32]) -> Result<(), EnvError> {
        if self.seen == 0 {
            return Err(EnvError::Misuse("a step before a reset"));
        }
        let replaced = self.stale_now;
        let values = if replaced { &self.cfg.safe[..] } else { command };
        hand_over(&self.outbox, &mut self.out_seq, values);
        // Real time: a newer tick already here means the robot stepped before this command.
        let behind = self.cfg.real_time && self.shared.ticks.load(Ordering::Acquire) > self.seen;
        self.acted = Some((self.seen, replaced, behind));
        Ok(())
    }

    fn observe(&mut self) -> Result<StepEnd, EnvError> {
        let (answered, replaced, behind) =
            self.acted.take().ok_or(EnvError::Misuse("an observe without an act"))?;
        let Some(gap) = self.take_tick(answered, None, self.cfg.reconnect_within) else {
            return Err(EnvError::Robot(format!(
                "no tick from {} for {:.0} s\n  fix: check the robot's driver and `ros2 topic hz` on its topics; what was learned is saved",
                self.clock_name,
                self.cfg.reconnect_within.as_secs_f32()
            )));
        };
        // Real time: the robot's own ticks count, also those resq did not see.
        self.t += if self.cfg.real_time { (self.seen - answered) as u32 } else { 1 };
        if self.cfg.real_time && gap > self.cfg.stale_after {
            self.shared.lock().counts.silences += 1;
            warn!("the clock was silent for {} ms between two ticks: episode cut", gap.as_millis());
            return Ok(StepEnd::CUT);
        }
        let skipped = self.seen > answered + 1;
        Ok(StepEnd {
            terminated: false,
            truncated: self.t >= self.cfg.max_steps,
            interrupted: false,
            success: false,
            late: replaced || skipped || behind || self.stale_now,
        })
    }

    fn signals(&self) -> &[f32] {
        &self.signals
    }

    fn episode_steps(&self) -> u32 {
        self.t
    }

    fn reseed(&mut self, _seed: u64) {}

    fn real_time(&self) -> bool {
        self.cfg.real_time
    }

    fn estop(&self) -> bool {
        self.shared.estop.load(Ordering::SeqCst)
    }

    fn counters(&self) -> LinkCounters {
        let c = self.shared.lock().counts;
        LinkCounters {
            frames: c.ticks,
            crc_errors: 0,
            other_errors: c.wrong_type + c.malformed + c.missing_field,
            seq_gaps: c.skipped_ticks,
            duplicates: 0,
            late_frames: c.stale_ticks,
            reconnects: c.silences,
        }
    }

    fn frame_stamp(&self) -> (u32, u64) {
        (self.seen as u32, 0)
    }
}

impl Drop for Ros2Env {
    fn drop(&mut self) {
        if let Some((stop, h)) = self.ticker.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
        self.outbox.slot.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.outbox.cv.notify_one();
        if let Some(h) = self.publisher.take() {
            let _ = h.join();
        }
        let c = self.ros2_counts();
        info!(
            "ROS 2: {} ticks, {} messages, {} of another type, {} malformed, {} missing a field, {} stale ticks, {} skipped, {} silences, {} watchdog commands, {} commands",
            c.ticks, c.messages, c.wrong_type, c.malformed, c.missing_field, c.stale_ticks, c.skipped_ticks, c.silences, c.watchdog_commands, c.commands
        );
    }
}

/// A Zenoh router in this process (what `ros2 run rmw_zenoh_cpp rmw_zenohd` runs on a robot), for
/// a simulated ROS 2 robot: it listens on loopback, multicast scouting off, until dropped.
pub struct Router {
    _session: zenoh::Session,
    /// Where nodes connect, e.g. `tcp/127.0.0.1:40123`.
    pub endpoint: String,
}

impl Router {
    /// Starts a router on a free port of 127.0.0.1.
    pub fn start_local() -> Result<Router, EnvError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| zerr("no free port on 127.0.0.1 for the Zenoh router", e))?
            .port();
        let endpoint = format!("tcp/127.0.0.1:{port}");
        let text = format!(
            r#"{{ mode: "router", listen: {{ endpoints: ["{endpoint}"] }}, scouting: {{ multicast: {{ enabled: false }} }} }}"#
        );
        let config = zenoh::Config::from_json5(&text).map_err(|e| zerr("router config", e))?;
        let session = zenoh::open(config)
            .wait()
            .map_err(|e| zerr(&format!("cannot start a Zenoh router on {endpoint}"), e))?;
        Ok(Router { _session: session, endpoint })
    }
}
