//! `lakectl down`: deleting an environment's stacks.
//!
//! Owns: deleting one stack (termination protection lifted, `DELETE_FAILED`
//! resources named or retained, EMR's security groups released), deleting
//! all of them dependents-first (through `schedule`), the refusal of
//! protected environments. Must not: create or update stacks (`up`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use aws_sdk_cloudformation::types::StackStatus;

use super::cfn::{Deployed, Event, EventMark};
use super::progress::Progress;
use super::schedule::{self, Job};
use super::watch::watch_from;
use super::{deployed_stacks, DeployError};
use crate::aws::ec2::Permission;
use crate::aws::Aws;
use crate::render::RenderedEnv;

/// What to do with resources CloudFormation could not delete (a bucket
/// that still holds objects, a security group still in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDeleteFailed {
    /// Stop, name them and say how to go on.
    #[default]
    Stop,
    /// Delete the stack again and leave them in place (DeleteStack's
    /// `RetainResources`, valid only for a stack in `DELETE_FAILED`).
    Retain,
}

/// Delete one stack and wait until it is gone. Termination protection is
/// lifted first (the caller has decided the stack goes). A stack already
/// in `DELETE_FAILED` (an earlier run) is not deleted blindly again: its
/// resources that failed are named, and kept with `OnDeleteFailed::Retain`.
pub async fn delete_one(
    aws: &Aws,
    progress: &Progress,
    d: &Deployed,
    on_failed: OnDeleteFailed,
) -> Result<(), DeployError> {
    if d.termination_protection {
        aws.cfn.set_termination_protection(&d.name, false).await?;
    }
    let mut retain = Vec::new();
    if d.status == StackStatus::DeleteFailed {
        let failed = undeletable(aws, d).await?;
        if on_failed == OnDeleteFailed::Stop {
            return Err(delete_failed(d, failed));
        }
        retain = failed.iter().map(|e| e.logical_id.clone()).collect();
    }
    let (left, failures) = delete_and_watch(aws, progress, d, &retain).await?;
    let Some(left) = left else {
        progress.finish(&d.name, "deleted");
        return Ok(());
    };
    let failed: Vec<Event> = failures
        .into_iter()
        .filter(|e| e.resource_type != "AWS::CloudFormation::Stack")
        .collect();
    if left.status == StackStatus::DeleteFailed
        && on_failed == OnDeleteFailed::Retain
        && retain.is_empty()
    {
        // Once more, keeping what could not go.
        let retain: Vec<String> = failed.iter().map(|e| e.logical_id.clone()).collect();
        progress.line(&format!(
            "{}: DELETE_FAILED; deleting it again and keeping {}",
            d.name,
            retain.join(", ")
        ));
        if let (None, _) = delete_and_watch(aws, progress, &left, &retain).await? {
            progress.finish(&d.name, &format!("deleted (kept: {})", retain.join(", ")));
            return Ok(());
        }
    }
    if left.status == StackStatus::DeleteFailed {
        return Err(delete_failed(&left, failed));
    }
    Err(DeployError::StackFailed {
        stack: d.name.clone(),
        status: left.status.to_string(),
        failures: failed,
    })
}

/// One DeleteStack call and the watch until CloudFormation is done.
async fn delete_and_watch(
    aws: &Aws,
    progress: &Progress,
    d: &Deployed,
    retain: &[String],
) -> Result<(Option<Deployed>, Vec<Event>), DeployError> {
    progress.start(&d.name, "deleting");
    let mut mark = aws.cfn.event_mark(&d.id).await?;
    match aws.cfn.delete_stack(&d.id, retain).await {
        Ok(token) => mark.token = Some(token),
        Err(e) => {
            // What counts is the end state: an emulator (moto) deletes the
            // stack and then reports a resource it could not delete as an
            // API error.
            if aws.cfn.describe(&d.id).await?.is_some() {
                return Err(e);
            }
            progress.finish(
                &d.name,
                &format!("deleted, but CloudFormation also answered: {e}"),
            );
            return Ok((None, Vec::new()));
        }
    }
    watch_from(aws, progress, &d.id, &d.name, mark).await
}

/// The resources whose last event is `DELETE_FAILED` (a stack left in
/// `DELETE_FAILED` by an earlier run).
async fn undeletable(aws: &Aws, d: &Deployed) -> Result<Vec<Event>, DeployError> {
    let mut seen = HashSet::new();
    let events = aws
        .cfn
        .events_since(&d.id, &EventMark::beginning().since, &mut seen)
        .await?;
    let mut last: BTreeMap<String, Event> = BTreeMap::new();
    for e in events {
        if e.resource_type != "AWS::CloudFormation::Stack" {
            last.insert(e.logical_id.clone(), e);
        }
    }
    Ok(last
        .into_values()
        .filter(|e| e.status == "DELETE_FAILED")
        .collect())
}

/// A stack CloudFormation could not delete, with what stayed and the way on.
fn delete_failed(d: &Deployed, failed: Vec<Event>) -> DeployError {
    let names: Vec<&str> = failed.iter().map(|e| e.logical_id.as_str()).collect();
    DeployError::Stuck {
        stack: d.name.clone(),
        status: "DELETE_FAILED".into(),
        hint: format!(
            "these resources could not be deleted: {}. Run `lakectl down --retain-failed` to \
             delete the stack and leave them in place (then empty and delete them yourself), or \
             remove what holds them (objects in a bucket, a network interface in a group) and run \
             `lakectl down` again{}",
            if names.is_empty() {
                "none named by CloudFormation".to_string()
            } else {
                names.join(", ")
            },
            failed
                .iter()
                .map(|e| format!(
                    "\n  {} {}: {}",
                    e.logical_id,
                    e.resource_type,
                    e.reason.as_deref().unwrap_or("no reason given")
                ))
                .collect::<String>()
        ),
    }
}

/// The network stack's EMR-managed security groups, by output name.
const EMR_GROUP_OUTPUTS: [&str; 3] = [
    "EmrMasterSecurityGroupId",
    "EmrCoreSecurityGroupId",
    "EmrServiceSecurityGroupId",
];

/// EMR adds rules between its managed security groups (primary, core,
/// service access) that no stack owns; while they reference each other,
/// deleting the groups fails with `DependencyViolation` and the network
/// stack ends `DELETE_FAILED`. Revoke every rule among those groups first.
async fn release_emr_security_groups(
    aws: &Aws,
    progress: &Progress,
    network: &Deployed,
) -> Result<(), DeployError> {
    let groups: Vec<String> = EMR_GROUP_OUTPUTS
        .iter()
        .filter_map(|o| network.outputs.get(*o).cloned())
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = groups.iter().map(String::as_str).collect();
    let described = aws
        .ec2
        .security_groups(&ids)
        .await
        .map_err(|e| crate::aws::aws_error("describing EMR's security groups", e))?;
    let among = |g: &String| groups.contains(g);
    let mut revoked = 0;
    for sg in &described {
        for (egress, rules) in [(false, &sg.ingress), (true, &sg.egress)] {
            // Each rule narrowed to its peers among EMR's groups.
            let mine: Vec<Permission> = rules
                .iter()
                .filter(|p| p.groups.iter().any(among))
                .map(|p| Permission {
                    groups: p.groups.iter().filter(|g| among(g)).cloned().collect(),
                    ..p.clone()
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            revoked += mine.len();
            aws.ec2.revoke(&sg.id, egress, &mine).await.map_err(|e| {
                crate::aws::aws_error(
                    format!("revoking rules between EMR's security groups on {}", sg.id),
                    e,
                )
            })?;
        }
    }
    if revoked > 0 {
        progress.line(&format!(
            "{}: revoked {revoked} rules EMR added between its security groups (they would block deleting them)",
            network.name
        ));
    }
    Ok(())
}

pub struct DownOptions {
    pub yes: bool,
    /// Resources CloudFormation cannot delete: stop, or keep them.
    pub on_failed: OnDeleteFailed,
    /// Delete a protected environment (termination protection is lifted first).
    pub allow_protected: bool,
    pub concurrency: usize,
}

/// Whether the spec protects the environment from `down`.
pub fn protected(rendered: &RenderedEnv, deletion_protection: bool) -> bool {
    rendered.termination_protection || deletion_protection
}

/// `lakectl down`: delete every stack of the environment, each only after
/// the stacks that depend on it are gone. Returns the names deleted.
pub async fn down(
    aws: Aws,
    rendered: &RenderedEnv,
    options: &DownOptions,
    is_protected: bool,
    progress: Arc<Progress>,
    confirm: impl FnOnce(&[String]) -> bool,
) -> Result<Vec<String>, DeployError> {
    if is_protected && !options.allow_protected {
        return Err(DeployError::Protected {
            env: rendered.environment.clone(),
        });
    }
    let deployed = deployed_stacks(&aws, rendered).await?;
    if deployed.is_empty() {
        progress.line(&format!("{}: nothing deployed", rendered.environment));
        return Ok(Vec::new());
    }
    let names: Vec<String> = deployed.values().map(|d| d.name.clone()).collect();
    let approved = options.yes || progress.interactive() && confirm(&names);
    if !approved {
        return Err(DeployError::NotConfirmed { stacks: names });
    }
    // Who depends on whom, among what is deployed (a stack no longer
    // rendered has no known dependents and goes first).
    let depends: BTreeMap<String, Vec<String>> = deployed
        .keys()
        .map(|id| {
            let deps = rendered
                .stack(id)
                .map(|s| s.depends_on.clone())
                .unwrap_or_default();
            (id.clone(), deps)
        })
        .collect();
    let jobs = deployed
        .iter()
        .map(|(id, d)| Job {
            id: id.clone(),
            name: d.name.clone(),
            // Its dependents go first.
            after: depends
                .iter()
                .filter(|(_, deps)| deps.contains(id))
                .map(|(other, _)| other.clone())
                .collect(),
        })
        .collect();
    let aws = Arc::new(aws);
    let on_failed = options.on_failed;
    let finished = schedule::run(jobs, options.concurrency, |job| {
        let (aws, progress) = (Arc::clone(&aws), Arc::clone(&progress));
        let (id, d) = (job.id.clone(), deployed[&job.id].clone());
        async move {
            if id == "network" {
                release_emr_security_groups(&aws, &progress, &d).await?;
            }
            delete_one(&aws, &progress, &d, on_failed).await?;
            Ok(d.name)
        }
    })
    .await?;
    Ok(finished.into_iter().map(|(_, name)| name).collect())
}

#[cfg(test)]
mod tests {
    //! The delete path in states moto never produces, driven by scripted
    //! answers that follow CloudFormation's documentation: DeleteStack
    //! (`RetainResources`: "You can specify this parameter only when the
    //! stack is in the DELETE_FAILED state"), UpdateTerminationProtection
    //! ("you can't delete a stack with termination protection enabled"),
    //! and the User Guide's "Delete stack fails" troubleshooting entry (a
    //! non-empty bucket ends the stack DELETE_FAILED).
    use super::*;
    use crate::deploy::script::{step, Answer, Script};

    fn stack(status: &str, protected: bool) -> Deployed {
        Deployed {
            name: "lake-poc-storage".into(),
            id: "arn:stack/lake-poc-storage/1".into(),
            status: status.into(),
            reason: None,
            last_updated: "2026-11-29T00:00:00Z".into(),
            outputs: BTreeMap::new(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            termination_protection: protected,
        }
    }

    fn event(logical_id: &str, resource_type: &str, status: &str, reason: &str) -> Event {
        Event {
            token: None,
            id: format!("{logical_id}-{status}"),
            time: "2026-11-29T00:00:01Z".into(),
            logical_id: logical_id.into(),
            resource_type: resource_type.into(),
            status: status.into(),
            reason: Some(reason.into()),
        }
    }

    const ID: &str = "arn:stack/lake-poc-storage/1";

    /// DeleteStack accepted; the bucket with objects fails; the stack ends
    /// DELETE_FAILED (newest event first, as CloudFormation lists them).
    fn first_delete_fails() -> Vec<crate::deploy::script::Step> {
        vec![
            step(format!("event_mark {ID}"), Answer::Mark),
            step(format!("delete_stack {ID} retain=[] token=lakectl-delete-"), Answer::Done),
            step(
                format!("events {ID}"),
                Answer::Events(vec![
                    event("lake-poc-storage", "AWS::CloudFormation::Stack", "DELETE_FAILED",
                        "The following resource(s) failed to delete: [ArtifactsBucket]."),
                    event("ArtifactsBucket", "AWS::S3::Bucket", "DELETE_FAILED",
                        "The bucket you tried to delete is not empty. You must delete all versions in the bucket."),
                    event("DataKey", "AWS::KMS::Key", "DELETE_COMPLETE", ""),
                ]),
            ),
            step(format!("describe {ID}"), Answer::Stack(Some(stack("DELETE_FAILED", false)))),
            step(format!("events {ID}"), Answer::Events(Vec::new())),
        ]
    }

    fn gone() -> Vec<crate::deploy::script::Step> {
        vec![
            step(format!("events {ID}"), Answer::Events(Vec::new())),
            step(format!("describe {ID}"), Answer::Stack(None)),
            step(format!("events {ID}"), Answer::Events(Vec::new())),
        ]
    }

    /// `delete_one` of a stack in `status` against `steps`; the script and
    /// the result (the caller asserts what it expects).
    async fn delete_scripted(
        steps: Vec<crate::deploy::script::Step>,
        status: &str,
        protected: bool,
        on_failed: OnDeleteFailed,
    ) -> (Arc<Script>, Result<(), DeployError>) {
        let script = Script::new(steps);
        let aws = Aws::scripted(script.clone());
        let result = delete_one(
            &aws,
            &Progress::new(true),
            &stack(status, protected),
            on_failed,
        )
        .await;
        (script, result)
    }

    #[tokio::test]
    async fn a_delete_that_fails_names_what_stayed_and_how_to_go_on() {
        let (script, result) = delete_scripted(
            first_delete_fails(),
            "CREATE_COMPLETE",
            false,
            OnDeleteFailed::Stop,
        )
        .await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("lake-poc-storage is DELETE_FAILED"), "{err}");
        assert!(
            err.contains("could not be deleted: ArtifactsBucket."),
            "{err}"
        );
        assert!(err.contains("lakectl down --retain-failed"), "{err}");
        assert!(
            err.contains("The bucket you tried to delete is not empty"),
            "{err}"
        );
        assert!(!err.contains("DataKey"), "only what stayed: {err}");
        assert!(script.left().is_empty(), "{:?}", script.left());
    }

    #[tokio::test]
    async fn retain_failed_deletes_again_keeping_only_what_failed() {
        let mut steps = first_delete_fails();
        steps.push(step(format!("event_mark {ID}"), Answer::Mark));
        steps.push(step(
            format!("delete_stack {ID} retain=[ArtifactsBucket] token="),
            Answer::Done,
        ));
        steps.extend(gone());
        let (script, result) =
            delete_scripted(steps, "CREATE_COMPLETE", false, OnDeleteFailed::Retain).await;
        result.unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
        // One token per operation: the retry of an operation is not a new one.
        let tokens: Vec<String> = script
            .calls()
            .iter()
            .filter_map(|c| c.split("token=").nth(1).map(String::from))
            .collect();
        assert_eq!(tokens.len(), 2);
        assert_ne!(tokens[0], tokens[1]);
        for t in &tokens {
            // ClientRequestToken: [a-zA-Z][-a-zA-Z0-9]*, at most 128 characters.
            assert!(t.len() <= 128 && t.starts_with("lakectl-delete-"), "{t}");
            assert!(
                t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{t}"
            );
        }
    }

    #[tokio::test]
    async fn a_stack_left_delete_failed_is_not_deleted_blindly_again() {
        // An earlier run ended DELETE_FAILED: its history says what failed.
        let history = Answer::Events(vec![
            event(
                "ArtifactsBucket",
                "AWS::S3::Bucket",
                "DELETE_FAILED",
                "The bucket you tried to delete is not empty.",
            ),
            event(
                "ArtifactsBucket",
                "AWS::S3::Bucket",
                "DELETE_IN_PROGRESS",
                "",
            ),
            event("LogsBucket", "AWS::S3::Bucket", "DELETE_COMPLETE", ""),
        ]);
        let (script, result) = delete_scripted(
            vec![step(format!("events {ID}"), history)],
            "DELETE_FAILED",
            false,
            OnDeleteFailed::Stop,
        )
        .await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("could not be deleted: ArtifactsBucket."),
            "{err}"
        );
        assert!(
            !script.calls().iter().any(|c| c.starts_with("delete_stack")),
            "{:?}",
            script.calls()
        );

        // With --retain-failed: one DeleteStack that keeps it.
        let history = Answer::Events(vec![event(
            "ArtifactsBucket",
            "AWS::S3::Bucket",
            "DELETE_FAILED",
            "not empty",
        )]);
        let mut steps = vec![
            step(format!("events {ID}"), history),
            step(format!("event_mark {ID}"), Answer::Mark),
            step(
                format!("delete_stack {ID} retain=[ArtifactsBucket] token="),
                Answer::Done,
            ),
        ];
        steps.extend(gone());
        let (script, result) =
            delete_scripted(steps, "DELETE_FAILED", false, OnDeleteFailed::Retain).await;
        result.unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
    }

    #[tokio::test]
    async fn another_operations_events_are_not_this_watchs() {
        // DescribeStackEvents carries each event's ClientRequestToken: a
        // concurrent run's failure must not fail (or show in) this delete.
        let mut foreign = event(
            "Other",
            "AWS::SQS::Queue",
            "UPDATE_FAILED",
            "someone else's",
        );
        foreign.token = Some("console-or-another-run".into());
        let mut steps = vec![
            step(format!("event_mark {ID}"), Answer::Mark),
            step(format!("delete_stack {ID} retain=[] token="), Answer::Done),
            step(
                format!("events {ID}"),
                Answer::Events(vec![
                    foreign,
                    event("DataKey", "AWS::KMS::Key", "DELETE_COMPLETE", ""),
                ]),
            ),
        ];
        steps.extend([
            step(format!("describe {ID}"), Answer::Stack(None)),
            step(format!("events {ID}"), Answer::Events(Vec::new())),
        ]);
        let script = Script::new(steps);
        let aws = Aws::scripted(script.clone());
        let (left, failures) = delete_and_watch(
            &aws,
            &Progress::new(true),
            &stack("CREATE_COMPLETE", false),
            &[],
        )
        .await
        .unwrap();
        assert!(left.is_none());
        assert!(failures.is_empty(), "{failures:?}");
        assert!(script.left().is_empty(), "{:?}", script.left());
    }

    #[tokio::test]
    async fn termination_protection_is_lifted_before_the_delete() {
        // A protected environment's failed first create (ROLLBACK_COMPLETE):
        // DeleteStack would be refused while protection is on.
        let mut steps = vec![
            step(
                "set_termination_protection lake-poc-storage false",
                Answer::Done,
            ),
            step(format!("event_mark {ID}"), Answer::Mark),
            step(format!("delete_stack {ID} retain=[] token="), Answer::Done),
        ];
        steps.extend(gone());
        let (script, result) =
            delete_scripted(steps, "ROLLBACK_COMPLETE", true, OnDeleteFailed::Stop).await;
        result.unwrap();
        assert!(script.left().is_empty(), "{:?}", script.left());
    }
}
