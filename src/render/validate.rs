//! Checks the schema cannot express, turning a spec plus relations into the settings every
//! renderer reads.

use crate::crd::{Penpot, Relation};
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
}

pub fn validate(penpot: &Penpot, relations: &Relations, version: Version) -> Result<Settings, SpecError> {
    let spec = &penpot.spec;
    let name = penpot.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_label(name) {
        return Err(SpecError::BadName(name.to_string()));
    }
    let public_uri = public_uri(penpot)?;
    let parsed = url::Url::parse(&public_uri).map_err(|_| SpecError::BadPublicUri(public_uri.clone()))?;
    let insecure_http = parsed.scheme() == "http";
    if insecure_http && !spec.allow_insecure_http {
        return Err(SpecError::HttpsRequired(public_uri));
    }
    if relations.oidc.is_some() && relations.smtp.is_none() {
        return Err(SpecError::SmtpRequiredBy(Relation::Oidc));
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
    fn names_must_be_dns_labels() {
        for good in ["p", "penpot", "team-a", "a1"] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in ["team.a", "1penpot", "-a", "a-", "A", ""] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
