//! Planning a compaction: which files merge into which outputs.
//!
//! Owns: file format detection, s3-dist-cp style grouping (`--group-by`
//! capture groups, or the partition directory), splitting groups at the
//! target size, deterministic group ids and output names, worker sharding,
//! and reading/writing gzip manifests. Must not: read file contents or
//! touch stores (callers list and pass objects in).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::ObjectMeta;

/// Formats lake-compact merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Ndjson,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }
}

/// Format and gzip-ness from a file name (`.csv`, `.ndjson`/`.json`/`.jsonl`,
/// `.parquet`, each text form optionally `.gz`).
pub fn detect(key: &str) -> Option<(Format, bool)> {
    let (stem, gz) = match key.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (key, false),
    };
    let ext = stem.rsplit_once('.')?.1;
    let format = match ext {
        "csv" => Format::Csv,
        "ndjson" | "json" | "jsonl" => Format::Ndjson,
        "parquet" if !gz => Format::Parquet,
        _ => return None,
    };
    Some((format, gz))
}

/// Name of outputs of default grouping (`compacted0.csv`, …).
pub const OUTPUT_NAME: &str = "compacted";

/// Whether a file is an earlier output of default grouping: those are not
/// merged again, so running to completion after a crash leaves the same
/// files as one uninterrupted run (use `--group-by` to re-compact them).
pub fn is_default_output(key: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or(key);
    file.strip_prefix(OUTPUT_NAME)
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One output of a group: its key in the destination and its sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPlan {
    pub key: String,
    /// Indexes into the group's `sources`.
    pub sources: Vec<usize>,
}

/// Files that merge together, and the outputs they become.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPlan {
    /// Hex digest of the sorted source keys and sizes: the same files always
    /// make the same group id (and so the same journal after a crash).
    pub id: String,
    pub format: Format,
    pub gzip: bool,
    pub sources: Vec<Source>,
    pub outputs: Vec<OutputPlan>,
    /// What decides the worker: the output directory and name (or the
    /// `--group-by` name), which files arriving between two workers'
    /// listings do not change (the id does). Empty in journals written
    /// before it existed; those go by their id.
    #[serde(default)]
    pub shard: String,
}

impl GroupPlan {
    /// The worker (of `count`) that owns this group, for a fresh plan and
    /// for an interrupted run's journal alike.
    pub fn worker(&self, count: u32) -> u32 {
        worker_of(
            if self.shard.is_empty() {
                &self.id
            } else {
                &self.shard
            },
            count,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub key: String,
    pub size: u64,
}

/// How files are grouped and sized.
pub struct PlanOptions<'a> {
    pub group_by: Option<&'a Regex>,
    /// URL of the source root, prefixed to keys before `group_by` matches
    /// (s3-dist-cp applies its pattern to the whole path).
    pub src_url: &'a str,
    pub target_size: u64,
    pub worker_index: u32,
    pub worker_count: u32,
    /// The destination is another place than the source: every source
    /// row must arrive there, so a group of one file is planned too (a
    /// copy) and earlier outputs (`compacted*`) are sources like any file.
    /// In place, one file is already as merged as it gets.
    pub to_elsewhere: bool,
}

/// What planning skipped, for the report.
#[derive(Debug, Default)]
pub struct Skipped {
    pub unmatched: usize,
    pub unknown_format: usize,
    pub single_file_groups: usize,
    pub other_workers: usize,
    /// Ingest files of windows not checkpointed yet (`--lease-table`).
    pub uncommitted: usize,
}

/// Group `objects` (already filtered for hidden, claimed and manifest-listed
/// files) and split them into outputs. `existing` are the destination's
/// keys, which output names must avoid.
pub fn plan(
    objects: &[ObjectMeta],
    opts: &PlanOptions<'_>,
    existing: &BTreeSet<String>,
) -> Result<(Vec<GroupPlan>, Skipped)> {
    let mut skipped = Skipped::default();
    // (output directory, name) -> files
    let mut groups: BTreeMap<(String, String), Vec<&ObjectMeta>> = BTreeMap::new();
    for o in objects {
        if detect(&o.key).is_none() {
            skipped.unknown_format += 1;
            continue;
        }
        let key = match opts.group_by {
            Some(re) => {
                let full = format!("{}/{}", opts.src_url.trim_end_matches('/'), o.key);
                let Some(caps) = re.captures(&full) else {
                    skipped.unmatched += 1;
                    continue;
                };
                let name: String = caps.iter().skip(1).flatten().map(|m| m.as_str()).collect();
                if name.is_empty() {
                    bail!("--group-by `{}` matched {full} but captured nothing; put the group key in ( )", re.as_str());
                }
                (String::new(), name)
            }
            None if is_default_output(&o.key) && !opts.to_elsewhere => continue,
            None => {
                let dir = o
                    .key
                    .rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default();
                (dir, OUTPUT_NAME.to_string())
            }
        };
        groups.entry(key).or_default().push(o);
    }
    let mut plans = Vec::new();
    for ((dir, name), files) in groups {
        // Formats must agree within a group; mixed groups split by format.
        let mut by_format: BTreeMap<(u8, bool), Vec<&ObjectMeta>> = BTreeMap::new();
        for f in files {
            let (format, gz) = detect(&f.key).expect("filtered above");
            by_format.entry((format as u8, gz)).or_default().push(f);
        }
        for ((_, gz), files) in by_format {
            let (format, _) = detect(&files[0].key).expect("filtered above");
            if files.len() < 2 && !opts.to_elsewhere {
                skipped.single_file_groups += 1;
                continue;
            }
            let sources: Vec<Source> = files
                .iter()
                .map(|f| Source {
                    key: f.key.clone(),
                    size: f.size,
                })
                .collect();
            let id = group_id(&sources);
            let shard = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            if worker_of(&shard, opts.worker_count) != opts.worker_index {
                skipped.other_workers += 1;
                continue;
            }
            let chunks = split_by_size(&sources, opts.target_size);
            let names = output_names(&dir, &name, format, gz, chunks.len(), existing);
            let outputs = chunks
                .into_iter()
                .zip(names)
                .map(|(sources, key)| OutputPlan { key, sources })
                .collect();
            plans.push(GroupPlan {
                id,
                format,
                gzip: gz,
                sources,
                outputs,
                shard,
            });
        }
    }
    Ok((plans, skipped))
}

pub fn group_id(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    let mut sorted: Vec<&Source> = sources.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for s in sorted {
        h.update(s.key.as_bytes());
        h.update(b"\0");
        h.update(s.size.to_le_bytes());
    }
    hex::encode(&h.finalize()[..10])
}

/// Deterministic worker assignment: several machines share a backlog
/// without coordination. `key` is a group's shard key: one directory's
/// files always go to one worker, whatever each worker's listing held.
pub fn worker_of(key: &str, count: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (n % u64::from(count.max(1))) as u32
}

/// Consecutive runs of sources whose sizes add up to at most `target`
/// (a file larger than the target is an output of its own).
pub fn split_by_size(sources: &[Source], target: u64) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0u64;
    for (i, s) in sources.iter().enumerate() {
        if !current.is_empty() && size + s.size > target {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(i);
        size += s.size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// `dir/name0.ext`, `dir/name1.ext`, … skipping names that already exist
/// (an earlier run's outputs stay untouched; they are sources now).
fn output_names(
    dir: &str,
    name: &str,
    format: Format,
    gz: bool,
    n: usize,
    existing: &BTreeSet<String>,
) -> Vec<String> {
    let ext = if gz {
        format!("{}.gz", format.extension())
    } else {
        format.extension().to_string()
    };
    let mut names = Vec::with_capacity(n);
    let mut i = 0usize;
    while names.len() < n {
        let file = format!("{name}{i}.{ext}");
        let key = if dir.is_empty() {
            file
        } else {
            format!("{dir}/{file}")
        };
        if !existing.contains(&key) {
            names.push(key);
        }
        i += 1;
    }
    names
}

/// A gzip manifest: one source URL per line, sorted.
pub fn write_manifest(urls: &BTreeSet<String>) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for u in urls {
        enc.write_all(u.as_bytes()).expect("in-memory");
        enc.write_all(b"\n").expect("in-memory");
    }
    enc.finish().expect("in-memory")
}

pub fn read_manifest(bytes: &[u8]) -> Result<BTreeSet<String>> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .context("a manifest is a gzip file of one URL per line")?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size,
        }
    }

    fn opts<'a>(re: Option<&'a Regex>, target: u64) -> PlanOptions<'a> {
        PlanOptions {
            group_by: re,
            src_url: "s3://b/lake",
            target_size: target,
            worker_index: 0,
            worker_count: 1,
            to_elsewhere: false,
        }
    }

    #[test]
    fn formats_and_hidden_files() {
        assert_eq!(detect("a/b.csv.gz"), Some((Format::Csv, true)));
        assert_eq!(detect("a/b.jsonl"), Some((Format::Ndjson, false)));
        assert_eq!(detect("a/b.parquet"), Some((Format::Parquet, false)));
        assert_eq!(detect("a/b.parquet.gz"), None);
        assert_eq!(detect("a/_SUCCESS"), None);
    }

    #[test]
    fn default_groups_are_partition_directories_split_at_the_target() {
        let files = [
            obj("t=1/a.csv", 40),
            obj("t=1/b.csv", 40),
            obj("t=1/c.csv", 40),
            obj("t=2/a.csv", 10),
            obj("t=2/b.csv", 10),
            obj("t=3/only.csv", 5),
        ];
        let mut files = files.to_vec();
        files.push(obj("t=2/compacted0.csv", 500));
        let existing = files
            .iter()
            .map(|f| f.key.clone())
            .chain(["t=1/compacted0.csv".to_string()])
            .collect();
        let (plans, skipped) = plan(&files, &opts(None, 100), &existing).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(
            plans[0]
                .outputs
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["t=1/compacted1.csv", "t=1/compacted2.csv"]
        );
        assert_eq!(plans[0].outputs[0].sources, [0, 1]);
        assert_eq!(
            plans[1].outputs[0].key, "t=2/compacted1.csv",
            "an earlier output is neither a source nor overwritten"
        );
        assert_eq!(plans[1].sources.len(), 2);
        assert_eq!(skipped.single_file_groups, 1);
        assert!(
            is_default_output("a/compacted12.csv.gz")
                && !is_default_output("a/compacted.csv")
                && !is_default_output("compactedx1.csv")
        );
    }

    #[test]
    fn group_by_captures_name_outputs_and_unmatched_files_are_untouched() {
        let re = Regex::new(r".*/ordertime=(\d{8})\d\d/part-.*\.csv").unwrap();
        let files = [
            obj("ordertime=2019111315/part-1.csv", 1),
            obj("ordertime=2019111316/part-2.csv", 1),
            obj("ordertime=2019111316/other.csv", 1),
        ];
        let (plans, skipped) = plan(&files, &opts(Some(&re), 100), &BTreeSet::new()).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].outputs[0].key, "201911130.csv");
        assert_eq!(skipped.unmatched, 1);
    }

    #[test]
    fn ids_are_stable_and_workers_partition_the_groups() {
        let a = [
            Source {
                key: "x".into(),
                size: 1,
            },
            Source {
                key: "y".into(),
                size: 2,
            },
        ];
        let b = [
            Source {
                key: "y".into(),
                size: 2,
            },
            Source {
                key: "x".into(),
                size: 1,
            },
        ];
        assert_eq!(group_id(&a), group_id(&b));
        let files: Vec<ObjectMeta> = (0..40)
            .flat_map(|p| {
                [
                    obj(&format!("p={p}/a.csv"), 1),
                    obj(&format!("p={p}/b.csv"), 1),
                ]
            })
            .collect();
        let mut seen = BTreeSet::new();
        for w in 0..3 {
            let o = PlanOptions {
                worker_index: w,
                worker_count: 3,
                ..opts(None, 100)
            };
            for g in plan(&files, &o, &BTreeSet::new()).unwrap().0 {
                assert!(seen.insert(g.id), "a group went to two workers");
            }
        }
        assert_eq!(seen.len(), 40);

        // A file that lands between two workers' listings changes the
        // group's id, never its owner: no directory is merged twice.
        let mut later = files.clone();
        later.extend((0..40).map(|p| obj(&format!("p={p}/late.csv"), 1)));
        for w in 0..3 {
            let o = PlanOptions {
                worker_index: w,
                worker_count: 3,
                ..opts(None, 100)
            };
            let before: Vec<String> = plan(&files, &o, &BTreeSet::new())
                .unwrap()
                .0
                .into_iter()
                .map(|g| g.shard)
                .collect();
            let after: Vec<String> = plan(&later, &o, &BTreeSet::new())
                .unwrap()
                .0
                .into_iter()
                .map(|g| g.shard)
                .collect();
            assert_eq!(before, after, "worker {w}");
        }
    }

    #[test]
    fn manifests_roundtrip() {
        let urls: BTreeSet<String> = ["s3://b/a.csv", "s3://b/c.csv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(read_manifest(&write_manifest(&urls)).unwrap(), urls);
        assert!(read_manifest(b"not gzip").is_err());
    }
}
