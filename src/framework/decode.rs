//! Typed configuration: a [`Value`] read into a `#[derive(Deserialize)]` struct whose field
//! names are the schema's attribute names. Null and unknown values read as absent (`None`);
//! a type mismatch names the attribute. Also: the field names a struct asks for, so a unit
//! test can match them to a schema one to one.

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use secrecy::ExposeSecret;

use super::diag::{AttributePath, Diagnostic};
use super::value::{Number, Value};

/// Reads `value` into `T`; an error names the attribute path that did not fit.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, Diagnostic> {
    let mut path = Vec::new();
    T::deserialize(De {
        v: value,
        path: &mut path,
    })
    .map_err(|e: Error| {
        let d = Diagnostic::error("Invalid configuration", format!("{}.", e.message));
        match e.path.split_first() {
            Some((first, rest)) => d.at(rest
                .iter()
                .fold(AttributePath::root(first), |p, s| p.attr(s))),
            None => d,
        }
    })
}

pub use ccsecrets_core::vocabulary::field_names;

#[derive(Debug)]
struct Error {
    message: String,
    path: Vec<String>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            path: Vec::new(),
        }
    }
}

struct De<'a, 'p> {
    v: &'a Value,
    path: &'p mut Vec<String>,
}

impl De<'_, '_> {
    fn fail(&self, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            path: self.path.clone(),
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let r = match self.v {
            Value::Null | Value::Unknown => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Number(Number::Int(i)) => v.visit_i64(*i),
            Value::Number(Number::Float(f)) => v.visit_f64(*f),
            Value::String(s) => v.visit_str(s),
            Value::Secret(s) => v.visit_str(s.expose_secret()),
            Value::List(items) => v.visit_seq(de::value::SeqDeserializer::new(
                items.iter().map(|i| Wrapped(i.clone())),
            )),
            Value::Map(map) => {
                return v.visit_map(Fields {
                    iter: map.iter(),
                    value: None,
                    path: self.path,
                });
            }
        };
        r.map_err(|e: Error| {
            if e.path.is_empty() {
                self.fail(e.message)
            } else {
                e
            }
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.v {
            Value::Null | Value::Unknown => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// A list element, owned (list elements carry no path: no schema here uses nested lists).
struct Wrapped(Value);

impl<'de> IntoDeserializer<'de, Error> for Wrapped {
    type Deserializer = Owned;
    fn into_deserializer(self) -> Owned {
        Owned(self.0)
    }
}

struct Owned(Value);

impl<'de> de::Deserializer<'de> for Owned {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let mut path = Vec::new();
        De {
            v: &self.0,
            path: &mut path,
        }
        .deserialize_any(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let mut path = Vec::new();
        De {
            v: &self.0,
            path: &mut path,
        }
        .deserialize_option(v)
    }
    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct Fields<'a, 'p> {
    iter: std::collections::btree_map::Iter<'a, String, Value>,
    value: Option<(&'a String, &'a Value)>,
    path: &'p mut Vec<String>,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        // Null and unknown attributes read as absent, so a field's default applies.
        match self
            .iter
            .find(|(_, v)| !matches!(v, Value::Null | Value::Unknown))
        {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((k, v)) = self.value.take() else {
            return Err(de::Error::custom("value without a key"));
        };
        self.path.push(k.clone());
        let r = seed.deserialize(De { v, path: self.path });
        self.path.pop();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        role: Option<String>,
        n: Option<i64>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        path: String,
        flag: Option<bool>,
        inner: Option<Inner>,
        secret: Option<secrecy::SecretString>,
    }

    #[test]
    fn decodes_nulls_unknowns_secrets_and_names_the_failing_path() {
        let v = Value::object([
            ("path", Value::from("p")),
            ("flag", Value::Unknown),
            (
                "inner",
                Value::object([("role", Value::from("r")), ("n", Value::Null)]),
            ),
            ("secret", Value::Secret("s".into())),
            ("computed_extra", Value::Null),
        ]);
        let o: Outer = decode(&v).unwrap();
        assert_eq!((o.path.as_str(), o.flag), ("p", None));
        assert_eq!(o.inner.unwrap().role.as_deref(), Some("r"));
        assert_eq!(o.secret.unwrap().expose_secret(), "s");
        let bad = Value::object([
            ("path", Value::from("p")),
            ("inner", Value::object([("n", Value::from("x"))])),
        ]);
        let e = decode::<Outer>(&bad).unwrap_err();
        assert_eq!(e.attribute.unwrap().to_string(), "inner.n");
        assert_eq!(
            field_names::<Outer>(),
            vec!["path", "flag", "inner", "secret"]
        );
    }
}
