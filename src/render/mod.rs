//! The pure half of the operator: from a Penpot, its resolved relations and its secret key to
//! every object the cluster should hold. No client, no clock, no randomness: the same inputs
//! give the same objects, byte for byte.

pub mod backup;
pub mod disruption;
pub mod flags;
pub mod gateway;
pub mod hash;
pub mod identity;
pub mod labels;
pub mod layers;
pub mod monitoring;
pub mod network;
pub mod nginx;
pub mod owned;
pub mod paths;
pub mod pebble;
pub mod rollout;
pub mod secrets;
pub mod statefulset;
pub mod storage;
pub mod template;
pub mod validate;
pub mod version;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use crate::crd::Penpot;
use crate::relations::Relations;

use owned::{Object, OwnedKind};
use rollout::{Refused, Rollout};
pub use validate::SpecError;
use version::Version;

/// What the reconcile read from the cluster, resolved and parsed.
#[derive(Clone)]
pub struct Inputs {
    pub relations: Relations,
    pub secret_key: String,
    /// The Prometheus Operator's CRDs are installed (discovered, never assumed).
    pub prometheus_operator: bool,
    /// The operator's own image: the pods' init container copies Pebble from it.
    pub init_image: String,
    /// The StatefulSet running now, if any: where a version change stands.
    pub live: Option<rollout::Live>,
    /// The pre-upgrade backup, when one is asked for and a version change is pending.
    pub backup: rollout::Backup,
    /// `spec.caBundle`'s certificates, checked and as PEM.
    pub ca_bundle: Option<String>,
    /// The Gateway API's HTTPRoute is served (discovered; asked only with `spec.gateway`).
    pub gateway_api: bool,
}

crate::relations::debug_hiding!(Inputs {
    shows: [relations, prometheus_operator, init_image, live, backup, ca_bundle, gateway_api],
    hides: [secret_key]
});

/// Every object one Penpot owns, in apply order: configuration before the workload, so pods
/// never start on stale config.
#[derive(Clone)]
pub struct Desired {
    pub config: Secret,
    pub headless_service: Service,
    pub service: Service,
    pub network_policy: NetworkPolicy,
    /// The pods' ServiceAccount, when `spec.serviceAccount` gives annotations.
    pub service_account: Option<ServiceAccount>,
    /// The assets claim of `storage.filesystem`, unless the user names an existing one.
    pub assets_claim: Option<PersistentVolumeClaim>,
    /// With more than one replica.
    pub pod_disruption_budget: Option<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    pub ingress: Option<Ingress>,
    /// With `spec.gateway`.
    pub http_route: Option<DynamicObject>,
    /// Grafana dashboard for the sidecar.
    pub dashboard: ConfigMap,
    /// When the Prometheus Operator is installed and monitoring is on.
    pub pod_monitor: Option<DynamicObject>,
    pub prometheus_rule: Option<DynamicObject>,
    pub statefulset: StatefulSet,
    pub config_hash: String,
    pub public_uri: String,
    /// Per OAuth login provider, the callback URI to register at the provider.
    pub redirect_uris: BTreeMap<String, String>,
    pub version: Version,
    pub rollout: Rollout,
}

// The config Secret holds every credential in its layers.
crate::relations::debug_hiding!(Desired {
    shows: [
        headless_service,
        service,
        network_policy,
        service_account,
        assets_claim,
        pod_disruption_budget,
        ingress,
        http_route,
        dashboard,
        pod_monitor,
        prometheus_rule,
        statefulset,
        config_hash,
        public_uri,
        redirect_uris,
        version,
        rollout
    ],
    hides: [config]
});

impl Desired {
    /// Every rendered object in apply order, each stamped with its digest. The destructuring
    /// names every field (no `..`): a new object does not compile until it is listed here,
    /// and apply, prune and the `render` command all take their list from this one.
    pub fn objects(&self) -> Result<Vec<Object>, serde_json::Error> {
        let Desired {
            config,
            headless_service,
            service,
            network_policy,
            service_account,
            assets_claim,
            pod_disruption_budget,
            ingress,
            http_route,
            dashboard,
            pod_monitor,
            prometheus_rule,
            statefulset,
            config_hash: _,
            public_uri: _,
            redirect_uris: _,
            version: _,
            rollout: _,
        } = self;
        fn one<T: Resource + serde::Serialize>(kind: OwnedKind, o: &T) -> Result<Object, serde_json::Error> {
            Object::new(kind, o.meta().name.as_deref().unwrap_or_default(), o)
        }
        let mut out = vec![
            one(OwnedKind::Secret, config)?,
            one(OwnedKind::Service, headless_service)?,
            one(OwnedKind::Service, service)?,
            one(OwnedKind::NetworkPolicy, network_policy)?,
        ];
        if let Some(account) = service_account {
            out.push(one(OwnedKind::ServiceAccount, account)?);
        }
        if let Some(claim) = assets_claim {
            out.push(one(OwnedKind::PersistentVolumeClaim, claim)?);
        }
        if let Some(ingress) = ingress {
            out.push(one(OwnedKind::Ingress, ingress)?);
        }
        if let Some(route) = http_route {
            out.push(one(OwnedKind::HttpRoute, route)?);
        }
        out.push(one(OwnedKind::ConfigMap, dashboard)?);
        if let Some(pod_monitor) = pod_monitor {
            out.push(one(OwnedKind::PodMonitor, pod_monitor)?);
        }
        if let Some(rule) = prometheus_rule {
            out.push(one(OwnedKind::PrometheusRule, rule)?);
        }
        if let Some(budget) = pod_disruption_budget {
            out.push(one(OwnedKind::PodDisruptionBudget, budget)?);
        }
        out.push(one(OwnedKind::StatefulSet, statefulset)?);
        Ok(out)
    }
}

#[derive(thiserror::Error, Debug)]
pub enum RenderError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("cannot serialise the Pebble layer: {0}")]
    Layer(#[from] serde_saphyr::SerializeError),
}

impl RenderError {
    /// How status names this refusal.
    pub fn reason(&self) -> crate::conditions::Reason {
        match self {
            RenderError::Refused(Refused::Downgrade { .. }) => crate::conditions::Reason::DowngradeRefused,
            RenderError::Refused(Refused::BackupFailed { .. }) => crate::conditions::Reason::BackupFailed,
            RenderError::Refused(Refused::NoBackupCluster { .. }) => crate::conditions::Reason::BackupUnavailable,
            RenderError::Spec(_) | RenderError::Layer(_) => crate::conditions::Reason::InvalidSpec,
        }
    }
}

/// The Penpot version the spec asks for: `spec.version`, else the tag of `images.penpot`
/// (how versions were chosen before `spec.version`), else the release this operator pins.
/// The schema admits only `x.y.z` in `spec.version`.
pub fn penpot_version(penpot: &Penpot) -> Version {
    let spec = &penpot.spec;
    spec.version
        .as_deref()
        .and_then(Version::parse)
        .or_else(|| spec.images.penpot.as_deref().and_then(Version::from_image))
        .unwrap_or(Version::CURRENT)
}

/// Metadata shared by the owned objects: names, namespace, labels, owner reference.
pub fn meta<'a>(penpot: &'a Penpot, version: &'a str) -> network::Meta<'a> {
    network::Meta {
        name: penpot.meta().name.as_deref().unwrap_or_default(),
        namespace: penpot.namespace(),
        // Absent offline (`render` on a file without a uid); always present from the cluster.
        owner: penpot.controller_owner_ref(&()),
        version,
    }
}

pub fn render(penpot: &Penpot, inputs: &Inputs) -> Result<Desired, RenderError> {
    let version = penpot_version(penpot);
    let settings = validate::validate(penpot, &inputs.relations, version)?;
    let allow_downgrade = penpot.spec.upgrade.as_ref().is_some_and(|u| u.allow_downgrade);
    let rollout = rollout::plan(inputs.live.as_ref(), version, allow_downgrade, &inputs.backup)?;
    let version_str = version.to_string();
    let m = meta(penpot, &version_str);
    let spec = &penpot.spec;

    let logins = inputs.relations.logins();
    let flags = flags::Flags::compute(&flags::FlagInputs {
        smtp: inputs.relations.smtp.is_some(),
        logins: &logins,
        password_login: spec.password_login,
        insecure_http: settings.insecure_http,
        air_gapped: spec.air_gapped,
        telemetry: settings.telemetry,
        extra: &spec.flags,
    });
    let namespace = m.namespace.clone().unwrap_or_default();
    let logging = spec.logging.as_ref().and_then(|l| l.loki.as_ref()).map(|loki| layers::Logging {
        loki,
        instance: m.name,
        namespace: &namespace,
    });
    let layer_inputs = layers::LayerInputs {
        instance: m.name,
        settings: &settings,
        relations: &inputs.relations,
        flags: &flags,
        secret_key: &inputs.secret_key,
        logging: logging.as_ref(),
        extra_env: spec.env.as_ref(),
        private_ca: inputs.ca_bundle.is_some(),
        oidc_options: spec.oidc.as_ref(),
    };
    if let Some(extra) = &spec.env {
        validate::check_extra_env("backend", &extra.backend, &layers::backend_environment(&layer_inputs))?;
        validate::check_extra_env("exporter", &extra.exporter, &layers::exporter_environment(&layer_inputs))?;
    }
    let nginx_inputs = nginx::NginxInputs {
        exporter: settings.exporter,
        air_gapped: spec.air_gapped,
        max_body_size: settings.max_body_size.unwrap_or(validate::DEFAULT_MAX_BODY_SIZE),
        filesystem_storage: settings.filesystem_storage,
        private_ca: inputs.ca_bundle.is_some(),
    };
    let oidc_name = inputs.relations.oidc.as_ref().and_then(|o| o.display_name.as_deref());

    let mut data: BTreeMap<String, String> = [
        (paths::PENPOT_LAYER_FILE.to_string(), layers::penpot_layer(&layer_inputs).to_yaml()?),
        (paths::NGINX_LAYER_FILE.to_string(), layers::nginx_layer(m.name, logging.as_ref()).to_yaml()?),
        (paths::NGINX_CONF_FILE.to_string(), nginx::nginx_conf(&nginx_inputs)),
        (paths::CONFIG_JS_FILE.to_string(), nginx::config_js(&flags.frontend_str(), &settings.public_uri, oidc_name)),
    ]
    .into();
    if let Some(pem) = &inputs.ca_bundle {
        data.insert(paths::CA_BUNDLE_KEY.to_string(), pem.clone());
    }
    if settings.exporter {
        data.insert(paths::EXPORTER_LAYER_FILE.to_string(), layers::exporter_layer(&layer_inputs).to_yaml()?);
    }
    let config_hash = hash::config_hash(&data);

    let statefulset = statefulset::statefulset(&statefulset::StatefulSetInputs {
        penpot,
        name: m.name,
        namespace: m.namespace.clone(),
        owner: m.owner.clone(),
        version,
        config_hash: &config_hash,
        init_image: &inputs.init_image,
        rollout: &rollout,
        exporter: settings.exporter,
        private_ca: inputs.ca_bundle.is_some(),
    });
    let monitor = inputs.prometheus_operator && spec.monitoring.as_ref().is_none_or(|m| m.enabled);
    let no_labels = BTreeMap::new();
    let monitoring_labels = spec.monitoring.as_ref().map_or(&no_labels, |m| &m.labels);
    Ok(Desired {
        config: secrets::config_secret(&m, data),
        headless_service: network::headless_service(&m),
        service: network::service(&m),
        network_policy: network::network_policy(&m),
        service_account: identity::service_account(&m, spec.service_account.as_ref()),
        assets_claim: spec.filesystem_storage().and_then(|fs| storage::assets_claim(&m, fs)),
        pod_disruption_budget: disruption::pod_disruption_budget(&m, spec.replicas),
        ingress: spec.ingress.as_ref().and_then(|i| network::ingress(&m, i, settings.max_body_size)),
        http_route: match &spec.gateway {
            Some(_) if !inputs.gateway_api => return Err(SpecError::NoGatewayApi.into()),
            Some(g) => Some(gateway::http_route(&m, g, &settings.public_uri)),
            None => None,
        },
        dashboard: monitoring::dashboard(&m, version, monitoring_labels),
        pod_monitor: monitor.then(|| monitoring::pod_monitor(&m, monitoring_labels)),
        prometheus_rule: monitor.then(|| monitoring::prometheus_rule(&m, version, monitoring_labels)),
        statefulset,
        config_hash,
        redirect_uris: redirect_uris(&settings.public_uri, &logins, version),
        public_uri: settings.public_uri,
        version,
        rollout,
    })
}

/// Where each OAuth provider sends users back, on the public URI's origin (Penpot replaces
/// the URI's path): `/api/auth/oidc/callback` for all of them since 2.12, before that
/// `/api/auth/oauth/<provider>/callback`. LDAP has no callback.
pub fn redirect_uris(public_uri: &str, logins: &[crate::crd::Relation], version: Version) -> BTreeMap<String, String> {
    let Ok(mut uri) = url::Url::parse(public_uri) else { return BTreeMap::new() };
    logins
        .iter()
        .filter(|r| **r != crate::crd::Relation::Ldap)
        .map(|r| {
            uri.set_path(&if version >= Version::SHARED_OAUTH_CALLBACK {
                "/api/auth/oidc/callback".to_string()
            } else {
                format!("/api/auth/oauth/{r}/callback")
            });
            (r.name().to_string(), uri.to_string())
        })
        .collect()
}
