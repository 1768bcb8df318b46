//! All API I/O: the controller wiring, the shared context and the error policy.

mod apply;
mod oidc_discovery;
mod reconcile;
mod report;
mod resolve;
mod seen;
mod unreadable;
mod versions;
mod watches;

pub use apply::contains;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::crd::Penpot;
use crate::metrics::Metrics;
use watches::api;

use oidc_discovery::DiscoveryCache;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The API server answered, and refused one rendered object (a webhook, a quota, a
    /// conflict): the message names the object, for status and events.
    #[error("the API server refused {kind} {name}: {} ({}, HTTP {})", .status.message, .status.reason, .status.code)]
    Rejected { kind: String, name: String, status: Box<kube::core::Status> },
    #[error("cannot encode an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Penpot is not namespaced")]
    NotNamespaced,
    #[error("not the leader: refusing to write")]
    NotLeader,
}

impl Error {
    /// Stable CamelCase category for metric labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) | Error::Rejected { status: s, .. } => match s.code {
                409 => "Conflict",
                403 => "Forbidden",
                _ => "ApiError",
            },
            Error::Kube(_) => "ClientError",
            Error::Json(_) => "Encoding",
            Error::NotNamespaced => "NotNamespaced",
            Error::NotLeader => "NotLeader",
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The controller's cache of Penpots, for metrics over all instances.
    pub store: Store<Stored>,
    /// What the owned objects' watches show, and what apply last proved of them.
    seen: seen::Seen,
    discovery: DiscoveryCache,
    /// Open while this replica may write (always, without leader election).
    leader: Arc<crate::leader::Gate>,
    /// Periodic resync of a settled Penpot; catches anything a watch missed.
    resync: Duration,
    /// Whether the Prometheus Operator's CRDs exist, and when that was last asked.
    prometheus: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    failures: Mutex<HashMap<ObjectRef<Stored>, u32>>,
}

/// A Penpot as the watch delivers it: parsed, or the reason it cannot be, so one object this
/// operator cannot read (written under another CRD version, say) cannot stall the watch.
pub type Stored = DeserializeGuard<Penpot>;

impl Context {
    /// Every write checks this first, so a replica that lost its lease stops writing at once.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        if self.leader.may_write() { Ok(()) } else { Err(Error::NotLeader) }
    }

    /// Discovers the Prometheus Operator's PodMonitor and PrometheusRule kinds, at most every
    /// five minutes: installing it later is picked up without restarting the operator.
    pub async fn prometheus_operator(&self) -> bool {
        const TTL: Duration = Duration::from_secs(300);
        let mut cached = self.prometheus.lock().await;
        if let Some((at, found)) = *cached
            && at.elapsed() < TTL
        {
            return found;
        }
        let found = match self.client.list_api_group_resources("monitoring.coreos.com/v1").await {
            Ok(list) => {
                ["podmonitors", "prometheusrules"].iter().all(|plural| list.resources.iter().any(|r| r.name == *plural))
            }
            Err(_) => false,
        };
        *cached = Some((std::time::Instant::now(), found));
        found
    }

    fn reset_backoff(&self, penpot: &Stored) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&ObjectRef::from(penpot));
        }
    }

    /// Exponential backoff per object: 2 s, 4 s, ... up to 5 minutes.
    fn next_backoff(&self, penpot: &Stored) -> Duration {
        let Ok(mut failures) = self.failures.lock() else { return Duration::from_secs(30) };
        let n = failures.entry(ObjectRef::from(penpot)).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(2u64.saturating_pow((*n).min(9))).min(Duration::from_secs(300))
    }
}

fn error_policy(penpot: Arc<Stored>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&penpot);
    tracing::warn!(
        namespace = penpot.namespace().unwrap_or_default(),
        name = %penpot.name_any(),
        category = error.category(),
        %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

pub struct RunOptions {
    pub namespace: Option<String>,
    pub concurrency: u16,
    pub instance: String,
    pub resync: Duration,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    leader: Arc<crate::leader::Gate>,
    ready: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), reqwest::Error> {
    let ns = opts.namespace.as_deref();
    // One shutdown signal for both controllers.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let shutdown_profiles = shutdown.clone();
    let (store, penpot_events) = watches::penpots(api(&client, ns));
    let profiles = Controller::new(api::<crate::crd::PenpotProfile>(&client, ns), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(opts.concurrency))
        .graceful_shutdown_on(shutdown_profiles.clone())
        .run(
            crate::profiles::controller::reconcile,
            crate::profiles::controller::error_policy,
            Arc::new(crate::profiles::controller::Context { client: client.clone(), leader: leader.clone() }),
        )
        .for_each(|_| std::future::ready(()));
    let epoch = seen::Epoch::default();
    let owned_secrets = watches::owned(api::<PartialObjectMeta<Secret>>(&client, ns), epoch.clone());
    let owned_config_maps = watches::owned(api::<PartialObjectMeta<ConfigMap>>(&client, ns), epoch.clone());
    let owned_services = watches::owned(api::<PartialObjectMeta<Service>>(&client, ns), epoch.clone());
    let owned_network_policies = watches::owned(api::<PartialObjectMeta<NetworkPolicy>>(&client, ns), epoch.clone());
    let owned_ingresses = watches::owned(api::<PartialObjectMeta<Ingress>>(&client, ns), epoch.clone());
    let statefulsets = watches::metadata(api::<PartialObjectMeta<StatefulSet>>(&client, ns), watches::owned_selector())
        .touched_objects();
    // Every Secret but Helm's release records, which never feed a Penpot; metadata only, so
    // Secret payloads stay out of the operator's memory.
    let relation_secrets = watches::metadata(
        api::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default().fields("type!=helm.sh/release.v1"),
    )
    .touched_objects();
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "penpot-operator".into(), instance: Some(opts.instance) },
        ),
        metrics: metrics.clone(),
        store: store.clone(),
        seen: seen::Seen::new(
            seen::Stores {
                secrets: owned_secrets.0,
                config_maps: owned_config_maps.0,
                services: owned_services.0,
                network_policies: owned_network_policies.0,
                ingresses: owned_ingresses.0,
            },
            epoch,
        ),
        discovery: DiscoveryCache::new()?,
        leader,
        resync: opts.resync,
        prometheus: tokio::sync::Mutex::new(None),
        failures: Mutex::new(HashMap::new()),
    });

    let ready_store = store.clone();
    tokio::spawn(async move {
        // The store's init signal wakes a single waiter, and the controller itself waits on it;
        // poll with a timeout so this task sees the cache sync too.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), ready_store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    let _ = ready.send(true);
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
    });
    let mapper_store = store.clone();
    let penpots = Controller::for_stream(penpot_events, store)
        .trigger_backoff(watches::SpaceErrors)
        .owns_stream(statefulsets)
        .owns_stream(owned_secrets.1)
        .owns_stream(owned_config_maps.1)
        .owns_stream(owned_services.1)
        .owns_stream(owned_network_policies.1)
        .owns_stream(owned_ingresses.1)
        .watches_stream(relation_secrets, move |secret| watches::penpots_for_secret(&mapper_store, &secret))
        .with_config(kube::runtime::controller::Config::default().concurrency(opts.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|result| {
            if let Err(e) = &result {
                use kube::runtime::controller::Error::QueueError;
                match e {
                    // 410 Gone: the resourceVersion left the API server's window; kube-runtime
                    // lists again and the reconciles that follow see whatever was missed.
                    QueueError(watcher::Error::WatchError(s)) if s.code == 410 => {
                        metrics.watch_restarted(crate::metrics::WatchRestart::Expired);
                        tracing::info!(error = %e, "watch expired; listing again");
                    }
                    // The watch failed; kube-runtime restarts it with backoff.
                    QueueError(_) => {
                        metrics.watch_restarted(crate::metrics::WatchRestart::Failed);
                        tracing::warn!(error = %e, "watch failed; restarting");
                    }
                    _ => tracing::debug!(error = %e, "controller event"),
                }
            }
            std::future::ready(())
        });
    futures::join!(penpots, profiles);
    Ok(())
}
