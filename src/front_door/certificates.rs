//! Which of a listener's certificates answers a TLS handshake: the one whose
//! names (its SAN DNS names) include the server name the client sent (SNI),
//! a wildcard `*.example.com` matching exactly one label (`a.example.com`,
//! not `example.com` nor `a.b.example.com`); the first certificate when the
//! client sends no name or no certificate names it. An exact name wins over
//! a wildcard; between certificates naming the same name, the earlier wins.
//! Pure: names in, an index out ([`super::tls`] reads the files).

use std::collections::HashMap;

/// The names of a listener's certificates, to the certificate's index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameIndex {
    exact: HashMap<String, usize>,
    /// `*.example.com` is kept as `example.com`.
    wildcard: HashMap<String, usize>,
}

impl NameIndex {
    /// `names[i]`: the DNS names of certificate `i`.
    pub fn new<S: AsRef<str>>(names: &[Vec<S>]) -> NameIndex {
        let mut index = NameIndex::default();
        for (i, of_one) in names.iter().enumerate() {
            for name in of_one {
                let name = normal(name.as_ref());
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut index.wildcard, parent.to_string()),
                    None => (&mut index.exact, name),
                };
                map.entry(key).or_insert(i);
            }
        }
        index
    }

    /// The index of the certificate for `server_name` (the client's SNI):
    /// 0 when there is none or no certificate names it.
    pub fn pick(&self, server_name: Option<&str>) -> usize {
        let Some(name) = server_name.map(normal) else {
            return 0;
        };
        if let Some(&i) = self.exact.get(&name) {
            return i;
        }
        name.split_once('.')
            .filter(|(label, parent)| !label.is_empty() && !parent.is_empty())
            .and_then(|(_, parent)| self.wildcard.get(parent).copied())
            .unwrap_or(0)
    }
}

/// DNS names compare without case and without a final dot.
fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> NameIndex {
        NameIndex::new(&[
            vec!["a.test"],
            vec!["b.test", "www.b.test"],
            vec!["*.c.test", "C.test"],
            vec!["b.test", "*.b.test"],
        ])
    }

    #[test]
    fn the_certificate_naming_the_server_name_answers() {
        let i = index();
        assert_eq!(i.pick(Some("a.test")), 0);
        assert_eq!(i.pick(Some("b.test")), 1);
        assert_eq!(i.pick(Some("www.b.test")), 1);
        assert_eq!(i.pick(Some("c.test")), 2);
    }

    #[test]
    fn names_compare_without_case_or_final_dot() {
        let i = index();
        assert_eq!(i.pick(Some("B.Test")), 1);
        assert_eq!(i.pick(Some("b.test.")), 1);
        assert_eq!(i.pick(Some("c.TEST")), 2);
    }

    #[test]
    fn a_wildcard_matches_one_label() {
        let i = index();
        assert_eq!(i.pick(Some("x.c.test")), 2);
        assert_eq!(i.pick(Some("x.y.c.test")), 0);
        assert_eq!(i.pick(Some(".c.test")), 0);
        // An exact name wins over a wildcard, wherever the wildcard is.
        assert_eq!(i.pick(Some("www.b.test")), 1);
        assert_eq!(i.pick(Some("api.b.test")), 3);
    }

    #[test]
    fn no_name_or_an_unknown_name_gets_the_first() {
        let i = index();
        assert_eq!(i.pick(None), 0);
        assert_eq!(i.pick(Some("d.test")), 0);
        assert_eq!(i.pick(Some("")), 0);
        assert_eq!(NameIndex::new::<&str>(&[]).pick(Some("a.test")), 0);
    }

    #[test]
    fn the_earlier_certificate_keeps_a_shared_name() {
        let i = NameIndex::new(&[vec!["x.test"], vec!["x.test", "*.x.test"], vec!["*.x.test"]]);
        assert_eq!(i.pick(Some("x.test")), 0);
        assert_eq!(i.pick(Some("a.x.test")), 1);
    }
}
