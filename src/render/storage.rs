//! Filesystem storage (`spec.storage.filesystem`): the assets claim the operator makes, and
//! how the pods mount it. The backend writes into it and nginx sends files from it, so
//! every container that touches assets mounts the same claim at [`paths::ASSETS_DIR`].

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Volume,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::crd::FilesystemStorage;

use super::labels;
use super::network::Meta;

/// The pod volume holding the assets.
pub const ASSETS_VOLUME: &str = "assets";

/// The claim's name: the user's `claimName`, else the one the operator makes.
pub fn claim_name(instance: &str, fs: &FilesystemStorage) -> String {
    fs.claim_name.clone().unwrap_or_else(|| labels::assets_claim_name(instance))
}

/// The claim to make, unless the user named an existing one. Owned by the Penpot (deleted
/// with it) but never pruned: switching to S3 must not delete uploaded files.
pub fn assets_claim(m: &Meta, fs: &FilesystemStorage) -> Option<PersistentVolumeClaim> {
    fs.claim_name.is_none().then(|| PersistentVolumeClaim {
        metadata: m.object(labels::assets_claim_name(m.name), "assets"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![fs.access_mode.as_str().into()]),
            storage_class_name: fs.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(fs.size.clone()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

pub fn assets_volume(instance: &str, fs: &FilesystemStorage) -> Volume {
    Volume {
        name: ASSETS_VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name(instance, fs),
            read_only: None,
        }),
        ..Default::default()
    }
}
