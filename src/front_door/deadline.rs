//! A connection's deadline that costs nothing to move. The front door moves
//! a connection's deadline twice a request (idle after a response, header
//! from the next request's first byte) and clears it once the header is
//! complete. Resetting a tokio `Sleep` each time re-registers it with the
//! timer and, when the new deadline is the runtime's earliest, wakes the I/O
//! driver with a system call: measured, one `write(2)` to the runtime's
//! eventfd per request (docs/benchmarks.md).
//!
//! [`Deadline`] keeps the deadline as a plain instant instead, and its timer
//! lazily: the timer is only created when the connection actually waits,
//! only moved *earlier* when it must be (a header that arrives in pieces),
//! and when it fires before the current deadline it is re-armed for that
//! deadline — at most once per timeout period, not once per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

#[derive(Debug, Default)]
pub struct Deadline {
    /// The deadline in force; `None`: none.
    at: Option<Instant>,
    /// The timer that wakes a waiting connection: at or before `at`.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Sets the deadline to `at` (no timer work).
    pub fn set(&mut self, at: Instant) {
        self.at = Some(at);
    }

    /// No deadline from now on (the timer is kept for the next one).
    pub fn clear(&mut self) {
        self.at = None;
    }

    pub fn is_set(&self) -> bool {
        self.at.is_some()
    }

    /// Whether the deadline is set and `now` is at or past it.
    pub fn passed(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| now >= at)
    }

    /// For a connection about to wait: `Ready` once the deadline has passed,
    /// else `Pending` with `cx` woken when it passes. `Pending` for ever when
    /// there is no deadline.
    pub fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() > at {
            timer.as_mut().reset(at);
        }
        // Bounded: after a reset the timer's deadline is `at`, so the second
        // round either waits or is the real expiry.
        for _ in 0..2 {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if timer.deadline() >= at {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline since moved later.
            timer.as_mut().reset(at);
        }
        Poll::Pending
    }

    /// Waits until the deadline passes (for ever when there is none).
    pub async fn passed_at(&mut self) {
        std::future::poll_fn(|cx| self.poll_passed(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> Instant {
        crate::clock::tokio_now()
    }

    /// Polls once with a no-op waker.
    fn poll_once(d: &mut Deadline) -> Poll<()> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        d.poll_passed(&mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_nothing_passes() {
        let mut d = Deadline::default();
        assert!(!d.is_set());
        assert!(poll_once(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(poll_once(&mut d).is_pending());
        assert!(!d.passed(now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_at_its_time_not_before() {
        let mut d = Deadline::default();
        d.set(now() + Duration::from_secs(10));
        assert!(poll_once(&mut d).is_pending());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(poll_once(&mut d).is_pending());
        assert!(!d.passed(now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(poll_once(&mut d).is_ready());
        assert!(d.passed(now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_is_kept_when_the_old_timer_fires() {
        let mut d = Deadline::default();
        d.set(now() + Duration::from_secs(5));
        assert!(poll_once(&mut d).is_pending(), "the timer is armed for 5 s");
        d.set(now() + Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            poll_once(&mut d).is_pending(),
            "the old timer fired, the deadline is later"
        );
        tokio::time::advance(Duration::from_secs(54)).await;
        assert!(poll_once(&mut d).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_earlier_passes_at_the_earlier_time() {
        let mut d = Deadline::default();
        d.set(now() + Duration::from_secs(60));
        assert!(poll_once(&mut d).is_pending());
        d.set(now() + Duration::from_secs(2));
        assert!(poll_once(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(poll_once(&mut d).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cleared_deadline_never_passes_and_a_new_one_does() {
        let mut d = Deadline::default();
        d.set(now() + Duration::from_secs(1));
        assert!(poll_once(&mut d).is_pending());
        d.clear();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(poll_once(&mut d).is_pending(), "cleared");
        d.set(now() + Duration::from_secs(3));
        assert!(
            poll_once(&mut d).is_pending(),
            "the fired timer is re-armed"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(poll_once(&mut d).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn passed_at_waits_for_the_deadline() {
        let mut d = Deadline::default();
        let start = now();
        d.set(start + Duration::from_secs(7));
        d.passed_at().await;
        assert_eq!(now() - start, Duration::from_secs(7));
    }
}
