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

/// A blocking call handed to a helper thread.
type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The thread that runs this thread's blocking calls, made at the first one. One helper
    /// for each calling thread, not a thread for each call: a fleet's poll makes about ten
    /// requests a device, and starting a thread for each was a tenth of its CPU.
    static HELPER: std::cell::RefCell<Option<std::sync::mpsc::Sender<Job>>> =
        const { std::cell::RefCell::new(None) };
}

fn helper() -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || {
        for job in rx {
            job();
        }
    });
    tx
}

/// Runs `work` (a blocking call that cannot be told to stop, such as an HTTP request) on this
/// thread's helper thread and waits for it, looking for a signal every 50 ms: an interruption
/// returns at once (the work is left to the process's exit, and the next call here gets a new
/// helper).
pub(crate) fn wait_for<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    use std::sync::mpsc::{RecvTimeoutError, SendError, channel};
    let (tx, rx) = channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    HELPER.with_borrow_mut(|slot| {
        // A helper whose job panicked has ended: its successor takes the job.
        if let Err(SendError(job)) = slot.get_or_insert_with(helper).send(job) {
            let fresh = helper();
            let _ = fresh.send(job);
            *slot = Some(fresh);
        }
    });
    let abandon = || HELPER.with_borrow_mut(|slot| *slot = None);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(value) => return Ok(value),
            Err(RecvTimeoutError::Timeout) => check().inspect_err(|_| abandon())?,
            Err(RecvTimeoutError::Disconnected) => {
                abandon();
                check()?;
                return Err(Error::Io {
                    action: "waiting for",
                    path: "a request".into(),
                    source: std::io::Error::other("the request's thread ended without an answer"),
                });
            }
        }
    }
}

/// Sleeps for `duration`, or until a signal arrives.
pub(crate) fn sleep(duration: std::time::Duration) -> Result<()> {
    let end = std::time::Instant::now() + duration;
    loop {
        check()?;
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_calls_share_a_helper_that_outlives_a_panic() {
        let first = wait_for(|| std::thread::current().id()).unwrap();
        assert_ne!(first, std::thread::current().id());
        assert_eq!(wait_for(|| std::thread::current().id()).unwrap(), first);
        // A job that panics ends its helper: its caller gets an error, the next call a new helper.
        let err = wait_for(|| -> u8 { panic!("a job that panics") }).unwrap_err();
        assert!(err.to_string().contains("ended without an answer"), "{err}");
        let next = wait_for(|| std::thread::current().id()).unwrap();
        assert_ne!(next, first);
        assert_eq!(wait_for(|| 7).unwrap(), 7);
    }
}
