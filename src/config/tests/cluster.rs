//! `tether.cluster` and the check it brings: cookie affinity needs shared keys.

use super::*;

fn with_cluster(extra: &str, cluster: &str) -> String {
    let yaml = with_lb(extra);
    yaml.replace("  pools:\n", &format!("  cluster: {cluster}\n  pools:\n"))
}

/// A directory with a good key file (`key`), a short one (`short`), a
/// password file (`pw`), an empty one (`empty`) and a CA file (`ca.pem`).
fn files() -> (tempfile::TempDir, impl Fn(&str) -> String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), format!("{}\n", "k".repeat(32))).unwrap();
    std::fs::write(
        dir.path().join("short"),
        format!("  {}  \n", "k".repeat(31)),
    )
    .unwrap();
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    std::fs::write(dir.path().join("empty"), " \n").unwrap();
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let base = dir.path().to_path_buf();
    (dir, move |name: &str| base.join(name).display().to_string())
}

#[test]
fn a_cluster_is_read() {
    let (_dir, f) = files();
    let loaded = ok(&with_cluster(
        "",
        &format!(
            r#"{{ redis_url: "rediss://127.0.0.1:6379/0", name: shop, key_file: "{}", ca_file: "{}", username: tether, password_file: "{}" }}"#,
            f("key"),
            f("ca.pem"),
            f("pw")
        ),
    ));
    let c = loaded.tether.cluster.unwrap();
    assert_eq!(
        (c.redis_url.as_str(), c.name.as_str(), c.username.as_deref()),
        ("rediss://127.0.0.1:6379/0", "shop", Some("tether"))
    );
    assert_eq!(c.key_file.display().to_string(), f("key"));
    assert_eq!(c.ca_file.unwrap().display().to_string(), f("ca.pem"));
    assert_eq!(c.password_file.unwrap().display().to_string(), f("pw"));
    assert_eq!(ok(MINIMAL).tether.cluster, None, "optional");
}

#[test]
fn cluster_errors_name_their_key_all_at_once() {
    let (_dir, f) = files();
    assert_eq!(
        errors(&with_cluster(
            "",
            &format!(r#"{{ redis_url: "http://x", name: "a:b", key_file: "{}", extra: 1 }}"#, f("key"))
        )),
        [
            "tether.cluster.redis_url: must be a Redis URL such as \"redis://127.0.0.1:6379/0\" (rediss:// for TLS, redis+unix:///path), got \"http://x\": Redis URL did not parse - InvalidClientConfig",
            "tether.cluster.name: must be 1 to 64 letters, digits, '-', '_' or '.' (it prefixes the Redis keys), got \"a:b\"",
            "tether.cluster.extra: unknown key (expected one of: redis_url, name, key_file, ca_file, username, password_file)",
        ]
    );
    assert_eq!(
        errors(&with_cluster("", "{}")),
        [
            "tether.cluster.redis_url: missing",
            "tether.cluster.name: missing",
            "tether.cluster.key_file: missing"
        ]
    );
}

#[test]
fn the_key_file_is_required_readable_and_long_enough() {
    let (_dir, f) = files();
    let with_key = |key: &str| {
        with_cluster(
            "",
            &format!(r#"{{ redis_url: "redis://127.0.0.1:6379", name: shop, key_file: "{key}" }}"#),
        )
    };
    assert_eq!(
        errors(&with_cluster(
            "",
            r#"{ redis_url: "redis://127.0.0.1:6379", name: shop }"#
        )),
        ["tether.cluster.key_file: missing"]
    );
    let e = errors(&with_key(&f("short")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "tether.cluster.key_file: \"{}\" holds 31 byte(s) of secret after trimming whitespace; a cluster key needs at least 32",
            f("short")
        )),
        "{e:?}"
    );
    let e = errors(&with_key(&f("missing")));
    assert!(
        e[0].starts_with(&format!(
            "tether.cluster.key_file: cannot read \"{}\"",
            f("missing")
        )),
        "{e:?}"
    );
    ok(&with_key(&f("key")));
}

#[test]
fn tls_and_credentials_are_checked_where_they_are_given() {
    let (_dir, f) = files();
    let key = f("key");
    let cluster = |url: &str, extra: &str| {
        with_cluster(
            "",
            &format!(r#"{{ redis_url: "{url}", name: shop, key_file: "{key}"{extra} }}"#),
        )
    };
    assert_eq!(
        errors(&cluster("redis://127.0.0.1:6379", &format!(r#", ca_file: "{}""#, f("ca.pem")))),
        ["tether.cluster.ca_file: verifies the Redis server's TLS certificate: it needs a rediss:// redis_url"]
    );
    let e = errors(&cluster(
        "rediss://127.0.0.1:6379",
        &format!(r#", ca_file: "{}""#, f("nope")),
    ));
    assert!(
        e[0].starts_with("tether.cluster.ca_file: cannot read"),
        "{e:?}"
    );
    assert_eq!(
        errors(&cluster("redis://:pw@127.0.0.1:6379", &format!(r#", password_file: "{}""#, f("pw")))),
        ["tether.cluster.password_file: redis_url already holds a password: give it in one place"]
    );
    assert_eq!(
        errors(&cluster(
            "redis://127.0.0.1:6379",
            &format!(r#", password_file: "{}""#, f("empty"))
        )),
        [format!(
            "tether.cluster.password_file: the password file \"{}\" is empty",
            f("empty")
        )]
    );
    assert_eq!(
        errors(&cluster("redis://127.0.0.1:6379", ", username: tether")),
        ["tether.cluster.username: needs password_file (the ACL user's password)"]
    );
    ok(&cluster(
        "redis://127.0.0.1:6379",
        &format!(r#", password_file: "{}""#, f("pw")),
    ));
    ok(&cluster("redis://u:p@127.0.0.1:6379", ""));
    assert_eq!(
        errors(&cluster("rediss://127.0.0.1:6379/#insecure", "")),
        ["tether.cluster.redis_url: a rediss:// URL with #insecure (no certificate check) is not supported: give the Redis server's CA in ca_file"]
    );
}

#[test]
fn cookie_affinity_in_a_cluster_needs_shared_keys() {
    let (_dir, f) = files();
    let cluster = format!(
        r#"{{ redis_url: "redis://127.0.0.1:6379", name: shop, key_file: "{}" }}"#,
        f("key")
    );
    for affinity in ["cookie", "ip_cookie"] {
        assert_eq!(
            errors(&with_cluster(&format!("session_affinity: {affinity}"), &cluster)),
            ["tether.load_balancers[\"*\"].session_affinity: cookie affinity with tether.cluster needs tether.cookie_keys_file: without shared keys the replicas could not read each other's cookies"]
        );
    }
    // header affinity, or cookies without a cluster: fine.
    ok(&with_cluster(
        "session_affinity: header\nsession_affinity_attributes: { headers: [x-user] }",
        &cluster,
    ));
    ok(&with_lb("session_affinity: cookie"));
}
