//! The queryable lake: the Hive table over the lake files and the script
//! that creates it and registers its partitions, run as EMR steps (at
//! cluster start, every 15 minutes, and after every compaction run).
//!
//! Owns: the table's DDL from the spec (columns and types from
//! `ingest.schema`, storage from `ingest.format`, the partition column from
//! `ingest.partition_format`) and the registration script. Must not: read
//! S3 or talk to AWS (the script does, on the cluster).
//!
//! Every engine the platform ships (Hive 3 and Spark 3.5 on EMR) reads the
//! table exactly, which decides the storage per format:
//! - CSV: `OpenCSVSerde` over headerless files (Spark ignores
//!   `skip.header.line.count` on partitioned Hive text tables, so a header
//!   would be a row); every column is text, as that serde reads it. Its
//!   escape character is NUL: the default, `\`, would eat the backslashes
//!   of RFC 4180 values (lake-ingest never writes NUL or line breaks into
//!   CSV lake files: such records are dead letters).
//! - Parquet: typed columns, read natively by both.
//! - NDJSON: a one-column text table (`<table>_json`, one JSON line per row)
//!   under a view that extracts typed columns with `json_tuple`. Neither
//!   JSON serde is in both engines: hcatalog's `JsonSerDe` is not in
//!   Spark's distribution, and `org.apache.hadoop.hive.serde2.JsonSerDe` is
//!   Hive 3 only (Spark's Hive client is 2.3).
//!
//! Registration compares the lake's partition directories (one listing of
//! common prefixes) with the metastore's (`SHOW PARTITIONS`) and adds what
//! is new and drops what is gone, in batched statements: every run is
//! complete, and its cost does not grow with the number of partitions
//! already registered beyond those two listings.

use lake_contract::schema::{typed_columns_from_avro, ColumnType};

use crate::spec::model::{EnvSpec, FileFormat};

/// The table (or, for NDJSON, the view) users query, in Hive's default database.
pub const TABLE: &str = "orders";

/// Partitions per `ALTER TABLE` statement when registering.
const BATCH: usize = 100;

/// The partition directories' key (`ordertime` of `ordertime=%Y%m%d%H`).
pub fn partition_key(spec: &EnvSpec) -> String {
    spec.ingest
        .partition_format
        .split_once('=')
        .map(|(k, _)| k.to_string())
        .unwrap_or_else(|| "partition".into())
}

/// The partition column: the directories' key with `_part` appended, so it
/// never collides with a data column (the default layout,
/// `ordertime=YYYYMMDDHH`, names a data column).
pub fn partition_column(spec: &EnvSpec) -> String {
    format!("{}_part", partition_key(spec))
}

/// The table that holds the files and partitions: the queried table itself,
/// or for NDJSON the text table under the view.
pub fn storage_table(spec: &EnvSpec) -> String {
    match spec.ingest.format {
        FileFormat::Ndjson => format!("{TABLE}_json"),
        _ => TABLE.to_string(),
    }
}

fn hive_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::Int32 => "int",
        ColumnType::Int64 => "bigint",
        ColumnType::Float => "float",
        ColumnType::Double => "double",
        ColumnType::String | ColumnType::Json => "string",
    }
}

/// The DDL over `s3://@BUCKET@/<lake prefix>/` (the script puts the data
/// bucket in): `CREATE … IF NOT EXISTS`, so a re-run changes nothing.
/// `None` when the spec has no schema (NDJSON without one).
pub fn table_ddl(spec: &EnvSpec) -> Option<String> {
    let schema = spec.ingest.schema.as_ref()?;
    let columns = typed_columns_from_avro(&schema.to_string(), "_").ok()?;
    let part = partition_column(spec);
    let location = format!(
        "LOCATION 's3://@BUCKET@/{}/'",
        spec.storage.lake_prefix.trim_matches('/')
    );
    let partitioned = format!("PARTITIONED BY (`{part}` string)");
    Some(match spec.ingest.format {
        FileFormat::Csv => {
            let cols: Vec<String> = columns
                .iter()
                .map(|(name, _)| format!("  `{name}` string"))
                .collect();
            format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {TABLE} (\n{}\n)\n{partitioned}\n\
                 ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\n\
                 WITH SERDEPROPERTIES ('separatorChar'=',', 'quoteChar'='\"', 'escapeChar'='\\0')\n\
                 STORED AS TEXTFILE\n{location};\n",
                cols.join(",\n")
            )
        }
        FileFormat::Parquet => {
            let cols: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("  `{name}` {}", hive_type(*ty)))
                .collect();
            format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {TABLE} (\n{}\n)\n{partitioned}\nSTORED AS PARQUET\n{location};\n",
                cols.join(",\n")
            )
        }
        FileFormat::Ndjson => {
            let storage = storage_table(spec);
            let names: Vec<String> = columns.iter().map(|(n, _)| format!("'{n}'")).collect();
            let aliases: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, _)| format!("c{i}"))
                .collect();
            let select: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, (name, ty))| match ty {
                    ColumnType::String | ColumnType::Json => format!("  j.c{i} AS `{name}`"),
                    ty => format!("  CAST(j.c{i} AS {}) AS `{name}`", hive_type(*ty)),
                })
                .collect();
            format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {storage} (\n  `line` string\n)\n{partitioned}\nSTORED AS TEXTFILE\n{location};\n\
                 CREATE VIEW IF NOT EXISTS {TABLE} AS\nSELECT\n{},\n  t.`{part}`\nFROM {storage} t\n\
                 LATERAL VIEW json_tuple(t.`line`, {}) j AS {};\n",
                select.join(",\n"),
                names.join(", "),
                aliases.join(", ")
            )
        }
    })
}

/// The step script (bash; `$1` = the data bucket): create the table if
/// missing, then bring the metastore's partitions in line with the lake's
/// partition directories. An empty lake is not an error.
pub fn table_script(spec: &EnvSpec) -> Option<String> {
    let ddl = table_ddl(spec)?;
    let prefix = spec.storage.lake_prefix.trim_matches('/');
    let key = partition_key(spec);
    let part = partition_column(spec);
    let storage = storage_table(spec);
    Some(format!(
        r#"#!/bin/bash
# Created by lakectl: the Hive table over the lake, and its partitions.
# Every run is complete: partition directories the metastore does not know
# are added, registered partitions whose directory is gone are dropped.
set -euo pipefail
bucket="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/table.sql" <<'SQL'
{ddl}SQL
sed -i "s|@BUCKET@|$bucket|g" "$work/table.sql"
hive -f "$work/table.sql"
# The lake's partition directories; an empty lake lists none (the output is
# "None"), which is not an error.
aws s3api list-objects-v2 --bucket "$bucket" --prefix "{prefix}/" --delimiter / \
  --query 'CommonPrefixes[].Prefix' --output text > "$work/listed.txt"
tr '\t' '\n' < "$work/listed.txt" | sed -n 's|^{prefix}/{key}=\([^/]*\)/$|\1|p' | sort -u > "$work/dirs"
# Only values Hive takes unquoted in a partition spec; anything else was not
# written by lake-ingest and is reported, not registered.
grep -E '^[A-Za-z0-9_.:+-]+$' "$work/dirs" > "$work/lake" || true
if ! cmp -s "$work/dirs" "$work/lake"; then
  echo "lake table: not registered (not a partition value): $(comm -23 "$work/dirs" "$work/lake" | tr '\n' ' ')" >&2
fi
hive -S -e 'SHOW PARTITIONS {storage}' | sed -n 's|^{part}=||p' | sort -u > "$work/known"
comm -13 "$work/known" "$work/lake" > "$work/new"
comm -23 "$work/known" "$work/lake" > "$work/gone"
awk -v bucket="$bucket" '
  NR % {BATCH} == 1 {{ if (NR > 1) print ";"; printf "ALTER TABLE {storage} ADD IF NOT EXISTS" }}
  {{ printf "\n  PARTITION (`{part}`='"'"'%s'"'"') LOCATION '"'"'s3://%s/{prefix}/{key}=%s/'"'"'", $0, bucket, $0 }}
  END {{ if (NR > 0) print ";" }}' "$work/new" > "$work/partitions.sql"
awk '
  NR % {BATCH} == 1 {{ if (NR > 1) print ";"; printf "ALTER TABLE {storage} DROP IF EXISTS" }}
  {{ printf "%s\n  PARTITION (`{part}`='"'"'%s'"'"')", (NR % {BATCH} == 1 ? "" : ","), $0 }}
  END {{ if (NR > 0) print ";" }}' "$work/gone" >> "$work/partitions.sql"
if [ -s "$work/partitions.sql" ]; then hive -f "$work/partitions.sql"; fi
echo "lake table: $(wc -l < "$work/new") partitions added, $(wc -l < "$work/gone") dropped, $(wc -l < "$work/lake") in the lake"
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
    fn csv_tables_read_headerless_text() {
        let ddl = table_ddl(&spec(FileFormat::Csv)).unwrap();
        assert!(ddl.contains("`ordertime` string,"), "{ddl}");
        assert!(ddl.contains("OpenCSVSerde"), "{ddl}");
        assert!(!ddl.contains("skip.header"), "{ddl}");
    }

    #[test]
    fn ndjson_is_a_text_table_under_a_typed_view() {
        let s = spec(FileFormat::Ndjson);
        let ddl = table_ddl(&s).unwrap();
        assert!(
            ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS orders_json (\n  `line` string\n)"),
            "{ddl}"
        );
        assert!(ddl.contains("CREATE VIEW IF NOT EXISTS orders AS"), "{ddl}");
        assert!(ddl.contains("CAST(j.c1 AS int) AS `orderid`"), "{ddl}");
        assert_eq!(storage_table(&s), "orders_json");
        let script = table_script(&s).unwrap();
        assert!(script.contains("SHOW PARTITIONS orders_json"), "{script}");
    }

    #[test]
    fn the_script_quotes_its_sql_and_tolerates_an_empty_lake() {
        let script = table_script(&spec(FileFormat::Csv)).unwrap();
        // The DDL goes through a quoted heredoc: nothing in it expands.
        assert!(script.contains("<<'SQL'"));
        assert!(!table_ddl(&spec(FileFormat::Csv)).unwrap().contains('$'));
        // No `aws s3 ls`: it exits 1 on an empty listing.
        assert!(!script.contains("aws s3 ls"), "{script}");
    }
}
