//! `lake-compact`: merge a lake partition's small files into large ones,
//! crash-safe and idempotent, on local disk or S3.
//!
//! Protocol, per group of files (ids and output names are deterministic):
//! 1. journal `<dest>/_compaction/journal/<id>.json` = `writing` (sources, outputs);
//! 2. each output is merged into a temp object, verified (rows read back =
//!    rows of the sources; bytes in the store = bytes written), then published
//!    by rename / server-side copy;
//! 3. journal = `published`;
//! 4. after every group is published: the manifest (if asked; it accumulates);
//! 5. sources deleted (with `--delete-on-success`), journal removed.
//!
//! A re-run first reads the journals: their sources and outputs are taken
//! out of fresh planning and each journaled group is rolled forward from
//! its state, so a crash at any point loses no row and duplicates none.
//!
//! Workers (`--worker-index/--worker-count`, the Spark compaction job's
//! executors) split the groups by their shard key (`plan::worker_of`):
//! each worker plans, journals and rolls forward only its own groups, and
//! every worker's journals keep their files out of the others' plans.
//!
//! Owns: the protocol and running groups concurrently. Must not: parse
//! formats (`merge`) or decide grouping (`plan`).

pub mod merge;
pub mod plan;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::store::{Location, Store};
use plan::{Format, GroupPlan, PlanOptions};

const JOURNAL_DIR: &str = "_compaction/journal";
const TEMP_DIR: &str = "_compaction/tmp";

/// Everything `lake-compact` is told.
pub struct Options {
    pub src: String,
    pub dest: String,
    pub group_by: Option<Regex>,
    pub target_size: u64,
    pub delete_on_success: bool,
    pub output_manifest: Option<String>,
    pub previous_manifest: Option<String>,
    pub worker_index: u32,
    pub worker_count: u32,
    /// Only this directory under `src` (`dt=…/hr=…`): its files are
    /// planned and its groups' journals rolled forward, while the journals
    /// stay where a whole-`src` run keeps them (`<dest>/_compaction/`), so
    /// the two kinds of run see each other's unfinished groups.
    pub partition: Option<String>,
    pub dry_run: bool,
    pub concurrency: usize,
    /// Whether CSV sources start with a header line.
    pub csv_header: merge::CsvHeader,
    /// An S3 prefix with no objects is a no-op instead of an error (a local
    /// directory that exists but is empty always is).
    pub allow_empty_src: bool,
    /// The ingest fleet's lease table: files `lake-ingest run` wrote for a
    /// window that is not checkpointed yet are left alone (a replay would
    /// write them again, and a compacted copy would then be a duplicate).
    pub lease_table: Option<String>,
    /// The stream whose leases cover `src` (the table holds every dataset's
    /// stream); may be left out when the table holds one stream's leases.
    pub lease_stream: Option<String>,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Writing,
    Published,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    version: u32,
    state: State,
    group: GroupPlan,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub groups: usize,
    pub recovered: usize,
    pub files_compacted: usize,
    pub rows: u64,
    /// Bytes of the sources compacted, and of the outputs written (an
    /// output a crashed run had published already counts its stored size).
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub outputs: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub plan: Vec<GroupPlan>,
    pub skipped: plan::Skipped,
    /// The source held no objects at all (nothing to do, said so).
    pub empty_source: bool,
}

struct Ctx {
    src: Store,
    dest: Store,
    src_loc: Location,
    runtime: tokio::runtime::Handle,
    csv_header: merge::CsvHeader,
}

fn journal_key(id: &str) -> String {
    format!("{JOURNAL_DIR}/{id}.json")
}

/// Run a compaction (or plan it, with `dry_run`).
pub async fn run(opts: &Options) -> Result<Report> {
    if opts.worker_count == 0 || opts.worker_index >= opts.worker_count {
        bail!(
            "--worker-index must be below --worker-count (got {} of {})",
            opts.worker_index,
            opts.worker_count
        );
    }
    if opts.target_size == 0 {
        bail!("--target-size must be at least 1 MiB");
    }
    let output_manifest = opts
        .output_manifest
        .as_deref()
        .map(|name| worker_manifest(name, opts.worker_index, opts.worker_count));
    if let Some(name) = &output_manifest {
        crate::store::check_key(name).with_context(|| {
            format!("--output-manifest {name}: the manifest is written inside --dest (e.g. _compaction/manifest.gz)")
        })?;
    }
    let partition = match &opts.partition {
        Some(p) => {
            let p = p.trim_end_matches('/');
            crate::store::check_key(p).with_context(|| format!("--partition {p}"))?;
            Some(p.to_string())
        }
        None => None,
    };
    let src_loc = Location::parse(&opts.src).context("--src")?;
    let dest_loc = Location::parse(&opts.dest).context("--dest")?;
    // `./lake`, `lake/` and a link to it are one place.
    let in_place = src_loc.is_same(&dest_loc);
    if !in_place && src_loc.overlaps(&dest_loc) {
        bail!(
            "--dest {} and --src {} overlap (one inside the other): outputs would be read back as sources; use the same place (with --delete-on-success) or one outside the other",
            opts.dest,
            opts.src
        );
    }
    if in_place && !opts.delete_on_success && !opts.dry_run {
        bail!(
            "--src and --dest are the same place: without --delete-on-success every row would be there twice (sources and outputs); add --delete-on-success or write to another --dest"
        );
    }
    let needs_s3 =
        matches!(src_loc, Location::S3 { .. }) || matches!(dest_loc, Location::S3 { .. });
    let client = if needs_s3 {
        Some(crate::store::s3_client(opts.endpoint_url.as_deref(), opts.region.as_deref()).await)
    } else {
        None
    };
    let ctx = Arc::new(Ctx {
        src: Store::open(&src_loc, client.as_ref()).await?,
        dest: Store::open(&dest_loc, client.as_ref()).await?,
        src_loc: src_loc.clone(),
        runtime: tokio::runtime::Handle::current(),
        csv_header: opts.csv_header,
    });

    // 1. Journals of earlier, interrupted runs.
    let mut journals = Vec::new();
    for meta in ctx.dest.list(JOURNAL_DIR).await? {
        if !meta.key.ends_with(".json") {
            continue;
        }
        // Gone since the listing: another worker finished that group (its
        // sources went before its journal).
        let Some(bytes) = ctx.dest.get_bytes(&meta.key).await? else {
            continue;
        };
        let journal: Journal = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading journal {}", meta.key))?;
        journals.push(journal);
    }
    let claimed_sources: BTreeSet<String> = journals
        .iter()
        .flat_map(|j| j.group.sources.iter().map(|s| s.key.clone()))
        .collect();
    let claimed_outputs: BTreeSet<String> = journals
        .iter()
        .flat_map(|j| j.group.outputs.iter().map(|o| o.key.clone()))
        .collect();
    // Every worker's journals claim their files; each worker rolls forward
    // only its own (two workers finishing one group would race).
    // With --partition, only that partition's groups are this run's.
    let inside = |j: &Journal| match &partition {
        Some(p) => j
            .group
            .outputs
            .iter()
            .all(|o| o.key.starts_with(&format!("{p}/"))),
        None => true,
    };
    let (journals, others): (Vec<Journal>, Vec<Journal>) = journals
        .into_iter()
        .partition(|j| j.group.worker(opts.worker_count) == opts.worker_index && inside(j));

    // 2. Fresh plan over what is left.
    let previous: BTreeSet<String> = match &opts.previous_manifest {
        Some(url) => read_manifest_url(url, client.as_ref()).await?,
        None => BTreeSet::new(),
    };
    let listed = ctx.src.list(partition.as_deref().unwrap_or("")).await?;
    if listed.is_empty() {
        if let (Some(p), false) = (&partition, opts.allow_empty_src) {
            bail!(
                "--partition {p}: no objects under this prefix of --src {} (misspelt? a partition is a directory of the lake, like dt=2019-11-13/hr=15)",
                opts.src
            );
        }
        match &src_loc {
            Location::Local(path) if !path.is_dir() => {
                bail!("--src {}: no such directory", opts.src)
            }
            Location::S3 { .. } if !opts.allow_empty_src => bail!(
                "--src {}: no objects under this prefix (misspelt? S3 cannot tell a missing prefix from an empty one; pass --allow-empty-src where an empty source is expected)",
                opts.src
            ),
            _ => {}
        }
    }
    let uncommitted = match &opts.lease_table {
        Some(table) => uncommitted_ingest_files(table, &listed, opts).await?,
        None => BTreeSet::new(),
    };
    let candidates: Vec<_> = listed
        .iter()
        .filter(|o| !uncommitted.contains(o.key.as_str()))
        .cloned()
        .collect::<Vec<_>>()
        .into_iter()
        .filter(|o| !crate::layout::is_hidden(&o.key))
        .filter(|o| !claimed_sources.contains(&o.key))
        .filter(|o| !(in_place && claimed_outputs.contains(&o.key)))
        .filter(|o| !previous.contains(&src_loc.url_of(&o.key)))
        .collect();
    // Output names avoid what the destination holds and what unfinished
    // groups will publish (their journals' outputs): a new group in the
    // same directory must not take a name a rolled-forward one writes.
    let existing: BTreeSet<String> = ctx
        .dest
        .list(partition.as_deref().unwrap_or(""))
        .await?
        .into_iter()
        .map(|o| o.key)
        .chain(claimed_outputs.iter().cloned())
        .collect();
    let src_url = src_loc.url_of("");
    let (fresh, skipped) = plan::plan(
        &candidates,
        &PlanOptions {
            group_by: opts.group_by.as_ref(),
            src_url: src_url.trim_end_matches('/'),
            target_size: opts.target_size,
            worker_index: opts.worker_index,
            worker_count: opts.worker_count,
            to_elsewhere: !in_place,
        },
        &existing,
    )?;
    let mut report = Report {
        recovered: journals.len(),
        skipped: plan::Skipped {
            uncommitted: uncommitted.len(),
            other_workers: skipped.other_workers + others.len(),
            ..skipped
        },
        empty_source: listed.is_empty(),
        ..Report::default()
    };
    if opts.dry_run {
        report.plan = journals.into_iter().map(|j| j.group).chain(fresh).collect();
        report.groups = report.plan.len();
        return Ok(report);
    }
    for group in &fresh {
        let journal = Journal {
            version: 1,
            state: State::Writing,
            group: group.clone(),
        };
        ctx.dest
            .put_bytes(
                &journal_key(&group.id),
                serde_json::to_vec_pretty(&journal)?,
            )
            .await?;
    }
    let all: Vec<Journal> = journals
        .into_iter()
        .chain(fresh.into_iter().map(|group| Journal {
            version: 1,
            state: State::Writing,
            group,
        }))
        .collect();
    report.groups = all.len();

    // 3. Groups, concurrently (bounded); each publishes its outputs.
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for journal in all {
        let (ctx, limit) = (ctx.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore open");
            let id = journal.group.id.clone();
            let result = tokio::task::spawn_blocking(move || publish_group(&ctx, journal)).await;
            (id, result.map_err(anyhow::Error::from).and_then(|r| r))
        });
    }
    let mut published = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, result) = joined?;
        match result {
            Ok((group, rows, bytes)) => {
                report.rows += rows;
                report.bytes_out += bytes;
                published.push(group);
            }
            Err(e) => report.failed.push((id, format!("{e:#}"))),
        }
    }
    published.sort_by(|a, b| a.id.cmp(&b.id));

    // 4. Manifest of everything compacted, durable before any source goes.
    // It accumulates: groups finished by an interrupted run stay listed, and
    // `--previous-manifest` with the same name skips everything ever compacted.
    if let Some(name) = &output_manifest {
        let mut urls = match ctx.dest.get_bytes(name).await? {
            Some(bytes) => {
                plan::read_manifest(&bytes).with_context(|| format!("existing manifest {name}"))?
            }
            None => BTreeSet::new(),
        };
        urls.extend(
            published
                .iter()
                .flat_map(|g| g.sources.iter().map(|s| src_loc.url_of(&s.key))),
        );
        ctx.dest
            .put_bytes(name, plan::write_manifest(&urls))
            .await?;
    }

    // 5. Sources go only now; then the journal.
    for group in &published {
        if opts.delete_on_success {
            for s in &group.sources {
                ctx.src.delete(&s.key).await?;
            }
        }
        ctx.dest.delete(&journal_key(&group.id)).await?;
        report.files_compacted += group.sources.len();
        report.bytes_in += group.sources.iter().map(|s| s.size).sum::<u64>();
        report
            .outputs
            .extend(group.outputs.iter().map(|o| o.key.clone()));
    }
    report.outputs.sort();
    report.plan = published;
    Ok(report)
}

/// The manifest a worker writes: with several workers each keeps its own
/// (`manifest.gz` -> `manifest-3.gz`), since one shared object rewritten
/// by all of them at once would lose lines.
pub fn worker_manifest(name: &str, index: u32, count: u32) -> String {
    if count <= 1 {
        return name.to_string();
    }
    let (dir, file) = name.rsplit_once('/').map_or(("", name), |(d, f)| (d, f));
    let (stem, ext) = file.split_once('.').map_or((file, ""), |(s, e)| (s, e));
    let file = if ext.is_empty() {
        format!("{stem}-{index}")
    } else {
        format!("{stem}-{index}.{ext}")
    };
    if dir.is_empty() {
        file
    } else {
        format!("{dir}/{file}")
    }
}

/// Keys of `listed` that `lake-ingest run` wrote for windows not yet
/// checkpointed in `table`. Its files are named `<shard>-<first sequence
/// number>[-<sub-record>].<ext>`; a file is committed once its shard's
/// checkpoint reaches that sequence number (`Lease::covers`).
async fn uncommitted_ingest_files(
    table: &str,
    listed: &[crate::store::ObjectMeta],
    opts: &Options,
) -> Result<BTreeSet<String>> {
    let config =
        crate::store::aws_config(opts.endpoint_url.as_deref(), opts.region.as_deref()).await;
    let mut leases = lake_contract::lease::scan(&aws_sdk_dynamodb::Client::new(&config), table)
        .await
        .with_context(|| format!("--lease-table {table}"))?;
    match &opts.lease_stream {
        Some(stream) => leases.retain(|l| l.stream.as_deref() == Some(stream.as_str())),
        None => {
            let streams: BTreeSet<&str> =
                leases.iter().filter_map(|l| l.stream.as_deref()).collect();
            if streams.len() > 1 {
                bail!(
                    "--lease-table {table} holds the leases of several streams ({}): name the one that writes --src with --lease-stream",
                    streams.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(listed
        .iter()
        .filter(|o| {
            let name = o.key.rsplit('/').next().unwrap_or(&o.key);
            leases.iter().any(|l| {
                name.strip_prefix(&l.shard)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .map(|rest| rest.split(['-', '.']).next().unwrap_or(rest))
                    .is_some_and(|seq| !l.covers(seq))
            })
        })
        .map(|o| o.key.clone())
        .collect())
}

async fn read_manifest_url(
    url: &str,
    client: Option<&aws_sdk_s3::Client>,
) -> Result<BTreeSet<String>> {
    let loc = Location::parse(url).context("--previous-manifest")?;
    let (parent, name) = match &loc {
        Location::Local(p) => (
            Location::Local(p.parent().unwrap_or(Path::new("/")).to_path_buf()),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        Location::S3 { bucket, prefix } => {
            let (dir, name) = prefix.rsplit_once('/').unwrap_or(("", prefix));
            (
                Location::S3 {
                    bucket: bucket.clone(),
                    prefix: dir.to_string(),
                },
                name.to_string(),
            )
        }
    };
    let store = Store::open(&parent, client).await?;
    let bytes = store
        .get_bytes(&name)
        .await?
        .with_context(|| format!("--previous-manifest {url} does not exist"))?;
    plan::read_manifest(&bytes).with_context(|| format!("--previous-manifest {url}"))
}

/// Steps 2-3 for one group (blocking: runs on a blocking thread).
fn publish_group(ctx: &Ctx, mut journal: Journal) -> Result<(GroupPlan, u64, u64)> {
    let group = journal.group.clone();
    let rt = &ctx.runtime;
    if journal.state == State::Published {
        let mut bytes = 0;
        for o in &group.outputs {
            bytes += rt.block_on(ctx.dest.size(&o.key))?.unwrap_or(0);
        }
        return Ok((group, 0, bytes));
    }
    let result = write_outputs(ctx, &group);
    match result {
        Ok((rows, bytes)) => {
            journal.state = State::Published;
            rt.block_on(ctx.dest.put_bytes(
                &journal_key(&group.id),
                serde_json::to_vec_pretty(&journal)?,
            ))?;
            Ok((group, rows, bytes))
        }
        Err(e) => {
            // Nothing was published; leave the sources as they are.
            for (n, _) in group.outputs.iter().enumerate() {
                let _ = rt.block_on(ctx.dest.delete(&temp_key(&group, n)));
                let _ = rt.block_on(ctx.dest.delete(&partial_key(&group, n)));
            }
            let _ = rt.block_on(ctx.dest.delete(&journal_key(&group.id)));
            Err(e)
        }
    }
}

fn temp_key(group: &GroupPlan, n: usize) -> String {
    let ext = if group.gzip {
        format!("{}.gz", group.format.extension())
    } else {
        group.format.extension().to_string()
    };
    format!("{TEMP_DIR}/{}-{n}.{ext}", group.id)
}

/// The local merge file of output `n`, as a key of a local destination.
fn partial_key(group: &GroupPlan, n: usize) -> String {
    format!("{TEMP_DIR}/{}", partial_name(group, n))
}

fn partial_name(group: &GroupPlan, n: usize) -> String {
    format!("{}-{n}.partial", group.id)
}

/// Rows and bytes written.
fn write_outputs(ctx: &Ctx, group: &GroupPlan) -> Result<(u64, u64)> {
    let rt = &ctx.runtime;
    let spool = tempfile::Builder::new().prefix("lake-compact-").tempdir()?;
    let scratch = ctx.dest.scratch_dir(TEMP_DIR, spool.path())?;
    let mut total = 0u64;
    let mut bytes = 0u64;
    for (n, output) in group.outputs.iter().enumerate() {
        // Sources as local files (downloads when they live on S3).
        let mut paths = Vec::with_capacity(output.sources.len());
        let mut rows_in = 0u64;
        for &i in &output.sources {
            let key = &group.sources[i].key;
            let path = rt
                .block_on(ctx.src.fetch(key, spool.path()))
                .with_context(|| format!("fetching {key}"))?;
            if group.format == Format::Parquet {
                // From the footer: cheap. Text sources are counted while merged.
                rows_in +=
                    merge::count_parquet_rows(&path).with_context(|| ctx.src_loc.url_of(key))?;
            }
            paths.push((path, ctx.src_loc.url_of(key)));
        }
        let refs: Vec<(&Path, &str)> = paths
            .iter()
            .map(|(p, n)| (p.as_path(), n.as_str()))
            .collect();
        let local = scratch.join(partial_name(group, n));
        let written = match group.format {
            Format::Parquet => merge::merge_parquet(&refs, &local)?,
            text => merge::merge_text(text, group.gzip, ctx.csv_header, &refs, &local)?,
        };
        if group.format != Format::Parquet {
            rows_in = written.rows;
        }
        // Verify what was written by reading it back.
        let rows_out = match group.format {
            Format::Parquet => merge::count_parquet_rows(&local)?,
            text => merge::count_text_rows(&local, text, group.gzip, ctx.csv_header)?,
        };
        if rows_out != rows_in || written.rows != rows_in {
            bail!(
                "output {} holds {rows_out} rows, its sources {rows_in}; nothing published",
                output.key
            );
        }
        let temp = temp_key(group, n);
        rt.block_on(ctx.dest.put_file(&temp, &local))?;
        let stored = rt.block_on(ctx.dest.size(&temp))?;
        if stored != Some(written.bytes) {
            bail!(
                "temp object {temp} has {stored:?} bytes, {} were written; nothing published",
                written.bytes
            );
        }
        rt.block_on(ctx.dest.publish(&temp, &output.key))?;
        // Downloaded sources are no longer needed.
        for (path, _) in &paths {
            if path.starts_with(spool.path()) {
                let _ = std::fs::remove_file(path);
            }
        }
        total += rows_out;
        bytes += written.bytes;
    }
    Ok((total, bytes))
}

#[cfg(test)]
mod tests {
    use super::worker_manifest;

    #[test]
    fn several_workers_each_keep_a_manifest_of_their_own() {
        assert_eq!(
            worker_manifest("_compaction/manifest.gz", 0, 1),
            "_compaction/manifest.gz"
        );
        assert_eq!(
            worker_manifest("_compaction/manifest.gz", 3, 4),
            "_compaction/manifest-3.gz"
        );
        assert_eq!(worker_manifest("m", 1, 2), "m-1");
        assert_eq!(
            worker_manifest("a.b/list.txt.gz", 1, 2),
            "a.b/list-1.txt.gz"
        );
    }
}
