//! Argument values: the platform and chip names clap parses, and the values clap cannot check
//! by itself, turned into the typed values the operations take, each refusal a usage error
//! (exit 2) with an example of a good value.

use std::time::Duration;

use clap::ValueEnum;

use crate::device::{Chip, Platform};
use crate::version::{Build, OsVersion};
use crate::{Error, Result};

pub(super) fn parse_os(text: &str) -> Result<OsVersion> {
    Ok(text.parse()?)
}

pub(super) fn parse_base_build(text: &str) -> Result<Build> {
    Ok(Build::parse_base(text)?)
}

/// `--timeout` and `--deadline`, as clap parses them: seconds above 0 and at most an hour.
pub(super) fn seconds(text: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds (e.g. 10)".to_owned())?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err("not a number of seconds above 0 and at most 3600 (e.g. 10)".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Checks an enrollment identifier given on the command line: it travels in an HTTP header.
pub(super) fn check_enrollment_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::usage(
            format!(
                "--enrollment-id `{}` is not an enrollment identifier",
                crate::untrusted::clip(id)
            ),
            "use 1 to 256 printable ASCII characters without spaces, e.g. a UUID",
        ));
    }
    Ok(())
}

/// `--platform` on the command line: Apple's product names, any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlatformArg {
    /// A Mac.
    #[value(name = "macOS")]
    MacOs,
    /// An iPhone.
    #[value(name = "iOS")]
    Ios,
    /// An iPad.
    #[value(name = "iPadOS")]
    IpadOs,
}

impl From<PlatformArg> for Platform {
    fn from(arg: PlatformArg) -> Self {
        match arg {
            PlatformArg::MacOs => Platform::MacOs,
            PlatformArg::Ios => Platform::Ios,
            PlatformArg::IpadOs => Platform::IpadOs,
        }
    }
}

/// `--chip` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ChipArg {
    /// Apple silicon (every iPhone and iPad, and Macs since 2020).
    AppleSilicon,
    /// An Intel-based Mac.
    Intel,
}

impl From<ChipArg> for Chip {
    fn from(arg: ChipArg) -> Self {
        match arg {
            ChipArg::AppleSilicon => Chip::AppleSilicon,
            ChipArg::Intel => Chip::Intel,
        }
    }
}
