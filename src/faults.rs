//! Fault points for the crash-safety tests (see `docs/reliability.md`).
//!
//! With the `failpoints` cargo feature, `fault_point!("name")` is a `fail` crate fail point that
//! the tests arm through the `FAILPOINTS` environment variable, e.g.
//! `FAILPOINTS=stage.write=return(enospc)`: the enclosing function then returns an injected
//! `io::Error` (`enospc`: no space left on device, `eio`, or any other text: an I/O error). Without
//! the feature the macro expands to nothing, so release builds carry no trace of it.

#[cfg(feature = "failpoints")]
macro_rules! fault_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg: Option<String>| {
            Err($crate::faults::injected($name, arg.as_deref()).into())
        })
    };
}

#[cfg(not(feature = "failpoints"))]
macro_rules! fault_point {
    ($name:literal) => {};
}

pub(crate) use fault_point;

/// A point where the race tests pause a command (`FAILPOINTS=auto.scanned=sleep(1500)`) to
/// change the world under it; nothing without the `failpoints` feature.
#[cfg(feature = "failpoints")]
macro_rules! pause_point {
    ($name:literal) => {
        fail::fail_point!($name)
    };
}

#[cfg(not(feature = "failpoints"))]
macro_rules! pause_point {
    ($name:literal) => {};
}

pub(crate) use pause_point;

/// Whether `FAILPOINTS` arms the point `name` (`FAILPOINTS=name=return`): how a benchmark
/// switches a mechanism off to measure what it earns, and how a test forces a path. Always
/// `false` without the `failpoints` feature.
#[cfg(feature = "failpoints")]
macro_rules! armed {
    ($name:literal) => {
        (|| {
            fail::fail_point!($name, |_| true);
            false
        })()
    };
}

#[cfg(not(feature = "failpoints"))]
macro_rules! armed {
    ($name:literal) => {
        false
    };
}

pub(crate) use armed;

/// Arms the fault points from the `FAILPOINTS` environment variable for this process.
#[cfg(feature = "failpoints")]
pub(crate) fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Without the `failpoints` feature there is nothing to arm.
#[cfg(not(feature = "failpoints"))]
pub(crate) fn setup() -> Unarmed {
    Unarmed
}

/// What `setup` returns without fault points: nothing to tear down.
#[cfg(not(feature = "failpoints"))]
#[derive(Debug)]
pub(crate) struct Unarmed;

/// The error a fault point injects.
#[cfg(feature = "failpoints")]
pub(crate) fn injected(name: &str, arg: Option<&str>) -> std::io::Error {
    match arg {
        Some("enospc") => std::io::Error::from_raw_os_error(28),
        Some("eio") => std::io::Error::from_raw_os_error(5),
        other => std::io::Error::other(format!(
            "fault injected at {name}{}",
            other.map(|a| format!(" ({a})")).unwrap_or_default()
        )),
    }
}
