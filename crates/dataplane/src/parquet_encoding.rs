//! How the lake's Parquet files are encoded, for every writer of them (the
//! ingest writer and the compactor's rewrite): compression, which columns
//! get a dictionary, and the row-group size readers are served best by.
//!
//! Owns: those settings and the typed values of one column of a row group
//! (`ColumnValues`), which both writers buffer. Must not: open files or know
//! where rows come from.

use parquet::basic::{Compression, LogicalType, Type as PhysicalType};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type, Int96, Int96Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedColumnWriter;
use parquet::schema::types::{ColumnDescriptor, SchemaDescriptor};

/// Rows per row group written by the lake's writers: large enough for
/// readers to scan and skip well, small enough to bound a writer's memory.
pub const ROW_GROUP_ROWS: usize = 131_072;

/// A row group this small or smaller is worth rewriting when compacting
/// (the compactor copies larger ones as they are).
pub const SMALL_ROW_GROUP_ROWS: usize = 65_536;

/// Writer settings for a lake file of `schema`: Snappy (what Hive, Spark
/// and Athena read by default); dictionaries only for string columns
/// (item ids, cities, states repeat; times, ids and amounts are mostly
/// distinct, where a dictionary costs a hash per value and saves nothing);
/// column statistics per page and chunk.
pub fn writer_properties(schema: &SchemaDescriptor, created_by: &str) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(created_by.into());
    for column in schema.columns() {
        if !dictionary_encoded(column) {
            props = props.set_column_dictionary_enabled(column.path().clone(), false);
        }
    }
    props.build()
}

/// A column that gets a dictionary: strings. Both writers encode these
/// chunks themselves (`string_dictionary`); `writer_properties` gives the
/// parquet crate the same rule for the chunks they leave to it.
pub fn dictionary_encoded(column: &ColumnDescriptor) -> bool {
    column.physical_type() == PhysicalType::BYTE_ARRAY
        && matches!(column.logical_type_ref(), Some(LogicalType::String))
}

/// The values of one column of a row group (nulls left out: definition
/// levels say where they are), as the typed column readers and writers
/// take them.
pub enum ColumnValues {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I96(Vec<Int96>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

impl ColumnValues {
    /// Empty values of a column of this physical type.
    pub fn of(physical: PhysicalType) -> ColumnValues {
        match physical {
            PhysicalType::BOOLEAN => ColumnValues::Bool(Vec::new()),
            PhysicalType::INT32 => ColumnValues::I32(Vec::new()),
            PhysicalType::INT64 => ColumnValues::I64(Vec::new()),
            PhysicalType::INT96 => ColumnValues::I96(Vec::new()),
            PhysicalType::FLOAT => ColumnValues::F32(Vec::new()),
            PhysicalType::DOUBLE => ColumnValues::F64(Vec::new()),
            PhysicalType::BYTE_ARRAY => ColumnValues::Bytes(Vec::new()),
            PhysicalType::FIXED_LEN_BYTE_ARRAY => ColumnValues::Fixed(Vec::new()),
        }
    }

    /// Write the values (with their definition levels) to a column writer.
    pub fn write(
        &self,
        column: &mut SerializedColumnWriter<'_>,
        defs: Option<&[i16]>,
    ) -> parquet::errors::Result<usize> {
        match self {
            ColumnValues::Bool(v) => column.typed::<BoolType>().write_batch(v, defs, None),
            ColumnValues::I32(v) => column.typed::<Int32Type>().write_batch(v, defs, None),
            ColumnValues::I64(v) => column.typed::<Int64Type>().write_batch(v, defs, None),
            ColumnValues::I96(v) => column.typed::<Int96Type>().write_batch(v, defs, None),
            ColumnValues::F32(v) => column.typed::<FloatType>().write_batch(v, defs, None),
            ColumnValues::F64(v) => column.typed::<DoubleType>().write_batch(v, defs, None),
            ColumnValues::Bytes(v) => column.typed::<ByteArrayType>().write_batch(v, defs, None),
            ColumnValues::Fixed(v) => column
                .typed::<FixedLenByteArrayType>()
                .write_batch(v, defs, None),
        }
    }

    /// Room for `n` more values.
    pub fn reserve(&mut self, n: usize) {
        match self {
            ColumnValues::Bool(v) => v.reserve(n),
            ColumnValues::I32(v) => v.reserve(n),
            ColumnValues::I64(v) => v.reserve(n),
            ColumnValues::I96(v) => v.reserve(n),
            ColumnValues::F32(v) => v.reserve(n),
            ColumnValues::F64(v) => v.reserve(n),
            ColumnValues::Bytes(v) => v.reserve(n),
            ColumnValues::Fixed(v) => v.reserve(n),
        }
    }

    /// Drop the values, keep the memory.
    pub fn clear(&mut self) {
        match self {
            ColumnValues::Bool(v) => v.clear(),
            ColumnValues::I32(v) => v.clear(),
            ColumnValues::I64(v) => v.clear(),
            ColumnValues::I96(v) => v.clear(),
            ColumnValues::F32(v) => v.clear(),
            ColumnValues::F64(v) => v.clear(),
            ColumnValues::Bytes(v) => v.clear(),
            ColumnValues::Fixed(v) => v.clear(),
        }
    }
}
