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
