//! The local runner: the HTTP API and every event source mapping of the template, calling the
//! Lambda handlers in this process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::local::esm::{MappingStats, QueueMapping, StreamMapping};
use crate::local::functions::Functions;
use crate::local::gateway::{Gateway, Route};
use crate::local::provision::{Clients, ProvisionError, Resources};
use crate::local::template::Template;

/// What to start.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Start the event source mappings (stream and queue consumers).
    pub consumers: bool,
    pub region: String,
    /// The emulator the resources live on, where a JWT authorizer reads its Cognito pool's
    /// keys (`None`: from the issuer itself).
    pub endpoint: Option<String>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            port: 0,
            consumers: true,
            region: "us-east-1".into(),
            endpoint: None,
        }
    }
}

/// A running local environment.
#[derive(Debug)]
pub struct LocalRunner {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Counters of each mapping, by `<function>/<source>`.
    pub stats: BTreeMap<String, Arc<MappingStats>>,
    pub routes: Vec<String>,
}

impl LocalRunner {
    /// Serves the template's routes and starts its event source mappings.
    pub async fn start(
        template: &Template,
        resources: &Resources,
        clients: &Clients,
        functions: Functions,
        options: RunnerOptions,
    ) -> Result<Self, ProvisionError> {
        let (shutdown, receiver) = watch::channel(false);
        let mut routes = Vec::new();
        for spec in &template.routes {
            let handler = functions.http.get(&spec.function).ok_or_else(|| {
                ProvisionError(format!(
                    "route {} needs function {}",
                    spec.logical_id, spec.function
                ))
            })?;
            routes.push(Route::new(spec, handler.clone()));
        }
        let authorizers =
            crate::identity::authorizers(template, resources, options.endpoint.as_deref())?;
        let gateway = Arc::new(Gateway::new(routes).with_authorizers(authorizers));
        let route_keys = gateway.routes().iter().map(Route::key).collect();
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| {
                ProvisionError(format!("cannot listen on 127.0.0.1:{}: {e}", options.port))
            })?;
        let address = listener
            .local_addr()
            .map_err(|e| ProvisionError(e.to_string()))?;
        let mut tasks = vec![tokio::spawn(gateway.serve(listener, receiver.clone()))];
        let mut stats = BTreeMap::new();
        if options.consumers {
            for spec in &template.functions {
                for (n, source) in spec.stream_sources.iter().enumerate() {
                    let handler = functions.streams.get(&spec.logical_id).ok_or_else(|| {
                        ProvisionError(format!("{} has no stream handler", spec.logical_id))
                    })?;
                    let stream_arn = resources
                        .stream_arns
                        .get(&source.table)
                        .ok_or_else(|| ProvisionError(format!("{} has no stream", source.table)))?;
                    let counters = Arc::new(MappingStats::default());
                    stats.insert(format!("{}/stream{n}", spec.logical_id), counters.clone());
                    let mapping = StreamMapping {
                        function: spec.logical_id.clone(),
                        source: source.clone(),
                        stream_arn: stream_arn.clone(),
                        region: options.region.clone(),
                        on_failure_url: source
                            .on_failure
                            .as_ref()
                            .map(|q| resources.queue_url(q).to_owned()),
                        handler: handler.clone(),
                        stats: counters,
                    };
                    tasks.push(tokio::spawn(mapping.run(clients.clone(), receiver.clone())));
                }
                for (n, every) in spec.schedules.iter().enumerate() {
                    let handler = functions.scheduled.get(&spec.logical_id).ok_or_else(|| {
                        ProvisionError(format!("{} has no scheduled handler", spec.logical_id))
                    })?;
                    let counters = Arc::new(MappingStats::default());
                    stats.insert(format!("{}/schedule{n}", spec.logical_id), counters.clone());
                    tasks.push(tokio::spawn(schedule(
                        spec.logical_id.clone(),
                        *every,
                        handler.clone(),
                        counters,
                        receiver.clone(),
                    )));
                }
                for (n, source) in spec.queue_sources.iter().enumerate() {
                    let handler = functions.queues.get(&spec.logical_id).ok_or_else(|| {
                        ProvisionError(format!("{} has no queue handler", spec.logical_id))
                    })?;
                    let queue = resources
                        .queue(&source.queue)
                        .ok_or_else(|| ProvisionError(format!("no queue {}", source.queue)))?;
                    let counters = Arc::new(MappingStats::default());
                    stats.insert(format!("{}/queue{n}", spec.logical_id), counters.clone());
                    let mapping = QueueMapping {
                        function: spec.logical_id.clone(),
                        source: source.clone(),
                        queue_url: queue.url.clone(),
                        queue_arn: queue.arn.clone(),
                        region: options.region.clone(),
                        handler: handler.clone(),
                        stats: counters,
                    };
                    tasks.push(tokio::spawn(mapping.run(clients.clone(), receiver.clone())));
                }
            }
        }
        Ok(Self {
            address,
            shutdown,
            tasks,
            stats,
            routes: route_keys,
        })
    }

    /// The base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops serving and polling.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        }
    }
}

/// A schedule: invokes the function at once, then every `every` (after the last invocation
/// ended, if it ran longer), as EventBridge would, until shutdown.
async fn schedule(
    function: String,
    every: std::time::Duration,
    handler: Arc<dyn crate::local::functions::ScheduledHandler>,
    stats: Arc<MappingStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    loop {
        let started = tokio::time::Instant::now();
        let event = serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "time": chrono::Utc::now().to_rfc3339(),
            "detail": {},
        });
        tokio::select! {
            answer = handler.invoke(event) => {
                stats.invocations.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = answer {
                    tracing::warn!(function, error, "scheduled invocation failed");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep_until(started + every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
