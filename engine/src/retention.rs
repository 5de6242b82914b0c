//! Retention ("forget") policy: decide which snapshots of a group to keep.
//!
//! [`apply_policy`] is a pure function: it reads snapshot metadata and a [`KeepPolicy`] and returns
//! one [`Decision`] per snapshot, with every reason a kept snapshot is kept for. It touches no
//! repository; the caller removes what is not kept. [`group_snapshots`] splits a repository's
//! snapshots into the groups a policy is applied to, one by one.
//!
//! The rules follow the documented behaviour of restic's `forget`, so that a policy written for
//! one tool means the same thing for the other:
//!
//! - An empty policy ([`KeepPolicy::is_empty`]) keeps every snapshot and gives no reasons; the
//!   caller is expected to refuse to remove anything in that case.
//! - `last` N keeps the N newest snapshots.
//! - `hourly`, `daily`, `weekly`, `monthly`, `yearly` N: time is cut into periods on calendar
//!   boundaries (an hour of a day, a day, an ISO week running Monday to Sunday, a month, a year).
//!   Going from the newest snapshot to the oldest, the newest snapshot of each period is kept, until
//!   N periods have been counted. Periods without snapshots are skipped, not counted.
//! - When one of these counted rules finds fewer than N periods, the oldest snapshot of the group is
//!   kept as well (reason `Oldest…`), unless that rule already keeps it.
//! - `within` D keeps every snapshot taken at or after the newest snapshot's time minus D. The
//!   duration counts back from the newest snapshot, not from the present, so a machine that stopped
//!   backing up does not lose its history by waiting.
//! - `within_hourly` … `within_yearly` D keep the newest snapshot of every period (no count limit)
//!   among the snapshots that `within` D would keep.
//! - `tags`: a snapshot carrying a listed tag is kept. A list item may name several tags separated
//!   by commas (`a,b`); the snapshot must then carry all of them.
//! - The rules are combined with "or": a snapshot is kept when any rule keeps it, and its decision
//!   lists every rule that did.
//!
//! Deliberate choices, where restic's documentation leaves room or where this module differs:
//!
//! - **Snapshots from the future.** A snapshot whose time is later than the `now` passed to
//!   [`apply_policy`] (a host with a wrong clock, an imported snapshot) is always kept, with reason
//!   [`KeepReason::InFuture`], and is otherwise left out of the evaluation: it fills no slot of
//!   `last` or of a counted period rule, it is not the "newest snapshot" that `within` rules count
//!   back from, and it is not the "oldest snapshot" of the fill-up rule. A wrong clock must never
//!   cost real backups: a single snapshot dated 2099 would otherwise make every genuine snapshot
//!   fall outside `within 30d`, and would take one of the `last` slots. Once the clock catches up,
//!   the snapshot is evaluated like any other. `now` is used for nothing else.
//! - **Local time.** Periods use the local time recorded in each snapshot (its own UTC offset), so
//!   "the backup of 23:30" belongs to the day its host saw, whatever the offset of the machine that
//!   runs the policy. Across a daylight-saving change or a journey the local times of successive
//!   snapshots need not be in order; snapshots are still visited in the order of the instants they
//!   record, and each period is counted once, the first time it is met (restic compares each
//!   snapshot only with the one before it, which counts a period twice when local times go
//!   backwards; in the common case both agree).
//! - **Boundaries.** `within` is inclusive: a snapshot exactly D before the newest one is kept.
//! - **Zero.** A count of 0 and a duration of zero both mean "rule not used". There is no separate
//!   "unlimited" count; `u32::MAX` serves.
//! - **The fill-up rule** applies to the counted rules only; `within_*` rules have no count to
//!   fill.
//! - **Empty tag items.** A `tags` item that names no tag at all (empty, or only commas) is met by
//!   every snapshot, so it keeps everything: an odd policy errs on the side of keeping.
//! - **Order.** Decisions come newest first; snapshots with the same time are ordered by id.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, FixedOffset, Months, NaiveDateTime, TimeDelta, Timelike, Utc,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::SnapshotId;
use crate::snapshot::{Snapshot, SnapshotEntry};

/// A length of calendar time: years, months, days and hours, written like `1y5m7d2h`.
///
/// Years and months are calendar units (a month back from March 31st is the last day of
/// February), days are calendar days, hours are 3600 seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CalendarDuration {
    /// Whole years.
    pub years: u32,
    /// Whole months.
    pub months: u32,
    /// Whole days.
    pub days: u32,
    /// Whole hours.
    pub hours: u32,
}

impl CalendarDuration {
    /// True when every component is zero.
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// `t` minus this duration: years and months first (keeping the day of the month, or using the
    /// month's last day when it is shorter), then days, then hours, in `t`'s own UTC offset.
    ///
    /// A result before the earliest representable time saturates to that time (with a zero
    /// offset), which is earlier than any snapshot.
    pub fn subtract_from(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        self.checked_subtract_from(t)
            .unwrap_or_else(|| DateTime::<Utc>::MIN_UTC.fixed_offset())
    }

    fn checked_subtract_from(&self, t: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let mut t = t;
        if months > 0 {
            t = t.checked_sub_months(Months::new(months))?;
        }
        if self.days > 0 {
            t = t.checked_sub_days(Days::new(u64::from(self.days)))?;
        }
        if self.hours > 0 {
            t = t.checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)?;
        }
        Some(t)
    }
}

/// Why a string is not a duration such as `1y5m7d2h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// The string is empty.
    #[error("empty duration: expected numbers with units y, m, d, h, such as 7d or 1y5m7d2h")]
    Empty,
    /// A character that is neither a digit nor a unit.
    #[error(
        "invalid duration {input:?}: unexpected {found:?}; use numbers with the units y (years), \
         m (months), d (days), h (hours), such as 1y5m7d2h"
    )]
    Unexpected {
        /// The whole string.
        input: String,
        /// The offending character.
        found: char,
    },
    /// A unit letter with no number before it.
    #[error("invalid duration {input:?}: no number before unit '{unit}'")]
    MissingNumber {
        /// The whole string.
        input: String,
        /// The unit letter.
        unit: char,
    },
    /// The string ends with a number that has no unit.
    #[error("invalid duration {input:?}: the last number has no unit (y, m, d or h)")]
    MissingUnit {
        /// The whole string.
        input: String,
    },
    /// A unit appears twice, or after a smaller unit.
    #[error(
        "invalid duration {input:?}: unit '{unit}' repeated or out of order; write years, months, \
         days, hours in that order, each at most once"
    )]
    Misordered {
        /// The whole string.
        input: String,
        /// The unit letter.
        unit: char,
    },
    /// A number does not fit in 32 bits.
    #[error("invalid duration {input:?}: number too large")]
    TooLarge {
        /// The whole string.
        input: String,
    },
}

impl FromStr for CalendarDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseDurationError::Empty);
        }
        let input = || s.to_string();
        let mut out = CalendarDuration::default();
        // Index (0 = years … 3 = hours) of the largest unit still allowed.
        let mut next_unit = 0usize;
        let mut number: Option<u32> = None;
        for c in s.chars() {
            if let Some(digit) = c.to_digit(10) {
                let n = number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or_else(|| ParseDurationError::TooLarge { input: input() })?;
                number = Some(n);
                continue;
            }
            let unit = match c {
                'y' => 0,
                'm' => 1,
                'd' => 2,
                'h' => 3,
                _ => {
                    return Err(ParseDurationError::Unexpected {
                        input: input(),
                        found: c,
                    })
                }
            };
            let n = number.take().ok_or_else(|| ParseDurationError::MissingNumber {
                input: input(),
                unit: c,
            })?;
            if unit < next_unit {
                return Err(ParseDurationError::Misordered {
                    input: input(),
                    unit: c,
                });
            }
            next_unit = unit + 1;
            match unit {
                0 => out.years = n,
                1 => out.months = n,
                2 => out.days = n,
                _ => out.hours = n,
            }
        }
        if number.is_some() {
            return Err(ParseDurationError::MissingUnit { input: input() });
        }
        Ok(out)
    }
}

impl fmt::Display for CalendarDuration {
    /// The form [`FromStr`] reads: non-zero components only (`1y5m7d2h`, `2d`), `0h` when zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for CalendarDuration {
    /// Serialized as its text form, such as `"1y5m7d2h"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalendarDuration {
    /// Read from its text form, such as `"1y5m7d2h"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What to keep. Rules are combined with "or"; a count of 0, a duration of `None` (or zero) and an
/// empty tag list leave a rule unused. See the [module documentation](self) for the exact rules.
#[derive(Default, Clone, Debug, PartialEq, Serialize)]
pub struct KeepPolicy {
    /// Keep the newest N snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    pub hourly: u32,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    pub daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one.
    pub weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    pub monthly: u32,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    pub yearly: u32,
    /// Keep every snapshot within this duration of the newest snapshot.
    pub within: Option<CalendarDuration>,
    /// Keep the newest snapshot of every hour within this duration of the newest snapshot.
    pub within_hourly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every day within this duration of the newest snapshot.
    pub within_daily: Option<CalendarDuration>,
    /// Keep the newest snapshot of every ISO week within this duration of the newest snapshot.
    pub within_weekly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every month within this duration of the newest snapshot.
    pub within_monthly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every year within this duration of the newest snapshot.
    pub within_yearly: Option<CalendarDuration>,
    /// Keep snapshots carrying one of these tags; an item `a,b` requires both `a` and `b`.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// True when no rule is used: such a policy keeps everything and must not be used to remove
    /// snapshots.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        counts.iter().all(|&n| n == 0)
            && self.durations().iter().all(|d| active(d).is_none())
            && self.tags.is_empty()
    }

    fn durations(&self) -> [Option<CalendarDuration>; 6] {
        [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ]
    }
}

/// A duration rule in use: set and not zero.
fn active(d: &Option<CalendarDuration>) -> Option<CalendarDuration> {
    d.filter(|d| !d.is_zero())
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum KeepReason {
    /// One of the `last` newest snapshots.
    Last,
    /// The newest snapshot of one of the `hourly` most recent hours.
    Hourly,
    /// The newest snapshot of one of the `daily` most recent days.
    Daily,
    /// The newest snapshot of one of the `weekly` most recent weeks.
    Weekly,
    /// The newest snapshot of one of the `monthly` most recent months.
    Monthly,
    /// The newest snapshot of one of the `yearly` most recent years.
    Yearly,
    /// Within this duration of the newest snapshot.
    Within(CalendarDuration),
    /// The newest snapshot of its hour, within this duration of the newest snapshot.
    WithinHourly(CalendarDuration),
    /// The newest snapshot of its day, within this duration of the newest snapshot.
    WithinDaily(CalendarDuration),
    /// The newest snapshot of its week, within this duration of the newest snapshot.
    WithinWeekly(CalendarDuration),
    /// The newest snapshot of its month, within this duration of the newest snapshot.
    WithinMonthly(CalendarDuration),
    /// The newest snapshot of its year, within this duration of the newest snapshot.
    WithinYearly(CalendarDuration),
    /// Carries the tag (or every tag of the comma-separated set) of this policy item.
    Tag(String),
    /// The oldest snapshot, kept because `hourly` found fewer hours than asked for.
    OldestHourly,
    /// The oldest snapshot, kept because `daily` found fewer days than asked for.
    OldestDaily,
    /// The oldest snapshot, kept because `weekly` found fewer weeks than asked for.
    OldestWeekly,
    /// The oldest snapshot, kept because `monthly` found fewer months than asked for.
    OldestMonthly,
    /// The oldest snapshot, kept because `yearly` found fewer years than asked for.
    OldestYearly,
    /// Dated later than the evaluation time; always kept (see the module documentation).
    InFuture,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last => f.write_str("last snapshot"),
            KeepReason::Hourly => f.write_str("hourly snapshot"),
            KeepReason::Daily => f.write_str("daily snapshot"),
            KeepReason::Weekly => f.write_str("weekly snapshot"),
            KeepReason::Monthly => f.write_str("monthly snapshot"),
            KeepReason::Yearly => f.write_str("yearly snapshot"),
            KeepReason::Within(d) => write!(f, "within {d}"),
            KeepReason::WithinHourly(d) => write!(f, "hourly within {d}"),
            KeepReason::WithinDaily(d) => write!(f, "daily within {d}"),
            KeepReason::WithinWeekly(d) => write!(f, "weekly within {d}"),
            KeepReason::WithinMonthly(d) => write!(f, "monthly within {d}"),
            KeepReason::WithinYearly(d) => write!(f, "yearly within {d}"),
            KeepReason::Tag(t) => write!(f, "tag {t}"),
            KeepReason::OldestHourly => f.write_str("oldest hourly snapshot"),
            KeepReason::OldestDaily => f.write_str("oldest daily snapshot"),
            KeepReason::OldestWeekly => f.write_str("oldest weekly snapshot"),
            KeepReason::OldestMonthly => f.write_str("oldest monthly snapshot"),
            KeepReason::OldestYearly => f.write_str("oldest yearly snapshot"),
            KeepReason::InFuture => f.write_str("dated in the future"),
        }
    }
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Whether to keep it.
    pub keep: bool,
    /// Every rule that keeps it; empty when it is to be removed (or when the policy is empty).
    pub reasons: Vec<KeepReason>,
}

/// A calendar period kind.
#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// Identifies the period of this kind that contains local time `t`.
    fn key(self, t: NaiveDateTime) -> (i32, u32, u32) {
        match self {
            Period::Hour => (t.year(), t.ordinal(), t.hour()),
            Period::Day => (t.year(), t.ordinal(), 0),
            Period::Week => {
                let w = t.iso_week();
                (w.year(), w.week(), 0)
            }
            Period::Month => (t.year(), t.month(), 0),
            Period::Year => (t.year(), 0, 0),
        }
    }
}

/// The wall-clock time recorded in `t` (falls back to UTC in the unrepresentable corner case).
fn local_time(t: DateTime<FixedOffset>) -> NaiveDateTime {
    let utc = t.naive_utc();
    utc.checked_add_offset(*t.offset()).unwrap_or(utc)
}

/// True when the snapshot carries every tag named in `item` (comma-separated).
fn has_tags(snapshot: &Snapshot, item: &str) -> bool {
    item.split(',')
        .filter(|t| !t.is_empty())
        .all(|t| snapshot.tags.iter().any(|have| have == t))
}

/// Applies `policy` to one group of snapshots and returns one decision per snapshot, newest first
/// (by time, then by id).
///
/// `now` is the time of the evaluation. It is used for one thing only: snapshots dated after it
/// are kept unconditionally and take no part in the other rules (see the module documentation).
pub fn apply_policy(
    group: &[SnapshotEntry],
    policy: &KeepPolicy,
    now: DateTime<FixedOffset>,
) -> Vec<Decision> {
    let mut order: Vec<&SnapshotEntry> = group.iter().collect();
    order.sort_by(|a, b| {
        b.snapshot
            .time
            .cmp(&a.snapshot.time)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut decisions: Vec<Decision> = order
        .iter()
        .map(|e| Decision {
            id: e.id,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    if policy.is_empty() {
        for d in &mut decisions {
            d.keep = true;
        }
        return decisions;
    }

    // Positions (in `order`) of the snapshots the rules look at: all but those from the future.
    let mut evaluated: Vec<usize> = Vec::with_capacity(order.len());
    for (i, entry) in order.iter().enumerate() {
        if entry.snapshot.time > now {
            decisions[i].reasons.push(KeepReason::InFuture);
        } else {
            evaluated.push(i);
        }
    }
    let time = |i: usize| order[i].snapshot.time;

    for &i in evaluated.iter().take(policy.last as usize) {
        decisions[i].reasons.push(KeepReason::Last);
    }

    let counted = [
        (Period::Hour, policy.hourly, KeepReason::Hourly, KeepReason::OldestHourly),
        (Period::Day, policy.daily, KeepReason::Daily, KeepReason::OldestDaily),
        (Period::Week, policy.weekly, KeepReason::Weekly, KeepReason::OldestWeekly),
        (Period::Month, policy.monthly, KeepReason::Monthly, KeepReason::OldestMonthly),
        (Period::Year, policy.yearly, KeepReason::Yearly, KeepReason::OldestYearly),
    ];
    for (period, count, reason, oldest_reason) in counted {
        if count == 0 {
            continue;
        }
        let count = count as usize;
        let mut seen = HashSet::new();
        for &i in &evaluated {
            if seen.len() >= count {
                break;
            }
            if seen.insert(period.key(local_time(time(i)))) {
                decisions[i].reasons.push(reason.clone());
            }
        }
        if seen.len() < count {
            if let Some(&oldest) = evaluated.last() {
                if !decisions[oldest].reasons.contains(&reason) {
                    decisions[oldest].reasons.push(oldest_reason);
                }
            }
        }
    }

    if let Some(&newest) = evaluated.first() {
        let newest = time(newest);
        if let Some(d) = active(&policy.within) {
            let cutoff = d.subtract_from(newest);
            for &i in evaluated.iter().take_while(|&&i| time(i) >= cutoff) {
                decisions[i].reasons.push(KeepReason::Within(d));
            }
        }
        let within_periods: [(Period, _, fn(CalendarDuration) -> KeepReason); 5] = [
            (Period::Hour, policy.within_hourly, KeepReason::WithinHourly),
            (Period::Day, policy.within_daily, KeepReason::WithinDaily),
            (Period::Week, policy.within_weekly, KeepReason::WithinWeekly),
            (Period::Month, policy.within_monthly, KeepReason::WithinMonthly),
            (Period::Year, policy.within_yearly, KeepReason::WithinYearly),
        ];
        for (period, duration, reason) in within_periods {
            let Some(d) = active(&duration) else {
                continue;
            };
            let cutoff = d.subtract_from(newest);
            let mut seen = HashSet::new();
            for &i in evaluated.iter().take_while(|&&i| time(i) >= cutoff) {
                if seen.insert(period.key(local_time(time(i)))) {
                    decisions[i].reasons.push(reason(d));
                }
            }
        }
    }

    for &i in &evaluated {
        for item in &policy.tags {
            if has_tags(&order[i].snapshot, item) {
                decisions[i].reasons.push(KeepReason::Tag(item.clone()));
            }
        }
    }

    for d in &mut decisions {
        d.keep = !d.reasons.is_empty();
    }
    decisions
}

/// Which snapshot fields split snapshots into groups that a policy is applied to separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the set of backed-up paths.
    pub paths: bool,
    /// Group by the set of tags.
    pub tags: bool,
}

/// A `--group-by` word that is not `host`, `paths` or `tags`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown group-by field {0:?}: use host, paths and tags, separated by commas, or nothing")]
pub struct ParseGroupByError(pub String);

impl FromStr for GroupBy {
    type Err = ParseGroupByError;

    /// Reads a comma-separated list of `host`, `paths`, `tags` (in any order); the empty string
    /// groups nothing apart.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut by = GroupBy::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "host" => by.host = true,
                "paths" => by.paths = true,
                "tags" => by.tags = true,
                _ => return Err(ParseGroupByError(word.to_string())),
            }
        }
        Ok(by)
    }
}

impl fmt::Display for GroupBy {
    /// The form [`FromStr`] reads, such as `host,paths` (empty when grouping by nothing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        f.write_str(&words.join(","))
    }
}

/// What the snapshots of one group share; a field is `None` when snapshots are not grouped by it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// The host name.
    pub hostname: Option<String>,
    /// The backed-up paths (invalid UTF-8 shown with replacement characters), sorted.
    pub paths: Option<Vec<String>>,
    /// The tags, sorted, without duplicates.
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    /// The key of `snapshot` when grouping `by`.
    pub fn of(snapshot: &Snapshot, by: GroupBy) -> Self {
        GroupKey {
            hostname: by.host.then(|| snapshot.hostname.clone()),
            paths: by.paths.then(|| {
                let mut paths: Vec<String> =
                    snapshot.paths.iter().map(|p| p.lossy().into_owned()).collect();
                paths.sort();
                paths
            }),
            tags: by.tags.then(|| {
                let mut tags = snapshot.tags.clone();
                tags.sort();
                tags.dedup();
                tags
            }),
        }
    }
}

impl fmt::Display for GroupKey {
    /// Such as `host [laptop], paths [/etc, /home]`; `all snapshots` when nothing is grouped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.hostname {
            parts.push(format!("host [{h}]"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Splits snapshots into groups by the fields `by` names. Groups come sorted by key; within a
/// group, snapshots keep their input order.
pub fn group_snapshots(
    snaps: Vec<SnapshotEntry>,
    by: GroupBy,
) -> Vec<(GroupKey, Vec<SnapshotEntry>)> {
    let mut groups: BTreeMap<GroupKey, Vec<SnapshotEntry>> = BTreeMap::new();
    for entry in snaps {
        groups
            .entry(GroupKey::of(&entry.snapshot, by))
            .or_default()
            .push(entry);
    }
    groups.into_iter().collect()
}
