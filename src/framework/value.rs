//! Terraform values as the framework sees them: known, null or unknown, with secrets kept
//! in a redacting wrapper from the moment they are decoded until they are encoded again.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A number as Terraform sends it. Integers stay exact; anything else is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A whole number that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
}

impl Number {
    /// The number as an `i64` if it is whole and in range.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f)
                if f.fract() == 0.0 && f >= i64::MIN as f64 && f <= i64::MAX as f64 =>
            {
                Some(f as i64)
            }
            Number::Float(_) => None,
        }
    }
}

/// One Terraform value.
///
/// `Secret` holds a string that must never be printed: it is decoded for attributes the schema
/// marks sensitive and produced by resources for their sensitive results. It encodes exactly
/// like `String` on the wire.
#[derive(Clone, Default)]
pub enum Value {
    /// The value is null (absent in configuration).
    #[default]
    Null,
    /// The value is not known yet (only during validation and planning).
    Unknown,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A plain string.
    String(String),
    /// A string that must not be logged or displayed.
    Secret(SecretString),
    /// A list, set or tuple.
    List(Vec<Value>),
    /// A map or object.
    Map(BTreeMap<String, Value>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Unknown => f.write_str("(unknown)"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(Number::Int(i)) => write!(f, "{i}"),
            Value::Number(Number::Float(x)) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Secret(_) => f.write_str("(sensitive)"),
            Value::List(items) => f.debug_list().entries(items).finish(),
            Value::Map(map) => f.debug_map().entries(map).finish(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) | (Value::Unknown, Value::Unknown) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Secret(a), Value::Secret(b)) => a.expose_secret() == b.expose_secret(),
            (Value::String(a), Value::Secret(b)) | (Value::Secret(b), Value::String(a)) => {
                a == b.expose_secret()
            }
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True if this value or anything inside it is unknown.
    pub fn is_fully_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) => items.iter().all(Value::is_fully_known),
            Value::Map(map) => map.values().all(Value::is_fully_known),
            _ => true,
        }
    }

    /// The attribute `name` of an object; `Null` when this is not a known object or it has no
    /// such attribute, `Unknown` when the whole object is unknown.
    pub fn get(&self, name: &str) -> &Value {
        const NULL: &Value = &Value::Null;
        const UNKNOWN: &Value = &Value::Unknown;
        match self {
            Value::Map(map) => map.get(name).unwrap_or(NULL),
            Value::Unknown => UNKNOWN,
            _ => NULL,
        }
    }

    /// A plain (non-secret) known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A known string, plain or secret, as a secret.
    pub fn to_secret(&self) -> Option<SecretString> {
        match self {
            Value::String(s) => Some(SecretString::from(s.as_str())),
            Value::Secret(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A known boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A known number.
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Builds an object from `(name, value)` pairs.
    pub fn object<I, K>(pairs: I) -> Value
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string, or null when `None`.
    pub fn opt_string(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Null, |s| Value::String(s.into()))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Number(Number::Int(i))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<SecretString> for Value {
    fn from(s: SecretString) -> Self {
        Value::Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let v = Value::object([
            ("token", Value::Secret(SecretString::from("hunter2"))),
            ("name", Value::from("visible")),
        ]);
        let printed = format!("{v:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("visible"), "{printed}");
        assert!(printed.contains("(sensitive)"), "{printed}");
    }

    #[test]
    fn get_on_unknown_object_is_unknown_and_on_null_is_null() {
        assert!(matches!(Value::Unknown.get("a"), Value::Unknown));
        assert!(Value::Null.get("a").is_null());
        let obj = Value::object([("a", Value::from(1))]);
        assert_eq!(obj.get("a"), &Value::from(1));
        assert!(obj.get("b").is_null());
    }

    #[test]
    fn fully_known_looks_inside_collections() {
        let v = Value::object([("a", Value::List(vec![Value::from("x"), Value::Unknown]))]);
        assert!(!v.is_fully_known());
        assert!(Value::object([("a", Value::Null)]).is_fully_known());
    }

    #[test]
    fn number_as_i64() {
        assert_eq!(Number::Int(3).as_i64(), Some(3));
        assert_eq!(Number::Float(3.0).as_i64(), Some(3));
        assert_eq!(Number::Float(3.5).as_i64(), None);
        assert_eq!(Number::Float(f64::INFINITY).as_i64(), None);
    }
}
