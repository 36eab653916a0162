//! JSON request bodies read strictly: a key given twice, or a list where the API takes none,
//! is refused and named, never resolved silently.
//!
//! `serde_json` keeps the last of repeated keys, so `{"queue":"deliver","queue":"notify_email"}`
//! acted on the second queue while a proxy or log showing the first saw another request; and
//! serde's derived structs accept a list for an object (`"settings": [false, "off", 3, "UTC"]`
//! changed four settings by position). No request body of this API holds a list.
//!
//! A body holds at most [`MAX_VALUES`] values: no request of the API has a tenth as many, and
//! a mebibyte of keys (`{"k0":0,"k1":0,…}`, 90,000 of them) was read whole, and each key checked
//! against the others, before any limit of the route applied.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::{Cell, RefCell};
use std::fmt;

/// The most values (objects, strings, numbers, …, nested or not) a body may hold.
pub const MAX_VALUES: usize = 256;

/// Why a body that is valid JSON was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key at this path (dotted, `settings.digest_hour`) appears twice in its object.
    Twice(String),
    /// A list at this path (empty: the body itself).
    List(String),
    /// More than [`MAX_VALUES`] values.
    TooMany,
}

/// What reading a body found wrong.
#[derive(Debug)]
pub enum Error {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON, but not a shape any body of the API has.
    Refused(Refusal),
}

/// Reads `raw` as one JSON value, refusing repeated keys and lists.
pub fn parse(raw: &[u8]) -> Result<Value, Error> {
    let refusal = RefCell::new(None);
    let left = Cell::new(MAX_VALUES);
    let mut reader = serde_json::Deserializer::from_slice(raw);
    let read = Strict {
        path: String::new(),
        refusal: &refusal,
        left: &left,
    }
    .deserialize(&mut reader)
    .and_then(|value| reader.end().map(|()| value));
    match (read, refusal.into_inner()) {
        (_, Some(refusal)) => Err(Error::Refused(refusal)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(Error::Syntax(e)),
    }
}

/// One value at `path`; the first refusal met is kept in `refusal`, and `left` counts down
/// the values the body may still hold.
struct Strict<'a> {
    path: String,
    refusal: &'a RefCell<Option<Refusal>>,
    left: &'a Cell<usize>,
}

impl Strict<'_> {
    fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        self.refusal.borrow_mut().get_or_insert(refusal);
        E::custom("refused")
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.left.get().checked_sub(1) {
            Some(left) => self.left.set(left),
            None => return Err(self.refuse(Refusal::TooMany)),
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so every number read is finite.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(self.refuse(Refusal::List(self.path.clone())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if object.contains_key(&key) {
                return Err(self.refuse(Refusal::Twice(path)));
            }
            let value = map.next_value_seed(Strict {
                path,
                refusal: self.refusal,
                left: self.left,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str) -> Refusal {
        match parse(raw.as_bytes()) {
            Err(Error::Refused(refusal)) => refusal,
            other => panic!("{raw} was not refused: {other:?}"),
        }
    }

    #[test]
    fn objects_of_values_read_as_serde_json_reads_them() {
        let raw = r#"{"a": 1, "b": {"c": "x", "d": null, "e": true, "f": -2.5, "g": 18446744073709551615}}"#;
        let expected: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(parse(raw.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn a_key_given_twice_is_named_by_its_path() {
        assert_eq!(refusal(r#"{"q": 1, "q": 2}"#), Refusal::Twice("q".into()));
        assert_eq!(
            refusal(r#"{"settings": {"digest_hour": 9, "digest_hour": 23}}"#),
            Refusal::Twice("settings.digest_hour".into())
        );
    }

    #[test]
    fn lists_are_refused_wherever_they_are() {
        assert_eq!(refusal("[1, 2]"), Refusal::List(String::new()));
        assert_eq!(
            refusal(r#"{"settings": [false, "off"]}"#),
            Refusal::List("settings".into())
        );
        assert_eq!(refusal(r#"{"a": {"b": []}}"#), Refusal::List("a.b".into()));
    }

    #[test]
    fn a_body_of_more_values_than_any_request_holds_is_refused_as_it_is_read() {
        let keys = |n: usize| {
            let fields: Vec<String> = (0..n).map(|i| format!(r#""k{i}":0"#)).collect();
            format!("{{{}}}", fields.join(","))
        };
        // The body itself is one value.
        assert!(parse(keys(MAX_VALUES - 1).as_bytes()).is_ok());
        assert_eq!(refusal(&keys(MAX_VALUES)), Refusal::TooMany);
        assert_eq!(refusal(&keys(90_000)), Refusal::TooMany);
        let deep = format!("{}0{}", r#"{"a":"#.repeat(100), "}".repeat(100));
        assert!(
            parse(deep.as_bytes()).is_ok(),
            "nesting alone is bounded by depth"
        );
    }

    #[test]
    fn broken_or_trailing_text_is_a_syntax_error() {
        for raw in [r#"{"a": "#, "not json", r#"{"a": 1} x"#, ""] {
            assert!(
                matches!(parse(raw.as_bytes()), Err(Error::Syntax(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn nesting_stays_bounded_by_serde_jsons_recursion_limit() {
        let deep = format!("{}{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert!(matches!(parse(deep.as_bytes()), Err(Error::Syntax(_))));
    }
}
