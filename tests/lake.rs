//! The queryable lake, proven by a query engine: the lake steps script the
//! EMR and compaction stacks run (`render::steps`, published by `up`) and
//! the fleet's datasets file, taken from the render and run by bash with
//! the real AWS CLI and `lake-ingest` against the moto server, with `hive` served by
//! Spark SQL with Hive support (lake-testkit's `SqlEngine`; `s3://` reads
//! come from a mirror of moto's buckets). Then SQL through the table must
//! return exactly what the lake holds: rows, ids, values, sums, partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lake_testkit::{aws, repo_root, tempdir, workspace_bin, Moto, SqlEngine};
use lakectl::render::{self, RenderedEnv};
use lakectl::spec;
use serde_json::Value;

const BUCKET: &str = "lake-t-data";
const ARTIFACTS: &str = "lake-t-artifacts";
const LEASES: &str = "lake-t-ingest-leases";

/// One environment (`_base.yaml`, its orders in the given lake format and
/// its tables in a database of their own in the shared engine, plus
/// `extra` spec lines), its render, and a moto server with the data and
/// artifacts buckets.
struct Lab {
    moto: Moto,
    dir: tempfile::TempDir,
    rendered: RenderedEnv,
    format: &'static str,
    db: String,
    schema: PathBuf,
}

impl Lab {
    fn new(format: &'static str, db: &str) -> Lab {
        Lab::with(format, db, "")
    }

    fn with(format: &'static str, db: &str, extra: &str) -> Lab {
        let dir = tempdir();
        let rendered = Lab::render(dir.path(), format, db, extra);
        let loaded = Lab::load(dir.path());
        let schema = dir.path().join("schema.avsc");
        std::fs::write(
            &schema,
            loaded.spec.datasets["orders"]
                .schema_json()
                .unwrap()
                .to_string(),
        )
        .unwrap();
        let moto = Moto::start();
        for bucket in [BUCKET, ARTIFACTS] {
            aws(&moto, &["s3", "mb", &format!("s3://{bucket}")]);
        }
        Lab {
            moto,
            dir,
            rendered,
            format,
            db: db.to_string(),
            schema,
        }
    }

    /// Write the spec (the shipped `_base.yaml` and its schema files, and
    /// `lake.yaml`) under `dir` and render it.
    fn render(dir: &Path, format: &str, db: &str, extra: &str) -> RenderedEnv {
        let envs = dir.join("environments");
        std::fs::create_dir_all(envs.join("schemas")).unwrap();
        let shipped = repo_root().join("environments");
        std::fs::copy(shipped.join("_base.yaml"), envs.join("_base.yaml")).unwrap();
        for f in std::fs::read_dir(shipped.join("schemas")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, envs.join("schemas").join(f.file_name().unwrap())).unwrap();
        }
        std::fs::write(
            envs.join("lake.yaml"),
            format!(
                "extends: _base.yaml\nname: lake-t\nstorage:\n  database: {db}\ndatasets:\n  orders:\n    format: {format}\n{extra}"
            ),
        )
        .unwrap();
        render::render(&Lab::load(dir)).unwrap()
    }

    fn load(dir: &Path) -> spec::LoadedSpec {
        spec::load_valid(&dir.join("environments"), "lake")
            .unwrap_or_else(|e| panic!("{e:?}"))
            .0
    }

    /// A new spec for the same lab (`extra` lines after the orders' format):
    /// what a user's edit and `lakectl up` would publish.
    fn respec(&mut self, extra: &str) {
        self.rendered = Lab::render(self.dir.path(), self.format, &self.db, extra);
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .moto
            .aws_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.extend(SqlEngine::shared().script_env(&self.db));
        // The compaction job's Spark: local, two executor threads, a task
        // run again once after a failure (YARN's executors on EMR).
        env.push(("LAKE_SPARK_MASTER".into(), "local[2,2]".into()));
        env
    }

    /// A file `up` publishes for the nodes (by the end of its key).
    fn published(&self, suffix: &str) -> String {
        self.rendered
            .scripts
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the render publishes no {suffix}"))
    }

    /// The lake steps script, run by bash as the EMR steps run it (data
    /// bucket, artifacts bucket, lake-compact's hash, region, then `args`).
    fn steps(&self, sha: &str, args: &[&str]) -> Output {
        let path = self.dir.path().join("lake-steps.sh");
        std::fs::write(&path, self.published("/lake-steps.sh")).unwrap();
        Command::new("bash")
            .arg(&path)
            .args([BUCKET, ARTIFACTS, sha, "us-east-1"])
            .args(args)
            .envs(self.env())
            .output()
            .unwrap()
    }

    /// The EMR stack's `lake table` step for every dataset (also the
    /// 15-minute registration).
    fn register(&self) -> String {
        let out = self.steps("-", &["table", "all"]);
        assert_ok(&out, "the lake table step");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The compaction state machine's step for the orders, for one
    /// partition or all of them.
    fn compact(&self, partition: Option<&str>) -> Output {
        let bin = workspace_bin("lake-compact");
        let sha = lakectl::publish::sha256_file(&bin).unwrap();
        let key = format!("s3://{ARTIFACTS}/bin/lake-compact/{sha}/lake-compact");
        aws(
            &self.moto,
            &[
                "s3",
                "cp",
                "--only-show-errors",
                bin.to_str().unwrap(),
                &key,
            ],
        );
        let mut args = vec!["compact", "orders"];
        args.extend(partition);
        self.steps(&sha, &args)
    }

    fn sql(&self, sql: &str) -> Vec<Vec<Value>> {
        SqlEngine::shared().query(&self.moto, &self.db, sql)
    }

    /// `lake-ingest` with this lab's moto server.
    fn ingest(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("lake-ingest"))
            .args(args)
            .envs(self.moto.aws_env())
            .output()
            .unwrap()
    }

    fn lake_url(&self) -> String {
        format!("s3://{BUCKET}/lake/orders")
    }

    /// Files per partition directory in the lake (hidden paths excluded).
    fn lake_files(&self) -> BTreeMap<String, usize> {
        let listing = aws(
            &self.moto,
            &[
                "s3",
                "ls",
                "--recursive",
                &format!("s3://{BUCKET}/lake/orders/"),
            ],
        );
        let mut out = BTreeMap::new();
        for line in listing.lines() {
            let key = line.split_whitespace().last().unwrap_or_default();
            let rel = key.strip_prefix("lake/orders/").unwrap_or(key);
            if rel.split('/').any(|s| s.starts_with('_')) {
                continue;
            }
            if let Some((part, _)) = rel.rsplit_once('/') {
                *out.entry(part.to_string()).or_default() += 1;
            }
        }
        out
    }

    fn create_lease_table(&self) {
        aws(
            &self.moto,
            &[
                "dynamodb",
                "create-table",
                "--table-name",
                LEASES,
                "--billing-mode",
                "PAY_PER_REQUEST",
                "--attribute-definitions",
                "AttributeName=leaseKey,AttributeType=S",
                "--key-schema",
                "AttributeName=leaseKey,KeyType=HASH",
            ],
        );
    }
}

/// The compaction job's run summary: the JSON line it prints (and writes
/// to `_compaction/last-run.json`).
fn job_summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"started\""))
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no run summary in the job's output:\n{stdout}"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the lake must hold: the source orders, by id.
struct Expected {
    /// orderid -> (itemid, orderunits, ordertime ms)
    orders: BTreeMap<i64, (String, f64, i64)>,
}

impl Expected {
    /// The hour partitions of the orders (`dt=yyyy-MM-dd/hr=HH`, UTC).
    fn partitions(&self) -> BTreeSet<String> {
        self.orders
            .values()
            .map(|(_, _, ms)| hour_of(*ms))
            .collect()
    }

    fn sum_units(&self) -> f64 {
        self.orders.values().map(|(_, u, _)| u).sum()
    }
}

fn hour_of(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("dt={y:04}-{m:02}-{d:02}/hr={hour:02}")
}

/// `count` generated orders (seed 11, one every 0-5 s: several hourly
/// partitions), plus orders whose text CSV, JSON and Hive must carry
/// exactly: quotes, commas, backslashes, non-ASCII. `with_line_break` adds
/// one whose item holds a newline (a dead letter in CSV lakes).
fn source(dir: &Path, count: u64, with_line_break: bool) -> (PathBuf, Expected) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("orders.ndjson");
    let out = Command::new(workspace_bin("lake-ingest"))
        .args(["datagen", "--count", &count.to_string(), "--seed", "11"])
        .args(["--max-step-ms", "5000", "--output", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ok(&out, "datagen");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let base = count as i64;
    let special = [
        r#"Item \"quoted\", with a comma"#,
        r"back\\slash and \\\\ two",
        "unicode \u{e9} \u{65e5}\u{672c} \\u00e9scaped",
        "trailing space ",
    ];
    for (i, item) in special.iter().enumerate() {
        text.push_str(&format!(
            r#"{{"ordertime":1573657300000,"orderid":{},"itemid":"{item}","orderunits":{}.25,"address":{{"city":"C,ity","state":"S","zipcode":10001}}}}"#,
            base + i as i64,
            i + 1
        ));
        text.push('\n');
    }
    if with_line_break {
        text.push_str(&format!(
            r#"{{"ordertime":1573657300000,"orderid":{},"itemid":"two\nlines","orderunits":1.0,"address":{{"city":"C","state":"S","zipcode":1}}}}"#,
            base + 100
        ));
        text.push('\n');
    }
    std::fs::write(&path, &text).unwrap();
    let mut orders = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        orders.insert(
            v["orderid"].as_i64().unwrap(),
            (
                v["itemid"].as_str().unwrap().to_string(),
                v["orderunits"].as_f64().unwrap(),
                v["ordertime"].as_i64().unwrap(),
            ),
        );
    }
    (src, Expected { orders })
}

/// Everything the table returns, checked against `want`: every order once,
/// with its values, in its own partition, and the partitions registered are
/// the lake's directories.
fn assert_table_holds(lab: &Lab, want: &Expected, when: &str) {
    let rows = lab.sql(
        "SELECT CAST(orderid AS bigint), itemid, CAST(orderunits AS double), CAST(ordertime AS bigint), concat('dt=', dt, '/hr=', hr) FROM orders",
    );
    let mut got: BTreeMap<i64, (String, f64, i64)> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for r in &rows {
        let id = r[0]
            .as_i64()
            .unwrap_or_else(|| panic!("{when}: orderid {:?}", r[0]));
        let ms = r[3].as_i64().unwrap();
        assert_eq!(
            r[4].as_str().unwrap(),
            hour_of(ms),
            "{when}: order {id} is in partition {} but its time is {ms}",
            r[4]
        );
        let value = (
            r[1].as_str()
                .unwrap_or_else(|| panic!("{when}: itemid of {id} is {:?}", r[1]))
                .to_string(),
            r[2].as_f64().unwrap(),
            ms,
        );
        if got.insert(id, value).is_some() {
            duplicates.push(id);
        }
    }
    assert!(
        duplicates.is_empty(),
        "{when}: duplicated orders {duplicates:?}"
    );
    assert_eq!(
        rows.len(),
        want.orders.len(),
        "{when}: the table returns {} rows, the lake holds {} orders",
        rows.len(),
        want.orders.len()
    );
    let differ: Vec<String> = want
        .orders
        .iter()
        .filter(|(id, v)| got.get(id) != Some(v))
        .take(5)
        .map(|(id, v)| format!("order {id}: source {v:?}, table {:?}", got.get(id)))
        .collect();
    assert!(
        differ.is_empty(),
        "{when}: values differ from the source's:\n{}",
        differ.join("\n")
    );
    // Aggregates through the engine, as a user's query computes them.
    let agg = lab.sql(
        "SELECT count(*), count(DISTINCT orderid), sum(CAST(orderunits AS double)), count(DISTINCT dt, hr) FROM orders",
    );
    assert_eq!(agg[0][0].as_i64(), Some(want.orders.len() as i64), "{when}");
    assert_eq!(agg[0][1].as_i64(), Some(want.orders.len() as i64), "{when}");
    let sum = agg[0][2].as_f64().unwrap();
    assert!(
        (sum - want.sum_units()).abs() < 1e-6 * want.sum_units().max(1.0),
        "{when}: sum(orderunits) {sum} vs {}",
        want.sum_units()
    );
    let nulls = lab.sql(
        "SELECT count(*) FROM orders WHERE ordertime IS NULL OR orderid IS NULL OR itemid IS NULL \
         OR orderunits IS NULL OR address_city IS NULL OR address_state IS NULL OR address_zipcode IS NULL",
    );
    assert_eq!(
        nulls[0][0].as_i64(),
        Some(0),
        "{when}: NULLs where the source had values"
    );
    let partitions: BTreeSet<String> = lab
        .sql(&format!("SHOW PARTITIONS {}", storage_table(lab.format)))
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        partitions,
        want.partitions(),
        "{when}: registered partitions"
    );
    let dirs: BTreeSet<String> = lab.lake_files().keys().cloned().collect();
    assert_eq!(
        partitions, dirs,
        "{when}: partitions vs the lake's directories"
    );
}

fn storage_table(format: &str) -> &'static str {
    if format == "ndjson" {
        "orders_json"
    } else {
        "orders"
    }
}

#[test]
fn an_empty_lake_gets_its_table_and_the_steps_succeed() {
    let lab = Lab::new("csv", "empty_lake");
    lab.create_lease_table();
    // First `up`: the lake is empty when the EMR stack's step runs.
    let out = lab.register();
    for table in ["orders", "pageviews"] {
        assert!(
            out.contains(&format!(
                "lake table {table}: 0 partitions added, 0 dropped, 0 in the lake"
            )),
            "{out}"
        );
        assert_eq!(
            lab.sql(&format!("SELECT count(*) FROM {table}"))[0][0].as_i64(),
            Some(0)
        );
        assert!(lab.sql(&format!("SHOW PARTITIONS {table}")).is_empty());
    }
    // A whole-lake compaction run on an empty lake is a no-op, not a failure.
    let compacted = lab.compact(None);
    assert_ok(&compacted, "compaction of an empty lake");
    // spark-submit passes the Python driver's stderr to its stdout.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&compacted.stdout),
        String::from_utf8_lossy(&compacted.stderr)
    );
    assert!(
        said.contains("the source holds no files: nothing to do"),
        "{said}"
    );
    let summary = job_summary(&compacted);
    assert_eq!(
        (
            summary["planned_groups"].as_u64(),
            summary["workers"].as_u64()
        ),
        (Some(0), Some(0)),
        "{summary}"
    );
    // A misspelt partition is an error that names it.
    let typo = lab.compact(Some("dt=2019-11-13/hr=99"));
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&typo.stderr)
            .contains("dt=2019-11-13/hr=99: no objects under this prefix"),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
}

/// Backfill into the lake, register, query; compact one partition and the
/// whole lake through the compaction step, register again, query again.
fn round_trip(format: &'static str) {
    let lab = Lab::new(format, &format!("round_trip_{format}"));
    lab.create_lease_table();
    let (src, mut want) = source(lab.dir.path(), 6000, true);
    let out = lab.ingest(&[
        "backfill",
        "--from",
        src.to_str().unwrap(),
        "--sink",
        &lab.lake_url(),
        "--format",
        format,
        "--schema",
        lab.schema.to_str().unwrap(),
        "--roll-records",
        "400",
    ]);
    let line_break_id = 6100;
    if format == "csv" {
        // The order with a newline in a value cannot be a CSV lake row: it
        // is a dead letter (exit 2), with its reason.
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        want.orders.remove(&line_break_id);
        let dead = aws(
            &lab.moto,
            &[
                "s3",
                "ls",
                "--recursive",
                &format!("s3://{BUCKET}/lake/orders/_errors/"),
            ],
        );
        assert!(!dead.is_empty(), "the dead letter is kept");
    } else {
        assert_ok(&out, "backfill");
    }
    let files = lab.lake_files();
    assert!(files.len() >= 4, "several partitions: {files:?}");
    assert!(
        files.values().any(|n| *n > 1),
        "small files to compact: {files:?}"
    );

    let first = lab.register();
    assert!(
        first.contains(&format!(
            "{n} partitions added, 0 dropped, {n} in the lake",
            n = files.len()
        )),
        "{first}"
    );
    assert_table_holds(&lab, &want, "after backfill");
    if format == "parquet" {
        assert_pyarrow_reads(&lab, &want, "after backfill");
    }

    // A second registration changes nothing.
    let again = lab.register();
    assert!(again.contains("0 partitions added, 0 dropped"), "{again}");
    assert_table_holds(&lab, &want, "after a second registration");

    // Compaction of one partition, then of the whole lake, through the step.
    let (busiest, _) = files.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_ok(&lab.compact(Some(busiest)), "compaction of one partition");
    assert_eq!(lab.lake_files()[busiest], 1, "{busiest} is one file now");
    assert_table_holds(&lab, &want, "after compacting one partition");
    let whole = lab.compact(None);
    assert_ok(&whole, "compaction of the whole lake");
    let summary = job_summary(&whole);
    assert_eq!(summary["groups_failed"], 0, "{summary}");
    assert!(summary["groups_done"].as_u64() > Some(0), "{summary}");
    let after = lab.lake_files();
    assert!(after.values().all(|n| *n == 1), "{after:?}");
    // The manifest lives under _compaction/, never inside a partition as a file the table reads.
    let manifest = aws(
        &lab.moto,
        &[
            "s3",
            "ls",
            &format!("s3://{BUCKET}/lake/orders/_compaction/"),
        ],
    );
    // One manifest per worker of the Spark job, and the run's summary.
    assert!(
        manifest.contains("manifest-0.gz") && manifest.contains("last-run.json"),
        "{manifest}"
    );
    lab.register();
    assert_table_holds(&lab, &want, "after compaction and registration");
    if format == "parquet" {
        assert_pyarrow_reads(&lab, &want, "after compaction");
    }
}

/// The lake's Parquet files read through pyarrow (what pandas and most
/// Python tools read Parquet with), file by file: every file has the
/// schema's types, and together they hold exactly the expected orders.
fn assert_pyarrow_reads(lab: &Lab, want: &Expected, when: &str) {
    let local = lab.dir.path().join(format!("pyarrow {when}"));
    aws(
        &lab.moto,
        &[
            "s3",
            "sync",
            "--quiet",
            &format!("s3://{BUCKET}/lake/orders/"),
            local.to_str().unwrap(),
            "--exclude",
            "_*",
            "--exclude",
            "*/_*",
        ],
    );
    const READ: &str = r#"
import glob, json, sys
try:
    import pyarrow.parquet as pq
except ImportError:
    sys.exit("pyarrow is missing: pip install -r tools/requirements-engine.txt")
import pyarrow.compute as pc
def pc_min(t): return pc.min(t.column("ordertime")).as_py()
def pc_max(t): return pc.max(t.column("ordertime")).as_py()
files = sorted(glob.glob(sys.argv[1] + "/*=*/*=*/*.parquet"))
schemas, rows = set(), []
for f in files:
    t = pq.read_table(f)
    schemas.add(json.dumps([[n, str(ty)] for n, ty in zip(t.schema.names, t.schema.types)]))
    rows += zip(*(t.column(c).to_pylist() for c in ("orderid", "itemid", "orderunits", "ordertime")))
# The whole folder as users open it: pyarrow's and DuckDB's Hive-style
# partition discovery adds dt and hr, and no directory key shadows a column.
whole = pq.read_table(sys.argv[1])
try:
    import duckdb
except ImportError:
    sys.exit("duckdb is missing: pip install -r tools/requirements-engine.txt")
duck = duckdb.sql(
    "SELECT min(typeof(ordertime)), min(ordertime), max(ordertime), count(*), count(DISTINCT (dt, hr)) "
    "FROM read_parquet('%s/*/*/*.parquet', hive_partitioning = true)" % sys.argv[1]).fetchall()[0]
print(json.dumps({"files": len(files), "schemas": sorted(schemas), "rows": rows,
    "folder": {"ordertime": str(whole.schema.field("ordertime").type), "rows": whole.num_rows,
               "keys": [n for n in ("dt", "hr") if n in whole.schema.names],
               "min": pc_min(whole), "max": pc_max(whole)},
    "duckdb": list(duck)}))
"#;
    let python = lake_testkit::require_tool("python3", "Python 3 with pip");
    let out = Command::new(python)
        .args(["-c", READ])
        .arg(&local)
        .output()
        .expect("run python3");
    assert_ok(&out, "reading the lake with pyarrow");
    let read: Value = serde_json::from_slice(&out.stdout).expect("pyarrow read-back JSON");
    assert!(
        read["files"].as_u64().unwrap() > 0,
        "{when}: no Parquet files"
    );
    let schema = r#"[["ordertime", "int64"], ["orderid", "int32"], ["itemid", "string"], ["orderunits", "double"], ["address_city", "string"], ["address_state", "string"], ["address_zipcode", "int64"]]"#;
    assert_eq!(
        read["schemas"],
        serde_json::json!([schema]),
        "{when}: pyarrow reads other types"
    );
    let mut got = BTreeMap::new();
    for r in read["rows"].as_array().unwrap() {
        let id = r[0].as_i64().unwrap();
        let value = (
            r[1].as_str().unwrap().to_string(),
            r[2].as_f64().unwrap(),
            r[3].as_i64().unwrap(),
        );
        assert!(got.insert(id, value).is_none(), "{when}: order {id} twice");
    }
    assert!(got == want.orders, "{when}: pyarrow reads other orders");
    let times = want.orders.values().map(|(_, _, ms)| *ms);
    let (min, max) = (times.clone().min().unwrap(), times.max().unwrap());
    assert_eq!(
        read["folder"],
        serde_json::json!({"ordertime": "int64", "rows": want.orders.len(), "keys": ["dt", "hr"], "min": min, "max": max}),
        "{when}: pyarrow's read of the folder"
    );
    assert_eq!(
        read["duckdb"],
        serde_json::json!([
            "BIGINT",
            min,
            max,
            want.orders.len(),
            want.partitions().len()
        ]),
        "{when}: DuckDB's read_parquet with hive_partitioning"
    );
}

#[test]
fn a_csv_lake_reads_back_exactly() {
    round_trip("csv");
}

#[test]
fn a_parquet_lake_reads_back_exactly() {
    round_trip("parquet");
}

#[test]
fn an_ndjson_lake_reads_back_exactly() {
    round_trip("ndjson");
}

impl Lab {
    /// A one-shard stream with `orders` generated orders (seed `seed`),
    /// half of them KPL-aggregated.
    fn stream_with(&self, stream: &str, count: u64, seed: u64) -> Expected {
        self.create_stream(stream);
        let start = (1_573_657_200_000 + seed as i64 * 3_600_000).to_string();
        let half = (count / 2).to_string();
        // Half of the orders of seed `s` (to stdout, or `extra` says where).
        let datagen = |s: u64, extra: &[&str]| {
            let s = s.to_string();
            let mut args = vec![
                "datagen",
                "--count",
                &half,
                "--seed",
                &s,
                "--start-ms",
                &start,
                "--max-step-ms",
                "3000",
            ];
            args.extend_from_slice(extra);
            self.ingest(&args)
        };
        let to = format!("kinesis://{stream}");
        for (s, aggregate) in [(seed, "1"), (seed + 1000, "10")] {
            let out = datagen(s, &["--to", &to, "--aggregate", aggregate]);
            assert_ok(&out, "datagen --to kinesis");
        }
        // The same orders, as the lake must hold them (ids repeat across the
        // two seeds: key by id and seed).
        let mut orders = BTreeMap::new();
        for (k, s) in [(0i64, seed), (1, seed + 1000)] {
            let out = datagen(s, &[]);
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                orders.insert(
                    v["orderid"].as_i64().unwrap() * 2 + k,
                    (
                        v["itemid"].as_str().unwrap().to_string(),
                        v["orderunits"].as_f64().unwrap(),
                        v["ordertime"].as_i64().unwrap(),
                    ),
                );
            }
        }
        Expected { orders }
    }

    /// `lake-ingest run` into the lake as the fleet runs it (the rendered
    /// datasets file: every dataset's stream, one lease table), until idle.
    fn run_ingest(&self, failpoint: bool) -> Output {
        let config = self.dir.path().join("datasets.json");
        std::fs::write(&config, self.published("/datasets.json")).unwrap();
        for dataset in ["orders", "pageviews"] {
            self.create_stream(&format!("lake-t-{dataset}"));
        }
        let mut cmd = Command::new(workspace_bin("lake-ingest"));
        cmd.args(["run", "--config", config.to_str().unwrap()])
            .args(["--sink", &format!("s3://{BUCKET}")])
            .args([
                "--lease-table",
                LEASES,
                "--create-lease-table",
                "--worker-id",
                "w1",
            ])
            .args([
                "--roll-seconds",
                "1",
                "--roll-records",
                "300",
                "--exit-when-idle",
                "3",
                "--failover-seconds",
                "3",
            ])
            .envs(self.moto.aws_env());
        if failpoint {
            cmd.env("LAKE_INGEST_FAILPOINT", "after-publish");
        }
        cmd.output().unwrap()
    }

    fn create_stream(&self, stream: &str) {
        let exists = Command::new("aws")
            .args([
                "kinesis",
                "describe-stream-summary",
                "--stream-name",
                stream,
            ])
            .envs(self.moto.aws_env())
            .output()
            .unwrap();
        if !exists.status.success() {
            aws(
                &self.moto,
                &[
                    "kinesis",
                    "create-stream",
                    "--stream-name",
                    stream,
                    "--shard-count",
                    "1",
                ],
            );
        }
    }
}

/// Orders of two seeds share ids: the table's rows keyed like `stream_with`.
fn assert_stream_orders_once(lab: &Lab, want: &Expected, when: &str) {
    let rows = lab.sql("SELECT CAST(orderid AS bigint), itemid, CAST(orderunits AS double), CAST(ordertime AS bigint), concat('dt=', dt, '/hr=', hr) FROM orders");
    let mut got: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in &rows {
        let key = (r[1].as_str().unwrap().to_string(), r[3].as_i64().unwrap());
        assert_eq!(
            r[4].as_str().unwrap(),
            hour_of(key.1),
            "{when}: partition of {key:?}"
        );
        *got.entry(key).or_default() += 1;
    }
    let expected: BTreeMap<(String, i64), usize> =
        want.orders
            .values()
            .fold(BTreeMap::new(), |mut m, (item, _, ms)| {
                *m.entry((item.clone(), *ms)).or_default() += 1;
                m
            });
    let dupes = got
        .iter()
        .filter(|(k, n)| **n > expected.get(*k).copied().unwrap_or(0))
        .count();
    let missing = expected
        .iter()
        .filter(|(k, n)| got.get(*k).copied().unwrap_or(0) < **n)
        .count();
    assert_eq!(
        (rows.len(), dupes, missing),
        (want.orders.len(), 0, 0),
        "{when}: (rows, duplicated orders, missing orders)"
    );
}

/// Ingest publishes a window's files, then checkpoints; a crash between the
/// two makes the replay write the same files again. Compaction must not
/// merge (and delete) files before their checkpoint, or the replay's copies
/// would sit beside the compacted ones. Forced here with the ingest
/// failpoint between publish and checkpoint, ending in the Hive table.
#[test]
fn ingest_crash_between_publish_and_checkpoint_then_compaction_keeps_every_order_once() {
    crash_between_publish_and_checkpoint("csv");
}

/// Parquet (the default lake format): a replayed window must rewrite the
/// same files, and compaction must merge them, as for text.
#[test]
fn a_parquet_lake_keeps_every_order_once_through_the_same_crash() {
    crash_between_publish_and_checkpoint("parquet");
}

fn crash_between_publish_and_checkpoint(format: &'static str) {
    let lab = Lab::new(format, &format!("exactly_once_{format}"));
    let stream = "lake-t-orders";
    // Window 1: published and checkpointed.
    let mut want = lab.stream_with(stream, 2000, 1);
    assert_ok(&lab.run_ingest(false), "ingest of the first orders");
    // Window 2: published, then the worker dies before the checkpoint.
    let second = lab.stream_with(stream, 2000, 2);
    let crashed = lab.run_ingest(true);
    assert_eq!(
        crashed.status.code(),
        Some(86),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    // Compaction runs now: it takes window 1's files, leaves window 2's.
    let out = lab.compact(None);
    assert_ok(&out, "compaction between publish and checkpoint");
    // Every executor's lake-compact checked the lease table.
    let report = job_summary(&out);
    let uncommitted = report["uncommitted_files_left"].as_u64().unwrap();
    assert!(uncommitted > 0, "window 2's files are left alone: {report}");
    // The worker comes back (same id: its own lease once the failover shows
    // the old process gone) and replays window 2.
    assert_ok(&lab.run_ingest(false), "the replay");
    assert_ok(&lab.compact(None), "compaction after the checkpoint");
    lab.register();
    // Keys of the two batches must not collide with the first's.
    let offset = want.orders.keys().max().unwrap() + 1;
    want.orders
        .extend(second.orders.into_iter().map(|(k, v)| (k + offset, v)));
    assert_stream_orders_once(&lab, &want, "after crash, compaction, replay, compaction");
}

/// The control: the same interleaving without the lease table duplicates
/// orders, so the test above can fail.
#[test]
fn without_checkpoint_awareness_the_same_interleaving_duplicates() {
    let lab = Lab::new("csv", "race_control");
    let stream = "lake-t-orders";
    let want = lab.stream_with(stream, 2000, 1);
    let crashed = lab.run_ingest(true);
    assert_eq!(crashed.status.code(), Some(86));
    let url = lab.lake_url();
    let out = Command::new(workspace_bin("lake-compact"))
        .args(["--src", &url, "--dest", &url, "--delete-on-success"])
        .envs(lab.moto.aws_env())
        .output()
        .unwrap();
    assert_ok(&out, "compaction without --lease-table");
    assert_ok(&lab.run_ingest(false), "the replay");
    lab.register();
    let count = lab.sql("SELECT count(*) FROM orders")[0][0]
        .as_i64()
        .unwrap();
    assert!(
        count > want.orders.len() as i64,
        "{count} rows for {} orders: the race did not show",
        want.orders.len()
    );
}

/// The datagen records of `dataset` (`orders`, `pageviews`), as lines.
fn generated(lab: &Lab, dataset: &str, count: u64, seed: u64) -> Vec<Value> {
    let out = lab.ingest(&[
        "datagen",
        "--dataset",
        dataset,
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert_ok(&out, "datagen");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records put into `stream` one JSON document each (what any producer
/// does), through the AWS CLI.
fn put_records(lab: &Lab, stream: &str, records: &[Value]) {
    for chunk in records.chunks(100) {
        let entries: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| serde_json::json!({"Data": r.to_string(), "PartitionKey": i.to_string()}))
            .collect();
        let file = lab.dir.path().join("put-records.json");
        std::fs::write(&file, Value::Array(entries).to_string()).unwrap();
        aws(
            &lab.moto,
            &[
                "kinesis",
                "put-records",
                "--stream-name",
                stream,
                "--records",
                &format!("file://{}", file.display()),
            ],
        );
    }
}

/// Two datasets of one environment: each from its own stream, through one
/// worker and one lease table, into its own folder and table, partitioned
/// its own way (orders by their time, hourly; pageviews by arrival, daily).
#[test]
fn two_datasets_land_in_two_tables_from_their_own_streams() {
    let lab = Lab::new("parquet", "two_datasets");
    let want = lab.stream_with("lake-t-orders", 600, 3);
    lab.create_stream("lake-t-pageviews");
    let views = generated(&lab, "pageviews", 500, 4);
    put_records(&lab, "lake-t-pageviews", &views);
    assert_ok(&lab.run_ingest(false), "ingest of both streams");
    let out = lab.register();
    assert!(
        out.contains("lake table pageviews: 1 partitions added"),
        "{out}"
    );
    assert_stream_orders_once(&lab, &want, "orders beside pageviews");

    let rows = lab.sql("SELECT count(*), sum(viewtime), count(DISTINCT pageid) FROM pageviews");
    let sum: i64 = views.iter().map(|v| v["viewtime"].as_i64().unwrap()).sum();
    let pages: BTreeSet<&str> = views
        .iter()
        .map(|v| v["pageid"].as_str().unwrap())
        .collect();
    assert_eq!(
        (
            rows[0][0].as_i64(),
            rows[0][1].as_i64(),
            rows[0][2].as_i64()
        ),
        (Some(500), Some(sum), Some(pages.len() as i64)),
        "pageviews: (rows, sum of viewtime, pages)"
    );
    // Arrival time, by day: one `dt=` directory, no hour level.
    let partitions = lab.sql("SHOW PARTITIONS pageviews");
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    let p = partitions[0][0].as_str().unwrap();
    assert!(p.starts_with("dt=") && !p.contains('/'), "{p}");
    // One lease table, keyed by stream and shard.
    let leases = aws(
        &lab.moto,
        &[
            "dynamodb",
            "scan",
            "--table-name",
            LEASES,
            "--query",
            "Items[].leaseKey.S",
            "--output",
            "text",
        ],
    );
    let mut keys: Vec<&str> = leases.split_whitespace().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "lake-t-orders/shardId-000000000000",
            "lake-t-pageviews/shardId-000000000000"
        ],
        "{leases}"
    );
}

/// A producer adds a field before the spec knows it: the rows are kept
/// without it and the field is counted (not dead-lettered). Then the spec's
/// schema grows by that field (the old one in `schema_history`): the table
/// step adds the column, old rows read NULL, new rows their value.
fn schema_grows(format: &'static str) {
    let mut lab = Lab::new(format, &format!("evolution_{format}"));
    let stream = "lake-t-orders";
    let want = lab.stream_with(stream, 400, 5);
    let with_coupon = |lab: &Lab, seed: u64, n: u64| -> Vec<Value> {
        generated(lab, "orders", n, seed)
            .into_iter()
            .map(|mut v| {
                v["coupon"] = Value::String(format!("C-{}", v["orderid"]));
                v
            })
            .collect()
    };
    let early = with_coupon(&lab, 6, 30);
    put_records(&lab, stream, &early);
    let run = lab.run_ingest(false);
    assert_ok(&run, "ingest with an unknown field");
    let log = String::from_utf8_lossy(&run.stderr);
    let unknown: u64 = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "window")
        .map(|v| v["unknown_fields"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(unknown, 30, "every record's `coupon` counted once:\n{log}");
    assert!(log.contains("\"coupon\""), "the field is named:\n{log}");
    lab.register();
    let before = lab.sql("SELECT count(*) FROM orders");
    assert_eq!(before[0][0].as_i64(), Some(want.orders.len() as i64 + 30));

    // The schema grows: coupon, optional, appended; v1 kept as history.
    let v1 = Lab::load(lab.dir.path()).spec.datasets["orders"]
        .schema_json()
        .unwrap()
        .clone();
    let mut v2 = v1.clone();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "coupon", "type": ["null", "string"], "default": null}));
    lab.respec(&format!("    schema: {v2}\n    schema_history: [{v1}]\n"));
    let late = with_coupon(&lab, 7, 40);
    put_records(&lab, stream, &late);
    assert_ok(&lab.run_ingest(false), "ingest with the grown schema");
    let out = lab.register();
    assert!(out.contains("added columns `coupon` string"), "{out}");
    let rows = lab.sql(
        "SELECT count(*), count(coupon), count(DISTINCT coupon), sum(CASE WHEN coupon = concat('C-', CAST(orderid AS string)) THEN 1 ELSE 0 END) FROM orders",
    );
    assert_eq!(
        (
            rows[0][0].as_i64(),
            rows[0][1].as_i64(),
            rows[0][3].as_i64()
        ),
        (Some(want.orders.len() as i64 + 70), Some(40), Some(40)),
        "{format}: (rows, coupons, coupons matching their order) after the schema grew"
    );
}

#[test]
fn a_parquet_table_grows_a_column_and_reads_old_files() {
    schema_grows("parquet");
}

#[test]
fn a_csv_table_grows_a_column_and_reads_old_files() {
    schema_grows("csv");
}
