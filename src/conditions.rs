//! kstatus conditions shared by `Penpot` and `PenpotProfile`: the condition types, every reason
//! either resource reports (CamelCase tokens that double as Event reasons and metric labels),
//! and the one function that turns a summary into the three conditions. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The kstatus condition types: `Ready` with positive polarity, `Reconciling` and `Stalled`
/// abnormal-true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Ready,
    Reconciling,
    Stalled,
    /// Not kstatus's: whether every pre-flight check passed (`status.checks`).
    RelationsReachable,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
            ConditionType::RelationsReachable => "RelationsReachable",
        }
    }
}

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Why a condition is what it is.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    // Penpot
    Ready,
    WaitingForRelations,
    InvalidRelation,
    InvalidSpec,
    /// The stored object does not parse as this operator's Penpot.
    UnreadableSpec,
    InvalidSecretKey,
    OidcDiscoveryFailed,
    ApplyFailed,
    /// An object with a rendered name exists and this Penpot does not control it.
    ObjectInTheWay,
    RolloutInProgress,
    /// A new configuration waits: the pods rolled less than the rollout interval ago.
    RolloutDeferred,
    /// A new version runs in one pod first, which migrates the database.
    UpgradingFirstPod,
    /// `spec.version` is lower than the version the database was migrated to.
    DowngradeRefused,
    /// The pre-upgrade backup runs; no pod changes version until it completed.
    BackingUpBeforeUpgrade,
    /// The pre-upgrade backup failed.
    BackupFailed,
    /// A pre-upgrade backup is asked for, but the database is not a CloudNativePG cluster.
    BackupUnavailable,
    PodsStarting,
    ScaledToZero,
    /// The normal state of `Reconciling` and `Stalled` when they are False.
    AsExpected,
    /// Every pre-flight check passed or had nothing to check with.
    ChecksPassed,
    /// A pre-flight check failed.
    CheckFailed,
    /// The first pre-flight checks have not ended.
    Checking,
    // PenpotProfile
    PenpotNotFound,
    PenpotNotReady,
    /// The Penpot runs a release whose admin interface the operator does not speak.
    PenpotTooOld,
    InvalidPasswordSecret,
    Created,
    AlreadyExists,
    CreateFailed,
    /// A spec or password Secret edit was set on the profile in Penpot.
    Updated,
    /// Setting such an edit failed.
    UpdateFailed,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resource stands, for the three conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Ready.
    Done,
    /// Not ready yet; the operator is working on it or waiting for something to arrive.
    Reconciling,
    /// Not ready, and it will not get there without a change from the user.
    Stalled,
}

/// What the conditions say, before timestamps.
pub struct Summary<'a> {
    pub progress: Progress,
    /// The reason of `Ready` (and of `Reconciling` or `Stalled` when that one is True).
    pub reason: Reason,
    /// The message of `Ready`.
    pub ready_message: &'a str,
    /// The message of `Reconciling` or `Stalled` when True.
    pub message: &'a str,
}

/// `Ready`, `Reconciling` and `Stalled` for `summary`, each keeping its previous
/// `lastTransitionTime` while its status is unchanged.
pub fn kstatus(previous: &[Condition], now: &Time, generation: Option<i64>, summary: &Summary) -> Vec<Condition> {
    let condition = |type_: ConditionType, on: bool, reason: Reason, message: &str| {
        make_condition(previous, now, generation, type_, on, reason, message)
    };
    let flag = |type_: ConditionType, on: bool| {
        if on {
            condition(type_, true, summary.reason, summary.message)
        } else {
            condition(type_, false, Reason::AsExpected, "")
        }
    };
    vec![
        condition(ConditionType::Ready, summary.progress == Progress::Done, summary.reason, summary.ready_message),
        flag(ConditionType::Reconciling, summary.progress == Progress::Reconciling),
        flag(ConditionType::Stalled, summary.progress == Progress::Stalled),
    ]
}

/// A condition that keeps its `lastTransitionTime` while its status does not change (the rule
/// of apimachinery's `meta.SetStatusCondition`), so an unchanged status writes nothing.
pub fn make_condition(
    previous: &[Condition],
    now: &Time,
    generation: Option<i64>,
    type_: ConditionType,
    status: bool,
    reason: Reason,
    message: &str,
) -> Condition {
    make_condition_of(previous, now, generation, type_, Some(status), reason, message)
}

/// [`make_condition`] with `Unknown` (`None`) allowed.
pub fn make_condition_of(
    previous: &[Condition],
    now: &Time,
    generation: Option<i64>,
    type_: ConditionType,
    status: Option<bool>,
    reason: Reason,
    message: &str,
) -> Condition {
    let status = match status {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
    .to_string();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_.as_str() && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.as_str().into(),
        status,
        reason: reason.as_str().into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The condition of `type_` in `conditions`, if any.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether `conditions` hold `Ready=True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, ConditionType::Ready).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn reasons_are_their_own_names() {
        assert_eq!(Reason::ObjectInTheWay.as_str(), "ObjectInTheWay");
        assert!(Reason::ALL.iter().all(|r| r.as_str().chars().next().is_some_and(|c| c.is_ascii_uppercase())));
    }

    #[test]
    fn one_flag_at_most_and_transition_times_kept() {
        let t = |s| Time(Timestamp::from_second(s).unwrap());
        let stalled =
            Summary { progress: Progress::Stalled, reason: Reason::InvalidSpec, ready_message: "m", message: "m" };
        let first = kstatus(&[], &t(1), Some(1), &stalled);
        let by_type = |c: &[Condition], ty| find(c, ty).map(|c| (c.status.clone(), c.reason.clone())).unwrap();
        assert_eq!(by_type(&first, ConditionType::Stalled), ("True".into(), "InvalidSpec".into()));
        assert_eq!(by_type(&first, ConditionType::Reconciling), ("False".into(), "AsExpected".into()));
        assert!(!is_ready(&first));
        let done = Summary { progress: Progress::Done, reason: Reason::Ready, ready_message: "ok", message: "" };
        let second = kstatus(&first, &t(5), Some(1), &done);
        assert!(is_ready(&second));
        // Reconciling stayed False: its time is the first one's.
        assert_eq!(find(&second, ConditionType::Reconciling).unwrap().last_transition_time, t(1));
        assert_eq!(find(&second, ConditionType::Ready).unwrap().last_transition_time, t(5));
    }
}
