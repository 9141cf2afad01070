use super::*;

fn col(src: &str) -> (usize, String) {
    let e = parse(src).expect_err(src);
    (e.column, e.message)
}

#[test]
fn cloudflare_syntax_parses() {
    for src in [
        r#"starts_with(http.request.uri.path, "/api/")"#,
        r#"http.request.uri.path eq "/old""#,
        r#"http.request.uri.path == "/old" && http.host != "a.example""#,
        r#"(http.request.uri.path ~ "^.*wp-login.php$" or http.request.uri.path ~ "^.*xmlrpc.php$") and ip.src ne 93.184.216.34"#,
        r#"ip.src in {10.0.0.0/8 192.168.1.1 2001:db8::/32}"#,
        r#"http.request.method in {"GET" "HEAD"}"#,
        r#"any(http.request.headers["content-type"][*] == "application/json")"#,
        r#"all(lower(http.request.headers["accept"][*]) contains "json")"#,
        r#"http.request.cookies["beta"][0] eq "1""#,
        r#"len(http.request.uri.query) gt 10 xor not ssl"#,
        r#"upper(http.request.method) eq "GET" ^^ ssl"#,
        r#"! (http.user_agent matches r"bot|crawl") || http.request.uri lt "/m""#,
        r#"len(http.host) in {1..5 10}"#,
        r#"ends_with(http.request.uri.path, ".png") and ssl == true"#,
        r#"http.request.uri.query contains "a=\"b\"\\""#,
        "",
    ] {
        if let Err(e) = parse(src) {
            panic!("{src}: {e}");
        }
    }
}

#[test]
fn precedence_is_not_and_xor_or() {
    // a or b and c  ==  a or (b and c)
    let e = parse(r#"ssl or ssl and not ssl"#).unwrap();
    assert!(matches!(e, Expr::Or(ref v) if v.len() == 2 && matches!(v[1], Expr::And(_))));
    let e = parse(r#"ssl xor ssl and ssl"#).unwrap();
    assert!(matches!(e, Expr::Xor(ref v) if matches!(v[1], Expr::And(_))));
}

#[test]
fn errors_name_their_column() {
    assert_eq!(col(r#"http.hots eq "a""#).0, 1);
    assert!(col(r#"http.hots eq "a""#).1.contains("unknown field"));
    // A string compared with an IP range.
    let (c, m) = col(r#"http.host eq 10.0.0.1"#);
    assert_eq!(c, 14, "{m}");
    let (c, m) = col(r#"ip.src contains "a""#);
    assert_eq!(c, 17, "{m}");
    assert!(m.contains("strings"), "{m}");
    let (c, m) = col(r#"http.host eq "a" and"#);
    assert_eq!(c, 21, "{m}");
    let (c, _) = col(r#"(http.host eq "a""#);
    assert_eq!(c, 18);
    let (c, m) = col(r#"http.request.uri.path matches "(""#);
    assert_eq!(c, 31);
    assert!(m.contains("regular expression"), "{m}");
    // An array needs an index or any()/all().
    let (c, m) = col(r#"http.host eq "a" or http.request.headers["x"] eq "b""#);
    assert_eq!(c, 21, "{m}");
    let (_, m) = col(r#"any(http.host eq "a")"#);
    assert!(m.contains("[*]"), "{m}");
    let (c, _) = col(r#"http.host eq "a" "b""#);
    assert_eq!(c, 18);
    assert!(col(r#"http.host"#).1.contains("expected an operator"));
    assert!(col(r#"ip.src lt 10.0.0.1"#).1.contains("does not apply"));
    assert!(col(r#"lower(ip.src) eq "a""#)
        .1
        .contains("expected a string"));
    assert!(col(r#"ip.src eq 999.1.1.1"#).1.contains("invalid IP"));
    // Columns count characters, not bytes.
    assert_eq!(col(r#"http.host eq "é" and x"#).0, 22);
}

#[test]
fn keywords_need_a_word_boundary() {
    // `order` is not `or` + `der`.
    assert!(parse(r#"ssl order"#).is_err());
    assert!(parse(r#"http.host eqx "a""#).is_err());
}

#[test]
fn nesting_is_bounded_not_a_stack_overflow() {
    // 64 levels parse; the 65th is an error at its own column. Each kind of
    // level counts: parentheses, not, and function calls.
    let leaf = r#"http.host eq "a""#;
    let nested = move |n: usize, open: &str, close: &str| {
        format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
    };
    assert!(parse(&nested(64, "(", ")")).is_ok());
    let (c, m) = col(&nested(65, "(", ")"));
    assert_eq!(c, 65, "{m}");
    assert!(m.contains("nested deeper than 64 levels"), "{m}");
    assert!(parse(&nested(64, "not ", "")).is_ok());
    assert!(col(&nested(65, "! ", "")).1.contains("nested deeper"));
    assert!(parse(&format!(
        "{}http.host{} eq \"a\"",
        "lower(".repeat(64),
        ")".repeat(64)
    ))
    .is_ok());
    let (_, m) = col(&format!(
        "{}http.host{} eq \"a\"",
        "upper(".repeat(65),
        ")".repeat(65)
    ));
    assert!(m.contains("nested deeper"), "{m}");
    // Levels of different kinds add up.
    let mixed = format!("{}{}{leaf}{}", "not (".repeat(32), "(", ")".repeat(33));
    assert!(col(&mixed).1.contains("nested deeper"));
    // What crashed the process before: thousands of levels (on a small stack,
    // as a reload or an admin change runs on a runtime's worker thread: 1 MiB,
    // half of tokio's default; 64 levels take about 0.6 MiB in a debug build).
    let deep = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let parens = parse(&nested(3_700, "(", ")")).map(|_| ());
            let nots = parse(&nested(21_800, "not ", "")).map(|_| ());
            let under_limit = parse(&nested(1_000, "(", ")")).map(|_| ());
            (parens, nots, under_limit)
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(deep.0.is_err() && deep.1.is_err() && deep.2.is_err());
}

#[test]
fn conditions_longer_than_4096_bytes_are_refused() {
    let cond = |len: usize| {
        let head = r#"http.host eq ""#;
        format!("{head}{}\"", "a".repeat(len - head.len() - 1))
    };
    assert!(parse(&cond(MAX_CONDITION_BYTES)).is_ok());
    let (c, m) = col(&cond(MAX_CONDITION_BYTES + 1));
    assert_eq!(c, MAX_CONDITION_BYTES + 1);
    assert!(m.contains("4097 bytes long; at most 4096"), "{m}");
}
