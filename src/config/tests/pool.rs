//! `tether.pools` and endpoints.

use super::*;
use crate::config::{LoadShedding, OriginProtocol, ShedPolicy};

#[test]
fn minimum_origins_bound() {
    let three = MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\" }\n        - { name: web-3, address: \"127.0.0.1:9003\" }\n",
        );
    let with = |n: &str| {
        three.replace(
            "    primary:\n",
            &format!("    primary:\n      minimum_origins: {n}\n"),
        )
    };
    assert_eq!(
            errors(&with("5")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 5"]
        );
    assert_eq!(
            errors(&with("0")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 0"]
        );
    assert_eq!(ok(&with("3")).tether.pools["primary"].minimum_origins, 3);
    assert_eq!(
        errors(&with("1.5")),
        vec!["tether.pools.primary.minimum_origins: expected an integer, got a number (1.5)"]
    );
}

#[test]
fn load_shedding_is_cloudflares_object() {
    let with = |lines: &str| {
        MINIMAL.replace(
            "      endpoints:\n",
            &format!("      load_shedding: {lines}\n      endpoints:\n"),
        )
    };
    let t = ok(&with(
        "{ default_percent: 12.5, default_policy: hash, session_percent: 3 }",
    ))
    .tether;
    let ls = t.pools["primary"].load_shedding;
    assert_eq!(
        (
            ls.default_percent,
            ls.default_policy,
            ls.session_percent,
            ls.session_policy
        ),
        (12.5, ShedPolicy::Hash, 3.0, ShedPolicy::Hash)
    );
    assert_eq!(
        ok(MINIMAL).tether.pools["primary"].load_shedding,
        LoadShedding::default()
    );
    let errs = errors(&with(
        "{ default_percent: 101, default_policy: sticky, session_policy: random, extra: 1 }",
    ));
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "tether.pools.primary.load_shedding.default_percent: must be between 0 and 100"
        ),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("tether.pools.primary.load_shedding.default_policy:"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("tether.pools.primary.load_shedding.session_policy:"),
        "{errs:?}"
    );
    assert!(
        errs[3].starts_with("tether.pools.primary.load_shedding.extra: unknown key"),
        "{errs:?}"
    );
}

#[test]
fn outlier_detection_defaults_and_bounds() {
    let with = |lines: &str| {
        MINIMAL.replace(
            "      endpoints:\n",
            &format!("      outlier_detection: {lines}\n      endpoints:\n"),
        )
    };
    let t = ok(&with("{}")).tether;
    let o = t.pools["primary"].outlier_detection.unwrap();
    assert_eq!(
        (
            o.consecutive_5xx,
            o.consecutive_gateway_failure,
            o.base_ejection_time.as_secs(),
            o.max_ejection_percent
        ),
        (5, 3, 30, 50.0)
    );
    assert_eq!(ok(MINIMAL).tether.pools["primary"].outlier_detection, None);
    let errs = errors(&with(
        "{ consecutive_5xx: -1, base_ejection_time: 0, max_ejection_percent: 150 }",
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "tether.pools.primary.outlier_detection.consecutive_5xx: must be between 0 and 1000"
        ),
        "{errs:?}"
    );
}

#[test]
fn slow_start_is_whole_seconds() {
    let with = |v: &str| {
        MINIMAL.replace(
            "      endpoints:\n",
            &format!("      slow_start: {v}\n      endpoints:\n"),
        )
    };
    assert_eq!(
        ok(&with("30")).tether.pools["primary"].slow_start.as_secs(),
        30
    );
    assert_eq!(ok(MINIMAL).tether.pools["primary"].slow_start.as_secs(), 0);
    assert_eq!(
        errors(&with("-1")),
        ["tether.pools.primary.slow_start: must be between 0 and 3600, got -1"]
    );
}

#[test]
fn read_timeout_is_seconds_for_the_pool_only() {
    let with = |v: &str| {
        MINIMAL.replace(
            "      endpoints:\n",
            &format!("      read_timeout: {v}\n      endpoints:\n"),
        )
    };
    let pools = ok(&with("1.5")).tether.pools;
    assert_eq!(
        pools["primary"].read_timeout,
        Some(std::time::Duration::from_millis(1500))
    );
    assert_eq!(ok(MINIMAL).tether.pools["primary"].read_timeout, None);
    assert_eq!(
        errors(&with("0")),
        ["tether.pools.primary.read_timeout: must be between 0.001 and 86400, got 0"]
    );
    assert_eq!(
        errors(&with("long")),
        ["tether.pools.primary.read_timeout: expected a number, got a string (\"long\")"]
    );
}

/// The minimal file with `tls: <tls>` on pool `primary` and `extra` on its
/// endpoint (after `address`).
fn with_tls(tls: &str, extra: &str) -> String {
    MINIMAL
        .replace(
            "    primary:\n",
            &format!("    primary:\n      tls: {tls}\n"),
        )
        .replace(
            "address: \"127.0.0.1:9001\" }",
            &format!("address: \"127.0.0.1:9001\"{extra} }}"),
        )
}

#[test]
fn pool_tls_is_read_and_its_files_loaded() {
    // Run in the repository's root: conf/example-cert.pem is self-signed,
    // a CA of its own, and conf/example-key.pem its key.
    let loaded = ok(&with_tls(
        "{ verify: false, ca_path: conf/example-cert.pem, server_name: api.internal, client_cert_path: conf/example-cert.pem, client_key_path: conf/example-key.pem }",
        ", server_name: web-1.internal",
    ));
    let pool = &loaded.tether.pools["primary"];
    let tls = pool.tls.as_ref().unwrap();
    assert!(!tls.verify);
    assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
    assert_eq!(
        tls.ca_path.as_deref(),
        Some(std::path::Path::new("conf/example-cert.pem"))
    );
    assert_eq!(tls.loaded.ca.as_ref().map(|ca| ca.len()), Some(1));
    assert_ne!(tls.loaded.ca_fingerprint, 0);
    assert!(tls.loaded.client_cert_key.is_some());
    assert_eq!(
        pool.endpoints[0].server_name.as_deref(),
        Some("web-1.internal")
    );

    let plain = ok(&with_tls("{}", ""));
    let tls = plain.tether.pools["primary"].tls.as_ref().unwrap();
    assert!(tls.verify);
    assert!(tls.loaded.ca.is_none() && tls.loaded.client_cert_key.is_none());
    assert!(ok(MINIMAL).tether.pools["primary"].tls.is_none());
}

#[test]
fn pool_tls_errors_name_their_keys() {
    assert_eq!(
        errors(&with_tls("{ server_name: \"not a name\" }", "")),
        vec![
            r#"tether.pools.primary.tls.server_name: must be a DNS name or an IP address, got "not a name""#
        ]
    );
    assert_eq!(
        errors(&with_tls("{}", ", server_name: \"a b\"")),
        vec![
            r#"tether.pools.primary.endpoints[0].server_name: must be a DNS name or an IP address, got "a b""#
        ]
    );
    assert_eq!(
        errors(&with_tls("{ client_key_path: conf/example-key.pem }", "")),
        vec!["tether.pools.primary.tls: client_key_path needs client_cert_path"]
    );
    let e = errors(&with_tls("{ ca_path: conf/example-key.pem }", ""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("tether.pools.primary.tls.ca_path: ")
            && e[0].contains("holds no PEM certificate"),
        "{e:?}"
    );
    let e = errors(&with_tls("{ verfiy: true }", ""));
    assert!(
        e[0].starts_with("tether.pools.primary.tls.verfiy: unknown key"),
        "{e:?}"
    );
}

#[test]
fn an_unreadable_client_certificate_is_reported_at_its_key() {
    let e = errors(&with_tls(
        "{ client_cert_path: /nonexistent/pull.pem, client_key_path: conf/example-key.pem }",
        "",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            r#"tether.pools.primary.tls.client_cert_path: cannot read "/nonexistent/pull.pem""#
        ),
        "{e:?}"
    );
}

#[test]
fn protocol_is_http1_h2_over_tls_or_h2c() {
    let with = |protocol: &str, tls: bool| {
        let text = MINIMAL.replace(
            "      endpoints:\n",
            &format!("      protocol: {protocol}\n      endpoints:\n"),
        );
        if tls {
            text.replace("    primary:\n", "    primary:\n      tls: {}\n")
        } else {
            text
        }
    };
    let protocol = |text: &str| ok(text).tether.pools["primary"].protocol;
    assert_eq!(protocol(MINIMAL), OriginProtocol::Http1);
    assert_eq!(protocol(&with("http1", false)), OriginProtocol::Http1);
    assert_eq!(protocol(&with("h2c", false)), OriginProtocol::H2c);
    assert_eq!(protocol(&with("h2", true)), OriginProtocol::H2);
    assert_eq!(
        errors(&with("h2", false)),
        vec!["tether.pools.primary.protocol: h2 is HTTP/2 over TLS and needs the pool's tls (h2c: HTTP/2 in plaintext)"]
    );
    let e = errors(&with("http2", false));
    assert!(
        e[0].starts_with("tether.pools.primary.protocol: ") && e[0].contains("h2c"),
        "{e:?}"
    );
}
