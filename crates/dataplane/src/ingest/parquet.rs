//! Parquet lake files, written as the rows come: a record's values, already
//! checked against the schema's types by the flattener, go straight into
//! per-column buffers (`TypedColumns`, or an encoded typed row for other
//! callers), which become a row group when they are large enough.
//!
//! Owns: the column layout of Parquet files (physical and logical types;
//! encodings and compression are `parquet_encoding`'s) and one file being
//! written, in row groups so memory stays bounded (definition levels only
//! for columns that hold a null). Must not: check or flatten records (the
//! flattener's typed sink does), roll, name or publish files (the
//! partitioned writer does).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterPropertiesPtr;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor, Type};

use crate::flatten::typed::{TypedColumns, TypedRow, TypedValue};
use crate::flatten::TypedLayout;
use crate::parquet_encoding::{dictionary_encoded, writer_properties, ColumnValues};
use crate::string_dictionary::{StringDictionary, DICTIONARY_LIMIT};
use lake_contract::schema::ColumnType;

pub use crate::parquet_encoding::ROW_GROUP_ROWS;

/// Rows a new file's column buffers have room for from the start: they
/// would otherwise grow from nothing, copied at every doubling (a lake
/// file of an hour of orders holds thousands of rows).
const INITIAL_ROWS: usize = 8192;

/// Bytes of buffered values at which a file's row group is written even
/// with fewer rows (wide rows, long strings).
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// The typed columns of Parquet lake files and how they are encoded.
#[derive(Debug)]
pub struct ParquetLayout {
    typed: TypedLayout,
    schema: Arc<Type>,
    /// Each column's descriptor, in layout order.
    descriptors: Vec<ColumnDescPtr>,
    props: WriterPropertiesPtr,
}

impl ParquetLayout {
    pub fn new(columns: Vec<(String, ColumnType)>) -> Result<ParquetLayout, String> {
        let typed = TypedLayout::new(columns)?;
        let schema = schema(typed.columns()).map_err(|e| e.to_string())?;
        let descriptor = SchemaDescriptor::new(schema.clone());
        let props = writer_properties(&descriptor, "lake-ingest");
        Ok(ParquetLayout {
            typed,
            schema,
            descriptors: descriptor.columns().to_vec(),
            props: Arc::new(props),
        })
    }

    pub fn columns(&self) -> &[(String, ColumnType)] {
        self.typed.columns()
    }

    /// The typed columns the flattener checks rows against.
    pub fn typed(&self) -> &TypedLayout {
        &self.typed
    }
}

fn schema(columns: &[(String, ColumnType)]) -> parquet::errors::Result<Arc<Type>> {
    let fields = columns
        .iter()
        .map(|(name, ty)| {
            let logical = match ty {
                ColumnType::String => Some(LogicalType::String),
                ColumnType::Json => Some(LogicalType::Json),
                _ => None,
            };
            Type::primitive_type_builder(name, physical_type(*ty))
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    Ok(Arc::new(
        Type::group_type_builder("record")
            .with_fields(fields)
            .build()?,
    ))
}

/// One Parquet file being written.
pub struct ParquetFile {
    layout: Arc<ParquetLayout>,
    /// Straight to the file: the writer buffers its small writes itself,
    /// and a buffer of ours would copy every column chunk once more (and
    /// hold 256 KiB per open file).
    writer: SerializedFileWriter<File>,
    group: Group,
    rows_per_group: usize,
}

impl ParquetFile {
    pub fn create(layout: &Arc<ParquetLayout>, path: &Path) -> Result<ParquetFile> {
        ParquetFile::open(layout, path, ROW_GROUP_ROWS, None)
    }

    /// A file whose rows go to `spare`, the buffers of a file of the same
    /// layout that was closed (`finish_keeping_buffers`): a new file's
    /// buffers grow from nothing, copied at every doubling, and fresh
    /// memory is page-faulted in (≈ 5% of a Parquet backfill's
    /// instructions went to that).
    pub fn create_reusing(
        layout: &Arc<ParquetLayout>,
        path: &Path,
        spare: Option<Group>,
    ) -> Result<ParquetFile> {
        ParquetFile::open(layout, path, ROW_GROUP_ROWS, spare)
    }

    /// A file whose row groups hold (at most) `rows_per_group` rows.
    pub fn with_group_rows(
        layout: &Arc<ParquetLayout>,
        path: &Path,
        rows_per_group: usize,
    ) -> Result<ParquetFile> {
        ParquetFile::open(layout, path, rows_per_group, None)
    }

    /// The one constructor: new buffers only when no spare is given.
    fn open(
        layout: &Arc<ParquetLayout>,
        path: &Path,
        rows_per_group: usize,
        spare: Option<Group>,
    ) -> Result<ParquetFile> {
        let out = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let writer = SerializedFileWriter::new(out, layout.schema.clone(), layout.props.clone())?;
        let group = match spare {
            Some(group) => {
                debug_assert_eq!(group.rows, 0, "a spare group holds no rows");
                debug_assert_eq!(group.columns.len(), layout.columns().len());
                group
            }
            None => Group::new(
                layout.columns(),
                &layout.descriptors,
                rows_per_group.min(INITIAL_ROWS),
            ),
        };
        Ok(ParquetFile {
            layout: layout.clone(),
            writer,
            group,
            rows_per_group: rows_per_group.max(1),
        })
    }

    /// Append one typed row (`Flattener::flatten_typed`'s output).
    #[inline]
    pub fn push(&mut self, row: &[u8]) -> Result<()> {
        self.group
            .push(self.layout.columns(), row)
            .map_err(anyhow::Error::msg)?;
        if self.group.rows >= self.rows_per_group || self.group.bytes >= ROW_GROUP_BYTES {
            self.write_group()?;
        }
        Ok(())
    }

    /// Append one row whose values `fill` pushes straight into the column
    /// buffers (`Flattener::typed_values`); returns the row's size as an
    /// encoded typed row.
    #[inline]
    pub fn push_values(&mut self, fill: impl FnOnce(&mut Group)) -> Result<usize> {
        let rows = self.group.rows;
        fill(&mut self.group);
        debug_assert_eq!(self.group.rows, rows + 1, "one row per push");
        let bytes = self.group.last_row_bytes;
        if self.group.rows >= self.rows_per_group || self.group.bytes >= ROW_GROUP_BYTES {
            self.write_group()?;
        }
        Ok(bytes)
    }

    /// Bytes of values buffered for the current row group.
    pub fn buffered_bytes(&self) -> usize {
        self.group.bytes
    }

    /// Write the buffered rows as a row group now (the writer does so when
    /// the memory of all open files runs over its budget).
    pub fn write_group(&mut self) -> Result<()> {
        if self.group.rows == 0 {
            return Ok(());
        }
        self.group.write(&mut self.writer, &self.layout.descriptors)
    }

    /// Write what is buffered and the footer; returns the file's size.
    pub fn finish(self) -> Result<u64> {
        self.finish_keeping_buffers().map(|(size, _)| size)
    }

    /// `finish`, and the emptied buffers for the next file
    /// (`create_reusing`).
    pub fn finish_keeping_buffers(mut self) -> Result<(u64, Group)> {
        self.write_group()?;
        let file = self.writer.into_inner()?;
        Ok((file.metadata()?.len(), self.group))
    }
}

/// One column of a row group being buffered: its values, definition
/// levels (1 = a value, 0 = null; kept only once the column has a null,
/// which lake columns mostly never do) and, for strings, either their
/// dictionary (string columns: `string_dictionary` encodes the chunk) or
/// every value's bytes back to back and where each ends (JSON columns, and
/// a string column whose dictionary outgrew `DICTIONARY_LIMIT` in this row
/// group; the values become slices of them for the crate's column writer).
struct Column {
    values: ColumnValues,
    defs: Vec<i16>,
    dictionary: Option<Box<StringDictionary>>,
    /// This row group's string values went to `arena` (the dictionary grew
    /// past its limit).
    spilled: bool,
    arena: Vec<u8>,
    ends: Vec<u32>,
}

impl Column {
    /// The dictionary's values to `arena` and `ends`, in row order, for
    /// the crate's column writer; the rest of the row group goes there too.
    #[cold]
    fn spill(&mut self) {
        if let Some(dictionary) = self.dictionary.as_mut() {
            for value in dictionary.values() {
                self.arena.extend_from_slice(value);
                self.ends.push(self.arena.len() as u32);
            }
            dictionary.clear();
            self.spilled = true;
        }
    }
}

/// The buffered rows of one row group. Cleared, not dropped, when written.
pub struct Group {
    rows: usize,
    bytes: usize,
    columns: Vec<Column>,
    /// Definition levels of a column without nulls (all ones), shared.
    ones: Vec<i16>,
    /// Encoded size of the row pushed last.
    last_row_bytes: usize,
}

impl Group {
    /// Buffers with room for `rows` rows of fixed-size values (reserved,
    /// not touched: memory is faulted in only as rows arrive).
    fn new(columns: &[(String, ColumnType)], descriptors: &[ColumnDescPtr], rows: usize) -> Group {
        let mut group = Group {
            rows: 0,
            bytes: 0,
            columns: columns
                .iter()
                .zip(descriptors)
                .map(|((_, ty), descriptor)| Column {
                    values: ColumnValues::of(physical_type(*ty)),
                    defs: Vec::new(),
                    dictionary: dictionary_encoded(descriptor).then(Box::default),
                    spilled: false,
                    arena: Vec::new(),
                    ends: Vec::new(),
                })
                .collect(),
            ones: Vec::new(),
            last_row_bytes: 0,
        };
        for c in &mut group.columns {
            match c.dictionary.as_mut() {
                Some(dictionary) => dictionary.reserve(rows),
                None => c.values.reserve(rows),
            }
        }
        group
    }

    /// One encoded typed row (`Flattener::flatten_typed`'s output).
    fn push(&mut self, columns: &[(String, ColumnType)], row: &[u8]) -> Result<(), String> {
        let mut values = TypedRow::new(row);
        for (i, (_, ty)) in columns.iter().enumerate() {
            let value = values.next(*ty)?;
            TypedColumns::push(self, i, value);
        }
        self.end_row(row.len());
        Ok(())
    }

    /// Write the rows as one row group and clear the buffers.
    fn write(
        &mut self,
        writer: &mut SerializedFileWriter<File>,
        descriptors: &[ColumnDescPtr],
    ) -> Result<()> {
        let mut group = writer.next_row_group()?;
        self.ones.resize(self.rows, 1);
        for (c, descriptor) in self.columns.iter_mut().zip(descriptors) {
            if !c.spilled {
                if let Some(dictionary) = c.dictionary.as_mut() {
                    if let Some((bytes, close)) =
                        dictionary.encode_chunk(descriptor, &c.defs, self.rows)?
                    {
                        group.append_column(&bytes, close)?;
                        dictionary.clear();
                        c.defs.clear();
                        continue;
                    }
                    c.spill();
                }
            }
            c.spilled = false;
            let mut column = group
                .next_column()?
                .expect("one column writer per schema column");
            // Strings: slices of one shared buffer, no allocation per value.
            let shared = match &mut c.values {
                ColumnValues::Bytes(slices) => {
                    let capacity = c.arena.capacity();
                    let shared = Bytes::from(std::mem::take(&mut c.arena));
                    let mut start = 0;
                    slices.extend(c.ends.iter().map(|&end| {
                        let end = end as usize;
                        let value = ByteArray::from(shared.slice(start..end));
                        start = end;
                        value
                    }));
                    c.ends.clear();
                    Some((shared, capacity))
                }
                _ => None,
            };
            let defs = if c.defs.is_empty() {
                &self.ones[..self.rows]
            } else {
                &c.defs[..]
            };
            let written = c.values.write(&mut column, Some(defs));
            c.values.clear();
            c.defs.clear();
            written?;
            column.close()?;
            if let Some((shared, capacity)) = shared {
                // Take the buffer back when nothing else holds it.
                c.arena = match shared.try_into_mut() {
                    Ok(unique) => Vec::from(unique),
                    Err(_) => Vec::with_capacity(capacity),
                };
                c.arena.clear();
            }
        }
        group.close()?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

impl TypedColumns for Group {
    /// Inlined into the flattener's hand-over (once per value: as a call it
    /// was 4% of a Parquet backfill's instructions).
    #[inline(always)]
    fn push(&mut self, column: usize, value: Option<TypedValue<'_>>) {
        let rows = self.rows;
        let column = &mut self.columns[column];
        let Some(value) = value else {
            if column.defs.is_empty() {
                // The first null of this group: levels from here on.
                column.defs.resize(rows, 1);
            }
            column.defs.push(0);
            return;
        };
        if !column.defs.is_empty() {
            column.defs.push(1);
        }
        match (&mut column.values, value) {
            (ColumnValues::Bool(x), TypedValue::Bool(v)) => x.push(v),
            (ColumnValues::I32(x), TypedValue::I32(v)) => x.push(v),
            (ColumnValues::I64(x), TypedValue::I64(v)) => x.push(v),
            (ColumnValues::F32(x), TypedValue::F32(v)) => x.push(v),
            (ColumnValues::F64(x), TypedValue::F64(v)) => x.push(v),
            (ColumnValues::Bytes(_), TypedValue::Bytes(v)) => match column.dictionary.as_mut() {
                Some(dictionary) if !column.spilled => {
                    dictionary.push(v);
                    if dictionary.plain_bytes() > DICTIONARY_LIMIT {
                        column.spill();
                    }
                }
                _ => {
                    column.arena.extend_from_slice(v);
                    column.ends.push(column.arena.len() as u32);
                }
            },
            _ => unreachable!("typed values come in their column's type"),
        }
    }

    #[inline]
    fn end_row(&mut self, bytes: usize) {
        self.rows += 1;
        self.bytes += bytes;
        self.last_row_bytes = bytes;
    }
}

fn physical_type(ty: ColumnType) -> PhysicalType {
    match ty {
        ColumnType::Boolean => PhysicalType::BOOLEAN,
        ColumnType::Int32 => PhysicalType::INT32,
        ColumnType::Int64 => PhysicalType::INT64,
        ColumnType::Float => PhysicalType::FLOAT,
        ColumnType::Double => PhysicalType::DOUBLE,
        ColumnType::String | ColumnType::Json => PhysicalType::BYTE_ARRAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flatten::{FlattenConfig, Flattener};
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    fn layout() -> Arc<ParquetLayout> {
        Arc::new(
            ParquetLayout::new(vec![
                ("ordertime".into(), ColumnType::Int64),
                ("orderid".into(), ColumnType::Int32),
                ("itemid".into(), ColumnType::String),
                ("orderunits".into(), ColumnType::Double),
                ("gift".into(), ColumnType::Boolean),
                ("tags".into(), ColumnType::Json),
                ("ratio".into(), ColumnType::Float),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn a_file_of_rows_reads_back_value_for_value() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("rows.parquet");
        let layout = layout();
        let group_rows = 1000;
        let mut file = ParquetFile::with_group_rows(&layout, &dest, group_rows).unwrap();
        let mut flattener = Flattener::new(FlattenConfig::default());
        let mut row = Vec::new();
        let mut push = |record: &str| {
            row.clear();
            flattener
                .flatten_typed(record.as_bytes(), layout.typed(), &mut row)
                .unwrap();
            file.push(&row).unwrap();
        };
        for i in 0..(group_rows + 10) {
            push(&format!(
                "{{\"ordertime\":{},\"orderid\":{i},\"itemid\":\"Item_{}\",\"orderunits\":{}.5,\"gift\":{},\"ratio\":0.25}}",
                1_500_000_000_000i64 + i as i64,
                i % 7,
                i % 10,
                i % 2 == 0
            ));
        }
        push("{\"itemid\":\"\\u00fc \\\"q\\\"\",\"tags\":[1,{\"a\":null}]}");
        let size = file.finish().unwrap();
        assert_eq!(size, std::fs::metadata(&dest).unwrap().len());

        let reader = SerializedFileReader::new(File::open(&dest).unwrap()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), group_rows as i64 + 11);
        assert_eq!(meta.num_row_groups(), 2, "row groups bound memory");
        let first = meta.row_group(0);
        assert_eq!(first.num_rows(), group_rows as i64);
        assert_eq!(first.column(0).compression(), Compression::SNAPPY);
        // Statistics are written: readers skip row groups by them.
        let stats = first.column(1).statistics().expect("orderid statistics");
        assert_eq!(stats.min_bytes_opt(), Some(&0i32.to_le_bytes()[..]));
        assert_eq!(
            stats.max_bytes_opt(),
            Some(&(group_rows as i32 - 1).to_le_bytes()[..])
        );
        // Strings repeat: dictionary-encoded; distinct numbers are not.
        let encodings = |c: usize| first.column(c).encodings().collect::<Vec<_>>();
        assert!(encodings(2).contains(&parquet::basic::Encoding::RLE_DICTIONARY));
        assert!(!encodings(0).contains(&parquet::basic::Encoding::RLE_DICTIONARY));

        let rows: Vec<parquet::record::Row> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let r = &rows[3];
        assert_eq!(r.get_long(0).unwrap(), 1_500_000_000_003);
        assert_eq!(r.get_int(1).unwrap(), 3);
        assert_eq!(r.get_string(2).unwrap(), "Item_3");
        assert_eq!(r.get_double(3).unwrap(), 3.5);
        assert!(!r.get_bool(4).unwrap());
        assert_eq!(r.get_float(6).unwrap(), 0.25);
        assert_eq!(
            rows[group_rows + 9].get_int(1).unwrap(),
            group_rows as i32 + 9
        );
        let last = rows.last().unwrap();
        assert_eq!(last.get_string(2).unwrap(), "ü \"q\"");
        assert_eq!(last.get_string(5).unwrap(), r#"[1,{"a":null}]"#);
        let nulls: Vec<&str> = last
            .get_column_iter()
            .filter(|(_, f)| matches!(f, parquet::record::Field::Null))
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            nulls,
            ["ordertime", "orderid", "orderunits", "gift", "ratio"]
        );
    }

    /// The ingest path hands checked values straight to the column buffers
    /// (`check_typed` + `push_values`); it must write the very bytes the
    /// encoded-row path writes, nulls and strings with escapes included.
    #[test]
    fn values_pushed_column_by_column_write_the_same_file_as_encoded_rows() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout();
        let (by_row, by_values) = (
            dir.path().join("rows.parquet"),
            dir.path().join("values.parquet"),
        );
        let mut rows = ParquetFile::with_group_rows(&layout, &by_row, 64).unwrap();
        let mut values = ParquetFile::with_group_rows(&layout, &by_values, 64).unwrap();
        let mut flattener = Flattener::new(FlattenConfig::default());
        let mut row = Vec::new();
        for i in 0..200 {
            let record = if i % 17 == 5 {
                format!("{{\"orderid\":{i},\"tags\":[{i}],\"itemid\":\"a\\\"b\\u00e9\"}}")
            } else {
                format!(
                    "{{\"ordertime\":{},\"orderid\":{i},\"itemid\":\"Item_{}\",\"orderunits\":{i}.25,\"gift\":{},\"ratio\":1.5}}",
                    1_600_000_000_000i64 + i as i64,
                    i % 9,
                    i % 3 == 0
                )
            };
            row.clear();
            flattener
                .flatten_typed(record.as_bytes(), layout.typed(), &mut row)
                .unwrap();
            rows.push(&row).unwrap();
            flattener
                .check_typed(record.as_bytes(), layout.typed())
                .unwrap();
            let bytes = values
                .push_values(|group| flattener.typed_values(group))
                .unwrap();
            assert_eq!(bytes, row.len(), "record {i}: the same size is counted");
        }
        rows.finish().unwrap();
        values.finish().unwrap();
        assert!(std::fs::read(&by_row).unwrap() == std::fs::read(&by_values).unwrap());
    }

    /// String columns take three paths: this crate's dictionary chunk, the
    /// crate's column writer when a min/max is too long to keep whole, and
    /// a dictionary that outgrows its limit halfway through a row group.
    /// Each reads back value for value, nulls included, with statistics.
    #[test]
    fn string_columns_read_back_through_every_encoding_path() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("strings.parquet");
        let layout = Arc::new(
            ParquetLayout::new(vec![
                ("s".into(), ColumnType::String),
                ("n".into(), ColumnType::Int64),
            ])
            .unwrap(),
        );
        let mut file = ParquetFile::with_group_rows(&layout, &dest, 1 << 20).unwrap();
        let mut flattener = Flattener::new(FlattenConfig::default());
        let mut want: Vec<Option<String>> = Vec::new();
        let mut row = Vec::new();
        let mut push = |file: &mut ParquetFile, value: Option<String>| {
            let record = match &value {
                Some(v) => format!("{{\"s\":{},\"n\":{}}}", serde_json::json!(v), want.len()),
                None => format!("{{\"n\":{}}}", want.len()),
            };
            row.clear();
            flattener
                .flatten_typed(record.as_bytes(), layout.typed(), &mut row)
                .unwrap();
            file.push(&row).unwrap();
            want.push(value);
        };
        // Row group 0: a dictionary of 37 values, every 10th row null.
        for i in 0..1000 {
            push(&mut file, (i % 10 != 3).then(|| format!("v{}", i % 37)));
        }
        file.write_group().unwrap();
        // Row group 1: one value longer than whole statistics keep.
        for i in 0..100 {
            push(&mut file, Some(format!("w{}", i % 5)));
        }
        push(&mut file, Some("x".repeat(100)));
        file.write_group().unwrap();
        // Row group 2: distinct values past the dictionary limit.
        for i in 0..60_000 {
            push(&mut file, Some(format!("distinct-{i:015}")));
        }
        push(&mut file, None);
        file.finish().unwrap();

        let reader = SerializedFileReader::new(File::open(&dest).unwrap()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 3);
        let chunk = meta.row_group(0).column(0);
        assert!(chunk
            .encodings()
            .any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY));
        let stats = chunk.statistics().expect("statistics");
        assert_eq!(stats.min_bytes_opt(), Some(&b"v0"[..]));
        assert_eq!(stats.max_bytes_opt(), Some(&b"v9"[..]));
        assert_eq!(stats.null_count_opt(), Some(100));
        assert_eq!(chunk.num_values(), 1000);
        let stats = meta
            .row_group(2)
            .column(0)
            .statistics()
            .expect("statistics");
        assert_eq!(
            stats.min_bytes_opt(),
            Some(&b"distinct-000000000000000"[..])
        );
        assert_eq!(stats.null_count_opt(), Some(1));

        let got: Vec<Option<String>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().get_string(0).ok().cloned())
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "every value and null reads back in its row");
    }

    #[test]
    fn an_empty_file_is_a_valid_file_of_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("empty.parquet");
        ParquetFile::create(&layout(), &dest)
            .unwrap()
            .finish()
            .unwrap();
        let reader = SerializedFileReader::new(File::open(&dest).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }
}
