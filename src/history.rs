//! The device history: every operation that changes (or was refused the chance to change) the
//! device, appended as one JSON line to `private/var/db/bsi/history.jsonl`, and the most recent
//! one also kept alone in `last-operation.json`.
//!
//! `status` reads only `last-operation.json`, so it stays as fast with 10,000 entries as with
//! none; `bsi history --limit N` reads the file from its end, and what needs the whole history
//! (an update's inclusion list) reads `history-summary.json`, kept as entries are appended. Appends are `O_APPEND` writes followed by `fsync`; a
//! line cut short by a crash is skipped when reading.

use std::io::{BufRead, BufReader, Write};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::device::layout::{HISTORY, HISTORY_SUMMARY as SUMMARY, LAST_OPERATION};
use crate::device::records;
use crate::device::{Open, Root};
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::untrusted::clip_message;
use crate::{Error, Result};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OpResult {
    /// It did what was asked.
    Ok,
    /// The device was already in the requested state.
    NothingToDo,
    /// A rule refused it (power, policy, not applicable, bundle): exit 3 to 6.
    Refused,
    /// It failed (I/O error, damaged device): exit 1 or 8.
    Failed,
    /// It was interrupted (killed, power lost) and a later command recovered the device.
    Interrupted,
}

impl OpResult {
    /// Classifies an exit code.
    #[must_use]
    pub(crate) fn from_exit_code(code: u8) -> Self {
        match code {
            0 => OpResult::Ok,
            3..=6 | 9 => OpResult::Refused,
            _ => OpResult::Failed,
        }
    }
}

/// One history entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// When, RFC 3339.
    pub at: String,
    /// The command, e.g. `apply`.
    pub action: String,
    /// How it ended.
    pub result: OpResult,
    /// The error message, when it did not succeed.
    pub error: Option<String>,
    /// The exit code bsi ended with.
    pub exit_code: u8,
    /// The device's version before (e.g. `26.3.1` or `26.3.1 (a)`).
    pub before: Option<String>,
    /// The device's version after.
    pub after: Option<String>,
    /// The response or version the operation was about (e.g. the bundle's `26.3.1 (b)`).
    pub target: Option<String>,
    /// A sentence about what happened (e.g. "26.4 includes 26.3.1 (a) ... (c)").
    pub detail: Option<String>,
}

/// The most recent operation, as `status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LastOperation {
    /// The command.
    pub action: String,
    /// How it ended.
    pub result: OpResult,
    /// The error message, if any.
    pub error: Option<String>,
    /// Exit code.
    pub exit_code: u8,
    /// When.
    pub at: String,
}

impl From<&Entry> for LastOperation {
    fn from(entry: &Entry) -> Self {
        Self {
            action: entry.action.clone(),
            result: entry.result,
            error: entry.error.clone(),
            exit_code: entry.exit_code,
            at: entry.at.clone(),
        }
    }
}

impl Entry {
    /// A successful entry for `action` at the clock's time.
    #[must_use]
    pub(crate) fn new(clock: &Clock, action: &str) -> Self {
        Self {
            at: clock.stamp(),
            action: action.to_owned(),
            result: OpResult::Ok,
            error: None,
            exit_code: 0,
            before: None,
            after: None,
            target: None,
            detail: None,
        }
    }

    /// Sets the version after.
    #[must_use]
    pub(crate) fn after(mut self, v: impl Into<String>) -> Self {
        self.after = Some(v.into());
        self
    }

    /// Sets the detail.
    #[must_use]
    pub(crate) fn detail(mut self, v: impl Into<String>) -> Self {
        self.detail = Some(v.into());
        self
    }

    /// Records a failure.
    #[must_use]
    pub(crate) fn failed(mut self, error: &Error) -> Self {
        self.exit_code = error.exit_code();
        self.result = if matches!(error, Error::Interrupted { .. }) {
            OpResult::Interrupted
        } else {
            OpResult::from_exit_code(self.exit_code)
        };
        self.error = Some(error.to_string());
        self
    }

    /// Cuts every text field to a bounded length and escapes control characters: text in an
    /// entry can come from a bundle or a declaration, and must neither bloat the history nor
    /// reach a terminal raw.
    fn bounded(&self) -> Self {
        let cut = |t: &Option<String>, limit: usize| t.as_deref().map(|t| clip_message(t, limit));
        Self {
            at: clip_message(&self.at, 64),
            action: clip_message(&self.action, 64),
            result: self.result,
            error: cut(&self.error, MAX_FIELD),
            exit_code: self.exit_code,
            before: cut(&self.before, 256),
            after: cut(&self.after, 256),
            target: cut(&self.target, 512),
            detail: cut(&self.detail, MAX_FIELD),
        }
    }
}

/// The longest error or detail text an entry keeps.
const MAX_FIELD: usize = 2048;
/// Lines longer than this are not entries bsi wrote (every field is bounded): skipped.
const MAX_LINE: usize = 64 * 1024;

/// Appends `entry` to the history and makes it the last operation. Every text field is bounded
/// first.
pub(crate) fn append(root: &Root, entry: &Entry) -> Result<()> {
    let entry = &entry.bounded();
    let mut line = serde_json::to_vec(entry).map_err(|e| Error::Io {
        action: "encoding",
        path: root.show(HISTORY),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    let mut file = root
        .open_file(HISTORY, Open::Append)
        .map_err(|e| records::read_error(root, HISTORY, e))?;
    file.write_all(&line).ctx("writing", root.show(HISTORY))?;
    file.sync_data().ctx("syncing", root.show(HISTORY))?;
    summarise(root, entry)?;
    records::write_json(root, LAST_OPERATION, &LastOperation::from(entry))
}

/// The most recent operation, if any.
pub(crate) fn last(root: &Root) -> Result<Option<LastOperation>> {
    records::read_json_opt(root, LAST_OPERATION)
}

/// Every entry, oldest first. Lines that do not parse (a write cut short by a crash) are
/// skipped, and so are lines longer than any entry bsi writes, without being held.
pub(crate) fn read_all(root: &Root) -> Result<Vec<Entry>> {
    let Some(file) = open(root)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut overlong = false;
    loop {
        let chunk = reader.fill_buf().ctx("reading", root.show(HISTORY))?;
        if chunk.is_empty() {
            break;
        }
        let (part, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !overlong && line.len() + part.len() <= MAX_LINE {
            line.extend_from_slice(part);
        } else {
            overlong = true;
            line.clear();
        }
        let used = end.unwrap_or(chunk.len());
        reader.consume(used);
        if end.is_some() {
            if !overlong && let Ok(entry) = serde_json::from_slice::<Entry>(&line) {
                out.push(entry);
            }
            line.clear();
            overlong = false;
        }
    }
    if !overlong && let Ok(entry) = serde_json::from_slice::<Entry>(&line) {
        out.push(entry);
    }
    Ok(out)
}

/// The history file, opened as every file bsi keeps; `None` when there is none.
fn open(root: &Root) -> Result<Option<std::fs::File>> {
    match root.open_read(HISTORY) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(records::read_error(root, HISTORY, e)),
    }
}

/// The last `n` entries, oldest first, read from the end of the file: the cost is that of the
/// entries asked for, however long the history is.
pub(crate) fn read_last(root: &Root, n: usize) -> Result<Vec<Entry>> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 1 << 16;
    let Some(file) = open(root)? else {
        return Ok(Vec::new());
    };
    let mut pos = file.metadata().ctx("reading", root.show(HISTORY))?.len();
    let mut newest_first = Vec::new();
    // The end of a line whose start is in a block not read yet, unless it is too long to be
    // an entry (then only that is remembered).
    let mut tail: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut block = Vec::new();
    let take = |line: &[u8], overlong: bool, out: &mut Vec<Entry>| {
        if !overlong && let Ok(entry) = serde_json::from_slice::<Entry>(line) {
            out.push(entry);
        }
    };
    while pos > 0 && newest_first.len() < n {
        let start = pos.saturating_sub(BLOCK);
        block.resize(usize::try_from(pos - start).unwrap_or(0), 0);
        file.read_exact_at(&mut block, start)
            .ctx("reading", root.show(HISTORY))?;
        pos = start;
        let mut end = block.len();
        while let Some(i) = block[..end].iter().rposition(|&b| b == b'\n') {
            let mut line = block[i + 1..end].to_vec();
            line.extend_from_slice(&tail);
            take(&line, overlong || line.len() > MAX_LINE, &mut newest_first);
            tail.clear();
            overlong = false;
            end = i;
            if newest_first.len() == n {
                break;
            }
        }
        if overlong || tail.len() + end > MAX_LINE {
            overlong = true;
            tail.clear();
        } else {
            tail.splice(0..0, block[..end].iter().copied());
        }
    }
    if pos == 0 && newest_first.len() < n {
        take(&tail, overlong, &mut newest_first);
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// `history-summary.json`: what needs the whole history, kept as it is appended, so that no
/// command reads the history whole.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// For each base OS version (at most [`SUMMARY_BASES`], the latest), the newest response of
    /// its line that an `apply` or `auto` installed.
    pub newest_installed: std::collections::BTreeMap<String, String>,
    /// The cryptexes each response installed on this device carried itself (at most
    /// [`SUMMARY_CARRIED`], the latest versions): what `status --require` knows of a response
    /// that is no longer on the device.
    #[serde(default)]
    pub carried: std::collections::BTreeMap<String, Vec<crate::platform::Cryptex>>,
}

/// How many base versions the summary remembers.
const SUMMARY_BASES: usize = 32;
/// How many responses' cryptexes the summary remembers.
const SUMMARY_CARRIED: usize = 256;

/// Records that `version`, just installed, carried `cryptexes` itself (best effort: it only
/// sharpens `status --require`).
pub(crate) fn note_carried(
    root: &Root,
    version: crate::version::ResponseVersion,
    cryptexes: &[crate::platform::Cryptex],
) -> Result<()> {
    let mut summary = summary(root);
    summary
        .carried
        .insert(version.to_string(), cryptexes.to_vec());
    while summary.carried.len() > SUMMARY_CARRIED {
        let oldest = summary
            .carried
            .keys()
            .min_by_key(|k| k.parse::<crate::version::ResponseVersion>().ok())
            .cloned();
        if let Some(k) = oldest {
            summary.carried.remove(&k);
        }
    }
    records::write_json(root, SUMMARY, &summary)
}

/// The summary, empty when it is missing or damaged (it only adds detail to an update's
/// inclusion list, which the device's active and staged responses give too).
#[must_use]
pub(crate) fn summary(root: &Root) -> Summary {
    records::read_json_lenient(root, SUMMARY).unwrap_or_default()
}

/// Adds an installed response to the summary.
fn summarise(root: &Root, entry: &Entry) -> Result<()> {
    let installed =
        entry.result == OpResult::Ok && matches!(entry.action.as_str(), "apply" | "auto" | "sync");
    let Some(version) = entry
        .target
        .as_deref()
        .filter(|_| installed)
        .and_then(|t| t.parse::<crate::version::ResponseVersion>().ok())
    else {
        return Ok(());
    };
    let mut summary = summary(root);
    let key = version.os.to_string();
    let newer = summary
        .newest_installed
        .get(&key)
        .and_then(|v| v.parse::<crate::version::ResponseVersion>().ok())
        .is_none_or(|old| old < version);
    if !newer {
        return Ok(());
    }
    summary.newest_installed.insert(key, version.to_string());
    while summary.newest_installed.len() > SUMMARY_BASES {
        let oldest = summary
            .newest_installed
            .keys()
            .min_by_key(|k| k.parse::<crate::version::OsVersion>().ok())
            .cloned();
        if let Some(k) = oldest {
            summary.newest_installed.remove(&k);
        }
    }
    records::write_json(root, SUMMARY, &summary)
}

/// Entries as `bsi history` prints them.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Entries(pub Vec<Entry>);

impl Human for Entries {
    fn human(&self, out: &mut Text, _: u8) {
        let entries = &self.0;
        if entries.is_empty() {
            out.line("no history");
        }
        // Columns: time, command, result, the version change, then what happened.
        let result = |e: &Entry| {
            serde_json::to_value(e.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let change = |e: &Entry| match (&e.before, &e.after) {
            (Some(b), Some(a)) if b != a => format!("{b} -> {a}"),
            (None, Some(a)) => a.clone(),
            (Some(b), _) => b.clone(),
            _ => String::new(),
        };
        let width = |f: &dyn Fn(&Entry) -> String| {
            entries
                .iter()
                .map(|e| f(e).chars().count())
                .max()
                .unwrap_or(0)
        };
        let (wa, wr, wc) = (
            width(&|e: &Entry| e.action.clone()),
            width(&result),
            width(&change),
        );
        for e in entries {
            let mut text = format!(
                "{}  {:<wa$}  {:<wr$}  {:<wc$}",
                e.at,
                e.action,
                result(e),
                change(e),
            );
            if let Some(d) = &e.detail {
                text.push_str("  ");
                text.push_str(d);
            }
            if let Some(err) = &e.error {
                text.push_str("  error: ");
                text.push_str(err);
            }
            out.line(text.trim_end());
        }
    }
}
