//! OpenID Connect relation: Juju `oauth` fields (client_id, issuer_url, endpoints) or dashed keys.

use super::{RelationError, SecretData, check_host};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub userinfo: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Oidc {
    pub client_id: String,
    pub client_secret: String,
    /// Issuer with a trailing slash: Penpot resolves `.well-known/...` relative to it.
    pub issuer: String,
    /// `None` when the Secret gave only the issuer and discovery must fill them in.
    pub endpoints: Option<Endpoints>,
    pub scopes: String,
    /// The login button's label (`penpotOIDCName` in config.js); Penpot's own when absent.
    pub display_name: Option<String>,
}

super::debug_hiding!(Oidc { shows: [client_id, issuer, endpoints, scopes, display_name], hides: [client_secret] });

/// A button label, not a paragraph.
const MAX_DISPLAY_NAME: usize = 64;

impl Oidc {
    /// Every host the backend will call, for the SSRF allow-list.
    pub fn hosts(&self) -> Vec<String> {
        let mut urls = vec![self.issuer.as_str()];
        if let Some(e) = &self.endpoints {
            urls.extend([e.authorization.as_str(), e.token.as_str(), e.userinfo.as_str()]);
        }
        let mut hosts: Vec<String> =
            urls.into_iter().filter_map(|u| url::Url::parse(u).ok()?.host_str().map(str::to_string)).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

pub fn parse(d: &SecretData) -> Result<Oidc, RelationError> {
    let (_, client_id) = d.require(&["client_id", "client-id"])?;
    let (_, client_secret) = d.require(&["client_secret", "client-secret"])?;
    let (issuer_key, issuer) = d.require(&["issuer_url", "issuer"])?;
    let issuer = http_url(issuer).map_err(|p| d.error(issuer_key, p))?;
    // Discovery appends `.well-known/openid-configuration`: after a `?` it would be a query.
    if issuer.contains('?') {
        return Err(d.error(issuer_key, "must not have a ?query (discovery appends a path to the issuer)"));
    }
    let issuer = if issuer.ends_with('/') { issuer } else { format!("{issuer}/") };

    let keys = ["authorization_endpoint", "token_endpoint", "userinfo_endpoint"];
    let mut given = Vec::new();
    for key in keys {
        given.push(d.get(key)?.map(|v| http_url(v).map_err(|p| d.error(key, p))).transpose()?);
    }
    let endpoints = match given.as_slice() {
        [Some(a), Some(t), Some(u)] => {
            Some(Endpoints { authorization: a.clone(), token: t.clone(), userinfo: u.clone() })
        }
        [None, None, None] => None,
        _ => {
            let missing =
                keys.iter().zip(&given).find(|(_, v)| v.is_none()).map(|(k, _)| *k).unwrap_or("token_endpoint");
            return Err(d.error(
                missing,
                "is missing; give all three endpoints or none (then they are discovered from the issuer)",
            ));
        }
    };
    let scopes = match d.get("scope")? {
        Some(s) if s.chars().all(|c| c.is_ascii_graphic() || c == ' ') => {
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        Some(_) => return Err(d.error("scope", "must be space-separated scope names")),
        None => "openid profile email".to_string(),
    };
    let display_name = match d.first(&["display_name", "display-name"])? {
        Some((key, name)) if name.chars().count() > MAX_DISPLAY_NAME => {
            return Err(d.error(key, format!("must be at most {MAX_DISPLAY_NAME} characters")));
        }
        found => found.map(|(_, name)| name.trim().to_string()),
    };
    Ok(Oidc {
        client_id: client_id.into(),
        client_secret: client_secret.into(),
        issuer,
        endpoints,
        scopes,
        display_name,
    })
}

/// An absolute http(s) URL without credentials or fragment.
pub(crate) fn http_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|_| "is not a valid URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    check_host(url.host_str().unwrap_or_default())?;
    if url.port() == Some(0) {
        return Err("has port 0; a port is 1-65535".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("must not carry credentials or a #fragment".into());
    }
    // The parsed form: what was checked is what Penpot gets (no %-escapes left in the host).
    Ok(url.to_string())
}
