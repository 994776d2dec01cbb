//! Diagnostics: what the user sees when something is wrong, pinned to an attribute when a
//! configuration value is at fault. Provider problems are always diagnostics, never gRPC errors.

use std::fmt;

/// One step of an attribute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An attribute or nested block name.
    Attribute(String),
    /// A key of a map.
    Key(String),
    /// An index of a list.
    Index(i64),
}

/// Where in a configuration block a diagnostic points, e.g. `vault.address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    /// The path of a top-level attribute.
    pub fn root(name: &str) -> Self {
        AttributePath(vec![PathStep::Attribute(name.to_owned())])
    }

    /// This path extended by an attribute name.
    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attribute(name.to_owned()));
        self
    }

    /// This path extended by a map key.
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(PathStep::Key(key.to_owned()));
        self
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attribute(name) if i == 0 => f.write_str(name)?,
                PathStep::Attribute(name) => write!(f, ".{name}")?,
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
                PathStep::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation failed.
    Error,
    /// The operation worked but the user should know something.
    Warning,
}

/// A message for the user: a short summary, a detail that says what to do, and optionally the
/// attribute at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line, no trailing period.
    pub summary: String,
    /// What happened and what to do about it.
    pub detail: String,
    /// The configuration attribute at fault, if any.
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    /// An error not tied to an attribute.
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }

    /// A warning not tied to an attribute.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(summary, detail)
        }
    }

    /// The same diagnostic pinned to `path`.
    pub fn at(mut self, path: AttributePath) -> Self {
        self.attribute = Some(path);
        self
    }

    /// The same diagnostic pinned to the top-level attribute `name`.
    pub fn at_attr(self, name: &str) -> Self {
        self.at(AttributePath::root(name))
    }
}

impl From<ccsecrets_core::Problem> for Diagnostic {
    /// The one place a core problem becomes a diagnostic: its field becomes the attribute path.
    fn from(p: ccsecrets_core::Problem) -> Self {
        let d = match p.severity {
            ccsecrets_core::Severity::Error => Diagnostic::error(p.summary, p.detail),
            ccsecrets_core::Severity::Warning => Diagnostic::warning(p.summary, p.detail),
        };
        match p.field.as_ref().and_then(|f| f.steps().split_first()) {
            Some((first, rest)) => d.at(rest
                .iter()
                .fold(AttributePath::root(first), |a, s| a.attr(s))),
            None => d,
        }
    }
}

impl From<ccsecrets_core::Problem> for Diagnostics {
    fn from(p: ccsecrets_core::Problem) -> Self {
        Diagnostics(vec![p.into()])
    }
}

impl From<Vec<ccsecrets_core::Problem>> for Diagnostics {
    fn from(ps: Vec<ccsecrets_core::Problem>) -> Self {
        ps.into_iter().map(Diagnostic::from).collect()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        };
        write!(f, "{level}: {}", self.summary)?;
        if let Some(path) = &self.attribute {
            write!(f, " (at {path})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A list of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// `Err` when any diagnostic is an error, else `Ok`: the shape handlers return.
    pub fn into_result(self) -> Result<Diagnostics, Diagnostics> {
        if self.has_errors() {
            Err(self)
        } else {
            Ok(self)
        }
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_like_terraform_references() {
        let p = AttributePath::root("vault").attr("address");
        assert_eq!(p.to_string(), "vault.address");
        assert_eq!(
            AttributePath::root("data").key("k").to_string(),
            r#"data["k"]"#
        );
    }

    #[test]
    fn has_errors_ignores_warnings() {
        let mut d = Diagnostics::from(Diagnostic::warning("w", ""));
        assert!(!d.has_errors());
        d.push(Diagnostic::error("e", "").at_attr("path"));
        assert!(d.has_errors());
        assert_eq!(d.iter().nth(1).unwrap().to_string(), "Error: e (at path)");
    }
}
