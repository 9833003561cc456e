//! The per-record path shared by `backfill` (raw-archive objects) and the
//! Kinesis `consumer`: record -> flatten -> check (a CSV row must fit a text
//! table) -> partition by the record's own time (or its arrival) -> the
//! partitioned writer; a record that fails goes to the dead letters with its
//! reason and original bytes.
//!
//! Owns: `Pipeline`, `LakeFormat`, `PartitionBy`, `Counts`. Must not: read
//! Kinesis, manage leases or do file I/O itself (`writer` does).

use anyhow::Result;

use super::partitioner::{self, Partitioner};
use super::writer::PartitionedWriter;
use crate::flatten::{dead_letter, CsvLayout, ErrorKind, FlattenConfig, Flattener};

/// Output encoding of lake files.
#[derive(Debug, Clone)]
pub enum LakeFormat {
    Ndjson,
    /// Headerless: Hive honours `skip.header.line.count` but Spark does not
    /// on partitioned text tables, so a header would be a row there; the
    /// table declares the columns (`lakectl`'s `render::hive`).
    Csv(CsvLayout),
    /// Typed columns; rows are checked while they are flattened (a record
    /// that does not fit is a dead letter) and go straight into the open
    /// file's column buffers.
    Parquet(std::sync::Arc<super::parquet::ParquetLayout>),
}

impl LakeFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            LakeFormat::Ndjson => "ndjson",
            LakeFormat::Csv(_) => "csv",
            LakeFormat::Parquet(_) => "parquet",
        }
    }
}

/// A CSV lake row must be one line: Hive and Spark text tables split rows
/// at line breaks whatever the quoting, and OpenCSVSerde's escape character
/// (set to NUL in the table, so backslashes read back as written) must not
/// occur in values.
/// Only a row with a value decoded from escapes or copied as JSON text can
/// hold them; the flattener knows, so most rows need no look.
fn csv_row_fits_text_tables(flattener: &Flattener, row: &[u8]) -> Result<(), String> {
    if flattener.csv_row_is_plain() {
        return Ok(());
    }
    let body = row.strip_suffix(b"\n").unwrap_or(row);
    if memchr::memchr2(b'\n', b'\r', body).is_some() {
        return Err("a value holds a line break, which Hive and Spark read as the end of a row in CSV lake files; use ingest.format ndjson or parquet for such data".into());
    }
    if memchr::memchr(0, body).is_some() {
        return Err("a value holds a NUL character, which CSV lake tables read as an escape; use ingest.format ndjson or parquet for such data".into());
    }
    Ok(())
}

/// Which time decides a record's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionBy {
    /// The record's own field (flattened key), e.g. `ordertime`.
    RecordTime { field: String },
    /// When the record reached the stream (or the archive object's time).
    ArrivalTime,
}

/// Counts of one pipeline run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub bytes_in: u64,
    /// Values of fields that are no column, dropped from rows kept
    /// (`unknown_fields: drop`), and the first such fields' names.
    pub unknown_fields: u64,
    pub unknown_field_names: Vec<String>,
}

/// Flattens and partitions records into a `PartitionedWriter`.
pub struct Pipeline {
    flattener: Flattener,
    format: LakeFormat,
    partition_by: PartitionBy,
    partitioner: Partitioner,
    row: Vec<u8>,
    pub dead_letters: Vec<u8>,
    pub counts: Counts,
}

impl Pipeline {
    pub fn new(
        config: FlattenConfig,
        format: LakeFormat,
        partition_by: PartitionBy,
        partition_format: &str,
    ) -> Self {
        let mut flattener = Flattener::new(config);
        if let PartitionBy::RecordTime { field } = &partition_by {
            flattener.capture(field);
        }
        Pipeline {
            flattener,
            format,
            partition_by,
            partitioner: Partitioner::new(partition_format),
            row: Vec::with_capacity(4096),
            dead_letters: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// The counts so far, with the unknown fields the flattener dropped.
    pub fn counts(&self) -> Counts {
        let (unknown_fields, unknown_field_names) = self.flattener.unknown_fields();
        Counts {
            unknown_fields,
            unknown_field_names,
            ..self.counts.clone()
        }
    }

    /// One record: written to its partition, or dead-lettered (`source` and
    /// `position` name it). `arrival_secs` is used for arrival-time
    /// partitioning. Returns how many bytes of `input` the record took: all,
    /// or less when another record follows back to back (the caller goes
    /// on from there). Only writer (I/O) failures are errors. `id` is
    /// formatted only when it names a new file or a dead letter.
    pub fn record(
        &mut self,
        writer: &mut PartitionedWriter<'_>,
        source: &str,
        position: u64,
        id: &dyn std::fmt::Display,
        input: &[u8],
        arrival_secs: i64,
    ) -> Result<usize> {
        self.row.clear();
        let flattened = match &self.format {
            LakeFormat::Ndjson => self.flattener.flatten_ndjson(input, &mut self.row),
            LakeFormat::Csv(layout) => self.flattener.flatten_csv(input, layout, &mut self.row),
            LakeFormat::Parquet(layout) => self.flattener.check_typed(input, layout.typed()),
        };
        if let Err(ErrorKind::Trailing { at }) = flattened {
            // A complete object with more after it: the first of several.
            self.record(writer, source, position, id, &input[..at], arrival_secs)?;
            return Ok(at);
        }
        let record = input;
        self.counts.records += 1;
        self.counts.bytes_in += record.len() as u64;
        let when = flattened
            .map_err(|e| e.to_string())
            .and_then(|()| match &self.format {
                LakeFormat::Csv(_) => csv_row_fits_text_tables(&self.flattener, &self.row),
                LakeFormat::Ndjson | LakeFormat::Parquet(_) => Ok(()),
            })
            .and_then(|()| match &self.partition_by {
                PartitionBy::ArrivalTime => Ok(arrival_secs),
                PartitionBy::RecordTime { field } => match self.flattener.captured(record) {
                    Some((raw, kind)) => partitioner::parse_time(raw, kind)
                        .map_err(|e| format!("time field `{field}` {e}")),
                    None => Err(format!("time field `{field}` is missing")),
                },
            });
        match when {
            Ok(secs) => {
                let partition = self.partitioner.partition(secs);
                match &self.format {
                    // The checked values go straight into the file's columns.
                    LakeFormat::Parquet(_) => {
                        let flattener = &self.flattener;
                        writer.write_values(partition, id, |columns| {
                            flattener.typed_values(columns)
                        })?
                    }
                    LakeFormat::Ndjson | LakeFormat::Csv(_) => {
                        writer.write(partition, &self.row, id)?
                    }
                }
                self.counts.written += 1;
            }
            Err(reason) => {
                // A stream record has no line: its id (shard, sequence
                // number, sub-record, object) names it.
                if position == 0 {
                    let named = format!("{source}/{id}");
                    dead_letter::write(&mut self.dead_letters, &named, 0, &reason, record);
                } else {
                    dead_letter::write(&mut self.dead_letters, source, position, &reason, record);
                }
                self.counts.dead_lettered += 1;
            }
        }
        Ok(input.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_a_line_break_or_nul_are_refused_and_plain_rows_are_not_scanned() {
        let layout = CsvLayout::new(vec!["a".into(), "b".into()]).unwrap();
        let mut flattener = Flattener::new(FlattenConfig::default());
        let mut row = Vec::new();
        for (record, plain, refused) in [
            (r#"{"a":"x,y","b":1}"#, true, None),
            (r#"{"a":"x\"y","b":true}"#, false, None),
            (r#"{"a":"x\ny","b":1}"#, false, Some("line break")),
            (r#"{"a":"x\r","b":1}"#, false, Some("line break")),
            (r#"{"a":"x\u0000","b":1}"#, false, Some("NUL")),
            ("{\"a\":[1,\r2],\"b\":1}", false, Some("line break")),
            (r#"{"a":[1,2],"b":null}"#, false, None),
        ] {
            row.clear();
            flattener
                .flatten_csv(record.as_bytes(), &layout, &mut row)
                .unwrap();
            assert_eq!(flattener.csv_row_is_plain(), plain, "{record}");
            match (csv_row_fits_text_tables(&flattener, &row), refused) {
                (Ok(()), None) => {}
                (Err(reason), Some(what)) => assert!(reason.contains(what), "{record}: {reason}"),
                (got, want) => panic!("{record}: {got:?}, expected {want:?}"),
            }
        }
    }
}
