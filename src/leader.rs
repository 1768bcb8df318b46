//! Leader election through a coordination.k8s.io Lease (kube-lease-manager, SSA based).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

pub const LEASE_NAME: &str = "penpot-operator-leader";
/// How long a lease lasts without renewal; the follower takes over after it runs out.
const LEASE_SECONDS: u64 = 15;
/// Renew this long before expiry.
const GRACE_SECONDS: u64 = 5;

/// Campaigns for the lease; the receiver says whether this replica leads right now. The
/// sender side lives in a background task that releases the lease when the receiver drops.
pub async fn campaign(
    client: Client,
    namespace: &str,
    identity: &str,
) -> Result<watch::Receiver<bool>, kube_lease_manager::LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_field_manager(crate::render::labels::MANAGER)
        .build()
        .await?;
    let (rx, _task) = manager.watch().await;
    Ok(rx)
}

/// Resolves once `rx` reports leadership.
pub async fn acquired(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The lease task ended; never pretend to lead.
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when leadership is lost (or the lease task dies).
pub async fn lost(mut rx: watch::Receiver<bool>) {
    loop {
        if !*rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::ZERO).await;
    }
}
