//! Version changes that cannot corrupt the database.
//!
//! Penpot migrates its database when a backend starts, with no lock between backends. So when
//! the version changes, one pod runs the new version first: on an upgrade the StatefulSet's
//! partition keeps every other pod on the old revision; on a fresh install the StatefulSet
//! starts with one replica. Once that pod is Ready the database is migrated, the version is
//! recorded on the StatefulSet ([`MIGRATED_ANNOTATION`]) and the rest follow. A version lower
//! than the recorded one is refused: Penpot has no down migrations.
//!
//! Pure: the live StatefulSet comes in as [`Live`], read by the controller.

use k8s_openapi::api::apps::v1::StatefulSet;

use super::labels::VERSION_LABEL;
use super::version::Version;

/// On the StatefulSet: the Penpot version the database was migrated to, i.e. the last version
/// a pod ran until Ready.
pub const MIGRATED_ANNOTATION: &str = "penpot-operator.dev/migrated-version";

/// What the render needs to know about the StatefulSet running now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Live {
    /// [`MIGRATED_ANNOTATION`]; absent on StatefulSets made before it existed.
    pub migrated: Option<Version>,
    /// The version of the pod template.
    pub template: Option<Version>,
    /// The StatefulSet controller has seen the latest spec.
    pub observed: bool,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
}

impl Live {
    pub fn of(sts: &StatefulSet) -> Live {
        let status = sts.status.clone().unwrap_or_default();
        let template = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(VERSION_LABEL))
            .and_then(|v| Version::parse(v));
        Live {
            migrated: sts
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MIGRATED_ANNOTATION))
                .and_then(|v| Version::parse(v)),
            template,
            observed: status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0),
            replicas: status.replicas,
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
        }
    }

    /// The version the database is at: recorded, or (for a StatefulSet from before the
    /// record) the version its pods were rendered with.
    fn database(&self) -> Option<Version> {
        self.migrated.or(self.template)
    }

    /// A pod of `version` is Ready and no other pod is unready: the migration is done.
    fn first_pod_ready(&self, version: Version) -> bool {
        self.template == Some(version) && self.observed && self.updated >= 1 && self.ready >= self.replicas.max(1)
    }
}

/// How the StatefulSet carries the version out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// The database is at `version`: every pod follows the spec.
    Steady { version: Version },
    /// The pre-upgrade backup `backup` runs; every pod stays on `from`.
    BackingUp { from: Version, to: Version, backup: String },
    /// One pod runs `to` (and migrates the database) before the others. `from` is the
    /// version the database is at, `None` on a fresh install.
    FirstPod { from: Option<Version>, to: Version },
}

/// The pre-upgrade backup (`spec.upgrade.backupBeforeUpgrade`), as the controller found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backup {
    /// Not asked for, or no version change is pending.
    #[default]
    NotNeeded,
    /// Asked for, but the PostgreSQL Secret names no CloudNativePG cluster.
    NoCluster {
        secret: String,
    },
    /// The `Backup` object exists and has not finished.
    Running {
        name: String,
        phase: Option<String>,
    },
    Completed {
        name: String,
    },
    Failed {
        name: String,
        error: String,
    },
}

/// A version change the operator will not carry out; nothing is applied.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "downgrade refused: spec.version {to} is older than {from}, which the database was migrated to, and Penpot cannot migrate back; restore a backup from before the upgrade and set spec.upgrade.allowDowngrade: true, or set spec.version back to {from}"
    )]
    Downgrade { from: Version, to: Version },
    #[error(
        "spec.upgrade.backupBeforeUpgrade needs a CloudNativePG database, but PostgreSQL Secret {secret:?} has no cnpg.io/cluster label; back up by hand and turn the option off, or point spec.postgresql at the cluster's Secret"
    )]
    NoBackupCluster { secret: String },
    #[error(
        "the pre-upgrade Backup {name} failed: {error}; the pods stay on the old version. Fix the cluster's backup configuration and delete Backup {name} to retry, or turn spec.upgrade.backupBeforeUpgrade off"
    )]
    BackupFailed { name: String, error: String },
}

/// The version the database is at, when `desired` differs from it: a version change is
/// pending (what the pre-upgrade backup is for).
pub fn pending_change(live: Option<&Live>, desired: Version) -> Option<Version> {
    live.and_then(Live::database).filter(|at| *at != desired && !live.is_some_and(|l| l.first_pod_ready(desired)))
}

/// Where the rollout to `desired` stands, from the StatefulSet running now and the
/// pre-upgrade backup.
pub fn plan(live: Option<&Live>, desired: Version, allow_downgrade: bool, backup: &Backup) -> Result<Rollout, Refused> {
    let database = live.and_then(Live::database);
    match database {
        Some(at) if at == desired => return Ok(Rollout::Steady { version: desired }),
        Some(at) if at > desired && !allow_downgrade => return Err(Refused::Downgrade { from: at, to: desired }),
        _ => {}
    }
    if live.is_some_and(|l| l.first_pod_ready(desired)) {
        return Ok(Rollout::Steady { version: desired });
    }
    match (database, backup) {
        (Some(_), Backup::NoCluster { secret }) => Err(Refused::NoBackupCluster { secret: secret.clone() }),
        (Some(_), Backup::Failed { name, error }) => {
            Err(Refused::BackupFailed { name: name.clone(), error: error.clone() })
        }
        (Some(from), Backup::Running { name, .. }) => {
            Ok(Rollout::BackingUp { from, to: desired, backup: name.clone() })
        }
        _ => Ok(Rollout::FirstPod { from: database, to: desired }),
    }
}

impl Rollout {
    /// The StatefulSet's partition: on an upgrade only the last ordinal takes the new
    /// revision; during the backup none does.
    pub fn partition(&self, replicas: i32) -> i32 {
        match self {
            Rollout::BackingUp { .. } => replicas,
            Rollout::FirstPod { from: Some(_), .. } => (replicas - 1).max(0),
            _ => 0,
        }
    }

    /// The StatefulSet's replicas: a fresh install starts one pod.
    pub fn replicas(&self, wanted: i32) -> i32 {
        match self {
            Rollout::FirstPod { from: None, .. } => wanted.min(1),
            _ => wanted,
        }
    }

    /// The value of [`MIGRATED_ANNOTATION`].
    pub fn migrated(&self) -> Option<Version> {
        match self {
            Rollout::Steady { version } => Some(*version),
            Rollout::BackingUp { from, .. } => Some(*from),
            Rollout::FirstPod { from, .. } => *from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Version = Version::new(2, 16, 1);
    const NEW: Version = Version::new(2, 17, 0);

    fn live(migrated: Option<Version>, template: Version, replicas: i32, ready: i32, updated: i32) -> Live {
        Live { migrated, template: Some(template), observed: true, replicas, ready, updated }
    }

    #[test]
    fn fresh_install_starts_one_pod_then_all() {
        let first = plan(None, NEW, false, &Backup::NotNeeded).unwrap();
        assert_eq!(first, Rollout::FirstPod { from: None, to: NEW });
        assert_eq!((first.replicas(3), first.partition(3), first.migrated()), (1, 0, None));
        // The one pod is Ready: the database is migrated and the others may start.
        let done = plan(Some(&live(None, NEW, 1, 1, 1)), NEW, false, &Backup::NotNeeded).unwrap();
        assert_eq!(done, Rollout::Steady { version: NEW });
        assert_eq!((done.replicas(3), done.partition(3), done.migrated()), (3, 0, Some(NEW)));
    }

    #[test]
    fn upgrade_moves_the_last_pod_first_and_waits_for_it() {
        let running = live(Some(OLD), OLD, 3, 3, 3);
        let first = plan(Some(&running), NEW, false, &Backup::NotNeeded).unwrap();
        assert_eq!(first, Rollout::FirstPod { from: Some(OLD), to: NEW });
        assert_eq!((first.replicas(3), first.partition(3), first.migrated()), (3, 2, Some(OLD)));
        // Applied, the new pod is not Ready yet: hold.
        let migrating = live(Some(OLD), NEW, 3, 2, 1);
        assert_eq!(plan(Some(&migrating), NEW, false, &Backup::NotNeeded).unwrap(), first);
        // The StatefulSet controller has not caught up: hold, whatever the old counts say.
        let stale = Live { observed: false, ..live(Some(OLD), NEW, 3, 3, 1) };
        assert_eq!(plan(Some(&stale), NEW, false, &Backup::NotNeeded).unwrap(), first);
        let ready = live(Some(OLD), NEW, 3, 3, 1);
        assert_eq!(plan(Some(&ready), NEW, false, &Backup::NotNeeded).unwrap(), Rollout::Steady { version: NEW });
    }

    #[test]
    fn statefulsets_from_before_the_record_count_their_template_as_migrated() {
        let legacy = live(None, OLD, 2, 2, 2);
        assert_eq!(plan(Some(&legacy), OLD, false, &Backup::NotNeeded).unwrap(), Rollout::Steady { version: OLD });
        assert_eq!(
            plan(Some(&legacy), NEW, false, &Backup::NotNeeded).unwrap(),
            Rollout::FirstPod { from: Some(OLD), to: NEW }
        );
    }

    #[test]
    fn downgrade_is_refused_unless_allowed() {
        let running = live(Some(NEW), NEW, 2, 2, 2);
        let refused = plan(Some(&running), OLD, false, &Backup::NotNeeded).unwrap_err();
        assert_eq!(refused, Refused::Downgrade { from: NEW, to: OLD });
        let message = refused.to_string();
        assert!(message.contains("2.16.1") && message.contains("2.17.0") && message.contains("allowDowngrade"));
        assert_eq!(
            plan(Some(&running), OLD, true, &Backup::NotNeeded).unwrap(),
            Rollout::FirstPod { from: Some(NEW), to: OLD }
        );
        // Going back to the migrated version while the first pod still fails is no downgrade.
        let stuck = live(Some(OLD), NEW, 2, 1, 1);
        assert_eq!(plan(Some(&stuck), OLD, false, &Backup::NotNeeded).unwrap(), Rollout::Steady { version: OLD });
    }

    #[test]
    fn a_requested_backup_holds_every_pod_until_it_completed() {
        let running = live(Some(OLD), OLD, 3, 3, 3);
        assert_eq!(pending_change(Some(&running), NEW), Some(OLD));
        assert_eq!(pending_change(Some(&running), OLD), None);
        assert_eq!(pending_change(None, NEW), None, "a fresh install has nothing to back up");
        let backup = Backup::Running { name: "p-before-2-17-0".into(), phase: Some("running".into()) };
        let r = plan(Some(&running), NEW, false, &backup).unwrap();
        assert_eq!(r, Rollout::BackingUp { from: OLD, to: NEW, backup: "p-before-2-17-0".into() });
        assert_eq!((r.replicas(3), r.partition(3), r.migrated()), (3, 3, Some(OLD)));
        let done = Backup::Completed { name: "p-before-2-17-0".into() };
        assert_eq!(plan(Some(&running), NEW, false, &done).unwrap(), Rollout::FirstPod { from: Some(OLD), to: NEW });
        let failed = Backup::Failed { name: "p-before-2-17-0".into(), error: "no object store".into() };
        let message = plan(Some(&running), NEW, false, &failed).unwrap_err().to_string();
        assert!(message.contains("p-before-2-17-0") && message.contains("no object store"), "{message}");
        let no_cluster = Backup::NoCluster { secret: "pg".into() };
        let message = plan(Some(&running), NEW, false, &no_cluster).unwrap_err().to_string();
        assert!(message.contains("\"pg\"") && message.contains("cnpg.io/cluster"), "{message}");
        // A fresh install never waits for a backup.
        assert_eq!(plan(None, NEW, false, &backup).unwrap(), Rollout::FirstPod { from: None, to: NEW });
    }

    #[test]
    fn scaled_to_zero_upgrades_when_it_scales_up() {
        let zero = live(Some(OLD), OLD, 0, 0, 0);
        let r = plan(Some(&zero), NEW, false, &Backup::NotNeeded).unwrap();
        assert_eq!((r.replicas(0), r.partition(0)), (0, 0));
    }
}
