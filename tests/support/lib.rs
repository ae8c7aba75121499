//! Test support: the emulator, per-test resources from the template, the local runner serving
//! them with the functions' own binaries, and HTTP and consistency helpers.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

pub mod deployed;
mod emulator;
pub mod faults;

use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::config::Credentials;
use eventfold::aws::{DynamoReadModel, DynamoSnapshots, DynamoStore};
use eventfold::store::StoreSettings;
use eventfold_cli::local::provision::{Clients, Resources, provision};
use eventfold_cli::local::template::Template;

pub use emulator::emulator_endpoint;

/// The directory cargo put this test in (`target/<profile>`), with the binaries of `packages`
/// built there first (a no-op after `cargo build --workspace`).
pub fn built_binaries(packages: &[&str]) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_owned();
    let mut build = std::process::Command::new(env!("CARGO"));
    build.args(["build", "--quiet"]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    for package in packages {
        build.args(["-p", package]);
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "{packages:?} build"
    );
    profile_dir
}

/// The bank's function binaries, every one the template names, built once per test run (a
/// no-op after `cargo build --workspace`).
pub fn function_binaries() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let packages: Vec<&str> = template()
            .functions
            .iter()
            .map(|f| f.binary.as_str())
            .collect();
        built_binaries(&packages)
    })
}

/// The repository's template, parsed once.
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| Template::load(&template_path()).expect("infra/template.yaml parses"))
}

/// The `eventfold` binary as an operator runs it: in the service's folder (its template at
/// infra/template.yaml), its functions where the tests built them, on the emulator.
pub fn cli() -> std::process::Command {
    let mut command =
        std::process::Command::new(built_binaries(&["eventfold-cli"]).join("eventfold"));
    let root = template_path()
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the workspace root")
        .to_path_buf();
    command
        .current_dir(root)
        .arg("--functions")
        .arg(function_binaries())
        .env("AWS_ENDPOINT_URL", emulator_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    command
}

/// The operator commands' view of a test's environment: its tables and queues, the bank's
/// template, and the function binaries the tests built.
pub fn ops_target(env: &TestEnv) -> eventfold_cli::ops::Target {
    eventfold_cli::ops::Target::for_resources(
        Arc::new(template().clone()),
        &env.resources,
        &env.clients,
        function_binaries().to_path_buf(),
        &emulator_endpoint(),
    )
    .expect("an operator target")
}

/// The repository's template file.
pub fn template_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}

/// How much slower the emulator is than MiniStack: bounded waits and SDK timeouts scale by it.
///
/// moto answers a Query by deep-copying every item of the partition and serialises responses
/// slowly, so a 1 MB page of a long stream can take longer than the production timeouts.
pub fn patience() -> u32 {
    if std::env::var("EMULATOR").as_deref() == Ok("moto") {
        6
    } else {
        1
    }
}

/// SDK configuration pointing at the emulator, with the production client settings (timeouts
/// stretched by [`patience`]).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    eventfold::aws::load_sdk_config_with(|loader| {
        let loader = loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"));
        match patience() {
            1 => loader,
            factor => loader.timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(2))
                    .operation_attempt_timeout(std::time::Duration::from_secs(5) * factor * 2)
                    .operation_timeout(std::time::Duration::from_secs(12) * factor * 2)
                    .build(),
            ),
        }
    })
    .await
}

/// A fresh, uniquely named copy of every table and queue in the template.
#[derive(Debug)]
pub struct TestEnv {
    pub sdk: aws_config::SdkConfig,
    pub clients: Clients,
    pub resources: Resources,
}

impl TestEnv {
    /// Creates the resources; tests running in parallel never share them.
    pub async fn new() -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            eventfold::lambda::telemetry::init_with_filter(true, "warn");
        }
        let sdk = sdk_config().await;
        let clients = Clients::new(&sdk);
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let resources = provision(template(), &clients, &prefix)
            .await
            .expect("resources from the template");
        Self {
            sdk,
            clients,
            resources,
        }
    }

    /// The events table's name.
    pub fn events_table(&self) -> &str {
        self.resources.table("EventsTable")
    }

    /// A DynamoDB event store over this environment's tables.
    pub fn store(&self, settings: StoreSettings) -> Arc<DynamoStore> {
        Arc::new(
            DynamoStore::new(
                self.clients.dynamodb.clone(),
                self.resources.table("EventsTable"),
                settings,
            )
            .with_commands_table(self.resources.table("CommandsTable")),
        )
    }

    /// The accounts read model over this environment's table.
    pub fn accounts(&self) -> DynamoReadModel {
        DynamoReadModel::new(
            self.clients.dynamodb.clone(),
            self.resources.table("AccountsTable"),
            bank::names::accounts::ACCOUNT_ID,
        )
    }

    /// Tokens of this environment's user pool.
    pub fn tokens(&self) -> Tokens {
        let issuer =
            eventfold_cli::identity::TokenIssuer::for_resources(template(), &self.resources)
                .expect("the template's user pool was provisioned");
        Tokens {
            issuer,
            cognito: self.clients.cognito.clone(),
        }
    }

    /// The resources another process (`eventfold local`) made under `prefix`.
    pub async fn discover(&self, prefix: &str) -> Resources {
        eventfold_cli::local::provision::discover(template(), &self.clients, prefix)
            .await
            .expect("the run's resources")
    }

    /// Subjects' keys as this environment's functions keep them (its keys table and KMS key).
    pub fn subject_keys(&self) -> Arc<eventfold::aws::KmsSubjectKeys> {
        Arc::new(eventfold::aws::KmsSubjectKeys::new(
            self.clients.dynamodb.clone(),
            self.resources.table("SubjectKeysTable"),
            eventfold::aws::aws_sdk_kms::Client::new(&self.sdk),
            &self.resources.kms_keys["SubjectKey"].id,
        ))
    }

    /// The global feed over this environment's table, as the template partitions it.
    pub fn feed(&self) -> eventfold::aws::DynamoFeed {
        eventfold::aws::DynamoFeed::new(
            self.clients.dynamodb.clone(),
            self.resources.table("FeedTable"),
            eventfold::feed::DEFAULT_PARTITIONS,
        )
    }

    /// Timers in a table of their own, made for the caller.
    pub async fn timers(&self) -> eventfold::aws::DynamoTimers {
        let table = format!(
            "{}-timers-{}",
            self.resources.table("EventsTable"),
            uuid::Uuid::new_v4().simple()
        );
        eventfold::testing::create_table(
            &self.clients.dynamodb,
            &table,
            eventfold::testing::TableShape::TIMERS,
        )
        .await
        .expect("a timers table");
        eventfold::aws::DynamoTimers::new(self.clients.dynamodb.clone(), table)
    }

    /// The snapshot store over this environment's table.
    pub fn snapshots(&self) -> Arc<DynamoSnapshots> {
        Arc::new(DynamoSnapshots::new(
            self.clients.dynamodb.clone(),
            self.resources.table("SnapshotsTable"),
        ))
    }
}

/// A test environment with the local runner serving it.
#[derive(Debug)]
pub struct RunningEnv {
    pub env: TestEnv,
    pub runner: eventfold_cli::local::runner::LocalRunner,
    pub api: Api,
}

impl TestEnv {
    /// Starts the local runner (API and consumers) over this environment; `customize` may
    /// replace functions (e.g. with fault-injecting wrappers) first.
    pub async fn serve_with(
        self,
        customize: impl FnOnce(&mut eventfold_cli::local::functions::Functions),
    ) -> RunningEnv {
        let clients = self.clients.clone();
        self.run(clients, &emulator_endpoint(), customize).await
    }

    /// Starts the local runner with the template's functions.
    pub async fn serve(self) -> RunningEnv {
        self.serve_with(|_| {}).await
    }

    /// Starts the local runner with the functions' (and the event source mappings') AWS
    /// clients talking to `endpoint` instead of the emulator: a fault proxy in front of it.
    pub async fn serve_through(self, endpoint: &str) -> RunningEnv {
        let sdk = eventfold::aws::load_sdk_config_with(|loader| {
            loader
                .endpoint_url(endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "proxied"))
        })
        .await;
        self.run(Clients::new(&sdk), endpoint, |_| {}).await
    }

    /// The runner over this environment's resources: its mappings on `clients`, its functions'
    /// binaries talking to `endpoint`.
    async fn run(
        self,
        clients: Clients,
        endpoint: &str,
        customize: impl FnOnce(&mut eventfold_cli::local::functions::Functions),
    ) -> RunningEnv {
        let mut functions = eventfold_cli::local::functions::Functions::from_template(
            template(),
            &self.resources,
            endpoint,
            function_binaries(),
        )
        .expect("functions from the template");
        functions.warm().await.expect("every function starts");
        customize(&mut functions);
        let runner = eventfold_cli::local::runner::LocalRunner::start(
            template(),
            &self.resources,
            &clients,
            functions,
            eventfold_cli::local::runner::RunnerOptions {
                endpoint: Some(emulator_endpoint()),
                ..eventfold_cli::local::runner::RunnerOptions::default()
            },
        )
        .await
        .expect("runner starts");
        let api = Api::new(runner.url(), Caller::Anonymous)
            .with_tokens(self.tokens())
            .customer()
            .await;
        RunningEnv {
            env: self,
            runner,
            api,
        }
    }
}

impl RunningEnv {
    /// Stops the runner.
    pub async fn stop(self) -> TestEnv {
        self.runner.stop().await;
        self.env
    }
}

impl std::ops::Deref for RunningEnv {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// An HTTP API under test, the local runner's or a deployed stack's, and who calls it: nobody,
/// a SigV4-signed IAM principal, or the bearer of a token from the service's user pool (which
/// it can mint more of: fresh users with chosen scopes).
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    /// The client (for requests a test shapes itself; send them through [`Api::send`]).
    pub http: reqwest::Client,
    caller: Caller,
    tokens: Option<Arc<Tokens>>,
}

/// Who an [`Api`] sends requests as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// SigV4 with the test credentials (an IAM principal of the emulator's account).
    Iam,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// Where an API's tokens come from.
#[derive(Debug)]
pub struct Tokens {
    pub issuer: eventfold_cli::identity::TokenIssuer,
    pub cognito: eventfold_cli::identity::cognito::Cognito,
}

/// Tokens are minted one at a time: one user's password is reset for each, and a test that
/// shortens the app client's validity for a moment must not hand short tokens to another.
static MINTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The bank's scopes.
pub mod scopes {
    /// A customer: reading and moving their own money.
    pub const CUSTOMER: &[&str] = &[bank::access::READ, bank::access::WRITE];
    /// An operator: everything.
    pub const OPERATOR: &[&str] = &bank::access::ALL;
}

impl Api {
    /// An API at `base`, called as `caller`.
    pub fn new(base: impl Into<String>, caller: Caller) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
            caller,
            tokens: None,
        }
    }

    /// The same API, its users' tokens minted by `tokens`.
    #[must_use]
    pub fn with_tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// The same API called as `caller`.
    #[must_use]
    pub fn as_caller(&self, caller: Caller) -> Self {
        Self {
            caller,
            ..self.clone()
        }
    }

    /// Who calls.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Where the API's tokens come from.
    pub fn tokens(&self) -> &Tokens {
        self.tokens.as_ref().expect("this API mints no tokens")
    }

    /// A token for `user` holding `scopes`, from the API's user pool.
    pub async fn token(&self, user: &str, scopes: &[&str]) -> String {
        let _one_at_a_time = MINTING.lock().await;
        self.mint(user, scopes).await
    }

    async fn mint(&self, user: &str, scopes: &[&str]) -> String {
        let tokens = self.tokens();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        tokens
            .issuer
            .token(&tokens.cognito, user, &scopes)
            .await
            .expect("a token")
    }

    /// A token for a new user holding `scopes` that has expired, and was valid otherwise: the
    /// app client's tokens live for one second while it is minted (the emulator takes a
    /// validity AWS would refuse), then their validity is restored.
    pub async fn expired_token(&self, scopes: &[&str]) -> String {
        let token = {
            let _one_at_a_time = MINTING.lock().await;
            let Tokens { issuer, cognito } = self.tokens();
            let before = cognito
                .set_access_token_seconds(&issuer.pool, &issuer.client_id, 1)
                .await
                .expect("a shorter validity");
            let user = format!("u-{}", uuid::Uuid::new_v4().simple());
            let token = self.mint(&user, scopes).await;
            cognito
                .set_access_token_seconds(&issuer.pool, &issuer.client_id, before)
                .await
                .expect("the validity restored");
            token
        };
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        token
    }

    /// The API called by a new user of the pool holding `scopes` (not registered at the bank).
    pub async fn new_user(&self, scopes: &[&str]) -> Self {
        let user = format!("u-{}", uuid::Uuid::new_v4().simple());
        let token = self.token(&user, scopes).await;
        self.as_caller(Caller::Bearer(token))
    }

    /// The API called by a new customer, registered at the bank (`POST /users`).
    pub async fn customer(&self) -> Self {
        let customer = self.new_user(scopes::CUSTOMER).await;
        customer.register().await;
        customer
    }

    /// The API called by a new operator (every scope), registered at the bank.
    pub async fn operator(&self) -> Self {
        let operator = self.new_user(scopes::OPERATOR).await;
        operator.register().await;
        operator
    }

    /// Registers the caller as a bank user, under a fresh address.
    pub async fn register(&self) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let reply = self
            .post(
                "/users",
                &serde_json::json!({ "email": email, "name": "Test User" }),
                &[],
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }

    /// A request a test shapes itself, with the caller's bearer token (a SigV4 signature
    /// covers the body, so [`Api::send`] signs those).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.caller {
            Caller::Bearer(token) => request.bearer_auth(token),
            Caller::Anonymous | Caller::Iam => request,
        }
    }

    /// A URL on the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request (signed when the API wants it) and reads the answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let url = self.url(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match &self.caller {
            Caller::Anonymous => {}
            Caller::Iam => {
                for (name, value) in sigv4_headers(method.as_str(), &url, &body) {
                    request = request.header(name, value);
                }
            }
            Caller::Bearer(token) => {
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
            }
        }
        Reply::from(request.body(body).send().await.expect("request")).await
    }

    /// POSTs JSON; returns status, headers and JSON body.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, body.to_string().into_bytes())
            .await
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// GETs a path with headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, Vec::new()).await
    }

    /// Opens an account and returns its id.
    pub async fn open_account(&self, owner: &str, currency: &str) -> String {
        let reply = self
            .post(
                "/accounts",
                &serde_json::json!({"owner": owner, "currency": currency}),
                &[],
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["id"].as_str().expect("id").to_owned()
    }

    /// Deposits `amount` into account `id`, which must succeed.
    pub async fn deposit(&self, id: &str, amount: u64) {
        let reply = self
            .post(
                &format!("/accounts/{id}/deposits"),
                &serde_json::json!({ "amount": amount }),
                &[],
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    /// Polls `path` until `done` holds for the reply or `within` passes.
    pub async fn eventually(
        &self,
        path: &str,
        within: std::time::Duration,
        done: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let deadline = std::time::Instant::now() + within;
        loop {
            let reply = self.get(path).await;
            if done(&reply) || std::time::Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The SigV4 headers for a request to API Gateway (`execute-api`), with the test credentials.
fn sigv4_headers(method: &str, url: &str, body: &[u8]) -> Vec<(String, String)> {
    let request = eventfold_cli::sign::Signable {
        method,
        url,
        headers: &[],
        body,
    };
    eventfold_cli::sign::sigv4_headers(
        request,
        Credentials::new("test", "test", None, None, "tests"),
        "us-east-1",
        "execute-api",
    )
    .expect("a signed request")
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer of the given status and type slug.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(
            self.body["type"],
            serde_json::json!(format!("https://eventfold.dev/problems/{slug}")),
            "{self:?}"
        );
        assert_eq!(self.body["status"], serde_json::json!(status));
    }
}

/// Reads the whole events table: every stream's events in version order, upcast.
pub async fn events_by_stream(
    env: &TestEnv,
) -> std::collections::BTreeMap<String, Vec<eventfold::RecordedEvent>> {
    use eventfold::store::EventStore;
    let store = env.store(StoreSettings::default());
    let mut streams: std::collections::BTreeMap<String, Vec<eventfold::RecordedEvent>> =
        std::collections::BTreeMap::new();
    let mut start = None;
    loop {
        let (items, next) = store.scan_segment(0, 1, start).await.expect("scan");
        for item in items {
            let event: eventfold::RecordedEvent =
                eventfold::aws::item::from_item(item, "event").expect("decodes");
            let event = store.settings().upcasters.upcast(event).expect("upcasts");
            streams
                .entry(event.stream_id.to_string())
                .or_default()
                .push(event);
        }
        start = next;
        if start.is_none() {
            break;
        }
    }
    for events in streams.values_mut() {
        events.sort_by_key(|e| e.version);
    }
    streams
}

/// What the accounts table should hold: the fold of every account stream.
pub async fn expected_accounts(
    env: &TestEnv,
) -> std::collections::BTreeMap<String, bank::read_model::AccountRow> {
    events_by_stream(env)
        .await
        .into_iter()
        .filter(|(stream, _)| stream.starts_with("Account-"))
        .filter_map(|(_, events)| bank::read_model::expected_row(&events))
        .map(|row| (row.id.clone(), row))
        .collect()
}

/// What the accounts table holds (totals rows excluded).
pub async fn projected_accounts(
    env: &TestEnv,
) -> std::collections::BTreeMap<String, bank::read_model::AccountRow> {
    account_rows(&env.accounts()).await
}

/// The account rows an accounts table holds (totals rows excluded).
pub async fn account_rows(
    read_model: &DynamoReadModel,
) -> std::collections::BTreeMap<String, bank::read_model::AccountRow> {
    use eventfold::projection::ReadModelStore;
    let mut rows = std::collections::BTreeMap::new();
    for (id, stored) in read_model.rows().await.expect("rows") {
        let Some(document) = stored.row else { continue };
        let view = serde_json::from_value(serde_json::Value::Object(document)).expect("row");
        rows.insert(
            id.clone(),
            bank::read_model::AccountRow {
                id,
                view,
                version: stored.version,
            },
        );
    }
    rows
}

/// Waits until the accounts table equals the fold of the events table, or `within` passes;
/// returns whether it converged, printing what still differs if not.
///
/// Call it once writes have stopped: the events table is folded once, and only the (small)
/// read model is polled, so the check does not compete with the projector for the emulator.
pub async fn projection_converges(env: &TestEnv, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within * patience();
    let expected = expected_accounts(env).await;
    loop {
        let projected = projected_accounts(env).await;
        if projected == expected {
            return true;
        }
        if std::time::Instant::now() > deadline {
            let differing: Vec<_> = expected
                .iter()
                .filter(|(id, row)| projected.get(*id) != Some(*row))
                .map(|(id, row)| (row, projected.get(id)))
                .collect();
            let gaps: Vec<String> = events_by_stream(env)
                .await
                .into_iter()
                .filter(|(_, events)| {
                    events
                        .iter()
                        .enumerate()
                        .any(|(i, e)| e.version != i as u64 + 1)
                })
                .map(|(stream, _)| stream)
                .collect();
            eprintln!(
                "projection differs for {} of {} accounts (expected row, projected row): {:#?}; \
                 streams with version gaps in the events table: {gaps:?}",
                differing.len(),
                expected.len(),
                &differing[..differing.len().min(3)]
            );
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// A mix of deposits, withdrawals and transfers over `accounts` accounts, `commands` in all
/// (the openings included), `concurrency` at a time. Seeded, so runs are comparable.
pub async fn workload(
    api: &RunningEnv,
    accounts: usize,
    commands: usize,
    concurrency: usize,
    seed: u64,
) -> Vec<String> {
    use futures::StreamExt;
    let currencies = ["EUR", "USD"];
    let mut ids = Vec::new();
    for n in 0..accounts {
        ids.push(
            api.open_account(&format!("Owner {n}"), currencies[n % 2])
                .await,
        );
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let plan: Vec<(String, serde_json::Value)> = (accounts..commands)
        .map(|_| {
            let a = &ids[rng.usize(..ids.len())];
            let b = &ids[rng.usize(..ids.len())];
            let amount = rng.u64(1..500);
            match rng.u8(0..10) {
                0..=4 => (
                    format!("/accounts/{a}/deposits"),
                    serde_json::json!({"amount": amount}),
                ),
                5..=6 => (
                    format!("/accounts/{a}/withdrawals"),
                    serde_json::json!({"amount": amount}),
                ),
                _ => (
                    "/transfers".into(),
                    serde_json::json!({"from": a, "to": b, "amount": amount}),
                ),
            }
        })
        .collect();
    futures::stream::iter(plan)
        .map(|(path, body)| async move {
            loop {
                let reply = api.post(&path, &body, &[]).await;
                match reply.status {
                    409 | 503 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    // Business refusals (short funds, same account, mixed currencies) are part of the mix.
                    200 | 201 | 422 => return,
                    other => panic!("{path} answered {other}: {reply:?}"),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    ids
}

/// `eventfold local --no-demo` on a prefix of its own: the API's URL, and the process (stopped
/// when dropped).
pub async fn local(prefix: &str) -> (String, tokio::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = tokio::process::Command::from(cli())
        .args([
            "--prefix",
            prefix,
            "local",
            "--no-demo",
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("eventfold local starts");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    let served = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("The API is at") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(served, Ok(true), "eventfold local serves");
    (format!("http://127.0.0.1:{port}"), child)
}

/// The function log of `eventfold local` on `prefix` (what Lambda would send to CloudWatch).
pub fn local_log(prefix: &str) -> String {
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.local")
        .join(format!("runner-{prefix}.log"));
    std::fs::read_to_string(log).expect("the function log")
}

/// Everything the run wrote, as text: every item of every table, every message of every queue
/// (dead-letter queues included), and the function logs.
pub async fn every_copy(env: &TestEnv, resources: &Resources, prefix: &str) -> String {
    let mut copies = String::new();
    for table in resources.tables.values() {
        let mut start = None;
        loop {
            let page = env
                .clients
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                copies.push_str(&format!("{table}: {item:?}\n"));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    for queue in resources.queues.values() {
        loop {
            let received = env
                .clients
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                copies.push_str(&format!("{}: {message:?}\n", queue.name));
            }
        }
    }
    copies.push_str(&local_log(prefix));
    copies
}
