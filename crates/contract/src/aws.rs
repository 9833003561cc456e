//! The one AWS SDK configuration loader of the workspace, and the S3 client
//! built from it (path-style addressing when an endpoint is set: emulators
//! need it).
//!
//! Owns: turning an endpoint, region, profile and retry mode into an
//! `SdkConfig`. Must not: build service clients other than S3 (each caller
//! builds its own from the config) or read environment specs.

/// Which AWS endpoint and credentials a client talks to; `None` fields fall
/// back to the standard chain (environment, profile files, IMDS).
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Client-side rate limiting on throttling (control-plane calls); the
    /// data plane keeps standard retries and paces itself.
    pub adaptive_retries: bool,
}

impl AwsTarget {
    /// The data plane's target: an endpoint and a region, standard retries.
    pub fn endpoint(endpoint_url: Option<&str>, region: Option<&str>) -> AwsTarget {
        AwsTarget {
            endpoint_url: endpoint_url.map(String::from),
            region: region.map(String::from),
            ..AwsTarget::default()
        }
    }
}

/// The SDK configuration for `target`.
pub async fn aws_config_for(target: &AwsTarget) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if target.adaptive_retries {
        // A deploy slows down on throttling instead of failing half-way.
        loader =
            loader.retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(8));
    }
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &target.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client from a shared configuration; path-style addressing with a
/// custom endpoint (emulators need it).
pub fn s3_client_from(shared: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config_from(shared).build())
}

/// The S3 client configuration [`s3_client_from`] builds, for a caller
/// that adds to it (an interceptor).
pub fn s3_config_from(shared: &aws_config::SdkConfig) -> aws_sdk_s3::config::Builder {
    let path_style =
        shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    aws_sdk_s3::config::Builder::from(shared).force_path_style(path_style)
}
