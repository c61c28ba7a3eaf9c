//! The top-level error and its exit codes.
//!
//! Every failure bsi reports is one variant of [`Error`]. [`Error::exit_code`] maps each variant
//! to exactly one of the documented exit codes (`docs/cli.md`, DESIGN section 6) with an
//! exhaustive match, so a new variant cannot be added without choosing its code; [`Error::hint`]
//! gives the "what to do next" line printed under the message.

use std::io;
use std::path::{Path, PathBuf};

use crate::bundle::BundleError;
use crate::version::VersionError;

/// Result with bsi's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, grouped by exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- 1: the operation failed ----
    /// An I/O error on a named path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What bsi was doing, e.g. "writing".
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The device has too little free space for the payload.
    #[error(
        "not enough space on the device's volume: the payload needs {needed} bytes, {available} are free"
    )]
    NoSpace {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes free.
        available: u64,
    },

    // ---- 2: usage ----
    /// A bad flag value or combination.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// A version or build given on the command line is malformed.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// `bsi init` on a root that already holds a device.
    #[error("{} already holds a bsi device", root.display())]
    AlreadyInitialised {
        /// The device root.
        root: PathBuf,
    },
    /// `bsi init` on a non-empty directory that is not a device.
    #[error("{} is not empty and holds no bsi device; refusing to initialise over it", root.display())]
    RootNotEmpty {
        /// The directory.
        root: PathBuf,
    },
    /// A file that should hold a DDM declaration or a catalog does not.
    #[error("{message}")]
    BadInput {
        /// What is wrong, naming the file and key.
        message: String,
    },

    // ---- 3: power gate ----
    /// Battery below the minimum and not on power.
    #[error(
        "battery at {battery} % is below the {minimum} % minimum for {what}, and the device is not on power"
    )]
    PowerGate {
        /// Current charge.
        battery: u8,
        /// Required charge.
        minimum: u8,
        /// Which kind of device, e.g. "a Mac laptop with Apple silicon".
        what: &'static str,
    },

    // ---- 4: policy or setting ----
    /// Refused by a management declaration or by a user setting.
    #[error("{message}")]
    Policy {
        /// What was refused and by what.
        message: String,
        /// What to do.
        hint: String,
    },

    // ---- 5: not applicable ----
    /// Wrong platform or base, older than installed, nothing to remove.
    #[error("{message}")]
    NotApplicable {
        /// Why the operation does not apply.
        message: String,
        /// What to do.
        hint: String,
    },

    // ---- 6: bundle rejected ----
    /// The bundle is malformed, unsigned, untrusted, tampered with or unsafe.
    #[error(transparent)]
    Bundle(#[from] BundleError),

    // ---- 7: busy ----
    /// Another bsi holds the device lock.
    #[error("the device is busy: {holder} holds its lock (waited {waited:.1} s)")]
    Busy {
        /// Who holds the lock, e.g. "pid 4242 (bsi apply ...)".
        holder: String,
        /// How long this command waited.
        waited: f64,
    },

    // ---- 8: no device, or damaged ----
    /// No device at the root.
    #[error("no bsi device at {}", root.display())]
    NoDevice {
        /// The root that was searched.
        root: PathBuf,
    },
    /// The device's state is damaged.
    #[error("the device is damaged: {message}")]
    Damaged {
        /// What is wrong, naming paths.
        message: String,
    },
    /// `verify` found problems; the hint names the command that fixes them.
    #[error("verify found {count} problem{} in the device (listed above)", if *count == 1 { "" } else { "s" })]
    VerifyFailed {
        /// How many problems.
        count: usize,
        /// What fixes them.
        fix: Repair,
    },
    /// A response's content is damaged and only its bundle can restore it.
    #[error("the content of {} is damaged and only its bundle can restore it", what_response(version.as_deref(), build))]
    NeedsBundle {
        /// The response's version, when known.
        version: Option<String>,
        /// Its supplemental build.
        build: String,
        /// The bundle it was applied from, when recorded.
        bundle: Option<PathBuf>,
    },
    /// A path inside the device leads outside its root (a planted symlink).
    #[error("{} leads outside the device root (a symlink inside the device points elsewhere); bsi refuses to follow it", path.display())]
    Escape {
        /// The path that escapes.
        path: PathBuf,
    },

    // ---- 9: --require not met ----
    /// `status --require` was not met.
    #[error("requirement not met: {required} is required, the device runs {actual}")]
    RequireNotMet {
        /// What was required.
        required: String,
        /// What the device runs.
        actual: String,
    },
}

impl Error {
    /// The documented exit code for this error (`docs/cli.md`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } | Error::NoSpace { .. } => 1,
            Error::Usage { .. }
            | Error::Version(_)
            | Error::AlreadyInitialised { .. }
            | Error::RootNotEmpty { .. }
            | Error::BadInput { .. } => 2,
            Error::PowerGate { .. } => 3,
            Error::Policy { .. } => 4,
            Error::NotApplicable { .. } => 5,
            Error::Bundle(e) => e.exit_code(),
            Error::Busy { .. } => 7,
            Error::NoDevice { .. }
            | Error::Damaged { .. }
            | Error::Escape { .. }
            | Error::VerifyFailed { .. }
            | Error::NeedsBundle { .. } => 8,
            Error::RequireNotMet { .. } => 9,
        }
    }

    /// The "what to do next" line shown under the message, if there is one.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Io { .. } => {
                "check the path's permissions and free space, then try again".to_owned()
            }
            Error::NoSpace { .. } => {
                "free some space on the device's volume, then apply again".to_owned()
            }
            Error::Usage { hint, .. }
            | Error::Policy { hint, .. }
            | Error::NotApplicable { hint, .. } => {
                if hint.is_empty() {
                    return None;
                }
                hint.clone()
            }
            Error::Version(_) => "see `bsi help` for the version formats bsi accepts".to_owned(),
            Error::AlreadyInitialised { .. } => {
                "pass --force to replace it with a new device (its state is lost)".to_owned()
            }
            Error::RootNotEmpty { .. } => "choose an empty or new directory with --root".to_owned(),
            Error::BadInput { .. } => return None,
            Error::PowerGate { .. } => {
                "connect the device to power (`bsi power --ac`) or charge it, then try again"
                    .to_owned()
            }
            Error::Bundle(e) => return e.hint(),
            Error::Busy { .. } => {
                "wait for the other bsi to finish, or pass --wait SECONDS to wait longer".to_owned()
            }
            Error::NoDevice { root } => {
                format!("create one with `bsi init --root {}`", root.display())
            }
            Error::Damaged { .. } | Error::Escape { .. } => {
                "run `bsi repair` to bring the device back to a consistent state".to_owned()
            }
            Error::VerifyFailed { fix, .. } => fix.hint(),
            Error::NeedsBundle {
                version,
                build,
                bundle,
            } => Repair::From {
                version: version.clone(),
                build: build.clone(),
                bundle: bundle.clone(),
            }
            .hint(),
            Error::RequireNotMet { .. } => {
                "apply the required response (`bsi apply`) and restart".to_owned()
            }
        })
    }

    /// An I/O error on `path`; an escape from the root becomes [`Error::Escape`].
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if crate::device::is_escape(&source) {
            Error::Escape { path }
        } else {
            Error::Io {
                action,
                path,
                source,
            }
        }
    }

    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A not-applicable refusal with a hint.
    pub fn not_applicable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::NotApplicable {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A policy refusal with a hint.
    pub fn policy(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Policy {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Damaged device state.
    pub fn damaged(message: impl Into<String>) -> Self {
        Error::Damaged {
            message: message.into(),
        }
    }
}

/// The command that fixes damage `verify` or `repair` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// `bsi repair`: links, records, leftovers and the base content, which bsi made itself.
    Repair,
    /// `bsi repair --from BUNDLE`: a response's content, from its bundle.
    From {
        /// The response's version, when known.
        version: Option<String>,
        /// Its supplemental build.
        build: String,
        /// The bundle it was applied from, when the device recorded it.
        bundle: Option<PathBuf>,
    },
}

fn what_response(version: Option<&str>, build: &str) -> String {
    match version {
        Some(v) => format!("{v} ({build})"),
        None => format!("the response with build {build}"),
    }
}

impl Repair {
    /// The command, as a person would type it.
    #[must_use]
    pub fn command(&self) -> String {
        match self {
            Repair::Repair => "bsi repair".to_owned(),
            Repair::From {
                bundle: Some(path), ..
            } => format!(
                "bsi repair --from {}",
                shell_word(&path.display().to_string())
            ),
            Repair::From { .. } => "bsi repair --from BUNDLE".to_owned(),
        }
    }

    /// The hint line.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            Repair::Repair => {
                "run `bsi repair`: it restores what bsi made itself (links, records, base content)"
                    .to_owned()
            }
            Repair::From {
                version,
                build,
                bundle,
            } => {
                let what = what_response(version.as_deref(), build);
                match bundle {
                    Some(_) => format!(
                        "restore {what} from the bundle it was applied from: `{}`",
                        self.command()
                    ),
                    None => format!(
                        "restore {what} from its bundle: `bsi repair --from BUNDLE`, BUNDLE being that response's signed bundle"
                    ),
                }
            }
        }
    }
}

/// Quotes a word for a POSIX shell when it needs it.
#[must_use]
pub(crate) fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Attaches a path and an action to I/O results.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] (or [`Error::Escape`]) naming `path`.
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
