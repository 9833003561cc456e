//! `lakectl validate`: bad specs and the exact messages they produce.

use std::path::Path;
use std::process::Command;

use lake_testkit::{repo_root, tempdir};
use lakectl::spec::{self, Severity};

/// A temp env dir with the real `_base.yaml` (and the schema files it
/// names) and one `case.yaml` extending it.
fn env_dir_with(case_body: &str) -> tempfile::TempDir {
    let dir = tempdir();
    let shipped = repo_root().join("environments");
    std::fs::copy(shipped.join("_base.yaml"), dir.path().join("_base.yaml")).unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    for f in std::fs::read_dir(shipped.join("schemas")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join("schemas").join(f.file_name().unwrap())).unwrap();
    }
    let text = format!("extends: _base.yaml\nname: lake-case\n{case_body}");
    std::fs::write(dir.path().join("case.yaml"), text).unwrap();
    dir
}

/// Every diagnostic of `case`, as printed, with the temp dir stripped.
fn diagnostics(dir: &Path, env: &str) -> Vec<String> {
    let found = match spec::load_environment(dir, env) {
        Ok(loaded) => spec::validate::validate(&loaded.spec, &loaded.locator),
        Err(found) => found,
    };
    let prefix = format!("{}/", dir.display());
    found
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect()
}

#[test]
fn bad_specs_give_pinned_messages() {
    // (what, case body after `extends` and `name` on lines 1-2, expected diagnostics)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "misspelt key",
            "datasets:\n  orders:\n    stream:\n      shard: 4\n",
            &["case.yaml:6:7: unknown key `datasets.orders.stream.shard`; did you mean `shards`?"],
        ),
        (
            "misspelt top-level key",
            "ingset:\n  fleet_size: 2\n",
            &["case.yaml:3:1: unknown key `ingset`; did you mean `ingest`?"],
        ),
        (
            "wrong type",
            "datasets:\n  orders:\n    stream:\n      shards: many\n",
            &["case.yaml:6:7: datasets.orders.stream.shards: invalid type: string \"many\", expected a whole number from 0 to 4294967295"],
        ),
        (
            "five mistakes, one run (each at its place)",
            "network:\n  mode: new\n  cidr: 5\n  nat_gateways: yes\n  bogus: 1\ningest:\n  fleet_size: lots\nmetastor: {}\n",
            &[
                "case.yaml:5:3: network.cidr: invalid type: integer `5`, expected a string",
                "case.yaml:6:3: network.nat_gateways: unknown variant `yes`, expected one of `single`, `per-az`, `none`",
                "case.yaml:7:3: unknown key `network.bogus`; expected one of: cidr, availability_zones, public_subnets, private_subnets, subnet_prefix, nat_gateways, endpoints",
                "case.yaml:9:3: ingest.fleet_size: invalid type: string \"lots\", expected a whole number from 0 to 4294967295",
                "case.yaml:10:1: unknown key `metastor`; did you mean `metastore`?",
            ],
        ),
        (
            "self-managed Kafka in a protected environment",
            "protection:\n  termination_protection: true\nkafka:\n  mode: self-managed\n  bridge: {plugin: plugins/kinesis-kafka-connector-0.0.9.zip}\n",
            &["case.yaml:6:3: self-managed Kafka is for proofs of concept only: its brokers speak PLAINTEXT to the whole VPC without authentication, run as root, and download Kafka without a checksum. This environment is protected (`protection`), so it is refused; use `mode: msk` (TLS and IAM)"],
        ),
        (
            "a region with a typo",
            "region: eu-westt-1\n",
            &["case.yaml:3:1: region `eu-westt-1` is not an AWS region name (area-direction-number, such as `us-east-1` or `eu-central-2`)"],
        ),
        (
            "a duplicate key, where it repeats",
            "ingest:\n  fleet_size: 2\ningest:\n  fleet_size: 3\n",
            &["case.yaml:5:1: YAML syntax: duplicate entry with key \"ingest\""],
        ),
        (
            "unknown enum value",
            "datasets:\n  orders:\n    format: orc\n",
            &["case.yaml:5:5: datasets.orders.format: unknown variant `orc`, expected one of `csv`, `ndjson`, `parquet`"],
        ),
        (
            "YAML syntax",
            "datasets:\n  orders:\n    stream:\n      shards: [1\n",
            &["case.yaml:7:1: YAML syntax: did not find expected ',' or ']'"],
        ),
        (
            "replication above broker count",
            "datasets:\n  orders:\n    source: {kind: kafka, replication: 3}\n",
            &["case.yaml:5:27: replication 3 exceeds the 2 brokers (or is 0): set datasets.orders.source: {kind: kafka, replication: N}"],
        ),
        (
            "granularity not offered",
            "datasets:\n  orders:\n    granularity: minute\n",
            &["case.yaml:5:5: datasets.orders.granularity: unknown variant `minute`, expected `hour` or `day`"],
        ),
        (
            "Parquet lake files (the default) without a schema",
            "datasets:\n  orders:\n    schema: null\n",
            &["case.yaml:5:5: format parquet needs a schema: the Avro record schema of the columns (the dataset's table is typed by it), inline or `{file: name.avsc}` beside the spec"],
        ),
        (
            "an NDJSON dataset without a schema (its table is typed by it)",
            "datasets:\n  clicks:\n    format: ndjson\n",
            &["case.yaml:4:3: format ndjson needs a schema: the Avro record schema of the columns (the dataset's table is typed by it), inline or `{file: name.avsc}` beside the spec"],
        ),
        (
            "a schema that is not an Avro record",
            "datasets:\n  orders:\n    schema: {type: string}\n",
            &["case.yaml:5:5: the schema's top level must be an Avro record (\"type\": \"record\")"],
        ),
        (
            "a Kafka source without Kafka",
            "kafka: null\ndatasets:\n  orders:\n    source: {kind: kafka}\n",
            &["case.yaml:6:5: a Kafka source needs `kafka:` (MSK or self-managed); or write `source: {kind: stream}` when producers put records into the dataset's stream"],
        ),
        (
            "cron with five fields",
            "datasets:\n  orders:\n    compaction: cron(0 2 * * *)\n",
            &["case.yaml:5:5: schedule `cron(0 2 * * *)` has 5 fields; EventBridge cron takes 6: minutes hours day-of-month month day-of-week year, e.g. cron(0 2 * * ? *)"],
        ),
        (
            "self-managed Kafka: partitions below brokers",
            "kafka:\n  mode: self-managed\n  self_managed:\n    default_partitions: 2\n",
            &[
                "case.yaml:6:5: default_partitions 2 is below broker_count 3: some brokers would hold no partition of a new topic and sit idle",
                // `mode:` changed: the base's kafka section, bridge included, is replaced whole.
                "case.yaml:3:1: warning: no bridge: nothing copies Kafka's topics to the datasets' streams, so every dataset reads its stream directly and the cluster feeds nothing. A `kafka:` whose `mode:` differs from the base's replaces the base's section whole, `bridge` included: write `bridge:` here again, or remove `kafka:`",
                "case.yaml:4:3: warning: self-managed brokers speak plaintext inside the VPC (security group limited to the VPC CIDR); use `mode: msk` for TLS and IAM",
            ],
        ),
        (
            "unknown Avro type in the lake schema",
            "datasets:\n  orders:\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: ordertime, type: long}\n        - {name: a, type: wat}\n",
            &["case.yaml:10:21: unknown type `wat`: not an Avro primitive (null, boolean, int, long, float, double, bytes, string) nor a named type defined before it"],
        ),
        (
            "time field missing from the schema",
            "datasets:\n  orders:\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: orderid, type: int}\n",
            &["_base.yaml:{time_field}:5: time_field `ordertime` is not a column of the schema (its columns: orderid); every record would be dead-lettered"],
        ),
        (
            "time field that cannot hold a time",
            "datasets:\n  orders:\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: ordertime, type: boolean}\n",
            &["_base.yaml:{time_field}:5: time_field `ordertime` is a boolean column; a record's time must be epoch seconds or milliseconds (int, long, double) or an ISO-8601 string"],
        ),
        (
            "column names Hive cannot take",
            "datasets:\n  orders:\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: ordertime, type: long}\n        - {name: order-id, type: int}\n        - {name: OrderTime, type: long}\n",
            &[
                "case.yaml:5:5: column `order-id` cannot be a Hive column: use letters, digits and `_`, starting with a letter or `_`, at most 128 characters",
                "case.yaml:5:5: columns `ordertime` and `OrderTime` are one column to Hive, which ignores case",
            ],
        ),
        (
            "partition column colliding with a column",
            "datasets:\n  orders:\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: ordertime, type: long}\n        - {name: dt, type: string}\n",
            &["case.yaml:5:5: column `dt` is also a partition key of the lake's directories (dt=%Y-%m-%d/hr=%H): readers that discover partitions (Spark, DuckDB, pyarrow, Athena) would read the directory's value instead of the column's; rename the field"],
        ),
        (
            "cron values EventBridge rejects",
            "datasets:\n  orders:\n    compaction: cron(99 99 * * ? *)\n",
            &["case.yaml:5:5: schedule `cron(99 99 * * ? *)`: minutes `99`: `99` is not between 0 and 59"],
        ),
        (
            "cron with both day fields",
            "datasets:\n  orders:\n    compaction: cron(0 2 * * * *)\n",
            &["case.yaml:5:5: schedule `cron(0 2 * * * *)`: exactly one of day-of-month and day-of-week must be `?` (EventBridge cannot take both), e.g. cron(0 2 * * ? *)"],
        ),
        (
            "a dataset named like a platform component",
            "datasets:\n  emr:\n    format: ndjson\n    schema: {file: schemas/pageviews.avsc}\n",
            &["case.yaml:4:3: dataset name `emr` is a platform component's name in `lakectl status` (reserved: kafka, stream, archive, ingest, fleet, metastore, emr, compaction, alarms, network, storage, iam); name the dataset for its data, e.g. `emr_events`"],
        ),
        (
            "two datasets naming the same resources",
            "datasets:\n  a_1:\n    format: ndjson\n    schema: {file: schemas/pageviews.avsc}\n  a1:\n    format: ndjson\n    schema: {file: schemas/pageviews.avsc}\n",
            &["case.yaml:7:3: datasets `a_1` and `a1` would name the same CloudFormation resources (A1…); rename one"],
        ),
        (
            "a bad dataset name",
            "datasets:\n  Orders-2:\n    format: ndjson\n    schema: {file: schemas/pageviews.avsc}\n",
            &["case.yaml:4:3: dataset name `Orders-2` must be 1-32 characters of a-z, 0-9 and `_`, starting with a letter: it names the Hive table, the stream and the lake folder"],
        ),
        (
            "a schema file that is not there",
            "datasets:\n  pageviews:\n    schema: {file: schemas/pageveiws.avsc}\n",
            &["case.yaml:5:14: cannot read the schema schemas/pageveiws.avsc: No such file or directory (os error 2)"],
        ),
        (
            "a schema that drops a column of its history",
            "datasets:\n  pageviews:\n    schema_history:\n      - {file: schemas/pageviews.avsc}\n    schema:\n      type: record\n      name: o\n      fields:\n        - {name: viewtime, type: long}\n        - {name: userid, type: string}\n",
            &["case.yaml:7:5: column `pageid` is gone: files already written hold it, and a removed or renamed field cannot be read back (against datasets.pageviews.schema_history.0). Keep the field (new records may leave it out: it reads as null), or start a new dataset or table version (e.g. `pageviews_v2`) for a schema that changes shape"],
        ),
        (
            "the single-dataset keys of before",
            "stream:\n  shards: 4\ningest:\n  format: csv\n  partition_format: ordertime=%Y%m%d%H\n",
            &[
                "case.yaml:3:1: `stream` moved to `datasets.<name>.stream`: the lake holds datasets now, each with its own stream, schema and table; docs/migrating-to-datasets.md shows a spec before and after, and how to move a running lake (environment case)",
                "case.yaml:7:3: `ingest.partition_format` moved to `datasets.<name>.granularity (hour: dt=YYYY-MM-DD/hr=HH, day: dt=YYYY-MM-DD)`: the lake holds datasets now, each with its own stream, schema and table; docs/migrating-to-datasets.md shows a spec before and after, and how to move a running lake (environment case)",
                "case.yaml:6:3: `ingest.format` moved to `datasets.<name>.format`: the lake holds datasets now, each with its own stream, schema and table; docs/migrating-to-datasets.md shows a spec before and after, and how to move a running lake (environment case)",
            ],
        ),
        (
            "MSK brokers not a multiple of the AZs",
            "network:\n  availability_zones: 3\nkafka:\n  msk:\n    broker_count: 4\n",
            &["case.yaml:7:5: MSK broker_count 4 is not a multiple of the 3 availability zones its brokers spread over"],
        ),
        (
            "overlapping subnet CIDRs",
            "network:\n  public_subnets: [10.20.0.0/20, 10.20.16.0/20]\n  private_subnets: [10.20.16.0/24, 10.20.64.0/20]\n",
            &["case.yaml:5:21: subnet 10.20.16.0/24 overlaps 10.20.16.0/20 (at case.yaml:4:34)"],
        ),
        (
            "subnet outside the VPC",
            "network:\n  private_subnets: [10.99.0.0/20, 10.20.64.0/20]\n",
            &["case.yaml:4:21: subnet 10.99.0.0/20 is outside the VPC CIDR 10.20.0.0/16"],
        ),
        (
            "invalid CIDR",
            "network:\n  cidr: 10.20.0.0/33\n",
            &["case.yaml:4:3: cidr `10.20.0.0/33` is not an IPv4 CIDR such as 10.20.0.0/16"],
        ),
        (
            "serverless capacity out of range",
            "metastore:\n  capacity:\n    mode: serverless\n    min_acu: 8\n    max_acu: 300\n",
            &["case.yaml:7:5: max_acu 300 must be 1 to 256 in steps of 0.5"],
        ),
        (
            "EMR release without a requested application",
            "emr:\n  release_label: emr-5.20.0\n  applications: [Spark, Hive, Hudi]\n",
            &["case.yaml:5:31: emr-5.20.0 does not offer Hudi (first in emr-5.28.0)"],
        ),
        (
            "misspelt EMR application",
            "emr:\n  applications: [Sprak, Hive, Hue]\n",
            &["case.yaml:4:18: `Sprak` is not an EMR application; did you mean `Spark`?"],
        ),
        (
            "bridge with a re-encoding converter",
            "kafka:\n  bridge:\n    value_converter: org.apache.kafka.connect.json.JsonConverter\n",
            &["case.yaml:5:5: value_converter `org.apache.kafka.connect.json.JsonConverter` would re-encode records; use org.apache.kafka.connect.storage.StringConverter or org.apache.kafka.connect.converters.ByteArrayConverter so JSON text reaches Kinesis"],
        ),
        (
            "an idle timeout on the long-running cluster",
            "emr:\n  idle_timeout_minutes: 60\n",
            &["case.yaml:4:3: idle_timeout_minutes 60 cannot work with the lake's Hive table: the cluster is long-running (steps target its id, registration runs every 15 minutes so it never idles); use 0"],
        ),
        (
            "an alert address that is not one",
            "alerts:\n  email:\n    - ops\n",
            &["case.yaml:5:7: `ops` is not an email address (name@example.com)"],
        ),
        (
            "subscriptions on a topic the platform does not own",
            "alerts:\n  topic_arn: arn:aws:sns:us-east-1:123456789012:ops\n  email:\n    - a@example.com\n",
            &["case.yaml:5:3: subscriptions belong to the topic's owner: with alerts.topic_arn, subscribe these addresses to that topic and leave alerts.email out"],
        ),
        (
            "an archive alarm inside Firehose's buffer",
            "alerts:\n  archive_freshness_minutes: 5\n",
            &["case.yaml:4:3: 5 minutes is within archive.buffer_seconds (300 s): the alarm would fire on every buffer; give more than 5 minutes"],
        ),
        (
            "account id guard malformed",
            "account_id: \"12345\"\n",
            &["case.yaml:3:1: account_id `12345` must be 12 digits (quote it in YAML to keep leading zeros)"],
        ),
    ];
    // Lines of `_base.yaml` fields some messages point at.
    let base = std::fs::read_to_string(repo_root().join("environments/_base.yaml")).unwrap();
    let line_of = |key: &str| {
        base.lines()
            .position(|l| l.trim_start().starts_with(key))
            .map(|i| (i + 1).to_string())
            .unwrap()
    };
    let time_field = line_of("time_field:");
    let mut failures = Vec::new();
    for (what, body, expected) in cases {
        let dir = env_dir_with(body);
        let got = diagnostics(dir.path(), "case");
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want: Vec<String> = expected
            .iter()
            .map(|s| s.replace("{time_field}", &time_field))
            .collect();
        want.sort();
        if got_sorted != want {
            failures.push(format!("{what}:\n  want {want:#?}\n  got  {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_in_a_base_point_into_the_base_file() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("_base.yaml"),
        "region: us-east-1\nnetwork:\n  mode: new\n  cidr: 10.0.0.0/8\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e.yaml"),
        "extends: _base.yaml\nname: lake-e\n",
    )
    .unwrap();
    assert_eq!(
        diagnostics(dir.path(), "e"),
        ["_base.yaml:4:3: a VPC CIDR must be /16 to /24, not /8"]
    );
}

#[test]
fn unknown_environment_suggests_the_closest() {
    let found = spec::load_environment(&repo_root().join("environments"), "prd").unwrap_err();
    assert!(
        found[0].message.contains("did you mean `prod`?"),
        "{}",
        found[0]
    );
}

#[test]
fn shipped_environments_are_valid_without_warnings() {
    let dir = repo_root().join("environments");
    let envs = spec::list_environments(&dir).unwrap();
    assert_eq!(envs, ["local", "poc", "prod"]);
    for env in envs {
        let (_, warnings) =
            spec::load_valid(&dir, &env).unwrap_or_else(|e| panic!("{env}: {e:#?}"));
        assert!(warnings.is_empty(), "{env}: {warnings:#?}");
    }
}

#[test]
fn cli_exit_codes_and_output() {
    let bin = env!("CARGO_BIN_EXE_lakectl");
    let ok = Command::new(bin)
        .current_dir(repo_root())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "local: ok\npoc: ok\nprod: ok\n"
    );

    // A misspelt flag is a usage error (64), never a meaningful code.
    let typo = Command::new(bin)
        .current_dir(repo_root())
        .args(["validate", "--outptu", "json"])
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("--output"));

    let dir = env_dir_with("datasets:\n  orders:\n    stream:\n      shard: 4\n");
    let bad = Command::new(bin)
        .args([
            "--env-dir",
            dir.path().to_str().unwrap(),
            "validate",
            "case",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.ends_with(
            "case.yaml:6:7: unknown key `datasets.orders.stream.shard`; did you mean `shards`?\n"
        ),
        "{stderr}"
    );

    let json = Command::new(bin)
        .args([
            "--env-dir",
            dir.path().to_str().unwrap(),
            "--output",
            "json",
            "validate",
        ])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report["diagnostics"][0]["field"],
        "datasets.orders.stream.shard"
    );
    assert_eq!(report["diagnostics"][0]["position"]["line"], 6);
    assert_eq!(report["valid"], serde_json::json!([]));
}

#[test]
fn warnings_do_not_fail_validation() {
    let dir = env_dir_with(
        "datasets:\n  orders:\n    partition_by: arrival-time\n    compaction: rate(1 day)\n",
    );
    let found = spec::load_valid(dir.path(), "case").expect("warnings only");
    assert_eq!(found.1.len(), 1);
    assert_eq!(found.1[0].severity, Severity::Warning);
    assert!(found.1[0].message.contains("rarely needs compaction"));
}
