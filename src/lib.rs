//! lakectl: typed environment specs rendered into CloudFormation stacks.
//!
//! Layout: `spec` (model, loading, validation), `render` (templates ->
//! stacks, the stack graph). The CLI in `main.rs` only parses and dispatches.

pub mod render;
pub mod spec;
