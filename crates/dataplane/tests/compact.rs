//! `lake-compact` end to end: local disk and S3 (moto server), every
//! format, manifests, failures isolated per group, and SIGKILL at random
//! moments followed by a run to completion.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lake_dataplane::compact::plan::read_manifest;
use lake_dataplane::datagen::{OrderSpec, Orders};
use lake_dataplane::flatten::{CsvLayout, FlattenConfig, Flattener};
use lake_testkit::{files_under, snapshot, tempdir, Moto};

const COLUMNS: [&str; 7] = [
    "ordertime",
    "orderid",
    "itemid",
    "orderunits",
    "address_city",
    "address_state",
    "address_zipcode",
];

/// `files` data files of `rows` orders each in `dir/partition/`, as the
/// ingest writer lays them out (CSV without a header); returns the relative
/// keys written.
fn write_partition(
    dir: &Path,
    partition: &str,
    files: usize,
    rows: usize,
    ext: &str,
    seed: u64,
) -> Vec<String> {
    let layout = CsvLayout::new(COLUMNS.iter().map(|s| s.to_string()).collect()).unwrap();
    let mut flattener = Flattener::new(FlattenConfig::default());
    let mut orders = Orders::new(OrderSpec {
        seed,
        ..OrderSpec::default()
    });
    std::fs::create_dir_all(dir.join(partition)).unwrap();
    let mut keys = Vec::new();
    for f in 0..files {
        let mut body = Vec::new();
        for _ in 0..rows {
            let mut line = Vec::new();
            orders.write_next(&mut line);
            let record = &line[..line.len() - 1];
            if ext.starts_with("csv") {
                flattener.flatten_csv(record, &layout, &mut body).unwrap();
            } else {
                flattener.flatten_ndjson(record, &mut body).unwrap();
            }
        }
        let key = format!("{partition}/part-{seed}-{f:04}.{ext}");
        let bytes = if ext.ends_with(".gz") {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body).unwrap();
            enc.finish().unwrap()
        } else {
            body
        };
        std::fs::write(dir.join(&key), bytes).unwrap();
        keys.push(key);
    }
    keys
}

/// Every data row under `dir` (hidden and bookkeeping files excluded; gzip
/// read), sorted: the lake's row multiset.
fn rows_under(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for path in files_under(dir) {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let data = [".csv", ".ndjson"]
            .iter()
            .any(|ext| rel.ends_with(ext) || rel.ends_with(&format!("{ext}.gz")));
        if rel
            .split('/')
            .any(|s| s.starts_with('_') || s.starts_with('.'))
            || !data
        {
            continue;
        }
        let mut text = String::new();
        if rel.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = std::fs::read_to_string(&path).unwrap();
        }
        rows.extend(text.lines().map(String::from));
    }
    rows.sort();
    rows
}

/// Row multisets must match; on failure say how, briefly.
fn assert_same_rows(got: &[String], want: &[String], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} rows vs {} expected; first difference at {first}: {:?} vs {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}

fn compact(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lake-compact"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn csv_in_place_with_manifest_and_delete_on_success() {
    let dir = tempdir();
    let root = dir.path().join("lake");
    let mut sources = Vec::new();
    for (i, p) in [
        "ordertime=2019111315",
        "ordertime=2019111316",
        "ordertime=2019111317",
    ]
    .iter()
    .enumerate()
    {
        sources.extend(write_partition(&root, p, 20, 1000, "csv", i as u64));
    }
    std::fs::create_dir_all(root.join("ordertime=2019111315/_errors")).unwrap();
    std::fs::write(root.join("ordertime=2019111315/_errors/x.ndjson"), "{}\n").unwrap();
    let before = rows_under(&root);
    let lake = root.to_str().unwrap();
    let out = compact(&[
        "--src",
        lake,
        "--dest",
        lake,
        "--targetSize",
        "1",
        "--deleteOnSuccess",
        "--outputManifest",
        "manifest.gz",
    ]);
    ok(&out);
    assert_same_rows(
        &rows_under(&root),
        &before,
        "the same rows, none lost or duplicated",
    );
    for key in &sources {
        assert!(!root.join(key).exists(), "{key} was compacted and deleted");
    }
    assert!(
        root.join("ordertime=2019111315/_errors/x.ndjson").exists(),
        "hidden files are not touched"
    );
    let outputs: Vec<String> = files_under(&root)
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|k| k.contains("/compacted"))
        .collect();
    let mib = 1024 * 1024;
    let mut per_partition: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for k in &outputs {
        per_partition
            .entry(k.split('/').next().unwrap())
            .or_default()
            .push(std::fs::metadata(root.join(k)).unwrap().len());
    }
    assert_eq!(per_partition.len(), 3);
    for sizes in per_partition.values() {
        assert!(
            sizes.len() >= 2,
            "more than 1 MiB per partition at a 1 MiB target must split: {sizes:?}"
        );
        // Near the target: every output but one is over half of it, none far above.
        assert!(
            sizes.iter().filter(|&&s| s < mib / 2).count() <= 1,
            "{sizes:?}"
        );
        assert!(sizes.iter().all(|&s| s <= mib + 200 * 1024), "{sizes:?}");
    }
    let manifest = read_manifest(&std::fs::read(root.join("manifest.gz")).unwrap()).unwrap();
    let expected: BTreeSet<String> = sources
        .iter()
        .map(|k| format!("file://{}", root.join(k).display()))
        .collect();
    assert_eq!(
        manifest, expected,
        "the manifest lists exactly the compacted sources"
    );
    assert!(
        files_under(&root.join("_compaction")).is_empty(),
        "no journal or temp file left"
    );

    // A second run finds nothing to do (outputs are not merged again).
    let again = snapshot(&root);
    ok(&compact(&[
        "--src",
        lake,
        "--dest",
        lake,
        "--target-size",
        "1",
        "--delete-on-success",
    ]));
    assert_eq!(snapshot(&root), again);
}

#[test]
fn to_another_destination_every_partition_arrives_single_files_too() {
    // Six partitions, one file each but the first: s3-dist-cp copies them
    // all; a destination that received 1 of 6 lost five partitions' rows.
    let dir = tempdir();
    let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
    for p in 0..6 {
        write_partition(
            &src,
            &format!("dt=2024-01-0{}", p + 1),
            if p == 0 { 3 } else { 1 },
            20,
            "csv",
            p,
        );
    }
    let (s, d) = (src.to_str().unwrap(), dest.to_str().unwrap());
    ok(&compact(&["--src", s, "--dest", d]));
    assert_same_rows(
        &rows_under(&dest),
        &rows_under(&src),
        "every source row in dest",
    );
    for p in 0..6 {
        assert!(
            dest.join(format!("dt=2024-01-0{}", p + 1)).is_dir(),
            "partition {p} missing"
        );
    }
    // In place a lone file stays as it is (nothing to merge).
    let before = rows_under(&src);
    ok(&compact(&["--src", s, "--dest", s, "--delete-on-success"]));
    assert_same_rows(&rows_under(&src), &before, "in place");
    assert!(src.join("dt=2024-01-02/part-1-0000.csv").exists());
    // A lake compacted in place, copied elsewhere: its compacted files are
    // rows like any others.
    let again = dir.path().join("again");
    ok(&compact(&["--src", s, "--dest", again.to_str().unwrap()]));
    assert_same_rows(
        &rows_under(&again),
        &rows_under(&src),
        "compacted files copied too",
    );
    // `src/.` is the same place as `src` (so --delete-on-success is needed);
    // a destination inside the source is refused.
    let dotted = format!("{s}/.");
    let out = compact(&["--src", s, "--dest", &dotted]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("are the same place"));
    let inside = format!("{s}/copy");
    let out = compact(&["--src", s, "--dest", &inside]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap (one inside the other)"));
}

#[test]
fn a_misspelt_flag_is_a_usage_error_never_a_result() {
    // 2 means "some groups failed": a typo must not read as that.
    let out = compact(&["--src", "a", "--dest", "b", "--delete-on-succes"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--delete-on-success"));
    let help = compact(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
}

#[test]
fn gzip_ndjson_to_another_destination_and_previous_manifest() {
    let dir = tempdir();
    let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
    let first = write_partition(&src, "ordertime=2019111315", 10, 200, "ndjson.gz", 7);
    let (s, d) = (src.to_str().unwrap(), dest.to_str().unwrap());
    ok(&compact(&[
        "--src",
        s,
        "--dest",
        d,
        "--output-manifest",
        "run1.gz",
    ]));
    assert_same_rows(&rows_under(&dest), &rows_under(&src), "dest after run 1");
    assert!(
        first.iter().all(|k| src.join(k).exists()),
        "without --delete-on-success sources stay"
    );
    assert!(dest
        .join("ordertime=2019111315/compacted0.ndjson.gz")
        .exists());

    // New files arrive; the previous manifest keeps run 1's files out of run 2.
    let second = write_partition(&src, "ordertime=2019111315", 3, 50, "ndjson.gz", 8);
    let previous = format!("file://{}", dest.join("run1.gz").display());
    ok(&compact(&[
        "--src",
        s,
        "--dest",
        d,
        "--previous-manifest",
        &previous,
        "--output-manifest",
        "run2.gz",
    ]));
    let run2 = read_manifest(&std::fs::read(dest.join("run2.gz")).unwrap()).unwrap();
    let expected: BTreeSet<String> = second
        .iter()
        .map(|k| format!("file://{}", src.join(k).display()))
        .collect();
    assert_eq!(run2, expected);
    assert!(dest
        .join("ordertime=2019111315/compacted1.ndjson.gz")
        .exists());
    assert_same_rows(
        &rows_under(&dest),
        &rows_under(&src),
        "dest holds every row once",
    );
}

#[test]
fn a_schema_mismatch_fails_its_group_only() {
    let dir = tempdir();
    let root = dir.path().join("lake");
    // CSV files with headers (not the lake's layout): `--csv-header keep-one`.
    let good = write_partition(&root, "ordertime=2019111315", 3, 10, "csv", 1);
    let bad = write_partition(&root, "ordertime=2019111316", 3, 10, "csv", 2);
    for (i, key) in good.iter().chain(&bad).enumerate() {
        let path = root.join(key);
        let header = if i == 4 { "order_time" } else { "ordertime" };
        let body = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{header},orderid,itemid\n{body}")).unwrap();
    }
    let bad_before: Vec<Vec<u8>> = bad
        .iter()
        .map(|k| std::fs::read(root.join(k)).unwrap())
        .collect();
    let lake = root.to_str().unwrap();
    let out = compact(&[
        "--src",
        lake,
        "--dest",
        lake,
        "--delete-on-success",
        "--csv-header",
        "keep-one",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has a different CSV header"), "{stderr}");
    let bad_after: Vec<Vec<u8>> = bad
        .iter()
        .map(|k| std::fs::read(root.join(k)).unwrap())
        .collect();
    assert_eq!(
        bad_after, bad_before,
        "the failed group's files are untouched"
    );
    assert!(
        root.join("ordertime=2019111315/compacted0.csv").exists(),
        "the good group is compacted"
    );
    assert!(!root.join("ordertime=2019111316/compacted0.csv").exists());
    assert!(files_under(&root.join("_compaction")).is_empty());
}

#[test]
fn workers_share_groups_without_overlap_and_dry_run_changes_nothing() {
    let dir = tempdir();
    let root = dir.path().join("lake");
    for p in 0..12 {
        write_partition(&root, &format!("ordertime=20191113{p:02}"), 3, 5, "csv", p);
    }
    let lake = root.to_str().unwrap();
    let before = snapshot(&root);
    let dry = compact(&["--src", lake, "--dest", lake, "--dry-run"]);
    ok(&dry);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("dry run: 12 groups"));
    assert_eq!(snapshot(&root), before);
    let rows = rows_under(&root);
    for w in ["0", "1", "2"] {
        ok(&compact(&[
            "--src",
            lake,
            "--dest",
            lake,
            "--delete-on-success",
            "--worker-index",
            w,
            "--worker-count",
            "3",
        ]));
    }
    let outputs = files_under(&root)
        .iter()
        .filter(|p| p.to_string_lossy().contains("compacted0.csv"))
        .count();
    assert_eq!(
        outputs, 12,
        "every partition compacted exactly once across workers"
    );
    assert_same_rows(&rows_under(&root), &rows, "after three workers");
}

/// A tiny Parquet file: (ordertime int64, itemid utf8) rows, uncompressed.
fn write_parquet(path: &Path, rows: &[(i64, &str)], extra_column: bool) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    let message = if extra_column {
        "message orders { required int64 ordertime; required binary itemid (UTF8); required int64 extra; }"
    } else {
        "message orders { required int64 ordertime; required binary itemid (UTF8); }"
    };
    let schema = Arc::new(parquet::schema::parser::parse_message_type(message).unwrap());
    let props = Arc::new(parquet::file::properties::WriterProperties::builder().build());
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    // Two row groups per file, to check that all are copied.
    for half in rows.chunks(rows.len().div_ceil(2).max(1)) {
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&half.iter().map(|r| r.0).collect::<Vec<_>>(), None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = half.iter().map(|r| ByteArray::from(r.1)).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        col.close().unwrap();
        if extra_column {
            let mut col = rg.next_column().unwrap().unwrap();
            col.typed::<Int64Type>()
                .write_batch(&vec![0; half.len()], None, None)
                .unwrap();
            col.close().unwrap();
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// A Parquet file's rows (as text) and the row count of each row group.
fn parquet_rows(path: &Path) -> (Vec<String>, Vec<i64>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let groups = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().to_string())
        .collect();
    (rows, groups)
}

#[test]
fn parquet_small_row_groups_are_rewritten_into_one_and_large_ones_copied() {
    let dir = tempdir();
    let root = dir.path().join("lake");
    let part = root.join("ordertime=2019111315");
    std::fs::create_dir_all(&part).unwrap();
    let mut expected = Vec::new();
    for f in 0..4 {
        let rows: Vec<(i64, String)> = (0..50)
            .map(|i| (f * 1000 + i, format!("Item_{f}_{i}")))
            .collect();
        let refs: Vec<(i64, &str)> = rows.iter().map(|(t, s)| (*t, s.as_str())).collect();
        let path = part.join(format!("part-{f}.parquet"));
        write_parquet(&path, &refs, false);
        expected.extend(parquet_rows(&path).0);
    }
    let lake = root.to_str().unwrap();
    ok(&compact(&[
        "--src",
        lake,
        "--dest",
        lake,
        "--delete-on-success",
    ]));
    let (mut rows, groups) = parquet_rows(&part.join("compacted0.parquet"));
    rows.sort();
    expected.sort();
    assert_eq!(rows, expected);
    assert_eq!(
        groups,
        [200],
        "8 row groups of 25 rows (4 files x 2) become one: the small-file problem must not move inside the file"
    );

    // Row groups already large are copied as they are; the small ones after
    // them are rewritten into one.
    let mixed = root.join("ordertime=2019111317");
    std::fs::create_dir_all(&mixed).unwrap();
    let big: Vec<(i64, String)> = (0..140_000).map(|i| (i, format!("Item_{i}"))).collect();
    let refs: Vec<(i64, &str)> = big.iter().map(|(t, s)| (*t, s.as_str())).collect();
    write_parquet(&mixed.join("a.parquet"), &refs, false);
    write_parquet(
        &mixed.join("b.parquet"),
        &[(-1, "x"), (-2, "y"), (-3, "z")],
        false,
    );
    let mut expected = parquet_rows(&mixed.join("a.parquet")).0;
    expected.extend(parquet_rows(&mixed.join("b.parquet")).0);
    ok(&compact(&[
        "--src",
        lake,
        "--dest",
        lake,
        "--delete-on-success",
    ]));
    let (rows, groups) = parquet_rows(&mixed.join("compacted0.parquet"));
    assert_eq!(rows, expected, "every row, in order");
    assert_eq!(groups, [70_000, 70_000, 3]);

    // A file with another schema fails its group, untouched.
    let other = root.join("ordertime=2019111316");
    std::fs::create_dir_all(&other).unwrap();
    write_parquet(&other.join("a.parquet"), &[(1, "x")], false);
    write_parquet(&other.join("b.parquet"), &[(2, "y")], true);
    let out = compact(&["--src", lake, "--dest", lake, "--delete-on-success"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different Parquet schema"));
    assert!(other.join("a.parquet").exists() && other.join("b.parquet").exists());
}

#[test]
fn s3_in_place_on_the_moto_server() {
    let moto = Moto::start();
    let staging = tempdir();
    let mut keys = Vec::new();
    for (i, p) in ["ordertime=2019111315", "ordertime=2019111316"]
        .iter()
        .enumerate()
    {
        keys.extend(write_partition(staging.path(), p, 8, 100, "csv", i as u64));
    }
    let before = rows_under(staging.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        for (k, v) in moto.aws_env() {
            std::env::set_var(k, v);
        }
        lake_dataplane::store::s3_client(Some(&moto.endpoint), Some("us-east-1")).await
    });
    rt.block_on(async {
        client.create_bucket().bucket("lake").send().await.unwrap();
        for k in &keys {
            let body = std::fs::read(staging.path().join(k)).unwrap();
            client
                .put_object()
                .bucket("lake")
                .key(format!("lake/orders/{k}"))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake-compact"));
    cmd.args([
        "--src",
        "s3://lake/lake/orders",
        "--dest",
        "s3://lake/lake/orders",
        "--delete-on-success",
        "--output-manifest",
        "manifest.gz",
    ]);
    for (k, v) in moto.aws_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    ok(&out);

    // Read the bucket back into a local mirror and compare.
    let mirror = tempdir();
    let listed: Vec<String> = rt.block_on(async {
        let resp = client
            .list_objects_v2()
            .bucket("lake")
            .prefix("lake/orders/")
            .send()
            .await
            .unwrap();
        let mut names = Vec::new();
        for o in resp.contents() {
            let key = o.key().unwrap().to_string();
            let body = client
                .get_object()
                .bucket("lake")
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let rel = key.strip_prefix("lake/orders/").unwrap().to_string();
            std::fs::create_dir_all(mirror.path().join(&rel).parent().unwrap()).unwrap();
            std::fs::write(mirror.path().join(&rel), &body).unwrap();
            names.push(rel);
        }
        names
    });
    assert_eq!(
        listed,
        [
            "manifest.gz",
            "ordertime=2019111315/compacted0.csv",
            "ordertime=2019111316/compacted0.csv"
        ],
        "sources deleted; no journal or temp object left"
    );
    assert_same_rows(&rows_under(mirror.path()), &before, "S3 after compaction");
    let manifest =
        read_manifest(&std::fs::read(mirror.path().join("manifest.gz")).unwrap()).unwrap();
    let expected: BTreeSet<String> = keys
        .iter()
        .map(|k| format!("s3://lake/lake/orders/{k}"))
        .collect();
    assert_eq!(manifest, expected);
}

/// xorshift for kill delays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_at_random_moments_then_completion_equals_one_clean_run() {
    let dir = tempdir();
    let pristine = dir.path().join("pristine");
    for p in 0..24 {
        write_partition(
            &pristine,
            &format!("ordertime=20191113{p:02}"),
            30,
            40,
            if p % 2 == 0 { "csv" } else { "ndjson" },
            p,
        );
    }
    let copy_to = |to: &Path| {
        for (rel, bytes) in snapshot(&pristine) {
            std::fs::create_dir_all(to.join(&rel).parent().unwrap()).unwrap();
            std::fs::write(to.join(&rel), bytes).unwrap();
        }
    };
    let args = |root: &Path| -> Vec<String> {
        let r = root.to_str().unwrap().to_string();
        [
            "--src",
            &r,
            "--dest",
            &r,
            "--delete-on-success",
            "--output-manifest",
            "m.gz",
            "--concurrency",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // The reference: one uninterrupted run.
    let clean = dir.path().join("clean");
    copy_to(&clean);
    let start = Instant::now();
    ok(&Command::new(env!("CARGO_BIN_EXE_lake-compact"))
        .args(args(&clean))
        .output()
        .unwrap());
    let mut clean_run = start.elapsed();
    let expected = snapshot(&clean);
    // A second, warm run: the first may have paid for a cold page cache or
    // a busy machine, and kills timed by it would land after the end.
    let again = dir.path().join("clean-again");
    copy_to(&again);
    let start = Instant::now();
    ok(&Command::new(env!("CARGO_BIN_EXE_lake-compact"))
        .args(args(&again))
        .output()
        .unwrap());
    clean_run = clean_run.min(start.elapsed());

    // Each trial: a fresh copy killed once at a point spread evenly across
    // the first three quarters of the clean run, then run to completion.
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut killed_mid_way = 0;
    let trials = 8;
    for trial in 0..=trials {
        let work = dir.path().join(format!("trial{trial}"));
        copy_to(&work);
        // The last trial is killed repeatedly at random early moments.
        let kills = if trial == trials { 6 } else { 1 };
        for _ in 0..kills {
            let delay = if trial == trials {
                Duration::from_micros(next(&mut seed) % (clean_run.as_micros() as u64 / 2 + 1))
            } else {
                clean_run * 3 * trial / (4 * trials)
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_lake-compact"))
                .args(args(&work))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                killed_mid_way += 1;
            }
            child.wait().unwrap();
        }
        ok(&Command::new(env!("CARGO_BIN_EXE_lake-compact"))
            .args(args(&work))
            .output()
            .unwrap());
        let got = snapshot(&work);
        let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&got),
            names(&expected),
            "trial {trial}: the same files"
        );
        for (name, bytes) in &expected {
            if name == "m.gz" {
                // Manifests hold absolute URLs: compare them relative to each root.
                let relative = |bytes: &[u8], root: &Path| -> BTreeSet<String> {
                    let prefix = format!("file://{}/", root.display());
                    read_manifest(bytes)
                        .unwrap()
                        .into_iter()
                        .map(|u| u.replace(&prefix, ""))
                        .collect()
                };
                assert_eq!(
                    relative(&got[name], &work),
                    relative(bytes, &clean),
                    "trial {trial}: manifest"
                );
            } else {
                assert!(got[name] == *bytes, "trial {trial}: {name} differs");
            }
        }
        assert_same_rows(
            &rows_under(&work),
            &rows_under(&pristine),
            "no row lost or duplicated",
        );
    }
    assert!(
        killed_mid_way >= 6,
        "kills must land mid-run (clean run took {clean_run:?}), got {killed_mid_way}"
    );
}

/// A typo never looks like success, and no manifest name leaves --dest.
#[test]
fn missing_sources_and_escaping_manifests_are_errors_that_name_them() {
    let dir = tempdir();
    let root = dir.path().join("lake");
    write_partition(&root, "ordertime=2019111315", 2, 5, "csv", 1);
    let lake = root.to_str().unwrap();
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let missing = format!("{lake}/ordertime=2019111399");
    let out = compact(&["--src", &missing, "--dest", &missing, "--delete-on-success"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!("lake-compact: error: --src {missing}: no such directory")
    );

    // An existing but empty directory is a no-op, said so.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let out = compact(&["--src", e, "--dest", e, "--delete-on-success"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&format!("--src {e} holds no files: nothing to do")),
        "{}",
        stderr(&out)
    );

    // An absolute name must not be written where it points (outside --dest).
    let outside = dir.path().join("outside.gz");
    let absolute = outside.to_str().unwrap().to_string();
    for name in [absolute.as_str(), "/", "../outside.gz", "a/../../x.gz", ""] {
        let out = compact(&[
            "--src",
            lake,
            "--dest",
            lake,
            "--delete-on-success",
            "--output-manifest",
            name,
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "--output-manifest {name}: the manifest is written inside --dest (e.g. _compaction/manifest.gz): `{name}` is not a key inside the store"
            )),
            "{name}: {}",
            stderr(&out)
        );
    }
    assert!(!outside.exists(), "nothing written outside --dest");
    // Nothing was touched by the refused runs.
    assert_eq!(files_under(&root).len(), 2);

    // A destination that cannot be written: the error names where.
    let out = compact(&["--src", lake, "--dest", "/proc/lake-compact-test"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/proc/lake-compact-test"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_s3_prefix_without_objects_is_an_error_unless_allowed() {
    let moto = Moto::start();
    let env = moto.aws_env();
    lake_testkit::aws(&moto, &["s3", "mb", "s3://lake"]);
    let url = "s3://lake/lake/orders/ordertime=2019111399";
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake-compact"));
        cmd.args(["--src", url, "--dest", url, "--delete-on-success"])
            .args(extra);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("lake-compact: error: --src {url}: no objects under this prefix (misspelt? S3 cannot tell a missing prefix from an empty one; pass --allow-empty-src where an empty source is expected)")
    );
    let out = run(&["--allow-empty-src"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// The compaction job (templates/lake_compact_job.py): lake-compact fanned
// out over Spark executors, run here by spark-submit (pyspark from PyPI)
// with a local master: two executor threads, a failed task run once more
// (`local[2,2]`; YARN's executors and maxFailures on EMR).

/// `spark-submit` of the job over `src` (in place, deleting sources), with
/// `env` (moto's, or a proxy's endpoint); its output.
fn spark_job(env: &[(&str, String)], src: &str, parallelism: u32, summary: &str) -> Output {
    let spark = lake_testkit::require_tool(
        "spark-submit",
        "pip install pyspark==3.5.2 (scripts/setup-tools.sh installs tools/requirements-engine.txt)",
    );
    let bin = env!("CARGO_BIN_EXE_lake-compact");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(bin).unwrap()))
    };
    let mut cmd = Command::new(spark);
    cmd.args([
        "--master",
        "local[2,2]",
        "--conf",
        "spark.log.level=WARN",
        "--conf",
        "spark.ui.enabled=false",
    ])
    .arg(lake_testkit::repo_root().join("templates/lake_compact_job.py"))
    .args(["--binary-url", bin, "--sha256", &sha])
    .args([
        "--parallelism",
        &parallelism.to_string(),
        "--summary",
        summary,
    ])
    .args(["--", "--src", src, "--dest", src, "--delete-on-success"])
    .args(["--output-manifest", "_compaction/manifest.gz"])
    .envs(lake_testkit::SPARK_JVM_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The summary line the job prints (spark-submit passes the driver's
/// stderr to stdout, so the whole output is searched).
fn job_summary(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("{\"started\""))
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no run summary; stdout:\n{text}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Relative path -> bytes of every file under `dir` that is lake data
/// (`_compaction/` bookkeeping excluded).
fn lake_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, p)
        })
        .filter(|(rel, _)| !rel.split('/').any(|s| s.starts_with('_')))
        .map(|(rel, p)| (rel, std::fs::read(p).unwrap()))
        .collect()
}

/// Twelve hourly partitions of six small CSV files each.
fn backlog(dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for h in 0..12u64 {
        keys.extend(write_partition(
            dir,
            &format!("dt=2019-11-13/hr={h:02}"),
            6,
            40,
            "csv",
            h,
        ));
    }
    keys
}

/// Every file under `dir` to the S3 `url` (a prefix ending in `/`).
fn upload(moto: &Moto, dir: &Path, url: &str) {
    lake_testkit::aws(
        moto,
        &[
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            dir.to_str().unwrap(),
            url,
        ],
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for p in files_under(from) {
        let rel = p.strip_prefix(from).unwrap();
        std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&p, to.join(rel)).unwrap();
    }
}

#[test]
fn the_spark_job_leaves_the_lake_a_single_process_leaves_on_disk_and_on_moto() {
    let staging = tempdir();
    let keys = backlog(staging.path());
    let rows = rows_under(staging.path());
    let bytes_in: u64 = keys
        .iter()
        .map(|k| std::fs::metadata(staging.path().join(k)).unwrap().len())
        .sum();

    // On disk: one process, and the job with two workers.
    let (one, job) = (tempdir(), tempdir());
    copy_tree(staging.path(), one.path());
    copy_tree(staging.path(), job.path());
    ok(&compact(&[
        "--src",
        one.path().to_str().unwrap(),
        "--dest",
        one.path().to_str().unwrap(),
        "--delete-on-success",
    ]));
    let summary_path = job.path().join("_compaction/last-run.json");
    let out = spark_job(
        &[],
        job.path().to_str().unwrap(),
        2,
        summary_path.to_str().unwrap(),
    );
    let summary = job_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    let single = lake_tree(one.path());
    assert_eq!(single.len(), 12, "one file per partition");
    assert_eq!(
        lake_tree(job.path()),
        single,
        "the same files, byte for byte"
    );
    assert_same_rows(&rows_under(job.path()), &rows, "the job's lake on disk");
    assert_eq!(summary["planned_groups"], 12, "{summary}");
    assert_eq!(summary["groups_done"], 12, "{summary}");
    assert_eq!(summary["groups_failed"], 0, "{summary}");
    assert_eq!(summary["workers"], 2, "{summary}");
    assert_eq!(summary["files_compacted"], 72, "{summary}");
    assert_eq!(summary["bytes_in"], bytes_in, "{summary}");
    assert_eq!(
        summary["bytes_out"], bytes_in,
        "CSV merges keep every byte: {summary}"
    );
    assert_eq!(summary["retried_workers"], serde_json::json!([]));
    let per_worker = summary["per_worker"].as_array().unwrap();
    assert_eq!(per_worker.len(), 2, "{summary}");
    assert!(
        per_worker.iter().all(|w| w["groups"].as_u64() > Some(0)),
        "both workers had groups: {summary}"
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(written["groups_done"], 12, "the summary status reads");
    // Each worker kept a manifest of its own; together they list every source.
    let mut listed = BTreeSet::new();
    for w in 0..2 {
        let m = job.path().join(format!("_compaction/manifest-{w}.gz"));
        listed.extend(read_manifest(&std::fs::read(m).unwrap()).unwrap());
    }
    assert_eq!(listed.len(), 72);

    // On the moto server: the same, through S3.
    let moto = Moto::start();
    let aws = |args: &[&str]| lake_testkit::aws(&moto, args);
    aws(&["s3", "mb", "s3://lake"]);
    for prefix in ["one", "job"] {
        upload(&moto, staging.path(), &format!("s3://lake/{prefix}/"));
    }
    let env = moto.aws_env();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake-compact"));
    cmd.args([
        "--src",
        "s3://lake/one",
        "--dest",
        "s3://lake/one",
        "--delete-on-success",
    ]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    ok(&cmd.output().unwrap());
    let out = spark_job(
        &env,
        "s3://lake/job",
        2,
        "s3://lake/job/_compaction/last-run.json",
    );
    let summary = job_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert_eq!(summary["groups_done"], 12, "{summary}");
    let (one, job) = (tempdir(), tempdir());
    for (prefix, dir) in [("one", &one), ("job", &job)] {
        aws(&[
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            &format!("s3://lake/{prefix}/"),
            dir.path().to_str().unwrap(),
        ]);
    }
    assert_eq!(lake_tree(job.path()), lake_tree(one.path()));
    assert_eq!(lake_tree(job.path()), single, "S3 and disk agree");
    assert_same_rows(&rows_under(job.path()), &rows, "the job's lake on moto");
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(job.path().join("_compaction/last-run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["groups_done"], 12);
}

#[test]
fn an_executor_killed_mid_group_is_run_again_once_and_the_lake_stays_exactly_once() {
    let staging = tempdir();
    backlog(staging.path());
    let rows = rows_under(staging.path());
    let moto = Moto::start();
    let aws = |args: &[&str]| lake_testkit::aws(&moto, args);
    aws(&["s3", "mb", "s3://lake"]);
    upload(&moto, staging.path(), "s3://lake/k/");
    // The first temp object a worker uploads is held at the proxy: that
    // worker is mid-group (journal written, nothing published).
    let proxy = lake_testkit::FaultProxy::start(&moto.endpoint);
    let hold = proxy.add(
        "PutObject",
        Some("/lake/k/_compaction/tmp/"),
        lake_testkit::Fault::Hold,
        Some(1),
    );
    let env: Vec<(&str, String)> = moto
        .aws_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL" {
                (k, proxy.endpoint.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let job = {
        let env = env.clone();
        std::thread::spawn(move || {
            spark_job(
                &env,
                "s3://lake/k",
                2,
                "s3://lake/k/_compaction/last-run.json",
            )
        })
    };
    assert!(
        proxy.wait_held(hold, 1, Duration::from_secs(180)),
        "no worker reached a temp upload"
    );
    // Which worker it is: its group's journal names the shard.
    let held = proxy
        .calls()
        .into_iter()
        .find(|c| c.rule == Some(hold))
        .expect("the held call");
    let group = held
        .target
        .rsplit('/')
        .next()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_string();
    let journal: serde_json::Value = serde_json::from_str(&aws(&[
        "s3",
        "cp",
        &format!("s3://lake/k/_compaction/journal/{group}.json"),
        "-",
    ]))
    .unwrap();
    let shard = journal["group"]["shard"].as_str().unwrap();
    let worker = lake_dataplane::compact::plan::worker_of(shard, 2);
    // SIGKILL that worker's lake-compact: its executor task fails.
    let needle = format!("--worker-index\0{worker}\0--worker-count\02");
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("s3://lake/k") && cmdline.contains(&needle) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            assert!(Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success());
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "one lake-compact process of worker {worker}");
    // Its upload reaches S3 after it died, as a dead process's request can.
    proxy.release_and_settle(hold, Duration::from_secs(30));
    let out = job.join().unwrap();
    let summary = job_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert_eq!(
        summary["retried_workers"],
        serde_json::json!([worker]),
        "{summary}"
    );
    for w in summary["per_worker"].as_array().unwrap() {
        let want = if w["worker"] == worker { 1 } else { 0 };
        assert_eq!(w["attempt"], want, "run again exactly once: {summary}");
    }
    assert_eq!(summary["groups_failed"], 0, "{summary}");
    let lake = tempdir();
    aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "s3://lake/k/",
        lake.path().to_str().unwrap(),
    ]);
    assert_same_rows(
        &rows_under(lake.path()),
        &rows,
        "after the kill and the retry",
    );
    let tree = lake_tree(lake.path());
    assert_eq!(tree.len(), 12, "one file per partition: {:?}", tree.keys());
    let left: Vec<String> = files_under(&lake.path().join("_compaction"))
        .into_iter()
        .map(|p| {
            p.strip_prefix(lake.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| p.contains("/journal/") || p.contains("/tmp/"))
        .collect();
    assert!(left.is_empty(), "no journal or temp object left: {left:?}");
}

/// An unfinished group (its journal says `writing`) and files that landed
/// after it in the same directory: the run rolls the journal forward and
/// plans the new files as a group of their own, under another output name
/// (the journal's outputs are reserved), here through `--partition`, which
/// reads the journals a whole-lake run keeps.
#[test]
fn a_new_group_never_takes_the_name_an_unfinished_one_will_publish() {
    let dir = tempdir();
    let old = write_partition(dir.path(), "p=1", 2, 30, "csv", 1);
    let sizes: Vec<u64> = old
        .iter()
        .map(|k| std::fs::metadata(dir.path().join(k)).unwrap().len())
        .collect();
    write_partition(dir.path(), "p=1", 2, 30, "csv", 2);
    write_partition(dir.path(), "p=2", 2, 30, "csv", 3);
    let rows = rows_under(dir.path());
    let journal = serde_json::json!({
        "version": 1,
        "state": "writing",
        "group": {
            "id": "0123456789abcdef0123",
            "format": "csv",
            "gzip": false,
            "sources": old.iter().zip(&sizes).map(|(k, s)| serde_json::json!({"key": k, "size": s})).collect::<Vec<_>>(),
            "outputs": [{"key": "p=1/compacted0.csv", "sources": [0, 1]}],
            "shard": "p=1/compacted"
        }
    });
    let journals = dir.path().join("_compaction/journal");
    std::fs::create_dir_all(&journals).unwrap();
    std::fs::write(
        journals.join("0123456789abcdef0123.json"),
        journal.to_string(),
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();
    let out = compact(&[
        "--src",
        root,
        "--dest",
        root,
        "--delete-on-success",
        "--partition",
        "p=1",
        "--output",
        "json",
    ]);
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recovered"], 1, "{report}");
    assert_eq!(report["groups"], 2, "{report}");
    let tree = lake_tree(dir.path());
    let names: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert!(
        names.contains(&"p=1/compacted0.csv") && names.contains(&"p=1/compacted1.csv"),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("p=2/")).count(),
        2,
        "another partition is left alone: {names:?}"
    );
    assert_same_rows(&rows_under(dir.path()), &rows, "after the roll-forward");
    assert!(files_under(&journals).is_empty(), "journal finished");
}
