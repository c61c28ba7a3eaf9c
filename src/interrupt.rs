//! SIGINT (Ctrl-C) and SIGTERM. The first one only sets a flag; long work (streaming a payload,
//! packing, creating a bundle) checks it between chunks with [`check`] and stops with
//! [`Error::Interrupted`], so the ordinary error path cleans up (the staging directory, the
//! temporary tar) and the history records the command as interrupted; the process then exits
//! 130 or 143 after one line saying what state the device or output is in. A second signal
//! ends the process at once (the journal lets the next command recover, as after a kill).
//! Work after a change's switch does not check: it completes.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::signal::{SIGINT, SIGTERM};

use crate::{Error, Result};

static CAUGHT: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
static AGAIN: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Installs the handlers (the command line does, once; a library caller keeps its own).
pub(crate) fn install() {
    for signal in [SIGINT, SIGTERM] {
        // A second signal takes the default action (terminate); the first only sets flags.
        let _ = signal_hook::flag::register_conditional_default(signal, Arc::clone(&AGAIN));
        let _ = signal_hook::flag::register(signal, Arc::clone(&AGAIN));
        let _ = signal_hook::flag::register_usize(
            signal,
            Arc::clone(&CAUGHT),
            usize::try_from(signal).unwrap_or(0),
        );
    }
}

/// `Err(Error::Interrupted)` once SIGINT or SIGTERM arrived.
pub(crate) fn check() -> Result<()> {
    match CAUGHT.load(Ordering::Relaxed) {
        0 => Ok(()),
        n if n == usize::try_from(SIGTERM).unwrap_or(0) => Err(interrupted("SIGTERM")),
        _ => Err(interrupted("SIGINT")),
    }
}

fn interrupted(signal: &'static str) -> Error {
    Error::Interrupted {
        signal,
        state: "stopped before it finished".to_owned(),
    }
}

/// `error` with what state things are in, when it is an interruption.
#[must_use]
pub(crate) fn saying(error: Error, state: &str) -> Error {
    match error {
        Error::Interrupted { signal, .. } => Error::Interrupted {
            signal,
            state: state.to_owned(),
        },
        other => other,
    }
}
