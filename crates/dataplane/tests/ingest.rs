//! `lake-ingest backfill`: raw-archive objects (newline-delimited or
//! back-to-back JSON, gzip) into the partitioned lake, locally and on S3
//! (moto server), with dead letters and idempotent re-runs.

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
        .filter(|k| k.starts_with("ordertime="))
        .map(|k| k.split('/').next().unwrap())
        .collect();
    assert_eq!(
        partitions,
        [
            "ordertime=2019111315",
            "ordertime=2019111316",
            "ordertime=2019111317"
        ]
    );
    let mut rows = 0;
    for (k, v) in files.iter().filter(|(k, _)| k.starts_with("ordertime=")) {
        let text = String::from_utf8(v.clone()).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("ordertime,orderid,itemid,orderunits,address_city,address_state,address_zipcode"),
            "{k}"
        );
        for line in lines {
            let ms: i64 = line.split(',').next().unwrap().parse().unwrap();
            let hour = (ms / 1000 - 1_573_657_200) / 3600;
            assert!(
                k.starts_with(&format!("ordertime=20191113{}", 15 + hour)),
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
        "ordertime=%Y%m%d%H",
        "--roll-records",
        "40",
        "--max-open-files",
        "1",
    ];
    assert_eq!(backfill(&args, &[]).status.code(), Some(2));
    let files = snapshot(&lake);
    let data: Vec<_> = files
        .iter()
        .filter(|(k, _)| k.starts_with("ordertime="))
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format csv needs --schema"));
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
            .filter(|k| k.starts_with("lake/orders/ordertime=2019111315/"))
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
    let data_key = keys.iter().find(|k| k.contains("ordertime=")).unwrap();
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
