//! JSON read the way dockerd reads it. dockerd decodes every body and
//! header with Go's `encoding/json`, whose rules clients rely on without
//! knowing it (the Rust SDK sends `null` for every unset field, some
//! clients send lowercase keys), so every request Berth decodes goes
//! through [`from_slice`] or [`from_value`]:
//!
//! - `null`, and a field left out, is the zero value of whatever it lands
//!   in: `""`, `0`, `false`, an empty list, map or struct, `None`;
//! - an object key matches a struct field exactly or, failing that,
//!   ignoring ASCII case;
//! - unknown keys are ignored (serde's default, kept by every type here);
//! - only the first JSON value of the input counts (`json.Decoder` stops
//!   after it, so trailing bytes are never looked at);
//! - a value of the wrong type is still an error.
//!
//! serde_json has no switch for any of this, hence a small deserializer
//! over `serde_json::Value` that applies the rules at every level and
//! hands everything else to serde's own visitors.

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserializer;
use serde_json::{Map, Value};

pub type Error = serde_json::Error;

/// The first JSON value of `bytes`, decoded with Go's rules. An empty input
/// is `EOF`, as Go says.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    from_value(first_value(bytes)?)
}

/// The first JSON value of `bytes`, whatever follows it.
pub fn first_value(bytes: &[u8]) -> Result<Value, Error> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    match values.next() {
        Some(v) => v,
        None => Err(de::Error::custom("EOF")),
    }
}

/// A request body (or header, or query parameter) decoded with Go's rules;
/// what cannot be decoded is a 400 with the decoder's words, a missing
/// body dockerd's "got EOF while reading request body". An empty input is
/// `T::default()` where a handler allows one ([`body_or_default`]).
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> crate::error::Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(no_body());
    }
    from_slice(bytes)
        .map_err(|e| crate::error::Error::InvalidArgument(format!("invalid JSON: {e}")))
}

/// dockerd's answer to a request whose JSON body is missing.
pub fn no_body() -> crate::error::Error {
    crate::error::Error::InvalidArgument("got EOF while reading request body".into())
}

/// [`body`], with an empty (or all-blank) input meaning "nothing given".
pub fn body_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> crate::error::Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body(bytes)
}

/// `value` decoded with Go's rules.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Go(value))
}

/// A JSON value that deserializes with Go's rules.
struct Go(Value);

impl Go {
    fn visit_any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(Seq(a.into_iter())),
            Value::Object(m) => visitor.visit_map(Fields::new(m)),
        }
    }
}

/// Numbers: null is 0.
macro_rules! zero_when_null {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_u64(0),
                _ => self.visit_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Go {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_any(visitor)
    }

    zero_when_null!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_bool(false),
            _ => self.visit_any(visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_str(""),
            _ => self.visit_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_seq(Seq(Vec::new().into_iter())),
            _ => self.visit_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_map(Fields::new(Map::new())),
            _ => self.visit_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let m = match self.0 {
            Value::Null => Map::new(),
            Value::Object(m) => fold_keys(m, fields),
            other => return Go(other).visit_any(visitor),
        };
        visitor.visit_map(Fields::new(with_every_field(m, fields)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            // A Go string-typed "enum" left null is "".
            Value::Null => visitor.visit_enum(StrDeserializer::<Error>::new("")),
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// A field the input leaves out is its zero value in Go: it is given as
/// `null` here, which every type above reads as its zero value (serde
/// would otherwise refuse a missing field that has no `#[serde(default)]`).
fn with_every_field(mut m: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    for f in fields {
        m.entry(f.to_string()).or_insert(Value::Null);
    }
    m
}

/// Keys renamed to the struct's field names where they match only when
/// case is ignored; an exact match wins over a folded one.
fn fold_keys(m: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut folded = Vec::new();
    for (k, v) in m {
        if fields.contains(&k.as_str()) {
            out.insert(k, v);
        } else if let Some(f) = fields.iter().find(|f| f.eq_ignore_ascii_case(&k)) {
            folded.push((f.to_string(), v));
        } else {
            out.insert(k, v);
        }
    }
    for (k, v) in folded {
        out.entry(k).or_insert(v);
    }
    out
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(Go(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Fields {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Fields {
    fn new(m: Map<String, Value>) -> Fields {
        Fields {
            entries: m.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Go(Value::String(k))).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Go(self.value.take().unwrap_or(Value::Null)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        name: String,
        count: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Outer {
        image: String,
        tty: bool,
        env: Vec<String>,
        labels: HashMap<String, String>,
        inner: Inner,
        maybe: Option<Inner>,
    }

    #[test]
    fn null_is_the_zero_value_at_every_level() {
        let o: Outer = from_slice(
            br#"{"Image":null,"Tty":null,"Env":null,"Labels":{"a":null},"Inner":null,"Maybe":null}"#,
        )
        .unwrap();
        assert_eq!(o.image, "");
        assert!(!o.tty);
        assert!(o.env.is_empty());
        assert_eq!(o.labels["a"], "");
        assert_eq!(
            o.inner,
            Inner {
                name: String::new(),
                count: 0
            }
        );
        assert_eq!(o.maybe, None);
    }

    #[test]
    fn keys_match_fields_ignoring_case_exact_first() {
        let i: Inner = from_slice(br#"{"name":"folded","COUNT":3}"#).unwrap();
        assert_eq!(i.name, "folded");
        assert_eq!(i.count, 3);
        let i: Inner = from_slice(br#"{"name":"folded","Name":"exact","Count":1}"#).unwrap();
        assert_eq!(i.name, "exact");
        // Map keys are data, never folded.
        let m: HashMap<String, i64> = from_slice(br#"{"Name":1,"name":2}"#).unwrap();
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn unknown_keys_and_trailing_bytes_are_ignored() {
        let i: Inner = from_slice(br#"{"Name":"x","Count":2,"Extra":[1]} and more"#).unwrap();
        assert_eq!(i.count, 2);
    }

    #[test]
    fn wrong_types_and_empty_input_are_errors() {
        assert!(from_slice::<Inner>(br#"{"Name":1,"Count":1}"#).is_err());
        assert!(from_slice::<Inner>(br#"{"Name":"x","Count":1.5}"#).is_err());
        assert!(from_slice::<Inner>(br#"{"Name":"x","Count":"1"}"#).is_err());
        assert_eq!(from_slice::<Inner>(b"").unwrap_err().to_string(), "EOF");
    }

    #[test]
    fn models_of_the_api_decode_the_rust_sdk_nulls() {
        let c: bollard_stubs::models::ContainerCreateBody = from_slice(
            br#"{"Image":"busybox","Cmd":null,"HostConfig":{"Binds":null,"RestartPolicy":{"Name":null,"MaximumRetryCount":null}},"NetworkingConfig":null}"#,
        )
        .unwrap();
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert!(c.cmd.is_none());
    }
}
