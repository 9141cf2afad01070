//! The condition parser: Cloudflare's Rules language (wirefilter syntax) as
//! load balancing rules use it, with `nom` combinators. Type errors (a
//! string compared with an IP, `matches` on an integer, an unknown field)
//! are reported while parsing, at their column, so a condition that parses
//! is one that evaluates.
//!
//! Precedence, tightest first: `not` (`!`), `and` (`&&`), `xor` (`^^`),
//! `or` (`||`); parentheses group. See docs/rules.md for the whole grammar.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use nom::branch::alt;
use nom::bytes::complete::{escaped_transform, is_not, tag, take_until, take_while1};
use nom::character::complete::{char, digit1, multispace0};
use nom::combinator::{cut, map, opt, recognize, value as constant};
use nom::error::{ErrorKind, ParseError};
use nom::multi::many0;
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::IResult;
use regex::Regex;

use super::expr::{Each, Expr, Field, Index, Literal, Op, Set, Type, Value};

/// Why a condition does not parse, and where (1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// A parse error: where it is (the rest of the input) and what is wrong.
#[derive(Debug)]
struct PErr<'a> {
    at: &'a str,
    msg: Cow<'static, str>,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PErr {
            at: input,
            msg: Cow::Borrowed("unexpected input"),
        }
    }
    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
    /// Of two failed alternatives, the one that got further explains more.
    /// At the same place, a specific message beats the generic one.
    fn or(self, other: Self) -> Self {
        let generic = matches!(self.msg, Cow::Borrowed("unexpected input"));
        if other.at.len() < self.at.len() || (other.at.len() == self.at.len() && generic) {
            other
        } else {
            self
        }
    }
}

type R<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// A hard error: no alternative is tried after it.
fn fail<'a, T>(at: &'a str, msg: impl Into<Cow<'static, str>>) -> R<'a, T> {
    Err(nom::Err::Failure(PErr {
        at,
        msg: msg.into(),
    }))
}

/// A soft error: the caller may try something else.
fn miss<'a, T>(at: &'a str, msg: &'static str) -> R<'a, T> {
    Err(nom::Err::Error(PErr {
        at,
        msg: Cow::Borrowed(msg),
    }))
}

/// The longest condition accepted, in bytes: Cloudflare's own limit on a
/// rule expression.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// How deeply a condition may nest: each parenthesised group, each `not`
/// (`!`) and each function call (`any`, `all`, `lower`, `upper`, `len`)
/// opens one level. The parser recurses once per level, so this bound is
/// what keeps a hostile condition from overflowing the stack.
pub const MAX_NESTING: u32 = 64;

/// Parses a whole condition; an empty one matches every request.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    if src.len() > MAX_CONDITION_BYTES {
        let mut end = MAX_CONDITION_BYTES;
        while !src.is_char_boundary(end) {
            end -= 1;
        }
        return Err(SyntaxError {
            column: src[..end].chars().count() + 1,
            message: format!(
                "the condition is {} bytes long; at most {MAX_CONDITION_BYTES} are allowed",
                src.len()
            ),
        });
    }
    if src.trim().is_empty() {
        return Ok(Expr::Always);
    }
    let err = match terminated(|i| or_expr(i, 0), multispace0)(src) {
        Ok(("", expr)) => return Ok(expr),
        Ok((rest, _)) => PErr {
            at: rest,
            msg: Cow::Borrowed("expected and, or, xor, a closing ) or the end of the condition"),
        },
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => e,
        Err(nom::Err::Incomplete(_)) => PErr {
            at: "",
            msg: Cow::Borrowed("incomplete condition"),
        },
    };
    let offset = src.len().saturating_sub(err.at.len());
    let column = src.get(..offset).map_or(offset, |s| s.chars().count()) + 1;
    Err(SyntaxError {
        column,
        message: err.msg.into_owned(),
    })
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// A word operator or keyword, not followed by more of a name.
fn keyword<'a>(word: &'static str) -> impl FnMut(&'a str) -> R<'a, &'a str> {
    move |i: &'a str| {
        let (rest, w) = preceded(multispace0, tag(word))(i)?;
        if rest.starts_with(is_ident) {
            return miss(i, "expected a keyword");
        }
        Ok((rest, w))
    }
}

fn sym<'a>(s: &'static str) -> impl FnMut(&'a str) -> R<'a, &'a str> {
    preceded(multispace0, tag(s))
}

fn ident(i: &str) -> R<'_, &str> {
    let (i, _) = multispace0(i)?;
    if !i.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return miss(i, "expected a field, a function, not, or (");
    }
    take_while1(is_ident)(i)
}

/// One level deeper than `depth`, or a hard error at `at` past [`MAX_NESTING`].
fn deeper(at: &str, depth: u32) -> R<'_, u32> {
    if depth >= MAX_NESTING {
        return fail(
            at,
            format!("nested deeper than {MAX_NESTING} levels (each parenthesis, not and function call is a level)"),
        );
    }
    Ok((at, depth + 1))
}

fn or_expr(i: &str, depth: u32) -> R<'_, Expr> {
    chain(
        i,
        |i| xor_expr(i, depth),
        alt((keyword("or"), sym("||"))),
        Expr::Or,
    )
}

fn xor_expr(i: &str, depth: u32) -> R<'_, Expr> {
    chain(
        i,
        |i| and_expr(i, depth),
        alt((keyword("xor"), sym("^^"))),
        Expr::Xor,
    )
}

fn and_expr(i: &str, depth: u32) -> R<'_, Expr> {
    chain(
        i,
        |i| not_expr(i, depth),
        alt((keyword("and"), sym("&&"))),
        Expr::And,
    )
}

/// `item (sep item)*`, one item alone as itself.
fn chain<'a>(
    i: &'a str,
    mut item: impl FnMut(&'a str) -> R<'a, Expr>,
    sep: impl FnMut(&'a str) -> R<'a, &'a str>,
    make: fn(Vec<Expr>) -> Expr,
) -> R<'a, Expr> {
    let (i, first) = item(i)?;
    let (i, rest) = many0(preceded(sep, cut(&mut item)))(i)?;
    if rest.is_empty() {
        return Ok((i, first));
    }
    let mut all = Vec::with_capacity(rest.len() + 1);
    all.push(first);
    all.extend(rest);
    Ok((i, make(all)))
}

fn not_expr(i: &str, depth: u32) -> R<'_, Expr> {
    let not = |i| {
        let (k, _) = alt((keyword("not"), sym("!")))(i)?;
        let (k, inner) = deeper(k, depth)?;
        let (k, e) = cut(|k| not_expr(k, inner))(k)?;
        Ok((k, Expr::Not(Box::new(e))))
    };
    alt((not, |i| primary(i, depth)))(i)
}

fn primary(i: &str, depth: u32) -> R<'_, Expr> {
    let (j, _) = multispace0(i)?;
    if let Some(k) = j.strip_prefix('(') {
        let (_, inner) = deeper(j, depth)?;
        let (k, e) = cut(|k| or_expr(k, inner))(k)?;
        let (k, _) = cut(sym(")"))(k)?;
        return Ok((k, e));
    }
    let (k, name) = ident(j)?;
    let each = match name {
        "any" => Each::Any,
        "all" => Each::All,
        _ => return predicate(j, Each::One, depth),
    };
    let (k, inner) = deeper(k, depth)?;
    let (k, _) = cut(sym("("))(k)?;
    let (k, e) = cut(|k| predicate(k, each, inner))(k)?;
    let (k, _) = cut(sym(")"))(k)?;
    Ok((k, e))
}

/// A comparison, a function that answers true or false, or a boolean field.
fn predicate(i: &str, each: Each, depth: u32) -> R<'_, Expr> {
    let (j, _) = multispace0(i)?;
    let (k, name) = ident(j)?;
    if name == "starts_with" || name == "ends_with" {
        let (k, inner) = deeper(k, depth)?;
        let (k, _) = cut(sym("("))(k)?;
        let (k, value) = cut(|k| string_value(k, inner))(k)?;
        check_each(j, &value, each)?;
        let (k, _) = cut(sym(","))(k)?;
        let (k, lit) = cut(preceded(multispace0, string_lit))(k)?;
        let (k, _) = cut(sym(")"))(k)?;
        let e = if name == "starts_with" {
            Expr::StartsWith {
                value,
                prefix: lit,
                each,
            }
        } else {
            Expr::EndsWith {
                value,
                suffix: lit,
                each,
            }
        };
        return Ok((k, e));
    }
    let (k, value) = value(j, depth)?;
    check_each(j, &value, each)?;
    let (k, op) = opt(operator)(k)?;
    let Some(op) = op else {
        if value.ty() == Type::Bool {
            return Ok((k, Expr::Truth(value)));
        }
        return fail(
            k,
            "expected an operator (eq, ne, lt, le, gt, ge, contains, matches, in, or their symbols)",
        );
    };
    let (k, op) = rhs(k, op, value.ty())?;
    Ok((k, Expr::Compare { value, op, each }))
}

fn check_each<'a>(at: &'a str, value: &Value, each: Each) -> R<'a, ()> {
    match (each, value.is_each()) {
        (Each::One, true) => fail(
            at,
            "this field is an array: index it ([0]) or compare every element with any(...[*] ...) or all(...[*] ...)",
        ),
        (Each::Any | Each::All, false) => fail(
            at,
            "any() and all() compare every element of an array: use [*]",
        ),
        _ => Ok((at, ())),
    }
}

fn string_value(i: &str, depth: u32) -> R<'_, Value> {
    let (j, _) = multispace0(i)?;
    let (k, v) = value(j, depth)?;
    if v.ty() != Type::Str {
        return fail(j, format!("expected a string, this is {}", v.ty().name()));
    }
    Ok((k, v))
}

/// A field, or `lower` / `upper` / `len` of a string.
fn value(i: &str, depth: u32) -> R<'_, Value> {
    let (j, _) = multispace0(i)?;
    let (k, name) = ident(j)?;
    let wrap: fn(Box<Value>) -> Value = match name {
        "lower" => Value::Lower,
        "upper" => Value::Upper,
        "len" => Value::Len,
        _ => return field(j),
    };
    let (k, depth) = deeper(k, depth)?;
    let (k, _) = cut(sym("("))(k)?;
    let (k, inner) = cut(|k| string_value(k, depth))(k)?;
    let (k, _) = cut(sym(")"))(k)?;
    Ok((k, wrap(Box::new(inner))))
}

fn field(i: &str) -> R<'_, Value> {
    let (k, name) = ident(i)?;
    let simple = match name {
        "http.host" => Some(Field::Host),
        "http.request.uri" => Some(Field::Uri),
        "http.request.uri.path" => Some(Field::UriPath),
        "http.request.uri.query" => Some(Field::UriQuery),
        "http.request.method" => Some(Field::Method),
        "http.user_agent" => Some(Field::UserAgent),
        "ip.src" => Some(Field::IpSrc),
        "ssl" => Some(Field::Ssl),
        "http.request.headers" | "http.request.cookies" => None,
        _ => return fail(i, format!("unknown field {name:?}")),
    };
    if let Some(f) = simple {
        return Ok((k, Value::Field(f, Index::At(0))));
    }
    let (k, key) = cut(delimited(
        sym("["),
        preceded(multispace0, string_lit),
        sym("]"),
    ))(k)?;
    let f = if name == "http.request.headers" {
        Field::Header(key.to_ascii_lowercase())
    } else {
        Field::Cookie(key)
    };
    let (k, index) = opt(delimited(
        sym("["),
        preceded(
            multispace0,
            alt((
                constant(Index::Each, char('*')),
                map(digit1, |d: &str| Index::At(d.parse().unwrap_or(usize::MAX))),
            )),
        ),
        sym("]"),
    ))(k)?;
    Ok((k, Value::Field(f, index.unwrap_or(Index::Each))))
}

fn operator(i: &str) -> R<'_, &str> {
    let (i, _) = multispace0(i)?;
    alt((
        alt((
            tag("=="),
            tag("!="),
            tag("<="),
            tag(">="),
            tag("<"),
            tag(">"),
            tag("~"),
        )),
        alt((
            keyword("eq"),
            keyword("ne"),
            keyword("lt"),
            keyword("le"),
            keyword("gt"),
            keyword("ge"),
            keyword("contains"),
            keyword("matches"),
            keyword("in"),
        )),
    ))(i)
}

/// The right-hand side `op` takes for a value of type `ty`.
fn rhs<'a>(i: &'a str, op: &str, ty: Type) -> R<'a, Op> {
    let (j, _) = multispace0(i)?;
    let ordered = matches!(op, "<" | "lt" | "<=" | "le" | ">" | "gt" | ">=" | "ge");
    if ordered && matches!(ty, Type::Ip | Type::Bool) {
        return fail(j, format!("{op} does not apply to {}", ty.name()));
    }
    match op {
        "contains" | "matches" | "~" if ty != Type::Str => {
            fail(j, format!("{op} applies to strings, not {}", ty.name()))
        }
        "contains" => map(cut(string_lit), Op::Contains)(j),
        "matches" | "~" => {
            let (k, pattern) = cut(string_lit)(j)?;
            match Regex::new(&pattern) {
                Ok(re) => Ok((k, Op::Matches(re))),
                Err(e) => fail(j, format!("invalid regular expression: {e}")),
            }
        }
        "in" => set(j, ty),
        _ => {
            let (k, lit) = cut(|j| literal(j, ty))(j)?;
            let op = match op {
                "==" | "eq" => Op::Eq(lit),
                "!=" | "ne" => Op::Ne(lit),
                "<" | "lt" => Op::Lt(lit),
                "<=" | "le" => Op::Le(lit),
                ">" | "gt" => Op::Gt(lit),
                _ => Op::Ge(lit),
            };
            Ok((k, op))
        }
    }
}

fn literal(i: &str, ty: Type) -> R<'_, Literal> {
    match ty {
        Type::Str => map(string_lit, Literal::Str)(i),
        Type::Int => map(int_lit, Literal::Int)(i),
        Type::Ip => map(ip_lit, Literal::Ip)(i),
        Type::Bool => alt((
            constant(Literal::Bool(true), keyword("true")),
            constant(Literal::Bool(false), keyword("false")),
        ))(i),
    }
}

fn set(i: &str, ty: Type) -> R<'_, Op> {
    let (k, _) = cut(char('{'))(i)?;
    let close = |k| preceded(multispace0, char('}'))(k);
    let item_ws = |k| preceded(multispace0, |k| set_item(k, ty))(k);
    let (k, items) = many0(item_ws)(k)?;
    let (k, _) = cut(close)(k)?;
    let mut strs = Vec::new();
    let mut ints = Vec::new();
    let mut ips = Vec::new();
    for item in items {
        match item {
            SetItem::Str(s) => strs.push(s),
            SetItem::Ints(a, b) => ints.push((a, b)),
            SetItem::Ip(n) => ips.push(n),
        }
    }
    let set = match ty {
        Type::Str => Set::Strs(strs),
        Type::Int => Set::Ints(ints),
        Type::Ip => Set::Ips(ips),
        Type::Bool => return fail(i, "in does not apply to a boolean"),
    };
    Ok((k, Op::In(set)))
}

enum SetItem {
    Str(String),
    Ints(i64, i64),
    Ip(IpNet),
}

fn set_item(i: &str, ty: Type) -> R<'_, SetItem> {
    match ty {
        Type::Str => map(string_lit, SetItem::Str)(i),
        Type::Int => map(
            pair(int_lit, opt(preceded(tag(".."), int_lit))),
            |(a, b)| SetItem::Ints(a, b.unwrap_or(a)),
        )(i),
        Type::Ip => map(ip_lit, SetItem::Ip)(i),
        Type::Bool => miss(i, "in does not apply to a boolean"),
    }
}

/// `"..."` with `\"` and `\\` escapes, or a raw `r"..."` / `r#"..."#`.
fn string_lit(i: &str) -> R<'_, String> {
    let quoted = delimited(
        char('"'),
        map(
            opt(escaped_transform(
                is_not("\\\""),
                '\\',
                alt((constant("\\", tag("\\")), constant("\"", tag("\"")))),
            )),
            Option::unwrap_or_default,
        ),
        cut(char('"')),
    );
    let raw_hash = delimited(tag("r#\""), take_until("\"#"), tag("\"#"));
    let raw = delimited(tag("r\""), take_until("\""), tag("\""));
    match alt((
        quoted,
        map(raw_hash, str::to_string),
        map(raw, str::to_string),
    ))(i)
    {
        Ok(ok) => Ok(ok),
        Err(nom::Err::Error(_)) => miss(i, "expected a string in double quotes"),
        Err(e) => Err(e),
    }
}

fn int_lit(i: &str) -> R<'_, i64> {
    let (k, digits) = match recognize(pair(opt(char('-')), digit1))(i) {
        Ok(ok) => ok,
        Err(nom::Err::Error(_)) => return miss(i, "expected an integer"),
        Err(e) => return Err(e),
    };
    match digits.parse() {
        Ok(n) => Ok((k, n)),
        Err(_) => fail(i, "integer out of range"),
    }
}

/// An IP address or a CIDR range, unquoted.
fn ip_lit(i: &str) -> R<'_, IpNet> {
    let (k, text) = match take_while1::<_, _, PErr>(|c: char| {
        c.is_ascii_hexdigit() || c == ':' || c == '.' || c == '/'
    })(i)
    {
        Ok(ok) => ok,
        Err(_) => return miss(i, "expected an IP address or range"),
    };
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok((k, net.trunc()));
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok((k, IpNet::from(ip))),
        Err(_) => fail(i, format!("invalid IP address or range {text:?}")),
    }
}

#[cfg(test)]
mod tests;
