//! The lake's data plane: what runs next to the data, free of AWS
//! control-plane types so it can be benchmarked and tested offline.
//!
//! Layout: `flatten` (the NDJSON flattener and its CSV/NDJSON encoders,
//! streaming driver and dead letters), `datagen` (deterministic orders),
//! `compact` (the small-file compactor: planning, merging, the crash-safe
//! protocol), `ingest` (record -> flatten -> partition -> rolling files, and
//! `backfill` of raw-archive objects), `store` (local directories and S3
//! behind one interface).

pub mod compact;
pub mod datagen;
pub mod flatten;
mod hash;
pub mod ingest;
pub mod layout;
pub mod parquet_encoding;
pub mod store;
