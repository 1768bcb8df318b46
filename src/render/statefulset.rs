//! The StatefulSet of one Penpot: Penpot's own images (`frontend` as `nginx`, `backend` as
//! `penpot`, `exporter`), each running Pebble, injected by an init container from the
//! operator's image, on its rendered layer, as the images' user under a read-only root.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, KeyToPath, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{Penpot, PenpotSpec};

use super::labels::{self, CONFIG_HASH_ANNOTATION};
use super::paths;
use super::rollout::{MIGRATED_ANNOTATION, Rollout};
use super::storage::{ASSETS_VOLUME, assets_volume};
use super::version::Version;

/// Pod-template annotation with a digest of the workload ServiceAccount's annotations.
pub const SERVICE_ACCOUNT_HASH_ANNOTATION: &str = "penpot-operator.dev/service-account-hash";

/// The emptyDir the init container fills (Pebble, nginx includes, trust files).
const OPERATOR_VOLUME: &str = "operator";
/// `spec.caBundle` from the config Secret, for the init container only.
const CA_VOLUME: &str = "ca-bundle";

/// Penpot's own images; the tag is the Penpot version.
pub const UPSTREAM_FRONTEND: &str = "docker.io/penpotapp/frontend";
pub const UPSTREAM_BACKEND: &str = "docker.io/penpotapp/backend";
pub const UPSTREAM_EXPORTER: &str = "docker.io/penpotapp/exporter";
/// The operator's image of this release, which the pods' init container runs unless the
/// operator is told its own image (`--init-image`, set by the Helm chart).
pub const DEFAULT_INIT_IMAGE: &str = concat!("ghcr.io/penpot-operator/penpot-operator:", env!("CARGO_PKG_VERSION"));

pub struct StatefulSetInputs<'a> {
    pub penpot: &'a Penpot,
    pub name: &'a str,
    pub namespace: Option<String>,
    pub owner: Option<OwnerReference>,
    pub version: Version,
    pub config_hash: &'a str,
    /// The operator's own image, which copies Pebble into the pod.
    pub init_image: &'a str,
    pub rollout: &'a Rollout,
    pub exporter: bool,
    /// `spec.caBundle` is in the config Secret: the init container writes the trust files.
    pub private_ca: bool,
}

/// What each container differs in.
struct ContainerPlan {
    name: &'static str,
    image: String,
    pebble_port: u16,
    extra_mounts: Vec<VolumeMount>,
    ports: Vec<ContainerPort>,
    resources: Option<ResourceRequirements>,
    working_dir: Option<String>,
    /// What "ready to serve" means for this container (see [`ready_on`]); `None` for a
    /// container whose outage must not take the pod out of the Service.
    readiness: Option<Probe>,
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number.into(),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Readiness on the workload's own HTTP endpoint, not Pebble's: Pebble checks start "up", so
/// a `level=ready` probe passes for the first check period while nothing listens yet, pods
/// turn Ready about 30 s early and a rolling update takes the next pod down too soon.
fn ready_on(path: &str, port: u16) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        success_threshold: Some(1),
        failure_threshold: Some(2),
        ..Default::default()
    }
}

/// Startup and liveness on Pebble's health endpoint, wired as Juju wires them.
fn probe(level: &str, port: u16, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(format!("/v1/health?level={level}")),
            port: IntOrString::Int(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The restricted Pod Security Standard, for every container, the init container included.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// A workload container: the image's own files, Pebble injected as its entrypoint.
fn container(plan: ContainerPlan, pull_policy: Option<String>) -> Container {
    let layers_volume = format!("{}-layers", plan.name);
    let pebble_volume = format!("{}-pebble", plan.name);
    let tmp_volume = format!("{}-tmp", plan.name);
    let mut mounts = vec![
        mount(OPERATOR_VOLUME, paths::OPERATOR_DIR, true),
        mount(&pebble_volume, paths::PEBBLE_DIR, false),
        mount(&layers_volume, paths::PEBBLE_LAYERS_DIR, true),
        mount(&tmp_volume, paths::TMP_DIR, false),
    ];
    mounts.extend(plan.extra_mounts);
    let mut ports = plan.ports;
    // Port names are unique per pod, not per container.
    ports.push(port(&format!("pebble-{}", plan.name), plan.pebble_port));
    Container {
        name: plan.name.into(),
        image: Some(plan.image),
        image_pull_policy: pull_policy,
        // No --hold: the layers are files, so Pebble starts the services itself.
        command: Some(vec![
            paths::PEBBLE_BINARY.into(),
            "run".into(),
            "--http".into(),
            format!(":{}", plan.pebble_port),
            "--verbose".into(),
        ]),
        env: Some(vec![
            // Also for `kubectl exec ... /operator/bin/pebble services`.
            env("PEBBLE", paths::PEBBLE_DIR),
            // The images' HOME (/opt/penpot) is on the read-only root.
            env("HOME", paths::TMP_DIR),
        ]),
        ports: Some(ports),
        startup_probe: Some(probe("alive", plan.pebble_port, 1, 30)),
        liveness_probe: Some(probe("alive", plan.pebble_port, 5, 3)),
        readiness_probe: plan.readiness,
        resources: plan.resources,
        working_dir: plan.working_dir,
        security_context: Some(restricted()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// Copies the operator image's Pebble into the pod and writes nginx's per-pod includes, as
/// Juju's `charm-init` does: the operator image has no shell, so its own binary does it.
fn init_container(image: &str, resolver: Option<&str>, private_ca: bool, pull_policy: Option<String>) -> Container {
    let mut command = vec![
        paths::OPERATOR_BINARY.to_string(),
        "prepare-pod".into(),
        "--into".into(),
        paths::OPERATOR_DIR.into(),
        "--nginx-port".into(),
        paths::NGINX_PORT.to_string(),
    ];
    if let Some(resolver) = resolver {
        command.extend(["--resolver".to_string(), resolver.to_string()]);
    }
    let mut mounts = vec![mount(OPERATOR_VOLUME, paths::OPERATOR_DIR, false)];
    if private_ca {
        command.extend(["--ca-bundle".to_string(), format!("{}/{}", paths::INIT_CA_DIR, paths::CA_BUNDLE_KEY)]);
        mounts.push(mount(CA_VOLUME, paths::INIT_CA_DIR, true));
    }
    let quantity = |q: &str| Quantity(q.into());
    Container {
        name: "init".into(),
        image: Some(image.into()),
        image_pull_policy: pull_policy,
        command: Some(command),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), quantity("10m")), ("memory".to_string(), quantity("16Mi"))].into()),
            limits: Some([("memory".to_string(), quantity("64Mi"))].into()),
            ..Default::default()
        }),
        security_context: Some(restricted()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: &str, keys: &[&str]) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            // Group-readable through fsGroup; nothing else may read credentials.
            default_mode: Some(0o440),
            items: Some(keys.iter().map(|k| KeyToPath { key: (*k).into(), path: (*k).into(), mode: None }).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

pub fn statefulset(i: &StatefulSetInputs) -> StatefulSet {
    let spec = &i.penpot.spec;
    let version = i.version.to_string();
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(labels::labels(i.name, "penpot", &version));
    let annotations = i.rollout.migrated().map(|v| [(MIGRATED_ANNOTATION.to_string(), v.to_string())].into());
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(i.name.into()),
            namespace: i.namespace.clone(),
            labels: Some(labels::labels(i.name, "penpot", &version)),
            annotations,
            owner_references: i.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(i.rollout.replicas(spec.replicas)),
            service_name: Some(labels::headless_service_name(i.name)),
            selector: LabelSelector { match_labels: Some(labels::selector(i.name)), ..Default::default() },
            // Pods are interchangeable; start and replace them without waiting on each other.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                // Always rendered, so the end of a version change resets it.
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(i.rollout.partition(spec.replicas)),
                    ..Default::default()
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations(spec, i.config_hash)),
                    ..Default::default()
                }),
                spec: Some(pod_spec(i, &labels::config_secret_name(i.name))),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The user's annotations, the configuration hash (whose change rolls the pods) and the
/// scrape hints for a Prometheus without the Prometheus Operator (which gets a PodMonitor).
fn pod_annotations(spec: &PenpotSpec, config_hash: &str) -> BTreeMap<String, String> {
    let mut annotations = spec.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    // Identity webhooks read the ServiceAccount when a pod is created: a changed role rolls.
    if let Some(sa) = spec.service_account.as_ref().and_then(|sa| sa.annotations.as_ref()) {
        let text: String = sa.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        annotations.insert(SERVICE_ACCOUNT_HASH_ANNOTATION.into(), super::hash::short_hex(&digest));
    }
    annotations.insert("prometheus.io/scrape".into(), "true".into());
    annotations.insert("prometheus.io/port".into(), paths::BACKEND_PORT.to_string());
    annotations.insert("prometheus.io/path".into(), "/metrics".into());
    annotations
}

fn pod_spec(i: &StatefulSetInputs, config_secret: &str) -> PodSpec {
    let spec = &i.penpot.spec;
    let pull_policy = spec.image_pull_policy.map(|p| p.as_str().to_string());
    PodSpec {
        init_containers: Some(vec![init_container(
            i.init_image,
            spec.dns_resolver.as_deref(),
            i.private_ca,
            pull_policy,
        )]),
        containers: containers(spec, i.version, i.exporter),
        volumes: Some(volumes(i, config_secret)),
        // Penpot reads every PENPOT_* variable; Service links would inject some.
        enable_service_links: Some(false),
        automount_service_account_token: Some(false),
        // Pebble waits kill-delay (5 s) + 5 s per service before it gives up.
        termination_grace_period_seconds: Some(30),
        // The images' own user: no container needs root, Pebble starts services as itself.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(paths::RUN_AS_USER),
            run_as_group: Some(paths::RUN_AS_USER),
            fs_group: Some(paths::RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..Default::default()
        }),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: spec.affinity.clone(),
        topology_spread_constraints: (!spec.topology_spread_constraints.is_empty()).then(|| {
            let selector = LabelSelector { match_labels: Some(labels::selector(i.name)), ..Default::default() };
            spec.topology_spread_constraints
                .iter()
                .cloned()
                .map(|mut c| {
                    c.label_selector.get_or_insert_with(|| selector.clone());
                    c
                })
                .collect()
        }),
        priority_class_name: spec.priority_class_name.clone(),
        service_account_name: super::identity::service_account_name(i.name, spec.service_account.as_ref()),
        ..Default::default()
    }
}

/// The image of one container: the spec's, else Penpot's own at the version.
fn image(set: &Option<String>, upstream: &str, version: Version) -> String {
    set.clone().unwrap_or_else(|| format!("{upstream}:{version}"))
}

/// `exporter` (optional), `nginx` and `penpot`, each from its own image, each running Pebble.
fn containers(spec: &PenpotSpec, version: Version, exporter: bool) -> Vec<Container> {
    let pull_policy = spec.image_pull_policy.map(|p| p.as_str().to_string());
    let resources = spec.resources.clone().unwrap_or_default();
    // Filesystem storage: the backend writes assets, nginx only sends them.
    let assets = |read_only| spec.filesystem_storage().map(|_| mount(ASSETS_VOLUME, paths::ASSETS_DIR, read_only));
    let nginx = ContainerPlan {
        name: "nginx",
        image: image(&spec.images.nginx, UPSTREAM_FRONTEND, version),
        pebble_port: paths::PEBBLE_PORT_NGINX,
        extra_mounts: [Some(mount("nginx-config", paths::NGINX_CONFIG_DIR, true)), assets(true)]
            .into_iter()
            .flatten()
            .collect(),
        ports: vec![port("http", paths::NGINX_PORT)],
        working_dir: None,
        resources: resources.nginx,
        // A static answer from nginx itself: the frontend's /readyz is the backend's.
        readiness: Some(ready_on(paths::NGINX_HEALTH_PATH, paths::NGINX_PORT)),
    };
    let penpot = ContainerPlan {
        name: "penpot",
        image: image(&spec.images.penpot, UPSTREAM_BACKEND, version),
        pebble_port: paths::PEBBLE_PORT_PENPOT,
        extra_mounts: assets(false).into_iter().collect(),
        ports: vec![port("backend", paths::BACKEND_PORT)],
        // `kubectl exec` lands where manage.py lives, for admins who run it by hand.
        working_dir: Some(paths::BACKEND_DIR.into()),
        resources: resources.penpot,
        // The backend's own check: 200 once it serves and reaches its database.
        readiness: Some(ready_on("/readyz", paths::BACKEND_PORT)),
    };
    let mut out = Vec::with_capacity(3);
    if exporter {
        let exporter = ContainerPlan {
            name: "exporter",
            image: image(&spec.images.exporter, UPSTREAM_EXPORTER, version),
            pebble_port: paths::PEBBLE_PORT_EXPORTER,
            extra_mounts: vec![],
            ports: vec![port("exporter", paths::EXPORTER_PORT)],
            working_dir: Some(paths::EXPORTER_DIR.into()),
            resources: resources.exporter,
            // Exports are optional: a broken exporter is restarted by Pebble's check, and
            // never takes the pod out of the Service.
            readiness: None,
        };
        out.push(container(exporter, pull_policy.clone()));
    }
    out.push(container(nginx, pull_policy.clone()));
    out.push(container(penpot, pull_policy));
    out
}

/// The init container's output, shared; per container Pebble's state and /tmp (the root
/// filesystem is read-only) and its layer; nginx also gets its configuration. Layers and
/// configuration all come from the one config Secret. Filesystem storage adds the assets claim.
fn volumes(i: &StatefulSetInputs, config_secret: &str) -> Vec<Volume> {
    let mut volumes = vec![empty_dir(OPERATOR_VOLUME)];
    if i.private_ca {
        volumes.push(secret_volume(CA_VOLUME, config_secret, &[paths::CA_BUNDLE_KEY]));
    }
    if i.exporter {
        volumes.extend([
            empty_dir("exporter-pebble"),
            empty_dir("exporter-tmp"),
            secret_volume("exporter-layers", config_secret, &[paths::EXPORTER_LAYER_FILE]),
        ]);
    }
    volumes.extend([
        empty_dir("nginx-pebble"),
        empty_dir("nginx-tmp"),
        secret_volume("nginx-layers", config_secret, &[paths::NGINX_LAYER_FILE]),
        secret_volume("nginx-config", config_secret, &[paths::NGINX_CONF_FILE, paths::CONFIG_JS_FILE]),
        empty_dir("penpot-pebble"),
        empty_dir("penpot-tmp"),
        secret_volume("penpot-layers", config_secret, &[paths::PENPOT_LAYER_FILE]),
    ]);
    volumes.extend(i.penpot.spec.filesystem_storage().map(|fs| assets_volume(i.name, fs)));
    volumes
}
