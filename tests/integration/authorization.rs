//! Who may do what, through the command and query functions over memory stores: for every
//! route, a principal B on principal A's account is told it does not exist (404), a caller
//! without the route's scope is forbidden (403), one without credentials is unauthenticated
//! (401); none of them writes anything or sees any of A's data. Owners and operators keep
//! everything they could do; idempotency keys are per principal.

use std::sync::Arc;

use bank::access::{OPERATOR, READ, WRITE};
use bank::service::BankingService;
use eventfold::command::CommandService;
use eventfold::identity::Principal;
use eventfold::lambda::aws_lambda_events::encodings::Body;
use eventfold::lambda::command_api::CommandApi;
use eventfold::lambda::query_api::QueryApi;
use eventfold::problem::HIDDEN_DETAIL;
use eventfold::projection::{MemoryReadModel, StreamProjector};
use eventfold::store::{EventStore, MemorySnapshots, MemoryStore};
use eventfold::testing::request::request;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";

fn user(subject: &str, scopes: &[&str]) -> Principal {
    Principal::jwt(ISSUER, subject, scopes.iter().copied())
}

struct Bank {
    store: Arc<MemoryStore>,
    read_model: Arc<MemoryReadModel>,
    commands: CommandApi<BankingService>,
    queries: QueryApi,
}

#[derive(Debug)]
struct Answer {
    status: i64,
    body: Value,
}

impl Answer {
    fn hidden(&self) {
        assert_eq!(self.status, 404, "{self:?}");
        assert_eq!(self.body["detail"], json!(HIDDEN_DETAIL), "{self:?}");
    }
}

impl Bank {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let read_model = Arc::new(MemoryReadModel::new(bank::names::accounts::ACCOUNT_ID));
        let keys = bank::testing::subject_keys();
        let service = || {
            CommandService::new(store.clone())
                .with_snapshots(Arc::new(MemorySnapshots::new()))
                .with_subject_keys(keys.clone())
        };
        Self {
            commands: command_api::api(BankingService::new(service(), bank::testing::claim_key())),
            queries: query_api::api(
                service(),
                read_model.clone(),
                keys.clone(),
                Arc::new(eventfold::feed::MemoryFeed::new(4)),
            ),
            store,
            read_model,
        }
    }

    async fn post(
        &self,
        who: Option<&Principal>,
        route: &str,
        params: &[(&str, &str)],
        body: Value,
        key: Option<&str>,
    ) -> Answer {
        let mut builder = request("POST", route).json(&body);
        for (name, value) in params {
            builder = builder.path_param(name, value);
        }
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        if let Some(who) = who {
            builder = builder.principal(who);
        }
        answer(self.commands.respond(builder.api_request()).await)
    }

    async fn get(&self, who: Option<&Principal>, route: &str, params: &[(&str, &str)]) -> Answer {
        let mut builder = request("GET", route);
        for (name, value) in params {
            builder = builder.path_param(name, value);
        }
        if let Some(who) = who {
            builder = builder.principal(who);
        }
        answer(self.queries.respond(builder.api_request()).await)
    }

    /// Registers `who` as a bank user (their user id is their subject).
    async fn register(&self, who: &Principal) {
        let email = format!("{}@example.com", who.subject());
        let registered = self
            .post(
                Some(who),
                "/users",
                &[],
                json!({ "email": email, "name": "Someone" }),
                None,
            )
            .await;
        assert_eq!(registered.status, 201, "{registered:?}");
    }

    async fn open(&self, who: &Principal) -> String {
        let opened = self
            .post(
                Some(who),
                "/accounts",
                &[],
                json!({ "owner": "Ada", "currency": "EUR" }),
                None,
            )
            .await;
        assert_eq!(opened.status, 201, "{opened:?}");
        opened.body["id"].as_str().unwrap().to_owned()
    }

    async fn events(&self) -> usize {
        self.store.all_events().unwrap().len()
    }

    fn stream_ids(&self) -> std::collections::BTreeSet<eventfold::StreamId> {
        let events = self.store.all_events().unwrap();
        events.into_iter().map(|e| e.stream_id).collect()
    }

    /// Projects every account stream into the read model, as the projector function would.
    async fn project(&self) {
        let projector = bank::accounts_projector(self.read_model.clone(), self.store.clone());
        for stream in self.stream_ids() {
            let events = self.store.read_all(&stream, 1).await.unwrap();
            projector
                .project_stream(&events)
                .await
                .into_result()
                .unwrap();
        }
    }
}

fn answer(response: aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> Answer {
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Answer {
        status: response.status_code,
        body,
    }
}

#[tokio::test]
async fn nobody_acts_on_or_reads_what_is_not_theirs() {
    let bank = Bank::new();
    let ada = user("ada", &[READ, WRITE]);
    let bob = user("bob", &[READ, WRITE]);
    bank.register(&ada).await;
    bank.register(&bob).await;
    let a = bank.open(&ada).await;
    let b = bank.open(&bob).await;
    let deposited = bank
        .post(
            Some(&ada),
            "/accounts/{id}/deposits",
            &[("id", &a)],
            json!({ "amount": 500 }),
            None,
        )
        .await;
    assert_eq!(deposited.status, 200, "{deposited:?}");
    bank.project().await;
    let written = bank.events().await;

    // Every command route, by Bob on Ada's account: as if it did not exist.
    let attempts = [
        ("/accounts/{id}/deposits", json!({ "amount": 1 })),
        ("/accounts/{id}/withdrawals", json!({ "amount": 1 })),
        ("/accounts/{id}/close", json!({})),
    ];
    for (route, body) in &attempts {
        bank.post(Some(&bob), route, &[("id", &a)], body.clone(), None)
            .await
            .hidden();
        // Pinned to a version, Bob learns no version either.
        let mut builder = request("POST", route)
            .path_param("id", &a)
            .json(body)
            .header("if-match", "\"7\"")
            .principal(&bob);
        builder = builder.header("idempotency-key", "pinned");
        answer(bank.commands.respond(builder.api_request()).await).hidden();
    }
    let stolen = bank
        .post(
            Some(&bob),
            "/transfers",
            &[],
            json!({ "from": a, "to": b, "amount": 100 }),
            None,
        )
        .await;
    stolen.hidden();
    // A never-opened account answers Bob exactly as Ada's does.
    let none = bank
        .post(
            Some(&bob),
            "/accounts/{id}/deposits",
            &[("id", "nobody")],
            json!({ "amount": 1 }),
            None,
        )
        .await;
    none.hidden();
    assert_eq!(none.body["title"], stolen.body["title"]);

    // Every read route, by Bob on Ada's account.
    bank.get(Some(&bob), "/accounts/{id}", &[("id", &a)])
        .await
        .hidden();
    bank.get(Some(&bob), "/accounts/{id}/state", &[("id", &a)])
        .await
        .hidden();
    let stream = format!("Account-{a}");
    bank.get(
        Some(&bob),
        "/streams/{stream_id}/events",
        &[("stream_id", &stream)],
    )
    .await
    .hidden();
    bank.get(
        Some(&bob),
        "/streams/{stream_id}/verify",
        &[("stream_id", &stream)],
    )
    .await
    .hidden();
    assert_eq!(bank.events().await, written, "nothing was written");

    // Without the route's scope: 403; without credentials: 401; nothing written.
    let reader = user("bob", &[READ]);
    let forbidden = bank
        .post(
            Some(&reader),
            "/accounts/{id}/deposits",
            &[("id", &b)],
            json!({ "amount": 1 }),
            None,
        )
        .await;
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert_eq!(
        forbidden.body["type"]
            .as_str()
            .map(|t| t.ends_with("/forbidden")),
        Some(true)
    );
    let writer_only = user("ada", &[WRITE]);
    assert_eq!(
        bank.get(Some(&writer_only), "/accounts/{id}", &[("id", &a)])
            .await
            .status,
        403
    );
    for (route, params) in [
        ("/accounts/{id}", vec![("id", a.as_str())]),
        ("/accounts/{id}/state", vec![("id", a.as_str())]),
        (
            "/streams/{stream_id}/events",
            vec![("stream_id", stream.as_str())],
        ),
    ] {
        let anonymous = bank.get(None, route, &params).await;
        assert_eq!(anonymous.status, 401, "{route}: {anonymous:?}");
        assert!(anonymous.body.get("balance").is_none());
    }
    let anonymous = bank
        .post(
            None,
            "/accounts/{id}/deposits",
            &[("id", &a)],
            json!({ "amount": 1 }),
            None,
        )
        .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(bank.events().await, written, "nothing was written");

    // The owner still reads everything of hers; her raw events come without metadata.
    let row = bank.get(Some(&ada), "/accounts/{id}", &[("id", &a)]).await;
    assert_eq!(
        (row.status, &row.body["balance"]),
        (200, &json!(500)),
        "{row:?}"
    );
    let state = bank
        .get(Some(&ada), "/accounts/{id}/state", &[("id", &a)])
        .await;
    assert_eq!(
        (state.status, &state.body["balance"]),
        (200, &json!(500)),
        "{state:?}"
    );
    let events = bank
        .get(
            Some(&ada),
            "/streams/{stream_id}/events",
            &[("stream_id", &stream)],
        )
        .await;
    assert_eq!(events.status, 200, "{events:?}");
    assert_eq!(events.body["events"][0]["metadata"], json!({}));
    assert_eq!(
        bank.get(
            Some(&ada),
            "/streams/{stream_id}/verify",
            &[("stream_id", &stream)]
        )
        .await
        .status,
        404,
        "verification is an operator's"
    );
    // A transfer may go to anyone's open account.
    let paid = bank
        .post(
            Some(&ada),
            "/transfers",
            &[],
            json!({ "from": a, "to": b, "amount": 100 }),
            None,
        )
        .await;
    assert_eq!(paid.status, 201, "{paid:?}");

    // An operator reads and acts on every account, with metadata, and verifies.
    let ops = user("ops", &[READ, WRITE, OPERATOR]);
    let by_ops = bank
        .post(
            Some(&ops),
            "/accounts/{id}/deposits",
            &[("id", &a)],
            json!({ "amount": 1 }),
            None,
        )
        .await;
    assert_eq!(by_ops.status, 200, "{by_ops:?}");
    let seen = bank
        .get(
            Some(&ops),
            "/streams/{stream_id}/events",
            &[("stream_id", &stream)],
        )
        .await;
    assert_eq!(
        seen.body["events"][0]["metadata"]["actor"],
        json!("ada"),
        "the actor is the owner's subject"
    );
    let verified = bank
        .get(
            Some(&ops),
            "/streams/{stream_id}/verify",
            &[("stream_id", &stream)],
        )
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    // Categories outside the allow-list are nobody's to read: email claims are on no list.
    let claims: Vec<_> = bank
        .stream_ids()
        .into_iter()
        .filter(|s| s.category() == bank::service::EMAIL_CLAIM_CATEGORY)
        .collect();
    assert_eq!(claims.len(), 2);
    for claim in &claims {
        bank.get(
            Some(&ops),
            "/streams/{stream_id}/events",
            &[("stream_id", claim.as_str())],
        )
        .await
        .hidden();
    }
    bank.get(
        Some(&ops),
        "/streams/{stream_id}/events",
        &[("stream_id", "Secret-1")],
    )
    .await
    .hidden();
}

#[tokio::test]
async fn the_same_idempotency_key_from_two_principals_is_two_commands() {
    let bank = Bank::new();
    let ada = user("ada", &[READ, WRITE]);
    let bob = user("bob", &[READ, WRITE]);
    bank.register(&ada).await;
    bank.register(&bob).await;
    let first = bank
        .post(
            Some(&ada),
            "/accounts",
            &[],
            json!({ "owner": "Ada", "currency": "EUR" }),
            Some("k-1"),
        )
        .await;
    let second = bank
        .post(
            Some(&bob),
            "/accounts",
            &[],
            json!({ "owner": "Ada", "currency": "EUR" }),
            Some("k-1"),
        )
        .await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_ne!(
        first.body["id"], second.body["id"],
        "two accounts, not a replay"
    );
    let again = bank
        .post(
            Some(&ada),
            "/accounts",
            &[],
            json!({ "owner": "Ada", "currency": "EUR" }),
            Some("k-1"),
        )
        .await;
    assert_eq!(
        again.body["id"], first.body["id"],
        "Ada's own repeat replays hers"
    );
    assert_eq!(
        bank.events().await,
        2 + 4,
        "two accounts, after two users and their claims"
    );
}
