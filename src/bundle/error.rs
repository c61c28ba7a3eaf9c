//! `BundleError`: every reason bsi rejects a bundle. Each message names the file, key or entry
//! at fault; all but a missing path exit with 6.

use std::path::PathBuf;

/// Why a bundle was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    /// The bundle path does not exist.
    #[error("no bundle at {}", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The bundle could not be read (permissions, I/O error, or a truncated file).
    #[error("cannot read bundle {}: {source}", path.display())]
    Read {
        /// The bundle or the file in it.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bundle is neither a directory nor a tar file.
    #[error("{} is a {kind}, neither a bundle directory nor a bundle tar file", path.display())]
    NotABundle {
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// `Info.plist` is missing, unparsable, or a key is missing or mistyped.
    #[error("Info.plist: {message}")]
    Manifest {
        /// What is wrong, naming the key.
        message: String,
    },
    /// The `Info.plist` of a bundle being signed does not read: its publisher (who signs it) must
    /// fix it.
    #[error("Info.plist: {message}")]
    ToSign {
        /// What is wrong, naming the key.
        message: String,
    },
    /// `Info.plist.sig` is missing, malformed or does not verify.
    #[error("Info.plist.sig: {message}")]
    Signature {
        /// What is wrong.
        message: String,
    },
    /// The signature is valid but no trusted key made it, or there is no trust to check against.
    #[error("Info.plist.sig: {message}")]
    Untrusted {
        /// What is wrong, naming the keys tried.
        message: String,
    },
    /// The manifest names a trusted signer, but the signature does not verify: it was changed
    /// after signing.
    #[error("Info.plist.sig: {message}")]
    Tampered {
        /// What is wrong.
        message: String,
    },
    /// A payload file's size differs from the manifest's.
    #[error("{path}: size {actual} bytes differs from the {declared} bytes the manifest lists")]
    Size {
        /// Bundle-relative path.
        path: String,
        /// Size in the manifest.
        declared: u64,
        /// Size found (or at least this many bytes, when the file is longer).
        actual: u64,
    },
    /// A payload file's SHA-256 differs from the manifest's.
    #[error("{path}: SHA-256 {actual} differs from the manifest's {expected}")]
    Digest {
        /// Bundle-relative path.
        path: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest found.
        actual: String,
    },
    /// A file the manifest lists is not in the bundle.
    #[error("{path} is listed in the manifest but missing from the bundle")]
    Missing {
        /// Bundle-relative path.
        path: String,
    },
    /// A file in the bundle is not listed in the manifest.
    #[error("{path} is in the bundle but not listed in the manifest")]
    Unlisted {
        /// Bundle-relative path.
        path: String,
    },
    /// A symlink, device, FIFO, hard link or other entry bsi does not accept.
    #[error("{path} is a {kind}; bundles may hold only regular files and directories")]
    UnsafeEntry {
        /// Bundle-relative path.
        path: String,
        /// What it is.
        kind: String,
    },
    /// A path that is absolute, has `..`, is empty, duplicated or not UTF-8.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The path as found (lossily printed if not UTF-8).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A declared size or count beyond bsi's limits (`docs/bundle-format.md`).
    #[error("{what} exceeds bsi's limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: String,
        /// The limit, human readable.
        limit: String,
    },
    /// The bundle's version and build contradict a response the device holds.
    #[error("{message}")]
    Contradiction {
        /// What contradicts what.
        message: String,
    },
    /// The tar form is malformed: bad header, wrong order, truncated, trailing garbage.
    #[error("tar bundle: {message}")]
    Tar {
        /// What is wrong.
        message: String,
    },
}

impl BundleError {
    /// Exit code: 2 for a path that does not exist (a usage mistake), 6 for every rejection.
    #[must_use]
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            BundleError::NotFound { .. } => 2,
            BundleError::Read { .. }
            | BundleError::NotABundle { .. }
            | BundleError::Manifest { .. }
            | BundleError::ToSign { .. }
            | BundleError::Signature { .. }
            | BundleError::Untrusted { .. }
            | BundleError::Tampered { .. }
            | BundleError::Size { .. }
            | BundleError::Digest { .. }
            | BundleError::Missing { .. }
            | BundleError::Unlisted { .. }
            | BundleError::UnsafeEntry { .. }
            | BundleError::UnsafePath { .. }
            | BundleError::TooLarge { .. }
            | BundleError::Contradiction { .. }
            | BundleError::Tar { .. } => 6,
        }
    }

    /// What to do next.
    #[must_use]
    pub(crate) fn hint(&self) -> String {
        match self {
            BundleError::NotFound { .. } => "check the bundle path".to_owned(),
            BundleError::Untrusted { .. } => {
                "if you trust the signer, add its public key (`bsi trust add KEY.pub`); otherwise get the bundle from a publisher this device trusts".to_owned()
            }
            BundleError::Tampered { .. } => {
                "the bundle was changed after it was signed: get a fresh copy from its publisher".to_owned()
            }
            BundleError::Signature { .. } => {
                "sign the bundle with `bsi bundle sign BUNDLE --key KEY`; a bundle changed after signing must be signed again".to_owned()
            }
            BundleError::Read { .. } => {
                "check that the bundle is complete and readable by this user (`ls -l` it), then try again".to_owned()
            }
            BundleError::ToSign { .. } => {
                "fix the bundle's Info.plist as the message says, or make the bundle again with `bsi bundle create`, then sign it (`bsi bundle sign BUNDLE --key KEY`)".to_owned()
            }
            BundleError::Contradiction { .. } => {
                "one of the two was built wrongly: check the bundle's origin (`bsi bundle inspect BUNDLE`) against `bsi status`".to_owned()
            }
            _ => "the bundle is damaged or was tampered with; get a fresh copy from its publisher".to_owned(),
        }
    }

    /// The refusal of a bundle that carries no signature where one is required.
    pub(crate) fn unsigned() -> Self {
        BundleError::Signature {
            message: "missing: the bundle is unsigned".to_owned(),
        }
    }

    pub(crate) fn manifest(message: impl Into<String>) -> Self {
        BundleError::Manifest {
            message: message.into(),
        }
    }

    pub(crate) fn tar(message: impl Into<String>) -> Self {
        BundleError::Tar {
            message: message.into(),
        }
    }

    pub(crate) fn unsafe_path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        BundleError::UnsafePath {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
