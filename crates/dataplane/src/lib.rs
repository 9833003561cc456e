//! The lake's data plane: what runs next to the data, free of AWS
//! control-plane types so it can be benchmarked and tested offline.
//!
//! Rooms: `flatten` (the NDJSON flattener: the walk, its sinks for NDJSON,
//! CSV and typed rows, the streaming driver, dead letters), `ingest`
//! (the per-record pipeline, partitioner, rolling writers, Parquet files,
//! the Kinesis consumer and its leases, KPL, backfill), `compact` (the
//! small-file compactor: planning, merging, the crash-safe protocol),
//! `store` (local directories and S3 behind one interface), `layout` (which
//! lake objects are data), `parquet_encoding` (what ingest and compaction
//! write alike) and `string_dictionary` (the string column chunks both
//! encode themselves), `datagen` (deterministic orders). What lakectl reads the
//! same way (schema -> columns, the lease record, the AWS config) is the
//! `lake-contract` crate.

pub mod compact;
pub mod datagen;
pub mod flatten;
mod hash;
pub mod ingest;
pub mod layout;
pub mod parquet_encoding;
pub mod store;
pub mod string_dictionary;
