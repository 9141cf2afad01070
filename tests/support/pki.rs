//! A certificate authority for the TLS tests (rcgen): a CA and the leaf
//! certificates it signs (`tests/origins.rs`, `tests/sni.rs`, Redis over TLS).

/// A CA made for one test: its certificate and key.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA whose subject is `CN=<common_name>`.
    pub fn new(common_name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("the CA certificate");
        TestCa { cert, key }
    }

    /// A certificate for `names` (its SAN) signed by this CA, with the subject
    /// `CN=<common_name>` when given, and its key.
    pub fn leaf(
        &self,
        names: &[&str],
        common_name: Option<&str>,
    ) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("a leaf key");
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
        if let Some(cn) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("the leaf certificate");
        (cert, key)
    }
}
