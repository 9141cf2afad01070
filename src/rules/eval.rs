//! Evaluating a compiled condition against one request. Plain data in, a
//! boolean out; nothing is parsed or compiled here, and nothing allocates
//! except `lower()` / `upper()` of a value that actually changes case.

use std::borrow::Cow;
use std::net::IpAddr;

use http::HeaderMap;

use super::expr::{Each, Expr, Field, Index, Literal, Op, Set, Value};

/// What a condition may read of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Lower-case, without a port (as Tether routes by it).
    pub host: &'a str,
    /// Path and query (`/a/b?c=d`), the path normalised as rules see it
    /// ([`super::normalise_uri`]), the query as sent.
    pub uri: &'a str,
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    pub client: Option<IpAddr>,
    /// The request came over TLS.
    pub tls: bool,
}

impl<'a> Request<'a> {
    fn path(&self) -> &'a str {
        self.uri.split_once('?').map_or(self.uri, |(p, _)| p)
    }
    fn query(&self) -> &'a str {
        self.uri.split_once('?').map_or("", |(_, q)| q)
    }
}

/// One element of a value.
#[derive(Debug, Clone)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Ip(IpAddr),
    Bool(bool),
}

/// Whether `expr` holds for `req`.
pub fn eval(expr: &Expr, req: &Request<'_>) -> bool {
    match expr {
        Expr::Always => true,
        Expr::Or(list) => list.iter().any(|e| eval(e, req)),
        Expr::And(list) => list.iter().all(|e| eval(e, req)),
        Expr::Xor(list) => list.iter().fold(false, |acc, e| acc ^ eval(e, req)),
        Expr::Not(e) => !eval(e, req),
        Expr::Compare { value, op, each } => test(value, *each, req, |s| compare(&s, op)),
        Expr::Truth(value) => test(value, Each::One, req, |s| matches!(s, Scalar::Bool(true))),
        Expr::StartsWith {
            value,
            prefix,
            each,
        } => test(
            value,
            *each,
            req,
            |s| matches!(s, Scalar::Str(t) if t.starts_with(prefix.as_str())),
        ),
        Expr::EndsWith {
            value,
            suffix,
            each,
        } => test(
            value,
            *each,
            req,
            |s| matches!(s, Scalar::Str(t) if t.ends_with(suffix.as_str())),
        ),
    }
}

/// Applies `pred` to the elements of `value` as `each` says: the first one
/// (none: false), some element (`any`), or every element (`all`; true for
/// none, as wirefilter's `all` is).
fn test(value: &Value, each: Each, req: &Request<'_>, pred: impl Fn(Scalar<'_>) -> bool) -> bool {
    match each {
        Each::One => {
            let mut answer = false;
            elements(value, req, &mut |s| {
                answer = pred(s);
                false
            });
            answer
        }
        Each::Any => {
            let mut answer = false;
            elements(value, req, &mut |s| {
                answer = pred(s);
                !answer
            });
            answer
        }
        Each::All => {
            let mut answer = true;
            elements(value, req, &mut |s| {
                answer = pred(s);
                answer
            });
            answer
        }
    }
}

/// Calls `f` with each element of `value` until it returns false.
fn elements<'r>(value: &Value, req: &Request<'r>, f: &mut dyn FnMut(Scalar<'_>) -> bool) {
    match value {
        Value::Field(field, index) => {
            let mut n = 0usize;
            field_elements(field, req, &mut |s| {
                let wanted = match index {
                    Index::Each => true,
                    Index::At(i) => *i == n,
                };
                n += 1;
                match (wanted, index) {
                    (true, Index::At(_)) => {
                        f(s);
                        false
                    }
                    (true, Index::Each) => f(s),
                    (false, _) => true,
                }
            });
        }
        Value::Lower(inner) => elements(inner, req, &mut |s| match s {
            Scalar::Str(t) => f(Scalar::Str(lower(t))),
            other => f(other),
        }),
        Value::Upper(inner) => elements(inner, req, &mut |s| match s {
            Scalar::Str(t) => f(Scalar::Str(upper(t))),
            other => f(other),
        }),
        Value::Len(inner) => elements(inner, req, &mut |s| match s {
            Scalar::Str(t) => f(Scalar::Int(i64::try_from(t.len()).unwrap_or(i64::MAX))),
            other => f(other),
        }),
    }
}

fn lower(t: Cow<'_, str>) -> Cow<'_, str> {
    if t.chars().any(char::is_uppercase) {
        Cow::Owned(t.to_lowercase())
    } else {
        t
    }
}

fn upper(t: Cow<'_, str>) -> Cow<'_, str> {
    if t.chars().any(char::is_lowercase) {
        Cow::Owned(t.to_uppercase())
    } else {
        t
    }
}

fn field_elements<'r>(field: &Field, req: &Request<'r>, f: &mut dyn FnMut(Scalar<'_>) -> bool) {
    let str = |s: &'r str| Scalar::Str(Cow::Borrowed(s));
    match field {
        Field::Host => {
            f(str(req.host));
        }
        Field::Uri => {
            f(str(req.uri));
        }
        Field::UriPath => {
            f(str(req.path()));
        }
        Field::UriQuery => {
            f(str(req.query()));
        }
        Field::Method => {
            f(str(req.method));
        }
        Field::UserAgent => {
            if let Some(ua) = req
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
            {
                f(str(ua));
            }
        }
        Field::Header(name) => {
            for v in req.headers.get_all(name.as_str()) {
                if let Ok(text) = v.to_str() {
                    if !f(str(text)) {
                        return;
                    }
                }
            }
        }
        Field::Cookie(name) => {
            for v in req.headers.get_all(http::header::COOKIE) {
                let Ok(text) = v.to_str() else { continue };
                for pair in text.split(';') {
                    let Some((k, v)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    if k.trim() == name && !f(str(v.trim())) {
                        return;
                    }
                }
            }
        }
        Field::IpSrc => {
            if let Some(ip) = req.client {
                f(Scalar::Ip(ip.to_canonical()));
            }
        }
        Field::Ssl => {
            f(Scalar::Bool(req.tls));
        }
    }
}

fn compare(s: &Scalar<'_>, op: &Op) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let ordering = |lit: &Literal| match (s, lit) {
        (Scalar::Str(a), Literal::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (Scalar::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Scalar::Ip(a), Literal::Ip(net)) => Some(if net.contains(a) { Equal } else { Less }),
        _ => None,
    };
    match op {
        Op::Eq(l) => ordering(l) == Some(Equal),
        Op::Ne(l) => ordering(l).is_some_and(|o| o != Equal),
        Op::Lt(l) => ordering(l) == Some(Less),
        Op::Le(l) => matches!(ordering(l), Some(Less | Equal)),
        Op::Gt(l) => ordering(l) == Some(Greater),
        Op::Ge(l) => matches!(ordering(l), Some(Greater | Equal)),
        Op::Contains(needle) => matches!(s, Scalar::Str(t) if t.contains(needle.as_str())),
        Op::Matches(re) => matches!(s, Scalar::Str(t) if re.is_match(t)),
        Op::In(set) => match (s, set) {
            (Scalar::Str(t), Set::Strs(list)) => list.iter().any(|x| x == t.as_ref()),
            (Scalar::Int(n), Set::Ints(ranges)) => ranges.iter().any(|(a, b)| a <= n && n <= b),
            (Scalar::Ip(ip), Set::Ips(nets)) => nets.iter().any(|net| net.contains(ip)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests;
