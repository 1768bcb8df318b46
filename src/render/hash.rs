//! A stable digest of the rendered configuration: the same inputs give the same bytes, so an
//! unchanged configuration never rolls the pods and any change does.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Hex SHA-256 (first 16 bytes) over sorted key/value pairs, length-prefixed so that no two
/// different maps can produce the same stream.
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in data {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    short_hex(&h.finalize())
}

/// The first 16 bytes of a SHA-256 digest in hex: the 32 characters every digest the operator
/// writes has.
pub fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_sensitive() {
        let a: BTreeMap<_, _> = [("k".to_string(), "v".to_string())].into();
        let b: BTreeMap<_, _> = [("k".to_string(), "w".to_string())].into();
        let c: BTreeMap<_, _> = [("kv".to_string(), String::new())].into();
        assert_eq!(config_hash(&a), config_hash(&a.clone()));
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(config_hash(&a).len(), 32);
    }
}
