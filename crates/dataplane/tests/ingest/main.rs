//! `lake-ingest backfill`: raw-archive objects (newline-delimited or
//! back-to-back JSON, gzip) into the partitioned lake, locally and on S3
//! (moto server), with dead letters and idempotent re-runs; `lake-ingest
//! run` against Kinesis and DynamoDB on the moto server; and (`fencing`)
//! exactly once through the interleavings a paused, partitioned or
//! restarted worker produces, forced by a fault proxy in front of moto.

mod chaos;
mod fencing;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use lake_testkit::{repo_root, snapshot, tempdir, Moto};

fn schema() -> String {
    repo_root()
        .join("crates/dataplane/tests/data/orders.avsc")
        .display()
        .to_string()
}

fn backfill(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake-ingest"));
    cmd.arg("backfill").args(args);
    // The hourly layout these tests read back (`hour=YYYYMMDDHH`), unless
    // a test names its own.
    if !args.contains(&"--partition-format") {
        cmd.args(["--partition-format", "hour=%Y%m%d%H"]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// 300 orders over three hours, in an archive object like Firehose writes:
/// back-to-back JSON (no separators), gzip, with three bad records inside.
fn write_archive(dir: &Path) -> Vec<String> {
    let mut good = Vec::new();
    let mut body = Vec::new();
    for i in 0..300u64 {
        let t = 1_573_657_200_000 + i * 36_000; // 10 hours / 1000 … three hours in all
        let rec = format!(
            r#"{{"ordertime":{t},"orderid":{i},"itemid":"Item_{i}","orderunits":1.5,"address":{{"city":"C","state":"S","zipcode":{i}}}}}"#
        );
        body.extend_from_slice(rec.as_bytes());
        good.push(rec);
        if i == 100 {
            body.extend_from_slice(br#"{"orderid":1,"address":{"city":"no time"}}"#);
        }
        if i == 200 {
            body.extend_from_slice(b"{\"ordertime\":\"yesterday\",\"orderid\":2}\n{broken\n");
        }
    }
    let path = dir.join("raw/2019/11/13/15/lake-raw-archive-1.gz");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&body).unwrap();
    enc.finish().unwrap();
    good
}

#[test]
fn archive_objects_land_partitioned_with_dead_letters_and_reruns_change_nothing() {
    let dir = tempdir();
    let good = write_archive(dir.path());
    let (from, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let args = [
        "--from",
        from.to_str().unwrap(),
        "--sink",
        lake.to_str().unwrap(),
        "--schema",
        &schema(),
        "--format",
        "csv",
    ];
    let out = backfill(&args, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "dead letters -> exit 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("303 records: 300 written to 3 files, 3 dead-lettered"),
        "{stderr}"
    );

    let files = snapshot(&lake);
    let partitions: Vec<&str> = files
        .keys()
        .filter(|k| k.starts_with("hour="))
        .map(|k| k.split('/').next().unwrap())
        .collect();
    assert_eq!(
        partitions,
        ["hour=2019111315", "hour=2019111316", "hour=2019111317"]
    );
    let mut rows = 0;
    for (k, v) in files.iter().filter(|(k, _)| k.starts_with("hour=")) {
        let text = String::from_utf8(v.clone()).unwrap();
        // Lake CSV files are headerless: the Hive table declares the columns.
        for line in text.lines() {
            let ms: i64 = line.split(',').next().unwrap().parse().unwrap();
            let hour = (ms / 1000 - 1_573_657_200) / 3600;
            assert!(
                k.starts_with(&format!("hour=20191113{}", 15 + hour)),
                "{line} in {k}"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, good.len(), "every good record once");

    let dead = files
        .iter()
        .find(|(k, _)| k.starts_with("_errors/"))
        .expect("dead letters in _errors/")
        .1;
    let reasons: Vec<String> = String::from_utf8(dead.clone())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons[0].contains("time field `ordertime` is missing"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("time field `ordertime` \"yesterday\" is not an ISO-8601 time"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("invalid JSON"), "{reasons:?}");

    // Names are deterministic: a re-run overwrites, it never duplicates.
    assert_eq!(backfill(&args, &[]).status.code(), Some(2));
    let again = snapshot(&lake);
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    assert!(again == files);
}

#[test]
fn parquet_files_are_typed_by_the_schema_and_rows_that_do_not_fit_are_dead_letters() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    let dir = tempdir();
    let good = write_archive(dir.path());
    // One more object: a record whose orderid is text cannot be an int column.
    let extra = dir.path().join("raw/2019/11/13/16/lake-raw-archive-2");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(
        &extra,
        r#"{"ordertime":1573657200000,"orderid":"seven","itemid":"Item_x","orderunits":1,"address":{"city":"C","state":"S","zipcode":1}}"#,
    )
    .unwrap();
    let (from, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let args = [
        "--from",
        from.to_str().unwrap(),
        "--sink",
        lake.to_str().unwrap(),
        "--schema",
        &schema(),
        "--format",
        "parquet",
    ];
    let out = backfill(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("304 records: 300 written to 3 files, 4 dead-lettered"),
        "{stderr}"
    );
    let files = snapshot(&lake);
    let mut orderids = Vec::new();
    for key in files.keys().filter(|k| k.starts_with("hour=")) {
        assert!(key.ends_with(".parquet"), "{key}");
        let reader =
            SerializedFileReader::new(std::fs::File::open(lake.join(key)).unwrap()).unwrap();
        let columns: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| format!("{}:{}", c.name(), c.physical_type()))
            .collect();
        assert_eq!(
            columns,
            [
                "ordertime:INT64",
                "orderid:INT32",
                "itemid:BYTE_ARRAY",
                "orderunits:DOUBLE",
                "address_city:BYTE_ARRAY",
                "address_state:BYTE_ARRAY",
                "address_zipcode:INT64"
            ]
        );
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let hour = (row.get_long(0).unwrap() / 1000 - 1_573_657_200) / 3600;
            assert!(key.starts_with(&format!("hour=20191113{}", 15 + hour)));
            assert_eq!(row.get_double(3).unwrap(), 1.5);
            orderids.push(row.get_int(1).unwrap());
        }
    }
    orderids.sort();
    assert_eq!(orderids, (0..good.len() as i32).collect::<Vec<_>>());
    let dead: String = files
        .iter()
        .filter(|(k, _)| k.starts_with("_errors/"))
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    assert!(
        dead.contains(r#"column `orderid` is Int32 in the schema; the record has \"seven\""#),
        "{dead}"
    );
    // Deterministic bytes: a re-run rewrites the same files.
    backfill(&args, &[]);
    assert!(snapshot(&lake) == files);
}

#[test]
fn open_files_are_bounded_and_files_roll_by_records() {
    let dir = tempdir();
    write_archive(dir.path());
    let (from, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let args = [
        "--from",
        from.to_str().unwrap(),
        "--sink",
        lake.to_str().unwrap(),
        "--format",
        "ndjson",
        "--partition-format",
        "hour=%Y%m%d%H",
        "--roll-records",
        "40",
        "--max-open-files",
        "1",
    ];
    assert_eq!(backfill(&args, &[]).status.code(), Some(2));
    let files = snapshot(&lake);
    let data: Vec<_> = files
        .iter()
        .filter(|(k, _)| k.starts_with("hour="))
        .collect();
    assert!(
        data.iter()
            .all(|(_, v)| v.iter().filter(|&&b| b == b'\n').count() <= 40),
        "rolled at 40 records"
    );
    assert_eq!(
        data.iter()
            .map(|(_, v)| v.iter().filter(|&&b| b == b'\n').count())
            .sum::<usize>(),
        300
    );
    assert!(
        data.len() >= 8,
        "300 records in files of at most 40: {}",
        data.len()
    );
}

#[test]
fn arrival_time_needs_firehose_keys_and_csv_needs_a_schema() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("flat")).unwrap();
    std::fs::write(dir.path().join("flat/orders.ndjson"), "{\"ordertime\":1}\n").unwrap();
    let lake = dir.path().join("lake");
    let out = backfill(
        &[
            "--from",
            dir.path().join("flat").to_str().unwrap(),
            "--sink",
            lake.to_str().unwrap(),
            "--format",
            "ndjson",
            "--partition-by",
            "arrival-time",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("needs Firehose's yyyy/MM/dd/HH in the object key"));
    let out = backfill(
        &[
            "--from",
            dir.path().join("flat").to_str().unwrap(),
            "--sink",
            lake.to_str().unwrap(),
        ],
        &[],
    );
    // Parquet by default, as a spec's dataset: it needs the schema.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("format parquet needs an Avro record schema"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flags_are_checked_like_the_spec_and_a_sink_inside_the_source_is_refused() {
    let dir = tempdir();
    write_archive(dir.path());
    let from = dir.path().join("raw");
    let refused = |args: &[&str], why: &str, code: i32| {
        let out = backfill(args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    };
    let sink = dir.path().join("lake");
    let (from_s, sink_s, schema) = (from.to_str().unwrap(), sink.to_str().unwrap(), schema());
    // A time field the schema does not have: refused before any record is
    // read (validate's words), not 300 dead letters.
    refused(
        &[
            "--from",
            from_s,
            "--sink",
            sink_s,
            "--schema",
            &schema,
            "--time-field",
            "nope",
        ],
        "--time-field `nope` is not a column of the schema (its columns: ordertime, orderid",
        1,
    );
    // A token lakectl refuses is refused here too.
    refused(
        &[
            "--from",
            from_s,
            "--sink",
            sink_s,
            "--schema",
            &schema,
            "--partition-format",
            "x=%Q",
        ],
        "--partition-format: layout `x=%Q` has unknown token %Q",
        1,
    );
    // The lake inside the raw objects: a second run would read it back.
    let inside = from.join("lake");
    refused(
        &[
            "--from",
            from_s,
            "--sink",
            inside.to_str().unwrap(),
            "--schema",
            &schema,
        ],
        "overlap: the lake would be written among the raw objects",
        1,
    );
    assert!(!inside.exists(), "nothing written");
    // A misspelt flag: a usage error, never 2 ("records dead-lettered").
    refused(
        &["--from", from_s, "--sink", sink_s, "--bogus"],
        "--bogus",
        64,
    );
}

#[test]
fn s3_archive_into_an_s3_lake_on_the_moto_server() {
    let moto = Moto::start();
    let staging = tempdir();
    let good = write_archive(staging.path());
    let env = moto.aws_env();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(lake_dataplane::store::s3_client(
        Some(&moto.endpoint),
        Some("us-east-1"),
    ));
    let key = "raw/2019/11/13/15/lake-raw-archive-1.gz";
    rt.block_on(async {
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        client.create_bucket().bucket("lake").send().await.unwrap();
        let body = std::fs::read(staging.path().join(key)).unwrap();
        client
            .put_object()
            .bucket("lake")
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    });
    let out = backfill(
        &[
            "--from",
            "s3://lake/raw",
            "--sink",
            "s3://lake/lake/orders",
            "--format",
            "ndjson",
            "--partition-by",
            "arrival-time",
        ],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<String> = rt.block_on(async {
        let resp = client
            .list_objects_v2()
            .bucket("lake")
            .prefix("lake/orders/")
            .send()
            .await
            .unwrap();
        resp.contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect()
    });
    // Arrival time: the archive object's hour, from Firehose's key layout.
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("lake/orders/hour=2019111315/"))
            .count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("lake/orders/_errors/"))
            .count(),
        1
    );
    let data_key = keys.iter().find(|k| k.contains("hour=")).unwrap();
    let body = rt.block_on(async {
        client
            .get_object()
            .bucket("lake")
            .key(data_key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
    });
    // "yesterday" is only bad as an order time: by arrival time that record lands too.
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), good.len() + 2);
}

// ---------------------------------------------------------------------------
// `lake-ingest run` against Kinesis and DynamoDB on the moto server.

struct Stream {
    moto: Moto,
    rt: tokio::runtime::Runtime,
    kinesis: aws_sdk_kinesis::Client,
    dynamo: aws_sdk_dynamodb::Client,
}

impl Stream {
    /// A moto server with stream `orders` of `shards` shards.
    fn new(shards: i32) -> Stream {
        let moto = Moto::start();
        for (k, v) in moto.aws_env() {
            std::env::set_var(k, v);
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(&moto.endpoint)
                .load(),
        );
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        rt.block_on(
            kinesis
                .create_stream()
                .stream_name("orders")
                .shard_count(shards)
                .send(),
        )
        .unwrap();
        Stream {
            moto,
            rt,
            kinesis,
            dynamo,
        }
    }

    fn put(&self, data: Vec<u8>, key: &str) {
        use aws_sdk_kinesis::primitives::Blob;
        self.rt
            .block_on(
                self.kinesis
                    .put_record()
                    .stream_name("orders")
                    .partition_key(key)
                    .data(Blob::new(data))
                    .send(),
            )
            .unwrap();
    }

    /// `count` generated orders (seed, first order time) into the stream,
    /// `aggregate` to a KPL record ("1": plain records).
    fn datagen(&self, count: u32, seed: &str, start: &str, aggregate: &str) {
        let count = count.to_string();
        let out = self
            .lake_ingest(&[
                "datagen",
                "--count",
                &count,
                "--seed",
                seed,
                "--start-ms",
                start,
                "--to",
                "kinesis://orders",
                "--aggregate",
                aggregate,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reshard to `target` shards; (child, parent) of every child shard.
    fn reshard(&self, target: i32) -> Vec<(String, String)> {
        self.rt
            .block_on(
                self.kinesis
                    .update_shard_count()
                    .stream_name("orders")
                    .target_shard_count(target)
                    .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                    .send(),
            )
            .unwrap();
        let shards = self
            .rt
            .block_on(self.kinesis.list_shards().stream_name("orders").send())
            .unwrap();
        let children: Vec<(String, String)> = shards
            .shards()
            .iter()
            .filter_map(|sh| Some((sh.shard_id().to_string(), sh.parent_shard_id()?.to_string())))
            .collect();
        assert!(
            !children.is_empty(),
            "moto made no child shards: {:?}",
            shards.shards()
        );
        children
    }

    fn lake_ingest(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake-ingest"));
        cmd.args(args);
        for (k, v) in self.moto.aws_env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Lease owners: shard -> owner (empty before a worker made the table).
    fn owners(&self) -> BTreeMap<String, String> {
        let Ok(resp) = self
            .rt
            .block_on(self.dynamo.scan().table_name("orders-leases").send())
        else {
            return BTreeMap::new();
        };
        resp.items()
            .iter()
            .map(|i| {
                let get = |k: &str| {
                    i.get(k)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                // Keys are `<stream>/<shard>`; these tests read one stream.
                let key = get("leaseKey");
                let shard = key.strip_prefix("orders/").unwrap_or(&key).to_string();
                (shard, get("leaseOwner"))
            })
            .collect()
    }
}

/// The flattened NDJSON rows of generated orders (seed, start ms, count), sorted.
fn expected_rows(batches: &[(&str, &str, u32)]) -> Vec<String> {
    let dir = tempdir();
    let mut all = Vec::new();
    for (seed, start, count) in batches {
        let file = dir.path().join(format!("{seed}.ndjson"));
        let status = Command::new(env!("CARGO_BIN_EXE_lake-ingest"))
            .args([
                "datagen",
                "--count",
                &count.to_string(),
                "--seed",
                seed,
                "--start-ms",
                start,
                "--output",
                file.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let flat = Command::new(env!("CARGO_BIN_EXE_lake-ingest"))
            .arg("flatten")
            .arg(&file)
            .output()
            .unwrap();
        all.extend(
            String::from_utf8(flat.stdout)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    all.sort();
    all
}

/// Every data row under the lake (NDJSON files), sorted; and the dead letters.
fn lake_rows(lake: &Path) -> (Vec<String>, Vec<serde_json::Value>) {
    let (mut rows, mut dead) = (Vec::new(), Vec::new());
    for (k, v) in snapshot(lake) {
        let text = String::from_utf8(v).unwrap();
        if k.starts_with("_errors/") {
            dead.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
        } else if k.starts_with("hour=") {
            rows.extend(text.lines().map(String::from));
        }
    }
    rows.sort();
    (rows, dead)
}

fn run_args<'a>(lake: &'a str, worker: &'a str, idle: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--stream",
        "orders",
        "--sink",
        lake,
        "--format",
        "ndjson",
        "--create-lease-table",
        "--worker-id",
        worker,
        "--failover-seconds",
        "3",
        "--roll-seconds",
        "1",
        "--exit-when-idle",
        idle,
        "--partition-format",
        "hour=%Y%m%d%H",
    ]
}

#[test]
fn run_lands_every_good_record_once_through_a_sigkill_and_restart() {
    let s = Stream::new(4);
    // 20,000 orders: half plain, half KPL-aggregated 10 per record.
    let gen = |args: &[&str]| {
        let out = s.lake_ingest(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    gen(&[
        "datagen",
        "--count",
        "10000",
        "--seed",
        "1",
        "--to",
        "kinesis://orders",
    ]);
    gen(&[
        "datagen",
        "--count",
        "10000",
        "--seed",
        "2",
        "--start-ms",
        "1573700400000",
        "--to",
        "kinesis://orders",
        "--aggregate",
        "10",
    ]);
    // And bad ones: not JSON, no time field, a corrupted aggregate.
    s.put(b"not json".to_vec(), "bad-1");
    s.put(br#"{"orderid":1}"#.to_vec(), "bad-2");
    let mut agg =
        lake_dataplane::ingest::kpl::aggregate(&[lake_dataplane::ingest::kpl::UserRecord {
            partition_key: "k",
            data: b"{}",
        }]);
    let n = agg.len();
    agg[n - 1] ^= 0xff;
    s.put(agg, "bad-3");

    let expected = expected_rows(&[
        ("1", "1573657200000", 10_000),
        ("2", "1573700400000", 10_000),
    ]);

    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    // Killed mid-run (SIGKILL: no flush, no checkpoint, no release)...
    let mut child = s
        .lake_ingest(&run_args(&lake_s, "w1", "30"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    // ...then restarted with the same name, run until idle.
    let out = s
        .lake_ingest(&run_args(&lake_s, "w1", "3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, dead) = lake_rows(&lake);
    assert_eq!(
        rows.len(),
        expected.len(),
        "every good record exactly once (count)"
    );
    assert!(rows == expected, "every good record exactly once (content)");
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("MD5")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("time field `ordertime` is missing")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("invalid JSON")),
        "{reasons:?}"
    );
    // Graceful exit released every lease.
    assert!(
        s.owners().values().all(|o| o.is_empty()),
        "{:?}",
        s.owners()
    );
}

/// A new worker (another id) after the first one died holding every lease:
/// `--exit-when-idle` must wait out the failover and take the dead worker's
/// shards, not exit with the stream half read.
#[test]
fn a_new_worker_drains_the_shards_a_dead_worker_still_holds() {
    let s = Stream::new(4);
    for (seed, aggregate) in [("1", "1"), ("2", "10")] {
        s.datagen(4000, seed, "1573657200000", aggregate);
    }
    for i in 0..30 {
        s.put(format!("malformed {i}").into_bytes(), &format!("bad-{i}"));
    }
    let expected = expected_rows(&[("1", "1573657200000", 4000), ("2", "1573657200000", 4000)]);
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    // w1 keeps its windows open (60 s): when it dies, nothing is checkpointed.
    let mut first = run_args(&lake_s, "w1", "30");
    let at = first.iter().position(|a| *a == "--roll-seconds").unwrap();
    first[at + 1] = "60";
    let mut child = s
        .lake_ingest(&first)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once it holds leases (SIGKILL: nothing released).
    let held = within(std::time::Duration::from_secs(20), || {
        s.owners().values().filter(|o| o.as_str() == "w1").count() == 4
    });
    assert!(held.is_some(), "w1 took every lease: {:?}", s.owners());
    child.kill().unwrap();
    child.wait().unwrap();
    // The new worker's idle limit (2 s) is shorter than the failover (8 s):
    // it steals its fair share at once, and must not call the stream idle
    // before it could take the rest.
    let started = std::time::Instant::now();
    let mut second = run_args(&lake_s, "w2", "2");
    let at = second
        .iter()
        .position(|a| *a == "--failover-seconds")
        .unwrap();
    second[at + 1] = "8";
    let out = s.lake_ingest(&second).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, dead) = lake_rows(&lake);
    assert_eq!(
        rows.len(),
        expected.len(),
        "every good order once (count), not a partial lake"
    );
    assert!(rows == expected, "every good order once (content)");
    assert_eq!(dead.len(), 30, "every malformed record is a dead letter");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(8),
        "w2 waited for the failover (8 s) before taking w1's leases"
    );
}

#[test]
fn a_resharded_stream_is_read_parents_first_and_every_record_lands_once() {
    let s = Stream::new(2);
    let put = |seed: &str, start: &str| s.datagen(3000, seed, start, "1");
    // Records in the two parents, a reshard to four (parents close, children
    // open), then records in the children only.
    put("1", "1573657200000");
    let children = s.reshard(4);
    put("2", "1573700400000");
    assert!(
        children.len() >= 2,
        "moto made no child shards: {children:?}"
    );

    let dir = tempdir();
    let lake = dir.path().join("lake");
    let out = s
        .lake_ingest(&run_args(lake.to_str().unwrap(), "w1", "3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, dead) = lake_rows(&lake);
    assert!(dead.is_empty(), "{dead:?}");
    let expected = expected_rows(&[("1", "1573657200000", 3000), ("2", "1573700400000", 3000)]);
    assert_eq!(
        rows.len(),
        expected.len(),
        "every record exactly once (count)"
    );
    assert!(rows == expected, "every record exactly once (content)");

    // Children wait for their parents. moto 5.2 keeps routing puts to the
    // closed parents and never ends a closed shard's iterator (no SHARD_END),
    // so here every record is in a parent and no child may have been started:
    // a child is read only once each parent's lease says SHARD_END.
    let leases =
        s.rt.block_on(s.dynamo.scan().table_name("orders-leases").send())
            .unwrap();
    // Each checkpoint also records the reader's lag (for `lakectl status`).
    let checkpointed: Vec<_> = leases
        .items()
        .iter()
        .filter(|i| i["checkpoint"].as_s().unwrap() != "TRIM_HORIZON")
        .collect();
    assert!(!checkpointed.is_empty());
    for lease in checkpointed {
        assert!(
            lease
                .get("millisBehindLatest")
                .and_then(|v| v.as_n().ok())
                .is_some_and(|n| n.parse::<u64>().is_ok()),
            "{lease:?}"
        );
    }
    let checkpoint = |shard: &str| {
        leases
            .items()
            .iter()
            .find(|i| i["leaseKey"].as_s().unwrap() == &format!("orders/{shard}"))
            .map(|i| i["checkpoint"].as_s().unwrap().clone())
            .unwrap()
    };
    for (child, parent) in &children {
        let parent = checkpoint(parent);
        if parent != "SHARD_END" {
            assert_eq!(
                checkpoint(child),
                "TRIM_HORIZON",
                "child {child} was read before its parent finished ({parent})"
            );
        }
    }
}

/// Poll `f` until it holds or `limit` passes; how long it took.
fn within(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    None
}

#[test]
fn workers_rebalance_when_one_joins_and_take_over_when_one_dies() {
    let s = Stream::new(4);
    let put = |seed: &str, start: &str| s.datagen(1000, seed, start, "1");
    put("1", "1573657200000");
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let count = |owners: &BTreeMap<String, String>, who: &str| {
        owners.values().filter(|o| o.as_str() == who).count()
    };

    // A alone holds every shard.
    let mut a = s
        .lake_ingest(&run_args(&lake_s, "A", "600"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        within(std::time::Duration::from_secs(20), || count(
            &s.owners(),
            "A"
        ) == 4)
        .is_some(),
        "A took all shards: {:?}",
        s.owners()
    );
    // B joins: the leases rebalance to two each.
    let b = s
        .lake_ingest(&run_args(&lake_s, "B", "600"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let even = within(std::time::Duration::from_secs(30), || {
        let o = s.owners();
        count(&o, "A") == 2 && count(&o, "B") == 2
    });
    assert!(even.is_some(), "rebalanced to 2 + 2: {:?}", s.owners());
    // A dies without a word: B takes its leases once they stop moving (failover 3 s).
    a.kill().unwrap();
    a.wait().unwrap();
    let takeover = within(std::time::Duration::from_secs(20), || {
        count(&s.owners(), "B") == 4
    });
    let took = takeover.unwrap_or_else(|| panic!("B took over A's shards: {:?}", s.owners()));
    assert!(
        took < std::time::Duration::from_secs(12),
        "takeover within the failover time and a few renewals: {took:?}"
    );
    eprintln!(
        "rebalance after B joined: {:?}; takeover after A was killed: {took:?} (failover 3 s)",
        even.unwrap()
    );
    // More orders arrive; then B is stopped politely.
    put("2", "1573700400000");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let pid = b.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = b.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM is a clean exit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.owners().values().all(|o| o.is_empty()),
        "leases released: {:?}",
        s.owners()
    );

    // Exactly once, through the rebalance, the kill and the stop.
    let expected = expected_rows(&[("1", "1573657200000", 1000), ("2", "1573700400000", 1000)]);
    let (rows, dead) = lake_rows(&lake);
    assert_eq!((rows.len(), dead.len()), (expected.len(), 0));
    assert!(rows == expected, "every record exactly once");

    // SIGTERM left every checkpoint at the last published record: a new
    // worker finds nothing to write.
    let before = snapshot(&lake);
    let out = s
        .lake_ingest(&run_args(&lake_s, "C", "2"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let after = snapshot(&lake);
    let data = |m: &BTreeMap<String, Vec<u8>>| {
        m.iter()
            .filter(|(k, _)| !k.starts_with("_ingest"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert!(
        data(&after) == data(&before),
        "nothing replayed after a clean stop"
    );
}

// ---------------------------------------------------------------------------
// Exactly once under zombies, steals, rolls and outages (issue 21).

/// The sequence numbers of a one-shard stream's records, in order.
fn sequence_numbers(s: &Stream) -> Vec<String> {
    let it =
        s.rt.block_on(
            s.kinesis
                .get_shard_iterator()
                .stream_name("orders")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send(),
        )
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string();
    let resp =
        s.rt.block_on(
            s.kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send(),
        )
        .unwrap();
    resp.records()
        .iter()
        .map(|r| r.sequence_number().to_string())
        .collect()
}

/// Run options with small rolls, one open file and NDJSON.
fn tight_args<'a>(lake: &'a str, worker: &'a str, idle: &'a str) -> Vec<&'a str> {
    let mut args = run_args(lake, worker, idle);
    args.extend(["--roll-records", "7", "--max-open-files", "1"]);
    args
}

/// A parent shard read to its end (Kinesis: no next iterator; moto never
/// says it, so `ShardEndProxy` does for the closed parents): its last window
/// is published, then `SHARD_END` is checkpointed and the lease released;
/// only then do its children start.
#[test]
fn a_closed_parent_ends_with_shard_end_and_its_children_start_after_it() {
    let s = Stream::new(2);
    let put = |seed: &str, start: &str| s.datagen(2000, seed, start, "1");
    put("1", "1573657200000");
    let children = s.reshard(4);
    put("2", "1573700400000");
    let parents: Vec<String> = {
        let mut p: Vec<String> = children.iter().map(|(_, p)| p.clone()).collect();
        p.sort();
        p.dedup();
        p
    };
    assert!(!children.is_empty() && !parents.is_empty(), "{children:?}");
    let proxy = lake_testkit::ShardEndProxy::start(&s.moto.endpoint, parents.clone());
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let mut cmd = s.lake_ingest(&run_args(lake.to_str().unwrap(), "w1", "3"));
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let out = cmd.output().unwrap();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    let (rows, dead) = lake_rows(&lake);
    assert!(dead.is_empty(), "{dead:?}");
    let expected = expected_rows(&[("1", "1573657200000", 2000), ("2", "1573700400000", 2000)]);
    assert_eq!(
        rows.len(),
        expected.len(),
        "every record exactly once (count)"
    );
    assert!(rows == expected, "every record exactly once (content)");
    let leases =
        s.rt.block_on(s.dynamo.scan().table_name("orders-leases").send())
            .unwrap();
    let lease = |shard: &str| {
        leases
            .items()
            .iter()
            .find(|i| i["leaseKey"].as_s().unwrap() == &format!("orders/{shard}"))
            .unwrap_or_else(|| panic!("no lease for {shard}"))
            .clone()
    };
    for p in &parents {
        let l = lease(p);
        assert_eq!(l["checkpoint"].as_s().unwrap(), "SHARD_END", "{p}: {l:?}");
        assert!(
            !l.contains_key("leaseOwner"),
            "a finished shard is released: {l:?}"
        );
    }
    for (child, _) in &children {
        let l = lease(child);
        let taken: u64 = l["leaseCounter"].as_n().unwrap().parse().unwrap();
        assert!(
            taken > 0,
            "child {child} was started after its parents ended: {l:?}"
        );
    }
    // The order, as the worker logged it: each parent finished before any child started.
    let first_child = children
        .iter()
        .filter_map(|(c, _)| logged.find(&format!("{c}: ")))
        .min();
    let last_parent_end = parents
        .iter()
        .map(|p| {
            logged
                .find(&format!("{p}: Finished"))
                .unwrap_or_else(|| panic!("{p} never finished: {logged}"))
        })
        .max()
        .unwrap();
    if let Some(child_at) = first_child {
        assert!(last_parent_end < child_at, "{logged}");
    }
}

/// SIGTERM (publish, checkpoint, release), then the exit status.
fn stop_gracefully(child: std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out.status
}

/// Several JSON objects in one Kinesis record, in different hours, with one
/// open file: each object has its own id, so no file name is used twice.
#[test]
fn objects_sharing_a_record_each_land_once() {
    let s = Stream::new(1);
    let t1 = 1_573_657_200_000u64;
    let t2 = t1 + 2 * 3_600_000;
    s.put(
        format!(
            r#"{{"ordertime":{t1},"orderid":1}}{{"ordertime":{t2},"orderid":2}}{{"ordertime":{t1},"orderid":3}}"#
        )
        .into_bytes(),
        "k",
    );
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let out = s
        .lake_ingest(&tight_args(&lake_s, "w1", "3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, dead) = lake_rows(&lake);
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["orderid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3], "every object once: {rows:?}");
    assert!(dead.is_empty(), "{dead:?}");
}

/// A lease whose intent was written by a worker that died between intent
/// and checkpoint, under other options, naming a boundary that is not a
/// record of the stream (trimmed, or spelt otherwise): the new owner
/// removes the old window's files, clears the intent, reads the shard from
/// the checkpoint in windows of its own and goes idle.
#[test]
fn a_previous_owners_unfinished_window_is_removed_and_read_again() {
    let s = Stream::new(1);
    for i in 0..40u64 {
        s.put(
            format!(
                r#"{{"ordertime":{},"orderid":{i}}}"#,
                1_573_657_200_000u64 + i * 1000
            )
            .into_bytes(),
            "k",
        );
    }
    let seqs = sequence_numbers(&s);
    assert_eq!(seqs.len(), 40);
    // A boundary no record has: the window is read again whole, whatever
    // the boundary says (a trimmed one, or one spelt with leading zeros).
    let boundary = format!("000{}", seqs[19]);
    assert!(!seqs.contains(&boundary));
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let stale = lake.join("hour=2019111315/shardId-000000000000-stale.ndjson");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "{\"orderid\":999}\n").unwrap();
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let lease_table = "orders-leases";
    s.rt.block_on(
        s.dynamo
            .create_table()
            .table_name(lease_table)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .attribute_definitions(
                aws_sdk_dynamodb::types::AttributeDefinition::builder()
                    .attribute_name("leaseKey")
                    .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                aws_sdk_dynamodb::types::KeySchemaElement::builder()
                    .attribute_name("leaseKey")
                    .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    s.rt.block_on(
        s.dynamo
            .put_item()
            .table_name(lease_table)
            .item("leaseKey", V::S("orders/shardId-000000000000".into()))
            .item("leaseCounter", V::N("5".into()))
            .item("checkpoint", V::S("TRIM_HORIZON".into()))
            .item("intent", V::S(boundary.clone()))
            .item("intentConfig", V::S("cut-by-other-options".into()))
            .item(
                "intentFiles",
                V::L(vec![V::S(
                    "hour=2019111315/shardId-000000000000-stale.ndjson".into(),
                )]),
            )
            .send(),
    )
    .unwrap();
    let lake_s = lake.to_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let out = s
        .lake_ingest(&run_args(&lake_s, "w1", "3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "went idle and exited"
    );
    assert!(!stale.exists(), "the old window's file is removed");
    let (rows, dead) = lake_rows(&lake);
    assert_eq!(rows.len(), 40, "every record once: {rows:?}");
    assert!(dead.is_empty(), "{dead:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cleanup: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "cleanup")
        .unwrap_or_else(|| panic!("no cleanup line: {stderr}"));
    assert_eq!(cleanup["files_deleted"], 1, "{cleanup}");
    assert_eq!(cleanup["written_by"], "cut-by-other-options", "{cleanup}");
    // The new files carry the new owner's epoch (the take set counter 6).
    assert!(
        snapshot(&lake)
            .keys()
            .filter(|k| k.starts_with("hour="))
            .all(|k| k.ends_with("-6.ndjson")),
        "{:?}",
        snapshot(&lake).keys().collect::<Vec<_>>()
    );
}

/// Two live processes with one worker id: the newcomer sees leases move
/// under its name with another incarnation and refuses to run; the first
/// keeps its shards; every record lands once.
#[test]
fn two_processes_with_one_worker_id_do_not_both_write() {
    let s = Stream::new(2);
    s.datagen(3000, "3", "1573657200000", "1");
    let expected = expected_rows(&[("3", "1573657200000", 3000)]);
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let first = s
        .lake_ingest(&tight_args(&lake_s, "w1", "600"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = within(std::time::Duration::from_secs(20), || {
        s.owners().values().filter(|o| o.as_str() == "w1").count() == 2
    });
    assert!(held.is_some(), "{:?}", s.owners());
    let second = s
        .lake_ingest(&tight_args(&lake_s, "w1", "3"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the twin must refuse: {said}");
    assert!(
        said.contains("another live process runs as worker `w1`"),
        "{said}"
    );
    // The first still holds both shards and lands everything once.
    assert_eq!(
        s.owners().values().filter(|o| o.as_str() == "w1").count(),
        2
    );
    let landed = within(std::time::Duration::from_secs(60), || {
        lake_rows(&lake).0.len() >= expected.len()
    });
    assert!(landed.is_some(), "the first worker lands the stream");
    let status = stop_gracefully(first);
    assert!(status.success());
    let (rows, _) = lake_rows(&lake);
    assert_eq!(rows.len(), expected.len(), "every record once (count)");
    assert!(rows == expected, "every record once (content)");
}

/// A worker paused (SIGSTOP) longer than the failover while its window's
/// files roll: another worker takes the shard and lands it; the paused one,
/// resumed, publishes nothing (its files stayed in scratch and its intent
/// is refused).
#[test]
fn a_paused_worker_that_lost_its_lease_publishes_nothing() {
    let s = Stream::new(1);
    s.datagen(2000, "4", "1573657200000", "1");
    let expected = expected_rows(&[("4", "1573657200000", 2000)]);
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let mut zombie_args = tight_args(&lake_s, "zombie", "5");
    let at = zombie_args
        .iter()
        .position(|a| *a == "--roll-seconds")
        .unwrap();
    zombie_args[at + 1] = "30";
    let mut zombie = s
        .lake_ingest(&zombie_args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let held = within(std::time::Duration::from_secs(20), || {
        s.owners().values().any(|o| o == "zombie")
    });
    assert!(held.is_some());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let pid = zombie.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let other = s
        .lake_ingest(&tight_args(&lake_s, "other", "3"))
        .output()
        .unwrap();
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    // The lake's data files (scratch under `_ingest/` is the workers' own).
    let data = |lake: &Path| -> BTreeMap<String, Vec<u8>> {
        snapshot(lake)
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .collect()
    };
    let before = data(&lake);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let exited = within(std::time::Duration::from_secs(40), || {
        zombie.try_wait().unwrap().is_some()
    });
    if exited.is_none() {
        zombie.kill().unwrap();
    }
    let _ = zombie.wait();
    assert_eq!(
        data(&lake),
        before,
        "the resumed zombie changed nothing in the lake"
    );
    let (rows, _) = lake_rows(&lake);
    assert_eq!(rows.len(), expected.len(), "every record once (count)");
    assert!(rows == expected, "every record once (content)");
}

/// AWS unreachable for seconds in the middle of a run (connections dropped,
/// then HTTP 503): the worker waits it out and finishes; nothing is lost
/// or doubled.
#[test]
fn an_outage_of_aws_does_not_end_the_worker() {
    let s = Stream::new(2);
    s.datagen(4000, "5", "1573657200000", "1");
    let expected = expected_rows(&[("5", "1573657200000", 4000)]);
    let proxy = lake_testkit::FlakyProxy::start(&s.moto.endpoint);
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let mut cmd = s.lake_ingest(&tight_args(&lake_s, "w1", "4"));
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    proxy.outage();
    std::thread::sleep(std::time::Duration::from_secs(8));
    proxy.restore();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying"),
        "the outage was seen and waited out: {stderr}"
    );
    let (rows, _) = lake_rows(&lake);
    assert_eq!(rows.len(), expected.len(), "every record once (count)");
    assert!(rows == expected, "every record once (content)");
}

/// A flood of garbage: dead letters spill to scratch instead of memory and
/// land in `_errors/`, each naming its shard and sequence number.
#[test]
fn a_dead_letter_flood_spills_and_names_each_record() {
    let s = Stream::new(1);
    let junk = "x".repeat(20_000);
    for i in 0..80 {
        s.put(format!("garbage {i} {junk}").into_bytes(), "k");
    }
    let seqs = sequence_numbers(&s);
    let dir = tempdir();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_string();
    let out = s
        .lake_ingest(&run_args(&lake_s, "w1", "3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, dead) = lake_rows(&lake);
    assert!(rows.is_empty());
    assert_eq!(dead.len(), 80, "every record, > 1 MiB of dead letters");
    for (d, seq) in dead.iter().zip(&seqs) {
        assert_eq!(
            d["source"],
            format!("kinesis://orders/shardId-000000000000/{seq}"),
            "{d}"
        );
    }
    // The DeadLetters metric, as the ingest stack's metric filter reads it
    // from the log: the filter's selector and value, taken from the
    // template, applied to what lake-ingest logged.
    let template =
        std::fs::read_to_string(lake_testkit::repo_root().join("templates/ingest.yaml.j2"))
            .unwrap();
    let filter = &template[template
        .find("DeadLetterMetric:")
        .expect("the metric filter")..];
    let line_of = |key: &str| {
        filter
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the ingest template"))
            .trim()
            .to_string()
    };
    let pattern = line_of("FilterPattern:");
    let (field, want) = pattern
        .trim_matches('\'')
        .trim_matches(|c| c == '{' || c == '}' || c == ' ')
        .split_once(" = ")
        .map(|(f, v)| {
            (
                f.trim().trim_start_matches("$.").to_string(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .unwrap_or_else(|| panic!("a filter of the form {{ $.field = \"value\" }}: {pattern}"));
    let value = line_of("MetricValue:");
    let value = value.trim_start_matches("$.");
    let logged = String::from_utf8_lossy(&out.stderr);
    let windows: Vec<serde_json::Value> = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v[&field] == want.as_str())
        .collect();
    assert!(!windows.is_empty(), "no line matches {pattern}: {logged}");
    let metric: u64 = windows.iter().map(|w| w[value].as_u64().unwrap()).sum();
    assert_eq!(
        metric, 80,
        "the DeadLetters metric counts every dead letter once"
    );
    // One start line per process (the fleet's restart metric).
    let starts = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "start" && v["worker"] == "w1")
        .count();
    assert_eq!(starts, 1, "{logged}");
}
