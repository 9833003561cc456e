//! Programs the stacks start on nodes, run by the programs that run them in
//! AWS wherever those can run here. The ingest fleet's user data boots for
//! real: cloud-init runs it under systemd as PID 1 in a Debian root of its
//! own (`lake_testkit::boot`), with the real AWS CLI against the moto
//! server fetching the real binary, credentials from an IMDSv2 stand-in,
//! and systemd starting the unit; only dnf, cfn-signal and the CloudWatch
//! agent are stand-ins (`crates/testkit/node/`). Every systemd unit any
//! user data writes is checked by `systemd-analyze verify`, every embedded
//! script by shellcheck; `docs/verification.md` says what remains.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use lake_testkit::{
    aws, cfn_sub, embedded_scripts, repo_root, require_tool, shellcheck, tempdir, workspace_bin,
    Moto,
};
use lakectl::render::{self, RenderedEnv};
use lakectl::spec;
use serde_yaml::Value;

fn rendered(env: &str) -> RenderedEnv {
    let (loaded, _) = spec::load_valid(&repo_root().join("environments"), env).unwrap();
    render::render(&loaded).unwrap()
}

/// The `!Sub` text of the ingest launch template's user data.
fn ingest_user_data(rendered: &RenderedEnv) -> String {
    let template: Value =
        serde_yaml::from_str(&rendered.stack("ingest").unwrap().template).unwrap();
    let user_data = &template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
        ["UserData"]["Fn::Base64"];
    match user_data {
        Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap().to_string(),
        other => panic!("user data is not a !Sub string: {other:?}"),
    }
}

/// The values CloudFormation substitutes into the user data.
fn sub_values(sha: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("AWS::StackName", "lake-poc-ingest".to_string()),
        ("AWS::Region", "us-east-1".to_string()),
        ("ArtifactsBucketName", "lake-poc-artifacts".to_string()),
        ("DataBucketName", "lake-poc-data".to_string()),
        ("IngestArtifactSha256", sha.to_string()),
    ])
}

/// `file` where the ingest user data fetches lake-ingest `sha` from (the poc
/// artifacts bucket on this moto server).
fn publish_ingest_artifact(moto: &Moto, sha: &str, file: &Path) {
    aws(moto, &["s3", "mb", "s3://lake-poc-artifacts"]);
    let key = format!("s3://lake-poc-artifacts/bin/lake-ingest/{sha}/lake-ingest");
    aws(
        moto,
        &[
            "s3",
            "cp",
            "--only-show-errors",
            file.to_str().unwrap(),
            &key,
        ],
    );
}

/// What the ingest stack and its upstreams create before an instance boots:
/// the data bucket, the lease table, each dataset's stream (with `orders`
/// orders in the orders stream), and the fleet's datasets file `up`
/// publishes.
fn ingest_world(moto: &Moto, rendered: &RenderedEnv, orders: u64) {
    for (key, body) in &rendered.scripts {
        if key.ends_with("/datasets.json") {
            let file = tempdir();
            let path = file.path().join("datasets.json");
            std::fs::write(&path, body).unwrap();
            aws(
                moto,
                &[
                    "s3",
                    "cp",
                    "--only-show-errors",
                    path.to_str().unwrap(),
                    &format!("s3://lake-poc-artifacts/{key}"),
                ],
            );
        }
    }
    aws(
        moto,
        &[
            "kinesis",
            "create-stream",
            "--stream-name",
            "lake-poc-pageviews",
            "--shard-count",
            "1",
        ],
    );
    aws(moto, &["s3", "mb", "s3://lake-poc-data"]);
    aws(
        moto,
        &[
            "dynamodb",
            "create-table",
            "--table-name",
            "lake-poc-ingest-leases",
            "--attribute-definitions",
            "AttributeName=leaseKey,AttributeType=S",
            "--key-schema",
            "AttributeName=leaseKey,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    aws(
        moto,
        &[
            "kinesis",
            "create-stream",
            "--stream-name",
            "lake-poc-orders",
            "--shard-count",
            "2",
        ],
    );
    let put = Command::new(workspace_bin("lake-ingest"))
        .args([
            "datagen",
            "--count",
            &orders.to_string(),
            "--aggregate",
            "4",
        ])
        .args(["--to", "kinesis://lake-poc-orders", "--region", "us-east-1"])
        .envs(moto.aws_env())
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
}

fn boot_ingest_node(moto: &Moto, user_data: &str) -> lake_testkit::boot::Node {
    lake_testkit::boot::Node::boot(
        moto,
        &lake_testkit::boot::NodeConfig {
            user_data,
            instance_id: "i-0b00700000000001",
            local_ipv4: "10.20.64.10",
            role: "lake-poc-ingest",
            region: "us-east-1",
        },
    )
}

/// The ingest fleet's first boot, for real: the rendered user data run by
/// cloud-init under systemd as PID 1 in a Debian root of its own, the real
/// AWS CLI fetching the real binary from moto, credentials from the
/// metadata service (IMDSv2), the unit started by systemd itself. The node
/// must signal success only with lake-ingest up, keep it up, land every
/// order of the stream in the lake, and write the log the agent ships.
#[test]
fn the_ingest_node_boots_signals_success_and_ingests_under_systemd() {
    use std::time::Duration;
    let (loaded, _) =
        spec::load_valid(&repo_root().join("tests/fixtures/variants"), "boot").unwrap();
    let rendered = render::render(&loaded).unwrap();
    let bin = workspace_bin("lake-ingest");
    let sha = lakectl::publish::sha256_file(&bin).unwrap();
    let user_data = cfn_sub(&ingest_user_data(&rendered), &sub_values(&sha));
    assert_eq!(
        shellcheck(&user_data),
        "",
        "shellcheck on the ingest user data"
    );

    let moto = Moto::start();
    publish_ingest_artifact(&moto, &sha, &bin);
    let orders = 400;
    ingest_world(&moto, &rendered, orders);
    let node = boot_ingest_node(&moto, &user_data);
    let result = node.wait_for_cloud_init(Duration::from_secs(240));
    let output = String::from_utf8_lossy(
        &node
            .read("/var/log/cloud-init-output.log")
            .unwrap_or_default(),
    )
    .into_owned();
    let journal = || {
        String::from_utf8_lossy(
            &node
                .exec(&["journalctl", "-u", "lake-ingest", "--no-pager", "-n", "40"])
                .stdout,
        )
        .into_owned()
    };
    assert_eq!(
        result["v1"]["errors"],
        serde_json::json!([]),
        "the user data failed under cloud-init:\n{output}\nlake-ingest.service: {:?}\n{}",
        node.unit("lake-ingest.service"),
        journal()
    );
    assert_eq!(
        node.host_file("signals.log").trim(),
        "cfn-signal --exit-code 0 --stack lake-poc-ingest --resource AutoScalingGroup --region us-east-1",
        "CloudFormation hears success once, and only success"
    );
    let text_of = |path: &str| {
        String::from_utf8(
            node.read(path)
                .unwrap_or_else(|| panic!("{path} not written")),
        )
        .unwrap()
    };
    // The binary is the published one, byte for byte; the schema the spec's.
    assert_eq!(
        node.read("/opt/lake/lake-ingest").unwrap(),
        std::fs::read(&bin).unwrap()
    );
    let config = rendered
        .scripts
        .iter()
        .find(|(k, _)| k.ends_with("/datasets.json"))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(text_of("/opt/lake/datasets.json"), config);
    // The argument vector, as lake-ingest read it (`--check` ran in the
    // script, as the service's user).
    let check = output
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_else(|| panic!("`lake-ingest @run.args --check` printed no JSON:\n{output}"));
    let datasets = check["datasets"].as_array().unwrap();
    let names: Vec<&str> = datasets
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        loaded
            .spec
            .datasets
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let orders_entry = &datasets[0];
    assert_eq!(
        orders_entry["partition_format"], "dt=%Y-%m-%d/hr=%H",
        "{check}"
    );
    assert_eq!(
        orders_entry["sink"], "s3://lake-poc-data/lake/orders",
        "{check}"
    );
    assert_eq!(orders_entry["stream"], "lake-poc-orders", "{check}");
    assert_eq!(orders_entry["format"], "parquet", "{check}");
    assert_eq!(check["lease_table"], "lake-poc-ingest-leases");
    assert_eq!(check["worker_id"], "i-0b00700000000001");
    assert_eq!(check["scratch_dir"], "/var/cache/lake-ingest");
    let unit_text = text_of("/etc/systemd/system/lake-ingest.service");
    assert!(!unit_text.contains('%'), "{unit_text}");
    // Every order reaches the lake: the windows the service closed, as its
    // log (the file the agent ships) says, and the files in the bucket.
    let log = || {
        String::from_utf8_lossy(&node.read("/var/log/lake/ingest.log").unwrap_or_default())
            .into_owned()
    };
    let written = |text: &str| -> u64 {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "window")
            .map(|v| v["records"].as_u64().unwrap_or(0))
            .sum()
    };
    node.wait_until(
        "every order written to the lake",
        Duration::from_secs(120),
        |_| {
            let text = log();
            if written(&text) >= orders {
                Ok(())
            } else {
                Err(format!(
                    "{} of {orders} written; the ingest log:\n{}",
                    written(&text),
                    text
                ))
            }
        },
    );
    let text = log();
    assert_eq!(written(&text), orders, "each order once:\n{text}");
    let listed = aws(
        &moto,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "lake-poc-data",
            "--prefix",
            "lake/",
            "--query",
            "Contents[].Key",
            "--output",
            "text",
        ],
    );
    assert!(
        listed.contains(".parquet"),
        "lake files in the bucket: {listed}"
    );
    // The service stayed up as its own unprivileged user, never restarted,
    // writing its windows on the disk it was given.
    let unit = node.unit("lake-ingest.service");
    assert_eq!(unit["ActiveState"], "active", "{unit:?}\n{}", journal());
    assert_eq!(unit["NRestarts"], "0", "{unit:?}");
    assert_eq!(unit["User"], "lake-ingest", "{unit:?}");
    assert_eq!(unit["UnitFileState"], "enabled", "{unit:?}");
    let pid = &unit["ExecMainPID"];
    let status = text_of(&format!("/proc/{pid}/status"));
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
        "lake-ingest runs as root: {uid_line}"
    );
    let agent = node.unit("amazon-cloudwatch-agent.service");
    assert_eq!(agent["ActiveState"], "active", "{agent:?}");
    // The alarms' metrics, as CloudWatch Logs would take them from this
    // log: every metric filter of the rendered ingest stack applied to the
    // lines the booted service wrote. The lag alarm's metric is present
    // (with the broken unit nothing was logged, and its missing data
    // would have paged); one start; no dead letters.
    let metrics = metric_datapoints(&rendered, &log());
    assert!(
        !metrics
            .get("MillisBehindLatest")
            .cloned()
            .unwrap_or_default()
            .is_empty(),
        "no MillisBehindLatest datapoint in the ingest log: {metrics:?}"
    );
    assert_eq!(
        metrics.get("WorkerStarts").map(Vec::len),
        Some(1),
        "{metrics:?}"
    );
    assert_eq!(
        metrics.get("DeadLetters").map(|v| v.iter().sum::<f64>()),
        Some(0.0),
        "{metrics:?}"
    );
    // The agent ships the log file, and it grows.
    let shipped = || node.host_file("shipped/lake_lake-poc_ingest/i-0b00700000000001");
    let before = shipped().len();
    assert!(
        before > 0,
        "the agent shipped nothing of /var/log/lake/ingest.log"
    );
    node.wait_until("the shipped log grows", Duration::from_secs(60), |_| {
        (shipped().len() > before)
            .then_some(())
            .ok_or_else(|| format!("{before} bytes shipped"))
    });
    // logrotate (Debian's, the real one) rotates it with the shipped
    // configuration, and the service keeps writing to the same path.
    let rotate = node.exec(&["logrotate", "--force", "/etc/logrotate.d/lake-ingest"]);
    assert!(
        rotate.status.success(),
        "logrotate: {}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(node.read("/var/log/lake/ingest.log.1.gz").is_some());
    let rotated = log().len();
    node.wait_until(
        "the log grows after rotation",
        Duration::from_secs(60),
        |_| {
            (log().len() > rotated)
                .then_some(())
                .ok_or_else(|| format!("{rotated} bytes in the log"))
        },
    );
    // Credentials came from the metadata service, always with a token.
    let imds = node.imds_requests.lock().unwrap().clone();
    assert!(
        imds.iter().any(|(m, p, t)| m == "GET"
            && p.starts_with("/latest/meta-data/iam/security-credentials/")
            && *t),
        "{imds:?}"
    );
    assert!(
        imds.iter()
            .all(|(m, p, t)| *t || (m == "PUT" && p == "/latest/api/token")),
        "every metadata read carries the IMDSv2 token: {imds:?}"
    );
    // A clean power-off stops lake-ingest gracefully: its leases released.
    let console = node.poweroff();
    let leases = aws(
        &moto,
        &[
            "dynamodb",
            "scan",
            "--table-name",
            "lake-poc-ingest-leases",
            "--consistent-read",
        ],
    );
    assert!(
        !leases.contains("leaseOwner"),
        "leases still held after shutdown: {leases}\n{console}"
    );
}

/// Metric name -> the values CloudWatch Logs would record from `log` through
/// every `AWS::Logs::MetricFilter` of the rendered ingest stack.
fn metric_datapoints(rendered: &RenderedEnv, log: &str) -> BTreeMap<String, Vec<f64>> {
    use lake_testkit::metric_filter::{matches, metric_value};
    let template: Value =
        serde_yaml::from_str(&rendered.stack("ingest").unwrap().template).unwrap();
    let mut out = BTreeMap::new();
    for (_, r) in template["Resources"].as_mapping().unwrap() {
        if r["Type"] != "AWS::Logs::MetricFilter" {
            continue;
        }
        let pattern = r["Properties"]["FilterPattern"].as_str().unwrap();
        for t in r["Properties"]["MetricTransformations"]
            .as_sequence()
            .unwrap()
        {
            let name = t["MetricName"].as_str().unwrap().to_string();
            let value = match &t["MetricValue"] {
                Value::String(v) => v.clone(),
                other => serde_yaml::to_string(other).unwrap(),
            };
            let points = out.entry(name).or_insert_with(Vec::new);
            for line in log.lines() {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if matches(pattern, &event).unwrap() {
                    points.extend(metric_value(&value, &event));
                }
            }
        }
    }
    out
}

#[test]
fn a_binary_that_is_not_the_published_hash_fails_the_instance_and_signals_failure() {
    use std::time::Duration;
    let rendered = rendered("poc");
    let sha = "0".repeat(64);
    let user_data = cfn_sub(&ingest_user_data(&rendered), &sub_values(&sha));
    let moto = Moto::start();
    let dir = tempdir();
    let fake = dir.path().join("lake-ingest");
    std::fs::write(&fake, "#!/bin/sh\necho not the binary\n").unwrap();
    publish_ingest_artifact(&moto, &sha, &fake);
    let node = boot_ingest_node(&moto, &user_data);
    let result = node.wait_for_cloud_init(Duration::from_secs(240));
    let output = String::from_utf8_lossy(
        &node
            .read("/var/log/cloud-init-output.log")
            .unwrap_or_default(),
    )
    .into_owned();
    assert_ne!(result["v1"]["errors"], serde_json::json!([]), "{output}");
    assert!(
        output.contains("checksum did NOT match"),
        "sha256sum says why: {output}"
    );
    assert!(
        node.read("/opt/lake/lake-ingest").is_none(),
        "nothing installed"
    );
    assert!(node
        .read("/etc/systemd/system/lake-ingest.service")
        .is_none());
    assert_eq!(
        node.host_file("signals.log").trim(),
        "cfn-signal --exit-code 1 --stack lake-poc-ingest --resource AutoScalingGroup --region us-east-1"
    );
}

/// Every script a template carries (EMR steps, state-machine steps), every
/// script `up` publishes for nodes (the lake steps) and every instance's
/// user data passes shellcheck, in every environment and template variant.
#[test]
fn every_embedded_script_passes_shellcheck() {
    let mut checked = 0;
    let mut findings = Vec::new();
    for (dir, envs) in [
        (
            repo_root().join("environments"),
            vec!["local", "poc", "prod"],
        ),
        (
            repo_root().join("tests/fixtures/variants"),
            vec!["selfmanaged", "existing"],
        ),
    ] {
        for env in envs {
            let (loaded, _) = spec::load_valid(&dir, env).unwrap();
            let rendered = render::render(&loaded).unwrap();
            for stack in &rendered.stacks {
                let mut scripts = embedded_scripts(&stack.template);
                let template: Value = serde_yaml::from_str(&stack.template).unwrap();
                collect_user_data(&template, &mut scripts);
                for script in scripts {
                    checked += 1;
                    let found = shellcheck(&script);
                    if !found.is_empty() {
                        findings.push(format!("{env}/{}: {found}", stack.id));
                    }
                }
            }
            // The scripts `up` publishes for nodes to fetch (the lake steps,
            // the bootstrap action).
            for (key, body) in rendered.scripts.iter().filter(|(k, _)| k.ends_with(".sh")) {
                checked += 1;
                let found = shellcheck(body);
                if !found.is_empty() {
                    findings.push(format!("{env}/{key}: {found}"));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} scripts found");
    eprintln!("shellcheck: {checked} scripts, no findings");
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// Every `UserData` in a template, as bash text (`!Sub` variables become
/// placeholders shellcheck reads as words).
fn collect_user_data(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("UserData") {
                    let text = match &v["Fn::Base64"] {
                        Value::Tagged(t) => t.value.as_str().map(String::from),
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    };
                    if let Some(text) = text {
                        out.push(placeholders(&text));
                    }
                } else {
                    collect_user_data(v, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_user_data(v, out)),
        Value::Tagged(t) => collect_user_data(&t.value, out),
        _ => {}
    }
}

/// `${Name}` (CloudFormation's) -> `CFN_Name`, as a value shellcheck sees.
fn placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find('}').unwrap();
        let name = &tail[..end];
        match name.strip_prefix('!') {
            Some(lit) => out.push_str(&format!("${{{lit}}}")),
            None => out.push_str(&format!(
                "CFN_{}",
                name.replace("::", "_").replace('.', "_")
            )),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The bodies of `cat > /etc/systemd/system/NAME <<'UNIT'` heredocs in a script.
fn units_in(script: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("cat > /etc/systemd/system/") else {
            continue;
        };
        let Some((name, _)) = rest.split_once(" <<'UNIT'") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "UNIT").collect();
        out.push((name.to_string(), body.join("\n") + "\n"));
    }
    out
}

/// Every systemd unit any user data writes (the ingest fleet; self-managed
/// ZooKeeper and Kafka), checked by systemd's own verifier with the
/// programs they start present, and free of unescaped specifiers.
#[test]
fn every_systemd_unit_passes_systemd_analyze_verify() {
    let mut units = Vec::new();
    for (dir, env) in [
        (repo_root().join("environments"), "poc"),
        (repo_root().join("tests/fixtures/variants"), "selfmanaged"),
    ] {
        let (loaded, _) = spec::load_valid(&dir, env).unwrap();
        for stack in &render::render(&loaded).unwrap().stacks {
            let template: Value = serde_yaml::from_str(&stack.template).unwrap();
            let mut scripts = Vec::new();
            collect_user_data(&template, &mut scripts);
            for script in scripts {
                units.extend(
                    units_in(&script)
                        .into_iter()
                        .map(|(n, u)| (format!("{env}/{}/{n}", stack.id), n, u)),
                );
            }
        }
    }
    let names: Vec<&str> = units.iter().map(|(at, _, _)| at.as_str()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("lake-ingest.service")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("kafka.service")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("zookeeper.service")),
        "{names:?}"
    );
    let dir = tempdir();
    let mut failures = Vec::new();
    for (at, name, unit) in &units {
        for line in unit.lines() {
            let unescaped = line.replace("%%", "").contains('%');
            if unescaped {
                failures.push(format!("{at}: a systemd specifier would rewrite `{line}`"));
            }
        }
        // Placeholders for the programs the unit starts (absolute paths).
        let programs: Vec<String> = unit
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.starts_with("Exec"))
                    .map(|(_, v)| v)
            })
            .filter_map(|v| v.split_whitespace().next())
            .map(|p| p.trim_start_matches(['-', '@', '+', '!', ':']).to_string())
            .collect();
        let unit_path = dir.path().join(name);
        std::fs::write(&unit_path, unit).unwrap();
        let script = format!(
            "set -e\nmount -t tmpfs tmpfs /opt\nmount -t tmpfs tmpfs /etc/systemd/system\n\
             for p in {}; do mkdir -p \"$(dirname \"$p\")\"; printf '#!/bin/sh\\n' > \"$p\"; chmod +x \"$p\"; done\n\
             cp {} /etc/systemd/system/{name}\nset +e\nsystemd-analyze verify /etc/systemd/system/{name} 2>&1\necho \"exit $?\"\n",
            programs.join(" "),
            unit_path.display()
        );
        let out = Command::new("unshare")
            .args(["--mount", "--map-root-user", "bash", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // verify prints nothing for a clean unit; any line is a finding.
        if text.trim() != "exit 0" {
            failures.push(format!("{at}:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `!Ref`/`!Sub` value of the EMR template, resolved with `values`.
fn resolve_value(v: &Value, values: &BTreeMap<&str, String>) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) if t.tag == "!Ref" => values
            .get(t.value.as_str().unwrap())
            .unwrap_or_else(|| panic!("no test value for !Ref {:?}", t.value))
            .clone(),
        Value::Tagged(t) if t.tag == "!Sub" => cfn_sub(t.value.as_str().unwrap(), values),
        other => panic!("unexpected configuration value {other:?}"),
    }
}

/// Properties of a configuration classification, as EMR hands them to the
/// node: `EMR.secret@KEY: ARN` becomes `KEY: <the secret's value>`.
fn properties(
    config: &Value,
    values: &BTreeMap<&str, String>,
    secrets: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    config["ConfigurationProperties"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let key = k.as_str().unwrap();
                    let value = resolve_value(v, values);
                    match key.strip_prefix("EMR.secret@") {
                        Some(plain) => (plain.to_string(), secrets[&value].clone()),
                        None => (key.to_string(), value),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// hive-site as XML and hue.ini as ConfigObj text, written from the EMR
/// stack's configurations the way EMR writes them, read back by Python's
/// XML parser and by ConfigObj (Hue's parser), with a password holding
/// every character the secrets' generator may produce.
#[test]
fn the_metastore_client_settings_parse_back_in_hive_and_hue() {
    require_tool("python3", "Python 3 with pip");
    let alphabet: String = ('A'..='Z').chain('a'..='z').chain('0'..='9').collect();
    for env in ["poc", "local"] {
        let rendered = rendered(env);
        let template: Value =
            serde_yaml::from_str(&rendered.stack("emr").unwrap().template).unwrap();
        let configs = template["Resources"]["Cluster"]["Properties"]["Configurations"]
            .as_sequence()
            .unwrap();
        let values: BTreeMap<&str, String> = BTreeMap::from([
            (
                "MetastoreEndpoint",
                "lake.cluster-c1.us-east-1.rds.amazonaws.com".to_string(),
            ),
            ("MetastoreHiveUser", "hive".to_string()),
            ("MetastoreHueUser", "hue".to_string()),
            ("MetastoreHiveSecretArn", "arn:secret:hive".to_string()),
            ("MetastoreHueSecretArn", "arn:secret:hue".to_string()),
        ]);
        let secrets = BTreeMap::from([
            ("arn:secret:hive".to_string(), alphabet.clone()),
            (
                "arn:secret:hue".to_string(),
                alphabet.chars().rev().collect::<String>(),
            ),
        ]);
        let hive = configs
            .iter()
            .find(|c| c["Classification"] == "hive-site")
            .unwrap();
        let hive = properties(hive, &values, &secrets);
        let hue = configs
            .iter()
            .find(|c| c["Classification"] == "hue-ini")
            .unwrap();
        let database = &hue["Configurations"][0]["Configurations"][0];
        assert_eq!(database["Classification"], "database", "{env}");
        let hue = properties(database, &values, &secrets);
        let xml_escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<configuration>\n");
        for (k, v) in &hive {
            xml.push_str(&format!(
                "  <property><name>{}</name><value>{}</value></property>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        }
        xml.push_str("</configuration>\n");
        let mut ini = String::from("[desktop]\n  [[database]]\n");
        for (k, v) in &hue {
            ini.push_str(&format!("    {k}={v}\n"));
        }
        let dir = tempdir();
        std::fs::write(dir.path().join("hive-site.xml"), &xml).unwrap();
        std::fs::write(dir.path().join("hue.ini"), &ini).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import json, sys, xml.etree.ElementTree as ET
from configobj import ConfigObj
d = sys.argv[1]
hive = {p.find("name").text: p.find("value").text for p in ET.parse(d + "/hive-site.xml").getroot()}
hue = dict(ConfigObj(d + "/hue.ini")["desktop"]["database"])
print(json.dumps({"hive": hive, "hue": hue}))
"#,
            )
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{env}: {} (pip install configobj: scripts/setup-tools.sh)",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for (k, v) in &hive {
            assert_eq!(parsed["hive"][k], v.as_str(), "{env}: hive-site {k}");
        }
        for (k, v) in &hue {
            assert_eq!(
                parsed["hue"][k],
                v.as_str(),
                "{env}: hue.ini {k} (ConfigObj)"
            );
        }
        // What the clients are told: verify the server against the RDS CA.
        let url = parsed["hive"]["javax.jdo.option.ConnectionURL"]
            .as_str()
            .unwrap();
        assert!(
            url.contains("useSSL=true")
                && url.contains("trustServerCertificate=false")
                && url.contains("serverSslCert=/etc/pki/rds/global-bundle.pem"),
            "{env}: {url}"
        );
        let options: serde_json::Value =
            serde_json::from_str(parsed["hue"]["options"].as_str().unwrap()).unwrap();
        assert_eq!(
            options["read_default_file"], "/etc/pki/rds/hue-mysql.cnf",
            "{env}: Hue reads the option file that checks the certificate's name"
        );
        assert_eq!(
            parsed["hive"]["javax.jdo.option.ConnectionPassword"],
            alphabet.as_str()
        );
        // The template itself holds no password, only secret ARNs.
        assert!(
            !rendered
                .stack("emr")
                .unwrap()
                .template
                .contains("resolve:secretsmanager"),
            "{env}"
        );
    }
}

/// The RDS CA bootstrap action every EMR node runs: bash with the URL the
/// template passes swapped for a local bundle (no internet here), `sudo` a
/// pass-through.
#[test]
fn the_rds_ca_bootstrap_action_installs_the_bundle_or_fails() {
    use lakectl::render::bootstrap;
    let script = bootstrap::rds_ca_script();
    assert_eq!(
        shellcheck(&script),
        "",
        "shellcheck on the bootstrap action"
    );
    let emr = rendered("poc").stack("emr").unwrap().template.clone();
    assert!(
        emr.contains(&bootstrap::rds_ca_script_key()),
        "the EMR stack runs the published script"
    );
    assert!(emr.contains(bootstrap::RDS_CA_URL) && emr.contains(bootstrap::RDS_CA_PATH));
    let dir = tempdir();
    let shims = dir.path().join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    std::fs::write(shims.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shims.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap());
    let script_path = dir.path().join("rds-ca.sh");
    std::fs::write(&script_path, &script).unwrap();
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert!(
        Path::new(bundle).is_file(),
        "Debian's CA bundle stands in for the RDS one (apt-get install -y ca-certificates)"
    );
    let dest = dir.path().join("etc/pki/rds/global-bundle.pem");
    let cnf = dir.path().join("etc/pki/rds/hue-mysql.cnf");
    let run = |url: &str| {
        Command::new("bash")
            .arg(&script_path)
            .arg(url)
            .arg(&dest)
            .arg(&cnf)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let ok = run(&format!("file://{bundle}"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(bundle).unwrap()
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("certificates in"));
    // Hue's client options: the CA just installed, and the name checked.
    assert_eq!(
        std::fs::read_to_string(&cnf).unwrap(),
        bootstrap::hue_client_cnf(dest.to_str().unwrap())
    );
    assert!(emr.contains(bootstrap::HUE_MYSQL_CNF_PATH));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let bad = run(&format!("file://{}", empty.display()));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("holds no certificate"));
}

/// Hue's connection to the metastore verifies the server's certificate
/// chain *and* name: the options lakectl renders for Hue
/// (`read_default_file` naming the option file the bootstrap action
/// writes), given to the client Hue uses (mysqlclient 1.4.6, Hue 4.11's
/// pin, as Debian's python3-mysqldb over libmariadb) against a real TLS
/// MariaDB that requires secure transport
/// (`crates/testkit/engine/hue_mysql_tls.py`): a certificate of the right
/// name from the trusted CA connects; one from another CA, or naming
/// another host, is refused. The control — the `ssl.ca` alone lakectl
/// rendered before — is shown *not* to verify the name, so the harness can
/// tell the two apart.
#[test]
fn hues_database_connection_refuses_a_certificate_for_another_host() {
    use lakectl::render::bootstrap;
    let mysqld = require_tool(
        "mariadbd",
        "apt-get install -y mariadb-server-core (scripts/setup-tools.sh does)",
    );
    let python = Path::new("/usr/bin/python3");
    let probe = Command::new(python)
        .args(["-c", "import MySQLdb"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "Debian's python3-mysqldb (mysqlclient 1.4.6) is not installed: apt-get install -y python3-mysqldb (scripts/setup-tools.sh does)"
    );
    let dir = tempdir();
    let cnf = dir.path().join("hue-mysql.cnf");
    std::fs::write(&cnf, bootstrap::hue_client_cnf(bootstrap::RDS_CA_PATH)).unwrap();
    let rendered = bootstrap::hue_db_options();
    let before = format!(r#"{{"ssl": {{"ca": "{}"}}}}"#, bootstrap::RDS_CA_PATH);
    let out = Command::new(python)
        .arg(repo_root().join("crates/testkit/engine/hue_mysql_tls.py"))
        .arg("--mysqld")
        .arg(&mysqld)
        .arg("--workdir")
        .arg(dir.path())
        .args(["--options", &rendered, "--options", &before])
        .arg("--client-cnf")
        .arg(format!(
            "{}={}",
            bootstrap::HUE_MYSQL_CNF_PATH,
            cnf.display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summaries: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("summary").is_some())
        .collect();
    assert_eq!(summaries.len(), 2, "{stdout}");
    let verifies = |options: &str| {
        let options: serde_json::Value = serde_json::from_str(options).unwrap();
        summaries
            .iter()
            .find(|s| s["options"] == options)
            .unwrap_or_else(|| panic!("no summary for {options}: {stdout}"))["verifies"]
            .as_bool()
            .unwrap()
    };
    assert!(
        verifies(&rendered),
        "the rendered options do not verify:\n{stdout}"
    );
    assert!(
        !verifies(&before),
        "the control (ssl.ca alone) verified the name: the harness cannot tell\n{stdout}"
    );
}
