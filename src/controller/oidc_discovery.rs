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
    http: reqwest::Client,
    entries: Mutex<HashMap<String, (Instant, Discovery)>>,
}

#[derive(Deserialize)]
struct Document {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
}

impl DiscoveryCache {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, entries: Mutex::new(HashMap::new()) })
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
        let response = match self.http.get(&url).send().await {
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
