//! `lakectl render` / `graph` / `schema`: templates AWS accepts, rendered
//! deterministically, secure by default, and documented.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lake_testkit::{cfn_lint, checkov, repo_root, tempdir};
use lakectl::render::{self, graph, RenderedEnv};
use lakectl::spec::{self, LoadedSpec};
use serde_yaml::Value;

/// The shipped environments plus fixtures that take every other template branch.
fn all_specs() -> Vec<LoadedSpec> {
    let root = repo_root();
    let mut specs = Vec::new();
    for (dir, envs) in [
        (root.join("environments"), vec!["local", "poc", "prod"]),
        (
            root.join("tests/fixtures/variants"),
            vec!["selfmanaged", "existing"],
        ),
    ] {
        for env in envs {
            let (loaded, _) =
                spec::load_valid(&dir, env).unwrap_or_else(|e| panic!("{env}: {e:#?}"));
            specs.push(loaded);
        }
    }
    specs
}

fn rendered(env: &str) -> RenderedEnv {
    let loaded = all_specs().into_iter().find(|s| s.env == env).unwrap();
    render::render(&loaded).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// Resources of one type in a template.
fn resources<'a>(template: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect()
}

/// Every stack of every spec, rendered under `dir` (one folder per spec).
fn render_all(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for loaded in all_specs() {
        let out = dir.join(&loaded.env);
        let written = render::render(&loaded).unwrap().write_to(&out).unwrap();
        files.extend(
            written
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "yaml")),
        );
    }
    assert_eq!(
        files.len(),
        // poc, prod, selfmanaged: 9; local (no Kafka): 8; existing: 7.
        9 + 9 + 8 + 9 + 7,
        "every stack of every spec"
    );
    files
}

#[test]
fn cfn_lint_reports_nothing_for_every_stack_of_every_environment() {
    let dir = tempdir();
    let files = render_all(dir.path());
    let (code, output) = cfn_lint(&files);
    // Zero errors is the bar; we hold warnings to zero too (cfn-lint is pinned in .ci/run).
    assert_eq!(code, 0, "cfn-lint found problems:\n{output}");
    assert!(output.trim().is_empty(), "{output}");
}

/// checkov, the policy scanner security reviewers run, fails nothing on any
/// stack of any spec. Each exception is argued in the template, next to its
/// resource (`Metadata.checkov.skip` with a reason), never on the command
/// line; a new resource without a decision fails here.
#[test]
fn checkov_fails_nothing_and_every_exception_is_argued_in_the_template() {
    let dir = tempdir();
    let files = render_all(dir.path());
    let (code, out) = checkov(dir.path());
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("checkov did not print a JSON report ({e}):\n{out}"));
    // One framework asked for: one report (an array when there are several).
    let report = match report {
        serde_json::Value::Array(mut all) => all.remove(0),
        one => one,
    };
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .expect("failed_checks")
        .iter()
        .map(|f| {
            format!(
                "{} {} in {}: {}",
                f["check_id"].as_str().unwrap_or("?"),
                f["resource"].as_str().unwrap_or("?"),
                f["file_path"].as_str().unwrap_or("?"),
                f["check_name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "checkov findings (fix them, or argue the exception in the template):\n{}",
        failed.join("\n")
    );
    assert_eq!(code, 0, "{out}");
    let summary = &report["summary"];
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert!(summary["passed"].as_u64().unwrap() > 500, "{summary}");
    // Every resource of every template was scanned.
    let mut resources = 0;
    let mut declared_skips = 0;
    for file in &files {
        let template = yaml(&std::fs::read_to_string(file).unwrap());
        let map = template["Resources"].as_mapping().unwrap();
        resources += map.len();
        for (_, r) in map {
            if let Some(skips) = r["Metadata"]["checkov"]["skip"].as_sequence() {
                declared_skips += skips.len();
            }
        }
    }
    assert_eq!(summary["resource_count"], resources, "{summary}");
    // Every exception says why, in words a reviewer can weigh, and every
    // one declared is one checkov applied (none is stale).
    let skipped = report["results"]["skipped_checks"].as_array().unwrap();
    for s in skipped {
        let why = s["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(
            why.split_whitespace().count() >= 8,
            "{} on {} is skipped without a reason a reviewer can weigh: {why:?}",
            s["check_id"],
            s["resource"]
        );
    }
    assert_eq!(
        skipped.len(),
        declared_skips,
        "a declared skip names a check checkov does not run on that resource (a typo?)"
    );
    assert!(declared_skips > 0);
}

#[test]
fn rendering_is_deterministic_to_the_byte() {
    for loaded in all_specs() {
        let (a, b) = (tempdir(), tempdir());
        let files_a = render::render(&loaded).unwrap().write_to(a.path()).unwrap();
        render::render(&loaded).unwrap().write_to(b.path()).unwrap();
        for file in files_a {
            let name = file.strip_prefix(a.path()).unwrap();
            assert_eq!(
                std::fs::read(&file).unwrap(),
                std::fs::read(b.path().join(name)).unwrap(),
                "{name:?}"
            );
        }
    }
}

#[test]
fn rendered_templates_match_snapshots() {
    for env in ["local", "poc", "prod"] {
        let r = rendered(env);
        insta::assert_snapshot!(format!("{env}__stacks.json"), r.stacks_json());
        for s in &r.stacks {
            insta::assert_snapshot!(format!("{env}__{}", s.id), s.template);
        }
    }
}

#[test]
fn deploy_order_and_wiring() {
    let r = rendered("poc");
    assert_eq!(
        r.waves,
        [
            vec!["network", "storage"],
            vec!["iam", "metastore"],
            vec!["stream", "emr"],
            vec!["kafka", "ingest", "compaction"]
        ]
    );
    let ingest = r.stack("ingest").unwrap();
    assert_eq!(ingest.depends_on, ["network", "storage", "iam", "stream"]);
    let sha = serde_json::to_value(&ingest.parameters["IngestArtifactSha256"]).unwrap();
    assert_eq!(
        sha,
        serde_json::json!({"from": "artifact", "artifact": "lake-ingest"})
    );
    let vpc =
        serde_json::to_value(&r.stack("emr").unwrap().parameters["PrivateSubnetIds"]).unwrap();
    assert_eq!(
        vpc,
        serde_json::json!({"from": "output", "stack": "network", "output": "PrivateSubnetIds"})
    );
    // Optional stacks come and go with the spec.
    let existing = rendered("existing");
    assert!(existing.stack("kafka").is_none() && existing.stack("compaction").is_none());
}

/// Leaf paths where two JSON values differ.
fn differing_paths(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                differing_paths(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &child,
                    out,
                );
            }
        }
        (x, y) if x != y => out.push(path.to_string()),
        _ => {}
    }
}

#[test]
fn poc_and_prod_differ_where_they_should_and_nowhere_else() {
    let specs = all_specs();
    let get = |env: &str| {
        serde_json::to_value(&specs.iter().find(|s| s.env == env).unwrap().spec).unwrap()
    };
    let mut diff = Vec::new();
    differing_paths(&get("poc"), &get("prod"), "", &mut diff);
    assert_eq!(
        diff,
        [
            "alerts.archive_freshness_minutes",
            "alerts.dead_letters_per_5_minutes",
            "alerts.ingest_lag_minutes",
            "alerts.metastore_cpu_percent",
            "datasets.orders.compaction",
            "datasets.orders.source",
            "datasets.orders.stream.retention_hours",
            "datasets.orders.stream.shards",
            "datasets.pageviews.source",
            "datasets.pageviews.stream.retention_hours",
            "emr.core.count",
            "emr.core.instance_types",
            "emr.task.count",
            "emr.task.instance_types",
            "ingest.fleet_size",
            "kafka.msk.broker_count",
            "kafka.msk.storage_gib",
            "metastore.backup_retention_days",
            "metastore.capacity.instances",
            "metastore.capacity.max_acu",
            "metastore.capacity.min_acu",
            "name",
            "network.availability_zones",
            "network.cidr",
            "network.endpoints.interface",
            "network.nat_gateways",
            "protection.deletion_protection",
            "protection.retain_data",
            "protection.termination_protection",
            "tags.environment",
        ]
    );

    // ...and the rendered stacks show it: multi-AZ, protection, sizes.
    let (poc, prod) = (rendered("poc"), rendered("prod"));
    let net = |r: &RenderedEnv| yaml(&r.stack("network").unwrap().template);
    assert_eq!(resources(&net(&poc), "AWS::EC2::Subnet").len(), 4);
    assert_eq!(resources(&net(&prod), "AWS::EC2::Subnet").len(), 6);
    assert_eq!(resources(&net(&poc), "AWS::EC2::NatGateway").len(), 1);
    assert_eq!(resources(&net(&prod), "AWS::EC2::NatGateway").len(), 3);
    // The stream through an interface endpoint in prod only; DynamoDB's
    // gateway endpoint in both.
    assert_eq!(resources(&net(&poc), "AWS::EC2::VPCEndpoint").len(), 2);
    assert_eq!(resources(&net(&prod), "AWS::EC2::VPCEndpoint").len(), 3);
    let meta = |r: &RenderedEnv| yaml(&r.stack("metastore").unwrap().template);
    let (pm, qm) = (meta(&poc), meta(&prod));
    assert_eq!(pm["Resources"]["Cluster"]["DeletionPolicy"], "Delete");
    assert_eq!(qm["Resources"]["Cluster"]["DeletionPolicy"], "Snapshot");
    assert_eq!(
        qm["Resources"]["Cluster"]["Properties"]["DeletionProtection"],
        true
    );
    assert_eq!(resources(&qm, "AWS::RDS::DBInstance").len(), 2);
    let storage = yaml(&prod.stack("storage").unwrap().template);
    for (name, bucket) in resources(&storage, "AWS::S3::Bucket") {
        // Kept when the stack goes, except after a failed first create
        // (a kept bucket would collide by name with the next create).
        assert_eq!(bucket["DeletionPolicy"], "RetainExceptOnCreate", "{name}");
        assert_eq!(bucket["UpdateReplacePolicy"], "Retain", "{name}");
    }
    let stream = yaml(&prod.stack("stream").unwrap().template);
    assert_eq!(
        stream["Resources"]["OrdersStream"]["Properties"]["ShardCount"],
        4
    );
    assert!(prod.termination_protection && !poc.termination_protection);
}

/// Every IAM policy statement in a template.
fn statements(template: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![template.clone()];
    while let Some(v) = stack.pop() {
        match v {
            Value::Mapping(m) => {
                if let Some(Value::Sequence(s)) = m.get("Statement") {
                    out.extend(s.iter().cloned());
                }
                stack.extend(m.into_iter().map(|(_, v)| v));
            }
            Value::Sequence(s) => stack.extend(s),
            Value::Tagged(t) => stack.push(t.value),
            _ => {}
        }
    }
    out
}

#[test]
fn secure_by_default_in_every_environment() {
    for loaded in all_specs() {
        let r = render::render(&loaded).unwrap();
        for s in &r.stacks {
            let t = yaml(&s.template);
            let at = format!("{}/{}", loaded.env, s.id);
            for st in statements(&t) {
                let star = |key: &str| match &st[key] {
                    Value::String(x) => x == "*",
                    Value::Sequence(xs) => xs.iter().any(|x| x == "*"),
                    _ => false,
                };
                let allow = st["Effect"] == "Allow";
                assert!(
                    !(allow && star("Action") && star("Resource")),
                    "{at}: `*` on `*`: {st:?}"
                );
                // Service-wide wildcards (`s3:*`) only in the KMS key policy's account-root statement.
                let root_admin = serde_yaml::to_string(&st["Principal"])
                    .unwrap()
                    .contains(":root");
                let actions = match &st["Action"] {
                    Value::Sequence(a) => a.clone(),
                    one => vec![one.clone()],
                };
                for a in actions {
                    let wildcard = a.as_str().is_some_and(|a| a.ends_with(":*"));
                    assert!(
                        !(allow && wildcard && !root_admin),
                        "{at}: wildcard action {a:?}"
                    );
                }
            }
            for (name, ingress) in resources(&t, "AWS::EC2::SecurityGroupIngress") {
                assert_ne!(
                    ingress["Properties"]["CidrIp"], "0.0.0.0/0",
                    "{at}: {name} open to the world"
                );
            }
            for (name, bucket) in resources(&t, "AWS::S3::Bucket") {
                let p = &bucket["Properties"];
                let block = &p["PublicAccessBlockConfiguration"];
                for k in [
                    "BlockPublicAcls",
                    "BlockPublicPolicy",
                    "IgnorePublicAcls",
                    "RestrictPublicBuckets",
                ] {
                    assert_eq!(block[k], true, "{at}: {name}.{k}");
                }
                assert!(
                    p["BucketEncryption"].is_mapping(),
                    "{at}: {name} unencrypted"
                );
                let tls_only = resources(&t, "AWS::S3::BucketPolicy").into_iter().any(|(_, pol)| {
                    matches!(&pol["Properties"]["Bucket"], Value::Tagged(tag) if tag.value.as_str() == Some(name))
                        && statements(pol).iter().any(|st| st["Sid"] == "DenyInsecureTransport")
                });
                assert!(tls_only, "{at}: {name} lacks a TLS-only policy");
            }
            for (name, c) in resources(&t, "AWS::RDS::DBCluster") {
                assert_eq!(c["Properties"]["StorageEncrypted"], true, "{at}: {name}");
                let pw = serde_yaml::to_string(&c["Properties"]["MasterUserPassword"]).unwrap();
                assert!(
                    pw.contains("resolve:secretsmanager"),
                    "{at}: password not from Secrets Manager: {pw}"
                );
            }
            for (name, k) in resources(&t, "AWS::Kinesis::Stream") {
                assert_eq!(
                    k["Properties"]["StreamEncryption"]["EncryptionType"], "KMS",
                    "{at}: {name}"
                );
            }
            for (name, lt) in resources(&t, "AWS::EC2::LaunchTemplate") {
                assert_eq!(
                    lt["Properties"]["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"],
                    "required",
                    "{at}: {name} allows IMDSv1"
                );
            }
            assert!(
                !s.template.contains("KeyName"),
                "{at}: SSH key pairs are not used (Session Manager instead)"
            );
        }
    }
}

#[test]
fn graph_formats_and_the_readme_picture() {
    let r = rendered("poc");
    let mermaid = graph::draw(&r, graph::GraphFormat::Mermaid);
    insta::assert_snapshot!("poc__graph_mermaid", mermaid);
    insta::assert_snapshot!("poc__graph_text", graph::draw(&r, graph::GraphFormat::Text));
    let dot = graph::draw(&r, graph::GraphFormat::Dot);
    assert!(dot.starts_with("digraph \"lake-poc\"") && dot.contains("\"stream\" -> \"ingest\";"));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```mermaid\n{mermaid}```")),
        "README's graph is stale; paste `lakectl graph poc --format mermaid` into it"
    );
}

/// Compare a generated doc with the committed one; LAKECTL_BLESS=1 rewrites it.
fn check_generated(path: &Path, generated: &str) {
    if std::env::var_os("LAKECTL_BLESS").is_some() {
        std::fs::write(path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; run `LAKECTL_BLESS=1 cargo test --test render`",
        path.display()
    );
}

#[test]
fn schema_and_spec_reference_are_current() {
    let root = repo_root();
    let schema = spec::json_schema();
    check_generated(
        &root.join("docs/spec.schema.json"),
        &(serde_json::to_string_pretty(&schema).unwrap() + "\n"),
    );

    let fields = spec::reference::fields(&schema);
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for loaded in all_specs()
        .iter()
        .filter(|s| ["poc", "selfmanaged", "existing"].contains(&s.env.as_str()))
    {
        for (field, stacks) in render::consumers::consumers(loaded, &fields) {
            let entry = used.entry(field).or_default();
            for s in stacks {
                if !entry.contains(&s) {
                    entry.push(s);
                }
            }
        }
    }
    // Only fields read by AWS-facing commands (not templates) may be unused by rendering.
    let unused: Vec<&str> = fields
        .iter()
        .filter(|f| f.leaf && !used.contains_key(&f.path))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        unused,
        // endpoint_url: read by AWS-facing commands, and by the metastore
        // template's single-instance branch (emulators), which the
        // perturbation of unset optional fields does not reach.
        // schema_history: read by `validate` (each version may only grow
        // the one before); the templates render the current schema.
        [
            "account_id",
            "endpoint_url",
            "datasets.<name>.schema_history"
        ],
        "fields no template reads"
    );
    check_generated(
        &root.join("docs/spec-reference.md"),
        &spec::reference::markdown(&fields, &used),
    );
}

#[test]
fn cli_render_writes_files_and_schema_prints() {
    let bin = env!("CARGO_BIN_EXE_lakectl");
    let out = tempdir();
    let run = Command::new(bin)
        .current_dir(repo_root())
        .args(["render", "poc", "--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "compaction.yaml",
            "emr.yaml",
            "iam.yaml",
            "ingest.yaml",
            "kafka.yaml",
            "metastore.yaml",
            "network.yaml",
            "published",
            "stacks.json",
            "storage.yaml",
            "stream.yaml"
        ]
    );
    let bad = Command::new(bin)
        .current_dir(repo_root())
        .args(["render", "nope", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let schema = Command::new(bin).arg("schema").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(v["title"], "EnvSpec");
}

/// The lake steps: the EMR stack's table step and the compaction state
/// machine fetch one script by its content address (`render::steps`), the
/// one `up` publishes; it creates every dataset's table in the
/// environment's database, and bash accepts it (`bash -n`).
#[test]
fn the_lake_steps_are_one_published_script_for_every_dataset() {
    for loaded in all_specs() {
        let rendered = render::render(&loaded).unwrap();
        let emr = &rendered.stack("emr").unwrap().template;
        let (key, script) = rendered
            .scripts
            .iter()
            .find(|(k, _)| k.ends_with("/lake-steps.sh"))
            .unwrap_or_else(|| panic!("{}: no lake steps script", loaded.env));
        assert!(
            emr.contains(key.as_str()),
            "{}: the table step runs {key}",
            loaded.env
        );
        assert!(emr.contains(" table all"), "{}", loaded.env);
        for name in loaded.spec.datasets.keys() {
            let create = format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {}.{name}",
                loaded.spec.storage.database
            );
            let view = format!(
                "CREATE OR REPLACE VIEW {}.{name}",
                loaded.spec.storage.database
            );
            assert!(
                script.contains(&create) || script.contains(&view),
                "{}: no table for {name}",
                loaded.env
            );
        }
        let dir = tempdir();
        let path = dir.path().join("lake-steps.sh");
        std::fs::write(&path, script).unwrap();
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            loaded.env,
            String::from_utf8_lossy(&check.stderr)
        );
        // The compaction runs re-register partitions with the same script.
        if let Some(compaction) = rendered.stack("compaction") {
            assert!(compaction.template.contains(key.as_str()), "{}", loaded.env);
        }
    }
}

/// CloudFormation re-resolves SSM-typed parameters on every update, and a
/// plan that compares only the parameter's path would never show a new
/// value (a new AMI rolling the fleet on an unrelated change). lakectl pins
/// images instead (`deploy::images`: resolved once, shown as a note when a
/// newer one exists, taken with `up --refresh-images`); this keeps it so.
#[test]
fn no_template_declares_an_ssm_typed_parameter() {
    let mut images = 0;
    for spec in all_specs() {
        let env = render::render(&spec).unwrap();
        for stack in &env.stacks {
            let template = yaml(&stack.template);
            for (name, p) in template["Parameters"].as_mapping().into_iter().flatten() {
                let ty = p["Type"].as_str().unwrap_or_default();
                images += usize::from(ty == "AWS::EC2::Image::Id");
                assert!(
                    !ty.starts_with("AWS::SSM::Parameter::Value"),
                    "{} {}: parameter {name:?} is {ty}; pin it as an image parameter instead",
                    spec.env,
                    stack.id
                );
            }
        }
    }
    assert!(images > 0, "the image parameters are plain AMI ids, pinned");
}

/// Every property of the Kafka→Kinesis connector we render is one the
/// connector or Kafka Connect declares: the connector's `config()` is an
/// empty ConfigDef, so a misspelt key (`aggregation` for its `aggregration`)
/// is accepted and silently ignored. The declared keys are read from the
/// connector's and the framework's source at a pinned commit
/// (`tests/fixtures/kinesis-kafka-connector/declared-keys.json`, which names
/// files and lines).
#[test]
fn every_bridge_property_is_one_the_connector_declares() {
    let declared: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("tests/fixtures/kinesis-kafka-connector/declared-keys.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut keys: Vec<String> = ["connector_keys", "framework_keys"]
        .iter()
        .flat_map(|list| declared[*list].as_array().unwrap())
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    // `consumer.override.<key>` and friends: a prefix and any key.
    let prefixes: Vec<String> = declared["framework_key_patterns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            p["pattern"]
                .as_str()?
                .split_once('<')
                .map(|(pre, _)| pre.to_string())
        })
        .collect();
    let mut checked = 0;
    let mut unknown = Vec::new();
    for spec in all_specs() {
        let rendered = render::render(&spec).unwrap();
        let Some(kafka) = rendered.stack("kafka") else {
            continue;
        };
        for (name, r) in resources(&yaml(&kafka.template), "AWS::KafkaConnect::Connector") {
            for (key, _) in r["Properties"]["ConnectorConfiguration"]
                .as_mapping()
                .unwrap()
            {
                let key = key.as_str().unwrap();
                checked += 1;
                let known = keys.binary_search(&key.to_string()).is_ok()
                    || prefixes.iter().any(|p| key.starts_with(p.as_str()));
                if !known {
                    unknown.push(format!("{}/{name}: `{key}`", spec.spec.name));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} connector properties found");
    assert!(
        unknown.is_empty(),
        "properties the connector does not read (ignored silently):\n{}",
        unknown.join("\n")
    );
}
