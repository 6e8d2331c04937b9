//! The learning side of a customization run: the learner, its progress and its checkpoints, fed
//! the transitions and episode ends that the control loop produces (`docs/design.md` §2.4).
//!
//! It runs in one of two places ([`LoopLearning`] is what the loop sees):
//! - **inline** ([`Learning`]): on the loop's thread, `updates_per_tick` gradient steps between
//!   sending a command and reading the next frame. Runs are bit-for-bit reproducible from a seed.
//! - **on its own thread** ([`ThreadSide`], `[learning] thread = true`): the loop hands each
//!   transition over a lock-free single-producer queue (heapless `spsc`) and takes the newest
//!   weights from a triple buffer. Neither side ever waits on the other. A full queue drops the
//!   transition and counts it. The learner keeps at most `updates_per_tick` updates per received
//!   transition, so it learns at the same update-to-data ratio as inline, whatever the rates.
//!   This is the mode for a real-time robot whose tick is shorter than the updates it should take.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use heapless::spsc::{Consumer, Producer};
use log::info;

use crate::algo::core::ResidualLearner;
use crate::algo::replay::{Layout, Transition};
use crate::control::Controller;
use crate::nn::Mlp;
use crate::store::checkpoint::{self, Progress};

/// What the control loop needs from the learning side.
pub trait LoopLearning {
    /// Learn while the robot moves (the command is on its way), and hand the newest weights to
    /// the controller.
    fn between_ticks(&mut self, ctl: &mut Controller) -> Result<()>;
    /// A transition the robot just made, its `env_steps`-th (counting from the first run).
    fn transition(&mut self, t: &Transition, env_steps: u64) -> Result<()>;
    /// The episode that the last transition ended (or a continuing task's window), and whether
    /// it succeeded by `[episode] success`.
    fn episode_end(&mut self, length: u32, addon_per_step: f32, success: bool) -> Result<()>;
    /// The learner diverged: the controller must act on the prior alone.
    fn diverged(&self) -> bool;
    /// The widths of a transition.
    fn layout(&self) -> Layout;
    /// ω' and α̂ from now on, `weights` ([`crate::Bundle::weights`]) at the trade-off's
    /// multiplier `scale` ([`super::trade_off`]; kept in the checkpoint).
    fn set_weights(&mut self, scale: f32, weights: (f32, f32));
}

/// The learner with its progress and checkpoints.
pub struct Learning {
    pub learner: Box<dyn ResidualLearner + Send>,
    pub progress: Progress,
    writer: checkpoint::Writer,
    path: PathBuf,
    manifest_text: String,
    checkpoint_every: u64,
    /// The step of the last periodic checkpoint.
    checkpointed_at: Option<u64>,
}

impl Learning {
    pub fn new(
        learner: Box<dyn ResidualLearner + Send>,
        progress: Progress,
        path: PathBuf,
        manifest_text: String,
        checkpoint_every: u64,
    ) -> Result<Learning> {
        let writer = checkpoint::Writer::start(&path)?;
        Ok(Learning {
            learner,
            progress,
            writer,
            path,
            manifest_text,
            checkpoint_every,
            checkpointed_at: None,
        })
    }

    /// Every `checkpoint_every` steps: encoded here, written by the writer thread.
    fn maybe_checkpoint(&mut self) -> Result<()> {
        let (every, step) = (self.checkpoint_every, self.progress.env_steps);
        // Once per step: a continuing task's window can end on the step a transition checkpointed.
        if every > 0 && step.is_multiple_of(every) && self.checkpointed_at != Some(step) {
            self.checkpointed_at = Some(step);
            self.writer.submit(checkpoint::encode(
                self.learner.as_ref(),
                &self.progress,
                &self.manifest_text,
            )?)?;
        }
        Ok(())
    }

    /// One gradient step; true if it was taken.
    pub fn update(&mut self) -> bool {
        self.learner.update().is_some()
    }

    /// Waits for the periodic writes, then writes the final checkpoint.
    pub fn finish(&mut self) -> Result<()> {
        self.writer.finish()?;
        if self.writer.skipped > 0 {
            info!(
                "{} periodic checkpoint(s) skipped while the previous one was being written",
                self.writer.skipped
            );
        }
        checkpoint::save(&self.path, self.learner.as_ref(), &self.progress, &self.manifest_text)
    }
}

/// Copies the learner's acting networks into the controller (no allocation).
pub fn hand_over(learner: &dyn ResidualLearner, ctl: &mut Controller) {
    ctl.residual.copy_from(&learner.core().online);
    if let (Some(actor), Some((acting, _))) = (learner.actor(), &mut ctl.actor) {
        acting.copy_from(actor);
    }
}

impl LoopLearning for Learning {
    fn between_ticks(&mut self, ctl: &mut Controller) -> Result<()> {
        let mut updated = false;
        for _ in 0..self.learner.core().settings.updates_per_tick {
            updated |= self.update();
        }
        if updated {
            hand_over(self.learner.as_ref(), ctl);
        }
        Ok(())
    }

    fn transition(&mut self, t: &Transition, env_steps: u64) -> Result<()> {
        self.learner.core_mut().replay.push_step(t, env_steps);
        self.progress.env_steps = env_steps;
        if !(t.terminal || t.truncated) {
            self.maybe_checkpoint()?;
        }
        Ok(())
    }

    fn episode_end(&mut self, length: u32, addon_per_step: f32, success: bool) -> Result<()> {
        let h = &mut self.progress.history;
        h.episode_end_step.push(self.progress.env_steps as f64);
        h.episode_addon_per_step.push(addon_per_step);
        h.episode_length.push(length as f32);
        h.episode_success.push(success as u8 as f32);
        self.maybe_checkpoint()
    }

    fn diverged(&self) -> bool {
        self.learner.core().diverged
    }

    fn layout(&self) -> Layout {
        self.learner.core().replay.layout()
    }

    fn set_weights(&mut self, scale: f32, (omega, alpha): (f32, f32)) {
        let s = &mut self.learner.core_mut().settings;
        (s.omega, s.alpha) = (omega, alpha);
        self.progress.weight_scale = Some(scale);
    }
}

/// Floats a queued transition can carry: `obs`, `next_obs`, `next_logp0`, `action_values`,
/// `pre_action`, `next_candidates`, `prior_params`, `next_prior_params` together (bundles wider than this learn
/// inline).
pub const RECORD_FLOATS: usize = 192;
/// Messages the queue holds.
pub const QUEUE_LEN: usize = 256;

/// A transition, owned and of fixed size, in the replay's field order.
#[derive(Clone, Copy)]
pub struct Record {
    /// The robot's step count after this transition.
    step: u64,
    floats: [f32; RECORD_FLOATS],
    action: u32,
    reward: f32,
    logp0_taken: f32,
    logpi_taken: f32,
    terminal: bool,
    truncated: bool,
}

/// What the loop sends the learner thread. Every queue slot is a `Message`, allocated once;
/// boxing the large variant would allocate per transition on the control path.
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Transition(Record),
    EpisodeEnd {
        length: u32,
        addon_per_step: f32,
        success: bool,
    },
    /// ω' and α̂ at the trade-off's multiplier.
    Weights {
        scale: f32,
        weights: (f32, f32),
    },
}

/// The floats a transition of `layout` needs.
pub fn record_width(l: &Layout) -> usize {
    2 * l.n_obs + l.n_actions + 2 * l.act_dim + l.cand_width + 2 * l.param_width
}

impl Record {
    /// Packs `t` (no allocation). `record_width(layout) ≤ RECORD_FLOATS` is checked at start.
    pub fn pack(t: &Transition, step: u64) -> Record {
        let mut r = Record {
            step,
            floats: [0.0; RECORD_FLOATS],
            action: t.action as u32,
            reward: t.reward,
            logp0_taken: t.logp0_taken,
            logpi_taken: t.logpi_taken,
            terminal: t.terminal,
            truncated: t.truncated,
        };
        let mut at = 0;
        for part in [
            t.obs,
            t.next_obs,
            t.next_logp0,
            t.action_values,
            t.pre_action,
            t.next_candidates,
            t.prior_params,
            t.next_prior_params,
        ] {
            r.floats[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        r
    }

    /// The transition again, for a replay of `layout`.
    pub fn unpack(&self, l: &Layout) -> Transition<'_> {
        let widths =
            [l.n_obs, l.n_obs, l.n_actions, l.act_dim, l.act_dim, l.cand_width, l.param_width, l.param_width];
        let mut parts: [&[f32]; 8] = [&[]; 8];
        let mut at = 0;
        for (p, w) in parts.iter_mut().zip(widths) {
            *p = &self.floats[at..at + w];
            at += w;
        }
        Transition {
            obs: parts[0],
            next_obs: parts[1],
            next_logp0: parts[2],
            action: self.action as usize,
            action_values: parts[3],
            pre_action: parts[4],
            next_candidates: parts[5],
            prior_params: parts[6],
            next_prior_params: parts[7],
            reward: self.reward,
            logp0_taken: self.logp0_taken,
            logpi_taken: self.logpi_taken,
            terminal: self.terminal,
            truncated: self.truncated,
        }
    }
}

/// The acting networks the learner thread publishes.
#[derive(Clone)]
pub struct Weights {
    pub residual: Mlp,
    pub actor: Option<Mlp>,
    pub diverged: bool,
}

impl Weights {
    pub fn of(learner: &dyn ResidualLearner) -> Weights {
        Weights { residual: learner.core().online.clone(), actor: learner.actor().cloned(), diverged: false }
    }
}

/// The loop's end of a learner thread.
pub struct ThreadSide<'q> {
    pub tx: Producer<'q, Message>,
    pub weights: triple_buffer::Output<Weights>,
    pub layout: Layout,
    /// Transitions dropped because the queue was full.
    pub dropped: u64,
    diverged: bool,
}

impl<'q> ThreadSide<'q> {
    pub fn new(tx: Producer<'q, Message>, weights: triple_buffer::Output<Weights>, layout: Layout) -> Self {
        ThreadSide { tx, weights, layout, dropped: 0, diverged: false }
    }

    fn send(&mut self, m: Message) {
        if self.tx.enqueue(m).is_err() {
            self.dropped += 1;
        }
    }
}

impl LoopLearning for ThreadSide<'_> {
    fn between_ticks(&mut self, ctl: &mut Controller) -> Result<()> {
        if self.weights.update() {
            let w = self.weights.output_buffer();
            self.diverged = w.diverged;
            ctl.residual.copy_from(&w.residual);
            if let (Some(actor), Some((acting, _))) = (&w.actor, &mut ctl.actor) {
                acting.copy_from(actor);
            }
        }
        Ok(())
    }

    fn transition(&mut self, t: &Transition, env_steps: u64) -> Result<()> {
        self.send(Message::Transition(Record::pack(t, env_steps)));
        Ok(())
    }

    fn episode_end(&mut self, length: u32, addon_per_step: f32, success: bool) -> Result<()> {
        self.send(Message::EpisodeEnd { length, addon_per_step, success });
        Ok(())
    }

    fn diverged(&self) -> bool {
        self.diverged
    }

    fn layout(&self) -> Layout {
        self.layout
    }

    fn set_weights(&mut self, scale: f32, weights: (f32, f32)) {
        self.send(Message::Weights { scale, weights });
    }
}

/// Idle polling interval of the learner thread: from `IDLE_MIN`, doubling while nothing arrives,
/// up to `IDLE_MAX` (a transition then waits at most that long to be learned from, against a
/// control period of milliseconds; polling every 100 µs cost about a quarter of a core).
const IDLE_MIN: Duration = Duration::from_micros(50);
const IDLE_MAX: Duration = Duration::from_millis(2);

/// Nice value of the learner thread: below the control loop's (0), so that on a busy CPU the
/// scheduler runs a tick before an update.
const LEARNER_NICE: i32 = 10;

/// The learner thread's body: takes messages, learns at most `updates_per_tick` updates per
/// transition received, publishes weights after each batch of updates; returns when `stop` is
/// set and the queue is empty. It runs at a lower priority than the control loop
/// (`LEARNER_NICE`) and, when idle, polls ever less often (up to `IDLE_MAX`).
pub fn learner_thread(
    mut learning: Learning,
    mut rx: Consumer<'_, Message>,
    mut weights: triple_buffer::Input<Weights>,
    stop: &AtomicBool,
) -> Result<Learning> {
    let layout = learning.learner.core().replay.layout();
    let per_transition = learning.learner.core().settings.updates_per_tick as u64;
    let (mut received, mut taken) = (0u64, 0u64);
    // Below the control loop, also when the loop runs real-time (its policy is inherited).
    crate::robot::rt::background(LEARNER_NICE);
    let mut idle = IDLE_MIN;
    loop {
        let mut got = false;
        while let Some(m) = rx.dequeue() {
            got = true;
            match m {
                Message::Transition(r) => {
                    learning.transition(&r.unpack(&layout), r.step)?;
                    received += 1;
                }
                Message::EpisodeEnd { length, addon_per_step, success } => {
                    learning.episode_end(length, addon_per_step, success)?
                }
                Message::Weights { scale, weights } => learning.set_weights(scale, weights),
            }
        }
        let mut updated = false;
        while taken < per_transition * received && !learning.learner.core().diverged {
            if !learning.update() {
                // Not ready yet (warm-up): this transition's updates are forfeit, as inline.
                taken = per_transition * received;
                break;
            }
            taken += 1;
            updated = true;
            if rx.ready() {
                break; // new transitions arrived: take them first
            }
        }
        if updated || learning.learner.core().diverged {
            let w = weights.input_buffer_mut();
            w.residual.copy_from(&learning.learner.core().online);
            if let (Some(a), Some(acting)) = (learning.learner.actor(), &mut w.actor) {
                acting.copy_from(a);
            }
            w.diverged = learning.learner.core().diverged;
            weights.publish();
        }
        if !got && !updated {
            if stop.load(Ordering::Acquire) && !rx.ready() {
                return Ok(learning);
            }
            std::thread::sleep(idle);
            idle = (idle * 2).min(IDLE_MAX);
        } else {
            idle = IDLE_MIN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_a_transition() {
        let l = Layout { n_obs: 3, n_actions: 4, act_dim: 1, cand_width: 4, param_width: 2 };
        let v: Vec<f32> = (0..record_width(&l)).map(|i| i as f32 * 0.5).collect();
        let (o, no, lp, a, u, c, p, np) =
            (&v[0..3], &v[3..6], &v[6..10], &v[10..11], &v[11..12], &v[12..16], &v[16..18], &v[18..20]);
        let t = Transition {
            obs: o,
            next_obs: no,
            next_logp0: lp,
            action: 2,
            action_values: a,
            pre_action: u,
            next_candidates: c,
            prior_params: p,
            next_prior_params: np,
            reward: -0.3,
            logp0_taken: -1.0,
            logpi_taken: -0.9,
            terminal: false,
            truncated: true,
        };
        let r = Record::pack(&t, 7);
        assert_eq!(r.step, 7);
        let u = r.unpack(&l);
        assert_eq!(format!("{t:?}"), format!("{u:?}"));
    }
}
