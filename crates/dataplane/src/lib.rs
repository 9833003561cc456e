//! The lake's data plane: what runs next to the data, free of AWS
//! control-plane types so it can be benchmarked and tested offline.
//!
//! Layout: `flatten` (the NDJSON flattener and its CSV/NDJSON encoders,
//! streaming driver and dead letters), `datagen` (deterministic orders).

pub mod datagen;
pub mod flatten;
