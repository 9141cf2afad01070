//! `tether.monitors`.

use super::*;
use crate::config::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn monitor_defaults() {
    let yaml = MINIMAL.to_string() + "  monitors:\n    m: {}\n    quick: { interval: 2 }\n";
    let t = ok(&yaml).tether;
    let m = &t.monitors["m"];
    assert_eq!(
        *m,
        Monitor {
            name: "m".into(),
            r#type: MonitorType::Http,
            method: "GET".into(),
            path: "/".into(),
            port: 0,
            expected_codes: ExpectedCodes(vec![CodePattern::Exact(200)]),
            expected_body: String::new(),
            header: BTreeMap::new(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            retries: 2,
            consecutive_up: 1,
            consecutive_down: 1,
            allow_insecure: false,
            grpc_service: String::new(),
        }
    );
    // The default timeout never exceeds the interval.
    assert_eq!(t.monitors["quick"].timeout, Duration::from_secs(2));
}

#[test]
fn monitor_checks() {
    let yaml = MINIMAL.to_string()
        + r#"  monitors:
    m:
      type: smtp
      method: get
      path: health
      port: 70000
      expected_codes: "2xx,600,abc"
      header: { "Bad Header": [x], X-Ok: [] }
      interval: 0.01
    "bad name!": {}
"#;
    assert_eq!(
        errors(&yaml),
        vec![
            r#"tether.monitors.m.type: must be one of http, https, tcp, grpc; got "smtp""#,
            r#"tether.monitors.m.method: must be an HTTP method in capitals such as GET or HEAD, got "get""#,
            r#"tether.monitors.m.path: must start with "/", got "health""#,
            "tether.monitors.m.port: must be between 0 and 65535, got 70000",
            r#"tether.monitors.m.expected_codes: must be status codes (100-599) or classes (1xx-5xx) separated by commas, such as "200", "2xx" or "200,301"; got "2xx,600,abc""#,
            r#"tether.monitors.m.header["Bad Header"]: not a valid HTTP header name"#,
            "tether.monitors.m.header.X-Ok: must list at least one value",
            "tether.monitors.m.interval: must be between 0.05 and 3600, got 0.01",
            r#"tether.monitors["bad name!"]: a monitor name must use only letters, digits, "_", "." and "-", got "bad name!""#,
        ]
    );
    let t = ok(&(MINIMAL.to_string() + "  monitors:\n    m: { expected_codes: 204 }\n")).tether;
    assert!(t.monitors["m"].expected_codes.matches(204));
}

#[test]
fn a_grpc_monitor_names_its_service() {
    let yaml = MINIMAL.to_string()
        + "  monitors:\n    g: { type: grpc }\n    s: { type: grpc, grpc_service: shop.Cart }\n";
    let t = ok(&yaml).tether;
    assert_eq!(t.monitors["g"].r#type, MonitorType::Grpc);
    assert_eq!(t.monitors["g"].grpc_service, "");
    assert_eq!(t.monitors["s"].grpc_service, "shop.Cart");
    let bad = MINIMAL.to_string() + "  monitors:\n    g: { type: grpc, grpc_service: [a] }\n";
    let e = errors(&bad);
    assert!(
        e[0].starts_with("tether.monitors.g.grpc_service: expected a string"),
        "{e:?}"
    );
}
