//! A timer always due within [`TICK`], so that arming a call's timeout never wakes the
//! runtime's driver.
//!
//! When tokio's time driver parks, it remembers the earliest timer then due; a timer armed
//! afterwards that is due sooner makes it write to its eventfd (`unpark`), so that it parks
//! again with the shorter wait. In a cold `run --once` the earliest timer at most parks was a
//! copy's (`copy_timeout`), or there was none, so each API call's timeout (10–30 s), armed
//! after the park, was due sooner and woke the driver: 1,690 eventfd writes of the run's 3,795
//! `write` calls (`strace -c`; 2,108 with this timer pending, the log lines). With a timer due
//! within [`TICK`] always pending, no such timeout is ever the earliest. The cost is one
//! wake-up of the runtime per [`TICK`], a few microseconds, idle daemon included. A timeout
//! shorter than [`TICK`] (an `inspect_timeout` set below it) wakes the driver as before.

use std::time::Duration;

/// Shorter than every call timeout that is armed per request (Events: 10 s).
pub const TICK: Duration = Duration::from_secs(2);

/// Keeps a timer due within [`TICK`] pending until dropped.
pub async fn keep_a_timer_due() {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_is_shorter_than_every_per_call_timeout() {
        use crate::reconcile::api::{EVENT_TIMEOUT, WRITE_TIMEOUT};
        assert!(TICK < EVENT_TIMEOUT && TICK < WRITE_TIMEOUT);
    }
}
