//! bsi manages the lifecycle of Apple's Background Security Improvements (security responses that
//! patch an OS between full updates) on a simulated device: a directory tree laid out like a Mac's
//! or an iPhone's system volumes.
//!
//! # Module index
//!
//! Pure logic, no I/O:
//! - [`version`]: OS versions, response versions and builds, and the rules that compare them.
//!
//! The device and what it records:
//! - [`device`]: root resolution, layout, records, the device lock, confined and atomic file
//!   operations, generations of cryptex content, and `init`.
//! - [`history`]: the append-only operation history and the last-operation record.
//!
//! Responses and their life:
//! - [`bundle`]: the response bundle format, Ed25519 keys and trust, making and reading bundles.
//! - [`lifecycle`]: apply, restart, relaunch-safari, rollback, update, upgrade, verify, repair,
//!   and the journal that makes each of them crash-safe.
//! - [`gates`]: the power gate and the management-policy gate.
//! - [`ddm`]: declarative device management: declarations, automatic install, enforcement,
//!   the software lookup catalog and the status report.
//!
//! Reporting and the command line:
//! - [`status`]: the `status --json` model (schema version 1) and its collection.
//! - [`progress`]: progress reporting for long work.
//! - [`cli`]: argument parsing, dispatch, and rendering of results for people and for scripts.
//!
//! Errors are typed per area and gathered in [`Error`], whose [`Error::exit_code`] is the
//! documented exit code of `docs/cli.md`.

pub mod bundle;
pub mod cli;
pub mod clock;
pub mod ddm;
pub mod device;
mod error;
mod faults;
pub mod gates;
pub mod history;
pub mod input;
pub mod lifecycle;
pub mod ops;
pub mod progress;
pub mod status;
pub mod untrusted;
pub mod version;

pub use cli::run;
pub use clock::Clock;
pub use error::{Error, Repair, Result};
