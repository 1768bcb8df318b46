//! The reconcile's errors, one variant per way a step can fail, with the stable category that
//! labels metrics and names Events. Here rather than in `controller`, so `metrics` can count
//! them without importing the controller.

use crate::render::owned::OwnedKind;

/// The step of a reconcile that talked to the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading the relation Secrets, the secret key (or creating it) and the workload.
    Resolve,
    /// Reading and writing the rendered objects.
    Apply,
    /// Deleting (or listing) objects the render no longer produces.
    Prune,
    /// Writing the Penpot's status.
    Report,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Resolve => "resolve",
            Step::Apply => "apply",
            Step::Prune => "prune",
            Step::Report => "report",
        })
    }
}

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A request of `step` failed in transport or with an error the reconcile does not expect.
    #[error("{step}: Kubernetes API: {source}")]
    Kube { step: Step, source: kube::Error },
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
    /// Something the API server always provides was absent (a uid, an applied object).
    #[error("unexpected answer from the API server: {0}")]
    Unexpected(String),
    #[error("cannot encode an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Penpot is not namespaced")]
    NotNamespaced,
    #[error("not the leader: refusing to write")]
    NotLeader,
    /// The whole reconcile took longer than its deadline (an API call hung).
    #[error("the reconcile did not finish within {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
}

impl Error {
    /// The step that failed, where one did.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Kube { step, .. } => Some(*step),
            Error::Rejected { .. } | Error::InTheWay { .. } | Error::Predecessor { .. } | Error::Unexpected(_) => {
                Some(Step::Apply)
            }
            Error::Json(_) | Error::NotNamespaced | Error::NotLeader | Error::TimedOut(_) => None,
        }
    }

    /// Stable CamelCase category for metric labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source: kube::Error::Api(s), .. } | Error::Rejected { status: s, .. } => match s.code {
                409 => "Conflict",
                403 => "Forbidden",
                _ => "ApiError",
            },
            Error::Kube { .. } => "ClientError",
            Error::InTheWay { .. } => "ObjectInTheWay",
            Error::Predecessor { .. } => "Predecessor",
            Error::Unexpected(_) => "Unexpected",
            Error::Json(_) => "Encoding",
            Error::NotNamespaced => "NotNamespaced",
            Error::NotLeader => "NotLeader",
            Error::TimedOut(_) => "TimedOut",
        }
    }
}

/// Names the step a kube call belongs to: `api.get_opt(name).await.at(Step::Resolve)?`.
pub trait AtStep<T> {
    fn at(self, step: Step) -> Result<T, Error>;
}

impl<T> AtStep<T> for Result<T, kube::Error> {
    fn at(self, step: Step) -> Result<T, Error> {
        self.map_err(|source| Error::Kube { step, source })
    }
}

/// `e: its source: its source's source`: reqwest's and tokio-postgres's own `Display` say only
/// "builder error" or "error connecting to server".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
