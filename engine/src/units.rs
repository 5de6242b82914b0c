//! Quantities that users type: sizes (`500M`, `2G`) and percentages, for options such as
//! `prune --max-unused` and `check --read-data-subset`.

/// A quantity that does not parse, with the text as typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a size.
    #[error("invalid size {0:?}: expected e.g. 500M or 2G")]
    Size(String),
    /// Not a percentage.
    #[error("invalid percentage {0:?}")]
    Percent(String),
    /// A percentage outside what the option allows.
    #[error("percentage {input:?} {allowed}")]
    PercentRange {
        /// The text as typed.
        input: String,
        /// What the option allows, as a phrase (`is not between 0 and 100`).
        allowed: &'static str,
    },
    /// Not a subset: neither `n/t`, `x%` nor a size with a unit.
    #[error("invalid subset {0:?}: expected n/t (slice n of t, e.g. 1/5), x% (e.g. 10%) or a size with a unit (e.g. 500M, 2G)")]
    Subset(String),
    /// A subset `n/t` with `n` out of `1..=t`.
    #[error("subset {0:?}: need 1 <= n <= t")]
    SubsetBounds(String),
}

/// Parses `500M`, `2G`, `1048576` (binary units K, M, G, T).
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| ParseError::Size(s.to_string()))
}

/// Parses the number before a `%`, which the caller has stripped; `input` is the whole text.
pub fn parse_percent(number: &str, input: &str) -> Result<f64, ParseError> {
    number
        .parse()
        .map_err(|_| ParseError::Percent(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_and_refuse_overflow() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(
            parse_size("16777216T"),
            Err(ParseError::Size("16777216T".into()))
        );
        assert_eq!(
            parse_size("5 GB").unwrap_err().to_string(),
            "invalid size \"5 GB\": expected e.g. 500M or 2G"
        );
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
    }
}
