//! The StatefulSet carrying the `nginx` and `penpot` containers, each running Pebble on its
//! rendered layer.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, KeyToPath, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{Penpot, PenpotSpec};

use super::labels::{self, CONFIG_HASH_ANNOTATION};
use super::paths;

pub const DEFAULT_IMAGE: &str = "ghcr.io/penpot-operator/penpot:2.17.0";

pub struct StatefulSetInputs<'a> {
    pub penpot: &'a Penpot,
    pub name: &'a str,
    pub namespace: Option<String>,
    pub owner: Option<OwnerReference>,
    pub version: &'a str,
    pub config_hash: &'a str,
}

/// What each container differs in.
struct ContainerPlan {
    name: &'static str,
    image: String,
    pebble_port: u16,
    extra_mounts: Vec<VolumeMount>,
    ports: Vec<ContainerPort>,
    resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    working_dir: Option<String>,
    /// What "ready to serve" means for this container (see [`ready_on`]).
    readiness: Probe,
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

fn container(plan: ContainerPlan, pull_policy: Option<String>) -> Container {
    let layers_volume = format!("{}-layers", plan.name);
    let pebble_volume = format!("{}-pebble", plan.name);
    let tmp_volume = format!("{}-tmp", plan.name);
    let mut mounts = vec![
        mount(&pebble_volume, paths::PEBBLE_DIR, false),
        mount(&layers_volume, paths::PEBBLE_LAYERS_DIR, true),
        mount(&tmp_volume, "/tmp", false),
    ];
    mounts.extend(plan.extra_mounts);
    let mut ports = plan.ports;
    // Port names are unique per pod, not per container.
    ports.push(port(&format!("pebble-{}", plan.name), plan.pebble_port));
    Container {
        name: plan.name.into(),
        image: Some(plan.image),
        image_pull_policy: pull_policy,
        command: Some(vec![
            paths::PEBBLE_BINARY.into(),
            "run".into(),
            "--http".into(),
            format!(":{}", plan.pebble_port),
            "--verbose".into(),
        ]),
        // Set in the container env too, so `kubectl exec ... pebble services` finds the daemon.
        env: Some(vec![EnvVar { name: "PEBBLE".into(), value: Some(paths::PEBBLE_DIR.into()), ..Default::default() }]),
        ports: Some(ports),
        startup_probe: Some(probe("alive", plan.pebble_port, 1, 30)),
        liveness_probe: Some(probe("alive", plan.pebble_port, 5, 3)),
        readiness_probe: Some(plan.readiness),
        resources: plan.resources,
        working_dir: plan.working_dir,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
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
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(labels::labels(i.name, "penpot", i.version));
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(i.name.into()),
            namespace: i.namespace.clone(),
            labels: Some(labels::labels(i.name, "penpot", i.version)),
            owner_references: i.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(labels::headless_service_name(i.name)),
            selector: LabelSelector { match_labels: Some(labels::selector(i.name)), ..Default::default() },
            // Pods are interchangeable; start and replace them without waiting on each other.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..Default::default()
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations(spec, i.config_hash)),
                    ..Default::default()
                }),
                spec: Some(pod_spec(spec, &labels::config_secret_name(i.name))),
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
    annotations.insert("prometheus.io/scrape".into(), "true".into());
    annotations.insert("prometheus.io/port".into(), paths::BACKEND_PORT.to_string());
    annotations.insert("prometheus.io/path".into(), "/metrics".into());
    annotations
}

fn pod_spec(spec: &PenpotSpec, config_secret: &str) -> PodSpec {
    PodSpec {
        containers: containers(spec),
        volumes: Some(volumes(config_secret)),
        // Penpot reads every PENPOT_* variable; Service links would inject some.
        enable_service_links: Some(false),
        automount_service_account_token: Some(false),
        // Pebble waits kill-delay (5 s) + 5 s per service before it gives up.
        termination_grace_period_seconds: Some(30),
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
        ..Default::default()
    }
}

/// `nginx` (frontend) and `penpot` (backend and exporter), each running Pebble.
fn containers(spec: &PenpotSpec) -> Vec<Container> {
    let pull_policy = spec.image_pull_policy.map(|p| p.as_str().to_string());
    let resources = spec.resources.clone().unwrap_or_default();
    let nginx = ContainerPlan {
        name: "nginx",
        // One workload image serves both containers; keep their Penpot versions together.
        image: spec.images.nginx.clone().or_else(|| spec.images.penpot.clone()).unwrap_or_else(|| DEFAULT_IMAGE.into()),
        pebble_port: paths::PEBBLE_PORT_NGINX,
        extra_mounts: vec![mount("nginx-config", paths::NGINX_CONFIG_DIR, true)],
        ports: vec![port("http", paths::NGINX_PORT), port("metrics", paths::NGINX_EXPORTER_PORT)],
        working_dir: None,
        resources: resources.nginx,
        // A static answer from nginx itself: the frontend's /readyz is the backend's.
        readiness: ready_on(paths::NGINX_HEALTH_PATH, paths::NGINX_PORT),
    };
    let penpot = ContainerPlan {
        name: "penpot",
        image: spec.images.penpot.clone().unwrap_or_else(|| DEFAULT_IMAGE.into()),
        pebble_port: paths::PEBBLE_PORT_PENPOT,
        extra_mounts: vec![],
        ports: vec![port("backend", paths::BACKEND_PORT)],
        // `kubectl exec` (and the profile commands) land where manage.py lives.
        working_dir: Some(paths::BACKEND_DIR.into()),
        resources: resources.penpot,
        // The backend's own check: 200 once it serves and reaches its database.
        readiness: ready_on("/readyz", paths::BACKEND_PORT),
    };
    vec![container(nginx, pull_policy.clone()), container(penpot, pull_policy)]
}

/// Per container: Pebble's state and /tmp (the root filesystem is read-only) and its layer;
/// nginx also gets its configuration. All from the one config Secret.
fn volumes(config_secret: &str) -> Vec<Volume> {
    vec![
        empty_dir("nginx-pebble"),
        empty_dir("nginx-tmp"),
        secret_volume("nginx-layers", config_secret, &[paths::NGINX_LAYER_FILE]),
        secret_volume("nginx-config", config_secret, &[paths::NGINX_CONF_FILE, paths::CONFIG_JS_FILE]),
        empty_dir("penpot-pebble"),
        empty_dir("penpot-tmp"),
        secret_volume("penpot-layers", config_secret, &[paths::PENPOT_LAYER_FILE]),
    ]
}
