//! `lakectl compact ENV [DATASET]`: start compaction runs now (the deployed
//! state machine: an EMR step running lake-compact), one per dataset; with
//! `--wait`, exit 1 if any fails.

use serde::Serialize;

use super::{CommandError, Global, Report, Session};
use crate::operate::compact::{self, Run};

#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    pub env: String,
    /// The dataset to compact (default: every dataset whose `compaction`
    /// is not `off`, one run each).
    pub dataset: Option<String>,
    /// One partition directory of the dataset, e.g. `dt=2024-05-01/hr=13`,
    /// or a day of an hourly dataset, `dt=2024-05-01` (default: all of it).
    #[arg(long)]
    pub partition: Option<String>,
    /// Only register the lake's partitions in every table now (what the
    /// 15-minute schedule does), no compaction.
    #[arg(long)]
    pub register_only: bool,
    /// Wait until the runs end.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Serialize)]
pub struct CompactReport {
    pub runs: Vec<Run>,
    #[serde(skip)]
    pub waited: bool,
}

impl CompactArgs {
    pub fn run(&self, global: &Global) -> Result<CompactReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        // Bad arguments are refused before AWS is asked to do anything.
        let request = compact::request(
            &session.spec,
            self.dataset.as_deref(),
            self.partition.as_deref(),
            self.register_only,
        )?;
        let runs = session.run(compact::compact(
            &session.aws,
            &session.rendered,
            &request,
            self.wait,
        ))?;
        Ok(CompactReport {
            runs,
            waited: self.wait,
        })
    }
}

impl std::fmt::Display for CompactReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for run in &self.runs {
            let what = match (run.dataset.as_str(), run.partition.as_str()) {
                ("all", _) => "partition registration of every table".to_string(),
                (d, "") => format!("compaction of dataset {d}"),
                (d, p) => format!("compaction of dataset {d}, partition {p}"),
            };
            writeln!(
                f,
                "{what} {}: {}{}",
                run.execution_arn,
                run.status,
                run.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

impl Report for CompactReport {
    fn exit_code(&self) -> u8 {
        u8::from(self.waited && self.runs.iter().any(|r| !r.succeeded()))
    }
}
