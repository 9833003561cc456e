//! Reaching AWS: the credential chain, profile, region and endpoint (the
//! CLI's flags over the spec's settings), the account guard, and one client
//! per service every command shares (each logging its calls with `-v`,
//! `call_log`); `error` turns any SDK failure into one typed `AwsError`;
//! `query` speaks the Query protocol for `ec2`, `rds` and `iam`, and JSON
//! for `ssm`, without their SDK crates (compile time; docs/benchmarks.md,
//! "CI").
//!
//! Owns: building clients and the account check. Must not: call services
//! beyond the guard's GetCallerIdentity (the rooms that need a service call
//! it).

pub mod call_log;
pub mod ec2;
pub mod error;
pub mod iam;
pub mod query;
pub mod rds;
pub mod ssm;

use std::time::Duration;

use lake_contract::aws::{aws_config_for, AwsTarget};

pub use error::{aws_error, AwsError};

use crate::deploy::cfn::Cfn;
use crate::render::RenderedEnv;

/// Connecting failed: AWS was unreachable, or the credentials are for
/// another account than the spec's.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Aws(#[from] AwsError),
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
}

/// How to reach AWS: the CLI's flags over the spec's settings.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// `-v` count: 1 logs every AWS call, 2 every attempt (`call_log`).
    pub verbose: u8,
}

/// Clients for one environment, after the account guard passed.
pub struct Aws {
    pub cfn: Cfn,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub emr: aws_sdk_emr::Client,
    /// RDS over the Query protocol (`rds.rs`).
    pub rds: rds::Rds,
    pub firehose: aws_sdk_firehose::Client,
    pub kafka: aws_sdk_kafka::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// EC2 over the Query protocol (`ec2.rs`): no aws-sdk-ec2 in the build.
    pub ec2: ec2::Ec2,
    /// IAM over the Query protocol (`iam.rs`).
    pub iam: iam::Iam,
    pub quotas: aws_sdk_servicequotas::Client,
    pub rdsdata: aws_sdk_rdsdata::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// SSM over JSON 1.1 (`ssm.rs`).
    pub ssm: ssm::Ssm,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub account: String,
    /// The region every client talks to (`--region` over the spec's).
    pub region: String,
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
    ) -> Result<Aws, ConnectError> {
        let endpoint_url = connection
            .endpoint_url
            .clone()
            .or(endpoint_from_spec.map(String::from));
        let region = connection
            .region
            .clone()
            .unwrap_or_else(|| rendered.region.clone());
        let shared = aws_config_for(&AwsTarget {
            endpoint_url: endpoint_url.clone(),
            region: Some(region.clone()),
            profile: connection.profile.clone(),
            adaptive_retries: true,
        })
        .await;
        let sts = aws_sdk_sts::Client::new(&shared);
        let me = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("asking STS who we are", e))?;
        let account = me.account().unwrap_or_default().to_string();
        let caller_arn = me.arn().unwrap_or_default().to_string();
        if let Some(expected) = account_id {
            if expected != account {
                return Err(ConnectError::WrongAccount {
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
        // `-v`: every client logs its calls.
        let log = (connection.verbose > 0).then_some(call_log::CallLog {
            level: connection.verbose,
        });
        macro_rules! with_log {
            ($builder:expr) => {{
                let mut builder = $builder;
                if let Some(log) = log {
                    builder = builder.interceptor(log);
                }
                builder.build()
            }};
        }
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(with_log!($sdk::config::Builder::from(&shared)))
            };
        }
        macro_rules! reading_client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(with_log!(
                    $sdk::config::Builder::from(&shared).retry_config(reading.clone())
                ))
            };
        }
        Ok(Aws {
            cfn: Cfn::new(client!(aws_sdk_cloudformation), poll),
            s3: aws_sdk_s3::Client::from_conf(with_log!(lake_contract::aws::s3_config_from(
                &shared
            ))),
            sfn: client!(aws_sdk_sfn),
            kinesis: client!(aws_sdk_kinesis),
            dynamodb: client!(aws_sdk_dynamodb),
            emr: reading_client!(aws_sdk_emr),
            rds: rds::Rds::new(&shared, reading.clone(), log),
            firehose: reading_client!(aws_sdk_firehose),
            kafka: reading_client!(aws_sdk_kafka),
            autoscaling: reading_client!(aws_sdk_autoscaling),
            ec2: ec2::Ec2::new(&shared, reading.clone(), log),
            iam: iam::Iam::new(&shared, reading.clone(), log),
            quotas: reading_client!(aws_sdk_servicequotas),
            rdsdata: client!(aws_sdk_rdsdata),
            secrets: client!(aws_sdk_secretsmanager),
            // Resolving images is part of `up`: the shared (adaptive) retries.
            ssm: ssm::Ssm::new(
                &shared,
                shared
                    .retry_config()
                    .cloned()
                    .unwrap_or_else(aws_config::retry::RetryConfig::standard),
                log,
            ),
            cloudwatch: reading_client!(aws_sdk_cloudwatch),
            account,
            region,
            caller_arn,
        })
    }
}

impl Aws {
    /// CloudFormation answers from `script`; every other client points at
    /// an address nothing listens on (a unit test must not reach them).
    #[cfg(test)]
    pub(crate) fn scripted(script: std::sync::Arc<crate::deploy::script::Script>) -> Aws {
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
            rds: rds::Rds::new(&shared, aws_config::retry::RetryConfig::standard(), None),
            firehose: aws_sdk_firehose::Client::new(&shared),
            kafka: aws_sdk_kafka::Client::new(&shared),
            autoscaling: aws_sdk_autoscaling::Client::new(&shared),
            ec2: ec2::Ec2::new(&shared, aws_config::retry::RetryConfig::standard(), None),
            iam: iam::Iam::new(&shared, aws_config::retry::RetryConfig::standard(), None),
            quotas: aws_sdk_servicequotas::Client::new(&shared),
            rdsdata: aws_sdk_rdsdata::Client::new(&shared),
            secrets: aws_sdk_secretsmanager::Client::new(&shared),
            ssm: ssm::Ssm::new(&shared, aws_config::retry::RetryConfig::standard(), None),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&shared),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            caller_arn: "arn:aws:iam::123456789012:user/test".into(),
        }
    }
}
