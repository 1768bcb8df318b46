//! The other login providers Penpot has besides OIDC: Google, GitHub and GitLab (OAuth
//! clients registered at the provider) and LDAP (a directory the backend binds to). Each comes
//! from its own Secret, like every relation.

use super::oidc::http_url;
use super::{RelationError, SecretData, check_host, parse_port};

/// An OAuth client of Google, GitHub or GitLab.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// GitLab only: a self-hosted instance; Penpot's default is gitlab.com.
    pub base_uri: Option<String>,
}

super::debug_hiding!(OAuthClient { shows: [client_id, base_uri], hides: [client_secret] });

/// `client_id` and `client_secret` (or dashed); `base_uri` only where `base_uri_allowed`.
pub fn oauth_client(d: &SecretData, base_uri_allowed: bool) -> Result<OAuthClient, RelationError> {
    let (_, client_id) = d.require(&["client_id", "client-id"])?;
    let (_, client_secret) = d.require(&["client_secret", "client-secret"])?;
    let base_uri = match d.first(&["base_uri", "base-uri"])? {
        Some((key, _)) if !base_uri_allowed => return Err(d.error(key, "is only read for GitLab")),
        // Penpot appends `/oauth/authorize` and the like to it: no query.
        Some((key, uri)) if uri.contains('?') => return Err(d.error(key, "must not have a ?query")),
        Some((key, uri)) => Some(http_url(uri).map_err(|p| d.error(key, p))?.trim_end_matches('/').to_string()),
        None => None,
    };
    Ok(OAuthClient { client_id: client_id.into(), client_secret: client_secret.into(), base_uri })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdapSecurity {
    None,
    StartTls,
    /// LDAPS: TLS from the first byte.
    Tls,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Ldap {
    pub host: String,
    pub port: u16,
    pub security: LdapSecurity,
    pub base_dn: String,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Penpot's default matches `uid` or `mail` against what the user typed.
    pub user_query: Option<String>,
    pub attrs_username: Option<String>,
    pub attrs_email: Option<String>,
    pub attrs_fullname: Option<String>,
}

super::debug_hiding!(Ldap {
    shows: [host, port, security, base_dn, bind_dn, user_query, attrs_username, attrs_email, attrs_fullname],
    hides: [bind_password]
});

pub fn ldap(d: &SecretData) -> Result<Ldap, RelationError> {
    let (_, host) = d.require(&["host"])?;
    check_host(host).map_err(|p| d.error("host", p))?;
    let security = match d.first(&["transport_security", "transport-security"])? {
        None | Some((_, "none")) => LdapSecurity::None,
        Some((_, "starttls")) => LdapSecurity::StartTls,
        Some((_, "tls")) => LdapSecurity::Tls,
        Some((key, _)) => return Err(d.error(key, "must be none, starttls or tls")),
    };
    let port = match d.get("port")? {
        Some(p) => parse_port(p).map_err(|p| d.error("port", p))?,
        None if security == LdapSecurity::Tls => 636,
        None => 389,
    };
    let (_, base_dn) = d.require(&["base_dn", "base-dn"])?;
    let bind_dn = d.first(&["bind_dn", "bind-dn"])?.map(|(_, v)| v.to_string());
    let bind_password = d.first(&["bind_password", "bind-password"])?.map(|(_, v)| v.to_string());
    if bind_password.is_some() && bind_dn.is_none() {
        return Err(d.missing(&["bind_dn", "bind-dn"]));
    }
    let text = |keys: &[&'static str]| d.first(keys).map(|v| v.map(|(_, v)| v.to_string()));
    Ok(Ldap {
        host: host.into(),
        port,
        security,
        base_dn: base_dn.into(),
        bind_dn,
        bind_password,
        user_query: text(&["user_query", "user-query"])?,
        attrs_username: text(&["attrs_username", "attrs-username"])?,
        attrs_email: text(&["attrs_email", "attrs-email"])?,
        attrs_fullname: text(&["attrs_fullname", "attrs-fullname"])?,
    })
}
