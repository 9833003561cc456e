//! Saved plans: what was reviewed is what is applied. `lakectl diff ENV
//! --out PLAN` writes one; `lakectl up ENV --plan PLAN` applies exactly it
//! or refuses, before anything changes, naming what moved.
//!
//! A plan records, per stack, the rendered template's hash, the parameter
//! values, the artifact hashes it takes, the deployed stack it was planned
//! against (id, last update, status), and for a stack that exists and
//! changes a **named change set**, created at plan time and kept for
//! execution (`lakectl-<env>-<stack>-<serial>`, so CI can link it). A stack
//! whose upstream changes in the same plan is "planned after upstream":
//! its values from that upstream are known only after it applies.
//!
//! Owns: the plan file (its format, content hash, expiry), making one
//! (`save`: the plan against what is deployed, with the change sets kept)
//! and the checks that a plan still holds. Must not: apply it (`up`
//! executes a saved plan through its one deploy path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cfn::{self, ChangeSetOutcome, Deployed};
use super::up::{
    approvals_needed, artifact_hashes, change_set_outcome, discard_change_sets, normalized,
    plan_against_deployed, resolve, stuck_hint, verdicts, Approval, Planned,
};
use super::{outputs_by_id, DeployError};
use crate::aws::Aws;
use crate::plan::diff::refine_replacement;
use crate::plan::propagate;
use crate::plan::report::PlanReport;
use crate::publish::Artifact;
use crate::render::{ParamSource, RenderedEnv};

/// The plan file's format tag.
pub const FORMAT: &str = "lakectl-plan/2";

/// How long a plan may wait for its apply.
pub const LIFETIME_SECS: u64 = 24 * 3600;

/// What the apply does to one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannedAction {
    /// Not deployed: CreateStack with the planned template and values.
    Create,
    /// Deployed and changing: execute the plan's named change set.
    Update,
    /// Deployed, nothing changes.
    Unchanged,
    /// An upstream stack changes in this plan: planned again after it
    /// applies; only the `unknown` parameters may differ from the plan, and
    /// the resulting changes must stay within the reviewed ones.
    AfterUpstream,
    /// Deployed but no longer in the spec: deleted last.
    Delete,
}

/// The deployed stack a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAgainst {
    pub stack_id: String,
    pub last_updated: String,
    pub status: String,
}

impl PlannedAgainst {
    pub fn of(d: &Deployed) -> PlannedAgainst {
        PlannedAgainst {
            stack_id: d.id.clone(),
            last_updated: d.last_updated.clone(),
            status: d.status.to_string(),
        }
    }
}

/// One stack of a saved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStack {
    pub id: String,
    pub stack_name: String,
    pub action: PlannedAction,
    /// sha256 of the rendered template (empty for `Delete`).
    pub template_sha256: String,
    /// Parameter values as planned; unknown ones read `(known after …)`.
    pub parameters: BTreeMap<String, String>,
    /// Parameters known only after an upstream stack of this plan applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// The pinned machine images the stack takes (`images::key` -> id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// The artifacts the stack takes, by name -> sha256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, String>,
    /// What was deployed when planned (`None`: nothing).
    pub deployed: Option<PlannedAgainst>,
    /// The named change set to execute (`Update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_set: Option<String>,
    /// sha256 of what that change set does (each change's action, logical
    /// id, type, replacement and details): a change set deleted and made
    /// again under the same name with other changes is not the reviewed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_set_sha256: Option<String>,
    /// Resources the reviewed plan changes (logical ids), and those it
    /// replaces: an `AfterUpstream` stack must stay within them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewed_changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewed_replacements: Vec<String>,
}

/// A saved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub environment: String,
    /// Unique per plan; part of every change set name.
    pub serial: String,
    /// The AWS account and region the plan was made in: it applies there
    /// only (a plan that only creates stacks would otherwise apply wherever
    /// the credentials point).
    pub account: String,
    pub region: String,
    /// The stack tags the plan applies (CloudFormation puts them on every
    /// resource that takes tags).
    pub tags: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: u64,
    pub expires: u64,
    pub stacks: Vec<PlannedStack>,
    /// What needs approval, per `--require-approval` level, judged when
    /// the plan was made: an approval of this plan is for exactly these.
    pub approvals: BTreeMap<String, Vec<String>>,
    /// The plan as the reviewer saw it (`lakectl diff --output json`).
    pub review: serde_json::Value,
}

/// A plan that cannot be read, or no longer holds. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("{path}: cannot read the plan")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write the plan")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a plan written by `lakectl diff --out`")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: plan format {found}; this lakectl reads {FORMAT}")]
    Format { path: PathBuf, found: String },
    #[error(
        "the plan refused: {reasons}. Nothing was changed; run `lakectl diff --out` again and \
         review the new plan",
        reasons = .0.join("; ")
    )]
    Stale(Vec<String>),
    #[error(
        "the plan stopped: {reasons}. Applied before the stop: {applied}; nothing else was \
         changed. Run `lakectl diff` to see what remains and review a new plan",
        reasons = .reasons.join("; "),
        applied = .applied.join(", ")
    )]
    StoppedAfter {
        reasons: Vec<String>,
        applied: Vec<String>,
    },
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// sha256 of a template's text.
pub fn template_sha256(template: &str) -> String {
    hex::encode(Sha256::digest(template.as_bytes()))
}

/// The name of a plan's change set for `stack_id`: environment, stack and
/// plan, as CloudFormation allows (letters, digits, `-`; at most 128).
pub fn change_set_name(environment: &str, stack_id: &str, serial: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    let mut name = format!(
        "lakectl-{}-{}-{}",
        clean(environment),
        clean(stack_id),
        clean(serial)
    );
    name.truncate(128);
    name
}

/// A serial for a new plan: the time and the process (unique enough for
/// one environment's plans).
pub fn new_serial() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("p{:x}{:x}", nanos, std::process::id())
}

impl SavedPlan {
    /// The plan file's text; its sha256 is the plan's content hash.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plans serialise");
        text.push('\n');
        text
    }

    pub fn content_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_text().as_bytes()))
    }

    pub fn write(&self, path: &Path) -> Result<(), PlanFileError> {
        std::fs::write(path, self.to_text()).map_err(|source| PlanFileError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<SavedPlan, PlanFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |source| PlanFileError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(parse)?;
        // The format first: a plan of another lakectl is said to be one.
        match value["format"].as_str() {
            Some(FORMAT) => {}
            Some(found) => {
                return Err(PlanFileError::Format {
                    path: path.to_path_buf(),
                    found: found.to_string(),
                })
            }
            None => {}
        }
        serde_json::from_value(value).map_err(parse)
    }

    pub fn stack(&self, id: &str) -> Option<&PlannedStack> {
        self.stacks.iter().find(|s| s.id == id)
    }

    /// Everything that can be checked before anything is applied: the
    /// environment, the expiry, the rendered templates, the artifacts, and
    /// every deployed stack against what the plan was made against. Each
    /// reason names the stack and what moved.
    pub fn check(
        &self,
        rendered: &RenderedEnv,
        target: (&str, &str),
        deployed: &BTreeMap<String, Deployed>,
        artifacts: &BTreeMap<String, String>,
        now: u64,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.environment != rendered.environment {
            reasons.push(format!(
                "it is a plan of environment {}, not {}",
                self.environment, rendered.environment
            ));
        }
        let (account, region) = target;
        if (self.account.as_str(), self.region.as_str()) != (account, region) {
            reasons.push(format!(
                "it was made for account {} in {}, and the credentials in use are for account \
                 {account} in {region}",
                self.account, self.region
            ));
        }
        let tags: BTreeMap<String, String> = rendered
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if tags != self.tags {
            let mut moved: Vec<String> = tags
                .keys()
                .chain(self.tags.keys())
                .filter(|k| tags.get(*k) != self.tags.get(*k))
                .cloned()
                .collect();
            moved.sort();
            moved.dedup();
            reasons.push(format!(
                "the stack tags changed since the plan ({}; every stack would be re-tagged)",
                moved.join(", ")
            ));
        }
        if now > self.expires {
            reasons.push(format!(
                "it expired {} s ago (plans live {} h)",
                now - self.expires,
                LIFETIME_SECS / 3600
            ));
        }
        for stack in &rendered.stacks {
            let Some(planned) = self.stack(&stack.id) else {
                reasons.push(format!("{}: not in the plan", stack.stack_name));
                continue;
            };
            if planned.action == PlannedAction::Delete {
                reasons.push(format!(
                    "{}: the plan deletes it, the spec has it",
                    stack.stack_name
                ));
            } else if planned.template_sha256 != template_sha256(&stack.template) {
                reasons.push(format!(
                    "{}: its template changed since the plan (a spec or template file edited)",
                    stack.stack_name
                ));
            }
            for (name, sha) in &planned.artifacts {
                match artifacts.get(name) {
                    Some(now) if now == sha => {}
                    Some(now) => reasons.push(format!(
                        "{}: artifact {name} was rebuilt (planned sha256 {}…, now {}…)",
                        stack.stack_name,
                        &sha[..sha.len().min(12)],
                        &now[..now.len().min(12)]
                    )),
                    None => reasons.push(format!(
                        "{}: artifact {name} is not at hand (pass --artifacts DIR)",
                        stack.stack_name
                    )),
                }
            }
        }
        for planned in &self.stacks {
            if planned.action != PlannedAction::Delete && rendered.stack(&planned.id).is_none() {
                reasons.push(format!(
                    "{}: in the plan, no longer in the spec",
                    planned.stack_name
                ));
            }
            let now = deployed.get(&planned.id).map(PlannedAgainst::of);
            match (&planned.deployed, &now) {
                (None, None) => {}
                (None, Some(d)) => reasons.push(format!(
                    "{}: created since the plan ({} at {})",
                    planned.stack_name, d.status, d.last_updated
                )),
                (Some(_), None) => {
                    reasons.push(format!("{}: deleted since the plan", planned.stack_name))
                }
                (Some(was), Some(is)) if was != is => reasons.push(format!(
                    "{}: changed since the plan (planned against {} of {}, now {} of {}{})",
                    planned.stack_name,
                    was.status,
                    was.last_updated,
                    is.status,
                    is.last_updated,
                    if was.stack_id != is.stack_id {
                        ", another stack id"
                    } else {
                        ""
                    }
                )),
                _ => {}
            }
        }
        for (id, d) in deployed {
            if self.stack(id).is_none() {
                reasons.push(format!("{}: deployed, but not in the plan", d.name));
            }
        }
        reasons
    }
}

/// `lakectl diff --out`: the plan against what is deployed, saved. Every
/// stack that exists and changes (and whose upstream does not change in
/// this plan) gets a named change set, kept for `up --plan`; its verdicts
/// refine the plan as a diff's do. Stacks downstream of a change are
/// planned after upstream.
pub async fn save(
    aws: &Aws,
    rendered: &RenderedEnv,
    artifacts: &BTreeMap<String, Artifact>,
    refresh_images: bool,
) -> Result<(Planned, SavedPlan), DeployError> {
    let mut planned =
        plan_against_deployed(aws, rendered, artifacts, false, refresh_images).await?;
    let serial = new_serial();
    let mut kept_sets: Vec<(String, String)> = Vec::new();
    let hashes = artifact_hashes(artifacts);
    let outputs = outputs_by_id(&planned.deployed);
    let mut stacks: Vec<PlannedStack> = Vec::new();
    for id in &rendered.deploy_order {
        let stack = rendered.stack(id).expect("rendered");
        let diff_at = planned
            .diffs
            .iter()
            .position(|d| d.id == *id)
            .expect("every rendered stack is planned");
        let deployed = planned.deployed.get(id);
        let images = planned.images.get(id).cloned().unwrap_or_default();
        let mut values = hashes.clone();
        values.extend(images.clone());
        // Values the plan cannot know: an upstream output this plan moves
        // (`plan::propagate`), or a stack not deployed yet.
        let values_planned = planned.parameters.get(id).cloned().unwrap_or_default();
        let unknown: Vec<String> = values_planned
            .iter()
            .filter(|(_, v)| propagate::is_unknown(v))
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(d) = deployed {
            if let Some(hint) = stuck_hint(d) {
                discard_change_sets(aws, &kept_sets).await;
                return Err(DeployError::Stuck {
                    stack: d.name.clone(),
                    status: d.status.to_string(),
                    hint,
                });
            }
        }
        // A stack holding nothing is created (`up` deletes it first).
        let holds_resources = deployed.filter(|d| d.holds_resources());
        let has_changes = planned.diffs[diff_at].has_changes();
        let mut action = match (holds_resources, unknown.is_empty(), has_changes) {
            (_, false, _) => PlannedAction::AfterUpstream,
            (None, true, _) => PlannedAction::Create,
            (Some(_), true, true) => PlannedAction::Update,
            (Some(_), true, false) => PlannedAction::Unchanged,
        };
        let (mut change_set, mut change_set_sha256) = (None, None);
        if action == PlannedAction::Update {
            let name = change_set_name(&rendered.environment, id, &serial);
            let kept = "lakectl plan, kept for `lakectl up --plan`";
            let outcome = match resolve(stack, &outputs, &values) {
                Ok(params) => {
                    change_set_outcome(aws, rendered, stack, &params, &name, kept, true).await
                }
                Err(e) => Err(e),
            };
            // A plan that cannot be made leaves no change set behind.
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    discard_change_sets(aws, &kept_sets).await;
                    return Err(e);
                }
            };
            match outcome {
                ChangeSetOutcome::Empty => {
                    aws.cfn.delete_change_set(&stack.stack_name, &name).await?;
                    action = PlannedAction::Unchanged;
                }
                ChangeSetOutcome::Ready(changes) => {
                    change_set_sha256 = Some(changes_sha256(&changes));
                    refine_replacement(
                        &mut planned.diffs[diff_at],
                        &verdicts(changes),
                        &normalized(stack)?,
                    );
                    kept_sets.push((stack.stack_name.clone(), name.clone()));
                    change_set = Some(name);
                }
            }
        }
        let diff = &planned.diffs[diff_at];
        stacks.push(PlannedStack {
            id: id.clone(),
            stack_name: stack.stack_name.clone(),
            action,
            template_sha256: template_sha256(&stack.template),
            parameters: values_planned,
            unknown,
            images,
            artifacts: stack
                .parameters
                .values()
                .filter_map(|source| match source {
                    ParamSource::Artifact { artifact } => hashes
                        .get(artifact)
                        .map(|sha| (artifact.clone(), sha.clone())),
                    _ => None,
                })
                .collect(),
            deployed: deployed.map(PlannedAgainst::of),
            change_set,
            change_set_sha256,
            reviewed_changes: diff
                .resources
                .iter()
                .map(|r| r.logical_id.clone())
                .collect(),
            reviewed_replacements: diff
                .resources
                .iter()
                .filter(|r| r.requires_replacement || r.conditional)
                .map(|r| r.logical_id.clone())
                .collect(),
        });
    }
    for (id, d) in &planned.deployed {
        if rendered.stack(id).is_none() {
            stacks.push(PlannedStack {
                id: id.clone(),
                stack_name: d.name.clone(),
                action: PlannedAction::Delete,
                template_sha256: String::new(),
                parameters: BTreeMap::new(),
                unknown: Vec::new(),
                images: BTreeMap::new(),
                artifacts: BTreeMap::new(),
                deployed: Some(PlannedAgainst::of(d)),
                change_set: None,
                change_set_sha256: None,
                reviewed_changes: Vec::new(),
                reviewed_replacements: Vec::new(),
            });
        }
    }
    let approvals = [Approval::Broadening, Approval::AnyChange]
        .into_iter()
        .map(|level| {
            (
                level.name().to_string(),
                approvals_needed(&planned.diffs, level),
            )
        })
        .collect();
    let review = serde_json::to_value(PlanReport {
        environment: rendered.environment.clone(),
        diffs: planned.diffs.clone(),
        notes: planned.notes.clone(),
        drift: Vec::new(),
    })
    .expect("plans serialise");
    let created = now_secs();
    let plan = SavedPlan {
        format: FORMAT.into(),
        environment: rendered.environment.clone(),
        serial,
        account: aws.account.clone(),
        region: aws.region.clone(),
        tags: rendered
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created,
        expires: created + LIFETIME_SECS,
        stacks,
        approvals,
        review,
    };
    Ok((planned, plan))
}

/// sha256 of what a change set does, in a stable order.
pub fn changes_sha256(changes: &[cfn::PlannedChange]) -> String {
    let mut lines: Vec<String> = changes
        .iter()
        .map(|c| {
            let mut details: Vec<String> = c
                .details
                .iter()
                .map(|d| {
                    format!(
                        "{}|{}|{}|{}",
                        d.target,
                        d.requires_recreation,
                        d.source,
                        d.causing_entity.as_deref().unwrap_or("")
                    )
                })
                .collect();
            details.sort();
            format!(
                "{} {} {} {} [{}]",
                c.action,
                c.logical_id,
                c.resource_type,
                c.replacement.as_deref().unwrap_or("-"),
                details.join(";")
            )
        })
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

/// Values a saved plan knew (all but its `unknown` ones) that differ now.
pub fn values_beyond_plan(planned: &PlannedStack, now: &BTreeMap<String, String>) -> Vec<String> {
    now.iter()
        .filter(|(k, _)| !planned.unknown.contains(k))
        .filter_map(|(k, v)| {
            let was = planned.parameters.get(k);
            (was != Some(v)).then(|| {
                format!(
                    "{k}: {} -> {v}",
                    was.map(String::as_str).unwrap_or("(not in the plan)")
                )
            })
        })
        .collect()
}

/// What a change set of a stack planned after its upstream does beyond the
/// reviewed plan: resources it did not change, replacements it did not show
/// — unless the change comes only from values the plan marked unknown
/// (the change set's details: parameter references to them).
pub fn changes_beyond_review(
    planned: &PlannedStack,
    changes: &[cfn::PlannedChange],
) -> Vec<String> {
    let from_unknown = |c: &cfn::PlannedChange| {
        !c.details.is_empty()
            && c.details.iter().all(|d| {
                d.source == "ParameterReference"
                    && d.causing_entity
                        .as_ref()
                        .is_some_and(|p| planned.unknown.contains(p))
            })
    };
    changes
        .iter()
        .filter_map(|c| {
            let replaces = matches!(c.replacement.as_deref(), Some("True" | "Conditional"));
            // An in-place change that only an unknown value causes was
            // shown as "may change" where the plan could see the reference;
            // a replacement must have been reviewed as one.
            if !replaces && from_unknown(c) {
                return None;
            }
            if !planned.reviewed_changes.contains(&c.logical_id) {
                Some(format!(
                    "{} {} ({})",
                    c.action, c.logical_id, c.resource_type
                ))
            } else if replaces && !planned.reviewed_replacements.contains(&c.logical_id) {
                Some(format!("{} is replaced", c.logical_id))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_set_names_say_environment_stack_and_plan() {
        assert_eq!(
            change_set_name("prod", "ingest", "p1a2b"),
            "lakectl-prod-ingest-p1a2b"
        );
        assert_eq!(change_set_name("a_b", "c", "d").len(), 15);
        assert!(change_set_name(&"x".repeat(200), "s", "p").len() <= 128);
    }

    #[test]
    fn a_plan_reads_back_what_was_written() {
        let plan = SavedPlan {
            format: FORMAT.into(),
            environment: "local".into(),
            serial: "p1".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: BTreeMap::new(),
            created: 1,
            expires: 2,
            stacks: vec![PlannedStack {
                id: "network".into(),
                stack_name: "lake-local-network".into(),
                action: PlannedAction::Update,
                template_sha256: template_sha256("Resources: {}"),
                parameters: BTreeMap::new(),
                unknown: vec![],
                images: BTreeMap::new(),
                artifacts: BTreeMap::new(),
                deployed: None,
                change_set: Some("lakectl-local-network-p1".into()),
                change_set_sha256: None,
                reviewed_changes: vec!["Vpc".into()],
                reviewed_replacements: vec![],
            }],
            approvals: BTreeMap::new(),
            review: serde_json::json!({}),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        plan.write(&path).unwrap();
        assert_eq!(SavedPlan::read(&path).unwrap(), plan);
        std::fs::write(&path, "{}").unwrap();
        let err = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a plan written by `lakectl diff --out`"),
            "{err}"
        );
    }
}
