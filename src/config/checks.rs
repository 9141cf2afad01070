//! The second layer of loading: what the pure walk deferred ([`Check`]) is
//! run here, after it — files read, the state file's directory tried, host
//! names resolved into the endpoints' addresses. Problems are reported under
//! the key path of the node that asked, in document order with the walk's.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use std::sync::Arc;

use pingora::protocols::tls::CaType;
use pingora::tls::CertificateDer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};

use super::model::{Config, PoolTls};
use super::read::{quote, Check, Deferred, Errors};

/// Runs every deferred check; resolved addresses go into `config` when the
/// walk produced one.
pub fn run(deferred: Vec<Deferred>, mut config: Option<&mut Config>, errs: &mut Errors) {
    for Deferred { path, order, check } in deferred {
        let result = match check {
            Check::Readable(file) => readable(&file).map(drop),
            Check::TokenFile(file) => readable(&file).and_then(|bytes| {
                if String::from_utf8_lossy(&bytes).trim().is_empty() {
                    Err(format!("the token file {} is empty", shown(&file)))
                } else {
                    Ok(())
                }
            }),
            Check::ClusterKey(file) => readable(&file).and_then(|bytes| {
                super::cluster::key_secret(&bytes)
                    .map(drop)
                    .map_err(|e| format!("{} {e}", shown(&file)))
            }),
            Check::PasswordFile(file) => {
                readable(&file).and_then(|bytes| match std::str::from_utf8(&bytes).map(str::trim) {
                    Ok("") => Err(format!("the password file {} is empty", shown(&file))),
                    Ok(_) => Ok(()),
                    Err(_) => Err(format!(
                        "the password file {} is not UTF-8 text",
                        shown(&file)
                    )),
                })
            }
            Check::StateFile(file) => state_file(&file),
            Check::OriginCa { file, pool } => origin_ca(&file).map(|(ca, fingerprint)| {
                if let Some(tls) = pool_tls(config.as_deref_mut(), &pool) {
                    tls.loaded.ca = Some(ca);
                    tls.loaded.ca_fingerprint = fingerprint;
                }
            }),
            // An unreadable certificate is reported at its own key
            // (`Check::Readable`); the pair is checked when both can be read.
            Check::OriginClientCert { cert, .. } if readable(&cert).is_err() => Ok(()),
            Check::OriginClientCert { cert, key, pool } => {
                origin_client_cert(&cert, &key).map(|pair| {
                    if let Some(tls) = pool_tls(config.as_deref_mut(), &pool) {
                        tls.loaded.client_cert_key = Some(pair);
                    }
                })
            }
            Check::Resolve {
                address,
                pool,
                endpoint,
            } => resolve(&address).map(|addr| {
                let target = config
                    .as_deref_mut()
                    .and_then(|c| c.pools.get_mut(&pool))
                    .and_then(|p| p.endpoints.get_mut(endpoint));
                if let Some(e) = target {
                    e.socket_addr = addr;
                }
            }),
        };
        if let Err(message) = result {
            errs.push(path, order, message);
        }
    }
}

fn pool_tls<'c>(config: Option<&'c mut Config>, pool: &str) -> Option<&'c mut PoolTls> {
    config?.pools.get_mut(pool)?.tls.as_mut()
}

/// A pool's `tls.ca_path`: every PEM certificate in it, each one a usable
/// trust anchor, and a hash of them all (never 0).
fn origin_ca(file: &Path) -> Result<(Arc<CaType>, u64), String> {
    use rustls_pki_types::pem::PemObject;
    use std::hash::{Hash, Hasher};
    readable(file)?;
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{} is not PEM: {e}", shown(file)))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", shown(file)));
    }
    let mut store = pingora::tls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} of {} is not a usable CA certificate: {e}",
                i + 1,
                shown(file)
            )
        })?;
    }
    // SipHash with fixed keys: the same bundle hashes the same after a reload.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    certs.iter().for_each(|c| c.as_ref().hash(&mut hasher));
    let fingerprint = hasher.finish() | 1;
    let ca: Vec<WrappedX509> = parsed(|| {
        certs
            .into_iter()
            .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
            .collect()
    })
    .ok_or_else(|| format!("{} holds a certificate that cannot be parsed", shown(file)))?;
    Ok((ca.into(), fingerprint))
}

/// A pool's `tls.client_cert_path` and `client_key_path`: a certificate
/// chain and the private key of its first certificate ([`super::pem`]).
fn origin_client_cert(cert: &Path, key: &Path) -> Result<Arc<CertKey>, String> {
    use super::pem::{read_pair, PairError};
    let pair = read_pair(cert, key).map_err(|e| match e {
        PairError::Certificate(why) => format!("{}: {why}", shown(cert)),
        PairError::Key(why) => format!("{}: {why}", shown(key)),
    })?;
    let chain: Vec<Vec<u8>> = pair.chain.into_iter().map(|c| c.to_vec()).collect();
    parsed(|| Arc::new(CertKey::new(chain, pair.key_der)))
        .ok_or_else(|| format!("{} holds a certificate that cannot be parsed", shown(cert)))
}

/// Pingora parses certificates again (x509-parser) and panics on one it
/// cannot: rustls (webpki) accepted them above, but a file is never worth
/// a panic at load or reload.
fn parsed<T>(make: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    std::panic::catch_unwind(make).ok()
}

fn shown(file: &Path) -> String {
    quote(&file.display().to_string())
}

/// The file's bytes (it is read again later, at start).
fn readable(file: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", shown(file)))
}

/// A file name in a directory that exists and can be written: run-time
/// changes are refused when they cannot be made durable, so find out now.
fn state_file(file: &Path) -> Result<(), String> {
    if file.is_dir() {
        return Err(format!(
            "must name a file, got the directory {}",
            shown(file)
        ));
    }
    let dir = directory(file);
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", shown(dir)));
    }
    let probe = dir.join(format!(".tether-write-check.{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "directory {} is not writable ({e}): run-time changes could not be made durable",
            shown(dir)
        )),
    }
}

/// The directory a file lives in (`.` for a bare name): where the state
/// file's writability is checked here, and where its writes are synced.
pub fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `hostname:port` → its first address.
fn resolve(address: &str) -> Result<SocketAddr, String> {
    match address.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(format!("cannot resolve {}: no addresses", quote(address))),
        Err(e) => Err(format!("cannot resolve {}: {e}", quote(address))),
    }
}
