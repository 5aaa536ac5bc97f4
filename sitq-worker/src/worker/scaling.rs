//! How many slots a worker runs: fixed ([`Worker::concurrency`]) or scaled
//! between bounds ([`Worker::concurrency_range`]) by what the claim loop
//! sees, and the figures the registry and the metrics report.
//!
//! [`Worker::concurrency`]: crate::Worker::concurrency
//! [`Worker::concurrency_range`]: crate::Worker::concurrency_range

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How fast a ranged worker scales.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScaleTiming {
    /// At most one slot is added per this while a backlog lasts: a burst
    /// grows the worker gradually rather than to its maximum at once.
    pub(crate) grow_every: Duration,
    /// Slots that stayed unused this long are removed.
    pub(crate) shrink_after: Duration,
}

impl Default for ScaleTiming {
    fn default() -> Self {
        ScaleTiming {
            grow_every: Duration::from_millis(100),
            shrink_after: Duration::from_secs(30),
        }
    }
}

/// What the claim loop knows when it decides.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Load {
    /// Attempts running now.
    pub(crate) busy: usize,
    /// Whether claimed tasks wait in the prefetch buffer.
    pub(crate) buffered: bool,
    /// Whether the last claim got every task it asked for.
    pub(crate) last_claim_full: bool,
}

/// The number of slots, between `min` and `max`.
#[derive(Debug)]
pub(crate) struct Scaler {
    min: usize,
    max: usize,
    slots: usize,
    timing: ScaleTiming,
    last_grow: Instant,
    /// Since when no moment had every slot in use, and the most slots in
    /// use since then.
    window_start: Instant,
    peak: usize,
}

impl Scaler {
    /// Starts at `min` slots.
    pub(crate) fn new(min: usize, max: usize, timing: ScaleTiming) -> Scaler {
        let now = Instant::now();
        Scaler {
            min,
            max,
            slots: min,
            timing,
            last_grow: now,
            window_start: now,
            peak: 0,
        }
    }

    /// How many attempts may run at once now.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    fn backlog(&self, load: Load) -> bool {
        load.busy >= self.slots && (load.buffered || load.last_claim_full)
    }

    /// Adds a slot while every slot is busy and more work waits (the
    /// prefetch buffer holds tasks, or the last claim came back full);
    /// removes the slots left unused for [`ScaleTiming::shrink_after`].
    /// Returns whether the number changed.
    pub(crate) fn observe(&mut self, now: Instant, load: Load) -> bool {
        if self.min == self.max {
            return false;
        }
        self.peak = self.peak.max(load.busy);
        if self.backlog(load) && self.slots < self.max {
            if now < self.last_grow + self.timing.grow_every {
                return false;
            }
            self.slots += 1;
            self.last_grow = now;
            self.restart_window(now, load.busy);
            return true;
        }
        if self.peak >= self.slots {
            // Every slot was in use: none is idle.
            self.restart_window(now, load.busy);
            return false;
        }
        if self.slots > self.min && now >= self.window_start + self.timing.shrink_after {
            self.slots = self.peak.max(self.min);
            self.restart_window(now, load.busy);
            return true;
        }
        false
    }

    /// When [`observe`](Scaler::observe) may change something without
    /// anything else happening first; `None` when only an event can.
    pub(crate) fn next_check(&self, load: Load) -> Option<Instant> {
        if self.min == self.max {
            None
        } else if self.backlog(load) && self.slots < self.max {
            Some(self.last_grow + self.timing.grow_every)
        } else if self.slots > self.min {
            Some(self.window_start + self.timing.shrink_after)
        } else {
            None
        }
    }

    fn restart_window(&mut self, now: Instant, busy: usize) {
        self.window_start = now;
        self.peak = busy;
    }
}

/// The worker's current size and load, shared by the claim loop (which
/// sets it) with the registry beat and the metrics (which read it).
#[derive(Clone, Debug, Default)]
pub(crate) struct Gauge {
    inner: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Gauge {
    /// Records `slots` slots, `busy` of them running an attempt (a stopped
    /// worker records none).
    pub(crate) fn set(&self, slots: usize, busy: usize) {
        let (concurrency, running) = &*self.inner;
        let before = (
            concurrency.swap(slots, Ordering::Relaxed),
            running.swap(busy, Ordering::Relaxed),
        );
        if before != (slots, busy) {
            super::telemetry::slots_changed(before, (slots, busy));
        }
    }

    /// The current number of slots.
    pub(crate) fn concurrency(&self) -> usize {
        self.inner.0.load(Ordering::Relaxed)
    }

    /// The attempts running now.
    pub(crate) fn running(&self) -> usize {
        self.inner.1.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: ScaleTiming = ScaleTiming {
        grow_every: Duration::from_millis(100),
        shrink_after: Duration::from_secs(30),
    };

    fn load(busy: usize, buffered: bool, last_claim_full: bool) -> Load {
        Load {
            busy,
            buffered,
            last_claim_full,
        }
    }

    #[test]
    fn a_fixed_size_never_changes() {
        let mut scaler = Scaler::new(4, 4, TIMING);
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!scaler.observe(later, load(4, true, true)));
        assert!(!scaler.observe(later, load(0, false, false)));
        assert_eq!(scaler.slots(), 4);
        assert_eq!(scaler.next_check(load(4, true, true)), None);
    }

    #[test]
    fn grows_one_slot_per_step_while_a_backlog_lasts_up_to_the_max() {
        let mut scaler = Scaler::new(2, 4, TIMING);
        let mut now = Instant::now();
        // Too soon after the start.
        assert!(!scaler.observe(now, load(2, true, false)));
        for want in [3, 4] {
            now += TIMING.grow_every;
            assert!(scaler.observe(now, load(scaler.slots(), true, false)));
            assert_eq!(scaler.slots(), want);
        }
        now += TIMING.grow_every;
        assert!(
            !scaler.observe(now, load(4, true, true)),
            "never past the max"
        );
        assert_eq!(scaler.slots(), 4);
    }

    #[test]
    fn a_full_claim_is_a_backlog_a_free_slot_is_not() {
        let mut scaler = Scaler::new(1, 8, TIMING);
        let now = Instant::now() + TIMING.grow_every;
        assert!(!scaler.observe(now, load(0, true, true)), "a slot is free");
        assert!(!scaler.observe(now, load(1, false, false)), "nothing waits");
        assert!(scaler.observe(now, load(1, false, true)));
        assert_eq!(scaler.slots(), 2);
    }

    #[test]
    fn shrinks_to_the_slots_used_once_the_rest_stayed_idle() {
        let mut scaler = Scaler::new(2, 8, TIMING);
        let mut now = Instant::now();
        for _ in 0..6 {
            now += TIMING.grow_every;
            scaler.observe(now, load(scaler.slots(), true, false));
        }
        assert_eq!(scaler.slots(), 8);
        // All eight busy, then five, then fewer: three slots unused since.
        assert!(!scaler.observe(now, load(8, false, false)));
        assert!(!scaler.observe(now, load(5, false, false)));
        assert_eq!(
            scaler.next_check(load(3, false, false)),
            Some(now + TIMING.shrink_after)
        );
        now += TIMING.shrink_after / 2;
        assert!(!scaler.observe(now, load(3, false, false)));
        now += TIMING.shrink_after / 2;
        assert!(scaler.observe(now, load(3, false, false)));
        assert_eq!(scaler.slots(), 5);
        // Then idle: three were busy as that window began, none since.
        now += TIMING.shrink_after;
        assert!(scaler.observe(now, load(0, false, false)));
        assert_eq!(scaler.slots(), 3);
        // Down to the min, never below.
        now += TIMING.shrink_after;
        assert!(scaler.observe(now, load(0, false, false)));
        assert_eq!(scaler.slots(), 2);
        now += TIMING.shrink_after;
        assert!(!scaler.observe(now, load(0, false, false)));
        assert_eq!(scaler.next_check(load(0, false, false)), None);
    }

    #[test]
    fn every_slot_in_use_restarts_the_idle_window() {
        let mut scaler = Scaler::new(1, 2, TIMING);
        let mut now = Instant::now() + TIMING.grow_every;
        assert!(scaler.observe(now, load(1, true, false)));
        now += TIMING.shrink_after - Duration::from_millis(1);
        assert!(!scaler.observe(now, load(2, false, false)));
        now += TIMING.shrink_after - Duration::from_millis(1);
        assert!(
            !scaler.observe(now, load(1, false, false)),
            "busy 2 of 2 not long ago"
        );
        assert_eq!(scaler.slots(), 2);
    }
}
