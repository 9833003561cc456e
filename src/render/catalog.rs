//! The stacks of the platform: which exist for a spec, and their templates.
//!
//! Owns: the list of stacks in their canonical order and the embedded
//! template sources. Must not: decide dependencies (they are derived from
//! the rendered templates' parameters in `wiring`) or render anything.

use crate::spec::model::{EnvSpec, KafkaMode};

/// One stack kind: id, template file, and whether a spec has it.
pub struct StackKind {
    pub id: &'static str,
    pub template: &'static str,
    pub source: &'static str,
    pub enabled: fn(&EnvSpec) -> bool,
    /// What it holds, for `lakectl graph` and docs.
    pub summary: &'static str,
}

macro_rules! template {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $file)),
        )
    };
}

const fn always(_: &EnvSpec) -> bool {
    true
}

/// Canonical order: also the tie-break of the deploy order.
pub fn stack_kinds() -> [StackKind; 9] {
    let kind = |id, (template, source): (&'static str, &'static str), enabled, summary| StackKind {
        id,
        template,
        source,
        enabled,
        summary,
    };
    [
        kind(
            "network",
            template!("network.yaml.j2"),
            always,
            "VPC, subnets, NAT, security groups",
        ),
        kind(
            "storage",
            template!("storage.yaml.j2"),
            always,
            "KMS key; data, artifacts and logs buckets",
        ),
        kind(
            "iam",
            template!("iam.yaml.j2"),
            always,
            "least-privilege roles of every component",
        ),
        kind(
            "stream",
            template!("stream.yaml.j2"),
            always,
            "Kinesis stream; Firehose to the raw archive",
        ),
        kind(
            "kafka",
            template!("kafka.yaml.j2"),
            |s| s.kafka.is_some(),
            "MSK or self-managed ZooKeeper + Kafka; topics; Kafka->Kinesis bridge",
        ),
        kind(
            "metastore",
            template!("metastore.yaml.j2"),
            always,
            "Aurora MySQL for the Hive metastore and Hue; its secret",
        ),
        kind(
            "emr",
            template!("emr.yaml.j2"),
            always,
            "EMR cluster (Spark, Hive, Hue) with its security configuration",
        ),
        kind(
            "ingest",
            template!("ingest.yaml.j2"),
            always,
            "lake-ingest fleet: lease table, launch template, Auto Scaling group",
        ),
        kind(
            "compaction",
            template!("compaction.yaml.j2"),
            |s| s.compaction.enabled,
            "lake-compact runner: Step Functions -> EMR step, schedule",
        ),
    ]
}

/// Partial templates included by the stack templates.
pub fn partials() -> [(&'static str, &'static str); 1] {
    [template!("_macros.j2")]
}

/// True when the self-managed Kafka layout (EC2 instances) is in use.
pub fn self_managed_kafka(spec: &EnvSpec) -> bool {
    matches!(&spec.kafka, Some(k) if k.mode == KafkaMode::SelfManaged)
}
