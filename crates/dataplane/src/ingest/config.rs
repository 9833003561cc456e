//! The fleet's datasets file (`lake-ingest run --config FILE`): one entry
//! per dataset, as `lakectl` writes it from the spec (`render::datasets`),
//! and the lake format of an entry.
//!
//! Owns: the file's shape, its checks (every problem named by dataset and
//! field, with the file's line and column for JSON errors), and turning an
//! Avro schema into a `LakeFormat` (shared with the command line's
//! `--schema`). Must not: read streams or decide how shards are shared.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::parquet::ParquetLayout;
use super::{LakeFormat, PartitionBy};
use crate::flatten::CsvLayout;

/// The datasets file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetsFile {
    pub datasets: Vec<DatasetEntry>,
}

/// One dataset: where its records come from and how they land.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// The dataset (its table's name).
    pub name: String,
    /// Its Kinesis stream.
    pub stream: String,
    /// Its lake folder, under the `--sink` root (`lake/orders`).
    pub prefix: String,
    pub format: FormatName,
    /// Avro record schema of the columns (CSV, Parquet; NDJSON: unused).
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    pub partition_by: PartitionByName,
    /// The record's own time field (`record-time`).
    #[serde(default)]
    pub time_field: Option<String>,
    /// Partition directories (`lake_contract::layout`).
    pub layout: String,
    #[serde(default)]
    pub unknown_fields: UnknownFieldsName,
    /// Its stream's leases may still be keyed by the bare shard id: the
    /// single `<env>-orders` stream's, from before the lease table was
    /// shared by every dataset.
    #[serde(default)]
    pub legacy_leases: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    Ndjson,
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionByName {
    RecordTime,
    ArrivalTime,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownFieldsName {
    /// Keep the row without the field, and count it.
    #[default]
    Drop,
    /// Send the whole record to the dead letters.
    DeadLetter,
}

/// The datasets file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--config {path}:{line}:{column}: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("--config {path}: {}", problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// Read and check the datasets file at `path`: every problem at once.
pub fn read(path: &Path) -> Result<Vec<DatasetEntry>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: DatasetsFile = serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let problems = check(&file.datasets);
    if problems.is_empty() {
        Ok(file.datasets)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// What is wrong with the entries, each named by dataset and field.
fn check(entries: &[DatasetEntry]) -> Vec<String> {
    let mut problems = Vec::new();
    if entries.is_empty() {
        problems.push("`datasets` is empty: no stream to read".to_string());
    }
    let mut streams = std::collections::HashSet::new();
    let mut prefixes = std::collections::HashSet::new();
    for (i, d) in entries.iter().enumerate() {
        let at = format!("datasets.{i} ({})", d.name);
        if !streams.insert(d.stream.as_str()) {
            problems.push(format!(
                "{at}.stream: `{}` is another dataset's stream too",
                d.stream
            ));
        }
        let prefix = d.prefix.trim_matches('/');
        if prefix.is_empty() {
            problems.push(format!(
                "{at}.prefix: empty (each dataset has a folder of its own)"
            ));
        } else if !prefixes.insert(prefix) {
            problems.push(format!(
                "{at}.prefix: `{prefix}` is another dataset's folder too"
            ));
        }
        if let Err(e) = lake_contract::layout::partition_keys(&d.layout) {
            problems.push(format!("{at}.layout: {e}"));
        }
        if d.partition_by == PartitionByName::RecordTime && d.time_field.is_none() {
            problems.push(format!(
                "{at}.time_field: partition_by record-time needs it"
            ));
        }
        if let Err(e) = lake_format(d.format, d.schema.as_ref(), "_") {
            problems.push(format!("{at}.schema: {e}"));
        }
    }
    problems
}

impl DatasetEntry {
    /// Which time partitions the dataset's records.
    pub fn partition_by(&self) -> PartitionBy {
        match (self.partition_by, &self.time_field) {
            (PartitionByName::RecordTime, Some(field)) => PartitionBy::RecordTime {
                field: field.clone(),
            },
            _ => PartitionBy::ArrivalTime,
        }
    }

    /// The lake format of its files.
    pub fn lake_format(&self, separator: &str) -> Result<LakeFormat, String> {
        lake_format(self.format, self.schema.as_ref(), separator)
    }
}

/// The lake format of `format` with `schema` (an Avro record schema; CSV
/// and Parquet need one: every file of a table gets the same columns,
/// whichever worker or replay writes it).
pub fn lake_format(
    format: FormatName,
    schema: Option<&serde_json::Value>,
    separator: &str,
) -> Result<LakeFormat, String> {
    use lake_contract::schema::typed_columns;
    Ok(match (format, schema) {
        (FormatName::Ndjson, _) => LakeFormat::Ndjson,
        (FormatName::Csv, None) => {
            return Err("format csv needs an Avro record schema (such as orders.avsc) to fix the columns of every file".into())
        }
        (FormatName::Parquet, None) => {
            return Err("format parquet needs an Avro record schema (such as orders.avsc) to type the columns of every file".into())
        }
        (FormatName::Csv, Some(schema)) => {
            let columns = typed_columns(schema, separator).map_err(|e| e.to_string())?;
            LakeFormat::Csv(
                CsvLayout::new(columns.into_iter().map(|(name, _)| name).collect())
                    .map_err(|e| e.to_string())?,
            )
        }
        (FormatName::Parquet, Some(schema)) => {
            let columns = typed_columns(schema, separator).map_err(|e| e.to_string())?;
            LakeFormat::Parquet(std::sync::Arc::new(
                ParquetLayout::new(columns).map_err(|e| e.to_string())?,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: serde_json::Value) -> Result<Vec<DatasetEntry>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datasets.json");
        std::fs::write(&path, json.to_string()).unwrap();
        read(&path).map_err(|e| e.to_string())
    }

    fn orders() -> serde_json::Value {
        serde_json::json!({
            "name": "orders", "stream": "lake-t-orders", "prefix": "lake/orders",
            "format": "parquet", "partition_by": "record-time", "time_field": "ordertime",
            "layout": "dt=%Y-%m-%d/hr=%H",
            "schema": {"type": "record", "name": "o", "fields": [{"name": "ordertime", "type": "long"}]}
        })
    }

    #[test]
    fn a_good_file_reads_back() {
        let got = entry(serde_json::json!({ "datasets": [orders()] })).unwrap();
        assert_eq!(got[0].stream, "lake-t-orders");
        assert_eq!(got[0].unknown_fields, UnknownFieldsName::Drop);
        assert!(matches!(
            got[0].partition_by(),
            PartitionBy::RecordTime { .. }
        ));
    }

    #[test]
    fn every_problem_is_named_by_dataset_and_field() {
        let mut second = orders();
        second["name"] = "again".into();
        second["layout"] = "%Y%m%d".into();
        second["format"] = "csv".into();
        second.as_object_mut().unwrap().remove("schema");
        let err = entry(serde_json::json!({ "datasets": [orders(), second] })).unwrap_err();
        assert!(err.contains("datasets.1 (again).stream"), "{err}");
        assert!(err.contains("datasets.1 (again).prefix"), "{err}");
        assert!(err.contains("datasets.1 (again).layout"), "{err}");
        assert!(
            err.contains("datasets.1 (again).schema: format csv needs"),
            "{err}"
        );
        let mut typo = orders();
        typo["fromat"] = "csv".into();
        let err = entry(serde_json::json!({ "datasets": [typo] })).unwrap_err();
        assert!(
            err.contains("unknown field `fromat`") && err.contains(":1:"),
            "{err}"
        );
    }
}
