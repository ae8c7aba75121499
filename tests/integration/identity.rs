//! Who may call the API, over real HTTP with real tokens of the service's user pool, on the
//! local runner (its gateway checks tokens as API Gateway does) and on the stack deployed on
//! the emulator (its API Gateway's JWT authorizer): for every route, a caller without valid
//! credentials is refused (401), a caller without the route's scope is forbidden (403), and a
//! customer trying another customer's account or user is told it does not exist (404); none of
//! them writes anything or sees anything of the other's. Keys are per caller.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventfold_cli::identity::TokenIssuer;
use eventfold_cli::identity::cognito::ClientSettings;
use eventfold_tests::{Api, Caller, Reply, scopes, template};
use serde_json::{Value, json};

/// Each scenario on the runner (fresh resources) and on the deployed stack.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod on_the_runner {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let running = eventfold_tests::TestEnv::new().await.serve().await;
                    super::$scenario(running.api.clone(), super::Gateway::Runner).await;
                    running.stop().await;
                }
            )*
        }
        mod on_the_deployed_stack {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let api = eventfold_tests::deployed::api().await;
                    super::$scenario(api, super::Gateway::Deployed).await;
                }
            )*
        }
    };
}

on_both!(
    every_route_refuses_callers_without_valid_credentials,
    every_route_wants_its_scope,
    a_customer_sees_and_moves_nothing_of_another,
    keys_are_per_caller,
);

/// Which gateway answers: the runner's refusals are problem+json, API Gateway's its own JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gateway {
    Runner,
    Deployed,
}

impl Gateway {
    /// Asserts the gateway's refusal of a request without valid credentials.
    #[track_caller]
    fn unauthorized(self, reply: &Reply, what: &str) {
        assert_eq!(reply.status, 401, "{what}: {reply:?}");
        if self == Gateway::Runner {
            reply.assert_problem(401, "unauthenticated");
        }
        assert_secret_free(reply, what);
    }
}

/// Nothing of an account's owner or balance in an answer.
#[track_caller]
fn assert_secret_free(reply: &Reply, what: &str) {
    let text = reply.body.to_string();
    for secret in [OWNER, "\"balance\"", "\"events\"", "\"payload\""] {
        assert!(!text.contains(secret), "{what} shows {secret}: {reply:?}");
    }
}

/// The owner name of the victim's account: it must appear in no refusal.
const OWNER: &str = "Ada Victim-Owner";

/// One request of every route the template declares, on `account` and `user` (another
/// caller's), with a valid body.
fn every_route(
    account: &str,
    user: &str,
    other_account: &str,
) -> Vec<(&'static str, String, Value)> {
    let requests = vec![
        (
            "POST",
            "/users".to_owned(),
            json!({"email": "victim.twin@example.com", "name": "Twin"}),
        ),
        (
            "POST",
            "/accounts".to_owned(),
            json!({"owner": "X", "currency": "EUR"}),
        ),
        (
            "POST",
            format!("/accounts/{account}/deposits"),
            json!({"amount": 1}),
        ),
        (
            "POST",
            format!("/accounts/{account}/withdrawals"),
            json!({"amount": 1}),
        ),
        ("POST", format!("/accounts/{account}/close"), json!({})),
        (
            "POST",
            format!("/accounts/{account}/standing-orders"),
            json!({"to": other_account, "amount": 1, "every_seconds": 60}),
        ),
        (
            "POST",
            format!("/accounts/{account}/standing-orders/{other_account}/cancel"),
            json!({}),
        ),
        (
            "POST",
            "/transfers".to_owned(),
            json!({"from": account, "to": other_account, "amount": 1}),
        ),
        ("GET", format!("/accounts/{account}"), Value::Null),
        ("GET", format!("/accounts/{account}/state"), Value::Null),
        (
            "GET",
            format!("/streams/Account-{account}/events"),
            Value::Null,
        ),
        (
            "GET",
            format!("/streams/Account-{account}/verify"),
            Value::Null,
        ),
        ("GET", format!("/streams/User-{user}/events"), Value::Null),
        ("GET", format!("/users/{user}"), Value::Null),
        ("DELETE", format!("/users/{user}"), Value::Null),
        ("GET", "/feed".to_owned(), Value::Null),
        ("GET", "/openapi.json".to_owned(), Value::Null),
    ];
    // Every route of the template is here, so a new route cannot go untested.
    for route in &template().routes {
        let tried = requests.iter().any(|(method, path, _)| {
            *method == route.method
                && route.path.split('/').count() == path.split('/').count()
                && route
                    .path
                    .split('/')
                    .zip(path.split('/'))
                    .all(|(want, got)| want.starts_with('{') || want == got)
        });
        assert!(tried, "{} {} is not tried", route.method, route.path);
    }
    requests
}

async fn send(api: &Api, method: &str, path: &str, body: &Value) -> Reply {
    match method {
        "POST" => api.post(path, body, &[]).await,
        "GET" => api.get(path).await,
        other => api.send(other, path, &[], Vec::new()).await,
    }
}

/// The victim: a registered customer with an account holding money, projected.
struct Victim {
    api: Api,
    user: String,
    account: String,
}

async fn victim(api: &Api) -> Victim {
    let victim = api.customer().await;
    let account = victim.open_account(OWNER, "EUR").await;
    victim.deposit(&account, 1_000).await;
    let row = victim
        .eventually(
            &format!("/accounts/{account}"),
            Duration::from_secs(30),
            |r| r.body["version"] == json!(2),
        )
        .await;
    assert_eq!(row.status, 200, "the victim's row is projected: {row:?}");
    let user = subject(&victim);
    Victim {
        api: victim,
        user,
        account,
    }
}

/// The subject of an API's bearer.
fn subject(api: &Api) -> String {
    let Caller::Bearer(token) = api.caller() else {
        panic!("a bearer")
    };
    eventfold_cli::identity::jwt::claims(token).expect("claims")["sub"]
        .as_str()
        .expect("sub")
        .to_owned()
}

/// The victim's account as its owner sees it: its state and its events.
async fn untouched(victim: &Victim) -> (Value, Value) {
    let state = victim
        .api
        .get(&format!("/accounts/{}/state", victim.account))
        .await;
    let events = victim
        .api
        .get(&format!("/streams/Account-{}/events", victim.account))
        .await;
    assert_eq!((state.status, events.status), (200, 200));
    (state.body, events.body)
}

/// A token with its signature changed in one character.
fn tampered(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    bytes[10] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The same claims, unsigned (`alg: none`).
fn unsigned(token: &str) -> String {
    let mut parts = token.split('.');
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts.next().expect("header"))
            .expect("b64"),
    )
    .expect("JSON");
    let none = json!({"alg": "none", "kid": header["kid"], "typ": "JWT"});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none.to_string()),
        parts.next().expect("claims")
    )
}

/// A valid token of another user pool (another issuer), and one of another app client of the
/// service's own pool (another audience), both for users with every scope.
async fn foreign_tokens(api: &Api) -> (String, String) {
    let tokens = api.tokens();
    let cognito = &tokens.cognito;
    let flows = ClientSettings {
        auth_flows: vec!["ALLOW_ADMIN_USER_PASSWORD_AUTH".into()],
        access_token_seconds: None,
    };
    let all: Vec<String> = scopes::OPERATOR.iter().map(|s| (*s).to_owned()).collect();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let other_pool = cognito
        .ensure_pool(&format!("other-{tag}"))
        .await
        .expect("a pool");
    for scope in &all {
        cognito
            .ensure_group(&other_pool, scope)
            .await
            .expect("a group");
    }
    let other_issuer = TokenIssuer {
        client_id: cognito
            .ensure_client(&other_pool, "other", &flows)
            .await
            .expect("a client"),
        pool: other_pool,
        scopes: all.clone(),
    };
    let other_audience = TokenIssuer {
        client_id: cognito
            .ensure_client(&tokens.issuer.pool, &format!("other-{tag}"), &flows)
            .await
            .expect("a client"),
        ..tokens.issuer.clone()
    };
    (
        other_issuer
            .token(cognito, &format!("u-{tag}"), &all)
            .await
            .expect("a token"),
        other_audience
            .token(cognito, &format!("v-{tag}"), &all)
            .await
            .expect("a token"),
    )
}

async fn every_route_refuses_callers_without_valid_credentials(api: Api, gateway: Gateway) {
    let victim = victim(&api).await;
    let before = untouched(&victim).await;
    let valid = api
        .token(
            &format!("u-{}", uuid::Uuid::new_v4().simple()),
            scopes::OPERATOR,
        )
        .await;
    let (other_issuer, other_audience) = foreign_tokens(&api).await;
    let expired = api.expired_token(scopes::OPERATOR).await;
    let credentials = [
        ("no token", Caller::Anonymous),
        ("an expired token", Caller::Bearer(expired)),
        ("another issuer's token", Caller::Bearer(other_issuer)),
        ("another audience's token", Caller::Bearer(other_audience)),
        ("a tampered signature", Caller::Bearer(tampered(&valid))),
        ("alg none", Caller::Bearer(unsigned(&valid))),
        ("a malformed token", Caller::Bearer("not.a-token".into())),
    ];
    let mut refused = 0;
    for (what, caller) in credentials {
        let stranger = api.as_caller(caller);
        for (method, path, body) in every_route(&victim.account, &victim.user, &victim.account) {
            let reply = send(&stranger, method, &path, &body).await;
            gateway.unauthorized(&reply, &format!("{what}: {method} {path}"));
            refused += 1;
        }
    }
    assert_eq!(refused, 7 * (template().routes.len() + 1));
    // The valid token passes where the forged ones did not: the refusals were the forgery's.
    let operator = api.as_caller(Caller::Bearer(valid));
    assert_eq!(
        operator
            .get(&format!("/accounts/{}/state", victim.account))
            .await
            .status,
        200
    );
    assert_eq!(untouched(&victim).await, before, "nothing was written");
}

async fn every_route_wants_its_scope(api: Api, _: Gateway) {
    let victim = victim(&api).await;
    let before = untouched(&victim).await;
    // Each route needs one scope: a caller holding only the other is forbidden everywhere the
    // other does not reach, and a caller holding none is forbidden everywhere.
    let nobody = api.new_user(&[]).await;
    let reader = api.new_user(&[bank::access::READ]).await;
    let writer = api.new_user(&[bank::access::WRITE]).await;
    for (method, path, body) in every_route(&victim.account, &victim.user, &victim.account) {
        let needs_write = method != "GET";
        for (who, caller) in [
            ("no scope", &nobody),
            (
                "the other scope",
                if needs_write { &reader } else { &writer },
            ),
        ] {
            let reply = send(caller, method, &path, &body).await;
            reply.assert_problem(403, "forbidden");
            assert_secret_free(&reply, &format!("{who}: {method} {path}"));
        }
    }
    assert_eq!(untouched(&victim).await, before, "nothing was written");
}

async fn a_customer_sees_and_moves_nothing_of_another(api: Api, _: Gateway) {
    let victim = victim(&api).await;
    let thief = api.customer().await;
    let own = thief.open_account("Thief", "EUR").await;
    thief.deposit(&own, 500).await;
    let before = untouched(&victim).await;
    let mut hidden = 0;
    for (method, path, body) in every_route(&victim.account, &victim.user, &own) {
        let reply = send(&thief, method, &path, &body).await;
        match (method, path.as_str()) {
            // Registering again and opening an account of one's own are the thief's right.
            ("POST", "/users") => reply.assert_problem(409, "already-exists"),
            ("POST", "/accounts") => assert_eq!(reply.status, 201, "{reply:?}"),
            ("GET", "/openapi.json") => assert_eq!(reply.status, 200, "{reply:?}"),
            // The feed is the operators' resource: a customer holds no scope for it.
            ("GET", "/feed") => {
                reply.assert_problem(403, "forbidden");
                assert_secret_free(&reply, "GET /feed");
            }
            _ => {
                reply.assert_problem(404, "not-found");
                assert_eq!(
                    reply.body["detail"],
                    json!(eventfold::problem::HIDDEN_DETAIL),
                    "as if it did not exist"
                );
                assert_secret_free(&reply, &format!("{method} {path}"));
                hidden += 1;
            }
        }
    }
    assert_eq!(hidden, template().routes.len() + 1 - 4);
    // Pinned to a version, the thief learns no version either.
    let pinned = thief
        .post(
            &format!("/accounts/{}/deposits", victim.account),
            &json!({"amount": 1}),
            &[("If-Match", "\"1\"")],
        )
        .await;
    pinned.assert_problem(404, "not-found");
    assert_eq!(untouched(&victim).await, before, "nothing was written");

    // A transfer may go to anyone's open account; the owner and an operator act as before.
    let paid = thief
        .post(
            "/transfers",
            &json!({"from": own, "to": victim.account, "amount": 100}),
            &[],
        )
        .await;
    assert_eq!(paid.status, 201, "{paid:?}");
    let operator = api.operator().await;
    let by_operator = operator
        .post(
            &format!("/accounts/{}/withdrawals", victim.account),
            &json!({"amount": 50}),
            &[],
        )
        .await;
    assert_eq!(by_operator.status, 200, "{by_operator:?}");
    let state = victim
        .api
        .get(&format!("/accounts/{}/state", victim.account))
        .await;
    assert_eq!(state.body["balance"], json!(1_050));
    let verified = operator
        .get(&format!("/streams/Account-{}/verify", victim.account))
        .await;
    assert_eq!(verified.body["ok"], json!(true), "{verified:?}");
}

async fn keys_are_per_caller(api: Api, _: Gateway) {
    let owner = api.customer().await;
    let account = owner.open_account("Keyed", "EUR").await;
    let operator = api.operator().await;
    let key = [("Idempotency-Key", "the-same-key")];
    let path = format!("/accounts/{account}/deposits");
    let body = json!({"amount": 10});
    let first = owner.post(&path, &body, &key).await;
    let second = operator.post(&path, &body, &key).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(second.header("idempotent-replayed"), None, "{second:?}");
    assert_eq!(
        (
            first.body["version"].clone(),
            second.body["version"].clone()
        ),
        (json!(2), json!(3)),
        "two commands, not a replay"
    );
    let again = owner.post(&path, &body, &key).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.body, first.body,
        "the owner's own repeat replays hers"
    );
}
