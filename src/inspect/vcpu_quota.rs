//! The preflight check that the account's EC2 vCPU quotas hold what the
//! spec starts: a new account's on-demand quota is often below what `prod`
//! needs, and EC2 refuses the launch half-way through `up` (the ingest
//! fleet's or EMR's stack then rolls back).
//!
//! Owns: what the spec starts on EC2 (`demands`: per field, type, market;
//! the offerings check reads it too) and its vCPUs, the
//! two quotas it draws on (Service Quotas `L-1216C47A`, running on-demand
//! standard instances, and `L-34B43A08`, standard spot requests), what
//! other instances in the region already use of them, and the verdict.
//! Must not: change anything, or judge instance type offerings (the
//! `EC2 instance types` check in `preflight` does).

use std::collections::{BTreeMap, BTreeSet};

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::preflight::Check;
use crate::aws::ec2::Filter;
use crate::aws::{aws_error, Aws};
use crate::spec::model::{InstanceCollection, KafkaMode, Market};
use crate::spec::{Diagnostic, EnvSpec, Locator};

/// One of the two quotas a spec draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pool {
    OnDemand,
    Spot,
}

impl Pool {
    pub fn quota_code(self) -> &'static str {
        match self {
            Pool::OnDemand => "L-1216C47A",
            Pool::Spot => "L-34B43A08",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pool::OnDemand => "on-demand standard",
            Pool::Spot => "spot standard",
        }
    }
}

/// Instances the spec starts from one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// The spec field to change (its count).
    pub field: String,
    pub count: u32,
    /// The types it may launch (fleets: any of them, the largest counted;
    /// instance groups: the first), each with its spec field.
    pub instance_types: Vec<(String, String)>,
    /// Spread over every zone used (fleets, brokers), not one of them.
    pub everywhere: bool,
    /// The quota it draws on; None for MSK brokers, which are not EC2
    /// instances of the account (their types mirror EC2's).
    pub pool: Option<Pool>,
}

/// What the spec starts on EC2 (and MSK) at its full size: the one account
/// of it, which the instance-type offerings check reads as well.
pub fn demands(spec: &EnvSpec) -> Vec<Demand> {
    let mut out = Vec::new();
    let mut push = |field: &str, count: u32, types: Vec<(String, String)>, everywhere, pool| {
        if count > 0 && !types.is_empty() {
            out.push(Demand {
                field: field.to_string(),
                count,
                instance_types: types,
                everywhere,
                pool,
            });
        }
    };
    let one = |field: &str, t: &str| vec![(field.to_string(), t.to_string())];
    push(
        "ingest.fleet_size",
        spec.ingest.fleet_size,
        one("ingest.instance_type", &spec.ingest.instance_type),
        true,
        Some(Pool::OnDemand),
    );
    if let Some(kafka) = &spec.kafka {
        match kafka.mode {
            KafkaMode::Msk => {
                if let Some(ec2_type) = kafka.msk.instance_type.strip_prefix("kafka.") {
                    push(
                        "kafka.msk.broker_count",
                        kafka.msk.broker_count,
                        one("kafka.msk.instance_type", ec2_type),
                        true,
                        None,
                    );
                }
            }
            KafkaMode::SelfManaged => {
                let sm = &kafka.self_managed;
                push(
                    "kafka.self_managed.broker_count",
                    sm.broker_count,
                    one(
                        "kafka.self_managed.broker_instance_type",
                        &sm.broker_instance_type,
                    ),
                    true,
                    Some(Pool::OnDemand),
                );
                push(
                    "kafka.self_managed.zookeeper_nodes",
                    sm.zookeeper_nodes,
                    one(
                        "kafka.self_managed.zookeeper_instance_type",
                        &sm.zookeeper_instance_type,
                    ),
                    true,
                    Some(Pool::OnDemand),
                );
            }
        }
    }
    for (role, group) in [
        ("master", &spec.emr.master),
        ("core", &spec.emr.core),
        ("task", &spec.emr.task),
    ] {
        // Instance groups use the first type; fleets may use any of them.
        let types = match spec.emr.collection {
            InstanceCollection::Groups => {
                &group.instance_types[..1.min(group.instance_types.len())]
            }
            InstanceCollection::Fleets => &group.instance_types[..],
        };
        let types = types
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("emr.{role}.instance_types.{i}"), t.clone()))
            .collect();
        let pool = match group.market {
            Market::OnDemand => Pool::OnDemand,
            Market::Spot => Pool::Spot,
        };
        push(
            &format!("emr.{role}.count"),
            group.count,
            types,
            false,
            Some(pool),
        );
    }
    out
}

/// Whether `instance_type` counts against the standard-instance quotas
/// (families A, C, D, H, I, M, R, T, Z); accelerated, high-memory and
/// other families have quotas of their own, not checked here.
pub fn is_standard(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    let other = ["inf", "trn", "dl", "hpc", "mac"];
    family
        .chars()
        .next()
        .is_some_and(|c| "acdhimrtz".contains(c))
        && !other.iter().any(|o| family.starts_with(o))
}

/// One pool's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub pool: Pool,
    /// vCPUs the spec starts, and from which fields (largest first).
    pub vcpus: u32,
    pub parts: Vec<(String, u32)>,
}

/// The vCPUs each pool needs, from `vcpus` per instance type. Types with
/// no known vCPU count (not offered: another check reports them) or of a
/// non-standard family are left out.
pub fn needs(demands: &[Demand], vcpus: &BTreeMap<String, u32>) -> Vec<Need> {
    let mut by_pool: BTreeMap<Pool, Need> = BTreeMap::new();
    for d in demands {
        let Some(pool) = d.pool else { continue };
        let per = d
            .instance_types
            .iter()
            .map(|(_, t)| t)
            .filter(|t| is_standard(t))
            .filter_map(|t| vcpus.get(t))
            .max();
        let Some(per) = per else { continue };
        let need = by_pool.entry(pool).or_insert_with(|| Need {
            pool,
            vcpus: 0,
            parts: Vec::new(),
        });
        need.vcpus += d.count * per;
        need.parts.push((d.field.clone(), d.count * per));
    }
    let mut out: Vec<Need> = by_pool.into_values().collect();
    for n in &mut out {
        n.parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    out
}

/// The verdict for one pool: `quota` vCPUs, of which `used` are taken by
/// instances that are not this environment's.
pub fn judge(
    loc: &Locator,
    region: &str,
    need: &Need,
    used: u32,
    quota: u32,
) -> Option<Diagnostic> {
    if need.vcpus + used <= quota {
        return None;
    }
    let parts: Vec<String> = need
        .parts
        .iter()
        .map(|(field, v)| format!("{field} {v}"))
        .collect();
    let biggest = need.parts.first().map(|p| p.0.as_str()).unwrap_or_default();
    Some(loc.error(
        biggest,
        format!(
            "the spec starts {} {} vCPUs ({}){}, above the account's quota of {quota} in {region} \
             ({}); lower a count or an instance size, or ask for more: aws service-quotas \
             request-service-quota-increase --region {region} --service-code ec2 --quota-code {} \
             --desired-value {}",
            need.vcpus,
            need.pool.name(),
            parts.join(", "),
            if used > 0 {
                format!(" and other instances already run {used}")
            } else {
                String::new()
            },
            need.pool.quota_code(),
            need.pool.quota_code(),
            need.vcpus + used,
        ),
    ))
}

/// The check, as `preflight` runs it.
pub async fn check(aws: &Aws, spec: &EnvSpec, loc: &Locator) -> Check {
    let name = "EC2 vCPU quotas";
    let demands: Vec<Demand> = demands(spec)
        .into_iter()
        .filter(|d| d.pool.is_some())
        .collect();
    let mut findings = Vec::new();
    if demands.is_empty() {
        return Check {
            name,
            detail: "the spec starts no EC2 instances".into(),
            findings,
        };
    }
    let own_stacks: BTreeSet<String> = crate::render::catalog::stack_kinds()
        .iter()
        .map(|k| format!("{}-{}", spec.name, k.id))
        .collect();
    let others = match running_elsewhere(aws, &spec.name, &own_stacks).await {
        Ok(o) => o,
        Err(e) => {
            findings.push(loc.warning("", format!("not checked: {e}")));
            Vec::new()
        }
    };
    let types: BTreeSet<String> = demands
        .iter()
        .flat_map(|d| d.instance_types.iter().map(|(_, t)| t.clone()))
        .chain(
            others
                .iter()
                .filter(|o| o.vcpus.is_none())
                .map(|o| o.instance_type.clone()),
        )
        .collect();
    let vcpus = match vcpus_of(aws, &types).await {
        Ok(v) => v,
        Err(e) => {
            findings.push(loc.warning("", format!("not checked: {e}")));
            return Check {
                name,
                detail: "not checked".into(),
                findings,
            };
        }
    };
    let needs = needs(&demands, &vcpus);
    let mut used: BTreeMap<Pool, u32> = BTreeMap::new();
    for o in &others {
        let v = o.vcpus.or_else(|| vcpus.get(&o.instance_type).copied());
        *used.entry(o.pool).or_insert(0) += v.unwrap_or(0);
    }
    let mut detail = Vec::new();
    for need in &needs {
        let used = used.get(&need.pool).copied().unwrap_or(0);
        let code = need.pool.quota_code();
        match quota(aws, code).await {
            Ok(quota) => {
                detail.push(format!(
                    "{} {} + {used} in use of {quota} ({code})",
                    need.pool.name(),
                    need.vcpus
                ));
                findings.extend(judge(loc, &aws.region, need, used, quota));
            }
            Err(e) => {
                detail.push(format!(
                    "{} {} (quota unread)",
                    need.pool.name(),
                    need.vcpus
                ));
                let field = need.parts.first().map(|p| p.0.as_str()).unwrap_or_default();
                findings.push(loc.warning(
                    field,
                    format!(
                        "not checked: {e}; the spec starts {} {} vCPUs, and {used} are in use: \
                         compare with `aws service-quotas get-service-quota --service-code ec2 \
                         --quota-code {code}`",
                        need.vcpus,
                        need.pool.name()
                    ),
                ));
            }
        }
    }
    Check {
        name,
        detail: detail.join("; "),
        findings,
    }
}

/// vCPUs of each type EC2 knows (DescribeInstanceTypes).
async fn vcpus_of(aws: &Aws, types: &BTreeSet<String>) -> Result<BTreeMap<String, u32>, String> {
    let mut out = BTreeMap::new();
    // Asking for an unknown type fails the whole call; ask one at a time
    // so a misspelt type (reported by the offerings check) costs only itself.
    for t in types {
        match aws.ec2.instance_type_vcpus(&[t.as_str()]).await {
            Ok(o) => {
                for (_, v) in o {
                    out.insert(t.clone(), v);
                }
            }
            Err(e) if e.code() == Some("InvalidInstanceType") => {}
            Err(e) => return Err(aws_error(format!("describing {t}"), e).to_string()),
        }
    }
    Ok(out)
}

/// A running or pending standard instance that is not this environment's.
struct Running {
    instance_type: String,
    /// From its CPU options, when EC2 reports them.
    vcpus: Option<u32>,
    pool: Pool,
}

/// Running and pending standard instances in the region that are not this
/// environment's (its own are in the spec's figures already): neither made
/// by one of its stacks nor tagged `lake-environment` with its name (EMR's
/// nodes carry the cluster's tags).
async fn running_elsewhere(
    aws: &Aws,
    env: &str,
    own_stacks: &BTreeSet<String>,
) -> Result<Vec<Running>, String> {
    let mut out = Vec::new();
    let instances = aws
        .ec2
        .instances(&[Filter::new("instance-state-name", ["pending", "running"])])
        .await
        .map_err(|e| aws_error("listing running instances", e).to_string())?;
    for i in instances {
        let own = i.tags.iter().any(|(k, v)| match k.as_str() {
            "aws:cloudformation:stack-name" => own_stacks.contains(v),
            "lake-environment" => v == env,
            _ => false,
        });
        if own || !is_standard(&i.instance_type) {
            continue;
        }
        out.push(Running {
            instance_type: i.instance_type,
            vcpus: i.vcpus,
            pool: match i.lifecycle.as_deref() {
                Some("spot") => Pool::Spot,
                _ => Pool::OnDemand,
            },
        });
    }
    Ok(out)
}

/// The account's applied quota, or AWS's default where none was applied.
async fn quota(aws: &Aws, code: &str) -> Result<u32, String> {
    let applied = aws
        .quotas
        .get_service_quota()
        .service_code("ec2")
        .quota_code(code)
        .send()
        .await;
    let value = match applied {
        Ok(o) => o.quota().and_then(|q| q.value()),
        Err(e) if e.code() == Some("NoSuchResourceException") => {
            let default = aws
                .quotas
                .get_aws_default_service_quota()
                .service_code("ec2")
                .quota_code(code)
                .send()
                .await
                .map_err(|e| aws_error(format!("reading quota {code}"), e).to_string())?;
            default.quota().and_then(|q| q.value())
        }
        Err(e) => return Err(aws_error(format!("reading quota {code}"), e).to_string()),
    };
    value
        .map(|v| v as u32)
        .ok_or_else(|| format!("quota {code} came back without a value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::load_environment;

    fn prod() -> (EnvSpec, Locator) {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/environments"));
        let loaded = load_environment(dir, "prod").expect("prod loads");
        (loaded.spec, loaded.locator)
    }

    fn table() -> BTreeMap<String, u32> {
        [
            ("m5.xlarge", 4),
            ("m5.2xlarge", 8),
            ("c5.large", 2),
            ("c6i.large", 2),
        ]
        .into_iter()
        .map(|(t, v)| (t.to_string(), v))
        .collect()
    }

    #[test]
    fn standard_families_are_told_apart_from_others() {
        for t in [
            "m5.xlarge",
            "t3.micro",
            "r6g.large",
            "c7i.2xlarge",
            "im4gn.large",
            "z1d.large",
        ] {
            assert!(is_standard(t), "{t}");
        }
        for t in [
            "p4d.24xlarge",
            "g5.xlarge",
            "inf2.xlarge",
            "trn1.2xlarge",
            "dl1.24xlarge",
            "hpc7g.4xlarge",
            "mac1.metal",
            "u-6tb1.metal",
            "x2idn.16xlarge",
        ] {
            assert!(!is_standard(t), "{t}");
        }
    }

    #[test]
    fn prod_needs_are_added_up_per_pool_and_an_over_quota_pool_names_its_fields() {
        let (spec, loc) = prod();
        let needs = needs(&demands(&spec), &table());
        let figures: Vec<(Pool, u32)> = needs.iter().map(|n| (n.pool, n.vcpus)).collect();
        // What the issue measured by hand: 32 on-demand, 16 spot.
        assert_eq!(
            figures,
            [(Pool::OnDemand, 32), (Pool::Spot, 16)],
            "{needs:#?}"
        );
        let on_demand = &needs[0];
        assert!(judge(&loc, "us-east-1", on_demand, 0, 32).is_none());
        let d = judge(&loc, "us-east-1", on_demand, 8, 32).expect("over quota");
        assert_eq!(d.severity, crate::spec::Severity::Error);
        assert_eq!(d.field, on_demand.parts[0].0);
        // emr.core (3 × m5.2xlarge) is the largest part: pointed at in prod.yaml.
        assert_eq!(d.field, "emr.core.count");
        assert!(d.position.file.ends_with("prod.yaml"), "{d:?}");
        assert_eq!(d.position.line, 41, "{d:?}");
        for needle in [
            "32 on-demand standard vCPUs",
            "other instances already run 8",
            "quota of 32",
            "--quota-code L-1216C47A --desired-value 40",
        ] {
            assert!(d.message.contains(needle), "{needle}: {}", d.message);
        }
    }

    #[test]
    fn fleets_count_their_largest_type_and_unknown_types_and_msk_brokers_are_left_out() {
        let d = [
            Demand {
                field: "emr.core.count".into(),
                count: 2,
                instance_types: vec![
                    ("emr.core.instance_types.0".into(), "c5.large".into()),
                    ("emr.core.instance_types.1".into(), "m5.2xlarge".into()),
                ],
                everywhere: false,
                pool: Some(Pool::OnDemand),
            },
            Demand {
                field: "ingest.fleet_size".into(),
                count: 3,
                instance_types: vec![("ingest.instance_type".into(), "m9.nonsense".into())],
                everywhere: true,
                pool: Some(Pool::OnDemand),
            },
            Demand {
                field: "kafka.msk.broker_count".into(),
                count: 3,
                instance_types: vec![("kafka.msk.instance_type".into(), "m5.2xlarge".into())],
                everywhere: true,
                pool: None,
            },
        ];
        let n = needs(&d, &table());
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].vcpus, 16);
        assert_eq!(n[0].parts, [("emr.core.count".to_string(), 16)]);
    }
}
