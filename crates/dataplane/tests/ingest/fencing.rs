//! Exactly once through the interleavings that lost and duplicated orders
//! in the review of issue 31, each forced with `lake_testkit::FaultProxy`
//! in front of moto (a held upload completion, lease writes that never
//! arrive, deletes stuck in flight, Kinesis failing) or with a failpoint
//! (`LAKE_INGEST_FAILPOINT`): every test ends with every order exactly once
//! in the lake, and a late request of a worker that lost its shard changes
//! nothing. The lake is an S3 bucket on moto (multipart uploads, aborts),
//! NDJSON so rows compare byte for byte with `lake-ingest flatten`.

use std::time::Duration;

use lake_testkit::{Fault, FaultProxy};

use super::*;

const SINK: &str = "s3://lake/orders";

/// In a lease write's request: the condition every write by the owner
/// carries (renewal, intent, checkpoint), and a take does not.
pub(crate) const OWNED_WRITE: &str = "leaseOwner = :me AND incarnation = :inc";

impl Stream {
    pub(crate) fn s3(&self) -> aws_sdk_s3::Client {
        let config = self.rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(&self.moto.endpoint)
                .load(),
        );
        let conf = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub(crate) fn make_lake(&self) {
        self.rt
            .block_on(self.s3().create_bucket().bucket("lake").send())
            .unwrap();
    }

    /// Every object of the lake bucket: key -> bytes.
    pub(crate) fn lake_objects(&self) -> BTreeMap<String, Vec<u8>> {
        let s3 = self.s3();
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut pages = s3.list_objects_v2().bucket("lake").into_paginator().send();
            while let Some(page) = pages.next().await {
                for o in page.unwrap().contents() {
                    let key = o.key().unwrap().to_string();
                    // Gone between the listing and the read (a worker
                    // cleaning up a window): not part of the lake.
                    let Ok(got) = s3.get_object().bucket("lake").key(&key).send().await else {
                        continue;
                    };
                    let body = got.body.collect().await.unwrap().into_bytes().to_vec();
                    out.insert(key, body);
                }
            }
            out
        })
    }

    /// The lake's data rows (every visible file, as a table reads them:
    /// `_`-prefixed folders are hidden), sorted; and its dead letters.
    pub(crate) fn lake_rows_s3(&self) -> (Vec<String>, Vec<serde_json::Value>) {
        let (mut rows, mut dead) = (Vec::new(), Vec::new());
        for (k, v) in self.lake_objects() {
            let text = String::from_utf8(v).unwrap();
            let rel = k.strip_prefix("orders/").unwrap_or(&k);
            if rel.starts_with("_errors/") {
                dead.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
            } else if !rel.split('/').any(|seg| seg.starts_with('_')) {
                rows.extend(text.lines().map(String::from));
            }
        }
        rows.sort();
        (rows, dead)
    }

    /// A worker on the S3 lake: NDJSON, failover 3 s, windows of 1 s, one
    /// open file rolled every `roll_records` rows; through `proxy` if given.
    pub(crate) fn worker(
        &self,
        proxy: Option<&FaultProxy>,
        name: &str,
        roll_records: &str,
        idle: &str,
    ) -> Command {
        self.worker_windows(proxy, name, roll_records, idle, "1")
    }

    /// `worker` with windows of `window_seconds`.
    pub(crate) fn worker_windows(
        &self,
        proxy: Option<&FaultProxy>,
        name: &str,
        roll_records: &str,
        idle: &str,
        window_seconds: &str,
    ) -> Command {
        let mut cmd = self.lake_ingest(&[
            "run",
            "--stream",
            "orders",
            "--sink",
            SINK,
            "--format",
            "ndjson",
            "--create-lease-table",
            "--worker-id",
            name,
            "--failover-seconds",
            "3",
            "--roll-seconds",
            window_seconds,
            "--roll-records",
            roll_records,
            "--max-open-files",
            "1",
            "--exit-when-idle",
            idle,
        ]);
        if let Some(p) = proxy {
            cmd.env("AWS_ENDPOINT_URL", &p.endpoint);
        }
        cmd
    }

    /// `lake-compact` over the lake, in place, leaving files of windows not
    /// checkpointed alone (the lease table), as the compaction step runs it.
    pub(crate) fn compact(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_lake-compact"))
            .args([
                "--src",
                SINK,
                "--dest",
                SINK,
                "--target-size",
                "1",
                "--delete-on-success",
                "--lease-table",
                "orders-leases",
            ])
            .envs(self.moto.aws_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lake-compact: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The lease item of `shard`'s intent files.
    pub(crate) fn intent_files(&self, shard: &str) -> Vec<String> {
        let resp = self
            .rt
            .block_on(
                self.dynamo
                    .get_item()
                    .table_name("orders-leases")
                    .key(
                        "leaseKey",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("orders/{shard}")),
                    )
                    .consistent_read(true)
                    .send(),
            )
            .unwrap();
        resp.item()
            .and_then(|i| i.get("intentFiles"))
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default()
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Wait for `child` to exit (killing it after `limit`); its stderr.
fn finish(child: std::process::Child, limit: Duration) -> String {
    let mut child = child;
    if within(limit, || child.try_wait().unwrap().is_some()).is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {stderr}");
    stderr
}

/// A worker that dies right after publishing its first window (before
/// its checkpoint): its intent and files stay behind.
fn die_after_publish(s: &Stream, proxy: Option<&FaultProxy>, name: &str, roll: &str) {
    let out = s
        .worker(proxy, name, roll, "600")
        .env("LAKE_INGEST_FAILPOINT", "after-publish")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(86),
        "{name} should die at the failpoint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_exactly_once(s: &Stream, expected: &[String], when: &str) {
    let (rows, _) = s.lake_rows_s3();
    assert_eq!(
        rows.len(),
        expected.len(),
        "{when}: every order once (count)"
    );
    assert!(rows == expected, "{when}: every order once (content)");
}

/// Review item 1: a rolling deploy stops worker A (old options: files of 7
/// rows) while one of its uploads is held and its lease writes stop
/// arriving; B (new options: files of 50) takes over after the failover.
/// B aborts A's upload and removes A's unfinished window before writing its
/// own; A's held completion and lease writes, delivered late, change
/// nothing.
#[test]
fn an_options_change_during_a_rolling_deploy_keeps_every_order_once() {
    let s = Stream::new(2);
    s.make_lake();
    s.datagen(600, "21", "1573657200000", "1");
    let expected = expected_rows(&[("21", "1573657200000", 600)]);
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let complete = proxy.add("CompleteMultipartUpload", None, Fault::Hold, None);
    let a = s
        .worker(Some(&proxy), "a", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        proxy.wait_held(complete, 1, Duration::from_secs(30)),
        "A reached a completion"
    );
    // A is cut off: its aborts (of its own uploads, when the completion
    // times out) and its lease writes stop arriving too.
    proxy.add("AbortMultipartUpload", None, Fault::Hold, None);
    proxy.add("UpdateItem", None, Fault::Hold, None);
    signal(&a, "-TERM");
    run_ok(s.worker(None, "b", "50", "4"), "B");
    assert_exactly_once(&s, &expected, "after B");
    let before = s.lake_objects();
    // A's held completions land first, then everything else of A's.
    proxy.release_and_settle(complete, Duration::from_secs(20));
    proxy.release_all();
    let said = finish(a, Duration::from_secs(40));
    assert_eq!(
        s.lake_objects(),
        before,
        "A's late completion and lease writes changed the lake:\n{said}"
    );
    assert_exactly_once(&s, &expected, "after A's late requests");
}

/// Review item 2: the same interleaving with the same options everywhere,
/// and compaction merging B's files before A's held completion arrives.
#[test]
fn a_late_upload_after_compaction_adds_nothing() {
    let s = Stream::new(2);
    s.make_lake();
    s.datagen(600, "22", "1573657200000", "1");
    let expected = expected_rows(&[("22", "1573657200000", 600)]);
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let complete = proxy.add("CompleteMultipartUpload", None, Fault::Hold, None);
    let a = s
        .worker(Some(&proxy), "a", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(proxy.wait_held(complete, 1, Duration::from_secs(30)));
    proxy.add("AbortMultipartUpload", None, Fault::Hold, None);
    proxy.add("UpdateItem", None, Fault::Hold, None);
    signal(&a, "-TERM");
    run_ok(s.worker(None, "b", "7", "4"), "B");
    let files_before = s.lake_objects().len();
    s.compact();
    assert!(
        s.lake_objects().len() < files_before,
        "compaction merged files"
    );
    assert_exactly_once(&s, &expected, "after compaction");
    let before = s.lake_objects();
    // A's held completions land first, then everything else of A's.
    proxy.release_and_settle(complete, Duration::from_secs(20));
    proxy.release_all();
    let said = finish(a, Duration::from_secs(40));
    assert_eq!(s.lake_objects(), before, "{said}");
    assert_exactly_once(&s, &expected, "after A's late completion");
}

/// Review item 3: A dies after publishing a window (intent and files left);
/// B takes over, cleans up, reads — and is paused (SIGSTOP) holding a window
/// of its own; C takes over, lands everything, compaction runs; B resumes
/// and publishes nothing: its intent is refused and its fence closed.
#[test]
fn a_paused_successors_window_is_never_published() {
    let s = Stream::new(1);
    s.make_lake();
    s.datagen(300, "23", "1573657200000", "1");
    let expected = expected_rows(&[("23", "1573657200000", 300)]);
    die_after_publish(&s, None, "a", "7");
    assert!(!s.intent_files("shardId-000000000000").is_empty());
    let proxy = FaultProxy::start(&s.moto.endpoint);
    // B's windows last 30 s: it holds what it read when paused.
    let b = s
        .worker_windows(Some(&proxy), "b", "7", "600", "30")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read = within(Duration::from_secs(30), || {
        proxy
            .calls()
            .iter()
            .filter(|c| c.operation == "GetRecords")
            .count()
            >= 2
    });
    assert!(read.is_some(), "B read the shard");
    signal(&b, "-STOP");
    run_ok(s.worker(None, "c", "7", "4"), "C");
    s.compact();
    assert_exactly_once(&s, &expected, "after C and compaction");
    let before = s.lake_objects();
    signal(&b, "-CONT");
    std::thread::sleep(Duration::from_secs(8));
    signal(&b, "-TERM");
    let said = finish(b, Duration::from_secs(30));
    assert_eq!(
        s.lake_objects(),
        before,
        "the resumed B changed the lake:\n{said}"
    );
    assert_exactly_once(&s, &expected, "after B resumed");
}

/// Review item 6: B takes over A's unfinished window and its deletes are
/// held in flight (with its lease writes); C takes over, replays, lands
/// everything, compaction runs; B's deletes arrive late — they name keys of
/// A's epoch, which nobody wrote again: nothing of C's goes.
#[test]
fn late_deletes_of_a_fenced_cleanup_remove_nothing_of_the_successor() {
    let s = Stream::new(1);
    s.make_lake();
    s.datagen(300, "24", "1573657200000", "1");
    let expected = expected_rows(&[("24", "1573657200000", 300)]);
    die_after_publish(&s, None, "a", "7");
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let deletes = proxy.add("DeleteObject", None, Fault::Hold, Some(1));
    let b = s
        .worker(Some(&proxy), "b", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if !proxy.wait_held(deletes, 1, Duration::from_secs(30)) {
        signal(&b, "-TERM");
        let calls: Vec<String> = proxy
            .calls()
            .iter()
            .map(|c| format!("{} {}", c.operation, &c.target[..c.target.len().min(200)]))
            .collect();
        panic!(
            "B never started deleting A's files; B said:\n{}\ncalls: {calls:#?}",
            finish(b, Duration::from_secs(20))
        );
    }
    // From here every lease write B makes as the owner (renewals, the
    // cleared intent) stops arriving.
    proxy.add("UpdateItem", Some(OWNED_WRITE), Fault::Hold, None);
    run_ok(s.worker(None, "c", "7", "4"), "C");
    s.compact();
    assert_exactly_once(&s, &expected, "after C and compaction");
    let before = s.lake_objects();
    proxy.release_all();
    std::thread::sleep(Duration::from_secs(6));
    signal(&b, "-TERM");
    let said = finish(b, Duration::from_secs(30));
    assert_eq!(s.lake_objects(), before, "{said}");
    assert_exactly_once(&s, &expected, "after B's late deletes");
}

/// Review item 4: A (files of 7) dies after publishing; B (files of 50)
/// cleans up, replays under its options and dies after publishing too; its
/// intent names its own files; C (back on files of 7) removes exactly
/// those and lands every order once.
#[test]
fn a_replay_under_other_options_records_its_own_files() {
    let s = Stream::new(1);
    s.make_lake();
    s.datagen(300, "25", "1573657200000", "1");
    let expected = expected_rows(&[("25", "1573657200000", 300)]);
    die_after_publish(&s, None, "a", "7");
    let a_files = s.intent_files("shardId-000000000000");
    die_after_publish(&s, None, "b", "50");
    let b_files = s.intent_files("shardId-000000000000");
    assert!(!b_files.is_empty());
    assert!(
        b_files.iter().all(|f| !a_files.contains(f)),
        "B's intent names B's files: {b_files:?} vs {a_files:?}"
    );
    let objects = s.lake_objects();
    assert!(
        a_files
            .iter()
            .all(|f| !objects.contains_key(&format!("orders/{f}"))),
        "A's files went when B took over"
    );
    run_ok(s.worker(None, "c", "7", "4"), "C");
    assert_exactly_once(&s, &expected, "after C");
}

/// Review item 8: dead letters are part of the window's intent; an options
/// change after a crash removes them with the window's files, and every bad
/// record is in `_errors/` once.
#[test]
fn dead_letters_go_with_their_window() {
    let s = Stream::new(1);
    s.make_lake();
    for i in 0..60u64 {
        let rec = if i % 10 == 3 {
            format!("not json {i}")
        } else {
            format!(
                r#"{{"ordertime":{},"orderid":{i}}}"#,
                1_573_657_200_000u64 + i * 1000
            )
        };
        s.put(rec.into_bytes(), "k");
    }
    die_after_publish(&s, None, "a", "7");
    assert!(
        s.intent_files("shardId-000000000000")
            .iter()
            .any(|f| f.starts_with("_errors/")),
        "the intent names the dead-letter file"
    );
    run_ok(s.worker(None, "b", "50", "4"), "B");
    let (rows, dead) = s.lake_rows_s3();
    assert_eq!(rows.len(), 54, "good records once");
    let mut bad: Vec<String> = dead
        .iter()
        .map(|d| d["source"].as_str().unwrap_or_default().to_string())
        .collect();
    bad.sort();
    let unique = bad.len();
    bad.dedup();
    assert_eq!(
        (unique, bad.len()),
        (6, 6),
        "each bad record once: {dead:?}"
    );
}

/// Review item 9: Kinesis fails for four failovers for worker A alone; its
/// heartbeat renews regardless, so B takes none of A's shards; once Kinesis
/// answers again A goes on and every order lands once.
#[test]
fn a_kinesis_outage_longer_than_the_failover_takes_no_lease() {
    let s = Stream::new(2);
    s.make_lake();
    s.datagen(400, "26", "1573657200000", "1");
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let a = s
        .worker(Some(&proxy), "a", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = s
        .worker(None, "b", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let count = |who: &str| s.owners().values().filter(|o| o.as_str() == who).count();
    assert!(
        within(Duration::from_secs(60), || count("a") == 1
            && count("b") == 1)
        .is_some(),
        "one shard each: {:?}",
        s.owners()
    );
    let a_shard = s
        .owners()
        .into_iter()
        .find(|(_, o)| o == "a")
        .map(|(k, _)| k)
        .unwrap();
    for op in ["ListShards", "GetRecords", "GetShardIterator"] {
        proxy.add(op, None, Fault::Fail(503), None);
    }
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            s.owners().get(&a_shard).map(String::as_str),
            Some("a"),
            "B took A's shard during a Kinesis outage of A's"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.release_all();
    s.datagen(400, "27", "1573700400000", "1");
    let expected = expected_rows(&[("26", "1573657200000", 400), ("27", "1573700400000", 400)]);
    if within(Duration::from_secs(60), || {
        s.lake_rows_s3().0.len() >= expected.len()
    })
    .is_none()
    {
        signal(&a, "-TERM");
        signal(&b, "-TERM");
        panic!(
            "not everything landed after the outage ({} of {}):\nA: {}\nB: {}",
            s.lake_rows_s3().0.len(),
            expected.len(),
            finish(a, Duration::from_secs(30)),
            finish(b, Duration::from_secs(30))
        );
    }
    signal(&a, "-TERM");
    signal(&b, "-TERM");
    finish(a, Duration::from_secs(30));
    finish(b, Duration::from_secs(30));
    assert_exactly_once(&s, &expected, "after the outage");
}

/// Review item 5: a window touching more partitions than an intent can name
/// (2,100 records, each in an hour of its own) closes early, at most
/// `MAX_WINDOW_FILES` files a window, and every record lands once.
#[test]
fn a_window_with_too_many_files_closes_early() {
    let s = Stream::new(1);
    let records = 2100u64;
    let batch: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            format!(
                r#"{{"ordertime":{},"orderid":{i}}}"#,
                1_573_657_200_000u64 + i * 3_600_000
            )
            .into_bytes()
        })
        .collect();
    s.rt.block_on(async {
        use aws_sdk_kinesis::primitives::Blob;
        use aws_sdk_kinesis::types::PutRecordsRequestEntry;
        for chunk in batch.chunks(500) {
            let entries: Vec<_> = chunk
                .iter()
                .map(|d| {
                    PutRecordsRequestEntry::builder()
                        .partition_key("k")
                        .data(Blob::new(d.clone()))
                        .build()
                        .unwrap()
                })
                .collect();
            s.kinesis
                .put_records()
                .stream_name("orders")
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
        }
    });
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let mut args = run_args(&lake_s, "w", "4");
    let at = args.iter().position(|a| *a == "--roll-seconds").unwrap();
    args[at + 1] = "600";
    let said = run_ok(s.lake_ingest(&args), "the worker");
    let windows: Vec<u64> = said
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "window")
        .map(|v| v["files"].as_u64().unwrap())
        .collect();
    assert!(windows.len() >= 3, "{windows:?}");
    assert!(
        windows
            .iter()
            .all(|&f| f as usize <= lake_dataplane::ingest::consumer::MAX_WINDOW_FILES),
        "{windows:?}"
    );
    let (rows, dead) = lake_rows(&lake);
    assert_eq!((rows.len() as u64, dead.len()), (records, 0));
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["orderid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, records, "each record once");
}

/// In a lease write's request: a set_intent's condition, and a
/// checkpoint's (`lease.rs`).
const SET_INTENT: &str = "checkpoint = :cp AND attribute_not_exists(intent)";
const CHECKPOINT: &str = "intent = :cp AND checkpoint = :from";

/// Review (fencing) finding 1: a lease write delivered again late — the
/// first intent and the first checkpoint of A, handed to DynamoDB once more
/// after A has moved on — changes nothing: every write compares and sets
/// the state it expects. A then dies; B lands the rest; every order once.
/// (Without the compare-and-set, the stale intent named window 1's files
/// again and B deleted rows already checkpointed.)
#[test]
fn stale_lease_writes_delivered_late_change_nothing() {
    let s = Stream::new(1);
    s.make_lake();
    let batches = [
        ("31", "1573657200000"),
        ("35", "1573700400000"),
        ("36", "1573743600000"),
    ];
    let expected = expected_rows(&batches.map(|(seed, start)| (seed, start, 150)));
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let intent = proxy.add("UpdateItem", Some(SET_INTENT), Fault::Replay, Some(1));
    let checkpoint = proxy.add("UpdateItem", Some(CHECKPOINT), Fault::Replay, Some(1));
    let mut a = s
        .worker_windows(Some(&proxy), "a", "7", "600", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A window per batch: A moves past its first window.
    let checkpoints = || {
        proxy
            .calls()
            .iter()
            .filter(|c| c.operation == "UpdateItem" && c.target.contains(CHECKPOINT))
            .count()
    };
    for (i, (seed, start)) in batches.iter().enumerate() {
        s.datagen(150, seed, start, "1");
        assert!(
            within(Duration::from_secs(30), || checkpoints() > i).is_some(),
            "A checkpointed window {}",
            i + 1
        );
    }
    // Its stale first intent and checkpoint arrive again, then it dies.
    proxy.release(intent);
    proxy.release(checkpoint);
    let _ = a.kill();
    let _ = a.wait();
    assert!(
        s.intent_files("shardId-000000000000")
            .iter()
            .all(|f| !f.contains("-1-")),
        "the stale intent (window 1's files) came back"
    );
    run_ok(s.worker(None, "b", "7", "4"), "B");
    assert_exactly_once(&s, &expected, "after the stale writes and B");
}

/// Review (fencing) finding 6: the replies to A's take, first intent and
/// first checkpoint are lost (the writes took effect; the SDK retries and
/// the retries' conditions fail): A reads the lease back, sees its own
/// write, keeps the shard, and lands every order once, with no cleanup.
#[test]
fn lost_replies_to_lease_writes_cost_nothing() {
    let s = Stream::new(1);
    s.make_lake();
    s.datagen(300, "32", "1573657200000", "1");
    let expected = expected_rows(&[("32", "1573657200000", 300)]);
    let proxy = FaultProxy::start(&s.moto.endpoint);
    proxy.add(
        "UpdateItem",
        Some("leaseCounter = :seen"),
        Fault::LoseReply,
        Some(1),
    );
    proxy.add("UpdateItem", Some(SET_INTENT), Fault::LoseReply, Some(1));
    proxy.add("UpdateItem", Some(CHECKPOINT), Fault::LoseReply, Some(1));
    let said = run_ok(s.worker(Some(&proxy), "a", "7", "4"), "A");
    assert_exactly_once(&s, &expected, "after lost replies");
    assert!(
        !said.contains("\"cleanup\"") && !said.contains("Lost"),
        "A lost its shard over a lost reply:\n{said}"
    );
    let lost = proxy
        .calls()
        .iter()
        .filter(|c| c.rule.is_some() && c.status == Some(200))
        .count();
    assert_eq!(lost, 3, "three writes took effect with their replies lost");
}

/// Review (fencing) finding 2: B steals a shard from a live A and is
/// stopped while waiting out A's fence: it does not give the lease back (a
/// taker of a released lease waits for nothing, and A's fence may still
/// be open); the lease expires instead, and A takes it again.
#[test]
fn a_lease_stopped_during_its_quiet_period_is_not_given_back() {
    let s = Stream::new(2);
    s.make_lake();
    s.datagen(200, "33", "1573657200000", "1");
    let a = s
        .worker(None, "a", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let count = |who: &str| s.owners().values().filter(|o| o.as_str() == who).count();
    assert!(within(Duration::from_secs(30), || count("a") == 2).is_some());
    let b = s
        .worker(None, "b", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        within(Duration::from_secs(30), || count("b") == 1).is_some(),
        "B stole one shard"
    );
    signal(&b, "-TERM");
    let said = finish(b, Duration::from_secs(20));
    assert_eq!(
        count("b"),
        1,
        "B gave back a lease it stole less than a failover ago:\n{said}"
    );
    // It expires, and A, still running, takes it again.
    assert!(
        within(Duration::from_secs(30), || count("a") == 2).is_some(),
        "{:?}",
        s.owners()
    );
    signal(&a, "-TERM");
    finish(a, Duration::from_secs(30));
    let expected = expected_rows(&[("33", "1573657200000", 200)]);
    assert_exactly_once(&s, &expected, "after the stop");
}

/// Review (fencing) finding 3: owners on other failovers (a rolling deploy
/// that changes `ingest.failover_seconds`). A (failover 9 s) stops
/// renewing; B (failover 3 s) waits out A's 9 s, recorded in the lease,
/// not its own 3 s.
#[test]
fn a_taker_waits_out_the_owners_longer_failover() {
    let s = Stream::new(1);
    s.make_lake();
    s.datagen(200, "34", "1573657200000", "1");
    let proxy = FaultProxy::start(&s.moto.endpoint);
    let mut cmd = s.worker(Some(&proxy), "a", "7", "600");
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = args.iter().position(|a| a == "--failover-seconds").unwrap();
    let mut args = args;
    args[at + 1] = "9".into();
    cmd = s.lake_ingest(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let a = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    assert!(within(Duration::from_secs(30), || s
        .owners()
        .values()
        .any(|o| o == "a"))
    .is_some());
    proxy.add("UpdateItem", Some(OWNED_WRITE), Fault::Hold, None);
    let stopped = std::time::Instant::now();
    let b = s
        .worker(None, "b", "7", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let taken = within(Duration::from_secs(40), || {
        s.owners().values().any(|o| o == "b")
    });
    assert!(taken.is_some(), "B took the shard in the end");
    assert!(
        stopped.elapsed() >= Duration::from_secs(9),
        "B took A's lease {:?} after A stopped renewing, inside A's 9 s failover",
        stopped.elapsed()
    );
    proxy.release_all();
    signal(&a, "-TERM");
    signal(&b, "-TERM");
    finish(a, Duration::from_secs(30));
    finish(b, Duration::from_secs(30));
    let drained = s.worker(None, "c", "7", "4");
    run_ok(drained, "C");
    let expected = expected_rows(&[("34", "1573657200000", 200)]);
    assert_exactly_once(&s, &expected, "after the takeover");
}

/// Review (fencing) finding 4: one Kinesis record (KPL-aggregated) whose
/// 2,100 orders fall in 2,100 hours: its window needs more file keys than
/// a lease item holds, so the intent names a list object instead. A dies
/// after publishing; B reads the list, removes every file of A's, and
/// lands every order once; the list object goes.
#[test]
fn one_record_touching_thousands_of_partitions_names_its_files_in_a_list() {
    use lake_dataplane::ingest::kpl::{aggregate, UserRecord};
    let s = Stream::new(1);
    s.make_lake();
    let orders: Vec<Vec<u8>> = (0..2100u64)
        .map(|i| {
            format!(
                r#"{{"ordertime":{},"orderid":{i}}}"#,
                1_573_657_200_000u64 + i * 3_600_000
            )
            .into_bytes()
        })
        .collect();
    let users: Vec<UserRecord<'_>> = orders
        .iter()
        .map(|o| UserRecord {
            partition_key: "k",
            data: o,
        })
        .collect();
    s.put(aggregate(&users), "k");
    let out = s
        .worker_windows(None, "a", "1000", "600", "600")
        .env("LAKE_INGEST_FAILPOINT", "after-publish")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(86),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lease =
        s.rt.block_on(
            s.dynamo
                .get_item()
                .table_name("orders-leases")
                .key(
                    "leaseKey",
                    aws_sdk_dynamodb::types::AttributeValue::S(
                        "orders/shardId-000000000000".into(),
                    ),
                )
                .consistent_read(true)
                .send(),
        )
        .unwrap();
    let item = lease.item().unwrap();
    let list = item
        .get("intentList")
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("no intent list in {item:?}"))
        .clone();
    assert!(s.lake_objects().contains_key(&format!("orders/{list}")));
    let said = run_ok(s.worker(None, "b", "1000", "4"), "B");
    let (rows, _) = s.lake_rows_s3();
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["orderid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..2100).collect::<Vec<_>>(),
        "every order once:\n{said}"
    );
    assert!(
        !s.lake_objects().contains_key(&format!("orders/{list}")),
        "the list object outlived its window"
    );
}
