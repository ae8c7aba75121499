//! SigV4 signatures for the few AWS calls made without an SDK client: Lambda's `Invoke` from the
//! operator commands, and requests to an API Gateway whose routes need IAM authorization.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

/// A request to sign: method, URL, the headers that are part of it, and its body.
#[derive(Clone, Copy, Debug)]
pub struct Signable<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Headers sent and signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers that sign `request` for `service` (`lambda`, `execute-api`) in `region`.
pub fn sigv4_headers(
    request: Signable<'_>,
    credentials: Credentials,
    region: &str,
    service: &str,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        // S3 wants the payload's hash in a header of its own, and signed.
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("signing {} {}: {e}", request.method, request.url))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| format!("signing {} {}: {e}", request.method, request.url))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing {} {}: {e}", request.method, request.url))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// The emulator's stand-in credentials (it checks that a signature is there, not whose).
pub fn emulator_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "emulator")
}

/// A request sent signed with the SDK configuration's credentials and region: the few calls
/// the CLI makes without an SDK client (Lambda's `Invoke`, Cognito's and KMS's JSON APIs).
#[derive(Clone, Debug)]
pub struct SignedClient {
    sdk: std::sync::Arc<aws_config::SdkConfig>,
    http: reqwest::Client,
}

impl SignedClient {
    /// A client over `sdk`'s credentials, region and endpoint.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sdk: std::sync::Arc::new(sdk.clone()),
            http: reqwest::Client::new(),
        }
    }

    /// The region requests are signed for (`us-east-1` when none is configured).
    pub fn region(&self) -> &str {
        self.sdk.region().map_or("us-east-1", |r| r.as_ref())
    }

    /// The endpoint of `service`: the configured one (an emulator), else AWS's own.
    pub fn endpoint(&self, service: &str) -> String {
        self.sdk.endpoint_url().map_or_else(
            || format!("https://{service}.{}.amazonaws.com", self.region()),
            |url| url.trim_end_matches('/').to_owned(),
        )
    }

    /// Sends `body` to `url` by `method`, signed for `service`.
    pub async fn send(
        &self,
        service: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, String> {
        use aws_credential_types::provider::ProvideCredentials;
        let credentials = self
            .sdk
            .credentials_provider()
            .ok_or("no AWS credentials configured")?
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {e}"))?;
        let signed = sigv4_headers(
            Signable {
                method,
                url,
                headers,
                body: &body,
            },
            credentials,
            self.region(),
            service,
        )?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.http.request(method, url).body(body);
        for (header, value) in headers {
            request = request.header(*header, *value);
        }
        for (header, value) in &signed {
            request = request.header(header, value);
        }
        request.send().await.map_err(|e| format!("{url}: {e}"))
    }

    /// One call of an AWS JSON-protocol API (Cognito user pools, KMS): `target` is the
    /// `X-Amz-Target` (`AWSCognitoIdentityProviderService.AdminCreateUser`); an error answer is
    /// an [`AwsError`] with the service's code.
    pub async fn call_json(
        &self,
        service: &str,
        target: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, AwsError> {
        let url = format!("{}/", self.endpoint(service));
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let response = self
            .send(
                service,
                "POST",
                &url,
                &headers,
                input.to_string().into_bytes(),
            )
            .await
            .map_err(|message| AwsError {
                operation: operation.clone(),
                code: None,
                message,
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| AwsError {
            operation: operation.clone(),
            code: None,
            message: e.to_string(),
        })?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status.is_success() {
            return Ok(value);
        }
        let code = value
            .get("__type")
            .or_else(|| value.get("code"))
            .and_then(serde_json::Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("{status}"), str::to_owned);
        Err(AwsError {
            operation,
            code,
            message,
        })
    }
}

/// An AWS API's refusal: the operation, the service's error code, its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct AwsError {
    /// The operation called.
    pub operation: String,
    /// The error code (`UsernameExistsException`), absent when nothing answered.
    pub code: Option<String>,
    /// What the service (or the transport) said.
    pub message: String,
}

impl AwsError {
    /// Whether the service answered with `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}
