//! `lakectl down ENV`: delete every stack of the environment, dependents
//! first.

use std::sync::Arc;

use serde::Serialize;

use super::{confirm, CommandError, Global, Output, Report, Session};
use crate::deploy::down::{self, DownOptions, OnDeleteFailed};
use crate::deploy::progress::Progress;

#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    pub env: String,
    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,
    /// Delete even a protected environment (its termination protection is lifted).
    #[arg(long)]
    pub allow_protected: bool,
    /// A stack CloudFormation cannot delete completely (DELETE_FAILED: a
    /// bucket with objects, a group in use): delete it again and leave
    /// those resources in place (named in the output).
    #[arg(long)]
    pub retain_failed: bool,
    /// Stacks deleted at the same time (independent ones only).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Serialize)]
pub struct DownReport {
    #[serde(skip)]
    pub environment: String,
    pub deleted: Vec<String>,
}

impl DownArgs {
    pub fn run(&self, global: &Global) -> Result<DownReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        let options = DownOptions {
            yes: self.yes,
            on_failed: if self.retain_failed {
                OnDeleteFailed::Retain
            } else {
                OnDeleteFailed::Stop
            },
            allow_protected: self.allow_protected,
            concurrency: usize::from(self.concurrency),
        };
        let Session {
            runtime,
            aws,
            rendered,
            spec,
            ..
        } = session;
        let protected = down::protected(&rendered, spec.protection.deletion_protection);
        let progress = Arc::new(Progress::new(global.output == Output::Json).quiet(global.quiet));
        let deleted = runtime.block_on(down::down(
            aws,
            &rendered,
            &options,
            protected,
            progress,
            |names| {
                confirm(
                    &format!("This deletes {}.", names.join(", ")),
                    &rendered.environment,
                )
            },
        ))?;
        Ok(DownReport {
            environment: self.env.clone(),
            deleted,
        })
    }
}

impl std::fmt::Display for DownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} stacks deleted",
            self.environment,
            self.deleted.len()
        )
    }
}

impl Report for DownReport {}
