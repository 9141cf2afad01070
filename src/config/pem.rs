//! A certificate chain and its private key read from PEM files and checked
//! to fit: the one loader of such a pair, for a listener's certificates
//! (`listeners[].tls`) and a pool's client certificate
//! (`pools.<name>.tls.client_cert_path` / `client_key_path`). Each caller
//! names the key path; [`PairError`] says which of the two files is at
//! fault and why.

use std::path::Path;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::CryptoProvider;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A chain and the key of its first certificate, known to fit.
pub struct Pair {
    /// Leaf first, never empty.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key as DER (PKCS#8, PKCS#1 or SEC1), as Pingora's client
    /// certificate wants it.
    pub key_der: Vec<u8>,
    /// The chain with its signing key, as rustls serves it.
    pub certified: CertifiedKey,
}

/// Why a pair could not be read, by the file at fault; the text does not
/// name that file (the caller does, beside its key path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    Certificate(String),
    Key(String),
}

/// Reads `cert` (a chain, leaf first) and `key` and checks that the key is
/// the leaf's.
pub fn read_pair(cert: &Path, key: &Path) -> Result<Pair, PairError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| PairError::Certificate(why(e, "certificate")))?;
    if chain.is_empty() {
        return Err(PairError::Certificate(
            "no certificate (PEM) found in it".to_string(),
        ));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| PairError::Key(why(e, "private key")))?;
    let key_der = private_key.secret_der().to_vec();
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| PairError::Key("no rustls crypto provider is installed".to_string()))?;
    let certified = CertifiedKey::from_der(chain.clone(), private_key, provider).map_err(|e| {
        PairError::Key(match e {
            pingora::tls::RusTlsError::InconsistentKeys(_) => {
                format!("the key does not match the certificate {}", cert.display())
            }
            e => format!("the key cannot be used: {e}"),
        })
    })?;
    Ok(Pair {
        chain,
        key_der,
        certified,
    })
}

/// A PEM reading error as said of the file; `item` is what was looked for.
fn why(e: pem::Error, item: &str) -> String {
    match e {
        pem::Error::NoItemsFound => format!("no {item} (PEM) found in it"),
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        e => format!("not a PEM {item}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, stem: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec![format!("{stem}.test")]).unwrap();
        let (cert, key) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_pair_that_fits_is_read_and_each_fault_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, a_key) = write_pair(dir.path(), "a");
        let (_, b_key) = write_pair(dir.path(), "b");
        let pair = read_pair(&a_cert, &a_key).unwrap();
        assert_eq!(pair.chain.len(), 1);
        assert!(!pair.key_der.is_empty());
        assert_eq!(
            read_pair(&a_cert, &b_key).err(),
            Some(PairError::Key(format!(
                "the key does not match the certificate {}",
                a_cert.display()
            )))
        );
        // A key file given as the certificate, and the other way round.
        assert_eq!(
            read_pair(&a_key, &a_key).err(),
            Some(PairError::Certificate(
                "no certificate (PEM) found in it".into()
            ))
        );
        assert_eq!(
            read_pair(&a_cert, &a_cert).err(),
            Some(PairError::Key("no private key (PEM) found in it".into()))
        );
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            read_pair(&missing, &a_key),
            Err(PairError::Certificate(why)) if why.starts_with("cannot read it: ")
        ));
    }
}
