//! The API Gateway HTTP API (payload 2.0) event for an HTTP request, built as API Gateway
//! builds it: what the local runner sends its functions, and what the test kit's requests
//! are made of, so the two cannot drift apart.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use base64::Engine;
use http::HeaderMap;
use http::header::HeaderValue;

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn decode_query_component(text: &str) -> String {
    percent_decode(&text.replace('+', " ")).unwrap_or_else(|| text.to_owned())
}

/// The event API Gateway sends for a request matched to `route_key` with these path
/// parameters: repeated headers and query parameters joined with commas, cookies split out, a
/// body that is not UTF-8 base64-encoded.
pub fn gateway_event(
    route_key: &str,
    params: BTreeMap<String, String>,
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
) -> ApiGatewayV2httpRequest {
    let now = chrono::Utc::now();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == "cookie" {
            cookies.extend(values.iter().flat_map(|v| v.split("; ")).map(str::to_owned));
            continue;
        }
        // API Gateway joins repeated headers with commas.
        if let Ok(value) = HeaderValue::from_str(&values.join(",")) {
            headers.insert(name.clone(), value);
        }
    }
    let mut query = BTreeMap::<String, Vec<String>>::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(decode_query_component(key))
            .or_default()
            .push(decode_query_component(value));
    }
    let mut http_description = ApiGatewayV2httpRequestContextHttpDescription::default();
    http_description.method = parts.method.clone();
    http_description.path = Some(parts.uri.path().to_owned());
    http_description.protocol = Some("HTTP/1.1".into());
    http_description.source_ip = Some(peer.ip().to_string());
    http_description.user_agent = parts
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    context.account_id = Some("000000000000".into());
    context.stage = Some("$default".into());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.apiid = Some("local".into());
    context.domain_name = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    context.time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.time_epoch = now.timestamp_millis();
    context.http = http_description;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route_key.to_owned());
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(raw_query);
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = query
        .into_iter()
        .map(|(k, v)| (k, v.join(",")))
        .collect::<HashMap<_, _>>()
        .into();
    event.path_parameters = params.into_iter().collect();
    event.request_context = context;
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    event
}
