//! The reconcile's errors, one variant per way a step can fail, with the stable category that
//! labels metrics and names Events. Here rather than in `controller`, so `metrics` can count
//! them without importing the controller.

use crate::render::owned::OwnedKind;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Reading or writing failed in transport or with an error the reconcile does not expect.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The API server answered, and refused one rendered object (a webhook, a quota, a
    /// conflict): the message names the object, for status and events.
    #[error("the API server refused {kind} {name}: {} ({}, HTTP {})", .status.message, .status.reason, .status.code)]
    Rejected { kind: String, name: String, status: Box<kube::core::Status> },
    /// Apply found an object with a rendered name that this Penpot does not control.
    #[error(
        "{kind} {name} already exists and {holder}; delete it, or hand it over by annotating it {annotation}=<this Penpot's name>",
        annotation = crate::controller::ADOPT_ANNOTATION
    )]
    InTheWay { kind: OwnedKind, name: String, holder: String },
    /// A rendered object still belongs to a deleted Penpot of the same name (recreated before
    /// the garbage collector got to its objects): clears by itself in seconds.
    #[error(
        "{kind} {name} still belongs to a deleted Penpot of the same name; waiting for the garbage collector to remove it"
    )]
    Predecessor { kind: OwnedKind, name: String },
    /// An object the apply should have produced is absent from its result.
    #[error("apply produced no {0}")]
    Missing(String),
    #[error("cannot encode an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Penpot is not namespaced")]
    NotNamespaced,
    #[error("not the leader: refusing to write")]
    NotLeader,
}

impl Error {
    /// Stable CamelCase category for metric labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) | Error::Rejected { status: s, .. } => match s.code {
                409 => "Conflict",
                403 => "Forbidden",
                _ => "ApiError",
            },
            Error::Kube(_) => "ClientError",
            Error::InTheWay { .. } => "ObjectInTheWay",
            Error::Predecessor { .. } => "Predecessor",
            Error::Missing(_) => "Missing",
            Error::Json(_) => "Encoding",
            Error::NotNamespaced => "NotNamespaced",
            Error::NotLeader => "NotLeader",
        }
    }
}
