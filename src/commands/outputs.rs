//! `lakectl outputs ENV`: the outputs of every deployed stack.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CommandError, Global, Report, Session};
use crate::inspect::status;

#[derive(Debug, Clone, clap::Args)]
pub struct OutputsArgs {
    pub env: String,
}

/// Stack id -> output name -> value.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct OutputsReport(pub BTreeMap<String, BTreeMap<String, String>>);

impl OutputsArgs {
    pub fn run(&self, global: &Global) -> Result<OutputsReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        let outputs = session.run(status::outputs(&session.aws, &session.rendered))?;
        Ok(OutputsReport(outputs))
    }
}

impl std::fmt::Display for OutputsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (stack, values) in &self.0 {
            for (key, value) in values {
                writeln!(f, "{stack}.{key} = {value}")?;
            }
        }
        Ok(())
    }
}

impl Report for OutputsReport {}
