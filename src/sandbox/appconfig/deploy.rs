//! Deployment progression as pure functions of the strategy and the time
//! elapsed since the deployment started, in strategy minutes (the sandbox
//! scales those to its own clock, see `SandboxConfig::appconfig_minute`).
//!
//! AWS's documented timeline: the deployment duration is cut into as many
//! equal steps as it takes the growth to reach 100 %; at 0 nobody has the
//! new configuration, and after each step the share grows to the next
//! value (LINEAR: G, 2G, 3G…; EXPONENTIAL: G·2^0, G·2^1, G·2^2…, both capped
//! at 100). Then the deployment bakes for `FinalBakeTimeInMinutes` at 100 %
//! and is COMPLETE.

/// `GrowthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    Linear,
    Exponential,
}

impl Growth {
    pub fn parse(s: &str) -> Option<Growth> {
        match s {
            "LINEAR" => Some(Growth::Linear),
            "EXPONENTIAL" => Some(Growth::Exponential),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Growth::Linear => "LINEAR",
            Growth::Exponential => "EXPONENTIAL",
        }
    }
}

/// The parts of a strategy progression depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub duration_minutes: u32,
    pub bake_minutes: u32,
    pub growth_factor: f64,
    pub growth: Growth,
}

/// Where a deployment stands, by time alone (rollbacks are recorded apart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Rolling out; `percent` of the targets have the new configuration.
    Deploying { percent: f64 },
    /// At 100 %, watching alarms.
    Baking,
    /// Done; it completed `at_minutes` after it started.
    Complete { at_minutes: f64 },
}

/// The share reached after each step, the last one 100.
pub fn steps(growth: Growth, factor: f64) -> Vec<f64> {
    // GrowthFactor is 1..=100 on input; a nonsense value still ends.
    let factor = if factor.is_finite() && factor > 0.0 {
        factor.min(100.0)
    } else {
        100.0
    };
    let mut out = Vec::new();
    let mut k = 0u32;
    loop {
        let p = match growth {
            Growth::Linear => factor * f64::from(k + 1),
            Growth::Exponential => factor * 2f64.powi(k as i32),
        };
        // Round away float noise (20 % × 3 = 60.000000000000007).
        let p = ((p * 1e9).round() / 1e9).min(100.0);
        out.push(p);
        if p >= 100.0 || out.len() >= 100 {
            break;
        }
        k += 1;
    }
    if let Some(last) = out.last_mut() {
        *last = 100.0;
    }
    out
}

/// Minutes between two steps.
pub fn step_minutes(shape: &Shape) -> f64 {
    f64::from(shape.duration_minutes) / steps(shape.growth, shape.growth_factor).len() as f64
}

/// The phase `elapsed` strategy minutes after the start.
pub fn phase(shape: &Shape, elapsed: f64) -> Phase {
    let duration = f64::from(shape.duration_minutes);
    let end = duration + f64::from(shape.bake_minutes);
    if elapsed >= end {
        return Phase::Complete { at_minutes: end };
    }
    if elapsed >= duration {
        return Phase::Baking;
    }
    Phase::Deploying {
        percent: percent_at(shape, elapsed),
    }
}

/// The share of targets with the new configuration `elapsed` minutes in
/// (100 from the end of the deployment duration on).
pub fn percent_at(shape: &Shape, elapsed: f64) -> f64 {
    let steps = steps(shape.growth, shape.growth_factor);
    if shape.duration_minutes == 0 {
        return 100.0;
    }
    let done = (elapsed.max(0.0) / step_minutes(shape)).floor() as usize;
    match done {
        0 => 0.0,
        n => steps[n.min(steps.len()) - 1],
    }
}

/// One entry of the timeline time alone writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at_minutes: f64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    Started,
    Percentage(f64),
    BakeStarted,
    Completed,
}

/// Every event of the timeline that happened by `elapsed` minutes, oldest first.
pub fn timeline(shape: &Shape, elapsed: f64) -> Vec<Event> {
    let steps = steps(shape.growth, shape.growth_factor);
    let step = step_minutes(shape);
    let duration = f64::from(shape.duration_minutes);
    let mut out = vec![Event {
        at_minutes: 0.0,
        kind: EventKind::Started,
    }];
    for (i, p) in steps.iter().enumerate() {
        // With no duration the one step is at once.
        let at = if shape.duration_minutes == 0 {
            0.0
        } else {
            step * (i + 1) as f64
        };
        out.push(Event {
            at_minutes: at,
            kind: EventKind::Percentage(*p),
        });
        if shape.duration_minutes == 0 {
            break;
        }
    }
    out.push(Event {
        at_minutes: duration,
        kind: EventKind::BakeStarted,
    });
    out.push(Event {
        at_minutes: duration + f64::from(shape.bake_minutes),
        kind: EventKind::Completed,
    });
    out.retain(|e| e.at_minutes <= elapsed);
    out
}

/// Whether a session falls among the first `percent` of the targets: a
/// fixed point in [0, 100) per session, so a session that got the new
/// configuration keeps it while the share grows.
pub fn in_share(session_bucket: f64, percent: f64) -> bool {
    session_bucket < percent
}

/// A session's fixed point in [0, 100), from its id.
pub fn bucket(id: &str) -> f64 {
    // FNV-1a, then a mix: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(duration: u32, factor: f64, growth: Growth, bake: u32) -> Shape {
        Shape {
            duration_minutes: duration,
            bake_minutes: bake,
            growth_factor: factor,
            growth,
        }
    }

    #[test]
    fn linear_steps_evenly_to_100() {
        assert_eq!(
            steps(Growth::Linear, 20.0),
            vec![20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(steps(Growth::Linear, 30.0), vec![30.0, 60.0, 90.0, 100.0]);
        assert_eq!(steps(Growth::Linear, 100.0), vec![100.0]);
        // Linear20PercentEvery6Minutes: a step every 6 of its 30 minutes.
        let s = shape(30, 20.0, Growth::Linear, 30);
        assert_eq!(step_minutes(&s), 6.0);
        assert_eq!(phase(&s, 0.0), Phase::Deploying { percent: 0.0 });
        assert_eq!(phase(&s, 5.9), Phase::Deploying { percent: 0.0 });
        assert_eq!(phase(&s, 6.0), Phase::Deploying { percent: 20.0 });
        assert_eq!(phase(&s, 29.0), Phase::Deploying { percent: 80.0 });
        assert_eq!(phase(&s, 30.0), Phase::Baking);
        assert_eq!(phase(&s, 59.9), Phase::Baking);
        assert_eq!(phase(&s, 60.0), Phase::Complete { at_minutes: 60.0 });
    }

    /// Canary10Percent20Minutes: 10, 20, 40, 80, 100 over 20 minutes.
    #[test]
    fn exponential_doubles_from_the_growth_factor() {
        assert_eq!(
            steps(Growth::Exponential, 10.0),
            vec![10.0, 20.0, 40.0, 80.0, 100.0]
        );
        let s = shape(20, 10.0, Growth::Exponential, 10);
        assert_eq!(step_minutes(&s), 4.0);
        assert_eq!(percent_at(&s, 3.0), 0.0);
        assert_eq!(percent_at(&s, 4.0), 10.0);
        assert_eq!(percent_at(&s, 8.5), 20.0);
        assert_eq!(percent_at(&s, 12.0), 40.0);
        assert_eq!(percent_at(&s, 16.0), 80.0);
        assert_eq!(phase(&s, 20.0), Phase::Baking);
        assert_eq!(phase(&s, 30.0), Phase::Complete { at_minutes: 30.0 });
    }

    #[test]
    fn all_at_once_is_100_percent_at_once_then_bakes() {
        let s = shape(0, 100.0, Growth::Linear, 10);
        assert_eq!(phase(&s, 0.0), Phase::Baking);
        assert_eq!(percent_at(&s, 0.0), 100.0);
        assert_eq!(phase(&s, 10.0), Phase::Complete { at_minutes: 10.0 });
        let no_bake = shape(0, 100.0, Growth::Linear, 0);
        assert_eq!(phase(&no_bake, 0.0), Phase::Complete { at_minutes: 0.0 });
    }

    #[test]
    fn the_timeline_lists_what_happened_by_then() {
        let s = shape(1, 50.0, Growth::Linear, 1);
        let kinds =
            |t: f64| -> Vec<EventKind> { timeline(&s, t).into_iter().map(|e| e.kind).collect() };
        assert_eq!(kinds(0.1), vec![EventKind::Started]);
        assert_eq!(
            kinds(0.5),
            vec![EventKind::Started, EventKind::Percentage(50.0)]
        );
        assert_eq!(
            kinds(2.0),
            vec![
                EventKind::Started,
                EventKind::Percentage(50.0),
                EventKind::Percentage(100.0),
                EventKind::BakeStarted,
                EventKind::Completed
            ]
        );
        let at_once = shape(0, 100.0, Growth::Linear, 10);
        assert_eq!(
            timeline(&at_once, 0.0).len(),
            3,
            "started, 100 %, bake started"
        );
    }

    #[test]
    fn buckets_spread_and_shares_grow_monotonically() {
        let buckets: Vec<f64> = (0..1000).map(|i| bucket(&format!("s{i}"))).collect();
        assert!(buckets.iter().all(|b| (0.0..100.0).contains(b)));
        let under_20 = buckets.iter().filter(|b| in_share(**b, 20.0)).count();
        assert!((150..250).contains(&under_20), "{under_20}");
        for b in &buckets {
            if in_share(*b, 20.0) {
                assert!(in_share(*b, 40.0));
            }
        }
        assert!(buckets.iter().all(|b| !in_share(*b, 0.0)));
        assert!(buckets.iter().all(|b| in_share(*b, 100.0)));
    }
}
