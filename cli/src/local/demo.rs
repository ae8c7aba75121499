//! The short scenario `make local` runs against the API it just started, printing each call,
//! its answer, and the curl command to repeat it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One call of the demo.
struct Step<'a> {
    method: &'a str,
    path: String,
    body: Option<Value>,
    headers: Vec<(&'a str, String)>,
}

fn curl(base: &str, step: &Step<'_>) -> String {
    let mut line = format!("curl -s -X {} {base}{}", step.method, step.path);
    for (name, value) in &step.headers {
        line.push_str(&format!(" -H '{name}: {value}'"));
    }
    if let Some(body) = &step.body {
        line.push_str(&format!(" -H 'content-type: application/json' -d '{body}'"));
    }
    line
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    step: Step<'_>,
) -> Result<(u16, Value), String> {
    let url = format!("{base}{}", step.path);
    let mut request = match step.method {
        "POST" => client.post(&url),
        _ => client.get(&url),
    };
    for (name, value) in &step.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &step.body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let marker = if replayed {
        "  (Idempotent-Replayed: true)"
    } else {
        ""
    };
    say(&format!(
        "  {} {}  → {status}{marker}\n      {body}",
        step.method, step.path
    ));
    say(&format!("      $ {}", curl(base, &step)));
    Ok((status, body))
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

fn id_of(body: &Value) -> Result<String, String> {
    body["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in {body}"))
}

/// Runs the scenario; returns an error if the API does not behave as documented.
pub async fn run(base: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    say("\nDemo: a user, two accounts, money in and out, a transfer, time travel, integrity.\n");
    let post = |path: String, body: Value| Step {
        method: "POST",
        path,
        body: Some(body),
        headers: Vec::new(),
    };
    let get = |path: String| Step {
        method: "GET",
        path,
        body: None,
        headers: Vec::new(),
    };
    call(
        &client,
        base,
        post(
            "/users".into(),
            json!({"email": format!("ada.{suffix}@example.com"), "name": "Ada Lovelace"}),
        ),
    )
    .await?;
    let (_, ada) = call(
        &client,
        base,
        post(
            "/accounts".into(),
            json!({"owner": "Ada Lovelace", "currency": "EUR"}),
        ),
    )
    .await?;
    let (_, charles) = call(
        &client,
        base,
        post(
            "/accounts".into(),
            json!({"owner": "Charles Babbage", "currency": "EUR"}),
        ),
    )
    .await?;
    let (a, c) = (id_of(&ada)?, id_of(&charles)?);
    let key = format!("demo-deposit-{suffix}");
    for _ in 0..2 {
        let mut deposit = post(format!("/accounts/{a}/deposits"), json!({"amount": 10_000}));
        deposit.headers.push(("Idempotency-Key", key.clone()));
        call(&client, base, deposit).await?;
    }
    call(
        &client,
        base,
        post(
            format!("/accounts/{a}/withdrawals"),
            json!({"amount": 2_500}),
        ),
    )
    .await?;
    call(
        &client,
        base,
        post(
            "/transfers".into(),
            json!({"from": a, "to": c, "amount": 1_500}),
        ),
    )
    .await?;
    let (status, _) = call(
        &client,
        base,
        post(
            format!("/accounts/{a}/withdrawals"),
            json!({"amount": 1_000_000}),
        ),
    )
    .await?;
    if status != 422 {
        return Err(format!("an overdraft answered {status}, not 422"));
    }
    say("\n  The read model follows through DynamoDB Streams:");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = client
            .get(format!("{base}/accounts/{a}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if ok && body["version"] == json!(4) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the projection did not catch up: {body}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    call(&client, base, get(format!("/accounts/{a}"))).await?;
    call(&client, base, get(format!("/accounts/{a}/state?as_of=2"))).await?;
    call(
        &client,
        base,
        get(format!("/streams/Account-{a}/events?limit=2")),
    )
    .await?;
    call(&client, base, get(format!("/streams/Account-{a}/verify"))).await?;
    say(&format!(
        "\nThe API is at {base} (OpenAPI: {base}/openapi.json). Ctrl-C stops everything.\n"
    ));
    Ok(())
}
