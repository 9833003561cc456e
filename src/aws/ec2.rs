//! The EC2 calls lakectl makes, over `query` (EC2's Query dialect, API
//! version 2016-11-15) instead of aws-sdk-ec2: the zones, VPCs, subnets,
//! instance types and offerings preflight reads, the instances `status`
//! and the vCPU check count, and the security-group rules `down` revokes.
//! Each answer keeps only the fields a caller reads.
//!
//! Owns: each operation's parameters and answer. Must not: decide what a
//! finding means (the inspectors and `down` do).

use aws_config::SdkConfig;
use aws_smithy_types::retry::RetryConfig;

use super::call_log::CallLog;
use super::query::{child, child_text, items, list_params, text, QueryClient, QueryResult};

/// An EC2 client for one region.
#[derive(Debug, Clone)]
pub struct Ec2 {
    query: QueryClient,
}

/// A `Filter.N` of a Describe call.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new<S: Into<String>>(name: &str, values: impl IntoIterator<Item = S>) -> Filter {
        Filter {
            name: name.to_string(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vpc {
    pub id: String,
    pub cidr_block: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: Option<String>,
    pub availability_zone: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_type: String,
    /// `pending`, `running`, ... (`instanceState.name`).
    pub state: Option<String>,
    /// `spot` or `scheduled`; none for on-demand.
    pub lifecycle: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Cores × threads per core, when EC2 reports its CPU options.
    pub vcpus: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub ingress: Vec<Permission>,
    pub egress: Vec<Permission>,
}

/// One rule: protocol, ports and the groups it names as peers.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub protocol: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub groups: Vec<String>,
}

impl Ec2 {
    pub fn new(shared: &SdkConfig, retry: RetryConfig, log: Option<CallLog>) -> Ec2 {
        Ec2 {
            query: QueryClient::new(shared, "ec2", "2016-11-15", retry, log),
        }
    }

    pub async fn availability_zones(&self) -> QueryResult<Vec<Zone>> {
        self.query
            .call("DescribeAvailabilityZones", Vec::new(), |root| {
                Ok(items(root, "availabilityZoneInfo")
                    .map(|z| Zone {
                        name: text(z, "zoneName"),
                        state: text(z, "zoneState"),
                    })
                    .collect())
            })
            .await
    }

    pub async fn vpcs(&self, ids: &[&str]) -> QueryResult<Vec<Vpc>> {
        self.query
            .call(
                "DescribeVpcs",
                list_params("VpcId", ids.iter().copied()),
                |root| {
                    Ok(items(root, "vpcSet")
                        .map(|v| Vpc {
                            id: text(v, "vpcId"),
                            cidr_block: child_text(v, "cidrBlock").map(String::from),
                        })
                        .collect())
                },
            )
            .await
    }

    pub async fn subnets(&self, ids: &[&str]) -> QueryResult<Vec<Subnet>> {
        self.query
            .call(
                "DescribeSubnets",
                list_params("SubnetId", ids.iter().copied()),
                |root| {
                    Ok(items(root, "subnetSet")
                        .map(|s| Subnet {
                            id: text(s, "subnetId"),
                            vpc_id: child_text(s, "vpcId").map(String::from),
                            availability_zone: child_text(s, "availabilityZone").map(String::from),
                            tags: tags(s),
                        })
                        .collect())
                },
            )
            .await
    }

    /// (instance type, zone) for each of `types` offered in each of `zones`.
    pub async fn instance_type_offerings(
        &self,
        types: &[&str],
        zones: &[&str],
    ) -> QueryResult<Vec<(String, String)>> {
        let mut params = vec![("LocationType".to_string(), "availability-zone".to_string())];
        params.extend(filter_params(&[
            Filter::new("instance-type", types.iter().copied()),
            Filter::new("location", zones.iter().copied()),
        ]));
        self.query
            .pages(
                "DescribeInstanceTypeOfferings",
                params,
                "NextToken",
                |root| {
                    Ok((
                        items(root, "instanceTypeOfferingSet")
                            .map(|o| (text(o, "instanceType"), text(o, "location")))
                            .collect(),
                        next_token(root),
                    ))
                },
            )
            .await
    }

    /// (instance type, default vCPUs) for each type EC2 knows of `types`.
    pub async fn instance_type_vcpus(&self, types: &[&str]) -> QueryResult<Vec<(String, u32)>> {
        self.query
            .call(
                "DescribeInstanceTypes",
                list_params("InstanceType", types.iter().copied()),
                |root| {
                    Ok(items(root, "instanceTypeSet")
                        .filter_map(|t| {
                            let vcpus = child(t, "vCpuInfo")
                                .and_then(|c| child_text(c, "defaultVCpus"))
                                .and_then(|v| v.parse().ok())?;
                            Some((text(t, "instanceType"), vcpus))
                        })
                        .collect())
                },
            )
            .await
    }

    /// Every instance matching `filters`, all pages.
    pub async fn instances(&self, filters: &[Filter]) -> QueryResult<Vec<Instance>> {
        self.query
            .pages(
                "DescribeInstances",
                filter_params(filters),
                "NextToken",
                instances_page,
            )
            .await
    }

    pub async fn security_groups(&self, ids: &[&str]) -> QueryResult<Vec<SecurityGroup>> {
        self.query
            .call(
                "DescribeSecurityGroups",
                list_params("GroupId", ids.iter().copied()),
                |root| {
                    Ok(items(root, "securityGroupInfo")
                        .map(|g| SecurityGroup {
                            id: text(g, "groupId"),
                            ingress: items(g, "ipPermissions").map(permission).collect(),
                            egress: items(g, "ipPermissionsEgress").map(permission).collect(),
                        })
                        .collect())
                },
            )
            .await
    }

    /// Revoke `rules` from `group`'s ingress (or egress) rules.
    pub async fn revoke(&self, group: &str, egress: bool, rules: &[Permission]) -> QueryResult<()> {
        let action = if egress {
            "RevokeSecurityGroupEgress"
        } else {
            "RevokeSecurityGroupIngress"
        };
        let mut params = vec![("GroupId".to_string(), group.to_string())];
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("IpPermissions.{}", i + 1);
            if let Some(p) = &rule.protocol {
                params.push((format!("{at}.IpProtocol"), p.clone()));
            }
            if let Some(p) = rule.from_port {
                params.push((format!("{at}.FromPort"), p.to_string()));
            }
            if let Some(p) = rule.to_port {
                params.push((format!("{at}.ToPort"), p.to_string()));
            }
            for (j, g) in rule.groups.iter().enumerate() {
                params.push((format!("{at}.Groups.{}.GroupId", j + 1), g.clone()));
            }
        }
        self.query.call(action, params, |_| Ok(())).await
    }
}

/// One page of DescribeInstances: every reservation's instances.
fn instances_page(
    root: roxmltree::Node<'_, '_>,
) -> Result<(Vec<Instance>, Option<String>), String> {
    let instances = items(root, "reservationSet")
        .flat_map(|r| items(r, "instancesSet"))
        .map(|i| Instance {
            instance_type: text(i, "instanceType"),
            state: child(i, "instanceState")
                .and_then(|s| child_text(s, "name"))
                .map(String::from),
            lifecycle: child_text(i, "instanceLifecycle").map(String::from),
            tags: tags(i),
            vcpus: child(i, "cpuOptions").and_then(|c| {
                let cores: u32 = child_text(c, "coreCount")?.parse().ok()?;
                let threads: u32 = child_text(c, "threadsPerCore")?.parse().ok()?;
                Some(cores * threads)
            }),
        })
        .collect();
    Ok((instances, next_token(root)))
}

fn next_token(root: roxmltree::Node<'_, '_>) -> Option<String> {
    child_text(root, "nextToken").map(String::from)
}

fn tags(node: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
    items(node, "tagSet")
        .map(|t| (text(t, "key"), text(t, "value")))
        .collect()
}

fn permission(p: roxmltree::Node<'_, '_>) -> Permission {
    Permission {
        protocol: child_text(p, "ipProtocol").map(String::from),
        from_port: child_text(p, "fromPort").and_then(|v| v.parse().ok()),
        to_port: child_text(p, "toPort").and_then(|v| v.parse().ok()),
        groups: items(p, "groups")
            .filter_map(|g| child_text(g, "groupId").map(String::from))
            .collect(),
    }
}

/// `Filter.N.Name` and `Filter.N.Value.M`.
fn filter_params(filters: &[Filter]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let at = format!("Filter.{}", i + 1);
        params.push((format!("{at}.Name"), f.name.clone()));
        for (j, v) in f.values.iter().enumerate() {
            params.push((format!("{at}.Value.{}", j + 1), v.clone()));
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EC2's documented answer shapes (API reference, "Example" responses).
    #[test]
    fn instances_read_type_state_lifecycle_tags_and_cpu() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId>
  <reservationSet><item><reservationId>r-1</reservationId><instancesSet>
    <item><instanceId>i-1</instanceId><instanceType>m5.large</instanceType>
      <instanceState><code>16</code><name>running</name></instanceState>
      <instanceLifecycle>spot</instanceLifecycle>
      <tagSet><item><key>lake-environment</key><value>prod</value></item></tagSet>
      <cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>
    </item>
    <item><instanceId>i-2</instanceId><instanceType>t3.micro</instanceType>
      <instanceState><code>0</code><name>pending</name></instanceState></item>
  </instancesSet></item></reservationSet>
  <nextToken>abc</nextToken>
</DescribeInstancesResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let (got, next) = instances_page(doc.root_element()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].instance_type, "m5.large");
        assert_eq!(got[0].state.as_deref(), Some("running"));
        assert_eq!(got[0].lifecycle.as_deref(), Some("spot"));
        assert_eq!(got[0].tags, [("lake-environment".into(), "prod".into())]);
        assert_eq!(got[0].vcpus, Some(2));
        assert_eq!((got[1].lifecycle.clone(), got[1].vcpus), (None, None));
        assert_eq!(next.as_deref(), Some("abc"));
    }

    #[test]
    fn filters_and_rules_serialize_as_ec2_lists() {
        let params = filter_params(&[
            Filter::new("instance-state-name", ["pending", "running"]),
            Filter::new("location", ["us-east-1a"]),
        ]);
        let flat: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            flat,
            [
                "Filter.1.Name=instance-state-name",
                "Filter.1.Value.1=pending",
                "Filter.1.Value.2=running",
                "Filter.2.Name=location",
                "Filter.2.Value.1=us-east-1a"
            ]
        );
        let doc = roxmltree::Document::parse(
            "<i><ipProtocol>tcp</ipProtocol><fromPort>0</fromPort><toPort>65535</toPort><groups><item><userId>1</userId><groupId>sg-1</groupId></item></groups><ipRanges/></i>",
        )
        .unwrap();
        assert_eq!(
            permission(doc.root_element()),
            Permission {
                protocol: Some("tcp".into()),
                from_port: Some(0),
                to_port: Some(65535),
                groups: vec!["sg-1".into()],
            }
        );
    }
}
