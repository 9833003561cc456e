//! CloudFormation operations the deployer needs, as small typed calls.
//!
//! Owns: every CloudFormation API call (describe, template, change sets,
//! events, delete, termination protection, stack policy, drift detection); a token on every call that
//! starts an operation; scripted answers in place of the API for unit tests
//! (`script`). Must not: decide what to deploy, in which order, or print
//! anything.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::primitives::{DateTime, DateTimeFormat};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, Stack, StackEvent, StackStatus, Tag,
    TemplateStage,
};
use aws_sdk_cloudformation::Client;

use super::script::Script;
use super::DeployError;
use crate::aws::aws_error;

/// The largest template CloudFormation takes inline (`TemplateBody`);
/// larger ones must be uploaded to S3 and passed as `TemplateURL`.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;

/// A token for one CloudFormation operation (`ClientRequestToken`): the
/// SDK sends the same token on each of its retries, so a call that was
/// accepted but timed out is recognised as the same operation instead of
/// failing with `AlreadyExistsException`; the stack's events of that
/// operation carry it.
pub fn request_token(operation: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "lakectl-{operation}-{nanos:x}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Refuse a template CloudFormation would refuse, with what to do.
fn check_template_size(stack: &str, body: &str) -> Result<(), DeployError> {
    if body.len() > TEMPLATE_BODY_LIMIT {
        return Err(DeployError::TemplateTooLarge {
            stack: stack.to_string(),
            bytes: body.len(),
        });
    }
    Ok(())
}

/// A deployed stack, as far as the deployer cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub name: String,
    pub id: String,
    /// CloudFormation's status (the SDK's type; a status newer than the
    /// SDK knows is `Unknown` and treated as neither healthy nor busy).
    pub status: StackStatus,
    pub reason: Option<String>,
    /// RFC 3339, the last update or else the creation time.
    pub last_updated: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

impl Deployed {
    /// CloudFormation is working on it (an earlier run, or another user).
    pub fn in_progress(&self) -> bool {
        self.status.as_str().ends_with("_IN_PROGRESS") && !self.never_executed()
    }

    /// A stable state whose template and outputs are usable.
    pub fn healthy(&self) -> bool {
        matches!(
            self.status,
            StackStatus::CreateComplete | StackStatus::UpdateComplete | StackStatus::ImportComplete
        )
    }

    /// Created by a change set that was never executed: no resources yet.
    pub fn never_executed(&self) -> bool {
        self.status == StackStatus::ReviewInProgress
    }

    /// Whether the stack holds resources: not one that never ran its first
    /// change set, nor one whose first create rolled back. Planning treats
    /// the others as absent (`up` deletes and creates them).
    pub fn holds_resources(&self) -> bool {
        !(self.never_executed() || self.status == StackStatus::RollbackComplete)
    }
}

/// One resource event, in the terms the progress view prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub time: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    /// The `ClientRequestToken` of the operation that caused it, if any.
    pub token: Option<String>,
}

impl Event {
    pub fn failed(&self) -> bool {
        self.status.ends_with("_FAILED")
    }
}

/// One resource change in a change set: CloudFormation's own verdict on
/// replacement, which refines the create-only table's.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChange {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional` (modifications only).
    pub replacement: Option<String>,
    /// What changes in it and why (DescribeChangeSet's `Details`).
    pub details: Vec<ChangeDetail>,
}

/// One `Details` entry of a resource change: the property (or attribute)
/// that changes, whether that recreates the resource, and what caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeDetail {
    /// `Properties.Name`, `Tags`, … (Target's attribute and name).
    pub target: String,
    /// `Never`, `Conditionally` or `Always`.
    pub requires_recreation: String,
    /// `ParameterReference`, `ResourceReference`, `DirectModification`, …
    pub source: String,
    /// The parameter or resource behind it (`CausingEntity`).
    pub causing_entity: Option<String>,
}

/// How waiting for a change set ended.
#[derive(Debug)]
pub enum ChangeSetOutcome {
    Ready(Vec<PlannedChange>),
    /// CloudFormation found nothing to change.
    Empty,
}

/// A position in a stack's event history, and the token of the operation
/// being watched (its events; another operation's are not ours to report).
#[derive(Debug, Clone)]
pub struct EventMark {
    pub since: DateTime,
    pub seen: std::collections::HashSet<String>,
    pub token: Option<String>,
}

impl EventMark {
    /// Before any event (a stack just created).
    pub fn beginning() -> EventMark {
        EventMark {
            since: DateTime::from_secs(0),
            seen: Default::default(),
            token: None,
        }
    }
}

/// What a new stack or a change set should contain.
pub struct ChangeSetRequest<'a> {
    pub stack_name: &'a str,
    pub change_set_name: &'a str,
    pub template_body: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub description: &'a str,
}

pub fn now() -> DateTime {
    DateTime::from(std::time::SystemTime::now())
}

pub fn rfc3339(t: &DateTime) -> String {
    t.fmt(DateTimeFormat::DateTime).unwrap_or_default()
}

/// The CloudFormation client with the deployer's polling pace.
#[derive(Clone)]
pub struct Cfn {
    client: Client,
    pub poll: Duration,
    /// Scripted answers instead of the API (unit tests of the state machine).
    script: Option<std::sync::Arc<Script>>,
}

impl Cfn {
    pub fn new(client: Client, poll: Duration) -> Cfn {
        Cfn {
            client,
            poll,
            script: None,
        }
    }

    /// Answers from `script` instead of CloudFormation (no network).
    pub fn scripted(script: std::sync::Arc<Script>) -> Cfn {
        let config = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new("us-east-1"))
            .build();
        Cfn {
            client: Client::from_conf(config),
            poll: Duration::from_millis(1),
            script: Some(script),
        }
    }

    /// The stack named `name`, or `None` when there is none (deleted
    /// stacks are not returned by name).
    pub async fn describe(&self, name: &str) -> Result<Option<Deployed>, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("describe {name}");
            return script.answer(call.clone()).stack(&call);
        }
        let result = self.client.describe_stacks().stack_name(name).send().await;
        let out = match result {
            Ok(out) => out,
            Err(err)
                if err.code() == Some("ValidationError")
                    && err.message().is_some_and(|m| m.contains("does not exist")) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(aws_error(format!("describing stack {name}"), err).into()),
        };
        Ok(out
            .stacks()
            .iter()
            .find(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
            .map(deployed))
    }

    /// Start drift detection on `name`; the detection's id.
    pub async fn detect_drift(&self, name: &str) -> Result<String, DeployError> {
        let out = self
            .client
            .detect_stack_drift()
            .stack_name(name)
            // An endpoint without drift detection answers 500: say so at
            // once rather than after the deployer's eight attempts.
            .customize()
            .config_override(
                aws_sdk_cloudformation::config::Builder::default().retry_config(
                    aws_sdk_cloudformation::config::retry::RetryConfig::standard()
                        .with_max_attempts(2),
                ),
            )
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("starting drift detection (DetectStackDrift) on {name}"),
                    e,
                )
            })?;
        Ok(out
            .stack_drift_detection_id()
            .unwrap_or_default()
            .to_string())
    }

    /// Wait for a drift detection to end: the stack's drift status
    /// (`IN_SYNC`, `DRIFTED`, …), or the reason it failed.
    pub async fn wait_drift_detection(&self, name: &str, id: &str) -> Result<String, DeployError> {
        loop {
            let out = self
                .client
                .describe_stack_drift_detection_status()
                .stack_drift_detection_id(id)
                .send()
                .await
                .map_err(|e| aws_error(format!("reading drift detection of {name}"), e))?;
            match out.detection_status().map(|s| s.as_str()).unwrap_or("") {
                "DETECTION_IN_PROGRESS" => tokio::time::sleep(self.poll).await,
                "DETECTION_COMPLETE" => {
                    return Ok(out
                        .stack_drift_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "UNKNOWN".into()))
                }
                other => {
                    return Err(DeployError::DriftDetection {
                        stack: name.to_string(),
                        status: other.to_string(),
                        reason: out
                            .detection_status_reason()
                            .unwrap_or("no reason given")
                            .to_string(),
                    })
                }
            }
        }
    }

    /// The resources of `name` whose live state differs from the template.
    pub async fn drifted_resources(
        &self,
        name: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::StackResourceDrift>, DeployError> {
        use aws_sdk_cloudformation::types::StackResourceDriftStatus as S;
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .describe_stack_resource_drifts()
                .stack_name(name)
                .stack_resource_drift_status_filters(S::Modified)
                .stack_resource_drift_status_filters(S::Deleted)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(format!("reading drifted resources of {name}"), e))?;
            found.extend(out.stack_resource_drifts().iter().cloned());
            token = out.next_token().map(String::from);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// The template as it was submitted (stage Original: before transforms).
    pub async fn template(&self, name: &str) -> Result<String, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("template {name}");
            return script.answer(call.clone()).template(&call);
        }
        let out = self
            .client
            .get_template()
            .stack_name(name)
            .template_stage(TemplateStage::Original)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading the template of {name}"), e))?;
        Ok(out.template_body().unwrap_or_default().to_string())
    }

    pub async fn create_change_set(&self, req: &ChangeSetRequest<'_>) -> Result<(), DeployError> {
        check_template_size(req.stack_name, req.template_body)?;
        let token = request_token("change-set");
        if let Some(script) = &self.script {
            let call = format!(
                "create_change_set {} {} token={token}",
                req.stack_name, req.change_set_name
            );
            return script.answer(call.clone()).done(&call);
        }
        let (parameters, tags) = parameters_and_tags(req);
        self.client
            .create_change_set()
            .stack_name(req.stack_name)
            .change_set_name(req.change_set_name)
            .change_set_type(ChangeSetType::Update)
            .template_body(req.template_body)
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .capabilities(Capability::CapabilityAutoExpand)
            .client_token(token)
            .description(req.description)
            .send()
            .await
            .map_err(|e| aws_error(format!("creating a change set for {}", req.stack_name), e))?;
        Ok(())
    }

    /// Create a new stack directly. Its change set would only list adds,
    /// which the plan already showed; CreateStack also sets termination
    /// protection and the stack policy atomically with the stack.
    pub async fn create_stack(
        &self,
        req: &ChangeSetRequest<'_>,
        termination_protection: bool,
        stack_policy: Option<&str>,
    ) -> Result<String, DeployError> {
        check_template_size(req.stack_name, req.template_body)?;
        let token = request_token("create");
        if let Some(script) = &self.script {
            let call = format!(
                "create_stack {} protection={termination_protection} token={token}",
                req.stack_name
            );
            return script.answer(call.clone()).done(&call).map(|()| token);
        }
        let (parameters, tags) = parameters_and_tags(req);
        self.client
            .create_stack()
            .stack_name(req.stack_name)
            .template_body(req.template_body)
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .capabilities(Capability::CapabilityAutoExpand)
            .client_request_token(&token)
            .enable_termination_protection(termination_protection)
            .set_stack_policy_body(stack_policy.map(String::from))
            .send()
            .await
            .map_err(|e| aws_error(format!("creating stack {}", req.stack_name), e))?;
        Ok(token)
    }

    /// Wait until the change set is ready, then list its changes.
    pub async fn wait_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<ChangeSetOutcome, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("wait_change_set {stack} {change_set}");
            return script.answer(call.clone()).change_set(&call);
        }
        loop {
            let mut changes = Vec::new();
            let mut token: Option<String> = None;
            let status;
            let reason;
            loop {
                let out = self
                    .client
                    .describe_change_set()
                    .stack_name(stack)
                    .change_set_name(change_set)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| aws_error(format!("describing change set of {stack}"), e))?;
                changes.extend(out.changes().iter().filter_map(|c| {
                    let r = c.resource_change()?;
                    Some(PlannedChange {
                        action: r
                            .action()
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_default(),
                        logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                        resource_type: r.resource_type().unwrap_or_default().to_string(),
                        replacement: r.replacement().map(|x| x.as_str().to_string()),
                        details: r
                            .details()
                            .iter()
                            .map(|d| {
                                let target = d.target();
                                let attribute = target
                                    .and_then(|t| t.attribute())
                                    .map(|a| a.as_str().to_string())
                                    .unwrap_or_default();
                                let name = target.and_then(|t| t.name()).unwrap_or_default();
                                ChangeDetail {
                                    target: if name.is_empty() {
                                        attribute
                                    } else {
                                        format!("{attribute}.{name}")
                                    },
                                    requires_recreation: target
                                        .and_then(|t| t.requires_recreation())
                                        .map(|r| r.as_str().to_string())
                                        .unwrap_or_default(),
                                    source: d
                                        .change_source()
                                        .map(|c| c.as_str().to_string())
                                        .unwrap_or_default(),
                                    causing_entity: d.causing_entity().map(String::from),
                                }
                            })
                            .collect(),
                    })
                }));
                let s = out.status().cloned();
                let r = out.status_reason().map(String::from);
                token = out.next_token().map(String::from);
                if token.is_none() {
                    status = s;
                    reason = r;
                    break;
                }
            }
            match status {
                Some(ChangeSetStatus::CreateComplete) => {
                    return Ok(ChangeSetOutcome::Ready(changes))
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = reason.unwrap_or_default();
                    // CloudFormation's way of saying "nothing to do".
                    if reason.contains("didn't contain changes")
                        || reason.contains("No updates are to be performed")
                    {
                        return Ok(ChangeSetOutcome::Empty);
                    }
                    return Err(DeployError::ChangeSetFailed {
                        stack: stack.to_string(),
                        reason,
                    });
                }
                _ => tokio::time::sleep(self.poll).await,
            }
        }
    }

    pub async fn execute_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<String, DeployError> {
        let token = request_token("execute");
        if let Some(script) = &self.script {
            let call = format!("execute_change_set {stack} {change_set} token={token}");
            return script.answer(call.clone()).done(&call).map(|()| token);
        }
        self.client
            .execute_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| aws_error(format!("executing the change set of {stack}"), e))?;
        Ok(token)
    }

    pub async fn delete_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<(), DeployError> {
        if let Some(script) = &self.script {
            let call = format!("delete_change_set {stack} {change_set}");
            return script.answer(call.clone()).done(&call);
        }
        self.client
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| aws_error(format!("deleting the change set of {stack}"), e))?;
        Ok(())
    }

    /// Delete `stack`; `retain` names resources to leave in place (only
    /// valid for a stack in `DELETE_FAILED`).
    pub async fn delete_stack(
        &self,
        stack: &str,
        retain: &[String],
    ) -> Result<String, DeployError> {
        let token = request_token("delete");
        if let Some(script) = &self.script {
            let call = format!(
                "delete_stack {stack} retain=[{}] token={token}",
                retain.join(",")
            );
            return script.answer(call.clone()).done(&call).map(|()| token);
        }
        self.client
            .delete_stack()
            .stack_name(stack)
            .set_retain_resources((!retain.is_empty()).then(|| retain.to_vec()))
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| aws_error(format!("deleting stack {stack}"), e))?;
        Ok(token)
    }

    pub async fn set_termination_protection(
        &self,
        stack: &str,
        on: bool,
    ) -> Result<(), DeployError> {
        if let Some(script) = &self.script {
            let call = format!("set_termination_protection {stack} {on}");
            return script.answer(call.clone()).done(&call);
        }
        self.client
            .update_termination_protection()
            .stack_name(stack)
            .enable_termination_protection(on)
            .send()
            .await
            .map_err(|e| aws_error(format!("setting termination protection on {stack}"), e))?;
        Ok(())
    }

    /// The stack policy in force, if any.
    pub async fn stack_policy(&self, stack: &str) -> Result<Option<String>, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("get_stack_policy {stack}");
            return script
                .answer(call.clone())
                .template(&call)
                .map(|p| (!p.is_empty()).then_some(p));
        }
        let out = self
            .client
            .get_stack_policy()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading the stack policy of {stack}"), e))?;
        Ok(out.stack_policy_body().map(String::from))
    }

    pub async fn set_stack_policy(&self, stack: &str, policy: &str) -> Result<(), DeployError> {
        if let Some(script) = &self.script {
            let call = format!("set_stack_policy {stack} {policy}");
            return script.answer(call.clone()).done(&call);
        }
        self.client
            .set_stack_policy()
            .stack_name(stack)
            .stack_policy_body(policy)
            .send()
            .await
            .map_err(|e| aws_error(format!("setting the stack policy of {stack}"), e))?;
        Ok(())
    }

    /// Where the event history of `stack` ends now: its newest event's
    /// time and the ids at that page, so a watch shows only what follows
    /// (server time, so the caller's clock does not matter).
    pub async fn event_mark(&self, stack: &str) -> Result<EventMark, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("event_mark {stack}");
            return script.answer(call.clone()).mark(&call);
        }
        let out = self
            .client
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading the events of {stack}"), e))?;
        let events = out.stack_events();
        Ok(EventMark {
            since: events
                .first()
                .and_then(|e| e.timestamp().cloned())
                .unwrap_or_else(now),
            seen: events
                .iter()
                .map(|e| e.event_id().unwrap_or_default().to_string())
                .collect(),
            token: None,
        })
    }

    /// Events of `stack` (name or id) newer than `since`, oldest first,
    /// skipping ids already in `seen`.
    pub async fn events_since(
        &self,
        stack: &str,
        since: &DateTime,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<Vec<Event>, DeployError> {
        if let Some(script) = &self.script {
            let call = format!("events {stack}");
            let events = script.answer(call.clone()).events(&call)?;
            return Ok(events
                .into_iter()
                .filter(|e| seen.insert(e.id.clone()))
                .collect());
        }
        let mut fresh = Vec::new();
        let mut token: Option<String> = None;
        'pages: loop {
            let out = self
                .client
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| aws_error(format!("reading the events of {stack}"), e))?;
            // Newest first: stop at the first event older than `since`, or
            // at the first one already seen (everything older was read by
            // an earlier call): a watch reads one page, not the history.
            for e in out.stack_events() {
                if e.timestamp().is_some_and(|t| t.secs() < since.secs()) {
                    break 'pages;
                }
                let ev = event(e);
                if !seen.insert(ev.id.clone()) {
                    break 'pages;
                }
                fresh.push(ev);
            }
            token = out.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        fresh.reverse();
        Ok(fresh)
    }
}

fn parameters_and_tags(req: &ChangeSetRequest<'_>) -> (Vec<Parameter>, Vec<Tag>) {
    let parameters = req
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let tags = req
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    (parameters, tags)
}

fn deployed(s: &Stack) -> Deployed {
    let pairs = |it: &mut dyn Iterator<Item = (Option<&str>, Option<&str>)>| {
        it.filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string())))
            .collect::<BTreeMap<_, _>>()
    };
    Deployed {
        name: s.stack_name().unwrap_or_default().to_string(),
        id: s.stack_id().unwrap_or_default().to_string(),
        status: s
            .stack_status()
            .cloned()
            .unwrap_or_else(|| StackStatus::from("")),
        reason: s.stack_status_reason().map(String::from),
        last_updated: s
            .last_updated_time()
            .or(s.creation_time())
            .map(rfc3339)
            .unwrap_or_default(),
        outputs: pairs(
            &mut s
                .outputs()
                .iter()
                .map(|o| (o.output_key(), o.output_value())),
        ),
        parameters: pairs(
            &mut s
                .parameters()
                .iter()
                .map(|p| (p.parameter_key(), p.parameter_value())),
        ),
        tags: pairs(&mut s.tags().iter().map(|t| (t.key(), t.value()))),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }
}

fn event(e: &StackEvent) -> Event {
    Event {
        id: e.event_id().unwrap_or_default().to_string(),
        time: e.timestamp().map(rfc3339).unwrap_or_default(),
        logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: e.resource_type().unwrap_or_default().to_string(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(String::from),
        token: e.client_request_token().map(String::from),
    }
}
