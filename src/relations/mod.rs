//! Relation Secrets parsed into typed settings. Pure: data in, settings or an error out.
//!
//! Each relation accepts the field names of its Juju interface and those common Kubernetes
//! operators write (CloudNativePG, ObjectBucketClaims, ...). Errors name the Secret and the key
//! and never carry a value: they end up in status, events and logs.

/// `Debug` for a struct holding credentials: the `shows` fields as usual, the `hides` fields
/// as `<redacted>`, so a `{:?}` in a log line or panic can never print a password. The
/// struct is destructured without `..`: a new field does not compile until it is listed.
macro_rules! debug_hiding {
    ($ty:ident { shows: [$($shown:ident),*], hides: [$($hidden:ident),*] }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $ty { $($shown,)* $($hidden,)* } = self;
                $(let _ = $hidden;)*
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), $shown))*
                    $(.field(stringify!($hidden), &format_args!("<redacted>")))*
                    .finish()
            }
        }
    };
}
pub(crate) use debug_hiding;

mod data;
pub mod logins;
pub mod oidc;
pub mod postgresql;
pub mod redis;
pub mod s3;
pub mod smtp;

pub use data::SecretData;

use std::collections::BTreeMap;

use crate::crd::{PenpotSpec, Relation};

/// Bad relation data: which Secret, which key, what is wrong (never the value itself).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{relation} relation: Secret {secret:?} key {key:?} {problem}")]
pub struct RelationError {
    pub relation: Relation,
    pub secret: String,
    pub key: String,
    pub problem: String,
}

/// Every relation's settings, as the render function consumes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relations {
    pub postgresql: postgresql::Postgresql,
    pub redis: redis::Redis,
    /// `None` when assets go to a volume (`spec.storage.filesystem`).
    pub s3: Option<s3::S3>,
    pub smtp: Option<smtp::Smtp>,
    pub oidc: Option<oidc::Oidc>,
    pub google: Option<logins::OAuthClient>,
    pub github: Option<logins::OAuthClient>,
    pub gitlab: Option<logins::OAuthClient>,
    pub ldap: Option<logins::Ldap>,
}

impl Relations {
    /// The login providers configured besides password login.
    pub fn logins(&self) -> Vec<Relation> {
        Relation::LOGINS.into_iter().filter(|r| self.has(*r)).collect()
    }

    /// Whether the relation is configured; every relation named, so a new one must say.
    pub fn has(&self, relation: Relation) -> bool {
        match relation {
            Relation::Github => self.github.is_some(),
            Relation::Gitlab => self.gitlab.is_some(),
            Relation::Google => self.google.is_some(),
            Relation::Ldap => self.ldap.is_some(),
            Relation::Oidc => self.oidc.is_some(),
            Relation::Smtp => self.smtp.is_some(),
            Relation::S3 => self.s3.is_some(),
            Relation::Postgresql | Relation::Redis => true,
        }
    }
}

/// The relation Secrets found for one Penpot: relation -> (Secret name, data).
pub type Found = BTreeMap<Relation, (String, BTreeMap<String, Vec<u8>>)>;

/// A Secret's keys and values as bytes, `stringData` folded over `data` as the API server
/// does on write (a Secret read from a file may carry either). The one place a Secret becomes
/// relation data, for the controller, `render` and `status` alike.
pub fn secret_data(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    let data = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    let strings = secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    data.chain(strings).collect()
}

/// What the relation data of one Penpot amounts to.
#[derive(Debug)]
pub enum Resolution {
    /// Relations that are needed but absent.
    Missing(Missing),
    Invalid(RelationError),
    Ready(Box<Relations>),
}

/// Relations a Penpot needs and cannot use yet because they are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// Relation names, sorted.
    pub relations: Vec<String>,
    /// The Secrets the spec names for them that do not exist, sorted: a typo in a Secret name
    /// then reads as such, not as a relation nobody configured.
    pub secrets: Vec<String>,
}

/// `postgresql, redis (Secret pg not found)`: what the status says it waits for.
impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.relations.join(", "))?;
        match self.secrets.as_slice() {
            [] => Ok(()),
            [one] => write!(f, " (Secret {one} not found)"),
            many => write!(f, " (Secrets {} not found)", many.join(", ")),
        }
    }
}

/// Parses the found Secrets into settings. OIDC endpoints may still need discovery.
pub fn resolve(spec: &PenpotSpec, found: &Found) -> Resolution {
    let view = |r: Relation| found.get(&r).map(|(name, d)| SecretData::new(r, name, d));
    let missing = missing_relations(spec, |r| found.contains_key(&r));
    let (Some(pg), Some(redis), None) = (view(Relation::Postgresql), view(Relation::Redis), missing.as_ref()) else {
        let relations = missing.unwrap_or_default();
        let mut secrets: Vec<String> = Relation::ALL
            .into_iter()
            .filter(|r| relations.iter().any(|m| m.split(' ').next() == Some(r.name())))
            .filter_map(|r| spec.secret_name(r).map(str::to_string))
            .collect();
        secrets.sort();
        secrets.dedup();
        return Resolution::Missing(Missing { relations, secrets });
    };
    let from_address = spec.smtp.as_ref().and_then(|s| s.from_address.as_deref());
    let parsed = (|| {
        Ok(Relations {
            postgresql: postgresql::parse(&pg)?,
            redis: redis::parse(&redis)?,
            s3: view(Relation::S3).map(|d| s3::parse(&d, spec.service_account.is_some())).transpose()?,
            smtp: view(Relation::Smtp).map(|d| smtp::parse(&d, from_address)).transpose()?,
            oidc: view(Relation::Oidc).map(|d| oidc::parse(&d)).transpose()?,
            google: view(Relation::Google).map(|d| logins::oauth_client(&d, false)).transpose()?,
            github: view(Relation::Github).map(|d| logins::oauth_client(&d, false)).transpose()?,
            gitlab: view(Relation::Gitlab).map(|d| logins::oauth_client(&d, true)).transpose()?,
            ldap: view(Relation::Ldap).map(|d| logins::ldap(&d)).transpose()?,
        })
    })();
    match parsed {
        Ok(r) => Resolution::Ready(Box::new(r)),
        Err(e) => Resolution::Invalid(e),
    }
}

/// Parses one relation's Secret on its own, for per-relation reports (`status`).
pub fn check(spec: &PenpotSpec, d: &SecretData) -> Result<(), RelationError> {
    match d.relation() {
        Relation::Postgresql => postgresql::parse(d).map(drop),
        Relation::Redis => redis::parse(d).map(drop),
        Relation::S3 => s3::parse(d, spec.service_account.is_some()).map(drop),
        Relation::Smtp => smtp::parse(d, spec.smtp.as_ref().and_then(|s| s.from_address.as_deref())).map(drop),
        Relation::Oidc => oidc::parse(d).map(drop),
        Relation::Google | Relation::Github => logins::oauth_client(d, false).map(drop),
        Relation::Gitlab => logins::oauth_client(d, true).map(drop),
        Relation::Ldap => logins::ldap(d).map(drop),
    }
}

/// Required relations that are not there, plus referenced optional ones whose Secret is
/// absent, plus SMTP when OIDC asks for it. `None` when nothing is missing. Object storage
/// unset altogether reads `s3 or storage.filesystem`: either will do.
pub fn missing_relations(spec: &PenpotSpec, present: impl Fn(Relation) -> bool) -> Option<Vec<String>> {
    let mut missing: Vec<String> = Relation::ALL
        .into_iter()
        .filter(|r| (spec.needs(*r) || spec.secret_name(*r).is_some()) && !present(*r))
        .map(|r| match r {
            Relation::S3 if spec.s3.is_none() => format!("{r} or storage.filesystem"),
            _ => r.name().to_string(),
        })
        .collect();
    if spec.oidc_requires_smtp() && spec.smtp.is_none() {
        missing.push(Relation::Smtp.name().to_string());
    }
    missing.sort();
    missing.dedup();
    (!missing.is_empty()).then_some(missing)
}

/// Longest value accepted from a relation key; Penpot has no setting near this size, so
/// anything longer is a mistake (a whole file pasted into a key) and is refused.
pub const MAX_VALUE_LEN: usize = 4096;

/// Splits `host[:port]` (IPv6 in brackets) and validates both parts.
pub(crate) fn host_port(value: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) =
            rest.split_once(']').ok_or_else(|| "has an IPv6 address without the closing ']'".to_string())?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("is not host:port".into()),
        };
        (format!("[{host}]"), port)
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (value.to_string(), None),
        }
    };
    check_host(&host)?;
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port.ok_or_else(|| "has no port".to_string())?,
    };
    Ok((host, port))
}

/// A host name or IP literal safe to put into a URI authority.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("has an empty host".into());
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) if d != host.to_ascii_lowercase() => {
            Err("has a host name with characters that are not allowed".into())
        }
        Ok(_) => Ok(()),
        Err(_) => Err("is not a valid host name or IP address".into()),
    }
}

pub(crate) fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err("is not a port number (1-65535)".into()),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With neither S3 nor a volume, status says either will do; with a volume, S3 is not
    /// needed; a referenced S3 Secret that is absent is named as such.
    #[test]
    fn object_storage_is_s3_or_a_volume() {
        use crate::crd::{FilesystemStorage, RelationRef, SecretRef, StorageSpec};
        let only = |present: [Relation; 2]| move |r: Relation| present.contains(&r);
        let base = PenpotSpec::default();
        assert_eq!(
            missing_relations(&base, only([Relation::Postgresql, Relation::Redis])),
            Some(vec!["s3 or storage.filesystem".to_string()])
        );
        let volume = PenpotSpec {
            storage: Some(StorageSpec { filesystem: Some(FilesystemStorage::default()) }),
            ..PenpotSpec::default()
        };
        assert_eq!(missing_relations(&volume, only([Relation::Postgresql, Relation::Redis])), None);
        let bucket = PenpotSpec {
            s3: Some(RelationRef { secret_ref: SecretRef { name: "b".into() } }),
            ..PenpotSpec::default()
        };
        let found: Found = [
            (Relation::Postgresql, ("pg".to_string(), BTreeMap::new())),
            (Relation::Redis, ("r".to_string(), BTreeMap::new())),
        ]
        .into();
        match resolve(&bucket, &found) {
            Resolution::Missing(m) => assert_eq!(m.to_string(), "s3 (Secret b not found)"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_port_cases() {
        assert_eq!(host_port("db:5432", None), Ok(("db".into(), 5432)));
        assert_eq!(host_port("db", Some(5432)), Ok(("db".into(), 5432)));
        assert_eq!(host_port("[::1]:6379", None), Ok(("[::1]".into(), 6379)));
        assert_eq!(host_port("10.0.0.1", Some(1)), Ok(("10.0.0.1".into(), 1)));
        for bad in ["db:0", "db:65536", "db:x", ":5432", "d b:1", "a@b:1", "a/b:1", "a#b:1", "[::1", "db\n:1"] {
            assert!(host_port(bad, Some(1)).is_err(), "{bad:?} accepted");
        }
        assert!(host_port("db", None).is_err());
    }
}
