//! bsi manages the lifecycle of Apple's Background Security Improvements (security responses that
//! patch an OS between full updates) on a simulated device: a directory tree laid out like a Mac's
//! or an iPhone's system volumes.
//!
//! # Module index
//!
//! The modules form one line: each uses only the ones before it (`docs/architecture.md` draws it
//! and says where new code goes).
//!
//! - [`version`]: OS versions, response versions and builds, and the rules that compare them (pure).
//! - [`platform`]: the platforms, chips and cryptexes (pure names).
//! - [`untrusted`], [`input`], [`clock`], [`progress`]: showing untrusted text safely, reading files
//!   a user names, the (fixable) clock, progress reporting.
//! - [`human`]: the text results show people ([`human::Human`]), and the one pass every
//!   printed text goes through.
//! - [`plist_xml`]: the one bounded reader of every property list bsi reads (XML only).
//! - [`bundle`]: the response bundle format, Ed25519 keys, making, reading and checking bundles.
//! - [`device`]: the simulated device: root, layout, records, trust store, lock, confined and
//!   atomic file operations, content generations and their sources.
//! - [`history`]: the append-only operation history and the last-operation record.
//! - [`declarations`]: DDM declarations as a device validates and stores them.
//! - [`gates`]: the power gate and the management-policy gate.
//! - [`lifecycle`]: the rules that change a device: init, apply, restart, relaunch-safari,
//!   rollback, update, upgrade, verify, repair, and the journal that makes each crash-safe.
//! - [`status`]: the `status --json` model (schema version 1) and its collection.
//! - [`ddm`]: automatic install and enforcement, the lookup catalog, the DDM status report, and
//!   the DDM protocol client (`sync`).
//! - [`ops`]: every command as one operation owning the protocol (lock, recovery, journal,
//!   history) around the rules.
//! - [`fleet`]: many devices made from a seed and synced with a DDM server in parallel.
//! - [`cli`]: argument parsing, dispatch to `ops`, rendering for people and for scripts.
//!
//! Errors are typed per area and gathered in [`Error`], whose [`Error::exit_code`] is the
//! documented exit code of `docs/cli.md`.

pub(crate) mod bundle;
pub(crate) mod cli;
pub(crate) mod clock;
pub(crate) mod ddm;
pub(crate) mod declarations;
pub(crate) mod device;
mod error;
mod faults;
pub(crate) mod fleet;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod gates;
pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod human;
pub(crate) mod input;
pub(crate) mod interrupt;
pub(crate) mod lifecycle;
pub(crate) mod mdm;
pub(crate) mod ops;
pub(crate) mod platform;
pub(crate) mod plist_xml;
pub(crate) mod progress;
pub(crate) mod refusal;
pub(crate) mod status;
pub(crate) mod untrusted;
pub(crate) mod version;

pub use cli::run;
pub(crate) use clock::Clock;
pub(crate) use error::{Error, InputKind, RequireGap, Result};
pub use error::{ErrorKind, ErrorReport};
