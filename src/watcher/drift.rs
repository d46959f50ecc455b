//! Drift checks on their own interval, within a Lambda API budget. Reading
//! functions costs Lambda control-plane calls, from an account-wide budget
//! (about 15 a second) that every deploy pipeline shares; the watcher reads
//! each rollout's function once per `every`, oldest check first, spending
//! at most `rate` calls a second. Flag writes (and so rollbacks) never wait
//! for this budget. Pure code: the watcher does the reads.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::RolloutId;

/// From this many due checks on, one paged ListFunctions (50 a page) is
/// cheaper than a read each.
pub const LIST_THRESHOLD: usize = 50;
/// Functions per ListFunctions page.
pub const PAGE: usize = 50;
/// Unspent calls are kept for at most this long (a burst after a quiet spell).
const BURST: TimeDelta = TimeDelta::seconds(30);
/// The window `/metrics` reports the budget's use over.
const USE_WINDOW: TimeDelta = TimeDelta::seconds(60);

/// A token bucket of Lambda calls, and what was spent lately.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Calls per second allowed.
    pub rate: f64,
    tokens: f64,
    at: Option<DateTime<Utc>>,
    spent: VecDeque<(DateTime<Utc>, u32)>,
}

impl Budget {
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        let mut budget = Budget {
            rate,
            tokens: 0.0,
            at: None,
            spent: VecDeque::new(),
        };
        budget.tokens = budget.capacity(); // starts full
        budget
    }

    /// At least one call: a budget below one call per burst still checks,
    /// rarely.
    fn capacity(&self) -> f64 {
        (self.rate * BURST.as_seconds_f64()).max(1.0)
    }

    /// Adds what the time since the last refill earned.
    pub fn refill(&mut self, now: DateTime<Utc>) {
        if let Some(at) = self.at {
            let secs = (now - at).as_seconds_f64().max(0.0);
            self.tokens = (self.tokens + secs * self.rate).min(self.capacity());
        }
        self.at = Some(now);
    }

    /// Whole calls that may be made now.
    pub fn available(&self) -> u32 {
        self.tokens.max(0.0).floor().min(u32::MAX as f64) as u32
    }

    pub fn spend(&mut self, calls: u32, now: DateTime<Utc>) {
        self.tokens -= f64::from(calls);
        if calls > 0 {
            self.spent.push_back((now, calls));
        }
        while self
            .spent
            .front()
            .is_some_and(|(t, _)| now - *t > USE_WINDOW)
        {
            self.spent.pop_front();
        }
    }

    /// Calls a second over the last minute, as a share of the budget.
    pub fn used_ratio(&self, now: DateTime<Utc>) -> f64 {
        if self.rate <= 0.0 {
            return 0.0;
        }
        let calls: u32 = self
            .spent
            .iter()
            .filter(|(t, _)| now - *t <= USE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        f64::from(calls) / USE_WINDOW.as_seconds_f64() / self.rate
    }
}

/// What to read this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    /// Read these rollouts' functions one by one.
    Each(Vec<RolloutId>),
    /// List all functions (`pages` calls) and check these.
    List { ids: Vec<RolloutId>, pages: u32 },
}

impl Checks {
    pub fn ids(&self) -> &[RolloutId] {
        match self {
            Checks::Each(ids) | Checks::List { ids, .. } => ids,
        }
    }

    /// Lambda calls it costs.
    pub fn calls(&self) -> u32 {
        match self {
            Checks::Each(ids) => ids.len() as u32,
            Checks::List { pages, .. } => *pages,
        }
    }
}

/// The rollouts whose function is due a check (never checked, or `every`
/// ago), oldest check first, as many as `available` calls pay for; a
/// listing when that many are due and it fits the budget (`functions`: how
/// many the last listing returned, for its page count).
pub fn plan_checks(
    candidates: &[RolloutId],
    checked: &HashMap<RolloutId, DateTime<Utc>>,
    now: DateTime<Utc>,
    every: TimeDelta,
    available: u32,
    functions: usize,
) -> Checks {
    let mut due: Vec<(Option<DateTime<Utc>>, RolloutId)> = candidates
        .iter()
        .map(|id| (checked.get(id).copied(), *id))
        .filter(|(at, _)| at.is_none_or(|t| now - t >= every || t > now))
        .collect();
    due.sort();
    let pages = functions.max(due.len()).div_ceil(PAGE).max(1) as u32;
    if due.len() >= LIST_THRESHOLD && pages <= available {
        return Checks::List {
            ids: due.into_iter().map(|(_, id)| id).collect(),
            pages,
        };
    }
    Checks::Each(
        due.into_iter()
            .take(available as usize)
            .map(|(_, id)| id)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_272_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_bucket_refills_at_its_rate_and_keeps_a_bounded_burst() {
        let mut b = Budget::new(2.0);
        b.refill(t(0));
        assert_eq!(b.available(), 60, "thirty seconds' worth to start with");
        b.spend(60, t(0));
        b.refill(t(5));
        assert_eq!(b.available(), 10);
        b.refill(t(1_000));
        assert_eq!(b.available(), 60, "never more than the burst");
        assert!(
            (b.used_ratio(t(5)) - 0.5).abs() < 1e-9,
            "60 calls in a minute at 2/s"
        );
        b.spend(0, t(200));
        assert_eq!(b.used_ratio(t(200)), 0.0, "a minute later it is forgotten");
        assert_eq!(Budget::new(f64::NAN).available(), 1);
        let mut slow = Budget::new(0.01); // one call every 100 s
        slow.refill(t(0));
        assert_eq!(slow.available(), 1, "a tiny budget still checks");
        slow.spend(1, t(0));
        slow.refill(t(50));
        assert_eq!(slow.available(), 0);
        slow.refill(t(100));
        assert_eq!(slow.available(), 1);
    }

    #[test]
    fn checks_are_due_each_interval_oldest_first_within_the_budget() {
        let ids: Vec<RolloutId> = (1..=5).map(RolloutId).collect();
        let mut checked = HashMap::new();
        checked.insert(RolloutId(1), t(0));
        checked.insert(RolloutId(2), t(50));
        checked.insert(RolloutId(3), t(-30));
        let every = TimeDelta::seconds(60);
        // At t=60: 4 and 5 never checked, then 3 (t-30), then 1 (t0); 2 is fresh.
        let plan = plan_checks(&ids, &checked, t(60), every, 3, 0);
        assert_eq!(
            plan,
            Checks::Each(vec![RolloutId(4), RolloutId(5), RolloutId(3)])
        );
        assert_eq!(plan.calls(), 3);
        let all = plan_checks(&ids, &checked, t(60), every, 100, 0);
        assert_eq!(all.ids().len(), 4);
        assert!(!all.ids().contains(&RolloutId(2)));
        assert_eq!(
            plan_checks(&ids, &checked, t(60), every, 0, 0),
            Checks::Each(vec![])
        );
    }

    #[test]
    fn many_due_checks_list_the_functions_when_the_budget_allows() {
        let ids: Vec<RolloutId> = (1..=1_000).map(RolloutId).collect();
        let none = HashMap::new();
        let every = TimeDelta::seconds(60);
        let plan = plan_checks(&ids, &none, t(0), every, 60, 1_000);
        assert_eq!(plan.calls(), 20, "1,000 functions, 50 a page");
        assert_eq!(plan.ids().len(), 1_000);
        // Not enough for the listing: as many single reads as it allows.
        let short = plan_checks(&ids, &none, t(0), every, 10, 1_000);
        assert_eq!(short, Checks::Each(ids[..10].to_vec()));
    }
}
