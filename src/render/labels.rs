//! Names and labels of everything the operator owns. Names derive from the Penpot's name only,
//! so every reconcile addresses the same objects.

use std::collections::BTreeMap;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
pub const MANAGER: &str = "penpot-operator";
/// Pod-template annotation whose change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "penpot-operator.dev/config-hash";

pub fn config_secret_name(instance: &str) -> String {
    format!("{instance}-config")
}

pub fn secret_key_secret_name(instance: &str) -> String {
    format!("{instance}-secret-key")
}

/// The assets claim the operator makes for `storage.filesystem` without a `claimName`.
pub fn assets_claim_name(instance: &str) -> String {
    format!("{instance}-assets")
}

pub fn headless_service_name(instance: &str) -> String {
    format!("{instance}-endpoints")
}

/// The immutable StatefulSet selector: name and instance only.
pub fn selector(instance: &str) -> BTreeMap<String, String> {
    [(NAME_LABEL.to_string(), "penpot".to_string()), (INSTANCE_LABEL.to_string(), instance.to_string())].into()
}

/// Labels on every owned object.
pub fn labels(instance: &str, component: &str, version: &str) -> BTreeMap<String, String> {
    let mut l = selector(instance);
    l.insert("app.kubernetes.io/component".into(), component.into());
    l.insert("app.kubernetes.io/part-of".into(), "penpot".into());
    l.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    l.insert(VERSION_LABEL.into(), version.into());
    l
}
