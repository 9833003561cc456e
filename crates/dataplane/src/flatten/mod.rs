//! The flattener: one JSON object (a record) in, one flat record out.
//!
//! Contract (DESIGN.md, `lake-ingest flatten`): nested objects become keys
//! joined by the separator, in input order; an empty object yields no key;
//! every other value passes through byte-exact (NDJSON) or decoded (CSV); a
//! JsonConverter envelope (`schema` + `payload` only) is unwrapped; a record
//! that is not a JSON object, is not UTF-8, nests deeper than the limit or
//! whose flattened keys collide is rejected with a reason.
//!
//! Owns: the record-level walk, key joining, collision detection and the
//! NDJSON and CSV encodings of one record. Must not: do I/O or count lines;
//! `stream` drives it over files, and the ingest consumer calls it on
//! buffers. No allocation per record in the steady state: scratch buffers
//! are reused and output is appended to the caller's buffer.

mod columns;
mod config;
pub mod csv;
pub mod dead_letter;
mod envelope;
mod error;
mod flattener;
mod keys;
mod ndjson;
pub mod scan;
mod shape;
mod sink;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod typed;

pub use config::{FlattenConfig, DEFAULT_MAX_DEPTH};
pub use error::ErrorKind;
pub use flattener::Flattener;
pub use scan::ValueKind;
pub(crate) use sink::{Key, Leaf, Sink};

pub use self::csv::CsvLayout;
pub use self::typed::TypedLayout;
