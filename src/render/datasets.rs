//! What the templates see of each dataset: its names (logical ids, stream,
//! lake folder, topic, connector), its ingest settings as `lake-ingest`
//! reads them, and its compaction schedule.
//!
//! Owns: deriving those values from `datasets.<name>` (one place, so the
//! stream the bridge writes is the stream the fleet reads and the folder
//! the table reads is the folder the fleet writes). Must not: render
//! templates or build scripts (`hive`, `steps`).

use serde::Serialize;

use crate::spec::model::{Dataset, EnvSpec, FileFormat, PartitionBy, UnknownFields};

/// One dataset, as the templates use it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetContext {
    /// `orders`: the table, the lake folder, the key in `datasets`.
    pub name: String,
    /// `Orders`: the part of its resources' logical ids.
    pub logical: String,
    /// `<env>-orders`: its Kinesis stream.
    pub stream_name: String,
    /// `lake/orders`: its files' prefix in the data bucket.
    pub lake_prefix: String,
    /// The Kafka topic the bridge copies to its stream, if any.
    pub topic: Option<String>,
    pub partitions: u32,
    pub replication: u32,
    /// Its raw archive (Firehose) prefix, when archived.
    pub archive: bool,
    pub archive_prefix: String,
    /// `off`, `manual`, or the schedule expression.
    pub compaction: String,
    pub compaction_target_mib: u32,
    pub retention_days: u32,
    pub format: &'static str,
    /// The stream's settings.
    pub stream_on_demand: bool,
    pub shards: u32,
    pub retention_hours: u32,
    pub kms_key: String,
    /// Columns of the raw archive's Glue table (Firehose's Parquet
    /// conversion): (name, Glue type), nested records as structs.
    pub glue_columns: Vec<(String, String)>,
}

/// `page_views` -> `PageViews`.
pub fn logical_id(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The stream of dataset `name` in environment `env`.
pub fn stream_name(env: &str, name: &str) -> String {
    format!("{env}-{}", name.replace('_', "-"))
}

/// The lake folder of dataset `name`.
pub fn lake_prefix(spec: &EnvSpec, name: &str) -> String {
    format!("{}/{name}", spec.storage.lake_root.trim_matches('/'))
}

/// The fleet's settings for one dataset: what `lake-ingest run --config`
/// reads (`lake_dataplane::ingest::config`).
pub fn ingest_entry(spec: &EnvSpec, name: &str, d: &Dataset) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "stream": stream_name(&spec.name, name),
        "prefix": lake_prefix(spec, name),
        "format": d.format.as_str(),
        "schema": d.schema_json(),
        "partition_by": match d.effective_partition_by() {
            PartitionBy::RecordTime => "record-time",
            PartitionBy::ArrivalTime => "arrival-time",
        },
        "time_field": d.time_field,
        "layout": d.layout(),
        "unknown_fields": match d.unknown_fields {
            UnknownFields::Drop => "drop",
            UnknownFields::DeadLetter => "dead-letter",
        },
        // Before datasets, the fleet read one stream, `<env>-orders`, and
        // keyed its leases by shard id alone: that stream's fleet imports
        // them (docs/migrating-to-datasets.md).
        "legacy_leases": name == "orders",
    })
}

/// The fleet's configuration file (`lake-ingest run --config`): every
/// dataset's entry. Published to the artifacts bucket by its content, so
/// the fleet's user data names a new file (and the fleet rolls) exactly
/// when a dataset's ingest settings change.
pub struct IngestConfig {
    pub key: String,
    pub sha256: String,
    pub text: String,
}

pub fn ingest_config(spec: &EnvSpec) -> IngestConfig {
    use sha2::{Digest, Sha256};
    let entries: Vec<serde_json::Value> = spec
        .datasets
        .iter()
        .map(|(name, d)| ingest_entry(spec, name, d))
        .collect();
    let mut text =
        serde_json::to_string_pretty(&serde_json::json!({ "datasets": entries })).expect("JSON");
    text.push('\n');
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    IngestConfig {
        key: format!("ingest/config/{sha256}/datasets.json"),
        sha256,
        text,
    }
}

/// Every dataset of `spec`, in spec order.
pub fn contexts(spec: &EnvSpec) -> Vec<DatasetContext> {
    spec.datasets
        .iter()
        .map(|(name, d)| {
            let (partitions, replication) = match d.source_in(spec) {
                crate::spec::model::Source::Kafka {
                    partitions,
                    replication,
                    ..
                } => (partitions, replication),
                crate::spec::model::Source::Stream => (0, 0),
            };
            DatasetContext {
                name: name.clone(),
                logical: logical_id(name),
                stream_name: stream_name(&spec.name, name),
                lake_prefix: lake_prefix(spec, name),
                topic: d.topic(spec, name),
                partitions,
                replication,
                archive: spec.archive.enabled && d.archive,
                archive_prefix: format!("{}{name}/", spec.archive.prefix),
                compaction: d.compaction.clone(),
                compaction_target_mib: d.compaction_target_mib,
                retention_days: d.retention_days,
                format: match d.format {
                    FileFormat::Csv => "csv",
                    FileFormat::Ndjson => "ndjson",
                    FileFormat::Parquet => "parquet",
                },
                stream_on_demand: d.stream.mode == crate::spec::model::StreamMode::OnDemand,
                shards: d.stream.shards,
                retention_hours: d.stream.retention_hours,
                kms_key: d.stream.kms_key.clone(),
                glue_columns: d.schema_json().map(glue_columns).unwrap_or_default(),
            }
        })
        .collect()
}

/// The Glue columns of an Avro record schema: top-level fields, nested
/// records as `struct<…>` (Firehose converts records as they arrive,
/// before flattening).
pub fn glue_columns(schema: &serde_json::Value) -> Vec<(String, String)> {
    fn ty(t: &serde_json::Value) -> String {
        match t {
            serde_json::Value::String(s) => match s.as_str() {
                "long" => "bigint".into(),
                "int" => "int".into(),
                "double" => "double".into(),
                "float" => "float".into(),
                "boolean" => "boolean".into(),
                _ => "string".into(),
            },
            serde_json::Value::Array(alts) => alts
                .iter()
                .find(|a| a.as_str() != Some("null"))
                .map(ty)
                .unwrap_or_else(|| "string".into()),
            serde_json::Value::Object(o)
                if o.get("type").and_then(|t| t.as_str()) == Some("record") =>
            {
                let fields: Vec<String> = o
                    .get("fields")
                    .and_then(|f| f.as_array())
                    .map(|fs| {
                        fs.iter()
                            .map(|f| {
                                format!("{}:{}", f["name"].as_str().unwrap_or("_"), ty(&f["type"]))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!("struct<{}>", fields.join(","))
            }
            serde_json::Value::Object(o) => {
                o.get("type").map(ty).unwrap_or_else(|| "string".into())
            }
            _ => "string".into(),
        }
    }
    schema["fields"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["name"].as_str().unwrap_or("_").to_string(),
                        ty(&f["type"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_dataset() {
        assert_eq!(logical_id("orders"), "Orders");
        assert_eq!(logical_id("page_views"), "PageViews");
        assert_eq!(stream_name("lake-poc", "page_views"), "lake-poc-page-views");
    }
}
