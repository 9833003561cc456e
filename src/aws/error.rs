//! One error type for every failed AWS call, whatever the service: what was
//! being done, the service's verdict in one line, and the SDK error kept as
//! the cause (printed as a chain by the CLI, never as a `Debug` dump).
//!
//! Owns: classifying an `SdkError` (a service error with its code, an answer
//! that could not be read, no AWS error at all, no connection or no
//! credentials). Must not: decide what the caller does about it.

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An AWS call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {summary}")]
pub struct AwsError {
    /// What lakectl was doing, e.g. "describing stack lake-poc-network".
    pub doing: String,
    /// The service's code and message, or what the failure means and what
    /// to check.
    pub summary: String,
    /// The service's error code (`AccessDenied`, `ValidationError`, ...).
    pub code: Option<String>,
    #[source]
    pub source: Option<Cause>,
}

impl AwsError {
    /// A failure the service answered with `code` (scripted answers in unit
    /// tests, and errors read from an API rather than returned by it).
    pub fn service(doing: impl Into<String>, code: &str, message: &str) -> AwsError {
        AwsError {
            doing: doing.into(),
            summary: format!("{code}: {message}"),
            code: Some(code.to_string()),
            source: None,
        }
    }
}

/// `err`, from any SDK, as an `AwsError` while `doing`.
pub fn aws_error<E>(doing: impl Into<String>, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let code = err.code().map(String::from);
    let summary = match (&err, err.code(), err.message()) {
        (_, Some(code), Some(message)) => format!("{code}: {message}"),
        (SdkError::ResponseError(_), _, _) => {
            "the answer could not be read; does the endpoint implement this call fully?".into()
        }
        (SdkError::ServiceError(e), _, _) => format!(
            "HTTP {} without an AWS error in the body (does the endpoint implement this call?)",
            e.raw().status()
        ),
        (SdkError::DispatchFailure(_), _, _) | (SdkError::TimeoutError(_), _, _) => {
            "AWS could not be reached or no credentials were found; check the credentials \
             (--profile, AWS_PROFILE), --region and --endpoint-url"
                .into()
        }
        _ => "the request could not be built or sent".into(),
    };
    // A service error's code and message already say it all.
    let source: Option<Cause> = match (&err, &code) {
        (SdkError::ServiceError(_), Some(_)) => None,
        _ => Some(Box::new(err)),
    };
    AwsError {
        doing: doing.into(),
        summary,
        code,
        source,
    }
}
