//! `Penpot` v1alpha1: the spec users write and the status the operator reports.
//!
//! Validation that the API server can do lives here (schemars constraints and CEL rules), so
//! `kubectl apply` rejects a bad resource with the field named. Semantic checks that need the
//! relation data live in `render::validate`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every kind this operator serves.
pub const GROUP: &str = "penpot-operator.dev";

/// A Penpot instance: the nginx frontend, the backend and the exporter, wired to its relations.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "penpot-operator.dev",
    version = "v1alpha1",
    kind = "Penpot",
    namespaced,
    status = "PenpotStatus",
    shortname = "pp",
    category = "penpot-all",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"URI","type":"string","jsonPath":".status.publicUri"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("has(self.spec.publicUri) || (has(self.spec.ingress) && has(self.spec.ingress.host))")
        .message("spec.publicUri is required unless spec.ingress.host is set")
        .field_path(".spec.publicUri")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.spec.s3) || !has(self.spec.storage) || !has(self.spec.storage.filesystem)")
        .message("spec.s3 and spec.storage.filesystem are exclusive: assets go to a bucket or to a volume, not both")
        .field_path(".spec.storage.filesystem"),
    validation = Rule::new("!has(self.spec.storage) || !has(self.spec.storage.filesystem) || self.spec.replicas <= 1 || self.spec.storage.filesystem.accessMode == 'ReadWriteMany'")
        .message("spec.storage.filesystem.accessMode must be ReadWriteMany with more than one replica: every pod mounts the same volume")
        .field_path(".spec.storage.filesystem.accessMode"),
    validation = Rule::new("self.metadata.name.size() <= 45")
        .message("metadata.name must be at most 45 characters: owned object names add suffixes and pod names must stay valid labels"),
)]
#[serde(rename_all = "camelCase")]
pub struct PenpotSpec {
    /// External URL users type, e.g. `https://penpot.example.com/`. Defaults to
    /// `https://<ingress.host>/` when an ingress host is set. Penpot requires HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?(/[^\s]*)?$"), length(max = 2048))]
    pub public_uri: Option<String>,

    /// Accept an `http://` public URI (test setups only: session cookies lose `Secure`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_insecure_http: bool,

    /// Number of Penpot pods. Every pod runs nginx, the backend and (optionally) the exporter.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// PostgreSQL relation (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresqlRelation>,
    /// Redis / Valkey relation (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RelationRef>,
    /// S3 object storage relation (required unless `storage.filesystem` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<RelationRef>,
    /// Where uploaded files go when there is no bucket: a volume (`storage.filesystem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// SMTP relation (optional; required when OIDC is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpRelation>,
    /// OpenID Connect relation (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcRelation>,
    /// Google login: a Secret with the OAuth client (`client_id`, `client_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<RelationRef>,
    /// GitHub login: a Secret with the OAuth app (`client_id`, `client_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<RelationRef>,
    /// GitLab login: a Secret with the application (`client_id`, `client_secret`, optional
    /// `base_uri` of a self-hosted GitLab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<RelationRef>,
    /// LDAP login: a Secret with the directory (`host`, `base_dn`, optional `port`,
    /// `transport_security`, `bind_dn`, `bind_password`, `user_query`, `attrs_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<RelationRef>,
    /// Password login. Default: on without any other login provider, off with one (the
    /// charm's behaviour with OIDC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_login: Option<bool>,

    /// An Ingress to the Penpot Service, owned by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// A Gateway API HTTPRoute to the Penpot Service, for clusters that route with Gateways
    /// instead of Ingress. Needs the Gateway API CRDs (`gateway.networking.k8s.io/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// Penpot release to run, e.g. `2.17.0`: the tag of the upstream images and the settings
    /// that release understands. Default: the tag of `images.penpot` when it has one, else the
    /// release this operator is tested with. Changing it upgrades one pod first (see
    /// docs/how-to/upgrade.md); a lower version than the database runs is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$"))]
    pub version: Option<String>,

    /// How version changes are carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeSpec>,

    /// Container images; unset fields are Penpot's own images at `version`.
    #[serde(default, skip_serializing_if = "Images::is_empty")]
    pub images: Images,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Extra Penpot flags (`enable-x` / `disable-x`), appended after the computed ones so they win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^(enable|disable)-[a-z0-9]+(-[a-z0-9]+)*$")))]
    pub flags: Vec<String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<ExporterSpec>,

    /// Run without internet access: no Google Fonts or GitHub template proxying.
    #[serde(default, skip_serializing_if = "is_false")]
    pub air_gapped: bool,

    /// The PodMonitor and PrometheusRule, made when the Prometheus Operator is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// Log forwarding of every Pebble service (Penpot's and nginx's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// Prefix of Penpot's Redis channels and queues; give instances sharing one Redis distinct values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub tenant: Option<String>,

    /// DNS server nginx uses for names it resolves per request (S3 redirects, fonts).
    /// Default: the nameservers of the pod's own /etc/resolv.conf, read when the pod starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9.\-:\[\]]+$"), length(max = 253))]
    pub dns_resolver: Option<String>,

    /// Who may sign up: only addresses of these email domains (Penpot's registration domain
    /// whitelist). Registration itself is on with OIDC and off otherwise (`flags` change it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$")))]
    pub registration_domains: Vec<String>,

    /// Send Penpot's anonymous usage report to penpot.app (off by default, as in the charm).
    #[serde(default, skip_serializing_if = "is_false")]
    pub telemetry: bool,

    /// Largest request body (uploads), for nginx and the backend alike: a byte count with an
    /// optional `Ki`, `Mi`, `Gi`, `k`, `M` or `G` suffix, e.g. `1Gi` (Penpot's default: 350Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,12}(Ki|Mi|Gi|k|M|G)?$"))]
    pub max_upload_size: Option<String>,

    /// Extra environment variables per container, for settings without a field. Variables
    /// the operator sets are refused, naming them. Values are literal (no `$`: Pebble would
    /// expand it). The frontend has none: nginx.conf and config.js are rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<ExtraEnv>,

    /// Certificate authorities to trust besides the public ones, for an IdP, SMTP server or
    /// S3 endpoint behind a private CA: the backend's JVM, the exporter, nginx's S3 redirects
    /// and the operator's own OIDC discovery trust them. A change rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundle>,

    /// Extra host names the backend may reach although they resolve to private addresses
    /// (Penpot 2.15+ SSRF protection). In-cluster OIDC hosts are added automatically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9.\-]+$")))]
    pub ssrf_allowed_hosts: Vec<String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ContainerResources>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Spread the pods over zones or nodes. A constraint without `labelSelector` gets the
    /// Penpot's pod selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// The pods' PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub priority_class_name: Option<String>,
    /// The pods' ServiceAccount, for a cloud identity (IRSA, GKE or Azure workload identity)
    /// instead of static S3 keys: with it set, the S3 relation's key pair is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<WorkloadServiceAccount>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra pod labels. The selector labels `app.kubernetes.io/name` and `/instance` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self)")
        .message("podLabels must not set app.kubernetes.io/name or app.kubernetes.io/instance (they select the pods)"))]
    pub pod_labels: BTreeMap<String, String>,
}

fn default_replicas() -> i32 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Extra environment of the backend and the exporter containers' services.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraEnv {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "env_map")]
    pub backend: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "env_map")]
    pub exporter: BTreeMap<String, String>,
}

/// At most 64 variables, values up to 4096 characters without `$`. Names are checked by the
/// operator (CRD schemas cannot constrain map keys cheaply).
fn env_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[^$]*$"}
    })
}

/// The Gateways the HTTPRoute attaches to, and the host names it serves.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// At least one Gateway (or listener of one, with `sectionName`).
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<GatewayParentRef>,
    /// Host names the route answers. Default: the host of the public URI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
            length(max = 253)
        )
    )]
    pub hostnames: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub name: String,
    /// The Gateway's namespace; default: the Penpot's. Its listener must allow routes from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// One listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub section_name: Option<String>,
}

/// Where the PEM bundle is: a key of a Secret or of a ConfigMap (trust-manager writes either).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.configMapRef)")
    .message("caBundle needs exactly one of secretRef and configMapRef"))]
pub struct CaBundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyRef>,
}

/// One key of an object in the Penpot's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRef {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub name: String,
    /// Default `ca.crt` (cert-manager's name for it).
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Either an existing ServiceAccount (`name`) or one the operator makes with `annotations`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.annotations)")
    .message("serviceAccount needs exactly one of name (an existing ServiceAccount) and annotations (for the one the operator makes)"))]
pub struct WorkloadServiceAccount {
    /// An existing ServiceAccount of the namespace (e.g. made by Terraform with its role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub name: Option<String>,
    /// Annotations of the ServiceAccount `<name>` the operator makes, e.g.
    /// `eks.amazonaws.com/role-arn` or `iam.gke.io/gcp-service-account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Object storage other than the S3 relation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageSpec {
    /// Keep assets on a PersistentVolumeClaim mounted by every pod (the backend writes, nginx
    /// serves). Exclusive with `spec.s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorage {
    /// An existing claim to use. Unset: the operator makes `<name>-assets` from the fields
    /// below, owned by the Penpot (deleted with it, never pruned while it lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub claim_name: Option<String>,
    /// Size of the claim the operator makes. Growing it needs a StorageClass that allows
    /// volume expansion; Kubernetes refuses to shrink a claim.
    #[serde(default = "default_assets_size")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,12}(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub size: String,
    /// StorageClass of the claim the operator makes; unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
    /// `ReadWriteMany` is required with more than one replica (pods may land on different
    /// nodes); with an existing claim, say which mode it has.
    #[serde(default)]
    pub access_mode: AccessMode,
}

fn default_assets_size() -> String {
    "20Gi".into()
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessMode {
    #[default]
    ReadWriteOnce,
    ReadWriteMany,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}

impl PenpotSpec {
    /// `spec.storage.filesystem`, when assets go to a volume.
    pub fn filesystem_storage(&self) -> Option<&FilesystemStorage> {
        self.storage.as_ref()?.filesystem.as_ref()
    }
}

/// A reference to a Secret in the Penpot's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRef {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub name: String,
}

/// A relation whose data comes from one Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RelationRef {
    pub secret_ref: SecretRef,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostgresqlRelation {
    pub secret_ref: SecretRef,
    /// Connections all replicas together may open; each backend's pool is this divided by
    /// `replicas` (at most 60, Penpot's default). Keep it below the server's `max_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_connections: Option<i32>,
}

/// The OIDC relation's Secret and how Penpot maps the identity provider's users.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OidcRelation {
    pub secret_ref: SecretRef,
    /// Roles a user must all hold to log in (`PENPOT_OIDC_ROLES`); none: anyone the IdP admits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = r"^[^\s,$]{1,128}$")))]
    pub roles: Vec<String>,
    /// The claim holding the roles (`PENPOT_OIDC_ROLES_ATTR`); a nested claim is written with
    /// `__` between its parts (`realm_access__roles`), as Penpot splits it. Default: `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^\s,$]{1,128}$"))]
    pub roles_attribute: Option<String>,
    /// The claim with the user's name (default `name`; nested: `a__b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^\s,$]{1,128}$"))]
    pub name_attribute: Option<String>,
    /// The claim with the user's email (default `email`; nested: `a__b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^\s,$]{1,128}$"))]
    pub email_attribute: Option<String>,
    /// Where Penpot reads the user's claims: the ID token, the userinfo endpoint, or either
    /// (Penpot's default, `Auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info_source: Option<UserInfoSource>,
    /// Whether OIDC needs the SMTP relation (the default, as in the charm: Penpot mails
    /// invitations). `false` runs OIDC without mail.
    #[serde(default = "default_true")]
    pub require_smtp: bool,
}

impl OidcRelation {
    /// The relation from `secret` with Penpot's defaults for everything else.
    pub fn from_secret(secret: &str) -> Self {
        OidcRelation {
            secret_ref: SecretRef { name: secret.into() },
            roles: Vec::new(),
            roles_attribute: None,
            name_attribute: None,
            email_attribute: None,
            user_info_source: None,
            require_smtp: true,
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserInfoSource {
    Auto,
    Token,
    Userinfo,
}

impl UserInfoSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserInfoSource::Auto => "auto",
            UserInfoSource::Token => "token",
            UserInfoSource::Userinfo => "userinfo",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SmtpRelation {
    pub secret_ref: SecretRef,
    /// Sender address; defaults to `<user or no-reply>@<domain>` from the relation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^@\s<>]+@[^@\s<>]+$"), length(max = 254))]
    pub from_address: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tlsSecretName) || has(self.host)")
    .message("ingress.tlsSecretName needs ingress.host").field_path(".tlsSecretName"))]
pub struct IngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Host name; setting it creates the Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Images {
    /// Image of the `penpot` container (the backend). Default `docker.io/penpotapp/backend:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub penpot: Option<String>,
    /// Image of the `nginx` container (the frontend). Default `docker.io/penpotapp/frontend:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub nginx: Option<String>,
    /// Image of the `exporter` container. Default `docker.io/penpotapp/exporter:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub exporter: Option<String>,
}

impl Images {
    fn is_empty(&self) -> bool {
        self.penpot.is_none() && self.nginx.is_none() && self.exporter.is_none()
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSpec {
    /// Run a `version` lower than the one the database was migrated to. Penpot has no down
    /// migrations: only set this after restoring a database backup taken before the upgrade.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_downgrade: bool,
    /// Before a version change, take a CloudNativePG `Backup` of the database cluster the
    /// PostgreSQL Secret belongs to (its `cnpg.io/cluster` label), and start the new version
    /// only once the backup completed. The Backup uses CloudNativePG's default method, so the
    /// cluster needs a Barman object store configured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub backup_before_upgrade: bool,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExporterSpec {
    /// Run the exporter (PDF/PNG/SVG export) in each pod.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MonitoringSpec {
    /// Make a PodMonitor and a PrometheusRule when the Prometheus Operator is installed;
    /// `false` removes them. The Grafana dashboard ConfigMap stays either way.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra labels on the PodMonitor, the PrometheusRule and the dashboard ConfigMap, for the
    /// selectors that pick them up (kube-prometheus-stack's default is `release: <its release>`;
    /// a Grafana sidecar may want another `grafana_dashboard` value). `app.kubernetes.io/*`
    /// are the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loki: Option<LokiSpec>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LokiSpec {
    /// Loki's push URL, e.g. `http://loki.monitoring.svc:3100/loki/api/v1/push`. No `$`:
    /// Pebble expands `$VARIABLES` of the service environment (the secret key among them).
    #[schemars(regex(pattern = r"^https?://[^\s$]+$"), length(max = 2048))]
    pub url: String,
    /// Extra stream labels. Names starting with `pebble_` are Pebble's own. Values carry no
    /// `$`: Pebble expands `$VARIABLES` in them, which would ship the pod's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('pebble_') && k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$'))")
        .message("logging.loki.labels names must be Loki label names and must not start with pebble_"))]
    #[schemars(schema_with = "loki_labels")]
    pub labels: BTreeMap<String, String>,
}

/// At most 32 labels of at most 256 characters, without `$`. The bounds also keep the names
/// rule's CEL cost within the API server's budget.
fn loki_labels(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": {"type": "string", "maxLength": 256, "pattern": "^[^$]*$"}
    })
}

/// Resource requirements per container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ContainerResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penpot: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<ResourceRequirements>,
}

/// Juju-style summary of an instance's state, for people; machines read the conditions.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Running with every replica ready.
    Active,
    /// Needs a human: a relation is missing or invalid, or the spec cannot be served.
    Blocked,
    /// Waiting for something that will happen by itself (pods starting).
    Waiting,
    /// Rolling out a change.
    Maintenance,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PenpotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, plus `Reconciling` and `Stalled` as kstatus defines them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_uri: Option<String>,
    /// The Penpot version the database was migrated to: every pod runs it once no rollout
    /// is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hash of the configuration last rolled out; pods carrying it run the current config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The callback URI to register at each OAuth login provider (OIDC, Google, GitHub,
    /// GitLab): the provider refuses logins until it knows it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redirect_uris: BTreeMap<String, String>,
    /// When the secret key (`<name>-secret-key`) was made: sessions and signed links older
    /// than this are invalid (`penpot-operator rotate-secret-key` makes a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_created: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Pre-flight checks: whether each relation's server accepts its credentials, checked
    /// by the operator in the background (at most every 60 s while one fails, every 10 min
    /// otherwise, and whenever the relation changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["relation".into()]))]
    pub checks: Vec<RelationCheck>,
}

/// One relation's pre-flight check.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RelationCheck {
    /// `postgresql`, `redis`, `s3` or `smtp`.
    pub relation: String,
    pub result: CheckResult,
    /// What passed, or what the server said when it refused; never a secret value.
    pub message: String,
    /// Since when the check has found this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The server answered and accepted the credentials.
    Passed,
    /// It could not be reached, or it refused: the message says which.
    Failed,
    /// Nothing to check with (S3 credentials from the workload's cloud identity).
    Skipped,
    /// The first check of these relations has not ended yet.
    Unknown,
}
