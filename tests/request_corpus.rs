//! The differential corpus (`tests/corpus/requests.txt`): each case's bytes
//! sent on a raw connection to the real binary in front of a real endpoint;
//! the client must get the status the corpus names (and the endpoint then
//! nothing), or the endpoint must receive exactly the target (and body) the
//! corpus names. Written from what HAProxy 2.6 and NGINX do with the same
//! bytes where Tether once differed (issue 17).

mod support;

use support::*;

struct Case {
    name: String,
    expect: Expect,
    request: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Status(u16),
    Forwarded { path: String, body: Option<String> },
}

/// `\r \n \t \0 \\ \xNN` in a corpus line.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match bytes[i + 1] {
            b'r' => (b'\r', 2),
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b'0' => (0, 2),
            b'\\' => (b'\\', 2),
            b'x' => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("\\xNN");
                (u8::from_str_radix(hex, 16).expect("\\xNN"), 4)
            }
            other => panic!("unknown escape \\{}", other as char),
        };
        out.push(byte);
        i += len;
    }
    out
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/requests.txt");
    let text = std::fs::read_to_string(path).expect("the corpus");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (Some(name), Some(expect), Some(request)) =
                (fields.next(), fields.next(), fields.next())
            else {
                panic!("a corpus line needs three tab-separated fields: {line:?}");
            };
            let expect = match expect.strip_prefix("path=") {
                Some(rest) => {
                    let (path, body) = match rest.split_once(";body=") {
                        Some((p, b)) => (p, Some(b.to_string())),
                        None => (rest, None),
                    };
                    Expect::Forwarded {
                        path: path.to_string(),
                        body,
                    }
                }
                None => Expect::Status(expect.parse().expect("a status or path=")),
            };
            Case {
                name: name.to_string(),
                expect,
                request: unescape(request),
            }
        })
        .collect()
}

#[test]
fn every_corpus_case_gets_what_haproxy_and_nginx_give_it() {
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let endpoint = Upstream::healthy("a");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .load_balancer("other.test", lb(["p"]).enabled(false))
        .pool("p", pool([&endpoint]))
        .start();
    let mut failures = Vec::new();
    for case in &cases {
        let before = endpoint.requests();
        let answer = exchange_raw(proxy.addr(), &case.request);
        let status: Option<u16> = answer.get(9..12).and_then(|s| s.parse().ok());
        let forwarded = endpoint.requests() - before;
        let verdict = match &case.expect {
            Expect::Status(want) => {
                if status != Some(*want) || forwarded != 0 {
                    Some(format!("want {want}, nothing forwarded"))
                } else {
                    None
                }
            }
            Expect::Forwarded { path, body } => {
                let echoed = answer
                    .split_once("\r\n\r\n")
                    .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok());
                let got_path = echoed.as_ref().and_then(|e| e["path"].as_str());
                let got_body = echoed.as_ref().and_then(|e| e["body"].as_str());
                let body_ok = body.as_deref().is_none_or(|b| got_body == Some(b));
                if status != Some(200) || got_path != Some(path.as_str()) || !body_ok {
                    Some(format!("want 200 with path {path:?} body {body:?}"))
                } else {
                    None
                }
            }
        };
        if let Some(want) = verdict {
            failures.push(format!(
                "{}: {want}; got {status:?}, {forwarded} forwarded: {answer:?}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
