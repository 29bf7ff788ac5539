//! The two kinds of mapping error. `MappingError`: the file itself is wrong (found at load time,
//! `file:line:column: what`). `MapError`: a message does not fit the mapping (found at run time:
//! which source value, which rule, where the rule is written, and why).

use super::plan::Loc;
use std::path::PathBuf;

/// A mistake in a mapping file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct MappingError {
    /// Where.
    pub loc: Loc,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl MappingError {
    /// An error at `file:line:column`.
    pub fn at(file: &std::path::Path, line: u32, column: u32, message: impl Into<String>) -> Self {
        MappingError {
            loc: Loc {
                file: PathBuf::from(file),
                line,
                column,
            },
            message: message.into(),
        }
    }
}

/// An input that a mapping cannot translate.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message} (rule `{rule}` in {loc})", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct MapError {
    /// The source location, e.g. "`PID-7` (segment 3)" or "record 2, column 14 (line 3)".
    pub at: Option<String>,
    /// The rule's target key as written.
    pub rule: String,
    /// Where the rule is written.
    pub loc: Loc,
    /// Why.
    pub message: String,
}
