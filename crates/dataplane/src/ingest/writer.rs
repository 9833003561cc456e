//! Partitioned, rolling file writers: one open file per partition, rolled by
//! size, record count and age, with a bound on open files (least recently
//! used closed first) so late, out-of-order data cannot exhaust memory.
//!
//! Owns: local files being written, their encoding when closed (Parquet
//! files are written as rows, then encoded column by column), and their
//! publication to the sink through a `Store` (rename on disk, upload to
//! S3). Must not: flatten, parse times or choose names (callers pass a
//! naming function).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::LakeFormat;
use crate::store::Store;

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
    key: String,
    local: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    records: u64,
    opened: Instant,
    last_used: u64,
}

/// A published file: its key in the sink and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub key: String,
    pub records: u64,
    pub bytes: u64,
}

/// Names a new file from (partition, id of its first record).
type NameFn<'a> = Box<dyn FnMut(&str, &str) -> String + Send + 'a>;

/// Writes rows into per-partition files and publishes them.
pub struct PartitionedWriter<'a> {
    store: &'a Store,
    runtime: &'a tokio::runtime::Handle,
    scratch: PathBuf,
    policy: RollPolicy,
    /// Written at the top of every file (the CSV header), or empty.
    header: Vec<u8>,
    format: LakeFormat,
    /// Final key of a new file: (partition, id of its first record).
    name: NameFn<'a>,
    open: HashMap<String, OpenFile>,
    /// The partition written last: consecutive records usually share it.
    last: String,
    clock: u64,
    published: Vec<Published>,
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
            header: format.header(),
            format: format.clone(),
            name: Box::new(name),
            open: HashMap::new(),
            last: String::new(),
            clock: 0,
            published: Vec::new(),
        }
    }

    /// Append one row (with its newline) to `partition`'s current file;
    /// `id` names the record (a new file is named after its first record).
    pub fn write(&mut self, partition: &str, row: &[u8], id: &str) -> Result<()> {
        self.clock += 1;
        if self.last != partition && !self.open.contains_key(partition) {
            if self.open.len() >= self.policy.max_open {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_used)
                    .map(|(p, _)| p.clone())
                    .expect("not empty");
                self.close(&oldest)?;
            }
            let key = (self.name)(partition, id);
            // Unique per final key and process: shard threads and workers share scratch space.
            let local = self.scratch.join(format!(
                "{}-{}.partial",
                std::process::id(),
                key.replace('/', "_")
            ));
            let mut out = BufWriter::with_capacity(
                256 << 10,
                File::create(&local).with_context(|| format!("creating {}", local.display()))?,
            );
            out.write_all(&self.header)?;
            let f = OpenFile {
                key,
                local,
                out,
                bytes: self.header.len() as u64,
                records: 0,
                opened: Instant::now(),
                last_used: 0,
            };
            self.open.insert(partition.to_string(), f);
        }
        if self.last != partition {
            self.last.clear();
            self.last.push_str(partition);
        }
        let f = self.open.get_mut(partition).expect("opened above");
        f.out.write_all(row)?;
        f.bytes += row.len() as u64;
        f.records += 1;
        f.last_used = self.clock;
        // The clock is read every 4096 rows, not every row. (`run` turns age
        // off: its files must end where a replay would end them.)
        let aged = f.records % 4096 == 0 && f.opened.elapsed() >= self.policy.max_age;
        if f.bytes >= self.policy.max_bytes || f.records >= self.policy.max_records || aged {
            self.close(partition)?;
        }
        Ok(())
    }

    /// Close and publish `partition`'s file.
    fn close(&mut self, partition: &str) -> Result<()> {
        let Some(mut f) = self.open.remove(partition) else {
            return Ok(());
        };
        if self.last == partition {
            self.last.clear();
        }
        f.out.flush()?;
        drop(f.out);
        let (file, bytes) = match &self.format {
            LakeFormat::Parquet(layout) => {
                let encoded = f.local.with_extension("parquet.partial");
                layout
                    .convert(&f.local, &encoded)
                    .with_context(|| format!("encoding {} as Parquet", f.key))?;
                let _ = std::fs::remove_file(&f.local);
                let bytes = std::fs::metadata(&encoded)?.len();
                (encoded, bytes)
            }
            _ => (f.local, f.bytes),
        };
        self.runtime
            .block_on(self.store.put_file(&f.key, &file))
            .with_context(|| format!("publishing {}", f.key))?;
        let _ = std::fs::remove_file(&file);
        self.published.push(Published {
            key: f.key,
            records: f.records,
            bytes,
        });
        Ok(())
    }

    /// Close files older than the age limit (call periodically when idle).
    pub fn roll_aged(&mut self) -> Result<()> {
        let aged: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= self.policy.max_age)
            .map(|(p, _)| p.clone())
            .collect();
        for p in aged {
            self.close(&p)?;
        }
        Ok(())
    }

    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Publish everything still open; returns every file published.
    pub fn finish(mut self) -> Result<Vec<Published>> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for p in partitions {
            self.close(&p)?;
        }
        Ok(self.published)
    }
}
