//! The device lock (`private/var/db/bsi/lock`): exclusive for commands that change the device,
//! shared for commands that only read it, so that a reader never sees a change half made.
//!
//! A second changer waits up to `--wait` seconds, then fails with exit 7 naming the holder. The
//! holder writes "pid N: command" into the lock file while it holds the lock exclusively and
//! empties it on release, so that a finished command leaves the file as it found it (I4).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::time::{Duration, Instant};

use cap_std::fs::OpenOptions;

use super::Root;
use super::layout::LOCK;
use crate::error::IoContext;
use crate::{Error, Result};

/// How often a waiting command retries the lock.
const POLL: Duration = Duration::from_millis(10);

/// Shared (read) or exclusive (change) access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading: many readers at once, no changer.
    Read,
    /// Changing: one at a time, no reader.
    Change,
}

/// A held device lock; released when dropped.
#[derive(Debug)]
pub struct DeviceLock {
    file: File,
    access: Access,
}

impl DeviceLock {
    /// Takes the lock, waiting up to `wait` for another holder to let go.
    pub fn acquire(root: &Root, access: Access, wait: Duration, command: &str) -> Result<Self> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        let file = root
            .dir()
            .open_with(LOCK, &options)
            .ctx("opening the lock", root.show(LOCK))?
            .into_std();
        let mut lock = DeviceLock { file, access };
        lock.take(root, access, wait, command)?;
        Ok(lock)
    }

    /// Which access this lock gives.
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// Turns a shared lock into an exclusive one (to recover an interrupted operation before
    /// reading), waiting up to `wait`.
    pub fn upgrade(&mut self, root: &Root, wait: Duration, command: &str) -> Result<()> {
        if self.access == Access::Change {
            return Ok(());
        }
        // flock cannot upgrade in place without a window; release and retake.
        let _ = self.file.unlock();
        self.take(root, Access::Change, wait, command)?;
        self.access = Access::Change;
        Ok(())
    }

    fn take(&mut self, root: &Root, access: Access, wait: Duration, command: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            let attempt = match access {
                Access::Read => self.file.try_lock_shared(),
                Access::Change => self.file.try_lock(),
            };
            match attempt {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => std::thread::sleep(POLL),
                Err(TryLockError::WouldBlock) => {
                    let mut holder = self.holder();
                    if holder.is_none() {
                        // The holder may have just taken the lock and not yet written its name.
                        std::thread::sleep(POLL * 3);
                        holder = self.holder();
                    }
                    return Err(Error::Busy {
                        holder: holder.unwrap_or_else(|| {
                            "another bsi process (reading the device)".to_owned()
                        }),
                        waited: start.elapsed().as_secs_f64(),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("locking", root.show(LOCK), e));
                }
            }
        }
        if access == Access::Change {
            let line = format!("pid {}: {command}\n", std::process::id());
            let written = self
                .file
                .set_len(0)
                .and_then(|()| self.file.rewind())
                .and_then(|()| self.file.write_all(line.as_bytes()));
            written.ctx("writing", root.show(LOCK))?;
        }
        Ok(())
    }

    fn holder(&mut self) -> Option<String> {
        let mut text = String::new();
        let _ = self.file.rewind();
        let _ = (&self.file).take(4096).read_to_string(&mut text);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

impl Drop for DeviceLock {
    fn drop(&mut self) {
        if self.access == Access::Change {
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}
