//! TLS to endpoints (`pools.<name>.tls`, docs/origins.md) against a real
//! HTTPS origin: NGINX, with a CA and certificates made here by `rcgen`.
//! One NGINX serves three HTTPS ports — a certificate for `origin.test`, one
//! for `other.test` (the wrong name), and `origin.test` again requiring a
//! client certificate (`ssl_verify_client on`) — and one Tether reaches them
//! through one pool per case, chosen by `Host`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::api::wait_for_health;
use support::pki::TestCa;
use support::*;
use tempfile::TempDir;

/// A CA, two server certificates (the right name and a wrong one), a client
/// certificate, and a key that fits none of them; all PEM files in `dir`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new().expect("a directory for the certificates");
        let ca = TestCa::new("tether origins test CA");
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).expect("write ca.pem");
        for (name, san) in [
            ("good", "origin.test"),
            ("wrong", "other.test"),
            ("client", "tether-client"),
        ] {
            let (cert, key) = ca.leaf(&[san], None);
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("write");
        }
        let stray = rcgen::KeyPair::generate().expect("a key");
        std::fs::write(dir.path().join("stray.key"), stray.serialize_pem()).expect("write");
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

/// NGINX as a child process (`daemon off; master_process off;`), its prefix
/// in a temporary directory; stopped on Drop.
struct Nginx {
    child: Child,
    dir: TempDir,
    /// The ports of the `good`, `wrong` and `mtls` servers.
    good: u16,
    wrong: u16,
    mtls: u16,
}

impl Nginx {
    fn start(pki: &Pki) -> Nginx {
        let dir = TempDir::new().expect("a prefix for nginx");
        let (good, wrong, mtls) = (free_port(), free_port(), free_port());
        let p = dir.path().display().to_string();
        let server = |port: u16, cert: &str, extra: &str, body: &str| {
            format!(
                "server {{\n listen 127.0.0.1:{port} ssl;\n server_name _;\n \
                 ssl_certificate {cert};\n ssl_certificate_key {key};\n {extra}\n \
                 location / {{ return 200 \"{body}\\n\"; }}\n}}\n",
                cert = pki.path(&format!("{cert}.pem")),
                key = pki.path(&format!("{cert}.key")),
            )
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n \
             fastcgi_temp_path {p}/fastcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n\
             {}{}{}}}\n",
            server(good, "good", "", "origin-good"),
            server(wrong, "wrong", "", "origin-wrong"),
            server(
                mtls,
                "good",
                &format!(
                    "ssl_client_certificate {};\n ssl_verify_client on;",
                    pki.path("ca.pem")
                ),
                "origin-mtls"
            ),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_bin())
            .args(["-p", &p, "-c", &conf_path.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/test.sh installs it)");
        let nginx = Nginx {
            child,
            dir,
            good,
            wrong,
            mtls,
        };
        for port in [good, wrong, mtls] {
            assert!(
                wait_for_port(
                    format!("127.0.0.1:{port}").parse().unwrap(),
                    Duration::from_secs(10)
                ),
                "nginx does not listen on {port}: {}",
                nginx.log()
            );
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// One load balancer per case (its Host `<pool>.test`) over a pool of that name.
fn section(pki: &Pki, nginx: &Nginx, admin: u16, listen: u16) -> String {
    let ca = pki.path("ca.pem");
    let tls = |extra: &str| {
        format!(
            "{{ ca_path: \"{ca}\", server_name: origin.test{extra} }}",
            ca = ca
        )
    };
    let client = format!(
        ", client_cert_path: \"{}\", client_key_path: \"{}\"",
        pki.path("client.pem"),
        pki.path("client.key")
    );
    let pools: Vec<(&str, String, String, &str)> = vec![
        (
            "good",
            tls(""),
            format!("127.0.0.1:{}", nginx.good),
            "https",
        ),
        ("wrong", tls(""), format!("127.0.0.1:{}", nginx.wrong), ""),
        // The wrong name under a monitor: marked down (not under test
        // traffic, so `wrong` answers 502, never a 503 of a down pool).
        (
            "watched",
            tls(""),
            format!("127.0.0.1:{}", nginx.wrong),
            "https",
        ),
        (
            "insecure",
            tls(", verify: false"),
            format!("127.0.0.1:{}", nginx.wrong),
            "",
        ),
        (
            "mtls",
            tls(&client),
            format!("127.0.0.1:{}", nginx.mtls),
            "https_mtls",
        ),
        ("nocert", tls(""), format!("127.0.0.1:{}", nginx.mtls), ""),
    ];
    let mut lbs = String::new();
    let mut pool_yaml = String::new();
    for (name, tls, address, monitor) in &pools {
        lbs.push_str(&format!("  {name}.test: {{ default_pools: [{name}] }}\n"));
        let monitor = if monitor.is_empty() {
            String::new()
        } else {
            format!("    monitor: {monitor}\n")
        };
        pool_yaml.push_str(&format!(
            "  {name}:\n    tls: {tls}\n    endpoints: [{{ name: {name}-1, address: \"{address}\" }}]\n{monitor}"
        ));
    }
    // No server_name: the client's Host (`origin.test`) is the name.
    lbs.push_str("  origin.test: { default_pools: [byhost] }\n");
    pool_yaml.push_str(&format!(
        "  byhost:\n    tls: {{ ca_path: \"{ca}\" }}\n    endpoints: [{{ name: byhost-1, address: \"127.0.0.1:{}\" }}]\n",
        nginx.good
    ));
    // Failover: a wrong-name endpoint and a good one; every request is served.
    lbs.push_str("  mixed.test: { default_pools: [mixed] }\n");
    pool_yaml.push_str(&format!(
        "  mixed:\n    tls: {}\n    endpoints:\n      - {{ name: bad, address: \"127.0.0.1:{}\" }}\n      - {{ name: fine, address: \"127.0.0.1:{}\" }}\n",
        tls(""),
        nginx.wrong,
        nginx.good
    ));
    format!(
        "listeners: [{{ address: \"127.0.0.1:{listen}\" }}]\n\
         admin: {{ address: \"127.0.0.1:{admin}\" }}\n\
         monitors:\n  https: {{ type: https, interval: 0.2, timeout: 0.2, retries: 0 }}\n  \
         https_mtls: {{ type: https, interval: 0.2, timeout: 0.2, retries: 0 }}\n\
         load_balancers:\n{lbs}\
         pools:\n{pool_yaml}"
    )
}

fn tls_failures(metrics: &str, pool: &str, endpoint: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tether_upstream_tls_failures_total{"))
        .filter(|l| {
            l.contains(&format!("pool=\"{pool}\""))
                && l.contains(&format!("endpoint=\"{endpoint}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn https_origins_verify_names_present_client_certificates_and_fail_over() {
    let pki = Pki::new();
    let nginx = Nginx::start(&pki);
    let (admin, listen) = (free_port(), free_port());
    let proxy = TetherProc::start(&section(&pki, &nginx, admin, listen));
    let c = client();
    let url = proxy.url("/");

    // verify: true with the right CA and name → served.
    let (status, _, body) = get(&c, &url, "good.test");
    assert_eq!(
        (status, body.trim()),
        (200, "origin-good"),
        "{}",
        proxy.logs()
    );

    // Without server_name the client's Host is asked for and verified.
    let (status, _, body) = get(&c, &url, "origin.test");
    assert_eq!(
        (status, body.trim()),
        (200, "origin-good"),
        "{}",
        proxy.logs()
    );

    // A certificate for another name → refused (no other endpoint: 502),
    // counted and logged with its reason.
    let (status, _, _) = get(&c, &url, "wrong.test");
    assert_eq!(status, 502, "{}", proxy.logs());
    // verify: false → the same origin is served (Cloudflare's "Full").
    let (status, _, body) = get(&c, &url, "insecure.test");
    assert_eq!(
        (status, body.trim()),
        (200, "origin-wrong"),
        "{}",
        proxy.logs()
    );

    // An origin requiring a client certificate: served with the pool's
    // client_cert_path/key, refused (NGINX's 400) without.
    let (status, _, body) = get(&c, &url, "mtls.test");
    assert_eq!(
        (status, body.trim()),
        (200, "origin-mtls"),
        "{}",
        proxy.logs()
    );
    let (status, _, _) = get(&c, &url, "nocert.test");
    assert_eq!(status, 400, "{}", proxy.logs());

    // A wrong-name endpoint next to a good one: every request is served, the
    // ones sent to `bad` first failing over as a connect failure.
    for _ in 0..20 {
        let (status, _, body) = get(&c, &url, "mixed.test");
        assert_eq!(
            (status, body.trim()),
            (200, "origin-good"),
            "{}",
            proxy.logs()
        );
    }

    let mut metrics = String::new();
    let counted = wait_until(Duration::from_secs(10), || {
        metrics = get(&c, &proxy.admin_url("/metrics"), &proxy.admin_host()).2;
        tls_failures(&metrics, "wrong", "wrong-1", "certificate") >= 1.0
            && tls_failures(&metrics, "mixed", "bad", "certificate") >= 1.0
    });
    assert!(counted, "{metrics}\n{}", proxy.logs());
    assert_eq!(tls_failures(&metrics, "mixed", "fine", "certificate"), 0.0);
    assert!(
        !proxy
            .log_lines("pool wrong endpoint wrong-1: TLS to the endpoint failed (certificate)")
            .is_empty(),
        "{}",
        proxy.logs()
    );

    // `type: https` monitors use the pool's CA, name and client certificate.
    wait_for_health(&proxy, "good", "good-1", true, Duration::from_secs(10));
    wait_for_health(&proxy, "mtls", "mtls-1", true, Duration::from_secs(10));
    wait_for_health(
        &proxy,
        "watched",
        "watched-1",
        false,
        Duration::from_secs(10),
    );
    drop(nginx);
}

fn check(pki: &Pki, tls: &str) -> (i32, String) {
    let (code, out, err) = check_section(&format!(
        "listeners: [{{ address: \"127.0.0.1:{}\" }}]\n\
         load_balancers:\n  \"*\": {{ default_pools: [api] }}\n\
         pools:\n  api:\n    tls: {tls}\n    endpoints: [{{ name: api-1, address: \"127.0.0.1:9\" }}]\n",
        free_port()
    ));
    let _ = pki;
    (code, format!("{out}{err}"))
}

#[test]
fn check_config_reads_the_pool_tls_files() {
    let pki = Pki::new();
    let ok = format!(
        "{{ ca_path: \"{}\", client_cert_path: \"{}\", client_key_path: \"{}\" }}",
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key")
    );
    let (code, out) = check(&pki, &ok);
    assert_eq!(code, 0, "{out}");

    let missing = Path::new(&pki.path("none.pem")).display().to_string();
    let (code, out) = check(&pki, &format!("{{ ca_path: \"{missing}\" }}"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tether.pools.api.tls.ca_path: cannot read"),
        "{out}"
    );

    // A key file as the CA: no certificate in it.
    let (code, out) = check(
        &pki,
        &format!("{{ ca_path: \"{}\" }}", pki.path("stray.key")),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tether.pools.api.tls.ca_path:") && out.contains("no PEM certificate"),
        "{out}"
    );

    let (code, out) = check(
        &pki,
        &format!(
            "{{ client_cert_path: \"{}\", client_key_path: \"{}\" }}",
            pki.path("client.pem"),
            pki.path("stray.key")
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "tether.pools.api.tls.client_key_path: \"{}\": the key does not match the certificate {}",
            pki.path("stray.key"),
            pki.path("client.pem")
        )),
        "{out}"
    );

    let (code, out) = check(
        &pki,
        &format!("{{ client_cert_path: \"{}\" }}", pki.path("client.pem")),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tether.pools.api.tls: client_cert_path needs client_key_path"),
        "{out}"
    );
}

/// A pool over the `good` NGINX server, its CA read from `ca`.
fn reload_section(ca: &str, nginx: &Nginx, listen: u16) -> String {
    format!(
        "listeners: [{{ address: \"127.0.0.1:{listen}\" }}]\n\
         load_balancers:\n  \"*\": {{ default_pools: [api] }}\n\
         pools:\n  api:\n    tls: {{ ca_path: \"{ca}\", server_name: origin.test }}\n    \
         endpoints: [{{ name: api-1, address: \"127.0.0.1:{}\" }}]\n",
        nginx.good
    )
}

/// SIGHUP reads `ca_path` again: a missing file is refused (the running
/// CA kept), another CA bundle applies to the next request (a kept-alive
/// connection verified by the old CA is not reused), and back again.
#[test]
fn reload_reads_the_ca_again() {
    let pki = Pki::new();
    let other = Pki::new();
    let nginx = Nginx::start(&pki);
    let listen = free_port();
    let mut proxy = TetherProc::start(&reload_section(&pki.path("ca.pem"), &nginx, listen));
    let c = client();
    let url = proxy.url("/");
    let served = |c: &reqwest::blocking::Client| get(c, &url, "api.test").0;
    assert_eq!(served(&c), 200, "{}", proxy.logs());

    let reload = |proxy: &mut TetherProc, ca: &str, needle: &str| {
        let before = proxy.log_lines(needle).len();
        proxy.rewrite_config(&reload_section(ca, &nginx, listen));
        proxy.signal("HUP");
        assert!(
            wait_until(Duration::from_secs(10), || proxy.log_lines(needle).len()
                > before),
            "no new {needle:?}: {}",
            proxy.logs()
        );
    };
    reload(
        &mut proxy,
        &pki.path("missing.pem"),
        "reload refused: tether.pools.api.tls.ca_path",
    );
    assert_eq!(served(&c), 200, "{}", proxy.logs());

    reload(
        &mut proxy,
        &other.path("ca.pem"),
        "is the running configuration",
    );
    assert_eq!(served(&c), 502, "{}", proxy.logs());

    reload(
        &mut proxy,
        &pki.path("ca.pem"),
        "is the running configuration",
    );
    assert_eq!(served(&c), 200, "{}", proxy.logs());
}
