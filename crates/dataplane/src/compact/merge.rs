//! Merging one output from its source files, on local disk, streaming.
//!
//! Owns: the format-aware concatenation (CSV: plain concatenation, or with
//! `--csv-header keep-one` one header kept and a different one refused;
//! NDJSON keeps line boundaries, gzip read and written, Parquet small row
//! groups rewritten into reader-sized ones, string columns dictionary-encoded
//! by `string_dictionary` as ingest writes them, and large ones copied
//! without decoding) and the verification
//! of the written file (rows and bytes read back). Must not: touch stores,
//! journals or plans.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use parquet::column::reader::ColumnReader;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::plan::Format;
use crate::parquet_encoding::{
    dictionary_encoded, writer_properties, ColumnValues, ROW_GROUP_ROWS, SMALL_ROW_GROUP_ROWS,
};
use crate::string_dictionary::StringDictionary;

/// What an output holds: data rows (CSV headers excluded) and bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
}

const BUF: usize = 1 << 20;

/// Whether CSV sources start with a header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvHeader {
    /// No header: every line is a row (the lake's CSV files; s3-dist-cp's
    /// plain concatenation). Nothing is ever dropped.
    #[default]
    None,
    /// Each source starts with the same header; the output keeps one.
    KeepOne,
}

fn open_text(path: &Path, gzip: bool) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            BUF,
            flate2::read::MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(BUF, file))
    })
}

/// Concatenate text sources into `out`. `names` label errors.
pub fn merge_text(
    format: Format,
    gzip: bool,
    csv_header: CsvHeader,
    sources: &[(&Path, &str)],
    out: &Path,
) -> Result<Written> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut sink: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::with_capacity(BUF, file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(BUF, file))
    };
    let mut header: Option<Vec<u8>> = None;
    let mut rows = 0u64;
    let mut buf = vec![0u8; BUF];
    for (path, name) in sources {
        let mut reader = open_text(path, gzip)?;
        if format == Format::Csv && csv_header == CsvHeader::KeepOne {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line)?;
            let trimmed = trim_eol(&line);
            match &header {
                None => {
                    sink.write_all(trimmed)?;
                    sink.write_all(b"\n")?;
                    header = Some(trimmed.to_vec());
                }
                Some(h) if h.as_slice() == trimmed => {}
                Some(h) => bail!(
                    "{name} has a different CSV header than the rest of its group:\n  {}\n  vs {}\n(the group is left untouched; if these files have no header, leave out --csv-header keep-one)",
                    String::from_utf8_lossy(trimmed),
                    String::from_utf8_lossy(h)
                ),
            }
        }
        let mut last = b'\n';
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {name}")),
            };
            rows += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            last = buf[n - 1];
            sink.write_all(&buf[..n])?;
        }
        if last != b'\n' {
            // Keep line boundaries: a source without a final newline gets one.
            sink.write_all(b"\n")?;
            rows += 1;
        }
    }
    sink.flush()?;
    drop(sink);
    let bytes = std::fs::metadata(out)?.len();
    Ok(Written { rows, bytes })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Read a finished text output back: data rows (header excluded for CSV).
pub fn count_text_rows(
    path: &Path,
    format: Format,
    gzip: bool,
    csv_header: CsvHeader,
) -> Result<u64> {
    let mut reader = open_text(path, gzip)?;
    let mut buf = vec![0u8; BUF];
    let mut lines = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    Ok(
        if format == Format::Csv && csv_header == CsvHeader::KeepOne {
            lines.saturating_sub(1)
        } else {
            lines
        },
    )
}

/// Merge Parquet files into one, in row groups readers are served well by.
/// Small row groups (ingest files of a few rows, or any group under
/// `SMALL_ROW_GROUP_ROWS`) are decoded and written again into groups of
/// `ROW_GROUP_ROWS`; a large group met while nothing is buffered is copied
/// as it is (column chunks, no decoding). Row order is kept. Memory holds
/// at most one output row group. All sources must share one schema; a
/// schema with nested or repeated columns is only copied.
pub fn merge_parquet(sources: &[(&Path, &str)], out: &Path) -> Result<Written> {
    let mut readers = Vec::with_capacity(sources.len());
    for (path, name) in sources {
        let file = File::open(path).with_context(|| format!("opening {name}"))?;
        let reader = SerializedFileReader::new(file.try_clone()?)
            .with_context(|| format!("{name} is not a Parquet file"))?;
        readers.push((file, reader, *name));
    }
    let schema = readers[0].1.metadata().file_metadata().schema_descr_ptr();
    for (_, r, name) in &readers[1..] {
        let other = r.metadata().file_metadata().schema_descr();
        if other.root_schema() != schema.root_schema() {
            bail!(
                "{name} has a different Parquet schema than {} (the group is left untouched)",
                readers[0].2
            );
        }
    }
    let flat = schema.columns().iter().all(|c| c.max_rep_level() == 0);
    let props = Arc::new(writer_properties(&schema, "lake-compact"));
    let out_file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = SerializedFileWriter::new(
        BufWriter::with_capacity(BUF, out_file),
        schema.root_schema_ptr(),
        props,
    )?;
    let mut buffer = Buffered::new(&schema);
    let mut rows = 0u64;
    for (file, reader, name) in &readers {
        for (index, rg) in reader.metadata().row_groups().iter().enumerate() {
            let group_rows = rg.num_rows() as usize;
            rows += group_rows as u64;
            if !flat || (group_rows > SMALL_ROW_GROUP_ROWS && buffer.rows == 0) {
                copy_row_group(&mut writer, file, rg)?;
                continue;
            }
            let group = reader.get_row_group(index)?;
            let mut columns = (0..schema.num_columns())
                .map(|c| group.get_column_reader(c))
                .collect::<parquet::errors::Result<Vec<_>>>()
                .with_context(|| format!("reading {name}"))?;
            let mut left = group_rows;
            while left > 0 {
                let take = left.min(ROW_GROUP_ROWS - buffer.rows);
                buffer
                    .read(&mut columns, take)
                    .with_context(|| format!("reading {name}, row group {index}"))?;
                left -= take;
                if buffer.rows == ROW_GROUP_ROWS {
                    buffer.write(&mut writer)?;
                }
            }
        }
    }
    if buffer.rows > 0 {
        buffer.write(&mut writer)?;
    }
    writer.close()?;
    let bytes = std::fs::metadata(out)?.len();
    Ok(Written { rows, bytes })
}

/// Copy one row group's column chunks as they are.
fn copy_row_group(
    writer: &mut SerializedFileWriter<BufWriter<File>>,
    file: &File,
    rg: &RowGroupMetaData,
) -> Result<()> {
    let mut rg_writer = writer.next_row_group()?;
    for column in rg.columns() {
        rg_writer.append_column(
            file,
            ColumnCloseResult {
                bytes_written: column.compressed_size() as u64,
                rows_written: rg.num_rows() as u64,
                metadata: column.clone(),
                bloom_filter: None,
                column_index: None,
                offset_index: None,
            },
        )?;
    }
    rg_writer.close()?;
    Ok(())
}

/// Rows decoded from small row groups, waiting to be written as one.
struct Buffered {
    rows: usize,
    /// Per column: values, definition levels (for nullable columns).
    columns: Vec<(ColumnValues, Option<Vec<i16>>)>,
    descriptors: Vec<ColumnDescPtr>,
    /// String columns' chunks are encoded here, as ingest encodes them.
    dictionary: StringDictionary,
}

impl Buffered {
    fn new(schema: &SchemaDescriptor) -> Buffered {
        let columns = schema
            .columns()
            .iter()
            .map(|c| {
                (
                    ColumnValues::of(c.physical_type()),
                    (c.max_def_level() > 0).then(Vec::new),
                )
            })
            .collect();
        Buffered {
            rows: 0,
            columns,
            descriptors: schema.columns().to_vec(),
            dictionary: StringDictionary::default(),
        }
    }

    /// Append the next `rows` rows of every column.
    fn read(&mut self, readers: &mut [ColumnReader], rows: usize) -> Result<()> {
        for (reader, (values, defs)) in readers.iter_mut().zip(&mut self.columns) {
            macro_rules! read {
                ($r:expr, $v:expr) => {{
                    let mut done = 0;
                    while done < rows {
                        let (records, _, _) =
                            $r.read_records(rows - done, defs.as_mut(), None, $v)?;
                        if records == 0 {
                            bail!("a column ends {} rows early", rows - done);
                        }
                        done += records;
                    }
                }};
            }
            match (reader, values) {
                (ColumnReader::BoolColumnReader(r), ColumnValues::Bool(v)) => read!(r, v),
                (ColumnReader::Int32ColumnReader(r), ColumnValues::I32(v)) => read!(r, v),
                (ColumnReader::Int64ColumnReader(r), ColumnValues::I64(v)) => read!(r, v),
                (ColumnReader::Int96ColumnReader(r), ColumnValues::I96(v)) => read!(r, v),
                (ColumnReader::FloatColumnReader(r), ColumnValues::F32(v)) => read!(r, v),
                (ColumnReader::DoubleColumnReader(r), ColumnValues::F64(v)) => read!(r, v),
                (ColumnReader::ByteArrayColumnReader(r), ColumnValues::Bytes(v)) => read!(r, v),
                (ColumnReader::FixedLenByteArrayColumnReader(r), ColumnValues::Fixed(v)) => {
                    read!(r, v)
                }
                _ => bail!("a column reader does not match its schema type"),
            }
        }
        self.rows += rows;
        Ok(())
    }

    /// Write the buffered rows as one row group and clear the buffers.
    fn write(&mut self, writer: &mut SerializedFileWriter<BufWriter<File>>) -> Result<()> {
        let mut group = writer.next_row_group()?;
        for ((values, defs), descriptor) in self.columns.iter_mut().zip(&self.descriptors) {
            if let ColumnValues::Bytes(strings) = values {
                if dictionary_encoded(descriptor) {
                    self.dictionary.clear();
                    for s in strings.iter() {
                        self.dictionary.push(s.data());
                    }
                    let levels = defs.as_deref().unwrap_or(&[]);
                    if let Some((bytes, close)) = self
                        .dictionary
                        .encode_chunk(descriptor, levels, self.rows)?
                    {
                        group.append_column(&bytes, close)?;
                        values.clear();
                        if let Some(defs) = defs {
                            defs.clear();
                        }
                        continue;
                    }
                }
            }
            let mut column = group
                .next_column()?
                .expect("one column writer per schema column");
            values.write(&mut column, defs.as_deref())?;
            column.close()?;
            values.clear();
            if let Some(defs) = defs {
                defs.clear();
            }
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }
}

/// Rows of a Parquet file, from its footer.
pub fn count_parquet_rows(path: &Path) -> Result<u64> {
    let reader = SerializedFileReader::new(File::open(path)?)?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lake files as lake-ingest writes them (optional columns, nulls) merge
    /// into one row group, value for value, nulls kept.
    #[test]
    fn ingest_files_with_nulls_merge_into_one_row_group() {
        use crate::flatten::{FlattenConfig, Flattener};
        use crate::ingest::parquet::{ParquetFile, ParquetLayout};
        use lake_contract::schema::ColumnType;
        let layout = Arc::new(
            ParquetLayout::new(vec![
                ("t".into(), ColumnType::Int64),
                ("s".into(), ColumnType::String),
                ("b".into(), ColumnType::Boolean),
                ("x".into(), ColumnType::Double),
            ])
            .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut flattener = Flattener::new(FlattenConfig::default());
        let mut sources = Vec::new();
        let mut expected = Vec::new();
        for f in 0..3 {
            let path = dir.path().join(format!("{f}.parquet"));
            // Row groups of 7 rows: several small groups per file.
            let mut file = ParquetFile::with_group_rows(&layout, &path, 7).unwrap();
            for i in 0..20 {
                let record = match i % 3 {
                    0 => format!(r#"{{"t":{},"s":"v{i}","b":true,"x":1.5}}"#, f * 1000 + i),
                    1 => format!(r#"{{"t":{},"s":null}}"#, f * 1000 + i),
                    _ => format!(r#"{{"s":"é{i}","x":-0.25}}"#),
                };
                let mut row = Vec::new();
                flattener
                    .flatten_typed(record.as_bytes(), layout.typed(), &mut row)
                    .unwrap();
                file.push(&row).unwrap();
            }
            file.finish().unwrap();
            expected.extend(rows_of(&path));
            sources.push(path);
        }
        let refs: Vec<(&Path, &str)> = sources.iter().map(|p| (p.as_path(), "src")).collect();
        let out = dir.path().join("out.parquet");
        let written = merge_parquet(&refs, &out).unwrap();
        assert_eq!(written.rows, 60);
        let reader = SerializedFileReader::new(File::open(&out).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 1);
        assert_eq!(rows_of(&out), expected);
        assert!(
            expected.iter().any(|r| r.contains("s: null")),
            "nulls covered"
        );
    }

    fn rows_of(path: &Path) -> Vec<String> {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect()
    }

    #[test]
    fn csv_keeps_one_header_and_fixes_missing_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "x,y\r\n1,2\r\n3,\"multi\nline\"\r\n").unwrap();
        std::fs::write(&b, "x,y\n5,6").unwrap();
        let out = dir.path().join("o.csv");
        let keep = CsvHeader::KeepOne;
        let w = merge_text(Format::Csv, false, keep, &[(&a, "a"), (&b, "b")], &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "x,y\n1,2\r\n3,\"multi\nline\"\r\n5,6\n"
        );
        assert_eq!(w.rows, 4, "physical lines after the header");
        assert_eq!(count_text_rows(&out, Format::Csv, false, keep).unwrap(), 4);
    }

    #[test]
    fn headerless_csv_is_concatenated_and_no_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        // Same first line in both: with headers assumed, one would vanish.
        std::fs::write(&a, "1,2\n3,4\n").unwrap();
        std::fs::write(&b, "1,2\n5,6").unwrap();
        let out = dir.path().join("o.csv");
        let none = CsvHeader::None;
        let w = merge_text(Format::Csv, false, none, &[(&a, "a"), (&b, "b")], &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "1,2\n3,4\n1,2\n5,6\n"
        );
        assert_eq!(w.rows, 4);
        assert_eq!(count_text_rows(&out, Format::Csv, false, none).unwrap(), 4);
    }

    #[test]
    fn csv_header_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&a, "x,y\n1,2\n").unwrap();
        std::fs::write(&b, "x,z\n1,2\n").unwrap();
        let e = merge_text(
            Format::Csv,
            false,
            CsvHeader::KeepOne,
            &[(&a, "a.csv"), (&b, "b.csv")],
            &dir.path().join("o"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("b.csv has a different CSV header"),
            "{e}"
        );
    }

    #[test]
    fn gzip_in_and_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, text) in ["{\"a\":1}\n", "{\"a\":2}\n{\"a\":3}"].iter().enumerate() {
            let p = dir.path().join(format!("{i}.ndjson.gz"));
            let mut enc = flate2::write::GzEncoder::new(
                File::create(&p).unwrap(),
                flate2::Compression::default(),
            );
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap();
            paths.push(p);
        }
        let out = dir.path().join("o.ndjson.gz");
        let w = merge_text(
            Format::Ndjson,
            true,
            CsvHeader::None,
            &[(&paths[0], "0"), (&paths[1], "1")],
            &out,
        )
        .unwrap();
        assert_eq!(w.rows, 3);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(File::open(&out).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    }
}
