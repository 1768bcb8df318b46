//! The custom resources this operator serves.

pub mod profile;
mod refs;
pub mod v1alpha1;

pub use profile::{PenpotProfile, PenpotProfileSpec, PenpotProfileStatus};
pub use refs::Relation;
pub use v1alpha1::*;

use kube::CustomResourceExt;

/// A DNS subdomain (RFC 1123), the names of Secrets, ConfigMaps, claims, ServiceAccounts and
/// Gateways: one pattern for every field that names one.
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// The CRDs as one YAML stream, exactly what `penpot-operator crd` prints and
/// `crds/penpot.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_multiple(&[Penpot::crd(), PenpotProfile::crd()])
}
