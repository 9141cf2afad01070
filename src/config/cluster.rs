//! `tether.cluster`: replicas with the same `name` sharing run-time changes
//! and session pins through Redis (docs/replicas.md). Read strictly like
//! every section; the check that cookie affinity then has shared keys is
//! here too, reported at each load balancer's `session_affinity`.

use std::collections::BTreeMap;

use redis::IntoConnectionInfo;

use super::model::{Cluster, LoadBalancer, SessionAffinity};
use super::read::{quote, Errors, Node};

/// `tether.cluster: {redis_url, name}`.
pub fn read_cluster(node: &Node<'_>, errs: &mut Errors) -> Option<Cluster> {
    let o = node.object(errs, &["redis_url", "name"])?;
    let redis_url = o.req(errs, "redis_url").and_then(|n| {
        let url = n.str(errs)?;
        match url.into_connection_info() {
            Ok(_) => Some(url.to_string()),
            Err(e) => {
                errs.at(
                    n,
                    format!(
                        "must be a Redis URL such as \"redis://127.0.0.1:6379/0\" (rediss:// for TLS, redis+unix:///path), got {}: {e}",
                        quote(url)
                    ),
                );
                None
            }
        }
    });
    let name = o.req(errs, "name").and_then(|n| {
        let name = n.str(errs)?;
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Some(name.to_string())
        } else {
            errs.at(
                n,
                format!(
                    "must be 1 to 64 letters, digits, '-', '_' or '.' (it prefixes the Redis keys), got {}",
                    quote(name)
                ),
            );
            None
        }
    });
    Some(Cluster {
        redis_url: redis_url?,
        name: name?,
    })
}

/// With a cluster, cookies must verify on every replica: a load balancer
/// with cookie affinity needs `tether.cookie_keys_file`.
pub fn check_cookie_keys(
    lbs_node: Option<&Node<'_>>,
    lbs: &BTreeMap<String, LoadBalancer>,
    errs: &mut Errors,
) {
    let Some(entries) = lbs_node.and_then(|n| match n.value {
        serde_yaml::Value::Mapping(_) => n.map(errs),
        _ => None,
    }) else {
        return;
    };
    for (name, node) in entries {
        let cookies = lbs.get(&name.to_ascii_lowercase()).is_some_and(|lb| {
            matches!(
                lb.session_affinity,
                SessionAffinity::Cookie | SessionAffinity::IpCookie
            )
        });
        if !cookies {
            continue;
        }
        let at = match &node.value {
            serde_yaml::Value::Mapping(_) => node
                .map(errs)
                .and_then(|m| m.into_iter().find(|(k, _)| *k == "session_affinity"))
                .map(|(_, n)| n),
            _ => None,
        };
        let message = "cookie affinity with tether.cluster needs tether.cookie_keys_file: without shared keys the replicas could not read each other's cookies";
        match at {
            Some(n) => errs.at(&n, message),
            None => errs.at(&node, message),
        }
    }
}
