//! `lakectl up / diff / status / outputs / down` against moto in server mode
//! (a real CloudFormation API endpoint on 127.0.0.1, started per test).
//! What `up` made is read back through the AWS SDKs, not through lakectl.

use std::path::PathBuf;
use std::process::{Command, Output};

use lake_testkit::{repo_root, tempdir, Moto};
use serde_json::Value;

/// One environment directory, artifacts and an emulator for one test.
struct Lab {
    moto: Moto,
    dir: tempfile::TempDir,
    /// One runtime for every SDK call of the test: pooled connections and
    /// streaming bodies belong to the runtime that opened them.
    rt: tokio::runtime::Runtime,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            moto: Moto::start(),
            dir: tempdir(),
            rt: tokio::runtime::Runtime::new().unwrap(),
        };
        std::fs::create_dir_all(lab.envs()).unwrap();
        for f in ["_base.yaml", "local.yaml", "schemas/pageviews.avsc"] {
            let to = lab.envs().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo_root().join("environments").join(f), to).unwrap();
        }
        std::fs::create_dir_all(lab.artifacts()).unwrap();
        for name in ["lake-ingest", "lake-compact"] {
            write_artifact(&lab.artifacts().join(name), &format!("{name} v1"));
        }
        lab
    }

    fn envs(&self) -> PathBuf {
        self.dir.path().join("environments")
    }

    fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// Replace text in the local spec.
    fn edit_local(&self, from: &str, to: &str) {
        let path = self.envs().join("local.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "local.yaml has no `{from}`");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    fn lakectl(&self, args: &[&str]) -> Output {
        self.lakectl_with(args, &[])
    }

    fn lakectl_with(&self, args: &[&str], extra: &[&str]) -> Output {
        self.lakectl_env(args, extra, &[])
    }

    /// `lakectl` with global flags `extra` and more environment variables.
    fn lakectl_env(&self, args: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakectl"));
        cmd.arg("--env-dir").arg(self.envs()).args(extra).args(args);
        for (k, v) in self.moto.aws_env() {
            cmd.env(k, v);
        }
        cmd.env("CI", "1")
            .env_remove("AWS_PROFILE")
            .envs(env.iter().copied());
        cmd.output().unwrap()
    }

    /// `lakectl up local` with this lab's artifacts; asserts the exit code.
    fn up(&self, extra: &[&str], code: i32) -> Output {
        let artifacts = self.artifacts();
        let mut args = vec!["up", "local", "--artifacts", artifacts.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = self.lakectl(&args);
        assert_eq!(o.status.code(), Some(code), "{}", text(&o));
        o
    }

    fn diff(&self, code: i32) -> Output {
        self.diff_with(&[], code)
    }

    /// `lakectl diff local --detailed-exitcode` with this lab's artifacts and
    /// `extra` flags; asserts the exit code.
    fn diff_with(&self, extra: &[&str], code: i32) -> Output {
        let artifacts = self.artifacts();
        let mut args = vec![
            "diff",
            "local",
            "--detailed-exitcode",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = self.lakectl(&args);
        assert_eq!(o.status.code(), Some(code), "{}", text(&o));
        o
    }

    /// `lakectl status local --output json`: exit code, stack rows, components.
    fn status(&self) -> (i32, Value, Value) {
        let o = self.lakectl(&["status", "local", "--output", "json"]);
        let all: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        (
            o.status.code().unwrap(),
            all["stacks"].clone(),
            all["components"].clone(),
        )
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn sdk_config(&self) -> aws_config::SdkConfig {
        let endpoint = self.moto.endpoint.clone();
        self.block_on(async move {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .load()
                .await
        })
    }

    /// Active stacks named `lake-local-*`, with their status.
    fn stacks(&self) -> Vec<(String, String)> {
        let cfn = aws_sdk_cloudformation::Client::new(&self.sdk_config());
        let mut found: Vec<(String, String)> = self
            .block_on(cfn.describe_stacks().send())
            .unwrap()
            .stacks()
            .iter()
            .filter(|s| s.stack_name().unwrap_or("").starts_with("lake-local-"))
            .map(|s| {
                (
                    s.stack_name().unwrap().to_string(),
                    s.stack_status().unwrap().as_str().to_string(),
                )
            })
            .collect();
        found.sort();
        found
    }

    /// Every event of every stack: nothing new = nothing was executed.
    fn event_count(&self) -> usize {
        let cfn = aws_sdk_cloudformation::Client::new(&self.sdk_config());
        self.stacks()
            .iter()
            .map(|(name, _)| {
                self.block_on(cfn.describe_stack_events().stack_name(name).send())
                    .unwrap()
                    .stack_events()
                    .len()
            })
            .sum()
    }

    fn open_shards(&self) -> i32 {
        let kinesis = aws_sdk_kinesis::Client::new(&self.sdk_config());
        self.block_on(
            kinesis
                .describe_stream_summary()
                .stream_name("lake-local-orders")
                .send(),
        )
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .open_shard_count()
    }
}

/// A stand-in binary: an ELF header, a glibc symbol version the hosts have,
/// and a version text (what the test changes to make a new artifact).
fn write_artifact(path: &std::path::Path, version: &str) {
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0GLIBC_2.17\0".to_vec();
    bytes.extend_from_slice(version.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const LOCAL_STACKS: [&str; 8] = [
    "lake-local-compaction",
    "lake-local-emr",
    "lake-local-iam",
    "lake-local-ingest",
    "lake-local-metastore",
    "lake-local-network",
    "lake-local-storage",
    "lake-local-stream",
];

#[test]
fn up_creates_every_stack_and_a_second_up_changes_nothing() {
    let lab = Lab::new();
    let first = lab.up(&["--yes", "--output", "json"], 0);
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["stacks"].as_object().unwrap().len(), 8, "{report}");
    assert!(report["stacks"]
        .as_object()
        .unwrap()
        .values()
        .all(|o| o == "created"));
    assert_eq!(
        report["uploaded_artifacts"],
        serde_json::json!(["lake-compact", "lake-ingest"])
    );
    let created = lab.stacks();
    assert_eq!(
        created,
        LOCAL_STACKS
            .iter()
            .map(|s| (s.to_string(), "CREATE_COMPLETE".to_string()))
            .collect::<Vec<_>>()
    );

    // status: every stack complete; every component ok from its own API,
    // except EMR: moto's CloudFormation EMR ignores KeepJobFlowAliveWhenNoSteps
    // and terminates the cluster at once, which status rightly calls down;
    // and the raw archive: moto's CloudFormation creates no Firehose
    // delivery stream (nor the output naming it).
    let (code, rows, components) = lab.status();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "CREATE_COMPLETE" && r["ok"] == true));
    let verdicts: Vec<(String, String)> = components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("orders".to_string(), "ok".to_string()),
            ("pageviews".into(), "ok".into()),
            ("archive".into(), "down".into()),
            ("ingest".into(), "ok".into()),
            ("fleet".into(), "ok".into()),
            ("metastore".into(), "ok".into()),
            ("emr".into(), "down".into())
        ],
        "{components}"
    );
    assert_eq!(components[0]["facts"]["open_shards"], "4");
    assert_eq!(components[0]["facts"]["table"], "lake.orders");
    assert_eq!(components[1]["facts"]["stream"], "lake-local-pageviews");
    assert_eq!(components[6]["facts"]["state"], "TERMINATED");
    // The fleet runs the artifact that was published.
    let sha = lakectl::publish::sha256_file(&lab.artifacts().join("lake-ingest")).unwrap();
    assert_eq!(components[4]["facts"]["artifact_sha256"], sha.as_str());
    assert_eq!(components[4]["facts"]["desired"], "0");
    assert_eq!(code, 1, "a component is down");

    // A stream deleted behind lakectl's back: CloudFormation still says
    // complete, status says down.
    let kinesis = aws_sdk_kinesis::Client::new(&lab.sdk_config());
    lab.block_on(
        kinesis
            .delete_stream()
            .stream_name("lake-local-orders")
            .send(),
    )
    .unwrap();
    let (_, rows_after, components) = lab.status();
    assert_eq!(rows_after, rows);
    assert_eq!(components[0]["verdict"], "down", "{components}");
    assert!(components[0]["summary"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // Put it back as it was for what follows.
    lab.block_on(
        kinesis
            .create_stream()
            .stream_name("lake-local-orders")
            .shard_count(4)
            .send(),
    )
    .unwrap();

    // Alarms: `up` created the alert topic (moto models SNS topics); moto's
    // CloudFormation models no CloudWatch alarm, so the ingest stack's lag
    // alarm is created here from its rendered definition, then set to
    // ALARM through the CloudWatch API: status puts it beside ingest.
    let outputs: Value = serde_json::from_slice(
        &lab.lakectl(&["outputs", "local", "--output", "json"])
            .stdout,
    )
    .unwrap();
    let topic = outputs["storage"]["AlertTopicArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(topic.ends_with(":lake-local-alerts"), "{topic}");
    let (spec, _) = lakectl::spec::load_valid(&repo_root().join("environments"), "local").unwrap();
    let rendered = lakectl::render::render(&spec).unwrap();
    let ingest: serde_yaml::Value =
        serde_yaml::from_str(&rendered.stack("ingest").unwrap().template).unwrap();
    let alarm = &ingest["Resources"]["OrdersIngestLagAlarm"]["Properties"];
    let name = alarm["AlarmName"].as_str().unwrap().to_string();
    assert_eq!(name, "lake-local-orders-lag");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&lab.sdk_config());
    lab.block_on(
        cloudwatch
            .put_metric_alarm()
            .alarm_name(&name)
            .namespace(alarm["Namespace"].as_str().unwrap())
            .metric_name(alarm["MetricName"].as_str().unwrap())
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("Stream")
                    .value("lake-local-orders")
                    .build(),
            )
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .period(alarm["Period"].as_i64().unwrap() as i32)
            .evaluation_periods(alarm["EvaluationPeriods"].as_i64().unwrap() as i32)
            .threshold(alarm["Threshold"].as_f64().unwrap())
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .alarm_actions(&topic)
            .send(),
    )
    .unwrap();
    let set = |state: aws_sdk_cloudwatch::types::StateValue, why: &str| {
        lab.block_on(
            cloudwatch
                .set_alarm_state()
                .alarm_name(&name)
                .state_value(state)
                .state_reason(why)
                .send(),
        )
        .unwrap();
    };
    set(
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "Threshold Crossed: iterator age 3 hours",
    );
    let (_, _, components) = lab.status();
    // The dataset's own row carries its alarm.
    let row = |components: &Value| {
        components
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "orders")
            .cloned()
            .unwrap_or_else(|| panic!("no orders row: {components}"))
    };
    let orders = row(&components);
    assert_eq!(orders["verdict"], "degraded", "{components}");
    assert!(
        orders["summary"]
            .as_str()
            .unwrap()
            .contains("ALARM lake-local-orders-lag"),
        "{orders}"
    );
    assert_eq!(
        orders["facts"]["alarm lake-local-orders-lag"],
        "Threshold Crossed: iterator age 3 hours"
    );
    set(aws_sdk_cloudwatch::types::StateValue::Ok, "back");
    let (_, _, components) = lab.status();
    assert_eq!(row(&components)["verdict"], "ok", "{components}");

    // Outputs flowed downstream: the ingest stack got the stream's name and
    // the artifact's content address, which is in the artifacts bucket.
    let outputs: Value = serde_json::from_slice(
        &lab.lakectl(&["outputs", "local", "--output", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(outputs["stream"]["OrdersStreamName"], "lake-local-orders");
    let bucket = outputs["storage"]["ArtifactsBucketName"]
        .as_str()
        .unwrap()
        .to_string();
    let sha = lakectl::publish::sha256_file(&lab.artifacts().join("lake-ingest")).unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&lab.sdk_config())
            .force_path_style(true)
            .build(),
    );
    let key = format!("bin/lake-ingest/{sha}/lake-ingest");
    let body = lab
        .block_on(async {
            s3.get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await?
                .body
                .collect()
                .await
                .map_err(|e| e.into())
        })
        .map_err(|e: Box<dyn std::error::Error>| e.to_string())
        .unwrap();
    assert_eq!(
        body.into_bytes().as_ref(),
        std::fs::read(lab.artifacts().join("lake-ingest")).unwrap()
    );

    // The last compaction run, from the summary the Spark job writes next
    // to the dataset's journals: none yet, then one with a failed group.
    let (_, _, components) = lab.status();
    assert!(
        row(&components)["summary"]
            .as_str()
            .unwrap()
            .contains("no compaction run yet"),
        "{components}"
    );
    let data_bucket = outputs["storage"]["DataBucketName"].as_str().unwrap();
    let run = serde_json::json!({
        "started": "2026-12-05T03:00:00Z", "seconds": 74.4, "planned_groups": 120,
        "workers": 8, "groups_done": 119, "groups_failed": 1, "files_compacted": 4000,
        "rows": 1000000, "bytes_in": 3221225472u64, "bytes_out": 3006477107u64,
        "uncommitted_files_left": 0, "retried_workers": [3], "per_worker": [],
        "failed": [{"group": "ab12", "error": "different Parquet schema", "worker": 2}]
    });
    lab.block_on(
        s3.put_object()
            .bucket(data_bucket)
            .key("lake/orders/_compaction/last-run.json")
            .body(run.to_string().into_bytes().into())
            .send(),
    )
    .unwrap();
    let (_, _, components) = lab.status();
    let orders = row(&components);
    assert_eq!(orders["verdict"], "degraded", "{orders}");
    assert!(
        orders["summary"].as_str().unwrap().contains(
            "last compaction 2026-12-05T03:00:00Z: 119 groups done, 1 failed, 3.0 GiB -> 2.8 GiB in 74 s"
        ),
        "{orders}"
    );
    assert_eq!(orders["facts"]["compaction_workers"], "8", "{orders}");
    lab.block_on(
        s3.delete_object()
            .bucket(data_bucket)
            .key("lake/orders/_compaction/last-run.json")
            .send(),
    )
    .unwrap();

    // EMR's in-transit encryption material is in place, as EMR reads it.
    let (tls_etag, zip_bytes) = lab.block_on(async {
        let tls = s3
            .get_object()
            .bucket(&bucket)
            .key("emr/tls-certificates.zip")
            .send()
            .await
            .unwrap();
        let etag = tls.e_tag().unwrap().to_string();
        (
            etag,
            tls.body.collect().await.unwrap().into_bytes().to_vec(),
        )
    });
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut names: Vec<&str> = archive.file_names().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "certificateChain.pem",
            "privateKey.pem",
            "trustedCertificates.pem"
        ]
    );

    // A second up: nothing planned, nothing executed, nothing uploaded.
    let events = lab.event_count();
    let second = lab.up(&["--output", "json"], 0);
    let report: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(
        report["stacks"]
            .as_object()
            .unwrap()
            .values()
            .all(|o| o == "no changes"),
        "{report}"
    );
    assert_eq!(report["executed_change_sets"], 0);
    assert_eq!(report["uploaded_artifacts"], serde_json::json!([]));
    assert_eq!(lab.event_count(), events, "the second up touched a stack");
    let again = lab
        .block_on(
            s3.head_object()
                .bucket(&bucket)
                .key("emr/tls-certificates.zip")
                .send(),
        )
        .unwrap();
    assert_eq!(
        again.e_tag(),
        Some(tls_etag.as_str()),
        "the TLS material was replaced"
    );
    lab.diff(0);

    // -v shows each AWS call (service, operation, status, time, attempts);
    // -q shows only the result.
    let verbose = lab.lakectl_with(&["status", "local"], &["-v"]);
    let said = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        said.lines().any(|l| l.starts_with("aws: ")
            && l.contains("DescribeStacks HTTP 200 ok in")
            && l.ends_with("(1 attempt)")),
        "{said}"
    );
    let quiet = lab.up(&["-q"], 0);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
    let plain = lab.lakectl(&["status", "local"]);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("aws: "));
}

#[test]
fn a_changed_spec_shows_in_diff_needs_approval_and_is_applied() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    assert_eq!(lab.open_shards(), 4);
    lab.edit_local("stream: {shards: 4}", "stream: {shards: 6}");
    // Moving the lake moves every grant on it: new resources in IAM policies.
    std::fs::write(
        lab.envs().join("local.yaml"),
        std::fs::read_to_string(lab.envs().join("local.yaml")).unwrap()
            + "storage:\n  lake_root: lake/v2\n",
    )
    .unwrap();

    let plan = String::from_utf8(lab.diff(2).stdout).unwrap();
    assert!(
        plan.contains("Stack lake-local-stream (stream): update"),
        "{plan}"
    );
    assert!(
        plan.contains("~ OrdersStream AWS::Kinesis::Stream"),
        "{plan}"
    );
    assert!(
        plan.contains("Properties.ShardCount: \"4\" -> \"6\""),
        "{plan}"
    );
    assert!(plan.contains("IAM and security group changes:"), "{plan}");
    assert!(
        plan.contains("+ IngestInstanceRole/ingest: Allow s3:PutObject on {\"Fn::Sub\":\"${DataBucketArn}/lake/v2/*\"}  [broadening]"),
        "{plan}"
    );
    assert!(
        plan.contains("Stack lake-local-network (network): no changes"),
        "{plan}"
    );
    let json: Value = serde_json::from_slice(
        &lab.lakectl(&[
            "diff",
            "local",
            "--output",
            "json",
            "--artifacts",
            lab.artifacts().to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(json["changes"], true);
    assert_eq!(json["broadening"], true);

    // Broadening needs --yes when nobody is at a terminal; nothing changes.
    let refused = lab.up(&[], 1);
    assert!(
        text(&refused).contains("need approval"),
        "{}",
        text(&refused)
    );
    assert_eq!(lab.open_shards(), 4);

    let applied = lab.up(&["--yes", "--output", "json"], 0);
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["stacks"]["lake-local-stream"], "updated", "{report}");
    assert_eq!(report["stacks"]["lake-local-iam"], "updated", "{report}");
    assert_eq!(
        report["stacks"]["lake-local-network"], "no changes",
        "{report}"
    );
    assert_eq!(lab.open_shards(), 6);
    lab.diff(0);
}

#[test]
fn a_failed_create_names_the_resource_and_the_next_up_recovers() {
    let lab = Lab::new();
    // A template that CloudFormation rejects: an attribute streams lack.
    let broken = lab.dir.path().join("templates");
    std::fs::create_dir_all(&broken).unwrap();
    let stream = std::fs::read_to_string(repo_root().join("templates/stream.yaml.j2")).unwrap();
    std::fs::write(
        broken.join("stream.yaml.j2"),
        stream + "  Broken:\n    Value: !GetAtt OrdersStream.NoSuchAttribute\n",
    )
    .unwrap();
    let artifacts = lab.artifacts();
    let failed = lab.lakectl_with(
        &[
            "up",
            "local",
            "--yes",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ],
        &["--templates", broken.to_str().unwrap()],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("lake-local-stream"), "{stderr}");
    assert!(stderr.contains("NoSuchAttribute"), "{stderr}");
    // Stacks that need the stream were not started.
    let (code, rows, _) = lab.status();
    assert_eq!(code, 1);
    let state = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("stream"), "NOT_DEPLOYED");
    assert_eq!(state("ingest"), "NOT_DEPLOYED");
    assert_eq!(state("network"), "CREATE_COMPLETE");

    // Fixed (the built-in template): the next up finishes the job.
    lab.up(&["--yes"], 0);
    let (_, rows, _) = lab.status();
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["ok"] == true),
        "{rows}"
    );
    assert_eq!(lab.stacks().len(), 8);
}

#[test]
fn down_asks_then_removes_every_stack() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    let refused = lab.lakectl(&["down", "local"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("--yes"));
    assert_eq!(lab.stacks().len(), 8, "nothing was deleted without --yes");

    // What EMR does when its cluster starts (moto's EMR adds tcp/udp/icmp
    // between the groups, too): rules between its managed security groups,
    // owned by no stack, that block the groups' deletion (DependencyViolation).
    let outputs: Value = serde_json::from_slice(
        &lab.lakectl(&["outputs", "local", "--output", "json"])
            .stdout,
    )
    .unwrap();
    let sg = |name: &str| outputs["network"][name].as_str().unwrap().to_string();
    let (master, core) = (sg("EmrMasterSecurityGroupId"), sg("EmrCoreSecurityGroupId"));
    for (group, source) in [(&master, &core), (&core, &master)] {
        lake_testkit::aws(
            &lab.moto,
            &[
                "ec2",
                "authorize-security-group-ingress",
                "--group-id",
                group,
                "--protocol",
                "-1",
                "--source-group",
                source,
            ],
        );
    }

    let o = lab.lakectl(&["down", "local", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("rules EMR added between its security groups"),
        "{}",
        text(&o)
    );
    assert_eq!(lab.stacks(), Vec::<(String, String)>::new());
    let (code, rows, components) = lab.status();
    assert_eq!(code, 1);
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "NOT_DEPLOYED"));
    assert!(
        components
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["verdict"] == "not-deployed"),
        "{components}"
    );
}

#[test]
fn a_protected_environment_gets_protection_and_down_refuses_it() {
    let lab = Lab::new();
    std::fs::write(
        lab.envs().join("local.yaml"),
        std::fs::read_to_string(lab.envs().join("local.yaml")).unwrap()
            + "protection:\n  termination_protection: true\n",
    )
    .unwrap();
    lab.up(&["--yes"], 0);
    let cfn = aws_sdk_cloudformation::Client::new(&lab.sdk_config());
    let storage = lab
        .block_on(
            cfn.describe_stacks()
                .stack_name("lake-local-storage")
                .send(),
        )
        .unwrap();
    assert_eq!(
        storage.stacks()[0].enable_termination_protection(),
        Some(true)
    );
    let policy = lab
        .block_on(
            cfn.get_stack_policy()
                .stack_name("lake-local-storage")
                .send(),
        )
        .unwrap();
    let policy: Value = serde_json::from_str(policy.stack_policy_body().unwrap()).unwrap();
    let denied = &policy["Statement"][1];
    assert_eq!(denied["Effect"], "Deny");
    assert!(
        denied["Resource"]
            .as_array()
            .unwrap()
            .contains(&Value::from("LogicalResourceId/DataBucket")),
        "{policy}"
    );

    let refused = lab.lakectl(&["down", "local", "--yes"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("--allow-protected"));
    assert_eq!(lab.stacks().len(), 8);
    // `down --allow-protected` first lifts termination protection
    // (UpdateTerminationProtection), which moto 5.2 answers with HTTP 500;
    // the error must say so plainly and delete nothing.
    let o = lab.lakectl(&["down", "local", "--yes", "--allow-protected"]);
    if o.status.code() == Some(0) {
        assert!(lab.stacks().is_empty(), "{}", text(&o));
    } else {
        assert!(
            text(&o).contains("setting termination protection on lake-local-")
                && text(&o).contains("HTTP 500"),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn another_account_is_refused_before_anything_is_touched() {
    let lab = Lab::new();
    std::fs::write(
        lab.envs().join("local.yaml"),
        std::fs::read_to_string(lab.envs().join("local.yaml")).unwrap()
            + "account_id: \"111111111111\"\n",
    )
    .unwrap();
    let o = lab.up(&["--yes"], 1);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("belongs to AWS account 111111111111")
            && stderr.contains("credentials in use are for account 123456789012"),
        "{stderr}"
    );
    assert!(lab.stacks().is_empty());
}

#[test]
fn a_new_ingest_binary_changes_the_ingest_stack_only() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    let old = lakectl::publish::sha256_file(&lab.artifacts().join("lake-ingest")).unwrap();
    write_artifact(&lab.artifacts().join("lake-ingest"), "lake-ingest v2");
    let new = lakectl::publish::sha256_file(&lab.artifacts().join("lake-ingest")).unwrap();
    let plan = String::from_utf8(lab.diff(2).stdout).unwrap();
    assert!(
        plan.contains(&format!("parameter IngestArtifactSha256: {old} -> {new}")),
        "{plan}"
    );
    let changed: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("Stack ") && !l.ends_with("no changes"))
        .collect();
    assert_eq!(
        changed,
        ["Stack lake-local-ingest (ingest): update"],
        "{plan}"
    );
    let report: Value = serde_json::from_slice(&lab.up(&["--output", "json"], 0).stdout).unwrap();
    assert_eq!(
        report["uploaded_artifacts"],
        serde_json::json!(["lake-ingest"])
    );
    assert_eq!(report["stacks"]["lake-local-ingest"], "updated");
    assert_eq!(report["stacks"]["lake-local-compaction"], "no changes");
    lab.diff(0);

    // Without --artifacts, diff is read-only: it builds nothing (a cargo
    // that fails would fail it), plans the binaries' hashes as known after
    // deploy and says so, in the text and in the JSON.
    let unbuilt = lab.lakectl_env(
        &["diff", "local", "--output", "json"],
        &[],
        &[("CARGO", "/bin/false")],
    );
    assert_eq!(unbuilt.status.code(), Some(0), "{}", text(&unbuilt));
    let plan: Value = serde_json::from_slice(&unbuilt.stdout).unwrap();
    assert!(
        plan["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n.as_str().unwrap().contains("not built"))),
        "{plan}"
    );
    let ingest = plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "ingest")
        .unwrap();
    assert!(
        ingest.to_string().contains("known after deploy"),
        "{ingest}"
    );
}

#[test]
fn compact_starts_a_run_of_the_deployed_state_machine_for_one_partition() {
    let lab = Lab::new();
    // Nothing deployed yet: a clear refusal.
    let early = lab.lakectl(&["compact", "local"]);
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("no deployed compaction stack"),
        "{}",
        text(&early)
    );

    lab.up(&["--yes"], 0);
    for (args, says) in [
        (
            vec!["compact", "local", "orders", "--partition", "../etc"],
            "give one partition directory of dataset orders, e.g. dt=2024-05-01/hr=13",
        ),
        (
            vec![
                "compact",
                "local",
                "orders",
                "--partition",
                "ordertime=2019111315",
            ],
            "`ordertime` where the layout has `dt`",
        ),
        (
            vec!["compact", "local", "ordres"],
            "has no dataset `ordres`; its datasets: orders, pageviews",
        ),
        (
            vec!["compact", "local", "--partition", "dt=2019-11-13"],
            "--partition needs a dataset",
        ),
        (
            vec!["compact", "local", "orders", "--register-only"],
            "--register-only registers every table",
        ),
    ] {
        let bad = lab.lakectl(&args);
        assert_eq!(bad.status.code(), Some(1), "{args:?}: {}", text(&bad));
        assert!(text(&bad).contains(says), "{args:?}: {}", text(&bad));
    }

    let sfn = aws_sdk_sfn::Client::new(&lab.sdk_config());
    let input_of = |arn: &str| {
        lab.block_on(sfn.describe_execution().execution_arn(arn).send())
            .unwrap()
            .input()
            .unwrap()
            .to_string()
    };
    let o = lab.lakectl(&[
        "compact",
        "local",
        "orders",
        "--partition",
        "dt=2019-11-13/hr=15",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &report["runs"][0];
    let arn = run["execution_arn"].as_str().unwrap().to_string();
    assert!(arn.contains(":execution:lake-local-compaction:"), "{run}");
    // Read back from Step Functions: the execution exists with the dataset
    // and partition as its input. (moto 5.2 does not run state machines
    // made by CloudFormation, so the EMR step itself and `--wait` are not
    // exercised here; tests/lake.rs runs the step's script.)
    assert_eq!(
        input_of(&arn),
        r#"{"dataset":"orders","partition":"dt=2019-11-13/hr=15"}"#
    );
    assert_eq!(run["status"], "RUNNING");

    // No dataset: one run per dataset that compacts; register-only: one.
    let all = lab.lakectl(&["compact", "local", "--output", "json"]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    let report: Value = serde_json::from_slice(&all.stdout).unwrap();
    let datasets: Vec<&str> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(datasets, ["orders", "pageviews"]);
    let registration = lab.lakectl(&["compact", "local", "--register-only", "--output", "json"]);
    let report: Value = serde_json::from_slice(&registration.stdout).unwrap();
    assert_eq!(
        input_of(report["runs"][0]["execution_arn"].as_str().unwrap()),
        r#"{"dataset":"all","register_only":true}"#
    );
}

/// One instance launched in moto through the AWS CLI (with `env` over the
/// emulator's credentials).
fn run_instance(moto: &Moto, env: &[(&str, &str)], instance_type: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "ec2",
        "run-instances",
        "--image-id",
        "ami-12c6146b",
        "--instance-type",
        instance_type,
    ];
    args.extend_from_slice(extra);
    lake_testkit::moto::aws_with_env(moto, env, &args)
}

/// `lakectl preflight` on this lab's spec: exit code and text, with the
/// lab's temporary folder written as `<envs>` so snapshots are stable.
fn preflight(lab: &Lab, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["preflight", "local"];
    args.extend_from_slice(extra);
    let o = lab.lakectl(&args);
    let out = String::from_utf8_lossy(&o.stdout).replace(lab.envs().to_str().unwrap(), "<envs>");
    (o.status.code().unwrap(), out)
}

#[test]
fn preflight_finds_what_would_fail_half_way_and_up_runs_it_first() {
    let lab = Lab::new();
    // The demo spec fits us-east-1. What the endpoint cannot answer (moto:
    // EMR's DescribeReleaseLabel, RDS's orderable MySQL options, IAM's
    // policy simulation) is a warning that says so, never a silent pass.
    // Another workload's instance draws on the vCPU quota; this
    // environment's own (tagged by its stacks) is in the spec's figure.
    let run_instance =
        |instance_type: &str, extra: &[&str]| run_instance(&lab.moto, &[], instance_type, extra);
    run_instance("m5.large", &[]);
    run_instance(
        "m5.4xlarge",
        &[
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=aws:cloudformation:stack-name,Value=lake-local-ingest}]",
        ],
    );
    let (code, report) = preflight(&lab, &[]);
    assert_eq!(code, 0, "{report}");
    insta::assert_snapshot!("preflight_local_ok", report);
    // The quota itself is unread on moto (GetServiceQuota answers 500 for
    // ec2): the figures are still reported, the verdict is unit-tested
    // (inspect::vcpu_quota) and docs/verification.md says so.
    assert!(
        report.contains("the spec starts 12 on-demand standard vCPUs, and 2 are in use"),
        "{report}"
    );

    // A region with three zones asked for four, an instance type the region
    // does not offer, and an EMR node type the release does not run on.
    lab.edit_local(
        "name: lake-local\n",
        "name: lake-local\nregion: eu-west-3\n",
    );
    lab.edit_local(
        "  nat_gateways: none",
        "  nat_gateways: none\n  availability_zones: 4",
    );
    lab.edit_local(
        "  fleet_size: 0",
        "  fleet_size: 1\n  instance_type: u-6tb1.metal\nemr:\n  core: {instance_types: [t2.nano], count: 2}",
    );
    let (code, report) = preflight(&lab, &[]);
    assert_eq!(code, 1, "{report}");
    insta::assert_snapshot!("preflight_local_errors", report);
    let o = lab.lakectl(&["preflight", "local", "--output", "json"]);
    let json_text =
        String::from_utf8_lossy(&o.stdout).replace(lab.envs().to_str().unwrap(), "<envs>");
    insta::assert_snapshot!("preflight_local_errors_json", json_text);
    let json: Value = serde_json::from_str(&json_text).unwrap();
    let verdicts: Vec<(&str, &str)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c.get("verdict").and_then(Value::as_str).unwrap_or(""),
            )
        })
        .collect();
    let errors: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .filter(|f| f["severity"] == "error")
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "network.availability_zones",
            "ingest.instance_type",
            "emr.core.instance_types.0"
        ],
        "{verdicts:?}"
    );

    // `up` runs the same checks first and creates nothing.
    let o = lab.up(&["--yes"], 1);
    assert!(
        text(&o).contains("preflight found 3 problem(s)"),
        "{}",
        text(&o)
    );
    assert_eq!(lab.stacks(), Vec::<(String, String)>::new());
}

#[test]
fn drift_reports_each_stack_and_says_when_the_endpoint_cannot_detect() {
    let lab = Lab::new();
    // Nothing deployed: every stack not deployed, nothing drifted.
    let o = lab.lakectl(&["drift", "local", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(out.matches(": not deployed").count(), 8, "{out}");
    assert!(out.contains("0 of 8 stacks drifted"), "{out}");

    // moto has no DetectStackDrift: the error names the call and the stack.
    lab.up(&["--yes"], 0);
    let o = lab.lakectl(&["drift", "local", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("starting drift detection (DetectStackDrift) on lake-local-network"),
        "{err}"
    );
}

#[test]
fn status_reads_msk_and_firehose_from_their_own_apis() {
    let lab = Lab::new();
    let config = lab.sdk_config();
    // An MSK cluster and a delivery stream made straight through their APIs
    // (moto's CloudFormation creates neither), named as stack outputs would.
    let kafka = aws_sdk_kafka::Client::new(&config);
    let cluster = lab
        .block_on(
            kafka
                .create_cluster()
                .cluster_name("lake-prod-kafka")
                .kafka_version("3.6.0")
                .number_of_broker_nodes(3)
                .broker_node_group_info(
                    aws_sdk_kafka::types::BrokerNodeGroupInfo::builder()
                        .instance_type("kafka.m5.large")
                        .client_subnets("subnet-1")
                        .client_subnets("subnet-2")
                        .client_subnets("subnet-3")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let arn = cluster.cluster_arn().unwrap().to_string();
    let firehose = aws_sdk_firehose::Client::new(&config);
    lab.block_on(
        firehose
            .create_delivery_stream()
            .delivery_stream_name("lake-prod-raw")
            .extended_s3_destination_configuration(
                aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                    .role_arn("arn:aws:iam::123456789012:role/firehose")
                    .bucket_arn("arn:aws:s3:::lake-prod-data")
                    .compression_format(aws_sdk_firehose::types::CompressionFormat::Gzip)
                    .buffering_hints(
                        aws_sdk_firehose::types::BufferingHints::builder()
                            .size_in_mbs(64)
                            .interval_in_seconds(300)
                            .build(),
                    )
                    .encryption_configuration(
                        aws_sdk_firehose::types::EncryptionConfiguration::builder()
                            .no_encryption_config(
                                aws_sdk_firehose::types::NoEncryptionConfig::NoEncryption,
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();

    let env_dir = repo_root().join("environments");
    let (loaded, _) = lakectl::spec::load_valid(&env_dir, "prod").unwrap();
    let rendered = lakectl::render::render(&loaded).unwrap();
    let connection = lakectl::aws::Connection {
        endpoint_url: Some(lab.moto.endpoint.clone()),
        ..Default::default()
    };
    // The credential chain reads the environment; every test of this binary
    // uses the same emulator credentials, so setting them here races nothing.
    for (k, v) in lab.moto.aws_env() {
        if k.ends_with("_KEY_ID") || k.ends_with("_SECRET_ACCESS_KEY") {
            std::env::set_var(k, v);
        }
    }
    let aws = lab
        .block_on(lakectl::aws::Aws::connect(
            &connection,
            &rendered,
            None,
            None,
        ))
        .unwrap();
    let outputs: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> = [
        (
            "kafka".to_string(),
            [
                ("KafkaClusterArn".to_string(), arn.clone()),
                (
                    "KafkaBootstrapBrokers".to_string(),
                    "b-1.lake:9098,b-2.lake:9098".to_string(),
                ),
            ]
            .into(),
        ),
        (
            "stream".to_string(),
            [
                (
                    "OrdersDeliveryStreamName".to_string(),
                    "lake-prod-raw".to_string(),
                ),
                (
                    "PageviewsDeliveryStreamName".to_string(),
                    "lake-prod-raw".to_string(),
                ),
            ]
            .into(),
        ),
    ]
    .into();
    let check = || {
        lab.block_on(lakectl::inspect::health::components(
            &aws,
            &rendered,
            &outputs,
            &Default::default(),
            &loaded.spec,
        ))
        .unwrap()
    };
    let components = check();
    let by_name = |name: &str| components.iter().find(|c| c.name == name).unwrap();

    // moto's DescribeCluster sends timestamps without a zone, which the
    // SDK refuses to parse (and it has no GetBootstrapBrokers): the
    // component says it cannot tell, why, and what the stack output knows.
    let k = by_name("kafka");
    assert_eq!(k.facts["cluster_arn"], arn);
    assert_eq!(k.verdict, lakectl::inspect::health::Verdict::Down);
    assert!(
        k.summary
            .starts_with(&format!("cannot tell: describing MSK cluster {arn}")),
        "{k:?}"
    );
    assert_eq!(k.facts["bootstrap_brokers"], "b-1.lake:9098,b-2.lake:9098");

    let a = by_name("archive");
    assert_eq!(
        a.facts.get("orders_delivery_stream").map(String::as_str),
        Some("lake-prod-raw"),
        "{a:?}"
    );
    assert_eq!(a.verdict, lakectl::inspect::health::Verdict::Ok, "{a:?}");
    assert!(
        a.summary.starts_with("orders: archive ACTIVE")
            && a.summary.contains("; pageviews: archive ACTIVE"),
        "{a:?}"
    );

    // Not deployed: each dataset's stream the outputs do not name.
    let orders = by_name("orders");
    assert_eq!(
        orders.verdict,
        lakectl::inspect::health::Verdict::NotDeployed,
        "{orders:?}"
    );

    // A delivery stream deleted behind lakectl's back reads as down.
    lab.block_on(
        firehose
            .delete_delivery_stream()
            .delivery_stream_name("lake-prod-raw")
            .send(),
    )
    .unwrap();
    let components = check();
    let a = components.iter().find(|c| c.name == "archive").unwrap();
    assert_eq!(a.verdict, lakectl::inspect::health::Verdict::Down, "{a:?}");
    assert!(a.summary.contains("does not exist"), "{a:?}");
}

/// An existing VPC: subnets EMR's managed policy cannot launch into (no
/// `for-use-with-amazon-emr-managed-policies=true` tag) are found before
/// `up`, at the subnet's place in the spec, with the command that fixes it.
#[test]
fn preflight_finds_existing_subnets_emr_cannot_use() {
    let lab = Lab::new();
    let aws = |args: &[&str]| lake_testkit::aws(&lab.moto, args);
    let vpc: Value =
        serde_json::from_str(&aws(&["ec2", "create-vpc", "--cidr-block", "10.40.0.0/16"])).unwrap();
    let vpc = vpc["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let mut subnets = Vec::new();
    for (cidr, zone) in [
        ("10.40.0.0/20", "us-east-1a"),
        ("10.40.16.0/20", "us-east-1b"),
    ] {
        let s: Value = serde_json::from_str(&aws(&[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            cidr,
            "--availability-zone",
            zone,
        ]))
        .unwrap();
        subnets.push(s["Subnet"]["SubnetId"].as_str().unwrap().to_string());
    }
    aws(&[
        "ec2",
        "create-tags",
        "--resources",
        &subnets[0],
        "--tags",
        "Key=for-use-with-amazon-emr-managed-policies,Value=true",
    ]);
    lab.edit_local(
        "network:\n  nat_gateways: none\n",
        &format!(
            "network:\n  mode: existing\n  vpc_id: {vpc}\n  vpc_cidr: 10.40.0.0/16\n  private_subnet_ids: [{}, {}]\n",
            subnets[0], subnets[1]
        ),
    );
    let (code, report) = preflight(&lab, &[]);
    assert_eq!(code, 1, "{report}");
    let want = format!(
        "<envs>/local.yaml:14:50: subnet {s} lacks the tag for-use-with-amazon-emr-managed-policies=true, without which EMR's managed policy (AmazonEMRServicePolicy_v2) launches no node into it; tag it: aws ec2 create-tags --resources {s} --tags Key=for-use-with-amazon-emr-managed-policies,Value=true",
        s = subnets[1]
    );
    assert!(report.contains(&want), "{report}");
    assert!(
        !report.contains(&format!("subnet {} lacks", subnets[0])),
        "{report}"
    );
}

/// Hive's and Hue's metastore accounts: each password read from its own
/// secret, the statements sent through the RDS Data API with the master
/// secret (moto accepts the calls; it runs no SQL: the statements
/// themselves are unit-tested in `deploy::accounts`).
#[test]
fn the_metastore_accounts_are_created_through_the_data_api() {
    let lab = Lab::new();
    let aws_cli = |args: &[&str]| lake_testkit::aws(&lab.moto, args);
    let arn = |name: &str, value: &str| -> String {
        let out: Value = serde_json::from_str(&aws_cli(&[
            "secretsmanager",
            "create-secret",
            "--name",
            name,
            "--secret-string",
            value,
        ]))
        .unwrap();
        out["ARN"].as_str().unwrap().to_string()
    };
    let outputs: std::collections::BTreeMap<String, String> = [
        (
            "MetastoreClusterArn",
            "arn:aws:rds:us-east-1:123456789012:cluster:lake-t-metastore".to_string(),
        ),
        (
            "MetastoreSecretArn",
            arn(
                "lake-t-metastore",
                r#"{"username":"lakeadmin","password":"x"}"#,
            ),
        ),
        (
            "MetastoreHiveSecretArn",
            arn("lake-t-metastore-hive", "HivePassw0rd"),
        ),
        (
            "MetastoreHueSecretArn",
            arn("lake-t-metastore-hue", "HuePassw0rd"),
        ),
        ("MetastoreHiveUser", "hive".to_string()),
        ("MetastoreHueUser", "hue".to_string()),
        ("MetastoreHiveDatabase", "hive".to_string()),
        ("MetastoreHueDatabase", "huedb".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (loaded, _) = lakectl::spec::load_valid(&lab.envs(), "local").unwrap();
    let rendered = lakectl::render::render(&loaded).unwrap();
    let connection = lakectl::aws::Connection {
        profile: None,
        region: Some("us-east-1".into()),
        endpoint_url: Some(lab.moto.endpoint.clone()),
        verbose: 0,
    };
    for (k, v) in lab.moto.aws_env() {
        std::env::set_var(k, v);
    }
    let ensured = lab.block_on(async {
        let aws = lakectl::aws::Aws::connect(&connection, &rendered, None, None)
            .await
            .unwrap();
        lakectl::deploy::accounts::ensure(&aws, &outputs).await
    });
    assert_eq!(ensured.unwrap(), ["hive", "hue"]);
    // A development metastore (no cluster ARN) has no accounts of its own.
    let mut dev = outputs.clone();
    dev.remove("MetastoreClusterArn");
    let none = lab.block_on(async {
        let aws = lakectl::aws::Aws::connect(&connection, &rendered, None, None)
            .await
            .unwrap();
        lakectl::deploy::accounts::ensure(&aws, &dev).await
    });
    assert!(none.unwrap().is_empty());
}

/// Machine images are pinned: resolved from their SSM parameter at the
/// first `up`, kept when the parameter moves (a note says so), moved only
/// with `--refresh-images`, which `diff` shows first.
#[test]
fn machine_images_are_pinned_until_refreshed() {
    let lab = Lab::new();
    let put = |ami: &str| {
        lake_testkit::aws(
            &lab.moto,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/lake/test/ami",
                "--type",
                "String",
                "--value",
                ami,
                "--overwrite",
            ],
        )
    };
    put("ami-0aaaa1111bbbb2222");
    lab.edit_local(
        "  fleet_size: 0",
        "  fleet_size: 0\n  ami_parameter: /lake/test/ami",
    );
    lab.up(&["--yes"], 0);
    let ami = |lab: &Lab| -> String {
        let out: Value = serde_json::from_str(&lake_testkit::aws(
            &lab.moto,
            &[
                "cloudformation",
                "describe-stacks",
                "--stack-name",
                "lake-local-ingest",
            ],
        ))
        .unwrap();
        out["Stacks"][0]["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ParameterKey"] == "IngestAmiId")
            .unwrap()["ParameterValue"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ami(&lab), "ami-0aaaa1111bbbb2222");

    // AWS publishes a new image: nothing moves, and up says so.
    put("ami-0cccc3333dddd4444");
    let again = lab.up(&["--yes"], 0);
    assert!(
        text(&again).contains("IngestAmiId stays at ami-0aaaa1111bbbb2222; /lake/test/ami now gives ami-0cccc3333dddd4444"),
        "{}",
        text(&again)
    );
    assert_eq!(ami(&lab), "ami-0aaaa1111bbbb2222");
    let diff = lab.lakectl(&[
        "diff",
        "local",
        "--detailed-exitcode",
        "--artifacts",
        lab.artifacts().to_str().unwrap(),
    ]);
    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff));

    // Refreshing is planned first, then applied.
    let planned = lab.lakectl(&[
        "diff",
        "local",
        "--detailed-exitcode",
        "--refresh-images",
        "--artifacts",
        lab.artifacts().to_str().unwrap(),
    ]);
    assert_eq!(planned.status.code(), Some(2), "{}", text(&planned));
    assert!(text(&planned).contains("IngestAmiId"), "{}", text(&planned));
    lab.up(&["--yes", "--refresh-images"], 0);
    assert_eq!(ami(&lab), "ami-0cccc3333dddd4444");
}

/// The Kafka bridge's plugin is the user's own file, published by its
/// content; preflight finds it missing before anything is deployed.
#[test]
fn preflight_finds_a_missing_bridge_plugin() {
    let lab = Lab::new();
    lab.edit_local("kafka: null\n", "");
    let (code, report) = preflight(&lab, &[]);
    assert_eq!(code, 1, "{report}");
    let plugin = lab.envs().join("plugins/kinesis-kafka-connector-0.0.9.zip");
    assert!(
        report.contains(&format!(
            "{} does not exist; build the connector (awslabs/kinesis-kafka-connector: `mvn package`, then zip the jar)",
            plugin.display().to_string().replace(lab.envs().to_str().unwrap(), "<envs>")
        )),
        "{report}"
    );
    // A read-only plan does not need it: planned as known after deploy,
    // with a note that says where the file comes from; `up` refuses,
    // naming the spec field and how to build it.
    let plan = lab.diff(2);
    assert!(
        text(&plan).contains("its hash is planned as known after deploy (`up` needs it)"),
        "{}",
        text(&plan)
    );
    let refused = lab.up(&["--yes", "--skip-preflight"], 1);
    assert!(
        text(&refused).contains(
            "spec field kafka.bridge.plugin. Build it from awslabs/kinesis-kafka-connector"
        ),
        "{}",
        text(&refused)
    );
    std::fs::create_dir_all(plugin.parent().unwrap()).unwrap();
    std::fs::write(&plugin, b"PK connector").unwrap();
    let (_, report) = preflight(&lab, &[]);
    assert!(report.contains("ok       Kafka bridge plugin"), "{report}");
}

/// `diff --out`: the plan file, read as JSON.
fn save_plan(lab: &Lab, path: &std::path::Path) -> (Output, Value) {
    let o = lab.diff_with(&["--out", path.to_str().unwrap()], 2);
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (o, plan)
}

fn planned<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {plan}"))
}

/// A stack's action in a plan file's review (what the reviewer saw).
fn review_action(plan: &Value, id: &str) -> String {
    plan["review"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in the review"))["action"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_saved_plan_applies_its_change_sets_once_and_plans_downstream_after_upstream() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    lab.edit_local("stream: {shards: 4}", "stream: {shards: 6}");
    let path = lab.dir.path().join("plan.json");
    let (o, plan) = save_plan(&lab, &path);
    let serial = plan["serial"].as_str().unwrap();
    let stream = planned(&plan, "stream");
    assert_eq!(stream["action"], "update", "{stream}");
    let change_set = format!("lakectl-local-stream-{serial}");
    assert_eq!(stream["change_set"], change_set.as_str());
    assert!(
        text(&o).contains(&format!("change sets kept: {change_set}")),
        "{}",
        text(&o)
    );
    // moto has no drift detection: the stack the plan updates is named as
    // not checked (the drift shown from CloudFormation's answers is unit
    // tested in inspect::drift).
    assert!(
        text(&o).contains("lake-local-stream: drift not checked ("),
        "{}",
        text(&o)
    );
    // More shards keep the stream's name and ARN: what reads them is
    // unchanged, in the plan and in the review alike (an output that moves
    // is planned after upstream: `adding_a_dataset…`).
    assert_eq!(planned(&plan, "ingest")["action"], "unchanged");
    assert_eq!(review_action(&plan, "ingest"), "unchanged");
    assert!(
        planned(&plan, "network")["action"] == "unchanged"
            && planned(&plan, "network")["change_set"].is_null()
    );

    let plan_arg = path.to_str().unwrap();
    let applied = lab.up(&["--plan", plan_arg, "--output", "json"], 0);
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["stacks"]["lake-local-stream"], "updated", "{report}");
    assert_eq!(report["executed_change_sets"], 1, "{report}");
    assert_eq!(
        report["stacks"]["lake-local-ingest"], "no changes",
        "{report}"
    );
    assert_eq!(lab.open_shards(), 6);
    lab.diff(0);

    // A plan is applied once: the stacks it was made against moved.
    let again = lab.up(&["--plan", plan_arg], 1);
    assert!(
        text(&again).contains("lake-local-stream: changed since the plan"),
        "{}",
        text(&again)
    );
    assert!(text(&again).contains("Nothing was changed"));
}

#[test]
fn a_stale_or_expired_plan_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    let ingest = lab.artifacts().join("lake-ingest");
    write_artifact(&ingest, "lake-ingest v2");
    let path = lab.dir.path().join("plan.json");
    let (_, plan) = save_plan(&lab, &path);
    assert_eq!(planned(&plan, "ingest")["action"], "update");
    let plan_arg = path.to_str().unwrap();
    let refused = |why: &str| {
        let o = lab.up(&["--plan", plan_arg], 1);
        assert!(text(&o).contains(why), "{}", text(&o));
        assert!(text(&o).contains("Nothing was changed"), "{}", text(&o));
    };

    // An artifact rebuilt after planning.
    write_artifact(&ingest, "lake-ingest v3");
    refused("lake-local-ingest: artifact lake-ingest was rebuilt");
    write_artifact(&ingest, "lake-ingest v2");

    // A spec (so a template) edited after planning.
    lab.edit_local("stream: {shards: 4}", "stream: {shards: 6}");
    refused("lake-local-stream: its template changed since the plan");
    lab.edit_local("stream: {shards: 6}", "stream: {shards: 4}");

    // An expired plan.
    let mut old = plan.clone();
    old["expires"] = serde_json::json!(1);
    let expired = lab.dir.path().join("expired.json");
    std::fs::write(&expired, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let o = lab.up(&["--plan", expired.to_str().unwrap()], 1);
    assert!(text(&o).contains("it expired"), "{}", text(&o));

    // Tags added to the spec after planning: every stack would be re-tagged.
    lab.edit_local(
        "tags:\n  environment: local",
        "tags:\n  environment: local\n  team: data",
    );
    refused("the stack tags changed since the plan (team; every stack would be re-tagged)");
    lab.edit_local(
        "tags:\n  environment: local\n  team: data",
        "tags:\n  environment: local",
    );

    // Credentials for another region: the plan applies where it was made.
    let artifacts = lab.artifacts();
    let o = lab.lakectl_with(
        &[
            "up",
            "local",
            "--artifacts",
            artifacts.to_str().unwrap(),
            "--plan",
            plan_arg,
        ],
        &["--region", "eu-west-1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("and the credentials in use are for account 123456789012 in eu-west-1"),
        "{}",
        text(&o)
    );

    // None of those changed anything: the ingest update is still to come.
    let still = String::from_utf8(lab.diff(2).stdout).unwrap();
    assert!(
        still.contains("Stack lake-local-ingest (ingest): update"),
        "{still}"
    );

    // A stack updated between plan and apply.
    lab.up(&["--yes"], 0);
    refused("lake-local-ingest: changed since the plan");
}

/// Every resource change of a `diff --output json`: (stack, logical id,
/// action, replaced).
fn resource_changes(plan: &Value) -> Vec<(String, String, String, bool)> {
    let stacks = plan["diffs"]
        .as_array()
        .or_else(|| plan["stacks"].as_array())
        .unwrap_or_else(|| panic!("no stacks in the plan: {plan}"));
    let mut out = Vec::new();
    for s in stacks {
        for r in s["resources"].as_array().into_iter().flatten() {
            out.push((
                s["id"].as_str().unwrap().to_string(),
                r["logical_id"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
                r["requires_replacement"].as_bool().unwrap_or(false),
            ));
        }
    }
    out
}

/// Adding a dataset is its own resources and the wiring to them, nothing
/// replaced but the table step (which creates its table); removing it
/// removes only its resources and needs approval (its stream holds
/// records). Both are planned against deployed stacks; moto cannot apply
/// either (its ExecuteChangeSet does not recompute a stack's outputs, and
/// answers DescribeStacks with HTTP 500 once an output's resource is gone:
/// docs/moto-gaps.md).
#[test]
fn adding_a_dataset_adds_its_resources_and_removing_one_asks() {
    let diff = |lab: &Lab| -> Vec<(String, String, String, bool)> {
        let o = lab.lakectl(&[
            "diff",
            "local",
            "--output",
            "json",
            "--artifacts",
            lab.artifacts().to_str().unwrap(),
        ]);
        let plan: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        resource_changes(&plan)
    };
    let clicks =
        "  clicks:\n    partition_by: arrival-time\n    format: ndjson\n    schema: {file: schemas/pageviews.avsc}\n    stream: {shards: 1}\n";

    // Adding it: exactly its resources, and the wiring to them.
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    let spec = std::fs::read_to_string(lab.envs().join("local.yaml")).unwrap();
    std::fs::write(lab.envs().join("local.yaml"), format!("{spec}{clicks}")).unwrap();
    let changes = diff(&lab);
    let added: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.2 == "add")
        .map(|c| (c.0.as_str(), c.1.as_str()))
        .collect();
    for want in [
        ("stream", "ClicksStream"),
        ("stream", "ClicksArchive"),
        ("stream", "ClicksArchiveFreshnessAlarm"),
        ("ingest", "ClicksIngestLagAlarm"),
        ("ingest", "ClicksDeadLettersAlarm"),
        ("ingest", "ClicksUnheldShardsAlarm"),
    ] {
        assert!(added.contains(&want), "{want:?} not added: {changes:#?}");
    }
    assert!(
        added.iter().all(|(_, id)| id.starts_with("Clicks")),
        "only the new dataset's resources are added: {changes:#?}"
    );
    assert!(
        changes.iter().all(|c| c.2 != "remove"),
        "nothing removed: {changes:#?}"
    );
    let replaced: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.3)
        .map(|c| (c.0.as_str(), c.1.as_str()))
        .collect();
    assert!(
        replaced.iter().all(|r| *r == ("emr", "LakeTables")),
        "only the table step (a new step: it creates the new table) is replaced: {changes:#?}"
    );
    // The ingest stack reads the new stream's name, known only once the
    // stream stack applies: planned after upstream, and the review says it
    // changes (never "unchanged" where the plan holds more).
    let path = lab.dir.path().join("plan.json");
    let (_, plan) = save_plan(&lab, &path);
    assert_eq!(planned(&plan, "ingest")["action"], "after-upstream");
    assert!(
        planned(&plan, "ingest")["parameters"]["ClicksStreamName"]
            .as_str()
            .unwrap()
            .starts_with("(known after deploy: output stream.ClicksStreamName"),
        "{}",
        planned(&plan, "ingest")
    );
    assert_eq!(review_action(&plan, "ingest"), "update");

    // Removing it (from an environment deployed with it): only its
    // resources go, the stream's records with it, and `up` asks first.
    let lab = Lab::new();
    let spec = std::fs::read_to_string(lab.envs().join("local.yaml")).unwrap();
    std::fs::write(lab.envs().join("local.yaml"), format!("{spec}{clicks}")).unwrap();
    lab.up(&["--yes"], 0);
    std::fs::write(lab.envs().join("local.yaml"), &spec).unwrap();
    let changes = diff(&lab);
    let removed: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.2 == "remove")
        .map(|c| (c.0.as_str(), c.1.as_str()))
        .collect();
    for want in [
        ("stream", "ClicksStream"),
        ("stream", "ClicksArchive"),
        ("ingest", "ClicksIngestLagAlarm"),
    ] {
        assert!(
            removed.contains(&want),
            "{want:?} not removed: {changes:#?}"
        );
    }
    assert!(
        removed.iter().all(|(_, id)| id.starts_with("Clicks")),
        "only the dataset's resources are removed: {changes:#?}"
    );
    assert!(
        changes.iter().all(|c| c.2 != "add"),
        "nothing added: {changes:#?}"
    );
    let refused = lab.up(&[], 1);
    assert!(
        text(&refused).contains("need approval"),
        "{}",
        text(&refused)
    );
    assert!(
        text(&refused).contains(
            "ClicksStream AWS::Kinesis::Stream  (DeletionPolicy Delete: its data is deleted)"
        ),
        "{}",
        text(&refused)
    );
}

/// The summary line of a plan's text ("N of M stacks change: …").
fn summary(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    out.lines()
        .find(|l| l.contains("stacks change:"))
        .unwrap_or_else(|| panic!("no summary in {out}"))
        .trim()
        .to_string()
}

#[test]
fn a_replacement_is_the_same_in_diff_and_up_and_reaches_downstream() {
    let lab = Lab::new();
    lab.up(&["--yes"], 0);
    // A new VPC CIDR replaces the VPC (create-only CidrBlock) and what
    // stands in it; moto's change sets say nothing about replacement, so
    // the template's account must stand, with or without them.
    lab.edit_local(
        "  nat_gateways: none",
        "  nat_gateways: none\n  cidr: 10.30.0.0/16",
    );
    let with_sets = lab.diff(2);
    let without = lab.diff_with(&["--no-change-set"], 2);
    let plan = text(&with_sets);
    assert!(
        plan.lines()
            .any(|l| l.contains("~ Vpc AWS::EC2::VPC") && l.contains("requires replacement")),
        "{plan}"
    );
    // Without change sets the same replacements (a change set may add
    // resources it modifies for reasons the template does not show).
    let replacements = |o: &Output| {
        let s = summary(o);
        s[s.find('(').unwrap()..s.find(')').unwrap()].to_string()
    };
    assert_eq!(replacements(&with_sets), replacements(&without));
    // Downstream: the subnets the metastore, EMR and the fleet take are new.
    assert!(
        plan.contains("(known after upstream: output network.PrivateSubnetIds)"),
        "{plan}"
    );
    assert!(
        plan.contains("Stack lake-local-emr (emr): update"),
        "{plan}"
    );
    // `up` shows the same plan before it asks (and, refused, changes nothing).
    let refused = lab.up(&["--require-approval", "any-change"], 1);
    assert!(
        text(&refused).contains("need approval"),
        "{}",
        text(&refused)
    );
    assert_eq!(summary(&refused), summary(&with_sets));
    lab.diff(2);
}

/// lakectl asks EC2 through its own Query-protocol client (src/aws/ec2.rs,
/// no aws-sdk-ec2 in the build): what it reads is what the AWS CLI reads
/// from the same endpoint, a revoke removes exactly the rule, errors keep
/// EC2's code, and requests carry SigV4 signatures that moto verifies once
/// its authentication is on (a wrong secret is refused).
#[test]
fn ec2_reads_what_the_cli_reads_and_signs_requests_aws_can_verify() {
    use lakectl::aws::ec2::{Ec2, Filter, Permission};
    // The first three requests create the user; moto checks every later
    // one's signature and policy, as AWS does.
    let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let json = |s: String| -> Value { serde_json::from_str(&s).unwrap_or(Value::Null) };
    lake_testkit::aws(&moto, &["iam", "create-user", "--user-name", "lake"]);
    let key = json(lake_testkit::aws(
        &moto,
        &["iam", "create-access-key", "--user-name", "lake"],
    ));
    let (id, secret) = (
        key["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    lake_testkit::aws(
        &moto,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "lake",
            "--policy-name",
            "all",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ],
    );
    let as_lake = [
        ("AWS_ACCESS_KEY_ID", id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let cli = |args: &[&str]| json(lake_testkit::moto::aws_with_env(&moto, &as_lake, args));
    let vpc = cli(&["ec2", "create-vpc", "--cidr-block", "10.9.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = cli(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.9.1.0/24",
        "--availability-zone",
        "us-east-1b",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_string();
    cli(&[
        "ec2",
        "create-tags",
        "--resources",
        &subnet,
        "--tags",
        "Key=for-use-with-amazon-emr-managed-policies,Value=true",
    ]);
    for (instance_type, extra) in [
        (
            "m5.large",
            "--tag-specifications=ResourceType=instance,Tags=[{Key=lake-environment,Value=other}]",
        ),
        ("c5.xlarge", "--instance-market-options=MarketType=spot"),
    ] {
        run_instance(&moto, &as_lake, instance_type, &[extra]);
    }
    let group = |name: &str| {
        cli(&[
            "ec2",
            "create-security-group",
            "--group-name",
            name,
            "--description",
            name,
            "--vpc-id",
            &vpc,
        ])["GroupId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (group("a"), group("b"));
    cli(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &a,
        "--protocol",
        "tcp",
        "--port",
        "8443",
        "--source-group",
        &b,
    ]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = |secret: &str| {
        let endpoint = moto.endpoint.clone();
        let credentials = aws_sdk_cloudformation::config::Credentials::new(
            id.clone(),
            secret.to_string(),
            None,
            None,
            "test",
        );
        rt.block_on(async move {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(credentials)
                .load()
                .await
        })
    };
    let ec2 = Ec2::new(
        &config(&secret),
        aws_config::retry::RetryConfig::standard().with_max_attempts(1),
        None,
    );

    // Zones, VPC, subnet: as the CLI reads them.
    let zones = rt.block_on(ec2.availability_zones()).unwrap();
    let cli_zones = cli(&["ec2", "describe-availability-zones"]);
    let names = |v: &Value| -> Vec<String> {
        v["AvailabilityZones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|z| z["ZoneName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>(),
        names(&cli_zones)
    );
    assert!(zones.iter().all(|z| z.state == "available"), "{zones:?}");
    let vpcs = rt.block_on(ec2.vpcs(&[vpc.as_str()])).unwrap();
    assert_eq!(vpcs.len(), 1);
    assert_eq!(
        (vpcs[0].id.as_str(), vpcs[0].cidr_block.as_deref()),
        (vpc.as_str(), Some("10.9.0.0/16"))
    );
    let subnets = rt.block_on(ec2.subnets(&[subnet.as_str()])).unwrap();
    assert_eq!(subnets[0].vpc_id.as_deref(), Some(vpc.as_str()));
    assert_eq!(subnets[0].availability_zone.as_deref(), Some("us-east-1b"));
    assert!(subnets[0].tags.contains(&(
        "for-use-with-amazon-emr-managed-policies".into(),
        "true".into()
    )));

    // Instances: type, state, market and tags.
    let mut instances = rt
        .block_on(ec2.instances(&[Filter::new("instance-state-name", ["pending", "running"])]))
        .unwrap();
    instances.sort_by(|x, y| x.instance_type.cmp(&y.instance_type));
    let seen: Vec<(&str, Option<&str>, Option<&str>, bool)> = instances
        .iter()
        .map(|i| {
            (
                i.instance_type.as_str(),
                i.state.as_deref(),
                i.lifecycle.as_deref(),
                i.tags
                    .contains(&("lake-environment".into(), "other".into())),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("c5.xlarge", Some("running"), Some("spot"), false),
            ("m5.large", Some("running"), None, true)
        ]
    );
    let tagged = rt
        .block_on(ec2.instances(&[Filter::new("tag:lake-environment", ["other"])]))
        .unwrap();
    assert_eq!(tagged.len(), 1, "{tagged:?}");

    // Instance types and offerings.
    let vcpus = rt.block_on(ec2.instance_type_vcpus(&["m5.large"])).unwrap();
    let cli_vcpus = cli(&[
        "ec2",
        "describe-instance-types",
        "--instance-types",
        "m5.large",
    ])["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"]
        .as_u64()
        .unwrap();
    assert_eq!(vcpus, [("m5.large".to_string(), cli_vcpus as u32)]);
    let offered = rt
        .block_on(ec2.instance_type_offerings(&["m5.large"], &["us-east-1a", "us-east-1b"]))
        .unwrap();
    assert_eq!(
        offered,
        [
            ("m5.large".to_string(), "us-east-1a".to_string()),
            ("m5.large".to_string(), "us-east-1b".to_string())
        ]
    );

    // Security groups: read the rule, revoke exactly it.
    let groups = rt
        .block_on(ec2.security_groups(&[a.as_str(), b.as_str()]))
        .unwrap();
    let rule = Permission {
        protocol: Some("tcp".into()),
        from_port: Some(8443),
        to_port: Some(8443),
        groups: vec![b.clone()],
    };
    let on_a = groups.iter().find(|g| g.id == a).unwrap();
    assert_eq!(on_a.ingress, std::slice::from_ref(&rule));
    rt.block_on(ec2.revoke(&a, false, &[rule])).unwrap();
    let after = cli(&["ec2", "describe-security-groups", "--group-ids", &a]);
    assert_eq!(
        after["SecurityGroups"][0]["IpPermissions"],
        serde_json::json!([]),
        "{after}"
    );

    // Errors keep EC2's code; a wrong secret fails moto's signature check.
    let missing = rt.block_on(ec2.vpcs(&["vpc-00000000"])).unwrap_err();
    let missing = lakectl::aws::aws_error("describing VPC vpc-00000000", missing);
    assert_eq!(
        missing.code.as_deref(),
        Some("InvalidVpcID.NotFound"),
        "{missing}"
    );
    let forged = Ec2::new(
        &config("not-the-secret"),
        aws_config::retry::RetryConfig::standard().with_max_attempts(1),
        None,
    );
    let refused = rt.block_on(forged.availability_zones()).unwrap_err();
    let refused = lakectl::aws::aws_error("listing availability zones", refused);
    assert!(
        refused.code.as_deref() == Some("SignatureDoesNotMatch")
            || refused.code.as_deref() == Some("AuthFailure"),
        "{refused}"
    );
}
