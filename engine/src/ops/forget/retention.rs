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
//!   Going from the newest snapshot to the oldest, the newest snapshot of each period is kept,
//!   until N periods have been counted. Periods without snapshots are skipped, not counted.
//! - When one of these counted rules finds fewer than N periods, the oldest snapshot of the group
//!   is kept as well (reason `Oldest…`), unless that rule already keeps it.
//! - `within` D keeps every snapshot taken at or after the newest snapshot's time minus D. The
//!   duration counts back from the newest snapshot, not from the present, so a machine that stopped
//!   backing up does not lose its history by waiting.
//! - `within_hourly` … `within_yearly` D keep the newest snapshot of every period (no count
//!   limit) among the snapshots that `within` D would keep.
//! - `tags`: a snapshot carrying a listed tag is kept. A list item may name several tags separated
//!   by commas (`a,b`); the snapshot must then carry all of them. An item that names no tag (`""`)
//!   keeps the snapshots that have no tags.
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
//!   the snapshot is evaluated like any other. `now` is used for nothing else. (restic documents
//!   the same for its duration rules only: future snapshots are never removed and are not the
//!   latest snapshot `within` counts from.)
//! - **Local time.** Periods use the local time recorded in each snapshot (its own UTC offset), so
//!   "the backup of 23:30" belongs to the day its host saw, whatever the offset of the machine that
//!   runs the policy. Across a daylight-saving change or a journey the local times of successive
//!   snapshots need not be in order; snapshots are still visited in the order of the instants they
//!   record, and each period is counted once, the first time it is met (restic compares each
//!   snapshot only with the one before it, which counts a period twice when local times go
//!   backwards; in the common case both agree).
//! - **Boundaries.** `within` is inclusive: a snapshot exactly D before the newest one is kept.
//!   Going back a month from the 31st lands on the last day of the shorter month (chrono's
//!   calendar arithmetic), never in the month after.
//! - **Zero.** A count of 0 and a duration of zero both mean "rule not used". There is no separate
//!   "unlimited" count; `u32::MAX` serves.
//! - **The fill-up rule** applies to the counted rules only; `within_*` rules have no count to
//!   fill. (restic's documentation words it for the `within_*` rules too, keeping the oldest
//!   snapshot when the whole history is shorter than the duration; this module does not.)
//! - **Order.** Decisions come newest first; snapshots with the same time are ordered by id.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, FixedOffset, Months, NaiveDateTime, TimeDelta, Timelike, Utc,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::id::SnapshotId;

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
            let n = number
                .take()
                .ok_or_else(|| ParseDurationError::MissingNumber {
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
/// empty tag list leave a rule unused. See the [module documentation](crate::ops::forget::retention) for the
/// exact rules.
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
    /// Keep snapshots carrying one of these tags; an item `a,b` requires both `a` and `b`, an empty
    /// item keeps untagged snapshots.
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
    /// Carries the tag (or every tag of the comma-separated set) of this policy item; for an item
    /// naming no tag, carries no tags.
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
            KeepReason::Tag(t) if tag_names(t).next().is_none() => f.write_str("untagged"),
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

/// Builds the reason of a `within_*` period rule.
type WithinReason = fn(CalendarDuration) -> KeepReason;

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

/// The tags named by a `tags` item: comma-separated, empty names ignored.
fn tag_names(item: &str) -> impl Iterator<Item = &str> {
    item.split(',').filter(|t| !t.is_empty())
}

/// True when the snapshot carries every tag named in `item`, or, when `item` names no tag, when
/// the snapshot has no tags.
fn has_tags(snapshot: &Snapshot, item: &str) -> bool {
    if tag_names(item).next().is_none() {
        return snapshot.tags.iter().all(|t| t.is_empty());
    }
    tag_names(item).all(|t| snapshot.tags.iter().any(|have| have == t))
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
    for &i in evaluated.iter().take(policy.last as usize) {
        decisions[i].reasons.push(KeepReason::Last);
    }
    keep_counted(policy, &order, &evaluated, &mut decisions);
    keep_within(policy, &order, &evaluated, &mut decisions);
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

/// The counted period rules (`hourly` … `yearly` N), with the fill-up rule.
fn keep_counted(
    policy: &KeepPolicy,
    order: &[&SnapshotEntry],
    evaluated: &[usize],
    decisions: &mut [Decision],
) {
    let time = |i: usize| order[i].snapshot.time;
    let counted = [
        (
            Period::Hour,
            policy.hourly,
            KeepReason::Hourly,
            KeepReason::OldestHourly,
        ),
        (
            Period::Day,
            policy.daily,
            KeepReason::Daily,
            KeepReason::OldestDaily,
        ),
        (
            Period::Week,
            policy.weekly,
            KeepReason::Weekly,
            KeepReason::OldestWeekly,
        ),
        (
            Period::Month,
            policy.monthly,
            KeepReason::Monthly,
            KeepReason::OldestMonthly,
        ),
        (
            Period::Year,
            policy.yearly,
            KeepReason::Yearly,
            KeepReason::OldestYearly,
        ),
    ];
    for (period, count, reason, oldest_reason) in counted {
        if count == 0 {
            continue;
        }
        let count = count as usize;
        let mut seen = HashSet::new();
        for &i in evaluated {
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
}

/// `within` D and the `within_hourly` … `within_yearly` D rules, counted back from the newest
/// evaluated snapshot.
fn keep_within(
    policy: &KeepPolicy,
    order: &[&SnapshotEntry],
    evaluated: &[usize],
    decisions: &mut [Decision],
) {
    let time = |i: usize| order[i].snapshot.time;
    if let Some(&newest) = evaluated.first() {
        let newest = time(newest);
        if let Some(d) = active(&policy.within) {
            let cutoff = d.subtract_from(newest);
            for &i in evaluated.iter().take_while(|&&i| time(i) >= cutoff) {
                decisions[i].reasons.push(KeepReason::Within(d));
            }
        }
        let within_periods: [(Period, _, WithinReason); 5] = [
            (Period::Hour, policy.within_hourly, KeepReason::WithinHourly),
            (Period::Day, policy.within_daily, KeepReason::WithinDaily),
            (Period::Week, policy.within_weekly, KeepReason::WithinWeekly),
            (
                Period::Month,
                policy.within_monthly,
                KeepReason::WithinMonthly,
            ),
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
                let mut paths: Vec<String> = snapshot
                    .paths
                    .iter()
                    .map(|p| p.lossy().into_owned())
                    .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::ByteString;
    use crate::id::BlobId;
    use proptest::prelude::*;
    use KeepReason::*;

    /// A "now" later than every test snapshot unless a case says otherwise.
    const LATER: &str = "2050-01-01T00:00:00Z";

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn dur(s: &str) -> CalendarDuration {
        s.parse().unwrap()
    }

    fn entry(
        n: u8,
        time: DateTime<FixedOffset>,
        host: &str,
        paths: &[&str],
        tags: &[&str],
    ) -> SnapshotEntry {
        SnapshotEntry {
            id: SnapshotId::from_bytes([n; 32]),
            snapshot: Snapshot {
                time,
                hostname: host.to_string(),
                username: "user".to_string(),
                uid: 1000,
                gid: 1000,
                paths: paths
                    .iter()
                    .map(|p| ByteString(p.as_bytes().to_vec()))
                    .collect(),
                tags: tags.iter().map(|s| s.to_string()).collect(),
                tree: BlobId::default(),
                parent: None,
                original: None,
                copied_tree: None,
                excludes: Vec::new(),
                program_version: "floe test".to_string(),
                summary: None,
            },
        }
    }

    /// Snapshot number `n` (its id is 32 bytes of `n`) taken at `time` (RFC 3339).
    fn s(n: u8, time: &str) -> SnapshotEntry {
        entry(n, t(time), "host", &["/data"], &[])
    }

    /// The same, with tags.
    fn st(n: u8, time: &str, tags: &[&str]) -> SnapshotEntry {
        entry(n, t(time), "host", &["/data"], tags)
    }

    /// Every snapshot, newest first, as (number, reasons); no reasons means "removed".
    fn outcome(decisions: &[Decision]) -> Vec<(u8, Vec<KeepReason>)> {
        decisions
            .iter()
            .map(|d| {
                assert_eq!(d.keep, !d.reasons.is_empty(), "keep flag of {:?}", d.id);
                (d.id.as_bytes()[0], d.reasons.clone())
            })
            .collect()
    }

    /// A policy from `rule=value` words: `last=2 daily=7 within=30d tag=a,b`.
    fn pol(spec: &str) -> KeepPolicy {
        let mut p = KeepPolicy::default();
        for word in spec.split_whitespace() {
            let (rule, value) = word.split_once('=').unwrap();
            let n = || value.parse::<u32>().unwrap();
            let d = || Some(dur(value));
            match rule {
                "last" => p.last = n(),
                "hourly" => p.hourly = n(),
                "daily" => p.daily = n(),
                "weekly" => p.weekly = n(),
                "monthly" => p.monthly = n(),
                "yearly" => p.yearly = n(),
                "within" => p.within = d(),
                "within_hourly" => p.within_hourly = d(),
                "within_daily" => p.within_daily = d(),
                "within_weekly" => p.within_weekly = d(),
                "within_monthly" => p.within_monthly = d(),
                "within_yearly" => p.within_yearly = d(),
                "tag" => p.tags.push(value.to_string()),
                _ => panic!("unknown rule {rule}"),
            }
        }
        p
    }

    struct Case {
        name: &'static str,
        snaps: Vec<SnapshotEntry>,
        policy: KeepPolicy,
        now: &'static str,
        /// Every snapshot, newest first, with the reasons it is kept for (empty: removed).
        expect: Vec<(u8, Vec<KeepReason>)>,
    }

    /// Six snapshots over four months and two years (all at 12:00 UTC but one).
    fn month_snaps() -> Vec<SnapshotEntry> {
        vec![
            s(1, "2020-11-15T12:00:00Z"),
            s(2, "2020-12-01T12:00:00Z"),
            s(3, "2020-12-31T23:00:00Z"),
            s(4, "2021-01-15T12:00:00Z"),
            s(5, "2021-01-20T12:00:00Z"),
            s(6, "2021-02-01T12:00:00Z"),
        ]
    }

    /// Around New Year 2021. 2020 has 53 ISO weeks: week 53 of 2020 runs from Monday 2020-12-28 to
    /// Sunday 2021-01-03.
    fn new_year_snaps() -> Vec<SnapshotEntry> {
        vec![
            s(1, "2020-12-27T12:00:00Z"), // Sunday, 2020-W52
            s(2, "2020-12-28T12:00:00Z"), // Monday, 2020-W53
            s(3, "2020-12-31T12:00:00Z"), // 2020-W53
            s(4, "2021-01-01T12:00:00Z"), // 2020-W53, although the calendar year is 2021
            s(5, "2021-01-03T12:00:00Z"), // Sunday, 2020-W53
            s(6, "2021-01-04T12:00:00Z"), // Monday, 2021-W01
        ]
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "last keeps the N newest, whatever the input order",
                snaps: vec![
                    s(2, "2021-01-02T10:00:00Z"),
                    s(4, "2021-01-04T10:00:00Z"),
                    s(1, "2021-01-01T10:00:00Z"),
                    s(3, "2021-01-03T10:00:00Z"),
                ],
                policy: pol("last=2"),
                now: LATER,
                expect: vec![(4, vec![Last]), (3, vec![Last]), (2, vec![]), (1, vec![])],
            },
            Case {
                name: "snapshots with equal times are ordered by id",
                snaps: vec![
                    s(6, "2021-01-01T10:00:00Z"),
                    s(5, "2021-01-01T10:00:00Z"),
                    s(4, "2021-01-01T09:00:00Z"),
                ],
                policy: pol("last=1"),
                now: LATER,
                expect: vec![(5, vec![Last]), (6, vec![]), (4, vec![])],
            },
            Case {
                name: "rules asking for more than there is keep everything, no oldest reason",
                snaps: vec![
                    s(1, "2021-01-01T10:00:00Z"),
                    s(2, "2021-01-02T10:00:00Z"),
                    s(3, "2021-01-03T10:00:00Z"),
                ],
                policy: pol("last=10 daily=10"),
                now: LATER,
                expect: vec![
                    (3, vec![Last, Daily]),
                    (2, vec![Last, Daily]),
                    (1, vec![Last, Daily]),
                ],
            },
            Case {
                name: "hourly keeps the newest of each hour",
                snaps: vec![
                    s(1, "2021-05-05T10:05:00Z"),
                    s(2, "2021-05-05T10:40:00Z"),
                    s(3, "2021-05-05T11:10:00Z"),
                    s(4, "2021-05-05T13:00:00Z"),
                ],
                policy: pol("hourly=3"),
                now: LATER,
                expect: vec![
                    (4, vec![Hourly]),
                    (3, vec![Hourly]),
                    (2, vec![Hourly]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "daily keeps the newest of each day; days without snapshots do not count",
                snaps: vec![
                    s(1, "2021-05-01T08:00:00Z"),
                    s(2, "2021-05-01T20:00:00Z"),
                    s(3, "2021-05-02T09:00:00Z"),
                    s(4, "2021-05-05T07:00:00Z"),
                    s(5, "2021-05-05T22:00:00Z"),
                ],
                policy: pol("daily=2"),
                now: LATER,
                expect: vec![
                    (5, vec![Daily]),
                    (4, vec![]),
                    (3, vec![Daily]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "weekly: ISO week 53 of 2020 spanning New Year is one week",
                snaps: new_year_snaps(),
                policy: pol("weekly=2"),
                now: LATER,
                expect: vec![
                    (6, vec![Weekly]),
                    (5, vec![Weekly]),
                    (4, vec![]),
                    (3, vec![]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                // Were weeks keyed by calendar year and ISO week number, 2021-01-01 would fall in
                // a "2021-W53" apart from 2020-W53, and snapshot 3 would be kept instead of 1.
                name: "weekly: three weeks around New Year",
                snaps: new_year_snaps(),
                policy: pol("weekly=3"),
                now: LATER,
                expect: vec![
                    (6, vec![Weekly]),
                    (5, vec![Weekly]),
                    (4, vec![]),
                    (3, vec![]),
                    (2, vec![]),
                    (1, vec![Weekly]),
                ],
            },
            Case {
                // Europe, spring 2021: clocks went from 02:00 +01:00 to 03:00 +02:00 on March 28.
                // Days are those of the recorded local time. Snapshot 5 is 22:30 UTC on the 28th
                // but 00:30 local on the 29th, so it is the 29th's. In UTC days, 2 to 5 would
                // all be the 28th's and 4 would not be kept.
                name: "daily across the spring daylight-saving change uses recorded local days",
                snaps: vec![
                    s(1, "2021-03-27T23:30:00+01:00"),
                    s(2, "2021-03-28T01:30:00+01:00"),
                    s(3, "2021-03-28T03:30:00+02:00"), // one hour after 2 in real time
                    s(4, "2021-03-28T23:30:00+02:00"),
                    s(5, "2021-03-29T00:30:00+02:00"),
                ],
                policy: pol("daily=3"),
                now: LATER,
                expect: vec![
                    (5, vec![Daily]),
                    (4, vec![Daily]),
                    (3, vec![]),
                    (2, vec![]),
                    (1, vec![Daily]),
                ],
            },
            Case {
                // Europe, autumn 2021: clocks went from 03:00 +02:00 back to 02:00 +01:00 on
                // October 31, so local hour 2 happened twice. Snapshots 2 and 3 are an hour apart
                // in real time but both in local hour 02, one hour bucket: only the newer is kept.
                name: "hourly across the autumn daylight-saving change: the repeated hour is one",
                snaps: vec![
                    s(1, "2021-10-31T01:30:00+02:00"),
                    s(2, "2021-10-31T02:30:00+02:00"),
                    s(3, "2021-10-31T02:30:00+01:00"),
                    s(4, "2021-10-31T03:15:00+01:00"),
                ],
                policy: pol("hourly=3"),
                now: LATER,
                expect: vec![
                    (4, vec![Hourly]),
                    (3, vec![Hourly]),
                    (2, vec![]),
                    (1, vec![Hourly]),
                ],
            },
            Case {
                // A travelling laptop. Snapshot 1, 05:00 at +01:00, is 04:00 UTC on June 16 and
                // belongs to June 16 (local). Snapshot 2, 23:30 at -05:00, is 04:30 UTC the same
                // UTC day, later in real time, but belongs to June 15 (local). Walking newest
                // first: 3 (16th), 2 (15th), 1 (16th again: already counted), 0 (14th). The 16th
                // is one day, counted once, so three days reach back to the 14th.
                name: "daily with two UTC offsets: local days, each counted once",
                snaps: vec![
                    s(0, "2021-06-14T12:00:00+01:00"),
                    s(1, "2021-06-16T05:00:00+01:00"),
                    s(2, "2021-06-15T23:30:00-05:00"),
                    s(3, "2021-06-16T20:00:00+01:00"),
                ],
                policy: pol("daily=3"),
                now: LATER,
                expect: vec![
                    (3, vec![Daily]),
                    (2, vec![Daily]),
                    (1, vec![]),
                    (0, vec![Daily]),
                ],
            },
            Case {
                // The same two snapshots alone: the newest in real time (2, local June 15) is the
                // one kept, although 1 carries the later local date.
                name: "daily with two UTC offsets: the newest instant wins",
                snaps: vec![
                    s(1, "2021-06-16T05:00:00+01:00"),
                    s(2, "2021-06-15T23:30:00-05:00"),
                ],
                policy: pol("daily=1"),
                now: LATER,
                expect: vec![(2, vec![Daily]), (1, vec![])],
            },
            Case {
                name: "monthly",
                snaps: month_snaps(),
                policy: pol("monthly=3"),
                now: LATER,
                expect: vec![
                    (6, vec![Monthly]),
                    (5, vec![Monthly]),
                    (4, vec![]),
                    (3, vec![Monthly]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "yearly",
                snaps: month_snaps(),
                policy: pol("yearly=2"),
                now: LATER,
                expect: vec![
                    (6, vec![Yearly]),
                    (5, vec![]),
                    (4, vec![]),
                    (3, vec![Yearly]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "rules are ORed and every reason is listed",
                snaps: month_snaps(),
                policy: pol("last=1 monthly=3 yearly=2"),
                now: LATER,
                expect: vec![
                    (6, vec![Last, Monthly, Yearly]),
                    (5, vec![Monthly]),
                    (4, vec![]),
                    (3, vec![Monthly, Yearly]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "ORed reasons with within and tags",
                snaps: vec![
                    st(1, "2021-01-01T10:00:00Z", &["x"]),
                    st(2, "2021-01-02T10:00:00Z", &["x"]),
                    s(3, "2021-01-02T12:00:00Z"),
                ],
                policy: pol("last=1 daily=2 within=1d tag=x"),
                now: LATER,
                expect: vec![
                    (3, vec![Last, Daily, Within(dur("1d"))]),
                    (2, vec![Within(dur("1d")), Tag("x".into())]),
                    (1, vec![Daily, Tag("x".into())]),
                ],
            },
            Case {
                // Two weeks, two months, one year. weekly 4 is short but already keeps the
                // oldest; monthly 2 is short and adds it; yearly 1 is filled.
                name: "a rule that cannot be filled keeps the oldest snapshot",
                snaps: vec![
                    s(1, "2021-03-01T12:00:00Z"), // Monday, week 9, March
                    s(2, "2021-03-08T12:00:00Z"), // Monday, week 10
                    s(3, "2021-03-09T12:00:00Z"),
                ],
                policy: pol("weekly=4 monthly=2 yearly=1"),
                now: LATER,
                expect: vec![
                    (3, vec![Weekly, Monthly, Yearly]),
                    (2, vec![]),
                    (1, vec![Weekly, OldestMonthly]),
                ],
            },
            Case {
                name: "several unfilled rules each add their oldest reason",
                snaps: vec![
                    s(1, "2021-03-01T10:00:00Z"),
                    s(2, "2021-03-01T10:30:00Z"),
                    s(3, "2021-03-01T11:00:00Z"),
                ],
                policy: pol("hourly=5 daily=3"),
                now: LATER,
                expect: vec![
                    (3, vec![Hourly, Daily]),
                    (2, vec![Hourly]),
                    (1, vec![OldestHourly, OldestDaily]),
                ],
            },
            Case {
                // Counted from `now` (2050) nothing would be within two days. Snapshot 3 lies
                // exactly two days before the newest: the bound is inclusive.
                name: "within counts back from the newest snapshot, not from now",
                snaps: vec![
                    s(1, "2021-01-01T00:00:00Z"),
                    s(2, "2021-01-05T00:00:00Z"),
                    s(3, "2021-01-08T12:00:00Z"),
                    s(4, "2021-01-09T06:00:00Z"),
                    s(5, "2021-01-10T12:00:00Z"),
                ],
                policy: pol("within=2d"),
                now: LATER,
                expect: vec![
                    (5, vec![Within(dur("2d"))]),
                    (4, vec![Within(dur("2d"))]),
                    (3, vec![Within(dur("2d"))]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                // One month before March 31 is February 28 (no February 31).
                name: "within uses calendar months",
                snaps: vec![
                    s(1, "2021-02-28T11:59:59Z"),
                    s(2, "2021-02-28T12:00:00Z"),
                    s(3, "2021-03-31T12:00:00Z"),
                ],
                policy: pol("within=1m"),
                now: LATER,
                expect: vec![
                    (3, vec![Within(dur("1m"))]),
                    (2, vec![Within(dur("1m"))]),
                    (1, vec![]),
                ],
            },
            Case {
                // Cut-off 2021-01-01T22:00Z: snapshots 2, 1 and 0 are older. Within rules have
                // no count, so nothing "cannot be filled" and the oldest is not kept.
                name: "within_daily keeps the newest of each day within the duration",
                snaps: vec![
                    s(0, "2020-12-20T12:00:00Z"),
                    s(1, "2021-01-01T08:00:00Z"),
                    s(2, "2021-01-01T20:00:00Z"),
                    s(3, "2021-01-02T09:00:00Z"),
                    s(4, "2021-01-03T07:00:00Z"),
                    s(5, "2021-01-03T22:00:00Z"),
                ],
                policy: pol("within_daily=2d"),
                now: LATER,
                expect: vec![
                    (5, vec![WithinDaily(dur("2d"))]),
                    (4, vec![]),
                    (3, vec![WithinDaily(dur("2d"))]),
                    (2, vec![]),
                    (1, vec![]),
                    (0, vec![]),
                ],
            },
            Case {
                name: "within_hourly",
                snaps: vec![
                    s(1, "2021-05-05T10:05:00Z"),
                    s(2, "2021-05-05T10:40:00Z"),
                    s(3, "2021-05-05T11:10:00Z"),
                    s(4, "2021-05-05T12:59:00Z"),
                    s(5, "2021-05-05T13:00:00Z"),
                ],
                policy: pol("within_hourly=2h"),
                now: LATER,
                expect: vec![
                    (5, vec![WithinHourly(dur("2h"))]),
                    (4, vec![WithinHourly(dur("2h"))]),
                    (3, vec![WithinHourly(dur("2h"))]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                // Cut-off 2020-12-28T12:00Z (snapshot 2, inclusive); 2 to 5 share ISO week 53.
                name: "within_weekly",
                snaps: new_year_snaps(),
                policy: pol("within_weekly=7d"),
                now: LATER,
                expect: vec![
                    (6, vec![WithinWeekly(dur("7d"))]),
                    (5, vec![WithinWeekly(dur("7d"))]),
                    (4, vec![]),
                    (3, vec![]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                // within_monthly 2m: cut-off 2020-12-01T12:00Z, so snapshot 1 is out.
                name: "within_monthly and within_yearly",
                snaps: month_snaps(),
                policy: pol("within_monthly=2m within_yearly=5y"),
                now: LATER,
                expect: vec![
                    (6, vec![WithinMonthly(dur("2m")), WithinYearly(dur("5y"))]),
                    (5, vec![WithinMonthly(dur("2m"))]),
                    (4, vec![]),
                    (3, vec![WithinMonthly(dur("2m")), WithinYearly(dur("5y"))]),
                    (2, vec![]),
                    (1, vec![]),
                ],
            },
            Case {
                name: "keep-tag: single tags and comma-combined sets",
                snaps: vec![
                    st(1, "2021-01-01T00:00:00Z", &["daily"]),
                    st(2, "2021-01-02T00:00:00Z", &["a"]),
                    st(3, "2021-01-03T00:00:00Z", &["a", "b"]),
                    st(4, "2021-01-04T00:00:00Z", &["b"]),
                    st(5, "2021-01-05T00:00:00Z", &[]),
                    st(6, "2021-01-06T00:00:00Z", &["a", "b", "daily"]),
                ],
                policy: pol("tag=daily tag=a,b"),
                now: LATER,
                expect: vec![
                    (6, vec![Tag("daily".into()), Tag("a,b".into())]),
                    (5, vec![]),
                    (4, vec![]),
                    (3, vec![Tag("a,b".into())]),
                    (2, vec![]),
                    (1, vec![Tag("daily".into())]),
                ],
            },
            Case {
                // As in restic, an empty item matches the snapshots without tags.
                name: "keep-tag with an empty item keeps untagged snapshots",
                snaps: vec![
                    st(1, "2021-01-01T00:00:00Z", &["a"]),
                    s(2, "2021-01-02T00:00:00Z"),
                    st(3, "2021-01-03T00:00:00Z", &["b"]),
                ],
                policy: pol("tag= tag=b"),
                now: LATER,
                expect: vec![
                    (3, vec![Tag("b".into())]),
                    (2, vec![Tag("".into())]),
                    (1, vec![]),
                ],
            },
            Case {
                // Deliberate rule: 4 (a wrong clock, 2099) and 5 (one second of skew) are later
                // than now. They are kept, and only for that: they take no `last` or `daily`
                // slot, and `within` counts back from 3, the newest snapshot that is not in the
                // future (cut-off 2021-01-08T23:00Z). Counting from 4 would keep none of 1-3.
                name: "snapshots later than now are kept and set aside",
                snaps: vec![
                    s(1, "2021-01-08T00:00:00Z"),
                    s(2, "2021-01-09T00:00:00Z"),
                    s(3, "2021-01-09T23:00:00Z"),
                    s(4, "2099-01-01T00:00:00Z"),
                    s(5, "2021-01-10T00:00:01Z"),
                ],
                policy: pol("last=1 daily=1 within=1d"),
                now: "2021-01-10T00:00:00Z",
                expect: vec![
                    (4, vec![InFuture]),
                    (5, vec![InFuture]),
                    (3, vec![Last, Daily, Within(dur("1d"))]),
                    (2, vec![Within(dur("1d"))]),
                    (1, vec![]),
                ],
            },
            Case {
                // Instants are compared, not local times: 1 is 23:30 UTC on January 9 (before
                // now), 2 is 01:00 UTC on January 10 (after now).
                name: "the future is decided on instants, whatever the offsets",
                snaps: vec![
                    s(1, "2021-01-10T00:30:00+01:00"),
                    s(2, "2021-01-09T20:00:00-05:00"),
                ],
                policy: pol("last=1"),
                now: "2021-01-10T00:00:00Z",
                expect: vec![(2, vec![InFuture]), (1, vec![Last])],
            },
            Case {
                name: "a group entirely in the future is kept, with no oldest reasons",
                snaps: vec![s(1, "2099-01-01T00:00:00Z"), s(2, "2098-01-01T00:00:00Z")],
                policy: pol("daily=3"),
                now: "2021-01-01T00:00:00Z",
                expect: vec![(1, vec![InFuture]), (2, vec![InFuture])],
            },
            Case {
                name: "a zero duration is an unused rule",
                snaps: vec![s(1, "2021-01-01T00:00:00Z"), s(2, "2021-01-01T00:00:00Z")],
                policy: pol("last=1 within=0d"),
                now: LATER,
                expect: vec![(1, vec![Last]), (2, vec![])],
            },
        ]
    }

    #[test]
    fn policy_table() {
        for case in cases() {
            let decisions = apply_policy(&case.snaps, &case.policy, t(case.now));
            assert_eq!(outcome(&decisions), case.expect, "case: {}", case.name);
        }
    }

    #[test]
    fn empty_policy_keeps_everything_without_reasons() {
        let snaps = vec![
            s(1, "2021-01-01T00:00:00Z"),
            s(2, "2021-01-02T00:00:00Z"),
            s(3, "2099-01-01T00:00:00Z"),
        ];
        for policy in [KeepPolicy::default(), pol("within=0d within_daily=0h")] {
            assert!(policy.is_empty());
            let decisions = apply_policy(&snaps, &policy, t("2021-06-01T00:00:00Z"));
            let got: Vec<(u8, bool, usize)> = decisions
                .iter()
                .map(|d| (d.id.as_bytes()[0], d.keep, d.reasons.len()))
                .collect();
            assert_eq!(got, vec![(3, true, 0), (2, true, 0), (1, true, 0)]);
        }
        assert!(apply_policy(&[], &pol("last=1"), t(LATER)).is_empty());
    }

    #[test]
    fn is_empty_sees_every_rule() {
        let specs = [
            "last=1",
            "hourly=1",
            "daily=1",
            "weekly=1",
            "monthly=1",
            "yearly=1",
            "within=1h",
            "within_hourly=1h",
            "within_daily=1h",
            "within_weekly=1h",
            "within_monthly=1h",
            "within_yearly=1h",
            "tag=x",
        ];
        for spec in specs {
            assert!(!pol(spec).is_empty(), "{spec}");
        }
        assert!(pol("").is_empty());
        assert!(pol("within=0d within_yearly=0y0m0d0h last=0").is_empty());
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let min_west =
            DateTime::<Utc>::MIN_UTC.with_timezone(&FixedOffset::west_opt(3600).unwrap());
        let max_east =
            DateTime::<Utc>::MAX_UTC.with_timezone(&FixedOffset::east_opt(3600).unwrap());
        let snaps = vec![
            entry(1, min_west, "h", &["/"], &["t"]),
            entry(2, max_east, "h", &["/"], &["t"]),
            entry(3, t("2021-01-01T00:00:00Z"), "h", &["/"], &[]),
        ];
        let huge = CalendarDuration {
            years: u32::MAX,
            months: u32::MAX,
            days: u32::MAX,
            hours: u32::MAX,
        };
        let policy = KeepPolicy {
            last: u32::MAX,
            hourly: u32::MAX,
            daily: 1,
            weekly: 2,
            monthly: 3,
            yearly: 4,
            within: Some(huge),
            within_hourly: Some(huge),
            within_daily: Some(dur("1d")),
            within_weekly: Some(dur("100000y")),
            within_monthly: Some(huge),
            within_yearly: Some(huge),
            tags: vec!["t".into()],
        };
        for now in [min_west, max_east, t("2021-01-01T00:00:00Z")] {
            let decisions = apply_policy(&snaps, &policy, now);
            assert_eq!(decisions.len(), 3);
            assert!(decisions.iter().all(|d| d.keep));
        }
    }

    #[test]
    fn duration_parsing_and_formatting() {
        let ok = [
            ("1y5m7d2h", (1, 5, 7, 2), "1y5m7d2h"),
            ("2d", (0, 0, 2, 0), "2d"),
            ("36h", (0, 0, 0, 36), "36h"),
            ("1y", (1, 0, 0, 0), "1y"),
            ("5m", (0, 5, 0, 0), "5m"),
            ("1y2h", (1, 0, 0, 2), "1y2h"),
            ("1y0m", (1, 0, 0, 0), "1y"),
            ("007d", (0, 0, 7, 0), "7d"),
            ("0d", (0, 0, 0, 0), "0h"),
            ("4294967295h", (0, 0, 0, u32::MAX), "4294967295h"),
        ];
        for (text, (years, months, days, hours), shown) in ok {
            let d: CalendarDuration = text.parse().unwrap();
            assert_eq!(
                d,
                CalendarDuration {
                    years,
                    months,
                    days,
                    hours
                },
                "{text}"
            );
            assert_eq!(d.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<CalendarDuration>().unwrap(), d, "{text}");
        }
    }

    #[test]
    fn duration_errors() {
        use ParseDurationError as E;
        let err = |s: &str| s.parse::<CalendarDuration>().unwrap_err();
        let input = |s: &str| s.to_string();
        assert_eq!(err(""), E::Empty);
        assert_eq!(
            err("d"),
            E::MissingNumber {
                input: input("d"),
                unit: 'd'
            }
        );
        assert_eq!(
            err("1yd"),
            E::MissingNumber {
                input: input("1yd"),
                unit: 'd'
            }
        );
        assert_eq!(err("7"), E::MissingUnit { input: input("7") });
        assert_eq!(
            err("1d7"),
            E::MissingUnit {
                input: input("1d7")
            }
        );
        assert_eq!(
            err("2w"),
            E::Unexpected {
                input: input("2w"),
                found: 'w'
            }
        );
        assert_eq!(
            err("2D"),
            E::Unexpected {
                input: input("2D"),
                found: 'D'
            }
        );
        assert_eq!(
            err("-1d"),
            E::Unexpected {
                input: input("-1d"),
                found: '-'
            }
        );
        assert_eq!(
            err(" 1d"),
            E::Unexpected {
                input: input(" 1d"),
                found: ' '
            }
        );
        assert_eq!(
            err("1d 2h"),
            E::Unexpected {
                input: input("1d 2h"),
                found: ' '
            }
        );
        assert_eq!(
            err("2h1d"),
            E::Misordered {
                input: input("2h1d"),
                unit: 'd'
            }
        );
        assert_eq!(
            err("1d1d"),
            E::Misordered {
                input: input("1d1d"),
                unit: 'd'
            }
        );
        assert_eq!(
            err("4294967296h"),
            E::TooLarge {
                input: input("4294967296h")
            }
        );
        let message = err("2h1d").to_string();
        assert!(
            message.contains("\"2h1d\"") && message.contains("order"),
            "{message}"
        );
        assert!(err("").to_string().contains("1y5m7d2h"));
        assert!(err("2w").to_string().contains("'w'"));
    }

    #[test]
    fn duration_serializes_as_text() {
        let d = dur("1y2d");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1y2d\"");
        assert_eq!(
            serde_json::from_str::<CalendarDuration>("\"1y2d\"").unwrap(),
            d
        );
        assert!(serde_json::from_str::<CalendarDuration>("\"2x\"").is_err());
        let policy = KeepPolicy {
            daily: 7,
            within: Some(dur("30d")),
            ..Default::default()
        };
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["daily"], 7);
        assert_eq!(json["within"], "30d");
        assert!(json["within_daily"].is_null());
    }

    #[test]
    fn subtract_from_uses_the_calendar() {
        let cases = [
            // The day of the month is kept, or clamped to the month's last day.
            (
                "2021-03-31T10:00:00+02:00",
                "1m",
                "2021-02-28T10:00:00+02:00",
            ),
            ("2020-02-29T10:00:00Z", "1y", "2019-02-28T10:00:00Z"),
            ("2020-02-29T10:00:00Z", "4y", "2016-02-29T10:00:00Z"),
            ("2021-01-15T00:00:00Z", "1y13m", "2018-12-15T00:00:00Z"),
            // Months first, then days: March 31 → February 28 → February 27.
            ("2021-03-31T10:00:00Z", "1m1d", "2021-02-27T10:00:00Z"),
            // Hours are elapsed time in the recorded offset.
            (
                "2021-03-28T12:00:00+02:00",
                "36h",
                "2021-03-27T00:00:00+02:00",
            ),
            (
                "2021-03-01T01:00:00-05:00",
                "2h",
                "2021-02-28T23:00:00-05:00",
            ),
            ("2021-03-01T01:00:00Z", "0h", "2021-03-01T01:00:00Z"),
        ];
        for (from, d, want) in cases {
            let got = dur(d).subtract_from(t(from));
            assert_eq!(got, t(want), "{from} - {d}");
            assert_eq!(got.offset(), t(from).offset(), "{from} - {d}");
        }
        let earliest = DateTime::<Utc>::MIN_UTC.fixed_offset();
        for d in [
            CalendarDuration {
                years: u32::MAX,
                ..Default::default()
            },
            CalendarDuration {
                months: u32::MAX,
                ..Default::default()
            },
            CalendarDuration {
                days: u32::MAX,
                ..Default::default()
            },
            CalendarDuration {
                hours: u32::MAX,
                ..Default::default()
            },
            dur("300000y"),
        ] {
            assert_eq!(
                d.subtract_from(t("2021-01-01T00:00:00+01:00")),
                earliest,
                "{d}"
            );
        }
    }

    #[test]
    fn reasons_display() {
        let cases = [
            (Last, "last snapshot"),
            (Hourly, "hourly snapshot"),
            (Daily, "daily snapshot"),
            (Weekly, "weekly snapshot"),
            (Monthly, "monthly snapshot"),
            (Yearly, "yearly snapshot"),
            (Within(dur("7d")), "within 7d"),
            (WithinHourly(dur("1d12h")), "hourly within 1d12h"),
            (WithinDaily(dur("30d")), "daily within 30d"),
            (WithinWeekly(dur("3m")), "weekly within 3m"),
            (WithinMonthly(dur("1y")), "monthly within 1y"),
            (WithinYearly(dur("10y")), "yearly within 10y"),
            (Tag("daily".into()), "tag daily"),
            (Tag("a,b".into()), "tag a,b"),
            (Tag("".into()), "untagged"),
            (OldestHourly, "oldest hourly snapshot"),
            (OldestDaily, "oldest daily snapshot"),
            (OldestWeekly, "oldest weekly snapshot"),
            (OldestMonthly, "oldest monthly snapshot"),
            (OldestYearly, "oldest yearly snapshot"),
            (InFuture, "dated in the future"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }

    #[test]
    fn group_by_parsing() {
        let by = |host, paths, tags| GroupBy { host, paths, tags };
        let ok = [
            ("host,paths", by(true, true, false), "host,paths"),
            ("host", by(true, false, false), "host"),
            ("", by(false, false, false), ""),
            ("host,paths,tags", by(true, true, true), "host,paths,tags"),
            ("tags,host", by(true, false, true), "host,tags"),
            (" paths , host ", by(true, true, false), "host,paths"),
            ("host,,", by(true, false, false), "host"),
        ];
        for (text, want, shown) in ok {
            let got: GroupBy = text.parse().unwrap();
            assert_eq!(got, want, "{text:?}");
            assert_eq!(got.to_string(), shown, "{text:?}");
        }
        for bad in ["hosts", "host,path", "host;paths", "HOST"] {
            let err = bad.parse::<GroupBy>().unwrap_err();
            assert!(
                err.to_string().contains("unknown group-by field"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            "host,path".parse::<GroupBy>().unwrap_err(),
            ParseGroupByError("path".into())
        );
    }

    #[test]
    fn grouping() {
        let at = t("2021-01-01T00:00:00Z");
        let snaps = vec![
            entry(1, at, "b", &["/x"], &["t"]),
            entry(2, at, "a", &["/y", "/x"], &["t"]),
            entry(3, at, "a", &["/x", "/y"], &[]),
            entry(4, at, "a", &["/x"], &["t", "u"]),
            entry(5, at, "a", &["/x"], &["u", "t", "t"]),
        ];
        let summary = |by: &str| -> Vec<(String, Vec<u8>)> {
            group_snapshots(snaps.clone(), by.parse().unwrap())
                .into_iter()
                .map(|(key, group)| {
                    (
                        key.to_string(),
                        group.iter().map(|e| e.id.as_bytes()[0]).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(
            summary("host,paths"),
            vec![
                ("host [a], paths [/x]".to_string(), vec![4, 5]),
                ("host [a], paths [/x, /y]".to_string(), vec![2, 3]),
                ("host [b], paths [/x]".to_string(), vec![1]),
            ]
        );
        assert_eq!(
            summary("host"),
            vec![
                ("host [a]".to_string(), vec![2, 3, 4, 5]),
                ("host [b]".to_string(), vec![1])
            ]
        );
        assert_eq!(
            summary("tags"),
            vec![
                ("tags []".to_string(), vec![3]),
                ("tags [t]".to_string(), vec![1, 2]),
                ("tags [t, u]".to_string(), vec![4, 5]),
            ]
        );
        assert_eq!(
            summary(""),
            vec![("all snapshots".to_string(), vec![1, 2, 3, 4, 5])]
        );

        let groups = group_snapshots(snaps.clone(), "host,paths,tags".parse().unwrap());
        assert_eq!(groups.len(), 4); // 4 and 5 share host, paths and tags
        assert_eq!(
            groups[0].0,
            GroupKey {
                hostname: Some("a".into()),
                paths: Some(vec!["/x".into()]),
                tags: Some(vec!["t".into(), "u".into()]),
            }
        );
        assert!(group_snapshots(Vec::new(), GroupBy::default()).is_empty());
    }

    #[test]
    fn group_key_of_non_utf8_paths_is_lossy() {
        let mut e = s(1, "2021-01-01T00:00:00Z");
        e.snapshot.paths = vec![ByteString(b"/a\xff".to_vec())];
        let key = GroupKey::of(
            &e.snapshot,
            GroupBy {
                paths: true,
                ..Default::default()
            },
        );
        assert_eq!(key.paths, Some(vec!["/a\u{fffd}".to_string()]));
    }

    fn arb_snaps() -> impl Strategy<Value = Vec<SnapshotEntry>> {
        // Up to 40 snapshots over about three years, with offsets from -12:00 to +14:00 in
        // quarter hours and a few tags.
        proptest::collection::vec(
            (
                0i64..100_000_000,
                -48i32..=56,
                proptest::collection::vec(0u8..3, 0..3),
            ),
            0..40,
        )
        .prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(n, (secs, quarters, tags))| {
                    let offset = FixedOffset::east_opt(quarters * 900).unwrap();
                    let time = DateTime::from_timestamp(1_500_000_000 + secs, 0)
                        .unwrap()
                        .with_timezone(&offset);
                    let tags: Vec<&str> = tags
                        .iter()
                        .map(|&i| ["a", "b", "c"][usize::from(i)])
                        .collect();
                    entry(n as u8, time, "h", &["/"], &tags)
                })
                .collect()
        })
    }

    fn arb_duration() -> impl Strategy<Value = Option<CalendarDuration>> {
        proptest::option::of((0u32..3, 0u32..14, 0u32..40, 0u32..50).prop_map(
            |(years, months, days, hours)| CalendarDuration {
                years,
                months,
                days,
                hours,
            },
        ))
    }

    fn arb_policy() -> impl Strategy<Value = KeepPolicy> {
        (
            proptest::collection::vec(0u32..6, 6),
            proptest::collection::vec(arb_duration(), 6),
            proptest::collection::vec(prop_oneof![Just("a"), Just("b,c"), Just("c")], 0..2),
        )
            .prop_map(|(n, d, tags)| KeepPolicy {
                last: n[0],
                hourly: n[1],
                daily: n[2],
                weekly: n[3],
                monthly: n[4],
                yearly: n[5],
                within: d[0],
                within_hourly: d[1],
                within_daily: d[2],
                within_weekly: d[3],
                within_monthly: d[4],
                within_yearly: d[5],
                tags: tags.into_iter().map(String::from).collect(),
            })
    }

    /// `b` asks for at least as much as `a`, rule by rule.
    fn widen(a: &KeepPolicy, extra: &KeepPolicy) -> KeepPolicy {
        let longer = |x: Option<CalendarDuration>, y: Option<CalendarDuration>| match (x, y) {
            (Some(x), Some(y)) => Some(CalendarDuration {
                years: x.years + y.years,
                months: x.months + y.months,
                days: x.days + y.days,
                hours: x.hours + y.hours,
            }),
            (x, y) => x.or(y),
        };
        KeepPolicy {
            last: a.last + extra.last,
            hourly: a.hourly + extra.hourly,
            daily: a.daily + extra.daily,
            weekly: a.weekly + extra.weekly,
            monthly: a.monthly + extra.monthly,
            yearly: a.yearly + extra.yearly,
            within: longer(a.within, extra.within),
            within_hourly: longer(a.within_hourly, extra.within_hourly),
            within_daily: longer(a.within_daily, extra.within_daily),
            within_weekly: longer(a.within_weekly, extra.within_weekly),
            within_monthly: longer(a.within_monthly, extra.within_monthly),
            within_yearly: longer(a.within_yearly, extra.within_yearly),
            tags: a.tags.iter().chain(&extra.tags).cloned().collect(),
        }
    }

    proptest! {
        #[test]
        fn decisions_are_consistent(
            snaps in arb_snaps(),
            policy in arb_policy(),
            extra in arb_policy(),
            now_secs in 1_500_000_000i64..1_610_000_000,
        ) {
            let now = DateTime::from_timestamp(now_secs, 0).unwrap().fixed_offset();
            let decisions = apply_policy(&snaps, &policy, now);

            // One decision per snapshot, newest first.
            prop_assert_eq!(decisions.len(), snaps.len());
            let time_of = |id: SnapshotId| snaps.iter().find(|e| e.id == id).unwrap().snapshot.time;
            for pair in decisions.windows(2) {
                prop_assert!(time_of(pair[0].id) >= time_of(pair[1].id));
            }
            for d in &decisions {
                if policy.is_empty() {
                    prop_assert!(d.keep && d.reasons.is_empty());
                } else {
                    prop_assert_eq!(d.keep, !d.reasons.is_empty());
                }
                // Snapshots from the future are always kept, and only for that.
                if time_of(d.id) > now {
                    prop_assert!(d.keep);
                    prop_assert!(policy.is_empty() || d.reasons == vec![InFuture]);
                }
            }
            // `last` keeps exactly the newest min(N, present) snapshots.
            let present = decisions.iter().filter(|d| time_of(d.id) <= now).count();
            let last = decisions.iter().filter(|d| d.reasons.contains(&Last)).count();
            prop_assert_eq!(last, present.min(policy.last as usize));
            // A counted rule keeps at most N snapshots (plus the oldest).
            let daily = decisions.iter().filter(|d| d.reasons.contains(&Daily)).count();
            prop_assert!(daily <= policy.daily as usize);

            // Asking for more never keeps less.
            let wider = widen(&policy, &extra);
            if !policy.is_empty() {
                let more = apply_policy(&snaps, &wider, now);
                for (a, b) in decisions.iter().zip(&more) {
                    prop_assert_eq!(a.id, b.id);
                    prop_assert!(
                        !a.keep || b.keep,
                        "{:?} kept by {:?} but not by {:?}",
                        a.id,
                        policy,
                        wider
                    );
                }
            }
        }
    }
}
