//! The RDS calls lakectl makes, over `query` (API version 2014-10-31)
//! instead of aws-sdk-rds: the metastore's Aurora cluster or instance for
//! `status`, and the orderable engine versions and classes preflight
//! checks the spec against. Each answer keeps only the fields read.
//!
//! Owns: each operation's parameters and answer. Must not: decide what a
//! finding means (the inspectors do).

use aws_config::SdkConfig;
use aws_smithy_types::retry::RetryConfig;

use super::call_log::CallLog;
use super::query::{child, child_text, members, result, text, QueryClient, QueryResult};

/// An RDS client for one region.
#[derive(Debug, Clone)]
pub struct Rds {
    query: QueryClient,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbCluster {
    pub id: String,
    pub status: String,
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbInstance {
    pub id: String,
    pub status: String,
    /// The endpoint's address.
    pub address: Option<String>,
}

/// One orderable (engine version, instance class) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Orderable {
    pub engine_version: Option<String>,
    pub instance_class: Option<String>,
}

impl Rds {
    pub fn new(shared: &SdkConfig, retry: RetryConfig, log: Option<CallLog>) -> Rds {
        Rds {
            query: QueryClient::new(shared, "rds", "2014-10-31", retry, log),
        }
    }

    /// Every DB cluster in the region, all pages.
    pub async fn clusters(&self) -> QueryResult<Vec<DbCluster>> {
        self.query
            .pages("DescribeDBClusters", Vec::new(), "Marker", |root| {
                let r = result(root, "DescribeDBClusters");
                Ok((
                    members(r, "DBClusters", "DBCluster")
                        .map(|c| DbCluster {
                            id: text(c, "DBClusterIdentifier"),
                            status: status(c, "Status"),
                            endpoint: child_text(c, "Endpoint").map(String::from),
                            reader_endpoint: child_text(c, "ReaderEndpoint").map(String::from),
                        })
                        .collect(),
                    child_text(r, "Marker").map(String::from),
                ))
            })
            .await
    }

    /// Every DB instance in the region, all pages.
    pub async fn instances(&self) -> QueryResult<Vec<DbInstance>> {
        self.query
            .pages("DescribeDBInstances", Vec::new(), "Marker", |root| {
                let r = result(root, "DescribeDBInstances");
                Ok((
                    members(r, "DBInstances", "DBInstance")
                        .map(|i| DbInstance {
                            id: text(i, "DBInstanceIdentifier"),
                            status: status(i, "DBInstanceStatus"),
                            address: child(i, "Endpoint")
                                .and_then(|e| child_text(e, "Address"))
                                .map(String::from),
                        })
                        .collect(),
                    child_text(r, "Marker").map(String::from),
                ))
            })
            .await
    }

    /// The first page (up to 100) of orderable options for `engine`,
    /// narrowed to `version` and `class` when given.
    pub async fn orderable(
        &self,
        engine: &str,
        version: Option<&str>,
        class: Option<&str>,
    ) -> QueryResult<Vec<Orderable>> {
        let mut params = vec![
            ("Engine".to_string(), engine.to_string()),
            ("MaxRecords".to_string(), "100".to_string()),
        ];
        if let Some(v) = version {
            params.push(("EngineVersion".into(), v.into()));
        }
        if let Some(c) = class {
            params.push(("DBInstanceClass".into(), c.into()));
        }
        self.query
            .call("DescribeOrderableDBInstanceOptions", params, orderable_page)
            .await
    }
}

/// A status, `unknown` when the answer has none.
fn status(node: roxmltree::Node<'_, '_>, name: &str) -> String {
    child_text(node, name).unwrap_or("unknown").to_string()
}

fn orderable_page(root: roxmltree::Node<'_, '_>) -> Result<Vec<Orderable>, String> {
    let r = result(root, "DescribeOrderableDBInstanceOptions");
    Ok(
        members(r, "OrderableDBInstanceOptions", "OrderableDBInstanceOption")
            .map(|o| Orderable {
                engine_version: child_text(o, "EngineVersion").map(String::from),
                instance_class: child_text(o, "DBInstanceClass").map(String::from),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer's shape as the RDS API reference's example gives it (moto
    /// does not list orderable MySQL options; docs/moto-gaps.md).
    #[test]
    fn orderable_options_read_version_and_class() {
        let xml = r#"<DescribeOrderableDBInstanceOptionsResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <DescribeOrderableDBInstanceOptionsResult>
    <OrderableDBInstanceOptions>
      <OrderableDBInstanceOption>
        <Engine>aurora-mysql</Engine><EngineVersion>8.0.mysql_aurora.3.08.0</EngineVersion>
        <DBInstanceClass>db.r6g.large</DBInstanceClass><MultiAZCapable>true</MultiAZCapable>
        <AvailabilityZones><AvailabilityZone><Name>us-east-1a</Name></AvailabilityZone></AvailabilityZones>
      </OrderableDBInstanceOption>
      <OrderableDBInstanceOption>
        <Engine>aurora-mysql</Engine><EngineVersion>8.0.mysql_aurora.3.08.0</EngineVersion>
        <DBInstanceClass>db.t4g.medium</DBInstanceClass>
      </OrderableDBInstanceOption>
    </OrderableDBInstanceOptions>
    <Marker>m</Marker>
  </DescribeOrderableDBInstanceOptionsResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</DescribeOrderableDBInstanceOptionsResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let got = orderable_page(doc.root_element()).unwrap();
        assert_eq!(
            got.iter()
                .map(|o| o.instance_class.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["db.r6g.large", "db.t4g.medium"]
        );
        assert!(got
            .iter()
            .all(|o| o.engine_version.as_deref() == Some("8.0.mysql_aurora.3.08.0")));
    }
}
