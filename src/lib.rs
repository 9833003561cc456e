//! lakectl: typed environment specs rendered into CloudFormation stacks.
//!
//! Layout: `spec` (model, loading, validation), `render` (templates ->
//! stacks, the stack graph), `plan` (the differ behind `lakectl diff`). The CLI in `main.rs` only parses and dispatches.

pub mod deploy;
pub mod plan;
pub mod publish;
pub mod render;
pub mod spec;
