//! The queryable lake: the Hive external table over the lake files and the
//! script that creates it and registers its partitions, run as EMR steps
//! (at cluster start, and after every compaction run).
//!
//! Owns: the table's DDL from the spec (columns and types from
//! `ingest.schema`, storage from `ingest.format`, the partition column from
//! `ingest.partition_format`) and the registration script. Must not: read
//! S3 or talk to AWS (the script does, on the cluster).

use lake_dataplane::flatten::schema::{typed_columns_from_avro, ColumnType};

use crate::spec::model::{EnvSpec, FileFormat};

/// The table's name in Hive's default database.
pub const TABLE: &str = "orders";

/// The partition column: the partition directories' key with `_part`
/// appended, so it never collides with a data column (the lake's default
/// layout, `ordertime=YYYYMMDDHH`, names a data column).
pub fn partition_column(spec: &EnvSpec) -> String {
    let key = spec
        .ingest
        .partition_format
        .split_once('=')
        .map(|(k, _)| k)
        .unwrap_or("partition");
    format!("{key}_part")
}

fn hive_type(ty: ColumnType, format: FileFormat) -> &'static str {
    // OpenCSVSerde reads every column as text; typed columns would be null.
    if format == FileFormat::Csv {
        return "string";
    }
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::Int32 => "int",
        ColumnType::Int64 => "bigint",
        ColumnType::Float => "float",
        ColumnType::Double => "double",
        ColumnType::String | ColumnType::Json => "string",
    }
}

/// `CREATE EXTERNAL TABLE IF NOT EXISTS …` over `s3://@BUCKET@/<lake
/// prefix>/` (the script puts the data bucket in). `None` when the spec has
/// no schema (NDJSON without one).
pub fn table_ddl(spec: &EnvSpec) -> Option<String> {
    let schema = spec.ingest.schema.as_ref()?;
    let columns = typed_columns_from_avro(&schema.to_string(), "_").ok()?;
    let format = spec.ingest.format;
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("  `{name}` {}", hive_type(*ty, format)))
        .collect();
    let storage = match format {
        FileFormat::Csv => {
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\nSTORED AS TEXTFILE"
        }
        FileFormat::Ndjson => {
            "ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\nSTORED AS TEXTFILE"
        }
        FileFormat::Parquet => "STORED AS PARQUET",
    };
    let header = if format == FileFormat::Csv {
        "\nTBLPROPERTIES ('skip.header.line.count'='1')"
    } else {
        ""
    };
    Some(format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {TABLE} (\n{}\n)\nPARTITIONED BY (`{}` string)\n{storage}\nLOCATION 's3://@BUCKET@/{}/'{header};\n",
        columns.join(",\n"),
        partition_column(spec),
        spec.storage.lake_prefix.trim_matches('/'),
    ))
}

/// The step script (bash; `$1` = the data bucket): create the table if
/// missing, then register every partition directory the lake has (new ones
/// from ingest, rewritten ones after compaction), idempotently.
pub fn table_script(spec: &EnvSpec) -> Option<String> {
    let ddl = table_ddl(spec)?;
    let prefix = spec.storage.lake_prefix.trim_matches('/');
    let part = partition_column(spec);
    Some(format!(
        r#"#!/bin/bash
# Created by lakectl: the Hive table over the lake, and its partitions.
set -euo pipefail
bucket="$1"
cat > /tmp/lake-table.sql <<'SQL'
{ddl}SQL
sed -i "s|@BUCKET@|$bucket|" /tmp/lake-table.sql
hive -f /tmp/lake-table.sql
aws s3 ls "s3://$bucket/{prefix}/" | awk '$1 == "PRE" && $2 ~ /=/ {{ print $2 }}' | while read -r dir; do
  dir="${{dir%/}}"
  echo "ALTER TABLE {TABLE} ADD IF NOT EXISTS PARTITION (\`{part}\`='${{dir#*=}}') LOCATION 's3://$bucket/{prefix}/$dir/';"
done > /tmp/lake-partitions.sql
if [ -s /tmp/lake-partitions.sql ]; then hive -f /tmp/lake-partitions.sql; fi
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: FileFormat) -> EnvSpec {
        let mut spec: EnvSpec = serde_yaml::from_str(
            "name: t\nregion: us-east-1\nnetwork: {mode: new, cidr: 10.0.0.0/16}\n",
        )
        .unwrap();
        spec.ingest.format = format;
        spec
    }

    #[test]
    fn parquet_tables_are_typed_and_partitioned_apart_from_the_data_columns() {
        let ddl = table_ddl(&spec(FileFormat::Parquet)).unwrap();
        assert_eq!(
            ddl,
            "CREATE EXTERNAL TABLE IF NOT EXISTS orders (\n  `ordertime` bigint,\n  `orderid` int,\n  `itemid` string,\n  `orderunits` double,\n  `address_city` string,\n  `address_state` string,\n  `address_zipcode` bigint\n)\nPARTITIONED BY (`ordertime_part` string)\nSTORED AS PARQUET\nLOCATION 's3://@BUCKET@/lake/orders/';\n"
        );
    }

    #[test]
    fn csv_tables_read_text_and_skip_each_files_header() {
        let ddl = table_ddl(&spec(FileFormat::Csv)).unwrap();
        assert!(ddl.contains("`ordertime` string,"), "{ddl}");
        assert!(ddl.contains("OpenCSVSerde"), "{ddl}");
        assert!(
            ddl.ends_with("TBLPROPERTIES ('skip.header.line.count'='1');\n"),
            "{ddl}"
        );
    }

    #[test]
    fn the_script_registers_partition_directories_by_their_value() {
        let script = table_script(&spec(FileFormat::Ndjson)).unwrap();
        assert!(script.contains("JsonSerDe"));
        assert!(script.contains(
            "ALTER TABLE orders ADD IF NOT EXISTS PARTITION (\\`ordertime_part\\`='${dir#*=}') LOCATION 's3://$bucket/lake/orders/$dir/';"
        ), "{script}");
        // The DDL goes through a quoted heredoc: nothing in it expands.
        assert!(script.contains("<<'SQL'"));
        assert!(!table_ddl(&spec(FileFormat::Ndjson)).unwrap().contains('$'));
    }
}
