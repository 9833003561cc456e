//! `lakectl compact`: a compaction run now (scenario B's "merge when
//! queries get slow"), through the compaction stack's state machine.
//!
//! Owns: finding the state machine (the compaction stack's output),
//! starting an execution for one partition or the whole lake, and waiting
//! for it. Must not: run lake-compact itself (EMR does, as a step) or
//! change stacks.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde::Serialize;

use crate::aws::{aws_error, Aws, AwsError};
use crate::deploy::{deployed_stacks, DeployError};
use crate::render::RenderedEnv;

/// One compaction run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub execution_arn: String,
    /// The partition directory, or empty for the whole lake.
    pub partition: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Run {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// The execution input: `{"partition": "<dir>"}` (the state machine's
/// defaults make an empty partition mean the whole lake), or
/// `{"register_only": true}`: bring the Hive table's partitions in line with
/// the lake now, without compacting.
pub fn input(partition: Option<&str>, register_only: bool) -> String {
    if register_only {
        return serde_json::json!({ "register_only": true }).to_string();
    }
    serde_json::json!({ "partition": partition.unwrap_or_default() }).to_string()
}

/// Why a compaction run could not start or be followed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(
        "--partition `{0}`: give one partition directory under the lake prefix, e.g. \
         ordertime=2019111315 (and not with --register-only)"
    )]
    BadPartition(String),
    #[error(
        "environment {env} has no deployed compaction stack with a CompactionStateMachineArn \
         output; enable compaction in the spec and run `lakectl up {env}`"
    )]
    NotDeployed { env: String },
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// `--partition` as the compaction step accepts it (the command checks it
/// before anything is called).
pub fn check_partition(partition: Option<&str>, register_only: bool) -> Result<(), CompactError> {
    match partition {
        Some(p) if !is_partition_dir(p) || register_only => {
            Err(CompactError::BadPartition(p.to_string()))
        }
        _ => Ok(()),
    }
}

/// A partition directory name as the compaction step accepts it.
fn is_partition_dir(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:+=-".contains(c))
}

/// Start a compaction run; with `wait`, poll until it ends.
pub async fn compact(
    aws: &Aws,
    rendered: &RenderedEnv,
    partition: Option<&str>,
    register_only: bool,
    wait: bool,
) -> Result<Run, CompactError> {
    check_partition(partition, register_only)?;
    let deployed = deployed_stacks(aws, rendered).await?;
    let machine = deployed
        .get("compaction")
        .and_then(|d| d.outputs.get("CompactionStateMachineArn"))
        .cloned()
        .ok_or_else(|| CompactError::NotDeployed {
            env: rendered.environment.clone(),
        })?;
    let started = aws
        .sfn
        .start_execution()
        .state_machine_arn(&machine)
        .input(input(partition, register_only))
        .send()
        .await
        .map_err(|e| aws_error(format!("starting {machine}"), e))?;
    let arn = started.execution_arn().to_string();
    let mut run = describe(aws, &arn, partition).await?;
    while wait && run.status == "RUNNING" {
        tokio::time::sleep(aws.cfn.poll.max(Duration::from_millis(500))).await;
        run = describe(aws, &arn, partition).await?;
    }
    Ok(run)
}

async fn describe(aws: &Aws, arn: &str, partition: Option<&str>) -> Result<Run, AwsError> {
    let out = aws
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| aws_error(format!("reading {arn}"), e))?;
    let status = out.status();
    Ok(Run {
        execution_arn: arn.to_string(),
        partition: partition.unwrap_or_default().to_string(),
        status: status.as_str().to_string(),
        error: (*status != ExecutionStatus::Running && *status != ExecutionStatus::Succeeded).then(
            || {
                [out.error(), out.cause()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_names_the_partition_or_nothing() {
        assert_eq!(
            input(Some("ordertime=2019111315"), false),
            r#"{"partition":"ordertime=2019111315"}"#
        );
        assert_eq!(input(None, false), r#"{"partition":""}"#);
        assert_eq!(input(None, true), r#"{"register_only":true}"#);
        assert!(is_partition_dir("ordertime=2019111315"));
        for bad in ["", "a/b", "../x", "s3://b/x", "x y", "x;y"] {
            assert!(!is_partition_dir(bad), "{bad}");
        }
    }
}
