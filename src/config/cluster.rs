//! `tether.cluster`: replicas with the same `name` sharing run-time changes
//! and session pins through Redis (docs/replicas.md). Read strictly like
//! every section; the check that cookie affinity then has shared keys is
//! here too, reported at each load balancer's `session_affinity`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use redis::IntoConnectionInfo;

use super::model::{Cluster, LoadBalancer, SessionAffinity};
use super::read::{quote, Check, Errors, Node};

/// The fewest bytes of secret a cluster key file holds, after trimming.
pub const MIN_KEY_BYTES: usize = 32;

/// The secret a cluster key file's bytes hold: trimmed of whitespace at both
/// ends, at least [`MIN_KEY_BYTES`] of it. The configuration's check of
/// `key_file` and the cluster's key (`crate::cluster::key`) both read it here,
/// so the configuration imports nothing of the cluster.
pub fn key_secret(bytes: &[u8]) -> Result<&[u8], String> {
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_KEY_BYTES {
        return Err(format!(
            "holds {} byte(s) of secret after trimming whitespace; a cluster key needs at least {MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom | base64 > cluster.key)",
            secret.len()
        ));
    }
    Ok(secret)
}

/// `tether.cluster: {redis_url, name, key_file, ca_file, username, password_file}`.
pub fn read_cluster(node: &Node<'_>, errs: &mut Errors) -> Option<Cluster> {
    let o = node.object(
        errs,
        &[
            "redis_url",
            "name",
            "key_file",
            "ca_file",
            "username",
            "password_file",
        ],
    )?;
    let redis_url = o.req(errs, "redis_url").and_then(|n| {
        let url = n.str(errs)?;
        match url.into_connection_info() {
            Ok(info)
                if matches!(
                    info.addr(),
                    redis::ConnectionAddr::TcpTls { insecure: true, .. }
                ) =>
            {
                errs.at(
                    n,
                    "a rediss:// URL with #insecure (no certificate check) is not supported: give the Redis server's CA in ca_file",
                );
                None
            }
            Ok(info) => Some((url.to_string(), info)),
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
    let key_file = o.req(errs, "key_file").and_then(|n| {
        let path = n.str(errs)?;
        errs.defer(n, Check::ClusterKey(PathBuf::from(path)));
        Some(PathBuf::from(path))
    });
    let tls = redis_url
        .as_ref()
        .map(|(url, _)| url.starts_with("rediss://"));
    let ca_file = match o.opt("ca_file") {
        None => Some(None),
        Some(n) => n.str(errs).and_then(|path| {
            if tls == Some(false) {
                errs.at(
                    n,
                    "verifies the Redis server's TLS certificate: it needs a rediss:// redis_url",
                );
                return None;
            }
            errs.defer(n, Check::Readable(PathBuf::from(path)));
            Some(Some(PathBuf::from(path)))
        }),
    };
    let in_url = redis_url.as_ref().map(|(_, info)| {
        let r = info.redis_settings();
        (r.username().is_some(), r.password().is_some())
    });
    let password_file = match o.opt("password_file") {
        None => Some(None),
        Some(n) => n.str(errs).and_then(|path| {
            if in_url.is_some_and(|(_, password)| password) {
                errs.at(
                    n,
                    "redis_url already holds a password: give it in one place",
                );
                return None;
            }
            errs.defer(n, Check::PasswordFile(PathBuf::from(path)));
            Some(Some(PathBuf::from(path)))
        }),
    };
    let username = match o.opt("username") {
        None => Some(None),
        Some(n) => n.str(errs).and_then(|user| {
            let problem = if user.is_empty() || user.chars().any(|c| c.is_whitespace()) {
                Some(format!(
                    "must be a Redis ACL user name (not empty, no spaces), got {}",
                    quote(user)
                ))
            } else if o.opt("password_file").is_none() {
                Some("needs password_file (the ACL user's password)".to_string())
            } else if in_url.is_some_and(|(username, _)| username) {
                Some("redis_url already holds a user name: give it in one place".to_string())
            } else {
                None
            };
            match problem {
                Some(p) => {
                    errs.at(n, p);
                    None
                }
                None => Some(Some(user.to_string())),
            }
        }),
    };
    Some(Cluster {
        redis_url: redis_url?.0,
        name: name?,
        key_file: key_file?,
        ca_file: ca_file?,
        username: username?,
        password_file: password_file?,
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
