//! Every role can do what its service is documented to need, on the right
//! resource, and no more where it matters: a table of (role, action,
//! resource) → allowed or not, each row naming the AWS document it follows.
//! The rendered IAM stack's inline policies are evaluated with IAM's
//! matching rules for `Action` and `Resource` (`*` and `?` wildcards, an
//! explicit Deny wins); conditions are not evaluated here (each row that
//! relies on one says so).

use std::collections::BTreeMap;

use lake_testkit::{cfn_sub, repo_root};
use lakectl::render;
use lakectl::spec;
use serde_yaml::Value;

const ACCOUNT: &str = "123456789012";

/// IAM's wildcard match (case-insensitive for actions, as IAM does).
fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(&p, &t)
}

fn strings(v: &Value, values: &BTreeMap<&str, String>) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(seq) => seq.iter().flat_map(|x| strings(x, values)).collect(),
        Value::Tagged(t) if t.tag == "!Sub" => vec![cfn_sub(t.value.as_str().unwrap(), values)],
        Value::Tagged(t) if t.tag == "!Ref" => vec![values
            .get(t.value.as_str().unwrap())
            .cloned()
            .unwrap_or_else(|| format!("<ref {}>", t.value.as_str().unwrap()))],
        Value::Tagged(t) if t.tag == "!GetAtt" => vec![format!("<getatt {:?}>", t.value)],
        _ => Vec::new(),
    }
}

/// Whether `role`'s inline policies allow `action` on `resource`.
fn allowed(template: &Value, role: &str, action: &str, resource: &str) -> bool {
    let values: BTreeMap<&str, String> = BTreeMap::from([
        ("AWS::Partition", "aws".to_string()),
        ("AWS::Region", "us-east-1".to_string()),
        ("AWS::AccountId", ACCOUNT.to_string()),
        ("DataBucketArn", "arn:aws:s3:::lake-poc-data".to_string()),
        (
            "ArtifactsBucketArn",
            "arn:aws:s3:::lake-poc-artifacts".to_string(),
        ),
        ("LogsBucketArn", "arn:aws:s3:::lake-poc-logs".to_string()),
        (
            "DataKeyArn",
            format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/data"),
        ),
    ]);
    let policies = template["Resources"][role]["Properties"]["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{role} has no inline policies"));
    let mut allow = false;
    for policy in policies {
        for st in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            let actions = strings(&st["Action"], &values);
            let resources = strings(&st["Resource"], &values);
            let hit = actions.iter().any(|a| glob(a, action, true))
                && resources.iter().any(|r| glob(r, resource, false));
            match (st["Effect"].as_str(), hit) {
                (Some("Deny"), true) => return false,
                (Some("Allow"), true) => allow = true,
                _ => {}
            }
        }
    }
    allow
}

#[test]
fn each_role_can_do_what_its_service_is_documented_to_need() {
    let (loaded, _) = spec::load_valid(&repo_root().join("environments"), "poc").unwrap();
    let rendered = render::render(&loaded).unwrap();
    let template: Value = serde_yaml::from_str(&rendered.stack("iam").unwrap().template).unwrap();
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/data");
    let secret =
        |name: &str| format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-Ab12Cd");
    let topic = |t: &str| {
        format!("arn:aws:kafka:us-east-1:{ACCOUNT}:topic/lake-poc-kafka/0b1c2d3e-uuid/{t}")
    };
    let group = |g: &str| {
        format!("arn:aws:kafka:us-east-1:{ACCOUNT}:group/lake-poc-kafka/0b1c2d3e-uuid/{g}")
    };
    let stream = format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/lake-poc-orders");
    let leases = format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/lake-poc-ingest-leases");
    // (role, action, resource, allowed?, the document it follows)
    let rows: Vec<(&str, &str, String, bool, &str)> = vec![
        ("EmrServiceRole", "kms:CreateGrant", key.clone(), true, "EMR guide, Create a security configuration: local disk (EBS) encryption with a KMS key (condition kms:GrantIsForAWSResource)"),
        ("EmrServiceRole", "kms:GenerateDataKeyWithoutPlaintext", key.clone(), true, "EMR guide, Create a security configuration: EBS encryption"),
        ("EmrServiceRole", "kms:Decrypt", key.clone(), true, "EMR guide, Create a security configuration: EBS encryption"),
        ("EmrServiceRole", "kms:DescribeKey", key.clone(), true, "EMR guide, Create a security configuration: EBS encryption"),
        ("EmrServiceRole", "kms:ReEncryptFrom", key.clone(), true, "EMR guide, Create a security configuration: EBS encryption (ReEncrypt*)"),
        ("EmrServiceRole", "secretsmanager:GetSecretValue", secret("lake-poc-metastore-hive"), true, "EMR release guide, Store sensitive configuration data in AWS Secrets Manager"),
        ("EmrServiceRole", "secretsmanager:GetSecretValue", secret("lake-poc-metastore-hue"), true, "EMR release guide, Store sensitive configuration data in AWS Secrets Manager"),
        ("EmrServiceRole", "secretsmanager:GetSecretValue", secret("lake-poc-metastore"), false, "the master secret is lakectl's and administrators' only"),
        ("EmrInstanceRole", "secretsmanager:GetSecretValue", secret("lake-poc-metastore"), false, "no EMR node reads the master secret"),
        ("EmrInstanceRole", "s3:GetObject", "arn:aws:s3:::lake-poc-artifacts/emr/bootstrap/0123/rds-ca.sh".into(), true, "EMR guide, Create bootstrap actions: the instance profile reads the script"),
        ("EmrInstanceRole", "s3:GetObject", "arn:aws:s3:::lake-poc-artifacts/bin/lake-compact/abc/lake-compact".into(), true, "the compaction step fetches lake-compact"),
        ("EmrInstanceRole", "s3:DeleteObject", "arn:aws:s3:::lake-poc-data/lake/orders/dt=2019-11-13/hr=15/a.csv".into(), true, "compaction deletes its sources"),
        ("EmrInstanceRole", "s3:GetObject", "arn:aws:s3:::lake-poc-data/lake/orders".into(), true, "EMR guide, EMRFS: CREATE EXTERNAL TABLE … LOCATION heads the location's own key (403, not 404, without it)"),
        ("EmrInstanceRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/lake/orders_$folder$".into(), true, "EMR guide, EMRFS: the location's folder marker"),
        ("EmrInstanceRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/lake/pageviews/dt=2019-11-13/a.parquet".into(), true, "every dataset's table location is under the lake root"),
        ("EmrInstanceRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/lakex/a.csv".into(), false, "only the lake root, not a sibling prefix"),
        ("EmrInstanceRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/raw/orders/2019/11/13/15/x.gz".into(), false, "the raw archive is Firehose's"),
        ("EmrInstanceRole", "dynamodb:Scan", leases.clone(), true, "lake-compact --lease-table reads the checkpoints"),
        ("EmrInstanceRole", "dynamodb:UpdateItem", leases.clone(), false, "compaction never moves a lease"),
        ("ConnectRole", "kafka-cluster:CreateTopic", topic("__amazon_msk_connect_offsets_lake-poc-kafka-to-kinesis"), true, "MSK Connect guide, Service execution role: internal topics"),
        ("ConnectRole", "kafka-cluster:WriteData", topic("__amazon_msk_connect_status_lake-poc-kafka-to-kinesis"), true, "MSK Connect guide, Service execution role: internal topics"),
        ("ConnectRole", "kafka-cluster:ReadData", topic("orders"), true, "MSK Connect guide, Service execution role: the sink's source topic"),
        ("ConnectRole", "kafka-cluster:ReadData", topic("payments"), false, "only the bridged topic"),
        ("ConnectRole", "kafka-cluster:AlterGroup", group("connect-lake-poc-kafka-to-kinesis"), true, "MSK Connect guide: a sink connector's consumer group connect-<name>"),
        ("ConnectRole", "kafka-cluster:AlterGroup", group("__amazon_msk_connect_lake-poc-kafka-to-kinesis"), true, "MSK Connect guide, Service execution role: internal groups"),
        ("ConnectRole", "kinesis:PutRecords", stream.clone(), true, "kinesis-kafka-connector: the sink writes the stream"),
        ("FirehoseRole", "kinesis:GetRecords", stream.clone(), true, "Firehose developer guide, Grant Firehose access to a Kinesis data stream source"),
        ("FirehoseRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/raw/2019/11/13/15/x.gz".into(), true, "Firehose developer guide, Grant Firehose access to an Amazon S3 destination"),
        ("FirehoseRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/lake/orders/x.csv".into(), false, "the archive is not the lake"),
        ("FirehoseRole", "kms:GenerateDataKey", key.clone(), true, "Firehose developer guide: SSE-KMS destination"),
        ("IngestInstanceRole", "kinesis:GetRecords", stream.clone(), true, "Kinesis developer guide, consumer IAM (GetShardIterator, GetRecords)"),
        ("IngestInstanceRole", "dynamodb:UpdateItem", leases.clone(), true, "lake-ingest's leases (as the KCL's)"),
        ("IngestInstanceRole", "s3:PutObject", "arn:aws:s3:::lake-poc-data/lake/orders/dt=2019-11-13/hr=15/s-1.csv".into(), true, "lake-ingest publishes lake files"),
        ("IngestInstanceRole", "s3:GetObject", "arn:aws:s3:::lake-poc-artifacts/bin/lake-ingest/abc/lake-ingest".into(), true, "the user data fetches lake-ingest"),
        ("IngestInstanceRole", "s3:GetObject", "arn:aws:s3:::lake-poc-artifacts/bin/lake-compact/abc/lake-compact".into(), false, "the fleet runs only lake-ingest"),
        ("IngestInstanceRole", "s3:DeleteObject", "arn:aws:s3:::lake-poc-data/lake/orders/dt=2019-11-13/hr=15/s-1.csv".into(), true, "a successor removes the files of its predecessor's unfinished window"),
        ("IngestInstanceRole", "s3:AbortMultipartUpload", "arn:aws:s3:::lake-poc-data/lake/orders/dt=2019-11-13/hr=15/s-1-7.csv".into(), true, "S3 user guide, multipart upload permissions: a successor aborts a stalled predecessor's upload"),
        ("IngestInstanceRole", "s3:ListBucketMultipartUploads", "arn:aws:s3:::lake-poc-data".into(), true, "S3 user guide, multipart upload permissions: listing the uploads in progress"),
        ("IngestInstanceRole", "s3:ListBucket", "arn:aws:s3:::lake-poc-data".into(), true, "S3 API reference, HeadObject: 404 for a missing key needs s3:ListBucket (else 403)"),
        ("IngestInstanceRole", "s3:DeleteObject", "arn:aws:s3:::lake-poc-data/raw/2019/11/13/15/x.gz".into(), false, "the raw archive is Firehose's"),
        ("IngestInstanceRole", "kms:Decrypt", key.clone(), true, "DynamoDB developer guide, encryption at rest: the lease table's customer managed key"),
        ("IngestInstanceRole", "kms:Encrypt", key.clone(), true, "DynamoDB developer guide, encryption at rest: the lease table's customer managed key (kms:ViaService dynamodb)"),
        ("EmrInstanceRole", "kms:Decrypt", key.clone(), true, "Secrets Manager: the Hive and Hue secrets are on the environment's key"),
        ("IngestInstanceRole", "logs:PutLogEvents", format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/lake/lake-poc/ingest:log-stream:i-0abc"), true, "CloudWatch agent guide: the agent's role writes its log group"),
    ];
    let mut wrong = Vec::new();
    for (role, action, resource, want, doc) in &rows {
        if allowed(&template, role, action, resource) != *want {
            wrong.push(format!(
                "{role} {} {action} on {resource} ({doc})",
                if *want { "cannot" } else { "CAN" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_evaluator_matches_like_iam() {
    assert!(glob("kms:ReEncrypt*", "kms:reencryptfrom", true));
    assert!(glob(
        "arn:aws:s3:::b/lake/*",
        "arn:aws:s3:::b/lake/x/y",
        false
    ));
    assert!(!glob(
        "arn:aws:s3:::b/lake/*",
        "arn:aws:s3:::b/raw/x",
        false
    ));
    assert!(glob("secret:n-??????", "secret:n-Ab12Cd", false));
    assert!(!glob("secret:n-hive-??????", "secret:n-Ab12Cd", false));
}
