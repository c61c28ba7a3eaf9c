//! The version engine: OS versions (`26.3.1`), response versions (`26.3.1 (a)`), and build numbers
//! (`25D2128`, `25D5087f`, `25D771280a`).
//!
//! Everything here is pure: strings in, typed values or a [`VersionError`] out, no I/O and no
//! knowledge of devices or bundles. The rest of bsi asks this module the questions Apple's rules
//! turn on: is X newer than Y, is this a minor update or a major upgrade of that, does this response
//! belong to this base. Keeping those answers in one place is what lets the lifecycle rules stay
//! short.

mod build;
mod error;
mod extra;
mod os_version;
mod response_version;

pub(crate) use build::{BaseMove, Build};
pub(crate) use error::VersionError;
pub(crate) use extra::Extra;
pub(crate) use os_version::{OsVersion, UpdateKind};
pub(crate) use response_version::ResponseVersion;

/// A base OS as the device knows it: the marketing version and the build it runs.
///
/// A response belongs to a base when its `ProductVersion` equals `version` and its
/// `PrerequisiteBuild` equals `build`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Base {
    /// The OS version, e.g. `26.3.1`.
    pub version: OsVersion,
    /// The base build, e.g. `25D2128`.
    pub build: Build,
}

impl Base {
    /// Does a response for `version` with prerequisite `build` belong to this base?
    #[must_use]
    pub(crate) fn accepts(&self, version: &OsVersion, prerequisite: &Build) -> bool {
        &self.version == version && &self.build == prerequisite
    }
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.version, self.build)
    }
}

#[cfg(test)]
mod proptests;
