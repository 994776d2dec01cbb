//! Typed access to a decoded configuration block, so that every problem a resource finds is
//! reported on the attribute path where the user wrote the value.

use secrecy::SecretString;

use super::diag::{AttributePath, Diagnostic};
use super::value::Value;

/// A configuration block (the provider block, a nested block, or a resource's block).
#[derive(Debug, Clone)]
pub struct Config {
    value: Value,
    prefix: AttributePath,
}

impl Config {
    /// Wraps a decoded top-level block.
    pub fn new(value: Value) -> Self {
        Config {
            value,
            prefix: AttributePath::default(),
        }
    }

    /// The raw value of the whole block.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The raw value of attribute `name`.
    pub fn get(&self, name: &str) -> &Value {
        self.value.get(name)
    }

    /// The path of attribute `name` in this block, for diagnostics.
    pub fn path(&self, name: &str) -> AttributePath {
        let mut p = self.prefix.clone();
        p.0.push(super::diag::PathStep::Attribute(name.to_owned()));
        p
    }

    /// True if attribute `name` is (or contains) an unknown value.
    pub fn is_unknown(&self, name: &str) -> bool {
        !self.get(name).is_fully_known()
    }

    /// True if attribute `name` is null.
    pub fn is_null(&self, name: &str) -> bool {
        self.get(name).is_null()
    }

    /// A known, non-null string attribute (empty strings count as unset).
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// A known, non-null, non-empty attribute as a secret (sensitive attributes decode as secrets).
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        use secrecy::ExposeSecret;
        self.get(name)
            .to_secret()
            .filter(|s| !s.expose_secret().is_empty())
    }

    /// A known, non-null boolean attribute.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).as_bool()
    }

    /// A known, non-null whole-number attribute; a fraction is an error on that attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>, Diagnostic> {
        match self.get(name).as_number() {
            None => Ok(None),
            Some(n) => n.as_i64().map(Some).ok_or_else(|| {
                Diagnostic::error(
                    format!("Invalid {name}"),
                    format!("`{name}` must be a whole number."),
                )
                .at(self.path(name))
            }),
        }
    }

    /// The nested single block `name`, if it is present and known.
    pub fn block(&self, name: &str) -> Option<Config> {
        match self.get(name) {
            v @ Value::Map(_) => Some(Config {
                value: v.clone(),
                prefix: self.path(name),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::value::Number;

    #[test]
    fn nested_block_paths_include_the_block_name() {
        let cfg = Config::new(Value::object([(
            "vault",
            Value::object([("address", Value::from("x"))]),
        )]));
        let vault = cfg.block("vault").unwrap();
        assert_eq!(vault.path("address").to_string(), "vault.address");
        assert_eq!(vault.string("address").as_deref(), Some("x"));
        assert!(cfg.block("missing").is_none());
    }

    #[test]
    fn empty_strings_count_as_unset_and_fractions_are_errors() {
        let cfg = Config::new(Value::object([
            ("s", Value::from("")),
            ("n", Value::Number(Number::Float(1.5))),
            ("m", Value::from(2)),
        ]));
        assert_eq!(cfg.string("s"), None);
        assert!(cfg.secret("s").is_none());
        assert_eq!(cfg.int("m"), Ok(Some(2)));
        let err = cfg.int("n").unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "n");
    }
}
