//! The CPU scheduling policy the proxy's threads run under (`runtime.scheduling`).
//!
//! `batch` (the default) is Linux's `SCHED_BATCH`: a proxy thread woken by a packet
//! does not preempt whatever runs on that CPU (usually the app it sits beside, or the
//! peer proxy); it runs at its next fair turn and then handles everything that arrived
//! meanwhile in one pass. Its share of the CPU is unchanged; only wake-up preemption
//! goes. On a CPU with idle time this changes nothing (a woken thread goes to an idle
//! CPU); on a saturated one it turns one context switch per message into one per
//! batch: the Waymark pair carries 12–16 % more HTTP/1.1 requests per second at a lower
//! p99 in `benches/proxy-compare.sh`, which measures both policies. `normal` is
//! `SCHED_OTHER`, what a process gets unless it asks.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    #[default]
    Batch,
    Normal,
}

impl Scheduling {
    /// Sets the calling thread's policy; threads it starts afterwards (the runtime's,
    /// the blocking pool's) inherit it, so call this before building the runtime.
    pub fn apply_to_this_thread(self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let policy = match self {
                Scheduling::Batch => libc::SCHED_BATCH,
                Scheduling::Normal => libc::SCHED_OTHER,
            };
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call.
            if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
