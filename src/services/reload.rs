//! SIGHUP reloads the `tether:` section in place: the file is read and
//! validated exactly as at start; an invalid file changes nothing (its
//! errors are logged); a valid one becomes the running configuration
//! through the owner of changes ([`Changes::reload`]), the client limits are
//! swapped, and no connection, request or WebSocket is dropped. The TLS
//! listeners' certificates and keys are read again (the files a listener
//! names, at the same address): one unreadable, or a key that does not match
//! its certificate, refuses the whole reload and the running certificates
//! stay; else new handshakes get the new ones (open connections keep
//! theirs). What needs new sockets or a new process (a listener's address or
//! whether it has TLS, the admin listener, the state file's path, the
//! session table's size, Pingora's own keys) is named in the log as needing
//! a hot upgrade and stays as it is.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::affinity::cookie::CookieKeys;
use crate::changes::Changes;
use crate::config::{self, ClientLimits, Config, Loaded};
use crate::front_door::tls::{ListenerCertificates, SniResolver};

/// What a reload cannot change in a running process, as it was at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// Each listener's address and whether it has TLS (its certificates
    /// are reloaded).
    listeners: Vec<(String, bool)>,
    admin: Option<config::Admin>,
    state_file: Option<PathBuf>,
    max_sessions: usize,
    /// The link to Redis and the cluster key are made at start.
    cluster: Option<config::Cluster>,
    /// Pingora's keys, as Pingora read them.
    pingora: String,
}

impl Fixed {
    pub fn of(loaded: &Loaded) -> Fixed {
        Fixed {
            listeners: loaded
                .tether
                .listeners
                .iter()
                .map(|l| (l.address.clone(), l.tls.is_some()))
                .collect(),
            admin: loaded.tether.admin.clone(),
            state_file: loaded.tether.state_file.clone(),
            max_sessions: loaded.tether.max_sessions,
            cluster: loaded.tether.cluster.clone(),
            pingora: format!("{:?}", loaded.server),
        }
    }

    /// The keys whose new values need a hot upgrade (or a restart).
    pub fn differences(&self, new: &Fixed) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.listeners != new.listeners {
            keys.push("tether.listeners");
        }
        if self.admin != new.admin {
            keys.push("tether.admin");
        }
        if self.state_file != new.state_file {
            keys.push("tether.state_file");
        }
        if self.max_sessions != new.max_sessions {
            keys.push("tether.max_sessions");
        }
        if self.cluster != new.cluster {
            keys.push("tether.cluster");
        }
        if self.pingora != new.pingora {
            keys.push("Pingora's keys (threads, work_stealing, ...)");
        }
        keys
    }
}

/// The reload, as a Pingora background service listening for SIGHUP.
pub struct Reloader {
    path: PathBuf,
    changes: Arc<Changes>,
    limits: Arc<ArcSwap<ClientLimits>>,
    fixed: Fixed,
    /// The running TLS listeners' certificates, by listener index.
    resolvers: Vec<Option<Arc<SniResolver>>>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        changes: Arc<Changes>,
        limits: Arc<ArcSwap<ClientLimits>>,
        fixed: Fixed,
        resolvers: Vec<Option<Arc<SniResolver>>>,
    ) -> Self {
        Reloader {
            path,
            changes,
            limits,
            fixed,
            resolvers,
        }
    }

    /// Reads the file and, when it is valid, makes it the running
    /// configuration. Returns whether it did.
    pub fn reload(&self) -> bool {
        let shown = self.path.display();
        let loaded = match config::load_file(&self.path) {
            Ok(loaded) => loaded,
            Err(errors) => {
                error!(
                    "reload refused: {shown} has {} configuration error(s); the running configuration stays",
                    errors.0.len()
                );
                for e in &errors.0 {
                    error!("reload refused: {e}");
                }
                return false;
            }
        };
        let keys = match self.keys(&loaded.tether) {
            Ok(keys) => keys,
            Err(e) => {
                error!(
                    "reload refused: tether.cookie_keys_file: {e}; the running configuration stays"
                );
                return false;
            }
        };
        let certificates = match self.certificates(&loaded.tether) {
            Ok(certificates) => certificates,
            Err(e) => {
                error!("reload refused: {e}; the running configuration and certificates stay");
                return false;
            }
        };
        for key in self.fixed.differences(&Fixed::of(&loaded)) {
            warn!("reload: {key} changed in {shown}; that needs a hot upgrade (scripts/upgrade.sh) and stays as it is until then");
        }
        crate::access_log::set_format(loaded.tether.access_log.format);
        let limits = loaded.tether.client_limits;
        let state = self.changes.state();
        let said = self.changes.reload(loaded.tether, keys, state.clock.now());
        self.limits.store(Arc::new(limits));
        let swapped = certificates.len();
        for (resolver, certificates) in certificates {
            resolver.store(certificates);
        }
        if swapped > 0 {
            info!("reload: the certificates of {swapped} TLS listener(s) were read again");
        }
        for line in said {
            info!("reload: {line}");
        }
        info!("reload: {shown} is the running configuration");
        true
    }

    /// Every running TLS listener's certificates, read again from the files
    /// the new configuration names for the listener at the same address
    /// (a listener moved or changed is left as it is: a hot upgrade's). The
    /// first pair that cannot be read, or whose key does not match, is the
    /// error.
    fn certificates(
        &self,
        tether: &Config,
    ) -> Result<Vec<(Arc<SniResolver>, ListenerCertificates)>, String> {
        let mut loaded = Vec::new();
        for (i, resolver) in self.resolvers.iter().enumerate() {
            let (Some(resolver), Some((address, _))) = (resolver, self.fixed.listeners.get(i))
            else {
                continue;
            };
            let Some(tls) = tether
                .listeners
                .get(i)
                .filter(|l| &l.address == address)
                .and_then(|l| l.tls.as_ref())
            else {
                continue;
            };
            loaded.push((Arc::clone(resolver), ListenerCertificates::load(tls, i)?));
        }
        Ok(loaded)
    }

    /// The cookie keys: the file's when it names one (re-read, so keys can
    /// be rotated by a reload), else the running ones (a random key made at
    /// start stays, so cookies keep working).
    fn keys(&self, tether: &Config) -> Result<CookieKeys, String> {
        match &tether.cookie_keys_file {
            Some(file) => CookieKeys::from_file(file).map_err(|e| e.to_string()),
            None => Ok(self.changes.state().keys.clone()),
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot listen for SIGHUP, reload by signal is off: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    info!("SIGHUP: reloading {}", self.path.display());
                    self.reload();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(extra: &str) -> Loaded {
        config::load_str(&format!(
            "tether:\n  listeners: [{{address: \"127.0.0.1:8080\"}}]\n{extra}  load_balancers: {{\"*\": {{default_pools: [p]}}}}\n  pools: {{p: {{endpoints: [{{name: a, address: \"127.0.0.1:9001\"}}]}}}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn what_needs_a_hot_upgrade_is_named() {
        let base = Fixed::of(&loaded(""));
        assert!(base.differences(&Fixed::of(&loaded(""))).is_empty());
        let changed = Fixed::of(&loaded(
            "  max_sessions: 5\n  admin: {address: \"127.0.0.1:9180\"}\n",
        ));
        assert_eq!(
            base.differences(&changed),
            ["tether.admin", "tether.max_sessions"]
        );
        // A cluster (its Redis, its key file) is set up at start.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        std::fs::write(&key, [b'k'; 32]).unwrap();
        let cluster = |name: &str| {
            Fixed::of(&loaded(&format!(
                "  cluster: {{redis_url: \"redis://127.0.0.1:6379\", name: {name}, key_file: \"{}\"}}\n",
                key.display()
            )))
        };
        assert_eq!(base.differences(&cluster("a")), ["tether.cluster"]);
        assert_eq!(cluster("a").differences(&cluster("b")), ["tether.cluster"]);
        assert!(cluster("a").differences(&cluster("a")).is_empty());
        let threads = config::load_str(
            &("threads: 3\n".to_string()
                + "tether:\n  listeners: [{address: \"127.0.0.1:8080\"}]\n  load_balancers: {\"*\": {default_pools: [p]}}\n  pools: {p: {endpoints: [{name: a, address: \"127.0.0.1:9001\"}]}}\n"),
        )
        .unwrap();
        assert_eq!(
            base.differences(&Fixed::of(&threads)),
            ["Pingora's keys (threads, work_stealing, ...)"]
        );
    }

    /// A listener's certificate files are reloaded; its address, or whether
    /// it has TLS, needs a hot upgrade.
    #[test]
    fn certificate_files_reload_listeners_do_not() {
        let listeners = |tls: &str| {
            Fixed::of(&config::load_str(&format!(
                "tether:\n  listeners: [{{address: \"127.0.0.1:8080\"}}, {{address: \"127.0.0.1:8443\"{tls}}}]\n  load_balancers: {{\"*\": {{default_pools: [p]}}}}\n  pools: {{p: {{endpoints: [{{name: a, address: \"127.0.0.1:9001\"}}]}}}}\n"
            ))
            .unwrap())
        };
        let shorthand =
            listeners(", tls: {cert_path: conf/example-cert.pem, key_path: conf/example-key.pem}");
        let list = listeners(
            ", tls: {certificates: [{cert_path: conf/example-cert.pem, key_path: conf/example-key.pem}, {cert_path: conf/example-cert.pem, key_path: conf/example-key.pem}]}",
        );
        assert!(shorthand.differences(&list).is_empty());
        assert_eq!(shorthand.differences(&listeners("")), ["tether.listeners"]);
    }
}
