//! The failure guard: a customization that makes the robot fail its task on the way is stopped,
//! with what was learned saved, instead of failing episode after episode.
//!
//! Training episodes are judged by `[episode] success`. Those that end within the learning
//! warm-up are the prior's own (the residual is still zero): their failure rate `p0` is the
//! baseline. After the warm-up, if `stop` + ⌈10·p0⌉ of the last 10 episodes failed, the run
//! stops (`[safety] failed_episodes_stop`, 3 by default; 0 turns the guard off). With a prior
//! that never fails, the robot fails at most 3 of any 10 customized episodes before resq stops.

use heapless::Deque;

/// Episodes the guard looks back over.
pub const WINDOW: usize = 10;

/// Why the guard stopped a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trip {
    /// Failed episodes among the last [`WINDOW`].
    pub failed: usize,
    /// The prior's own episodes during the warm-up, and how many failed.
    pub prior_episodes: u32,
    pub prior_failed: u32,
    /// Late steps (real time: the robot stepped before the command arrived) in the last
    /// [`WINDOW`] episodes: failures may be the loop's timing rather than the customization.
    pub late_steps: u32,
}

pub struct FailureGuard {
    stop: u32,
    warmup_steps: u64,
    prior_episodes: u32,
    prior_failed: u32,
    /// Outcomes after the warm-up, newest last: (failed, late steps).
    recent: Deque<(bool, u32), WINDOW>,
}

impl FailureGuard {
    /// `stop` = 0: never trips.
    pub fn new(stop: u32, warmup_steps: u64) -> Self {
        FailureGuard { stop, warmup_steps, prior_episodes: 0, prior_failed: 0, recent: Deque::new() }
    }

    /// An episode with `late_steps` late steps ended at `env_steps`; `Some` if the run must stop.
    pub fn episode_end(&mut self, env_steps: u64, success: bool, late_steps: u32) -> Option<Trip> {
        if env_steps <= self.warmup_steps {
            self.prior_episodes += 1;
            self.prior_failed += !success as u32;
            return None;
        }
        if self.stop == 0 {
            return None;
        }
        if self.recent.is_full() {
            self.recent.pop_front();
        }
        let _ = self.recent.push_back((!success, late_steps));
        let failed = self.recent.iter().filter(|(f, _)| *f).count();
        let p0 = self.prior_failed as f64 / self.prior_episodes.max(1) as f64;
        let allowed = self.stop as usize + (WINDOW as f64 * p0).ceil() as usize;
        (failed >= allowed).then_some(Trip {
            failed,
            prior_episodes: self.prior_episodes,
            prior_failed: self.prior_failed,
            late_steps: self.recent.iter().map(|(_, l)| l).sum(),
        })
    }
}

impl FailureGuard {
    /// The prior's own training episodes in the warm-up, and how many failed (counted whether
    /// or not the guard is on).
    pub fn prior(&self) -> (u32, u32) {
        (self.prior_episodes, self.prior_failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_on_the_third_failure_in_ten_beyond_the_priors_own() {
        // A prior that never failed in the warm-up: the third failure within 10 trips.
        let mut g = FailureGuard::new(3, 1000);
        for step in [500, 1000] {
            assert_eq!(g.episode_end(step, true, 0), None);
        }
        let outcomes = [true, false, true, false, true, true, false, true];
        let mut tripped = None;
        for (i, ok) in outcomes.iter().enumerate() {
            if let Some(t) = g.episode_end(1500 + 500 * i as u64, *ok, 0) {
                tripped = Some((i, t));
                break;
            }
        }
        assert_eq!(tripped, Some((6, Trip { failed: 3, prior_episodes: 2, prior_failed: 0, late_steps: 0 })));
        // Failures spread out (one in 10) never trip.
        let mut g = FailureGuard::new(3, 0);
        for i in 0..100u64 {
            assert_eq!(g.episode_end(1 + i, i % 10 != 0, 0), None);
        }
        // A prior that fails half its warm-up episodes is allowed 3 + 5 failures in 10.
        let mut g = FailureGuard::new(3, 1000);
        for (s, ok) in [(100, false), (200, true), (300, false), (400, true)] {
            g.episode_end(s, ok, 0);
        }
        for i in 0..7u64 {
            assert_eq!(g.episode_end(2000 + i, false, 0), None, "{i}");
        }
        assert_eq!(g.episode_end(3000, false, 0).map(|t| (t.failed, t.prior_failed)), Some((8, 2)));
        // The trip counts the late steps of the window's episodes only.
        let mut g = FailureGuard::new(3, 0);
        assert_eq!(g.episode_end(1, false, 100), None);
        for i in 0..10u64 {
            assert_eq!(g.episode_end(2 + i, true, 1), None);
        }
        assert_eq!(g.episode_end(20, false, 2), None);
        assert_eq!(g.episode_end(21, false, 2), None);
        assert_eq!(g.episode_end(22, false, 2).map(|t| (t.failed, t.late_steps)), Some((3, 13)));
        // Off.
        let mut g = FailureGuard::new(0, 0);
        assert!((0..50).all(|i| g.episode_end(i + 1, false, 0).is_none()));
    }
}
