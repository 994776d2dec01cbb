//! The one error (and warning) shape every front end renders: a short summary, a detail that
//! says what to do, and the setting at fault, so Terraform can point at an attribute and the
//! command line at a file and line.

use std::fmt;

/// The setting at fault: a path of attribute and block names from the root of a resource's
/// configuration (`path`, `region`) or of the provider's settings (`vault.auth_jwt.role`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field(Vec<String>);

impl Field {
    /// A top-level attribute or block.
    pub fn root(name: &str) -> Self {
        Field(vec![name.to_owned()])
    }

    /// A nested attribute.
    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(name.to_owned());
        self
    }

    /// The names from the root.
    pub fn steps(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Whether a problem stops the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation failed.
    Error,
    /// The operation succeeded, but the user should know.
    Warning,
}

/// A problem for the user. Never holds a secret value: it names paths, keys, versions,
/// endpoints and the platform's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// One line, no final period.
    pub summary: String,
    /// What happened and what to do about it.
    pub detail: String,
    /// The setting at fault, if one is.
    pub field: Option<Field>,
}

impl Problem {
    /// An error.
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            field: None,
        }
    }

    /// A warning.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(summary, detail)
        }
    }

    /// Pins the problem to a setting.
    pub fn at(mut self, field: Field) -> Self {
        self.field = Some(field);
        self
    }

    /// Pins the problem to a top-level attribute.
    pub fn at_attr(self, name: &str) -> Self {
        self.at(Field::root(name))
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.summary, self.detail)
    }
}

impl std::error::Error for Problem {}
