//! All API I/O: the controller wiring, the shared context and the error policy.

mod apply;
mod backoff;
mod backup;
pub mod egress;
mod oidc_discovery;
mod pace;
mod reconcile;
mod report;
mod resolve;
#[cfg(test)]
mod scenarios;
mod seen;
mod unreadable;
mod versions;
mod watches;

pub use crate::error::Error;
pub use apply::{ADOPT_ANNOTATION, contains};

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::crd::Penpot;
use crate::metrics::Metrics;
use crate::render::owned::OptionalApi;
use watches::api;

use oidc_discovery::DiscoveryCache;

pub struct Context {
    pub client: Client,
    /// Who publishes the Penpots' Events; see [`Context::publish`].
    reporter: Reporter,
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
    /// The operator's own image, for the pods' init container.
    init_image: String,
    /// What discovery last found of each optional API, and when.
    apis: tokio::sync::Mutex<std::collections::HashMap<OptionalApi, (std::time::Instant, bool)>>,
    failures: backoff::Failures,
    /// The relations' pre-flight checks; `None` when turned off (`--relation-checks=false`).
    checks: Option<Arc<crate::checks::Checker>>,
}

/// A Penpot as the watch delivers it: parsed, or the reason it cannot be, so one object this
/// operator cannot read (written under another CRD version, say) cannot stall the watch.
pub type Stored = DeserializeGuard<Penpot>;

impl Context {
    /// Every write checks this first, so a replica that lost its lease stops writing at once.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        if self.leader.may_write() { Ok(()) } else { Err(Error::NotLeader) }
    }

    /// Whether the cluster serves `api` (the Prometheus Operator's or the Gateway API's kinds),
    /// asked again every five minutes, or every 30 s while it is absent: a Penpot waiting for
    /// CRDs installed later notices them within a minute, with no operator restart.
    pub async fn serves(&self, api: OptionalApi) -> bool {
        const SERVED_TTL: Duration = Duration::from_secs(300);
        const ABSENT_TTL: Duration = Duration::from_secs(30);
        if let Some((at, found)) = self.apis.lock().await.get(&api)
            && at.elapsed() < if *found { SERVED_TTL } else { ABSENT_TTL }
        {
            return *found;
        }
        // Not under the lock: a slow discovery call must not stall every other reconcile.
        let found = match self.client.list_api_group_resources(api.group_version()).await {
            Ok(list) => api.plurals().iter().all(|plural| list.resources.iter().any(|r| r.name == *plural)),
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            // A blip says nothing about the API: keep what was known, ask again next time.
            Err(e) => {
                tracing::debug!(error = %e, group = api.group_version(), "API discovery failed");
                return self.apis.lock().await.get(&api).is_some_and(|(_, found)| *found);
            }
        };
        self.apis.lock().await.insert(api, (std::time::Instant::now(), found));
        found
    }

    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        publish(&self.client, &self.reporter, event, regarding).await
    }

    fn reset_backoff(&self, penpot: &Stored) {
        self.failures.reset(&ObjectRef::from(penpot));
    }
}

fn error_policy(penpot: Arc<Stored>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.failures.next(&ObjectRef::from(penpot.as_ref()));
    tracing::warn!(
        namespace = penpot.namespace().unwrap_or_default(),
        name = %penpot.name_any(),
        category = error.category(),
        step = error.step().map(|s| s.to_string()),
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
    /// The operator's own image, for the pods' init container.
    pub init_image: String,
    /// Where OIDC discovery and the relation checks may connect.
    pub egress: egress::Egress,
    /// Whether the operator checks the relations' servers (`status.checks`).
    pub relation_checks: bool,
    /// Whether the PenpotProfile controller runs.
    pub profiles: bool,
}

/// Publishes one Event. kube's `Recorder` folds every event with the same type, reason and
/// action into the first one it made, keeping that one's note: `kubectl describe` then showed
/// `WaitingForRelations (x3)` with a message that was no longer true. Our events fire only on
/// a change, so each is worth its own object: a recorder with an empty cache per event never
/// folds.
pub async fn publish(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    regarding: &ObjectReference,
) -> Result<(), kube::Error> {
    Recorder::new(client.clone(), reporter.clone()).publish(event, regarding).await
}

/// Logs `note` as a warning and publishes it as a Warning Event on `regarding`, best effort:
/// a full event store must not fail what the warning is about.
pub async fn warn(
    client: &Client,
    reporter: &Reporter,
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: String,
) {
    tracing::warn!(reason, "{note}");
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = publish(client, reporter, &event, regarding).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// Reconcile requests for one Penpot within this window fold into one, after the last: a
/// relation Secret rewritten many times a second rolls the pods once, when it settles, and a
/// single change waits half a second.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    leader: Arc<crate::leader::Gate>,
    ready: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = opts.namespace.as_deref();
    // One shutdown signal for both controllers.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let failures = backoff::Failures::default();
    let relisted = failures.clone();
    let (store, penpot_events) = watches::penpots(api(&client, ns), move || relisted.clear());
    let reporter = Reporter { controller: "penpot-operator".into(), instance: Some(opts.instance) };
    let profiles = opts.profiles.then(|| {
        profiles(&client, ns, opts.concurrency, opts.resync, leader.clone(), reporter.clone(), shutdown.clone())
    });
    let profiles = async move {
        if let Some(profiles) = profiles {
            profiles.await
        }
    };
    let epoch = seen::Epoch::default();
    let owned_secrets = watches::owned(api::<PartialObjectMeta<Secret>>(&client, ns), epoch.clone());
    let owned_config_maps = watches::owned(api::<PartialObjectMeta<ConfigMap>>(&client, ns), epoch.clone());
    let owned_services = watches::owned(api::<PartialObjectMeta<Service>>(&client, ns), epoch.clone());
    let owned_network_policies = watches::owned(api::<PartialObjectMeta<NetworkPolicy>>(&client, ns), epoch.clone());
    let owned_ingresses = watches::owned(api::<PartialObjectMeta<Ingress>>(&client, ns), epoch.clone());
    let owned_statefulsets = watches::owned(api::<PartialObjectMeta<StatefulSet>>(&client, ns), epoch.clone());
    let owned_disruption_budgets =
        watches::owned(api::<PartialObjectMeta<PodDisruptionBudget>>(&client, ns), epoch.clone());
    let owned_service_accounts = watches::owned(api::<PartialObjectMeta<ServiceAccount>>(&client, ns), epoch.clone());
    // Every Secret but Helm's release records, which never feed a Penpot; metadata only, so
    // Secret payloads stay out of the operator's memory.
    let relation_secrets = watches::metadata(
        api::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default().fields("type!=helm.sh/release.v1"),
    )
    .touched_objects();
    // ConfigMaps holding a Penpot's CA bundle (`spec.caBundle.configMapRef`), metadata only.
    let bundle_config_maps =
        watches::metadata(api::<PartialObjectMeta<ConfigMap>>(&client, ns), watcher::Config::default())
            .touched_objects();
    let egress = Arc::new(opts.egress);
    // A finished check reconciles its Penpot again, so the result reaches status.
    let (wake, woken) = futures::channel::mpsc::unbounded::<ObjectRef<Stored>>();
    let checks = opts.relation_checks.then(|| {
        crate::checks::Checker::new(egress.clone(), move |key| {
            if let Some((ns, name)) = key.split_once('/') {
                let _ = wake.unbounded_send(ObjectRef::new(name).within(ns));
            }
        })
    });
    let context = Arc::new(Context {
        client: client.clone(),
        reporter,
        metrics: metrics.clone(),
        store: store.clone(),
        seen: seen::Seen::new(
            seen::Stores {
                secrets: owned_secrets.0,
                config_maps: owned_config_maps.0,
                services: owned_services.0,
                network_policies: owned_network_policies.0,
                ingresses: owned_ingresses.0,
                statefulsets: owned_statefulsets.0,
                pod_disruption_budgets: owned_disruption_budgets.0,
                service_accounts: owned_service_accounts.0,
            },
            epoch,
        ),
        discovery: DiscoveryCache::new(egress),
        leader,
        resync: opts.resync,
        init_image: opts.init_image,
        apis: Default::default(),
        failures,
        checks,
    });

    tokio::spawn(signal_ready(store.clone(), ready));
    let mapper_store = store.clone();
    let config_map_mapper_store = store.clone();
    let penpots = Controller::for_stream(penpot_events, store)
        .trigger_backoff(watches::SpaceErrors)
        .owns_stream(owned_statefulsets.1)
        .owns_stream(owned_secrets.1)
        .owns_stream(owned_config_maps.1)
        .owns_stream(owned_services.1)
        .owns_stream(owned_network_policies.1)
        .owns_stream(owned_disruption_budgets.1)
        .owns_stream(owned_service_accounts.1)
        .owns_stream(owned_ingresses.1)
        .watches_stream(relation_secrets, move |secret| watches::penpots_for_secret(&mapper_store, &secret))
        .watches_stream(bundle_config_maps, move |config_map| {
            watches::penpots_for_config_map(&config_map_mapper_store, &config_map)
        })
        .reconcile_on(woken)
        .with_config(kube::runtime::controller::Config::default().concurrency(opts.concurrency).debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|result| {
            if let Err(e) = &result {
                log_controller_error(&metrics, e);
            }
            std::future::ready(())
        });
    futures::join!(penpots, profiles);
}

/// The PenpotProfile controller, sharing the client, the leader gate and the shutdown signal.
fn profiles(
    client: &Client,
    ns: Option<&str>,
    concurrency: u16,
    resync: Duration,
    leader: Arc<crate::leader::Gate>,
    reporter: Reporter,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    use crate::profiles::controller as profile;
    let controller = Controller::new(api::<crate::crd::PenpotProfile>(client, ns), watcher::Config::default());
    // A changed password Secret sets the password again: map Secrets to their profiles.
    let store = controller.store();
    let secrets = watches::metadata(
        api::<PartialObjectMeta<Secret>>(client, ns),
        watcher::Config::default().fields("type!=helm.sh/release.v1"),
    )
    .touched_objects();
    controller
        .watches_stream(secrets, move |secret| watches::profiles_for_secret(&store, &secret))
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            profile::reconcile,
            profile::error_policy,
            Arc::new(profile::Context {
                client: client.clone(),
                leader,
                reporter,
                deactivations: crate::profiles::Deactivations::new(resync),
            }),
        )
        .for_each(|_| std::future::ready(()))
}

/// Tells `/readyz` once the Penpot cache has synced. The store's init signal wakes a single
/// waiter, and the controller itself waits on it; poll with a timeout so this task sees it too.
async fn signal_ready(store: Store<Stored>, ready: watch::Sender<bool>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                let _ = ready.send(true);
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => continue,
        }
    }
}

/// Counts and logs what the controller's trigger streams report.
fn log_controller_error(metrics: &Metrics, e: &kube::runtime::controller::Error<Error, watcher::Error>) {
    use kube::runtime::controller::Error::QueueError;
    match e {
        // 410 Gone: the resourceVersion left the API server's window; kube-runtime lists again
        // and the reconciles that follow see whatever was missed.
        QueueError(watcher::Error::WatchError(s)) if s.code == 410 => {
            metrics.watch_restarted(crate::metrics::WatchRestart::Expired);
            tracing::info!(error = %e, "watch expired; listing again");
        }
        // The watch failed; it restarts with its own backoff (at most WATCH_RETRY_MAX).
        QueueError(_) => {
            metrics.watch_restarted(crate::metrics::WatchRestart::Failed);
            tracing::warn!(error = %e, "watch failed; restarting");
        }
        _ => tracing::debug!(error = %e, "controller event"),
    }
}
