//! `lakectl up`, and the plan against deployed stacks (`lakectl diff`).
//!
//! Owns: the plan against what is deployed, the approval gate, and
//! deploying each stack through a change set (ordered by `schedule`), with
//! recovery from states an earlier run or a failed create left behind.
//! Plain `up` makes the plan `diff --out` makes (`saved::save`, change sets
//! kept) and applies it through the same checks as `up --plan`: one plan.
//! A replacement under an unchanged custom name is refused before anything
//! runs (it would fail half-way).
//! Must not: compare templates itself (`plan`), talk to the CloudFormation
//! SDK directly (`cfn`) or print (progress goes through `Progress`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::types::StackStatus;

use super::cfn::{ChangeSetOutcome, ChangeSetRequest, Deployed};
use super::progress::Progress;
use super::saved::{self, PlanFileError, PlannedAction, SavedPlan};
use super::schedule::{self, Job};
use super::{
    cfn, comparable_parameters, deployed_stacks, down, outputs_by_id, parameter_types,
    parameter_value, parameters_for_plan, protect, watch, DeployError,
};
use crate::aws::Aws;
use crate::plan::diff::{refine_replacement, StackDiff, Verdict};
use crate::plan::{self, normalize::normalize, propagate, Earlier};
use crate::publish::{self, Artifact, Published};
use crate::render::{ParamSource, RenderedEnv, RenderedStack};

/// Which changes need an explicit yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Approval {
    Never,
    /// IAM / security-group broadening and stack deletions.
    Broadening,
    AnyChange,
}

pub struct UpOptions {
    pub yes: bool,
    pub approval: Approval,
    pub concurrency: usize,
    /// Prebuilt `lake-ingest` / `lake-compact`; `None` builds them.
    pub artifacts_dir: Option<PathBuf>,
    /// Move pinned machine images to what their SSM parameters give now.
    pub refresh_images: bool,
    /// Data stores a protected environment's update may replace or delete
    /// (`STACK/LogicalId`).
    pub allow_replace: Vec<String>,
    /// Apply exactly this saved plan (`--plan`), or refuse.
    pub plan: Option<SavedPlan>,
}

impl Approval {
    /// As `--require-approval` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Approval::Never => "never",
            Approval::Broadening => "broadening",
            Approval::AnyChange => "any-change",
        }
    }
}

/// What happened to one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Deleted,
}

impl Outcome {
    pub fn text(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "no changes",
            Outcome::Deleted => "deleted",
        }
    }
}

impl UpReport {
    /// How many stacks ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.iter().filter(|(_, o)| *o == outcome).count()
    }
}

#[derive(Debug, Default)]
pub struct UpReport {
    pub plan: Vec<StackDiff>,
    pub outcomes: Vec<(String, Outcome)>,
    /// Change sets executed (updates; 0 on a re-run with nothing changed).
    pub executed_change_sets: usize,
    pub uploaded: Vec<String>,
}

/// States from which a stack needs a hand before it can be deployed.
pub(super) fn stuck_hint(d: &Deployed) -> Option<String> {
    let name = &d.name;
    match d.status {
        StackStatus::UpdateRollbackFailed => Some(format!(
            "Continue the rollback (`aws cloudformation continue-update-rollback --stack-name {name}`, \
             skipping resources that cannot roll back), then run up again."
        )),
        StackStatus::RollbackFailed | StackStatus::DeleteFailed => Some(format!(
            "Delete it (`lakectl down` or `aws cloudformation delete-stack --stack-name {name}`, \
             retaining what cannot be deleted), then run up again."
        )),
        _ => None,
    }
}

/// The stack's template and parameters as deployed, when it has resources.
async fn earlier_of(aws: &Aws, d: &Deployed) -> Result<Option<Earlier>, DeployError> {
    if !d.holds_resources() {
        return Ok(None);
    }
    Ok(Some(Earlier {
        origin: format!("deployed stack {}", d.name),
        template: aws.cfn.template(&d.name).await?,
        parameters: d.parameters.clone(),
        tags: Some(d.tags.clone()),
    }))
}

/// What `plan_against_deployed` found.
pub struct Planned {
    pub diffs: Vec<StackDiff>,
    pub deployed: BTreeMap<String, Deployed>,
    /// Each stack's pinned machine images (`images::key` -> image id).
    pub images: BTreeMap<String, BTreeMap<String, String>>,
    /// Newer images available than the pinned ones.
    pub notes: Vec<String>,
    /// Every stack's parameter values as planned (`(known after deploy …)`
    /// for those an upstream deploy gives).
    pub parameters: BTreeMap<String, BTreeMap<String, String>>,
}

/// The plan against what is deployed. With `change_sets`, stacks that
/// exist and change get a change set (created, read, deleted) so
/// CloudFormation's replacement verdicts refine the plan. Machine images
/// stay pinned unless `refresh_images`.
pub async fn plan_against_deployed(
    aws: &Aws,
    rendered: &RenderedEnv,
    artifacts: &BTreeMap<String, Artifact>,
    change_sets: bool,
    refresh_images: bool,
) -> Result<Planned, DeployError> {
    let deployed = deployed_stacks(aws, rendered).await?;
    let outputs = outputs_by_id(&deployed);
    let hashes = artifact_hashes(artifacts);
    let mut images = BTreeMap::new();
    let mut notes = Vec::new();
    for stack in &rendered.stacks {
        let pinned =
            super::images::pin(aws, stack, deployed.get(&stack.id), refresh_images).await?;
        notes.extend(pinned.notes);
        images.insert(stack.id.clone(), pinned.values);
    }
    let values_for = |id: &str| {
        let mut v = hashes.clone();
        v.extend(images.get(id).cloned().unwrap_or_default());
        v
    };
    let mut earlier = BTreeMap::new();
    for (id, d) in &deployed {
        if let Some(mut e) = earlier_of(aws, d).await? {
            if let Some(stack) = rendered.stack(id) {
                e.parameters =
                    comparable_parameters(&e.parameters, &parameter_types(&stack.template));
            }
            earlier.insert(id.clone(), e);
        }
    }
    let mut diffs = plan::compare(
        rendered,
        |s| parameters_for_plan(s, &outputs, &values_for(&s.id)),
        &earlier,
    )?;
    if change_sets {
        for diff in diffs.iter_mut().filter(|d| d.has_changes()) {
            let (Some(stack), true) = (rendered.stack(&diff.id), earlier.contains_key(&diff.id))
            else {
                continue;
            };
            // A value an upstream change of this plan moves is not known:
            // a change set made with today's would answer another question
            // (its "no replacement" would hide a possible one). Planned
            // after upstream, as `diff --out` plans it.
            let after_upstream = diff
                .parameters
                .iter()
                .any(|p| p.new.as_deref().is_some_and(propagate::is_unknown));
            if after_upstream {
                continue;
            }
            let Ok(params) = resolve(stack, &outputs, &values_for(&stack.id)) else {
                continue;
            };
            // One stack that cannot get a change set (busy, failed, or a
            // reviewer without CreateChangeSet) does not stop the plan.
            let d = &deployed[&diff.id];
            if d.in_progress() || stuck_hint(d).is_some() {
                notes.push(format!(
                    "{}: {}, no change set possible now; its `requires replacement` marks come \
                     from the create-only table alone",
                    stack.stack_name, d.status
                ));
                continue;
            }
            match replacement_verdicts(aws, rendered, stack, &params).await {
                Ok(verdicts) => refine_replacement(diff, &verdicts, &normalized(stack)?),
                Err(e) => notes.push(format!(
                    "{}: no change set ({e}); its `requires replacement` marks come from the \
                     create-only table alone",
                    stack.stack_name
                )),
            }
        }
    }
    // The values as the plan shows them: those an upstream change in this
    // plan moves are unknown (`plan::propagate`).
    let parameters = rendered
        .stacks
        .iter()
        .map(|s| {
            let mut values = parameters_for_plan(s, &outputs, &values_for(&s.id));
            let diff = diffs.iter().find(|d| d.id == s.id);
            for p in diff.map(|d| d.parameters.as_slice()).unwrap_or_default() {
                if let Some(new) = p.new.as_ref().filter(|v| propagate::is_unknown(v)) {
                    values.insert(p.name.clone(), new.clone());
                }
            }
            (s.id.clone(), values)
        })
        .collect();
    Ok(Planned {
        diffs,
        deployed,
        images,
        notes,
        parameters,
    })
}

/// Create a change set for `stack`, read CloudFormation's replacement
/// verdicts, and delete it again.
async fn replacement_verdicts(
    aws: &Aws,
    rendered: &RenderedEnv,
    stack: &RenderedStack,
    params: &BTreeMap<String, String>,
) -> Result<Vec<Verdict>, DeployError> {
    let name = change_set_name("lakectl-diff");
    let outcome = change_set_outcome(
        aws,
        rendered,
        stack,
        params,
        &name,
        "lakectl diff (never executed)",
        false,
    )
    .await;
    Ok(match outcome? {
        ChangeSetOutcome::Empty => Vec::new(),
        ChangeSetOutcome::Ready(changes) => verdicts(changes),
    })
}

/// Create change set `name` for `stack` with `params` and wait for
/// CloudFormation's answer; unless `keep`, delete it again once answered.
pub(super) async fn change_set_outcome(
    aws: &Aws,
    rendered: &RenderedEnv,
    stack: &RenderedStack,
    params: &BTreeMap<String, String>,
    name: &str,
    description: &str,
    keep: bool,
) -> Result<ChangeSetOutcome, DeployError> {
    aws.cfn
        .create_change_set(&ChangeSetRequest {
            stack_name: &stack.stack_name,
            change_set_name: name,
            template_body: &stack.template,
            parameters: params,
            tags: &tags(rendered),
            description,
        })
        .await?;
    let outcome = aws.cfn.wait_change_set(&stack.stack_name, name).await;
    if !keep {
        // A concurrent `up` may have removed it already; a change set
        // left behind is never executed.
        let _ = aws.cfn.delete_change_set(&stack.stack_name, name).await;
    }
    outcome
}

/// CloudFormation's replacement verdicts in a change set's changes.
pub(super) fn verdicts(changes: Vec<cfn::PlannedChange>) -> Vec<Verdict> {
    changes
        .into_iter()
        .filter(|c| c.action == "Modify")
        .map(|c| Verdict {
            via: c
                .details
                .iter()
                .filter_map(|d| {
                    // Changes the template itself makes are in the template
                    // diff already; these arrive from elsewhere.
                    let kind = match d.source.as_str() {
                        "ParameterReference" => "parameter",
                        "ResourceReference" => "resource",
                        "ResourceAttribute" => "attribute",
                        _ => return None,
                    };
                    Some((
                        d.target.clone(),
                        d.requires_recreation.clone(),
                        format!("{kind} {}", d.causing_entity.as_deref().unwrap_or("?")),
                    ))
                })
                .collect(),
            // Absent (an emulator's change set): the template's account stands.
            replacement: c.replacement,
            logical_id: c.logical_id,
            resource_type: c.resource_type,
        })
        .collect()
}

pub(super) fn artifact_hashes(artifacts: &BTreeMap<String, Artifact>) -> BTreeMap<String, String> {
    artifacts
        .iter()
        .map(|(k, a)| (k.clone(), a.sha256.clone()))
        .collect()
}

/// Every parameter's value, or the first parameter whose value is not known.
pub(super) fn resolve(
    stack: &RenderedStack,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    hashes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DeployError> {
    stack
        .parameters
        .iter()
        .map(|(k, source)| {
            parameter_value(source, outputs, hashes)
                .map(|v| (k.clone(), v))
                .ok_or_else(|| DeployError::NoParameterValue {
                    stack: stack.stack_name.clone(),
                    parameter: k.clone(),
                    from: crate::plan::parameter_text(source),
                })
        })
        .collect()
}

pub(super) fn tags(rendered: &RenderedEnv) -> BTreeMap<String, String> {
    rendered
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn change_set_name(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{prefix}-{}-{:03}", t.as_secs(), t.subsec_millis())
}

/// What needs an explicit yes under `approval`, one line each.
pub fn approvals_needed(diffs: &[StackDiff], approval: Approval) -> Vec<String> {
    let mut needed = Vec::new();
    for d in diffs {
        match approval {
            Approval::Never => {}
            Approval::AnyChange if d.has_changes() => {
                needed.push(format!("{}: {:?}", d.stack_name, d.action).to_lowercase())
            }
            _ => {
                if d.action == crate::plan::diff::StackAction::Delete {
                    needed.push(format!("{}: the stack is deleted", d.stack_name));
                }
                needed.extend(d.resources.iter().filter(|r| r.loses_data).map(|r| {
                    format!(
                        "{}: {} {} deletes its data",
                        d.stack_name,
                        if r.action == crate::plan::diff::Action::Remove {
                            "removing"
                        } else {
                            "replacing"
                        },
                        r.logical_id
                    )
                }));
                needed.extend(
                    d.security
                        .iter()
                        .filter(|c| c.broadening)
                        .map(|c| format!("{}: {} {}", d.stack_name, c.sign, c.description)),
                );
            }
        }
    }
    needed
}

/// Everything one deploy shares between its stack tasks.
struct Shared {
    aws: Aws,
    rendered: RenderedEnv,
    progress: Arc<Progress>,
    artifacts: BTreeMap<String, Artifact>,
    outputs: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    published: tokio::sync::Mutex<BTreeMap<String, Published>>,
    executed: Mutex<usize>,
    /// Stacks this run created, updated or deleted, as `name (outcome)`.
    applied: Mutex<Vec<String>>,
    /// The images the plan pinned, per stack: what was shown is applied.
    images: BTreeMap<String, BTreeMap<String, String>>,
    /// `--allow-replace`: `STACK/LogicalId` of data stores that may go.
    allow_replace: BTreeSet<String>,
    /// The parameter values the approved plan showed, per stack.
    planned: BTreeMap<String, BTreeMap<String, String>>,
    /// Whether a change the plan did not show may go ahead unasked.
    unasked: bool,
    /// The saved plan being applied (`up --plan`).
    saved: Option<SavedPlan>,
}

impl Shared {
    /// A deploy's shared state before anything is applied; a saved plan's
    /// apply replaces the images, values and plan.
    fn new(
        aws: Aws,
        rendered: RenderedEnv,
        progress: Arc<Progress>,
        artifacts: BTreeMap<String, Artifact>,
        options: &UpOptions,
    ) -> Shared {
        Shared {
            aws,
            rendered,
            progress,
            artifacts,
            outputs: Mutex::new(BTreeMap::new()),
            published: tokio::sync::Mutex::new(BTreeMap::new()),
            executed: Mutex::new(0),
            applied: Mutex::new(Vec::new()),
            images: BTreeMap::new(),
            allow_replace: options.allow_replace.iter().cloned().collect(),
            planned: BTreeMap::new(),
            unasked: options.yes || options.approval == Approval::Never,
            saved: None,
        }
    }
}

/// Go ahead when nothing needs approval, `--yes` was given, or a person on
/// the terminal says yes.
fn approve(
    needed: Vec<String>,
    options: &UpOptions,
    progress: &Progress,
    confirm: impl FnOnce(&[String]) -> bool,
) -> Result<(), DeployError> {
    if needed.is_empty() || options.yes || progress.interactive() && confirm(&needed) {
        return Ok(());
    }
    Err(DeployError::NeedsApproval {
        approval: options.approval.name(),
        changes: needed,
    })
}

/// `up --plan`: check that the saved plan still holds (refusing before
/// anything changes), take its approvals, images and values, and apply it.
async fn apply_saved(
    aws: Aws,
    rendered: RenderedEnv,
    options: &UpOptions,
    plan: &SavedPlan,
    artifacts: BTreeMap<String, Artifact>,
    progress: Arc<Progress>,
    confirm: impl FnOnce(&[String]) -> bool,
) -> Result<UpReport, DeployError> {
    let deployed = deployed_stacks(&aws, &rendered).await?;
    let mut reasons = plan.check(
        &rendered,
        (&aws.account, &aws.region),
        &deployed,
        &artifact_hashes(&artifacts),
        saved::now_secs(),
    );
    for p in &plan.stacks {
        let Some(change_set) = p.change_set.as_deref() else {
            continue;
        };
        match aws.cfn.wait_change_set(&p.stack_name, change_set).await {
            Ok(ChangeSetOutcome::Ready(changes)) => {
                let now = saved::changes_sha256(&changes);
                if p.change_set_sha256.as_ref().is_some_and(|was| *was != now) {
                    reasons.push(format!(
                        "{}: change set {change_set} is not the one planned (its changes differ)",
                        p.stack_name
                    ));
                }
            }
            Ok(ChangeSetOutcome::Empty) => reasons.push(format!(
                "{}: change set {change_set} has no changes any more",
                p.stack_name
            )),
            Err(e) => reasons.push(format!(
                "{}: change set {change_set} is gone or not executable ({e})",
                p.stack_name
            )),
        }
    }
    if !reasons.is_empty() {
        return Err(PlanFileError::Stale(reasons).into());
    }
    // The reviewed plan's own verdicts (`diff --out` showed them).
    let clashes: Vec<String> = plan.review["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| {
            d["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |r| {
                    let name = r["same_name"].as_str()?;
                    Some(format!(
                        "{}: {} ({}, named {name})",
                        d["stack_name"].as_str().unwrap_or_default(),
                        r["logical_id"].as_str().unwrap_or_default(),
                        r["resource_type"].as_str().unwrap_or_default()
                    ))
                })
        })
        .collect();
    if !clashes.is_empty() {
        return Err(DeployError::SameNameReplacement(clashes));
    }
    progress.line(&format!(
        "applying saved plan {} of {} (sha256 {})",
        plan.serial,
        plan.environment,
        plan.content_sha256()
    ));
    let needed = plan
        .approvals
        .get(options.approval.name())
        .cloned()
        .unwrap_or_default();
    approve(needed, options, &progress, confirm)?;
    let per_stack = |f: fn(&saved::PlannedStack) -> BTreeMap<String, String>| {
        plan.stacks.iter().map(|s| (s.id.clone(), f(s))).collect()
    };
    let shared = Arc::new(Shared {
        images: per_stack(|s| s.images.clone()),
        planned: per_stack(|s| s.parameters.clone()),
        unasked: false,
        saved: Some(plan.clone()),
        ..Shared::new(aws, rendered, progress, artifacts, options)
    });
    run_deploy(shared, UpReport::default(), options.concurrency, deployed).await
}

/// `lakectl up`: plan, approve, apply. `confirm` asks a person (only called
/// when the progress view is interactive).
pub async fn up(
    aws: Aws,
    rendered: RenderedEnv,
    options: &UpOptions,
    progress: Arc<Progress>,
    confirm: impl FnOnce(&[String]) -> bool,
) -> Result<UpReport, DeployError> {
    let binaries = match options.artifacts_dir.as_deref() {
        Some(dir) => publish::Binaries::Dir(dir),
        None => publish::Binaries::Build,
    };
    let artifacts = publish::locate_for(&rendered, binaries)?;
    if let Some(plan) = &options.plan {
        return apply_saved(aws, rendered, options, plan, artifacts, progress, confirm).await;
    }
    // Stacks an earlier run left in progress are waited for, not fought.
    for (id, d) in deployed_stacks(&aws, &rendered).await? {
        if d.in_progress() {
            progress.line(&format!(
                "{}: {} (an earlier run or another user); waiting for it",
                d.name, d.status
            ));
            watch::watch(&aws, &progress, &d.id, &d.name).await?;
            let _ = id;
        }
    }
    // One plan: the one `diff --out` saves (change sets made and read, so
    // CloudFormation's verdicts are in what is approved), applied through
    // the same checks as `up --plan`.
    let (planned, plan) = saved::save(&aws, &rendered, &artifacts, options.refresh_images).await?;
    for note in &planned.notes {
        progress.line(note);
    }
    progress.line(&format!(
        "plan:\n{}",
        crate::plan::report::text(&planned.diffs)
    ));
    let kept: Vec<(String, String)> = plan
        .stacks
        .iter()
        .filter_map(|s| Some((s.stack_name.clone(), s.change_set.clone()?)))
        .collect();
    let clashes = same_name_replacements(&planned.diffs);
    if !clashes.is_empty() {
        discard_change_sets(&aws, &kept).await;
        return Err(DeployError::SameNameReplacement(clashes));
    }
    let needed = plan
        .approvals
        .get(options.approval.name())
        .cloned()
        .unwrap_or_default();
    if let Err(e) = approve(needed, options, &progress, confirm) {
        discard_change_sets(&aws, &kept).await;
        return Err(e);
    }
    let per_stack = |f: fn(&saved::PlannedStack) -> BTreeMap<String, String>| {
        plan.stacks.iter().map(|s| (s.id.clone(), f(s))).collect()
    };
    let shared = Arc::new(Shared {
        images: per_stack(|s| s.images.clone()),
        planned: per_stack(|s| s.parameters.clone()),
        saved: Some(plan),
        ..Shared::new(aws, rendered, progress, artifacts, options)
    });
    let report = UpReport {
        plan: planned.diffs,
        ..UpReport::default()
    };
    let result = run_deploy(
        Arc::clone(&shared),
        report,
        options.concurrency,
        planned.deployed,
    )
    .await;
    if result.is_err() {
        // Change sets this run made and did not execute are of no use to
        // anyone (an executed one is gone already).
        discard_change_sets(&shared.aws, &kept).await;
    }
    result
}

/// Replacements that keep a custom name (they would fail), one line each.
pub fn same_name_replacements(diffs: &[StackDiff]) -> Vec<String> {
    diffs
        .iter()
        .flat_map(|d| {
            d.resources.iter().filter_map(move |r| {
                let name = r.same_name.as_ref()?;
                Some(format!(
                    "{}: {} ({}, named {name})",
                    d.stack_name, r.logical_id, r.resource_type
                ))
            })
        })
        .collect()
}

/// Delete change sets, ignoring those already gone.
pub(super) async fn discard_change_sets(aws: &Aws, change_sets: &[(String, String)]) {
    for (stack, name) in change_sets {
        let _ = aws.cfn.delete_change_set(stack, name).await;
    }
}

/// Apply the stacks, then delete those whose part left the spec.
async fn run_deploy(
    shared: Arc<Shared>,
    mut report: UpReport,
    concurrency: usize,
    deployed: BTreeMap<String, Deployed>,
) -> Result<UpReport, DeployError> {
    let result = apply(&shared, &mut report, concurrency.max(1)).await;
    if result.is_ok() {
        // Stacks whose part left the spec go last, dependents first.
        let rendered_ids: BTreeSet<&str> = shared
            .rendered
            .stacks
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        let removed = removal_order(
            deployed
                .iter()
                .filter(|(id, _)| !rendered_ids.contains(id.as_str()))
                .map(|(id, d)| (id.as_str(), d)),
        );
        for d in removed {
            // Ctrl-C stops the wait here too; CloudFormation carries on.
            tokio::select! {
                deleted = down::delete_one(
                    &shared.aws,
                    &shared.progress,
                    d,
                    down::OnDeleteFailed::Stop,
                ) => deleted?,
                _ = tokio::signal::ctrl_c() => {
                    return Err(DeployError::Interrupted(vec![d.name.clone()]));
                }
            }
            report.outcomes.push((d.name.clone(), Outcome::Deleted));
        }
    }
    // A plan that stops half-way says what it applied before the stop.
    let result = result.map_err(|e| {
        let applied = shared.applied.lock().expect("lock").clone();
        match e {
            DeployError::SavedPlan(PlanFileError::Stale(reasons)) if !applied.is_empty() => {
                PlanFileError::StoppedAfter { reasons, applied }.into()
            }
            other => other,
        }
    });
    report.executed_change_sets = *shared.executed.lock().expect("lock");
    report.uploaded = shared
        .published
        .lock()
        .await
        .iter()
        .filter(|(_, p)| **p == Published::Uploaded)
        .map(|(k, _)| k.clone())
        .collect();
    result.map(|_| report)
}

/// Deploy every rendered stack once its dependencies are done, at most
/// `concurrency` at a time (`schedule`). The first failure stops new
/// starts; stacks already at work are waited for.
async fn apply(
    shared: &Arc<Shared>,
    report: &mut UpReport,
    concurrency: usize,
) -> Result<(), DeployError> {
    let jobs = shared
        .rendered
        .deploy_order
        .iter()
        .map(|id| {
            let stack = shared.rendered.stack(id).expect("rendered");
            Job {
                id: id.clone(),
                name: stack.stack_name.clone(),
                after: stack.depends_on.clone(),
            }
        })
        .collect();
    let finished = schedule::run(jobs, concurrency, |job| {
        let (shared, id, name) = (Arc::clone(shared), job.id.clone(), job.name.clone());
        async move {
            let result = deploy_stack(&shared, &id).await;
            if result.is_err() {
                shared.progress.finish(&name, "failed");
            }
            result
        }
    })
    .await?;
    for (id, outcome) in finished {
        let name = shared
            .rendered
            .stack(&id)
            .expect("rendered")
            .stack_name
            .clone();
        report.outcomes.push((name, outcome));
    }
    Ok(())
}

/// Publish the artifacts `stack` needs (once per deploy) and return their
/// hashes; the EMR stack also needs the cluster's TLS material in place.
async fn publish_for(
    shared: &Shared,
    stack: &RenderedStack,
) -> Result<BTreeMap<String, String>, DeployError> {
    if stack.template.contains(publish::tls::EMR_TLS_KEY) {
        let bucket = artifacts_bucket(shared)?;
        let region = shared.rendered.region.clone();
        let result = publish::put_once(&shared.aws.s3, &bucket, publish::tls::EMR_TLS_KEY, || {
            publish::tls::emr_certificates_zip(&region)
        })
        .await?;
        if result == Published::Uploaded {
            shared.progress.line(&format!(
                "EMR TLS certificate (self-signed, {}) published: s3://{bucket}/{}",
                publish::tls::node_names(&region).join(", "),
                publish::tls::EMR_TLS_KEY
            ));
        }
    }
    // The scripts this stack's nodes fetch by key (bootstrap actions, the
    // lake steps): published before the stack, once.
    for (key, body) in &shared.rendered.scripts {
        if !stack.template.contains(key.as_str()) {
            continue;
        }
        let bucket = artifacts_bucket(shared)?;
        let result = publish::put_once(&shared.aws.s3, &bucket, key, || {
            Ok(body.clone().into_bytes())
        })
        .await?;
        if result == Published::Uploaded {
            shared
                .progress
                .line(&format!("node script published: s3://{bucket}/{key}"));
        }
    }
    let mut hashes = BTreeMap::new();
    for source in stack.parameters.values() {
        let ParamSource::Artifact { artifact } = source else {
            continue;
        };
        let a = shared
            .artifacts
            .get(artifact)
            .ok_or_else(|| DeployError::MissingArtifact {
                stack: stack.id.clone(),
                artifact: artifact.clone(),
            })?;
        let mut published = shared.published.lock().await;
        if !published.contains_key(artifact) {
            let bucket = artifacts_bucket(shared)?;
            let result = publish::publish(&shared.aws.s3, &bucket, a).await?;
            shared.progress.line(&format!(
                "artifact {artifact} {}: s3://{bucket}/{}",
                if result == Published::Uploaded {
                    "uploaded"
                } else {
                    "already published"
                },
                a.key()
            ));
            published.insert(artifact.clone(), result);
        }
        hashes.insert(artifact.clone(), a.sha256.clone());
    }
    Ok(hashes)
}

/// The artifacts bucket, from the storage stack's outputs.
fn artifacts_bucket(shared: &Shared) -> Result<String, DeployError> {
    shared
        .outputs
        .lock()
        .expect("lock")
        .get("storage")
        .and_then(|o| o.get("ArtifactsBucketName"))
        .cloned()
        .ok_or_else(|| DeployError::MissingOutput {
            stack: "storage".into(),
            output: "ArtifactsBucketName".into(),
            then: "artifacts have nowhere to go; run `lakectl up` again to update it".into(),
        })
}

/// Stacks whose part left the spec, in the order to delete them:
/// dependents first (the reverse of the catalog's creation order); a stack
/// the catalog does not know has no known dependents and goes first.
fn removal_order<'a>(removed: impl Iterator<Item = (&'a str, &'a Deployed)>) -> Vec<&'a Deployed> {
    let kinds = crate::render::catalog::stack_kinds();
    let created_at = |id: &str| kinds.iter().position(|k| k.id == id);
    let mut removed: Vec<(Option<usize>, &Deployed)> =
        removed.map(|(id, d)| (created_at(id), d)).collect();
    removed.sort_by_key(|(at, _)| std::cmp::Reverse(at.map_or(usize::MAX, |i| i)));
    removed.into_iter().map(|(_, d)| d).collect()
}

/// Bring one stack to its rendered state.
async fn deploy_stack(shared: &Shared, id: &str) -> Result<Outcome, DeployError> {
    let stack = shared.rendered.stack(id).expect("rendered");
    let (aws, progress) = (&shared.aws, &shared.progress);
    let name = stack.stack_name.as_str();
    let mut current = aws.cfn.describe(name).await?;
    if let Some(d) = current.as_ref().filter(|d| d.in_progress()) {
        progress.start(name, &format!("waiting: {} from an earlier run", d.status));
        current = watch::watch(aws, progress, &d.id, name).await?;
    }
    if let Some(d) = &current {
        if let Some(hint) = stuck_hint(d) {
            return Err(DeployError::Stuck {
                stack: name.to_string(),
                status: d.status.to_string(),
                hint,
            });
        }
        if d.status == StackStatus::RollbackComplete {
            progress.line(&format!(
                "{name}: ROLLBACK_COMPLETE from a failed first create holds no resources; deleting it to create it again"
            ));
            down::delete_one(aws, progress, d, down::OnDeleteFailed::Stop).await?;
            current = None;
        }
    }
    let mut hashes = publish_for(shared, stack).await?;
    hashes.extend(shared.images.get(id).cloned().unwrap_or_default());
    let outputs = shared.outputs.lock().expect("lock").clone();
    if id == "emr" {
        // Hive's and Hue's own metastore accounts exist before the cluster
        // connects with them (an Aurora metastore; none for a development one).
        if let Some(metastore) = outputs.get("metastore") {
            let ensured = super::accounts::ensure(aws, metastore).await?;
            if !ensured.is_empty() {
                progress.line(&format!(
                    "metastore accounts in place: {} (each limited to its database, TLS only)",
                    ensured.join(", ")
                ));
            }
        }
    }
    let params = resolve(stack, &outputs, &hashes)?;
    let saved = shared.saved.as_ref().and_then(|p| p.stack(id));
    if let Some(planned) = saved {
        let moved = saved::values_beyond_plan(planned, &params);
        if !moved.is_empty() {
            return Err(PlanFileError::Stale(vec![format!(
                "{name}: values the plan knew moved: {}",
                moved.join(", ")
            )])
            .into());
        }
    }
    let tags = tags(&shared.rendered);
    if let Some(d) = current.as_ref().filter(|d| d.never_executed()) {
        // A change set made elsewhere and never executed: no resources.
        progress.line(&format!(
            "{name}: REVIEW_IN_PROGRESS (a change set never executed) holds no resources; deleting it to create the stack"
        ));
        down::delete_one(aws, progress, d, down::OnDeleteFailed::Stop).await?;
        current = None;
    }
    let request = |change_set_name| ChangeSetRequest {
        stack_name: name,
        change_set_name,
        template_body: &stack.template,
        parameters: &params,
        tags: &tags,
        description: "lakectl up",
    };
    let Some(d) = current else {
        progress.start(name, "creating");
        let protected = shared.rendered.termination_protection;
        let policy = protected.then(|| stack_policy(stack)).transpose()?;
        let token = aws
            .cfn
            .create_stack(&request(""), protected, policy.as_deref())
            .await?;
        let d = aws
            .cfn
            .describe(name)
            .await?
            .ok_or_else(|| DeployError::StackFailed {
                stack: name.to_string(),
                status: "not found after CreateStack".into(),
                failures: Vec::new(),
            })?;
        return finish(
            shared,
            id,
            stack,
            &d.id,
            cfn::EventMark {
                token: Some(token),
                ..cfn::EventMark::beginning()
            },
            Outcome::Created,
        )
        .await;
    };
    let same_template =
        normalize(&aws.cfn.template(name).await?).ok() == normalize(&stack.template).ok();
    let deployed_params = comparable_parameters(&d.parameters, &parameter_types(&stack.template));
    if same_template && deployed_params == params && d.tags == tags {
        if let Some(kept) = saved.and_then(|p| p.change_set.as_deref()) {
            // Nothing to run after all: the plan's change set goes.
            let _ = aws.cfn.delete_change_set(name, kept).await;
        }
        protect_stack(shared, stack, &d).await?;
        record_outputs(shared, id, &d);
        progress.finish(name, Outcome::Unchanged.text());
        return Ok(Outcome::Unchanged);
    }
    if saved.is_some_and(|p| p.action == PlannedAction::Unchanged) {
        return Err(PlanFileError::Stale(vec![format!(
            "{name}: the plan leaves it unchanged, but it would change now"
        )])
        .into());
    }
    progress.start(name, "updating");
    // A saved plan's change set was created when the plan was made.
    let change_set = match saved.and_then(|p| p.change_set.clone()) {
        Some(planned) => planned,
        None => {
            let fresh = change_set_name("lakectl");
            aws.cfn.create_change_set(&request(&fresh)).await?;
            fresh
        }
    };
    match aws.cfn.wait_change_set(name, &change_set).await? {
        ChangeSetOutcome::Empty => {
            aws.cfn.delete_change_set(name, &change_set).await?;
            protect_stack(shared, stack, &d).await?;
            record_outputs(shared, id, &d);
            progress.finish(name, "no changes (empty change set, removed)");
            return Ok(Outcome::Unchanged);
        }
        ChangeSetOutcome::Ready(changes) => {
            if let Some(planned) = saved.filter(|p| p.action == PlannedAction::AfterUpstream) {
                let beyond = saved::changes_beyond_review(planned, &changes);
                if !beyond.is_empty() {
                    aws.cfn.delete_change_set(name, &change_set).await?;
                    return Err(PlanFileError::Stale(vec![format!(
                        "{name}: planned after its upstream, it now changes beyond what was \
                         reviewed: {}",
                        beyond.join(", ")
                    )])
                    .into());
                }
            }
            for c in changes
                .iter()
                .filter(|c| c.replacement.as_deref() == Some("True"))
            {
                progress.line(&format!(
                    "{name}: {} {} will be replaced",
                    c.logical_id, c.resource_type
                ));
            }
            // An upstream stack's outputs moved during this run: the change
            // set is not the one the plan showed. What it now replaces or
            // removes was not approved.
            let moved = moved_parameters(shared.planned.get(id), &params);
            if !moved.is_empty() {
                progress.line(&format!(
                    "{name}: upstream outputs changed since the plan: {}",
                    moved.join(", ")
                ));
                let replaced: Vec<String> = changes
                    .iter()
                    .filter(|c| {
                        c.action == "Remove"
                            || matches!(c.replacement.as_deref(), Some("True" | "Conditional"))
                    })
                    .map(|c| c.logical_id.clone())
                    .collect();
                if !replaced.is_empty() && !shared.unasked {
                    aws.cfn.delete_change_set(name, &change_set).await?;
                    return Err(DeployError::PlanMoved {
                        stack: name.to_string(),
                        moved,
                        replaced,
                    });
                }
            }
            if shared.rendered.termination_protection {
                let losing = data_stores_lost(&changes);
                let refused: Vec<String> = losing
                    .iter()
                    .filter(|r| !shared.allow_replace.contains(&format!("{id}/{r}")))
                    .cloned()
                    .collect();
                if !refused.is_empty() {
                    aws.cfn.delete_change_set(name, &change_set).await?;
                    return Err(DeployError::DataStoreReplacement {
                        stack: name.to_string(),
                        id: id.to_string(),
                        resources: refused,
                    });
                }
                if !losing.is_empty() {
                    return execute_allowing(shared, id, stack, &d, &change_set, &losing).await;
                }
            }
        }
    }
    let mut mark = aws.cfn.event_mark(&d.id).await?;
    mark.token = Some(aws.cfn.execute_change_set(name, &change_set).await?);
    *shared.executed.lock().expect("lock") += 1;
    finish(shared, id, stack, &d.id, mark, Outcome::Updated).await
}

/// Parameters whose value the plan knew and which now differ.
fn moved_parameters(
    planned: Option<&BTreeMap<String, String>>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let Some(planned) = planned else {
        return Vec::new();
    };
    now.iter()
        .filter_map(|(k, v)| {
            let was = planned.get(k)?;
            (!propagate::is_unknown(was) && was != v).then(|| format!("{k}: {was} -> {v}"))
        })
        .collect()
}

/// Data stores a change set replaces (surely or possibly) or removes: what
/// a protected stack's policy denies.
fn data_stores_lost(changes: &[cfn::PlannedChange]) -> Vec<String> {
    let mut lost: Vec<String> = changes
        .iter()
        .filter(|c| protect::DATA_STORE_TYPES.contains(&c.resource_type.as_str()))
        .filter(|c| {
            c.action == "Remove" || matches!(c.replacement.as_deref(), Some("True" | "Conditional"))
        })
        .map(|c| c.logical_id.clone())
        .collect();
    lost.sort();
    lost.dedup();
    lost
}

/// Execute a change set that replaces data stores the operator allowed:
/// the stack policy lets exactly those go for this update, and the full
/// policy is back afterwards, whether the update succeeded or not.
async fn execute_allowing(
    shared: &Shared,
    id: &str,
    stack: &RenderedStack,
    d: &Deployed,
    change_set: &str,
    allowed: &[String],
) -> Result<Outcome, DeployError> {
    let (aws, name) = (&shared.aws, stack.stack_name.as_str());
    let template = normalized(stack)?;
    shared.progress.line(&format!(
        "{name}: --allow-replace lets {} go for this update; the stack policy is restored after",
        allowed.join(", ")
    ));
    aws.cfn
        .set_stack_policy(name, &protect::stack_policy_allowing(&template, allowed))
        .await?;
    let result = async {
        let mut mark = aws.cfn.event_mark(&d.id).await?;
        mark.token = Some(aws.cfn.execute_change_set(name, change_set).await?);
        *shared.executed.lock().expect("lock") += 1;
        finish(shared, id, stack, &d.id, mark, Outcome::Updated).await
    }
    .await;
    if result.is_err() {
        // A successful update got its full policy back from `finish`.
        aws.cfn
            .set_stack_policy(name, &protect::stack_policy(&template))
            .await?;
    }
    result
}

/// Watch a create or update to its end; a healthy stack gets its
/// protection checked and its outputs recorded for downstream stacks.
async fn finish(
    shared: &Shared,
    id: &str,
    stack: &RenderedStack,
    stack_id: &str,
    mark: cfn::EventMark,
    outcome: Outcome,
) -> Result<Outcome, DeployError> {
    let name = stack.stack_name.as_str();
    let (finished, failures) =
        watch::watch_from(&shared.aws, &shared.progress, stack_id, name, mark).await?;
    let finished = finished.ok_or_else(|| DeployError::StackFailed {
        stack: name.to_string(),
        status: "DELETE_COMPLETE".into(),
        failures: failures.clone(),
    })?;
    if !finished.healthy() {
        return Err(DeployError::StackFailed {
            stack: name.to_string(),
            status: finished.status.to_string(),
            failures,
        });
    }
    shared
        .applied
        .lock()
        .expect("lock")
        .push(format!("{name} ({})", outcome.text()));
    protect_stack(shared, stack, &finished).await?;
    record_outputs(shared, id, &finished);
    shared.progress.finish(name, outcome.text());
    Ok(outcome)
}

fn record_outputs(shared: &Shared, id: &str, d: &Deployed) {
    shared
        .outputs
        .lock()
        .expect("lock")
        .insert(id.to_string(), d.outputs.clone());
}

/// Termination protection and the data-store stack policy, for protected
/// environments; set only when missing or different, so re-runs make no
/// calls that change anything. An environment whose protection was switched
/// off gets an allow-all policy in place of the one that denied replacing
/// its data stores (a stack policy cannot be removed, only replaced).
async fn protect_stack(
    shared: &Shared,
    stack: &RenderedStack,
    d: &Deployed,
) -> Result<(), DeployError> {
    let cfn = &shared.aws.cfn;
    let current = cfn.stack_policy(&d.name).await?;
    if !shared.rendered.termination_protection {
        if current.as_deref().is_some_and(|p| p.contains("Deny")) {
            cfn.set_stack_policy(&d.name, &protect::allow_all_policy())
                .await?;
        }
        return Ok(());
    }
    if !d.termination_protection {
        cfn.set_termination_protection(&d.name, true).await?;
    }
    let policy = stack_policy(stack)?;
    let same = current
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        == serde_json::from_str::<serde_json::Value>(&policy).ok();
    if !same {
        cfn.set_stack_policy(&d.name, &policy).await?;
    }
    Ok(())
}

/// The stack policy of a protected stack, from its rendered template.
fn stack_policy(stack: &RenderedStack) -> Result<String, DeployError> {
    Ok(protect::stack_policy(&normalized(stack)?))
}

/// A rendered template as a value.
pub(super) fn normalized(stack: &RenderedStack) -> Result<serde_json::Value, DeployError> {
    normalize(&stack.template).map_err(|source| {
        DeployError::Plan(crate::plan::PlanError::Template {
            path: format!("{} (rendered)", stack.id),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed(name: &str) -> Deployed {
        Deployed {
            name: name.into(),
            id: format!("arn:{name}"),
            status: "CREATE_COMPLETE".into(),
            reason: None,
            last_updated: String::new(),
            outputs: BTreeMap::new(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            termination_protection: false,
        }
    }

    #[test]
    fn removed_stacks_go_dependents_first_not_alphabetically() {
        let (compaction, ingest, kafka, network, old) = (
            deployed("c"),
            deployed("i"),
            deployed("k"),
            deployed("n"),
            deployed("o"),
        );
        // As `deployed_stacks` returns them: by id, alphabetically.
        let removed = [
            ("compaction", &compaction),
            ("ingest", &ingest),
            ("kafka", &kafka),
            ("network", &network),
            ("retired-kind", &old),
        ];
        let order: Vec<&str> = removal_order(removed.into_iter())
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        // Unknown kinds have no known dependents; then the catalog backwards.
        assert_eq!(order, ["o", "c", "i", "k", "n"]);
    }

    /// A protected environment's one-stack env: a Kinesis stream (a data
    /// store) and nothing to publish.
    fn protected_env() -> RenderedEnv {
        RenderedEnv {
            environment: "prod".into(),
            name: "lake-prod".into(),
            region: "us-east-1".into(),
            termination_protection: true,
            tags: Default::default(),
            deploy_order: vec!["stream".into()],
            waves: vec![vec!["stream".into()]],
            stacks: vec![RenderedStack {
                id: "stream".into(),
                stack_name: "lake-prod-stream".into(),
                summary: String::new(),
                template: "Resources:\n  OrdersStream:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: orders-2, ShardCount: 4}\n  Role:\n    Type: AWS::IAM::Role\n    Properties: {AssumeRolePolicyDocument: {}}\n".into(),
                depends_on: Vec::new(),
                parameters: Default::default(),
                outputs: Vec::new(),
            }],
            files: Default::default(),
            scripts: Default::default(),
        }
    }

    fn shared(script: &Arc<crate::deploy::script::Script>, allow: &[&str]) -> Shared {
        Shared {
            aws: Aws::scripted(script.clone()),
            rendered: protected_env(),
            progress: Arc::new(Progress::new(true)),
            artifacts: BTreeMap::new(),
            outputs: Mutex::new(BTreeMap::new()),
            published: tokio::sync::Mutex::new(BTreeMap::new()),
            executed: Mutex::new(0),
            applied: Mutex::new(Vec::new()),
            images: BTreeMap::new(),
            allow_replace: allow.iter().map(|s| s.to_string()).collect(),
            planned: BTreeMap::new(),
            unasked: false,
            saved: None,
        }
    }

    /// A change set's `Modify` of one resource, without details.
    fn modify(logical_id: &str, resource_type: &str, replacement: &str) -> cfn::PlannedChange {
        cfn::PlannedChange {
            action: "Modify".into(),
            logical_id: logical_id.into(),
            resource_type: resource_type.into(),
            replacement: Some(replacement.into()),
            details: Vec::new(),
        }
    }

    fn with_plan(mut shared: Shared, action: PlannedAction, change_set: Option<&str>) -> Shared {
        shared.saved = Some(SavedPlan {
            format: saved::FORMAT.into(),
            environment: "prod".into(),
            serial: "p1".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: BTreeMap::new(),
            created: 0,
            expires: u64::MAX,
            stacks: vec![saved::PlannedStack {
                id: "stream".into(),
                stack_name: "lake-prod-stream".into(),
                action,
                template_sha256: String::new(),
                parameters: BTreeMap::new(),
                unknown: Vec::new(),
                images: BTreeMap::new(),
                artifacts: BTreeMap::new(),
                deployed: None,
                change_set: change_set.map(String::from),
                change_set_sha256: None,
                reviewed_changes: vec!["OrdersStream".into()],
                reviewed_replacements: Vec::new(),
            }],
            approvals: BTreeMap::new(),
            review: serde_json::Value::Null,
        });
        shared
    }

    #[tokio::test]
    async fn a_saved_plan_runs_its_named_change_set_and_creates_none() {
        use crate::deploy::script::{step, Answer, Script};
        let mut steps = replacing_steps();
        // The plan's change set was made when the plan was: no CreateChangeSet.
        steps.remove(2);
        steps[2] = step(
            "wait_change_set lake-prod-stream lakectl-prod-stream-p1",
            Answer::ChangeSet(ChangeSetOutcome::Ready(vec![modify(
                "OrdersStream",
                "AWS::Kinesis::Stream",
                "True",
            )])),
        );
        // The protected stream's replacement is refused as for any update:
        // the plan's change set is the one removed.
        steps.push(step(
            "delete_change_set lake-prod-stream lakectl-prod-stream-p1",
            Answer::Done,
        ));
        let script = Script::new(steps);
        let shared = with_plan(
            shared(&script, &[]),
            PlannedAction::Update,
            Some("lakectl-prod-stream-p1"),
        );
        let err = deploy_stack(&shared, "stream")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("OrdersStream"), "{err}");
        assert!(script.left().is_empty(), "{:?}", script.left());
        assert!(
            !script
                .calls()
                .iter()
                .any(|c| c.starts_with("create_change_set")),
            "{:?}",
            script.calls()
        );
    }

    #[tokio::test]
    async fn a_stack_planned_after_upstream_is_refused_when_it_goes_beyond_the_review() {
        use crate::deploy::script::{step, Answer, Script};
        let mut steps = replacing_steps();
        steps[3] = step(
            "wait_change_set lake-prod-stream lakectl",
            Answer::ChangeSet(ChangeSetOutcome::Ready(vec![
                modify("OrdersStream", "AWS::Kinesis::Stream", "False"),
                modify("Role", "AWS::IAM::Role", "False"),
            ])),
        );
        steps.push(step(
            "delete_change_set lake-prod-stream lakectl",
            Answer::Done,
        ));
        let script = Script::new(steps);
        let mut shared = with_plan(shared(&script, &[]), PlannedAction::AfterUpstream, None);
        if let Some(plan) = shared.saved.as_mut() {
            plan.stacks[0].unknown = vec!["StreamName".into()];
        }
        // Within the plan: an in-place change that comes only from a value
        // the plan marked unknown; beyond it: anything else, a replacement
        // the plan did not show included.
        let mut by_unknown = cfn::PlannedChange {
            action: "Modify".into(),
            logical_id: "Alarm".into(),
            resource_type: "AWS::CloudWatch::Alarm".into(),
            replacement: Some("False".into()),
            details: vec![cfn::ChangeDetail {
                target: "Properties.Dimensions".into(),
                requires_recreation: "Always".into(),
                source: "ParameterReference".into(),
                causing_entity: Some("StreamName".into()),
            }],
        };
        let planned_stack = &shared.saved.as_ref().unwrap().stacks[0];
        assert!(saved::changes_beyond_review(planned_stack, &[by_unknown.clone()]).is_empty());
        by_unknown.replacement = Some("True".into());
        assert_eq!(
            saved::changes_beyond_review(planned_stack, &[by_unknown]),
            ["Modify Alarm (AWS::CloudWatch::Alarm)"]
        );
        let err = deploy_stack(&shared, "stream")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("beyond what was reviewed: Modify Role (AWS::IAM::Role)"),
            "{err}"
        );
        assert!(err.contains("Nothing was changed"), "{err}");
        assert!(script.left().is_empty(), "{:?}", script.left());
        assert!(!script.calls().iter().any(|c| c.starts_with("execute")));
    }

    #[tokio::test]
    async fn a_stack_the_plan_left_unchanged_is_not_changed_now() {
        use crate::deploy::script::Script;
        let steps = replacing_steps().into_iter().take(2).collect();
        let script = Script::new(steps);
        let shared = with_plan(shared(&script, &[]), PlannedAction::Unchanged, None);
        let err = deploy_stack(&shared, "stream")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the plan leaves it unchanged, but it would change now"),
            "{err}"
        );
        assert!(script.left().is_empty(), "{:?}", script.left());
    }

    /// Up to a ready change set that replaces the stream (CloudFormation's
    /// DescribeChangeSet: `Replacement: True` for a new stream `Name`).
    fn replacing_steps() -> Vec<crate::deploy::script::Step> {
        use crate::deploy::script::{step, Answer};
        let mut stack = deployed("lake-prod-stream");
        stack.termination_protection = true;
        vec![
            step("describe lake-prod-stream", Answer::Stack(Some(stack))),
            step(
                "template lake-prod-stream",
                Answer::Template("Resources:\n  OrdersStream:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: orders, ShardCount: 4}\n".into()),
            ),
            step("create_change_set lake-prod-stream lakectl", Answer::Done),
            step(
                "wait_change_set lake-prod-stream lakectl",
                Answer::ChangeSet(ChangeSetOutcome::Ready(vec![modify("OrdersStream", "AWS::Kinesis::Stream", "True")])),
            ),
        ]
    }

    #[tokio::test]
    async fn a_protected_data_store_replacement_is_refused_before_it_starts() {
        use crate::deploy::script::{step, Answer, Script};
        let mut steps = replacing_steps();
        steps.push(step(
            "delete_change_set lake-prod-stream lakectl",
            Answer::Done,
        ));
        let script = Script::new(steps);
        let err = deploy_stack(&shared(&script, &[]), "stream")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("would replace or delete the data store(s) OrdersStream"),
            "{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert!(err.contains("--allow-replace stream/OrdersStream"), "{err}");
        assert!(script.left().is_empty(), "{:?}", script.left());
        assert!(
            !script.calls().iter().any(|c| c.starts_with("execute")),
            "{:?}",
            script.calls()
        );
    }

    #[tokio::test]
    async fn an_allowed_replacement_lifts_the_policy_for_that_store_only_and_restores_it() {
        use crate::deploy::script::{step, Answer, Script};
        let mut steps = replacing_steps();
        let mut updated = deployed("lake-prod-stream");
        updated.status = "UPDATE_COMPLETE".into();
        updated.termination_protection = true;
        steps.extend([
            step("set_stack_policy lake-prod-stream", Answer::Done),
            step("event_mark arn:lake-prod-stream", Answer::Mark),
            step("execute_change_set lake-prod-stream lakectl", Answer::Done),
            // DescribeStacks may still say the state from before the update
            // (eventually consistent): read again until the update shows.
            step("events arn:lake-prod-stream", Answer::Events(Vec::new())),
            step(
                "describe arn:lake-prod-stream",
                Answer::Stack(Some(deployed("lake-prod-stream"))),
            ),
            step(
                "events arn:lake-prod-stream",
                Answer::Events(vec![cfn::Event {
                    token: None,
                    id: "e1".into(),
                    time: String::new(),
                    logical_id: "lake-prod-stream".into(),
                    resource_type: "AWS::CloudFormation::Stack".into(),
                    status: "UPDATE_COMPLETE".into(),
                    reason: None,
                }]),
            ),
            step(
                "describe arn:lake-prod-stream",
                Answer::Stack(Some(updated)),
            ),
            step("events arn:lake-prod-stream", Answer::Events(Vec::new())),
            // `finish` puts the full policy back (it differs from the lifted one).
            step(
                "get_stack_policy lake-prod-stream",
                Answer::Template(String::new()),
            ),
            step("set_stack_policy lake-prod-stream", Answer::Done),
        ]);
        let script = Script::new(steps);
        let outcome = deploy_stack(&shared(&script, &["stream/OrdersStream"]), "stream")
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Updated);
        assert!(script.left().is_empty(), "{:?}", script.left());
        let policies: Vec<String> = script
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("set_stack_policy"))
            .collect();
        assert!(
            !policies[0].contains("OrdersStream"),
            "lifted for the update: {}",
            policies[0]
        );
        assert!(
            policies[1].contains("LogicalResourceId/OrdersStream"),
            "restored: {}",
            policies[1]
        );
    }

    /// DescribeStacks for every stack kind the environment can have, in
    /// catalog order: `found` are deployed, the rest do not exist.
    fn describe_every_kind(found: &[(&str, &Deployed)]) -> Vec<crate::deploy::script::Step> {
        use crate::deploy::script::{step, Answer};
        crate::render::catalog::stack_kinds()
            .iter()
            .map(|kind| {
                let answer = found
                    .iter()
                    .find(|(id, _)| *id == kind.id)
                    .map(|(_, d)| (*d).clone());
                step(
                    format!("describe lake-prod-{}", kind.id),
                    Answer::Stack(answer),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn diff_plans_every_stack_when_one_cannot_get_a_change_set() {
        use crate::deploy::script::{step, Answer, Script};
        let mut env = protected_env();
        let mut second = env.stacks[0].clone();
        second.id = "ingest".into();
        second.stack_name = "lake-prod-ingest".into();
        env.stacks.push(second);
        let old = "Resources:\n  OrdersStream:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: orders, ShardCount: 4}\n";
        let mut busy = deployed("lake-prod-ingest");
        busy.status = "UPDATE_IN_PROGRESS".into();
        let stream = deployed("lake-prod-stream");
        let mut steps = describe_every_kind(&[("stream", &stream), ("ingest", &busy)]);
        steps.extend([
            // GetTemplate, in id order (ingest, stream).
            step("template lake-prod-ingest", Answer::Template(old.into())),
            step("template lake-prod-stream", Answer::Template(old.into())),
            // A reviewer role without cloudformation:CreateChangeSet.
            step(
                "create_change_set lake-prod-stream lakectl-diff",
                Answer::Fail(
                    "AccessDenied",
                    "not authorized to perform: cloudformation:CreateChangeSet".into(),
                ),
            ),
        ]);
        let script = Script::new(steps);
        let aws = Aws::scripted(script.clone());
        let planned = plan_against_deployed(&aws, &env, &BTreeMap::new(), true, false)
            .await
            .unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
        assert_eq!(planned.diffs.len(), 2);
        assert!(planned.diffs.iter().all(|d| d.has_changes()));
        let notes = planned.notes.join("\n");
        assert!(
            notes.contains("lake-prod-ingest: UPDATE_IN_PROGRESS, no change set possible now"),
            "{notes}"
        );
        assert!(
            notes.contains("lake-prod-stream: no change set (") && notes.contains("AccessDenied"),
            "{notes}"
        );
    }

    #[tokio::test]
    async fn a_tag_change_alone_is_a_change_of_the_plan() {
        use crate::deploy::script::{step, Answer, Script};
        let mut env = protected_env();
        env.tags.insert("CostCenter".into(), "data-2".into());
        env.tags.insert("Owner".into(), "platform".into());
        let mut stream = deployed("lake-prod-stream");
        stream.tags = [("CostCenter", "data-1"), ("Team", "lake")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut steps = describe_every_kind(&[("stream", &stream)]);
        // The deployed template is the rendered one: only the tags differ.
        steps.push(step(
            "template lake-prod-stream",
            Answer::Template(env.stacks[0].template.clone()),
        ));
        let script = Script::new(steps);
        let aws = Aws::scripted(script.clone());
        let planned = plan_against_deployed(&aws, &env, &BTreeMap::new(), false, false)
            .await
            .unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
        let diff = &planned.diffs[0];
        assert!(
            diff.has_changes(),
            "`diff --detailed-exitcode` exits 2 for it"
        );
        assert!(diff.resources.is_empty());
        insta::assert_snapshot!(crate::plan::report::text(&planned.diffs), @r"
        Stack lake-prod-stream (stream): update
          tags (CloudFormation re-tags every resource of the stack):
            CostCenter: data-1 -> data-2
            Owner: (absent) -> platform
            Team: lake -> (absent)

        1 of 1 stacks change: 0 resources to add, 0 to modify (0 by replacement), 0 to remove; 0 broadening IAM/security changes
        ");
        insta::assert_snapshot!(serde_json::to_string_pretty(&diff.tags).unwrap(), @r#"
        [
          {
            "name": "CostCenter",
            "old": "data-1",
            "new": "data-2"
          },
          {
            "name": "Owner",
            "old": null,
            "new": "platform"
          },
          {
            "name": "Team",
            "old": "lake",
            "new": null
          }
        ]
        "#);
    }

    #[tokio::test]
    async fn a_change_that_arrives_through_a_parameter_is_shown_with_its_cause() {
        use crate::deploy::cfn::ChangeDetail;
        use crate::deploy::script::{step, Answer, Script};
        use crate::render::wiring::ParamSource;
        let template = "Parameters:\n  Subnets: {Type: String}\nResources:\n  Fleet:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties: {MinSize: '0', MaxSize: '1', VPCZoneIdentifier: [!Ref Subnets]}\n";
        let mut env = protected_env();
        env.stacks[0].id = "ingest".into();
        env.stacks[0].stack_name = "lake-prod-ingest".into();
        env.stacks[0].template = template.into();
        env.stacks[0].parameters.insert(
            "Subnets".into(),
            ParamSource::Default {
                value: "subnet-new".into(),
            },
        );
        let mut ingest = deployed("lake-prod-ingest");
        ingest
            .parameters
            .insert("Subnets".into(), "subnet-old".into());
        let mut steps = describe_every_kind(&[("ingest", &ingest)]);
        steps.extend([
            step(
                "template lake-prod-ingest",
                Answer::Template(template.into()),
            ),
            step(
                "create_change_set lake-prod-ingest lakectl-diff",
                Answer::Done,
            ),
            // DescribeChangeSet: the template is the same; the new subnet
            // reaches the group through the parameter.
            step(
                "wait_change_set lake-prod-ingest lakectl-diff",
                Answer::ChangeSet(ChangeSetOutcome::Ready(vec![cfn::PlannedChange {
                    action: "Modify".into(),
                    logical_id: "Fleet".into(),
                    resource_type: "AWS::AutoScaling::AutoScalingGroup".into(),
                    replacement: Some("Conditional".into()),
                    details: vec![ChangeDetail {
                        target: "Properties.VPCZoneIdentifier".into(),
                        requires_recreation: "Conditionally".into(),
                        source: "ParameterReference".into(),
                        causing_entity: Some("Subnets".into()),
                    }],
                }])),
            ),
            step(
                "delete_change_set lake-prod-ingest lakectl-diff",
                Answer::Done,
            ),
        ]);
        let script = Script::new(steps);
        let aws = Aws::scripted(script.clone());
        let planned = plan_against_deployed(&aws, &env, &BTreeMap::new(), true, false)
            .await
            .unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
        insta::assert_snapshot!(crate::plan::report::text(&planned.diffs), @r"
        Stack lake-prod-ingest (ingest): update
          ~ Fleet AWS::AutoScaling::AutoScalingGroup  (via parameter Subnets)  may require replacement (CloudFormation: Conditional, decided by a value known only during the update)
              Properties.VPCZoneIdentifier.0: changes through parameter Subnets  (may require replacement)
          parameter Subnets: subnet-old -> subnet-new

        1 of 1 stacks change: 0 resources to add, 1 to modify (1 by replacement), 0 to remove; 0 broadening IAM/security changes
        ");
    }

    #[tokio::test]
    async fn a_replacement_the_approved_plan_did_not_show_is_refused() {
        use crate::deploy::script::{step, Answer, Script};
        use crate::render::wiring::ParamSource;
        let script = Script::new({
            let mut steps = replacing_steps();
            steps.push(step(
                "delete_change_set lake-prod-stream lakectl",
                Answer::Done,
            ));
            steps
        });
        let mut shared = shared(&script, &[]);
        // Unprotected: the data-store guard stays out of it.
        shared.rendered.termination_protection = false;
        shared.rendered.stacks[0].parameters.insert(
            "KeyArn".into(),
            ParamSource::Output {
                stack: "storage".into(),
                output: "KeyArn".into(),
            },
        );
        // The plan showed key-a; the storage stack's update gave key-b.
        shared.planned.insert(
            "stream".into(),
            [("KeyArn".to_string(), "key-a".to_string())].into(),
        );
        shared.outputs.lock().unwrap().insert(
            "storage".into(),
            [("KeyArn".to_string(), "key-b".to_string())].into(),
        );
        let err = deploy_stack(&shared, "stream")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "upstream outputs changed while this run deployed (KeyArn: key-a -> key-b)"
            ),
            "{err}"
        );
        assert!(err.contains("replaces or removes OrdersStream"), "{err}");
        assert!(script.left().is_empty(), "{:?}", script.left());
        assert!(!script.calls().iter().any(|c| c.starts_with("execute")));
    }

    #[tokio::test]
    async fn a_template_cloudformation_would_refuse_is_refused_before_any_call() {
        use crate::deploy::cfn::{ChangeSetRequest, TEMPLATE_BODY_LIMIT};
        use crate::deploy::script::Script;
        let script = Script::new(Vec::new());
        let cfn = crate::deploy::cfn::Cfn::scripted(script.clone());
        let body = "#".repeat(TEMPLATE_BODY_LIMIT + 1);
        let empty = BTreeMap::new();
        let request = ChangeSetRequest {
            stack_name: "lake-poc-emr",
            change_set_name: "cs",
            template_body: &body,
            parameters: &empty,
            tags: &empty,
            description: "",
        };
        let err = cfn.create_stack(&request, false, None).await.unwrap_err();
        assert!(
            matches!(err, DeployError::TemplateTooLarge { bytes, .. } if bytes == TEMPLATE_BODY_LIMIT + 1)
        );
        let err = cfn
            .create_change_set(&request)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("51201 bytes; CloudFormation takes at most 51200"),
            "{err}"
        );
        assert!(script.calls().is_empty(), "nothing was sent");
    }
    use crate::plan::diff::{diff_stack, StackAction};
    use crate::plan::normalize::normalize;

    fn plan() -> Vec<StackDiff> {
        let role = |actions: &str| {
            normalize(&format!(
                "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {{Statement: []}}\n      Policies:\n        - PolicyName: p\n          PolicyDocument:\n            Statement:\n              - {{Effect: Allow, Action: [{actions}], Resource: 'arn:aws:s3:::b/*'}}\n"
            ))
            .unwrap()
        };
        let none = BTreeMap::new();
        let widened = diff_stack(
            "iam",
            "e-iam",
            Some((&role("s3:GetObject"), &none)),
            Some((&role("s3:GetObject, s3:PutObject"), &none)),
        );
        let narrowed = diff_stack(
            "iam2",
            "e-iam2",
            Some((&role("s3:GetObject, s3:PutObject"), &none)),
            Some((&role("s3:GetObject"), &none)),
        );
        let deleted = diff_stack(
            "kafka",
            "e-kafka",
            Some((&role("s3:GetObject"), &none)),
            None,
        );
        assert_eq!(deleted.action, StackAction::Delete);
        vec![widened, narrowed, deleted]
    }

    #[test]
    fn broadening_and_deletions_need_approval_by_default() {
        let needed = approvals_needed(&plan(), Approval::Broadening);
        assert_eq!(
            needed,
            [
                "e-iam: + R/p: Allow s3:PutObject on arn:aws:s3:::b/*",
                "e-kafka: the stack is deleted"
            ]
        );
    }

    #[test]
    fn any_change_and_never() {
        assert_eq!(approvals_needed(&plan(), Approval::AnyChange).len(), 3);
        assert!(approvals_needed(&plan(), Approval::Never).is_empty());
    }
}
