//! What a check of the device finds: the damage, in words, and the fix `bsi repair` applies
//! for it. `checks` finds them, `fixes` applies them, `verify` and `repair` report them.

use std::path::PathBuf;

use crate::device::GenName;

/// What a problem damages, which decides the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Damage {
    /// Directories, links, records, `SystemVersion.plist` files: `bsi repair` puts them right.
    Structure,
    /// The base generation's content, which bsi made and can make again: `bsi repair`.
    Base,
    /// A response generation's content: only its bundle can restore it.
    Response {
        /// The response's supplemental build (the generation's name).
        build: String,
    },
}

impl Damage {
    /// The damage to `generation`'s content.
    pub(crate) fn of(generation: &GenName) -> Self {
        match generation {
            GenName::Base(_) => Damage::Base,
            GenName::Response(build) => Damage::Response {
                build: build.to_string(),
            },
        }
    }
}

/// The words of an error found while checking, for a finding: a damage error's own message,
/// without the "the device is damaged: " that every finding already means.
pub(crate) fn said(e: &crate::Error) -> String {
    match e {
        crate::Error::Damaged { message } => message.clone(),
        other => other.to_string(),
    }
}

/// What `repair` does about a finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fix {
    /// Put an empty directory where something else stands (a symlink, a file, a FIFO).
    Directory(PathBuf),
    /// Remove the entry (a record the device works without, a stale link, a planted lock).
    Remove(PathBuf),
    /// Replace the file with these bytes.
    Write(PathBuf, Vec<u8>),
    /// Give a hard-linked file a name of its own: copy it, then rename the copy over it.
    Unshare(PathBuf),
    /// Point the link at its target.
    Link(PathBuf, PathBuf),
    /// Make the base generation again.
    RemakeBase,
    /// Point `cryptex1/current` at the base generation: the active one is gone.
    CurrentToBase,
    /// Only the response's bundle can restore it (`bsi repair --from BUNDLE`).
    Bundle,
    /// Nothing on the device holds what is needed: `bsi init --force` makes the device again.
    Reinit,
}

/// One thing wrong with the device.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    /// What it damages.
    pub damage: Damage,
    /// What is wrong, naming the path.
    pub message: String,
    /// What `repair` does about it.
    pub fix: Fix,
}

pub(super) fn structure(message: String, fix: Fix) -> Finding {
    Finding {
        damage: Damage::Structure,
        message,
        fix,
    }
}
