//! The contract between the lake's control plane (`lakectl`) and its data
//! plane (`lake-ingest`, `lake-compact`): the few rules both sides must read
//! the same way, in one small crate so `lakectl` does not compile the data
//! path and the data path carries no control-plane settings.
//!
//! Owns: `schema` (an Avro record schema -> the lake's typed columns, used by
//! the flattener and by the Hive DDL and spec validation), `lease` (the shard
//! lease record in DynamoDB and its scan: written by `lake-ingest`, read by
//! `lakectl status` and `lake-compact --lease-table`), `aws` (the one SDK
//! configuration loader and S3 client of the workspace), `ingest` (the
//! options both planes size and check the same way), `layout` (the lake's
//! partition directories and their keys), `cli` (the usage-error exit code
//! of every binary).
//! Must not: flatten, write files, render templates or call CloudFormation.

pub mod aws;
pub mod cli;
pub mod ingest;
pub mod layout;
pub mod lease;
pub mod schema;
