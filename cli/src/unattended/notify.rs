//! `--notify-url`: one HTTP POST of a JSON document when a command ends, for a chat hook, an
//! alerting service or a receiver of one's own. A notification that cannot be delivered is a
//! warning: it never changes the command's exit code.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Limit of one attempt.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before giving up.
const ATTEMPTS: u32 = 3;

/// What a notification says.
#[derive(serde::Serialize)]
pub struct Document<'a> {
    pub command: &'a str,
    pub exit_code: u8,
    pub ok: bool,
    /// Without credentials.
    pub repository: &'a str,
    pub host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<&'a str>,
    pub started: DateTime<Utc>,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Sends `doc` to `url`, up to [`ATTEMPTS`] times; warns when it cannot.
pub fn send(url: &str, doc: &Document<'_>, tls: &floe_engine::TlsOptions) {
    let body = match serde_json::to_vec(doc) {
        Ok(b) => b,
        Err(e) => return eprintln!("warning: notification: {e}"),
    };
    let shown = super::redact(url);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match floe_engine::http_send("POST", url, "application/json", body.clone(), tls, TIMEOUT) {
            Ok(status) if (200..300).contains(&status) => return,
            Ok(status) => last = format!("the receiver answered HTTP {status}"),
            Err(e) => last = e.to_string(),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
    }
    eprintln!("warning: notification to {shown} not delivered after {ATTEMPTS} attempts: {last}");
}
