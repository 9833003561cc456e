//! `lakectl schema`: the JSON Schema of environment specs (for editors).

use serde::Serialize;

use super::Report;

#[derive(Debug, Clone, clap::Args)]
pub struct SchemaArgs {}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SchemaReport(pub serde_json::Value);

impl SchemaArgs {
    pub fn run(&self) -> SchemaReport {
        SchemaReport(crate::spec::json_schema())
    }
}

/// The schema is JSON in either output form.
impl std::fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string_pretty(&self.0).map_err(|_| std::fmt::Error)?;
        writeln!(f, "{text}")
    }
}

impl Report for SchemaReport {}
