//! `lakectl render ENV --out DIR`: one CloudFormation template per stack
//! and `stacks.json`. The JSON form is `stacks.json` itself.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::{load_and_render, CommandError, Global, Report};
use crate::render::RenderedEnv;

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    pub env: String,
    /// Directory to write the templates and stacks.json to.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct RenderReport {
    pub rendered: RenderedEnv,
    #[serde(skip)]
    pub written: Vec<PathBuf>,
}

impl RenderArgs {
    pub fn run(&self, global: &Global) -> Result<RenderReport, CommandError> {
        let (_, rendered) = load_and_render(global, &self.env)?;
        let written = rendered.write_to(&self.out)?;
        Ok(RenderReport { rendered, written })
    }
}

impl fmt::Display for RenderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for path in &self.written {
            writeln!(f, "wrote {}", path.display())?;
        }
        Ok(())
    }
}

impl Report for RenderReport {}
