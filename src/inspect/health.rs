//! Live health of the platform's components, each from its own API (what
//! CloudFormation cannot say: whether the stream takes records, the
//! cluster runs, the database answers, the consumers hold their shards),
//! and the environment's CloudWatch alarms in ALARM beside their component.
//!
//! Owns: one check per component and its one-line verdict. Must not:
//! change anything, or read stack state beyond the outputs it is handed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::ec2::Filter;
use crate::aws::{aws_error, Aws, AwsError};
use crate::deploy::DeployError;
use crate::render::datasets::lake_prefix;
use crate::render::RenderedEnv;
use crate::spec::EnvSpec;
use lake_contract::lease::{self, Lease, SHARD_END};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    Degraded,
    Down,
    NotDeployed,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Down => "down",
            Verdict::NotDeployed => "not deployed",
        }
    }
}

/// One component's state, as its own service reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    pub verdict: Verdict,
    /// One line for people.
    pub summary: String,
    /// What the service said, for machines (`--output json`).
    pub facts: BTreeMap<String, String>,
}

impl Component {
    fn new(name: &str, verdict: Verdict, summary: String) -> Component {
        Component {
            name: name.into(),
            verdict,
            summary,
            facts: BTreeMap::new(),
        }
    }

    fn fact(mut self, key: &str, value: impl ToString) -> Component {
        self.facts.insert(key.into(), value.to_string());
        self
    }
}

type Outputs = BTreeMap<String, BTreeMap<String, String>>;

fn output<'a>(outputs: &'a Outputs, stack: &str, key: &str) -> Option<&'a str> {
    outputs.get(stack)?.get(key).map(String::as_str)
}

/// Every component the spec has, checked live.
pub async fn components(
    aws: &Aws,
    rendered: &RenderedEnv,
    outputs: &Outputs,
    parameters: &Outputs,
    spec: &EnvSpec,
) -> Result<Vec<Component>, DeployError> {
    let ingest_fleet_size = spec.ingest.fleet_size;
    let mut found = Vec::new();
    if rendered.stack("kafka").is_some() {
        found.push(or_cannot_tell("kafka", kafka(aws, rendered, outputs).await));
    }
    // One row per dataset: its stream, archive, leases and what its
    // records lost (dead letters, unknown fields) over the last day.
    let leases = match output(outputs, "ingest", "LeaseTableName") {
        Some(table) => lease::scan(&aws.dynamodb, table)
            .await
            .map_err(|e| aws_error(format!("reading lease table {table}"), e.source)),
        None => Ok(Vec::new()),
    };
    let contexts = crate::render::datasets::contexts(spec);
    let mut datasets = Vec::new();
    for d in &contexts {
        datasets.push(match &leases {
            Ok(leases) => or_cannot_tell(&d.name, dataset(aws, outputs, spec, d, leases).await),
            Err(e) => Component::new(&d.name, Verdict::Down, format!("cannot tell: {e}")),
        });
    }
    match archive(aws, outputs, &contexts).await {
        Ok(Some(a)) => datasets.push(a),
        Ok(None) => {}
        Err(e) => datasets.push(or_cannot_tell("archive", Err(e))),
    }
    found.push(or_cannot_tell(
        "ingest",
        ingest(aws, outputs, ingest_fleet_size).await,
    ));
    match fleet(aws, outputs, parameters, ingest_fleet_size).await {
        Ok(Some(fleet)) => found.push(fleet),
        Ok(None) => {}
        Err(e) => found.push(or_cannot_tell("fleet", Err(e))),
    }
    found.push(or_cannot_tell("metastore", metastore(aws, outputs).await));
    found.push(or_cannot_tell("emr", emr(aws, outputs).await));
    // Components whose stack this spec does not have are left out.
    found.retain(|c| rendered.stack(stack_of(&c.name)).is_some());
    let at = usize::from(found.first().is_some_and(|c| c.name == "kafka"));
    found.splice(at..at, datasets);
    if spec.alerts.enabled {
        match firing_alarms(aws, &spec.name).await {
            Ok(firing) => mark_alarms(&mut found, &spec.name, firing),
            Err(e) => found.push(or_cannot_tell("alarms", Err(e))),
        }
    }
    Ok(found)
}

/// The environment's CloudWatch alarms in ALARM: (name, reason).
async fn firing_alarms(aws: &Aws, env: &str) -> Result<Vec<(String, String)>, DeployError> {
    let mut firing = Vec::new();
    let mut pages = aws
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{env}-"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("reading the alarms in ALARM", e))?;
        // Filtered here, not by the API's StateValue (an emulator ignores it).
        let alarm = aws_sdk_cloudwatch::types::StateValue::Alarm;
        for a in page
            .metric_alarms()
            .iter()
            .filter(|a| a.state_value() == Some(&alarm))
        {
            firing.push((
                a.alarm_name().unwrap_or_default().to_string(),
                a.state_reason().unwrap_or_default().to_string(),
            ));
        }
    }
    Ok(firing)
}

/// Put each alarm in ALARM beside its component (`<env>-<component>-<what>`,
/// the templates' naming): an ok component becomes degraded; a component
/// status does not list otherwise (compaction) gets a line of its own.
fn mark_alarms(found: &mut Vec<Component>, env: &str, firing: Vec<(String, String)>) {
    for (name, reason) in firing {
        let Some(rest) = name.strip_prefix(env).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let component = rest.split('-').next().unwrap_or(rest).to_string();
        let at = match found.iter().position(|c| c.name == component) {
            Some(at) => at,
            None => {
                found.push(Component::new(&component, Verdict::Ok, String::new()));
                found.len() - 1
            }
        };
        let c = &mut found[at];
        if c.verdict == Verdict::Ok {
            c.verdict = Verdict::Degraded;
        }
        c.summary = if c.summary.is_empty() {
            format!("ALARM {name}")
        } else {
            format!("{}; ALARM {name}", c.summary)
        };
        c.facts.insert(format!("alarm {name}"), reason);
    }
}

/// A component whose API could not be read is reported, not dropped: one
/// failing call must not hide the rest of the platform from a cron alert.
fn or_cannot_tell(name: &str, checked: Result<Component, DeployError>) -> Component {
    checked.unwrap_or_else(|e| Component::new(name, Verdict::Down, format!("cannot tell: {e}")))
}

/// A component whose stack is not deployed.
fn not_deployed(component: &str, why: &str) -> Component {
    Component::new(component, Verdict::NotDeployed, why.into())
}

/// What CloudFormation still lists but the service no longer has.
fn deleted_outside(component: &str, what: String) -> Component {
    Component::new(
        component,
        Verdict::Down,
        format!("{what} does not exist (deleted outside lakectl?)"),
    )
}

/// The stack a component lives in.
fn stack_of(component: &str) -> &str {
    match component {
        "fleet" => "ingest",
        other => other,
    }
}

/// The worse of two verdicts.
fn worst(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v: Verdict| match v {
        Verdict::Ok => 0,
        Verdict::NotDeployed => 1,
        Verdict::Degraded => 2,
        Verdict::Down => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The raw archive: every archived dataset's Firehose delivery stream, from
/// Firehose itself; a dataset the spec archives without one is down.
async fn archive(
    aws: &Aws,
    outputs: &Outputs,
    datasets: &[crate::render::datasets::DatasetContext],
) -> Result<Option<Component>, DeployError> {
    let archived: Vec<_> = datasets.iter().filter(|d| d.archive).collect();
    if archived.is_empty() || !outputs.contains_key("stream") {
        return Ok(None);
    }
    let mut c = Component::new("archive", Verdict::Ok, String::new());
    let mut parts = Vec::new();
    for d in archived {
        let key = format!("{}DeliveryStreamName", d.logical);
        match output(outputs, "stream", &key) {
            Some(name) => {
                let (v, text) = firehose(aws, name).await?;
                c.verdict = worst(c.verdict, v);
                parts.push(format!("{}: {text}", d.name));
                c = c.fact(&format!("{}_delivery_stream", d.name), name);
            }
            None => {
                c.verdict = Verdict::Down;
                parts.push(format!(
                    "{}: no delivery stream (the stream stack has no output {key})",
                    d.name
                ));
            }
        }
    }
    c.summary = parts.join("; ");
    Ok(Some(c))
}

/// One dataset's row: its stream, leases, and the day's dead letters and
/// dropped unknown fields (the ingest fleet's metrics).
async fn dataset(
    aws: &Aws,
    outputs: &Outputs,
    spec: &EnvSpec,
    d: &crate::render::datasets::DatasetContext,
    leases: &[Lease],
) -> Result<Component, DeployError> {
    let Some(name) = output(outputs, "stream", &format!("{}StreamName", d.logical)) else {
        return Ok(not_deployed(
            &d.name,
            if outputs.contains_key("stream") {
                "its stream is not in the stream stack yet (lakectl up)"
            } else {
                "no stream stack"
            },
        ));
    };
    let mut verdict = Verdict::Ok;
    let mut worse = |v: Verdict| verdict = worst(verdict, v);
    let mut parts = Vec::new();
    let mut c = Component::new(&d.name, Verdict::Ok, String::new()).fact("stream", name);
    match stream(aws, name).await? {
        Some((v, text, open)) => {
            worse(v);
            parts.push(text);
            c = c.fact("open_shards", open);
        }
        None => {
            worse(Verdict::Down);
            parts.push(format!(
                "Kinesis stream {name} does not exist (deleted outside lakectl?)"
            ));
        }
    }
    let open: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.stream.as_deref() == Some(name) && l.checkpoint != SHARD_END)
        .collect();
    let owned = open.iter().filter(|l| l.owner.is_some()).count();
    let lag = open.iter().filter_map(|l| l.lag_ms).max();
    if spec.ingest.fleet_size > 0 && !open.is_empty() && owned < open.len() {
        worse(if owned == 0 {
            Verdict::Down
        } else {
            Verdict::Degraded
        });
    }
    parts.push(if open.is_empty() {
        "no lease yet".to_string()
    } else {
        format!(
            "{owned}/{} shards leased, lag {}",
            open.len(),
            lag.map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "unknown".into())
        )
    });
    for (metric, label) in [
        ("DeadLetters", "dead letters"),
        ("UnknownFields", "unknown fields dropped"),
    ] {
        if let Some(sum) = day_sum(aws, spec, metric, name).await? {
            parts.push(format!("{sum:.0} {label} (24 h)"));
            c = c.fact(&format!("{metric}_24h"), sum);
        }
    }
    if spec.datasets.get(&d.name).is_some_and(|ds| ds.compacts()) {
        if let Some(bucket) = output(outputs, "storage", "DataBucketName") {
            let (v, text, facts) =
                last_compaction(aws, bucket, &lake_prefix(spec, &d.name)).await?;
            worse(v);
            parts.push(text);
            for (k, value) in facts {
                c = c.fact(&k, value);
            }
        }
    }
    c.verdict = verdict;
    c.summary = parts.join("; ");
    Ok(
        c.fact("table", format!("{}.{}", spec.storage.database, d.name))
            .fact("shards_leased", owned)
            .fact("shards_open", open.len()),
    )
}

/// The last whole-dataset compaction run, from the summary the Spark job
/// writes to `<lake prefix>/_compaction/last-run.json`: groups done and
/// failed, bytes in and out, duration. A run with failed groups or an
/// error is degraded (its files are untouched; the next run tries again).
async fn last_compaction(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
) -> Result<(Verdict, String, Vec<(String, String)>), DeployError> {
    let key = format!("{prefix}/_compaction/last-run.json");
    let got = aws.s3.get_object().bucket(bucket).key(&key).send().await;
    let body = match got {
        Ok(o) => match o.body.collect().await {
            Ok(b) => b.into_bytes(),
            Err(e) => {
                return Ok((
                    Verdict::Degraded,
                    format!("last compaction: reading s3://{bucket}/{key} broke off: {e}"),
                    Vec::new(),
                ))
            }
        },
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Ok((Verdict::Ok, "no compaction run yet".into(), Vec::new()));
        }
        Err(e) => {
            // AccessDenied is also what S3 answers for a missing key without
            // s3:ListBucket: say so on the row, keep the dataset's verdict.
            let e = aws_error(format!("reading s3://{bucket}/{key}"), e);
            return Ok((
                Verdict::Degraded,
                format!("last compaction: cannot tell: {e}"),
                Vec::new(),
            ));
        }
    };
    let Ok(run) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok((
            Verdict::Degraded,
            format!("last compaction: s3://{bucket}/{key} is not a run summary"),
            Vec::new(),
        ));
    };
    let n = |k: &str| run[k].as_u64().unwrap_or(0);
    let (done, failed) = (n("groups_done"), n("groups_failed"));
    let mut text = format!(
        "last compaction {}: {done} groups done, {failed} failed, {} -> {} in {:.0} s",
        run["started"].as_str().unwrap_or("?"),
        human_bytes(n("bytes_in")),
        human_bytes(n("bytes_out")),
        run["seconds"].as_f64().unwrap_or(0.0),
    );
    let error = run["error"]
        .as_str()
        .map(|e| e.lines().next().unwrap_or(e).to_string());
    if let Some(e) = &error {
        text.push_str(&format!(" (failed: {e})"));
    }
    let verdict = if failed > 0 || error.is_some() {
        Verdict::Degraded
    } else {
        Verdict::Ok
    };
    let facts = [
        (
            "compaction_started",
            run["started"].as_str().unwrap_or("").to_string(),
        ),
        ("compaction_groups_done", done.to_string()),
        ("compaction_groups_failed", failed.to_string()),
        ("compaction_bytes_in", n("bytes_in").to_string()),
        ("compaction_bytes_out", n("bytes_out").to_string()),
        ("compaction_seconds", run["seconds"].to_string()),
        ("compaction_workers", n("workers").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok((verdict, text, facts))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The sum of the fleet's `metric` for `stream` over the last 24 hours;
/// None when nothing was logged (no window closed).
async fn day_sum(
    aws: &Aws,
    spec: &EnvSpec,
    metric: &str,
    stream: &str,
) -> Result<Option<f64>, DeployError> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let answer = aws
        .cloudwatch
        .get_metric_statistics()
        .namespace(format!("Lake/{}", spec.name))
        .metric_name(metric)
        .dimensions(Dimension::builder().name("Stream").value(stream).build())
        .start_time(DateTime::from_secs(now - 86_400))
        .end_time(DateTime::from_secs(now))
        .period(86_400)
        .statistics(Statistic::Sum)
        .send()
        .await
        .map_err(|e| aws_error(format!("reading metric {metric} of {stream}"), e))?;
    let points = answer.datapoints();
    Ok((!points.is_empty()).then(|| points.iter().filter_map(|p| p.sum()).sum()))
}

/// Kafka: MSK from its own API (state, brokers, bootstrap strings, which
/// CloudFormation cannot return), or self-managed brokers as EC2 instances.
async fn kafka(
    aws: &Aws,
    rendered: &RenderedEnv,
    outputs: &Outputs,
) -> Result<Component, DeployError> {
    let bootstrap_output = output(outputs, "kafka", "KafkaBootstrapBrokers").unwrap_or_default();
    if let Some(arn) = output(outputs, "kafka", "KafkaClusterArn") {
        return msk(aws, arn, bootstrap_output).await;
    }
    if output(outputs, "kafka", "KafkaBootstrapBrokers").is_none() {
        return Ok(not_deployed("kafka", "no kafka stack"));
    }
    // Self-managed: the stack's instances, by CloudFormation's own tag.
    let stack = rendered
        .stack("kafka")
        .map(|s| s.stack_name.clone())
        .unwrap_or_default();
    let found = aws
        .ec2
        .instances(&[Filter::new(
            "tag:aws:cloudformation:stack-name",
            [stack.as_str()],
        )])
        .await
        .map_err(|e| aws_error(format!("listing the instances of {stack}"), e))?;
    let states: Vec<String> = found
        .into_iter()
        .filter_map(|i| i.state)
        .filter(|s| s != "terminated")
        .collect();
    let running = states.iter().filter(|s| *s == "running").count();
    let verdict = if !states.is_empty() && running == states.len() {
        Verdict::Ok
    } else if running > 0 {
        Verdict::Degraded
    } else {
        Verdict::Down
    };
    Ok(Component::new(
        "kafka",
        verdict,
        format!(
            "self-managed: {running} of {} instances running (ZooKeeper and brokers); bootstrap {bootstrap_output}",
            states.len()
        ),
    )
    .fact("instances_running", running)
    .fact("instances", states.len())
    .fact("bootstrap_brokers", bootstrap_output))
}

async fn msk(aws: &Aws, arn: &str, bootstrap_output: &str) -> Result<Component, DeployError> {
    let described = match aws.kafka.describe_cluster().cluster_arn(arn).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            return Ok(deleted_outside("kafka", format!("MSK cluster {arn}")))
        }
        Err(e) => {
            // Say what is known (the stack's bootstrap output) beside why
            // the cluster's own state could not be read.
            return Ok(Component::new(
                "kafka",
                Verdict::Down,
                format!(
                    "cannot tell: {}; bootstrap (stack output) {bootstrap_output}",
                    aws_error(format!("describing MSK cluster {arn}"), e)
                ),
            )
            .fact("cluster_arn", arn)
            .fact("bootstrap_brokers", bootstrap_output));
        }
    };
    let info = described.cluster_info();
    let state = info
        .and_then(|c| c.state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let brokers = info.and_then(|c| c.number_of_broker_nodes()).unwrap_or(0);
    let name = info.and_then(|c| c.cluster_name()).unwrap_or(arn);
    let verdict = match state.as_str() {
        "ACTIVE" => Verdict::Ok,
        "CREATING" | "UPDATING" | "REBOOTING_BROKER" | "MAINTENANCE" | "HEALING" => {
            Verdict::Degraded
        }
        _ => Verdict::Down,
    };
    // The strings clients need; the stack output has them too (through a
    // custom resource), so an endpoint without the call still shows them.
    let (bootstrap, source) = match aws
        .kafka
        .get_bootstrap_brokers()
        .cluster_arn(arn)
        .send()
        .await
    {
        Ok(b) => (
            [
                b.bootstrap_broker_string_sasl_iam(),
                b.bootstrap_broker_string_sasl_scram(),
                b.bootstrap_broker_string_tls(),
                b.bootstrap_broker_string(),
            ]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_default()
            .to_string(),
            "GetBootstrapBrokers".to_string(),
        ),
        Err(e) => (
            bootstrap_output.to_string(),
            format!("stack output; {}", aws_error("GetBootstrapBrokers", e)),
        ),
    };
    Ok(Component::new(
        "kafka",
        verdict,
        format!("MSK {name}: {state}, {brokers} brokers; bootstrap {bootstrap} (from {source})"),
    )
    .fact("cluster_arn", arn)
    .fact("state", &state)
    .fact("brokers", brokers)
    .fact("bootstrap_brokers", bootstrap))
}

/// Firehose's raw archive: status and its last delivery error.
/// A dataset's Firehose: its status and last error.
async fn firehose(aws: &Aws, name: &str) -> Result<(Verdict, String), DeployError> {
    let described = match aws
        .firehose
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok((
                Verdict::Down,
                format!("Firehose {name} does not exist (deleted outside lakectl?)"),
            ))
        }
        Err(e) => return Err(aws_error(format!("describing Firehose {name}"), e).into()),
    };
    let d = described.delivery_stream_description();
    let status = d
        .map(|d| d.delivery_stream_status().as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let failure = d
        .and_then(|d| d.failure_description())
        .map(|f| format!("{}: {}", f.r#type().as_str(), f.details()));
    let verdict = match (status.as_str(), &failure) {
        ("ACTIVE", None) => Verdict::Ok,
        ("ACTIVE", Some(_)) | ("CREATING", _) => Verdict::Degraded,
        _ => Verdict::Down,
    };
    Ok((
        verdict,
        format!(
            "archive {status}{}",
            failure
                .map(|f| format!(" (last error: {f})"))
                .unwrap_or_default()
        ),
    ))
}

/// A dataset's Kinesis stream: its verdict, a summary and its open shards;
/// None when it does not exist.
async fn stream(aws: &Aws, name: &str) -> Result<Option<(Verdict, String, i32)>, DeployError> {
    let summary = match aws
        .kinesis
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(aws_error(format!("describing stream {name}"), e).into()),
    };
    let s = summary.stream_description_summary().ok_or_else(|| {
        AwsError::service(
            format!("describing stream {name}"),
            "EmptyAnswer",
            "no stream description in the answer",
        )
    })?;
    let status = s.stream_status().as_str().to_string();
    let verdict = match status.as_str() {
        "ACTIVE" => Verdict::Ok,
        "UPDATING" | "CREATING" => Verdict::Degraded,
        _ => Verdict::Down,
    };
    Ok(Some((
        verdict,
        format!(
            "stream {status}, {} shards, {} h",
            s.open_shard_count(),
            s.retention_period_hours()
        ),
        s.open_shard_count(),
    )))
}

async fn ingest(aws: &Aws, outputs: &Outputs, fleet_size: u32) -> Result<Component, DeployError> {
    let Some(table) = output(outputs, "ingest", "LeaseTableName") else {
        return Ok(not_deployed("ingest", "no ingest stack"));
    };
    // The consumers' own reader of their lease table.
    let leases = lease::scan(&aws.dynamodb, table)
        .await
        .map_err(|e| aws_error(format!("reading lease table {table}"), e.source))?;
    // A finished parent shard needs no owner.
    let open: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.checkpoint != SHARD_END)
        .collect();
    let owned = open.iter().filter(|l| l.owner.is_some()).count();
    let mut workers: Vec<String> = open.iter().filter_map(|l| l.owner.clone()).collect();
    workers.sort();
    workers.dedup();
    // The consumers' lag, as their last checkpoints recorded it.
    let max_lag_ms = open.iter().filter_map(|l| l.lag_ms).max();
    let verdict = if fleet_size == 0 || open.is_empty() || owned == open.len() {
        Verdict::Ok
    } else if owned > 0 {
        Verdict::Degraded
    } else {
        Verdict::Down
    };
    let summary = if leases.is_empty() {
        format!("lease table {table}: no consumer has started yet")
    } else {
        format!(
            "{owned} of {} open shards leased by {} worker(s); lag {}{}",
            open.len(),
            workers.len(),
            max_lag_ms
                .map(|ms| format!("{:.1} s at the last checkpoint", ms as f64 / 1000.0))
                .unwrap_or_else(|| "unknown (no checkpoint yet)".into()),
            if fleet_size == 0 {
                " (fleet_size 0: consumers run outside AWS)"
            } else {
                ""
            }
        )
    };
    Ok(Component::new("ingest", verdict, summary)
        .fact("lease_table", table)
        .fact("workers", workers.join(","))
        .fact("shards_leased", owned)
        .fact("shards_open", open.len())
        .fact(
            "max_lag_ms",
            max_lag_ms.map(|m| m.to_string()).unwrap_or_default(),
        ))
}

/// The ingest fleet: healthy instances against the desired count, and the
/// artifact it runs (instances on an older launch template are rolling).
async fn fleet(
    aws: &Aws,
    outputs: &Outputs,
    parameters: &Outputs,
    fleet_size: u32,
) -> Result<Option<Component>, DeployError> {
    let Some(group) = output(outputs, "ingest", "IngestAutoScalingGroupName") else {
        return Ok(None);
    };
    let artifact = output(parameters, "ingest", "IngestArtifactSha256").unwrap_or("unknown");
    let found = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| aws_error(format!("describing Auto Scaling group {group}"), e))?;
    let Some(g) = found.auto_scaling_groups().first() else {
        return Ok(Some(deleted_outside(
            "fleet",
            format!("Auto Scaling group {group}"),
        )));
    };
    let desired = g.desired_capacity().unwrap_or(0).max(0) as usize;
    let current_version = g
        .launch_template()
        .and_then(|t| t.version())
        .map(String::from);
    let instances = g.instances();
    let healthy = instances
        .iter()
        .filter(|i| {
            i.lifecycle_state().map(|s| s.as_str()) == Some("InService")
                && i.health_status() == Some("Healthy")
        })
        .count();
    let outdated = instances
        .iter()
        .filter(|i| {
            let version = i.launch_template().and_then(|t| t.version());
            current_version.is_some() && version.is_some() && version != current_version.as_deref()
        })
        .count();
    let verdict = if healthy >= desired && outdated == 0 {
        Verdict::Ok
    } else if healthy > 0 || desired == 0 {
        Verdict::Degraded
    } else {
        Verdict::Down
    };
    let short = &artifact[..artifact.len().min(12)];
    Ok(Some(
        Component::new(
            "fleet",
            verdict,
            format!(
                "{healthy} of {desired} instances healthy (spec: {fleet_size}); lake-ingest {short}{}",
                if outdated > 0 {
                    format!(", {outdated} still on an older launch template (rolling)")
                } else {
                    String::new()
                }
            ),
        )
        .fact("auto_scaling_group", group)
        .fact("healthy", healthy)
        .fact("desired", desired)
        .fact("artifact_sha256", artifact)
        .fact("outdated", outdated),
    ))
}

async fn metastore(aws: &Aws, outputs: &Outputs) -> Result<Component, DeployError> {
    let Some(endpoint) = output(outputs, "metastore", "MetastoreEndpoint") else {
        return Ok(not_deployed("metastore", "no metastore stack"));
    };
    let secret = output(outputs, "metastore", "MetastoreSecretName").unwrap_or_default();
    let verdict_of = |status: &str| match status {
        "available" => Verdict::Ok,
        "backing-up"
        | "modifying"
        | "maintenance"
        | "upgrading"
        | "configuring-enhanced-monitoring" => Verdict::Degraded,
        _ => Verdict::Down,
    };
    // Aurora: the cluster whose endpoint the stack output names.
    let clusters = aws
        .rds
        .clusters()
        .await
        .map_err(|e| aws_error("listing Aurora clusters", e))?;
    if let Some(c) = clusters
        .iter()
        .find(|c| c.endpoint.as_deref() == Some(endpoint))
    {
        let status = c.status.as_str();
        let reader = c.reader_endpoint.as_deref();
        return Ok(Component::new(
            "metastore",
            verdict_of(status),
            format!(
                "Aurora {}: {status}; writer {endpoint}, reader {}; credentials in secret {secret}",
                c.id,
                reader.unwrap_or("-")
            ),
        )
        .fact("status", status)
        .fact("writer", endpoint)
        .fact("reader", reader.unwrap_or_default())
        .fact("secret", secret));
    }
    // A single instance.
    let instances = aws
        .rds
        .instances()
        .await
        .map_err(|e| aws_error("listing DB instances", e))?;
    match instances
        .iter()
        .find(|i| i.address.as_deref() == Some(endpoint))
    {
        Some(i) => {
            let status = i.status.as_str();
            Ok(Component::new(
                "metastore",
                verdict_of(status),
                format!(
                    "RDS {}: {status}; endpoint {endpoint}; credentials in secret {secret}",
                    i.id
                ),
            )
            .fact("status", status)
            .fact("writer", endpoint)
            .fact("secret", secret))
        }
        None => Ok(Component::new(
            "metastore",
            Verdict::Down,
            format!("no database answers at {endpoint}"),
        )),
    }
}

async fn emr(aws: &Aws, outputs: &Outputs) -> Result<Component, DeployError> {
    let Some(id) = output(outputs, "emr", "ClusterId") else {
        return Ok(not_deployed("emr", "no EMR stack"));
    };
    let cluster = aws
        .emr
        .describe_cluster()
        .cluster_id(id)
        .send()
        .await
        .map_err(|e| aws_error(format!("describing EMR cluster {id}"), e))?;
    let Some(c) = cluster.cluster() else {
        return Ok(Component::new(
            "emr",
            Verdict::Down,
            format!("EMR cluster {id} not found"),
        ));
    };
    let state = c
        .status()
        .and_then(|s| s.state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let verdict = match state.as_str() {
        "WAITING" | "RUNNING" => Verdict::Ok,
        "STARTING" | "BOOTSTRAPPING" => Verdict::Degraded,
        _ => Verdict::Down,
    };
    let steps = aws
        .emr
        .list_steps()
        .cluster_id(id)
        .send()
        .await
        .map_err(|e| aws_error(format!("listing steps of {id}"), e))?;
    let recent: Vec<String> = steps
        .steps()
        .iter()
        .take(5)
        .map(|s| {
            format!(
                "{} {}",
                s.name().unwrap_or("step"),
                s.status()
                    .and_then(|x| x.state())
                    .map(|x| x.as_str())
                    .unwrap_or("?")
            )
        })
        .collect();
    let dns = c.master_public_dns_name().unwrap_or("-");
    Ok(Component::new(
        "emr",
        verdict,
        format!(
            "EMR {id}: {state}; master {dns}; recent steps: {}",
            if recent.is_empty() {
                "none".to_string()
            } else {
                recent.join(", ")
            }
        ),
    )
    .fact("cluster", id)
    .fact("state", &state)
    .fact("master_dns", dns)
    .fact("recent_steps", recent.join("; ")))
}

/// The components as aligned lines: name, verdict, summary.
pub fn table(components: &[Component]) -> String {
    let mut out = format!("{:10}  {:12}  DETAIL\n", "COMPONENT", "VERDICT");
    for c in components {
        out.push_str(&format!(
            "{:10}  {:12}  {}\n",
            c.name,
            c.verdict.text(),
            c.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_line_per_component() {
        let components = vec![
            Component::new(
                "stream",
                Verdict::Ok,
                "Kinesis s: ACTIVE, 4 open shards, 24 h retention".into(),
            ),
            Component::new(
                "emr",
                Verdict::Down,
                "EMR j-1: TERMINATED_WITH_ERRORS; master -; recent steps: none".into(),
            ),
        ];
        insta::assert_snapshot!(table(&components), @r"
        COMPONENT   VERDICT       DETAIL
        stream      ok            Kinesis s: ACTIVE, 4 open shards, 24 h retention
        emr         down          EMR j-1: TERMINATED_WITH_ERRORS; master -; recent steps: none
        ");
        let json = serde_json::to_value(&components[1]).unwrap();
        assert_eq!(json["verdict"], "down");
    }
}
