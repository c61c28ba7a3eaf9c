//! The device lock (`private/var/db/bsi/lock`): exclusive for commands that change the device.
//! Readers take no lock at all: they never wait, never write, and work with read access only;
//! they read a consistent snapshot instead (`Device::snapshot` through the one `current` link,
//! retried if a switch is caught half way) and learn what a changer is doing from the lock file.
//!
//! A second changer waits up to `--wait` seconds, then fails with exit 7 naming the holder. The
//! holder writes a small JSON record into the lock file while it holds the lock ([`Holder`]:
//! command, pid, start time, phase), updates the phase as it goes, and empties the file on
//! release, so that a finished command leaves the file as it found it (I4) and a reader can say
//! `"operation": {"command": "apply", "phase": "staging", ...}`.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Root;
use super::layout::LOCK;
use crate::error::IoContext;
use crate::{Error, Result};

/// How often a waiting command retries the lock.
const POLL: Duration = Duration::from_millis(10);

/// Shared (read) or exclusive (change) access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading: no lock, no waiting, no writing.
    Read,
    /// Changing: one at a time.
    Change,
}

/// Who holds the lock and what it is doing: the lock file's content while it is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct Holder {
    /// The command, e.g. `apply`; `unknown` for a changer that has taken the lock but not yet
    /// said who it is.
    pub command: String,
    /// Its process id; 0 when unknown.
    pub pid: u32,
    /// When it took the lock, RFC 3339; empty when unknown.
    pub started_at: String,
    /// What it is doing now: `checking`, `staging`, `switching`, `recording`, ...
    pub phase: String,
    /// The response it is installing (`26.3.1 (a)`) once it knows; null otherwise.
    #[serde(default)]
    pub target: Option<String>,
    /// That response's supplemental build.
    #[serde(default)]
    pub target_build: Option<String>,
    /// Why it installs it: `command-line`, `auto-update` or `declaration`.
    #[serde(default)]
    pub target_reason: Option<String>,
    /// The enforcing declaration, for `declaration`.
    #[serde(default)]
    pub target_declaration: Option<String>,
}

impl Holder {
    /// A holder record for this process.
    #[must_use]
    pub(crate) fn this(command: &str, started_at: &str) -> Self {
        Self {
            command: command.to_owned(),
            pid: std::process::id(),
            started_at: started_at.to_owned(),
            phase: "starting".to_owned(),
            target: None,
            target_build: None,
            target_reason: None,
            target_declaration: None,
        }
    }
}

/// A held device lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DeviceLock {
    file: File,
    holder: std::cell::RefCell<Holder>,
}

impl DeviceLock {
    /// Takes the lock exclusively, waiting up to `wait` for another holder to let go.
    pub(crate) fn acquire(root: &Root, wait: Duration, holder: Holder) -> Result<Self> {
        let file = root.open_file(LOCK, super::Open::ReadWrite).map_err(|e| {
            if super::is_damage(&e) {
                Error::damaged(format!(
                    "the device lock {}: {e}",
                    root.show(LOCK).display()
                ))
            } else {
                Error::io("opening the lock", root.show(LOCK), e)
            }
        })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => std::thread::sleep(POLL),
                Err(TryLockError::WouldBlock) => {
                    // Who holds it? A changer that just took the lock may not have written its
                    // record yet, one that is letting go has emptied it already, and a reader's
                    // probe holds it shared for an instant: look again, and try again, briefly.
                    let mut other = read_holder(&file);
                    for _ in 0..5 {
                        if other.is_some() {
                            break;
                        }
                        std::thread::sleep(POLL);
                        if file.try_lock().is_ok() {
                            return Self::held(file, holder, root);
                        }
                        other = read_holder(&file);
                    }
                    return Err(Error::Busy {
                        holder: other.map_or_else(
                            || "another bsi process".to_owned(),
                            |h| format!("pid {} (bsi {}, {})", h.pid, h.command, h.phase),
                        ),
                        waited: start.elapsed().as_secs_f64(),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("locking", root.show(LOCK), e));
                }
            }
        }
        Self::held(file, holder, root)
    }

    fn held(file: File, holder: Holder, root: &Root) -> Result<Self> {
        let lock = Self {
            file,
            holder: std::cell::RefCell::new(holder),
        };
        lock.write_holder().ctx("writing", root.show(LOCK))?;
        Ok(lock)
    }

    fn write_holder(&self) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&*self.holder.borrow()).unwrap_or_default();
        line.push(b'\n');
        // The new line first, then cut what is left of an older, longer one: a reader sees one
        // whole record on the first line at any moment.
        self.file.write_all_at(&line, 0)?;
        self.file.set_len(line.len() as u64)
    }

    /// The holder record as it stands.
    #[must_use]
    pub(crate) fn holder(&self) -> Holder {
        self.holder.borrow().clone()
    }

    /// Says what the holder is doing now (for readers); best effort.
    pub(crate) fn set_phase(&self, phase: &str) {
        phase.clone_into(&mut self.holder.borrow_mut().phase);
        let _ = self.write_holder();
    }

    /// Says which response the holder is installing (for readers); best effort.
    pub(crate) fn set_target(
        &self,
        version: &str,
        build: &str,
        reason: &str,
        declaration: Option<&str>,
    ) {
        {
            let mut h = self.holder.borrow_mut();
            h.target = Some(version.to_owned());
            h.target_build = Some(build.to_owned());
            h.target_reason = Some(reason.to_owned());
            h.target_declaration = declaration.map(str::to_owned);
        }
        let _ = self.write_holder();
    }
}

fn read_holder(mut file: &File) -> Option<Holder> {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(4096).read_to_string(&mut text);
    serde_json::from_str(text.lines().next().unwrap_or_default().trim()).ok()
}

/// What a reader learns from the lock without taking it or writing anything: the changer at
/// work, if one holds the lock. `None` when nobody holds it, or the file cannot be read.
#[must_use]
pub(crate) fn probe(root: &Root) -> Option<Holder> {
    let file = root.open_file(LOCK, super::Open::Read).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_holder(&file).unwrap_or_else(|| Holder {
            command: "unknown".to_owned(),
            pid: 0,
            started_at: String::new(),
            phase: "starting".to_owned(),
            target: None,
            target_build: None,
            target_reason: None,
            target_declaration: None,
        })),
        Err(TryLockError::Error(_)) => None,
    }
}

impl Drop for DeviceLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_the_holder_and_its_phase() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("private/var/db/bsi")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert_eq!(probe(&root), None);
        let lock = DeviceLock::acquire(
            &root,
            Duration::ZERO,
            Holder::this("apply", "2026-12-01T10:00:00Z"),
        )
        .unwrap();
        lock.set_phase("staging");
        let seen = probe(&root).unwrap();
        assert_eq!(
            (seen.command.as_str(), seen.phase.as_str()),
            ("apply", "staging")
        );
        let err = DeviceLock::acquire(&root, Duration::ZERO, Holder::this("restart", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(bsi apply, staging)"), "{err}");
        drop(lock);
        assert_eq!(probe(&root), None);
        assert_eq!(std::fs::read(dir.path().join(LOCK)).unwrap(), b"");
    }
}
