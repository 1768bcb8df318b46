//! OIDC endpoint discovery from `<issuer>/.well-known/openid-configuration`, cached per issuer
//! so reconciles do not hammer the identity provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::relations::oidc::{Endpoints, http_url};

const FOUND_TTL: Duration = Duration::from_secs(3600);
/// Failures are retried sooner: the IdP may just be starting.
const FAILED_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    Found(Endpoints),
    /// Why it failed, naming the issuer URL (not a secret).
    Failed(String),
}

pub struct DiscoveryCache {
    /// Why there is no HTTPS client, when there is none (an image without CA certificates):
    /// every discovery then fails with that reason, and nothing else in the operator stops.
    http: Result<reqwest::Client, String>,
    entries: Mutex<HashMap<String, (Instant, Discovery)>>,
}

#[derive(Deserialize)]
struct Document {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
}

impl DiscoveryCache {
    pub fn new() -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| {
            let why = error_chain(&e);
            tracing::warn!(error = %why, "no HTTPS client: OIDC discovery will fail until the operator restarts");
            format!("the operator has no HTTPS client ({why})")
        });
        Self { http, entries: Mutex::new(HashMap::new()) }
    }

    /// `issuer` ends with a slash (the relation parser guarantees it).
    pub async fn endpoints(&self, issuer: &str) -> Discovery {
        if let Some((at, found)) = self.entries.lock().await.get(issuer) {
            let ttl = if matches!(found, Discovery::Found(_)) { FOUND_TTL } else { FAILED_TTL };
            if at.elapsed() < ttl {
                return found.clone();
            }
        }
        let result = self.fetch(issuer).await;
        self.entries.lock().await.insert(issuer.to_string(), (Instant::now(), result.clone()));
        result
    }

    async fn fetch(&self, issuer: &str) -> Discovery {
        let url = format!("{issuer}.well-known/openid-configuration");
        let fail = |why: String| Discovery::Failed(format!("oidc relation: discovery from {url} failed: {why}"));
        let http = match &self.http {
            Ok(http) => http,
            Err(why) => return fail(why.clone()),
        };
        let response = match http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => return fail(e.without_url().to_string()),
        };
        if !response.status().is_success() {
            return fail(format!("HTTP {}", response.status()));
        }
        let doc: Document = match response.json().await {
            Ok(d) => d,
            Err(_) => return fail("the response is not an OpenID provider configuration".into()),
        };
        for endpoint in [&doc.authorization_endpoint, &doc.token_endpoint, &doc.userinfo_endpoint] {
            if let Err(problem) = http_url(endpoint) {
                return fail(format!("an endpoint {problem}"));
            }
        }
        Discovery::Found(Endpoints {
            authorization: doc.authorization_endpoint,
            token: doc.token_endpoint,
            userinfo: doc.userinfo_endpoint,
        })
    }
}

/// `e: its source: its source's source`, as reqwest's own Display says only "builder error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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
            entries: Mutex::new(HashMap::new()),
        };
        let Discovery::Failed(why) = cache.endpoints("https://idp.example.com/").await else {
            panic!("discovery cannot succeed without a client")
        };
        assert!(why.contains("https://idp.example.com/.well-known/openid-configuration"), "{why}");
        assert!(why.ends_with("no HTTPS client (builder error: no CA certificates)"), "{why}");
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
