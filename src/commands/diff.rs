//! `lakectl diff ENV`: what `up` would change, against the deployed stacks
//! or (`--against DIR`) an earlier render. Read-only: it never builds the
//! data-plane binaries (pass `--artifacts DIR` to plan their hashes).

use std::path::PathBuf;

use super::{detailed, load_and_render, CommandError, Global, Report, Session};
use crate::deploy::saved;
use crate::deploy::up::plan_against_deployed;
use crate::inspect::drift::{self, StackDrift};
use crate::plan::diff::StackAction;
use crate::plan::report::PlanReport;
use crate::publish::{self, Binaries};

#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    pub env: String,
    /// Compare with an earlier `lakectl render` of this environment (e.g.
    /// of the main branch) instead of the deployed stacks; needs no AWS.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Exit 0 when nothing changes, 2 when something does (1 on errors).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// A directory holding prebuilt `lake-ingest` and `lake-compact`, whose
    /// hashes the plan then shows (default: not built; their parameters
    /// are known after deploy).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Do not ask CloudFormation (change sets) which modifications replace
    /// resources; the create-only table alone decides.
    #[arg(long, conflicts_with = "against")]
    pub no_change_set: bool,
    /// Plan machine images at what their SSM parameters give now instead
    /// of the pinned ones (shows the instances that would be replaced).
    #[arg(long, conflicts_with = "against")]
    pub refresh_images: bool,
    /// Save the plan to this file for `lakectl up ENV --plan FILE`: every
    /// stack that changes gets a named change set, kept for it. Pins the
    /// data-plane binaries (--artifacts DIR, or a release build).
    #[arg(long, value_name = "PLAN", conflicts_with_all = ["against", "no_change_set"])]
    pub out: Option<PathBuf>,
    /// Do not run drift detection on the stacks the plan updates (it takes
    /// seconds to minutes per stack on AWS).
    #[arg(long, conflicts_with = "against")]
    pub no_drift: bool,
}

/// The plan, and whether `--detailed-exitcode` was asked for.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct DiffReport {
    pub plan: PlanReport,
    #[serde(skip)]
    pub detailed_exitcode: bool,
}

impl DiffArgs {
    pub fn run(&self, global: &Global) -> Result<DiffReport, CommandError> {
        let plan = match &self.against {
            Some(against) => {
                let (_, rendered) = load_and_render(global, &self.env)?;
                PlanReport {
                    environment: self.env.clone(),
                    diffs: crate::plan::against_render(&rendered, against)?,
                    notes: Vec::new(),
                    drift: Vec::new(),
                }
            }
            None => self.against_deployed(global)?,
        };
        Ok(DiffReport {
            plan,
            detailed_exitcode: self.detailed_exitcode,
        })
    }

    fn against_deployed(&self, global: &Global) -> Result<PlanReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        if let Some(out) = &self.out {
            return self.save(&session, out);
        }
        let binaries = match &self.artifacts {
            Some(dir) => Binaries::Dir(dir),
            None => Binaries::NotBuilt,
        };
        let (artifacts, missing) = publish::locate_for_plan(&session.rendered, binaries)?;
        let mut planned = session.run(plan_against_deployed(
            &session.aws,
            &session.rendered,
            &artifacts,
            !self.no_change_set,
            self.refresh_images,
        ))?;
        planned.notes.extend(missing);
        if self.artifacts.is_none() && publish::needs_binaries(&session.rendered) {
            planned.notes.push(
                "the data-plane binaries were not built (diff is read-only): their hashes are \
                 known after deploy; pass --artifacts DIR to plan them"
                    .into(),
            );
        }
        let drift = self.drift(&session, &planned.diffs, &mut planned.notes);
        Ok(PlanReport {
            environment: self.env.clone(),
            diffs: planned.diffs,
            notes: planned.notes,
            drift,
        })
    }
}

impl DiffArgs {
    /// `--out`: the plan, saved with its named change sets.
    fn save(&self, session: &Session, out: &std::path::Path) -> Result<PlanReport, CommandError> {
        let binaries = match &self.artifacts {
            Some(dir) => Binaries::Dir(dir),
            None => Binaries::Build,
        };
        let artifacts = publish::locate_for(&session.rendered, binaries)?;
        let (mut planned, mut plan) = session.run(saved::save(
            &session.aws,
            &session.rendered,
            &artifacts,
            self.refresh_images,
        ))?;
        let drift = self.drift(session, &planned.diffs, &mut planned.notes);
        if !drift.is_empty() {
            plan.review["drift"] = serde_json::json!(drift);
        }
        plan.write(out).map_err(crate::deploy::DeployError::from)?;
        let change_sets: Vec<String> = plan
            .stacks
            .iter()
            .filter_map(|s| s.change_set.clone())
            .collect();
        planned.notes.push(format!(
            "plan {} saved to {} (sha256 {}, expires in {} h); change sets kept: {}; apply it \
             with `lakectl up {} --plan {}`",
            plan.serial,
            out.display(),
            plan.content_sha256(),
            crate::deploy::saved::LIFETIME_SECS / 3600,
            if change_sets.is_empty() {
                "none".to_string()
            } else {
                change_sets.join(", ")
            },
            self.env,
            out.display()
        ));
        Ok(PlanReport {
            environment: self.env.clone(),
            diffs: planned.diffs,
            notes: planned.notes,
            drift,
        })
    }

    /// Drift detection on the deployed stacks the plan updates, kept where
    /// the update overwrites it; a stack that cannot be checked is a note.
    fn drift(
        &self,
        session: &Session,
        diffs: &[crate::plan::diff::StackDiff],
        notes: &mut Vec<String>,
    ) -> Vec<StackDrift> {
        if self.no_drift {
            return Vec::new();
        }
        let updated: Vec<&crate::plan::diff::StackDiff> = diffs
            .iter()
            .filter(|d| d.action == StackAction::Update)
            .collect();
        let targets: Vec<(String, String)> = updated
            .iter()
            .map(|d| (d.id.clone(), d.stack_name.clone()))
            .collect();
        let results = session.run(drift::detect(&session.aws, &targets));
        let mut found = Vec::new();
        for (diff, result) in updated.into_iter().zip(results) {
            match result {
                Ok(d) => found.extend(drift::overwritten(&d, diff)),
                Err(e) => notes.push(format!(
                    "{}: drift not checked ({e}); changes made outside CloudFormation would be \
                     overwritten unseen (`lakectl drift` checks again)",
                    diff.stack_name
                )),
            }
        }
        found
    }
}

impl std::fmt::Display for DiffReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.plan.fmt(f)
    }
}

impl Report for DiffReport {
    fn exit_code(&self) -> u8 {
        detailed(self.detailed_exitcode, self.plan.has_changes())
    }
    fn notes(&self) -> Vec<String> {
        self.plan
            .notes
            .iter()
            .map(|n| format!("note: {n}"))
            .collect()
    }
}
