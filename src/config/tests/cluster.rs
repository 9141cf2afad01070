//! `tether.cluster` and the check it brings: cookie affinity needs shared keys.

use super::*;

fn with_cluster(extra: &str, cluster: &str) -> String {
    let yaml = with_lb(extra);
    yaml.replace("  pools:\n", &format!("  cluster: {cluster}\n  pools:\n"))
}

#[test]
fn a_cluster_is_read() {
    let loaded = ok(&with_cluster(
        "",
        r#"{ redis_url: "redis://127.0.0.1:6379/0", name: shop }"#,
    ));
    let c = loaded.tether.cluster.unwrap();
    assert_eq!(
        (c.redis_url.as_str(), c.name.as_str()),
        ("redis://127.0.0.1:6379/0", "shop")
    );
    assert_eq!(ok(MINIMAL).tether.cluster, None, "optional");
}

#[test]
fn cluster_errors_name_their_key_all_at_once() {
    assert_eq!(
        errors(&with_cluster(
            "",
            r#"{ redis_url: "http://x", name: "a:b", extra: 1 }"#
        )),
        [
            "tether.cluster.redis_url: must be a Redis URL such as \"redis://127.0.0.1:6379/0\" (rediss:// for TLS, redis+unix:///path), got \"http://x\": Redis URL did not parse - InvalidClientConfig",
            "tether.cluster.name: must be 1 to 64 letters, digits, '-', '_' or '.' (it prefixes the Redis keys), got \"a:b\"",
            "tether.cluster.extra: unknown key (expected one of: redis_url, name)",
        ]
    );
    assert_eq!(
        errors(&with_cluster("", "{}")),
        [
            "tether.cluster.redis_url: missing",
            "tether.cluster.name: missing"
        ]
    );
}

#[test]
fn cookie_affinity_in_a_cluster_needs_shared_keys() {
    let cluster = r#"{ redis_url: "redis://127.0.0.1:6379", name: shop }"#;
    for affinity in ["cookie", "ip_cookie"] {
        assert_eq!(
            errors(&with_cluster(&format!("session_affinity: {affinity}"), cluster)),
            ["tether.load_balancers[\"*\"].session_affinity: cookie affinity with tether.cluster needs tether.cookie_keys_file: without shared keys the replicas could not read each other's cookies"]
        );
    }
    // header affinity, or cookies without a cluster: fine.
    ok(&with_cluster(
        "session_affinity: header\nsession_affinity_attributes: { headers: [x-user] }",
        cluster,
    ));
    ok(&with_lb("session_affinity: cookie"));
}
