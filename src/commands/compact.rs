//! `lakectl compact ENV`: start a compaction run now (the deployed state
//! machine: an EMR step running lake-compact); with `--wait`, exit 1 if it
//! fails.

use serde::Serialize;

use super::{CommandError, Global, Report, Session};
use crate::operate::compact::{self, Run};

#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    pub env: String,
    /// One partition directory under the lake prefix, e.g.
    /// `ordertime=2019111315` (default: the whole lake).
    #[arg(long)]
    pub partition: Option<String>,
    /// Only register the lake's partitions in the Hive table now (what
    /// the 15-minute schedule does), no compaction.
    #[arg(long)]
    pub register_only: bool,
    /// Wait until the run ends.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CompactReport {
    pub run: Run,
    #[serde(skip)]
    pub waited: bool,
}

impl CompactArgs {
    pub fn run(&self, global: &Global) -> Result<CompactReport, CommandError> {
        // Bad arguments are refused before the spec is read or AWS called.
        compact::check_partition(self.partition.as_deref(), self.register_only)?;
        let session = Session::open(global, &self.env)?;
        let run = session.run(compact::compact(
            &session.aws,
            &session.rendered,
            self.partition.as_deref(),
            self.register_only,
            self.wait,
        ))?;
        Ok(CompactReport {
            run,
            waited: self.wait,
        })
    }
}

impl std::fmt::Display for CompactReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let run = &self.run;
        writeln!(
            f,
            "compaction of {} {}: {}{}",
            if run.partition.is_empty() {
                "the whole lake"
            } else {
                run.partition.as_str()
            },
            run.execution_arn,
            run.status,
            run.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )
    }
}

impl Report for CompactReport {
    fn exit_code(&self) -> u8 {
        u8::from(self.waited && !self.run.succeeded())
    }
}
