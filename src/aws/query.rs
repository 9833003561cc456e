//! AWS calls without a generated SDK crate: the Query protocol (a
//! form-encoded POST of `Action`, `Version` and the operation's parameters,
//! answered in XML) and, for SSM's one call, JSON 1.1. The few calls
//! lakectl makes to EC2, RDS, IAM and SSM cost their SDK crates, the
//! largest of the build (aws-sdk-ec2 alone 252 s of a 983 s CI build;
//! docs/benchmarks.md, "CI"); this module asks them through the SDK's own
//! orchestrator instead, so each call still gets SigV4 signing from the
//! shared credential chain, the reading clients' retries, the configured
//! timeouts and the `-v` call log, and fails as an `SdkError` that
//! `aws_error` classifies like any other.
//!
//! Owns: serializing parameters, signing, the endpoint (the shared
//! `--endpoint-url`, else the service's regional one), parsing the XML
//! answer and the service's error document (`<Errors><Error><Code>` in
//! EC2's dialect, `<ErrorResponse><Error><Code>` in the classic one,
//! `__type` in JSON). Must not: know any operation's fields (`ec2.rs`,
//! `rds.rs`, `iam.rs`, `ssm.rs` do).

use aws_config::SdkConfig;
use aws_runtime::auth::sigv4::{SigV4AuthScheme, SCHEME_ID};
use aws_runtime::auth::SigV4OperationSigningConfig;
use aws_runtime::invocation_id::InvocationIdInterceptor;
use aws_runtime::recursion_detection::RecursionDetectionInterceptor;
use aws_runtime::request_info::RequestInfoInterceptor;
use aws_runtime::retries::classifiers::AwsErrorCodeClassifier;
use aws_runtime::service_clock_skew::{ServiceClockSkewClassifier, ServiceClockSkewInterceptor};
use aws_runtime::user_agent::{ApiMetadata, UserAgentInterceptor};
use aws_smithy_runtime::client::defaults::default_http_client_plugin_v2;
use aws_smithy_runtime::client::orchestrator::operation::{Operation, OperationBuilder};
use aws_smithy_runtime::client::retries::classifiers::{
    HttpStatusCodeClassifier, TransientErrorClassifier,
};
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::auth::AuthSchemeOptionResolverParams;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
use aws_smithy_runtime_api::client::runtime_plugin::{SharedRuntimePlugin, StaticRuntimePlugin};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::Layer;
use aws_smithy_types::error::metadata::{ErrorMetadata, ProvideErrorMetadata};
use aws_smithy_types::error::operation::BuildError;
use aws_smithy_types::retry::RetryConfig;
use aws_types::region::SigningRegion;
use aws_types::service_config::ServiceConfigKey;
use aws_types::SigningName;

use super::call_log::CallLog;

/// A failed call as the service answered it: its error code and message,
/// or none when the answer was not an AWS error document.
#[derive(Debug)]
pub struct QueryError {
    meta: ErrorMetadata,
    /// HTTP status, for a failure without an error document.
    status: u16,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.meta.code(), self.meta.message()) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(code), None) => write!(f, "{code}"),
            _ => write!(f, "HTTP {} without an AWS error document", self.status),
        }
    }
}

impl std::error::Error for QueryError {}

impl ProvideErrorMetadata for QueryError {
    fn meta(&self) -> &ErrorMetadata {
        &self.meta
    }
}

/// What a Query call returns: the parsed answer or the SDK's error.
pub type QueryResult<T> = Result<T, SdkError<QueryError, HttpResponse>>;

/// Reads one operation's answer from its XML document.
pub type Parse<T> = fn(roxmltree::Node<'_, '_>) -> Result<T, String>;

/// One service spoken in the Query protocol.
#[derive(Clone)]
pub struct QueryClient {
    /// The signing name and the call log's service name (`ec2`).
    service: &'static str,
    /// The API version every request names (`2016-11-15` for EC2); for a
    /// JSON 1.1 service, its target prefix (`AmazonSSM`).
    version: &'static str,
    endpoint: String,
    /// An endpoint the user chose (`--endpoint-url`, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_<SERVICE>`): signed for the configured region.
    endpoint_chosen: bool,
    shared: SdkConfig,
    region: String,
    retry: RetryConfig,
    log: Option<CallLog>,
    /// One connection pool for every call of this client, as a generated
    /// client keeps one: the shared config's HTTP client, else the SDK's
    /// default one made once here.
    http: Option<SharedRuntimePlugin>,
    /// Corrects the signing clock by the service's, across calls.
    clock_skew: Option<SharedInterceptor>,
    behavior: BehaviorVersion,
    /// SigV4 for this service and `region`, made once (`signing`).
    signing: SharedRuntimePlugin,
}

impl std::fmt::Debug for QueryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryClient")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl QueryClient {
    /// `service` in the shared region, at the endpoint the user chose for
    /// it (as a generated client finds it: `AWS_ENDPOINT_URL_<SERVICE>` or
    /// the profile's, else `--endpoint-url`/`AWS_ENDPOINT_URL`), else at
    /// `https://SERVICE.REGION.amazonaws.com` (`.com.cn` in the China
    /// regions). Retries as `retry` says.
    pub fn new(
        shared: &SdkConfig,
        service: &'static str,
        version: &'static str,
        retry: RetryConfig,
        log: Option<CallLog>,
    ) -> QueryClient {
        let region = shared
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let chosen = chosen_endpoint(shared, service);
        let endpoint = chosen
            .clone()
            .unwrap_or_else(|| regional_endpoint(service, &region));
        let behavior = shared
            .behavior_version()
            .unwrap_or_else(BehaviorVersion::latest);
        let http = match shared.http_client() {
            Some(client) => Some(SharedRuntimePlugin::new(
                StaticRuntimePlugin::new().with_runtime_components(
                    RuntimeComponentsBuilder::new("lakectl shared http client")
                        .with_http_client(Some(client)),
                ),
            )),
            None => default_http_client_plugin_v2(behavior),
        };
        let clock_skew = (shared.disable_clock_skew_correction() != Some(true))
            .then(|| SharedInterceptor::new(ServiceClockSkewInterceptor::new()));
        QueryClient {
            service,
            version,
            endpoint,
            endpoint_chosen: chosen.is_some(),
            signing: signing(shared, service, &region),
            shared: shared.clone(),
            region,
            retry,
            log,
            http,
            clock_skew,
            behavior,
        }
    }

    /// Call `action` with `params` (already in the protocol's flattened
    /// `Name.N.Field` form) and read the answer with `parse`.
    pub async fn call<T>(
        &self,
        action: &'static str,
        params: Vec<(String, String)>,
        parse: Parse<T>,
    ) -> QueryResult<T>
    where
        T: std::fmt::Debug + Send + Sync + 'static,
    {
        let version = self.version;
        let operation = self
            .operation(action)
            .serializer(move |params: Vec<(String, String)>| {
                request(action, version, &params).map_err(Into::into)
            })
            .deserializer(move |response: &HttpResponse| answer(response, parse))
            .build();
        operation.invoke(params).await
    }

    /// Call `action` of a service that speaks JSON 1.1 instead (SSM: its
    /// `X-Amz-Target` prefix is this client's version, `AmazonSSM`) with
    /// the request document `input`; the answer's document.
    pub async fn call_json(
        &self,
        action: &'static str,
        input: serde_json::Value,
    ) -> QueryResult<serde_json::Value> {
        let target = format!("{}.{action}", self.version);
        let operation = self
            .operation(action)
            .serializer(move |input: serde_json::Value| {
                let mut request = post(input.to_string(), "application/x-amz-json-1.1")?;
                request.headers_mut().insert("x-amz-target", target.clone());
                Ok(request)
            })
            .deserializer(json_answer)
            .build();
        operation.invoke(input).await
    }

    /// Everything but the serializer and deserializer: endpoint, signing,
    /// retries, timeouts, the HTTP client and the call log.
    fn operation(&self, action: &'static str) -> OperationBuilder {
        let mut builder = Operation::builder()
            .service_name(self.service)
            .operation_name(action)
            .behavior_version(self.behavior)
            .endpoint_url(&self.endpoint)
            .standard_retry(&self.retry)
            .retry_classifier(HttpStatusCodeClassifier::default())
            .retry_classifier(TransientErrorClassifier::<QueryError>::new())
            .retry_classifier(AwsErrorCodeClassifier::<QueryError>::new())
            .retry_classifier(ServiceClockSkewClassifier::<QueryError>::new())
            .with_connection_poisoning()
            .interceptor(RequestInfoInterceptor::new())
            .interceptor(UserAgentInterceptor::new())
            .interceptor(InvocationIdInterceptor::new())
            .interceptor(RecursionDetectionInterceptor::new())
            .runtime_plugin(self.signing.clone());
        if let Some(timeouts) = self.shared.timeout_config() {
            builder = builder.timeout_config(timeouts.clone());
        }
        if let Some(client) = &self.http {
            builder = builder.runtime_plugin(client.clone());
        }
        if let Some(skew) = &self.clock_skew {
            builder = builder.interceptor(skew.clone());
        }
        if let Some(sleep) = self.shared.sleep_impl() {
            builder = builder.sleep_impl(sleep);
        }
        if let Some(log) = self.log {
            builder = builder.interceptor(log);
        }
        builder
    }

    /// A global service (IAM): one endpoint per partition, signed for its
    /// home region; an endpoint the user chose still wins, signed for the
    /// configured region (as the SDK's endpoint rules do).
    pub fn global(mut self, endpoint: &str, signing_region: &str) -> QueryClient {
        if !self.endpoint_chosen {
            self.endpoint = endpoint.to_string();
            self.region = signing_region.to_string();
            self.signing = signing(&self.shared, self.service, &self.region);
        }
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every page of a paginated call: `parse` returns a page's items and
    /// the token for the next, sent back as `token_param` (`NextToken`,
    /// `Marker`).
    pub async fn pages<T>(
        &self,
        action: &'static str,
        params: Vec<(String, String)>,
        token_param: &str,
        parse: Parse<(Vec<T>, Option<String>)>,
    ) -> QueryResult<Vec<T>>
    where
        T: std::fmt::Debug + Send + Sync + 'static,
    {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut page_params = params.clone();
            if let Some(t) = &token {
                page_params.push((token_param.to_string(), t.clone()));
            }
            let (page, next) = self.call(action, page_params, parse).await?;
            all.extend(page);
            match next {
                // A token that repeats would page forever.
                Some(next) if !next.is_empty() && token.as_deref() != Some(next.as_str()) => {
                    token = Some(next)
                }
                _ => return Ok(all),
            }
        }
    }
}

/// SigV4 with the shared credential chain, for `service` in `region`.
fn signing(shared: &SdkConfig, service: &'static str, region: &str) -> SharedRuntimePlugin {
    let mut layer = Layer::new("lakectl query signing");
    let name = SigningName::from_static(service);
    let region = SigningRegion::from(aws_types::region::Region::new(region.to_string()));
    layer.store_put(SigV4OperationSigningConfig {
        region: Some(region.clone()),
        name: Some(name.clone()),
        ..Default::default()
    });
    layer.store_put(name);
    layer.store_put(region);
    // The user agent names lakectl's client for this service.
    layer.store_put(ApiMetadata::new(service, env!("CARGO_PKG_VERSION")));
    layer.store_put(AuthSchemeOptionResolverParams::new(()));
    let mut components = RuntimeComponentsBuilder::new("lakectl query signing")
        .with_auth_scheme(SigV4AuthScheme::new())
        .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![
            SCHEME_ID,
        ])));
    if let Some(credentials) = shared.credentials_provider() {
        components = components.with_identity_resolver(SCHEME_ID, credentials);
    }
    if let Some(cache) = shared.identity_cache() {
        components = components.with_identity_cache(Some(cache));
    }
    SharedRuntimePlugin::new(
        StaticRuntimePlugin::new()
            .with_config(layer.freeze())
            .with_runtime_components(components),
    )
}

/// The endpoint the user chose for `service`, as a generated client reads
/// it: the service's own setting (`AWS_ENDPOINT_URL_EC2`, a profile's
/// `services` section) over the general one.
fn chosen_endpoint(shared: &SdkConfig, service: &str) -> Option<String> {
    let id = service.to_ascii_uppercase();
    let own = shared.service_config().and_then(|conf| {
        ServiceConfigKey::builder()
            .service_id(&id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()
            .and_then(|key| conf.load_config(key))
    });
    own.or_else(|| shared.endpoint_url().map(String::from))
}

fn regional_endpoint(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// The form-encoded POST of one call.
fn request(
    action: &str,
    version: &str,
    params: &[(String, String)],
) -> Result<HttpRequest, BuildError> {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("Action", action);
    body.append_pair("Version", version);
    for (k, v) in params {
        body.append_pair(k, v);
    }
    post(
        body.finish(),
        "application/x-www-form-urlencoded; charset=utf-8",
    )
}

/// A POST of `body` to the endpoint's root, as both protocols send.
fn post(body: String, content_type: &'static str) -> Result<HttpRequest, BuildError> {
    let mut request = HttpRequest::new(SdkBody::from(body));
    request.set_method("POST").map_err(BuildError::other)?;
    request.set_uri("/").map_err(BuildError::other)?;
    request.headers_mut().insert("content-type", content_type);
    Ok(request)
}

/// A 2xx answer read by `parse`; anything else as the service's error.
fn answer<T>(response: &HttpResponse, parse: Parse<T>) -> Result<T, OrchestratorError<QueryError>>
where
    T: std::fmt::Debug + Send + Sync + 'static,
{
    let status = response.status().as_u16();
    let body = response.body().bytes().unwrap_or_default();
    let unreadable = |why: String| OrchestratorError::response(why.into());
    let text = std::str::from_utf8(body)
        .map_err(|e| unreadable(format!("the answer is not UTF-8: {e}")))?;
    if response.status().is_success() {
        let doc = roxmltree::Document::parse(text)
            .map_err(|e| unreadable(format!("the answer is not XML: {e}")))?;
        return parse(doc.root_element()).map_err(unreadable);
    }
    Err(OrchestratorError::operation(QueryError {
        meta: error_document(text),
        status,
    }))
}

/// A JSON 1.1 answer: the document, or the service's `__type` and
/// `message` as the error.
fn json_answer(
    response: &HttpResponse,
) -> Result<serde_json::Value, OrchestratorError<QueryError>> {
    let body = response.body().bytes().unwrap_or_default();
    let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if response.status().is_success() {
        return doc.ok_or_else(|| OrchestratorError::response("the answer is not JSON".into()));
    }
    let mut meta = ErrorMetadata::builder();
    // The code: the `x-amzn-errortype` header, else the body's `__type`;
    // either may carry a namespace (`com.amazonaws.ssm#ParameterNotFound`)
    // and a suffix after `:`.
    let header = response.headers().get("x-amzn-errortype");
    let typed = doc.as_ref().and_then(|d| d["__type"].as_str());
    if let Some(code) = header.or(typed) {
        let code = code.rsplit('#').next().unwrap_or(code);
        meta = meta.code(code.split(':').next().unwrap_or(code));
    }
    if let Some(doc) = &doc {
        if let Some(message) = doc["message"].as_str().or(doc["Message"].as_str()) {
            meta = meta.message(message);
        }
    }
    Err(OrchestratorError::operation(QueryError {
        meta: meta.build(),
        status: response.status().as_u16(),
    }))
}

/// The code and message of a Query error document (both dialects), or
/// empty metadata when the body is none.
pub(crate) fn error_document(text: &str) -> ErrorMetadata {
    let mut meta = ErrorMetadata::builder();
    if let Ok(doc) = roxmltree::Document::parse(text) {
        if let Some(error) = doc.descendants().find(|n| n.has_tag_name("Error")) {
            if let Some(code) = child_text(error, "Code") {
                meta = meta.code(code);
            }
            if let Some(message) = child_text(error, "Message") {
                meta = meta.message(message);
            }
        }
    }
    meta.build()
}

/// The first child element named `name` (any namespace).
pub fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

/// The text of the first child element named `name`.
pub fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|c| c.text())
}

/// The text of the child element `name`, empty when it is absent.
pub fn text(node: roxmltree::Node<'_, '_>, name: &str) -> String {
    child_text(node, name).unwrap_or_default().to_string()
}

/// The `<item>` elements of the list element `name` (EC2's list shape),
/// none when it is absent.
pub fn items<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    members(node, name, "item")
}

/// The `<member>` elements (or another member name: RDS names them for
/// their type, `<DBCluster>`) of the list element `name`.
pub fn members<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
    member: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    child(node, name)
        .into_iter()
        .flat_map(move |list| list.children().filter(move |c| c.has_tag_name(member)))
}

/// The classic dialect wraps an answer in `<ActionResult>`; EC2's does not.
pub fn result<'a, 'i>(root: roxmltree::Node<'a, 'i>, action: &str) -> roxmltree::Node<'a, 'i> {
    let name = format!("{action}Result");
    child(root, &name).unwrap_or(root)
}

/// `Name.1`, `Name.2`, ... for a list parameter (EC2's flattened lists;
/// the classic dialect's are `Name.member.1`: pass `Name.member`).
pub fn list_params<'a>(
    name: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, String)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{name}.{}", i + 1), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_dialects_give_code_and_message() {
        let ec2 = "<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID 'vpc-1' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>";
        let meta = error_document(ec2);
        assert_eq!(meta.code(), Some("InvalidVpcID.NotFound"));
        assert_eq!(meta.message(), Some("The vpc ID 'vpc-1' does not exist"));
        let classic = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let meta = error_document(classic);
        assert_eq!(
            (meta.code(), meta.message()),
            (Some("AccessDenied"), Some("no"))
        );
        let none = error_document("<html>bad gateway</html>");
        assert_eq!((none.code(), none.message()), (None, None));
        assert_eq!(error_document("").code(), None);
    }

    #[test]
    fn a_json_error_gives_its_type_without_namespace_and_message() {
        let response = |status: u16, body: &str| {
            HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()))
        };
        let err = json_answer(&response(
            400,
            r#"{"__type":"com.amazonaws.ssm#ParameterNotFound","message":"no /x"}"#,
        ))
        .unwrap_err();
        let err = err.as_operation_error().unwrap();
        assert_eq!(
            (err.code(), err.message()),
            (Some("ParameterNotFound"), Some("no /x"))
        );
        let ok = json_answer(&response(200, r#"{"Parameter":{"Value":"ami-1"}}"#)).unwrap();
        assert_eq!(ok["Parameter"]["Value"], "ami-1");
        let mut headed = response(400, r#"{"message":"slow down"}"#);
        headed.headers_mut().insert(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
        );
        let headed = json_answer(&headed).unwrap_err();
        assert_eq!(
            headed.as_operation_error().unwrap().code(),
            Some("ThrottlingException")
        );
        let bare = json_answer(&response(502, "bad gateway")).unwrap_err();
        assert_eq!(bare.as_operation_error().unwrap().code(), None);
    }

    #[test]
    fn a_request_is_the_form_encoded_action_version_and_parameters() {
        let mut params = list_params("VpcId", ["vpc-1", "vpc 2&"]);
        params.push((
            "Filter.1.Name".into(),
            "tag:aws:cloudformation:stack-name".into(),
        ));
        let r = request("DescribeVpcs", "2016-11-15", &params).unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(
            r.headers().get("content-type"),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
        assert_eq!(
            std::str::from_utf8(r.body().bytes().unwrap()).unwrap(),
            "Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-1&VpcId.2=vpc+2%26&Filter.1.Name=tag%3Aaws%3Acloudformation%3Astack-name"
        );
    }

    #[test]
    fn endpoints_by_partition() {
        assert_eq!(
            regional_endpoint("ec2", "eu-west-1"),
            "https://ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_endpoint("ec2", "cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn lists_are_item_children_in_any_namespace() {
        let doc = roxmltree::Document::parse(
            r#"<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><vpcSet><item><vpcId>a</vpcId></item><item><vpcId>b</vpcId></item></vpcSet></R>"#,
        )
        .unwrap();
        let ids: Vec<_> = items(doc.root_element(), "vpcSet")
            .filter_map(|i| child_text(i, "vpcId"))
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(items(doc.root_element(), "subnetSet").count(), 0);
    }
}
