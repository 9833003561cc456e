//! Why a record could not be flattened: the reasons dead letters carry.
//!
//! Owns: `ErrorKind` and its wording. Must not: decide what happens to a
//! rejected record (the callers route it to dead letters).

use std::fmt;

use lake_contract::schema::ColumnType;

/// Why a record could not be flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Byte offset of the string holding the invalid sequence.
    NotUtf8 {
        at: usize,
    },
    /// `what` was expected at byte `at`.
    Syntax {
        what: &'static str,
        at: usize,
    },
    /// A valid JSON value that is not an object (`an array`, `a string`, …).
    NotObject {
        found: &'static str,
    },
    TooDeep {
        limit: usize,
    },
    /// Two fields flatten to the same key (decoded).
    Collision {
        key: String,
    },
    /// An envelope whose payload is not an object.
    EnvelopePayload {
        found: &'static str,
    },
    /// A fixed-column output (CSV, typed columns): a key that is not one
    /// of the columns (`of` says which: "the CSV header", "the schema").
    UnknownColumn {
        key: String,
        of: &'static str,
    },
    /// A typed-column output: a value that does not fit its column's type.
    Type {
        key: String,
        column: ColumnType,
        /// The value's JSON text (shortened when long).
        value: String,
    },
    /// Bytes after the closing brace.
    Trailing {
        at: usize,
    },
    /// CSV without a schema: a record with no fields cannot set the header.
    NoColumns,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotUtf8 { at } => {
                write!(f, "not valid UTF-8 (in the string at column {})", at + 1)
            }
            ErrorKind::Syntax { what, at } => {
                write!(f, "invalid JSON at column {}: expected {what}", at + 1)
            }
            ErrorKind::NotObject { found } => write!(f, "not a JSON object: {found}"),
            ErrorKind::TooDeep { limit } => write!(f, "nested deeper than {limit} levels"),
            ErrorKind::Collision { key } => write!(f, "flattened key `{key}` occurs twice"),
            ErrorKind::EnvelopePayload { found } => {
                write!(
                    f,
                    "JsonConverter envelope whose payload is {found}, not an object"
                )
            }
            ErrorKind::UnknownColumn { key, of } => {
                write!(f, "key `{key}` is not a column of {of}")
            }
            ErrorKind::Type { key, column, value } => {
                write!(
                    f,
                    "column `{key}` is {column:?} in the schema; the record has {value}"
                )
            }
            ErrorKind::Trailing { at } => write!(
                f,
                "invalid JSON at column {}: text after the object",
                at + 1
            ),
            ErrorKind::NoColumns => write!(
                f,
                "a record with no fields cannot set the CSV header (pass --schema)"
            ),
        }
    }
}

impl std::error::Error for ErrorKind {}
