//! Redis / Valkey relation: Juju `hostname` + `port`, `host`, or a `uri` / `url`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{RelationError, SecretData, check_host, host_port, parse_port};

#[derive(Clone, PartialEq, Eq)]
pub struct Redis {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://` for TLS.
    pub uri: String,
}

super::debug_hiding!(Redis { shows: [], hides: [uri] });

pub fn parse(d: &SecretData) -> Result<Redis, RelationError> {
    if let Some((key, host)) = d.first(&["hostname", "host"])? {
        // A `host:port` in the host key is common enough to accept.
        let (host, inline_port) = if host.contains(':') && !host.starts_with('[') {
            let (h, p) = host_port(host, None).map_err(|p| d.error(key, p))?;
            (h, Some(p))
        } else {
            check_host(host).map_err(|p| d.error(key, p))?;
            (host.to_string(), None)
        };
        let port = match d.get("port")? {
            Some(p) => parse_port(p).map_err(|p| d.error("port", p))?,
            None => inline_port.unwrap_or(6379),
        };
        let user = d.get("username")?.map(|u| utf8_percent_encode(u, NON_ALPHANUMERIC).to_string());
        let auth = match (user, d.get("password")?) {
            (user, Some(pw)) => format!("{}:{}@", user.unwrap_or_default(), utf8_percent_encode(pw, NON_ALPHANUMERIC)),
            (Some(user), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        let scheme = if d.flag("tls", false)? { "rediss" } else { "redis" };
        return Ok(Redis { uri: format!("{scheme}://{auth}{host}:{port}") });
    }
    // Only absence gets the combined message; a bad `uri` / `url` value keeps its own error.
    let (key, uri) = d
        .first(&["uri", "url"])?
        .ok_or_else(|| d.error("hostname", "is missing or empty (also accepted: host, uri, url)"))?;
    let bad = |p: &str| d.error(key, p);
    let url = url::Url::parse(uri).map_err(|_| bad("is not a valid URI"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(bad("must start with redis:// or rediss://"));
    }
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    check_host(host).map_err(|p| bad(&p))?;
    if url.fragment().is_some() || url.query().is_some() {
        return Err(bad("must not have a query or #fragment"));
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(bad("has a path that is not a database number"));
    }
    Ok(Redis { uri: url.to_string() })
}
