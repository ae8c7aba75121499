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
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
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
