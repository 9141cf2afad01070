//! How each enumerated setting is spelled in the file, once: the reader
//! accepts [`Spelled::SPELLINGS`], the writer ([`super::load_balancer_to_value`]),
//! the admin API's views and the log all print [`Spelled::name`].

use serde::{Serialize, Serializer};

use super::model::*;

/// An enumerated setting with its accepted spellings. The last spelling of a
/// value is its canonical name (`""` and `off` both read as `Off`; it is
/// written `off`).
pub trait Spelled: Copy + PartialEq + 'static {
    const SPELLINGS: &'static [(&'static str, Self)];

    fn name(self) -> &'static str {
        Self::SPELLINGS
            .iter()
            .rev()
            .find(|(_, v)| *v == self)
            .map_or("", |(name, _)| *name)
    }
}

impl Spelled for SteeringPolicy {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("", SteeringPolicy::Off),
        ("off", SteeringPolicy::Off),
        ("random", SteeringPolicy::Random),
        (
            "least_outstanding_requests",
            SteeringPolicy::LeastOutstandingRequests,
        ),
        ("dynamic_latency", SteeringPolicy::DynamicLatency),
    ];
}

impl Spelled for SessionAffinity {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("", SessionAffinity::None),
        ("none", SessionAffinity::None),
        ("cookie", SessionAffinity::Cookie),
        ("ip_cookie", SessionAffinity::IpCookie),
        ("header", SessionAffinity::Header),
        ("source_ip", SessionAffinity::SourceIp),
    ];
}

impl Spelled for AccessLogFormat {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("text", AccessLogFormat::Text),
        ("json", AccessLogFormat::Json),
    ];
}

impl Spelled for SameSite {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("Auto", SameSite::Auto),
        ("Lax", SameSite::Lax),
        ("Strict", SameSite::Strict),
        ("None", SameSite::None),
    ];
}

impl Spelled for Secure {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("Auto", Secure::Auto),
        ("Always", Secure::Always),
        ("Never", Secure::Never),
    ];
}

impl Spelled for ZeroDowntimeFailover {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("none", ZeroDowntimeFailover::None),
        ("temporary", ZeroDowntimeFailover::Temporary),
        ("sticky", ZeroDowntimeFailover::Sticky),
    ];
}

impl Spelled for OriginSteering {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("random", OriginSteering::Random),
        ("hash", OriginSteering::Hash),
        (
            "least_outstanding_requests",
            OriginSteering::LeastOutstandingRequests,
        ),
        ("least_connections", OriginSteering::LeastConnections),
    ];
}

impl Spelled for OriginProtocol {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("http1", OriginProtocol::Http1),
        ("h2", OriginProtocol::H2),
        ("h2c", OriginProtocol::H2c),
    ];
}

impl Spelled for MonitorType {
    const SPELLINGS: &'static [(&'static str, Self)] = &[
        ("http", MonitorType::Http),
        ("https", MonitorType::Https),
        ("tcp", MonitorType::Tcp),
        ("grpc", MonitorType::Grpc),
    ];
}

impl Spelled for ShedPolicy {
    const SPELLINGS: &'static [(&'static str, Self)] =
        &[("random", ShedPolicy::Random), ("hash", ShedPolicy::Hash)];
}

/// Every enumerated setting is written as its canonical name.
macro_rules! written_as_spelled {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    )*};
}
written_as_spelled!(
    SteeringPolicy,
    SessionAffinity,
    AccessLogFormat,
    SameSite,
    Secure,
    ZeroDowntimeFailover,
    OriginSteering,
    MonitorType,
    ShedPolicy,
    OriginProtocol
);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Spelled + std::fmt::Debug>() {
        for (_, value) in T::SPELLINGS {
            let name = value.name();
            let read = T::SPELLINGS.iter().find(|(n, _)| *n == name).map(|e| e.1);
            assert_eq!(read, Some(*value), "{name:?} reads back as {value:?}");
            assert!(!name.is_empty(), "{value:?} has a canonical name");
        }
    }

    #[test]
    fn every_canonical_name_reads_back_as_its_value() {
        round_trips::<SteeringPolicy>();
        round_trips::<SessionAffinity>();
        round_trips::<SameSite>();
        round_trips::<Secure>();
        round_trips::<ZeroDowntimeFailover>();
        round_trips::<OriginSteering>();
        round_trips::<MonitorType>();
        round_trips::<OriginProtocol>();
        assert_eq!(SteeringPolicy::Off.name(), "off");
        assert_eq!(SessionAffinity::None.name(), "none");
    }
}
