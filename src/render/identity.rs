//! The pods' ServiceAccount (`spec.serviceAccount`): how a cloud identity (IRSA, GKE or Azure
//! workload identity) reaches the backend instead of static S3 keys. The operator makes one
//! carrying the user's annotations, or the pods use an existing one; without the field they
//! run as the namespace's `default`, as before.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::crd::WorkloadServiceAccount;

use super::network::Meta;

/// The ServiceAccount to make: only when the user gives annotations rather than a name.
/// Its token is never mounted (the pod spec says so): identity webhooks project their own.
pub fn service_account(m: &Meta, sa: Option<&WorkloadServiceAccount>) -> Option<ServiceAccount> {
    let annotations = sa?.annotations.clone()?;
    let mut metadata = m.object(m.name.to_string(), "penpot");
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(ServiceAccount { metadata, automount_service_account_token: Some(false), ..Default::default() })
}

/// The pods' `serviceAccountName`: the existing one, the one made, or unset (`default`).
pub fn service_account_name(instance: &str, sa: Option<&WorkloadServiceAccount>) -> Option<String> {
    let sa = sa?;
    Some(sa.name.clone().unwrap_or_else(|| instance.to_string()))
}
