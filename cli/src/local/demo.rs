//! The short scenario `make local` runs against the API it just started, printing each call,
//! its answer, and the curl command to repeat it. The scenario is the service's own
//! `demo.yaml` beside its template:
//!
//! ```yaml
//! title: a book lent and returned
//! users:                          # callers with their scopes; the first is the default
//!   - {name: ann, scopes: [library/read, library/write]}
//!   - {name: ops, scopes: [library/read, library/operator]}
//! steps:
//!   - post: /books
//!     body: {title: "Dune {suffix}"}
//!     save: {book: id}            # the answer's field `id`, as {book} from here on
//!   - post: /books/{book}/loans
//!     body: {member: m1}
//!     headers: {Idempotency-Key: "loan-{suffix}"}
//!     times: 2                     # the same call twice (a replay)
//!   - post: /books/{book}/loans
//!     body: {member: m2}
//!     expect: 409                  # any other status fails the demo (default: 2xx)
//!   - say: The read model follows through DynamoDB Streams
//!   - get: /members/m1/loans
//!     as: ops                      # called by another user
//!     until: {count: 1}            # polled quietly (up to 15 s) until these fields match
//! ```
//!
//! `{suffix}` is six random characters, so a demo can run again on the same tables. Each user
//! is a new user of the service's pool (`<name>-<suffix>`), given a token with its scopes, as
//! `eventfold token` gives one; on a template whose routes take IAM, calls are SigV4-signed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::identity::TokenIssuer;
use crate::identity::cognito::Cognito;

/// How long an `until` step polls.
const PATIENCE: Duration = Duration::from_secs(15);

/// A demo file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    /// What the demo shows, printed first.
    pub title: String,
    /// Who calls, the first by default.
    #[serde(default)]
    pub users: Vec<DemoUser>,
    /// The calls, in order.
    pub steps: Vec<Step>,
}

/// A caller of the demo: a user of the service's pool holding some scopes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUser {
    /// How steps name it (`as: <name>`).
    pub name: String,
    /// The scopes its token holds.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// How the demo's calls are authorized.
#[derive(Debug)]
pub enum Credentials {
    /// Not at all (routes without authorization).
    None,
    /// SigV4-signed with the emulator's credentials (IAM routes).
    Iam,
    /// Bearer tokens of the service's user pool, one per demo user.
    Tokens {
        issuer: TokenIssuer,
        cognito: Cognito,
    },
}

/// One step: a call (`get`, `post`, `put`, `patch` or `delete` with its path) or a line to say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    get: Option<String>,
    #[serde(default)]
    post: Option<String>,
    #[serde(default)]
    put: Option<String>,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    delete: Option<String>,
    /// A line printed instead of a call.
    #[serde(default)]
    say: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The status expected (default: any 2xx).
    #[serde(default)]
    expect: Option<u16>,
    /// Values to keep from the answer's top-level fields: name → field.
    #[serde(default)]
    save: BTreeMap<String, String>,
    /// Poll until the answer is a success whose fields have these values.
    #[serde(default)]
    until: Option<serde_json::Map<String, Value>>,
    /// How many times to make the call.
    #[serde(default = "once")]
    times: u32,
    /// Which user calls (default: the first).
    #[serde(default, rename = "as")]
    caller: Option<String>,
}

fn once() -> u32 {
    1
}

impl Step {
    fn call(&self) -> Result<Option<(&'static str, &str)>, String> {
        let calls: Vec<(&'static str, &str)> = [
            ("GET", &self.get),
            ("POST", &self.post),
            ("PUT", &self.put),
            ("PATCH", &self.patch),
            ("DELETE", &self.delete),
        ]
        .into_iter()
        .filter_map(|(method, path)| Some((method, path.as_deref()?)))
        .collect();
        match (calls.as_slice(), &self.say) {
            ([one], None) => Ok(Some(*one)),
            ([], Some(_)) => Ok(None),
            _ => Err("a step is one call (get, post, put, patch, delete) or one say".into()),
        }
    }
}

impl Demo {
    /// Reads a demo file, checking each step's shape.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let demo: Self =
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, step) in demo.steps.iter().enumerate() {
            step.call()
                .map_err(|e| format!("{}: step {}: {e}", path.display(), i + 1))?;
            if let Some(caller) = &step.caller
                && !demo.users.iter().any(|u| &u.name == caller)
            {
                return Err(format!(
                    "{}: step {}: no user {caller} among the demo's users",
                    path.display(),
                    i + 1
                ));
            }
        }
        Ok(demo)
    }
}

/// `{name}` replaced by the saved value, in a string.
fn fill(text: &str, saved: &BTreeMap<String, String>) -> String {
    saved.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("{{{name}}}"), value)
    })
}

/// `{name}` replaced in every string of a JSON value.
fn fill_value(value: &Value, saved: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, saved)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_value(v, saved)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), fill_value(v, saved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn curl(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&Value>,
    auth: &Auth,
) -> String {
    let mut line = format!("curl -s -X {method} '{base}{path}'");
    match auth {
        Auth::None => {}
        Auth::Iam => line.push_str(" --aws-sigv4 aws:amz:us-east-1:execute-api --user test:test"),
        Auth::Bearer { variable, .. } => {
            line.push_str(&format!(" -H \"authorization: Bearer ${variable}\""));
        }
    }
    for (name, value) in headers {
        line.push_str(&format!(" -H '{name}: {value}'"));
    }
    if let Some(body) = body {
        line.push_str(&format!(" -H 'content-type: application/json' -d '{body}'"));
    }
    line
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

impl Credentials {
    /// What the template's routes take: tokens of its user pool if any route takes JWTs,
    /// else signatures if any takes IAM, else nothing.
    pub fn for_environment(
        template: &crate::local::template::Template,
        resources: &crate::local::provision::Resources,
        clients: &crate::local::provision::Clients,
    ) -> Result<Self, String> {
        use crate::local::template::RouteAuth;
        let takes =
            |wanted: fn(&RouteAuth) -> bool| template.routes.iter().any(|r| wanted(&r.auth));
        if takes(|auth| matches!(auth, RouteAuth::Jwt { .. })) {
            Ok(Self::Tokens {
                issuer: TokenIssuer::for_resources(template, resources)?,
                cognito: clients.cognito.clone(),
            })
        } else if takes(|auth| matches!(auth, RouteAuth::Iam)) {
            Ok(Self::Iam)
        } else {
            Ok(Self::None)
        }
    }
}

/// How one call is authorized.
#[derive(Debug)]
enum Auth {
    None,
    Iam,
    /// A user's token, and the shell variable the printed curl commands name it by.
    Bearer {
        token: String,
        variable: String,
    },
}

/// One HTTP call: its status, whether it was a replay, its body.
async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&Value>,
    auth: &Auth,
) -> Result<(u16, bool, Value), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client.request(method.clone(), url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if body.is_some() {
        request = request
            .header("content-type", "application/json")
            .body(bytes.clone());
    }
    match auth {
        Auth::None => {}
        Auth::Iam => {
            let signed = crate::sign::sigv4_headers(
                crate::sign::Signable {
                    method: method.as_str(),
                    url,
                    headers: &[],
                    body: &bytes,
                },
                crate::sign::emulator_credentials(),
                "us-east-1",
                "execute-api",
            )?;
            for (name, value) in signed {
                request = request.header(name, value);
            }
        }
        Auth::Bearer { token, .. } => {
            request = request.header("authorization", format!("Bearer {token}"));
        }
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, replayed, body))
}

fn matches(
    body: &Value,
    wanted: &serde_json::Map<String, Value>,
    saved: &BTreeMap<String, String>,
) -> bool {
    wanted
        .iter()
        .all(|(field, value)| body.get(field) == Some(&fill_value(value, saved)))
}

/// Each demo user's way in: a token of the pool, a signature, or nothing.
async fn callers(
    demo: &Demo,
    credentials: &Credentials,
    suffix: &str,
    tool: &str,
) -> Result<BTreeMap<String, Auth>, String> {
    let mut callers = BTreeMap::new();
    let users: Vec<(&str, &[String])> = if demo.users.is_empty() {
        vec![("", &[][..])]
    } else {
        demo.users
            .iter()
            .map(|u| (u.name.as_str(), u.scopes.as_slice()))
            .collect()
    };
    for (name, scopes) in users {
        let auth = match credentials {
            Credentials::None => Auth::None,
            Credentials::Iam => Auth::Iam,
            Credentials::Tokens { issuer, cognito } => {
                let user = format!("{name}-{suffix}");
                let token = issuer.token(cognito, &user, scopes).await?;
                let variable = name.to_uppercase().replace(['-', '.'], "_");
                say(&format!(
                    "  {variable}=$({tool} token --user {user} --scope \"{}\")",
                    scopes.join(" ")
                ));
                Auth::Bearer { token, variable }
            }
        };
        callers.insert(name.to_owned(), auth);
    }
    Ok(callers)
}

/// Runs a demo against the API at `base`, its users authorized by `credentials`; an error if
/// the API does not answer as it says.
pub async fn run(demo: &Demo, base: &str, credentials: &Credentials) -> Result<(), String> {
    let client = reqwest::Client::new();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let mut saved = BTreeMap::from([("suffix".to_owned(), suffix.clone())]);
    say(&format!("\nDemo: {}.\n", demo.title));
    let tool = std::env::args()
        .next()
        .as_deref()
        .and_then(|path| Path::new(path).file_name()?.to_str().map(str::to_owned))
        .unwrap_or_else(|| "eventfold".into());
    let callers = callers(demo, credentials, &suffix, &tool).await?;
    let default = demo.users.first().map_or("", |u| u.name.as_str());
    for step in &demo.steps {
        let Some((method, path)) = step.call()? else {
            say(&format!("\n  {}:", step.say.as_deref().unwrap_or_default()));
            continue;
        };
        let path = fill(path, &saved);
        let url = format!("{base}{path}");
        let headers: Vec<(String, String)> = step
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &saved)))
            .collect();
        let body = step.body.as_ref().map(|b| fill_value(b, &saved));
        let auth = &callers[step.caller.as_deref().unwrap_or(default)];
        if let Some(wanted) = &step.until {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let (status, _, answer) =
                    send(&client, method, &url, &headers, body.as_ref(), auth).await?;
                if (200..300).contains(&status) && matches(&answer, wanted, &saved) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{method} {path} did not come to {wanted:?}: {answer}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for _ in 0..step.times.max(1) {
            let (status, replayed, answer) =
                send(&client, method, &url, &headers, body.as_ref(), auth).await?;
            let marker = if replayed {
                "  (Idempotent-Replayed: true)"
            } else {
                ""
            };
            say(&format!(
                "  {method} {path}  → {status}{marker}\n      {answer}"
            ));
            say(&format!(
                "      $ {}",
                curl(base, method, &path, &headers, body.as_ref(), auth)
            ));
            let expected = step
                .expect
                .map_or((200..300).contains(&status), |e| e == status);
            if !expected {
                return Err(format!(
                    "{method} {path} answered {status}, not {}",
                    step.expect
                        .map_or_else(|| "a success".to_owned(), |e| e.to_string())
                ));
            }
            for (name, field) in &step.save {
                let value = match answer.get(field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(format!("{method} {path}: no field {field} in {answer}")),
                };
                saved.insert(name.clone(), value);
            }
        }
    }
    Ok(())
}

/// Loads a demo file and runs it.
pub async fn run_file(path: &Path, base: &str, credentials: &Credentials) -> Result<(), String> {
    run(&Demo::load(path)?, base, credentials).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_one_call_or_one_line() {
        let demo: Demo = serde_norway::from_str("title: t\nsteps:\n  - get: /a\n    post: /b\n")
            .expect("parses");
        assert!(demo.steps[0].call().is_err());
        let wrong = serde_norway::from_str::<Demo>("title: t\nsteps:\n  - fetch: /a\n");
        assert!(wrong.is_err(), "unknown keys are refused");
    }

    #[test]
    fn saved_values_fill_strings_only() {
        let saved = BTreeMap::from([("a".to_owned(), "42".to_owned())]);
        assert_eq!(fill("/accounts/{a}/x", &saved), "/accounts/42/x");
        assert_eq!(
            fill_value(
                &serde_json::json!({"from": "{a}", "n": 3, "l": ["{a}"]}),
                &saved
            ),
            serde_json::json!({"from": "42", "n": 3, "l": ["42"]})
        );
    }
}
