//! Timestamps as stored (format-spec/format.md, "Conventions", Timestamps): RFC 3339 `date-time`
//! extended to signed years of four or more digits. Readers take exactly that grammar, lowercase
//! `t` and `z`, any number of fraction digits and second 60 included, and nothing looser.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::de::{self, Deserializer, Visitor};

/// True when `b[at..at + n]` are `n` ASCII digits.
fn digits(b: &[u8], at: usize, n: usize) -> bool {
    b.get(at..at + n)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// The length of the year at the start of `b` (sign included), when it is well formed: four
/// digits, or a sign and at least four.
fn year_len(b: &[u8]) -> Option<usize> {
    let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let n = b[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
    let ok = if sign == 1 { n >= 4 } else { n == 4 };
    ok.then_some(sign + n)
}

/// True when `s` follows the grammar of the format's timestamps. Ranges (month 13, day 32, hour
/// 24) are left to the parser that follows.
pub fn well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(y) = year_len(b) else {
        return false;
    };
    // "-MM-DDTHH:MM:SS" after the year.
    let at = |i: usize| b.get(y + i).copied();
    let date_time = at(0) == Some(b'-')
        && digits(b, y + 1, 2)
        && at(3) == Some(b'-')
        && digits(b, y + 4, 2)
        && matches!(at(6), Some(b'T' | b't'))
        && digits(b, y + 7, 2)
        && at(9) == Some(b':')
        && digits(b, y + 10, 2)
        && at(12) == Some(b':')
        && digits(b, y + 13, 2);
    if !date_time {
        return false;
    }
    let mut i = y + 15;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] => {
            b.len() == i + 6 && digits(b, i + 1, 2) && b[i + 3] == b':' && digits(b, i + 4, 2)
        }
        _ => false,
    }
}

/// Parses a stored timestamp, refusing anything outside the format's grammar.
pub fn parse(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if !well_formed(s) {
        return Err(format!("{s:?} is not a timestamp of the format"));
    }
    if let Some(t) = utc_as_written(s.as_bytes()) {
        return Ok(t);
    }
    s.parse::<DateTime<FixedOffset>>()
        .map_err(|e| format!("{s:?} is not a valid time: {e}"))
}

/// What floe writes, read without chrono's general parser (every node of every tree has two
/// timestamps): a well-formed timestamp with a four-digit year, at most nine fraction digits, a
/// second below 60 and `Z`. `None` for anything else, which the general parser then reads; the
/// result is the same either way.
fn utc_as_written(b: &[u8]) -> Option<DateTime<FixedOffset>> {
    // `YYYY-MM-DDTHH:MM:SS`, then `.` and digits or nothing, then `Z`: `well_formed` checked
    // the layout once the year is four digits.
    if !b.first()?.is_ascii_digit() || !matches!(b.last()?, b'Z' | b'z') {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if fraction.len() <= 9 => {
            number(fraction) * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let second = number(&b[17..19]);
    if second > 59 {
        return None;
    }
    let date =
        NaiveDate::from_ymd_opt(number(&b[0..4]) as i32, number(&b[5..7]), number(&b[8..10]))?;
    let time = date.and_hms_nano_opt(number(&b[11..13]), number(&b[14..16]), second, nanos)?;
    Some(time.and_utc().fixed_offset())
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = DateTime<FixedOffset>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        parse(s).map_err(E::custom)
    }
}

/// `deserialize_with` for a timestamp kept with its offset.
pub fn fixed<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

/// `deserialize_with` for a timestamp kept in UTC.
pub fn utc<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    fixed(d).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_written_read_as_chrono_reads_them() {
        let mut cases = vec![
            "2026-11-23T02:00:00Z".to_string(),
            "2026-11-23t02:00:00z".into(),
            "2024-02-29T23:59:59.999999999Z".into(),
            "2023-02-29T00:00:00Z".into(),
            "2026-13-01T00:00:00Z".into(),
            "2026-04-31T00:00:00Z".into(),
            "2026-01-01T24:00:00Z".into(),
            "2026-01-01T00:60:00Z".into(),
            "2016-12-31T23:59:60Z".into(),
            "2026-11-23T02:00:00.1234567891Z".into(),
            "0000-01-01T00:00:00Z".into(),
            "9999-12-31T23:59:59.5Z".into(),
        ];
        for digits in 1..=9 {
            cases.push(format!("1970-01-01T00:00:00.{}Z", &"987654321"[..digits]));
        }
        for s in &cases {
            assert!(well_formed(s), "{s}");
            let general = s.parse::<DateTime<FixedOffset>>().ok();
            match utc_as_written(s.as_bytes()) {
                Some(t) => assert_eq!(Some(t), general, "{s}"),
                // Left to the general parser: a leap second, more than nine digits, or no date.
                None => assert!(
                    general.is_none() || s.contains(":60") || s.len() > 30,
                    "{s} read by chrono only"
                ),
            }
            assert_eq!(parse(s).ok(), general, "{s}");
        }
    }

    #[test]
    fn the_grammar_takes_what_writers_write_and_what_rfc_3339_allows() {
        for s in [
            "2026-11-23T02:00:00Z",
            "2026-11-23T02:00:00.118+01:00",
            "2026-11-23T02:00:00.123456789Z",
            "2026-11-23t02:00:00z",
            "2026-11-23T02:00:00.1234567891234Z",
            "2016-12-31T23:59:60Z",
            "2026-11-23T02:00:00-00:00",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
        ] {
            assert!(parse(s).is_ok(), "{s}: {:?}", parse(s));
        }
        let t = parse("2026-11-23T02:00:00.1234567891234Z").unwrap();
        assert_eq!(
            t.timestamp_subsec_nanos(),
            123_456_789,
            "truncated, not rounded"
        );
        assert_eq!(
            parse("2026-11-23T02:00:00+01:00").unwrap(),
            parse("2026-11-23T01:00:00Z").unwrap()
        );
    }

    #[test]
    fn looser_forms_are_refused() {
        for s in [
            "2026-11-23 02:00:00Z",
            "2026-11-23T02:00:00",
            "2026-1-23T02:00:00Z",
            "10000-01-01T00:00:00Z",
            "2026-11-23T02:00:00+0100",
            "2026-11-23T02:00:00+01:00:00",
            "2026-11-23T02:00:00 UTC",
            " 2026-11-23T02:00:00Z",
            "2026-11-23T02:00:00Z ",
            "2026-11-23T02:00:00.Z",
            "2026-13-23T02:00:00Z",
            "2026-02-30T02:00:00Z",
            "",
        ] {
            assert!(parse(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn serde_fields_use_the_grammar() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "utc")]
            at: DateTime<Utc>,
        }
        let t: T = serde_json::from_str(r#"{"at":"2026-11-23T02:00:00+01:00"}"#).unwrap();
        assert_eq!(t.at.to_rfc3339(), "2026-11-23T01:00:00+00:00");
        assert!(serde_json::from_str::<T>(r#"{"at":"2026-11-23 02:00:00Z"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"at":17}"#).is_err());
    }
}
