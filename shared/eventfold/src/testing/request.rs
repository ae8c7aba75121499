//! API Gateway requests for tests (feature `lambda`), built by the same code the local runner
//! uses for real ones.
//!
//! ```
//! use eventfold::testing::request::request;
//!
//! let event = request("POST", "/accounts/{id}/deposits")
//!     .path_param("id", "a-1")
//!     .json(&serde_json::json!({ "amount": 100 }))
//!     .header("idempotency-key", "k-1")
//!     .build();
//! assert_eq!(event.raw_path.as_deref(), Some("/accounts/a-1/deposits"));
//! assert_eq!(event.route_key.as_deref(), Some("POST /accounts/{id}/deposits"));
//! assert_eq!(event.headers["content-type"], "application/json");
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
};

use crate::identity::Principal;

use crate::lambda::http::{ApiRequest, gateway_event};

/// A request to build: `request("POST", "/accounts/{id}/deposits")`.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: String,
    route: String,
    params: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    caller: Option<Principal>,
}

/// A request for the route `path` (with `{param}` placeholders) by `method`.
pub fn request(method: &str, path: &str) -> RequestBuilder {
    RequestBuilder {
        method: method.to_owned(),
        route: path.to_owned(),
        params: BTreeMap::new(),
        query: Vec::new(),
        headers: Vec::new(),
        body: Vec::new(),
        caller: None,
    }
}

impl RequestBuilder {
    /// Fills the path parameter `name`.
    #[must_use]
    pub fn path_param(mut self, name: &str, value: &str) -> Self {
        self.params.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body, with `Content-Type: application/json`.
    #[must_use]
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A body as given (no content type is set).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The caller, as an IAM authorizer reports it.
    #[must_use]
    pub fn iam_caller(self, arn: &str) -> Self {
        self.principal(&Principal::iam(arn))
    }

    /// The caller, as API Gateway's authorizer reports it: a JWT's claims (`iss`, `sub`,
    /// `scope`), or an IAM caller's ARN.
    #[must_use]
    pub fn principal(mut self, principal: &Principal) -> Self {
        self.caller = Some(principal.clone());
        self
    }

    /// The payload v2 event.
    pub fn build(self) -> ApiGatewayV2httpRequest {
        // The function sees each parameter as given; the raw path carries it encoded.
        let path = self
            .params
            .iter()
            .fold(self.route.clone(), |path, (name, value)| {
                path.replace(&format!("{{{name}}}"), &percent_encode(value))
            });
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
            .collect();
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let (parts, ()) = builder
            .body(())
            .expect("a test request is valid HTTP")
            .into_parts();
        let route_key = format!("{} {}", self.method, self.route);
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut event = gateway_event(&route_key, self.params, &parts, &self.body, peer);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        match self.caller {
            Some(Principal::Iam { arn }) => {
                let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
                iam.user_arn = Some(arn);
                authorizer.iam = Some(iam);
            }
            Some(Principal::Jwt {
                issuer,
                subject,
                scopes,
            }) => {
                let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
                jwt.claims.insert("iss".into(), issuer);
                jwt.claims.insert("sub".into(), subject);
                let scopes: Vec<String> = scopes.into_iter().collect();
                jwt.claims.insert("scope".into(), scopes.join(" "));
                authorizer.jwt = Some(jwt);
            }
            None => {}
        }
        if authorizer.iam.is_some() || authorizer.jwt.is_some() {
            event.request_context.authorizer = Some(authorizer);
        }
        event
    }

    /// The request as a handler sees it.
    pub fn api_request(self) -> ApiRequest {
        ApiRequest::new(self.build())
    }
}

/// Every byte outside RFC 3986's unreserved characters as `%XX`.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
