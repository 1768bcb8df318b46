//! PostgreSQL relation: Juju `postgresql_client` fields, CloudNativePG `-app` Secrets, or a URI.

use super::{RelationError, SecretData, check_host, host_port, parse_port};

#[derive(Clone, PartialEq, Eq)]
pub struct Postgresql {
    /// `postgresql://host:port/database[?params]`, credentials kept out of it.
    pub uri: String,
    pub username: String,
    pub password: String,
}

super::debug_hiding!(Postgresql { shows: [uri, username], hides: [password] });

/// Database names go into a URI path; allow what real deployments use and nothing that
/// needs escaping.
fn valid_database(name: &str) -> bool {
    name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.$".contains(c))
}

pub fn parse(d: &SecretData) -> Result<Postgresql, RelationError> {
    let from_uri = d.first(&["uri"])?.map(|(_, uri)| parse_uri(d, uri)).transpose()?;

    // Host and port: Juju `endpoints`, else CloudNativePG `host` + `port`, else the URI.
    let (host, port) = if let Some(endpoints) = d.get("endpoints")? {
        let first = endpoints.split(',').next().unwrap_or_default().trim();
        host_port(first, Some(5432)).map_err(|p| d.error("endpoints", p))?
    } else if let Some(host) = d.get("host")? {
        check_host(host).map_err(|p| d.error("host", p))?;
        let port = match d.get("port")? {
            Some(p) => parse_port(p).map_err(|p| d.error("port", p))?,
            None => 5432,
        };
        (host.to_string(), port)
    } else if let Some(u) = &from_uri {
        (u.host.clone(), u.port)
    } else {
        return Err(d.error("endpoints", "is missing or empty (also accepted: host + port, uri)"));
    };

    let database = match d.first(&["database", "dbname"])? {
        Some((key, db)) => {
            if !valid_database(db) {
                return Err(d.error(key, "must be a database name of letters, digits, '_', '-', '.' or '$'"));
            }
            db.to_string()
        }
        None => match from_uri.as_ref().and_then(|u| u.database.clone()) {
            Some(db) => db,
            None => return Err(d.error("database", "is missing or empty (also accepted: dbname, uri)")),
        },
    };

    let username = match d.first(&["username", "user"])? {
        Some((_, u)) => u.to_string(),
        None => match from_uri.as_ref().and_then(|u| u.username.clone()) {
            Some(u) => u,
            None => return Err(d.error("username", "is missing or empty (also accepted: user, uri)")),
        },
    };
    let password = match d.get("password")? {
        Some(p) => p.to_string(),
        None => match from_uri.as_ref().and_then(|u| u.password.clone()) {
            Some(p) => p,
            None => return Err(d.error("password", "is missing or empty")),
        },
    };

    let query = from_uri.and_then(|u| u.query).map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Postgresql { uri: format!("postgresql://{host}:{port}/{database}{query}"), username, password })
}

struct UriParts {
    host: String,
    port: u16,
    database: Option<String>,
    username: Option<String>,
    password: Option<String>,
    query: Option<String>,
}

/// The JDBC driver options a PostgreSQL Secret may pass on. Others are refused: pgjdbc loads
/// classes and writes files named in its options (`socketFactory`, `sslfactory`,
/// `loggerFile`, ...), which no relation Secret should control.
const ALLOWED_QUERY: [&str; 14] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connectTimeout",
    "socketTimeout",
    "loginTimeout",
    "tcpKeepAlive",
    "ApplicationName",
    "currentSchema",
    "targetServerType",
    "prepareThreshold",
    "preferQueryMode",
    "options",
];

fn parse_uri(d: &SecretData, uri: &str) -> Result<UriParts, RelationError> {
    let bad = |p: &str| d.error("uri", p);
    let url = url::Url::parse(uri).map_err(|_| bad("is not a valid URI"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(bad("must start with postgresql:// or postgres://"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment"));
    }
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    check_host(host).map_err(|p| bad(&p))?;
    if let Some((name, _)) = url.query_pairs().find(|(name, _)| !ALLOWED_QUERY.contains(&name.as_ref())) {
        // The name only: a value may be a secret.
        let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err(bad(&format!(
            "has query option {name:?}, which is not allowed (allowed: {})",
            ALLOWED_QUERY.join(", ")
        )));
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned());
    let database = match url.path().trim_start_matches('/') {
        "" => None,
        db if valid_database(db) => Some(db.to_string()),
        _ => return Err(bad("has a database name that is not letters, digits, '_', '-', '.' or '$'")),
    };
    let username = match url.username() {
        "" => None,
        u => Some(decode(u).map_err(|_| bad("has a user name that is not UTF-8"))?),
    };
    let password = match url.password() {
        None | Some("") => None,
        Some(p) => Some(decode(p).map_err(|_| bad("has a password that is not UTF-8"))?),
    };
    Ok(UriParts {
        host: host.to_string(),
        port: url.port().unwrap_or(5432),
        database,
        username,
        password,
        query: url.query().filter(|q| !q.is_empty()).map(str::to_string),
    })
}
