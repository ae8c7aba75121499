//! The operator commands on this service, as `orders-ops` runs them: a rebuild replays the
//! events table through this service's own projector function into both read models, and a
//! backfill snapshots through its own snapshot function; the CLI knows nothing of orders.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfold_cli::local::service::{LocalService, emulator_endpoint};
use eventfold_cli::ops::{Target, rebuild, snapshots};
use orders_functions::{READ, WRITE};
use serde_json::{Value, json};

async fn get(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers");
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn until(url: &str, token: &str, field: &str, value: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(url, token).await;
        if status == 200 && &body[field] == value {
            return body;
        }
        assert!(Instant::now() < deadline, "{url}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rebuild_and_backfill_drive_this_services_functions() {
    let binaries = Path::new(env!("CARGO_BIN_EXE_orders-command-api"))
        .parent()
        .expect("the binaries' folder");
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let endpoint = emulator_endpoint();
    let service = LocalService::start(&template, binaries, &endpoint)
        .await
        .expect("the local service starts");
    let base = service.url();
    let token = service
        .token("clerk", &[READ, WRITE])
        .await
        .expect("a token");
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let mut orders = Vec::new();
    for n in 0..3 {
        let created: Value = post("/orders".into(), json!({"customer": "rebuilt"}))
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id").to_owned();
        let item = json!({"sku": "KIT-1", "quantity": n + 1, "unit_price": 100});
        post(format!("/orders/{id}/items"), item)
            .await
            .expect("answers");
        orders.push(id);
    }
    let mut before = Vec::new();
    for id in &orders {
        before.push(until(&format!("{base}/orders/{id}"), &token, "version", &json!(2)).await);
    }
    let customer = until(
        &format!("{base}/customers/rebuilt/orders"),
        &token,
        "placed",
        &json!(0),
    )
    .await;

    let target = Target::for_resources(
        Arc::new(service.template.clone()),
        &service.resources,
        &service.clients,
        binaries.to_path_buf(),
        &endpoint,
    )
    .expect("the operator's view of this environment");
    let report = rebuild::rebuild(&target, "orders", true)
        .await
        .expect("rebuilt");
    assert!(report.events >= 6, "{report:?}");
    for (id, row) in orders.iter().zip(&before) {
        let (status, again) = get(&format!("{base}/orders/{id}"), &token).await;
        assert_eq!((status, &again), (200, row), "the rebuilt row is the row");
    }
    let (_, listed) = get(&format!("{base}/customers/rebuilt/orders"), &token).await;
    assert_eq!(
        listed["orders"], customer["orders"],
        "and the customer's row too"
    );

    let backfilled = snapshots::backfill(&target, "Order")
        .await
        .expect("backfilled");
    assert_eq!((backfilled.streams, backfilled.written), (3, 3));
    let again = snapshots::backfill(&target, &format!("Order-{}", orders[0]))
        .await
        .expect("again");
    assert_eq!(
        (again.streams, again.written),
        (1, 0),
        "a current snapshot is kept"
    );

    // Placing an order sets its unpaid-orders timer, half an hour off: the operator sees it.
    post(format!("/orders/{}/place", orders[0]), json!({}))
        .await
        .expect("answers");
    let deadline = Instant::now() + Duration::from_secs(30);
    let timers = loop {
        let timers = eventfold_cli::ops::timers::list(&target, Some("unpaid-orders"))
            .await
            .expect("listed");
        if !timers.is_empty() || Instant::now() > deadline {
            break timers;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0].key, format!("unpaid/{}", orders[0]));
    let ahead = timers[0].due - eventfold::envelope::now();
    assert!(ahead.num_seconds() > 25 * 60, "due in {ahead:?}");
    service.stop().await;
}
