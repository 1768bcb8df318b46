//! The Secrets the operator writes: the rendered configuration (it carries credentials, so it
//! is never a ConfigMap) and the shared `PENPOT_SECRET_KEY`.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::RngCore;

use super::labels;
use super::network::Meta;

pub const SECRET_KEY_FIELD: &str = "secret-key";

pub fn config_secret(m: &Meta, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: m.object(labels::config_secret_name(m.name), "config"),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// 64 random bytes, URL-safe base64: what upstream suggests and the charm generates.
pub fn generate_secret_key() -> String {
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Created once when absent and never rewritten: a new key would log every user out.
pub fn secret_key_secret(m: &Meta, key: &str) -> Secret {
    Secret {
        metadata: m.object(labels::secret_key_secret_name(m.name), "secret-key"),
        data: Some([(SECRET_KEY_FIELD.to_string(), ByteString(key.as_bytes().to_vec()))].into()),
        type_: Some("Opaque".into()),
        // Nobody edits the key by mistake; rotating it is a deliberate delete and create.
        immutable: Some(true),
        ..Default::default()
    }
}

/// The key stored in an existing secret-key Secret's data, if it holds a usable one.
pub fn read_secret_key(data: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let bytes = data.get(SECRET_KEY_FIELD)?;
    let key = std::str::from_utf8(bytes).ok()?.trim();
    (key.len() >= 32 && key.chars().all(|c| c.is_ascii_graphic())).then(|| key.to_string())
}
