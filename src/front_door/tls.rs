//! A TLS listener's certificates: read from their files (at start, by
//! `tether -t` and by every reload) and handed to rustls per handshake by
//! [`SniResolver`], which picks one by the client's server name
//! ([`NameIndex`]). A reload swaps the whole set at once ([`SniResolver::store`]):
//! new handshakes use the new certificates, open connections keep theirs.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

use super::certificates::NameIndex;
use crate::config;
use crate::config::pem::{read_pair, PairError};

/// A listener's certificates, loaded, and the index of their names.
pub struct ListenerCertificates {
    keys: Vec<Arc<CertifiedKey>>,
    index: NameIndex,
}

impl ListenerCertificates {
    /// Reads every certificate and key of `tls` (the `tls` of
    /// `tether.listeners[listener]`). The error names the key path of the
    /// pair's key (or of its certificate, when that one cannot be read) and
    /// says why: unreadable, no PEM in it, or a key that does not match.
    pub fn load(tls: &config::Tls, listener: usize) -> Result<ListenerCertificates, String> {
        let prefix = format!("tether.listeners[{listener}].tls");
        let mut keys = Vec::with_capacity(tls.certificates.len());
        let mut names = Vec::with_capacity(tls.certificates.len());
        for (i, files) in tls.certificates.iter().enumerate() {
            let cert_key = tls.key_path(&prefix, i, "cert_path");
            let key_key = tls.key_path(&prefix, i, "key_path");
            let (key, dns_names) = pair(files).map_err(|e| match e {
                PairError::Certificate(why) => {
                    format!("{cert_key}: {}: {why}", files.cert_path.display())
                }
                PairError::Key(why) => format!("{key_key}: {}: {why}", files.key_path.display()),
            })?;
            keys.push(Arc::new(key));
            names.push(dns_names);
        }
        if keys.is_empty() {
            return Err(format!("{prefix}.certificates: no certificate"));
        }
        Ok(ListenerCertificates {
            index: NameIndex::new(&names),
            keys,
        })
    }

    /// The certificate for the client's server name.
    pub fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.keys.get(self.index.pick(server_name)).cloned()
    }
}

/// The pair's certificate with its key, and the leaf's DNS names.
fn pair(files: &config::CertificateFiles) -> Result<(CertifiedKey, Vec<String>), PairError> {
    let pair = read_pair(&files.cert_path, &files.key_path)?;
    let names = webpki::EndEntityCert::try_from(&pair.chain[0])
        .map_err(|e| PairError::Certificate(format!("it cannot be parsed: {e:?}")))?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    Ok((pair.certified, names))
}

/// Hands rustls the certificate for each handshake; a reload stores a new set.
pub struct SniResolver {
    current: ArcSwap<ListenerCertificates>,
}

impl SniResolver {
    pub fn new(certificates: ListenerCertificates) -> Arc<SniResolver> {
        Arc::new(SniResolver {
            current: ArcSwap::from_pointee(certificates),
        })
    }

    /// From the next handshake on, `certificates` answer.
    pub fn store(&self, certificates: ListenerCertificates) {
        self.current.store(Arc::new(certificates));
    }

    /// Pingora's rustls settings for a listener answering with this
    /// resolver, HTTP/2 offered by ALPN (HTTP/1.1 the fallback).
    pub fn settings(self: &Arc<Self>) -> pingora::Result<TlsSettings> {
        // `intermediate` only keeps the paths, unused with a resolver.
        let mut settings = TlsSettings::intermediate("", "")?;
        settings.set_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        settings.enable_h2();
        Ok(settings)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SniResolver({} certificates)",
            self.current.load().keys.len()
        )
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use std::path::{Path, PathBuf};

    /// A self-signed certificate for `name`, written to `<stem>.pem` / `<stem>.key`.
    fn pair(dir: &Path, stem: &str, name: &str) -> config::CertificateFiles {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let files = config::CertificateFiles {
            cert_path: dir.join(format!("{stem}.pem")),
            key_path: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert_path, made.cert.pem()).unwrap();
        std::fs::write(&files.key_path, made.key_pair.serialize_pem()).unwrap();
        files
    }

    fn leaf(certificates: &ListenerCertificates, name: Option<&str>) -> Vec<u8> {
        certificates.pick(name).unwrap().cert[0].to_vec()
    }

    #[test]
    fn certificates_are_read_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            pair(dir.path(), "a", "a.test"),
            pair(dir.path(), "b", "*.b.test"),
        );
        let der = |files: &config::CertificateFiles| {
            CertificateDer::from_pem_file(&files.cert_path)
                .unwrap()
                .to_vec()
        };
        let loaded =
            ListenerCertificates::load(&config::Tls::list(vec![a.clone(), b.clone()]), 1).unwrap();
        assert_eq!(leaf(&loaded, Some("a.test")), der(&a));
        assert_eq!(leaf(&loaded, Some("x.b.test")), der(&b));
        assert_eq!(leaf(&loaded, Some("b.test")), der(&a));
        assert_eq!(leaf(&loaded, None), der(&a));
    }

    #[test]
    fn a_bad_pair_names_its_key_path() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            pair(dir.path(), "a", "a.test"),
            pair(dir.path(), "b", "b.test"),
        );
        let crossed = config::CertificateFiles {
            cert_path: a.cert_path.clone(),
            key_path: b.key_path.clone(),
        };
        let e = ListenerCertificates::load(&config::Tls::list(vec![a.clone(), crossed]), 2)
            .err()
            .unwrap();
        assert_eq!(
            e,
            format!(
                "tether.listeners[2].tls.certificates[1].key_path: {}: the key does not match the certificate {}",
                b.key_path.display(),
                a.cert_path.display()
            )
        );
        let single = config::Tls::single(a.cert_path.clone(), PathBuf::from("/nonexistent.key"));
        let e = ListenerCertificates::load(&single, 0).err().unwrap();
        assert!(
            e.starts_with("tether.listeners[0].tls.key_path: /nonexistent.key: "),
            "{e}"
        );
        std::fs::write(&b.cert_path, "not PEM\n").unwrap();
        let e = ListenerCertificates::load(&config::Tls::single(b.cert_path, b.key_path), 0)
            .err()
            .unwrap();
        assert!(
            e.starts_with("tether.listeners[0].tls.cert_path: ")
                && e.ends_with(": no certificate (PEM) found in it"),
            "{e}"
        );
    }

    #[test]
    fn a_stored_set_answers_the_next_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", "a.test");
        let first = ListenerCertificates::load(&config::Tls::list(vec![a.clone()]), 0).unwrap();
        let before = leaf(&first, None);
        let resolver = SniResolver::new(first);
        let a = pair(dir.path(), "a", "a.test");
        resolver.store(ListenerCertificates::load(&config::Tls::list(vec![a]), 0).unwrap());
        let after = leaf(&resolver.current.load(), None);
        assert_ne!(before, after);
    }
}
