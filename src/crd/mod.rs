//! The custom resources this operator serves.

pub mod profile;
mod refs;
pub mod v1alpha1;

pub use profile::{PenpotProfile, PenpotProfileSpec, PenpotProfileStatus};
pub use refs::Relation;
pub use v1alpha1::*;

use kube::CustomResourceExt;

/// The CRDs as one YAML stream, exactly what `penpot-operator crd` prints and
/// `crds/penpot.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_multiple(&[Penpot::crd(), PenpotProfile::crd()])
}
