//! The deployer: `up`, `down`, `status`, `outputs` and `diff` against what is
//! deployed, through CloudFormation change sets; `compact` starts a run of
//! the deployed compaction.
//!
//! Owns: connecting to AWS (credential chain, profile, region, endpoint,
//! adaptive retries) and the account guard; the order stacks are deployed
//! and deleted in; resolving parameters from upstream outputs and published
//! artifacts; approvals; stack protection. Must not: render templates
//! (`render`), compare them (`plan`) or print directly (progress goes
//! through `progress::Progress`, results are returned to the CLI).

pub mod accounts;
pub mod cfn;
pub mod compact;
pub mod down;
pub mod drift;
pub mod health;
pub mod images;
pub mod preflight;
pub mod progress;
pub mod protect;
pub mod script;
pub mod status;
pub mod up;

use std::collections::BTreeMap;
use std::time::Duration;

use lake_contract::aws::{aws_config_for, s3_client_from, AwsTarget};

use crate::plan::PlanError;
use crate::render::{ParamSource, RenderedEnv, RenderedStack};
use cfn::{Cfn, Deployed};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "environment {env} belongs to AWS account {expected} (spec field `account_id`), but the \
         credentials in use are for account {actual}; choose the right ones (--profile, \
         AWS_PROFILE) or fix the spec"
    )]
    WrongAccount {
        env: String,
        expected: String,
        actual: String,
    },
    #[error("{doing}: {message}")]
    Aws { doing: String, message: String },
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
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Artifact(String),
    #[error("{0}")]
    Refused(String),
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

/// How to reach AWS: the CLI's flags over the spec's settings.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Clients for one environment, after the account guard passed.
pub struct Aws {
    pub cfn: Cfn,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub emr: aws_sdk_emr::Client,
    pub rds: aws_sdk_rds::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub kafka: aws_sdk_kafka::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub rdsdata: aws_sdk_rdsdata::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub account: String,
    /// Who the credentials are (STS GetCallerIdentity), for policy simulation.
    pub caller_arn: String,
}

impl Aws {
    /// Connect for `rendered`, refusing any account other than the spec's
    /// `account_id` (checked with STS GetCallerIdentity before anything else).
    pub async fn connect(
        connection: &Connection,
        rendered: &RenderedEnv,
        account_id: Option<&str>,
        endpoint_from_spec: Option<&str>,
    ) -> Result<Aws, DeployError> {
        let endpoint_url = connection
            .endpoint_url
            .clone()
            .or(endpoint_from_spec.map(String::from));
        let shared = aws_config_for(&AwsTarget {
            endpoint_url: endpoint_url.clone(),
            region: Some(
                connection
                    .region
                    .clone()
                    .unwrap_or_else(|| rendered.region.clone()),
            ),
            profile: connection.profile.clone(),
            adaptive_retries: true,
        })
        .await;
        let sts = aws_sdk_sts::Client::new(&shared);
        let me = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| cfn::aws_error("asking STS who we are".into(), e))?;
        let account = me.account().unwrap_or_default().to_string();
        let caller_arn = me.arn().unwrap_or_default().to_string();
        if let Some(expected) = account_id {
            if expected != account {
                return Err(DeployError::WrongAccount {
                    env: rendered.environment.clone(),
                    expected: expected.to_string(),
                    actual: account,
                });
            }
        }
        // An emulator answers at once; real CloudFormation takes seconds per step.
        let poll = if endpoint_url.is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        // The clients `status` and `preflight` read with: a question an
        // endpoint cannot answer (HTTP 500 from an emulator, a throttled
        // call) is asked twice, not eight times with back-off, so a check
        // reports "cannot tell" in a second instead of minutes.
        let reading = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
        macro_rules! reading_client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(&shared)
                        .retry_config(reading.clone())
                        .build(),
                )
            };
        }
        Ok(Aws {
            cfn: Cfn::new(aws_sdk_cloudformation::Client::new(&shared), poll),
            s3: s3_client_from(&shared),
            sfn: aws_sdk_sfn::Client::new(&shared),
            kinesis: aws_sdk_kinesis::Client::new(&shared),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            emr: reading_client!(aws_sdk_emr),
            rds: reading_client!(aws_sdk_rds),
            firehose: reading_client!(aws_sdk_firehose),
            kafka: reading_client!(aws_sdk_kafka),
            autoscaling: reading_client!(aws_sdk_autoscaling),
            ec2: reading_client!(aws_sdk_ec2),
            iam: reading_client!(aws_sdk_iam),
            rdsdata: aws_sdk_rdsdata::Client::new(&shared),
            secrets: aws_sdk_secretsmanager::Client::new(&shared),
            ssm: aws_sdk_ssm::Client::new(&shared),
            cloudwatch: reading_client!(aws_sdk_cloudwatch),
            account,
            caller_arn,
        })
    }
}

impl Aws {
    /// CloudFormation answers from `script`; every other client points at
    /// an address nothing listens on (a unit test must not reach them).
    #[cfg(test)]
    pub(crate) fn scripted(script: std::sync::Arc<script::Script>) -> Aws {
        let shared = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Aws {
            cfn: Cfn::scripted(script),
            s3: aws_sdk_s3::Client::new(&shared),
            sfn: aws_sdk_sfn::Client::new(&shared),
            kinesis: aws_sdk_kinesis::Client::new(&shared),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            emr: aws_sdk_emr::Client::new(&shared),
            rds: aws_sdk_rds::Client::new(&shared),
            firehose: aws_sdk_firehose::Client::new(&shared),
            kafka: aws_sdk_kafka::Client::new(&shared),
            autoscaling: aws_sdk_autoscaling::Client::new(&shared),
            ec2: aws_sdk_ec2::Client::new(&shared),
            iam: aws_sdk_iam::Client::new(&shared),
            rdsdata: aws_sdk_rdsdata::Client::new(&shared),
            secrets: aws_sdk_secretsmanager::Client::new(&shared),
            ssm: aws_sdk_ssm::Client::new(&shared),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&shared),
            account: "123456789012".into(),
            caller_arn: "arn:aws:iam::123456789012:user/test".into(),
        }
    }
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
