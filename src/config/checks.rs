//! The second layer of loading: what the pure walk deferred ([`Check`]) is
//! run here, after it — files read, the state file's directory tried, host
//! names resolved into the endpoints' addresses. Problems are reported under
//! the key path of the node that asked, in document order with the walk's.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use super::model::Config;
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
