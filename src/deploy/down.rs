//! `lakectl down`, and watching a stack until CloudFormation is done with it
//! (shared with `up`).
//!
//! Owns: deleting stacks dependents-first (independent ones in parallel),
//! the refusal of protected environments, and the event watch loop. Must
//! not: create or update stacks (`up`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::cfn::{Deployed, Event, EventMark};
use super::progress::Progress;
use super::{deployed_stacks, Aws, DeployError};
use crate::render::RenderedEnv;

/// Report events of stack `id` from `mark` until it leaves `*_IN_PROGRESS`;
/// returns its final state (`None` once deleted) and the failed events seen.
pub async fn watch_from(
    aws: &Aws,
    progress: &Progress,
    id: &str,
    name: &str,
    mut mark: EventMark,
) -> Result<(Option<Deployed>, Vec<Event>), DeployError> {
    let mut failures = Vec::new();
    loop {
        let fresh = aws
            .cfn
            .events_since(id, &mark.since, &mut mark.seen)
            .await?;
        for e in &fresh {
            progress.event(name, e);
            if e.failed() {
                failures.push(e.clone());
            }
        }
        let state = aws.cfn.describe(id).await?;
        match state {
            Some(d) if d.in_progress() => tokio::time::sleep(aws.cfn.poll).await,
            other => {
                // Events written between the last read and the final state.
                for e in aws
                    .cfn
                    .events_since(id, &mark.since, &mut mark.seen)
                    .await?
                {
                    progress.event(name, &e);
                    if e.failed() {
                        failures.push(e);
                    }
                }
                return Ok((other, failures));
            }
        }
    }
}

/// Wait for whatever CloudFormation is doing to stack `id` now.
pub async fn watch(
    aws: &Aws,
    progress: &Progress,
    id: &str,
    name: &str,
) -> Result<Option<Deployed>, DeployError> {
    let mark = aws.cfn.event_mark(id).await?;
    Ok(watch_from(aws, progress, id, name, mark).await?.0)
}

/// Delete one stack and wait until it is gone.
pub async fn delete_one(aws: &Aws, progress: &Progress, d: &Deployed) -> Result<(), DeployError> {
    progress.start(&d.name, "deleting");
    let mark = aws.cfn.event_mark(&d.id).await?;
    if let Err(e) = aws.cfn.delete_stack(&d.id).await {
        // What counts is the end state: an emulator (moto) deletes the stack
        // and then reports a resource it could not delete as an API error.
        if aws.cfn.describe(&d.id).await?.is_some() {
            return Err(e);
        }
        progress.finish(
            &d.name,
            &format!("deleted, but CloudFormation also answered: {e}"),
        );
        return Ok(());
    }
    let (left, failures) = watch_from(aws, progress, &d.id, &d.name, mark).await?;
    match left {
        None => {
            progress.finish(&d.name, "deleted");
            Ok(())
        }
        Some(left) => Err(DeployError::StackFailed {
            stack: d.name.clone(),
            status: left.status,
            failures,
        }),
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
    let described = aws
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(groups.clone()))
        .send()
        .await
        .map_err(|e| super::cfn::aws_error("describing EMR's security groups".into(), e))?;
    let among = |pair: &aws_sdk_ec2::types::UserIdGroupPair| {
        pair.group_id()
            .is_some_and(|g| groups.iter().any(|x| x == g))
    };
    let mut revoked = 0;
    for sg in described.security_groups() {
        let id = sg.group_id().unwrap_or_default();
        for (egress, perms) in [
            (false, sg.ip_permissions()),
            (true, sg.ip_permissions_egress()),
        ] {
            let mine: Vec<aws_sdk_ec2::types::IpPermission> = perms
                .iter()
                .filter(|p| p.user_id_group_pairs().iter().any(among))
                .map(|p| {
                    aws_sdk_ec2::types::IpPermission::builder()
                        .set_ip_protocol(p.ip_protocol().map(String::from))
                        .set_from_port(p.from_port())
                        .set_to_port(p.to_port())
                        .set_user_id_group_pairs(Some(
                            p.user_id_group_pairs()
                                .iter()
                                .filter(|x| among(x))
                                .map(|x| {
                                    aws_sdk_ec2::types::UserIdGroupPair::builder()
                                        .set_group_id(x.group_id().map(String::from))
                                        .build()
                                })
                                .collect(),
                        ))
                        .build()
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            revoked += mine.len();
            let what = format!("revoking rules between EMR's security groups on {id}");
            if egress {
                aws.ec2
                    .revoke_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(mine))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| super::cfn::aws_error(what, e))?;
            } else {
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(mine))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| super::cfn::aws_error(what, e))?;
            }
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
        return Err(DeployError::Refused(format!(
            "environment {} is protected (spec `protection`); nothing was deleted. If you really \
             mean to delete it, pass --allow-protected (buckets and databases with \
             DeletionPolicy Retain/Snapshot are kept either way)",
            rendered.environment
        )));
    }
    let deployed = deployed_stacks(&aws, rendered).await?;
    if deployed.is_empty() {
        progress.line(&format!("{}: nothing deployed", rendered.environment));
        return Ok(Vec::new());
    }
    let names: Vec<String> = deployed.values().map(|d| d.name.clone()).collect();
    let approved = options.yes || progress.interactive() && confirm(&names);
    if !approved {
        return Err(DeployError::Refused(format!(
            "down deletes {}; re-run with --yes to go ahead",
            names.join(", ")
        )));
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
    let aws = Arc::new(aws);
    let mut left: BTreeMap<String, Deployed> = deployed;
    let mut running: JoinSet<(String, Result<(), DeployError>)> = JoinSet::new();
    let mut at_work: HashSet<String> = HashSet::new();
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    loop {
        if failures.is_empty() {
            let ready: Vec<String> = left
                .keys()
                .filter(|id| !at_work.contains(*id))
                .filter(|id| {
                    // No remaining stack depends on it.
                    !left
                        .keys()
                        .any(|other| depends.get(other).is_some_and(|d| d.contains(id)))
                })
                .take(options.concurrency.max(1).saturating_sub(running.len()))
                .cloned()
                .collect();
            for id in ready {
                at_work.insert(id.clone());
                let d = left[&id].clone();
                let (aws, progress) = (Arc::clone(&aws), Arc::clone(&progress));
                running.spawn(async move {
                    let result = async {
                        if d.termination_protection {
                            aws.cfn.set_termination_protection(&d.name, false).await?;
                        }
                        if id == "network" {
                            release_emr_security_groups(&aws, &progress, &d).await?;
                        }
                        delete_one(&aws, &progress, &d).await
                    }
                    .await;
                    (id, result)
                });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (id, result) = joined.expect("a delete task panicked");
        at_work.remove(&id);
        let d = left.remove(&id).expect("was left");
        match result {
            Ok(()) => deleted.push(d.name),
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(deleted),
        _ => Err(DeployError::Refused(
            failures
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}
