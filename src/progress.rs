//! Progress for long work (`apply`, `verify`, `bundle create`): an `indicatif` bar on stderr when
//! stderr is a terminal, nothing when it is not, or one JSON line per step with `--progress json`
//! for agents that drive bsi. Library code reports through the [`Progress`] trait and never knows
//! which of these it is talking to.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar when stderr is a terminal, else nothing.
    Auto,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    None,
}

/// Receives progress from long operations. Implementations must be cheap per call.
pub(crate) trait Progress: Send + Sync {
    /// A phase starts: `label` (e.g. "staging"), `total` bytes.
    fn begin(&self, label: &str, total: u64);
    /// A phase counted in items (e.g. devices of a fleet) starts; `advance` then counts items.
    fn begin_items(&self, label: &str, total: u64) {
        self.begin(label, total);
    }
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
    /// The phase ended.
    fn end(&self);
}

/// Reports nothing.
#[derive(Debug, Default)]
pub(crate) struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// An `indicatif` bar on stderr.
#[derive(Debug)]
pub(crate) struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn start(&self, label: &str, total: u64, template: &str) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }
}

impl Progress for Bar {
    fn begin_items(&self, label: &str, total: u64) {
        self.start(
            label,
            total,
            "{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        );
    }

    fn begin(&self, label: &str, total: u64) {
        self.start(
            label,
            total,
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        );
    }

    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(bytes);
        }
    }

    fn end(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// One JSON line per step on stderr: `{"event":"begin"|"progress"|"end", ...}`. A step is 1 % of
/// the phase's bytes (at least 1 MiB), so a phase writes at most about a hundred lines.
#[derive(Debug)]
pub(crate) struct JsonLines {
    state: Mutex<JsonState>,
    done: AtomicU64,
}

#[derive(Debug)]
struct JsonState {
    label: String,
    total: u64,
    next_report: u64,
    step: u64,
    started: Instant,
    unit: &'static str,
}

impl JsonLines {
    fn emit(value: &serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

impl JsonLines {
    fn start(&self, label: &str, total: u64, unit: &'static str, min_step: u64) {
        self.done.store(0, Ordering::Relaxed);
        if let Ok(mut s) = self.state.lock() {
            label.clone_into(&mut s.label);
            s.total = total;
            s.step = (total / 100).max(min_step);
            s.next_report = s.step;
            s.started = Instant::now();
            s.unit = unit;
        }
        let mut event = serde_json::json!({"event": "begin", "phase": label});
        event[format!("total_{unit}")] = total.into();
        Self::emit(&event);
    }
}

impl Progress for JsonLines {
    fn begin(&self, label: &str, total: u64) {
        self.start(label, total, "bytes", 1 << 20);
    }

    fn begin_items(&self, label: &str, total: u64) {
        self.start(label, total, "items", 1);
    }

    fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let Ok(mut s) = self.state.lock() else { return };
        if done < s.next_report {
            return;
        }
        while s.next_report <= done {
            s.next_report += s.step;
        }
        let secs = s.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let unit = s.unit;
        let mut value = serde_json::json!({"event": "progress", "phase": s.label});
        value[format!("done_{unit}")] = done.into();
        value[format!("total_{unit}")] = s.total.into();
        value[format!("{unit}_per_second")] = rate.round().into();
        drop(s);
        Self::emit(&value);
    }

    fn end(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let (label, secs, unit) = match self.state.lock() {
            Ok(s) => (s.label.clone(), s.started.elapsed().as_secs_f64(), s.unit),
            Err(_) => (String::new(), 0.0, "bytes"),
        };
        let mut event = serde_json::json!({"event": "end", "phase": label, "seconds": secs});
        event[format!("done_{unit}")] = done.into();
        Self::emit(&event);
    }
}

/// The reporter for `mode`, given whether `-q` was passed.
#[must_use]
pub(crate) fn reporter(mode: ProgressMode, quiet: bool) -> Box<dyn Progress> {
    match mode {
        ProgressMode::Json => Box::new(JsonLines {
            state: Mutex::new(JsonState {
                label: String::new(),
                total: 0,
                next_report: 0,
                step: 1,
                started: Instant::now(),
                unit: "bytes",
            }),
            done: AtomicU64::new(0),
        }),
        ProgressMode::Auto if !quiet && std::io::stderr().is_terminal() => Box::new(Bar {
            bar: Mutex::new(None),
        }),
        ProgressMode::Auto | ProgressMode::None => Box::new(Silent),
    }
}
