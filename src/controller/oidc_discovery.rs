//! OIDC endpoint discovery from `<issuer>/.well-known/openid-configuration`, cached per issuer
//! so reconciles do not hammer the identity provider.
//!
//! The issuer comes from a tenant, so the fetch is fenced: destinations checked by [`Egress`]
//! after DNS resolution, no redirects, a 10 s timeout, at most [`MAX_BODY`] bytes read, at
//! most [`MAX_ENTRIES`] issuers remembered. Status and Events say only that discovery failed;
//! why (refused address, HTTP status, connection error) goes to the operator's log, so a
//! tenant cannot use status to scan what the operator can reach.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::Digest;
use tokio::sync::Mutex;

use super::egress::{Egress, fenced_client};
use crate::error::error_chain;
use crate::relations::oidc::{Endpoints, http_url};

const FOUND_TTL: Duration = Duration::from_secs(3600);
/// Failures are retried sooner: the IdP may just be starting.
const FAILED_TTL: Duration = Duration::from_secs(30);
/// A provider configuration is a few KiB; anything longer is not one.
pub const MAX_BODY: usize = 64 * 1024;
/// Issuers remembered at once; the oldest entry goes first.
pub const MAX_ENTRIES: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    Found(Endpoints),
    /// For status: names the discovery URL (not a secret) and nothing about the response.
    Failed(String),
}

pub struct DiscoveryCache {
    /// Why there is no HTTPS client, when there is none (an image without CA certificates):
    /// every discovery then fails with that reason, and nothing else in the operator stops.
    http: Result<reqwest::Client, String>,
    egress: Arc<Egress>,
    entries: Mutex<HashMap<String, (Instant, Discovery)>>,
}

#[derive(Deserialize)]
struct Document {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
}

impl DiscoveryCache {
    pub fn new(egress: Arc<Egress>) -> Self {
        let mut cache = Self { http: Err(String::new()), egress, entries: Mutex::new(HashMap::new()) };
        cache.http = cache.client(None).map_err(|e| {
            let why = error_chain(&e);
            tracing::warn!(error = %why, "no HTTPS client: OIDC discovery will fail until the operator restarts");
            format!("the operator has no HTTPS client ({why})")
        });
        cache
    }

    fn client(&self, ca_bundle: Option<&str>) -> Result<reqwest::Client, reqwest::Error> {
        fenced_client(&self.egress, ca_bundle, Duration::from_secs(10))
    }

    /// `issuer` ends with a slash (the relation parser guarantees it). `ca_bundle`: the
    /// Penpot's own CAs (`spec.caBundle`, checked PEM), trusted besides the public roots.
    pub async fn endpoints(&self, issuer: &str, ca_bundle: Option<&str>) -> Discovery {
        // What one Penpot's CAs let through must not be served to another that lacks them.
        let key = match ca_bundle {
            None => issuer.to_string(),
            Some(pem) => format!("{issuer} {}", crate::render::hash::short_hex(&sha2::Sha256::digest(pem))),
        };
        if let Some((at, found)) = self.entries.lock().await.get(&key)
            && fresh(*at, found)
        {
            return found.clone();
        }
        // The lock is not held while fetching: other issuers' reconciles go on.
        let url = format!("{issuer}.well-known/openid-configuration");
        let result = match self.fetch(&url, ca_bundle).await {
            Ok(endpoints) => Discovery::Found(endpoints),
            Err(why) => {
                tracing::warn!(%url, error = %why, "OIDC discovery failed");
                Discovery::Failed(format!(
                    "oidc relation: discovery from {url} failed (the operator's log says why; retried every {} s)",
                    FAILED_TTL.as_secs()
                ))
            }
        };
        let mut entries = self.entries.lock().await;
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (at, found)| fresh(*at, found));
            while entries.len() >= MAX_ENTRIES {
                let Some(oldest) = entries.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) else { break };
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (Instant::now(), result.clone()));
        result
    }

    /// Why the fetch failed, for the log.
    async fn fetch(&self, url: &str, ca_bundle: Option<&str>) -> Result<Endpoints, String> {
        // A private CA gets a client of its own, fenced the same way; discoveries are cached
        // for an hour, so building one per fetch costs nothing worth sharing.
        let own;
        let http = match ca_bundle {
            None => self.http.as_ref().map_err(Clone::clone)?,
            Some(pem) => {
                own = self.client(Some(pem)).map_err(|e| error_chain(&e))?;
                &own
            }
        };
        self.egress.check_url(url).map_err(|e| e.to_string())?;
        let mut response = http.get(url).send().await.map_err(|e| error_chain(&e.without_url()))?;
        if response.status().is_redirection() {
            return Err(format!("HTTP {}: redirects are not followed", response.status()));
        }
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(format!("the response is longer than {MAX_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e.without_url()))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("the response is longer than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|_| "the response is not an OpenID provider configuration".to_string())?;
        for endpoint in [&doc.authorization_endpoint, &doc.token_endpoint, &doc.userinfo_endpoint] {
            http_url(endpoint).map_err(|problem| format!("an endpoint {problem}"))?;
        }
        Ok(Endpoints {
            authorization: doc.authorization_endpoint,
            token: doc.token_endpoint,
            userinfo: doc.userinfo_endpoint,
        })
    }
}

/// Whether an entry made `at` may still be served: a found configuration for an hour, a
/// failure for half a minute.
fn fresh(at: Instant, found: &Discovery) -> bool {
    at.elapsed() < if matches!(found, Discovery::Found(_)) { FOUND_TTL } else { FAILED_TTL }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image without CA certificates: the operator runs on, and the OIDC relation says why
    /// discovery cannot work.
    #[tokio::test]
    async fn without_an_https_client_discovery_fails_with_the_reason() {
        let cache = DiscoveryCache {
            http: Err("the operator has no HTTPS client (builder error: no CA certificates)".into()),
            egress: Arc::new(Egress::default()),
            entries: Mutex::new(HashMap::new()),
        };
        let url = "https://idp.example.com/.well-known/openid-configuration";
        assert_eq!(
            cache.fetch(url, None).await,
            Err("the operator has no HTTPS client (builder error: no CA certificates)".into())
        );
        let Discovery::Failed(status) = cache.endpoints("https://idp.example.com/", None).await else {
            panic!("discovery cannot succeed without a client")
        };
        assert!(
            status.starts_with(&format!("oidc relation: discovery from {url} failed (the operator's log says why")),
            "{status}"
        );
    }

    /// 10,000 distinct issuers (a tenant rotating its Secret) leave at most MAX_ENTRIES.
    #[tokio::test]
    async fn the_cache_stays_bounded_whatever_the_issuers() {
        let cache = DiscoveryCache {
            http: Err("no client".into()),
            egress: Arc::new(Egress::default()),
            entries: Mutex::new(HashMap::new()),
        };
        for i in 0..10_000 {
            cache.endpoints(&format!("https://idp-{i}.example.com/"), None).await;
        }
        let entries = cache.entries.lock().await;
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert!(entries.contains_key("https://idp-9999.example.com/"), "the newest entry stays");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("builder error")]
    struct Builder(#[source] std::io::Error);

    #[test]
    fn error_chain_names_every_source() {
        let e = Builder(std::io::Error::other("no CA certificates were loaded"));
        assert_eq!(error_chain(&e), "builder error: no CA certificates were loaded");
    }
}
