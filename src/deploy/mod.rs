//! The deployer: what changes stacks. `up` (plan against what is deployed,
//! approve, apply through change sets), `down`, the CloudFormation calls
//! (`cfn`), the watcher (`watch`), the one scheduler (`schedule`), stack
//! protection (`protect`), pinned images (`images`), the metastore accounts
//! (`accounts`), live progress (`progress`).
//!
//! Owns: `DeployError`; what is deployed now (`deployed_stacks`); resolving
//! parameters from upstream outputs and published artifacts. Must not:
//! connect to AWS (`aws`), render templates (`render`), compare them
//! (`plan`), inspect without changing (`inspect`) or print directly
//! (progress goes through `progress::Progress`, results are returned).

pub mod accounts;
pub mod cfn;
pub mod down;
pub mod images;
pub mod progress;
pub mod protect;
pub mod saved;
pub mod schedule;
pub mod script;
pub mod up;
pub mod watch;

use std::collections::BTreeMap;

use crate::aws::{Aws, AwsError};
use crate::plan::PlanError;
use crate::publish::PublishError;
use crate::render::{ParamSource, RenderedEnv, RenderedStack};
use cfn::Deployed;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("the change set of {stack} failed: {reason}")]
    ChangeSetFailed { stack: String, reason: String },
    #[error("{}", failed_text(.stack, .status, .failures))]
    StackFailed {
        stack: String,
        status: String,
        failures: Vec<cfn::Event>,
    },
    #[error("stack {stack} is {status}; CloudFormation cannot update it from there. {hint}")]
    Stuck {
        stack: String,
        status: String,
        hint: String,
    },
    #[error(
        "the template of {stack} is {bytes} bytes; CloudFormation takes at most {} bytes inline. \
         Split the stack, or shorten embedded scripts (they are the bulk of a template)",
        cfn::TEMPLATE_BODY_LIMIT
    )]
    TemplateTooLarge { stack: String, bytes: usize },
    #[error(
        "{stack}: upstream outputs changed while this run deployed ({}), and the change set now \
         replaces or removes {} — not in the plan that was approved. Nothing was changed in \
         {stack}; run `lakectl diff` to review the new plan and `lakectl up` again",
        .moved.join(", "),
        .replaced.join(", ")
    )]
    PlanMoved {
        stack: String,
        moved: Vec<String>,
        replaced: Vec<String>,
    },
    #[error(
        "{stack}: this update would replace or delete the data store(s) {} (CloudFormation's \
         verdict in the change set). The stack policy of this protected environment denies that, \
         so CloudFormation would fail the update half-way and roll back; nothing was changed. If \
         you mean it, re-run with {}",
        .resources.join(", "),
        .resources.iter().map(|r| format!("--allow-replace {id}/{r}")).collect::<Vec<_>>().join(" ")
    )]
    DataStoreReplacement {
        stack: String,
        id: String,
        resources: Vec<String>,
    },
    #[error(
        "{} would be replaced under the same custom name: CloudFormation creates the replacement \
         before deleting the old one, the name is taken, and the update fails and rolls back. \
         Nothing was changed. Give each a new name in this update (then both can exist), or \
         remove it in one `up` and add it back in the next",
        .0.join("; ")
    )]
    SameNameReplacement(Vec<String>),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    SavedPlan(#[from] saved::PlanFileError),
    #[error(
        "parameter {parameter} of {stack} has no value: {from} is missing; check the upstream \
         stack's outputs with `lakectl outputs`"
    )]
    NoParameterValue {
        stack: String,
        parameter: String,
        from: String,
    },
    #[error("stack {stack} needs artifact {artifact}, which is not built")]
    MissingArtifact { stack: String, artifact: String },
    #[error("the {stack} stack has no {output} output; {then}")]
    MissingOutput {
        stack: String,
        output: String,
        /// What to do about it.
        then: String,
    },
    #[error(
        "these changes need approval (--require-approval {approval}):\n  {}\nreview them and \
         re-run with --yes",
        .changes.join("\n  ")
    )]
    NeedsApproval {
        approval: &'static str,
        changes: Vec<String>,
    },
    #[error("down deletes {}; re-run with --yes to go ahead", .stacks.join(", "))]
    NotConfirmed { stacks: Vec<String> },
    #[error(
        "environment {env} is protected (spec `protection`); nothing was deleted. If you really \
         mean to delete it, pass --allow-protected (buckets and databases with DeletionPolicy \
         Retain/Snapshot are kept either way)"
    )]
    Protected { env: String },
    #[error(
        "metastore account {user}: its {what} is not letters, digits and `_`; refusing to put it \
         into SQL"
    )]
    UnsafeAccount { user: String, what: &'static str },
    #[error("drift detection of {stack} ended {status}: {reason}")]
    DriftDetection {
        stack: String,
        status: String,
        reason: String,
    },
    #[error("{} stacks failed:\n{}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<DeployError>),
    #[error(
        "interrupted: stopped waiting. CloudFormation carries on with {}; run the same command \
         again to wait for them and continue",
        if .0.is_empty() { "nothing".to_string() } else { .0.join(", ") }
    )]
    Interrupted(Vec<String>),
}

fn failed_text(stack: &str, status: &str, failures: &[cfn::Event]) -> String {
    let mut text = format!("stack {stack} failed; it is now {status}");
    if failures.is_empty() {
        text.push_str(" (CloudFormation gave no resource-level reason)");
    }
    for f in failures {
        text.push_str(&format!(
            "\n  {} {} {}: {}",
            f.logical_id,
            f.resource_type,
            f.status,
            f.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    text
}

/// Every stack name this environment can have, rendered or not (a stack
/// whose part was switched off in the spec is still found and removed).
pub fn possible_stacks(rendered: &RenderedEnv) -> Vec<(String, String)> {
    crate::render::catalog::stack_kinds()
        .iter()
        .map(|k| (k.id.to_string(), format!("{}-{}", rendered.name, k.id)))
        .collect()
}

/// What is deployed of an environment now, by stack id.
pub async fn deployed_stacks(
    aws: &Aws,
    rendered: &RenderedEnv,
) -> Result<BTreeMap<String, Deployed>, DeployError> {
    let mut found = BTreeMap::new();
    for (id, name) in possible_stacks(rendered) {
        if let Some(d) = aws.cfn.describe(&name).await? {
            found.insert(id, d);
        }
    }
    Ok(found)
}

/// A parameter's value for a deploy: an upstream stack's output, an
/// artifact's content hash, or the template default. `None` when it cannot
/// be known yet (the upstream stack is not deployed).
pub fn parameter_value(
    source: &ParamSource,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    artifacts: &BTreeMap<String, String>,
) -> Option<String> {
    match source {
        ParamSource::Output { stack, output } => outputs.get(stack)?.get(output).cloned(),
        ParamSource::Artifact { artifact } => artifacts.get(artifact).cloned(),
        ParamSource::Default { value } => Some(value.clone()),
        ParamSource::Image { ssm_parameter } => artifacts.get(&images::key(ssm_parameter)).cloned(),
    }
}

/// All parameters of a stack, with a readable placeholder for those not
/// known before an upstream deploy (as `terraform plan` says "known after apply").
pub fn parameters_for_plan(
    stack: &RenderedStack,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    artifacts: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    stack
        .parameters
        .iter()
        .map(|(k, source)| {
            let value = parameter_value(source, outputs, artifacts).unwrap_or_else(|| {
                format!(
                    "(known after deploy: {})",
                    crate::plan::parameter_text(source)
                )
            });
            (k.clone(), value)
        })
        .collect()
}

/// The outputs of every deployed stack, by stack id.
pub fn outputs_by_id(
    deployed: &BTreeMap<String, Deployed>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    deployed
        .iter()
        .map(|(id, d)| (id.clone(), d.outputs.clone()))
        .collect()
}

/// Deployed parameter values in the terms of the rendered ones, so only
/// real changes show. `types` maps each parameter to its template `Type`.
///
/// - List parameters (`CommaDelimitedList`, `List<…>`) compare item by item;
///   an emulator (moto) describes them as a Python list literal.
pub fn comparable_parameters(
    deployed: &BTreeMap<String, String>,
    types: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    deployed
        .iter()
        .map(|(k, v)| {
            let ty = types.get(k).map(String::as_str).unwrap_or("String");
            let value = if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                let inner = v
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .unwrap_or(v);
                inner
                    .split(',')
                    .map(|item| item.trim().trim_matches('\'').trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                v.clone()
            };
            (k.clone(), value)
        })
        .collect()
}

/// Each parameter's `Type` in a template (YAML or JSON).
pub fn parameter_types(template: &str) -> BTreeMap<String, String> {
    crate::plan::normalize::normalize(template)
        .ok()
        .and_then(|t| {
            t.get("Parameters").and_then(|p| p.as_object()).map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v["Type"].as_str().unwrap_or("String").to_string(),
                        )
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn deployed_parameters_compare_in_rendered_terms() {
        let types = map(&[
            ("Subnets", "CommaDelimitedList"),
            ("Ami", "AWS::EC2::Image::Id"),
            ("Name", "String"),
        ]);
        let rendered = map(&[
            ("Subnets", "subnet-1,subnet-2"),
            ("Ami", "ami-123"),
            ("Name", "x"),
        ]);
        // moto's descriptions
        let emulator = map(&[
            ("Subnets", "['subnet-1', 'subnet-2']"),
            ("Ami", "ami-123"),
            ("Name", "x"),
        ]);
        assert_eq!(comparable_parameters(&emulator, &types), rendered);
        // CloudFormation's own descriptions are already comparable, and a
        // real change (another image, another list) still shows.
        let changed = map(&[
            ("Subnets", "subnet-1, subnet-3"),
            ("Ami", "ami-456"),
            ("Name", "y"),
        ]);
        assert_eq!(
            comparable_parameters(&changed, &types),
            map(&[
                ("Subnets", "subnet-1,subnet-3"),
                ("Ami", "ami-456"),
                ("Name", "y"),
            ])
        );
    }

    #[test]
    fn parameter_types_come_from_the_template() {
        let types = parameter_types(
            "Parameters:\n  A: {Type: CommaDelimitedList}\n  B: {Default: x}\nResources: {}\n",
        );
        assert_eq!(types, map(&[("A", "CommaDelimitedList"), ("B", "String")]));
    }
}
