//! The IAM call lakectl makes, over `query` (API version 2010-05-08)
//! instead of aws-sdk-iam: preflight's simulation of the actions `up`
//! needs. IAM is global: one endpoint per partition, signed for its home
//! region.
//!
//! Owns: the call's parameters and answer. Must not: decide what a denial
//! means (preflight does).

use aws_config::SdkConfig;
use aws_smithy_types::retry::RetryConfig;

use super::call_log::CallLog;
use super::query::{child_text, list_params, members, result, text, QueryClient, QueryResult};

/// An IAM client for the partition of the shared region.
#[derive(Debug, Clone)]
pub struct Iam {
    query: QueryClient,
}

impl Iam {
    pub fn new(shared: &SdkConfig, retry: RetryConfig, log: Option<CallLog>) -> Iam {
        let query = QueryClient::new(shared, "iam", "2010-05-08", retry, log);
        let (endpoint, home) = global_endpoint(query.region());
        Iam {
            query: query.global(&endpoint, &home),
        }
    }

    /// (action, decision) for each of `actions` as `principal`'s policies
    /// decide it: `allowed`, `explicitDeny` or `implicitDeny`.
    pub async fn simulate(
        &self,
        principal: &str,
        actions: &[&str],
    ) -> QueryResult<Vec<(String, String)>> {
        let mut params = vec![("PolicySourceArn".to_string(), principal.to_string())];
        params.extend(list_params("ActionNames.member", actions.iter().copied()));
        self.query
            .pages("SimulatePrincipalPolicy", params, "Marker", simulation_page)
            .await
    }
}

/// IAM's endpoint and signing region for the partition of `region`.
fn global_endpoint(region: &str) -> (String, String) {
    if region.starts_with("cn-") {
        (
            "https://iam.cn-north-1.amazonaws.com.cn".into(),
            "cn-north-1".into(),
        )
    } else if region.starts_with("us-gov-") {
        (
            "https://iam.us-gov.amazonaws.com".into(),
            "us-gov-west-1".into(),
        )
    } else {
        ("https://iam.amazonaws.com".into(), "us-east-1".into())
    }
}

type Decisions = (Vec<(String, String)>, Option<String>);

fn simulation_page(root: roxmltree::Node<'_, '_>) -> Result<Decisions, String> {
    let r = result(root, "SimulatePrincipalPolicy");
    let decisions = members(r, "EvaluationResults", "member")
        .map(|m| (text(m, "EvalActionName"), text(m, "EvalDecision")))
        .collect();
    let more = child_text(r, "IsTruncated") == Some("true");
    Ok((
        decisions,
        child_text(r, "Marker").filter(|_| more).map(String::from),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer's shape as the IAM API reference's example gives it (moto
    /// does not simulate policies; docs/moto-gaps.md).
    #[test]
    fn a_simulation_reads_each_action_and_its_decision() {
        let xml = r#"<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <SimulatePrincipalPolicyResult>
    <IsTruncated>true</IsTruncated>
    <Marker>next</Marker>
    <EvaluationResults>
      <member>
        <MatchedStatements><member><SourcePolicyId>p</SourcePolicyId></member></MatchedStatements>
        <MissingContextValues/>
        <EvalResourceName>*</EvalResourceName>
        <EvalDecision>allowed</EvalDecision>
        <EvalActionName>cloudformation:CreateStack</EvalActionName>
      </member>
      <member>
        <MatchedStatements/>
        <EvalResourceName>*</EvalResourceName>
        <EvalDecision>implicitDeny</EvalDecision>
        <EvalActionName>iam:PassRole</EvalActionName>
      </member>
    </EvaluationResults>
  </SimulatePrincipalPolicyResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</SimulatePrincipalPolicyResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let (decisions, next) = simulation_page(doc.root_element()).unwrap();
        assert_eq!(
            decisions,
            [
                ("cloudformation:CreateStack".into(), "allowed".into()),
                ("iam:PassRole".into(), "implicitDeny".into())
            ]
        );
        assert_eq!(next.as_deref(), Some("next"));
    }

    #[test]
    fn a_chosen_endpoint_is_signed_for_the_configured_region() {
        let config = |endpoint: Option<&str>| {
            let mut b = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("eu-west-1"));
            if let Some(e) = endpoint {
                b = b.endpoint_url(e);
            }
            b.build()
        };
        let retry = RetryConfig::standard();
        let aws = Iam::new(&config(None), retry.clone(), None);
        assert_eq!(
            (aws.query.endpoint(), aws.query.region()),
            ("https://iam.amazonaws.com", "us-east-1")
        );
        let chosen = Iam::new(&config(Some("http://127.0.0.1:5000")), retry, None);
        assert_eq!(
            (chosen.query.endpoint(), chosen.query.region()),
            ("http://127.0.0.1:5000", "eu-west-1")
        );
    }

    #[test]
    fn iam_is_signed_for_its_partition_home() {
        assert_eq!(global_endpoint("eu-west-1").1, "us-east-1");
        assert_eq!(global_endpoint("cn-northwest-1").1, "cn-north-1");
        assert_eq!(
            global_endpoint("us-gov-east-1").0,
            "https://iam.us-gov.amazonaws.com"
        );
    }
}
