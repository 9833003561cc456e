//! `lakectl compact`: a compaction run now (scenario B's "merge when
//! queries get slow"), through the compaction stack's state machine.
//!
//! Owns: finding the state machine (the compaction stack's output), checking
//! the dataset and partition against the spec, starting one execution per
//! dataset (or one partition-registration run), and waiting for them. Must
//! not: run lake-compact itself (EMR does, as a step) or change stacks.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde::Serialize;

use crate::aws::{aws_error, Aws, AwsError};
use crate::deploy::{deployed_stacks, DeployError};
use crate::render::RenderedEnv;
use crate::spec::model::EnvSpec;

/// One compaction run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub execution_arn: String,
    /// The dataset, or `all` for a registration of every table.
    pub dataset: String,
    /// The partition directory, or empty for the whole dataset.
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

/// What to run: the datasets (each its own execution) and the partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// One execution per entry; `all` with `register_only`.
    pub datasets: Vec<String>,
    pub partition: Option<String>,
    pub register_only: bool,
}

/// The execution input: `{"dataset": D, "partition": P}` (an empty
/// partition is the dataset's whole folder), or
/// `{"dataset": "all", "register_only": true}`: bring every table's
/// partitions in line with the lake now, without compacting.
pub fn input(dataset: &str, partition: Option<&str>, register_only: bool) -> String {
    if register_only {
        return serde_json::json!({ "dataset": dataset, "register_only": true }).to_string();
    }
    serde_json::json!({ "dataset": dataset, "partition": partition.unwrap_or_default() })
        .to_string()
}

/// Why a compaction run could not start or be followed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(
        "--partition `{partition}`: {why}; give one partition directory of dataset {dataset}, \
         e.g. {example}"
    )]
    BadPartition {
        dataset: String,
        partition: String,
        why: String,
        example: String,
    },
    #[error("--partition needs a dataset (`lakectl compact ENV DATASET --partition …`)")]
    PartitionWithoutDataset,
    #[error("--register-only registers every table: give no dataset and no --partition")]
    RegisterOnlyNarrowed,
    #[error("environment {env} has no dataset `{name}`; its datasets: {known}")]
    UnknownDataset {
        env: String,
        name: String,
        known: String,
    },
    #[error(
        "dataset {name} has `compaction: off`; set `compaction: manual` (or a schedule) in \
         environments/{env}.yaml and run `lakectl up {env}`"
    )]
    NotCompacted { env: String, name: String },
    #[error(
        "no dataset of environment {env} compacts (every one has `compaction: off`); set \
         `compaction: manual` or a schedule on one"
    )]
    NothingCompacts { env: String },
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

/// The command's arguments checked against the spec (before anything is
/// called): the dataset exists and compacts, the partition is one of its
/// directories (`dt=2024-05-01/hr=13` for an hourly dataset, or a prefix of
/// it such as `dt=2024-05-01`).
pub fn request(
    spec: &EnvSpec,
    dataset: Option<&str>,
    partition: Option<&str>,
    register_only: bool,
) -> Result<Request, CompactError> {
    if register_only {
        if dataset.is_some() || partition.is_some() {
            return Err(CompactError::RegisterOnlyNarrowed);
        }
        return Ok(Request {
            datasets: vec!["all".into()],
            partition: None,
            register_only: true,
        });
    }
    let Some(name) = dataset else {
        if partition.is_some() {
            return Err(CompactError::PartitionWithoutDataset);
        }
        let datasets: Vec<String> = spec
            .datasets
            .iter()
            .filter(|(_, d)| d.compacts())
            .map(|(n, _)| n.clone())
            .collect();
        if datasets.is_empty() {
            return Err(CompactError::NothingCompacts {
                env: spec.name.clone(),
            });
        }
        return Ok(Request {
            datasets,
            partition: None,
            register_only: false,
        });
    };
    let d = spec
        .datasets
        .get(name)
        .ok_or_else(|| CompactError::UnknownDataset {
            env: spec.name.clone(),
            name: name.to_string(),
            known: spec.datasets.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    if !d.compacts() {
        return Err(CompactError::NotCompacted {
            env: spec.name.clone(),
            name: name.to_string(),
        });
    }
    if let Some(p) = partition {
        let keys = d.partition_keys();
        let example = keys
            .iter()
            .zip(["2024-05-01", "13"])
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("/");
        if let Err(why) = check_partition(p, &keys) {
            return Err(CompactError::BadPartition {
                dataset: name.to_string(),
                partition: p.to_string(),
                why,
                example,
            });
        }
    }
    Ok(Request {
        datasets: vec![name.to_string()],
        partition: partition.map(str::to_string),
        register_only: false,
    })
}

/// `p` is `k1=v1[/k2=v2…]`: the layout's keys in order (a prefix of them),
/// values of safe characters only (the step passes it to a shell argument
/// and an S3 prefix).
fn check_partition(p: &str, keys: &[String]) -> Result<(), String> {
    let levels: Vec<&str> = p.trim_end_matches('/').split('/').collect();
    if p.is_empty() || levels.len() > keys.len() {
        return Err(format!(
            "the dataset's directories have {} level(s): {}",
            keys.len(),
            keys.join("/")
        ));
    }
    for (level, key) in levels.iter().zip(keys) {
        let Some((k, v)) = level.split_once('=') else {
            return Err(format!("`{level}` is not key=value"));
        };
        if k != key {
            return Err(format!("`{k}` where the layout has `{key}`"));
        }
        if v.is_empty()
            || v.contains("..")
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:+-".contains(c))
        {
            return Err(format!(
                "the value `{v}` has characters a directory name here cannot"
            ));
        }
    }
    Ok(())
}

/// Start the request's runs; with `wait`, poll until each ends.
pub async fn compact(
    aws: &Aws,
    rendered: &RenderedEnv,
    request: &Request,
    wait: bool,
) -> Result<Vec<Run>, CompactError> {
    let deployed = deployed_stacks(aws, rendered).await?;
    let machine = deployed
        .get("compaction")
        .and_then(|d| d.outputs.get("CompactionStateMachineArn"))
        .cloned()
        .ok_or_else(|| CompactError::NotDeployed {
            env: rendered.environment.clone(),
        })?;
    let partition = request.partition.as_deref();
    let mut runs = Vec::new();
    for dataset in &request.datasets {
        let started = aws
            .sfn
            .start_execution()
            .state_machine_arn(&machine)
            .input(input(dataset, partition, request.register_only))
            .send()
            .await
            .map_err(|e| aws_error(format!("starting {machine}"), e))?;
        let arn = started.execution_arn().to_string();
        runs.push(describe(aws, &arn, dataset, partition).await?);
    }
    for run in &mut runs {
        while wait && run.status == "RUNNING" {
            tokio::time::sleep(aws.cfn.poll.max(Duration::from_millis(500))).await;
            *run = describe(aws, &run.execution_arn, &run.dataset, partition).await?;
        }
    }
    Ok(runs)
}

async fn describe(
    aws: &Aws,
    arn: &str,
    dataset: &str,
    partition: Option<&str>,
) -> Result<Run, AwsError> {
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
        dataset: dataset.to_string(),
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
    fn the_input_names_the_dataset_and_partition() {
        assert_eq!(
            input("orders", Some("dt=2019-11-13/hr=15"), false),
            r#"{"dataset":"orders","partition":"dt=2019-11-13/hr=15"}"#
        );
        assert_eq!(
            input("orders", None, false),
            r#"{"dataset":"orders","partition":""}"#
        );
        assert_eq!(
            input("all", None, true),
            r#"{"dataset":"all","register_only":true}"#
        );
    }

    #[test]
    fn partitions_follow_the_dataset_layout() {
        let keys = vec!["dt".to_string(), "hr".to_string()];
        assert!(check_partition("dt=2019-11-13/hr=15", &keys).is_ok());
        assert!(check_partition("dt=2019-11-13", &keys).is_ok());
        for bad in [
            "",
            "hr=15",
            "dt=2019-11-13/hr=15/x=1",
            "ordertime=2019111315",
            "dt=../x",
            "dt=a b",
            "dt=a;b",
            "dt=",
            "s3://b/x",
        ] {
            assert!(check_partition(bad, &keys).is_err(), "{bad}");
        }
    }
}
