//! The orders service over HTTP, both ways it runs off AWS: on the local runner, as `make local`
//! runs it (each function's binary through a local Lambda Runtime API), and as `make
//! deploy-local` deploys it (CloudFormation on the emulator, which runs the functions, its JWT
//! authorizer checking tokens). Callers are users of the service's Cognito pool. Both read
//! models follow from the events stream.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventfold_cli::local::service::{DeployedService, LocalService, emulator_endpoint};
use orders_functions::{OPERATOR, READ, WRITE};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The API at `base`, called by the bearer of `token`.
#[derive(Clone)]
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if body.is_some() {
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, Some(body)).await
    }

    /// Polls `path` until its answer has `field` at `value`.
    async fn eventually(&self, path: &str, field: &str, value: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.send("GET", path, None).await;
            if status == 200 && &body[field] == value {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never had {field} = {value}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// An order through its life, and what each read model says of it; its id.
async fn an_order_through_its_life(api: &Api) -> String {
    let customer = format!("c{}", &uuid_like());
    let (status, created) = api.post("/orders", &json!({"customer": customer})).await;
    assert_eq!(status, 201, "{created}");
    let order = created["id"].as_str().expect("an id").to_owned();
    let at = |path: &str| format!("/orders/{order}{path}");
    let item = json!({"sku": "BOOK-1", "quantity": 2, "unit_price": 1250});
    assert_eq!(api.post(&at("/items"), &item).await.0, 200);
    // Values are checked where they are parsed: a bad SKU is a 400 and writes nothing.
    let bad = json!({"sku": "no good", "quantity": 1, "unit_price": 1});
    let (status, problem) = api.post(&at("/items"), &bad).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(api.post(&at("/place"), &json!({})).await.0, 200);
    let (status, problem) = api.post(&at("/pay"), &json!({"amount": 1})).await;
    assert_eq!(
        (status, problem["total"].clone()),
        (422, json!(2500)),
        "{problem}"
    );
    let (status, paid) = api.post(&at("/pay"), &json!({"amount": 2500})).await;
    assert_eq!((status, paid["version"].clone()), (200, json!(4)), "{paid}");
    let (status, problem) = api.post(&at("/items"), &item).await;
    assert_eq!(status, 409, "no longer a draft: {problem}");

    let row = api.eventually(&at(""), "version", &json!(4)).await;
    assert_eq!(
        (row["status"].clone(), row["total"].clone()),
        (json!("paid"), json!(2500))
    );
    let listed = api
        .eventually(
            &format!("/customers/{customer}/orders"),
            "spent",
            &json!(2500),
        )
        .await;
    assert_eq!(listed["placed"], json!(1));
    assert_eq!(
        listed["orders"][&order]["status"],
        json!("paid"),
        "{listed}"
    );
    let (status, state) = api.send("GET", &at("/state?as_of=2"), None).await;
    assert_eq!(
        (status, state["total"].clone()),
        (200, json!(2500)),
        "{state}"
    );
    order
}

/// The global feed holds the order's four events once each, in version order; only an
/// operator reads it.
async fn the_feed_holds(clerk: &Api, operator: &Api, order: &str) {
    assert_eq!(clerk.send("GET", "/feed", None).await.0, 403);
    let stream = format!("Order-{order}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut versions = Vec::new();
    let mut path = "/feed?limit=1000".to_owned();
    while versions.len() < 4 {
        let (status, page) = operator.send("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().expect("entries");
        versions.extend(
            entries
                .iter()
                .filter(|e| e["stream_id"] == json!(stream))
                .map(|e| e["version"].as_u64().expect("a version")),
        );
        path = format!(
            "/feed?limit=1000&after={}",
            page["next"].as_str().expect("next")
        );
        if entries.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{stream} in the feed: {versions:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert_eq!(versions, [1, 2, 3, 4]);
}

/// Places an order of one item; its id.
async fn placed_order(api: &Api) -> String {
    let customer = format!("c{}", &uuid_like());
    let (status, created) = api.post("/orders", &json!({"customer": customer})).await;
    assert_eq!(status, 201, "{created}");
    let order = created["id"].as_str().expect("an id").to_owned();
    let item = json!({"sku": "BOOK-1", "quantity": 1, "unit_price": 700});
    assert_eq!(
        api.post(&format!("/orders/{order}/items"), &item).await.0,
        200
    );
    assert_eq!(
        api.post(&format!("/orders/{order}/place"), &json!({}))
            .await
            .0,
        200
    );
    order
}

/// The unpaid-orders reactor (`UnpaidAfterSeconds` = `after`): an order left unpaid is
/// cancelled once its time is up (within `within` after it), and one paid in time stays paid.
async fn unpaid_orders_are_cancelled(api: &Api, after: Duration, within: Duration) {
    let unpaid = placed_order(api).await;
    let placed_at = Instant::now();
    let paid = placed_order(api).await;
    let (status, body) = api
        .post(&format!("/orders/{paid}/pay"), &json!({"amount": 700}))
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = placed_at + after + within;
    let took = loop {
        let (status, state) = api
            .send("GET", &format!("/orders/{unpaid}/state"), None)
            .await;
        assert_eq!(status, 200, "{state}");
        if state["status"] == json!("cancelled") {
            break placed_at.elapsed();
        }
        assert!(Instant::now() < deadline, "{unpaid} still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        took >= after,
        "cancelled after {took:?}, before its {after:?}"
    );
    // The paid one's timer was cancelled by its payment: it is still paid well after.
    tokio::time::sleep(after.saturating_sub(placed_at.elapsed()) + Duration::from_secs(2)).await;
    let (_, state) = api
        .send("GET", &format!("/orders/{paid}/state"), None)
        .await;
    assert_eq!(state["status"], json!("paid"), "{state}");
}

/// A customer id of this run's own.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}x{nanos}", std::process::id())
}

#[tokio::test]
async fn on_the_local_runner() {
    let binaries = Path::new(env!("CARGO_BIN_EXE_orders-command-api"))
        .parent()
        .expect("the binaries' folder");
    let parameters = [("UnpaidAfterSeconds".to_owned(), "2".to_owned())].into();
    let service = LocalService::start_with(
        &root().join("infra/template.yaml"),
        binaries,
        &emulator_endpoint(),
        &parameters,
    )
    .await
    .expect("the local service starts");
    let token = service
        .token("clerk", &[READ, WRITE])
        .await
        .expect("a token");
    let api = Api {
        base: service.url(),
        token,
        http: reqwest::Client::new(),
    };
    let order = an_order_through_its_life(&api).await;
    let operator = Api {
        token: service.token("ops", &[OPERATOR]).await.expect("a token"),
        ..api.clone()
    };
    the_feed_holds(&api, &operator, &order).await;
    unpaid_orders_are_cancelled(&api, Duration::from_secs(2), Duration::from_secs(20)).await;

    // An order placed, then the runner stopped and started again (its functions' processes
    // killed) before or after its timer was set: what the reactor had done is in the tables, and
    // it goes on from its checkpoint; the order is cancelled once.
    let unpaid = placed_order(&api).await;
    let service = service
        .restart(binaries, &emulator_endpoint())
        .await
        .expect("restarted");
    let api = Api {
        base: service.url(),
        ..api
    };
    // The killed reactor gave no partition up: the restarted one takes them when their leases
    // end (30 s), then goes on from the checkpoint.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, state) = api
            .send("GET", &format!("/orders/{unpaid}/state"), None)
            .await;
        if state["status"] == json!("cancelled") {
            break;
        }
        assert!(Instant::now() < deadline, "{unpaid} still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, state) = api
        .send("GET", &format!("/orders/{unpaid}/state"), None)
        .await;
    assert_eq!(
        state["version"],
        json!(4),
        "placed, then cancelled once: {state}"
    );
    service.stop().await;
}

#[tokio::test]
async fn on_the_deployed_stack() {
    let endpoint = emulator_endpoint();
    // Orders wait 2 s for their payment; the emulator fires the reactor's schedule a minute
    // after the stack is made, as EventBridge does.
    let parameters = ["--parameter".to_owned(), "UnpaidAfterSeconds=2".to_owned()];
    let deployed = tokio::task::spawn_blocking(move || {
        DeployedService::deploy_with(&root(), &endpoint, &parameters)
    })
    .await
    .expect("deploys")
    .expect("make deploy-local's script deploys the stack");
    let token = deployed
        .token("clerk", &[READ, WRITE])
        .await
        .expect("a token");
    let api = Api {
        base: deployed.api.clone(),
        token,
        http: reqwest::Client::new(),
    };
    let order = an_order_through_its_life(&api).await;
    let operator = Api {
        token: deployed.token("ops", &[OPERATOR]).await.expect("a token"),
        ..api.clone()
    };
    the_feed_holds(&api, &operator, &order).await;
    unpaid_orders_are_cancelled(&api, Duration::from_secs(2), Duration::from_secs(120)).await;
}
