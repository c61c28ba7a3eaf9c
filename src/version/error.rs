//! Typed errors of the version engine. Each one names the string that was refused and says what
//! is wrong with it, so that a caller can show it to a person as is.

use crate::untrusted::clip;

/// A version or build string that bsi cannot accept (the refused text is shown clipped: it
/// can come from a bundle or a server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VersionError {
    /// The string was empty (or only white space).
    #[error("empty {what}: expected something like {example}")]
    Empty {
        /// What was being parsed, e.g. "OS version".
        what: &'static str,
        /// A valid example.
        example: &'static str,
    },
    /// An OS version such as `26..1` or `26.3.1.4`.
    #[error(
        "invalid OS version `{}`: {reason} (expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 26.3.1)",
        clip(input)
    )]
    OsVersion {
        /// The refused string.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A response letter such as `(A)` or `(a`.
    #[error(
        "invalid response version extra `{}`: {reason} (expected lowercase letters in parentheses, e.g. (a))",
        clip(input)
    )]
    Extra {
        /// The refused string.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A response version such as `26.3.1(a)`.
    #[error(
        "invalid response version `{}`: {reason} (expected e.g. `26.3.1 (a)`)",
        clip(input)
    )]
    ResponseVersion {
        /// The refused string.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A build such as `25d2128`.
    #[error(
        "invalid build `{}`: {reason} (expected e.g. 25D2128, or 25D771280a for a response)",
        clip(input)
    )]
    Build {
        /// The refused string.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A supplemental build that does not fit its prerequisite build.
    #[error(
        "supplemental build `{}` does not fit prerequisite build `{}`: {reason}",
        clip(build),
        clip(prerequisite)
    )]
    Supplemental {
        /// The supplemental build.
        build: String,
        /// The prerequisite (base) build.
        prerequisite: String,
        /// What is wrong.
        reason: String,
    },
    /// A build given where a base build belongs that is not one.
    #[error("`{}` is not a base build: {reason}", clip(input))]
    NotBase {
        /// The refused string.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A base build that cannot follow the current one in the requested kind of move.
    #[error("build `{}` cannot follow {}: {reason}", clip(build), clip(from))]
    BuildOrder {
        /// The new build.
        build: String,
        /// The current build.
        from: String,
        /// The rule it breaks.
        reason: String,
    },
}
