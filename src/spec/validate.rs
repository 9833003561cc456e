//! Semantic checks a platform engineer wants caught before AWS sees the spec.
//!
//! Owns: cross-field and value-range rules over a typed `EnvSpec`, reported
//! through the spec's `Locator` so each finding names `file:line:col`.
//! Must not: read files or touch AWS (live checks belong to `preflight`).

use ipnet::Ipv4Net;

use super::diagnostic::{Diagnostic, Locator};
use super::model::*;
use super::network::{derive_subnets, msk_az_count};

/// All problems of one spec, errors and warnings, in field order.
pub fn validate(spec: &EnvSpec, loc: &Locator) -> Vec<Diagnostic> {
    let mut v = Validator {
        loc,
        found: Vec::new(),
    };
    v.identity(spec);
    v.network(spec);
    v.storage(&spec.storage);
    if let Some(kafka) = &spec.kafka {
        v.kafka(kafka, spec.network.az_count());
        let protected =
            spec.protection.termination_protection || spec.protection.deletion_protection;
        v.kafka_fits_platform(kafka, &spec.network, protected);
    }
    v.datasets(spec);
    v.archive(&spec.archive);
    v.metastore(&spec.metastore);
    v.emr(spec);
    v.ingest(spec);
    v.compaction(spec);
    v.alerts(spec);
    v.found
}

struct Validator<'a> {
    loc: &'a Locator,
    found: Vec<Diagnostic>,
}

/// The rows of `lakectl status` that are the platform's own components
/// (`inspect::health`); a dataset's row is named by the dataset, so these
/// names are not datasets'.
pub const PLATFORM_ROWS: &[&str] = &[
    "kafka",
    "stream",
    "archive",
    "ingest",
    "fleet",
    "metastore",
    "emr",
    "compaction",
    "alarms",
    "network",
    "storage",
    "iam",
];

impl Validator<'_> {
    fn error(&mut self, path: &str, msg: impl Into<String>) {
        self.found.push(self.loc.error(path, msg));
    }

    fn warning(&mut self, path: &str, msg: impl Into<String>) {
        self.found.push(self.loc.warning(path, msg));
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.error(
                path,
                format!("{path} is {value}; it must be between {min} and {max}"),
            );
        }
    }

    fn identity(&mut self, spec: &EnvSpec) {
        let name_ok = (2..=20).contains(&spec.name.len())
            && spec.name.starts_with(|c: char| c.is_ascii_lowercase())
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !spec.name.ends_with('-');
        if !name_ok {
            self.error(
                "name",
                format!(
                    "name `{}` must be 2-20 characters of a-z, 0-9 and `-`, starting with a letter (it prefixes bucket names)",
                    spec.name
                ),
            );
        }
        match region_problem(&spec.region) {
            Some(RegionProblem::NotARegion) => self.error(
                "region",
                format!(
                    "region `{}` is not an AWS region name (area-direction-number, such as \
                     `us-east-1` or `eu-central-2`)",
                    spec.region
                ),
            ),
            Some(RegionProblem::Unknown(hint)) => self.warning(
                "region",
                format!(
                    "region `{}` is not one lakectl knows{hint}; if it is new, `lakectl \
                     preflight` asks AWS",
                    spec.region
                ),
            ),
            None => {}
        }
        if let Some(account) = &spec.account_id {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                self.error(
                    "account_id",
                    format!("account_id `{account}` must be 12 digits (quote it in YAML to keep leading zeros)"),
                );
            }
        }
        if let Some(url) = &spec.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.error(
                    "endpoint_url",
                    format!("endpoint_url `{url}` must start with http:// or https://"),
                );
            }
        }
        for (key, value) in &spec.tags {
            let path = format!("tags.{key}");
            if key.starts_with("aws:") {
                self.error(
                    &path,
                    format!("tag key `{key}`: the `aws:` prefix is reserved by AWS"),
                );
            }
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                self.error(
                    &path,
                    "tag keys are 1-128 characters and values at most 256",
                );
            }
        }
    }

    fn network(&mut self, spec: &EnvSpec) {
        match &spec.network {
            Network::New(n) => self.new_network(n),
            Network::Existing(e) => {
                if !e.vpc_id.starts_with("vpc-") {
                    self.error(
                        "network.vpc_id",
                        format!("vpc_id `{}` is not a VPC id (vpc-…)", e.vpc_id),
                    );
                }
                if e.vpc_cidr.parse::<Ipv4Net>().is_err() {
                    self.error(
                        "network.vpc_cidr",
                        format!("vpc_cidr `{}` is not an IPv4 CIDR", e.vpc_cidr),
                    );
                }
                for (i, id) in e.private_subnet_ids.iter().enumerate() {
                    if !id.starts_with("subnet-") {
                        let field = format!("network.private_subnet_ids.{i}");
                        self.error(&field, format!("`{id}` is not a subnet id (subnet-…)"));
                    }
                }
                if e.private_subnet_ids.len() < 2 {
                    self.error(
                        "network.private_subnet_ids",
                        "at least 2 private subnets in different AZs are needed (Aurora and MSK require two AZs)",
                    );
                }
            }
        }
    }

    fn new_network(&mut self, n: &NewNetwork) {
        let azs = n.availability_zones as usize;
        if !(2..=6).contains(&azs) {
            self.error(
                "network.availability_zones",
                format!("availability_zones is {azs}; use 2 to 6 (Aurora and MSK need at least two AZs)"),
            );
            return;
        }
        let vpc: Ipv4Net = match n.cidr.parse() {
            Ok(v) => v,
            Err(_) => {
                self.error(
                    "network.cidr",
                    format!("cidr `{}` is not an IPv4 CIDR such as 10.20.0.0/16", n.cidr),
                );
                return;
            }
        };
        if vpc.network() != vpc.addr() {
            self.error(
                "network.cidr",
                format!(
                    "cidr `{}` has host bits set; did you mean `{}`?",
                    n.cidr,
                    vpc.trunc()
                ),
            );
        }
        if !(16..=24).contains(&vpc.prefix_len()) {
            self.error(
                "network.cidr",
                format!("a VPC CIDR must be /16 to /24, not /{}", vpc.prefix_len()),
            );
            return;
        }
        let mut subnets: Vec<(String, Ipv4Net)> = Vec::new();
        for (field, list) in [
            ("public_subnets", &n.public_subnets),
            ("private_subnets", &n.private_subnets),
        ] {
            if list.is_empty() {
                continue;
            }
            if list.len() != azs {
                self.error(
                    &format!("network.{field}"),
                    format!(
                        "{field} lists {} CIDRs but availability_zones is {azs}; give one per AZ",
                        list.len()
                    ),
                );
            }
            for (i, cidr) in list.iter().enumerate() {
                let path = format!("network.{field}.{i}");
                match cidr.parse::<Ipv4Net>() {
                    Ok(net) => subnets.push((path, net)),
                    Err(_) => self.error(&path, format!("`{cidr}` is not an IPv4 CIDR")),
                }
            }
        }
        if n.public_subnets.is_empty() || n.private_subnets.is_empty() {
            match derive_subnets(&n.cidr, n.subnet_prefix, azs) {
                Ok(derived) => {
                    let (public, private) = derived.split_at(azs);
                    if n.public_subnets.is_empty() {
                        subnets.extend(
                            public
                                .iter()
                                .map(|c| ("network.subnet_prefix".to_string(), c.parse().unwrap())),
                        );
                    }
                    if n.private_subnets.is_empty() {
                        subnets.extend(
                            private
                                .iter()
                                .map(|c| ("network.subnet_prefix".to_string(), c.parse().unwrap())),
                        );
                    }
                }
                Err(e) => self.error("network.subnet_prefix", e.to_string()),
            }
        }
        for (path, net) in &subnets {
            if !vpc.contains(net) {
                self.error(path, format!("subnet {net} is outside the VPC CIDR {vpc}"));
            }
            if net.prefix_len() > 28 {
                self.error(
                    path,
                    format!("subnet {net} is smaller than /28, the smallest AWS allows"),
                );
            }
        }
        for i in 0..subnets.len() {
            for j in i + 1..subnets.len() {
                let (a, b) = (&subnets[i].1, &subnets[j].1);
                if a.contains(b) || b.contains(a) {
                    let msg = format!(
                        "subnet {b} overlaps {a} (at {})",
                        self.loc.locate(&subnets[i].0)
                    );
                    self.error(&subnets[j].0.clone(), msg);
                }
            }
        }
    }

    fn storage(&mut self, s: &Storage) {
        if s.lake_root.is_empty()
            || s.lake_root.starts_with('/')
            || s.lake_root.ends_with('/')
            || s.lake_root
                .split('/')
                .any(|seg| seg.is_empty() || seg.starts_with('_'))
        {
            self.error(
                "storage.lake_root",
                format!("lake_root `{}` must be a non-empty key prefix without leading or trailing `/`, no part starting with `_` (readers hide those)", s.lake_root),
            );
        }
        if !lake_contract::layout::is_hive_identifier(&s.database) {
            self.error(
                "storage.database",
                format!(
                    "database `{}` is not a Hive name: letters, digits and `_`",
                    s.database
                ),
            );
        }
        if s.noncurrent_version_days == 0 {
            self.error(
                "storage.noncurrent_version_days",
                "noncurrent_version_days must be at least 1",
            );
        }
    }

    fn kafka(&mut self, k: &Kafka, az_count: usize) {
        let _brokers = self.brokers_of(k, az_count);
    }

    /// The broker count of `k` (after checking its mode's settings).
    fn brokers_of(&mut self, k: &Kafka, az_count: usize) -> u32 {
        let brokers = match k.mode {
            KafkaMode::Msk => {
                let m = &k.msk;
                let azs = msk_az_count(az_count);
                if m.broker_count == 0 || !m.broker_count.is_multiple_of(azs as u32) {
                    self.error(
                        "kafka.msk.broker_count",
                        format!(
                            "MSK broker_count {} is not a multiple of the {azs} availability zones its brokers spread over",
                            m.broker_count
                        ),
                    );
                }
                if !m.instance_type.starts_with("kafka.") {
                    self.error(
                        "kafka.msk.instance_type",
                        format!(
                            "MSK instance types start with `kafka.`; did you mean `kafka.{}`?",
                            m.instance_type
                        ),
                    );
                }
                self.range("kafka.msk.storage_gib", m.storage_gib.into(), 1, 16384);
                if !is_version(&m.version) {
                    self.error(
                        "kafka.msk.version",
                        format!(
                            "version `{}` is not a Kafka version such as 3.6.0",
                            m.version
                        ),
                    );
                }
                m.broker_count
            }
            KafkaMode::SelfManaged => {
                let s = &k.self_managed;
                for (path, ty) in [
                    (
                        "kafka.self_managed.broker_instance_type",
                        &s.broker_instance_type,
                    ),
                    (
                        "kafka.self_managed.zookeeper_instance_type",
                        &s.zookeeper_instance_type,
                    ),
                ] {
                    if let Some(ec2) = ty.strip_prefix("kafka.") {
                        self.error(
                            path,
                            format!(
                                "`{ty}` is an MSK broker type; self-managed brokers are EC2 \
                                 instances: write `{ec2}`"
                            ),
                        );
                    }
                }
                if s.zookeeper_nodes.is_multiple_of(2) || s.zookeeper_nodes == 0 {
                    self.error(
                        "kafka.self_managed.zookeeper_nodes",
                        format!(
                            "a ZooKeeper ensemble needs an odd number of nodes (3 or 5), not {}",
                            s.zookeeper_nodes
                        ),
                    );
                }
                if s.broker_count == 0 {
                    self.error(
                        "kafka.self_managed.broker_count",
                        "broker_count must be at least 1",
                    );
                }
                if s.default_partitions < s.broker_count {
                    self.error(
                        "kafka.self_managed.default_partitions",
                        format!(
                            "default_partitions {} is below broker_count {}: some brokers would hold no partition of a new topic and sit idle",
                            s.default_partitions, s.broker_count
                        ),
                    );
                }
                if s.default_replication > s.broker_count {
                    self.error(
                        "kafka.self_managed.default_replication",
                        format!(
                            "default_replication {} exceeds broker_count {}",
                            s.default_replication, s.broker_count
                        ),
                    );
                }
                let (isr, rf) = (s.min_insync_replicas, s.default_replication);
                if isr == 0 || isr > rf || (rf > 1 && isr == rf) {
                    self.error(
                        "kafka.self_managed.min_insync_replicas",
                        format!(
                            "min_insync_replicas {} must be at least 1 and below default_replication {} so one broker can fail",
                            s.min_insync_replicas, s.default_replication
                        ),
                    );
                }
                self.range(
                    "kafka.self_managed.broker_heap_gib",
                    s.broker_heap_gib.into(),
                    1,
                    32,
                );
                if !is_version(&s.kafka_version) {
                    self.error(
                        "kafka.self_managed.kafka_version",
                        format!(
                            "kafka_version `{}` is not a version such as 3.6.2",
                            s.kafka_version
                        ),
                    );
                }
                s.broker_count
            }
        };
        if k.bridge.is_none() {
            self.warning(
                "kafka.bridge",
                "no bridge: nothing copies Kafka's topics to the datasets' streams, so every \
                 dataset reads its stream directly and the cluster feeds nothing. A `kafka:` whose \
                 `mode:` differs from the base's replaces the base's section whole, `bridge` \
                 included: write `bridge:` here again, or remove `kafka:`",
            );
        }
        if let Some(b) = &k.bridge {
            let s3_ok = b
                .plugin
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(bucket, key)| !bucket.is_empty() && !key.is_empty());
            let file_ok = !b.plugin.contains("://")
                && (b.plugin.ends_with(".zip") || b.plugin.ends_with(".jar"));
            if !(s3_ok || file_ok) {
                self.error(
                    "kafka.bridge.plugin",
                    format!(
                        "plugin `{}` must be a .zip or .jar file (a path, relative to the environments directory; lakectl publishes it) or an S3 location you own, s3://bucket/key.zip",
                        b.plugin
                    ),
                );
            }
            let passthrough = ["StringConverter", "ByteArrayConverter"];
            if !passthrough.iter().any(|c| b.value_converter.ends_with(c)) {
                self.error(
                    "kafka.bridge.value_converter",
                    format!(
                        "value_converter `{}` would re-encode records; use org.apache.kafka.connect.storage.StringConverter or org.apache.kafka.connect.converters.ByteArrayConverter so JSON text reaches Kinesis",
                        b.value_converter
                    ),
                );
            }
            self.range("kafka.bridge.workers", b.workers.into(), 1, 10);
        }
        brokers
    }

    /// Rules that tie Kafka to the rest of the platform.
    fn kafka_fits_platform(&mut self, k: &Kafka, network: &Network, protected: bool) {
        if k.mode == KafkaMode::SelfManaged && matches!(network, Network::Existing(_)) {
            self.error(
                "kafka.mode",
                "self-managed Kafka needs `network.mode: new`: ZooKeeper nodes get fixed addresses in subnets lakectl plans",
            );
        }
        if k.mode == KafkaMode::SelfManaged {
            // Not secure by default (docs/security.md, "Self-managed Kafka"):
            // a proof of concept's choice, never a protected environment's.
            if protected {
                self.error(
                    "kafka.mode",
                    "self-managed Kafka is for proofs of concept only: its brokers speak PLAINTEXT to the whole VPC without authentication, run as root, and download Kafka without a checksum. This environment is protected (`protection`), so it is refused; use `mode: msk` (TLS and IAM)",
                );
            } else {
                self.warning(
                    "kafka.mode",
                    "self-managed brokers speak plaintext inside the VPC (security group limited to the VPC CIDR); use `mode: msk` for TLS and IAM",
                );
            }
        }
        if k.bridge.is_some()
            && k.mode == KafkaMode::Msk
            && k.msk.client_auth == MskClientAuth::Scram
        {
            self.error(
                "kafka.msk.client_auth",
                "the bridge runs on MSK Connect, which authenticates to MSK with IAM only; set client_auth: iam or remove kafka.bridge",
            );
        }
    }

    fn stream(&mut self, at: &str, s: &Stream) {
        if s.mode == StreamMode::Provisioned {
            self.range(&format!("{at}.shards"), s.shards.into(), 1, 500);
        }
        self.range(
            &format!("{at}.retention_hours"),
            s.retention_hours.into(),
            24,
            8760,
        );
        if s.kms_key.is_empty() {
            self.error(
                &format!("{at}.kms_key"),
                "kms_key is empty; streams are always encrypted (default alias/aws/kinesis)",
            );
        }
    }

    fn datasets(&mut self, spec: &EnvSpec) {
        let brokers = spec.kafka.as_ref().map(|k| match k.mode {
            KafkaMode::Msk => k.msk.broker_count,
            KafkaMode::SelfManaged => k.self_managed.broker_count,
        });
        let mut topics: std::collections::HashMap<String, &str> = Default::default();
        let mut tables: std::collections::HashMap<String, &str> = Default::default();
        let mut ids: std::collections::HashMap<String, &str> = Default::default();
        for (name, d) in &spec.datasets {
            let at = format!("datasets.{name}");
            let name_ok = (1..=32).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !name_ok {
                self.error(
                    &at,
                    format!("dataset name `{name}` must be 1-32 characters of a-z, 0-9 and `_`, starting with a letter: it names the Hive table, the stream and the lake folder"),
                );
            }
            if PLATFORM_ROWS.contains(&name.as_str()) {
                self.error(
                    &at,
                    format!("dataset name `{name}` is a platform component's name in `lakectl status` (reserved: {}); name the dataset for its data, e.g. `{name}_events`", PLATFORM_ROWS.join(", ")),
                );
            }
            if let Some(first) = ids.insert(crate::render::datasets::logical_id(name), name) {
                self.error(
                    &at,
                    format!("datasets `{first}` and `{name}` would name the same CloudFormation resources ({}…); rename one", crate::render::datasets::logical_id(name)),
                );
            }
            if let Some(first) = tables.insert(name.replace('_', "-"), name) {
                self.error(
                    &at,
                    format!(
                        "datasets `{first}` and `{name}` would name one stream ({}-{})",
                        spec.name,
                        name.replace('_', "-")
                    ),
                );
            }
            self.stream(&format!("{at}.stream"), &d.stream);
            if let Some(topic) = d.topic(spec, name) {
                let topic = topic.as_str();
                let Some(brokers) = brokers else {
                    self.error(
                        &format!("{at}.source"),
                        "a Kafka source needs `kafka:` (MSK or self-managed); or write `source: {kind: stream}` when producers put records into the dataset's stream",
                    );
                    continue;
                };
                if spec.kafka.as_ref().is_some_and(|k| k.bridge.is_none()) {
                    self.error(
                        &format!("{at}.source"),
                        "a Kafka source is copied to the dataset's stream by the bridge: add `kafka.bridge` (the connector plugin)",
                    );
                }
                if let Some(other) = topics.insert(topic.to_string(), name) {
                    self.error(
                        &format!("{at}.source.topic"),
                        format!("topic `{topic}` already feeds dataset `{other}`: each topic is one dataset's"),
                    );
                }
                let topic_ok = !topic.is_empty()
                    && topic.len() <= 249
                    && topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !topic_ok {
                    self.error(
                        &format!("{at}.source.topic"),
                        format!("topic name `{topic}` may only use a-z, A-Z, 0-9, `.`, `_`, `-`"),
                    );
                }
                if let Source::Kafka {
                    partitions,
                    replication,
                    ..
                } = d.source_in(spec)
                {
                    if partitions == 0 {
                        self.error(
                            &format!("{at}.source.partitions"),
                            "partitions must be at least 1",
                        );
                    }
                    if replication == 0 || replication > brokers {
                        let default = if d.source.is_none() {
                            " (the default)"
                        } else {
                            ""
                        };
                        self.error(
                            &format!("{at}.source.replication"),
                            format!(
                                "replication {replication}{default} exceeds the {brokers} brokers (or is 0): set datasets.{name}.source: {{kind: kafka, replication: N}}"
                            ),
                        );
                    }
                }
            }
            self.dataset_schema(&at, d);
            if d.compaction != "off" && d.compaction != "manual" {
                if let Err(e) = check_schedule(&d.compaction) {
                    self.error(&format!("{at}.compaction"), e.to_string());
                }
            }
            if d.compacts() && !spec.compaction.enabled {
                self.error(
                    &format!("{at}.compaction"),
                    format!("compaction `{}` needs the compaction runner: set compaction.enabled: true, or compaction: off here", d.compaction),
                );
            }
            self.range(
                &format!("{at}.compaction_target_mib"),
                d.compaction_target_mib.into(),
                1,
                5120,
            );
            let scheduled = d.compacts() && d.compaction != "manual";
            if d.effective_partition_by() == PartitionBy::ArrivalTime && scheduled {
                self.warning(
                    &format!("{at}.compaction"),
                    "a dataset partitioned by arrival time writes large files into the newest partition and rarely needs compaction (the arrival-time scenario)",
                );
            }
            if d.retention_days != 0 {
                self.range(
                    &format!("{at}.retention_days"),
                    d.retention_days.into(),
                    1,
                    36500,
                );
            }
        }
    }

    /// A dataset's columns, time field and partitioning, and its schema's
    /// history: the table's old files must stay readable.
    fn dataset_schema(&mut self, at: &str, d: &Dataset) {
        use lake_contract::schema::{evolution_problem, typed_columns, ColumnType};
        let schema = d.schema.as_ref().and_then(SchemaSource::inline);
        // Every format: csv and parquet files are cut by it, and every
        // dataset's Hive table (ndjson's view too) is typed by it.
        if schema.is_none() {
            self.error(
                &format!("{at}.schema"),
                format!(
                    "format {} needs a schema: the Avro record schema of the columns (the dataset's table is typed by it), inline or `{{file: name.avsc}}` beside the spec",
                    d.format.as_str()
                ),
            );
        }
        let columns = match schema.map(|s| typed_columns(s, "_")) {
            Some(Ok(columns)) => Some(columns),
            Some(Err(e)) if e.path.is_empty() => {
                self.error(&format!("{at}.schema"), e.message);
                None
            }
            Some(Err(e)) => {
                self.error(&format!("{at}.schema.{}", e.path), e.message);
                None
            }
            None => None,
        };
        if d.effective_partition_by() == PartitionBy::RecordTime && d.time_field.is_none() {
            self.error(
                &format!("{at}.partition_by"),
                "partition_by record-time needs time_field: the field holding the record's own time",
            );
        }
        let Some(columns) = columns else {
            return;
        };
        let mut seen: std::collections::HashMap<String, &str> = Default::default();
        for (name, _) in &columns {
            if !lake_contract::layout::is_hive_identifier(name) {
                self.error(
                    &format!("{at}.schema"),
                    format!("column `{name}` cannot be a Hive column: use letters, digits and `_`, starting with a letter or `_`, at most 128 characters"),
                );
            }
            if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
                self.error(
                    &format!("{at}.schema"),
                    format!(
                        "columns `{first}` and `{name}` are one column to Hive, which ignores case"
                    ),
                );
            }
        }
        // The partition directories' keys are never columns: every reader
        // that discovers Hive-style partitions reads the key's value.
        if let Some(key) =
            lake_contract::schema::column_shadowed_by_partition(&columns, &d.partition_keys())
        {
            self.error(
                &format!("{at}.schema"),
                format!("column `{key}` is also a partition key of the lake's directories ({}): readers that discover partitions (Spark, DuckDB, pyarrow, Athena) would read the directory's value instead of the column's; rename the field", d.layout()),
            );
        }
        if d.effective_partition_by() == PartitionBy::RecordTime {
            if let Some(field) = &d.time_field {
                if let Some(problem) = lake_contract::schema::time_field_problem(&columns, field) {
                    self.error(&format!("{at}.time_field"), format!("time_field {problem}"));
                }
            }
        }
        // Each version may only add columns to the one before it.
        let mut versions: Vec<(String, Vec<(String, ColumnType)>)> = Vec::new();
        for (i, old) in d.schema_history.iter().enumerate() {
            let path = format!("{at}.schema_history.{i}");
            match old.inline().map(|s| typed_columns(s, "_")) {
                Some(Ok(c)) => versions.push((path, c)),
                Some(Err(e)) => self.error(&path, format!("not a record schema: {}", e.message)),
                None => {}
            }
        }
        versions.push((format!("{at}.schema"), columns));
        for pair in versions.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            if let Some(problem) = evolution_problem(&old.1, &new.1, d.format == FileFormat::Csv) {
                self.error(
                    &new.0,
                    format!(
                        "{problem} (against {}). Keep the field (new records may leave it out: it reads as null), or start a new dataset or table version (e.g. `{}_v2`) for a schema that changes shape",
                        old.0,
                        at.rsplit('.').next().unwrap_or("dataset")
                    ),
                );
            }
        }
    }

    fn archive(&mut self, a: &Archive) {
        if !a.enabled {
            return;
        }
        self.range("archive.buffer_mib", a.buffer_mib.into(), 1, 128);
        self.range("archive.buffer_seconds", a.buffer_seconds.into(), 0, 900);
        if !a.prefix.ends_with('/') || a.prefix.starts_with('/') {
            self.error(
                "archive.prefix",
                format!(
                    "prefix `{}` must end with `/` and not start with one",
                    a.prefix
                ),
            );
        }
        if a.error_prefix.is_empty() || a.error_prefix == a.prefix {
            self.error(
                "archive.error_prefix",
                "error_prefix must be set and differ from prefix",
            );
        }
        if a.parquet {
            if a.compression != Compression::Uncompressed {
                self.error(
                    "archive.compression",
                    "with parquet conversion Firehose compresses inside Parquet; set compression: uncompressed",
                );
            }
            if a.buffer_mib < 64 {
                self.error(
                    "archive.buffer_mib",
                    "parquet conversion needs buffer_mib of at least 64",
                );
            }
        }
    }

    fn metastore(&mut self, m: &Metastore) {
        let v = &m.engine_version;
        let aurora = !matches!(m.capacity, Capacity::SingleInstance { .. });
        if aurora && !(v.starts_with("8.0.mysql_aurora.3.") || v.starts_with("5.7.mysql_aurora.2."))
        {
            self.error(
                "metastore.engine_version",
                format!("engine_version `{v}` is not an Aurora MySQL version such as 8.0.mysql_aurora.3.10.3"),
            );
        }
        match &m.capacity {
            Capacity::Serverless {
                min_acu,
                max_acu,
                instances,
            } => {
                let half_step = |x: f64| (x * 2.0).fract() == 0.0;
                if !(0.0..=256.0).contains(min_acu) || !half_step(*min_acu) {
                    self.error(
                        "metastore.capacity.min_acu",
                        format!("min_acu {min_acu} must be 0 to 256 in steps of 0.5"),
                    );
                }
                if !(1.0..=256.0).contains(max_acu) || !half_step(*max_acu) {
                    self.error(
                        "metastore.capacity.max_acu",
                        format!("max_acu {max_acu} must be 1 to 256 in steps of 0.5"),
                    );
                }
                if min_acu > max_acu {
                    self.error(
                        "metastore.capacity.min_acu",
                        format!("min_acu {min_acu} is above max_acu {max_acu}"),
                    );
                }
                if v.starts_with("5.7.") {
                    self.error(
                        "metastore.engine_version",
                        "Aurora Serverless v2 needs Aurora MySQL 3 (8.0.mysql_aurora.3.x)",
                    );
                }
                self.range("metastore.capacity.instances", (*instances).into(), 1, 16);
            }
            Capacity::Provisioned {
                instance_class,
                instances,
            } => {
                if !instance_class.starts_with("db.") {
                    self.error(
                        "metastore.capacity.instance_class",
                        format!("instance_class `{instance_class}` must be a DB instance class such as db.r6g.large"),
                    );
                }
                self.range("metastore.capacity.instances", (*instances).into(), 1, 16);
            }
            Capacity::SingleInstance {
                instance_class,
                mysql_version,
                storage_gib,
            } => {
                if !instance_class.starts_with("db.") {
                    self.error(
                        "metastore.capacity.instance_class",
                        format!("instance_class `{instance_class}` must be a DB instance class such as db.t4g.micro"),
                    );
                }
                let known = ["8.0.", "8.4."].iter().any(|p| {
                    mysql_version.strip_prefix(p).is_some_and(|rest| {
                        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
                    })
                });
                if !known {
                    self.error(
                        "metastore.capacity.mysql_version",
                        format!("mysql_version `{mysql_version}` is not an RDS for MySQL version such as 8.0.40 or 8.4.3"),
                    );
                }
                self.range(
                    "metastore.capacity.storage_gib",
                    (*storage_gib).into(),
                    20,
                    65536,
                );
            }
        }
        for (field, db) in [
            ("hive_database", &m.hive_database),
            ("hue_database", &m.hue_database),
        ] {
            let ok = db.len() <= 64
                && db.starts_with(|c: char| c.is_ascii_alphabetic())
                && db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.error(
                    &format!("metastore.{field}"),
                    format!(
                        "`{db}` must be a MySQL identifier: a letter, then letters, digits or `_`"
                    ),
                );
            }
        }
        if m.hive_database == m.hue_database {
            self.error(
                "metastore.hue_database",
                "hive_database and hue_database must differ",
            );
        }
        self.range(
            "metastore.backup_retention_days",
            m.backup_retention_days.into(),
            1,
            35,
        );
    }

    fn emr(&mut self, spec: &EnvSpec) {
        let e = &spec.emr;
        let release = match parse_emr_release(&e.release_label) {
            Some(r) => r,
            None => {
                self.error(
                    "emr.release_label",
                    format!(
                        "release_label `{}` is not of the form emr-X.Y.Z",
                        e.release_label
                    ),
                );
                return;
            }
        };
        if release < (5, 0, 0) {
            self.error(
                "emr.release_label",
                "EMR releases before 5.0 are not supported",
            );
        }
        for (i, app) in e.applications.iter().enumerate() {
            let path = format!("emr.applications.{i}");
            match EMR_APPLICATIONS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(app))
            {
                None => {
                    let known = EMR_APPLICATIONS.iter().map(|(n, _)| *n);
                    let hint = super::diagnostic::suggest(app, known)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    self.error(&path, format!("`{app}` is not an EMR application{hint}"));
                }
                Some((name, since)) if release < *since => self.error(
                    &path,
                    format!(
                        "{} does not offer {name} (first in emr-{}.{}.{})",
                        e.release_label, since.0, since.1, since.2
                    ),
                ),
                Some(_) => {}
            }
        }
        if !e
            .applications
            .iter()
            .any(|a| a.eq_ignore_ascii_case("hive"))
        {
            self.error(
                "emr.applications",
                "applications must include Hive: the lake's tables live in the Hive metastore",
            );
        }
        for (role, group, min) in [
            ("master", &e.master, 1),
            ("core", &e.core, 1),
            ("task", &e.task, 0),
        ] {
            let path = format!("emr.{role}");
            if group.instance_types.is_empty() {
                self.error(
                    &format!("{path}.instance_types"),
                    "give at least one instance type",
                );
            }
            if e.collection == InstanceCollection::Groups && group.instance_types.len() > 1 {
                self.warning(
                    &format!("{path}.instance_types"),
                    "instance groups use only the first instance type; use `collection: fleets` for several",
                );
            }
            if group.count < min {
                self.error(
                    &format!("{path}.count"),
                    format!("{role} needs at least {min} node(s)"),
                );
            }
            self.range(&format!("{path}.ebs_gib"), group.ebs_gib.into(), 15, 16384);
        }
        if e.master.count != 1 && e.master.count != 3 {
            self.error(
                "emr.master.count",
                "master count must be 1, or 3 for high availability",
            );
        }
        if e.master.market == Market::Spot {
            self.warning(
                "emr.master.market",
                "a spot master loses the whole cluster when reclaimed",
            );
        }
        if e.idle_timeout_minutes != 0 {
            self.range(
                "emr.idle_timeout_minutes",
                e.idle_timeout_minutes.into(),
                1,
                10080,
            );
            // One model: a long-running cluster. The table's partitions are
            // registered on it every 15 minutes (so it never idles), and the
            // compaction state machine adds steps to this cluster's id (so a
            // terminated cluster would fail every run from then on).
            let registers = !spec.datasets.is_empty();
            if registers || spec.compaction.enabled {
                self.error(
                    "emr.idle_timeout_minutes",
                    format!(
                        "idle_timeout_minutes {} cannot work with {}: the cluster is long-running (steps target its id, registration runs every 15 minutes so it never idles); use 0",
                        e.idle_timeout_minutes,
                        if registers { "the lake's Hive table" } else { "compaction" }
                    ),
                );
            }
        }
        if !e.log_prefix.ends_with('/') {
            self.error("emr.log_prefix", "log_prefix must end with `/`");
        }
    }

    fn ingest(&mut self, spec: &EnvSpec) {
        let i = &spec.ingest;
        if !i.ami_parameter.starts_with('/') {
            self.error(
                "ingest.ami_parameter",
                format!(
                    "ami_parameter `{}` must be an SSM parameter path such as /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
                    i.ami_parameter
                ),
            );
        }
        self.range("ingest.roll_mib", i.roll_mib.into(), 1, 1024);
        self.range("ingest.roll_seconds", i.roll_seconds.into(), 10, 3600);
        self.range("ingest.fleet_size", i.fleet_size.into(), 0, 100);
        self.range(
            "ingest.failover_seconds",
            i.failover_seconds.into(),
            10,
            600,
        );
        let shards: u64 = spec
            .datasets
            .values()
            .map(|d| d.stream.expected_shards())
            .sum();
        if u64::from(i.fleet_size) > shards && !spec.datasets.is_empty() {
            self.warning(
                "ingest.fleet_size",
                format!(
                    "fleet_size {} exceeds the {shards} shards of every dataset's stream: the extra workers hold no lease",
                    i.fleet_size
                ),
            );
        }
    }

    fn compaction(&mut self, _spec: &EnvSpec) {}
}

impl Validator<'_> {
    fn alerts(&mut self, spec: &EnvSpec) {
        let a = &spec.alerts;
        if !a.enabled {
            return;
        }
        for (i, address) in a.email.iter().enumerate() {
            let (local, domain) = address.split_once('@').unwrap_or(("", ""));
            if local.is_empty() || !domain.contains('.') || address.contains(char::is_whitespace) {
                self.error(
                    &format!("alerts.email.{i}"),
                    format!("`{address}` is not an email address (name@example.com)"),
                );
            }
        }
        if let Some(arn) = &a.topic_arn {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
                self.error(
                    "alerts.topic_arn",
                    format!("`{arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
                );
            }
            if !a.email.is_empty() {
                self.error(
                    "alerts.email",
                    "subscriptions belong to the topic's owner: with alerts.topic_arn, subscribe these addresses to that topic and leave alerts.email out",
                );
            }
        }
        self.range(
            "alerts.ingest_lag_minutes",
            a.ingest_lag_minutes.into(),
            1,
            10_080,
        );
        self.range(
            "alerts.dead_letters_per_5_minutes",
            a.dead_letters_per_5_minutes.into(),
            0,
            10_000_000,
        );
        self.range(
            "alerts.archive_freshness_minutes",
            a.archive_freshness_minutes.into(),
            1,
            1440,
        );
        // Firehose holds records for its buffer interval before it delivers
        // at all: a threshold inside it fires on every buffer.
        if spec.archive.enabled
            && u64::from(a.archive_freshness_minutes) * 60 <= u64::from(spec.archive.buffer_seconds)
        {
            self.error(
                "alerts.archive_freshness_minutes",
                format!(
                    "{} minutes is within archive.buffer_seconds ({} s): the alarm would fire on every buffer; give more than {} minutes",
                    a.archive_freshness_minutes,
                    spec.archive.buffer_seconds,
                    spec.archive.buffer_seconds / 60
                ),
            );
        }
        self.range(
            "alerts.metastore_cpu_percent",
            a.metastore_cpu_percent.into(),
            1,
            100,
        );
    }
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn parse_emr_release(label: &str) -> Option<(u32, u32, u32)> {
    let mut it = label
        .strip_prefix("emr-")?
        .split('.')
        .map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// EMR applications and the first release that offers each (EMR release guide).
const EMR_APPLICATIONS: &[(&str, (u32, u32, u32))] = &[
    ("Spark", (5, 0, 0)),
    ("Hive", (5, 0, 0)),
    ("Hue", (5, 0, 0)),
    ("Hadoop", (5, 0, 0)),
    ("Pig", (5, 0, 0)),
    ("Tez", (5, 0, 0)),
    ("Zeppelin", (5, 0, 0)),
    ("Presto", (5, 0, 0)),
    ("Sqoop", (5, 0, 0)),
    ("Oozie", (5, 0, 0)),
    ("Ganglia", (5, 0, 0)),
    ("HBase", (5, 0, 0)),
    ("ZooKeeper", (5, 0, 0)),
    ("Flink", (5, 1, 0)),
    ("Livy", (5, 9, 0)),
    ("JupyterHub", (5, 14, 0)),
    ("Hudi", (5, 28, 0)),
    ("JupyterEnterpriseGateway", (5, 31, 0)),
    ("Trino", (6, 4, 0)),
    ("Iceberg", (6, 5, 0)),
    ("Delta", (6, 9, 0)),
];

/// `manual`, or a schedule expression EventBridge accepts: `cron(…)` with
/// six fields (minutes hours day-of-month month day-of-week year; exactly
/// one of the day fields `?`) or `rate(N unit)` (singular unit for 1).
pub fn check_schedule(s: &str) -> Result<(), ScheduleError> {
    let schedule = || s.to_string();
    if s == "manual" {
        return Ok(());
    }
    if let Some(body) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        let fields: Vec<&str> = body.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(ScheduleError::CronFields {
                schedule: schedule(),
                count: fields.len(),
            });
        }
        for (field, rule) in fields.iter().zip(&CRON_FIELDS) {
            check_cron_field(field, rule).map_err(|reason| ScheduleError::CronField {
                schedule: schedule(),
                name: rule.name,
                field: field.to_string(),
                reason,
            })?;
        }
        if (fields[2] == "?") == (fields[4] == "?") {
            return Err(ScheduleError::DayFields {
                schedule: schedule(),
            });
        }
        return Ok(());
    }
    if let Some(body) = s.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut it = body.split_whitespace();
        if let (Some(Ok(n)), Some(unit), None) =
            (it.next().map(str::parse::<u32>), it.next(), it.next())
        {
            let singular = ["minute", "hour", "day"].contains(&unit);
            let plural = ["minutes", "hours", "days"].contains(&unit);
            if n == 1 && singular || n > 1 && plural {
                return Ok(());
            }
            if n == 0 {
                return Err(ScheduleError::ZeroRate {
                    schedule: schedule(),
                });
            }
            if singular || plural {
                return Err(ScheduleError::RateUnit {
                    schedule: schedule(),
                    n,
                    unit: if n == 1 {
                        unit.trim_end_matches('s').to_string()
                    } else {
                        format!("{}s", unit.trim_end_matches('s'))
                    },
                });
            }
        }
    }
    Err(ScheduleError::Form {
        schedule: schedule(),
    })
}

/// Why a compaction `schedule` is not one EventBridge accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule `{schedule}` has {count} fields; EventBridge cron takes 6: minutes hours \
         day-of-month month day-of-week year, e.g. cron(0 2 * * ? *)"
    )]
    CronFields { schedule: String, count: usize },
    #[error("schedule `{schedule}`: {name} `{field}`: {reason}")]
    CronField {
        schedule: String,
        name: &'static str,
        field: String,
        reason: CronFieldError,
    },
    #[error(
        "schedule `{schedule}`: exactly one of day-of-month and day-of-week must be `?` \
         (EventBridge cannot take both), e.g. cron(0 2 * * ? *)"
    )]
    DayFields { schedule: String },
    #[error("schedule `{schedule}`: the rate must be at least 1")]
    ZeroRate { schedule: String },
    #[error("schedule `{schedule}`: EventBridge wants `{unit}` with {n}")]
    RateUnit {
        schedule: String,
        n: u32,
        unit: String,
    },
    #[error("schedule `{schedule}` must be `manual`, `cron(…)` or `rate(N minutes|hours|days)`")]
    Form { schedule: String },
}

/// What is wrong with one cron field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronFieldError {
    #[error("`{value}` is not between {min} and {max}{names}")]
    OutOfRange {
        value: String,
        min: u32,
        max: u32,
        /// ` (or JAN-DEC)` where names are allowed.
        names: String,
    },
    #[error("`?` is only for day-of-month and day-of-week")]
    Question,
    #[error("an empty list item")]
    EmptyItem,
    #[error("`#{0}`: the week of the month is 1 to 5")]
    Week(String),
    #[error("`/{step}`: the step must be between 1 and {max}")]
    Step { step: String, max: u32 },
}

struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Characters besides `, - * /` the field takes.
    special: &'static str,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// EventBridge's cron fields ("Schedule expressions for rules").
const CRON_FIELDS: [CronField; 6] = [
    CronField {
        name: "minutes",
        min: 0,
        max: 59,
        names: &[],
        special: "",
    },
    CronField {
        name: "hours",
        min: 0,
        max: 23,
        names: &[],
        special: "",
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        special: "?LW",
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        special: "",
    },
    CronField {
        name: "day-of-week",
        min: 1,
        max: 7,
        names: WEEKDAYS,
        special: "?L#",
    },
    CronField {
        name: "year",
        min: 1970,
        max: 2199,
        names: &[],
        special: "",
    },
];

fn check_cron_field(field: &str, rule: &CronField) -> Result<(), CronFieldError> {
    let value = |v: &str| -> Result<u32, CronFieldError> {
        if let Some(i) = rule.names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + rule.min);
        }
        match v.parse::<u32>() {
            Ok(n) if (rule.min..=rule.max).contains(&n) => Ok(n),
            _ => Err(CronFieldError::OutOfRange {
                value: v.to_string(),
                min: rule.min,
                max: rule.max,
                names: if rule.names.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (or {}-{})",
                        rule.names[0],
                        rule.names[rule.names.len() - 1]
                    )
                },
            }),
        }
    };
    if field == "?" {
        return if rule.special.contains('?') {
            Ok(())
        } else {
            Err(CronFieldError::Question)
        };
    }
    for item in field.split(',') {
        if item.is_empty() {
            return Err(CronFieldError::EmptyItem);
        }
        if item == "*" {
            continue;
        }
        if rule.special.contains('L')
            && (item == "L" || item == "LW")
            && (item != "LW" || rule.special.contains('W'))
        {
            continue;
        }
        if let Some(day) = item
            .strip_suffix('W')
            .filter(|_| rule.special.contains('W'))
        {
            value(day)?;
            continue;
        }
        if let Some(day) = item
            .strip_suffix('L')
            .filter(|_| rule.special.contains('L') && rule.special.contains('#'))
        {
            value(day)?;
            continue;
        }
        if let Some((day, nth)) = item.split_once('#').filter(|_| rule.special.contains('#')) {
            value(day)?;
            match nth.parse::<u32>() {
                Ok(1..=5) => continue,
                _ => return Err(CronFieldError::Week(nth.to_string())),
            }
        }
        let (base, step) = match item.split_once('/') {
            Some((b, st)) => (b, Some(st)),
            None => (item, None),
        };
        if let Some(st) = step {
            match st.parse::<u32>() {
                Ok(n) if n >= 1 && n <= rule.max => {}
                _ => {
                    return Err(CronFieldError::Step {
                        step: st.to_string(),
                        max: rule.max,
                    })
                }
            }
        }
        if base == "*" && step.is_some() {
            continue;
        }
        match base.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(base)?;
            }
        }
    }
    Ok(())
}

/// Why a region name cannot be used.
#[derive(Debug, PartialEq)]
enum RegionProblem {
    /// Not shaped like one (`eu-westt-1`).
    NotARegion,
    /// Shaped like one, but not a region lakectl knows (with a hint).
    Unknown(String),
}

/// AWS's commercial, GovCloud and China regions as of 2026.
const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// `area[-gov]-direction-N`, the direction one of AWS's.
fn region_problem(region: &str) -> Option<RegionProblem> {
    if KNOWN_REGIONS.contains(&region) {
        return None;
    }
    const DIRECTIONS: &[&str] = &[
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = region.split('-').collect();
    let shaped = match parts.as_slice() {
        [area, direction, n] | [area, "gov", direction, n] => {
            area.len() == 2
                && area.chars().all(|c| c.is_ascii_lowercase())
                && DIRECTIONS.contains(direction)
                && n.parse::<u8>().is_ok_and(|n| n >= 1)
        }
        _ => false,
    };
    if !shaped {
        return Some(RegionProblem::NotARegion);
    }
    let hint = crate::spec::diagnostic::suggest(region, KNOWN_REGIONS.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Some(RegionProblem::Unknown(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert!(check_schedule("manual").is_ok());
        assert!(check_schedule("cron(0 2 * * ? *)").is_ok());
        assert!(check_schedule("rate(6 hours)").is_ok());
        assert!(check_schedule("cron(0 2 * * *)")
            .unwrap_err()
            .to_string()
            .contains("5 fields"));
        assert!(check_schedule("rate(0 hours)").is_err());
        assert!(check_schedule("daily").is_err());
        assert!(check_schedule("cron(15 1 * * ? *)").is_ok());
        assert!(check_schedule("cron(0/15 8-17 ? * MON-FRI *)").is_ok());
        assert!(check_schedule("cron(0 10 L * ? 2030)").is_ok());
        assert!(check_schedule("cron(0 10 ? * 6#3 *)").is_ok());
        assert_eq!(
            check_schedule("cron(99 99 * * ? *)")
                .unwrap_err()
                .to_string(),
            "schedule `cron(99 99 * * ? *)`: minutes `99`: `99` is not between 0 and 59"
        );
        assert!(check_schedule("cron(0 2 * * * *)")
            .unwrap_err()
            .to_string()
            .contains("exactly one of day-of-month and day-of-week"));
        assert!(check_schedule("cron(0 2 ? * ? *)").is_err());
        assert!(check_schedule("cron(0 2 ? JANUARY * *)")
            .unwrap_err()
            .to_string()
            .contains("month"));
        assert!(check_schedule("rate(1 hours)")
            .unwrap_err()
            .to_string()
            .contains("wants `hour` with 1"));
        assert!(check_schedule("rate(5 minute)")
            .unwrap_err()
            .to_string()
            .contains("wants `minutes`"));
    }

    #[test]
    fn emr_release_parsing() {
        assert_eq!(parse_emr_release("emr-6.15.0"), Some((6, 15, 0)));
        assert_eq!(parse_emr_release("emr-6.15"), None);
        assert_eq!(parse_emr_release("6.15.0"), None);
    }

    #[test]
    fn region_names_are_checked_by_shape_and_known_ones() {
        assert_eq!(region_problem("us-east-1"), None);
        assert_eq!(region_problem("us-gov-west-1"), None);
        assert_eq!(
            region_problem("eu-westt-1"),
            Some(RegionProblem::NotARegion)
        );
        assert_eq!(region_problem("useast1"), Some(RegionProblem::NotARegion));
        assert!(
            matches!(region_problem("eu-west-9"), Some(RegionProblem::Unknown(h)) if h.contains("eu-west-"))
        );
    }
}
