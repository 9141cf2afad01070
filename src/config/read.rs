//! A small strict reader over `serde_yaml::Value`.
//!
//! Every reader takes the error collector, records what is wrong with the
//! node (naming its full key path) and returns `None` instead of stopping, so
//! that one pass reports every problem of the file. Each node also carries
//! its position in the document (the index of every key and list item on
//! the way down), and the collected errors are sorted by it: errors come out
//! in document order whatever order the checks ran in.

use std::path::PathBuf;

use serde_yaml::{Mapping, Value};
use std::fmt;

/// One problem of the configuration, at a key path such as
/// `tether.pools.primary.endpoints[1].weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The full key path; `""` for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One error (file-level helpers: unreadable file, syntax error).
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            path: path.into(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Position of a node in the document: the index of each key / item on the
/// path from the root. `usize::MAX` sorts "after everything in the object"
/// (used for missing keys and whole-object checks).
pub type Order = Vec<usize>;

/// What the pure walk cannot decide alone: a file to read or a name to
/// resolve. The walk records each with its node; [`super::checks`] runs
/// them after the walk and reports under the same key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The file must be readable (TLS certificate and key, cookie keys).
    Readable(PathBuf),
    /// The admin token file must be readable and not empty.
    TokenFile(PathBuf),
    /// The cluster key file must be readable and hold a usable key.
    ClusterKey(PathBuf),
    /// The Redis password file must be readable UTF-8 and not empty.
    PasswordFile(PathBuf),
    /// The state file's directory must exist and be writable.
    StateFile(PathBuf),
    /// A `hostname:port` endpoint address, resolved into the endpoint's
    /// `socket_addr` (the walk leaves the port on an unspecified IP).
    Resolve {
        address: String,
        pool: String,
        endpoint: usize,
    },
    /// A pool's `tls.ca_path`: PEM CA certificates, loaded into the pool's
    /// `tls.loaded.ca`.
    OriginCa { file: PathBuf, pool: String },
    /// A pool's `tls.client_cert_path` and `client_key_path`: a PEM chain and
    /// the key that fits its first certificate, loaded into
    /// `tls.loaded.client_cert_key`.
    OriginClientCert {
        cert: PathBuf,
        key: PathBuf,
        pool: String,
    },
}

/// A [`Check`] with where to report its problem.
#[derive(Debug, Clone)]
pub struct Deferred {
    pub path: String,
    pub order: Order,
    pub check: Check,
}

/// The error collector, and the checks deferred until after the walk.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<(Order, ConfigError)>,
    deferred: Vec<Deferred>,
}

impl Errors {
    pub fn new() -> Self {
        Errors::default()
    }

    /// An error about `node` itself.
    pub fn at(&mut self, node: &Node<'_>, message: impl Into<String>) {
        self.push(node.path.clone(), node.order.clone(), message);
    }

    /// An error at an explicit path and position.
    pub fn push(&mut self, path: String, order: Order, message: impl Into<String>) {
        self.list.push((
            order,
            ConfigError {
                path,
                message: message.into(),
            },
        ));
    }

    /// A check to run after the walk, reported at `node`.
    pub fn defer(&mut self, node: &Node<'_>, check: Check) {
        self.deferred.push(Deferred {
            path: node.path.clone(),
            order: node.order.clone(),
            check,
        });
    }

    /// The deferred checks, handed over to be run.
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.deferred)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The errors in document order (stable: equal positions keep the order
    /// in which they were found).
    pub fn into_errors(mut self) -> ConfigErrors {
        self.list.sort_by(|a, b| a.0.cmp(&b.0));
        ConfigErrors(self.list.into_iter().map(|(_, e)| e).collect())
    }

    /// `Ok(value)` when nothing was reported, else every error.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        if !self.is_empty() {
            return Err(self.into_errors());
        }
        value.ok_or_else(|| {
            ConfigErrors::one(
                "",
                "internal error: the configuration was rejected without a reason",
            )
        })
    }
}

/// Runs every reader (no short-circuit), then keeps the values only if all
/// succeeded.
pub fn all<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let items: Vec<Option<T>> = items.collect();
    items.into_iter().collect()
}

/// Pool, monitor and endpoint names: `[A-Za-z0-9_.-]+`.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// A pool's or monitor's name (the key of its entry); reports a bad one.
pub fn check_entry_name(kind: &str, name: &str, node: &Node<'_>, errs: &mut Errors) -> bool {
    let ok = name_ok(name);
    if !ok {
        errs.at(
            node,
            format!(
                "a {kind} name must use only letters, digits, \"_\", \".\" and \"-\", got {}",
                quote(name)
            ),
        );
    }
    ok
}

/// `path` + `.key`, or `path["key"]` when the key is not `[A-Za-z0-9_-]+`.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// How a number is printed in messages: no trailing `.0` when integral.
pub fn fmt_num(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e17 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `a string ("many")`, `an integer (3)`, `a list`, `null`...
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                format!("an integer ({n})")
            } else {
                format!("a number ({})", fmt_num(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => format!("a string ({})", quote(s)),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a tagged value ({})", t.tag),
    }
}

/// `"text"` with Rust escaping, shortened when very long.
pub fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let short: String = s.chars().take(MAX).collect();
        format!("{short:?}…")
    } else {
        format!("{s:?}")
    }
}

/// A value with its key path and document position.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
    pub order: Order,
}

impl<'a> Node<'a> {
    pub fn new(value: &'a Value, path: impl Into<String>, order: Order) -> Self {
        Node {
            value,
            path: path.into(),
            order,
        }
    }

    fn child(&self, value: &'a Value, path: String, index: usize) -> Node<'a> {
        let mut order = self.order.clone();
        order.push(index);
        Node { value, path, order }
    }

    /// The path of a child key of this node (for errors about absent keys).
    pub fn key_path(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    /// A position after every child of this node.
    pub fn end(&self) -> Order {
        let mut order = self.order.clone();
        order.push(usize::MAX);
        order
    }

    fn type_error(&self, errs: &mut Errors, expected: &str) {
        errs.at(
            self,
            format!("expected {expected}, got {}", describe(self.value)),
        );
    }

    pub fn bool(&self, errs: &mut Errors) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.type_error(errs, "a boolean");
                None
            }
        }
    }

    /// An integer in `min ..= max`. Integral floats (`1e6`, `3.0`) count as
    /// integers; a fraction is a type error.
    pub fn int(&self, errs: &mut Errors, min: i64, max: i64) -> Option<i64> {
        self.int_within(errs, min, max, "")
    }

    /// As [`Node::int`], the range's error naming what it is for (`" for
    /// session_affinity cookie"`).
    pub fn int_within(&self, errs: &mut Errors, min: i64, max: i64, what: &str) -> Option<i64> {
        let n = match self.value {
            Value::Number(n) => n,
            _ => {
                self.type_error(errs, "an integer");
                return None;
            }
        };
        let (v, shown): (i128, String) = if let Some(i) = n.as_i64() {
            (i as i128, i.to_string())
        } else if let Some(u) = n.as_u64() {
            (u as i128, u.to_string())
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() || f.fract() != 0.0 {
                self.type_error(errs, "an integer");
                return None;
            }
            // Saturating cast: anything this large is out of range anyway.
            (f as i128, fmt_num(f))
        };
        if v < min as i128 || v > max as i128 {
            errs.at(
                self,
                format!("must be between {min} and {max}{what}, got {shown}"),
            );
            return None;
        }
        Some(v as i64)
    }

    /// Any number (integer or float) in `min ..= max`.
    pub fn number(&self, errs: &mut Errors, min: f64, max: f64) -> Option<f64> {
        let v = match self.value {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            _ => {
                self.type_error(errs, "a number");
                return None;
            }
        };
        if !(v >= min && v <= max) {
            errs.at(
                self,
                format!(
                    "must be between {} and {}, got {}",
                    fmt_num(min),
                    fmt_num(max),
                    fmt_num(v)
                ),
            );
            return None;
        }
        // -0 is 0 (JSON and YAML both spell it; it would show as -0.0).
        Some(v + 0.0)
    }

    pub fn str(&self, errs: &mut Errors) -> Option<&'a str> {
        match self.value {
            Value::String(s) => Some(s.as_str()),
            _ => {
                self.type_error(errs, "a string");
                None
            }
        }
    }

    /// A string naming one of `choices` (exact match). The message lists
    /// the accepted spellings, `""` for the empty one.
    pub fn choice<T: Copy>(&self, errs: &mut Errors, choices: &[(&str, T)]) -> Option<T> {
        let s = self.str(errs)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = choices
            .iter()
            .map(|(name, _)| if name.is_empty() { "\"\"" } else { name })
            .collect();
        errs.at(
            self,
            format!("must be one of {}; got {}", names.join(", "), quote(s)),
        );
        None
    }

    /// The items of a list.
    pub fn list(&self, errs: &mut Errors) -> Option<Vec<Node<'a>>> {
        match self.value {
            Value::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.child(v, format!("{}[{i}]", self.path), i))
                    .collect(),
            ),
            _ => {
                self.type_error(errs, "a list");
                None
            }
        }
    }

    /// The entries of a mapping with string keys, in document order. A
    /// non-string key is reported and skipped.
    pub fn map(&self, errs: &mut Errors) -> Option<Vec<(&'a str, Node<'a>)>> {
        let mapping: &'a Mapping = match self.value {
            Value::Mapping(m) => m,
            _ => {
                self.type_error(errs, "a mapping");
                return None;
            }
        };
        let mut out = Vec::with_capacity(mapping.len());
        for (i, (k, v)) in mapping.iter().enumerate() {
            match k {
                Value::String(key) => {
                    out.push((key.as_str(), self.child(v, join_key(&self.path, key), i)))
                }
                other => {
                    let mut order = self.order.clone();
                    order.push(i);
                    errs.push(
                        self.path.clone(),
                        order,
                        format!("keys must be strings, got {}", describe(other)),
                    );
                }
            }
        }
        Some(out)
    }

    /// A mapping whose keys must be among `keys`; unknown keys are reported.
    pub fn object(&self, errs: &mut Errors, keys: &[&str]) -> Option<Obj<'a>> {
        let entries = self.map(errs)?;
        for (key, node) in &entries {
            if !keys.contains(key) {
                errs.at(
                    node,
                    format!("unknown key (expected one of: {})", keys.join(", ")),
                );
            }
        }
        Some(Obj {
            node: self.clone(),
            entries,
        })
    }
}

/// A mapping read by [`Node::object`].
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    pub node: Node<'a>,
    entries: Vec<(&'a str, Node<'a>)>,
}

impl<'a> Obj<'a> {
    /// The key's node, `None` when absent or null (null means "not given").
    pub fn opt(&self, key: &str) -> Option<&Node<'a>> {
        self.entries
            .iter()
            .find(|(k, n)| *k == key && !n.value.is_null())
            .map(|(_, n)| n)
    }

    /// The key's node; a missing key is reported. An explicit null is
    /// returned (the type check then says "got null").
    pub fn req(&self, errs: &mut Errors, key: &str) -> Option<&Node<'a>> {
        let found = self.entries.iter().find(|(k, _)| *k == key).map(|(_, n)| n);
        if found.is_none() {
            errs.push(self.node.key_path(key), self.node.end(), "missing");
        }
        found
    }

    /// Outer `None`: the value was wrong (already reported).
    fn with_default<T>(
        &self,
        key: &str,
        default: T,
        read: impl FnOnce(&Node<'a>) -> Option<T>,
    ) -> Option<T> {
        match self.opt(key) {
            None => Some(default),
            Some(node) => read(node),
        }
    }

    pub fn bool_or(&self, errs: &mut Errors, key: &str, default: bool) -> Option<bool> {
        self.with_default(key, default, |n| n.bool(errs))
    }

    pub fn int_or(
        &self,
        errs: &mut Errors,
        key: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Option<i64> {
        self.with_default(key, default, |n| n.int(errs, min, max))
    }

    pub fn number_or(
        &self,
        errs: &mut Errors,
        key: &str,
        min: f64,
        max: f64,
        default: f64,
    ) -> Option<f64> {
        self.with_default(key, default, |n| n.number(errs, min, max))
    }

    pub fn choice_or<T: Copy>(
        &self,
        errs: &mut Errors,
        key: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        self.with_default(key, default, |n| n.choice(errs, choices))
    }

    /// An optional string: `Some(None)` when absent.
    pub fn opt_str(&self, errs: &mut Errors, key: &str) -> Option<Option<&'a str>> {
        match self.opt(key) {
            None => Some(None),
            Some(n) => n.str(errs).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn key_paths() {
        assert_eq!(join_key("tether", "pools"), "tether.pools");
        assert_eq!(join_key("tether.pools", "web_2-a"), "tether.pools.web_2-a");
        assert_eq!(
            join_key("tether.load_balancers", "www.example.com"),
            r#"tether.load_balancers["www.example.com"]"#
        );
        assert_eq!(join_key("x", "*"), r#"x["*"]"#);
        assert_eq!(join_key("x", ""), r#"x[""]"#);
        assert_eq!(join_key("", "threads"), "threads");
    }

    #[test]
    fn numbers_print_without_trailing_zero() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(0.001), "0.001");
        assert_eq!(fmt_num(-2.0), "-2");
    }

    #[test]
    fn type_errors_describe_the_value() {
        let v = parse("a: many\nb: 1.5\nc: [1]\nd: ~\ne: true\nf: {x: 1}\ng: 7");
        let mut errs = Errors::new();
        let root = Node::new(&v, "t", vec![]);
        let o = root
            .object(&mut errs, &["a", "b", "c", "d", "e", "f", "g"])
            .unwrap();
        assert_eq!(o.opt("a").unwrap().int(&mut errs, 0, 10), None);
        assert_eq!(o.opt("b").unwrap().int(&mut errs, 0, 10), None);
        assert_eq!(o.opt("c").unwrap().str(&mut errs), None);
        assert_eq!(o.req(&mut errs, "d").unwrap().bool(&mut errs), None);
        assert_eq!(o.opt("e").unwrap().number(&mut errs, 0.0, 1.0), None);
        assert!(o.opt("f").unwrap().list(&mut errs).is_none());
        assert_eq!(o.opt("g").unwrap().str(&mut errs), None);
        let text = errs.into_errors().to_string();
        assert_eq!(
            text,
            [
                r#"t.a: expected an integer, got a string ("many")"#,
                "t.b: expected an integer, got a number (1.5)",
                "t.c: expected a string, got a list",
                "t.d: expected a boolean, got null",
                "t.e: expected a number, got a boolean (true)",
                "t.f: expected a list, got a mapping",
                "t.g: expected a string, got an integer (7)",
            ]
            .join("\n")
        );
    }

    #[test]
    fn ranges_and_integral_floats() {
        let v = parse("a: 3\nb: 1e6\nc: 2.0\nd: 0.2\ne: -1");
        let mut errs = Errors::new();
        let root = Node::new(&v, "t", vec![]);
        let o = root.object(&mut errs, &["a", "b", "c", "d", "e"]).unwrap();
        assert_eq!(o.int_or(&mut errs, "b", 0, 10_000_000, 0), Some(1_000_000));
        assert_eq!(o.int_or(&mut errs, "c", 0, 10, 0), Some(2));
        assert_eq!(o.int_or(&mut errs, "zz", 0, 10, 7), Some(7));
        assert_eq!(o.number_or(&mut errs, "d", 0.05, 3600.0, 1.0), Some(0.2));
        assert!(errs.is_empty());
        assert_eq!(o.number_or(&mut errs, "a", 0.0, 1.0, 1.0), None);
        assert_eq!(o.int_or(&mut errs, "e", 0, 5, 0), None);
        assert_eq!(
            errs.into_errors().to_string(),
            "t.a: must be between 0 and 1, got 3\nt.e: must be between 0 and 5, got -1"
        );
    }

    #[test]
    fn unknown_missing_and_choice() {
        let v = parse("wieght: 1\nmode: fastest\n7: x");
        let mut errs = Errors::new();
        let root = Node::new(&v, "t.e[0]", vec![4]);
        let o = root.object(&mut errs, &["name", "mode"]).unwrap();
        assert!(o.req(&mut errs, "name").is_none());
        let c = o
            .opt("mode")
            .unwrap()
            .choice(&mut errs, &[("", 0), ("off", 0), ("on", 1)]);
        assert_eq!(c, None);
        let list: Vec<String> = errs.into_errors().0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            list,
            vec![
                "t.e[0].wieght: unknown key (expected one of: name, mode)",
                r#"t.e[0].mode: must be one of "", off, on; got "fastest""#,
                "t.e[0]: keys must be strings, got an integer (7)",
                "t.e[0].name: missing",
            ]
        );
    }

    #[test]
    fn errors_sort_into_document_order() {
        let mut errs = Errors::new();
        errs.push("b".into(), vec![1], "second");
        errs.push("a".into(), vec![0, 5], "first");
        errs.push("c".into(), vec![1, usize::MAX], "third");
        let e = errs.into_errors();
        assert_eq!(e.to_string(), "a: first\nb: second\nc: third");
        assert_eq!(
            ConfigErrors::one("", "whole file").to_string(),
            "whole file"
        );
    }
}
