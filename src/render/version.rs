//! The Penpot version an image runs, read from its tag, so settings that Penpot renamed or
//! added (storage names in 2.11, SSRF in 2.15, the exporter's internal URI in 2.17) match it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version { major, minor, patch }
    }

    /// The version the default images carry; also assumed for tags that are not versions
    /// (`latest`, digests), since those track current Penpot.
    pub const CURRENT: Version = Version::new(2, 17, 0);
    pub const OBJECTS_STORAGE_NAMES: Version = Version::new(2, 11, 0);
    /// Every OAuth provider's callback is `/api/auth/oidc/callback` from here on.
    pub const SHARED_OAUTH_CALLBACK: Version = Version::new(2, 12, 0);
    pub const SSRF_PROTECTION: Version = Version::new(2, 15, 0);
    pub const EXPORTER_INTERNAL_URI: Version = Version::new(2, 17, 0);

    /// `2.17.0` (the form `spec.version` takes).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next()?, parts.next()?, parts.next()?, parts.next()) {
            (Some(major), Some(minor), Some(patch), None) => Some(Version::new(major, minor, patch)),
            _ => None,
        }
    }

    /// `registry/repo:2.17.0`, `...:2.17`, `...:2.17.0-rock`, `...:2.17.0@sha256:..`.
    pub fn from_image(image: &str) -> Option<Version> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let tag = last.split_once(':')?.1;
        let numeric = tag.trim_start_matches('v');
        let core = numeric.split(['-', '+', '_']).next().unwrap_or(numeric);
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        Some(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags() {
        let v = |s| Version::from_image(s);
        assert_eq!(v("ghcr.io/x/penpot:2.17.0"), Some(Version::new(2, 17, 0)));
        assert_eq!(v("localhost:5000/penpot:2.14"), Some(Version::new(2, 14, 0)));
        assert_eq!(v("penpot:2.14.3-24.04_edge"), Some(Version::new(2, 14, 3)));
        assert_eq!(v("penpot:v2.10.1@sha256:abc"), Some(Version::new(2, 10, 1)));
        assert_eq!(v("localhost:5000/penpot"), None);
        assert_eq!(v("penpot:latest"), None);
        assert_eq!(v("penpot@sha256:abcd"), None);
    }

    #[test]
    fn parses_spec_versions() {
        assert_eq!(Version::parse("2.16.1"), Some(Version::new(2, 16, 1)));
        for bad in ["2.16", "2.16.1.0", "v2.16.1", "2.x.1", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }
}
