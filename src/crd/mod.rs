//! The custom resources this operator serves.

mod refs;
pub mod v1alpha1;

pub use refs::Relation;
pub use v1alpha1::*;

use kube::CustomResourceExt;

/// The CRD as YAML, exactly what `penpot-operator crd` prints and `crds/penpot.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&Penpot::crd())
}
