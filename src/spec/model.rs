//! The typed environment spec: one struct per platform part, with defaults.
//!
//! Owns: the shape of `environments/<env>.yaml` after `extends:` merging, the
//! defaults of every field and their doc comments (which become the JSON
//! Schema descriptions and the spec reference in `docs/`).
//! Must not: read files, report positions or check cross-field rules; that is
//! `spec::load` and `spec::validate`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One environment of the data lake platform.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Base spec file to inherit from, relative to this file (e.g. `_base.yaml`).
    /// Mappings merge key by key; lists and scalars of this file replace the base's;
    /// a mapping whose `mode:` differs from the base's replaces it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// Environment name: prefix of every stack and resource name (lowercase, digits, `-`).
    pub name: String,
    /// AWS region the environment lives in.
    pub region: String,
    /// When set, lakectl refuses to touch any other AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// AWS API endpoint to use instead of the public one (a local emulator such as moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Tags put on every stack (CloudFormation propagates them to resources).
    #[serde(default)]
    pub tags: IndexMap<String, String>,
    #[serde(default)]
    pub protection: Protection,
    pub network: Network,
    #[serde(default)]
    pub storage: Storage,
    /// Kafka in front of Kinesis; leave out (or `null`) when producers write to Kinesis directly.
    #[serde(default)]
    pub kafka: Option<Kafka>,
    /// The lake's datasets, one table each: `datasets.<name>` (lowercase,
    /// digits, `_`: the Hive table's name). Each has its own stream, schema,
    /// partitioning, format, compaction and retention.
    #[serde(default)]
    pub datasets: IndexMap<String, Dataset>,
    #[serde(default)]
    pub archive: Archive,
    #[serde(default)]
    pub metastore: Metastore,
    #[serde(default)]
    pub emr: Emr,
    #[serde(default)]
    pub ingest: Ingest,
    #[serde(default)]
    pub compaction: Compaction,
    #[serde(default)]
    pub alerts: Alerts,
}

/// Guards against losing data or stacks by accident (turn all on for production).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// CloudFormation termination protection on every stack; `lakectl down` refuses the environment.
    #[serde(default)]
    pub termination_protection: bool,
    /// Deletion protection on data stores that support it (Aurora, DynamoDB lease table).
    #[serde(default)]
    pub deletion_protection: bool,
    /// Retain buckets and snapshot databases when a stack or resource is deleted or replaced.
    #[serde(default)]
    pub retain_data: bool,
}

/// Network mode: a new VPC, or an existing one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Network {
    /// A new VPC with one public and one private subnet per availability zone.
    New(NewNetwork),
    /// An existing VPC and subnets (ids); lakectl only adds security groups.
    Existing(ExistingNetwork),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    /// VPC CIDR block, e.g. `10.20.0.0/16`.
    pub cidr: String,
    /// How many availability zones to spread subnets over (the first N of the region).
    #[serde(default = "default_az_count")]
    pub availability_zones: u8,
    /// Public subnet CIDRs, one per AZ; derived from `cidr` when omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnets: Vec<String>,
    /// Private subnet CIDRs, one per AZ; derived from `cidr` when omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnets: Vec<String>,
    /// Prefix length of derived subnets.
    #[serde(default = "default_subnet_prefix")]
    pub subnet_prefix: u8,
    /// NAT gateways for private subnets: `single` (cheap) or `per-az` (zone-independent).
    #[serde(default)]
    pub nat_gateways: NatGateways,
    /// VPC endpoints that keep AWS traffic off the NAT gateways (the S3
    /// gateway endpoint is always there). README, "Network costs".
    #[serde(default)]
    pub endpoints: Endpoints,
}

/// VPC endpoints of a new network.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// The DynamoDB gateway endpoint (free): the ingest fleet's lease
    /// writes, several per shard and second, stay off the NAT.
    #[serde(default = "yes")]
    pub dynamodb: bool,
    /// Interface endpoints, one network interface per availability zone
    /// each (about $7.30 a month per zone plus $0.01 per GB): they pay
    /// once the traffic they carry would cost more through the NAT
    /// ($0.045 per GB), about 210 GB a month per zone.
    #[serde(default)]
    pub interface: Vec<InterfaceEndpoint>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            dynamodb: true,
            interface: Vec::new(),
        }
    }
}

/// An AWS service reached through an interface endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InterfaceEndpoint {
    /// The stream twice over: the bridge's puts and the fleet's reads.
    KinesisStreams,
    /// Every encrypted read and write's data keys.
    Kms,
    /// The fleet's and the connector's logs.
    Logs,
    /// Alarms' metrics (the agent's and lake-ingest's).
    Monitoring,
    /// Credentials of assumed roles.
    Sts,
    /// The metastore's secrets (EMR reads them at cluster start).
    Secretsmanager,
}

impl InterfaceEndpoint {
    /// The service name after `com.amazonaws.<region>.`.
    pub fn service(self) -> &'static str {
        match self {
            InterfaceEndpoint::KinesisStreams => "kinesis-streams",
            InterfaceEndpoint::Kms => "kms",
            InterfaceEndpoint::Logs => "logs",
            InterfaceEndpoint::Monitoring => "monitoring",
            InterfaceEndpoint::Sts => "sts",
            InterfaceEndpoint::Secretsmanager => "secretsmanager",
        }
    }

    /// Its logical id part (`KinesisStreams`).
    pub fn logical(self) -> &'static str {
        match self {
            InterfaceEndpoint::KinesisStreams => "KinesisStreams",
            InterfaceEndpoint::Kms => "Kms",
            InterfaceEndpoint::Logs => "Logs",
            InterfaceEndpoint::Monitoring => "Monitoring",
            InterfaceEndpoint::Sts => "Sts",
            InterfaceEndpoint::Secretsmanager => "SecretsManager",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NatGateways {
    /// One NAT gateway for all private subnets.
    #[default]
    Single,
    /// One per availability zone (no cross-AZ dependency).
    PerAz,
    /// None: private subnets reach only the VPC (and S3 through its gateway
    /// endpoint). For isolated environments and emulators.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExistingNetwork {
    /// Id of the existing VPC (`vpc-…`).
    pub vpc_id: String,
    /// CIDR of that VPC, used to scope security-group rules.
    pub vpc_cidr: String,
    /// Private subnet ids (`subnet-…`), one per availability zone; every component runs in them.
    pub private_subnet_ids: Vec<String>,
}

/// Buckets of the lake. Names are derived: `<name>-<role>-<account>-<region>`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Key prefix of the lake in the data bucket: each dataset's files are
    /// under `<lake_root>/<dataset>/`.
    #[serde(default = "default_lake_root")]
    pub lake_root: String,
    /// The Hive database of the environment's tables (one table per dataset).
    #[serde(default = "default_database")]
    pub database: String,
    /// Object versioning on the data bucket.
    #[serde(default = "yes")]
    pub versioning: bool,
    /// Days after which old (noncurrent) object versions expire.
    #[serde(default = "default_noncurrent_days")]
    pub noncurrent_version_days: u32,
    /// Days after which raw-archive objects move to Glacier Instant Retrieval (0 = never).
    #[serde(default)]
    pub raw_archive_glacier_days: u32,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            lake_root: default_lake_root(),
            database: default_database(),
            versioning: true,
            noncurrent_version_days: default_noncurrent_days(),
            raw_archive_glacier_days: 0,
        }
    }
}

/// Which Kafka runs in front of Kinesis.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KafkaMode {
    /// Amazon MSK (provisioned).
    Msk,
    /// ZooKeeper ensemble and Kafka brokers on EC2 instances of their own.
    SelfManaged,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    pub mode: KafkaMode,
    /// Settings used when `mode: msk`.
    #[serde(default)]
    pub msk: Msk,
    /// Settings used when `mode: self-managed`.
    #[serde(default)]
    pub self_managed: SelfManagedKafka,
    /// Kafka -> Kinesis bridge on MSK Connect (kinesis-kafka-connector): one
    /// connector per dataset whose source is a Kafka topic.
    #[serde(default)]
    pub bridge: Option<Bridge>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Msk {
    /// Kafka version offered by MSK.
    #[serde(default = "default_msk_version")]
    pub version: String,
    /// Number of brokers; a multiple of the number of availability zones.
    #[serde(default = "default_msk_brokers")]
    pub broker_count: u32,
    /// Broker instance type (`kafka.…`).
    #[serde(default = "default_msk_instance")]
    pub instance_type: String,
    /// EBS storage per broker, GiB.
    #[serde(default = "default_msk_storage")]
    pub storage_gib: u32,
    /// Client authentication over TLS: `iam` or `scram`.
    #[serde(default)]
    pub client_auth: MskClientAuth,
    /// Days broker logs are kept in CloudWatch Logs (0 disables broker logs).
    #[serde(default = "default_log_days")]
    pub broker_log_days: u32,
}

impl Default for Msk {
    fn default() -> Self {
        Self {
            version: default_msk_version(),
            broker_count: default_msk_brokers(),
            instance_type: default_msk_instance(),
            storage_gib: default_msk_storage(),
            client_auth: MskClientAuth::default(),
            broker_log_days: default_log_days(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MskClientAuth {
    #[default]
    Iam,
    Scram,
}

/// Self-managed Kafka: ZooKeeper and brokers on EC2, with their tuning.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfManagedKafka {
    /// Apache Kafka version downloaded by the instances.
    #[serde(default = "default_self_kafka_version")]
    pub kafka_version: String,
    /// Amazon Linux 2023 AMI, as an SSM parameter path.
    #[serde(default = "default_ami_parameter")]
    pub ami_parameter: String,
    /// ZooKeeper nodes: an odd number (3 or 5).
    #[serde(default = "three")]
    pub zookeeper_nodes: u32,
    #[serde(default = "default_zk_instance")]
    pub zookeeper_instance_type: String,
    #[serde(default = "three")]
    pub broker_count: u32,
    #[serde(default = "default_broker_instance")]
    pub broker_instance_type: String,
    /// Broker JVM heap, GiB (KAFKA_HEAP_OPTS -Xms/-Xmx).
    #[serde(default = "default_heap")]
    pub broker_heap_gib: u32,
    /// Data volume per broker, GiB (gp3, encrypted).
    #[serde(default = "default_msk_storage")]
    pub broker_volume_gib: u32,
    /// `num.partitions`: at least the broker count.
    #[serde(default = "three")]
    pub default_partitions: u32,
    /// `default.replication.factor`.
    #[serde(default = "three")]
    pub default_replication: u32,
    /// `min.insync.replicas`: below the replication factor so one broker can fail.
    #[serde(default = "two")]
    pub min_insync_replicas: u32,
}

impl Default for SelfManagedKafka {
    fn default() -> Self {
        Self {
            kafka_version: default_self_kafka_version(),
            ami_parameter: default_ami_parameter(),
            zookeeper_nodes: 3,
            zookeeper_instance_type: default_zk_instance(),
            broker_count: 3,
            broker_instance_type: default_broker_instance(),
            broker_heap_gib: default_heap(),
            broker_volume_gib: default_msk_storage(),
            default_partitions: 3,
            default_replication: 3,
            min_insync_replicas: 2,
        }
    }
}

/// MSK Connect running the kinesis-kafka-connector, each Kafka-sourced
/// dataset's topic -> its Kinesis stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    /// The connector plugin: a `.zip`/`.jar` file (relative to the
    /// environments directory; `up` publishes it by its content) or an S3
    /// location you own (`s3://bucket/key.zip`).
    pub plugin: String,
    /// Connector class in the plugin.
    #[serde(default = "default_connector_class")]
    pub connector_class: String,
    /// Value converter; must pass bytes through so JSON text reaches Kinesis unchanged.
    #[serde(default = "default_value_converter")]
    pub value_converter: String,
    /// Let the connector KPL-aggregate records (lake-ingest de-aggregates either way).
    #[serde(default = "yes")]
    pub aggregation: bool,
    /// MSK Connect capacity of each dataset's connector: workers (MCU count 1 each).
    #[serde(default = "one")]
    pub workers: u32,
}

/// One dataset of the lake: a table, fed by its own stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Where its records come from: a Kafka topic through the bridge
    /// (`{kind: kafka}`), or producers writing straight to its Kinesis
    /// stream (`{kind: stream}`). Default: the topic of the dataset's name
    /// when the environment has `kafka.bridge`, else the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Avro record schema of the table's columns (nested records flatten to
    /// `parent_child`): written inline, or `{file: name.avsc}` beside the
    /// spec. Required for `csv` and `parquet`. Grows by appending optional
    /// fields (with a default); `validate` refuses a field removed,
    /// renamed or retyped against `schema_history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaSource>,
    /// Earlier versions of `schema`, oldest first (inline or `{file: …}`):
    /// each version may only add optional fields to the one before, so old
    /// files stay readable through the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_history: Vec<SchemaSource>,
    /// Field holding the record's own time (epoch ms/s or ISO-8601, UTC);
    /// needed to partition by `record-time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// Partition by the record's own time (`record-time`: late records and
    /// backfills land in the hours they belong to) or by when it arrived
    /// (`arrival-time`: steady streams). Default: record time with a
    /// `time_field`, arrival time without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<PartitionBy>,
    /// `hour` (`dt=YYYY-MM-DD/hr=HH`) or `day` (`dt=YYYY-MM-DD`): the
    /// partition directories, whose keys are never columns.
    #[serde(default)]
    pub granularity: Granularity,
    /// Lake file format. `parquet` (the default): typed columns, about a
    /// third of CSV's size, read fastest and carries any value; `csv`
    /// dead-letters values with line breaks; `ndjson` keeps records as
    /// flattened JSON. See docs/benchmarks.md for the figures.
    #[serde(default)]
    pub format: FileFormat,
    /// What a record's field that is not in the schema does: `drop` (the
    /// row is kept without it, and counted: the `UnknownFields` metric and
    /// `lakectl status`) or `dead-letter` (the whole record goes to
    /// `_errors/`).
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Merging small files: `off`, `manual` (`lakectl compact`), or an
    /// EventBridge schedule (`cron(…)` / `rate(…)`).
    #[serde(default = "default_schedule")]
    pub compaction: String,
    /// Target size of compacted files, MiB.
    #[serde(default = "default_target_size")]
    pub compaction_target_mib: u32,
    /// Keep the original bytes in the raw archive (Firehose).
    #[serde(default = "yes")]
    pub archive: bool,
    /// Days lake files are kept (an S3 lifecycle rule on the dataset's
    /// prefix); 0 keeps them.
    #[serde(default)]
    pub retention_days: u32,
    /// The dataset's Kinesis stream.
    #[serde(default)]
    pub stream: Stream,
}

/// Where a dataset's records come from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// A Kafka topic (created by the kafka stack), copied to the dataset's
    /// stream by a connector of its own.
    Kafka {
        /// The topic; default: the dataset's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        #[serde(default = "six")]
        partitions: u32,
        #[serde(default = "two")]
        replication: u32,
    },
    /// Producers put records into the dataset's Kinesis stream themselves.
    Stream,
}

/// An Avro schema written inline, or a file beside the spec.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged, deny_unknown_fields)]
pub enum SchemaSource {
    /// `{file: schemas/orders.avsc}`: relative to the spec file that says so.
    File {
        file: String,
        /// The file's schema, read by `spec::load`.
        #[serde(skip)]
        #[schemars(skip)]
        content: Option<serde_json::Value>,
    },
    Inline(serde_json::Value),
}

impl SchemaSource {
    /// The schema itself; None for a `{file: …}` not read (`spec::load`
    /// reads every one before validation).
    pub fn inline(&self) -> Option<&serde_json::Value> {
        match self {
            SchemaSource::Inline(v) => Some(v),
            SchemaSource::File { content, .. } => content.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    #[default]
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownFields {
    #[default]
    Drop,
    DeadLetter,
}

impl Dataset {
    /// The partitioning in force: explicit, or by the record's time when it
    /// names one.
    pub fn effective_partition_by(&self) -> PartitionBy {
        self.partition_by.unwrap_or(if self.time_field.is_some() {
            PartitionBy::RecordTime
        } else {
            PartitionBy::ArrivalTime
        })
    }

    /// The partition directories, strftime-like (UTC).
    pub fn layout(&self) -> &'static str {
        match self.granularity {
            Granularity::Hour => "dt=%Y-%m-%d/hr=%H",
            Granularity::Day => "dt=%Y-%m-%d",
        }
    }

    /// The partition keys, in directory order (`lake_contract::layout`).
    pub fn partition_keys(&self) -> Vec<String> {
        lake_contract::layout::partition_keys(self.layout())
            .expect("the built-in layouts are valid")
    }

    /// Where its records come from, the default resolved (`spec` is the
    /// environment it belongs to).
    pub fn source_in(&self, spec: &EnvSpec) -> Source {
        match &self.source {
            Some(s) => s.clone(),
            None if spec.kafka.as_ref().is_some_and(|k| k.bridge.is_some()) => Source::Kafka {
                topic: None,
                partitions: six(),
                replication: two(),
            },
            None => Source::Stream,
        }
    }

    /// The Kafka topic it is read from, if any.
    pub fn topic(&self, spec: &EnvSpec, name: &str) -> Option<String> {
        match self.source_in(spec) {
            Source::Kafka { topic, .. } => Some(topic.unwrap_or_else(|| name.to_string())),
            Source::Stream => None,
        }
    }

    /// Whether a compaction schedule or manual runs exist for it.
    pub fn compacts(&self) -> bool {
        self.compaction != "off"
    }

    /// The Avro schema of its columns, when it has one (files read).
    pub fn schema_json(&self) -> Option<&serde_json::Value> {
        self.schema.as_ref().and_then(SchemaSource::inline)
    }
}

/// A dataset's Kinesis data stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// `provisioned` (fixed shards) or `on-demand`.
    #[serde(default)]
    pub mode: StreamMode,
    /// Shard count in provisioned mode.
    #[serde(default = "two")]
    pub shards: u32,
    /// Retention, hours (24 to 8760).
    #[serde(default = "default_retention")]
    pub retention_hours: u32,
    /// KMS key for server-side encryption (alias or ARN); the AWS-managed key by default.
    #[serde(default = "default_kinesis_key")]
    pub kms_key: String,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            mode: StreamMode::default(),
            shards: 2,
            retention_hours: default_retention(),
            kms_key: default_kinesis_key(),
        }
    }
}

impl Stream {
    /// Shards to size for: the provisioned count, or the 4 an on-demand
    /// stream starts with (it grows with traffic).
    pub fn expected_shards(&self) -> u64 {
        match self.mode {
            StreamMode::Provisioned => u64::from(self.shards),
            StreamMode::OnDemand => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StreamMode {
    #[default]
    Provisioned,
    OnDemand,
}

/// Firehose from the stream to the raw archive (the original bytes, by arrival time).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Key prefix; Firehose adds the arrival time (`yyyy/MM/dd/HH/`).
    #[serde(default = "default_raw_prefix")]
    pub prefix: String,
    /// Key prefix for records Firehose could not deliver or convert.
    #[serde(default = "default_raw_error_prefix")]
    pub error_prefix: String,
    /// Buffer size, MiB (1 to 128; at least 64 with Parquet conversion).
    #[serde(default = "default_buffer_mib")]
    pub buffer_mib: u32,
    /// Buffer interval, seconds (0 to 900).
    #[serde(default = "default_buffer_seconds")]
    pub buffer_seconds: u32,
    #[serde(default)]
    pub compression: Compression,
    /// Convert to Parquet through a Glue table (requires `compression: uncompressed`).
    #[serde(default)]
    pub parquet: bool,
}

impl Default for Archive {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: default_raw_prefix(),
            error_prefix: default_raw_error_prefix(),
            buffer_mib: default_buffer_mib(),
            buffer_seconds: default_buffer_seconds(),
            compression: Compression::default(),
            parquet: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    #[default]
    Gzip,
    Snappy,
    HadoopSnappy,
    Zip,
    Uncompressed,
}

impl Compression {
    /// The value CloudFormation's `CompressionFormat` takes.
    pub fn cfn_name(self) -> &'static str {
        match self {
            Compression::Gzip => "GZIP",
            Compression::Snappy => "Snappy",
            Compression::HadoopSnappy => "HADOOP_SNAPPY",
            Compression::Zip => "ZIP",
            Compression::Uncompressed => "UNCOMPRESSED",
        }
    }
}

/// Aurora MySQL holding the Hive metastore and the Hue database.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metastore {
    /// Aurora MySQL engine version.
    #[serde(default = "default_aurora_version")]
    pub engine_version: String,
    #[serde(default)]
    pub capacity: Capacity,
    /// Database of the Hive metastore (created by Hive on first connect).
    #[serde(default = "default_hive_db")]
    pub hive_database: String,
    /// Database of Hue (created with the cluster; no manual step).
    #[serde(default = "default_hue_db")]
    pub hue_database: String,
    /// Days of automated backups (1 to 35).
    #[serde(default = "seven")]
    pub backup_retention_days: u32,
}

impl Default for Metastore {
    fn default() -> Self {
        Self {
            engine_version: default_aurora_version(),
            capacity: Capacity::default(),
            hive_database: default_hive_db(),
            hue_database: default_hue_db(),
            backup_retention_days: 7,
        }
    }
}

/// Metastore capacity: an Aurora Serverless v2 range, provisioned Aurora
/// instances, or one RDS for MySQL instance instead of an Aurora cluster.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Capacity {
    Serverless {
        /// Minimum Aurora capacity units (0 to 256, steps of 0.5).
        min_acu: f64,
        /// Maximum Aurora capacity units (1 to 256, steps of 0.5; Aurora
        /// Serverless v2 takes no maximum below 1).
        max_acu: f64,
        /// Instances in the cluster (1 writer + readers).
        #[serde(default = "one")]
        instances: u32,
    },
    Provisioned {
        /// DB instance class (`db.…`).
        instance_class: String,
        /// Instances in the cluster (1 writer + readers).
        #[serde(default = "one")]
        instances: u32,
    },
    /// One RDS for MySQL instance, no Aurora cluster: the cheapest metastore
    /// for development, and the one local AWS emulators model (the reader
    /// endpoint is the writer; `engine_version` is not used).
    SingleInstance {
        /// DB instance class (`db.…`).
        instance_class: String,
        /// RDS for MySQL engine version (8.0.x or 8.4.x).
        mysql_version: String,
        /// Allocated storage in GiB (20 to 65536).
        #[serde(default = "twenty")]
        storage_gib: u32,
    },
}

fn twenty() -> u32 {
    20
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity::Serverless {
            min_acu: 0.5,
            max_acu: 4.0,
            instances: 1,
        }
    }
}

impl Capacity {
    pub fn instances(&self) -> u32 {
        match self {
            Capacity::Serverless { instances, .. } | Capacity::Provisioned { instances, .. } => {
                *instances
            }
            Capacity::SingleInstance { .. } => 1,
        }
    }
}

/// The EMR cluster (Spark, Hive, Hue) over the lake.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Emr {
    /// EMR release label, `emr-X.Y.Z`.
    #[serde(default = "default_emr_release")]
    pub release_label: String,
    /// Applications: Spark, Hive and Hue, optionally Flink, Hudi, Iceberg, Trino, …
    #[serde(default = "default_emr_apps")]
    pub applications: Vec<String>,
    /// `groups` (instance groups) or `fleets` (instance fleets, several types per role).
    #[serde(default)]
    pub collection: InstanceCollection,
    #[serde(default = "default_master")]
    pub master: NodeGroup,
    #[serde(default = "default_core")]
    pub core: NodeGroup,
    /// Task nodes: compute only, usually spot.
    #[serde(default = "default_task")]
    pub task: NodeGroup,
    /// Terminate the cluster after this many idle minutes (0 = keep running,
    /// the default; required while the lake table or compaction use the
    /// cluster).
    #[serde(default = "default_idle")]
    pub idle_timeout_minutes: u32,
    /// Key prefix for cluster logs in the logs bucket.
    #[serde(default = "default_emr_log_prefix")]
    pub log_prefix: String,
}

impl Default for Emr {
    fn default() -> Self {
        Self {
            release_label: default_emr_release(),
            applications: default_emr_apps(),
            collection: InstanceCollection::default(),
            master: default_master(),
            core: default_core(),
            task: default_task(),
            idle_timeout_minutes: default_idle(),
            log_prefix: default_emr_log_prefix(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceCollection {
    #[default]
    Groups,
    Fleets,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    /// Instance types; instance groups use the first, fleets all of them.
    pub instance_types: Vec<String>,
    /// Instances (or fleet capacity units) of this role.
    pub count: u32,
    /// `on-demand` or `spot`.
    #[serde(default)]
    pub market: Market,
    /// Root EBS volume per node, GiB.
    #[serde(default = "default_ebs")]
    pub ebs_gib: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    #[default]
    OnDemand,
    Spot,
}

impl Market {
    pub fn cfn_name(self) -> &'static str {
        match self {
            Market::OnDemand => "ON_DEMAND",
            Market::Spot => "SPOT",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionBy {
    ArrivalTime,
    RecordTime,
}

impl PartitionBy {
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionBy::ArrivalTime => "arrival-time",
            PartitionBy::RecordTime => "record-time",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    Csv,
    Ndjson,
    #[default]
    Parquet,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// The `lake-ingest run` fleet: one fleet reads every dataset's stream,
/// its workers sharing the shards of all of them through one lease table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ingest {
    /// Roll a file at this size, MiB.
    #[serde(default = "default_roll_mib")]
    pub roll_mib: u32,
    /// Close a window (publish its files, checkpoint) at least this often, seconds.
    #[serde(default = "default_roll_seconds")]
    pub roll_seconds: u32,
    /// Number of ingest instances (0: the fleet is defined but runs nothing,
    /// e.g. locally, where `lake-ingest run` runs on this machine).
    #[serde(default = "one")]
    pub fleet_size: u32,
    #[serde(default = "default_ingest_instance")]
    pub instance_type: String,
    /// SSM parameter naming the fleet's machine image (Amazon Linux 2023),
    /// resolved at the first deploy and then pinned (`up --refresh-images`).
    #[serde(default = "default_ami_parameter")]
    pub ami_parameter: String,
    /// Seconds after which a silent worker's shard leases are taken over.
    #[serde(default = "default_failover")]
    pub failover_seconds: u32,
}

impl Default for Ingest {
    fn default() -> Self {
        Self {
            roll_mib: default_roll_mib(),
            roll_seconds: default_roll_seconds(),
            fleet_size: 1,
            instance_type: default_ingest_instance(),
            ami_parameter: default_ami_parameter(),
            failover_seconds: default_failover(),
        }
    }
}

/// The compaction runner (`lake-compact` as EMR steps, started by a state
/// machine): each dataset says when it compacts (`datasets.<name>.compaction`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Delete the source files once their merged output is durable.
    #[serde(default = "yes")]
    pub delete_on_success: bool,
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            enabled: true,
            delete_on_success: true,
        }
    }
}

/// CloudWatch alarms on every component, notifying one SNS topic.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Email addresses subscribed to the environment's alert topic (each
    /// confirms once, by mail).
    #[serde(default)]
    pub email: Vec<String>,
    /// An existing SNS topic to notify instead of creating one (its policy
    /// must let CloudWatch publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_arn: Option<String>,
    /// Ingest is late when the oldest unread record of the stream is older than this, minutes.
    #[serde(default = "default_lag_minutes")]
    pub ingest_lag_minutes: u32,
    /// Dead letters (records sent to `_errors/`) in 5 minutes above which the alarm fires.
    #[serde(default = "default_dead_letters")]
    pub dead_letters_per_5_minutes: u32,
    /// The raw archive is late when Firehose's oldest undelivered record is older than this, minutes.
    #[serde(default = "default_freshness_minutes")]
    pub archive_freshness_minutes: u32,
    /// Metastore CPU (average over 15 minutes) above which the alarm fires, percent.
    #[serde(default = "default_cpu_percent")]
    pub metastore_cpu_percent: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            enabled: true,
            email: Vec::new(),
            topic_arn: None,
            ingest_lag_minutes: default_lag_minutes(),
            dead_letters_per_5_minutes: default_dead_letters(),
            archive_freshness_minutes: default_freshness_minutes(),
            metastore_cpu_percent: default_cpu_percent(),
        }
    }
}

fn default_lag_minutes() -> u32 {
    15
}
fn default_dead_letters() -> u32 {
    100
}
fn default_freshness_minutes() -> u32 {
    30
}
fn default_cpu_percent() -> u32 {
    80
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn six() -> u32 {
    6
}
fn seven() -> u32 {
    7
}
fn default_az_count() -> u8 {
    2
}
fn default_subnet_prefix() -> u8 {
    20
}
fn default_lake_root() -> String {
    "lake".into()
}
fn default_database() -> String {
    "lake".into()
}
fn default_noncurrent_days() -> u32 {
    30
}
fn default_msk_version() -> String {
    "3.6.0".into()
}
fn default_msk_brokers() -> u32 {
    2
}
fn default_msk_instance() -> String {
    "kafka.m5.large".into()
}
fn default_msk_storage() -> u32 {
    100
}
fn default_log_days() -> u32 {
    14
}
fn default_self_kafka_version() -> String {
    "3.6.2".into()
}
fn default_ami_parameter() -> String {
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".into()
}
fn default_zk_instance() -> String {
    "t3.medium".into()
}
fn default_broker_instance() -> String {
    "m5.large".into()
}
fn default_heap() -> u32 {
    4
}
fn default_connector_class() -> String {
    "com.amazon.kinesis.kafka.AmazonKinesisSinkConnector".into()
}
fn default_value_converter() -> String {
    "org.apache.kafka.connect.storage.StringConverter".into()
}
fn default_retention() -> u32 {
    24
}
fn default_kinesis_key() -> String {
    "alias/aws/kinesis".into()
}
fn default_raw_prefix() -> String {
    "raw/".into()
}
fn default_raw_error_prefix() -> String {
    "raw-errors/".into()
}
fn default_buffer_mib() -> u32 {
    64
}
fn default_buffer_seconds() -> u32 {
    300
}
fn default_aurora_version() -> String {
    "8.0.mysql_aurora.3.10.3".into()
}
fn default_hive_db() -> String {
    "hive".into()
}
fn default_hue_db() -> String {
    "huedb".into()
}
fn default_emr_release() -> String {
    "emr-7.5.0".into()
}
fn default_emr_apps() -> Vec<String> {
    vec!["Spark".into(), "Hive".into(), "Hue".into()]
}
fn node(instance: &str, count: u32, market: Market) -> NodeGroup {
    NodeGroup {
        instance_types: vec![instance.into()],
        count,
        market,
        ebs_gib: default_ebs(),
    }
}
fn default_master() -> NodeGroup {
    node("m5.xlarge", 1, Market::OnDemand)
}
fn default_core() -> NodeGroup {
    node("m5.xlarge", 2, Market::OnDemand)
}
fn default_task() -> NodeGroup {
    node("m5.xlarge", 0, Market::Spot)
}
fn default_ebs() -> u32 {
    64
}
fn default_idle() -> u32 {
    0
}
fn default_emr_log_prefix() -> String {
    "emr/".into()
}
fn default_roll_mib() -> u32 {
    128
}
fn default_roll_seconds() -> u32 {
    300
}
fn default_ingest_instance() -> String {
    "c6i.large".into()
}
fn default_failover() -> u32 {
    30
}
fn default_schedule() -> String {
    "manual".into()
}
fn default_target_size() -> u32 {
    128
}
