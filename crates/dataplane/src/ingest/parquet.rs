//! Parquet lake files: flattened rows checked against typed columns (from an
//! Avro record schema), then a finished file of rows encoded column by
//! column with Snappy.
//!
//! Owns: the column layout of Parquet files, the per-record type check (a
//! record that does not fit is a dead letter, never a lost or mangled row)
//! and the NDJSON -> Parquet encoding of one closed file, in row groups so
//! memory stays bounded. Must not: roll, name or publish files (the
//! partitioned writer does) or flatten records.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::{Map, Value};

use crate::flatten::schema::ColumnType;

/// Rows per row group: bounds the memory of one conversion.
const ROW_GROUP_ROWS: usize = 65_536;

/// The typed columns of Parquet lake files.
#[derive(Debug, Clone)]
pub struct ParquetLayout {
    columns: Vec<(String, ColumnType)>,
    index: HashMap<String, usize>,
}

impl ParquetLayout {
    pub fn new(columns: Vec<(String, ColumnType)>) -> Result<ParquetLayout, String> {
        if columns.is_empty() {
            return Err("a Parquet layout needs at least one column".into());
        }
        let mut index = HashMap::new();
        for (i, (name, _)) in columns.iter().enumerate() {
            if index.insert(name.clone(), i).is_some() {
                return Err(format!("column `{name}` appears twice"));
            }
        }
        Ok(ParquetLayout { columns, index })
    }

    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    /// Whether a flattened NDJSON row fits the columns; the reason if not.
    pub fn check(&self, row: &[u8]) -> Result<(), String> {
        let object = parse_row(row)?;
        for (key, value) in &object {
            let Some(&i) = self.index.get(key) else {
                return Err(format!("key `{key}` is not a column of the schema"));
            };
            let ty = self.columns[i].1;
            if !fits(ty, value) {
                return Err(format!(
                    "column `{key}` is {ty:?} in the schema; the record has {value}"
                ));
            }
        }
        Ok(())
    }

    fn schema(&self) -> Result<Arc<Type>> {
        let fields = self
            .columns
            .iter()
            .map(|(name, ty)| {
                let (physical, logical) = match ty {
                    ColumnType::Boolean => (PhysicalType::BOOLEAN, None),
                    ColumnType::Int32 => (PhysicalType::INT32, None),
                    ColumnType::Int64 => (PhysicalType::INT64, None),
                    ColumnType::Float => (PhysicalType::FLOAT, None),
                    ColumnType::Double => (PhysicalType::DOUBLE, None),
                    ColumnType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                    ColumnType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json)),
                };
                Type::primitive_type_builder(name, physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            Type::group_type_builder("record")
                .with_fields(fields)
                .build()?,
        ))
    }

    /// Encode the flattened NDJSON rows of `src` (each already `check`ed)
    /// as a Parquet file at `dest`.
    pub fn convert(&self, src: &Path, dest: &Path) -> Result<()> {
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by("lake-ingest".into())
                .build(),
        );
        let out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        let mut writer = SerializedFileWriter::new(out, self.schema()?, props)?;
        let input = BufReader::with_capacity(
            256 << 10,
            File::open(src).with_context(|| format!("opening {}", src.display()))?,
        );
        let mut group = Group::new(&self.columns);
        for (n, line) in input.split(b'\n').enumerate() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            let row = parse_row(&line)
                .map_err(|e| anyhow::anyhow!("{}: row {}: {e}", src.display(), n + 1))?;
            group.push(self, &row);
            if group.rows == ROW_GROUP_ROWS {
                group.write(&mut writer)?;
                group = Group::new(&self.columns);
            }
        }
        if group.rows > 0 {
            group.write(&mut writer)?;
        }
        writer.close()?;
        Ok(())
    }
}

fn parse_row(row: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(row) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the flattened record is not an object".into()),
        Err(e) => Err(format!("the flattened record does not parse: {e}")),
    }
}

fn fits(ty: ColumnType, v: &Value) -> bool {
    match (ty, v) {
        (_, Value::Null) | (ColumnType::Json, _) => true,
        (ColumnType::Boolean, Value::Bool(_)) => true,
        (ColumnType::Int32, Value::Number(n)) => {
            n.as_i64().is_some_and(|x| i32::try_from(x).is_ok())
        }
        (ColumnType::Int64, Value::Number(n)) => n.as_i64().is_some(),
        (ColumnType::Float | ColumnType::Double, Value::Number(n)) => n.as_f64().is_some(),
        (ColumnType::String, Value::String(_)) => true,
        _ => false,
    }
}

/// One column's values of a row group, without nulls, and its definition
/// levels (1 = a value, 0 = null).
enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
}

struct Group {
    rows: usize,
    columns: Vec<(Values, Vec<i16>)>,
}

impl Group {
    fn new(columns: &[(String, ColumnType)]) -> Group {
        Group {
            rows: 0,
            columns: columns
                .iter()
                .map(|(_, ty)| {
                    let values = match ty {
                        ColumnType::Boolean => Values::Bool(Vec::new()),
                        ColumnType::Int32 => Values::I32(Vec::new()),
                        ColumnType::Int64 => Values::I64(Vec::new()),
                        ColumnType::Float => Values::F32(Vec::new()),
                        ColumnType::Double => Values::F64(Vec::new()),
                        ColumnType::String | ColumnType::Json => Values::Bytes(Vec::new()),
                    };
                    (values, Vec::new())
                })
                .collect(),
        }
    }

    fn push(&mut self, layout: &ParquetLayout, row: &Map<String, Value>) {
        self.rows += 1;
        for (i, (name, ty)) in layout.columns.iter().enumerate() {
            let (values, defs) = &mut self.columns[i];
            let value = row.get(name).filter(|v| !v.is_null());
            let Some(v) = value else {
                defs.push(0);
                continue;
            };
            defs.push(1);
            match values {
                Values::Bool(x) => x.push(v.as_bool().unwrap_or_default()),
                Values::I32(x) => x.push(v.as_i64().unwrap_or_default() as i32),
                Values::I64(x) => x.push(v.as_i64().unwrap_or_default()),
                Values::F32(x) => x.push(v.as_f64().unwrap_or_default() as f32),
                Values::F64(x) => x.push(v.as_f64().unwrap_or_default()),
                Values::Bytes(x) => x.push(match (ty, v) {
                    (ColumnType::String, Value::String(s)) => {
                        ByteArray::from(s.as_bytes().to_vec())
                    }
                    _ => ByteArray::from(v.to_string().into_bytes()),
                }),
            }
        }
    }

    fn write(self, writer: &mut SerializedFileWriter<File>) -> Result<()> {
        let mut group = writer.next_row_group()?;
        for (values, defs) in self.columns {
            let mut column = group
                .next_column()?
                .expect("one column writer per schema column");
            let defs = Some(defs.as_slice());
            match values {
                Values::Bool(v) => column.typed::<BoolType>().write_batch(&v, defs, None)?,
                Values::I32(v) => column.typed::<Int32Type>().write_batch(&v, defs, None)?,
                Values::I64(v) => column.typed::<Int64Type>().write_batch(&v, defs, None)?,
                Values::F32(v) => column.typed::<FloatType>().write_batch(&v, defs, None)?,
                Values::F64(v) => column.typed::<DoubleType>().write_batch(&v, defs, None)?,
                Values::Bytes(v) => column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, defs, None)?,
            };
            column.close()?;
        }
        group.close()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn layout() -> ParquetLayout {
        ParquetLayout::new(vec![
            ("ordertime".into(), ColumnType::Int64),
            ("orderid".into(), ColumnType::Int32),
            ("itemid".into(), ColumnType::String),
            ("orderunits".into(), ColumnType::Double),
            ("gift".into(), ColumnType::Boolean),
            ("tags".into(), ColumnType::Json),
        ])
        .unwrap()
    }

    #[test]
    fn rows_that_do_not_fit_are_named() {
        let l = layout();
        assert!(l
            .check(br#"{"ordertime":1,"itemid":"a","tags":[1,"x"]}"#)
            .is_ok());
        assert!(l.check(br#"{"orderid":null}"#).is_ok());
        assert_eq!(
            l.check(br#"{"orderid":"7"}"#).unwrap_err(),
            r#"column `orderid` is Int32 in the schema; the record has "7""#
        );
        assert_eq!(
            l.check(br#"{"orderid":4294967296}"#).unwrap_err(),
            "column `orderid` is Int32 in the schema; the record has 4294967296"
        );
        assert_eq!(
            l.check(br#"{"colour":"red"}"#).unwrap_err(),
            "key `colour` is not a column of the schema"
        );
        assert_eq!(
            l.check(br#"{"ordertime":1.5}"#).unwrap_err(),
            "column `ordertime` is Int64 in the schema; the record has 1.5"
        );
    }

    #[test]
    fn a_file_of_rows_reads_back_value_for_value() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("rows.ndjson");
        let mut rows = String::new();
        for i in 0..(ROW_GROUP_ROWS + 10) {
            rows.push_str(&format!(
                "{{\"ordertime\":{},\"orderid\":{i},\"itemid\":\"Item_{i}\",\"orderunits\":{}.5,\"gift\":{}}}\n",
                1_500_000_000_000i64 + i as i64,
                i % 10,
                i % 2 == 0
            ));
        }
        rows.push_str("{\"itemid\":\"ü \\\"q\\\"\",\"tags\":[1,{\"a\":null}]}\n");
        std::fs::write(&src, rows).unwrap();
        let dest = dir.path().join("rows.parquet");
        layout().convert(&src, &dest).unwrap();

        let reader = SerializedFileReader::new(File::open(&dest).unwrap()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), ROW_GROUP_ROWS as i64 + 11);
        assert_eq!(meta.num_row_groups(), 2, "row groups bound memory");
        assert_eq!(
            meta.row_group(0).column(0).compression(),
            Compression::SNAPPY
        );
        let rows: Vec<parquet::record::Row> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        use parquet::record::RowAccessor;
        let r = &rows[3];
        assert_eq!(r.get_long(0).unwrap(), 1_500_000_000_003);
        assert_eq!(r.get_int(1).unwrap(), 3);
        assert_eq!(r.get_string(2).unwrap(), "Item_3");
        assert_eq!(r.get_double(3).unwrap(), 3.5);
        assert!(!r.get_bool(4).unwrap());
        assert_eq!(
            rows[ROW_GROUP_ROWS + 9].get_int(1).unwrap(),
            ROW_GROUP_ROWS as i32 + 9
        );
        let last = rows.last().unwrap();
        assert_eq!(last.get_string(2).unwrap(), "ü \"q\"");
        assert_eq!(last.get_string(5).unwrap(), r#"[1,{"a":null}]"#);
        let nulls: Vec<&str> = last
            .get_column_iter()
            .filter(|(_, f)| matches!(f, parquet::record::Field::Null))
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(nulls, ["ordertime", "orderid", "orderunits", "gift"]);
    }
}
