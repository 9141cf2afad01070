//! The affinity decision a request is routed, logged and counted under
//! (plain data: the sticky selector makes it, the metrics count it).

/// How a request's endpoint was decided; logged, counted and (optionally)
/// sent back in `X-Tether-Decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// No affinity for this request (off, or `header` without the headers).
    None,
    /// No pin: chosen and pinned.
    New,
    /// The pin could not be read: not ours, tampered, another load balancer's,
    /// or naming an endpoint this configuration does not have.
    Invalid,
    /// The pin's time is up.
    Expired,
    /// The pinned endpoint is unhealthy, its pool disabled, or it sits in the
    /// fallback pool while a default pool is healthy again.
    RepinUnhealthy,
    /// The pinned endpoint was disabled and its drain is over.
    RepinDrained,
    /// The session was shed from its pool (`load_shedding.session_percent`)
    /// to the next pool in order.
    RepinShed,
    /// The pin was honoured.
    Hit,
    /// The pinned endpoint refused the connection; served elsewhere, pin kept.
    FailoverTemporary,
    /// The pinned endpoint refused the connection; served elsewhere and re-pinned.
    FailoverSticky,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::None => "none",
            Decision::New => "new",
            Decision::Invalid => "invalid",
            Decision::Expired => "expired",
            Decision::RepinUnhealthy => "repin_unhealthy",
            Decision::RepinDrained => "repin_drained",
            Decision::RepinShed => "repin_shed",
            Decision::Hit => "hit",
            Decision::FailoverTemporary => "failover_temporary",
            Decision::FailoverSticky => "failover_sticky",
        }
    }

    /// The response pins the session anew (a cookie, a table entry).
    pub fn pins(self) -> bool {
        matches!(
            self,
            Decision::New
                | Decision::Invalid
                | Decision::Expired
                | Decision::RepinUnhealthy
                | Decision::RepinDrained
                | Decision::RepinShed
                | Decision::FailoverSticky
        )
    }
}
