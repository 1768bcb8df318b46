//! When each deactivated profile was last deactivated in Penpot. Penpot's `is-active` doubles
//! as "email verified", so a password recovery makes a deactivated profile active again; the
//! controller therefore deactivates it again once per resync. Kept in memory only: a restarted
//! operator (or a new leader) sends each deactivated profile once at once, then per resync.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Deactivations {
    every: Duration,
    sent: Mutex<HashMap<String, Instant>>,
}

impl Deactivations {
    pub fn new(every: Duration) -> Self {
        Deactivations { every, sent: Mutex::default() }
    }

    /// How long until profile `uid` is due to be deactivated again: zero when it is due now
    /// (never sent by this process, or sent a resync ago).
    pub fn due_in(&self, uid: &str, now: Instant) -> Duration {
        match self.lock().get(uid) {
            Some(sent) => self.every.saturating_sub(now.saturating_duration_since(*sent)),
            None => Duration::ZERO,
        }
    }

    /// Profile `uid` was deactivated in Penpot at `now`.
    pub fn sent(&self, uid: &str, now: Instant) {
        self.lock().insert(uid.to_string(), now);
    }

    /// Profile `uid` is active again or gone: nothing to keep deactivated.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // The map holds plain instants: one a panicking holder left behind is still usable.
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_once_then_once_per_resync_until_forgotten() {
        let d = Deactivations::new(Duration::from_secs(300));
        let t0 = Instant::now();
        assert_eq!(d.due_in("a", t0), Duration::ZERO, "never sent by this process: due now");
        d.sent("a", t0);
        assert_eq!(d.due_in("a", t0 + Duration::from_secs(100)), Duration::from_secs(200));
        assert_eq!(d.due_in("a", t0 + Duration::from_secs(300)), Duration::ZERO);
        assert_eq!(d.due_in("a", t0 + Duration::from_secs(900)), Duration::ZERO);
        assert_eq!(d.due_in("b", t0), Duration::ZERO, "one profile's record is not another's");
        d.forget("a");
        assert_eq!(d.due_in("a", t0 + Duration::from_secs(1)), Duration::ZERO);
    }
}
