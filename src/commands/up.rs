//! `lakectl up ENV`: preflight, publish the artifacts, then every stack in
//! dependency order through change sets, with approval where the plan
//! needs it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{confirm, CommandError, Global, Output, Report, Session};
use crate::deploy::progress::Progress;
use crate::deploy::saved::SavedPlan;
use crate::deploy::up::{self, Approval, Outcome, UpOptions};
use crate::inspect::preflight;
use crate::spec::Severity;

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    pub env: String,
    /// Apply changes that need approval without asking.
    #[arg(long)]
    pub yes: bool,
    /// Which changes need approval (--yes, or a typed yes on a terminal).
    #[arg(long, value_enum, default_value_t = Approval::Broadening)]
    pub require_approval: Approval,
    /// Stacks deployed at the same time (independent ones only).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// A directory holding prebuilt `lake-ingest` and `lake-compact`
    /// (default: `cargo build --release` of this workspace).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Do not run `lakectl preflight` first.
    #[arg(long)]
    pub skip_preflight: bool,
    /// Move pinned machine images (Kafka nodes, the ingest fleet) to what
    /// their SSM parameters give now: replaces those instances.
    #[arg(long)]
    pub refresh_images: bool,
    /// In a protected environment, let this update replace or delete
    /// one data store (`STACK/LogicalId`, e.g. `metastore/Cluster`;
    /// repeatable). Without it such an update is refused before it
    /// starts: the stack policy would fail it half-way.
    #[arg(long, value_name = "STACK/LOGICAL_ID", value_parser = stack_slash_id)]
    pub allow_replace: Vec<String>,
    /// Apply exactly a plan saved by `lakectl diff ENV --out PLAN`: its
    /// change sets, nothing else; refused (nothing changed) when anything
    /// moved since, or when it expired.
    #[arg(long, value_name = "PLAN", conflicts_with = "refresh_images")]
    pub plan: Option<PathBuf>,
}

/// `STACK/LogicalId`, both parts non-empty.
fn stack_slash_id(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((stack, id)) if !stack.is_empty() && !id.is_empty() && !id.contains('/') => {
            Ok(value.to_string())
        }
        _ => Err("expected STACK/LogicalId, e.g. metastore/Cluster".into()),
    }
}

#[derive(Debug, Serialize)]
pub struct UpSummary {
    pub environment: String,
    /// Each stack's outcome, in the order they finished.
    pub stacks: serde_json::Map<String, serde_json::Value>,
    pub executed_change_sets: usize,
    pub uploaded_artifacts: Vec<String>,
    #[serde(skip)]
    counts: [usize; 4],
}

impl UpArgs {
    pub fn run(&self, global: &Global) -> Result<UpSummary, CommandError> {
        // A plan that cannot be read is refused before AWS is called.
        let plan = self
            .plan
            .as_deref()
            .map(SavedPlan::read)
            .transpose()
            .map_err(crate::deploy::DeployError::from)?;
        let session = Session::open(global, &self.env)?;
        if !self.skip_preflight {
            let report = session.run(preflight::preflight(
                &session.aws,
                &session.spec,
                &session.locator,
                &session.rendered.region,
                &session.rendered.files,
            ));
            let errors = report.count(Severity::Error);
            // -q: the preflight report only when it stops the deploy.
            if !global.quiet || errors > 0 {
                eprint!("{report}");
            }
            if errors > 0 {
                return Err(CommandError::Preflight { errors });
            }
        }
        let options = UpOptions {
            yes: self.yes,
            approval: self.require_approval,
            concurrency: usize::from(self.concurrency),
            artifacts_dir: self.artifacts.clone(),
            refresh_images: self.refresh_images,
            allow_replace: self.allow_replace.clone(),
            plan,
        };
        let progress = Arc::new(Progress::new(global.output == Output::Json).quiet(global.quiet));
        let Session {
            runtime,
            aws,
            rendered,
            ..
        } = session;
        let report = runtime.block_on(up::up(aws, rendered, &options, progress, |needed| {
            confirm(
                &format!("These changes need approval:\n  {}", needed.join("\n  ")),
                "yes",
            )
        }))?;
        let count = |o| report.count(o);
        Ok(UpSummary {
            environment: self.env.clone(),
            stacks: report
                .outcomes
                .iter()
                .map(|(name, o)| (name.clone(), o.text().into()))
                .collect(),
            executed_change_sets: report.executed_change_sets,
            uploaded_artifacts: report.uploaded.clone(),
            counts: [
                count(Outcome::Created),
                count(Outcome::Updated),
                count(Outcome::Unchanged),
                count(Outcome::Deleted),
            ],
        })
    }
}

impl std::fmt::Display for UpSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [created, updated, unchanged, deleted] = self.counts;
        writeln!(
            f,
            "{}: {created} created, {updated} updated ({} change sets executed), {unchanged} \
             unchanged, {deleted} deleted; {} artifacts uploaded",
            self.environment,
            self.executed_change_sets,
            self.uploaded_artifacts.len()
        )
    }
}

impl Report for UpSummary {}
