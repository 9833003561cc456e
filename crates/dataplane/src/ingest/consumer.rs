//! `lake-ingest run`: the Kinesis consumer. Workers share a stream's shards
//! through leases (an even share each; expired leases taken over; one lease
//! stolen per round from the busiest worker when one joins); each owned
//! shard is read on its own thread, de-aggregated, flattened and written in
//! windows.
//!
//! Exactly-once files on an at-least-once stream, step by step (the tests
//! that force each step are listed in docs/verification.md):
//! 1. Every take of a lease gets an epoch (the counter it set). A window's
//!    files are named `<partition>/<shard>-<first record id>-<epoch>.<ext>`:
//!    no two owners (nor two windows) ever write one key.
//! 2. A heartbeat renews every held lease on its own, whatever the shard
//!    threads and the round are doing (a slow shutdown, a long upload, a
//!    Kinesis outage); a renewal that hangs is abandoned after one beat, so
//!    one slow call cannot hold up the others. Each success feeds the
//!    shard's fence (`fence`); the owner's failover travels in the lease.
//! 3. Nothing of a window reaches the lake before its intent is in the lease:
//!    files that roll inside the window stay in local scratch
//!    (`PartitionedWriter::holding`); the intent (the window's last sequence
//!    number, every file and dead-letter key, the fingerprint of the options
//!    and program) is a conditional write by the owner *and* its process
//!    incarnation, over the checkpoint the window was read from. Every lease
//!    write compares and sets the state it expects (`lease`): a late retry
//!    of an earlier write changes nothing.
//! 4. Every request that could change the lake is checked by the fence
//!    first; files are multipart uploads (`Store::put_file_fenced`).
//! 5. A new owner first waits out a stolen lease (the larger of its own
//!    failover and the owner's: the previous holder's fence closes), and
//!    never gives such a lease back before (stopped meanwhile, it lets it
//!    expire). Then it cleans up the previous owner's unfinished window:
//!    aborts every upload to its keys (a late part or completion then
//!    fails), deletes the keys (older epoch: nobody writes them again),
//!    clears the intent (conditional). Then it reads from the checkpoint
//!    and cuts windows of its own, under its own options.
//! 6. The checkpoint moves only after every file of the window (and its dead
//!    letters) is durable; a shard ends (`SHARD_END`, lease released) only
//!    after its last window is.
//! 7. A window closes early once it holds `MAX_WINDOW_FILES` files or its
//!    keys approach DynamoDB's item limit; the rest (one Kinesis record can
//!    touch thousands of partitions) names its files in a list object the
//!    intent points to, so an intent always fits.
//! 8. AWS errors that retrying can fix are retried with back-off (`retry`),
//!    uploads included; a worker gives up only on what it cannot fix,
//!    releasing what it holds.
//!
//! Owns: reading shards, windows, checkpoints, lease balancing, the
//! heartbeat, graceful shutdown, progress lines. Must not: flatten, parse
//! times or write files itself (`Pipeline`, `PartitionedWriter`), nor
//! decide what a fence allows (`fence`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_kinesis::types::ShardIteratorType;

use super::fence::{is_fenced, LeaseFence, Stamp};
use super::kpl;
use super::lease::{
    fair_share, Intent, Lease, LeaseTable, Owner, PROTOCOL, SHARD_END, TRIM_HORIZON,
};
pub use super::retry::is_transient;
use super::retry::{with_retries, Backoff};
use super::writer::{PartitionedWriter, RollPolicy};
use super::{LakeFormat, PartitionBy, Pipeline};
use crate::flatten::{dead_letter, FlattenConfig};
use crate::store::{Location, Store};

pub struct RunOptions {
    pub stream: String,
    pub sink: String,
    pub format: LakeFormat,
    pub partition_by: PartitionBy,
    pub partition_format: String,
    pub roll: RollPolicy,
    pub flatten: FlattenConfig,
    /// The lease table (shared by every dataset's stream: items keyed
    /// `<stream>/<shard>`).
    pub lease_table: String,
    pub create_lease_table: bool,
    /// This stream's leases may still be keyed by the bare shard id
    /// (written before the table was shared): import them.
    pub import_legacy_leases: bool,
    pub worker_id: String,
    pub failover: Duration,
    /// Close a window (publish its files, checkpoint) at least this often.
    pub window: Duration,
    pub exit_when_idle: Option<Duration>,
    pub progress_every: Duration,
    /// Where a shard's window is written before it is published.
    pub scratch_dir: std::path::PathBuf,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

impl RunOptions {
    /// Scratch one shard's window may hold (`lake_contract::ingest`).
    pub fn scratch_per_shard(&self) -> u64 {
        lake_contract::ingest::scratch_bytes_per_shard(
            self.roll.max_bytes,
            self.roll.max_open as u64,
            self.window.as_secs(),
        )
    }

    /// What cut and encoded a window's files: every option that decides
    /// which rows go to which file and how they are encoded, and the
    /// program itself. Kept in the intent and the window line, so a window
    /// can be traced to what wrote it.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "{}|{:?}|{:?}|{}|{}|{}|{}|{:?}",
            program_identity(),
            self.format,
            self.partition_by,
            self.partition_format,
            self.roll.max_bytes,
            self.roll.max_records,
            self.roll.max_open,
            String::from_utf8_lossy(&self.flatten.separator),
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// The running program: its version and the hash of its own bytes (two
/// builds of one version cut files differently if their encoders differ).
pub fn program_identity() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let exe = std::env::current_exe()
            .and_then(std::fs::read)
            .map(|bytes| hex::encode(&Sha256::digest(&bytes)[..6]))
            .unwrap_or_else(|_| "unknown".into());
        format!("{}+{exe}", env!("CARGO_PKG_VERSION"))
    })
}

/// A window closes once it holds this many files (with its dead letters)...
pub const MAX_WINDOW_FILES: usize = 1000;
/// ...or once its keys add up to this many bytes: its intent must fit in
/// one DynamoDB item (400 KB with the rest of the lease).
pub const MAX_INTENT_KEY_BYTES: usize = 256 << 10;

/// Scratch folders are `<this><pid>-…`: a folder of a process that is gone
/// (SIGKILL, OOM) is removed at the next start (`remove_stale_scratch`).
const SCRATCH_PREFIX: &str = "lake-ingest-";

/// Remove the scratch folders of processes that are gone: a killed
/// worker's half-written windows would otherwise fill the disk over
/// restarts (the fleet's scratch is kept across them).
fn remove_stale_scratch(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let gone =
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if gone && std::fs::remove_dir_all(e.path()).is_ok() {
            eprintln!(
                "lake-ingest: removed {}, the scratch of a process that is gone",
                e.path().display()
            );
        }
    }
}

/// A window's dead letters spill to scratch past this size.
const DEAD_LETTERS_IN_MEMORY: usize = 1 << 20;

/// Counters shared by the shard threads.
#[derive(Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    pub dead_letters: AtomicU64,
    lag_ms: Mutex<HashMap<String, i64>>,
}

struct Shared {
    opts: RunOptions,
    kinesis: aws_sdk_kinesis::Client,
    leases: LeaseTable,
    store: Store,
    runtime: tokio::runtime::Handle,
    stats: Stats,
    started: Instant,
    me: Owner,
    fingerprint: String,
    /// The fence of every lease this worker holds; the heartbeat renews them.
    held: Mutex<HashMap<String, Arc<LeaseFence>>>,
}

struct ShardThread {
    stop: Arc<AtomicBool>,
    /// Millis since start of the last sign of more to read (0: none yet).
    last_record: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Result<ShardEnd>>,
}

#[derive(Debug, PartialEq, Eq)]
enum ShardEnd {
    /// The shard is closed, fully processed, checkpointed `SHARD_END`.
    Finished,
    /// Asked to stop; the last window is published and checkpointed.
    Stopped,
    /// Asked to stop while waiting out a stolen lease's previous holder:
    /// nothing written, and the lease is left to expire, not released.
    Abandoned,
    /// Another worker (or another process with this id) owns it now.
    Lost,
}

/// What a worker did, for tests and the final line.
#[derive(Debug, Default)]
pub struct RunReport {
    pub records: u64,
    pub files: u64,
    pub dead_letters: u64,
    pub shards_held: Vec<String>,
}

/// The worker's view between rounds.
struct Worker {
    threads: HashMap<String, ShardThread>,
    /// Every lease: (counter, when that counter was first seen, whether it
    /// has moved since this worker started watching). A lease whose counter
    /// never moved may belong to a dead worker: only the failover tells.
    seen: HashMap<String, (u64, Stamp, bool)>,
    held: HashSet<String>,
    last_progress: Instant,
}

/// Consume several streams (one per dataset) into their lake folders at
/// once, each with its own leases in the shared table: every stream's
/// shards are spread evenly over the live workers, so a fleet's load is
/// within one shard per dataset of even. One stream's fatal error stops
/// them all (each publishes and checkpoints what it can): systemd restarts
/// the process whole.
pub async fn run_many(all: Vec<RunOptions>, shutdown: Arc<AtomicBool>) -> Result<RunReport> {
    // One JSON line per process start: the ingest stack counts them
    // (`WorkerStarts`) to tell a service restarting in a loop.
    eprintln!(
        "{}",
        serde_json::json!({
            "event": "start",
            "worker": all.first().map(|o| o.worker_id.as_str()),
            "streams": all.iter().map(|o| o.stream.as_str()).collect::<Vec<_>>(),
            "program": program_identity(),
        })
    );
    let mut tasks = tokio::task::JoinSet::new();
    for opts in all {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let stream = opts.stream.clone();
            let result = run(opts, stop.clone()).await;
            if result.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            // Shards named with their stream: every stream has a shardId-0.
            result
                .map(|mut r| {
                    for shard in &mut r.shards_held {
                        *shard = format!("{stream}/{shard}");
                    }
                    r
                })
                .with_context(|| format!("stream {stream}"))
        });
    }
    let mut report = RunReport::default();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done.context("a stream's consumer panicked")? {
            Ok(r) => {
                report.records += r.records;
                report.files += r.files;
                report.dead_letters += r.dead_letters;
                report.shards_held.extend(r.shards_held);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Consume one stream into its lake folder.
pub async fn run(opts: RunOptions, shutdown: Arc<AtomicBool>) -> Result<RunReport> {
    let config =
        crate::store::aws_config(opts.endpoint_url.as_deref(), opts.region.as_deref()).await;
    let sink = Location::parse(&opts.sink).context("--sink")?;
    let s3 = match sink {
        Location::S3 { .. } => Some(
            crate::store::s3_client(opts.endpoint_url.as_deref(), opts.region.as_deref()).await,
        ),
        Location::Local(_) => None,
    };
    let leases = LeaseTable::new(
        aws_sdk_dynamodb::Client::new(&config),
        &opts.lease_table,
        &opts.stream,
        opts.import_legacy_leases,
    );
    if opts.create_lease_table {
        leases.create_if_missing().await?;
    }
    let shared = Arc::new(Shared {
        kinesis: aws_sdk_kinesis::Client::new(&config),
        leases,
        store: Store::open(&sink, s3.as_ref()).await?,
        runtime: tokio::runtime::Handle::current(),
        stats: Stats::default(),
        started: Instant::now(),
        me: Owner::new(&opts.worker_id),
        fingerprint: opts.fingerprint(),
        held: Mutex::new(HashMap::new()),
        opts,
    });
    remove_stale_scratch(&shared.opts.scratch_dir);
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), heartbeat_stop.clone()));
    let interval = (shared.opts.failover / 3).max(Duration::from_millis(300));
    let mut worker = Worker {
        threads: HashMap::new(),
        seen: HashMap::new(),
        held: HashSet::new(),
        last_progress: Instant::now(),
    };
    let mut backoff = Backoff::new();
    let outcome = loop {
        match round(&shared, &mut worker, &shutdown).await {
            Ok(true) => break Ok(()),
            Ok(false) => {
                backoff.succeeded();
                tokio::time::sleep(interval).await;
            }
            Err(e) => match backoff.after(&e) {
                Some(pause) => {
                    eprintln!("lake-ingest: {e:#}; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                }
                None => {
                    // What retrying cannot fix: stop every shard (each
                    // publishes and checkpoints what it can), give back
                    // what we hold.
                    eprintln!("lake-ingest: giving up: {e:#}");
                    stop_all(&shared, &mut worker).await;
                    break Err(e);
                }
            },
        }
    };
    // Every shard stopped and released: the heartbeat has nothing to renew.
    heartbeat_stop.store(true, Ordering::SeqCst);
    let _ = heartbeat.await;
    outcome?;
    let mut shards_held: Vec<String> = worker.held.into_iter().collect();
    shards_held.sort();
    Ok(RunReport {
        records: shared.stats.records.load(Ordering::SeqCst),
        files: shared.stats.files.load(Ordering::SeqCst),
        dead_letters: shared.stats.dead_letters.load(Ordering::SeqCst),
        shards_held,
    })
}

/// Renew every held lease every quarter failover, whatever else the worker
/// is doing (rounds, shutdown, uploads), and tell each shard's fence: a
/// renewal that succeeded proves ownership from when it was sent; one
/// refused means another worker owns the shard. Renewals that fail for
/// other reasons are retried next beat (the fence closes on its own when
/// they keep failing).
async fn heartbeat(shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let beat = (shared.opts.failover / 4).max(Duration::from_millis(100));
    while !stop.load(Ordering::SeqCst) {
        let fences: Vec<(String, Arc<LeaseFence>)> = shared
            .held
            .lock()
            .expect("held lock")
            .iter()
            .map(|(s, f)| (s.clone(), f.clone()))
            .collect();
        let mut renewals = tokio::task::JoinSet::new();
        for (shard, fence) in fences {
            if fence.is_lost() {
                continue;
            }
            let shared = shared.clone();
            renewals.spawn(async move {
                let sent = Stamp::now();
                // A renewal that hangs must not hold up the next beat: it
                // is abandoned after one (the fence closes on its own if
                // none comes through).
                let renewal = tokio::time::timeout(
                    beat,
                    shared
                        .leases
                        .renew(&shard, &shared.me, shared.opts.failover),
                );
                match renewal.await {
                    Ok(Ok(true)) => fence.renewed(sent),
                    Ok(Ok(false)) => {
                        eprintln!("lake-ingest: {shard}: the lease moved to another worker");
                        fence.lose();
                    }
                    Ok(Err(e)) => eprintln!("lake-ingest: {shard}: renewing: {e:#}"),
                    Err(_) => {
                        eprintln!("lake-ingest: {shard}: renewing: no answer within {beat:?}")
                    }
                }
            });
        }
        while renewals.join_next().await.is_some() {}
        tokio::time::sleep(beat).await;
    }
}

/// Stop every shard thread and release the leases of those that stopped.
async fn stop_all(shared: &Arc<Shared>, worker: &mut Worker) {
    for t in worker.threads.values() {
        t.stop.store(true, Ordering::SeqCst);
    }
    for (shard, t) in worker.threads.drain() {
        let joined = tokio::task::spawn_blocking(move || t.handle.join())
            .await
            .expect("join task");
        let end = joined.expect("shard thread panicked");
        // No more renewals for it: released, lost or failed.
        shared.held.lock().expect("held lock").remove(&shard);
        match end {
            Ok(ShardEnd::Stopped) => {
                if let Err(e) = shared.leases.release(&shard, &shared.me).await {
                    eprintln!("lake-ingest: {shard}: releasing: {e:#}");
                }
            }
            // Stopped before its predecessor's fence surely closed: given
            // back, a taker with no reason to wait could meet that
            // predecessor's late writes. It expires instead.
            Ok(ShardEnd::Abandoned) => {}
            Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
            Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
        }
    }
}

/// One round: leases listed and taken (the heartbeat renews them); true
/// when the worker is done.
async fn round(shared: &Arc<Shared>, w: &mut Worker, shutdown: &AtomicBool) -> Result<bool> {
    let me = shared.me.id.clone();
    // Leases for every shard of the stream (children remember their parents).
    let listed_shards = list_shards(&shared.kinesis, &shared.opts.stream).await?;
    for (shard, parents) in &listed_shards {
        shared.leases.ensure(shard, parents).await?;
    }
    let listed: HashSet<&str> = listed_shards.iter().map(|(s, _)| s.as_str()).collect();
    let all = shared.leases.scan().await?;

    // Finished threads, renewals, lost leases.
    let done: Vec<String> = w
        .threads
        .iter()
        .filter(|(_, t)| t.handle.is_finished())
        .map(|(s, _)| s.clone())
        .collect();
    let finished_this_round = !done.is_empty();
    for shard in done {
        let t = w.threads.remove(&shard).expect("listed");
        // Finished, lost or failed: nothing to renew any more. (A failed
        // shard's lease is left to expire; whoever takes it next, this
        // worker included, cleans up its unfinished window.)
        shared.held.lock().expect("held lock").remove(&shard);
        match t.handle.join().expect("shard thread panicked") {
            Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
            Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
        }
    }

    // Who is alive: owners whose leases moved within the failover time.
    let now = Stamp::now();
    for l in &all {
        let entry = w
            .seen
            .entry(l.shard.clone())
            .or_insert((l.counter, now, false));
        if entry.0 != l.counter {
            *entry = (l.counter, now, true);
        }
    }
    let seen = &w.seen;
    let expired = |l: &Lease| {
        l.owner.is_none()
            || seen
                .get(&l.shard)
                .is_some_and(|(_, at, _)| now.since(*at) >= failover_of(shared, l))
    };
    // Held by another worker that renewed it since we started watching.
    let alive = |l: &Lease| !expired(l) && seen.get(&l.shard).is_some_and(|(_, _, moved)| *moved);
    // A shard is over when checkpointed at its end, or when it is no longer
    // in the stream at all (expired past the retention): its children start.
    let finished: HashSet<&str> = all
        .iter()
        .filter(|l| l.checkpoint == SHARD_END || !listed.contains(l.shard.as_str()))
        .map(|l| l.shard.as_str())
        .collect();
    let known: HashSet<&str> = all.iter().map(|l| l.shard.as_str()).collect();
    // Children wait until their parents are finished.
    let eligible: Vec<&Lease> = all
        .iter()
        .filter(|l| !finished.contains(l.shard.as_str()))
        .filter(|l| {
            l.parents
                .iter()
                .all(|p| finished.contains(p.as_str()) || !known.contains(p.as_str()))
        })
        .collect();
    // Another live process with this worker id: its leases move under our
    // name. Both would pass every owner check a worker id alone can make;
    // the incarnation tells them apart, and the newcomer refuses to run.
    if let Some(twin) = all.iter().find(|l| {
        l.owner.as_deref() == Some(me.as_str())
            && l.incarnation.as_deref() != Some(shared.me.incarnation.as_str())
            && alive(l)
    }) {
        anyhow::bail!(
            "another live process runs as worker `{me}` (it renews {}'s lease); \
             give each process its own --worker-id",
            twin.shard
        );
    }
    let mut workers: HashSet<&str> = eligible
        .iter()
        .filter(|l| !expired(l))
        .filter_map(|l| l.owner.as_deref())
        .collect();
    workers.insert(&me);
    let target = fair_share(eligible.len(), workers.len());
    let mut mine = w.threads.len();
    if !shutdown.load(Ordering::SeqCst) {
        // Free or expired leases, those of this worker id's earlier life
        // first (taken once they stop moving: the failover tells a dead
        // process from a live twin).
        let mut free: Vec<&&Lease> = eligible
            .iter()
            .filter(|l| !w.threads.contains_key(&l.shard))
            .filter(|l| expired(l))
            .collect();
        free.sort_by_key(|l| (l.owner.as_deref() != Some(&me), l.shard.clone()));
        for l in free {
            if mine >= target && l.owner.as_deref() != Some(&me) {
                break;
            }
            if !room_for_another_shard(shared, mine) {
                break;
            }
            let since = seen.get(&l.shard).map(|(_, at, _)| *at);
            if take_and_spawn(shared, &mut w.threads, &mut w.held, l, since, now).await? {
                mine += 1;
            }
        }
        // Still below an even share: steal one lease from the busiest worker
        // (never a shard whose thread here is still winding down).
        if mine < target {
            let mut per_owner: HashMap<&str, Vec<&Lease>> = HashMap::new();
            // Never from a worker of the older protocol: it would not be
            // fenced (docs/verification.md, upgrading).
            for l in eligible
                .iter()
                .filter(|l| !expired(l))
                .filter(|l| l.protocol.unwrap_or(0) >= PROTOCOL)
            {
                if let Some(o) = l.owner.as_deref().filter(|o| *o != me) {
                    per_owner.entry(o).or_default().push(l);
                }
            }
            if let Some((_, victims)) = per_owner
                .into_iter()
                .filter(|(_, v)| v.len() > target)
                .max_by_key(|(o, v)| (v.len(), o.to_string()))
            {
                let l = victims
                    .iter()
                    .filter(|l| !w.threads.contains_key(&l.shard))
                    .max_by_key(|l| l.shard.clone());
                if let Some(l) = l {
                    if room_for_another_shard(shared, mine) {
                        let since = seen.get(&l.shard).map(|(_, at, _)| *at);
                        take_and_spawn(shared, &mut w.threads, &mut w.held, l, since, now).await?;
                    }
                }
            }
        }
    }

    if w.last_progress.elapsed() >= shared.opts.progress_every {
        progress(shared, &w.threads);
        // Shards nobody alive holds (free, or their holder stopped
        // renewing), as this worker sees them: the ingest stack's
        // `UnheldShards` metric (its alarm waits out a failover).
        let unheld = eligible.iter().filter(|l| expired(l)).count();
        // How far behind the stream's tip the furthest-behind shard read
        // here is: the ingest stack's `MillisBehindLatest` (a fleet that
        // reads nothing logs nothing, and its alarm treats that as breaching).
        let behind = shared
            .stats
            .lag_ms
            .lock()
            .expect("lag lock")
            .iter()
            .filter(|(shard, _)| w.threads.contains_key(*shard))
            .map(|(_, lag)| (*lag).max(0))
            .max()
            .unwrap_or(0);
        eprintln!(
            "{}",
            serde_json::json!({
                "event": "leases",
                "stream": shared.opts.stream,
                "worker": me,
                "shards": eligible.len(),
                "held_here": w.threads.len(),
                "unheld": unheld,
                "millis_behind": behind,
            })
        );
        w.last_progress = Instant::now();
    }
    // Idle: nothing left to read on any shard of the stream. Every shard
    // not ours is finished or held by a worker known to be alive; a lease
    // of a worker that may be dead is waited out (failover) and taken. A
    // shard that just finished may have children not eligible yet: look
    // again next round.
    let idle = shared.opts.exit_when_idle.is_some_and(|limit| {
        let now_ms = shared.started.elapsed().as_millis() as u64;
        // Children of unfinished parents are not readable yet: their
        // parents are (and are counted).
        let left_for_us = eligible.iter().any(|l| {
            !w.threads.contains_key(&l.shard)
                && (l.owner.is_none() || l.owner.as_deref() == Some(&me) || !alive(l))
        });
        !left_for_us
            && !finished_this_round
            && w.threads.values().all(|t| {
                let last = t.last_record.load(Ordering::SeqCst);
                now_ms.saturating_sub(last) >= limit.as_millis() as u64
            })
    });
    if shutdown.load(Ordering::SeqCst) || idle {
        stop_all(shared, w).await;
        progress(shared, &w.threads);
        return Ok(true);
    }
    Ok(false)
}

/// Take `l` (read at this round's scan) and start its thread; false when
/// another worker moved it first.
async fn take_and_spawn(
    shared: &Arc<Shared>,
    threads: &mut HashMap<String, ShardThread>,
    held: &mut HashSet<String>,
    l: &Lease,
    counter_since: Option<Stamp>,
    now: Stamp,
) -> Result<bool> {
    let sent = Stamp::now();
    let Some(epoch) = shared
        .leases
        .take(l, &shared.me, shared.opts.failover)
        .await?
    else {
        return Ok(false);
    };
    // A lease whose counter moved within the failover had a live holder (a
    // steal): its fence may stay open up to a failover after its last
    // renewal. Touch nothing of the shard until it has surely closed. An
    // expired or released lease needs no wait.
    let quiet = match (&l.owner, counter_since) {
        (Some(_), Some(since)) => failover_of(shared, l).saturating_sub(now.since(since)),
        _ => Duration::ZERO,
    };
    let fence = LeaseFence::new(&l.shard, shared.opts.failover, sent);
    shared
        .held
        .lock()
        .expect("held lock")
        .insert(l.shard.clone(), fence.clone());
    threads.insert(
        l.shard.clone(),
        spawn_shard(shared, l.clone(), epoch, fence, sent + quiet),
    );
    held.insert(l.shard.clone());
    Ok(true)
}

/// The failover to wait out for `l`: the larger of this worker's and the
/// one its owner recorded (owners on other settings during a rolling
/// deploy).
fn failover_of(shared: &Shared, l: &Lease) -> Duration {
    let recorded = Duration::from_millis(l.failover_ms.unwrap_or(0));
    shared.opts.failover.max(recorded)
}

/// Whether the scratch directory has room for one more shard's window
/// besides the `held` ones (each may fill its share); says why not, once
/// per round.
fn room_for_another_shard(shared: &Shared, held: usize) -> bool {
    let need = shared.opts.scratch_per_shard();
    let free = crate::store::free_bytes(&shared.opts.scratch_dir).unwrap_or(u64::MAX);
    // The held shards' windows may still grow into what is free now.
    if free >= need.saturating_mul(held as u64 + 1) {
        return true;
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "event": "scratch_full",
            "worker": shared.me.id,
            "scratch_dir": shared.opts.scratch_dir,
            "free_bytes": free,
            "per_shard_bytes": need,
            "held_here": held,
        })
    );
    false
}

fn progress(shared: &Shared, threads: &HashMap<String, ShardThread>) {
    let secs = shared.started.elapsed().as_secs_f64().max(0.001);
    let s = &shared.stats;
    let lags = s
        .lag_ms
        .lock()
        .expect("lag lock")
        .iter()
        .map(|(k, v)| format!("{k}={v}ms"))
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "lake-ingest: {} shards, {:.0} records/s, {:.1} MB/s, {} files, {} dead letters; lag {}",
        threads.len(),
        s.records.load(Ordering::SeqCst) as f64 / secs,
        s.bytes.load(Ordering::SeqCst) as f64 / secs / 1e6,
        s.files.load(Ordering::SeqCst),
        s.dead_letters.load(Ordering::SeqCst),
        lags
    );
}

/// Every shard of the stream, with its parents.
async fn list_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client.list_shards();
        req = match &token {
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("listing the shards of {stream}"))?;
        for s in resp.shards() {
            let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(String::from)
                .collect();
            out.push((s.shard_id().to_string(), parents));
        }
        token = resp.next_token().map(String::from);
        if token.is_none() {
            return Ok(out);
        }
    }
}

fn spawn_shard(
    shared: &Arc<Shared>,
    lease: Lease,
    epoch: u64,
    fence: Arc<LeaseFence>,
    quiet_until: Stamp,
) -> ShardThread {
    let stop = Arc::new(AtomicBool::new(false));
    let last_record = Arc::new(AtomicU64::new(shared.started.elapsed().as_millis() as u64));
    let (s, st, lr) = (shared.clone(), stop.clone(), last_record.clone());
    let handle = std::thread::Builder::new()
        .name(format!("shard-{}", lease.shard))
        .spawn(move || {
            let shard = ShardWork {
                shared: &s,
                shard: &lease.shard,
                epoch,
                fence,
                stop: &st,
                last_record: &lr,
            };
            consume(&shard, &lease, quiet_until)
        })
        .expect("spawn a shard thread");
    ShardThread {
        stop,
        last_record,
        handle,
    }
}

/// What a shard thread works with.
struct ShardWork<'a> {
    shared: &'a Shared,
    shard: &'a str,
    /// The epoch of this worker's take: it names every file written.
    epoch: u64,
    fence: Arc<LeaseFence>,
    stop: &'a AtomicBool,
    last_record: &'a AtomicU64,
}

/// One window of a shard: the files being written (held in scratch until
/// the window's intent is written), its dead letters, where it started.
struct Window<'a> {
    writer: PartitionedWriter<'a>,
    pipeline: Pipeline,
    /// Dead letters past `DEAD_LETTERS_IN_MEMORY` (a flood of garbage must
    /// not exhaust memory).
    dead_spill: Option<(std::path::PathBuf, std::fs::File)>,
    first_seq: Option<String>,
    last_seq: Option<String>,
    started: Instant,
}

impl Window<'_> {
    /// Whether the window must close now to keep its intent within one
    /// lease item: too many files, or keys too long together.
    fn is_full(&self) -> bool {
        let files = self.writer.pending_count() + 1;
        files >= MAX_WINDOW_FILES
            || (files >= 64
                && self
                    .writer
                    .pending_keys()
                    .iter()
                    .map(String::len)
                    .sum::<usize>()
                    >= MAX_INTENT_KEY_BYTES)
    }

    /// Move dead letters from memory to the spill file once they grow.
    fn spill_dead_letters(&mut self, scratch: &std::path::Path, shard: &str) -> Result<()> {
        if self.pipeline.dead_letters.len() < DEAD_LETTERS_IN_MEMORY {
            return Ok(());
        }
        if self.dead_spill.is_none() {
            let path = scratch.join(format!(
                "{}-{shard}-{}.dead.partial",
                std::process::id(),
                self.first_seq.as_deref().unwrap_or("0")
            ));
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            self.dead_spill = Some((path, file));
        }
        let (_, file) = self.dead_spill.as_mut().expect("set above");
        file.write_all(&self.pipeline.dead_letters)?;
        self.pipeline.dead_letters.clear();
        Ok(())
    }
}

fn new_window<'a>(work: &ShardWork<'a>, scratch: &std::path::Path) -> Window<'a> {
    let shared = work.shared;
    let opts = &shared.opts;
    let ext = opts.format.extension();
    // Windows are cut by size, records and open files only: no time-based
    // rolls inside a window (a window closes as a whole at its age).
    let roll = RollPolicy {
        max_age: Duration::MAX,
        ..opts.roll.clone()
    };
    let (shard, epoch) = (work.shard.to_string(), work.epoch);
    let writer = PartitionedWriter::new(
        &shared.store,
        &shared.runtime,
        scratch,
        roll,
        &opts.format,
        move |partition: &str, first: &str| format!("{partition}/{shard}-{first}-{epoch}.{ext}"),
    )
    .holding()
    .fenced(work.fence.for_store());
    Window {
        writer,
        pipeline: Pipeline::new(
            opts.flatten.clone(),
            opts.format.clone(),
            opts.partition_by.clone(),
            &opts.partition_format,
        ),
        dead_spill: None,
        first_seq: None,
        last_seq: None,
        started: Instant::now(),
    }
}

/// Close a window ending at `end`: write its intent (every file and
/// dead-letter key; refused when the lease is lost, and then nothing is
/// published), publish its files and dead letters through the fence, then
/// checkpoint `end`. False when the shard was lost or fenced on the way
/// (whoever owns it next cleans up what was published and reads the
/// window again).
fn close_window(
    work: &ShardWork<'_>,
    scratch: &std::path::Path,
    window: Window<'_>,
    end: &str,
    from: &str,
) -> Result<bool> {
    match publish_window(work, scratch, window, end, from) {
        Ok(kept) => Ok(kept),
        Err(e) if is_fenced(&e) => {
            eprintln!("lake-ingest: {e:#}");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn publish_window(
    work: &ShardWork<'_>,
    scratch: &std::path::Path,
    window: Window<'_>,
    end: &str,
    from: &str,
) -> Result<bool> {
    let (shared, shard, me, rt) = (
        work.shared,
        work.shard,
        &work.shared.me,
        &work.shared.runtime,
    );
    let first = window.first_seq.clone().unwrap_or_else(|| end.to_string());
    let dead_key = format!("_errors/{shard}-{first}-{}.ndjson", work.epoch);
    let has_dead = window.dead_spill.is_some() || !window.pipeline.dead_letters.is_empty();
    let mut files = window.writer.pending_keys();
    if has_dead {
        files.push(dead_key.clone());
    }
    // More files than a lease item holds (one Kinesis record alone can
    // touch thousands of partitions): the list goes to an object of its
    // own, written before the intent names it (a hidden key: no reader
    // sees it).
    let list_key = format!("_ingest/intents/{shard}-{first}-{}.json", work.epoch);
    let inline = files.len() <= MAX_WINDOW_FILES
        && files.iter().map(String::len).sum::<usize>() <= MAX_INTENT_KEY_BYTES;
    if !inline {
        work.fence.check()?;
        let body = serde_json::to_vec(&files)?;
        with_retries(&format!("{shard}: writing the intent's file list"), || {
            rt.block_on(shared.store.put_bytes(&list_key, body.clone()))
        })?;
    }
    let intent = Intent {
        seq: end,
        config: &shared.fingerprint,
        files: if inline { &files } else { &[] },
        list: (!inline).then_some(list_key.as_str()),
    };
    work.fence.check()?;
    let claimed = with_retries(&format!("{shard}: writing the intent"), || {
        rt.block_on(shared.leases.set_intent(shard, me, &intent, from))
    })?;
    if !claimed {
        return Ok(false);
    }
    failpoint("after-intent", shard);
    let Window {
        writer,
        pipeline,
        dead_spill,
        ..
    } = window;
    let published = writer.finish()?;
    if has_dead {
        // Dead letters go up like any lake file: from a scratch file,
        // through the fence.
        let (path, mut file) = match dead_spill {
            Some(spill) => spill,
            None => {
                let path = scratch.join(format!("{}-{shard}-{first}.dead", std::process::id()));
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                (path, file)
            }
        };
        file.write_all(&pipeline.dead_letters)?;
        file.sync_all()?;
        drop(file);
        let fence = work.fence.for_store();
        rt.block_on(shared.store.put_file_fenced(&dead_key, &path, &fence))
            .with_context(|| format!("publishing {dead_key}"))?;
        let _ = std::fs::remove_file(&path);
    }
    failpoint("after-publish", shard);
    shared
        .stats
        .files
        .fetch_add(published.len() as u64, Ordering::SeqCst);
    shared
        .stats
        .dead_letters
        .fetch_add(pipeline.counts.dead_lettered, Ordering::SeqCst);
    let lag_ms = shared
        .stats
        .lag_ms
        .lock()
        .expect("lag lock")
        .get(shard)
        .map(|lag| (*lag).max(0) as u64)
        .unwrap_or(0);
    let kept = with_retries(&format!("{shard}: checkpointing {end}"), || {
        rt.block_on(shared.leases.checkpoint(shard, me, end, from, lag_ms))
    })?;
    if kept && !inline {
        // Checkpointed: nobody needs the window's file list any more.
        let _ = rt.block_on(shared.store.delete(&list_key));
    }
    if kept {
        eprintln!(
            "{}",
            window_line(
                &shared.opts.stream,
                shard,
                work.epoch,
                (&first, end),
                &pipeline.counts(),
                published.len()
            )
        );
    }
    Ok(kept)
}

/// Tests force a crash at a named point of a window's publication
/// (`LAKE_INGEST_FAILPOINT=<point>`): the exactly-once argument must
/// survive a process dying there.
fn failpoint(point: &str, shard: &str) {
    if std::env::var_os("LAKE_INGEST_FAILPOINT").is_some_and(|v| v == point) {
        eprintln!("lake-ingest: failpoint {point}: {shard}; exiting");
        std::process::exit(86);
    }
}

/// The line logged for each window made durable: one JSON object, which
/// the ingest stack's metric filters (`{ $.event = "window" }`, values
/// `$.dead_letters` and `$.unknown_fields`, dimension `$.stream`) turn into
/// the `DeadLetters` and `UnknownFields` metrics of each dataset.
pub fn window_line(
    stream: &str,
    shard: &str,
    epoch: u64,
    (first, last): (&str, &str),
    counts: &super::Counts,
    files: usize,
) -> String {
    serde_json::json!({
        "event": "window",
        "stream": stream,
        "shard": shard,
        "epoch": epoch,
        "first": first,
        "last": last,
        "records": counts.written,
        "dead_letters": counts.dead_lettered,
        "unknown_fields": counts.unknown_fields,
        "unknown_field_names": counts.unknown_field_names,
        "files": files,
    })
    .to_string()
}

/// A shard iterator after `checkpoint` (or at the trim horizon).
fn open_iterator(shared: &Shared, shard: &str, checkpoint: &str) -> Result<Option<String>> {
    let rt = &shared.runtime;
    with_retries(&format!("opening {shard}"), || {
        let mut request = shared
            .kinesis
            .get_shard_iterator()
            .stream_name(&shared.opts.stream)
            .shard_id(shard);
        request = if checkpoint == TRIM_HORIZON {
            request.shard_iterator_type(ShardIteratorType::TrimHorizon)
        } else {
            request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(checkpoint)
        };
        Ok(rt
            .block_on(request.send())
            .with_context(|| format!("opening {shard}"))?
            .shard_iterator()
            .map(String::from))
    })
}

/// A new owner's first duty: the previous owner's unfinished window (its
/// intent) goes. Its uploads are aborted first, so none of their parts or
/// completions can land afterwards; then its keys are deleted (an older
/// epoch's: nobody writes them again), then the intent is cleared. Every
/// step passes this worker's fence. False when the lease was lost.
fn clean_up_previous_window(work: &ShardWork<'_>, lease: &Lease) -> Result<bool> {
    if lease.intent.is_none() && lease.intent_files.is_empty() && lease.intent_list.is_none() {
        return Ok(true);
    }
    let (shared, shard) = (work.shared, work.shard);
    let rt = &shared.runtime;
    // The files: inline, or in the list object the intent names.
    let mut files = lease.intent_files.clone();
    if let Some(list) = &lease.intent_list {
        let body = with_retries(&format!("{shard}: reading {list}"), || {
            rt.block_on(shared.store.get_bytes(list))
        })?
        .with_context(|| {
            format!("{shard}: the intent's file list {list} is missing: the files of that window cannot be told apart")
        })?;
        files.extend(
            serde_json::from_slice::<Vec<String>>(&body)
                .with_context(|| format!("{shard}: reading the file list {list}"))?,
        );
    }
    work.fence.check()?;
    let aborted = with_retries(
        &format!("{shard}: aborting the previous owner's uploads"),
        || rt.block_on(shared.store.abort_uploads(&files)),
    )?;
    for key in &files {
        work.fence.check()?;
        with_retries(&format!("{shard}: deleting {key}"), || {
            rt.block_on(shared.store.delete(key))
        })?;
    }
    let cleared = with_retries(&format!("{shard}: clearing the intent"), || {
        rt.block_on(shared.leases.clear_intent(shard, &shared.me, lease))
    })?;
    // The list goes only once the intent no longer names it (until then a
    // successor needs it to find the files).
    if let (true, Some(list)) = (cleared, &lease.intent_list) {
        let _ = rt.block_on(shared.store.delete(list));
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "event": "cleanup",
            "shard": shard,
            "epoch": work.epoch,
            "window_end": lease.intent,
            "written_by": lease.intent_config,
            "files_deleted": files.len(),
            "uploads_aborted": aborted,
        })
    );
    Ok(cleared)
}

fn consume(work: &ShardWork<'_>, lease: &Lease, quiet_until: Stamp) -> Result<ShardEnd> {
    let (shared, shard) = (work.shared, work.shard);
    let me = &shared.me;
    let rt = &shared.runtime;
    if lease.checkpoint == SHARD_END {
        return Ok(ShardEnd::Finished);
    }
    // A stolen lease: its previous holder's fence may still be open.
    while Stamp::now() < quiet_until {
        if work.fence.is_lost() {
            return Ok(ShardEnd::Lost);
        }
        if work.stop.load(Ordering::SeqCst) {
            return Ok(ShardEnd::Abandoned);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match clean_up_previous_window(work, lease) {
        Ok(true) => {}
        Ok(false) => return Ok(ShardEnd::Lost),
        Err(e) if is_fenced(&e) => {
            eprintln!("lake-ingest: {e:#}");
            return Ok(ShardEnd::Lost);
        }
        Err(e) => return Err(e),
    }
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir_in(&shared.opts.scratch_dir)
        .with_context(|| format!("creating scratch in {}", shared.opts.scratch_dir.display()))?;
    let scratch_dir = shared.store.scratch_dir("_ingest/tmp", scratch.path())?;
    let mut checkpoint = lease.checkpoint.clone();
    let mut iterator = open_iterator(shared, shard, &checkpoint)?;
    let mut window = new_window(work, &scratch_dir);
    let source = format!("kinesis://{}/{shard}", shared.opts.stream);
    let mut user_id = String::with_capacity(64);
    let mut reading = Backoff::new();
    loop {
        if work.fence.is_lost() {
            return Ok(ShardEnd::Lost);
        }
        let Some(it) = iterator.take() else {
            // The shard is closed and read to its end: its last window is
            // published before SHARD_END is checkpointed.
            if let Some(end) = window.last_seq.clone() {
                if !close_window(work, &scratch_dir, window, &end, &checkpoint)? {
                    return Ok(ShardEnd::Lost);
                }
            }
            let finished = with_retries(&format!("{shard}: checkpointing SHARD_END"), || {
                rt.block_on(shared.leases.finish(shard, me, &checkpoint))
            })?;
            return Ok(if finished {
                ShardEnd::Finished
            } else {
                ShardEnd::Lost
            });
        };
        let resp = match rt.block_on(
            shared
                .kinesis
                .get_records()
                .shard_iterator(&it)
                .limit(10_000)
                .send(),
        ) {
            Ok(r) => r,
            Err(e) => {
                let e = anyhow::Error::from(e);
                if format!("{e:?}").contains("ExpiredIterator") {
                    // Read again from the last record read.
                    let from = window
                        .last_seq
                        .clone()
                        .unwrap_or_else(|| checkpoint.clone());
                    iterator = open_iterator(shared, shard, &from)?;
                    continue;
                }
                if let Some(pause) = reading.after(&e) {
                    eprintln!("lake-ingest: reading {shard}: {e:#}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                    iterator = Some(it);
                    continue;
                }
                return Err(e).with_context(|| format!("reading {shard}"));
            }
        };
        reading.succeeded();
        let behind = resp.millis_behind_latest().unwrap_or(0);
        shared
            .stats
            .lag_ms
            .lock()
            .expect("lag lock")
            .insert(shard.to_string(), behind);
        let records = resp.records();
        // Behind the tip with an empty batch (a sparse shard, a read at the
        // trim horizon) is not idle: there is more to read.
        if !records.is_empty() || behind > 0 {
            work.last_record.store(
                shared.started.elapsed().as_millis() as u64,
                Ordering::SeqCst,
            );
        }
        for rec in records {
            let seq = rec.sequence_number().to_string();
            let arrival = rec
                .approximate_arrival_timestamp()
                .map(|t| t.secs())
                .unwrap_or(0);
            let data = rec.data().as_ref();
            window.first_seq.get_or_insert_with(|| seq.clone());
            shared
                .stats
                .bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
            match kpl::deaggregate(data) {
                Ok(None) => process(&mut window, &source, &seq, data, arrival)?,
                Ok(Some(users)) => {
                    // One id buffer for every user record (ids name files; reuse, don't allocate).
                    for (i, u) in users.iter().enumerate() {
                        user_id.clear();
                        let _ = write!(user_id, "{seq}-{i:05}");
                        process(&mut window, &source, &user_id, u.data, arrival)?;
                    }
                }
                Err(e) => {
                    dead_letter::write(
                        &mut window.pipeline.dead_letters,
                        &format!("{source}/{seq}"),
                        0,
                        &e.to_string(),
                        data,
                    );
                    window.pipeline.counts.dead_lettered += 1;
                }
            }
            window.spill_dead_letters(&scratch_dir, shard)?;
            window.last_seq = Some(seq.clone());
            // An intent must fit in the lease: a window holding too many
            // files closes here, at a Kinesis record's boundary.
            if window.is_full() {
                let w = std::mem::replace(&mut window, new_window(work, &scratch_dir));
                if !close_window(work, &scratch_dir, w, &seq, &checkpoint)? {
                    return Ok(ShardEnd::Lost);
                }
                checkpoint = seq;
            }
        }
        shared
            .stats
            .records
            .fetch_add(records.len() as u64, Ordering::SeqCst);
        iterator = resp.next_shard_iterator().map(String::from);
        let stopping = work.stop.load(Ordering::SeqCst);
        let due = window.started.elapsed() >= shared.opts.window || iterator.is_none() || stopping;
        if due {
            if let Some(seq) = window.last_seq.clone() {
                // Say where this window ends (and its files) before
                // publishing any of it.
                let w = std::mem::replace(&mut window, new_window(work, &scratch_dir));
                if !close_window(work, &scratch_dir, w, &seq, &checkpoint)? {
                    return Ok(ShardEnd::Lost);
                }
                checkpoint = seq;
            } else {
                window.started = Instant::now();
            }
        }
        if stopping && iterator.is_some() {
            return Ok(ShardEnd::Stopped);
        }
        // Within Kinesis limits: at most 5 reads per second per shard.
        if iterator.is_some() {
            std::thread::sleep(if records.is_empty() {
                Duration::from_millis(1000)
            } else {
                Duration::from_millis(200)
            });
        }
    }
}

/// One Kinesis (or KPL sub-) record: every JSON object in it, each with an
/// id of its own (`<id>`, then `<id>-1`, `<id>-2`, …) so two objects never
/// name the same file.
fn process(
    window: &mut Window<'_>,
    source: &str,
    id: &str,
    data: &[u8],
    arrival: i64,
) -> Result<()> {
    let mut rest = super::trim_ws(data);
    if rest.is_empty() {
        // Nothing is dropped silently, not even an empty record.
        dead_letter::write(
            &mut window.pipeline.dead_letters,
            &format!("{source}/{id}"),
            0,
            "empty record",
            data,
        );
        window.pipeline.counts.dead_lettered += 1;
        return Ok(());
    }
    let mut object = 0usize;
    let mut object_id = String::new();
    while !rest.is_empty() {
        let this = if object == 0 {
            id
        } else {
            object_id.clear();
            let _ = write!(object_id, "{id}-{object}");
            object_id.as_str()
        };
        let used = window
            .pipeline
            .record(&mut window.writer, source, 0, &this, rest, arrival)?;
        rest = super::trim_ws(&rest[used..]);
        object += 1;
    }
    Ok(())
}
