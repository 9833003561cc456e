//! `lakectl drift`: what changed in AWS behind CloudFormation's back, per
//! stack, resource and property (expected -> actual), in `diff`'s style.
//!
//! Owns: running CloudFormation drift detection on every deployed stack of
//! an environment and turning the result into plain rows and text. Must
//! not: change any stack (detection is read-only) or compare templates
//! (that is `plan`).

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::aws::Aws;
use crate::deploy::{deployed_stacks, DeployError};
use crate::plan::diff::StackDiff;
use crate::plan::report::show;
use crate::render::RenderedEnv;

/// One stack's drift: `IN_SYNC`, `DRIFTED`, `NOT_CHECKED` or `NOT_DEPLOYED`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackDrift {
    pub id: String,
    pub stack_name: String,
    pub status: String,
    pub resources: Vec<ResourceDrift>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceDrift {
    pub logical_id: String,
    pub resource_type: String,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    pub properties: Vec<PropertyDrift>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyDrift {
    /// Dotted, as in `diff` (`Tags.0.Value`).
    pub path: String,
    /// `ADD`, `REMOVE` or `NOT_EQUAL`.
    pub change: String,
    pub expected: Option<Value>,
    pub actual: Option<Value>,
}

impl StackDrift {
    pub fn drifted(&self) -> bool {
        !self.resources.is_empty() || self.status == "DRIFTED"
    }
}

/// Run drift detection on every deployed stack (all started first, then
/// waited for: detection takes minutes per stack on AWS).
pub async fn drift(aws: &Aws, rendered: &RenderedEnv) -> Result<Vec<StackDrift>, DeployError> {
    let deployed = deployed_stacks(aws, rendered).await?;
    let mut targets = Vec::new();
    let mut rows = Vec::new();
    for stack in &rendered.stacks {
        match deployed.get(&stack.id) {
            Some(d) => targets.push((stack.id.clone(), d.name.clone())),
            None => rows.push(StackDrift {
                id: stack.id.clone(),
                stack_name: stack.stack_name.clone(),
                status: "NOT_DEPLOYED".into(),
                resources: Vec::new(),
            }),
        }
    }
    for result in detect(aws, &targets).await {
        rows.push(result?);
    }
    // Spec order, whatever order the answers came in.
    rows.sort_by_key(|r| rendered.stacks.iter().position(|s| s.id == r.id));
    Ok(rows)
}

/// Wait for one detection and read its drifted resources.
async fn collect(
    aws: &Aws,
    id: String,
    name: String,
    detection: &str,
) -> Result<StackDrift, DeployError> {
    let status = aws.cfn.wait_drift_detection(&name, detection).await?;
    let resources = aws
        .cfn
        .drifted_resources(&name)
        .await?
        .iter()
        .map(resource_drift)
        .collect();
    Ok(StackDrift {
        id,
        stack_name: name,
        status,
        resources,
    })
}

/// Drift detection on deployed stacks `(id, name)`: every detection is
/// started first, then each is waited for (detection takes minutes per
/// stack on AWS). One result per stack, in the order given.
pub async fn detect(
    aws: &Aws,
    stacks: &[(String, String)],
) -> Vec<Result<StackDrift, DeployError>> {
    let mut started = Vec::new();
    for (id, name) in stacks {
        started.push((id, name, aws.cfn.detect_drift(name).await));
    }
    let mut results = Vec::new();
    for (id, name, detection) in started {
        results.push(match detection {
            Ok(detection) => collect(aws, id.clone(), name.clone(), &detection).await,
            Err(e) => Err(e),
        });
    }
    results
}

/// The drift an update of `diff`'s stack overwrites: drifted resources the
/// update modifies or removes (CloudFormation leaves the others as they
/// are). `None` when there is none.
pub fn overwritten(drift: &StackDrift, diff: &StackDiff) -> Option<StackDrift> {
    let touched = |id: &str| diff.resources.iter().any(|r| r.logical_id == id);
    let resources: Vec<ResourceDrift> = drift
        .resources
        .iter()
        .filter(|r| touched(&r.logical_id))
        .cloned()
        .collect();
    (!resources.is_empty()).then(|| StackDrift {
        resources,
        ..drift.clone()
    })
}

fn resource_drift(r: &aws_sdk_cloudformation::types::StackResourceDrift) -> ResourceDrift {
    ResourceDrift {
        logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: r.resource_type().unwrap_or_default().to_string(),
        status: r
            .stack_resource_drift_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        properties: r
            .property_differences()
            .iter()
            .map(|p| PropertyDrift {
                path: dotted(p.property_path().unwrap_or_default()),
                change: p
                    .difference_type()
                    .map(|d| d.as_str().to_string())
                    .unwrap_or_default(),
                expected: json_or_text(p.expected_value().unwrap_or_default()),
                actual: json_or_text(p.actual_value().unwrap_or_default()),
            })
            .collect(),
    }
}

/// `/Tags/0/Value` (a JSON pointer, as CloudFormation reports it) as `Tags.0.Value`.
fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// CloudFormation sends values as JSON text; plain text when it is not.
fn json_or_text(value: &str) -> Option<Value> {
    if value.is_empty() {
        return None;
    }
    Some(serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string())))
}

/// The drift report as text, in `lakectl diff`'s style.
pub fn text(drifts: &[StackDrift]) -> String {
    let mut out = String::new();
    for d in drifts {
        let status = match d.status.as_str() {
            "IN_SYNC" => "in sync",
            "DRIFTED" => "drifted",
            "NOT_DEPLOYED" => "not deployed",
            "NOT_CHECKED" => "not checked (no resource that supports drift detection)",
            other => other,
        };
        let _ = writeln!(out, "Stack {} ({}): {status}", d.stack_name, d.id);
        for r in &d.resources {
            let (sign, what) = if r.status == "DELETED" {
                ('-', "deleted outside CloudFormation")
            } else {
                ('~', "modified outside CloudFormation")
            };
            let _ = writeln!(
                out,
                "  {sign} {} {}  ({what})",
                r.logical_id, r.resource_type
            );
            for p in &r.properties {
                let _ = writeln!(
                    out,
                    "      {}: {} -> {}",
                    p.path,
                    show(&p.expected),
                    show(&p.actual)
                );
            }
        }
    }
    let drifted = drifts.iter().filter(|d| d.drifted()).count();
    let resources: usize = drifts.iter().map(|d| d.resources.len()).sum();
    let _ = writeln!(
        out,
        "\n{drifted} of {} stacks drifted: {resources} resources differ from their templates (expected -> actual)",
        drifts.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{
        DifferenceType, PropertyDifference, StackResourceDrift, StackResourceDriftStatus,
    };
    use std::collections::BTreeMap;

    #[test]
    fn a_modified_property_reads_expected_to_actual() {
        let drift = StackResourceDrift::builder()
            .stack_id("arn:stack")
            .logical_resource_id("OrdersStream")
            .resource_type("AWS::Kinesis::Stream")
            .stack_resource_drift_status(StackResourceDriftStatus::Modified)
            .timestamp(aws_sdk_cloudformation::primitives::DateTime::from_secs(0))
            .property_differences(
                PropertyDifference::builder()
                    .property_path("/ShardCount")
                    .expected_value("4")
                    .actual_value("8")
                    .difference_type(DifferenceType::NotEqual)
                    .build(),
            )
            .property_differences(
                PropertyDifference::builder()
                    .property_path("/Tags/1/Value")
                    .expected_value("lake")
                    .actual_value("")
                    .difference_type(DifferenceType::Remove)
                    .build(),
            )
            .build();
        let drifts = vec![
            StackDrift {
                id: "stream".into(),
                stack_name: "lake-local-stream".into(),
                status: "DRIFTED".into(),
                resources: vec![resource_drift(&drift)],
            },
            StackDrift {
                id: "network".into(),
                stack_name: "lake-local-network".into(),
                status: "IN_SYNC".into(),
                resources: vec![],
            },
        ];
        insta::assert_snapshot!(text(&drifts), @r#"
        Stack lake-local-stream (stream): drifted
          ~ OrdersStream AWS::Kinesis::Stream  (modified outside CloudFormation)
              ShardCount: 4 -> 8
              Tags.1.Value: "lake" -> (absent)
        Stack lake-local-network (network): in sync

        1 of 2 stacks drifted: 1 resources differ from their templates (expected -> actual)
        "#);
        let json = serde_json::to_value(&drifts[0]).unwrap();
        assert_eq!(json["resources"][0]["properties"][0]["actual"], 8);
        insta::assert_snapshot!(serde_json::to_string_pretty(&drifts[0]).unwrap(), @r#"
        {
          "id": "stream",
          "stack_name": "lake-local-stream",
          "status": "DRIFTED",
          "resources": [
            {
              "logical_id": "OrdersStream",
              "resource_type": "AWS::Kinesis::Stream",
              "status": "MODIFIED",
              "properties": [
                {
                  "path": "ShardCount",
                  "change": "NOT_EQUAL",
                  "expected": 4,
                  "actual": 8
                },
                {
                  "path": "Tags.1.Value",
                  "change": "REMOVE",
                  "expected": "lake",
                  "actual": null
                }
              ]
            }
          ]
        }
        "#);
    }

    #[test]
    fn a_plan_shows_the_drift_its_update_overwrites_and_only_that() {
        let template = |shards: u32| {
            serde_json::json!({"Resources": {
                "OrdersStream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": shards}},
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/"}}
            }})
        };
        let no_params = BTreeMap::new();
        let (old, new) = (template(4), template(6));
        let diff = crate::plan::diff::diff_stack(
            "stream",
            "lake-local-stream",
            Some((&old, &no_params)),
            Some((&new, &no_params)),
        );
        let drifted = |id: &str| ResourceDrift {
            logical_id: id.into(),
            resource_type: "T".into(),
            status: "MODIFIED".into(),
            properties: vec![PropertyDrift {
                path: "P".into(),
                change: "NOT_EQUAL".into(),
                expected: Some(Value::from(1)),
                actual: Some(Value::from(2)),
            }],
        };
        let drift = StackDrift {
            id: "stream".into(),
            stack_name: "lake-local-stream".into(),
            status: "DRIFTED".into(),
            resources: vec![drifted("OrdersStream"), drifted("Role")],
        };
        // The update touches OrdersStream only: Role's drift stays as it is.
        let kept = overwritten(&drift, &diff).unwrap();
        assert_eq!(kept.resources, vec![drifted("OrdersStream")]);
        let in_sync = StackDrift {
            resources: vec![drifted("Role")],
            ..drift.clone()
        };
        assert_eq!(overwritten(&in_sync, &diff), None);

        let report = crate::plan::report::PlanReport {
            environment: "local".into(),
            diffs: vec![diff],
            notes: Vec::new(),
            drift: vec![kept],
        };
        let text = report.to_string();
        let section = &text[text.find("Drift this plan").unwrap()..];
        insta::assert_snapshot!(section, @r"
        Drift this plan overwrites (changed outside CloudFormation; expected -> actual, `up` puts back the expected):
        Stack lake-local-stream (stream): drifted
          ~ OrdersStream T  (modified outside CloudFormation)
              P: 1 -> 2

        1 of 1 stacks drifted: 1 resources differ from their templates (expected -> actual)
        ");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["drift"][0]["resources"][0]["logical_id"],
            "OrdersStream"
        );
    }
}
