//! The overview's sparklines, kept for a few seconds: their data changes
//! at most once a minute per rollout (when the watcher keeps a tick), while
//! every open overview asks again every 5 s. Points recorded through this
//! service drop their rollout's entry at once; points recorded by another
//! process show within `SPARKLINE_TTL`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::domain::RolloutId;
use crate::store::Sparkline;

/// How long a sparkline read from the database is reused.
pub const SPARKLINE_TTL: Duration = Duration::from_secs(15);
/// Entries kept before expired ones are swept.
const SWEEP_ABOVE: usize = 4096;

struct Entry {
    read_at: Instant,
    /// The start of the window it was read for.
    since: DateTime<Utc>,
    line: Sparkline,
}

#[derive(Default)]
pub struct SparkCache {
    entries: HashMap<RolloutId, Entry>,
}

impl SparkCache {
    /// The cached lines of `ids` that cover `since` (trimmed to it), and
    /// the ids to read.
    pub fn lookup(
        &self,
        ids: &[RolloutId],
        since: DateTime<Utc>,
        now: Instant,
    ) -> (HashMap<RolloutId, Sparkline>, Vec<RolloutId>) {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for id in ids {
            match self.entries.get(id) {
                Some(e) if now.duration_since(e.read_at) < SPARKLINE_TTL && e.since <= since => {
                    let line: Sparkline = e
                        .line
                        .iter()
                        .filter(|(at, _)| *at >= since)
                        .copied()
                        .collect();
                    found.insert(*id, line);
                }
                _ => missing.push(*id),
            }
        }
        (found, missing)
    }

    /// Keeps lines just read (a rollout with no points has an empty one).
    pub fn store(
        &mut self,
        ids: &[RolloutId],
        lines: &HashMap<RolloutId, Sparkline>,
        since: DateTime<Utc>,
        read_at: Instant,
    ) {
        if self.entries.len() > SWEEP_ABOVE {
            self.entries
                .retain(|_, e| read_at.duration_since(e.read_at) < SPARKLINE_TTL);
        }
        for id in ids {
            self.entries.insert(
                *id,
                Entry {
                    read_at,
                    since,
                    line: lines.get(id).cloned().unwrap_or_default(),
                },
            );
        }
    }

    /// New points of these rollouts: their next read goes to the database.
    pub fn forget(&mut self, ids: impl IntoIterator<Item = RolloutId>) {
        for id in ids {
            self.entries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    #[test]
    fn lines_are_reused_until_stale_forgotten_or_too_short() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let start = Instant::now();
        let line: Sparkline = vec![(t0, Some(0.1)), (t0 + TimeDelta::minutes(1), Some(0.2))];
        let mut cache = SparkCache::default();
        let (a, b) = (RolloutId(1), RolloutId(2));
        cache.store(&[a, b], &HashMap::from([(a, line.clone())]), t0, start);

        let (found, missing) = cache.lookup(&[a, b, RolloutId(3)], t0, start);
        assert_eq!(found[&a], line);
        assert_eq!(found[&b], Sparkline::new(), "no points is an answer too");
        assert_eq!(missing, vec![RolloutId(3)]);

        // A later window is trimmed from the cached line.
        let later = t0 + TimeDelta::seconds(30);
        let (found, _) = cache.lookup(&[a], later, start);
        assert_eq!(found[&a], line[1..].to_vec());
        // An earlier window than was read is not covered.
        let (_, missing) = cache.lookup(&[a], t0 - TimeDelta::minutes(1), start);
        assert_eq!(missing, vec![a]);
        // Stale.
        let (_, missing) = cache.lookup(&[a], t0, start + SPARKLINE_TTL);
        assert_eq!(missing, vec![a]);
        // Forgotten when new points are recorded.
        cache.forget([a]);
        let (found, missing) = cache.lookup(&[a, b], t0, start);
        assert_eq!((found.len(), missing), (1, vec![a]));
    }
}
