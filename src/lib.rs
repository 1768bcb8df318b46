//! penpot-operator: runs Penpot on Kubernetes from `Penpot` custom resources.
//!
//! The pure half (`crd`, `relations`, `render`, `status`, `schema`) computes the desired state
//! without I/O; `controller` reads inputs, applies the result and writes status; `checks` tries the
//! relations' servers in the background.

pub mod checks;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod pod_init;
pub mod profiles;
pub mod relations;
pub mod render;
pub mod schema;
pub mod status;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod trust;
