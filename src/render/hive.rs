//! The queryable lake: one Hive table per dataset over its lake folder, in
//! the environment's database; created, evolved and given its partitions by
//! the `table` action of the lake steps script (`steps`), run as EMR steps
//! (at cluster start, every 15 minutes, and after every compaction run).
//!
//! Owns: each table's DDL from its dataset (columns and types from
//! `schema`, storage from `format`, partition columns from the layout's
//! directory keys: `dt`, `hr` — never data columns), and the columns a
//! grown schema adds. Must not: read S3 or talk to AWS (the script does,
//! on the cluster).
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
//! Registration (`steps`) compares the lake's partition directories (a
//! listing of common prefixes per level) with the metastore's (`SHOW
//! PARTITIONS`) and adds what is new and drops what is gone, in batched
//! statements: every run is complete.
//!
//! Schema growth: a dataset's schema may gain columns (`validate` refuses
//! any other change); the table action adds the ones the table lacks
//! (`ALTER TABLE … ADD COLUMNS`, appended: CSV stays positional), and
//! rewrites the NDJSON view. Old files read the new columns as null.

use lake_contract::schema::{typed_columns, ColumnType};

use crate::spec::model::{Dataset, EnvSpec, FileFormat};

/// The table (or, for NDJSON, the text table under the view) that holds
/// the files and partitions.
pub fn storage_table(name: &str, d: &Dataset) -> String {
    match d.format {
        FileFormat::Ndjson => format!("{name}_json"),
        _ => name.to_string(),
    }
}

pub fn hive_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::Int32 => "int",
        ColumnType::Int64 => "bigint",
        ColumnType::Float => "float",
        ColumnType::Double => "double",
        ColumnType::String | ColumnType::Json => "string",
    }
}

/// The table's columns: (name, Hive type) as its files hold them (CSV:
/// every column is text, as OpenCSVSerde reads it). None without a schema.
pub fn table_columns(d: &Dataset) -> Option<Vec<(String, &'static str)>> {
    let columns = typed_columns(d.schema_json()?, "_").ok()?;
    Some(
        columns
            .into_iter()
            .map(|(name, ty)| {
                let hive = match d.format {
                    FileFormat::Csv => "string",
                    _ => hive_type(ty),
                };
                (name, hive)
            })
            .collect(),
    )
}

/// The DDL of dataset `name`'s table in database `db` over
/// `s3://@BUCKET@/<lake folder>/` (the script puts the data bucket in):
/// `CREATE … IF NOT EXISTS`, so a re-run changes nothing. `None` without
/// a schema.
pub fn table_ddl(spec: &EnvSpec, name: &str, d: &Dataset) -> Option<String> {
    let columns = table_columns(d)?;
    let db = &spec.storage.database;
    let location = format!(
        "LOCATION 's3://@BUCKET@/{}/'",
        super::datasets::lake_prefix(spec, name)
    );
    let keys: Vec<String> = d
        .partition_keys()
        .iter()
        .map(|k| format!("`{k}` string"))
        .collect();
    let partitioned = format!("PARTITIONED BY ({})", keys.join(", "));
    let cols: Vec<String> = columns
        .iter()
        .map(|(n, ty)| format!("  `{n}` {ty}"))
        .collect();
    Some(match d.format {
        FileFormat::Csv => format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{name} (\n{}\n)\n{partitioned}\n\
             ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\n\
             WITH SERDEPROPERTIES ('separatorChar'=',', 'quoteChar'='\"', 'escapeChar'='\\0')\n\
             STORED AS TEXTFILE\n{location};\n",
            cols.join(",\n")
        ),
        FileFormat::Parquet => format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{name} (\n{}\n)\n{partitioned}\nSTORED AS PARQUET\n{location};\n",
            cols.join(",\n")
        ),
        FileFormat::Ndjson => format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{} (\n  `line` string\n)\n{partitioned}\nSTORED AS TEXTFILE\n{location};\n{}",
            storage_table(name, d),
            ndjson_view(spec, name, d)?
        ),
    })
}

/// The NDJSON table's typed view: `CREATE OR REPLACE`, so a grown schema
/// rewrites it with every column.
pub fn ndjson_view(spec: &EnvSpec, name: &str, d: &Dataset) -> Option<String> {
    let columns = typed_columns(d.schema_json()?, "_").ok()?;
    let db = &spec.storage.database;
    let storage = storage_table(name, d);
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("'{n}'")).collect();
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (col, ty))| match ty {
            ColumnType::String | ColumnType::Json => format!("  j.c{i} AS `{col}`"),
            ty => format!("  CAST(j.c{i} AS {}) AS `{col}`", hive_type(*ty)),
        })
        .collect();
    let keys: Vec<String> = d
        .partition_keys()
        .iter()
        .map(|k| format!("t.`{k}`"))
        .collect();
    Some(format!(
        "CREATE OR REPLACE VIEW {db}.{name} AS\nSELECT\n{},\n  {}\nFROM {db}.{storage} t\n\
         LATERAL VIEW json_tuple(t.`line`, {}) j AS {};\n",
        select.join(",\n"),
        keys.join(", "),
        names.join(", "),
        aliases.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: FileFormat) -> EnvSpec {
        let mut spec: EnvSpec = serde_yaml::from_str(
            "name: t\nregion: us-east-1\nnetwork: {mode: new, cidr: 10.0.0.0/16}\n\
             datasets:\n  orders:\n    time_field: ordertime\n    schema: {type: record, name: orders, fields: [{name: ordertime, type: long}, {name: orderid, type: int}, {name: address, type: {type: record, name: a, fields: [{name: city, type: string}]}}]}\n",
        )
        .unwrap();
        spec.datasets.get_mut("orders").unwrap().format = format;
        spec
    }

    fn orders(spec: &EnvSpec) -> &Dataset {
        &spec.datasets["orders"]
    }

    #[test]
    fn parquet_tables_are_typed_and_partitioned_by_keys_that_are_no_columns() {
        let s = spec(FileFormat::Parquet);
        let ddl = table_ddl(&s, "orders", orders(&s)).unwrap();
        assert_eq!(
            ddl,
            "CREATE EXTERNAL TABLE IF NOT EXISTS lake.orders (\n  `ordertime` bigint,\n  `orderid` int,\n  `address_city` string\n)\nPARTITIONED BY (`dt` string, `hr` string)\nSTORED AS PARQUET\nLOCATION 's3://@BUCKET@/lake/orders/';\n"
        );
    }

    #[test]
    fn csv_tables_read_headerless_text() {
        let s = spec(FileFormat::Csv);
        let ddl = table_ddl(&s, "orders", orders(&s)).unwrap();
        assert!(ddl.contains("`ordertime` string,"), "{ddl}");
        assert!(ddl.contains("OpenCSVSerde"), "{ddl}");
        assert!(!ddl.contains("skip.header"), "{ddl}");
        assert!(!ddl.contains('$'), "{ddl}");
    }

    #[test]
    fn ndjson_is_a_text_table_under_a_typed_view() {
        let s = spec(FileFormat::Ndjson);
        let ddl = table_ddl(&s, "orders", orders(&s)).unwrap();
        assert!(
            ddl.contains(
                "CREATE EXTERNAL TABLE IF NOT EXISTS lake.orders_json (\n  `line` string\n)"
            ),
            "{ddl}"
        );
        assert!(
            ddl.contains("CREATE OR REPLACE VIEW lake.orders AS"),
            "{ddl}"
        );
        assert!(ddl.contains("CAST(j.c1 AS int) AS `orderid`"), "{ddl}");
        assert!(ddl.contains("t.`dt`, t.`hr`"), "{ddl}");
        assert_eq!(storage_table("orders", orders(&s)), "orders_json");
    }
}
