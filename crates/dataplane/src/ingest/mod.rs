//! The ingest pipeline: record -> flatten -> partition (the record's own
//! time, or its arrival time) -> rolling per-partition files -> the lake;
//! failures to `<sink>/_errors/` with their reason and original bytes.
//!
//! Rooms: `config` (the fleet's datasets file), `pipeline` (the per-record path: flatten, check, partition,
//! dead-letter), `partitioner` (record time -> partition directory),
//! `writer` (rolling per-partition files, published atomically) and
//! `parquet` (its Parquet files), `consumer` (`lake-ingest run`: the
//! Kinesis consumer), `lease` (its conditional lease writes), `fence` (a
//! lease as a fence on every lake write), `kpl` (KPL
//! de-aggregation), `backfill` (raw-archive objects through the pipeline),
//! `retry` (which AWS errors retrying fixes, and the back-off).
//!
//! Owns: nothing but the map and `trim_ws`. Must not: hold logic a room
//! could own.

pub mod backfill;
pub mod config;
pub mod consumer;
pub mod fence;
pub mod kpl;
pub mod lease;
pub mod parquet;
pub mod partitioner;
pub mod pipeline;
pub mod retry;
pub mod writer;

pub use pipeline::{Counts, LakeFormat, PartitionBy, Pipeline};

/// `s` without leading and trailing JSON whitespace.
pub(crate) fn trim_ws(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}
