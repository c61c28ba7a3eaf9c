//! The error as scripts see it: its stable cause ([`ErrorKind`], `"kind"` in a `--json`
//! error) and the one JSON object `--json` prints on stderr ([`ErrorReport`],
//! `docs/error.schema.json`).

use std::io;

use super::Error;

impl Error {
    /// A stable name for the cause, for scripts (`--json` errors carry it as `kind`;
    /// `docs/error.schema.json` lists them).
    #[must_use]
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            // A full volume is that, whichever write met it.
            Error::Io { source, .. } if is_full(source) => ErrorKind::NoSpace,
            Error::Io { .. } => ErrorKind::Io,
            Error::NoSpace { .. } => ErrorKind::NoSpace,
            Error::Server { .. } | Error::FleetFailures { .. } => ErrorKind::Server,
            Error::ReadOnly { .. } => ErrorKind::ReadOnly,
            Error::Identity { .. } => ErrorKind::Identity,
            Error::Usage { .. }
            | Error::Version(_)
            | Error::AlreadyInitialised { .. }
            | Error::RootNotEmpty { .. }
            | Error::BadInput { .. }
            | Error::NotFound(_)
            | Error::Declaration(_) => ErrorKind::Usage,
            Error::PowerGate { .. } => ErrorKind::Power,
            Error::Policy(_) => ErrorKind::Policy,
            Error::NotApplicable(_) => ErrorKind::NotApplicable,
            Error::Bundle(e) if e.exit_code() == 2 => ErrorKind::Usage,
            Error::Bundle(_) => ErrorKind::BundleRejected,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::NoDevice { .. } => ErrorKind::NoDevice,
            Error::Damaged { .. }
            | Error::FleetDamaged { .. }
            | Error::Escape { .. }
            | Error::VerifyFailed { .. }
            | Error::CannotRepair { .. }
            | Error::NeedsBundle { .. } => ErrorKind::Damaged,
            Error::RequireNotMet { .. } => ErrorKind::RequireNotMet,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
        }
    }
}

/// An error as `--json` prints it: one JSON object on stderr (`docs/error.schema.json`).
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorReport {
    /// What failed and why, in one line.
    pub error: String,
    /// What to do next, naming a command or a flag; null when there is nothing to do.
    pub hint: Option<String>,
    /// bsi's exit code (`docs/cli.md`).
    pub exit_code: u8,
    /// The cause, stable for scripts.
    pub kind: ErrorKind,
}

impl ErrorReport {
    /// The report of `error`.
    #[must_use]
    pub(crate) fn of(error: &Error) -> Self {
        Self {
            error: error.to_string(),
            hint: error.hint(),
            exit_code: error.exit_code(),
            kind: error.kind(),
        }
    }

    /// The JSON Schema of the report (`docs/error.schema.json`).
    #[must_use]
    pub fn schema() -> serde_json::Value {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        serde_json::to_value(generator.into_root_schema_for::<ErrorReport>()).unwrap_or_default()
    }
}

/// The cause of an error, as scripts see it (`"kind"` in a `--json` error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// An I/O error (exit 1).
    Io,
    /// Not enough space on the device's volume (exit 1).
    NoSpace,
    /// A DDM server was unreachable or answered with an error or a malformed body (exit 1).
    Server,
    /// The device is on a read-only filesystem (exit 1).
    ReadOnly,
    /// The MDM identity could not be made, read or used, or is outside its validity (exit 1).
    Identity,
    /// A bad flag, value or input file (exit 2).
    Usage,
    /// The battery is below the minimum and the device is not on power (exit 3).
    Power,
    /// Refused by a management declaration or a user setting (exit 4).
    Policy,
    /// The bundle cannot apply to this device (exit 5).
    NotApplicable,
    /// The bundle is malformed, unsigned, untrusted, tampered with or unsafe (exit 6).
    BundleRejected,
    /// Another bsi is changing the device (exit 7).
    Busy,
    /// There is no device at the root (exit 8).
    NoDevice,
    /// The device's state is damaged (exit 8).
    Damaged,
    /// `status --require` was not met (exit 9).
    RequireNotMet,
    /// The command was interrupted by a signal (exit 130 or 143).
    Interrupted,
    /// A bug in bsi (exit 1).
    Internal,
}

impl ErrorKind {
    /// The stable name (`power`, `no-space`, ...).
    #[must_use]
    pub(crate) fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Is this error a full volume (or an exhausted quota)?
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
