//! Non-fatal findings (notes and warnings) reported with a rendering, as data.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something MCO does silently that the reader should know (a dropped payload block, …).
    Note,
    /// A configuration that renders but does not do what it most likely means.
    Warning,
}

/// One finding, naming the object and field it is about, with a short fix when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub severity: Severity,
    /// A stable identifier of the rule, e.g. `never-contact-idms-only`.
    pub code: String,
    /// `Kind/name`, when the finding is about one object.
    pub object: Option<String>,
    /// Field path inside that object, e.g. `spec.imageDigestMirrors[0].source`.
    pub field: Option<String>,
    pub message: String,
    pub fix: Option<String>,
}

impl Note {
    pub(crate) fn new(severity: Severity, code: &str, message: impl Into<String>) -> Note {
        Note {
            severity,
            code: code.to_string(),
            object: None,
            field: None,
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn warning(code: &str, message: impl Into<String>) -> Note {
        Note::new(Severity::Warning, code, message)
    }

    pub(crate) fn info(code: &str, message: impl Into<String>) -> Note {
        Note::new(Severity::Note, code, message)
    }

    pub(crate) fn at(mut self, object: impl fmt::Display, field: impl Into<String>) -> Note {
        self.object = Some(object.to_string());
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Note {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Note {
    /// `warning: Kind/name: field: message` and, on a second line, `  fix: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: ")?;
        if let Some(o) = &self.object {
            write!(f, "{o}: ")?;
        }
        if let Some(p) = &self.field {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}
