//! `lake-ingest run`: the Kinesis consumer. Workers share a stream's shards
//! through leases (an even share each; expired leases taken over; one lease
//! stolen per round from the busiest worker when one joins); each owned
//! shard is read on its own thread, de-aggregated, flattened and written in
//! windows.
//!
//! Exactly-once files on an at-least-once stream: a window's files are
//! named after the shard and their first record and never span windows; a
//! window ends when its data says so (size, count) or through an intent
//! written to the lease before publishing, so whoever replays the window
//! from the checkpoint (after a crash or a takeover) writes the same files,
//! overwriting instead of duplicating. The checkpoint moves only after the
//! window's files are durable.
//!
//! Owns: reading shards, windows, checkpoints, lease balancing, graceful
//! shutdown, progress lines. Must not: flatten, parse times or write files
//! itself (`Pipeline`, `PartitionedWriter`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_kinesis::types::ShardIteratorType;

use super::kpl;
use super::lease::{fair_share, Lease, LeaseTable, SHARD_END, TRIM_HORIZON};
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
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

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
}

struct ShardThread {
    stop: Arc<AtomicBool>,
    /// Millis since start of the last record read (0: none yet).
    last_record: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Result<ShardEnd>>,
}

#[derive(Debug, PartialEq, Eq)]
enum ShardEnd {
    /// The shard is closed and fully processed.
    Finished,
    /// Asked to stop; the last window is published and checkpointed.
    Stopped,
    /// Another worker owns it now.
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
        opts,
    });
    let me = shared.opts.worker_id.clone();
    let interval = (shared.opts.failover / 3).max(Duration::from_millis(300));
    let mut threads: HashMap<String, ShardThread> = HashMap::new();
    // Every lease: (counter, when that counter was first seen, whether it
    // has moved since this worker started watching). A lease whose counter
    // never moved may belong to a dead worker: only the failover tells.
    let mut seen: HashMap<String, (u64, Instant, bool)> = HashMap::new();
    let mut held = HashSet::new();
    let mut last_progress = Instant::now();
    loop {
        // Leases for every shard of the stream (children remember their parents).
        for (shard, parents) in list_shards(&shared.kinesis, &shared.opts.stream).await? {
            shared.leases.ensure(&shard, &parents).await?;
        }
        let all = shared.leases.scan().await?;

        // Finished threads, renewals, lost leases.
        let done: Vec<String> = threads
            .iter()
            .filter(|(_, t)| t.handle.is_finished())
            .map(|(s, _)| s.clone())
            .collect();
        let finished_this_round = !done.is_empty();
        for shard in done {
            let t = threads.remove(&shard).expect("listed");
            match t.handle.join().expect("shard thread panicked") {
                Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
                Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
            }
        }
        for (shard, t) in &threads {
            if !shared.leases.renew(shard, &me).await? {
                t.stop.store(true, Ordering::SeqCst);
            }
        }

        // Who is alive: owners whose leases moved within the failover time.
        let now = Instant::now();
        for l in &all {
            let entry = seen
                .entry(l.shard.clone())
                .or_insert((l.counter, now, false));
            if entry.0 != l.counter {
                *entry = (l.counter, now, true);
            }
        }
        let expired = |l: &Lease| {
            l.owner.is_none()
                || seen
                    .get(&l.shard)
                    .is_some_and(|(_, at, _)| now.duration_since(*at) >= shared.opts.failover)
        };
        // Held by another worker that renewed it since we started watching.
        let alive =
            |l: &Lease| !expired(l) && seen.get(&l.shard).is_some_and(|(_, _, moved)| *moved);
        let finished: HashSet<&str> = all
            .iter()
            .filter(|l| l.checkpoint == SHARD_END)
            .map(|l| l.shard.as_str())
            .collect();
        let known: HashSet<&str> = all.iter().map(|l| l.shard.as_str()).collect();
        // Children wait until their parents are finished.
        let eligible: Vec<&Lease> = all
            .iter()
            .filter(|l| l.checkpoint != SHARD_END)
            .filter(|l| {
                l.parents
                    .iter()
                    .all(|p| finished.contains(p.as_str()) || !known.contains(p.as_str()))
            })
            .collect();
        let mut workers: HashSet<&str> = eligible
            .iter()
            .filter(|l| !expired(l))
            .filter_map(|l| l.owner.as_deref())
            .collect();
        workers.insert(&me);
        let target = fair_share(eligible.len(), workers.len());
        let mut mine = threads.len();
        if !shutdown.load(Ordering::SeqCst) {
            // My own leases from an earlier life first, then expired or free ones.
            let mut free: Vec<&&Lease> = eligible
                .iter()
                .filter(|l| !threads.contains_key(&l.shard))
                .filter(|l| l.owner.as_deref() == Some(&me) || expired(l))
                .collect();
            free.sort_by_key(|l| (l.owner.as_deref() != Some(&me), l.shard.clone()));
            for l in free {
                if mine >= target && l.owner.as_deref() != Some(&me) {
                    break;
                }
                if shared.leases.take(l, &me).await? {
                    threads.insert(l.shard.clone(), spawn_shard(&shared, (*l).clone()));
                    held.insert(l.shard.clone());
                    mine += 1;
                }
            }
            // Still below an even share: steal one lease from the busiest worker.
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
                        .max_by_key(|l| l.shard.clone())
                        .expect("non-empty");
                    if shared.leases.take(l, &me).await? {
                        threads.insert(l.shard.clone(), spawn_shard(&shared, (*l).clone()));
                        held.insert(l.shard.clone());
                    }
                }
            }
        }

        if last_progress.elapsed() >= shared.opts.progress_every {
            progress(&shared, &threads);
            last_progress = Instant::now();
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
                !threads.contains_key(&l.shard)
                    && (l.owner.is_none() || l.owner.as_deref() == Some(&me) || !alive(l))
            });
            !left_for_us
                && !finished_this_round
                && threads.values().all(|t| {
                    let last = t.last_record.load(Ordering::SeqCst);
                    now_ms.saturating_sub(last) >= limit.as_millis() as u64
                })
        });
        if shutdown.load(Ordering::SeqCst) || idle {
            for t in threads.values() {
                t.stop.store(true, Ordering::SeqCst);
            }
            for (shard, t) in threads.drain() {
                match t.handle.join().expect("shard thread panicked") {
                    Ok(ShardEnd::Stopped) => {
                        shared.leases.release(&shard, &me).await?;
                    }
                    Ok(end) => eprintln!("lake-ingest: {shard}: {end:?}"),
                    Err(e) => eprintln!("lake-ingest: {shard}: {e:#}"),
                }
            }
            progress(&shared, &threads);
            break;
        }
        tokio::time::sleep(interval).await;
    }
    let mut shards_held: Vec<String> = held.into_iter().collect();
    shards_held.sort();
    Ok(RunReport {
        records: shared.stats.records.load(Ordering::SeqCst),
        files: shared.stats.files.load(Ordering::SeqCst),
        dead_letters: shared.stats.dead_letters.load(Ordering::SeqCst),
        shards_held,
    })
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

/// One window of a shard: the files being written and where it started.
struct Window<'a> {
    writer: PartitionedWriter<'a>,
    pipeline: Pipeline,
    last_seq: Option<String>,
    started: Instant,
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
    );
    Window {
        writer,
        pipeline: Pipeline::new(
            opts.flatten.clone(),
            opts.format.clone(),
            opts.partition_by.clone(),
            &opts.partition_format,
        ),
        last_seq: None,
        started: Instant::now(),
    }
}

/// Publish a window's files and dead letters, then checkpoint `seq`.
/// False when the lease was lost (the next owner replays the window).
fn close_window(
    shared: &Shared,
    shard: &str,
    window: Window<'_>,
    seq: &str,
    first_seq: &str,
) -> Result<bool> {
    let me = &shared.opts.worker_id;
    let rt = &shared.runtime;
    let Window {
        writer, pipeline, ..
    } = window;
    let files = writer.finish()?;
    if !pipeline.dead_letters.is_empty() {
        rt.block_on(shared.store.put_bytes(
            &format!("_errors/{shard}-{first_seq}.ndjson"),
            pipeline.dead_letters.clone(),
        ))?;
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
    rt.block_on(shared.leases.checkpoint(shard, me, seq, lag_ms))
}

fn consume(
    shared: &Shared,
    lease: Lease,
    stop: &AtomicBool,
    last_record: &AtomicU64,
) -> Result<ShardEnd> {
    let shard = lease.shard.as_str();
    let me = &shared.opts.worker_id;
    let rt = &shared.runtime;
    if lease.checkpoint == SHARD_END {
        return Ok(ShardEnd::Finished);
    }
    let scratch = tempfile::Builder::new().prefix("lake-ingest-").tempdir()?;
    let scratch_dir = shared.store.scratch_dir("_ingest/tmp", scratch.path())?;
    let mut request = shared
        .kinesis
        .get_shard_iterator()
        .stream_name(&shared.opts.stream)
        .shard_id(shard);
    request = if lease.checkpoint == TRIM_HORIZON {
        request.shard_iterator_type(ShardIteratorType::TrimHorizon)
    } else {
        request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(&lease.checkpoint)
    };
    let mut iterator = rt
        .block_on(request.send())
        .with_context(|| format!("opening {shard}"))?
        .shard_iterator()
        .map(String::from);
    let mut intent = lease.intent.clone();
    let mut window = new_window(shared, shard, &scratch_dir);
    let mut first_seq: Option<String> = None;
    let source = format!("kinesis://{}/{shard}", shared.opts.stream);
    let mut user_id = String::with_capacity(64);
    while let Some(it) = iterator.take() {
        let resp = match rt.block_on(
            shared
                .kinesis
                .get_records()
                .shard_iterator(&it)
                .limit(10_000)
                .send(),
        ) {
            Ok(r) => r,
            Err(e) if format!("{e:?}").contains("ProvisionedThroughputExceeded") => {
                std::thread::sleep(Duration::from_secs(1));
                iterator = Some(it);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {shard}")),
        };
        shared
            .stats
            .lag_ms
            .lock()
            .expect("lag lock")
            .insert(shard.to_string(), resp.millis_behind_latest().unwrap_or(0));
        let records = resp.records();
        // Behind the tip with an empty batch (a sparse shard, a read at the
        // trim horizon) is not idle: there is more to read.
        if !records.is_empty() || resp.millis_behind_latest().unwrap_or(0) > 0 {
            last_record.store(
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
            first_seq.get_or_insert_with(|| seq.clone());
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
            window.last_seq = Some(seq.clone());
            // Replaying a window whose publication was under way: end it exactly there.
            if intent.as_deref() == Some(seq.as_str()) {
                let first = first_seq.take().expect("set above");
                let w = std::mem::replace(&mut window, new_window(shared, shard, &scratch_dir));
                if !close_window(shared, shard, w, &seq, &first)? {
                    return Ok(ShardEnd::Lost);
                }
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
                // Say where this window ends before publishing any of it.
                if !rt.block_on(shared.leases.set_intent(shard, me, &seq))? {
                    return Ok(ShardEnd::Lost);
                }
                let first = first_seq.take().expect("records were read");
                let w = std::mem::replace(&mut window, new_window(shared, shard, &scratch_dir));
                if !close_window(shared, shard, w, &seq, &first)? {
                    return Ok(ShardEnd::Lost);
                }
            } else {
                window.started = Instant::now();
            }
        }
        if iterator.is_none() {
            rt.block_on(shared.leases.checkpoint(shard, me, SHARD_END, 0))?;
            return Ok(ShardEnd::Finished);
        }
        if stopping && intent.is_none() {
            return Ok(ShardEnd::Stopped);
        }
        // Within Kinesis limits: at most 5 reads per second per shard.
        std::thread::sleep(if records.is_empty() {
            Duration::from_millis(1000)
        } else {
            Duration::from_millis(200)
        });
    }
    Ok(ShardEnd::Finished)
}

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
    while !rest.is_empty() {
        let used = window
            .pipeline
            .record(&mut window.writer, source, 0, id, rest, arrival)?;
        rest = super::trim_ws(&rest[used..]);
    }
    Ok(())
}
