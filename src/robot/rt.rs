//! Real-time scheduling for the control loop (`resq run --rt-priority N`).
//!
//! On a shared or busy computer the control loop competes with every other runnable thread and,
//! at a few hundred hertz, loses ticks: the robot steps before the command arrives (counted as
//! late steps, never learned from) and may fail its task. `SCHED_FIFO` at priority `N` (1–99)
//! lets the loop preempt ordinary threads; the learner thread stays an ordinary thread (it
//! returns to `SCHED_OTHER` when it starts, then lowers its nice value), so learning never
//! delays a tick. It needs privileges: root, `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` of at
//! least `N` (`ulimit -r`). Linux only.

use crate::error::Fixable;

/// The calling thread's scheduling before [`enter`]; restored on drop.
pub struct RealtimeGuard {
    #[cfg(target_os = "linux")]
    policy: libc::c_int,
    #[cfg(target_os = "linux")]
    priority: libc::c_int,
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1–99) until the guard drops.
/// Threads it spawns inherit the policy; helper threads call [`background`].
pub fn enter(priority: u8) -> Result<RealtimeGuard, Fixable> {
    if !(1..=99).contains(&priority) {
        return Err(Fixable::new(
            format!("real-time priority {priority} is out of range"),
            "pass --rt-priority between 1 and 99 (e.g. 50)",
        ));
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread (pid 0), with a valid param struct.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old = libc::sched_param { sched_priority: 0 };
            libc::sched_getparam(0, &mut old);
            let p = libc::sched_param { sched_priority: priority as libc::c_int };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Fixable::new(
                    format!("could not give the control loop real-time priority {priority} (SCHED_FIFO): {e}"),
                    format!("run as root, grant the binary CAP_SYS_NICE (`sudo setcap cap_sys_nice+ep $(which resq)`), or raise this user's real-time limit (`ulimit -r {priority}`, /etc/security/limits.conf `rtprio`); or leave out --rt-priority"),
                ));
            }
            Ok(RealtimeGuard { policy: policy.max(0), priority: old.sched_priority })
        }
    }
    #[cfg(not(target_os = "linux"))]
    Err(Fixable::new("--rt-priority is supported on Linux only", "leave it out"))
}

/// Puts the calling thread in the background: ordinary scheduling (`SCHED_OTHER`, whatever it
/// inherited) at `nice` (Linux: `setpriority` on the thread's id; elsewhere nothing). Always
/// permitted for a nice above 0; a failure is logged, never fatal.
pub fn background(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system calls on the calling thread (pid 0, its own thread id).
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            match libc::sched_setscheduler(0, libc::SCHED_OTHER, &p) {
                0 => libc::setpriority(libc::PRIO_PROCESS, tid, nice),
                e => e,
            }
        };
        if rc != 0 {
            log::warn!(
                "could not put a helper thread in the background: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Whether [`enter`] at `priority` is permitted here (tried on a short-lived thread).
pub fn permitted(priority: u8) -> bool {
    std::thread::spawn(move || enter(priority).is_ok()).join().unwrap_or(false)
}

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            let p = libc::sched_param { sched_priority: self.priority };
            // SAFETY: as in `enter`.
            unsafe { libc::sched_setscheduler(0, self.policy, &p) };
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn enters_and_leaves_fifo_when_permitted() {
        assert!(enter(0).is_err() && enter(100).is_err());
        std::thread::spawn(|| {
            // SAFETY: reading the calling thread's policy.
            let policy = || unsafe { libc::sched_getscheduler(0) };
            match enter(10) {
                Ok(g) => {
                    assert_eq!(policy(), libc::SCHED_FIFO);
                    let child = std::thread::spawn(move || {
                        background(10);
                        policy()
                    });
                    assert_eq!(child.join().unwrap(), libc::SCHED_OTHER);
                    drop(g);
                    assert_eq!(policy(), libc::SCHED_OTHER);
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    assert!(msg.contains("fix:") && msg.contains("CAP_SYS_NICE"), "{msg}");
                    eprintln!("SCHED_FIFO not permitted here; checked the refusal's message only");
                }
            }
        })
        .join()
        .unwrap();
    }
}
