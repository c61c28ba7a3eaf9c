//! The command that fixes damage `verify` or `repair` found ([`Repair`]), named in the hint of
//! every error about damage.

use std::path::PathBuf;

use super::shell_word;

/// The command that fixes damage `verify` or `repair` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// `bsi repair`: links, records, leftovers and the base content, which bsi made itself.
    Plain,
    /// `bsi init --force`: nothing on the device holds what is damaged; make it again.
    Reinit {
        /// The device root.
        root: PathBuf,
    },
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

pub(super) fn what_response(version: Option<&str>, build: &str) -> String {
    match version {
        Some(v) => format!("{v} ({build})"),
        None => format!("the response with build {build}"),
    }
}

impl Repair {
    /// The command, as a person would type it.
    #[must_use]
    pub(crate) fn command(&self) -> String {
        match self {
            Repair::Plain => "bsi repair".to_owned(),
            Repair::Reinit { root } => format!(
                "bsi init --force --root {}",
                shell_word(&root.display().to_string())
            ),
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
    pub(crate) fn hint(&self) -> String {
        match self {
            Repair::Plain => {
                "run `bsi repair`: it restores what bsi made itself (links, records, base content)"
                    .to_owned()
            }
            Repair::Reinit { .. } => format!(
                "nothing on the device holds a copy of it: make the device again with `{}` (its state is lost; add --supervised, --platform and the other flags it was made with)",
                self.command()
            ),
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
