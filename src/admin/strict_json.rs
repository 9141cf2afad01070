//! Admin request bodies parsed strictly: `serde_json` keeps the last of a
//! key named twice (`{"enabled": false, "enabled": true}` would enable), so
//! an object that names a key twice, at any depth, is refused instead. The
//! parsing is still `serde_json`'s (with its nesting limit); only the
//! building of objects is this file's.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

/// A JSON document whose objects name each key once.
pub fn from_slice(body: &[u8]) -> serde_json::Result<Json> {
    serde_json::from_slice::<Strict>(body).map(|s| s.0)
}

struct Strict(Json);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "key {} appears twice",
                    crate::config::read::quote(&key)
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_is_refused_at_any_depth() {
        let e = from_slice(br#"{"enabled": false, "enabled": true}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(r#"key "enabled" appears twice at line 1"#),
            "{e}"
        );
        let e = from_slice(br#"{"a": [{"x": 1, "y": 2, "x": 3}]}"#).unwrap_err();
        assert!(e.to_string().contains(r#"key "x" appears twice"#), "{e}");
        // Same key in different objects is fine; values are serde_json's.
        let body = br#"{"a": {"x": 1}, "b": {"x": -2.5, "n": null, "s": "t", "l": [true, 18446744073709551615]}}"#;
        assert_eq!(
            from_slice(body).unwrap(),
            serde_json::from_slice::<Json>(body).unwrap()
        );
        // serde_json's nesting limit still holds.
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(from_slice(deep.as_bytes()).is_err());
        let fine = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(from_slice(fine.as_bytes()).is_ok());
    }
}
