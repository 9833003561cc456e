//! Partitioned, rolling file writers: one open file per partition, rolled by
//! size, record count and age, with a bound on open files (least recently
//! used closed first) so late, out-of-order data cannot exhaust memory.
//!
//! Owns: local files being written (text rows appended; Parquet rows into
//! the file's column buffers, row groups written as they fill, within one
//! memory budget for all open files), and their
//! publication to the sink through a `Store` (rename on disk, upload to
//! S3) — at once in the background, or (`holding`) only when `finish` is
//! called, so a caller can first claim the right to publish (the Kinesis
//! consumer writes its window's intent), optionally through a fence checked
//! before every upload request (`fenced`). Must not: flatten, parse times,
//! choose names (callers pass a naming function) or decide what a fence
//! checks.

use std::collections::VecDeque;
use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::parquet::{Group, ParquetFile};
use super::LakeFormat;
use crate::hash::ShortKeyMap;
use crate::store::{Fence, Store};

/// Memory for the buffered row groups of all open Parquet files: past it,
/// the largest buffer is written as a (smaller) row group.
const PARQUET_BUFFER_BUDGET: usize = 64 << 20;

/// When files roll and how many stay open.
#[derive(Debug, Clone)]
pub struct RollPolicy {
    pub max_bytes: u64,
    pub max_records: u64,
    pub max_age: Duration,
    pub max_open: usize,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy {
            max_bytes: 128 << 20,
            max_records: 10_000_000,
            max_age: Duration::from_secs(300),
            max_open: 64,
        }
    }
}

struct OpenFile {
    partition: String,
    key: String,
    local: PathBuf,
    out: Output,
    bytes: u64,
    records: u64,
    opened: Instant,
    last_used: u64,
}

/// Where an open file's rows go.
enum Output {
    /// NDJSON and CSV: rows appended as they are.
    Text(TextFile),
    /// Typed rows into column buffers.
    Parquet(Box<ParquetFile>),
}

/// Column buffers of closed Parquet files kept for the next files.
const SPARE_GROUPS: usize = 2;

/// Bytes buffered per open text file before a write to the file.
const TEXT_BUFFER: usize = 256 << 10;

/// A text file being written through a buffer that outlives it: a closed
/// file's buffer goes to the next file opened. (A fresh 256 KiB buffer per
/// file is a fresh mapping from the allocator, page-faulted in again each
/// time: ≈ 5% of an NDJSON backfill.)
struct TextFile {
    file: File,
    buf: Vec<u8>,
}

impl TextFile {
    #[inline]
    fn write(&mut self, row: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + row.len() > self.buf.capacity() {
            self.flush()?;
            if row.len() > self.buf.capacity() {
                return self.file.write_all(row);
            }
        }
        self.buf.extend_from_slice(row);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// A published file: its key in the sink and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub key: String,
    pub records: u64,
    pub bytes: u64,
}

/// Closed files being published in the background: the next rows are
/// flattened while the disk or S3 takes the last file. Bounded, so scratch
/// space holds at most this many closed files.
const PUBLISHING_AT_ONCE: usize = 4;

type Publishing = tokio::task::JoinHandle<Result<Published>>;

/// Names a new file from (partition, id of its first record).
type NameFn<'a> = Box<dyn FnMut(&str, &str) -> String + Send + 'a>;

/// Writes rows into per-partition files and publishes them.
pub struct PartitionedWriter<'a> {
    store: &'a Store,
    runtime: &'a tokio::runtime::Handle,
    scratch: PathBuf,
    policy: RollPolicy,
    format: LakeFormat,
    /// Final key of a new file: (partition, id of its first record).
    name: NameFn<'a>,
    /// Open files, and where each partition's is in `files`.
    files: Vec<OpenFile>,
    open: ShortKeyMap<String, usize>,
    /// The partition written last and its index in `files` (consecutive
    /// records usually share it: no hash lookup for them); empty when none.
    last: String,
    last_index: usize,
    clock: u64,
    publishing: VecDeque<Publishing>,
    published: Vec<Published>,
    /// Closed files are kept in scratch until `finish` (not published as
    /// they roll).
    holding: bool,
    held: Vec<Closed>,
    /// Bytes buffered by all open Parquet files.
    buffered: usize,
    /// Buffers of closed text files, for the next ones.
    spare_buffers: Vec<Vec<u8>>,
    /// Column buffers of closed Parquet files, for the next ones.
    spare_groups: Vec<Group>,
    /// Checked before every request of every upload (`Store::put_file_fenced`).
    fence: Option<Fence>,
}

/// A closed file not yet published.
struct Closed {
    key: String,
    local: PathBuf,
    records: u64,
    bytes: u64,
}

impl<'a> PartitionedWriter<'a> {
    pub fn new(
        store: &'a Store,
        runtime: &'a tokio::runtime::Handle,
        scratch: &Path,
        policy: RollPolicy,
        format: &LakeFormat,
        name: impl FnMut(&str, &str) -> String + Send + 'a,
    ) -> Self {
        PartitionedWriter {
            store,
            runtime,
            scratch: scratch.to_path_buf(),
            policy,
            format: format.clone(),
            name: Box::new(name),
            files: Vec::new(),
            open: ShortKeyMap::default(),
            last: String::new(),
            last_index: 0,
            clock: 0,
            publishing: VecDeque::new(),
            published: Vec::new(),
            holding: false,
            held: Vec::new(),
            buffered: 0,
            spare_buffers: Vec::new(),
            spare_groups: Vec::new(),
            fence: None,
        }
    }

    /// Publish through `fence`: checked before every request that could
    /// change the sink, each file a multipart upload a successor can abort.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// How many files `finish` would publish (held and open).
    pub fn pending_count(&self) -> usize {
        self.held.len() + self.files.len()
    }

    /// Keep closed files in scratch until `finish` instead of publishing
    /// them as they roll: nothing reaches the sink before the caller says so.
    pub fn holding(mut self) -> Self {
        self.holding = true;
        self
    }

    /// The keys of every file this writer would publish at `finish`
    /// (held and open), sorted.
    pub fn pending_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .held
            .iter()
            .map(|c| c.key.clone())
            .chain(self.files.iter().map(|f| f.key.clone()))
            .collect();
        keys.sort();
        keys
    }

    /// Whether any row was written since the writer began.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
            && self.files.is_empty()
            && self.published.is_empty()
            && self.publishing.is_empty()
    }

    /// Append one text row (with its newline) to `partition`'s current
    /// file; `id` names the record (a new file is named after its first
    /// record; it is formatted only then). Parquet rows go through
    /// `write_values`.
    pub fn write(&mut self, partition: &str, row: &[u8], id: &dyn Display) -> Result<()> {
        let index = self.file_for(partition, id)?;
        let f = &mut self.files[index];
        let Output::Text(out) = &mut f.out else {
            anyhow::bail!("{}: a text row for a Parquet file", f.key);
        };
        out.write(row)
            .with_context(|| format!("writing {}", f.key))?;
        self.wrote(index, partition, row.len() as u64)
    }

    /// Append one row to `partition`'s current Parquet file, its values
    /// pushed by `fill` straight into the file's column buffers (no row is
    /// encoded); as `write` otherwise.
    pub fn write_values(
        &mut self,
        partition: &str,
        id: &dyn Display,
        fill: impl FnOnce(&mut Group),
    ) -> Result<()> {
        let index = self.file_for(partition, id)?;
        let f = &mut self.files[index];
        let Output::Parquet(file) = &mut f.out else {
            anyhow::bail!("{}: typed values for a text file", f.key);
        };
        let before = file.buffered_bytes();
        let bytes = file
            .push_values(fill)
            .with_context(|| format!("writing {}", f.key))?;
        self.buffered = self.buffered + file.buffered_bytes() - before;
        self.wrote(index, partition, bytes as u64)
    }

    /// The index in `files` of `partition`'s open file, opened if need be.
    #[inline]
    fn file_for(&mut self, partition: &str, id: &dyn Display) -> Result<usize> {
        self.clock += 1;
        if self.last == partition {
            return Ok(self.last_index);
        }
        let index = match self.open.get(partition) {
            Some(&index) => index,
            None => self.open_file(partition, id)?,
        };
        self.last.clear();
        self.last.push_str(partition);
        self.last_index = index;
        Ok(index)
    }

    /// Count a row of `bytes` written to file `index`; roll it when full or
    /// old, and keep buffered Parquet within the memory budget.
    #[inline]
    fn wrote(&mut self, index: usize, partition: &str, bytes: u64) -> Result<()> {
        let f = &mut self.files[index];
        f.bytes += bytes;
        f.records += 1;
        f.last_used = self.clock;
        // The clock is read every 4096 rows, not every row. (The consumer turns age
        // off: its files must end where a replay would end them.)
        let aged = f.records.is_multiple_of(4096) && f.opened.elapsed() >= self.policy.max_age;
        if f.bytes >= self.policy.max_bytes || f.records >= self.policy.max_records || aged {
            self.close(partition)?;
        }
        if self.buffered > PARQUET_BUFFER_BUDGET {
            self.write_largest_group()?;
        }
        Ok(())
    }

    /// Open a new file for `partition` (closing the least recently used one
    /// when at the limit); returns its index in `files`.
    fn open_file(&mut self, partition: &str, id: &dyn Display) -> Result<usize> {
        if self.files.len() >= self.policy.max_open {
            let oldest = self
                .files
                .iter()
                .min_by_key(|f| f.last_used)
                .map(|f| f.partition.clone())
                .expect("not empty");
            self.close(&oldest)?;
        }
        let key = (self.name)(partition, &id.to_string());
        // Unique per final key and process: shard threads and workers share scratch space.
        let local = self.scratch.join(format!(
            "{}-{}.partial",
            std::process::id(),
            key.replace('/', "_")
        ));
        let out =
            match &self.format {
                LakeFormat::Parquet(layout) => Output::Parquet(Box::new(
                    ParquetFile::create_reusing(layout, &local, self.spare_groups.pop())?,
                )),
                _ => Output::Text(TextFile {
                    file: File::create(&local)
                        .with_context(|| format!("creating {}", local.display()))?,
                    buf: self
                        .spare_buffers
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(TEXT_BUFFER)),
                }),
            };
        let f = OpenFile {
            partition: partition.to_string(),
            key,
            local,
            out,
            bytes: 0,
            records: 0,
            opened: Instant::now(),
            last_used: 0,
        };
        self.open.insert(partition.to_string(), self.files.len());
        self.files.push(f);
        Ok(self.files.len() - 1)
    }

    /// Write the largest buffered Parquet row group (memory over budget).
    fn write_largest_group(&mut self) -> Result<()> {
        let largest = self
            .files
            .iter_mut()
            .filter_map(|f| match &mut f.out {
                Output::Parquet(file) => Some(file),
                Output::Text(_) => None,
            })
            .max_by_key(|file| file.buffered_bytes());
        if let Some(file) = largest {
            self.buffered -= file.buffered_bytes();
            file.write_group()?;
        }
        Ok(())
    }

    /// Close `partition`'s file and start publishing it (or hold it).
    fn close(&mut self, partition: &str) -> Result<()> {
        let Some(index) = self.open.remove(partition) else {
            return Ok(());
        };
        let f = self.files.swap_remove(index);
        if let Some(moved) = self.files.get(index) {
            *self
                .open
                .get_mut(&moved.partition)
                .expect("every file is mapped") = index;
        }
        // The cached index may have moved or gone.
        self.last.clear();
        let bytes = match f.out {
            Output::Text(mut out) => {
                out.flush().with_context(|| format!("writing {}", f.key))?;
                self.spare_buffers.push(out.buf);
                f.bytes
            }
            Output::Parquet(file) => {
                self.buffered -= file.buffered_bytes();
                let (size, group) = file
                    .finish_keeping_buffers()
                    .with_context(|| format!("writing {}", f.key))?;
                // Files open one at a time: a few spares are enough, and
                // each holds up to a row group's memory.
                if self.spare_groups.len() < SPARE_GROUPS {
                    self.spare_groups.push(group);
                }
                size
            }
        };
        let closed = Closed {
            key: f.key,
            local: f.local,
            records: f.records,
            bytes,
        };
        if self.holding {
            self.held.push(closed);
            return Ok(());
        }
        self.spawn_publish(closed)
    }

    /// Start publishing one closed file (bounded: waits for the oldest).
    fn spawn_publish(&mut self, c: Closed) -> Result<()> {
        let (store, runtime, fence) =
            (self.store.clone(), self.runtime.clone(), self.fence.clone());
        self.publishing.push_back(
            self.runtime
                .spawn_blocking(move || publish(&store, &runtime, fence.as_ref(), c)),
        );
        while self.publishing.len() > PUBLISHING_AT_ONCE {
            self.wait_oldest()?;
        }
        Ok(())
    }

    /// Wait for the oldest file being published.
    fn wait_oldest(&mut self) -> Result<()> {
        if let Some(task) = self.publishing.pop_front() {
            let published = self
                .runtime
                .block_on(task)
                .context("a publishing task failed")??;
            self.published.push(published);
        }
        Ok(())
    }

    /// Close files older than the age limit (call periodically when idle).
    pub fn roll_aged(&mut self) -> Result<()> {
        let aged: Vec<String> = self
            .files
            .iter()
            .filter(|f| f.opened.elapsed() >= self.policy.max_age)
            .map(|f| f.partition.clone())
            .collect();
        for p in aged {
            self.close(&p)?;
        }
        Ok(())
    }

    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Publish everything still open and wait until every file is durable
    /// in the sink; returns every file published, in the order closed.
    pub fn finish(mut self) -> Result<Vec<Published>> {
        let mut partitions: Vec<String> = self.files.iter().map(|f| f.partition.clone()).collect();
        partitions.sort();
        for p in partitions {
            self.close(&p)?;
        }
        for c in std::mem::take(&mut self.held) {
            self.spawn_publish(c)?;
        }
        while !self.publishing.is_empty() {
            self.wait_oldest()?;
        }
        Ok(self.published)
    }
}

/// Publish one closed file; runs off the writer's thread.
fn publish(
    store: &Store,
    runtime: &tokio::runtime::Handle,
    fence: Option<&Fence>,
    c: Closed,
) -> Result<Published> {
    // An error retrying can fix (throttling, a 5xx, a dropped connection)
    // is retried with back-off; a fence's refusal is not.
    super::retry::with_retries(&format!("publishing {}", c.key), || match fence {
        Some(fence) => runtime.block_on(store.put_file_fenced(&c.key, &c.local, fence)),
        None => runtime.block_on(store.put_file(&c.key, &c.local)),
    })?;
    let _ = std::fs::remove_file(&c.local);
    Ok(Published {
        key: c.key,
        records: c.records,
        bytes: c.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;

    /// Rows interleaved over more partitions than may be open: files are
    /// closed least recently used first and every row lands in its own
    /// partition's file (the index of the open files stays right when a
    /// closed file's slot is taken by another).
    #[test]
    fn interleaved_partitions_beyond_the_open_limit_keep_their_rows() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = runtime
            .block_on(Store::open(&Location::Local(dir.path().into()), None))
            .unwrap();
        let scratch = store.scratch_dir("_ingest/tmp", dir.path()).unwrap();
        let policy = RollPolicy {
            max_open: 3,
            ..RollPolicy::default()
        };
        let handle = runtime.handle().clone();
        let mut writer = PartitionedWriter::new(
            &store,
            &handle,
            &scratch,
            policy,
            &LakeFormat::Ndjson,
            |partition: &str, first: &str| format!("{partition}/f-{first:0>4}.ndjson"),
        );
        let order = [0, 1, 2, 0, 3, 3, 1, 4, 0, 2, 2, 4, 1, 0, 3];
        for (i, p) in order.iter().enumerate() {
            let row = format!("{{\"p\":{p},\"i\":{i}}}\n");
            writer.write(&format!("p={p}"), row.as_bytes(), &i).unwrap();
            assert!(writer.open_files() <= 3);
        }
        let published = writer.finish().unwrap();
        assert_eq!(published.iter().map(|f| f.records).sum::<u64>(), 15);
        for f in &published {
            let text = std::fs::read_to_string(dir.path().join(&f.key)).unwrap();
            let partition = f.key.split('/').next().unwrap().trim_start_matches("p=");
            assert_eq!(text.lines().count() as u64, f.records, "{}", f.key);
            assert!(
                text.lines()
                    .all(|l| l.starts_with(&format!("{{\"p\":{partition},"))),
                "{}: {text}",
                f.key
            );
        }
        assert!(
            published.len() > 5,
            "files were closed to stay under the limit"
        );
    }
}
