//! The one control loop's step. Training ([`crate::session::train`]), evaluation
//! ([`crate::session::evaluate`]) and calibration ([`crate::session::calibrate`]) all move the
//! robot through a [`Stepper`], so a step means the same everywhere:
//!
//! 1. the [`Controller`] decides at the current signals (the caller's: training decides at `s'`
//!    as soon as it arrives, to fill the transition);
//! 2. [`Stepper::filter`]: the [`Supervisor`] clamps, rate-limits or replaces the command, and
//!    the controller is told what was sent;
//! 3. [`Stepper::act`]: the command leaves; the robot moves (training learns meanwhile);
//! 4. [`Stepper::observe`]: the next signals arrive; the bundle's variables are filled, its
//!    `terminate` rule applied, and the add-on reward `r_R` and its terms evaluated.
//!
//! Buffers are allocated once, in [`Stepper::new`]; a step allocates nothing.

use super::{ActMode, Controller, Decision, Decisions, PolicyChoice, Supervisor};
use crate::robot::{Env, EnvError, StepEnd};
use crate::Bundle;

/// What one step of the robot gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// How the step ended (the robot's flags, with the bundle's `terminate` applied).
    pub end: StepEnd,
    /// The add-on reward `r_R(s, a, s')` of the step (its terms are in [`Stepper::terms`]).
    pub reward: f32,
}

/// The state of the loop between steps: the command, the previous command and the step's
/// variables.
pub struct Stepper {
    /// The command sent at the last step (after the supervisor).
    pub cmd: Vec<f32>,
    /// The command sent at the step before (0 at an episode's start, as the add-on reads it).
    pub prev: Vec<f32>,
    /// The last step's variables, as [`crate::bundle::reward::Variables::fill`] writes them.
    pub vals: Vec<f32>,
    /// The last step's add-on terms, in the bundle's order.
    pub terms: Vec<f32>,
}

impl Stepper {
    pub fn new(b: &Bundle) -> Self {
        let n = b.commands.len();
        Stepper {
            cmd: vec![0.0; n],
            prev: vec![0.0; n],
            vals: vec![0.0; b.vars.len()],
            terms: vec![0.0; b.addon.terms.len()],
        }
    }

    /// Resets the robot, the supervisor and the controller for a new episode.
    pub fn new_episode(
        &mut self,
        ctl: &mut Controller,
        env: &mut dyn Env,
        supervisor: &mut Supervisor,
    ) -> Result<(), EnvError> {
        env.reset()?;
        supervisor.new_episode();
        ctl.new_episode();
        self.prev.iter_mut().for_each(|v| *v = 0.0);
        Ok(())
    }

    /// Passes the controller's command through the supervisor into [`Stepper::cmd`] and tells
    /// the controller what will be sent. Returns the supervisor's decisions.
    pub fn filter(&mut self, ctl: &mut Controller, supervisor: &mut Supervisor) -> Decisions {
        let decisions = supervisor.filter(&ctl.command, &mut self.cmd);
        ctl.sent(&self.cmd);
        decisions
    }

    /// Sends [`Stepper::cmd`]; returns as soon as it has left.
    pub fn act(&self, env: &mut dyn Env) -> Result<(), EnvError> {
        env.act(&self.cmd)
    }

    /// Waits for the signals that follow the command, fills the step's variables, applies the
    /// bundle's `terminate` and evaluates the add-on reward.
    pub fn observe(&mut self, bundle: &Bundle, env: &mut dyn Env) -> Result<Outcome, EnvError> {
        let mut end = env.observe()?;
        bundle.vars.fill(env.signals(), &self.cmd, &self.prev, &mut self.vals);
        self.prev.copy_from_slice(&self.cmd);
        bundle.episode.apply(&self.vals, &mut end);
        let reward = bundle.addon.eval(&self.vals, &mut self.terms);
        Ok(Outcome { end, reward })
    }

    /// One whole step of `policy`: decide at the current signals, filter, act, observe.
    pub fn step(
        &mut self,
        ctl: &mut Controller,
        env: &mut dyn Env,
        supervisor: &mut Supervisor,
        policy: PolicyChoice,
        mode: ActMode,
        rng: &mut impl rand::Rng,
    ) -> Result<(Decision, Outcome), EnvError> {
        let d = ctl.step(env.signals(), policy, mode, rng);
        self.filter(ctl, supervisor);
        self.act(env)?;
        let out = self.observe(&ctl.bundle, env)?;
        Ok((d, out))
    }
}
