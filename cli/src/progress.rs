//! Live progress of backup and restore: a bar on a terminal's stderr, status lines with
//! `--json`, every file with `-v`; nothing of it otherwise.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floe_engine::{FileChange, Progress, ProgressSink};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{output, GlobalArgs};

/// How often the bar is redrawn; JSON status lines come once a second.
const TICK: Duration = Duration::from_millis(200);

/// The state an operation reports into.
struct State {
    bar: Option<ProgressBar>,
    verbose: bool,
    /// Status lines go to stdout.
    json: bool,
    /// The operation reports finished files (a backup does, a restore only bytes).
    count_files: bool,
    /// Counting items (packs), not bytes: their name.
    unit: Option<&'static str>,
    started: Instant,
    files: AtomicU64,
    bytes: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    /// Set once the totals are known.
    totals_known: AtomicBool,
    current: Mutex<String>,
}

impl Progress for State {
    fn file_started(&self, path: &Path) {
        if self.bar.is_some() || self.json {
            let mut c = self.current.lock().unwrap_or_else(|p| p.into_inner());
            c.clear();
            c.push_str(&path.to_string_lossy());
        }
    }

    fn bytes_done(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn file_done(&self, path: &Path, change: FileChange, _size: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        if self.verbose {
            let word = match change {
                FileChange::New => "new",
                FileChange::Changed => "changed",
                FileChange::Unchanged => "unchanged",
            };
            let line = format!("{word:<9} {}", path.display());
            match &self.bar {
                Some(bar) => bar.suspend(|| output::line(&line)),
                None => output::line(&line),
            }
            .ok();
        }
    }
}

#[derive(serde::Serialize)]
struct Status<'a> {
    message_type: &'static str,
    seconds_elapsed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds_remaining: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent_done: Option<f64>,
    files_done: u64,
    bytes_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_bytes: Option<u64>,
    current_file: &'a str,
}

impl State {
    fn status<'a>(&self, current: &'a str) -> Status<'a> {
        let done = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let known = self.totals_known.load(Ordering::Relaxed);
        let total = known.then(|| self.total_bytes.load(Ordering::Relaxed));
        let fraction = total.map(|t| {
            if t == 0 {
                1.0
            } else {
                (done as f64 / t as f64).min(1.0)
            }
        });
        let remaining = fraction
            .filter(|f| *f > 0.0 && elapsed > 1.0)
            .map(|f| (elapsed / f - elapsed).max(0.0) as u64);
        Status {
            message_type: "status",
            seconds_elapsed: elapsed as u64,
            seconds_remaining: remaining,
            percent_done: fraction.map(|f| (f * 1000.0).round() / 10.0),
            files_done: self.files.load(Ordering::Relaxed),
            bytes_done: done,
            total_files: known.then(|| self.total_files.load(Ordering::Relaxed)),
            total_bytes: total,
            current_file: current,
        }
    }
}

/// A running display; it stops (and clears its line) when dropped.
pub struct Display {
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    /// A display: a bar when stderr is a terminal (and neither `-q` nor `--json`), JSON status
    /// lines with `--json`, a line per finished file with `-v`.
    pub fn start(g: &GlobalArgs, count_files: bool) -> Self {
        Self::new(g, count_files, None)
    }

    /// A display that counts items named `unit` ("packs") instead of bytes: a check, a repair,
    /// a prune. It shows once [`Self::set_count`] gives a total.
    pub fn counting(g: &GlobalArgs, unit: &'static str) -> Self {
        Self::new(g, false, Some(unit))
    }

    /// `done` of `total` items are done (for [`Self::counting`]).
    pub fn set_count(&self, done: usize, total: usize) {
        let s = &self.state;
        if !s.totals_known.load(Ordering::Relaxed) {
            s.set_totals(total as u64, total as u64);
        }
        s.bytes.fetch_max(done as u64, Ordering::Relaxed);
    }

    fn new(g: &GlobalArgs, count_files: bool, unit: Option<&'static str>) -> Self {
        let bar = (std::io::stderr().is_terminal() && !g.quiet && !g.json).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(style(false, unit));
            bar
        });
        let state = Arc::new(State {
            bar,
            verbose: g.verbose > 0 && !g.json,
            json: g.json,
            count_files,
            unit,
            started: Instant::now(),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            totals_known: AtomicBool::new(false),
            current: Mutex::new(String::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        // Status lines are for backup, restore and dump; a check or prune prints one JSON
        // document, which they would break.
        let json = g.json && !g.quiet && unit.is_none();
        let ticker = (state.bar.is_some() || json).then(|| {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || tick(&state, &stop, json))
        });
        Self {
            state,
            stop,
            ticker,
        }
    }

    /// True when something is shown: only then are totals worth counting.
    pub fn is_shown(&self) -> bool {
        self.ticker.is_some()
    }

    /// What the engine reports into.
    pub fn sink(&self) -> ProgressSink {
        ProgressSink::new(self.state.clone())
    }

    /// The totals are known: the bar shows them, with the rate and time left.
    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.state.set_totals(files, bytes);
    }

    /// Sets the totals from another thread (a scan that counts ahead of a backup).
    pub fn totals_setter(&self) -> impl FnOnce(u64, u64) + Send + 'static {
        let state = self.state.clone();
        move |files, bytes| state.set_totals(files, bytes)
    }
}

impl State {
    fn set_totals(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_style(style(true, self.unit));
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(bar) = &self.state.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(with_totals: bool, unit: Option<&str>) -> ProgressStyle {
    let template = match (unit, with_totals) {
        (Some(unit), _) => format!("{{pos:>7}}/{{len}} {unit} {{wide_bar}} ETA {{eta}} {{msg}}"),
        (None, true) => {
            "{bytes:>10}/{total_bytes} {wide_bar} {binary_bytes_per_sec} ETA {eta} {msg}".into()
        }
        (None, false) => "{spinner} {bytes:>10} {binary_bytes_per_sec} (counting...) {msg}".into(),
    };
    ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Redraws the bar several times a second, and prints a JSON status line once a second.
fn tick(state: &State, stop: &AtomicBool, json: bool) {
    let mut last_json = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let current = state
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(bar) = &state.bar {
            let files = state.files.load(Ordering::Relaxed);
            let of = if state.totals_known.load(Ordering::Relaxed) {
                format!("/{}", state.total_files.load(Ordering::Relaxed))
            } else {
                String::new()
            };
            bar.set_position(state.bytes.load(Ordering::Relaxed));
            if state.count_files {
                bar.set_message(format!("{files}{of} files  {current}"));
            } else {
                bar.set_message(current.clone());
            }
        }
        if json && last_json.elapsed() >= Duration::from_secs(1) {
            last_json = Instant::now();
            let _ = output::json(&state.status(&current));
        }
    }
}
