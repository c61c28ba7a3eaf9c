//! Typed refusals: why the rules turn an operation down.
//!
//! [`PolicyRefusal`] (exit 4) is a management declaration or a user setting saying no;
//! [`NotApplicable`] (exit 5) is an operation that does not fit the device (another platform,
//! another base, a downgrade, nothing to remove). Each variant carries the facts as fields; its
//! `Display` is the one-line message and its `hint` the command or action that gets past it,
//! both derived from the variant, so a caller (the CLI, the fleet, the DDM status report, a test)
//! can match on what happened instead of reading a sentence.

use crate::platform::Platform;
use crate::untrusted::clip;
use crate::version::{Base, BaseMove, Build, OsVersion, ResponseVersion};

/// A management declaration or a user setting refuses the operation (exit 4).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyRefusal {
    /// `RapidSecurityResponse.Enable = false` turns installing responses off.
    #[error(
        "installing responses is turned off by declaration {declaration} (RapidSecurityResponse.Enable = false)"
    )]
    InstallDisabled {
        /// The declaration's identifier.
        declaration: String,
    },
    /// `RapidSecurityResponse.EnableRollback = false` turns removing responses off.
    #[error(
        "removing responses is turned off by declaration {declaration} (RapidSecurityResponse.EnableRollback = false)"
    )]
    RollbackDisabled {
        /// The declaration's identifier.
        declaration: String,
    },
    /// `InstallSecurityUpdate = AlwaysOn`/`AlwaysOff` forces automatic install the other way.
    #[error(
        "automatic install is forced {} by declaration {declaration} (InstallSecurityUpdate = {})",
        if *forced_on { "on" } else { "off" },
        if *forced_on { "AlwaysOn" } else { "AlwaysOff" }
    )]
    AutomaticForced {
        /// The declaration's identifier.
        declaration: String,
        /// Forced on (`AlwaysOn`) rather than off.
        forced_on: bool,
    },
    /// A declaration was stored (or, with `--dry-run`, would be) but the device cannot use it.
    #[error(
        "declaration {identifier} {} but the device cannot use it: {description} ({code})",
        if *dry_run { "would be stored," } else { "is stored and reported as invalid," }
    )]
    DeclarationUnusable {
        /// The declaration's identifier, clipped for display.
        identifier: String,
        /// Nothing was stored because of `--dry-run`.
        dry_run: bool,
        /// The status reason code, e.g. `Error.ConfigurationIsInvalid`.
        code: String,
        /// The reason's description.
        description: String,
    },
}

impl PolicyRefusal {
    /// What to do next.
    #[must_use]
    pub(crate) fn hint(&self) -> String {
        match self {
            PolicyRefusal::InstallDisabled { .. } => "only an enforcement declaration from the MDM server can install responses on this device".to_owned(),
            PolicyRefusal::RollbackDisabled { .. } => {
                "ask the device's administrator; the MDM server controls this setting".to_owned()
            }
            PolicyRefusal::AutomaticForced { .. } => {
                "the MDM server controls this setting on this supervised device".to_owned()
            }
            PolicyRefusal::DeclarationUnusable { identifier, .. } => format!(
                "fix it and `bsi policy set` it again, or `bsi policy remove {identifier}`"
            ),
        }
    }
}

/// The operation does not fit the device (exit 5).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotApplicable {
    /// The bundle is for another platform.
    #[error("this bundle is for {product}; the device runs {platform}")]
    OtherPlatform {
        /// The bundle's product.
        product: Platform,
        /// The device's platform.
        platform: Platform,
    },
    /// The device runs an OS version older than the first that takes responses (Apple shipped
    /// them from iOS 16 and macOS 13).
    #[error(
        "{platform} {version} takes no background security improvements: they exist from {platform} {first}"
    )]
    BeforeResponses {
        /// The device's platform.
        platform: Platform,
        /// Its base version.
        version: OsVersion,
        /// The first version that takes them.
        first: OsVersion,
    },
    /// The response is for a base line a major upgrade left behind.
    #[error(
        "{response} is for {} ({prerequisite}); the device runs {base}: a major upgrade left the {} line behind, and responses apply only to the latest minor version",
        response.os, response.os
    )]
    LineLeftBehind {
        /// The bundle's response.
        response: ResponseVersion,
        /// Its prerequisite (base) build.
        prerequisite: Build,
        /// The device's base.
        base: Base,
    },
    /// The response is for a later base the device has not reached.
    #[error(
        "{response} is for {} ({prerequisite}); the device runs {base}, which is older: the device has not reached that base",
        response.os
    )]
    BaseNotReached {
        /// The bundle's response.
        response: ResponseVersion,
        /// Its prerequisite (base) build.
        prerequisite: Build,
        /// The device's base.
        base: Base,
    },
    /// The response is for another build of the device's version.
    #[error(
        "{response} is for {} ({prerequisite}); the device runs {base}: a different build of the same version",
        response.os
    )]
    OtherBaseBuild {
        /// The bundle's response.
        response: ResponseVersion,
        /// Its prerequisite (base) build.
        prerequisite: Build,
        /// The device's base.
        base: Base,
    },
    /// `bsi update`/`upgrade` to an older version.
    #[error("{to} is older than the installed {from}: that would be a downgrade")]
    Downgrade {
        /// What was asked for.
        change: BaseMove,
        /// The version asked for.
        to: OsVersion,
        /// The installed version.
        from: OsVersion,
    },
    /// `bsi update`/`upgrade` to another build of the installed version.
    #[error(
        "the device already runs {version}, as build {installed}; {build} is another build of the same version"
    )]
    SameVersionOtherBuild {
        /// The version.
        version: OsVersion,
        /// The build the device runs.
        installed: Build,
        /// The build asked for.
        build: Build,
    },
    /// `bsi update` for a major upgrade, or `bsi upgrade` for a minor update.
    #[error(
        "{from} -> {to} is a {}, not a {}",
        change.other().name(), change.name()
    )]
    WrongCommand {
        /// What was asked for.
        change: BaseMove,
        /// The installed version.
        from: OsVersion,
        /// The version asked for.
        to: OsVersion,
        /// The build asked for.
        build: Build,
    },
    /// Relaunching Safari on a device that is not a Mac.
    #[error(
        "relaunching Safari onto staged content is a macOS feature; this device runs {platform}"
    )]
    SafariNotMacOs {
        /// The device's platform.
        platform: Platform,
    },
}

impl NotApplicable {
    /// What to do next.
    #[must_use]
    pub(crate) fn hint(&self) -> String {
        match self {
            NotApplicable::OtherPlatform { .. } => {
                "use a bundle made for the device's platform".to_owned()
            }
            NotApplicable::BeforeResponses { first, .. } => format!(
                "update the device to {first} or later first (`bsi upgrade --version {first} --build BUILD`), then apply a response made for it"
            ),
            NotApplicable::LineLeftBehind { .. } => {
                "look for a response made for the device's version (`bsi status` shows it)"
                    .to_owned()
            }
            NotApplicable::BaseNotReached {
                response,
                prerequisite,
                base,
            } => format!(
                "update the device first: bsi {} --version {} --build {prerequisite}",
                BaseMove::between(&base.version, &response.os).command(),
                response.os
            ),
            NotApplicable::OtherBaseBuild { .. } => {
                "get the response made for the device's build (`bsi status` shows it)".to_owned()
            }
            NotApplicable::Downgrade { change, .. } => {
                format!("bsi {} moves only to a later version", change.command())
            }
            NotApplicable::SameVersionOtherBuild { .. } => {
                "a minor update changes the version; use the build the device runs".to_owned()
            }
            NotApplicable::WrongCommand {
                change, to, build, ..
            } => format!(
                "use `bsi {} --version {to} --build {build}`",
                change.other().command()
            ),
            NotApplicable::SafariNotMacOs { .. } => {
                "restart the device to activate staged content".to_owned()
            }
        }
    }
}

/// What an argument names does not exist: a declaration, a trusted key, a catalog entry. A
/// usage error (exit 2): the command was asked about nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotFound {
    /// `policy remove` of a declaration the device does not hold.
    #[error("the device holds no declaration with identifier `{identifier}`")]
    NoSuchDeclaration {
        /// The identifier asked for.
        identifier: String,
    },
    /// `trust remove` of a key the device does not trust.
    #[error("the device trusts no key with fingerprint {fingerprint}")]
    NoSuchKey {
        /// The fingerprint (prefix) asked for.
        fingerprint: String,
    },
    /// `lookup` of a response the catalog does not list.
    #[error(
        "the catalog lists no background security improvement {response}{}",
        platform.map(|p| format!(" for {p}")).unwrap_or_default()
    )]
    NotInCatalog {
        /// The response asked for.
        response: ResponseVersion,
        /// The platform asked for, if any.
        platform: Option<Platform>,
    },
}

impl NotFound {
    /// What to do next.
    #[must_use]
    pub(crate) fn hint(&self) -> String {
        match self {
            NotFound::NoSuchDeclaration { .. } => {
                "`bsi policy list` shows the identifiers the device holds".to_owned()
            }
            NotFound::NoSuchKey { .. } => {
                "`bsi trust list` shows the fingerprints the device trusts".to_owned()
            }
            NotFound::NotInCatalog { .. } => {
                "`bsi lookup --catalog FILE` without a version lists what it holds".to_owned()
            }
        }
    }
}

/// Why a file given as a DDM declaration is not one (its envelope, before its payload is
/// judged): exit 2, nothing stored. A declaration whose envelope is fine but whose payload the
/// device cannot use is stored and reported `invalid` instead (`declarations::state`).
#[derive(Debug, thiserror::Error)]
#[error("{} is not a DDM declaration: {problem}", clip(origin))]
pub(crate) struct DeclarationError {
    /// The file (or the server's item) it came from.
    pub origin: String,
    /// What is wrong with it.
    pub problem: EnvelopeProblem,
}

/// What is wrong with a declaration's envelope.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeProblem {
    /// The bytes are not JSON.
    #[error("it is not JSON ({})", clip(reason))]
    NotJson {
        /// The JSON parser's words.
        reason: String,
    },
    /// The JSON is not an object.
    #[error("the top level is not a JSON object")]
    NotAnObject,
    /// A key the envelope needs is absent.
    #[error("required key `{key}` is missing")]
    MissingKey {
        /// `Type`, `Identifier`, `ServerToken` or `Payload`.
        key: String,
    },
    /// A key holds the wrong type.
    #[error("`{}` must be {expected}", clip(key))]
    WrongType {
        /// The key.
        key: String,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// `Identifier` is empty.
    #[error("`Identifier` is empty")]
    EmptyIdentifier,
    /// An envelope string is longer than bsi stores.
    #[error("`Type`, `Identifier` and `ServerToken` are at most {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(version: &str, build: &str) -> Base {
        Base {
            version: version.parse().unwrap(),
            build: build.parse().unwrap(),
        }
    }

    /// Each refusal's message and hint, as the CLI prints them (table-driven: the variant in, the
    /// two lines out).
    #[test]
    fn messages_and_hints_follow_from_the_variant() {
        let response: ResponseVersion = "26.4 (a)".parse().unwrap();
        let cases: Vec<(crate::Error, &str, &str)> = vec![
            (
                PolicyRefusal::InstallDisabled {
                    declaration: "rsr".into(),
                }
                .into(),
                "installing responses is turned off by declaration rsr (RapidSecurityResponse.Enable = false)",
                "only an enforcement declaration from the MDM server can install responses on this device",
            ),
            (
                PolicyRefusal::AutomaticForced {
                    declaration: "su".into(),
                    forced_on: false,
                }
                .into(),
                "automatic install is forced off by declaration su (InstallSecurityUpdate = AlwaysOff)",
                "the MDM server controls this setting on this supervised device",
            ),
            (
                PolicyRefusal::DeclarationUnusable {
                    identifier: "x".into(),
                    dry_run: true,
                    code: "Error.ConfigurationIsInvalid".into(),
                    description: "bad".into(),
                }
                .into(),
                "declaration x would be stored, but the device cannot use it: bad (Error.ConfigurationIsInvalid)",
                "fix it and `bsi policy set` it again, or `bsi policy remove x`",
            ),
            (
                NotApplicable::BaseNotReached {
                    response,
                    prerequisite: "25E100".parse().unwrap(),
                    base: base("26.3.1", "25D2128"),
                }
                .into(),
                "26.4 (a) is for 26.4 (25E100); the device runs 26.3.1 (25D2128), which is older: the device has not reached that base",
                "update the device first: bsi update --version 26.4 --build 25E100",
            ),
            (
                NotApplicable::BaseNotReached {
                    response: "27.0 (a)".parse().unwrap(),
                    prerequisite: "26A100".parse().unwrap(),
                    base: base("26.3.1", "25D2128"),
                }
                .into(),
                "27.0 (a) is for 27.0 (26A100); the device runs 26.3.1 (25D2128), which is older: the device has not reached that base",
                "update the device first: bsi upgrade --version 27.0 --build 26A100",
            ),
            (
                NotApplicable::WrongCommand {
                    change: BaseMove::Minor,
                    from: "26.3.1".parse().unwrap(),
                    to: "27.0".parse().unwrap(),
                    build: "26A100".parse().unwrap(),
                }
                .into(),
                "26.3.1 -> 27.0 is a major upgrade, not a minor update",
                "use `bsi upgrade --version 27.0 --build 26A100`",
            ),
            (
                NotApplicable::Downgrade {
                    change: BaseMove::Major,
                    to: "25.0".parse().unwrap(),
                    from: "26.3.1".parse().unwrap(),
                }
                .into(),
                "25.0 is older than the installed 26.3.1: that would be a downgrade",
                "bsi upgrade moves only to a later version",
            ),
            (
                NotFound::NotInCatalog {
                    response,
                    platform: Some(Platform::Ios),
                }
                .into(),
                "the catalog lists no background security improvement 26.4 (a) for iOS",
                "`bsi lookup --catalog FILE` without a version lists what it holds",
            ),
        ];
        for (error, message, hint) in cases {
            assert_eq!(error.to_string(), message);
            assert_eq!(error.hint().as_deref(), Some(hint), "{message}");
            assert_eq!(
                error.exit_code(),
                match error {
                    crate::Error::Policy(_) => 4,
                    crate::Error::NotFound(_) => 2,
                    _ => 5,
                }
            );
        }
    }
}
