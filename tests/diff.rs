//! `lakectl diff ENV --against DIR`: plans between two renders, as text and
//! JSON, with exit codes for CI.

use std::path::Path;
use std::process::{Command, Output};

use lake_testkit::{repo_root, tempdir};

fn lakectl(env_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakectl"))
        .arg("--env-dir")
        .arg(env_dir)
        .args(args)
        .output()
        .unwrap()
}

/// A copy of the shipped environments with `extra` appended to poc.yaml.
fn envs_with(dir: &Path, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for f in [
        "_base.yaml",
        "poc.yaml",
        "prod.yaml",
        "local.yaml",
        "schemas/pageviews.avsc",
    ] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
        std::fs::copy(repo_root().join("environments").join(f), dir.join(f)).unwrap();
    }
    let poc = std::fs::read_to_string(dir.join("poc.yaml")).unwrap() + extra;
    std::fs::write(dir.join("poc.yaml"), poc).unwrap();
}

fn render(env_dir: &Path, out: &Path) {
    let o = lakectl(env_dir, &["render", "poc", "--out", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unchanged_spec_plans_nothing_and_exits_0() {
    let dir = tempdir();
    let envs = repo_root().join("environments");
    render(&envs, &dir.path().join("before"));
    let o = lakectl(
        &envs,
        &[
            "diff",
            "poc",
            "--against",
            dir.path().join("before").to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("0 of 9 stacks change: 0 resources to add, 0 to modify (0 by replacement), 0 to remove; 0 broadening IAM/security changes\n"));
}

#[test]
fn a_changed_spec_shows_properties_replacement_and_security() {
    let dir = tempdir();
    let envs = repo_root().join("environments");
    render(&envs, &dir.path().join("before"));
    let changed = dir.path().join("envs");
    // More shards (in place), a new Hue database name (replaces the Aurora
    // cluster), Parquet conversion (new Glue resources and IAM actions).
    envs_with(
        &changed,
        "datasets:\n  orders:\n    stream: {shards: 4}\nmetastore:\n  hue_database: hue\narchive:\n  parquet: true\n  compression: uncompressed\n",
    );
    let against = dir.path().join("before");
    let text = lakectl(
        &changed,
        &[
            "diff",
            "poc",
            "--against",
            against.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        text.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let stdout = String::from_utf8(text.stdout).unwrap();
    insta::assert_snapshot!("poc_changed_text", stdout);
    assert!(stdout.contains("Properties.ShardCount: \"2\" -> \"4\"\n"));
    assert!(stdout.contains("~ Cluster AWS::RDS::DBCluster  requires replacement"));
    assert!(
        stdout.contains("Allow glue:GetTable on"),
        "new IAM actions are listed"
    );

    let json = lakectl(
        &changed,
        &[
            "--output",
            "json",
            "diff",
            "poc",
            "--against",
            against.to_str().unwrap(),
        ],
    );
    assert_eq!(
        json.status.code(),
        Some(0),
        "without --detailed-exitcode changes exit 0"
    );
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (plan["changes"].as_bool(), plan["broadening"].as_bool()),
        (Some(true), Some(true))
    );
    insta::assert_json_snapshot!("poc_changed_json", plan);
}

#[test]
fn stacks_to_create_and_to_delete() {
    let dir = tempdir();
    let envs = repo_root().join("environments");
    // Nothing rendered before: every stack is created.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = lakectl(
        &envs,
        &[
            "diff",
            "poc",
            "--against",
            empty.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.matches("): create\n").count(), 9);
    assert!(stdout.contains("+ Vpc AWS::EC2::VPC"));

    // Kafka removed from the spec: its stack is deleted.
    render(&envs, &dir.path().join("before"));
    let changed = dir.path().join("envs");
    envs_with(&changed, "kafka: null\n");
    let o = lakectl(
        &changed,
        &[
            "diff",
            "poc",
            "--against",
            dir.path().join("before").to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(stdout.contains("Stack lake-poc-kafka (kafka): delete\n  - BootstrapBrokers Custom::MskBootstrapBrokers"), "{stdout}");
}

#[test]
fn formatting_never_shows_as_a_change() {
    // The earlier render rewritten as JSON with long-form intrinsics.
    let dir = tempdir();
    let envs = repo_root().join("environments");
    let before = dir.path().join("before");
    render(&envs, &before);
    for entry in std::fs::read_dir(&before).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let normal =
                lakectl::plan::normalize::normalize(&std::fs::read_to_string(&path).unwrap())
                    .unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&normal).unwrap()).unwrap();
        }
    }
    let o = lakectl(
        &envs,
        &[
            "diff",
            "poc",
            "--against",
            before.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_corrupt_earlier_render_is_an_error_naming_the_file() {
    let dir = tempdir();
    std::fs::write(dir.path().join("stream.yaml"), "Resources: [unclosed").unwrap();
    let o = lakectl(
        &repo_root().join("environments"),
        &[
            "diff",
            "poc",
            "--against",
            dir.path().to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stream.yaml:"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
