//! `status --require VERSION`: is the device at least at `VERSION`? Met when the active response
//! is that one or a later one of the same line, or when the base is a later minor version of the
//! same major release (which includes every response of earlier versions). A plain OS version
//! (`26.4`) is met by that base or any later one.

use crate::version::{OsVersion, ResponseVersion};
use crate::{Error, Result};

use super::Status;

/// What `--require` asks for.
#[derive(Clone, Copy, Debug)]
pub enum Requirement {
    /// A response, e.g. `26.3.1 (b)`.
    Response(ResponseVersion),
    /// An OS version, e.g. `26.4`.
    Os(OsVersion),
}

impl Requirement {
    /// Parses `26.3.1 (b)` or `26.4`.
    pub fn parse(text: &str) -> Result<Self> {
        if text.contains('(') {
            Ok(Requirement::Response(text.parse()?))
        } else {
            Ok(Requirement::Os(text.parse()?))
        }
    }
}

/// Checks `requirement` against collected status; exit 9 when not met.
pub fn check(status: &Status, requirement: Requirement) -> Result<()> {
    let base: OsVersion = status.os.version.parse()?;
    let active: Option<ResponseVersion> = match &status.active {
        Some(a) => Some(a.version.parse()?),
        None => None,
    };
    let met = match requirement {
        Requirement::Os(v) => base >= v,
        Requirement::Response(r) => {
            base.includes_responses_of(&r.os) || active.is_some_and(|a| a.os == r.os && a >= r)
        }
    };
    if met {
        Ok(())
    } else {
        let actual = active.map_or_else(|| base.to_string(), |a| a.to_string());
        Err(Error::RequireNotMet {
            required: match requirement {
                Requirement::Response(r) => r.to_string(),
                Requirement::Os(v) => v.to_string(),
            },
            actual,
        })
    }
}
