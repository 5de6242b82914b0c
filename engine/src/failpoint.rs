//! Crash points for tests, compiled in only with the `failpoints` feature.
//!
//! With the feature on, a process whose `FLOE_FAILPOINT` environment variable names a point
//! aborts there, as a power cut or `kill -9` would stop it: no destructor, no cleanup.

/// Aborts the process here when `FLOE_FAILPOINT` is `name` (feature `failpoints` only).
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("FLOE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// The time tests pretend it is: `FLOE_FAKE_NOW` (RFC 3339), with the `failpoints` feature only;
/// `None` otherwise, and always in release builds without it.
pub fn fake_now() -> Option<chrono::DateTime<chrono::Utc>> {
    #[cfg(feature = "failpoints")]
    if let Ok(v) = std::env::var("FLOE_FAKE_NOW") {
        return chrono::DateTime::parse_from_rfc3339(&v)
            .ok()
            .map(|t| t.to_utc());
    }
    None
}
