//! `origins.json`: the bundle each response on the device was staged from, by supplemental
//! build. Nothing depends on it for correctness; it lets `verify` and `repair` name the exact
//! `bsi repair --from BUNDLE` command that restores a response's damaged content.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::layout::{Layout, ORIGINS_RECORD};
use super::{Root, records};
use crate::Result;
use crate::bundle::Bundle;

/// Where one response came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Origin {
    /// The response's version, e.g. `26.3.1 (c)`.
    pub version: String,
    /// The bundle's path, made absolute when it was applied.
    pub bundle: PathBuf,
}

/// Every recorded origin, by build. A missing or unreadable record is an empty one: it only
/// improves hints.
#[must_use]
pub(crate) fn read(root: &Root) -> BTreeMap<String, Origin> {
    records::read_json_lenient(root, ORIGINS_RECORD).unwrap_or_default()
}

/// The origin of `build`, if recorded.
#[must_use]
pub(crate) fn of(root: &Root, build: &str) -> Option<Origin> {
    read(root).remove(build)
}

/// Records that `bundle` was staged, dropping builds whose generation is gone.
pub(crate) fn record(root: &Root, layout: &Layout, bundle: &Bundle) -> Result<()> {
    let mut all = read(root);
    let path = std::path::absolute(&bundle.path).unwrap_or_else(|_| bundle.path.clone());
    all.insert(
        bundle.manifest.build.to_string(),
        Origin {
            version: bundle.manifest.response_version().to_string(),
            bundle: path,
        },
    );
    all.retain(|build, _| {
        root.exists_nofollow(layout.generation(build))
            .unwrap_or(true)
    });
    records::write_json(root, ORIGINS_RECORD, &all)
}
