//! The background loops' health: when each last finished a pass, its last
//! error, how often it panicked, and whether it has stopped ticking. Shown
//! on `/readyz` (and, later, the dashboard).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One loop's health.
pub struct LoopHealth {
    pub name: &'static str,
    /// How often it runs; `None` when it does not run in this process.
    pub interval: Option<Duration>,
    /// Unix millis of the last finished pass, or of the start.
    last_pass_ms: AtomicI64,
    passes: AtomicU64,
    panics: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Reconciler: writes still pending after its last pass.
    pending_writes: AtomicI64,
    /// Its last pass stood by: another process leads.
    standby: AtomicBool,
}

/// What `/readyz` shows of a loop.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub running: bool,
    pub interval_secs: Option<f64>,
    pub last_pass: Option<DateTime<Utc>>,
    pub passes: u64,
    pub panics: u64,
    pub last_error: Option<String>,
    /// True when it has not finished a pass for longer than `stale_after`.
    pub stale: bool,
    pub pending_writes: i64,
    /// Another process leads: this one's loop passes stand by.
    pub standby: bool,
}

/// A loop has stopped ticking when it has not finished a pass for three
/// intervals plus five seconds of slack. Pure.
pub fn is_stale(last_pass: DateTime<Utc>, interval: Duration, now: DateTime<Utc>) -> bool {
    let allowed = interval.saturating_mul(3) + Duration::from_secs(5);
    (now - last_pass)
        .to_std()
        .is_ok_and(|since| since > allowed)
}

impl LoopHealth {
    pub fn new(name: &'static str, interval: Option<Duration>) -> Self {
        LoopHealth {
            name,
            interval,
            last_pass_ms: AtomicI64::new(Utc::now().timestamp_millis()),
            passes: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            last_error: Mutex::new(None),
            pending_writes: AtomicI64::new(0),
            standby: AtomicBool::new(false),
        }
    }

    pub fn record_pass(&self, error: Option<String>) {
        self.last_pass_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    pub fn record_panic(&self, what: String) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
    }

    /// Whether the loop's passes stand by (another process leads).
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Relaxed);
    }

    pub fn set_pending_writes(&self, n: usize) {
        self.pending_writes.store(n as i64, Ordering::Relaxed);
    }

    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    pub fn report(&self, now: DateTime<Utc>) -> LoopReport {
        let last = DateTime::from_timestamp_millis(self.last_pass_ms.load(Ordering::Relaxed))
            .unwrap_or(now);
        let passes = self.passes.load(Ordering::Relaxed);
        LoopReport {
            running: self.interval.is_some(),
            interval_secs: self.interval.map(|i| i.as_secs_f64()),
            last_pass: (passes > 0).then_some(last),
            passes,
            panics: self.panics(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            stale: self.interval.is_some_and(|i| is_stale(last, i, now)),
            pending_writes: self.pending_writes.load(Ordering::Relaxed),
            standby: self.standby.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_loop_is_stale_after_three_intervals_and_slack() {
        let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::hours(1);
        let every = Duration::from_secs(10);
        assert!(!is_stale(now - TimeDelta::seconds(35), every, now));
        assert!(is_stale(now - TimeDelta::seconds(36), every, now));
        assert!(
            !is_stale(now + TimeDelta::seconds(5), every, now),
            "clock skew is not staleness"
        );
    }

    #[test]
    fn reports_show_passes_errors_and_panics() {
        let h = LoopHealth::new("watcher", Some(Duration::from_secs(1)));
        assert_eq!(h.report(Utc::now()).last_pass, None);
        h.record_pass(Some("boom".into()));
        h.record_panic("panicked".into());
        let r = h.report(Utc::now());
        assert_eq!((r.passes, r.panics), (1, 1));
        assert_eq!(r.last_error.as_deref(), Some("panicked"));
        assert!(!r.stale);
        assert!(!LoopHealth::new("off", None).report(Utc::now()).running);
    }
}
