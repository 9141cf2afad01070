//! Drain (SPEC 4.3): for `drain_duration` from the moment an endpoint was
//! disabled, sessions already pinned to it keep going to it and no new session
//! is sent to it; then it is simply disabled. Pure: time is passed in, in
//! milliseconds of the caller's monotonic clock.

/// Where an endpoint stands for the sessions of one load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    /// Enabled: takes existing and new sessions.
    Active,
    /// Disabled, inside the drain window: keeps its sessions, takes no new ones.
    Draining { left_ms: u64 },
    /// Disabled and the window (if any) is over: takes nothing.
    Drained,
}

/// The drain state of an endpoint disabled at `disabled_since` (`None` while
/// enabled) under a load balancer whose `drain_duration` is `drain_ms`.
pub fn drain_state(disabled_since: Option<u64>, drain_ms: u64, now: u64) -> DrainState {
    let Some(since) = disabled_since else {
        return DrainState::Active;
    };
    let ends = since.saturating_add(drain_ms);
    if now < ends {
        DrainState::Draining {
            left_ms: ends - now,
        }
    } else {
        DrainState::Drained
    }
}

impl DrainState {
    /// May existing sessions keep using the endpoint?
    pub fn keeps_sessions(self) -> bool {
        !matches!(self, DrainState::Drained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_endpoints_are_active() {
        assert_eq!(drain_state(None, 60_000, 5), DrainState::Active);
        assert!(DrainState::Active.keeps_sessions());
    }

    #[test]
    fn the_drain_timeline() {
        // Disabled at t = 1000 ms with a 60 s drain.
        let at = |now| drain_state(Some(1_000), 60_000, now);
        assert_eq!(at(1_000), DrainState::Draining { left_ms: 60_000 });
        assert_eq!(at(31_000), DrainState::Draining { left_ms: 30_000 });
        assert_eq!(at(60_999), DrainState::Draining { left_ms: 1 });
        assert_eq!(at(61_000), DrainState::Drained);
        assert_eq!(at(1_000_000), DrainState::Drained);
        assert!(at(60_999).keeps_sessions());
        assert!(!at(61_000).keeps_sessions());
    }

    #[test]
    fn zero_drain_disables_at_once() {
        assert_eq!(drain_state(Some(1_000), 0, 1_000), DrainState::Drained);
    }

    #[test]
    fn no_overflow_at_the_end_of_time() {
        assert_eq!(
            drain_state(Some(u64::MAX - 1), 10, u64::MAX - 1),
            DrainState::Draining { left_ms: 1 }
        );
    }
}
