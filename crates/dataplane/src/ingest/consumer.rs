//! `lake-ingest run`: the Kinesis consumer. Workers share a stream's shards
//! through leases (an even share each; expired leases taken over; one lease
//! stolen per round from the busiest worker when one joins); each owned
//! shard is read on its own thread, de-aggregated, flattened and written in
//! windows.
//!
//! Exactly-once files on an at-least-once stream, step by step:
//! 1. A window's files are named after the shard and the id of their first
//!    record (sequence number, KPL sub-record, object within the record:
//!    every object has its own id) and never span windows.
//! 2. Nothing of a window reaches the lake before its intent is in the lease:
//!    files that roll inside the window stay in local scratch
//!    (`PartitionedWriter::holding`). The intent (the window's last sequence
//!    number, its file keys and the fingerprint of the options that cut and
//!    named them) is a conditional write by the owner *and* its process
//!    incarnation: a worker that lost the lease, or a second process with the
//!    same worker id, publishes nothing.
//! 3. Whoever replays a window from the checkpoint (after a crash or a
//!    takeover) ends it where the intent says: at the first record at or
//!    past it, sequence numbers compared as numbers. With the same options it
//!    writes the same files byte for byte (a late publish by a stalled old
//!    owner overwrites them with the same bytes); with other options it
//!    first deletes the intent's files.
//! 4. The checkpoint moves only after every file of the window (and its dead
//!    letters) is durable; a shard ends (`SHARD_END`, lease released) only
//!    after its last window is.
//! 5. AWS errors that retrying can fix are retried with back-off; a worker
//!    gives up only on what it cannot fix, releasing what it holds.
//!
//! Owns: reading shards, windows, checkpoints, lease balancing, graceful
//! shutdown, progress lines. Must not: flatten, parse times or write files
//! itself (`Pipeline`, `PartitionedWriter`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_kinesis::types::ShardIteratorType;

use super::kpl;
use super::lease::{
    cmp_seq, fair_share, Intent, Lease, LeaseTable, Owner, SHARD_END, TRIM_HORIZON,
};
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
    pub lease_table: String,
    pub create_lease_table: bool,
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

    /// What a byte-identical replay of a window depends on: every option
    /// that decides which rows go to which file and how they are encoded.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "{:?}|{:?}|{}|{}|{}|{}|{:?}",
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

/// A window's dead letters spill to scratch past this size.
const DEAD_LETTERS_IN_MEMORY: usize = 1 << 20;

/// Give up after AWS has failed this long without a success in between.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

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

/// Whether retrying can fix `e`: throttling, a 5xx, a timeout, a dropped
/// connection. (The SDK already retried a few times; this is the longer
/// patience of a worker that must not drop its windows over a blip.)
pub fn is_transient(e: &anyhow::Error) -> bool {
    // The SDK error's own structure (`{:#?}`: variant names, error codes,
    // the HTTP status), whitespace removed so pretty-printing cannot split
    // a marker.
    let text: String = format!("{e:#?}").split_whitespace().collect();
    [
        "DispatchFailure",
        "TimeoutError",
        "ResponseError",
        "ProvisionedThroughputExceeded",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
        "StatusCode(500",
        "StatusCode(502",
        "StatusCode(503",
        "StatusCode(504",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Patience with AWS: the pause before the next attempt after an error
/// retrying can fix, 0.5 s doubling to 20 s; none (give up) for any other
/// error, or once `GIVE_UP_AFTER` has passed without a success. One policy
/// for the worker's rounds, its lease writes and its shard reads.
struct Backoff {
    failing_since: Option<Instant>,
    pause: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            failing_since: None,
            pause: Duration::from_millis(500),
        }
    }

    fn after(&mut self, e: &anyhow::Error) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if !is_transient(e) || since.elapsed() >= GIVE_UP_AFTER {
            return None;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Duration::from_secs(20));
        Some(pause)
    }

    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

/// Run `f` until it succeeds or fails with what `Backoff` gives up on.
fn with_retries<T>(what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut backoff = Backoff::new();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => match backoff.after(&e) {
                Some(pause) => {
                    eprintln!("lake-ingest: {what}: {e:#}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                }
                None => return Err(e.context(what.to_string())),
            },
        }
    }
}

/// The worker's view between rounds.
struct Worker {
    threads: HashMap<String, ShardThread>,
    /// Every lease: (counter, when that counter was first seen, whether it
    /// has moved since this worker started watching). A lease whose counter
    /// never moved may belong to a dead worker: only the failover tells.
    seen: HashMap<String, (u64, Instant, bool)>,
    held: HashSet<String>,
    last_progress: Instant,
}

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
    let leases = LeaseTable::new(aws_sdk_dynamodb::Client::new(&config), &opts.lease_table);
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
        opts,
    });
    // One JSON line per process start: the ingest stack counts them
    // (`WorkerStarts`) to tell a service restarting in a loop.
    eprintln!(
        "{}",
        serde_json::json!({
            "event": "start",
            "worker": shared.me.id,
            "incarnation": shared.me.incarnation,
        })
    );
    let interval = (shared.opts.failover / 3).max(Duration::from_millis(300));
    let mut worker = Worker {
        threads: HashMap::new(),
        seen: HashMap::new(),
        held: HashSet::new(),
        last_progress: Instant::now(),
    };
    let mut backoff = Backoff::new();
    loop {
        match round(&shared, &mut worker, &shutdown).await {
            Ok(true) => break,
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
                    return Err(e);
                }
            },
        }
    }
    let mut shards_held: Vec<String> = worker.held.into_iter().collect();
    shards_held.sort();
    Ok(RunReport {
        records: shared.stats.records.load(Ordering::SeqCst),
        files: shared.stats.files.load(Ordering::SeqCst),
        dead_letters: shared.stats.dead_letters.load(Ordering::SeqCst),
        shards_held,
    })
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
        match joined.expect("shard thread panicked") {
            Ok(ShardEnd::Stopped) => {
                if let Err(e) = shared.leases.release(&shard, &shared.me).await {
                    eprintln!("lake-ingest: {shard}: releasing: {e:#}");
                }
            }
            Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
            Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
        }
    }
}

/// One round: leases listed, renewed, taken; true when the worker is done.
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
        match t.handle.join().expect("shard thread panicked") {
            Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
            Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
        }
    }
    for (shard, t) in &w.threads {
        if !shared.leases.renew(shard, &shared.me).await? {
            t.stop.store(true, Ordering::SeqCst);
        }
    }

    // Who is alive: owners whose leases moved within the failover time.
    let now = Instant::now();
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
                .is_some_and(|(_, at, _)| now.duration_since(*at) >= shared.opts.failover)
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
            if shared.leases.take(l, &shared.me).await? {
                w.threads
                    .insert(l.shard.clone(), spawn_shard(shared, (*l).clone()));
                w.held.insert(l.shard.clone());
                mine += 1;
            }
        }
        // Still below an even share: steal one lease from the busiest worker
        // (never a shard whose thread here is still winding down).
        if mine < target {
            let mut per_owner: HashMap<&str, Vec<&Lease>> = HashMap::new();
            for l in eligible.iter().filter(|l| !expired(l)) {
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
                    if shared.leases.take(l, &shared.me).await? {
                        w.threads
                            .insert(l.shard.clone(), spawn_shard(shared, (*l).clone()));
                        w.held.insert(l.shard.clone());
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
        eprintln!(
            "{}",
            serde_json::json!({
                "event": "leases",
                "worker": me,
                "shards": eligible.len(),
                "held_here": w.threads.len(),
                "unheld": unheld,
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

fn spawn_shard(shared: &Arc<Shared>, lease: Lease) -> ShardThread {
    let stop = Arc::new(AtomicBool::new(false));
    let last_record = Arc::new(AtomicU64::new(shared.started.elapsed().as_millis() as u64));
    let (s, st, lr) = (shared.clone(), stop.clone(), last_record.clone());
    let handle = std::thread::Builder::new()
        .name(format!("shard-{}", lease.shard))
        .spawn(move || consume(&s, lease, &st, &lr))
        .expect("spawn a shard thread");
    ShardThread {
        stop,
        last_record,
        handle,
    }
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
    fn has_records(&self) -> bool {
        self.last_seq.is_some()
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

fn new_window<'a>(shared: &'a Shared, shard: &'a str, scratch: &std::path::Path) -> Window<'a> {
    let opts = &shared.opts;
    let ext = opts.format.extension();
    // Replays must end files where the first run did: no time-based rolls inside a window.
    let roll = RollPolicy {
        max_age: Duration::MAX,
        ..opts.roll.clone()
    };
    let writer = PartitionedWriter::new(
        &shared.store,
        &shared.runtime,
        scratch,
        roll,
        &opts.format,
        move |partition: &str, first: &str| format!("{partition}/{shard}-{first}.{ext}"),
    )
    .holding();
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

/// Close a window ending at `end`: claim it (`claim`: write the intent —
/// refused when the lease is lost, and then nothing is published), publish
/// its files and dead letters, then checkpoint `end`. False when the lease
/// was lost (the next owner replays the window).
fn close_window(
    shared: &Shared,
    shard: &str,
    window: Window<'_>,
    end: &str,
    claim: bool,
) -> Result<bool> {
    let me = &shared.me;
    let rt = &shared.runtime;
    if claim {
        let files = window.writer.pending_keys();
        let intent = Intent {
            seq: end,
            config: &shared.fingerprint,
            files: &files,
        };
        let claimed = with_retries(&format!("{shard}: writing the intent"), || {
            rt.block_on(shared.leases.set_intent(shard, me, &intent))
        })?;
        if !claimed {
            return Ok(false);
        }
    }
    let first = window.first_seq.clone().unwrap_or_else(|| end.to_string());
    let Window {
        writer,
        pipeline,
        dead_spill,
        ..
    } = window;
    let files = writer.finish()?;
    let dead_key = format!("_errors/{shard}-{first}.ndjson");
    match dead_spill {
        Some((path, mut file)) => {
            file.write_all(&pipeline.dead_letters)?;
            file.sync_all()?;
            drop(file);
            rt.block_on(shared.store.put_file(&dead_key, &path))?;
            let _ = std::fs::remove_file(&path);
        }
        None if !pipeline.dead_letters.is_empty() => {
            rt.block_on(
                shared
                    .store
                    .put_bytes(&dead_key, pipeline.dead_letters.clone()),
            )?;
        }
        None => {}
    }
    // Tests force the crash between publishing and checkpointing that the
    // exactly-once argument must survive (tests/lake.rs).
    if std::env::var_os("LAKE_INGEST_FAILPOINT").is_some_and(|v| v == "after-publish") {
        eprintln!("lake-ingest: failpoint after-publish: {shard}'s window is published; exiting before its checkpoint");
        std::process::exit(86);
    }
    shared
        .stats
        .files
        .fetch_add(files.len() as u64, Ordering::SeqCst);
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
        rt.block_on(shared.leases.checkpoint(shard, me, end, lag_ms))
    })?;
    if kept {
        eprintln!(
            "{}",
            window_line(shard, &first, end, &pipeline.counts, files.len())
        );
    }
    Ok(kept)
}

/// The line logged for each window made durable: one JSON object, which
/// the ingest stack's metric filter (`{ $.event = "window" }`, value
/// `$.dead_letters`) turns into the `DeadLetters` metric its alarm watches.
pub fn window_line(
    shard: &str,
    first: &str,
    last: &str,
    counts: &super::Counts,
    files: usize,
) -> String {
    serde_json::json!({
        "event": "window",
        "shard": shard,
        "first": first,
        "last": last,
        "records": counts.written,
        "dead_letters": counts.dead_lettered,
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

fn consume(
    shared: &Shared,
    lease: Lease,
    stop: &AtomicBool,
    last_record: &AtomicU64,
) -> Result<ShardEnd> {
    let shard = lease.shard.as_str();
    let me = &shared.me;
    let rt = &shared.runtime;
    if lease.checkpoint == SHARD_END {
        return Ok(ShardEnd::Finished);
    }
    let scratch = tempfile::Builder::new()
        .prefix("lake-ingest-")
        .tempdir_in(&shared.opts.scratch_dir)
        .with_context(|| format!("creating scratch in {}", shared.opts.scratch_dir.display()))?;
    let scratch_dir = shared.store.scratch_dir("_ingest/tmp", scratch.path())?;
    let mut intent = lease.intent.clone();
    // A window cut and named by other options (a rolling config change)
    // cannot be rebuilt byte for byte: its files go, the replay writes its own.
    if intent.is_some() && lease.intent_config.as_deref() != Some(shared.fingerprint.as_str()) {
        for key in &lease.intent_files {
            rt.block_on(shared.store.delete(key)).with_context(|| {
                format!("{shard}: removing {key} of a window cut by other options")
            })?;
        }
        if !lease.intent_files.is_empty() {
            eprintln!(
                "lake-ingest: {shard}: the window ending at {} was cut by other options; its {} files are removed and the window is written again",
                intent.as_deref().unwrap_or("?"),
                lease.intent_files.len()
            );
        }
    }
    let mut checkpoint = lease.checkpoint.clone();
    let mut iterator = open_iterator(shared, shard, &checkpoint)?;
    let mut window = new_window(shared, shard, &scratch_dir);
    let source = format!("kinesis://{}/{shard}", shared.opts.stream);
    let mut user_id = String::with_capacity(64);
    let mut reading = Backoff::new();
    loop {
        let Some(it) = iterator.take() else {
            // The shard is closed and read to its end: its last window is
            // published before SHARD_END is checkpointed.
            if window.has_records() || intent.is_some() {
                let end = intent
                    .clone()
                    .or_else(|| window.last_seq.clone())
                    .expect("records or an intent");
                let claim = intent.is_none();
                if !close_window(shared, shard, window, &end, claim)? {
                    return Ok(ShardEnd::Lost);
                }
            }
            let finished = with_retries(&format!("{shard}: checkpointing SHARD_END"), || {
                rt.block_on(shared.leases.finish(shard, me))
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
            last_record.store(
                shared.started.elapsed().as_millis() as u64,
                Ordering::SeqCst,
            );
        }
        for rec in records {
            let seq = rec.sequence_number().to_string();
            // Replaying a window whose boundary is no longer in the stream
            // (trimmed): it ends before the first record past it.
            if let Some(x) = intent.clone() {
                if cmp_seq(&seq, &x) == std::cmp::Ordering::Greater {
                    let w = std::mem::replace(&mut window, new_window(shared, shard, &scratch_dir));
                    if !close_window(shared, shard, w, &x, false)? {
                        return Ok(ShardEnd::Lost);
                    }
                    checkpoint = x;
                    intent = None;
                }
            }
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
            // Replaying a window whose publication was under way: end it exactly there.
            if intent
                .as_deref()
                .is_some_and(|x| cmp_seq(&seq, x) == std::cmp::Ordering::Equal)
            {
                let w = std::mem::replace(&mut window, new_window(shared, shard, &scratch_dir));
                if !close_window(shared, shard, w, &seq, false)? {
                    return Ok(ShardEnd::Lost);
                }
                checkpoint = seq.clone();
                intent = None;
            }
        }
        shared
            .stats
            .records
            .fetch_add(records.len() as u64, Ordering::SeqCst);
        iterator = resp.next_shard_iterator().map(String::from);
        let stopping = stop.load(Ordering::SeqCst);
        let due = window.started.elapsed() >= shared.opts.window || iterator.is_none() || stopping;
        if intent.is_none() && due {
            if let Some(seq) = window.last_seq.clone() {
                // Say where this window ends (and its files) before
                // publishing any of it.
                let w = std::mem::replace(&mut window, new_window(shared, shard, &scratch_dir));
                if !close_window(shared, shard, w, &seq, true)? {
                    return Ok(ShardEnd::Lost);
                }
                checkpoint = seq;
            } else {
                window.started = Instant::now();
            }
        }
        if stopping && intent.is_none() && iterator.is_some() {
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
