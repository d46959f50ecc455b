//! Release windows (`[schedule]`): when a phase may be promoted.
//!
//! Pure code: the window and freeze strings of a plan, and what they say
//! at an instant. A promote window is a wall-clock rule in its own zone
//! ("Mon-Thu 09:00-16:00 Europe/London": an instant is inside when its
//! local time there is on a listed day and `start <= time < end`), so it
//! follows daylight saving by construction. A freeze is a range of whole
//! local days. Openings and closings are searched for among the instants
//! where the answer can change, at most two years ahead, in bounded loops.

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat,
    TimeDelta, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::{GapInfo, Tz};
use serde::{Serialize, Serializer};

const WINDOW_EXAMPLE: &str = "\"Mon-Thu 09:00-16:00 Europe/London\"";
const FREEZE_EXAMPLE: &str = "\"2026-12-20..2027-01-04\"";
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;
/// How far ahead openings and closings are looked for (two years).
const HORIZON: TimeDelta = TimeDelta::days(732);
/// The search looks at the instants of one week at a time.
const CHUNK: TimeDelta = TimeDelta::days(7);
/// How messages say that nothing was found within `HORIZON`.
const WITHIN: &str = "within two years";

/// When phases may be promoted: weekly windows and freezes. The default
/// (no `[schedule]`, or an empty one) is at any time.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Schedule {
    /// Promotion only inside one of these (none listed: at any time).
    pub promote: Vec<PromoteWindow>,
    /// Never promotion inside one of these.
    pub freeze: Vec<Freeze>,
}

/// A weekly release window: listed days, a start and end of the local
/// day, a zone. Serializes as the text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteWindow {
    text: String,
    /// Bit `i` set: day `i` (0 = Monday) is listed.
    days: u8,
    /// Minutes after local midnight; `start` inclusive, `end` exclusive
    /// (1440: the midnight after).
    start: u32,
    end: u32,
    zone: Tz,
}

/// Whole local days in which nothing is promoted, from midnight of the
/// first to midnight after the last. Serializes as the text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    text: String,
    first: NaiveDate,
    last: NaiveDate,
    zone: Tz,
    begins: DateTime<Utc>,
    ends: DateTime<Utc>,
}

/// What a schedule says at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum WindowState {
    /// No schedule at all: promotion at any time.
    Unrestricted,
    /// Promotion allowed now; `until` = when the current window closes or
    /// a freeze begins (None: not within two years).
    Open { until: Option<DateTime<Utc>> },
    /// Promotion held: `why` says which rule holds it ("outside the release
    /// windows (Mon-Thu 09:00-16:00 Europe/London)", "frozen
    /// 2026-12-20..2027-01-04 (Europe/London)"), `opens_at` the next instant
    /// promotion is allowed (None if none within two years).
    Closed {
        why: String,
        opens_at: Option<DateTime<Utc>>,
    },
}

/// Which rule holds promotion at an instant.
enum Hold<'a> {
    Frozen(&'a Freeze),
    OutsideWindows,
}

impl Schedule {
    /// No windows and no freezes: promotion at any time.
    pub fn is_unrestricted(&self) -> bool {
        self.promote.is_empty() && self.freeze.is_empty()
    }

    /// Whether a phase may be promoted at `at`.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        self.hold(at).is_none()
    }

    pub fn state_at(&self, now: DateTime<Utc>) -> WindowState {
        if self.is_unrestricted() {
            return WindowState::Unrestricted;
        }
        match self.hold(now) {
            None => WindowState::Open {
                until: self.next_closing(now),
            },
            Some(hold) => WindowState::Closed {
                why: self.why(&hold),
                opens_at: self.next_opening(now),
            },
        }
    }

    /// Why promotion is held at `now`, for readiness blockers: None when
    /// allowed. One sentence including when it opens, in the window's own
    /// zone and in UTC.
    pub fn blocker(&self, now: DateTime<Utc>) -> Option<String> {
        let hold = self.hold(now)?;
        let why = self.why(&hold);
        Some(match (self.next_opening(now), hold) {
            (Some(at), Hold::OutsideWindows) => {
                format!("{why}: the next opens {}", when(self.zone_for(at, at), at))
            }
            (Some(at), Hold::Frozen(_)) => format!(
                "{why}: promotion opens again {}",
                when(self.zone_for(at, at), at)
            ),
            (None, _) => format!("{why}, and promotion does not open again {WITHIN}"),
        })
    }

    /// A short line for the dashboard and `rollout status`: "open until
    /// 16:00 Europe/London (2026-12-07T16:00:00Z)", "closed: the next window
    /// opens ..."; None when unrestricted.
    pub fn describe(&self, now: DateTime<Utc>) -> Option<String> {
        if self.is_unrestricted() {
            return None;
        }
        Some(match self.hold(now) {
            None => match self.next_closing(now) {
                Some(at) => {
                    let zone = self.zone_for(at, now);
                    let local = local_time(zone, at);
                    let same_day =
                        local.map(|t| t.date()) == local_time(zone, now).map(|t| t.date());
                    let shown = if let (true, Some(local)) = (same_day, local) {
                        format!("{} {} ({})", local.format("%H:%M"), zone.name(), utc(at))
                    } else {
                        when(zone, at)
                    };
                    format!("open until {shown}")
                }
                None => format!("open, and nothing closes it {WITHIN}"),
            },
            Some(hold) => {
                let opens = self.next_opening(now);
                match (hold, opens) {
                    (Hold::OutsideWindows, Some(at)) => {
                        format!(
                            "closed: the next window opens {}",
                            when(self.zone_for(at, at), at)
                        )
                    }
                    (Hold::Frozen(f), Some(at)) => format!(
                        "closed: frozen {}; opens again {}",
                        f.label(),
                        when(self.zone_for(at, at), at)
                    ),
                    (hold, None) => {
                        format!("closed: {}; no opening {WITHIN}", self.why(&hold))
                    }
                }
            }
        })
    }

    /// The first instant at or after `now` at which promotion is allowed
    /// (None if none within two years).
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.allows(now) {
            return Some(now);
        }
        self.first_boundary(now, |t| t >= now && self.allows(t))
    }

    /// The first instant after `now` at which promotion is not allowed
    /// (None if none within two years).
    pub fn next_closing(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_boundary(now, |t| t > now && !self.allows(t))
    }

    fn hold(&self, at: DateTime<Utc>) -> Option<Hold<'_>> {
        if let Some(f) = self.freeze.iter().find(|f| f.contains(at)) {
            return Some(Hold::Frozen(f));
        }
        if !self.promote.is_empty() && !self.promote.iter().any(|w| w.contains(at)) {
            return Some(Hold::OutsideWindows);
        }
        None
    }

    fn why(&self, hold: &Hold<'_>) -> String {
        match hold {
            Hold::Frozen(f) => format!("frozen {}", f.label()),
            Hold::OutsideWindows => {
                let windows: Vec<&str> = self.promote.iter().map(|w| w.text.as_str()).collect();
                format!("outside the release windows ({})", windows.join("; "))
            }
        }
    }

    /// The zone an instant is shown in: the window `inside` is in (else the
    /// first window's), or the freeze that begins or ends at `at`.
    fn zone_for(&self, at: DateTime<Utc>, inside: DateTime<Utc>) -> Tz {
        let window = self
            .promote
            .iter()
            .find(|w| w.contains(inside))
            .or(self.promote.first());
        let freeze = || {
            self.freeze
                .iter()
                .find(|f| f.begins == at || f.ends == at)
                .or(self.freeze.first())
        };
        window
            .map(|w| w.zone)
            .or_else(|| freeze().map(|f| f.zone))
            .unwrap_or(Tz::UTC)
    }

    /// The first instant within two years of `now`, among those where the
    /// schedule's answer may change, for which `want` holds.
    fn first_boundary(
        &self,
        now: DateTime<Utc>,
        want: impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<DateTime<Utc>> {
        let horizon = now.checked_add_signed(HORIZON)?;
        let mut from = now;
        while from < horizon {
            let to = from
                .checked_add_signed(CHUNK)
                .map_or(horizon, |t| t.min(horizon));
            if let Some(t) = self.boundaries(from, to).into_iter().find(|t| want(*t)) {
                return Some(t);
            }
            from = to;
        }
        None
    }

    /// Every instant in `[from, to)` at which whether promotion is allowed
    /// can change, in order: the starts and ends of windows (both
    /// occurrences of a repeated local time; after a gap, its first
    /// instant), each zone's offset changes (a clock set back may re-enter
    /// or leave a window), and the begin and end of each freeze.
    fn boundaries(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        for w in &self.promote {
            let (Some(mut date), Some(last)) = (
                local_time(w.zone, from).and_then(|t| t.date().pred_opt()),
                local_time(w.zone, to).map(|t| t.date()),
            ) else {
                continue;
            };
            while date <= last {
                if w.has_day(date.weekday()) {
                    out.extend(local_instants(w.zone, date, w.start).into_iter().flatten());
                    out.extend(local_instants(w.zone, date, w.end).into_iter().flatten());
                }
                out.extend(offset_change_on(w.zone, date));
                match date.succ_opt() {
                    Some(next) => date = next,
                    None => break,
                }
            }
        }
        for f in &self.freeze {
            out.extend([f.begins, f.ends]);
        }
        out.retain(|t| from <= *t && *t < to);
        out.sort();
        out.dedup();
        out
    }
}

impl PromoteWindow {
    /// The window as written in the plan.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The listed days, Monday first.
    pub fn days(&self) -> Vec<Weekday> {
        (0..7u8)
            .filter(|i| self.days & (1 << i) != 0)
            .filter_map(|i| Weekday::try_from(i).ok())
            .collect()
    }

    /// Start and end as minutes after local midnight (end exclusive; 1440
    /// is the midnight after).
    pub fn minutes(&self) -> (u32, u32) {
        (self.start, self.end)
    }

    /// Whether `at`'s local time in the window's zone is on a listed day
    /// and within `start <= time < end`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let Some(local) = local_time(self.zone, at) else {
            return false;
        };
        let seconds = local.num_seconds_from_midnight();
        self.has_day(local.weekday()) && self.start * 60 <= seconds && seconds < self.end * 60
    }

    fn has_day(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }
}

impl Freeze {
    /// The freeze as written in the plan.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first and last frozen local days (both included).
    pub fn days(&self) -> (NaiveDate, NaiveDate) {
        (self.first, self.last)
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Local midnight of the first day.
    pub fn begins(&self) -> DateTime<Utc> {
        self.begins
    }

    /// Local midnight after the last day.
    pub fn ends(&self) -> DateTime<Utc> {
        self.ends
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.begins <= at && at < self.ends
    }

    /// "2026-12-20..2027-01-04 (Europe/London)", "2026-12-25 (UTC)".
    fn label(&self) -> String {
        if self.first == self.last {
            format!("{} ({})", self.first, self.zone.name())
        } else {
            format!("{}..{} ({})", self.first, self.last, self.zone.name())
        }
    }
}

impl fmt::Display for PromoteWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Freeze {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for PromoteWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Serialize for Freeze {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Parses a promote window: days (`Mon`, `Mon-Thu`, `Fri-Mon`,
/// `Mon,Wed,Fri`, `Mon-Wed,Fri`), `HH:MM-HH:MM` (end after start on the
/// same day; `24:00` as an end), an IANA zone. A problem is reported as
/// `"TEXT": what is wrong, e.g. "Mon-Thu 09:00-16:00 Europe/London"`.
pub fn parse_window(text: &str) -> Result<PromoteWindow, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!(
            "an empty window: write days, times and a time zone, e.g. {WINDOW_EXAMPLE}"
        ));
    }
    let bad = |why: String| format!("{t:?}: {why}");
    let parts: Vec<&str> = t.split_whitespace().collect();
    if parts[0].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad(format!(
            "the days come first, then the times and a time zone, e.g. {WINDOW_EXAMPLE}"
        )));
    }
    let (days, times, zone) = match parts.as_slice() {
        [days, times, zone] => (*days, *times, *zone),
        [_, times] if times.contains(':') => {
            return Err(bad(format!(
                "a time zone is required after the times (an IANA name such as \"Europe/London\", or \"UTC\"), e.g. {WINDOW_EXAMPLE}"
            )));
        }
        _ => {
            return Err(bad(format!(
                "write days, times and a time zone, separated by spaces, e.g. {WINDOW_EXAMPLE}"
            )));
        }
    };
    let days = parse_days(days).map_err(bad)?;
    let (start, end) = parse_times(times, zone).map_err(bad)?;
    let zone = parse_zone(zone).map_err(bad)?;
    Ok(PromoteWindow {
        text: t.to_string(),
        days,
        start,
        end,
        zone,
    })
}

/// Parses a freeze: `YYYY-MM-DD..YYYY-MM-DD` (both days included) or one
/// `YYYY-MM-DD`, optionally followed by a zone (else `default_zone`).
pub fn parse_freeze(text: &str, default_zone: Tz) -> Result<Freeze, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!(
            "an empty freeze: write a day or a range of days, e.g. {FREEZE_EXAMPLE}"
        ));
    }
    let bad = |why: String| format!("{t:?}: {why}");
    let parts: Vec<&str> = t.split_whitespace().collect();
    let (dates, zone) = match parts.as_slice() {
        [dates] => (*dates, default_zone),
        [dates, zone] => (*dates, parse_zone(zone).map_err(bad)?),
        _ => {
            return Err(bad(format!(
                "write a day or a range of days, optionally followed by a time zone, e.g. {FREEZE_EXAMPLE} or \"2026-12-25 Europe/London\""
            )));
        }
    };
    let (first, last) = match dates.split_once("..") {
        Some((a, b)) => (parse_date(a).map_err(bad)?, parse_date(b).map_err(bad)?),
        None => {
            let d = parse_date(dates).map_err(bad)?;
            (d, d)
        }
    };
    if last < first {
        return Err(bad(format!(
            "the freeze ends ({last}) before it begins ({first}): write the first day, then the last"
        )));
    }
    let midnight = |date: Option<NaiveDate>| {
        date.and_then(|d| local_instants(zone, d, 0)[0])
            .ok_or_else(|| bad(format!("its days cannot be placed in {}", zone.name())))
    };
    Ok(Freeze {
        text: t.to_string(),
        first,
        last,
        zone,
        begins: midnight(Some(first))?,
        ends: midnight(last.succ_opt())?,
    })
}

/// An IANA zone name as `chrono_tz` knows it ("UTC" included).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    if let Ok(zone) = name.parse::<Tz>() {
        return Ok(zone);
    }
    let hint = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|z| z.name().eq_ignore_ascii_case(name))
        .map_or_else(
            || {
                "use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\""
                    .to_string()
            },
            |z| format!("did you mean {:?}?", z.name()),
        );
    Err(format!("unknown time zone {name:?}: {hint}"))
}

fn parse_days(s: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for item in s.split(',') {
        if item.is_empty() {
            return Err(format!(
                "{s:?} has an empty day: separate days with single commas, e.g. \"Mon,Wed,Fri\""
            ));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_day(a)?, parse_day(b)?),
            None => {
                let d = parse_day(item)?;
                (d, d)
            }
        };
        // A range may wrap around the week: Fri-Mon.
        let mut day = first;
        for _ in 0..7 {
            mask |= 1 << day;
            if day == last {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(mask)
}

fn parse_day(s: &str) -> Result<u8, String> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| {
            format!(
                "unknown day {s:?}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, alone (\"Mon\"), as a range (\"Mon-Thu\") or in a list (\"Mon,Wed,Fri\")"
            )
        })
}

/// `HH:MM-HH:MM` → minutes after midnight, start before end.
fn parse_times(s: &str, zone: &str) -> Result<(u32, u32), String> {
    let form = || format!("times are HH:MM-HH:MM, e.g. {WINDOW_EXAMPLE}");
    let (a, b) = s.split_once('-').ok_or_else(form)?;
    let (start, end) = (clock(a).ok_or_else(form)?, clock(b).ok_or_else(form)?);
    let not_a_time =
        |t: &str| format!("{t:?} is not a time of day: 00:00 to 23:59 (and 24:00 as an end)");
    if start.0 > 23 || start.1 > 59 {
        return Err(not_a_time(a));
    }
    if end.0 > 24 || end.1 > 59 || (end.0 == 24 && end.1 > 0) {
        return Err(not_a_time(b));
    }
    let (start, end) = (start.0 * 60 + start.1, end.0 * 60 + end.1);
    if end < start {
        return Err(format!(
            "{s} runs past midnight, and a window ends on the day it starts: write two windows, e.g. \"Mon {a}-24:00 {zone}\" and \"Tue 00:00-{b} {zone}\""
        ));
    }
    if end == start {
        return Err(format!("{s} is empty: the end must be after the start"));
    }
    debug_assert!(end <= MINUTES_PER_DAY);
    Ok((start, end))
}

/// `HH:MM`, two digits each, not yet range-checked.
fn clock(s: &str) -> Option<(u32, u32)> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse().ok())
            .flatten()
    };
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    Some((digits(0..2)?, digits(3..5)?))
}

/// `YYYY-MM-DD`, exactly.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(format!(
            "{s:?} is not a day: days are YYYY-MM-DD, and a range is FIRST..LAST (both included), e.g. {FREEZE_EXAMPLE}"
        ));
    }
    let number = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    number(0..4)
        .zip(number(5..7))
        .zip(number(8..10))
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d))
        .ok_or_else(|| format!("{s} is not a day of the calendar"))
}

/// The instants at which the wall clock in `zone` reads `minutes` past
/// midnight of `date` (1440: the midnight after): one; both, earlier
/// first, in an hour that repeats; in a gap, the first instant after it.
fn local_instants(zone: Tz, date: NaiveDate, minutes: u32) -> [Option<DateTime<Utc>>; 2] {
    let local = if minutes >= MINUTES_PER_DAY {
        date.succ_opt().map(|d| d.and_time(NaiveTime::MIN))
    } else {
        date.and_hms_opt(minutes / 60, minutes % 60, 0)
    };
    let Some(local) = local else {
        return [None, None];
    };
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => [Some(t.to_utc()), None],
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.to_utc(), b.to_utc());
            [Some(a.min(b)), Some(a.max(b))]
        }
        LocalResult::None => [
            GapInfo::new(&local, &zone)
                .and_then(|g| g.end)
                .map(|t| t.to_utc()),
            None,
        ],
    }
}

/// The instant during local `date` at which `zone`'s offset changes, if
/// it does (found to the second).
fn offset_change_on(zone: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let mut lo = local_instants(zone, date, 0)[0]?.timestamp();
    let mut hi = local_instants(zone, date, MINUTES_PER_DAY)[0]?.timestamp();
    let offset = |t: i64| {
        DateTime::from_timestamp(t, 0).map(|t| zone.offset_from_utc_datetime(&t.naive_utc()).fix())
    };
    let before = offset(lo)?;
    if offset(hi)? == before {
        return None;
    }
    // Invariant: the offset at `lo` is the old one, at `hi` a new one.
    // Offsets change on whole seconds.
    for _ in 0..64 {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if offset(mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// "Mon 2026-12-07 09:00 Europe/London (2026-12-07T09:00:00Z)".
fn when(zone: Tz, at: DateTime<Utc>) -> String {
    match local_time(zone, at) {
        Some(local) => format!(
            "{} {} ({})",
            local.format("%a %Y-%m-%d %H:%M"),
            zone.name(),
            utc(at)
        ),
        None => utc(at),
    }
}

/// `at` on the wall clock of `zone`; None at the ends of chrono's range
/// (where `DateTime::with_timezone` would panic).
fn local_time(zone: Tz, at: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = at.naive_utc();
    utc.checked_add_offset(zone.offset_from_utc_datetime(&utc).fix())
}

fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// Freezes without a zone take the first window's, as in a plan.
    fn schedule(promote: &[&str], freeze: &[&str]) -> Schedule {
        let promote: Vec<PromoteWindow> =
            promote.iter().map(|w| parse_window(w).unwrap()).collect();
        let zone = promote.first().map_or(Tz::UTC, PromoteWindow::zone);
        let freeze = freeze
            .iter()
            .map(|f| parse_freeze(f, zone).unwrap())
            .collect();
        Schedule { promote, freeze }
    }

    fn window_err(text: &str) -> String {
        parse_window(text).unwrap_err()
    }

    const LONDON: &str = "Mon-Thu 09:00-16:00 Europe/London";

    // --- Parsing ---------------------------------------------------------

    #[test]
    fn window_days_in_every_form() {
        use Weekday::*;
        for (text, days) in [
            ("Mon 09:00-16:00 UTC", vec![Mon]),
            ("Mon-Thu 09:00-16:00 UTC", vec![Mon, Tue, Wed, Thu]),
            ("Mon,Wed,Fri 09:00-16:00 UTC", vec![Mon, Wed, Fri]),
            ("Sat-Sun 09:00-16:00 UTC", vec![Sat, Sun]),
            ("Mon-Wed,Fri 09:00-16:00 UTC", vec![Mon, Tue, Wed, Fri]),
            ("Fri-Mon 09:00-16:00 UTC", vec![Mon, Fri, Sat, Sun]),
            ("mon-THU 09:00-16:00 UTC", vec![Mon, Tue, Wed, Thu]),
            ("Tue-Tue 09:00-16:00 UTC", vec![Tue]),
            (
                "Mon-Sun 09:00-16:00 UTC",
                vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun],
            ),
        ] {
            assert_eq!(parse_window(text).unwrap().days(), days, "{text}");
        }
    }

    #[test]
    fn window_times_zone_and_text() {
        let w = parse_window("  Mon-Thu 09:00-16:00   Europe/London ").unwrap();
        assert_eq!(w.minutes(), (540, 960));
        assert_eq!(w.zone(), Tz::Europe__London);
        assert_eq!(w.text(), "Mon-Thu 09:00-16:00   Europe/London");
        assert_eq!(
            parse_window("Sun 00:00-24:00 UTC").unwrap().minutes(),
            (0, 1440)
        );
        assert_eq!(
            parse_window("Fri 23:59-24:00 Asia/Tokyo").unwrap().zone(),
            Tz::Asia__Tokyo
        );
        // Serialized as written.
        let s = schedule(&[LONDON], &["2026-12-20..2027-01-04"]);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "promote": ["Mon-Thu 09:00-16:00 Europe/London"],
                "freeze": ["2026-12-20..2027-01-04"],
            })
        );
    }

    #[test]
    fn window_errors_name_the_accepted_forms() {
        let e = "e.g. \"Mon-Thu 09:00-16:00 Europe/London\"";
        for (text, want) in [
            (
                "Mon-Thu 9-16 Europe/London",
                format!("\"Mon-Thu 9-16 Europe/London\": times are HH:MM-HH:MM, {e}"),
            ),
            (
                "Mon-Thu 9:00-16:00 Europe/London",
                format!("\"Mon-Thu 9:00-16:00 Europe/London\": times are HH:MM-HH:MM, {e}"),
            ),
            (
                "Mon-Thu 09:00 Europe/London",
                format!("\"Mon-Thu 09:00 Europe/London\": times are HH:MM-HH:MM, {e}"),
            ),
            ("", format!("an empty window: write days, times and a time zone, {e}")),
            ("   ", format!("an empty window: write days, times and a time zone, {e}")),
            (
                "Mon-Thu 09:00-16:00",
                format!("\"Mon-Thu 09:00-16:00\": a time zone is required after the times (an IANA name such as \"Europe/London\", or \"UTC\"), {e}"),
            ),
            (
                "09:00-16:00 Europe/London",
                format!("\"09:00-16:00 Europe/London\": the days come first, then the times and a time zone, {e}"),
            ),
            (
                "Mon - Thu 09:00-16:00 Europe/London",
                format!("\"Mon - Thu 09:00-16:00 Europe/London\": write days, times and a time zone, separated by spaces, {e}"),
            ),
            (
                "Mon-Thu 09:00-16:00 Europe/Londn",
                "\"Mon-Thu 09:00-16:00 Europe/Londn\": unknown time zone \"Europe/Londn\": use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\"".into(),
            ),
            (
                "Mon-Thu 09:00-16:00 europe/london",
                "\"Mon-Thu 09:00-16:00 europe/london\": unknown time zone \"europe/london\": did you mean \"Europe/London\"?".into(),
            ),
            (
                "Mo-Th 09:00-16:00 UTC",
                "\"Mo-Th 09:00-16:00 UTC\": unknown day \"Mo\": days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, alone (\"Mon\"), as a range (\"Mon-Thu\") or in a list (\"Mon,Wed,Fri\")".into(),
            ),
            (
                "Monday 09:00-16:00 UTC",
                "\"Monday 09:00-16:00 UTC\": unknown day \"Monday\": days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, alone (\"Mon\"), as a range (\"Mon-Thu\") or in a list (\"Mon,Wed,Fri\")".into(),
            ),
            (
                "Mon,,Fri 09:00-16:00 UTC",
                "\"Mon,,Fri 09:00-16:00 UTC\": \"Mon,,Fri\" has an empty day: separate days with single commas, e.g. \"Mon,Wed,Fri\"".into(),
            ),
            (
                "Mon, 09:00-16:00 UTC",
                "\"Mon, 09:00-16:00 UTC\": \"Mon,\" has an empty day: separate days with single commas, e.g. \"Mon,Wed,Fri\"".into(),
            ),
            (
                "Fri 22:00-06:00 Europe/London",
                "\"Fri 22:00-06:00 Europe/London\": 22:00-06:00 runs past midnight, and a window ends on the day it starts: write two windows, e.g. \"Mon 22:00-24:00 Europe/London\" and \"Tue 00:00-06:00 Europe/London\"".into(),
            ),
            (
                "Fri 09:00-09:00 UTC",
                "\"Fri 09:00-09:00 UTC\": 09:00-09:00 is empty: the end must be after the start".into(),
            ),
            (
                "Fri 25:00-26:00 UTC",
                "\"Fri 25:00-26:00 UTC\": \"25:00\" is not a time of day: 00:00 to 23:59 (and 24:00 as an end)".into(),
            ),
            (
                "Fri 09:00-24:30 UTC",
                "\"Fri 09:00-24:30 UTC\": \"24:30\" is not a time of day: 00:00 to 23:59 (and 24:00 as an end)".into(),
            ),
            (
                "Fri 24:00-24:00 UTC",
                "\"Fri 24:00-24:00 UTC\": \"24:00\" is not a time of day: 00:00 to 23:59 (and 24:00 as an end)".into(),
            ),
            (
                "Fri 09:60-10:00 UTC",
                "\"Fri 09:60-10:00 UTC\": \"09:60\" is not a time of day: 00:00 to 23:59 (and 24:00 as an end)".into(),
            ),
        ] {
            assert_eq!(window_err(text), want, "{text:?}");
        }
        // Odd bytes never panic.
        for text in [
            "é 0é:00-1é:00 UTC",
            "Mon ０9:00-10:00 UTC",
            "Mon 09:00-10:0é UTC",
            "Mon -",
        ] {
            assert!(parse_window(text).is_err(), "{text}");
        }
    }

    #[test]
    fn freezes_in_every_form() {
        let london = Tz::Europe__London;
        let f = parse_freeze("2026-12-20..2027-01-04", london).unwrap();
        assert_eq!(
            f.days(),
            (
                NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
                NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()
            )
        );
        assert_eq!(f.zone(), london);
        assert_eq!(f.begins(), at("2026-12-20T00:00:00Z"));
        assert_eq!(f.ends(), at("2027-01-05T00:00:00Z"));
        // One day, in its own zone.
        let f = parse_freeze("2026-07-04 America/New_York", london).unwrap();
        assert_eq!(f.zone(), Tz::America__New_York);
        assert_eq!(
            (f.begins(), f.ends()),
            (at("2026-07-04T04:00:00Z"), at("2026-07-05T04:00:00Z"))
        );
        // Local midnight in summer time: the day starts at 23:00 UTC the day before.
        let f = parse_freeze("2026-06-01..2026-06-01", london).unwrap();
        assert_eq!(
            (f.begins(), f.ends()),
            (at("2026-05-31T23:00:00Z"), at("2026-06-01T23:00:00Z"))
        );
        assert_eq!(f.text(), "2026-06-01..2026-06-01");
    }

    #[test]
    fn freeze_errors_name_the_accepted_forms() {
        let utc = Tz::UTC;
        for (text, want) in [
            (
                "",
                "an empty freeze: write a day or a range of days, e.g. \"2026-12-20..2027-01-04\"",
            ),
            (
                "2026-12-20-2027-01-04",
                "\"2026-12-20-2027-01-04\": \"2026-12-20-2027-01-04\" is not a day: days are YYYY-MM-DD, and a range is FIRST..LAST (both included), e.g. \"2026-12-20..2027-01-04\"",
            ),
            (
                "20.12.2026",
                "\"20.12.2026\": \"20.12.2026\" is not a day: days are YYYY-MM-DD, and a range is FIRST..LAST (both included), e.g. \"2026-12-20..2027-01-04\"",
            ),
            (
                "2026-12-20..",
                "\"2026-12-20..\": \"\" is not a day: days are YYYY-MM-DD, and a range is FIRST..LAST (both included), e.g. \"2026-12-20..2027-01-04\"",
            ),
            (
                "2026-02-30",
                "\"2026-02-30\": 2026-02-30 is not a day of the calendar",
            ),
            (
                "2027-01-04..2026-12-20",
                "\"2027-01-04..2026-12-20\": the freeze ends (2026-12-20) before it begins (2027-01-04): write the first day, then the last",
            ),
            (
                "2026-12-25 Mars/Olympus",
                "\"2026-12-25 Mars/Olympus\": unknown time zone \"Mars/Olympus\": use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\"",
            ),
            (
                "2026-12-24 .. 2026-12-26",
                "\"2026-12-24 .. 2026-12-26\": write a day or a range of days, optionally followed by a time zone, e.g. \"2026-12-20..2027-01-04\" or \"2026-12-25 Europe/London\"",
            ),
        ] {
            assert_eq!(parse_freeze(text, utc).unwrap_err(), want, "{text:?}");
        }
        assert!(parse_freeze("２026-12-25", utc).is_err());
    }

    // --- Membership ----------------------------------------------------------

    #[test]
    fn membership_is_by_the_wall_clock_of_the_windows_zone() {
        // Monday 20:00-23:00 in New York is Tuesday 00:00-03:00 UTC in summer.
        let ny = parse_window("Mon 20:00-23:00 America/New_York").unwrap();
        assert!(ny.contains(at("2026-06-02T01:30:00Z")));
        assert!(ny.contains(at("2026-06-02T00:00:00Z")));
        assert!(!ny.contains(at("2026-06-02T03:00:00Z")));
        assert!(
            !ny.contains(at("2026-06-01T21:30:00Z")),
            "Monday UTC, but 17:30 in New York"
        );
        // Monday morning in Tokyo is still Sunday in UTC.
        let tokyo = parse_window("Mon 06:00-12:00 Asia/Tokyo").unwrap();
        assert!(tokyo.contains(at("2026-05-31T22:00:00Z")));
        assert!(
            !tokyo.contains(at("2026-06-01T22:00:00Z")),
            "Tuesday 07:00 in Tokyo"
        );
        // Start inclusive, end exclusive; 24:00 reaches the end of the day.
        let w = parse_window("Wed 09:00-16:00 UTC").unwrap();
        assert!(w.contains(at("2026-06-03T09:00:00Z")));
        assert!(w.contains(at("2026-06-03T15:59:59Z")));
        assert!(!w.contains(at("2026-06-03T16:00:00Z")));
        assert!(!w.contains(at("2026-06-03T08:59:59Z")));
        let w = parse_window("Wed 12:00-24:00 UTC").unwrap();
        assert!(w.contains(at("2026-06-03T23:59:59Z")));
        assert!(!w.contains(at("2026-06-04T00:00:00Z")));
    }

    #[test]
    fn a_window_follows_daylight_saving_time() {
        let s = schedule(&[LONDON], &[]);
        // 09:00-16:00 London is 08:00-15:00 UTC in summer...
        assert!(!s.allows(at("2026-06-01T07:59:00Z")));
        assert!(s.allows(at("2026-06-01T08:00:00Z")));
        assert!(!s.allows(at("2026-06-01T15:00:00Z")));
        // ... and 09:00-16:00 UTC in winter.
        assert!(!s.allows(at("2026-12-07T08:59:00Z")));
        assert!(s.allows(at("2026-12-07T09:00:00Z")));
        assert!(s.allows(at("2026-12-07T15:59:00Z")));
        assert_eq!(
            s.state_at(at("2026-06-01T12:00:00Z")),
            WindowState::Open {
                until: Some(at("2026-06-01T15:00:00Z"))
            }
        );
        // Thursday after the window, before the clocks go back on Sunday
        // 2026-10-25: the next opening is Monday 09:00 GMT.
        assert_eq!(
            s.next_opening(at("2026-10-22T15:30:00Z")),
            Some(at("2026-10-26T09:00:00Z"))
        );
        // Thursday before the clocks go forward on Sunday 2026-03-29: the
        // next opening is Monday 09:00 BST.
        assert_eq!(
            s.next_opening(at("2026-03-26T17:00:00Z")),
            Some(at("2026-03-30T08:00:00Z"))
        );
    }

    #[test]
    fn a_window_starting_in_the_spring_forward_gap_opens_when_the_gap_ends() {
        // 2026-03-29 in London: 01:00 GMT becomes 02:00 BST, so 01:30 never happens.
        let s = schedule(&["Sun 01:30-03:00 Europe/London"], &[]);
        assert!(!s.allows(at("2026-03-29T00:59:59Z")));
        assert!(s.allows(at("2026-03-29T01:00:00Z")), "02:00 BST");
        assert_eq!(
            s.next_opening(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.state_at(at("2026-03-29T01:00:00Z")),
            WindowState::Open {
                until: Some(at("2026-03-29T02:00:00Z"))
            }
        );
        assert_eq!(
            s.blocker(at("2026-03-28T12:00:00Z")).unwrap(),
            "outside the release windows (Sun 01:30-03:00 Europe/London): the next opens Sun 2026-03-29 02:00 Europe/London (2026-03-29T01:00:00Z)"
        );
        // A window wholly inside the gap does not open that day.
        let s = schedule(&["Sun 01:10-01:50 Europe/London"], &[]);
        assert_eq!(
            s.next_opening(at("2026-03-28T12:00:00Z")),
            Some(at("2026-04-05T00:10:00Z"))
        );
    }

    #[test]
    fn an_hour_that_repeats_may_leave_and_reenter_a_window() {
        // 2026-10-25 in London: 02:00 BST becomes 01:00 GMT; 01:00-02:00 happens twice.
        let s = schedule(&["Sun 01:30-03:00 Europe/London"], &[]);
        // Opens at the first 01:30 (BST)...
        assert_eq!(
            s.next_opening(at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        // ... leaves when the clock goes back to 01:00 ...
        assert_eq!(
            s.state_at(at("2026-10-25T00:45:00Z")),
            WindowState::Open {
                until: Some(at("2026-10-25T01:00:00Z"))
            }
        );
        // ... and re-enters at the second 01:30 (GMT), until 03:00 GMT.
        assert_eq!(
            s.state_at(at("2026-10-25T01:10:00Z")),
            WindowState::Closed {
                why: "outside the release windows (Sun 01:30-03:00 Europe/London)".into(),
                opens_at: Some(at("2026-10-25T01:30:00Z")),
            }
        );
        assert_eq!(
            s.state_at(at("2026-10-25T01:30:00Z")),
            WindowState::Open {
                until: Some(at("2026-10-25T03:00:00Z"))
            }
        );
        // A window ending in the repeated hour re-opens when it begins again.
        let s = schedule(&["Sun 00:00-01:30 Europe/London"], &[]);
        assert_eq!(
            s.state_at(at("2026-10-25T00:40:00Z")),
            WindowState::Closed {
                why: "outside the release windows (Sun 00:00-01:30 Europe/London)".into(),
                opens_at: Some(at("2026-10-25T01:00:00Z")),
            }
        );
        assert_eq!(
            s.next_closing(at("2026-10-25T01:00:00Z")),
            Some(at("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn new_york_changes_its_clocks_on_other_weekends() {
        // 2026-03-08: 02:00 EST becomes 03:00 EDT; London follows on 03-29.
        let s = schedule(&["Mon-Fri 09:00-17:00 America/New_York"], &[]);
        assert_eq!(
            s.next_opening(at("2026-03-06T22:00:00Z")),
            Some(at("2026-03-09T13:00:00Z"))
        );
        assert_eq!(
            s.next_opening(at("2026-03-05T22:00:00Z")),
            Some(at("2026-03-06T14:00:00Z"))
        );
        // 2026-11-01: back to EST.
        assert_eq!(
            s.next_opening(at("2026-10-30T21:00:00Z")),
            Some(at("2026-11-02T14:00:00Z"))
        );
        assert_eq!(
            s.blocker(at("2026-10-30T21:00:00Z")).unwrap(),
            "outside the release windows (Mon-Fri 09:00-17:00 America/New_York): the next opens Mon 2026-11-02 09:00 America/New_York (2026-11-02T14:00:00Z)"
        );
    }

    // --- Openings, closings and sentences ----------------------------------

    #[test]
    fn the_next_opening_skips_the_weekend() {
        let s = schedule(&[LONDON], &[]);
        // Thursday 2026-12-03, after 16:00: next is Monday 09:00.
        let now = at("2026-12-03T16:30:00Z");
        assert_eq!(
            s.state_at(now),
            WindowState::Closed {
                why: "outside the release windows (Mon-Thu 09:00-16:00 Europe/London)".into(),
                opens_at: Some(at("2026-12-07T09:00:00Z")),
            }
        );
        assert_eq!(
            s.blocker(now).unwrap(),
            "outside the release windows (Mon-Thu 09:00-16:00 Europe/London): the next opens Mon 2026-12-07 09:00 Europe/London (2026-12-07T09:00:00Z)"
        );
        assert_eq!(
            s.describe(now).unwrap(),
            "closed: the next window opens Mon 2026-12-07 09:00 Europe/London (2026-12-07T09:00:00Z)"
        );
        let open = at("2026-12-07T10:00:00Z");
        assert_eq!(s.blocker(open), None);
        assert_eq!(
            s.describe(open).unwrap(),
            "open until 16:00 Europe/London (2026-12-07T16:00:00Z)"
        );
        // Before the window on a working day: later the same day.
        assert_eq!(
            s.next_opening(at("2026-12-08T07:00:00Z")),
            Some(at("2026-12-08T09:00:00Z"))
        );
    }

    #[test]
    fn the_next_opening_skips_a_freeze() {
        let s = schedule(&[LONDON], &["2026-12-20..2027-01-04"]);
        let thursday = at("2026-12-17T16:30:00Z");
        assert_eq!(
            s.blocker(thursday).unwrap(),
            "outside the release windows (Mon-Thu 09:00-16:00 Europe/London): the next opens Tue 2027-01-05 09:00 Europe/London (2027-01-05T09:00:00Z)"
        );
        let frozen = at("2026-12-21T10:00:00Z");
        assert_eq!(
            s.state_at(frozen),
            WindowState::Closed {
                why: "frozen 2026-12-20..2027-01-04 (Europe/London)".into(),
                opens_at: Some(at("2027-01-05T09:00:00Z")),
            }
        );
        assert_eq!(
            s.blocker(frozen).unwrap(),
            "frozen 2026-12-20..2027-01-04 (Europe/London): promotion opens again Tue 2027-01-05 09:00 Europe/London (2027-01-05T09:00:00Z)"
        );
        assert_eq!(
            s.describe(frozen).unwrap(),
            "closed: frozen 2026-12-20..2027-01-04 (Europe/London); opens again Tue 2027-01-05 09:00 Europe/London (2027-01-05T09:00:00Z)"
        );
        // The last frozen day is included; the day after is not.
        assert!(!s.allows(at("2027-01-04T12:00:00Z")));
        assert!(s.allows(at("2027-01-05T12:00:00Z")));
    }

    #[test]
    fn a_freeze_that_ends_inside_a_window_opens_at_its_end() {
        // Frozen in New York until midnight; the window runs all Friday in London.
        let s = schedule(
            &["Fri 00:00-24:00 Europe/London"],
            &["2026-12-03 America/New_York"],
        );
        // Thursday 2026-12-03 in New York ends at 05:00 UTC on Friday.
        assert_eq!(
            s.state_at(at("2026-12-04T01:00:00Z")),
            WindowState::Closed {
                why: "frozen 2026-12-03 (America/New_York)".into(),
                opens_at: Some(at("2026-12-04T05:00:00Z")),
            }
        );
        // And a window open now closes when a freeze begins.
        let s = schedule(
            &["Mon-Fri 00:00-24:00 UTC"],
            &["2026-12-04 America/New_York"],
        );
        assert_eq!(
            s.state_at(at("2026-12-03T10:00:00Z")),
            WindowState::Open {
                until: Some(at("2026-12-04T05:00:00Z"))
            }
        );
        assert_eq!(
            s.describe(at("2026-12-03T10:00:00Z")).unwrap(),
            "open until Fri 2026-12-04 05:00 UTC (2026-12-04T05:00:00Z)"
        );
    }

    #[test]
    fn a_schedule_of_freezes_only() {
        let s = schedule(&[], &["2026-12-24..2026-12-26 Europe/Berlin"]);
        assert!(!s.is_unrestricted());
        let before = at("2026-12-20T12:00:00Z");
        assert_eq!(
            s.state_at(before),
            WindowState::Open {
                until: Some(at("2026-12-23T23:00:00Z"))
            }
        );
        assert_eq!(
            s.describe(before).unwrap(),
            "open until Thu 2026-12-24 00:00 Europe/Berlin (2026-12-23T23:00:00Z)"
        );
        assert_eq!(s.blocker(before), None);
        let during = at("2026-12-25T12:00:00Z");
        assert_eq!(
            s.blocker(during).unwrap(),
            "frozen 2026-12-24..2026-12-26 (Europe/Berlin): promotion opens again Sun 2026-12-27 00:00 Europe/Berlin (2026-12-26T23:00:00Z)"
        );
        assert_eq!(
            s.state_at(at("2026-12-27T12:00:00Z")),
            WindowState::Open { until: None }
        );
        assert_eq!(
            s.describe(at("2026-12-27T12:00:00Z")).unwrap(),
            "open, and nothing closes it within two years"
        );
    }

    #[test]
    fn a_schedule_that_never_opens() {
        let s = schedule(&["Mon 09:00-10:00 UTC"], &["2026-01-01..2029-12-31"]);
        let now = at("2026-06-01T09:30:00Z");
        assert_eq!(
            s.state_at(now),
            WindowState::Closed {
                why: "frozen 2026-01-01..2029-12-31 (UTC)".into(),
                opens_at: None,
            }
        );
        assert_eq!(
            s.blocker(now).unwrap(),
            "frozen 2026-01-01..2029-12-31 (UTC), and promotion does not open again within two years"
        );
        assert_eq!(
            s.describe(now).unwrap(),
            "closed: frozen 2026-01-01..2029-12-31 (UTC); no opening within two years"
        );
    }

    #[test]
    fn adjacent_windows_are_one_opening() {
        // Every weekday all day: on Monday it closes at Saturday midnight.
        let s = schedule(&["Mon-Fri 00:00-24:00 UTC"], &[]);
        assert_eq!(
            s.next_closing(at("2026-06-01T10:00:00Z")),
            Some(at("2026-06-06T00:00:00Z"))
        );
        // Two windows overlapping, in different zones (13:00 Paris is 11:00 UTC in summer).
        let s = schedule(
            &["Mon 09:00-12:00 UTC", "Mon 13:00-15:00 Europe/Paris"],
            &[],
        );
        assert_eq!(
            s.next_closing(at("2026-06-01T10:00:00Z")),
            Some(at("2026-06-01T13:00:00Z"))
        );
        // Every day, all day: never closes.
        let s = schedule(&["Mon-Sun 00:00-24:00 Europe/London"], &[]);
        assert_eq!(
            s.state_at(at("2026-03-29T00:30:00Z")),
            WindowState::Open { until: None }
        );
    }

    #[test]
    fn no_schedule_is_unrestricted() {
        let s = Schedule::default();
        assert!(s.is_unrestricted());
        let now = at("2026-06-01T00:00:00Z");
        assert_eq!(s.state_at(now), WindowState::Unrestricted);
        assert_eq!(s.blocker(now), None);
        assert_eq!(s.describe(now), None);
        assert!(s.allows(now));
    }

    /// The computed openings and closings match a minute-by-minute walk
    /// over daylight-saving weekends in London and New York.
    #[test]
    fn openings_and_closings_match_a_walk_minute_by_minute() {
        let schedules = [
            schedule(
                &[
                    "Sun 01:30-03:00 Europe/London",
                    "Sat-Mon 23:30-24:00 America/New_York",
                ],
                &[],
            ),
            schedule(
                &["Sun 00:00-01:30 Europe/London"],
                &["2026-03-09 America/New_York"],
            ),
            schedule(
                &[
                    "Fri-Mon 01:00-02:30 America/New_York",
                    "Sun 02:15-02:45 UTC",
                ],
                &[],
            ),
            schedule(&[LONDON], &["2026-10-26 Asia/Tokyo"]),
        ];
        let minutes = 11 * 24 * 60;
        for start in [
            "2026-03-06T00:00:00Z",
            "2026-03-27T00:00:00Z",
            "2026-10-23T00:00:00Z",
            "2026-10-30T00:00:00Z",
        ] {
            let start = at(start);
            let minute = |i: usize| start + TimeDelta::minutes(i64::try_from(i).unwrap());
            for s in &schedules {
                let allowed: Vec<bool> = (0..minutes).map(|i| s.allows(minute(i))).collect();
                // Every 37 minutes over four days: the first minute at which the answer changes.
                for i in (0..4 * 24 * 60).step_by(37) {
                    let change = (i + 1..minutes)
                        .find(|j| allowed[*j] != allowed[i])
                        .expect("a change within a week");
                    let now = minute(i);
                    let got = if allowed[i] {
                        s.next_closing(now)
                    } else {
                        s.next_opening(now)
                    };
                    assert_eq!(got, Some(minute(change)), "{s:?} at {now}");
                }
            }
        }
    }

    #[test]
    fn extreme_instants_never_panic() {
        let s = schedule(
            &[
                "Mon-Sun 00:00-24:00 Pacific/Kiritimati",
                "Sat 01:00-02:00 America/Adak",
            ],
            &[
                "2026-12-20..2027-01-04",
                "9999-12-31 Etc/GMT+12",
                "0001-01-01 Pacific/Kiritimati",
            ],
        );
        for now in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MAX_UTC - TimeDelta::days(400),
            DateTime::<Utc>::MIN_UTC + TimeDelta::days(1),
            at("9999-12-31T23:59:59Z"),
            at("0000-01-01T00:00:00Z"),
            DateTime::<Utc>::UNIX_EPOCH,
        ] {
            let _ = s.state_at(now);
            let _ = s.blocker(now);
            let _ = s.describe(now);
        }
    }
}
