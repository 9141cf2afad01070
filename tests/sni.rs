//! A TLS listener with several certificates chosen by SNI (issue 20), seen by
//! real clients (`openssl s_client`, `curl --resolve`, reqwest with its own
//! resolver), and certificates swapped by a SIGHUP reload: under load with
//! 0 failed requests, new handshakes getting the new certificate while an
//! open connection keeps its own; a mismatched pair refused, the running
//! certificate kept; `tether -t` naming the key path of a bad pair.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::pki::TestCa;
use support::*;

/// A test CA and the leaves it signs.
struct Ca {
    ca: TestCa,
    pem_path: PathBuf,
}

/// A leaf written to `<stem>.pem` / `<stem>.key`, and its DER (what a
/// client sees as the peer certificate).
struct Leaf {
    files: Tls,
    der: Vec<u8>,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let ca = TestCa::new("tether sni test CA");
        let pem_path = dir.join("ca.pem");
        std::fs::write(&pem_path, ca.cert.pem()).expect("write ca.pem");
        Ca { ca, pem_path }
    }

    /// A certificate for `name` whose subject is `CN=<common_name>`, written
    /// into `dir` as `<stem>.pem` and `<stem>.key` (overwriting them).
    fn leaf(&self, dir: &Path, stem: &str, name: &str, common_name: &str) -> Leaf {
        let (cert, key) = self.ca.leaf(&[name], Some(common_name));
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write the leaf");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the leaf's key");
        Leaf {
            files: Tls {
                cert_path: cert_path.display().to_string(),
                key_path: key_path.display().to_string(),
            },
            der: cert.der().to_vec(),
        }
    }
}

/// A Tether with `a.test` (first, the default) and `b.test` on one TLS
/// listener in front of an echoing upstream; the TLS listener's address.
fn start(ca: &Ca, dir: &Path, backend: &Upstream) -> (TetherProc, SocketAddr, Leaf, Leaf) {
    let a = ca.leaf(dir, "a", "a.test", "a.test");
    let b = ca.leaf(dir, "b", "b.test", "b.test");
    let port = free_port();
    let proxy = tether()
        .listener(free_port())
        .sni_listener(port, &[&a.files, &b.files])
        .load_balancer("*", lb(["backend"]))
        .pool("backend", pool([backend]))
        .start();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    (proxy, addr, a, b)
}

/// A client trusting only the test CA, resolving `a.test`, `b.test` and
/// `c.test` to the listener; `keep_alive: false` makes each request a new
/// connection (a new handshake).
fn client(ca: &Ca, addr: SocketAddr, keep_alive: bool) -> reqwest::blocking::Client {
    let pem = std::fs::read(&ca.pem_path).unwrap();
    client_of(&pem, addr, keep_alive)
}

/// A new client, so a new TLS session (no resumption), one connection per request.
fn fresh_client(ca_pem: &[u8], addr: SocketAddr) -> reqwest::blocking::Client {
    client_of(ca_pem, addr, false)
}

fn client_of(pem: &[u8], addr: SocketAddr, keep_alive: bool) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    for name in ["a.test", "b.test", "c.test"] {
        builder = builder.resolve(name, addr);
    }
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

/// A request's status and the peer certificate's DER, or why it failed.
type Fetched = Result<(u16, Vec<u8>), String>;

/// `GET https://<name>:<port>/echo`.
fn fetch(client: &reqwest::blocking::Client, name: &str, port: u16) -> Fetched {
    let response = client
        .get(format!("https://{name}:{port}/echo"))
        .send()
        .map_err(|e| format!("{e:?}"))?;
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let status = response.status().as_u16();
    response.bytes().map_err(|e| format!("{e:?}"))?;
    Ok((status, der))
}

/// The subject `openssl s_client` is shown, with `-servername <name>` (or
/// `-noservername`), as `CN=...`.
fn openssl_subject(addr: SocketAddr, server_name: Option<&str>) -> String {
    let sni = match server_name {
        Some(name) => format!("-servername {name}"),
        None => "-noservername".to_string(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "timeout 10 openssl s_client -connect {addr} {sni} </dev/null 2>/dev/null \
             | openssl x509 -noout -subject -nameopt RFC2253"
        ))
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_certificate_is_chosen_by_the_server_name() {
    let backend = Upstream::healthy("backend");
    let dir = tempfile::TempDir::new().unwrap();
    let ca = Ca::new(dir.path());
    let (mut proxy, addr, a, b) = start(&ca, dir.path(), &backend);
    let port = addr.port();

    // openssl: the name asked for picks the certificate; none gets the first.
    assert_eq!(openssl_subject(addr, Some("b.test")), "subject=CN=b.test");
    assert_eq!(openssl_subject(addr, Some("a.test")), "subject=CN=a.test");
    assert_eq!(openssl_subject(addr, Some("c.test")), "subject=CN=a.test");
    assert_eq!(openssl_subject(addr, None), "subject=CN=a.test");

    // curl, verifying the name against the test CA: only the right
    // certificate passes (a.test's would fail for b.test).
    for name in ["a.test", "b.test"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca.pem_path)
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{name}:{port}/echo"))
            .output()
            .expect("run curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "curl {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // reqwest (rustls) with its own resolver, verifying against the CA.
    let https = client(&ca, addr, false);
    assert_eq!(fetch(&https, "a.test", port).unwrap(), (200, a.der.clone()));
    assert_eq!(fetch(&https, "b.test", port).unwrap(), (200, b.der.clone()));
    // c.test gets a.test's certificate, which the client rightly refuses.
    assert!(fetch(&https, "c.test", port).is_err());
    proxy.terminate();
}

#[test]
fn a_reload_swaps_certificates_under_load_and_refuses_a_mismatched_pair() {
    let backend = Upstream::healthy("backend");
    let dir = tempfile::TempDir::new().unwrap();
    let ca = Ca::new(dir.path());
    let (mut proxy, addr, a, b) = start(&ca, dir.path(), &backend);
    let port = addr.port();

    // A kept-alive connection opened before the swap.
    let kept = client(&ca, addr, true);
    assert_eq!(fetch(&kept, "a.test", port).unwrap(), (200, a.der.clone()));

    // Clients loop, each request a new client (a full handshake: a client
    // resuming its TLS session is not sent a certificate again), until told
    // to stop (bounded: 3000 requests or 60 s).
    let stop = Arc::new(AtomicBool::new(false));
    let ca_pem = std::fs::read(&ca.pem_path).unwrap();
    // Two clients, each keeping what it saw in order.
    let seen: Vec<Arc<Mutex<Vec<Fetched>>>> = (0..2).map(|_| Arc::default()).collect();
    let looping: Vec<_> = seen
        .iter()
        .map(|seen| {
            let (stop, seen, ca_pem) = (Arc::clone(&stop), Arc::clone(seen), ca_pem.clone());
            std::thread::spawn(move || {
                let started = ::tether::clock::stopwatch();
                for _ in 0..3000 {
                    if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    let got = fetch(&fresh_client(&ca_pem, addr), "a.test", port);
                    seen.lock().unwrap().push(got);
                }
            })
        })
        .collect();
    let counted = |which: &dyn Fn(&Fetched) -> bool| {
        seen.iter()
            .map(|seen| seen.lock().unwrap().iter().filter(|r| which(r)).count())
            .sum::<usize>()
    };
    assert!(wait_until(Duration::from_secs(30), || counted(&|_| true) >= 50));

    // certbot's way: new files, then SIGHUP.
    let renewed = ca.leaf(dir.path(), "a", "a.test", "a.test renewed");
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    let is_renewed = |r: &Fetched| matches!(r, Ok((_, der)) if *der == renewed.der);
    assert!(
        wait_until(Duration::from_secs(30), || counted(&is_renewed) >= 50),
        "new handshakes never got the renewed certificate\n{}",
        proxy.logs()
    );
    stop.store(true, Ordering::SeqCst);
    for thread in looping {
        thread.join().unwrap();
    }

    let (mut total, mut before) = (0, 0);
    for seen in &seen {
        let seen = seen.lock().unwrap().clone();
        let failed: Vec<_> = seen.iter().filter(|r| !matches!(r, Ok((200, _)))).collect();
        assert!(
            failed.is_empty(),
            "{} of {} failed: {failed:?}",
            failed.len(),
            seen.len()
        );
        // Before the swap the old certificate, after it only the new one.
        let first_new = seen.iter().position(is_renewed).unwrap_or(seen.len());
        assert!(seen[..first_new]
            .iter()
            .all(|r| matches!(r, Ok((_, der)) if *der == a.der)));
        assert!(seen[first_new..].iter().all(is_renewed));
        total += seen.len();
        before += first_new;
    }
    assert!(before > 0);
    println!(
        "swap under load: {total} requests (2 clients, a new TLS session each), {before} before the swap, {} after, 0 failed",
        total - before
    );
    // The connection opened before the swap is untouched: it still works,
    // on its old certificate.
    assert_eq!(fetch(&kept, "a.test", port).unwrap(), (200, a.der.clone()));

    // A key that does not match its certificate: refused, the running
    // certificates stay.
    let stray = ca.leaf(dir.path(), "stray", "a.test", "stray");
    std::fs::copy(&stray.files.key_path, &renewed.files.key_path).unwrap();
    proxy.signal("HUP");
    let refused = "reload refused: tether.listeners[1].tls.certificates[0].key_path: ";
    assert!(
        proxy.wait_for_log(refused, Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    assert!(
        proxy
            .logs()
            .contains("the key does not match the certificate"),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        fetch(&fresh_client(&ca_pem, addr), "a.test", port).unwrap(),
        (200, renewed.der.clone())
    );
    assert_eq!(
        fetch(&fresh_client(&ca_pem, addr), "b.test", port).unwrap(),
        (200, b.der.clone())
    );

    // A certificate file gone (the first pair made whole again): refused
    // too, naming its key path; b.test keeps its running certificate.
    std::fs::copy(&stray.files.cert_path, &renewed.files.cert_path).unwrap();
    std::fs::remove_file(&b.files.cert_path).unwrap();
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log(
            "reload refused: tether.listeners[1].tls.certificates[1].cert_path: ",
            Duration::from_secs(10)
        ),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        fetch(&fresh_client(&ca_pem, addr), "b.test", port).unwrap(),
        (200, b.der.clone())
    );
    proxy.terminate();
}

#[test]
fn the_check_names_the_key_path_of_a_pair_that_does_not_match() {
    let dir = tempfile::TempDir::new().unwrap();
    let ca = Ca::new(dir.path());
    let a = ca.leaf(dir.path(), "a", "a.test", "a.test");
    let b = ca.leaf(dir.path(), "b", "b.test", "b.test");
    let ok = tether()
        .sni_listener(free_port(), &[&a.files, &b.files])
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([Endpoint::at("x", "127.0.0.1:1")]));
    let (code, out, err) = ok.check();
    assert_eq!(code, 0, "{out}{err}");
    let mismatched = Tls {
        cert_path: b.files.cert_path.clone(),
        key_path: a.files.key_path.clone(),
    };
    let (code, out, err) = tether()
        .sni_listener(free_port(), &[&a.files, &mismatched])
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([Endpoint::at("x", "127.0.0.1:1")]))
        .check();
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("configuration OK"));
    assert!(
        err.contains(&format!(
            "tether.listeners[0].tls.certificates[1].key_path: {}: the key does not match the certificate {}",
            a.files.key_path, b.files.cert_path
        )),
        "{err}"
    );
}
