//! `lakectl preflight ENV`: before the first `up`, check with read-only
//! calls what would make a deploy fail half-way; findings as
//! file:line:col. Exit 1 on any error.

use super::{CommandError, Global, Report, Session};
use crate::inspect::preflight;
use crate::spec::Severity;

#[derive(Debug, Clone, clap::Args)]
pub struct PreflightArgs {
    pub env: String,
}

impl PreflightArgs {
    pub fn run(&self, global: &Global) -> Result<preflight::Report, CommandError> {
        let session = Session::open(global, &self.env)?;
        Ok(session.run(preflight::preflight(
            &session.aws,
            &session.spec,
            &session.locator,
            &session.rendered.region,
            &session.rendered.files,
        )))
    }
}

impl Report for preflight::Report {
    fn exit_code(&self) -> u8 {
        u8::from(self.count(Severity::Error) > 0)
    }
}
