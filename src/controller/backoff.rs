//! Per-Penpot retry delays after failed reconciles.
//!
//! The cap is low on purpose. During an API server outage every reconcile fails, including
//! those triggered by watch events, and each failure doubles the delay; with a cap of minutes a
//! Penpot could wait that long after the server was back, since only a success resets it. So:
//! a 30 s cap, and a completed relist of the Penpots (which follows every outage) clears all
//! delays, because the relist itself triggers a reconcile of each Penpot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::Stored;

const FIRST: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub struct Failures(Arc<Mutex<HashMap<ObjectRef<Stored>, u32>>>);

impl Failures {
    /// Counts one more failure of `penpot` and returns how long to wait: 1 s, 2 s, 4 s, ...
    /// up to [`MAX`].
    pub fn next(&self, penpot: &ObjectRef<Stored>) -> Duration {
        let Ok(mut failures) = self.0.lock() else { return MAX };
        let n = failures.entry(penpot.clone()).or_insert(0);
        let delay = FIRST.saturating_mul(2u32.saturating_pow((*n).min(16))).min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// A success: the next failure starts from the shortest delay again.
    pub fn reset(&self, penpot: &ObjectRef<Stored>) {
        if let Ok(mut failures) = self.0.lock() {
            failures.remove(penpot);
        }
    }

    /// Forgets the Penpots `exists` no longer knows (deleted while failing), so the map holds
    /// at most one entry per Penpot that exists.
    pub fn retain(&self, exists: impl Fn(&ObjectRef<Stored>) -> bool) {
        if let Ok(mut failures) = self.0.lock() {
            failures.retain(|penpot, _| exists(penpot));
        }
    }

    /// Forgets every count; after a relist, whatever failed during an outage starts over.
    pub fn clear(&self) {
        if let Ok(mut failures) = self.0.lock() {
            failures.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|f| f.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_low_cap_and_clears() {
        let f = Failures::default();
        let a = ObjectRef::new("a").within("ns");
        let b = ObjectRef::new("b").within("ns");
        let delays: Vec<u64> = (0..8).map(|_| f.next(&a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(f.next(&b).as_secs(), 1, "each Penpot counts alone");
        f.reset(&a);
        assert_eq!(f.next(&a).as_secs(), 1);
        f.next(&b);
        f.retain(|p| p.name == "a");
        assert_eq!(f.len(), 1, "b was deleted while failing: forgotten");
        f.clear();
        assert_eq!(f.len(), 0);
        for _ in 0..1000 {
            f.next(&a);
        }
        assert_eq!(f.next(&a), MAX, "no overflow after many failures");
    }
}
