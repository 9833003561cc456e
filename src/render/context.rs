//! The values templates see: the spec itself plus what is derived from it.
//!
//! Owns: every computed value a template needs (names, subnet CIDRs, policy
//! names, CLI arguments of the data-plane binaries), so templates hold no
//! logic beyond loops and conditionals. Must not: emit CloudFormation text.

use serde::Serialize;

use crate::spec::model::*;
use crate::spec::network::{derive_subnets, msk_az_count};

/// Everything a stack template is rendered with.
#[derive(Debug, Serialize)]
pub struct Context<'a> {
    pub spec: &'a EnvSpec,
    pub d: Derived,
}

/// Values computed from the spec.
#[derive(Debug, Serialize)]
pub struct Derived {
    /// Indexes 0..N of the availability zones.
    pub azs: Vec<usize>,
    pub public_subnets: Vec<String>,
    pub private_subnets: Vec<String>,
    /// How many of the private subnets MSK brokers use.
    pub msk_azs: usize,
    /// Fixed addresses of ZooKeeper nodes (self-managed Kafka), one per node.
    pub zookeeper_ips: Vec<String>,
    /// DeletionPolicy of data stores kept when the stack goes: in protected
    /// environments `RetainExceptOnCreate` (kept, except when the stack's
    /// first create fails and rolls back: a kept bucket would collide by
    /// name with the next create), else `Delete`.
    pub bucket_policy: &'static str,
    /// UpdateReplacePolicy of the same (`RetainExceptOnCreate` is not valid
    /// there): `Retain` in protected environments, else `Delete`.
    pub bucket_replace_policy: &'static str,
    /// `Snapshot` in protected environments, else `Delete`.
    pub database_policy: &'static str,
    pub lease_table: String,
    pub firehose_compression: &'static str,
    /// Every dataset, in spec order (`render::datasets`).
    pub datasets: Vec<super::datasets::DatasetContext>,
    /// Datasets read from Kafka topics (a connector each).
    pub bridged: Vec<super::datasets::DatasetContext>,
    /// Arguments of `lake-ingest run` on the fleet (after `--config` and
    /// `--sink`), one argv entry each.
    pub ingest_args: Vec<String>,
    /// The fleet's datasets file (`lake-ingest run --config`): its key in
    /// the artifacts bucket and its SHA-256 (`datasets::ingest_config`).
    pub ingest_config_key: String,
    pub ingest_config_sha256: String,
    /// The lake steps script's key in the artifacts bucket (`steps`).
    pub steps_script_key: String,
    /// The command that fetches the steps script and runs it, for `!Sub`
    /// (no quotes of either kind: the state machine's definition embeds it
    /// in a JSON string and an intrinsic's quoted argument); the script's
    /// arguments from the compaction artifact's hash on follow.
    pub steps_command: String,
    /// Interface endpoints of a new network: (logical id part, service).
    pub interface_endpoints: Vec<EndpointContext>,
    /// Root volume of an ingest worker, GiB: scratch for every shard's window.
    pub ingest_volume_gib: u64,
    /// Whether any dataset has a Hive table (a schema): the EMR stack
    /// creates them, the state machine registers their partitions.
    pub has_tables: bool,
    /// Whether any dataset compacts on a schedule.
    pub scheduled: bool,
    pub emr_market: EmrMarkets,
    /// Parameter group family of the Aurora engine version.
    pub aurora_family: &'static str,
    /// Bucket and key of the bridge's connector plugin when the spec gives
    /// `s3://bucket/key`; empty when it is a local file lakectl publishes.
    pub bridge_plugin: (String, String),
    /// The plugin's file name when it is a local file (published to
    /// `plugins/bridge-plugin/<sha256>/<file>` in the artifacts bucket).
    pub bridge_plugin_file: String,
    /// For an `s3://` plugin: 16 hex digits of its location's SHA-256, in
    /// the custom plugin's name (a new location is a new plugin, created
    /// beside the old one: names are create-only).
    pub bridge_plugin_digest: String,
    /// Protocol clients use for the Kafka bridge: IAM over TLS, or plaintext in the VPC.
    pub kafka_bridge_auth: &'static str,
    /// EMR's RDS CA bootstrap action: its key in the artifacts bucket, the
    /// bundle's URL and path on the nodes; Hue's database options.
    pub rds_ca_script_key: String,
    pub rds_ca_url: &'static str,
    pub rds_ca_path: &'static str,
    pub hue_mysql_cnf_path: &'static str,
    pub hue_db_options: String,
}

#[derive(Debug, Serialize)]
pub struct EndpointContext {
    pub logical: &'static str,
    pub service: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EmrMarkets {
    pub master: &'static str,
    pub core: &'static str,
    pub task: &'static str,
}

impl<'a> Context<'a> {
    pub fn new(spec: &'a EnvSpec) -> Self {
        let azs = spec.network.az_count();
        let (public_subnets, private_subnets) = match &spec.network {
            Network::New(n) => {
                // Validation guarantees derivation succeeds for a valid spec.
                let derived = derive_subnets(&n.cidr, n.subnet_prefix, azs).unwrap_or_default();
                let (dp, dv) = derived.split_at(derived.len().min(azs));
                let pick = |given: &Vec<String>, fallback: &[String]| {
                    if given.is_empty() {
                        fallback.to_vec()
                    } else {
                        given.clone()
                    }
                };
                (pick(&n.public_subnets, dp), pick(&n.private_subnets, dv))
            }
            Network::Existing(_) => (Vec::new(), Vec::new()),
        };
        // Total over any typed spec (validation reports the problems), so
        // rendering never panics: a missing subnet simply yields no address.
        let zookeeper_ips = match &spec.kafka {
            Some(k) if k.mode == KafkaMode::SelfManaged => (0..k.self_managed.zookeeper_nodes
                as usize)
                .filter_map(|i| {
                    fixed_host(private_subnets.get(i % azs.max(1))?, 10 + i / azs.max(1))
                })
                .collect(),
            _ => Vec::new(),
        };
        let protect = spec.protection.retain_data;
        let ingest = &spec.ingest;
        // One argv entry per element: they go into /opt/lake/run.args, one
        // per line (`lake-ingest @file`), never through a shell or systemd.
        let ingest_args: Vec<String> = [
            ("--roll-mib", ingest.roll_mib.to_string()),
            ("--roll-seconds", ingest.roll_seconds.to_string()),
            ("--failover-seconds", ingest.failover_seconds.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
        let datasets = super::datasets::contexts(spec);
        let config = super::datasets::ingest_config(spec);
        let lease_table = format!("{}-ingest-leases", spec.name);
        Context {
            spec,
            d: Derived {
                azs: (0..azs).collect(),
                public_subnets,
                private_subnets,
                msk_azs: msk_az_count(azs),
                zookeeper_ips,
                bucket_policy: if protect {
                    "RetainExceptOnCreate"
                } else {
                    "Delete"
                },
                bucket_replace_policy: if protect { "Retain" } else { "Delete" },
                database_policy: if protect { "Snapshot" } else { "Delete" },
                steps_script_key: super::steps::key(spec, &lease_table),
                steps_command: super::steps::command(&super::steps::key(spec, &lease_table)),
                lease_table,
                firehose_compression: spec.archive.compression.cfn_name(),
                bridged: datasets
                    .iter()
                    .filter(|d| d.topic.is_some())
                    .cloned()
                    .collect(),
                has_tables: spec.datasets.values().any(|d| d.schema_json().is_some()),
                scheduled: spec
                    .datasets
                    .values()
                    .any(|d| d.compaction != "off" && d.compaction != "manual"),
                datasets,
                ingest_args,
                ingest_config_key: config.key,
                ingest_config_sha256: config.sha256,
                interface_endpoints: match &spec.network {
                    Network::New(n) => n
                        .endpoints
                        .interface
                        .iter()
                        .map(|e| EndpointContext {
                            logical: e.logical(),
                            service: e.service(),
                        })
                        .collect(),
                    Network::Existing(_) => Vec::new(),
                },
                ingest_volume_gib: lake_contract::ingest::worker_volume_gib(
                    spec.datasets
                        .values()
                        .map(|d| d.stream.expected_shards())
                        .sum(),
                    u64::from(ingest.roll_mib) << 20,
                    u64::from(ingest.roll_seconds),
                ),
                emr_market: EmrMarkets {
                    master: spec.emr.master.market.cfn_name(),
                    core: spec.emr.core.market.cfn_name(),
                    task: spec.emr.task.market.cfn_name(),
                },
                aurora_family: if spec.metastore.engine_version.starts_with("5.7.") {
                    "aurora-mysql5.7"
                } else {
                    "aurora-mysql8.0"
                },
                bridge_plugin: spec
                    .kafka
                    .as_ref()
                    .and_then(|k| k.bridge.as_ref())
                    .and_then(|b| b.plugin.strip_prefix("s3://")?.split_once('/'))
                    .map(|(b, k)| (b.to_string(), k.to_string()))
                    .unwrap_or_default(),
                bridge_plugin_file: spec
                    .kafka
                    .as_ref()
                    .and_then(|k| k.bridge.as_ref())
                    .filter(|b| !b.plugin.starts_with("s3://"))
                    .and_then(|b| std::path::Path::new(&b.plugin).file_name())
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bridge_plugin_digest: spec
                    .kafka
                    .as_ref()
                    .and_then(|k| k.bridge.as_ref())
                    .filter(|b| b.plugin.starts_with("s3://"))
                    .map(|b| {
                        use sha2::{Digest, Sha256};
                        hex::encode(&Sha256::digest(b.plugin.as_bytes())[..8])
                    })
                    .unwrap_or_default(),
                kafka_bridge_auth: match &spec.kafka {
                    Some(k) if k.mode == KafkaMode::Msk => "IAM",
                    _ => "NONE",
                },
                rds_ca_script_key: super::bootstrap::rds_ca_script_key(),
                rds_ca_url: super::bootstrap::RDS_CA_URL,
                rds_ca_path: super::bootstrap::RDS_CA_PATH,
                hue_mysql_cnf_path: super::bootstrap::HUE_MYSQL_CNF_PATH,
                hue_db_options: super::bootstrap::hue_db_options(),
            },
        }
    }
}

/// The `host`-th address of a subnet (AWS reserves the first four).
fn fixed_host(subnet: &str, host: usize) -> Option<String> {
    let net: ipnet::Ipv4Net = subnet.parse().ok()?;
    let base = u32::from(net.network());
    Some(std::net::Ipv4Addr::from(base.checked_add(host as u32)?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_hosts_skip_reserved_addresses() {
        assert_eq!(
            fixed_host("10.20.32.0/20", 10).as_deref(),
            Some("10.20.32.10")
        );
        assert_eq!(fixed_host("not a cidr", 10), None);
    }
}
