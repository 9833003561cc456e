//! The SSM call lakectl makes, over `query`'s JSON 1.1 (target
//! `AmazonSSM`) instead of aws-sdk-ssm: a parameter's value, for the
//! machine images stacks pin (`deploy/images.rs`).
//!
//! Owns: the call's request and answer. Must not: decide what a value
//! means.

use aws_config::SdkConfig;
use aws_smithy_types::retry::RetryConfig;

use super::call_log::CallLog;
use super::query::{QueryClient, QueryResult};

/// An SSM client for one region.
#[derive(Debug, Clone)]
pub struct Ssm {
    query: QueryClient,
}

impl Ssm {
    pub fn new(shared: &SdkConfig, retry: RetryConfig, log: Option<CallLog>) -> Ssm {
        Ssm {
            query: QueryClient::new(shared, "ssm", "AmazonSSM", retry, log),
        }
    }

    /// The value of parameter `name`, none when it has none.
    pub async fn parameter(&self, name: &str) -> QueryResult<Option<String>> {
        let answer = self
            .query
            .call_json("GetParameter", serde_json::json!({ "Name": name }))
            .await?;
        Ok(answer["Parameter"]["Value"].as_str().map(String::from))
    }
}
