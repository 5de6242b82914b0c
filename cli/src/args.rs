//! Parsers of option values shared by several commands, each with a message that says what was
//! expected.

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone};

/// A time as RFC 3339 (`2024-05-01T03:00:00+02:00`) or as restic writes it, in local time
/// (`2024-05-01 03:00:00`, `2024-05-01 03:00`, `2024-05-01`).
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            "expected RFC 3339 (2024-05-01T03:00:00+02:00) or local time (2024-05-01 03:00:00)"
                .to_string()
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("{s} does not exist in the local time zone"))
}

/// A size such as `500M`, `2G` or `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    floe_engine::parse_size(s).map_err(|_| {
        "expected a size in bytes, or with a binary unit: 512K, 500M, 2G, 1T".to_string()
    })
}

/// A value that may hold bytes that are not UTF-8, as file names may: each such byte becomes
/// U+FFFD, as `ls` prints it, and path lookups and patterns match names that way too. For the
/// commands that read (a lookup of two names alike is refused as not found; an include may
/// take a name alike); excludes, which leave data out, stay text.
pub fn lossy() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(|s| s.to_string_lossy().into_owned())
}

/// Patterns given on the command line, then those of the files, one a line.
pub fn patterns(given: &[String], files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut all = given.to_vec();
    for f in files {
        // Excludes leave data out, so a pattern must mean exactly its bytes: text only.
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("reading exclude file {}: {e}", f.display()))?;
        // Blank lines and comments are no patterns (docs/patterns.md), nor stored as such.
        let lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        all.extend(lines.map(str::to_string));
    }
    Ok(all)
}

/// Tags as given, `a,b` counting as two.
pub fn split_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A count of snapshots to keep, 0 or more.
pub fn parse_count(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| "expected a whole number of snapshots, 0 or more".to_string())
}

/// An extended attribute name pattern (`--include-xattr`, `--exclude-xattr`), checked when the
/// command line is read: a typo is a usage error (exit 2), before any password is asked for.
pub fn parse_xattr_pattern(s: &str) -> Result<String, String> {
    floe_engine::check_xattr_pattern(s)
        .map(|_| s.to_string())
        .map_err(|e| match e {
            floe_engine::Error::InvalidPattern { reason, .. } => {
                format!("not a glob over attribute names: {reason}")
            }
            e => e.to_string(),
        })
}

/// `--compression`: how new blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionMode {
    /// The level the repository was created with (`init`: the default level).
    Auto,
    /// As given.
    Set(floe_engine::Compression),
}

/// The zstd levels of the named modes, close to what restic's compressor does under the same
/// names, so that a script moved over costs about what it did: `--compression fastest`.
pub const FASTEST_LEVEL: i32 = 1;
/// `--compression better`.
pub const BETTER_LEVEL: i32 = 7;
/// `--compression max`. Higher levels are given by number: on a tree of programs, level 19
/// stores 7% less than 11 in eleven times the time (docs/commands.md, "Compression").
pub const MAX_LEVEL: i32 = 11;

impl CompressionMode {
    /// The option that asks for this mode again (for a command started by another), or `None`
    /// for `auto`.
    pub fn arg(self) -> Option<String> {
        match self {
            CompressionMode::Auto => None,
            CompressionMode::Set(floe_engine::Compression::Off) => Some("--compression=off".into()),
            CompressionMode::Set(floe_engine::Compression::Level(l)) => {
                Some(format!("--compression={l}"))
            }
        }
    }
}

/// A compression mode as restic names them (auto, off, fastest, better, max) or a zstd level.
pub fn parse_compression(s: &str) -> Result<CompressionMode, String> {
    use floe_engine::Compression::{Level, Off};
    Ok(match s.to_ascii_lowercase().as_str() {
        "auto" => CompressionMode::Auto,
        "off" => CompressionMode::Set(Off),
        "fastest" => CompressionMode::Set(Level(FASTEST_LEVEL)),
        "better" => CompressionMode::Set(Level(BETTER_LEVEL)),
        "max" => CompressionMode::Set(Level(MAX_LEVEL)),
        other => match other.parse::<i32>() {
            Ok(level) if zstd_levels().contains(&level) => CompressionMode::Set(Level(level)),
            _ => {
                return Err(format!(
                    "expected auto, off, fastest, better, max or a zstd level from {} to {}",
                    zstd_levels().start(),
                    zstd_levels().end()
                ))
            }
        },
    })
}

fn zstd_levels() -> std::ops::RangeInclusive<i32> {
    floe_engine::compression_levels()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_files_give_their_patterns_without_comments_or_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("excludes");
        std::fs::write(&file, "# caches\n*.bin\n\n #not a comment\n").unwrap();
        let all = patterns(&["*.tmp".into()], &[file]).unwrap();
        assert_eq!(all, ["*.tmp", "*.bin", " #not a comment"]);
    }

    #[test]
    fn times() {
        let rfc = parse_time("2024-01-01T02:30:00+02:00").unwrap();
        assert_eq!(rfc.offset().local_minus_utc(), 7200);
        let local = parse_time("2024-01-01 02:30:00").unwrap();
        assert_eq!(local.naive_local().to_string(), "2024-01-01 02:30:00");
        assert_eq!(
            parse_time("2024-01-01").unwrap().naive_local().to_string(),
            "2024-01-01 00:00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn counts_and_sizes() {
        assert_eq!(parse_count("7"), Ok(7));
        assert!(parse_count("-1").unwrap_err().contains("whole number"));
        assert!(parse_count("abc").is_err());
        assert_eq!(parse_size("2K"), Ok(2048));
        assert!(parse_size("10%").is_err());
    }

    #[test]
    fn compression_modes_by_restic_name_or_zstd_level() {
        use floe_engine::Compression::{Level, Off};
        let set = |s: &str| {
            parse_compression(s).map(|m| match m {
                CompressionMode::Set(c) => Some(c),
                CompressionMode::Auto => None,
            })
        };
        assert_eq!(set("auto"), Ok(None));
        assert_eq!(set("off"), Ok(Some(Off)));
        assert_eq!(set("Fastest"), Ok(Some(Level(1))));
        assert_eq!(set("better"), Ok(Some(Level(7))));
        assert_eq!(set("MAX"), Ok(Some(Level(11))));
        assert_eq!(set("-5"), Ok(Some(Level(-5))));
        assert_eq!(set("22"), Ok(Some(Level(22))));
        assert_eq!(set("0"), Ok(Some(Level(0))), "zstd's own default");
        for typo in ["23", "-200000", "fast", "", "3.5"] {
            let e = set(typo).unwrap_err();
            assert!(
                e.starts_with("expected auto, off, fastest, better, max"),
                "{typo}: {e}"
            );
        }
    }
}
