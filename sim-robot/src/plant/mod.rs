//! Simulated plants: the reference tasks' physics, each written once. resq's in-process
//! simulation uses them directly; the simulated firmware serves the same code over the wire
//! protocol.

pub mod cartpole;
pub mod mountaincar;
pub mod pendulum;

pub use cartpole::CartPole;
pub use mountaincar::MountainCar;
pub use pendulum::Pendulum;

/// A simulated robot. Commands and signals are plain `f32` slices in the order of
/// [`Plant::command_names`] and [`Plant::signal_names`].
pub trait Plant: Send {
    fn signal_names(&self) -> &'static [&'static str];
    fn command_names(&self) -> &'static [&'static str];
    /// The physical range of each command; a command outside it is clamped by the plant.
    fn command_bounds(&self) -> &'static [(f32, f32)];
    /// Starts a new episode from the plant's initial-state distribution.
    fn reset(&mut self, rng: &mut dyn rand_core::RngCore);
    /// Advances one control period; returns true when the episode has *terminated* (a true
    /// terminal state, never a time limit).
    fn step(&mut self, command: &[f32]) -> bool;
    /// The current signals.
    fn signals(&self, out: &mut [f32]);
    /// The plant as a model (planning, `[residual] method = "plan"`): puts it in the state its
    /// `signals` show, as [`Plant::signals`] writes them (they hold the whole state, to f32
    /// precision). False where they do not determine the state.
    fn set_from_signals(&mut self, _signals: &[f32]) -> bool {
        false
    }
}

/// Plants by the name a manifest gives them.
pub const PLANTS: [&str; 3] = ["cartpole", "mountaincar", "pendulum"];

/// A uniform draw in `[lo, hi)` from 53 random bits.
pub fn uniform(rng: &mut dyn rand_core::RngCore, lo: f64, hi: f64) -> f64 {
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    lo + (hi - lo) * u
}

pub fn make(name: &str) -> Option<Box<dyn Plant>> {
    match name {
        "cartpole" => Some(Box::new(CartPole::default())),
        "mountaincar" => Some(Box::new(MountainCar::default())),
        "pendulum" => Some(Box::new(Pendulum::default())),
        _ => None,
    }
}
