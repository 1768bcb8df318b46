//! SMTP relation: the Juju `smtp` interface fields.

use super::{RelationError, SecretData, check_host, parse_port};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportSecurity {
    None,
    /// Upgrade a plain connection (`PENPOT_SMTP_TLS`).
    StartTls,
    /// TLS from the first byte, usually port 465 (`PENPOT_SMTP_SSL`).
    Tls,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub security: TransportSecurity,
    /// Sender and reply-to address.
    pub from: String,
}

super::debug_hiding!(Smtp { shows: [host, port, username, security, from], hides: [password] });

/// `from_address` is `spec.smtp.fromAddress`, which wins over the relation's user and domain.
pub fn parse(d: &SecretData, from_address: Option<&str>) -> Result<Smtp, RelationError> {
    let (_, host) = d.require(&["host"])?;
    check_host(host).map_err(|p| d.error("host", p))?;
    let security = match d.get("transport_security")? {
        None | Some("none") => TransportSecurity::None,
        Some("starttls") => TransportSecurity::StartTls,
        Some("tls") => TransportSecurity::Tls,
        Some(_) => return Err(d.error("transport_security", "must be none, starttls or tls")),
    };
    let port = match d.get("port")? {
        Some(p) => parse_port(p).map_err(|p| d.error("port", p))?,
        None => match security {
            TransportSecurity::None => 25,
            TransportSecurity::StartTls => 587,
            TransportSecurity::Tls => 465,
        },
    };
    // Validated for the interface's sake; Penpot has no switch to skip certificate checks.
    d.flag("skip_ssl_verify", false)?;
    let auth = d.get("auth_type")?;
    if let Some(a) = auth
        && !matches!(a, "none" | "not_provided" | "plain" | "login" | "cram_md5" | "xoauth2")
    {
        return Err(d.error("auth_type", "must be none, not_provided, plain, login, cram_md5 or xoauth2"));
    }
    let use_auth = !matches!(auth, Some("none"));
    let username = d.first(&["user", "username"])?.map(|(_, u)| u.to_string());
    let password = d.get("password")?.map(str::to_string);

    let from = match from_address {
        Some(addr) => addr.to_string(),
        None => {
            let domain = d.get("domain")?.ok_or_else(|| {
                d.error(
                    "domain",
                    "is missing or empty; it builds the sender address unless spec.smtp.fromAddress is set",
                )
            })?;
            check_host(domain).map_err(|p| d.error("domain", p))?;
            let local = username.as_deref().filter(|u| !u.contains('@')).unwrap_or("no-reply");
            format!("{local}@{domain}")
        }
    };
    Ok(Smtp {
        host: host.to_string(),
        port,
        username: username.filter(|_| use_auth),
        password: password.filter(|_| use_auth),
        security,
        from,
    })
}
