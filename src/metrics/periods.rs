//! CloudWatch's time model as pure functions: which periods of data are
//! complete, which of them a guardrail judges next, and the spans gates and
//! baselines read. Everything is in epoch seconds and whole minutes, the
//! granularity Lambda publishes at.
//!
//! - A period is judged only once complete: it ended at least `settle`
//!   before now (data arrives late, and the newest period is still filling).
//! - A guardrail judges distinct periods of its `window`, aligned to
//!   multiples of the window (as CloudWatch aligns periods), each once, so
//!   `consecutive = 3` means three different bad periods.
//! - Nothing before the live phase's flags took effect (`live_since`) is
//!   ever read for that phase: periods and spans start at or after it.

use chrono::{DateTime, Utc};

pub const MINUTE: i64 = 60;

/// At most this many periods of one guardrail are judged in one tick (a
/// watcher that was down catches up on the latest ones only).
pub const MAX_BACKLOG: i64 = 60;

/// `[start, end)` in epoch seconds; one value over it, or one per `period`
/// when a read asks for several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

impl Span {
    pub fn secs(&self) -> i64 {
        self.end - self.start
    }

    pub fn end_time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.end, 0).unwrap_or_default()
    }
}

/// One GetMetricData time range: `[start, end)` cut into `period`-long
/// buckets (`period` divides `end - start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub period: i64,
}

impl Range {
    /// A range of one bucket.
    pub fn single(span: Span) -> Range {
        Range {
            start: span.start,
            end: span.end,
            period: span.secs(),
        }
    }

    /// The buckets, oldest first.
    pub fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        let period = self.period.max(1);
        (self.start..self.end)
            .step_by(period as usize)
            .map(move |start| Span {
                start,
                end: (start + period).min(self.end),
            })
    }
}

pub fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

pub fn ceil_to(t: i64, step: i64) -> i64 {
    -floor_to(-t, step)
}

/// The end of the newest complete minute at `now`: data up to here has
/// settled for at least `settle` seconds.
pub fn complete_until(now: i64, settle: i64) -> i64 {
    floor_to(now - settle.max(0), MINUTE)
}

/// A window in whole minutes (plans are validated to be; a stray value is
/// rounded up, never down to nothing).
pub fn whole_minutes(secs: u64) -> i64 {
    ceil_to((secs as i64).max(MINUTE), MINUTE)
}

/// The periods of a `window`-long guardrail to judge now, oldest first:
/// aligned to multiples of the window, starting at or after `live_since`,
/// complete by `complete_until`, not judged yet (ending after
/// `judged_until`), the latest `MAX_BACKLOG` at most.
pub fn due_periods(
    window: i64,
    live_since: i64,
    judged_until: Option<i64>,
    complete_until: i64,
) -> Option<Range> {
    let window = whole_minutes(window as u64);
    let mut start = ceil_to(live_since, window);
    if let Some(judged) = judged_until {
        start = start.max(ceil_to(judged, window));
    }
    let end = floor_to(complete_until, window);
    start = start.max(end - MAX_BACKLOG * window);
    (end > start).then_some(Range {
        start,
        end,
        period: window,
    })
}

/// A gate's span: the last `window` of complete data, starting no earlier
/// than the first whole minute after `live_since`. `None` until one whole
/// minute of the phase is complete.
pub fn recent_span(window: i64, live_since: i64, complete_until: i64) -> Option<Span> {
    let start = (complete_until - whole_minutes(window as u64)).max(ceil_to(live_since, MINUTE));
    (complete_until - start >= MINUTE).then_some(Span {
        start,
        end: complete_until,
    })
}

/// Minutes a sequential test reads at most: the first day of a position.
/// A test stops there and its last verdict stands (sliding the window on
/// would be a new test at every minute, and false alarms would add up).
pub const MAX_SEQUENTIAL_MINUTES: i64 = 1_440;

/// Every complete minute since `live_since`, one bucket each, up to
/// `MAX_SEQUENTIAL_MINUTES` after it; `None` before the first is complete.
pub fn minutes_since(live_since: i64, complete_until: i64) -> Option<Range> {
    let start = ceil_to(live_since, MINUTE);
    let end = floor_to(complete_until, MINUTE).min(start + MAX_SEQUENTIAL_MINUTES * MINUTE);
    (end - start >= MINUTE).then_some(Range {
        start,
        end,
        period: MINUTE,
    })
}

/// The finest period CloudWatch returns for data that starts `age`
/// seconds ago: 1 minute up to 15 days, 5 minutes up to 63, then an hour.
pub fn granularity_for_age(age: i64) -> i64 {
    const DAY: i64 = 86_400;
    if age > 63 * DAY {
        3_600
    } else if age > 15 * DAY {
        300
    } else {
        MINUTE
    }
}

/// The baseline's span: `lookback` ending where the rollout started (or
/// where data has settled, if that is earlier), aligned to the granularity
/// CloudWatch keeps data that old at.
pub fn baseline_span(lookback: i64, started: i64, now: i64, settle: i64) -> Span {
    let latest = complete_until(now, settle).min(started);
    let step = granularity_for_age(now - (latest - lookback));
    let end = floor_to(latest, step);
    let length = floor_to(lookback.max(step), step);
    Span {
        start: end - length,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_780_272_000; // 2026-06-01T00:00:00Z, a whole hour

    #[test]
    fn only_settled_whole_minutes_are_complete() {
        assert_eq!(complete_until(T + 179, 120), T);
        assert_eq!(complete_until(T + 180, 120), T + 60);
        assert_eq!(complete_until(T + 59, 0), T);
    }

    #[test]
    fn guardrail_periods_are_aligned_distinct_and_after_the_phase_began() {
        // Phase live at T+10s: the first minute (T..T+60) holds older data.
        assert_eq!(due_periods(60, T + 10, None, T + 60), None);
        let r = due_periods(60, T + 10, None, T + 180).unwrap();
        assert_eq!((r.start, r.end, r.period), (T + 60, T + 180, 60));
        assert_eq!(r.spans().count(), 2);
        // Judged up to T+180: nothing new until another minute completes.
        assert_eq!(due_periods(60, T + 10, Some(T + 180), T + 180), None);
        let next = due_periods(60, T + 10, Some(T + 180), T + 240).unwrap();
        assert_eq!((next.start, next.end), (T + 180, T + 240));
        // Five-minute windows on five-minute boundaries.
        let five = due_periods(300, T + 10, None, T + 840).unwrap();
        assert_eq!((five.start, five.end, five.period), (T + 300, T + 600, 300));
        // A long outage: only the latest MAX_BACKLOG periods.
        let late = due_periods(60, T, None, T + 10_000 * 60).unwrap();
        assert_eq!(late.spans().count() as i64, MAX_BACKLOG);
    }

    #[test]
    fn gate_spans_slide_but_never_reach_before_the_phase() {
        assert_eq!(recent_span(3600, T + 10, T + 60), None);
        assert_eq!(
            recent_span(3600, T + 10, T + 180),
            Some(Span {
                start: T + 60,
                end: T + 180
            })
        );
        assert_eq!(
            recent_span(3600, T - 86_400, T + 180),
            Some(Span {
                start: T + 180 - 3600,
                end: T + 180
            })
        );
    }

    #[test]
    fn baselines_end_at_the_start_and_use_the_granularity_their_age_allows() {
        let week = baseline_span(7 * 86_400, T + 30, T + 40, 120);
        // Not settled past T-80 at T+40: ends at the last settled minute.
        assert_eq!(week.end, T - 120);
        assert_eq!(week.secs(), 7 * 86_400);
        let month = baseline_span(30 * 86_400, T + 30, T + 86_400, 120);
        assert_eq!(month.end % 300, 0);
        assert_eq!(month.secs() % 300, 0);
        assert_eq!(month.end, T);
        let old = baseline_span(90 * 86_400, T + 30, T + 86_400, 120);
        assert_eq!((old.end % 3600, old.secs() % 3600), (0, 0));
    }

    #[test]
    fn ranges_cut_into_their_periods() {
        let r = Range {
            start: 0,
            end: 300,
            period: 60,
        };
        let spans: Vec<Span> = r.spans().collect();
        assert_eq!(spans.len(), 5);
        assert_eq!(
            spans[4],
            Span {
                start: 240,
                end: 300
            }
        );
        let one = Range::single(Span {
            start: 60,
            end: 3660,
        });
        assert_eq!(one.spans().count(), 1);
    }
}
