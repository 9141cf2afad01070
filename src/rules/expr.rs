//! The compiled form of a rule's condition: what [`super::parse`] builds and
//! [`super::eval`] evaluates. Literals are already in their final form
//! (regexes compiled, header names lower-cased, IP ranges parsed), so
//! evaluating never parses or compiles anything.

use ipnet::IpNet;
use regex::Regex;

/// A field of Cloudflare's Rules language that load balancing rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `http.host`: the request's host, lower-case, without a port.
    Host,
    /// `http.request.uri`: path and query, the path normalised
    /// (`super::path`), the query as sent.
    Uri,
    /// `http.request.uri.path`: normalised.
    UriPath,
    /// `http.request.uri.query`: without the `?`; empty when none.
    UriQuery,
    /// `http.request.method`
    Method,
    /// `http.user_agent`
    UserAgent,
    /// `http.request.headers["name"]`: every value of that header (name
    /// lower-cased at compile time; matched case-insensitively).
    Header(String),
    /// `http.request.cookies["name"]`: every value of that cookie.
    Cookie(String),
    /// `ip.src`: the client's address.
    IpSrc,
    /// `ssl`: the request came over TLS.
    Ssl,
}

/// The type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Str,
    Int,
    Ip,
    Bool,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Str => "a string",
            Type::Int => "an integer",
            Type::Ip => "an IP address",
            Type::Bool => "a boolean",
        }
    }
}

/// Which element of an array field a value expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// `[N]`: that element (none: the comparison is false).
    At(usize),
    /// `[*]` (or no index, inside `any` / `all`): every element.
    Each,
}

/// A value expression: a field, or a function of one.
#[derive(Debug, Clone)]
pub enum Value {
    Field(Field, Index),
    Lower(Box<Value>),
    Upper(Box<Value>),
    /// `len(x)`: bytes of a string.
    Len(Box<Value>),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Field(Field::IpSrc, _) => Type::Ip,
            Value::Field(Field::Ssl, _) => Type::Bool,
            Value::Field(..) | Value::Lower(_) | Value::Upper(_) => Type::Str,
            Value::Len(_) => Type::Int,
        }
    }

    /// Whether it yields every element of an array (`[*]`).
    pub fn is_each(&self) -> bool {
        match self {
            Value::Field(_, index) => *index == Index::Each,
            Value::Lower(v) | Value::Upper(v) | Value::Len(v) => v.is_each(),
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Literal {
    Str(String),
    Int(i64),
    Ip(IpNet),
    Bool(bool),
}

/// A comparison operator (word and symbol forms parse alike).
#[derive(Debug, Clone)]
pub enum Op {
    Eq(Literal),
    Ne(Literal),
    Lt(Literal),
    Le(Literal),
    Gt(Literal),
    Ge(Literal),
    Contains(String),
    Matches(Regex),
    In(Set),
}

/// `{ ... }`: strings, integers (and `a..b` ranges) or IP addresses (and
/// CIDR ranges), one type per set.
#[derive(Debug, Clone)]
pub enum Set {
    Strs(Vec<String>),
    Ints(Vec<(i64, i64)>),
    Ips(Vec<IpNet>),
}

/// How a comparison over `[*]` combines its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Each {
    /// A plain value: its one element (none: false).
    One,
    /// `any(...)`: true when some element is.
    Any,
    /// `all(...)`: true when every element is (and there is one).
    All,
}

/// A condition.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `true` for an empty condition: the rule applies to every request.
    Always,
    Or(Vec<Expr>),
    Xor(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        value: Value,
        op: Op,
        each: Each,
    },
    /// A boolean field alone (`ssl`).
    Truth(Value),
    StartsWith {
        value: Value,
        prefix: String,
        each: Each,
    },
    EndsWith {
        value: Value,
        suffix: String,
        each: Each,
    },
}
