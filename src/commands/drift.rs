//! `lakectl drift ENV`: CloudFormation drift detection on every stack, and
//! what was changed outside CloudFormation (expected -> actual).

use serde::Serialize;

use super::{detailed, CommandError, Global, Report, Session};
use crate::inspect::drift::{self, StackDrift};

#[derive(Debug, Clone, clap::Args)]
pub struct DriftArgs {
    pub env: String,
    /// Exit 0 when nothing drifted, 2 when something did (1 on errors).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Serialize)]
pub struct DriftReport {
    pub environment: String,
    pub stacks: Vec<StackDrift>,
    #[serde(skip)]
    pub detailed_exitcode: bool,
}

impl DriftArgs {
    pub fn run(&self, global: &Global) -> Result<DriftReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        let stacks = session.run(drift::drift(&session.aws, &session.rendered))?;
        Ok(DriftReport {
            environment: self.env.clone(),
            stacks,
            detailed_exitcode: self.detailed_exitcode,
        })
    }
}

impl std::fmt::Display for DriftReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&drift::text(&self.stacks))
    }
}

impl Report for DriftReport {
    fn exit_code(&self) -> u8 {
        detailed(
            self.detailed_exitcode,
            self.stacks.iter().any(|d| d.drifted()),
        )
    }
}
