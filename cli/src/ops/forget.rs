//! `forget`: erase a person, through the service's own forget route, as an operator.
//!
//! Forgetting is the domain's to record (the bank's `UserForgotten`) and the library's to
//! carry out (the subject's key deleted, so every sealed field reads as erased); the CLI knows
//! neither. It finds the route that does it — the one `DELETE` route with a single path
//! parameter whose function holds subjects' keys — and invokes that route's function directly,
//! as API Gateway would, with the operator's IAM identity (the caller of `aws sts
//! get-caller-identity` on a stack, the local operator on a local environment): the function's
//! rules, its events and its answer are the same as over HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayV2httpResponse,
};
use eventfold::names::env;

use super::invoke::Invoker;
use super::{OpsError, Target, confirm, say};
use crate::local::template::{RouteSpec, Template};

/// The route that forgets a subject: one `DELETE` route with a single path parameter, on a
/// function whose environment names the subjects' keys table.
pub fn forget_route(template: &Template) -> Result<&RouteSpec, OpsError> {
    let holds_keys = |function: &str| {
        template.functions.iter().any(|f| {
            f.logical_id == function && f.environment.contains_key(env::SUBJECT_KEYS_TABLE)
        })
    };
    let routes: Vec<&RouteSpec> = template
        .routes
        .iter()
        .filter(|route| {
            route.method == "DELETE"
                && route.path.matches('{').count() == 1
                && holds_keys(&route.function)
        })
        .collect();
    match routes.as_slice() {
        [route] => Ok(route),
        [] => Err(OpsError::new(
            "this service forgets nobody: its template has no DELETE route with one path \
             parameter on a function that holds subjects' keys (SUBJECT_KEYS_TABLE)",
        )),
        several => Err(OpsError::new(format!(
            "this service has {} routes that could forget ({}); forget through the API",
            several.len(),
            several
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Forgets `subject` (asks first): the route's answer, said; an error unless it succeeded.
pub async fn forget(target: &Target, subject: &str, yes: bool) -> Result<(), OpsError> {
    let route = forget_route(&target.template)?;
    if subject.is_empty() || subject.contains(['/', '?', '#']) {
        return Err(OpsError::new(format!("{subject:?} is not a subject")));
    }
    confirm(
        &format!(
            "forget {subject} in {}: their personal data becomes unreadable everywhere, for good",
            target.label
        ),
        yes,
    )?;
    let operator = operator_arn(&target.invoker).await?;
    let (name, _) = route
        .path
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .ok_or_else(|| OpsError::new(format!("{}: no path parameter", route.path)))?;
    let path = route.path.replace(&format!("{{{name}}}"), subject);
    let route_key = format!("{} {}", route.method, route.path);
    let request = http::Request::builder()
        .method(route.method.as_str())
        .uri(&path)
        .body(())
        .map_err(|e| OpsError::new(format!("{route_key} {path}: {e}")))?;
    let (parts, ()) = request.into_parts();
    let mut event = eventfold::lambda::http::gateway_event(
        &route_key,
        BTreeMap::from([(name.to_owned(), subject.to_owned())]),
        &parts,
        &[],
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.user_arn = Some(operator.clone());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    event.request_context.authorizer = Some(authorizer);
    let answer: ApiGatewayV2httpResponse = target
        .invoker
        .invoke(&route.function, &event)
        .await
        .map_err(OpsError::new)?;
    let body = answer
        .body
        .as_ref()
        .map(|body| String::from_utf8_lossy(body).into_owned())
        .unwrap_or_default();
    if (200..300).contains(&answer.status_code) {
        say(&format!(
            "forgot {subject} ({route_key} as {operator}): {}",
            if body.is_empty() { "done" } else { &body }
        ));
        return Ok(());
    }
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
        .unwrap_or(body);
    Err(OpsError::new(format!(
        "{route_key} for {subject} answered {}: {detail}",
        answer.status_code
    )))
}

/// Who the operator is: their AWS identity on a stack; the local operator otherwise.
async fn operator_arn(invoker: &Invoker) -> Result<String, OpsError> {
    let Invoker::Deployed { client, .. } = invoker else {
        return Ok(crate::local::gateway::LOCAL_OPERATOR.to_owned());
    };
    let answer = client
        .send(
            "sts",
            "POST",
            &format!("{}/", client.endpoint("sts")),
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
        )
        .await
        .map_err(OpsError::new)?;
    let status = answer.status();
    let xml = answer
        .text()
        .await
        .map_err(|e| OpsError::new(e.to_string()))?;
    super::anchor::element(&xml, "Arn")
        .filter(|_| status.is_success())
        .ok_or_else(|| OpsError::new(format!("GetCallerIdentity answered {status}: {xml}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bank_forgets_through_its_delete_user_route() {
        let template = Template::parse(include_str!("../../../infra/template.yaml"))
            .expect("the bank's template");
        let route = forget_route(&template).expect("one route");
        assert_eq!(
            (route.method.as_str(), route.path.as_str()),
            ("DELETE", "/users/{id}")
        );
    }
}
