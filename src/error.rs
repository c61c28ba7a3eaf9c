//! The top-level error and its exit codes.
//!
//! Every failure bsi reports is one variant of [`Error`]. [`Error::exit_code`] maps each variant
//! to exactly one of the documented exit codes (`docs/cli.md`, DESIGN section 6) with an
//! exhaustive match, so a new variant cannot be added without choosing its code; [`Error::hint`]
//! gives the "what to do next" line printed under the message.

use std::io;
use std::path::{Path, PathBuf};

use crate::bundle::BundleError;
use crate::refusal::{DeclarationError, NotApplicable, NotFound, PolicyRefusal};
use crate::version::VersionError;

mod repair;
mod report;
pub(crate) use repair::Repair;
use repair::what_response;
pub(crate) use report::is_full;
pub use report::{ErrorKind, ErrorReport};

/// Result with bsi's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, grouped by exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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

    /// A server (DDM, MDM, SCEP) did not answer as the protocol says: unreachable, timed out,
    /// an HTTP error status, or a body that is not what the endpoint returns.
    #[error("{service}: {method} {endpoint}: {problem}")]
    Server {
        /// Which: `DDM server`, `MDM server`, `SCEP server`.
        service: &'static str,
        /// `GET` or `PUT`.
        method: &'static str,
        /// The endpoint, e.g. `/declaration-items`.
        endpoint: String,
        /// What went wrong, e.g. `HTTP 500 Internal Server Error` or `timed out after 10 s`.
        problem: String,
        /// What to do.
        hint: String,
    },

    /// The device is on a read-only filesystem: a changing command refuses before it changes
    /// anything.
    #[error("the device at {} is on a read-only filesystem; nothing was changed", root.display())]
    ReadOnly {
        /// The device root.
        root: PathBuf,
    },
    /// The device's MDM identity could not be made, read or used: a key, a certificate, a CMS
    /// message, or a certificate outside its validity (judged with the real clock).
    #[error("{problem}")]
    Identity {
        /// What went wrong.
        problem: String,
        /// What to do.
        hint: String,
    },
    /// Devices of a fleet failed (each failure is listed in the command's output).
    #[error("{failed} of {devices} devices failed to {command} (listed above)")]
    FleetFailures {
        /// The fleet command: `sync`, `enroll` or `poll`.
        command: &'static str,
        /// How many failed.
        failed: usize,
        /// How many the fleet has.
        devices: usize,
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
    /// A file the user named is not what the command takes: a declaration, a catalog, a key,
    /// or a tree to make a bundle from.
    #[error("{message}")]
    BadInput {
        /// What the file should have been; the hint follows from it.
        input: InputKind,
        /// What is wrong, naming the file and key.
        message: String,
    },

    /// A file given as a DDM declaration is not one.
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    /// What an argument names does not exist (a declaration, a key, a catalog entry).
    #[error(transparent)]
    NotFound(#[from] NotFound),

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
    #[error(transparent)]
    Policy(#[from] PolicyRefusal),

    // ---- 5: not applicable ----
    /// Wrong platform or base, older than installed, nothing to remove.
    #[error(transparent)]
    NotApplicable(#[from] NotApplicable),

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
    /// A fleet's `fleet.json` is not what bsi wrote (`bsi repair` works on one device, not on a
    /// fleet: the fix is a new fleet).
    #[error("{} is damaged: it is not a fleet file bsi wrote ({reason})", path.display())]
    FleetDamaged {
        /// The fleet file.
        path: PathBuf,
        /// What the parser found.
        reason: String,
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
    /// Damage that nothing on the device can undo: only making the device again does.
    #[error("the device cannot be repaired: {message}")]
    CannotRepair {
        /// What is damaged beyond what the device holds copies of.
        message: String,
        /// The device root.
        root: PathBuf,
    },
    /// A path inside the device leads outside its root (a planted symlink).
    #[error("{} leads outside the device root (a symlink inside the device points elsewhere); bsi refuses to follow it", path.display())]
    Escape {
        /// The path that escapes.
        path: PathBuf,
    },

    // ---- 130/143: interrupted ----
    /// SIGINT or SIGTERM stopped the command; it cleaned up first.
    #[error("interrupted by {signal}: {state}")]
    Interrupted {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// What state the device or the output is in.
        state: String,
    },

    // ---- 9: --require not met ----
    /// `status --require` was not met.
    #[error("requirement not met: {required} is required, the device runs {actual}")]
    RequireNotMet {
        /// What was required.
        required: String,
        /// What the device runs.
        actual: String,
        /// What it would take.
        gap: RequireGap,
    },
}

impl Error {
    /// The documented exit code for this error (`docs/cli.md`).
    #[must_use]
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. }
            | Error::NoSpace { .. }
            | Error::Server { .. }
            | Error::ReadOnly { .. }
            | Error::Identity { .. }
            | Error::FleetFailures { .. } => 1,
            Error::Usage { .. }
            | Error::Version(_)
            | Error::AlreadyInitialised { .. }
            | Error::RootNotEmpty { .. }
            | Error::BadInput { .. }
            | Error::NotFound(_)
            | Error::Declaration(_) => 2,
            Error::PowerGate { .. } => 3,
            Error::Policy(_) => 4,
            Error::NotApplicable(_) => 5,
            Error::Bundle(e) => e.exit_code(),
            Error::Busy { .. } => 7,
            Error::NoDevice { .. }
            | Error::Damaged { .. }
            | Error::FleetDamaged { .. }
            | Error::Escape { .. }
            | Error::VerifyFailed { .. }
            | Error::CannotRepair { .. }
            | Error::NeedsBundle { .. } => 8,
            Error::RequireNotMet { .. } => 9,
            Error::Interrupted { signal, .. } => {
                if *signal == "SIGTERM" {
                    143
                } else {
                    130
                }
            }
        }
    }

    /// The "what to do next" line shown under the message, if there is one.
    #[must_use]
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Io { source, .. } if is_full(source) => {
                "the volume is full: free some space on it, then try again".to_owned()
            }
            Error::Io { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                "check the path's permissions (bsi needs to write there), then try again".to_owned()
            }
            Error::Io { .. } => "check the path and its filesystem, then try again".to_owned(),
            Error::NoSpace { .. } => {
                "free some space on the device's volume, then apply again".to_owned()
            }
            Error::Server { hint, .. } | Error::Identity { hint, .. } => hint.clone(),
            Error::ReadOnly { .. } => "remount it read-write (or copy the device to writable storage), then try again; reading commands (status, verify, history, report) work on a read-only device".to_owned(),
            Error::FleetFailures { command, .. } => format!("fix what the failures name, then run `bsi fleet {command}` again (devices that succeeded are up to date)"),
            Error::Policy(refusal) => refusal.hint(),
            Error::NotApplicable(refusal) => refusal.hint(),
            Error::Usage { hint, .. } => {
                if hint.is_empty() {
                    return None;
                }
                hint.clone()
            }
            Error::Version(_) => "an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more".to_owned(),
            Error::AlreadyInitialised { .. } => {
                "pass --force to replace it with a new device (its state is lost)".to_owned()
            }
            Error::RootNotEmpty { .. } => "choose an empty or new directory with --root".to_owned(),
            Error::BadInput { input, .. } => input.hint().to_owned(),
            Error::Declaration(_) => InputKind::Declaration.hint().to_owned(),
            Error::NotFound(e) => e.hint(),
            Error::PowerGate { .. } => {
                "connect the device to power (`bsi power --ac`) or charge it, then try again"
                    .to_owned()
            }
            Error::Bundle(e) => e.hint(),
            Error::Busy { .. } => {
                "wait for the other bsi to finish, or pass --wait SECONDS to wait longer".to_owned()
            }
            Error::NoDevice { root } => no_device_hint(root),
            Error::Damaged { .. } | Error::Escape { .. } => {
                "run `bsi repair` to bring the device back to a consistent state".to_owned()
            }
            Error::FleetDamaged { path, .. } => {
                let dir = path.parent().unwrap_or(Path::new("."));
                format!(
                    "restore {} from a copy, or make the fleet again in a new directory (`bsi fleet init --dir NEW --count N`); its devices under {} are intact",
                    path.display(),
                    dir.join("devices").display()
                )
            }
            Error::VerifyFailed { fix, .. } => fix.hint(),
            Error::CannotRepair { root, .. } => Repair::Reinit { root: root.clone() }.hint(),
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
            Error::RequireNotMet { required, gap, .. } => match gap {
                RequireGap::Response => format!(
                    "apply {required} or a later response of its line (`bsi apply BUNDLE --restart`)"
                ),
                RequireGap::OsUpdate { version } => format!(
                    "the device needs the OS update to {version} first (`bsi update --version {version} --build BUILD`), then any response it needs"
                ),
                RequireGap::OsUpgrade { version } => format!(
                    "the device needs the OS upgrade to {version} first (`bsi upgrade --version {version} --build BUILD`)"
                ),
                RequireGap::Content { cryptex } => format!(
                    "its {cryptex} content comes from the base, not from {required} or a later response: apply a response of the line that carries {cryptex} content, {required} or later (`bsi apply BUNDLE --restart`)"
                ),
            },
            Error::Interrupted { .. } => "run the command again".to_owned(),
        })
    }

    /// An I/O error on `path`; an escape from the root becomes [`Error::Escape`].
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if is_escape(&source) {
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
    pub(crate) fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An identity failure.
    pub(crate) fn identity(problem: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Identity {
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    /// Damaged device state.
    pub(crate) fn damaged(message: impl Into<String>) -> Self {
        Error::Damaged {
            message: message.into(),
        }
    }
}

/// What a file given to a command should have been ([`Error::BadInput`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A DDM declaration (`policy set`).
    Declaration,
    /// A software lookup catalog (`lookup`, `update --catalog`, `auto --catalog`).
    Catalog,
    /// An Ed25519 private key (`bundle sign --key`).
    PrivateKey,
    /// An Ed25519 public key (`trust add`, `init --trust`, `bundle inspect --key`).
    PublicKey,
    /// A cryptex tree (`bundle create --os/--app`).
    BundleSource,
}

impl InputKind {
    /// What to do about a bad one.
    #[must_use]
    pub(crate) fn hint(self) -> &'static str {
        match self {
            InputKind::Declaration => {
                "a declaration is one JSON object with Type, Identifier, ServerToken and Payload, as a DDM server sends it (fixtures/declarations/ has examples); fix it and `bsi policy set` it again"
            }
            InputKind::Catalog => {
                "give the JSON the Apple Software Lookup Service publishes (fixtures/catalog.json has its shape)"
            }
            InputKind::PrivateKey => "give the private key `bsi key generate --out FILE` wrote",
            InputKind::PublicKey => {
                "give the public key (FILE.pub) that `bsi key generate --out FILE` wrote for the signer"
            }
            InputKind::BundleSource => {
                "fix what the message names in the tree, then run `bsi bundle create` again"
            }
        }
    }
}

/// What it would take to meet a `--require` that is not met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RequireGap {
    /// A response of the device's own line: apply it.
    Response,
    /// A later minor version: update the OS first.
    OsUpdate {
        /// The version to update to.
        version: String,
    },
    /// A later major version: upgrade first.
    OsUpgrade {
        /// The version to upgrade to.
        version: String,
    },
    /// The active response is late enough, but a cryptex's content comes from the base.
    Content {
        /// The cryptex that lacks the content.
        cryptex: crate::platform::Cryptex,
    },
}

/// Is this the error cap-std gives when a path would resolve outside the device root?
#[must_use]
pub(crate) fn is_escape(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
        && error.to_string().contains("outside of the filesystem")
}

/// What to do about no device at `root`, by what is there: the hint names a command that works.
fn no_device_hint(root: &Path) -> String {
    let shown = shell_word(&root.display().to_string());
    match std::fs::metadata(root) {
        Ok(meta) if !meta.is_dir() => format!(
            "{} is {}; --root (or BSI_ROOT) names a directory: make a device in an empty or new one with `bsi init --root DIR`",
            root.display(),
            kind_of(&meta)
        ),
        Ok(_) if std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_some()) => format!(
            "{} is not empty and holds no device: point --root (or BSI_ROOT) at a device, or make one in an empty or new directory with `bsi init --root DIR`",
            root.display()
        ),
        _ => format!("create one with `bsi init --root {shown}`"),
    }
}

/// What a file is, as a noun phrase: `a regular file`, `a character device`.
#[must_use]
pub(crate) fn kind_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("a {}", kind_name(meta.mode()))
}

/// What a file of mode `mode` (`st_mode`) is, as a noun: `regular file`, `directory`,
/// `symlink`, `FIFO`, `socket`, `character device`, `block device` or `special file`. The one
/// place messages name a kind of file.
#[must_use]
pub(crate) fn kind_name(mode: u32) -> &'static str {
    use rustix::fs::FileType;
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "special file",
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
