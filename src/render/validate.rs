//! Checks the schema cannot express, turning a spec plus relations into the settings every
//! renderer reads.

use std::collections::BTreeMap;

use crate::crd::{AccessMode, Penpot, Relation};
use crate::relations::Relations;

use super::version::Version;

/// Penpot's own per-replica pool default; the operator never asks for more.
const DEFAULT_POOL_SIZE: i32 = 60;
/// Default connection budget: PostgreSQL's default `max_connections` (100) minus headroom for
/// superuser, replication and maintenance sessions.
const DEFAULT_MAX_CONNECTIONS: i32 = 90;
pub const DEFAULT_TENANT: &str = "default";

/// A spec the operator cannot serve: reported as `Stalled`, nothing is applied.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    #[error("https required: spec.publicUri {0:?} is http; set spec.allowInsecureHttp: true to accept it")]
    HttpsRequired(String),
    #[error("spec.publicUri or spec.ingress.host is required")]
    NoPublicUri,
    #[error("spec.publicUri {0:?} is not a valid URL")]
    BadPublicUri(String),
    #[error(
        "spec.postgresql.maxConnections {max} is too small for {replicas} replicas (each backend needs at least 2 connections)"
    )]
    PoolTooSmall { max: i32, replicas: i32 },
    #[error("{0} relation requires the smtp relation: Penpot sends registration and invitation mails")]
    SmtpRequiredBy(Relation),
    #[error(
        "metadata.name {0:?} must be a DNS label starting with a letter (lowercase letters, digits, '-'): it names the Penpot's Services"
    )]
    BadName(String),
    #[error("spec.monitoring.labels sets {0:?}: app.kubernetes.io/ labels are the operator's")]
    ReservedLabel(String),
    #[error("spec.passwordLogin is false but no other login provider is configured: nobody could log in")]
    NoLogin,
    #[error("spec.s3 and spec.storage.filesystem are both set: assets go to a bucket or to a volume, not both")]
    TwoStorages,
    #[error("no object storage: set spec.s3 (a bucket) or spec.storage.filesystem (a volume)")]
    NoStorage,
    #[error(
        "spec.storage.filesystem.accessMode is ReadWriteOnce, but spec.replicas is {0}: every pod mounts the assets volume, so more than one replica needs ReadWriteMany"
    )]
    VolumeNotShared(i32),
    #[error(
        "spec.gateway is set, but the cluster does not serve the Gateway API's HTTPRoute (gateway.networking.k8s.io/v1): install its CRDs or use spec.ingress"
    )]
    NoGatewayApi,
    #[error("spec.maxUploadSize {0:?} is not a size between 1 byte and 10Gi (e.g. 500Mi)")]
    BadUploadSize(String),
    #[error(
        "spec.env.{container} has the variable name {name:?}: names are letters, digits and '_', not starting with a digit"
    )]
    BadEnvName { container: &'static str, name: String },
    #[error(
        "spec.env.{container} sets {names}, which the operator sets itself (from the spec's fields and the relations); remove them there"
    )]
    OwnedEnv { container: &'static str, names: String },
}

/// Variables a relation or the operator owns even when this render does not set them (the
/// relation may be absent): setting them by hand would bypass the relation.
const OWNED_PREFIXES: [&str; 11] = [
    "PENPOT_DATABASE_",
    "PENPOT_REDIS_",
    "PENPOT_SMTP_",
    "PENPOT_OIDC_",
    "PENPOT_GOOGLE_",
    "PENPOT_GITHUB_",
    "PENPOT_GITLAB_",
    "PENPOT_LDAP_",
    "PENPOT_OBJECTS_STORAGE_",
    "PENPOT_ASSETS_STORAGE_",
    "PENPOT_STORAGE_",
];

/// Credential variables the AWS SDK reads: the S3 relation's (or the cloud identity's), never
/// set by hand, even where this render sets none of them.
const OWNED_NAMES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// `spec.env.<container>` against `rendered`, the environment the operator sets there: names
/// must be valid and none may be the operator's.
pub fn check_extra_env(
    container: &'static str,
    extra: &BTreeMap<String, String>,
    rendered: &BTreeMap<String, String>,
) -> Result<(), SpecError> {
    if let Some(name) = extra.keys().find(|n| !is_env_name(n)) {
        return Err(SpecError::BadEnvName { container, name: name.chars().take(128).collect() });
    }
    let owned: Vec<&str> = extra
        .keys()
        .filter(|n| {
            rendered.contains_key(*n)
                || OWNED_NAMES.contains(&n.as_str())
                || OWNED_PREFIXES.iter().any(|p| n.starts_with(p))
        })
        .map(String::as_str)
        .collect();
    if owned.is_empty() { Ok(()) } else { Err(SpecError::OwnedEnv { container, names: owned.join(", ") }) }
}

/// `500Mi`, `1G`, `1048576`: bytes, at most 10 GiB.
fn bytes(size: &str) -> Option<u64> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &size[digits.len()..] {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(unit).filter(|b| (1..=10 << 30).contains(b))
}

fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && bytes.len() <= 128
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub public_uri: String,
    pub insecure_http: bool,
    pub version: Version,
    pub pool_size: i32,
    pub tenant: String,
    pub exporter: bool,
    pub ssrf_allowed_hosts: Vec<String>,
    /// Upload limit in bytes from `spec.maxUploadSize`, for nginx and the backend; `None`:
    /// Penpot's default, [`DEFAULT_MAX_BODY_SIZE`] (the backend is then not told, so operator
    /// upgrades do not roll the pods).
    pub max_body_size: Option<u64>,
    /// `spec.telemetry`: Penpot's usage report.
    pub telemetry: bool,
    /// `spec.registrationDomains`: who may sign up.
    pub registration_domains: Vec<String>,
    /// Assets on the `storage.filesystem` volume rather than in the S3 relation's bucket.
    pub filesystem_storage: bool,
}

/// Penpot's own default upload limit: 350 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 350 * 1024 * 1024;

pub fn validate(penpot: &Penpot, relations: &Relations, version: Version) -> Result<Settings, SpecError> {
    let spec = &penpot.spec;
    let name = penpot.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_label(name) {
        return Err(SpecError::BadName(name.to_string()));
    }
    if let Some(reserved) =
        spec.monitoring.iter().flat_map(|m| m.labels.keys()).find(|k| k.starts_with("app.kubernetes.io/"))
    {
        return Err(SpecError::ReservedLabel(reserved.clone()));
    }
    let public_uri = public_uri(penpot)?;
    let parsed = url::Url::parse(&public_uri).map_err(|_| SpecError::BadPublicUri(public_uri.clone()))?;
    let insecure_http = parsed.scheme() == "http";
    if insecure_http && !spec.allow_insecure_http {
        return Err(SpecError::HttpsRequired(public_uri));
    }
    if relations.oidc.is_some() && relations.smtp.is_none() && spec.oidc.as_ref().is_none_or(|o| o.require_smtp) {
        return Err(SpecError::SmtpRequiredBy(Relation::Oidc));
    }

    if spec.password_login == Some(false) && relations.logins().is_empty() {
        return Err(SpecError::NoLogin);
    }
    let filesystem = spec.filesystem_storage();
    match (filesystem, &relations.s3) {
        (Some(_), Some(_)) => return Err(SpecError::TwoStorages),
        (None, None) => return Err(SpecError::NoStorage),
        (Some(fs), None) if spec.replicas > 1 && fs.access_mode != AccessMode::ReadWriteMany => {
            return Err(SpecError::VolumeNotShared(spec.replicas));
        }
        _ => {}
    }

    let max = spec.postgresql.as_ref().and_then(|p| p.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let replicas = spec.replicas.max(1);
    let pool_size = (max / replicas).min(DEFAULT_POOL_SIZE);
    if pool_size < 2 {
        return Err(SpecError::PoolTooSmall { max, replicas: spec.replicas });
    }

    // The backend refuses private addresses from 2.15 on; in-cluster IdPs must be listed.
    let mut ssrf_allowed_hosts = spec.ssrf_allowed_hosts.clone();
    if let Some(oidc) = &relations.oidc {
        ssrf_allowed_hosts.extend(oidc.hosts().into_iter().filter(|h| is_in_cluster_host(h)));
    }
    // A self-hosted GitLab in the cluster, likewise.
    let gitlab = relations.gitlab.as_ref().and_then(|g| g.base_uri.as_deref()).and_then(|u| url::Url::parse(u).ok());
    ssrf_allowed_hosts.extend(gitlab.and_then(|u| u.host_str().map(str::to_string)).filter(|h| is_in_cluster_host(h)));
    ssrf_allowed_hosts.iter_mut().for_each(|h| h.make_ascii_lowercase());
    ssrf_allowed_hosts.sort();
    ssrf_allowed_hosts.dedup();

    Ok(Settings {
        public_uri,
        insecure_http,
        version,
        pool_size,
        tenant: spec.tenant.clone().unwrap_or_else(|| DEFAULT_TENANT.into()),
        exporter: spec.exporter.as_ref().is_none_or(|e| e.enabled),
        ssrf_allowed_hosts,
        max_body_size: spec
            .max_upload_size
            .as_deref()
            .map(|size| bytes(size).ok_or_else(|| SpecError::BadUploadSize(size.to_string())))
            .transpose()?,
        telemetry: spec.telemetry,
        registration_domains: spec.registration_domains.clone(),
        filesystem_storage: filesystem.is_some(),
    })
}

/// `spec.publicUri`, else `https://<ingress.host>/`.
pub fn public_uri(penpot: &Penpot) -> Result<String, SpecError> {
    let spec = &penpot.spec;
    match (&spec.public_uri, spec.ingress.as_ref().and_then(|i| i.host.as_ref())) {
        (Some(uri), _) => Ok(uri.clone()),
        (None, Some(host)) => Ok(format!("https://{host}/")),
        (None, None) => Err(SpecError::NoPublicUri),
    }
}

/// Names that resolve to cluster-internal (private) addresses: Service names and private IPs.
fn is_in_cluster_host(host: &str) -> bool {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
    }
    !host.contains('.')
        || [".svc", ".cluster.local", ".local", ".internal"].iter().any(|s| host.ends_with(s))
        || host.contains(".svc.")
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$`: what Service names need (RFC 1035 labels).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_hosts() {
        for h in ["keycloak", "keycloak.auth.svc", "keycloak.auth.svc.cluster.local", "10.1.2.3", "idp.corp.internal"] {
            assert!(is_in_cluster_host(h), "{h}");
        }
        for h in ["accounts.google.com", "8.8.8.8", "login.example.com"] {
            assert!(!is_in_cluster_host(h), "{h}");
        }
    }

    #[test]
    fn upload_sizes_in_bytes() {
        assert_eq!(bytes("350Mi"), Some(367_001_600));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("4096"), Some(4096));
        assert_eq!(bytes("11Gi"), None, "over 10 GiB");
        for bad in ["0", "Mi", "1Ti", "1.5Gi", "-1", "99999999999999999999"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_must_be_dns_labels() {
        for good in ["p", "penpot", "team-a", "a1"] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in ["team.a", "1penpot", "-a", "a-", "A", ""] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
