//! lakectl: typed environment specs rendered into CloudFormation stacks,
//! deployed, inspected and operated.
//!
//! Rooms, in the order data flows: `spec` (model, loading, validation) ->
//! `render` (templates -> stacks, the stack graph, the Hive DDL) -> `plan`
//! (the differ behind `diff`) -> `deploy` (what changes stacks: up, down,
//! change sets, the watcher, the scheduler) with `publish` (artifacts to
//! S3); `inspect` (read-only: status, health, preflight, drift) and
//! `operate` (starting work: compaction) read what was deployed; `aws`
//! connects (clients, account guard, `AwsError`); `commands` holds one
//! module per CLI command (arguments, validation, a report printed as text
//! or JSON). `main.rs` only parses and dispatches.

pub mod aws;
pub mod commands;
pub mod deploy;
pub mod inspect;
pub mod operate;
pub mod plan;
pub mod publish;
pub mod render;
pub mod spec;
