//! Printing helpers: sizes, and writes to stdout that report a closed pipe instead of panicking.

use std::io::Write;

/// Writes a line to stdout.
pub fn line(s: impl std::fmt::Display) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")
}

/// Writes a value as one line of JSON.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let s = serde_json::to_string(v)?;
    line(s)?;
    Ok(())
}

/// `1.5 GiB`, `320 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(320), "320 B");
        assert_eq!(super::bytes(1536), "1.50 KiB");
        assert_eq!(super::bytes(3 << 30), "3.00 GiB");
    }
}
