//! A read-only view of one Secret's data that turns every lookup problem into a
//! `RelationError` naming the Secret and key.

use std::collections::BTreeMap;

use super::{MAX_VALUE_LEN, RelationError};
use crate::crd::Relation;

pub struct SecretData<'a> {
    relation: Relation,
    secret: &'a str,
    data: &'a BTreeMap<String, Vec<u8>>,
}

impl<'a> SecretData<'a> {
    pub fn new(relation: Relation, secret: &'a str, data: &'a BTreeMap<String, Vec<u8>>) -> Self {
        Self { relation, secret, data }
    }

    pub fn relation(&self) -> Relation {
        self.relation
    }

    pub fn error(&self, key: &str, problem: impl Into<String>) -> RelationError {
        RelationError {
            relation: self.relation,
            secret: self.secret.to_string(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// The value of `key`, trimmed; an empty value counts as absent. Surrounding whitespace is
    /// dropped because a trailing newline from `kubectl create secret --from-file` is never meant.
    pub fn get(&self, key: &str) -> Result<Option<&'a str>, RelationError> {
        let Some(raw) = self.data.get(key) else {
            return Ok(None);
        };
        if raw.len() > MAX_VALUE_LEN {
            return Err(self.error(key, format!("is longer than {MAX_VALUE_LEN} bytes")));
        }
        let text = std::str::from_utf8(raw).map_err(|_| self.error(key, "is not valid UTF-8"))?;
        let text = text.trim();
        if text.chars().any(char::is_control) {
            return Err(self.error(key, "contains control characters (a line break inside the value?)"));
        }
        Ok((!text.is_empty()).then_some(text))
    }

    /// The first of `keys` that is set, with the key it came from.
    pub fn first(&self, keys: &[&'static str]) -> Result<Option<(&'static str, &'a str)>, RelationError> {
        for key in keys {
            if let Some(v) = self.get(key)? {
                return Ok(Some((key, v)));
            }
        }
        Ok(None)
    }

    /// Like `first`, but absence is an error that names the preferred key and its aliases.
    pub fn require(&self, keys: &[&'static str]) -> Result<(&'static str, &'a str), RelationError> {
        self.first(keys)?.ok_or_else(|| self.missing(keys))
    }

    /// The error for a required key that is absent: the preferred key and its aliases.
    pub fn missing(&self, keys: &[&'static str]) -> RelationError {
        let problem = match keys {
            [_] => "is missing or empty".to_string(),
            [_, rest @ ..] => format!("is missing or empty (also accepted: {})", rest.join(", ")),
            [] => "is missing".to_string(),
        };
        self.error(keys.first().copied().unwrap_or_default(), problem)
    }

    /// A boolean key (`true`/`false`, any case); absent means `default`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, RelationError> {
        match self.get(key)? {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    #[test]
    fn lookups() {
        let d =
            data(&[("a", b" x \n"), ("empty", b"  "), ("bin", &[0xff, 0xfe]), ("nl", b"a\nb"), ("big", &[b'a'; 5000])]);
        let s = SecretData::new(Relation::Redis, "sec", &d);
        assert_eq!(s.get("a").unwrap(), Some("x"));
        assert_eq!(s.get("empty").unwrap(), None);
        assert_eq!(s.get("none").unwrap(), None);
        assert!(s.get("bin").unwrap_err().to_string().contains("not valid UTF-8"));
        assert!(s.get("nl").unwrap_err().to_string().contains("control characters"));
        assert!(s.get("big").unwrap_err().to_string().contains("longer than 4096"));
        assert_eq!(s.first(&["none", "a"]).unwrap(), Some(("a", "x")));
        let err = s.require(&["host", "hostname"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"redis relation: Secret "sec" key "host" is missing or empty (also accepted: hostname)"#
        );
    }

    #[test]
    fn errors_never_carry_values() {
        let d = data(&[("password", b"hunter2\x07"), ("tls", b"hunter2")]);
        let s = SecretData::new(Relation::Smtp, "sec", &d);
        assert!(!s.get("password").unwrap_err().to_string().contains("hunter2"));
        assert!(!s.flag("tls", false).unwrap_err().to_string().contains("hunter2"));
    }
}
