//! Live health of the platform's components, each from its own API (what
//! CloudFormation cannot say: whether the stream takes records, the
//! cluster runs, the database answers, the consumers hold their shards).
//!
//! Owns: one check per component and its one-line verdict. Must not:
//! change anything, or read stack state beyond the outputs it is handed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cfn::aws_error;
use super::{Aws, DeployError};
use crate::render::RenderedEnv;

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
    ingest_fleet_size: u32,
) -> Result<Vec<Component>, DeployError> {
    let mut found = vec![stream(aws, outputs).await?];
    found.push(ingest(aws, outputs, ingest_fleet_size).await?);
    found.push(metastore(aws, outputs).await?);
    found.push(emr(aws, outputs).await?);
    // Components whose stack this spec does not have are left out.
    found.retain(|c| rendered.stack(&c.name).is_some());
    Ok(found)
}

async fn stream(aws: &Aws, outputs: &Outputs) -> Result<Component, DeployError> {
    let Some(name) = output(outputs, "stream", "StreamName") else {
        return Ok(Component::new(
            "stream",
            Verdict::NotDeployed,
            "no stream stack".into(),
        ));
    };
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
            return Ok(Component::new(
                "stream",
                Verdict::Down,
                format!("Kinesis stream {name} does not exist (deleted outside lakectl?)"),
            ))
        }
        Err(e) => return Err(aws_error(format!("describing stream {name}"), e)),
    };
    let s = summary
        .stream_description_summary()
        .ok_or_else(|| DeployError::Refused(format!("stream {name}: empty description")))?;
    let status = s.stream_status().as_str().to_string();
    let verdict = match status.as_str() {
        "ACTIVE" => Verdict::Ok,
        "UPDATING" | "CREATING" => Verdict::Degraded,
        _ => Verdict::Down,
    };
    Ok(Component::new(
        "stream",
        verdict,
        format!(
            "Kinesis {name}: {status}, {} open shards, {} h retention",
            s.open_shard_count(),
            s.retention_period_hours()
        ),
    )
    .fact("stream", name)
    .fact("status", &status)
    .fact("open_shards", s.open_shard_count()))
}

async fn ingest(aws: &Aws, outputs: &Outputs, fleet_size: u32) -> Result<Component, DeployError> {
    let Some(table) = output(outputs, "ingest", "LeaseTableName") else {
        return Ok(Component::new(
            "ingest",
            Verdict::NotDeployed,
            "no ingest stack".into(),
        ));
    };
    let scan = aws
        .dynamodb
        .scan()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws_error(format!("reading lease table {table}"), e))?;
    let text =
        |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
         key: &str| {
            item.get(key)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
    let leases = scan.items();
    // A finished parent shard needs no owner.
    let open: Vec<_> = leases
        .iter()
        .filter(|i| text(i, "checkpoint") != "SHARD_END")
        .collect();
    let owned = open
        .iter()
        .filter(|i| !text(i, "leaseOwner").is_empty())
        .count();
    let mut workers: Vec<String> = open
        .iter()
        .map(|i| text(i, "leaseOwner"))
        .filter(|o| !o.is_empty())
        .collect();
    workers.sort();
    workers.dedup();
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
            "{owned} of {} open shards leased by {} worker(s){}",
            open.len(),
            workers.len(),
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
        .fact("shards_open", open.len()))
}

async fn metastore(aws: &Aws, outputs: &Outputs) -> Result<Component, DeployError> {
    let Some(endpoint) = output(outputs, "metastore", "MetastoreEndpoint") else {
        return Ok(Component::new(
            "metastore",
            Verdict::NotDeployed,
            "no metastore stack".into(),
        ));
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
        .describe_db_clusters()
        .send()
        .await
        .map_err(|e| aws_error("listing Aurora clusters".into(), e))?;
    if let Some(c) = clusters
        .db_clusters()
        .iter()
        .find(|c| c.endpoint() == Some(endpoint))
    {
        let status = c.status().unwrap_or("unknown");
        return Ok(Component::new(
            "metastore",
            verdict_of(status),
            format!(
                "Aurora {}: {status}; writer {endpoint}, reader {}; credentials in secret {secret}",
                c.db_cluster_identifier().unwrap_or_default(),
                c.reader_endpoint().unwrap_or("-")
            ),
        )
        .fact("status", status)
        .fact("writer", endpoint)
        .fact("reader", c.reader_endpoint().unwrap_or_default())
        .fact("secret", secret));
    }
    // A single instance.
    let instances = aws
        .rds
        .describe_db_instances()
        .send()
        .await
        .map_err(|e| aws_error("listing DB instances".into(), e))?;
    match instances
        .db_instances()
        .iter()
        .find(|i| i.endpoint().and_then(|e| e.address()) == Some(endpoint))
    {
        Some(i) => {
            let status = i.db_instance_status().unwrap_or("unknown");
            Ok(Component::new(
                "metastore",
                verdict_of(status),
                format!(
                    "RDS {}: {status}; endpoint {endpoint}; credentials in secret {secret}",
                    i.db_instance_identifier().unwrap_or_default()
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
        return Ok(Component::new(
            "emr",
            Verdict::NotDeployed,
            "no EMR stack".into(),
        ));
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
