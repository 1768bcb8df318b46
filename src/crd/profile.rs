//! `PenpotProfile` v1alpha1: a Penpot user declared as a resource, for GitOps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Penpot user profile, created through the backend's admin interface (its PREPL), kept as
/// the spec says (full name, password, deactivated) and deleted again with the resource
/// (unless `deletionPolicy: Retain`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "penpot-operator.dev",
    version = "v1alpha1",
    kind = "PenpotProfile",
    namespaced,
    status = "PenpotProfileStatus",
    shortname = "ppp",
    category = "penpot-all",
    printcolumn = r#"{"name":"Penpot","type":"string","jsonPath":".spec.penpotRef.name"}"#,
    printcolumn = r#"{"name":"Email","type":"string","jsonPath":".spec.email"}"#,
    printcolumn = r#"{"name":"Deactivated","type":"boolean","jsonPath":".spec.deactivated","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PenpotProfileSpec {
    /// The Penpot (same namespace) the profile belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("penpotRef is immutable"))]
    pub penpot_ref: PenpotRef,
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+$"), length(max = 254))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("email is immutable: create another PenpotProfile"))]
    pub email: String,
    /// Set in Penpot when it changes here. A name the user gives themselves in Penpot stays
    /// until this field changes again.
    #[schemars(length(min = 1, max = 250))]
    pub fullname: String,
    /// `true` deactivates the profile: it can no longer log in (by password or OIDC), and
    /// its files and teams stay. `false` (default) reactivates it. Not a lock: open sessions
    /// go on, LDAP logins are not stopped, and a password recovery reactivates the profile
    /// until the operator deactivates it again at its next resync.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deactivated: bool,
    /// Secret holding the password (key `password` unless `key` says otherwise). Without it
    /// the operator generates one into `<name>-password`, a Secret it owns. Changing the
    /// Secret (or deleting the generated one) sets the password again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<PasswordSecretRef>,
    /// `Delete` (default) deletes the Penpot profile with this resource; `Retain` keeps it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PenpotRef {
    #[schemars(length(min = 1, max = 45), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
}

/// Any Secret of the PenpotProfile's namespace: whoever may create PenpotProfiles there may
/// have that Secret's value set as a Penpot password (docs/explanation/security.md).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordSecretRef {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::DNS_SUBDOMAIN)
    )]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PenpotProfileStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The Secret holding the password the profile was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// The resourceVersion of that Secret when the password was last set from it: a change
    /// of the Secret sets the password again (a reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_version: Option<String>,
    /// This resource created the profile in Penpot: only then does it set its password and
    /// delete it. A profile that existed before (`AlreadyExists`) is never touched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// The full name last set in Penpot: a different `spec.fullname` is set again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname: Option<String>,
    /// Whether the profile was last left deactivated in Penpot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
}
