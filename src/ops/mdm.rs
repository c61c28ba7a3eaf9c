//! The MDM device's operations, each through [`change`](super::change) like every other
//! change: `enroll`, `unenroll`, and `poll`, which answers `NotNow` without changing anything
//! while another bsi holds the device.

use std::time::Duration;

use super::{Done, Env, Recorded, change, open_read};
use crate::mdm::enrollment::{self, EnrollOptions, EnrollOutcome, UnenrollOutcome};
use crate::mdm::poll::{self, PollOptions, PollOutcome};
use crate::progress::Progress;
use crate::{Error, Result};

/// A poll and what its DDM sync's background pass left to say.
#[derive(Debug)]
pub(crate) struct Polled {
    /// The outcome.
    pub outcome: PollOutcome,
    /// The background pass's error, if it failed.
    pub deferred: Option<Error>,
}

impl Recorded for EnrollOutcome {
    fn summary(&self) -> String {
        format!(
            "enrolled as {} in {} (topic {})",
            self.udid, self.server_url, self.topic
        )
    }
    fn target(&self) -> Option<String> {
        Some(self.server_url.clone())
    }
}

impl Recorded for UnenrollOutcome {
    fn summary(&self) -> String {
        match (&self.check_out_error, self.checked_out) {
            (_, true) => format!("checked out of {}", self.server_url),
            (Some(e), false) => format!("left {} without CheckOut ({e})", self.server_url),
            (None, false) => format!("left {}", self.server_url),
        }
    }
    fn target(&self) -> Option<String> {
        Some(self.server_url.clone())
    }
}

impl Recorded for Polled {
    fn summary(&self) -> String {
        let o = &self.outcome;
        let mut parts = vec![format!("{} command(s) answered", o.commands.len())];
        parts.extend(
            o.commands
                .iter()
                .map(|c| format!("{} {}", c.request_type, c.status)),
        );
        if let Some(s) = &o.sync {
            parts.push(format!("DDM: {} declaration change(s)", s.changes.len()));
            if let Some(a) = &s.auto {
                parts.extend(a.log.iter().cloned());
            }
        }
        if let Some(e) = &self.deferred {
            parts.push(format!("background pass failed: {e}"));
        }
        parts.join("; ")
    }
    fn nothing_to_do(&self) -> bool {
        self.outcome.commands.is_empty() && self.outcome.sync.is_none()
    }
}

/// `bsi mdm enroll`.
pub(crate) fn enroll(env: &Env, opts: &EnrollOptions) -> Result<Done<EnrollOutcome>> {
    change(env, "mdm enroll", opts.dry_run, None, |tx| {
        enrollment::enroll(tx, opts)
    })
}

/// `bsi mdm unenroll`.
pub(crate) fn unenroll(
    env: &Env,
    timeout: Duration,
    dry_run: bool,
) -> Result<Done<UnenrollOutcome>> {
    change(env, "mdm unenroll", dry_run, None, |tx| {
        enrollment::unenroll(tx, timeout, dry_run)
    })
}

/// `bsi mdm poll`: answers the server's commands. While another bsi holds the device lock,
/// every command is answered `NotNow` and nothing changes (no lock taken, nothing written).
pub(crate) fn poll(env: &Env, opts: &PollOptions, progress: &dyn Progress) -> Result<Done<Polled>> {
    let now = Env {
        wait: Duration::ZERO,
        ..env.clone()
    };
    let result = change(&now, "mdm poll", false, None, |tx| {
        poll::poll(tx, opts, progress).map(|(outcome, deferred)| Polled { outcome, deferred })
    });
    match result {
        Err(Error::Busy { .. }) => {
            let device = open_read(env)?;
            Ok(Done {
                value: Polled {
                    outcome: poll::poll_busy(&device, opts)?,
                    deferred: None,
                },
                warnings: Vec::new(),
            })
        }
        other => other,
    }
}
