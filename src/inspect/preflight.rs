//! `lakectl preflight`: what would make a deploy fail half-way, found
//! before anything is created, with read-only calls.
//!
//! Owns: the checks (zones, instance type offerings, vCPU quotas (in
//! `vcpu_quota`), EMR release and
//! applications, the metastore engine, the MSK Kafka version, an existing
//! VPC and its subnets, the caller's permissions) and their findings, each
//! pinned to the spec field to change. Must not: create or change anything,
//! or print (the report is `Display`; the command prints it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::{aws_error, Aws, AwsError};
use crate::spec::model::{Capacity, KafkaMode, Network};
use crate::spec::{Diagnostic, EnvSpec, Locator, Severity};

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// What was checked against what, for people.
    pub detail: String,
    pub findings: Vec<Diagnostic>,
}

impl Check {
    /// `ok`, `warning` (could not check, or a proxy check failed) or `error`.
    pub fn verdict(&self) -> &'static str {
        match self.findings.iter().map(|f| f.severity).min() {
            Some(Severity::Error) => "error",
            Some(Severity::Warning) => "warning",
            None => "ok",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub environment: String,
    pub region: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.checks
            .iter()
            .flat_map(|c| &c.findings)
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// The actions `up` performs itself; the services' own roles do the rest.
const UP_ACTIONS: &[&str] = &[
    "cloudformation:CreateStack",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:GetTemplate",
    "cloudformation:SetStackPolicy",
    "cloudformation:UpdateTerminationProtection",
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:PassRole",
    "s3:PutObject",
    "s3:GetObject",
    // The metastore's Hive and Hue accounts (deploy::accounts).
    "rds-data:ExecuteStatement",
    "secretsmanager:GetSecretValue",
];

/// Every check, in the order a deploy would hit them. `files` are the
/// local files the spec names (`RenderedEnv::files`).
pub async fn preflight(
    aws: &Aws,
    spec: &EnvSpec,
    loc: &Locator,
    region: &str,
    files: &BTreeMap<String, std::path::PathBuf>,
) -> Report {
    let (zones_check, zones) = zones(aws, spec, loc, region).await;
    let mut checks = vec![zones_check];
    checks.push(ec2_instance_types(aws, spec, loc, &zones).await);
    checks.push(super::vcpu_quota::check(aws, spec, loc).await);
    checks.push(emr(aws, spec, loc).await);
    checks.push(metastore(aws, spec, loc).await);
    if let Some(check) = kafka_version(aws, spec, loc).await {
        checks.push(check);
    }
    if let Some(check) = bridge_plugin(aws, spec, loc, files).await {
        checks.push(check);
    }
    checks.push(permissions(aws, loc).await);
    Report {
        environment: spec.name.clone(),
        region: region.to_string(),
        checks,
    }
}

/// The Kafka bridge's connector plugin exists: the local file `up`
/// publishes, or the S3 object the spec names (MSK Connect reads it when
/// the kafka stack creates the plugin, half-way through a deploy).
async fn bridge_plugin(
    aws: &Aws,
    spec: &EnvSpec,
    loc: &Locator,
    files: &BTreeMap<String, std::path::PathBuf>,
) -> Option<Check> {
    let plugin = &spec.kafka.as_ref()?.bridge.as_ref()?.plugin;
    let field = "kafka.bridge.plugin";
    let mut findings = Vec::new();
    let detail = match files.get(crate::publish::BRIDGE_PLUGIN) {
        Some(path) => {
            if !path.is_file() {
                findings.push(loc.error(
                    field,
                    format!(
                        "{} does not exist; build the connector (awslabs/kinesis-kafka-connector: `mvn package`, then zip the jar) and put it there, or name an s3:// location you own",
                        path.display()
                    ),
                ));
            }
            format!("{} (published by up)", path.display())
        }
        None => {
            let (bucket, key) = plugin
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .unwrap_or_default();
            match aws.s3.head_object().bucket(bucket).key(key).send().await {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    findings.push(loc.error(
                        field,
                        format!("{plugin} does not exist (or is not readable by you)"),
                    ))
                }
                Err(e) => findings.push(could_not(
                    loc,
                    field,
                    &aws_error(format!("reading {plugin}"), e),
                )),
            }
            plugin.clone()
        }
    };
    Some(Check {
        name: "Kafka bridge plugin",
        detail,
        findings,
    })
}

/// The zones the network will use (the first N available, as `!GetAZs`
/// lists them, or the existing subnets' zones), and whether they exist.
async fn zones(aws: &Aws, spec: &EnvSpec, loc: &Locator, region: &str) -> (Check, Vec<String>) {
    let mut findings = Vec::new();
    let available: Vec<String> = match aws.ec2.availability_zones().await {
        Ok(out) => {
            let mut z: Vec<String> = out
                .into_iter()
                .filter(|z| z.state == "available")
                .map(|z| z.name)
                .collect();
            z.sort();
            z
        }
        Err(e) => {
            findings.push(could_not(
                loc,
                "network",
                &aws_error("listing availability zones", e),
            ));
            return (
                Check {
                    name: "availability zones",
                    detail: "not checked".into(),
                    findings,
                },
                Vec::new(),
            );
        }
    };
    let (detail, used) = match &spec.network {
        Network::New(n) => {
            let wanted = usize::from(n.availability_zones);
            if available.len() < wanted {
                findings.push(loc.error(
                    "network.availability_zones",
                    format!(
                        "{region} has {} available zones ({}); set network.availability_zones to at most {}",
                        available.len(),
                        available.join(", "),
                        available.len()
                    ),
                ));
            }
            let used: Vec<String> = available.iter().take(wanted).cloned().collect();
            (
                format!(
                    "{wanted} needed, {} available in {region}; using {}",
                    available.len(),
                    used.join(", ")
                ),
                used,
            )
        }
        Network::Existing(e) => {
            let used = existing_network(aws, e, loc, &mut findings).await;
            (
                format!(
                    "existing VPC {} with {} private subnets in {}",
                    e.vpc_id,
                    e.private_subnet_ids.len(),
                    if used.is_empty() {
                        "unknown zones".to_string()
                    } else {
                        used.join(", ")
                    }
                ),
                used,
            )
        }
    };
    (
        Check {
            name: "availability zones",
            detail,
            findings,
        },
        used,
    )
}

/// The tag `AmazonEMRServicePolicy_v2` requires on subnets and security groups.
pub const EMR_MANAGED_TAG: &str = "for-use-with-amazon-emr-managed-policies";

/// An existing VPC and its subnets: they exist, belong together, span at
/// least two zones (Aurora, MSK and EMR need two), and carry the tag EMR's
/// managed policy requires.
async fn existing_network(
    aws: &Aws,
    e: &crate::spec::model::ExistingNetwork,
    loc: &Locator,
    findings: &mut Vec<Diagnostic>,
) -> Vec<String> {
    match aws.ec2.vpcs(&[&e.vpc_id]).await {
        Ok(out) => match out.first() {
            Some(vpc) if vpc.cidr_block.as_deref() != Some(e.vpc_cidr.as_str()) => {
                findings.push(loc.error(
                    "network.vpc_cidr",
                    format!(
                        "VPC {} has CIDR {}, not {}; security-group rules would be scoped wrongly",
                        e.vpc_id,
                        vpc.cidr_block.as_deref().unwrap_or("?"),
                        e.vpc_cidr
                    ),
                ))
            }
            Some(_) => {}
            None => findings.push(loc.error(
                "network.vpc_id",
                format!("VPC {} does not exist in this account and region", e.vpc_id),
            )),
        },
        Err(err) if err.code() == Some("InvalidVpcID.NotFound") => findings.push(loc.error(
            "network.vpc_id",
            format!("VPC {} does not exist in this account and region", e.vpc_id),
        )),
        Err(err) => findings.push(could_not(
            loc,
            "network.vpc_id",
            &aws_error(format!("describing VPC {}", e.vpc_id), err),
        )),
    }
    let mut zones = BTreeSet::new();
    for (i, id) in e.private_subnet_ids.iter().enumerate() {
        let field = format!("network.private_subnet_ids.{i}");
        match aws.ec2.subnets(&[id]).await {
            Ok(out) => match out.first() {
                Some(s) => {
                    if s.vpc_id.as_deref() != Some(e.vpc_id.as_str()) {
                        findings.push(loc.error(
                            &field,
                            format!(
                                "subnet {id} is in VPC {}, not {}",
                                s.vpc_id.as_deref().unwrap_or("?"),
                                e.vpc_id
                            ),
                        ));
                    }
                    zones.extend(s.availability_zone.clone());
                    // AmazonEMRServicePolicy_v2 launches nodes only into
                    // subnets carrying this tag; a subnet lakectl does not
                    // own cannot be tagged by its stacks.
                    let tagged = s
                        .tags
                        .iter()
                        .any(|(k, v)| k == EMR_MANAGED_TAG && v == "true");
                    if !tagged {
                        findings.push(loc.error(
                            &field,
                            format!(
                                "subnet {id} lacks the tag {EMR_MANAGED_TAG}=true, without which EMR's managed policy (AmazonEMRServicePolicy_v2) launches no node into it; tag it: aws ec2 create-tags --resources {id} --tags Key={EMR_MANAGED_TAG},Value=true"
                            ),
                        ));
                    }
                }
                None => findings.push(loc.error(&field, format!("subnet {id} does not exist"))),
            },
            Err(err) if err.code() == Some("InvalidSubnetID.NotFound") => {
                findings.push(loc.error(&field, format!("subnet {id} does not exist")))
            }
            Err(err) => findings.push(could_not(
                loc,
                &field,
                &aws_error(format!("describing subnet {id}"), err),
            )),
        }
    }
    if zones.len() == 1 {
        findings.push(loc.error(
            "network.private_subnet_ids",
            format!(
                "the private subnets are all in {}; Aurora, MSK and EMR need subnets in at least two zones",
                zones.iter().next().expect("one")
            ),
        ));
    }
    zones.into_iter().collect()
}

/// One instance type the spec asks EC2 for, and where it must be offered.
struct WantedType {
    field: String,
    instance_type: String,
    /// Every used zone (spread fleets) or any one of them.
    everywhere: bool,
    /// A proxy check (MSK's broker types mirror EC2's): a miss is a warning.
    proxy: bool,
}

fn wanted_types(spec: &EnvSpec) -> Vec<WantedType> {
    super::vcpu_quota::demands(spec)
        .into_iter()
        .flat_map(|d| {
            let (everywhere, proxy) = (d.everywhere, d.pool.is_none());
            d.instance_types
                .into_iter()
                .map(move |(field, instance_type)| WantedType {
                    field,
                    instance_type,
                    everywhere,
                    proxy,
                })
        })
        .collect()
}

async fn ec2_instance_types(aws: &Aws, spec: &EnvSpec, loc: &Locator, zones: &[String]) -> Check {
    let wanted = wanted_types(spec);
    let mut findings = Vec::new();
    if zones.is_empty() || wanted.is_empty() {
        return Check {
            name: "EC2 instance types",
            detail: "nothing to check".into(),
            findings,
        };
    }
    let types: BTreeSet<&str> = wanted.iter().map(|w| w.instance_type.as_str()).collect();
    let mut offered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let type_list: Vec<&str> = types.iter().copied().collect();
    let zone_list: Vec<&str> = zones.iter().map(String::as_str).collect();
    match aws
        .ec2
        .instance_type_offerings(&type_list, &zone_list)
        .await
    {
        Ok(offers) => {
            for (t, zone) in offers {
                offered.entry(t).or_default().insert(zone);
            }
        }
        Err(e) => {
            findings.push(could_not(
                loc,
                "",
                &aws_error("listing instance type offerings", e),
            ));
            return Check {
                name: "EC2 instance types",
                detail: "not checked".into(),
                findings,
            };
        }
    }
    for w in &wanted {
        let here = offered.get(&w.instance_type).cloned().unwrap_or_default();
        let missing: Vec<&str> = zones
            .iter()
            .filter(|z| !here.contains(*z))
            .map(String::as_str)
            .collect();
        let fails = if w.everywhere {
            !missing.is_empty()
        } else {
            here.is_empty()
        };
        if !fails {
            continue;
        }
        let message = format!(
            "{} is not offered in {}{}",
            w.instance_type,
            missing.join(", "),
            if w.proxy {
                " (EC2's offering, which MSK broker types mirror)"
            } else {
                ""
            }
        );
        findings.push(if w.proxy {
            loc.warning(&w.field, message)
        } else {
            loc.error(&w.field, format!("{message}; choose a type offered there"))
        });
    }
    Check {
        name: "EC2 instance types",
        detail: format!(
            "{} in {}",
            types.into_iter().collect::<Vec<_>>().join(", "),
            zones.join(", ")
        ),
        findings,
    }
}

async fn emr(aws: &Aws, spec: &EnvSpec, loc: &Locator) -> Check {
    let label = &spec.emr.release_label;
    let mut findings = Vec::new();
    let mut labels = Vec::new();
    let mut pages = aws.emr.list_release_labels().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(out) => labels.extend(out.release_labels().iter().cloned()),
            Err(e) => {
                findings.push(could_not(
                    loc,
                    "emr.release_label",
                    &aws_error("listing EMR release labels", e),
                ));
                break;
            }
        }
    }
    if !labels.is_empty() && !labels.contains(label) {
        findings.push(loc.error(
            "emr.release_label",
            format!(
                "EMR release {label} is not offered here; newest offered: {}",
                labels.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
        return Check {
            name: "EMR release",
            detail: format!("{label} among {} offered releases", labels.len()),
            findings,
        };
    }
    // The applications the release offers.
    match aws
        .emr
        .describe_release_label()
        .release_label(label)
        .send()
        .await
    {
        Ok(out) => {
            let offered: BTreeSet<String> = out
                .applications()
                .iter()
                .filter_map(|a| a.name().map(str::to_lowercase))
                .collect();
            for (i, app) in spec.emr.applications.iter().enumerate() {
                if !offered.contains(&app.to_lowercase()) {
                    findings.push(loc.error(
                        &format!("emr.applications.{i}"),
                        format!("{label} does not offer {app}"),
                    ));
                }
            }
        }
        Err(e) => findings.push(could_not(
            loc,
            "emr.applications",
            &aws_error(format!("listing the applications of {label}"), e),
        )),
    }
    // The instance types the release runs on.
    let mut supported = BTreeSet::new();
    let mut token = None;
    loop {
        match aws
            .emr
            .list_supported_instance_types()
            .release_label(label)
            .set_marker(token)
            .send()
            .await
        {
            Ok(out) => {
                supported.extend(
                    out.supported_instance_types()
                        .iter()
                        .filter_map(|t| t.r#type().map(String::from)),
                );
                token = out.marker().map(String::from);
                if token.is_none() {
                    break;
                }
            }
            Err(e) => {
                findings.push(could_not(
                    loc,
                    "emr",
                    &aws_error(format!("listing the instance types of {label}"), e),
                ));
                break;
            }
        }
    }
    if !supported.is_empty() {
        for (role, group) in [
            ("master", &spec.emr.master),
            ("core", &spec.emr.core),
            ("task", &spec.emr.task),
        ] {
            for (i, t) in group.instance_types.iter().enumerate() {
                if group.count > 0 && !supported.contains(t) {
                    findings.push(loc.error(
                        &format!("emr.{role}.instance_types.{i}"),
                        format!("{label} does not run on {t}"),
                    ));
                }
            }
        }
    }
    Check {
        name: "EMR release",
        detail: format!(
            "{label} ({}) among {} offered releases",
            spec.emr.applications.join(", "),
            labels.len()
        ),
        findings,
    }
}

async fn metastore(aws: &Aws, spec: &EnvSpec, loc: &Locator) -> Check {
    let m = &spec.metastore;
    let (engine, version, version_field, class, class_field) = match &m.capacity {
        Capacity::Serverless { .. } => (
            "aurora-mysql",
            m.engine_version.as_str(),
            "metastore.engine_version",
            "db.serverless",
            "metastore.capacity",
        ),
        Capacity::Provisioned { instance_class, .. } => (
            "aurora-mysql",
            m.engine_version.as_str(),
            "metastore.engine_version",
            instance_class.as_str(),
            "metastore.capacity.instance_class",
        ),
        Capacity::SingleInstance {
            instance_class,
            mysql_version,
            ..
        } => (
            "mysql",
            mysql_version.as_str(),
            "metastore.capacity.mysql_version",
            instance_class.as_str(),
            "metastore.capacity.instance_class",
        ),
    };
    let detail = format!("{engine} {version} on {class}");
    let mut findings = Vec::new();
    // Narrowest question first; widen only to say what is wrong.
    let ask = |version, class| aws.rds.orderable(engine, version, class);
    let exact = match ask(Some(version), Some(class)).await {
        Ok(out) => out.len(),
        Err(e) => {
            findings.push(could_not(
                loc,
                "metastore",
                &aws_error("listing orderable DB instance options", e),
            ));
            return Check {
                name: "metastore engine",
                detail,
                findings,
            };
        }
    };
    if exact == 0 {
        let for_version = ask(Some(version), None).await.unwrap_or_default();
        if !for_version.is_empty() {
            // The version exists: the class is what is wrong.
            let classes: BTreeSet<&str> = for_version
                .iter()
                .filter_map(|o| o.instance_class.as_deref())
                .collect();
            findings.push(loc.error(
                class_field,
                format!(
                    "{class} is not offered for {engine} {version}; offered: {}",
                    classes.into_iter().take(6).collect::<Vec<_>>().join(", ")
                ),
            ));
        } else {
            let for_engine = ask(None, None).await.unwrap_or_default();
            if for_engine.is_empty() {
                findings.push(loc.warning(
                    "metastore",
                    format!(
                        "not checked: this endpoint lists no orderable instance options for {engine} at all"
                    ),
                ));
            } else {
                let versions: BTreeSet<&str> = for_engine
                    .iter()
                    .filter_map(|o| o.engine_version.as_deref())
                    .collect();
                findings.push(loc.error(
                    version_field,
                    format!(
                        "{engine} {version} is not offered; for example: {}",
                        versions.iter().rev().take(3).cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Check {
        name: "metastore engine",
        detail,
        findings,
    }
}

/// MSK's Kafka versions (self-managed Kafka is downloaded from Apache).
async fn kafka_version(aws: &Aws, spec: &EnvSpec, loc: &Locator) -> Option<Check> {
    let kafka = spec.kafka.as_ref().filter(|k| k.mode == KafkaMode::Msk)?;
    let version = &kafka.msk.version;
    let mut findings = Vec::new();
    let mut offered = Vec::new();
    let mut pages = aws.kafka.list_kafka_versions().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(out) => offered.extend(
                out.kafka_versions()
                    .iter()
                    .filter(|v| v.status().map(|s| s.as_str()) != Some("DEPRECATED"))
                    .filter_map(|v| v.version().map(String::from)),
            ),
            Err(e) => {
                findings.push(could_not(
                    loc,
                    "kafka.msk.version",
                    &aws_error("listing MSK's Kafka versions", e),
                ));
                break;
            }
        }
    }
    if findings.is_empty() && !offered.contains(version) {
        findings.push(loc.error(
            "kafka.msk.version",
            format!(
                "MSK does not offer Kafka {version}; offered: {}",
                offered.join(", ")
            ),
        ));
    }
    Some(Check {
        name: "MSK Kafka version",
        detail: format!("{version} among {} offered", offered.len()),
        findings,
    })
}

/// The IAM principal to simulate for a caller ARN: an assumed role's role
/// (its path is not in the session ARN; roles with a path are simulated
/// without it), a user as itself; the root user cannot be simulated.
fn principal_to_simulate(caller: &str) -> Option<String> {
    let (prefix, rest) = caller.split_once(":assumed-role/")?;
    let role = rest.split('/').next()?;
    Some(format!(
        "{}:role/{role}",
        prefix.replacen(":sts:", ":iam:", 1)
    ))
}

async fn permissions(aws: &Aws, loc: &Locator) -> Check {
    let caller = aws.caller_arn.as_str();
    let principal = if caller.contains(":assumed-role/") {
        principal_to_simulate(caller)
    } else if caller.contains(":user/") {
        Some(caller.to_string())
    } else {
        None
    };
    let mut findings = Vec::new();
    let Some(principal) = principal else {
        return Check {
            name: "permissions",
            detail: format!("{caller}: not simulated (root or federated caller)"),
            findings,
        };
    };
    match aws.iam.simulate(&principal, UP_ACTIONS).await {
        Ok(out) => {
            let denied: Vec<&str> = out
                .iter()
                .filter(|(_, decision)| decision != "allowed")
                .map(|(action, _)| action.as_str())
                .collect();
            if !denied.is_empty() {
                findings.push(loc.error(
                    "",
                    format!(
                        "{principal} may not {}; `up` needs them (grant them, or deploy with another --profile)",
                        denied.join(", ")
                    ),
                ));
            }
        }
        Err(e) => findings.push(could_not(
            loc,
            "",
            &aws_error(format!("simulating the policies of {principal}"), e),
        )),
    }
    Check {
        name: "permissions",
        detail: format!("{} actions `up` needs, as {principal}", UP_ACTIONS.len()),
        findings,
    }
}

/// A check that could not run is a warning, never silence.
fn could_not(loc: &Locator, field: &str, error: &AwsError) -> Diagnostic {
    loc.warning(field, format!("not checked: {error}"))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&text(self))
    }
}

/// The report for people: one line per check, its findings under it.
fn text(report: &Report) -> String {
    let mut out = format!("preflight {} ({}):\n", report.environment, report.region);
    for c in &report.checks {
        let _ = writeln!(out, "  {:8} {}: {}", c.verdict(), c.name, c.detail);
        for f in &c.findings {
            let _ = writeln!(out, "           {f}");
        }
    }
    let _ = writeln!(
        out,
        "preflight: {} errors, {} warnings",
        report.count(Severity::Error),
        report.count(Severity::Warning)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_is_simulated_as_its_role() {
        assert_eq!(
            principal_to_simulate("arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7"),
            Some("arn:aws:iam::123456789012:role/deployer".into())
        );
        assert_eq!(
            principal_to_simulate("arn:aws:iam::123456789012:root"),
            None
        );
    }
}
