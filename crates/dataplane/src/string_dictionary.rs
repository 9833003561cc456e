//! Dictionary-encoded string column chunks of Parquet lake files, built as
//! the values arrive: each value is looked up once in the row group's
//! dictionary and only its index is kept; at the end of the row group the
//! dictionary page and the data page are encoded here and handed to the
//! parquet crate's file writer as a finished column chunk
//! (`SerializedRowGroupWriter::append_column`).
//!
//! Why not the crate's column writer: it takes every value of the row group
//! as a `ByteArray`, hashes it into its own dictionary and compares it twice
//! for min/max statistics. Strings were a third of a Parquet backfill's
//! encoding instructions that way. Here a value of up to 16 bytes (item ids,
//! cities, states) is its own hash key: a repeat costs one hash and one
//! probe, with no comparison of bytes; the statistics are taken over the
//! distinct values.
//!
//! The chunk is the one the crate writes for a dictionary column (writer
//! version 1): a PLAIN dictionary page, then an `RLE_DICTIONARY` data page
//! (definition levels as RLE runs, indices bit-packed), Snappy, min/max and
//! null-count statistics in the page header and the chunk metadata. The
//! crate still writes the page headers, offsets and metadata
//! (`SerializedPageWriter`, `ColumnChunkMetaData`). Two differences: the
//! indices of a row group are one data page (the crate cuts pages at 20 k
//! rows; a row group's indices are at most 128 Ki × 20 bits = 320 KiB), and
//! these columns have no page index (column and offset index), which
//! readers use only to skip pages inside a chunk. Row groups this cannot
//! write as the crate would — a dictionary past `DICTIONARY_LIMIT` (the
//! crate's own limit, after which it writes plain values), or a min/max the
//! crate would truncate — `encode_chunk` declines, and the caller writes the
//! values through the crate's column writer.
//!
//! Owns: the dictionary of one string column of one row group and the
//! encoding of its chunk. Must not: decide which columns get a dictionary
//! (`parquet_encoding`), open files or write row groups (the ingest
//! writer's `ingest::parquet` and the compactor's rewrite do).

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::hash::hash_bytes;

/// Plain-encoded dictionary bytes past which a row group's column is
/// written without this encoder (the parquet crate's default dictionary
/// page limit, past which it falls back to plain values).
pub const DICTIONARY_LIMIT: usize = 1 << 20;

/// The parquet crate truncates longer min/max statistics; a chunk whose
/// min or max is longer is left to it.
const STATISTICS_MAX_LEN: usize = 64;

/// Indices per bit-packed run: 63 groups of 8, as parquet-mr writes them.
const RUN_VALUES: usize = 63 * 8;

/// The distinct values of one string column of a row group, and the index
/// of every non-null value in row order.
#[derive(Default)]
pub struct StringDictionary {
    /// Index of each distinct value, by its key.
    table: KeyTable,
    /// The distinct values back to back, and where each ends.
    values: Vec<u8>,
    ends: Vec<u32>,
    /// One index per non-null value, in row order.
    indices: Vec<u32>,
    /// Bytes of all non-null values (the chunk metadata's unencoded size).
    value_bytes: u64,
}

impl StringDictionary {
    /// Add one value (its index is kept; its bytes only if new).
    #[inline]
    pub fn push(&mut self, value: &[u8]) {
        let key = Key::of(value);
        let index = match self.table.find(&key, value, &self.values, &self.ends) {
            Ok(index) => index,
            Err(slot) => {
                let index = self.ends.len() as u32;
                self.values.extend_from_slice(value);
                self.ends.push(self.values.len() as u32);
                self.table
                    .insert(slot, key, index, &self.values, &self.ends);
                index
            }
        };
        self.indices.push(index);
        self.value_bytes += value.len() as u64;
    }

    /// Room for `n` more values' indices.
    pub fn reserve(&mut self, n: usize) {
        self.indices.reserve(n);
    }

    /// The dictionary's size as a PLAIN dictionary page.
    pub fn plain_bytes(&self) -> usize {
        self.values.len() + 4 * self.ends.len()
    }

    /// Every non-null value in row order, as the crate's column writer
    /// takes them (the fallback when `encode_chunk` declines).
    pub fn values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.indices
            .iter()
            .map(|&i| distinct(&self.values, &self.ends, i))
    }

    /// Forget the row group's values; keep the memory.
    pub fn clear(&mut self) {
        self.table.clear();
        self.values.clear();
        self.ends.clear();
        self.indices.clear();
        self.value_bytes = 0;
    }

    /// The column chunk of the values pushed: its bytes and what the row
    /// group writer needs to append it. `defs` are the rows' definition
    /// levels (empty: no row is null, or a required column) and `rows` the
    /// row count. None when the crate's column writer must write this chunk
    /// (see the module).
    pub fn encode_chunk(
        &self,
        descr: &ColumnDescPtr,
        defs: &[i16],
        rows: usize,
    ) -> Result<Option<(Bytes, ColumnCloseResult)>> {
        let count = self.ends.len();
        // Flat columns only: required (no levels) or optional (levels 0/1).
        let flat = descr.max_rep_level() == 0 && descr.max_def_level() <= 1;
        if count == 0 || !flat || self.plain_bytes() > DICTIONARY_LIMIT {
            return Ok(None);
        }
        let (mut min, mut max) = (self.distinct(0), self.distinct(0));
        for i in 1..count as u32 {
            let value = self.distinct(i);
            min = min.min(value);
            max = max.max(value);
        }
        if min.len() > STATISTICS_MAX_LEN || max.len() > STATISTICS_MAX_LEN {
            return Ok(None);
        }
        let mut dictionary = Vec::with_capacity(self.plain_bytes());
        for i in 0..count as u32 {
            let value = self.distinct(i);
            dictionary.extend_from_slice(&(value.len() as u32).to_le_bytes());
            dictionary.extend_from_slice(value);
        }
        let nulls = (rows - self.indices.len()) as u64;
        let statistics = Statistics::ByteArray(
            ValueStatistics::new(
                Some(ByteArray::from(min.to_vec())),
                Some(ByteArray::from(max.to_vec())),
                None,
                Some(nulls),
                false,
            )
            .with_backwards_compatible_min_max(false),
        );

        // Data page v1: definition levels (length-prefixed) of an optional
        // column, then the indices' bit width and the indices.
        let width = bit_width(count as u32 - 1);
        let mut data = Vec::with_capacity(16 + self.indices.len() * width as usize / 8 + 64);
        if descr.max_def_level() == 1 {
            data.extend_from_slice(&[0; 4]);
            rle_levels(defs, rows, &mut data);
            let levels = (data.len() - 4) as u32;
            data[..4].copy_from_slice(&levels.to_le_bytes());
        }
        data.push(width);
        bit_pack(&self.indices, width, &mut data);

        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        let dictionary_page = pages.write_page(CompressedPage::new(
            Page::DictionaryPage {
                buf: snappy(&dictionary)?,
                num_values: count as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            },
            dictionary.len(),
        ))?;
        let data_page = pages.write_page(CompressedPage::new(
            Page::DataPage {
                buf: snappy(&data)?,
                num_values: rows as u32,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: Some(statistics.clone()),
            },
            data.len(),
        ))?;
        pages.close()?;
        let bytes = Bytes::from(sink.into_inner()?);

        let metadata = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(Compression::SNAPPY)
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
            ))
            .set_page_encoding_stats(vec![
                PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                },
                PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding: Encoding::RLE_DICTIONARY,
                    count: 1,
                },
            ])
            .set_total_compressed_size(
                (dictionary_page.compressed_size + data_page.compressed_size) as i64,
            )
            .set_total_uncompressed_size(
                (dictionary_page.uncompressed_size + data_page.uncompressed_size) as i64,
            )
            .set_num_values(rows as i64)
            .set_data_page_offset(data_page.offset as i64)
            .set_dictionary_page_offset(Some(dictionary_page.offset as i64))
            .set_statistics(statistics)
            .set_unencoded_byte_array_data_bytes(Some(self.value_bytes as i64))
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        };
        Ok(Some((bytes, close)))
    }

    fn distinct(&self, i: u32) -> &[u8] {
        distinct(&self.values, &self.ends, i)
    }
}

/// A value's first 16 bytes (zero-padded) and length: the whole value
/// when it is at most 16 bytes long, which lake strings (ids, cities,
/// states) mostly are. Equal keys of such values are equal values, with no
/// look at the dictionary's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    head: [u64; 2],
    len: u32,
}

impl Key {
    #[inline(always)]
    fn of(value: &[u8]) -> Key {
        let len = value.len();
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let head = if len >= 16 {
            [word(&value[..8]), word(&value[8..16])]
        } else if len >= 8 {
            // The last 8 bytes, shifted so that byte 8 lands at the bottom.
            let tail = word(&value[len - 8..]) >> (8 * (16 - len));
            [word(&value[..8]), tail]
        } else if len >= 4 {
            let half = |b: &[u8]| u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")));
            // Two overlapping 4-byte loads: overlapping bytes are equal.
            [
                half(&value[..4]) | half(&value[len - 4..]) << (8 * (len - 4)),
                0,
            ]
        } else if len > 0 {
            let (a, b, c) = (value[0], value[len / 2], value[len - 1]);
            [
                u64::from(a) | u64::from(b) << (8 * (len / 2)) | u64::from(c) << (8 * (len - 1)),
                0,
            ]
        } else {
            [0, 0]
        };
        Key {
            head,
            len: len as u32,
        }
    }

    /// The whole value is in the key.
    #[inline(always)]
    fn is_whole(&self) -> bool {
        self.len <= 16
    }

    /// A multiplicative hash: its high bits depend on every bit of the
    /// key (the table indexes by them; the low bits of a value like
    /// "Item_123" would be the same for every item).
    #[inline(always)]
    fn hash(&self, value: &[u8]) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let x = if self.is_whole() {
            self.head[0] ^ self.head[1].rotate_left(29).wrapping_mul(K) ^ u64::from(self.len)
        } else {
            hash_bytes(value)
        };
        x.wrapping_mul(K)
    }
}

/// One slot of the table: a key and its distinct value's index
/// (`u32::MAX`: empty). 24 bytes, so a dictionary of a thousand item ids
/// probes 48 KiB.
#[derive(Clone, Copy)]
struct Slot {
    head: [u64; 2],
    len: u32,
    index: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        head: [0, 0],
        len: 0,
        index: u32::MAX,
    };

    #[inline(always)]
    fn key(&self) -> Key {
        Key {
            head: self.head,
            len: self.len,
        }
    }
}

/// Open addressing with linear probing, at most half full.
struct KeyTable {
    slots: Vec<Slot>,
    used: usize,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable {
            slots: vec![Slot::EMPTY; 64],
            used: 0,
        }
    }
}

impl KeyTable {
    /// `value`'s index, or the empty slot where it belongs.
    #[inline(always)]
    fn find(&self, key: &Key, value: &[u8], values: &[u8], ends: &[u32]) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key.hash(value));
        loop {
            let slot = &self.slots[at];
            if slot.index == u32::MAX {
                return Err(at);
            }
            if slot.key() == *key && (key.is_whole() || distinct(values, ends, slot.index) == value)
            {
                return Ok(slot.index);
            }
            at = (at + 1) & mask;
        }
    }

    /// Put `index` in the empty slot `at` that `find` returned (`values`
    /// and `ends` already hold its value).
    fn insert(&mut self, at: usize, key: Key, index: u32, values: &[u8], ends: &[u32]) {
        self.slots[at] = Slot {
            head: key.head,
            len: key.len,
            index,
        };
        self.used += 1;
        if self.used * 2 > self.slots.len() {
            let grown = vec![Slot::EMPTY; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            let mask = self.slots.len() - 1;
            for slot in old.into_iter().filter(|s| s.index != u32::MAX) {
                let mut at = self.home(slot.key().hash(distinct(values, ends, slot.index)));
                while self.slots[at].index != u32::MAX {
                    at = (at + 1) & mask;
                }
                self.slots[at] = slot;
            }
        }
    }

    /// The slot a hash starts probing at: its top bits.
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    fn clear(&mut self) {
        self.slots.fill(Slot::EMPTY);
        self.used = 0;
    }
}

/// Distinct value `i` of `values` (back to back, ending at `ends`).
#[inline(always)]
fn distinct<'a>(values: &'a [u8], ends: &[u32], i: u32) -> &'a [u8] {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &values[start..ends[i] as usize]
}

/// Bits for indices up to `max` (at least 1: some readers mishandle 0).
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()).max(1) as u8
}

/// ULEB128, the RLE/bit-packing hybrid's run headers.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Definition levels (bit width 1) as RLE runs: one run of ones when no
/// row is null (`defs` empty).
fn rle_levels(defs: &[i16], rows: usize, out: &mut Vec<u8>) {
    if defs.is_empty() {
        varint((rows as u64) << 1, out);
        out.push(1);
        return;
    }
    let mut rest = defs;
    while let Some(&level) = rest.first() {
        let run = rest.iter().take_while(|&&l| l == level).count();
        varint((run as u64) << 1, out);
        out.push(level as u8);
        rest = &rest[run..];
    }
}

/// Indices as bit-packed runs of `width` bits each, least significant bit
/// first; the last group of 8 is padded with zeros (the page's value count
/// says where the values end).
fn bit_pack(indices: &[u32], width: u8, out: &mut Vec<u8>) {
    for run in indices.chunks(RUN_VALUES) {
        let groups = run.len().div_ceil(8);
        varint(((groups as u64) << 1) | 1, out);
        let (mut acc, mut bits) = (0u64, 0u32);
        for &index in run {
            acc |= u64::from(index) << bits;
            bits += u32::from(width);
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        // Pad to whole groups: `groups * width` bytes in all.
        let padding = (groups * 8 - run.len()) as u32 * u32::from(width);
        bits += padding;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
        debug_assert_eq!(bits, 0, "whole groups are whole bytes");
    }
}

fn snappy(bytes: &[u8]) -> Result<Bytes> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .map(Bytes::from)
        .map_err(|e| ParquetError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_in_row_order_and_repeats_are_stored_once() {
        let mut dict = StringDictionary::default();
        for v in ["b", "a", "b", "", "a", "c"] {
            dict.push(v.as_bytes());
        }
        assert_eq!(
            dict.values().collect::<Vec<_>>(),
            [&b"b"[..], b"a", b"b", b"", b"a", b"c"]
        );
        assert_eq!(dict.ends.len(), 4, "b, a, the empty string, c");
        assert_eq!(dict.plain_bytes(), 3 + 4 * 4);
        dict.clear();
        assert_eq!(dict.values().count(), 0);
        dict.push(b"z");
        assert_eq!(dict.values().collect::<Vec<_>>(), [&b"z"[..]]);
    }

    /// Keys of short values are the values: every length up to 16 and past
    /// it, values that differ in one byte, and a table that grows.
    #[test]
    fn keys_tell_values_apart_at_every_length() {
        let mut dict = StringDictionary::default();
        let mut all = Vec::new();
        for len in 0..40usize {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            all.push(base.clone());
            for at in 0..len {
                let mut v = base.clone();
                v[at] = b'#';
                all.push(v);
            }
            let mut zero = base.clone();
            zero.push(0);
            all.push(zero);
        }
        for v in all.iter().chain(all.iter()) {
            dict.push(v);
        }
        let distinct: std::collections::HashSet<&Vec<u8>> = all.iter().collect();
        assert_eq!(dict.ends.len(), distinct.len(), "each value stored once");
        let back: Vec<&[u8]> = dict.values().collect();
        let want: Vec<&[u8]> = all.iter().chain(all.iter()).map(|v| &v[..]).collect();
        assert!(back == want, "values come back as pushed");
    }

    #[test]
    fn bit_packing_follows_the_parquet_hybrid_layout() {
        // The format's own example: 0..7 at width 3 is 0x88 0xC6 0xFA.
        let mut out = Vec::new();
        bit_pack(&[0, 1, 2, 3, 4, 5, 6, 7], 3, &mut out);
        assert_eq!(out, [0b11, 0x88, 0xC6, 0xFA]);
        // 9 values: two groups, the second padded.
        out.clear();
        bit_pack(&[1; 9], 1, &mut out);
        assert_eq!(out, [(2 << 1) | 1, 0xFF, 0x01]);
        // Runs stop at 504 values.
        out.clear();
        bit_pack(&vec![0; RUN_VALUES + 1], 1, &mut out);
        assert_eq!(out[0], (63 << 1) | 1, "63 groups");
        assert_eq!(out[1 + 63], 0b11, "then one group");
        assert_eq!(out.len(), 1 + 63 + 1 + 1);
    }

    #[test]
    fn levels_are_rle_runs() {
        let mut out = Vec::new();
        rle_levels(&[], 300, &mut out);
        assert_eq!(out, [0xD8, 0x04, 1], "300 << 1 as ULEB128, then the value");
        out.clear();
        rle_levels(&[1, 1, 0, 1], 4, &mut out);
        assert_eq!(out, [4, 1, 2, 0, 2, 1]);
        assert_eq!(bit_width(0), 1);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(2), 2);
        assert_eq!(bit_width(1023), 10);
    }

    /// One chunk of ours in a file of one string column (`repetition`),
    /// read back through the parquet crate's record reader.
    fn round_trip(
        repetition: parquet::basic::Repetition,
        rows: &[Option<&str>],
    ) -> Vec<Option<String>> {
        use parquet::basic::{LogicalType, Type as PhysicalType};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::writer::SerializedFileWriter;
        use parquet::record::RowAccessor;
        use parquet::schema::types::{SchemaDescriptor, Type};
        use std::sync::Arc;
        let field = Type::primitive_type_builder("s", PhysicalType::BYTE_ARRAY)
            .with_repetition(repetition)
            .with_logical_type(Some(LogicalType::String))
            .build()
            .unwrap();
        let schema = Arc::new(
            Type::group_type_builder("record")
                .with_fields(vec![Arc::new(field)])
                .build()
                .unwrap(),
        );
        let descr = SchemaDescriptor::new(schema.clone()).column(0);
        let mut dict = StringDictionary::default();
        let mut defs = Vec::new();
        for row in rows {
            defs.push(i16::from(row.is_some()));
            if let Some(v) = row {
                dict.push(v.as_bytes());
            }
        }
        if repetition == parquet::basic::Repetition::REQUIRED {
            defs.clear();
        }
        let (bytes, close) = dict
            .encode_chunk(&descr, &defs, rows.len())
            .unwrap()
            .unwrap();
        let mut writer = SerializedFileWriter::new(Vec::new(), schema, Default::default()).unwrap();
        let mut group = writer.next_row_group().unwrap();
        group.append_column(&bytes, close).unwrap();
        group.close().unwrap();
        let file = Bytes::from(writer.into_inner().unwrap());
        let reader = SerializedFileReader::new(file).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().get_string(0).ok().cloned())
            .collect()
    }

    #[test]
    fn optional_and_required_chunks_read_back() {
        use parquet::basic::Repetition;
        let rows: Vec<Option<&str>> = (0..1500)
            .map(|i| (i % 7 != 0).then_some(["x", "yy", "", "a longer value of 24 b"][i % 4]))
            .collect();
        let want: Vec<Option<String>> = rows.iter().map(|r| r.map(String::from)).collect();
        assert_eq!(round_trip(Repetition::OPTIONAL, &rows), want);
        let full: Vec<Option<&str>> = rows.iter().map(|r| r.or(Some("n"))).collect();
        let want: Vec<Option<String>> = full.iter().map(|r| r.map(String::from)).collect();
        assert_eq!(round_trip(Repetition::REQUIRED, &full), want);
    }

    #[test]
    fn chunks_the_crate_would_write_differently_are_declined() {
        let descr = {
            use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
            use parquet::schema::types::{ColumnDescriptor, ColumnPath, Type};
            let t = Type::primitive_type_builder("s", PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::String))
                .build()
                .unwrap();
            std::sync::Arc::new(ColumnDescriptor::new(
                std::sync::Arc::new(t),
                1,
                0,
                ColumnPath::from("s"),
            ))
        };
        let mut dict = StringDictionary::default();
        assert!(
            dict.encode_chunk(&descr, &[0, 0], 2).unwrap().is_none(),
            "all null"
        );
        dict.push(&[b'x'; STATISTICS_MAX_LEN + 1]);
        assert!(
            dict.encode_chunk(&descr, &[], 1).unwrap().is_none(),
            "long max"
        );
        dict.clear();
        dict.push(b"short");
        let (bytes, close) = dict.encode_chunk(&descr, &[], 1).unwrap().unwrap();
        assert_eq!(close.metadata.compressed_size() as usize, bytes.len());
        dict.clear();
        let mut i = 0u64;
        while dict.plain_bytes() <= DICTIONARY_LIMIT {
            dict.push(format!("value-{i:020}").as_bytes());
            i += 1;
        }
        assert!(
            dict.encode_chunk(&descr, &[], i as usize)
                .unwrap()
                .is_none(),
            "over the limit"
        );
    }
}
