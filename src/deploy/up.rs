//! `lakectl up` and `lakectl diff` against deployed stacks.
//!
//! Owns: the plan against what is deployed, the approval gate, and applying
//! stacks in dependency order (independent ones in parallel, bounded)
//! through change sets, with recovery from states an earlier run or a
//! failed create left behind. Must not: compare templates itself (`plan`)
//! or talk to the CloudFormation SDK directly (`cfn`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use super::cfn::{ChangeSetOutcome, ChangeSetRequest, Deployed};
use super::progress::Progress;
use super::{
    cfn, comparable_parameters, deployed_stacks, down, outputs_by_id, parameter_types,
    parameter_value, parameters_for_plan, protect, Aws, DeployError,
};
use crate::plan::diff::{refine_replacement, StackDiff};
use crate::plan::{self, normalize::normalize, Earlier};
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
fn stuck_hint(d: &Deployed) -> Option<String> {
    let name = &d.name;
    match d.status.as_str() {
        "UPDATE_ROLLBACK_FAILED" => Some(format!(
            "Continue the rollback (`aws cloudformation continue-update-rollback --stack-name {name}`, \
             skipping resources that cannot roll back), then run up again."
        )),
        "ROLLBACK_FAILED" | "DELETE_FAILED" => Some(format!(
            "Delete it (`lakectl down` or `aws cloudformation delete-stack --stack-name {name}`, \
             retaining what cannot be deleted), then run up again."
        )),
        _ => None,
    }
}

/// The stack's template and parameters as deployed, when it has resources.
async fn earlier_of(aws: &Aws, d: &Deployed) -> Result<Option<Earlier>, DeployError> {
    // A stack that never ran its first change set, or whose first create
    // rolled back, holds no resources: planning treats it as absent.
    if d.never_executed() || d.status == "ROLLBACK_COMPLETE" {
        return Ok(None);
    }
    Ok(Some(Earlier {
        origin: format!("deployed stack {}", d.name),
        template: aws.cfn.template(&d.name).await?,
        parameters: d.parameters.clone(),
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
            let Ok(params) = resolve(stack, &outputs, &values_for(&stack.id)) else {
                continue;
            };
            let verdicts = replacement_verdicts(aws, rendered, stack, &params).await?;
            refine_replacement(diff, &verdicts);
        }
    }
    Ok(Planned {
        diffs,
        deployed,
        images,
        notes,
    })
}

/// Create a change set for `stack`, read CloudFormation's replacement
/// verdicts, and delete it again.
async fn replacement_verdicts(
    aws: &Aws,
    rendered: &RenderedEnv,
    stack: &RenderedStack,
    params: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, DeployError> {
    let name = change_set_name("lakectl-diff");
    let tags = tags(rendered);
    aws.cfn
        .create_change_set(&ChangeSetRequest {
            stack_name: &stack.stack_name,
            change_set_name: &name,
            template_body: &stack.template,
            parameters: params,
            tags: &tags,
            description: "lakectl diff (never executed)",
        })
        .await?;
    let outcome = aws.cfn.wait_change_set(&stack.stack_name, &name).await;
    aws.cfn.delete_change_set(&stack.stack_name, &name).await?;
    Ok(match outcome? {
        ChangeSetOutcome::Empty => Vec::new(),
        ChangeSetOutcome::Ready(changes) => changes
            .into_iter()
            .filter(|c| c.action == "Modify")
            .filter_map(|c| Some((c.logical_id, c.replacement?)))
            .collect(),
    })
}

fn artifact_hashes(artifacts: &BTreeMap<String, Artifact>) -> BTreeMap<String, String> {
    artifacts
        .iter()
        .map(|(k, a)| (k.clone(), a.sha256.clone()))
        .collect()
}

/// Every parameter's value, or the first parameter whose value is not known.
fn resolve(
    stack: &RenderedStack,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    hashes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    stack
        .parameters
        .iter()
        .map(|(k, source)| {
            parameter_value(source, outputs, hashes)
                .map(|v| (k.clone(), v))
                .ok_or_else(|| {
                    format!(
                        "parameter {k} of {} has no value: {} is missing",
                        stack.stack_name,
                        crate::plan::parameter_text(source)
                    )
                })
        })
        .collect()
}

fn tags(rendered: &RenderedEnv) -> BTreeMap<String, String> {
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
    /// The images the plan pinned, per stack: what was shown is applied.
    images: BTreeMap<String, BTreeMap<String, String>>,
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
    let artifacts = publish::locate_for(&rendered, options.artifacts_dir.as_deref())
        .map_err(|e| DeployError::Artifact(e.to_string()))?;
    // Stacks an earlier run left in progress are waited for, not fought.
    for (id, d) in deployed_stacks(&aws, &rendered).await? {
        if d.in_progress() {
            progress.line(&format!(
                "{}: {} (an earlier run or another user); waiting for it",
                d.name, d.status
            ));
            down::watch(&aws, &progress, &d.id, &d.name).await?;
            let _ = id;
        }
    }
    let Planned {
        diffs,
        deployed,
        images,
        notes,
    } = plan_against_deployed(&aws, &rendered, &artifacts, false, options.refresh_images).await?;
    for note in &notes {
        progress.line(note);
    }
    progress.line(&format!("plan:\n{}", crate::plan::report::text(&diffs)));
    let needed = approvals_needed(&diffs, options.approval);
    let approved = needed.is_empty() || options.yes || progress.interactive() && confirm(&needed);
    if !approved {
        return Err(DeployError::Refused(format!(
            "these changes need approval (--require-approval {}):\n  {}\nreview them and re-run with --yes",
            match options.approval {
                Approval::AnyChange => "any-change",
                _ => "broadening",
            },
            needed.join("\n  ")
        )));
    }
    let shared = Arc::new(Shared {
        outputs: Mutex::new(BTreeMap::new()),
        aws,
        rendered,
        progress,
        artifacts,
        published: tokio::sync::Mutex::new(BTreeMap::new()),
        executed: Mutex::new(0),
        images,
    });
    let mut report = UpReport {
        plan: diffs,
        ..UpReport::default()
    };
    let result = apply(&shared, &mut report, options.concurrency.max(1)).await;
    if result.is_ok() {
        // Stacks whose part left the spec go last, dependents first.
        let rendered_ids: BTreeSet<&str> = shared
            .rendered
            .stacks
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        let removed: Vec<&Deployed> = deployed
            .iter()
            .filter(|(id, _)| !rendered_ids.contains(id.as_str()))
            .map(|(_, d)| d)
            .collect();
        for d in removed.into_iter().rev() {
            down::delete_one(&shared.aws, &shared.progress, d).await?;
            report.outcomes.push((d.name.clone(), Outcome::Deleted));
        }
    }
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
/// `concurrency` at a time. The first failure stops new starts; stacks
/// already at work are waited for.
async fn apply(
    shared: &Arc<Shared>,
    report: &mut UpReport,
    concurrency: usize,
) -> Result<(), DeployError> {
    let mut pending: Vec<String> = shared.rendered.deploy_order.clone();
    let mut done: HashSet<String> = HashSet::new();
    let mut running: JoinSet<(String, Result<Outcome, DeployError>)> = JoinSet::new();
    let mut failures: Vec<DeployError> = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut at_work: BTreeSet<String> = BTreeSet::new();
    loop {
        if failures.is_empty() {
            let ready: Vec<String> = pending
                .iter()
                .filter(|id| {
                    let stack = shared.rendered.stack(id).expect("rendered");
                    stack.depends_on.iter().all(|d| done.contains(d))
                })
                .take(concurrency.saturating_sub(running.len()))
                .cloned()
                .collect();
            for id in ready {
                pending.retain(|p| *p != id);
                at_work.insert(id.clone());
                let shared = Arc::clone(shared);
                running.spawn(async move {
                    let result = deploy_stack(&shared, &id).await;
                    (id, result)
                });
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let (id, result) = joined.expect("a stack task panicked");
                at_work.remove(&id);
                let name = shared.rendered.stack(&id).expect("rendered").stack_name.clone();
                match result {
                    Ok(outcome) => {
                        done.insert(id);
                        report.outcomes.push((name, outcome));
                    }
                    Err(e) => {
                        shared.progress.finish(&name, "failed");
                        failures.push(e);
                    }
                }
            }
            _ = &mut ctrl_c => {
                running.abort_all();
                let names = at_work
                    .iter()
                    .map(|id| shared.rendered.stack(id).expect("rendered").stack_name.clone())
                    .collect();
                return Err(DeployError::Interrupted(names));
            }
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => {
            let text = failures
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            Err(DeployError::Refused(text))
        }
    }
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
        .await
        .map_err(|e| DeployError::Artifact(e.to_string()))?;
        if result == Published::Uploaded {
            shared.progress.line(&format!(
                "EMR TLS certificate (self-signed, {}) published: s3://{bucket}/{}",
                publish::tls::node_names(&region).join(", "),
                publish::tls::EMR_TLS_KEY
            ));
        }
    }
    let rds_ca_key = crate::render::bootstrap::rds_ca_script_key();
    if stack.template.contains(&rds_ca_key) {
        let bucket = artifacts_bucket(shared)?;
        let result = publish::put_once(&shared.aws.s3, &bucket, &rds_ca_key, || {
            Ok(crate::render::bootstrap::rds_ca_script().into_bytes())
        })
        .await
        .map_err(|e| DeployError::Artifact(e.to_string()))?;
        if result == Published::Uploaded {
            shared.progress.line(&format!(
                "EMR bootstrap action (RDS CA bundle) published: s3://{bucket}/{rds_ca_key}"
            ));
        }
    }
    let mut hashes = BTreeMap::new();
    for source in stack.parameters.values() {
        let ParamSource::Artifact { artifact } = source else {
            continue;
        };
        let a = shared.artifacts.get(artifact).ok_or_else(|| {
            DeployError::Artifact(format!(
                "stack {} needs artifact {artifact}, which is not built",
                stack.id
            ))
        })?;
        let mut published = shared.published.lock().await;
        if !published.contains_key(artifact) {
            let bucket = artifacts_bucket(shared)?;
            let result = publish::publish(&shared.aws.s3, &bucket, a)
                .await
                .map_err(|e| DeployError::Artifact(e.to_string()))?;
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
        .ok_or_else(|| {
            DeployError::Artifact(
                "the storage stack has no ArtifactsBucketName output to publish artifacts to"
                    .into(),
            )
        })
}

/// Bring one stack to its rendered state.
async fn deploy_stack(shared: &Shared, id: &str) -> Result<Outcome, DeployError> {
    let stack = shared.rendered.stack(id).expect("rendered");
    let (aws, progress) = (&shared.aws, &shared.progress);
    let name = stack.stack_name.as_str();
    let mut current = aws.cfn.describe(name).await?;
    if let Some(d) = current.as_ref().filter(|d| d.in_progress()) {
        progress.start(name, &format!("waiting: {} from an earlier run", d.status));
        current = down::watch(aws, progress, &d.id, name).await?;
    }
    if let Some(d) = &current {
        if let Some(hint) = stuck_hint(d) {
            return Err(DeployError::Stuck {
                stack: name.to_string(),
                status: d.status.clone(),
                hint,
            });
        }
        if d.status == "ROLLBACK_COMPLETE" {
            progress.line(&format!(
                "{name}: ROLLBACK_COMPLETE from a failed first create holds no resources; deleting it to create it again"
            ));
            down::delete_one(aws, progress, d).await?;
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
    let params = resolve(stack, &outputs, &hashes).map_err(|message| DeployError::Stuck {
        stack: name.to_string(),
        status: "waiting for a parameter".into(),
        hint: format!("{message}; check the upstream stack's outputs with `lakectl outputs`"),
    })?;
    let tags = tags(&shared.rendered);
    if let Some(d) = current.as_ref().filter(|d| d.never_executed()) {
        // A change set made elsewhere and never executed: no resources.
        progress.line(&format!(
            "{name}: REVIEW_IN_PROGRESS (a change set never executed) holds no resources; deleting it to create the stack"
        ));
        down::delete_one(aws, progress, d).await?;
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
        aws.cfn
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
            cfn::EventMark::beginning(),
            Outcome::Created,
        )
        .await;
    };
    let same_template =
        normalize(&aws.cfn.template(name).await?).ok() == normalize(&stack.template).ok();
    let deployed_params = comparable_parameters(&d.parameters, &parameter_types(&stack.template));
    if same_template && deployed_params == params && d.tags == tags {
        protect_stack(shared, stack, &d).await?;
        record_outputs(shared, id, &d);
        progress.finish(name, Outcome::Unchanged.text());
        return Ok(Outcome::Unchanged);
    }
    progress.start(name, "updating");
    let change_set = change_set_name("lakectl");
    aws.cfn.create_change_set(&request(&change_set)).await?;
    match aws.cfn.wait_change_set(name, &change_set).await? {
        ChangeSetOutcome::Empty => {
            aws.cfn.delete_change_set(name, &change_set).await?;
            protect_stack(shared, stack, &d).await?;
            record_outputs(shared, id, &d);
            progress.finish(name, "no changes (empty change set, removed)");
            return Ok(Outcome::Unchanged);
        }
        ChangeSetOutcome::Ready(changes) => {
            for c in changes
                .iter()
                .filter(|c| c.replacement.as_deref() == Some("True"))
            {
                progress.line(&format!(
                    "{name}: {} {} will be replaced",
                    c.logical_id, c.resource_type
                ));
            }
        }
    }
    let mark = aws.cfn.event_mark(&d.id).await?;
    aws.cfn.execute_change_set(name, &change_set).await?;
    *shared.executed.lock().expect("lock") += 1;
    finish(shared, id, stack, &d.id, mark, Outcome::Updated).await
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
        down::watch_from(&shared.aws, &shared.progress, stack_id, name, mark).await?;
    let finished = finished.ok_or_else(|| DeployError::StackFailed {
        stack: name.to_string(),
        status: "DELETE_COMPLETE".into(),
        failures: failures.clone(),
    })?;
    if !finished.healthy() {
        return Err(DeployError::StackFailed {
            stack: name.to_string(),
            status: finished.status,
            failures,
        });
    }
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
/// environments; set only when missing so re-runs make no calls.
async fn protect_stack(
    shared: &Shared,
    stack: &RenderedStack,
    d: &Deployed,
) -> Result<(), DeployError> {
    if !shared.rendered.termination_protection {
        return Ok(());
    }
    if !d.termination_protection {
        shared
            .aws
            .cfn
            .set_termination_protection(&d.name, true)
            .await?;
    }
    let policy = stack_policy(stack)?;
    shared.aws.cfn.set_stack_policy(&d.name, &policy).await
}

/// The stack policy of a protected stack, from its rendered template.
fn stack_policy(stack: &RenderedStack) -> Result<String, DeployError> {
    let template = normalize(&stack.template).map_err(|message| {
        DeployError::Plan(crate::plan::PlanError::Template {
            path: format!("{} (rendered)", stack.id),
            message,
        })
    })?;
    Ok(protect::stack_policy(&template))
}

#[cfg(test)]
mod tests {
    use super::*;
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
