//! The CloudNativePG `Backup` taken before a version change (`spec.upgrade.backupBeforeUpgrade`).
//! One per target version, named after it, so a retried upgrade finds its backup again.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::network::Meta;
use super::version::Version;

/// The label CloudNativePG puts on the Secrets it makes for a cluster.
pub const CNPG_CLUSTER_LABEL: &str = "cnpg.io/cluster";

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Backup"), "backups")
}

/// `<instance>-before-2-17-0`.
pub fn name(instance: &str, to: Version) -> String {
    format!("{instance}-before-{}-{}-{}", to.major, to.minor, to.patch)
}

/// An on-demand backup of `cluster` with the cluster's own backup method.
pub fn pre_upgrade(m: &Meta, cluster: &str, to: Version) -> DynamicObject {
    let name = name(m.name, to);
    let mut backup =
        DynamicObject::new(&name, &api_resource()).data(json!({ "spec": { "cluster": { "name": cluster } } }));
    backup.metadata = m.object(name, "backup");
    // Collected with the Penpot, but not controlled by it: the backup is CloudNativePG's to run.
    for owner in backup.metadata.owner_references.iter_mut().flatten() {
        owner.controller = None;
    }
    backup
}

/// Phase and error of a Backup, as CloudNativePG reports them.
pub fn progress(backup: &DynamicObject) -> (Option<String>, Option<String>) {
    let status = &backup.data["status"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    (text(&status["phase"]), text(&status["error"]))
}
