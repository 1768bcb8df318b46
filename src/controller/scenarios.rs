//! Apply, prune and the create races against a mocked API server (tower-test, as kube-rs's
//! controller-rs does): the order of the requests and their bodies, for cases a real cluster
//! reaches only by luck or not at all. The e2e suites check the same paths against the real
//! control plane.

use std::sync::Arc;

use http::StatusCode;
use kube::runtime::reflector;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::crd::Penpot;
use crate::relations::{self, Found, Resolution};
use crate::render::owned::{OptionalApi, RENDER_DIGEST_ANNOTATION};
use crate::render::{self, Desired};

use super::seen::{Epoch, Seen, Stores};
use super::versions::Versions;
use super::{Context, Error, apply, backoff};
use crate::test_support::{Call, Responder, mock, not_found, requests, secret_created_meanwhile};

/// The body of an apply, as the server would answer it.
fn applied(body: &Value) -> (StatusCode, Value) {
    let mut object = body.clone();
    object["metadata"]["resourceVersion"] = json!("7");
    object["metadata"]["uid"] = json!("object-uid");
    (StatusCode::OK, object)
}

fn context(client: Client, stores: Stores) -> Context {
    // The binary installs it at start; tests build the OIDC client themselves.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Context {
        client,
        reporter: kube::runtime::events::Reporter { controller: "test".into(), instance: None },
        metrics: Arc::default(),
        store: reflector::store().0,
        seen: Seen::new(stores, Epoch::default()),
        discovery: super::oidc_discovery::DiscoveryCache::new(Default::default()),
        leader: Arc::new(crate::leader::Gate::always_open()),
        resync: std::time::Duration::from_secs(300),
        init_image: crate::render::statefulset::DEFAULT_INIT_IMAGE.into(),
        apis: tokio::sync::Mutex::new(
            [OptionalApi::PrometheusOperator, OptionalApi::GatewayApi]
                .map(|api| (api, (std::time::Instant::now(), false)))
                .into(),
        ),
        failures: backoff::Failures::default(),
        // The scenarios' API server is mocked; no relation server exists to check.
        checks: None,
    }
}

fn stores() -> Stores {
    Stores {
        secrets: Versions::default(),
        config_maps: Versions::default(),
        services: Versions::default(),
        network_policies: Versions::default(),
        ingresses: Versions::default(),
        pod_disruption_budgets: Versions::default(),
        service_accounts: Versions::default(),
        statefulsets: Versions::default(),
    }
}

fn penpot() -> Penpot {
    serde_json::from_value(json!({
        "apiVersion": "penpot-operator.dev/v1alpha1",
        "kind": "Penpot",
        "metadata": {"name": "p", "namespace": "ns", "uid": "penpot-uid", "generation": 1},
        "spec": {
            "publicUri": "https://p.example.com/",
            "postgresql": {"secretRef": {"name": "pg"}},
            "redis": {"secretRef": {"name": "redis"}},
            "s3": {"secretRef": {"name": "s3"}},
        }
    }))
    .unwrap()
}

fn desired(penpot: &Penpot) -> Desired {
    let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
    let mut found = Found::new();
    let pg = data(&[("endpoints", "db:5432"), ("database", "penpot"), ("username", "u"), ("password", "pw")]);
    found.insert(crate::crd::Relation::Postgresql, ("pg".into(), pg));
    found.insert(crate::crd::Relation::Redis, ("redis".into(), data(&[("hostname", "redis"), ("port", "6379")])));
    let s3 = data(&[("access-key", "a"), ("secret-key", "s"), ("bucket", "b"), ("endpoint", "http://s3:9000")]);
    found.insert(crate::crd::Relation::S3, ("s3".into(), s3));
    let Resolution::Ready(relations) = relations::resolve(&penpot.spec, &found) else { panic!("fixture relations") };
    let inputs = render::Inputs {
        relations: *relations,
        secret_key: "k".repeat(40),
        prometheus_operator: false,
        init_image: render::statefulset::DEFAULT_INIT_IMAGE.into(),
        live: None,
        backup: render::rollout::Backup::NotNeeded,
        ca_bundle: None,
        gateway_api: false,
    };
    render::render(penpot, &inputs).unwrap()
}

/// Apply as the reconcile does: the StatefulSet read first (by resolve), then apply.
async fn apply_read(p: &Penpot, desired: &render::Desired, ctx: &Context) -> Result<apply::Applied, Error> {
    let epoch = ctx.seen.epoch();
    let statefulset = super::resolve::workload("ns", &p.name_any(), ctx).await?;
    apply::apply_all(p, "ns", desired, super::resolve::Workload { epoch, statefulset }, ctx).await
}

#[tokio::test]
async fn a_new_penpot_reads_everything_then_applies_in_order() {
    let (client, log) = mock(Box::new(|method, _, body| match method {
        "GET" => not_found(),
        _ => applied(body),
    }));
    let ctx = context(client, stores());
    let p = penpot();
    let result = apply_read(&p, &desired(&p), &ctx).await.unwrap();
    assert_eq!(result.writes, 6);
    let core = "/api/v1/namespaces/ns";
    let net = "/apis/networking.k8s.io/v1/namespaces/ns";
    let sts = "/apis/apps/v1/namespaces/ns/statefulsets/p";
    let objects = [
        format!("{core}/secrets/p-config"),
        format!("{core}/services/p-endpoints"),
        format!("{core}/services/p"),
        format!("{net}/networkpolicies/p"),
        format!("{core}/configmaps/p-dashboard"),
        sts.to_string(),
    ];
    // The StatefulSet is read once, before the render (its rollout is an input), not again.
    let expected: Vec<String> = std::iter::once(format!("GET {sts}"))
        .chain(objects[..5].iter().map(|o| format!("GET {o}")))
        .chain(objects.iter().map(|o| format!("PATCH {o}")))
        .collect();
    assert_eq!(requests(&log), expected, "every object is looked at before the first write");
    let log = log.lock().unwrap();
    for patch in log.iter().filter(|r| r.method == "PATCH") {
        let digest = &patch.body["metadata"]["annotations"][RENDER_DIGEST_ANNOTATION];
        assert!(digest.as_str().is_some_and(|d| d.len() == 32), "{}: no digest", patch.path);
        let owner = &patch.body["metadata"]["ownerReferences"][0];
        assert_eq!((owner["uid"].as_str(), owner["controller"].as_bool()), (Some("penpot-uid"), Some(true)));
    }
}

#[tokio::test]
async fn an_object_in_the_way_stops_every_write() {
    let (client, log) = mock(Box::new(|method, path, body| match (method, path) {
        ("GET", "/api/v1/namespaces/ns/services/p") => (
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "p", "namespace": "ns"}}),
        ),
        ("GET", _) => not_found(),
        _ => applied(body),
    }));
    let ctx = context(client, stores());
    let p = penpot();
    let err = apply_read(&p, &desired(&p), &ctx).await.err().expect("refused");
    assert!(
        matches!(&err, Error::InTheWay { name, holder, .. } if name == "p" && holder == "it has no controller"),
        "{err}"
    );
    assert!(
        requests(&log).iter().all(|r| r.starts_with("GET ")),
        "wrote despite the object in the way: {:?}",
        requests(&log)
    );
}

/// A mock API server holding exactly `objects`, as applied earlier.
fn holding(objects: Vec<crate::render::owned::Object>) -> Box<Responder> {
    let live: Vec<(String, Value)> = objects
        .into_iter()
        .map(|o| {
            let mut live = o.value;
            live["metadata"]["resourceVersion"] = json!("3");
            live["metadata"]["uid"] = json!(format!("uid-{}", o.name));
            (format!("{}/{}", o.kind.api_resource().plural, o.name), live)
        })
        .collect();
    Box::new(move |method, path, body| match method {
        "GET" => live
            .iter()
            .find(|(tail, _)| path.ends_with(&format!("/{tail}")))
            .map(|(_, v)| (StatusCode::OK, v.clone()))
            .unwrap_or_else(not_found),
        _ => applied(body),
    })
}

#[tokio::test]
async fn an_unchanged_object_is_not_written_and_a_removed_field_is() {
    let mut annotated = penpot();
    annotated.spec.pod_annotations.insert("team".into(), "design".into());
    let before = desired(&annotated).objects().unwrap();

    let (client, log) = mock(holding(before.clone()));
    let ctx = context(client, stores());
    let result = apply_read(&annotated, &desired(&annotated), &ctx).await.unwrap();
    assert_eq!(result.writes, 0, "{:?}", requests(&log));
    assert!(requests(&log).iter().all(|r| r.starts_with("GET ")));

    // The annotation is removed from the Penpot. The live StatefulSet still holds every field
    // of the new render (and one more): only the digest tells them apart.
    let (client, log) = mock(holding(before));
    let ctx = context(client, stores());
    let plain = penpot();
    let result = apply_read(&plain, &desired(&plain), &ctx).await.unwrap();
    let patches: Vec<String> = requests(&log).into_iter().filter(|r| r.starts_with("PATCH")).collect();
    assert_eq!(patches, ["PATCH /apis/apps/v1/namespaces/ns/statefulsets/p"]);
    assert_eq!(result.writes, 1);
    let log = log.lock().unwrap();
    let body = &log.iter().find(|r| r.method == "PATCH").unwrap().body;
    assert!(body["spec"]["template"]["metadata"]["annotations"]["team"].is_null(), "the removed key is sent again");
}

#[tokio::test]
async fn prune_deletes_what_this_penpot_controls_and_nothing_else() {
    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::core::PartialObjectMeta;
    use kube::runtime::watcher::Event;
    let cached = |name: &str, owner: &str| {
        let mut meta = PartialObjectMeta::<Ingress>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some("ns".into());
        meta.metadata.uid = Some(format!("uid-{name}"));
        meta.metadata.resource_version = Some("1".into());
        meta.metadata.owner_references =
            Some(vec![OwnerReference { uid: owner.into(), controller: Some(true), ..Default::default() }]);
        Event::Apply(meta)
    };
    let stores = stores();
    stores.ingresses.apply(&cached("p", "penpot-uid"));
    stores.ingresses.apply(&cached("other", "another-penpot"));
    let (client, log) = mock(Box::new(|method, _, body| match method {
        "GET" => not_found(),
        "DELETE" => (StatusCode::OK, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
        _ => applied(body),
    }));
    let ctx = context(client, stores);
    let p = penpot();
    let result = apply_read(&p, &desired(&p), &ctx).await.unwrap();
    let log = log.lock().unwrap();
    let deletes: Vec<&Call> = log.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].path, "/apis/networking.k8s.io/v1/namespaces/ns/ingresses/p");
    assert_eq!(deletes[0].body["preconditions"]["uid"], "uid-p", "deleted without the uid precondition");
    assert_eq!(log.last().map(|r| r.method.as_str()), Some("DELETE"), "prune runs after every apply");
    assert_eq!(result.writes, 7);
    assert_eq!(p.name_any(), "p");
}

#[tokio::test]
async fn the_secret_key_create_race_adopts_the_winners_key() {
    let winner = "w".repeat(48);
    let (client, log) = mock(secret_created_meanwhile("p-secret-key", "secret-key", &winner));
    let ctx = context(client.clone(), stores());
    let secrets = kube::Api::namespaced(client, "ns");
    let key = super::resolve::secret_key(&penpot(), &secrets, true, &ctx).await.unwrap();
    assert_eq!(key.map(|(k, _)| k), Ok(winner));
    let path = "/api/v1/namespaces/ns/secrets";
    assert_eq!(
        requests(&log),
        [format!("GET {path}/p-secret-key"), format!("POST {path}"), format!("GET {path}/p-secret-key")]
    );
}

/// The key Secret of an instance that already ran is gone: a new one is created immutable,
/// and a Warning Event says every user was logged out.
#[tokio::test]
async fn a_new_key_for_an_instance_that_ran_is_immutable_and_announced() {
    let (client, log) = mock(Box::new(|method, _, body| match method {
        "GET" => not_found(),
        _ => applied(body),
    }));
    let ctx = context(client.clone(), stores());
    let secrets = kube::Api::namespaced(client, "ns");
    let key = super::resolve::secret_key(&penpot(), &secrets, true, &ctx).await.unwrap();
    assert!(key.is_ok());
    let log = log.lock().unwrap();
    let created = log.iter().find(|r| r.method == "POST" && r.path.ends_with("/secrets")).expect("the key created");
    assert_eq!(created.body["immutable"], true);
    let event = log.iter().find(|r| r.path.contains("/events")).expect("a Warning Event");
    assert_eq!(
        (event.body["type"].as_str(), event.body["reason"].as_str()),
        (Some("Warning"), Some("SecretKeyReplaced"))
    );
    assert!(
        !event.body.to_string().contains(key.as_ref().map(|(k, _)| k.as_str()).unwrap()),
        "the key must not be in the Event"
    );
}

#[tokio::test]
async fn objects_of_a_deleted_penpot_of_the_same_name_are_waited_for_not_blocked_on() {
    let (client, log) = mock(Box::new(|method, path, body| match (method, path) {
        ("GET", "/api/v1/namespaces/ns/secrets/p-config") => {
            let owner = json!({"apiVersion": "penpot-operator.dev/v1alpha1", "kind": "Penpot", "name": "p",
                               "uid": "old-uid", "controller": true});
            (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "p-config", "namespace": "ns", "ownerReferences": [owner]}}),
            )
        }
        ("GET", _) => not_found(),
        _ => applied(body),
    }));
    let ctx = context(client, stores());
    let p = penpot();
    let err = apply_read(&p, &desired(&p), &ctx).await.err().expect("waits");
    assert!(matches!(err, Error::Predecessor { .. }), "{err}");
    assert!(requests(&log).iter().all(|r| r.starts_with("GET ")));
}
