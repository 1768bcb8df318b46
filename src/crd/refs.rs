//! Which Secrets a Penpot depends on. Pure, so the watch mapper and tests share it.

use super::v1alpha1::{Penpot, PenpotSpec};

/// The relations a Penpot can have, in the order their names sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Relation {
    Github,
    Gitlab,
    Google,
    Ldap,
    Oidc,
    Postgresql,
    Redis,
    S3,
    Smtp,
}

impl Relation {
    pub const ALL: [Relation; 9] = [
        Relation::Github,
        Relation::Gitlab,
        Relation::Google,
        Relation::Ldap,
        Relation::Oidc,
        Relation::Postgresql,
        Relation::Redis,
        Relation::S3,
        Relation::Smtp,
    ];

    /// The login providers besides password login, each one flag `login-with-<name>`.
    pub const LOGINS: [Relation; 5] =
        [Relation::Github, Relation::Gitlab, Relation::Google, Relation::Ldap, Relation::Oidc];

    /// The name users see in status messages and the spec field that references it.
    pub fn name(self) -> &'static str {
        match self {
            Relation::Github => "github",
            Relation::Gitlab => "gitlab",
            Relation::Google => "google",
            Relation::Ldap => "ldap",
            Relation::Oidc => "oidc",
            Relation::Postgresql => "postgresql",
            Relation::Redis => "redis",
            Relation::S3 => "s3",
            Relation::Smtp => "smtp",
        }
    }

    /// Whether every Penpot needs this relation; S3 only when assets have no volume
    /// ([`PenpotSpec::needs`]).
    pub fn is_required(self) -> bool {
        matches!(self, Relation::Postgresql | Relation::Redis | Relation::S3)
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PenpotSpec {
    /// The Secret name a relation points at, if the spec sets one.
    pub fn secret_name(&self, relation: Relation) -> Option<&str> {
        let name = match relation {
            Relation::Github => &self.github.as_ref()?.secret_ref.name,
            Relation::Gitlab => &self.gitlab.as_ref()?.secret_ref.name,
            Relation::Google => &self.google.as_ref()?.secret_ref.name,
            Relation::Ldap => &self.ldap.as_ref()?.secret_ref.name,
            Relation::Oidc => &self.oidc.as_ref()?.secret_ref.name,
            Relation::Postgresql => &self.postgresql.as_ref()?.secret_ref.name,
            Relation::Redis => &self.redis.as_ref()?.secret_ref.name,
            Relation::S3 => &self.s3.as_ref()?.secret_ref.name,
            Relation::Smtp => &self.smtp.as_ref()?.secret_ref.name,
        };
        Some(name.as_str())
    }

    /// Whether OIDC needs SMTP here: the charm's rule, and the default, unless
    /// `spec.oidc.requireSmtp` turns it off.
    pub fn oidc_requires_smtp(&self) -> bool {
        self.oidc.as_ref().is_some_and(|o| o.require_smtp)
    }

    /// Whether this Penpot cannot run without the relation: S3 is optional once assets go
    /// to a volume (`storage.filesystem`).
    pub fn needs(&self, relation: Relation) -> bool {
        relation.is_required() && !(relation == Relation::S3 && self.filesystem_storage().is_some())
    }

    /// Every relation the spec references, with its Secret name.
    pub fn referenced_secrets(&self) -> impl Iterator<Item = (Relation, &str)> {
        Relation::ALL.into_iter().filter_map(|r| self.secret_name(r).map(|name| (r, name)))
    }
}

impl Penpot {
    /// Whether a Secret of this name (in the Penpot's namespace) feeds one of its relations
    /// or holds its CA bundle.
    pub fn references_secret(&self, name: &str) -> bool {
        self.spec.referenced_secrets().any(|(_, n)| n == name)
            || self.spec.ca_bundle.as_ref().and_then(|c| c.secret_ref.as_ref()).is_some_and(|r| r.name == name)
    }

    /// Whether a ConfigMap of this name holds its CA bundle.
    pub fn references_config_map(&self, name: &str) -> bool {
        self.spec.ca_bundle.as_ref().and_then(|c| c.config_map_ref.as_ref()).is_some_and(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{RelationRef, SecretRef};

    fn with_redis(name: &str) -> Penpot {
        Penpot::new(
            "p",
            PenpotSpec {
                redis: Some(RelationRef { secret_ref: SecretRef { name: name.into() } }),
                ..Default::default()
            },
        )
    }

    #[test]
    fn references_only_named_secrets() {
        let p = with_redis("cache");
        assert!(p.references_secret("cache"));
        assert!(!p.references_secret("db"));
        assert_eq!(p.spec.referenced_secrets().collect::<Vec<_>>(), vec![(Relation::Redis, "cache")]);
    }

    #[test]
    fn relation_order_is_name_order() {
        let mut names: Vec<_> = Relation::ALL.iter().map(|r| r.name()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), 9);
    }
}
