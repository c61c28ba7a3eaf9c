//! Content generations: each complete set of cryptex trees lives in its own directory under
//! `cryptex1/generations/`, and the `current` and `proposed` symlinks name one each.
//!
//! A generation is made under a temporary name, made durable, renamed into place, and only then
//! linked; it is never changed afterwards. So the switch from one state to another is one symlink
//! rename (I1, I2, I3), and anything not reachable from `current`, `proposed` or the base after a
//! crash is garbage that [`collect_garbage`] removes.

use std::path::{Path, PathBuf};

use super::atomic::TMP_PREFIX;
use super::layout::GENERATIONS;
use super::{Device, Root};
use crate::error::IoContext;
use crate::version::Build;
use crate::{Error, Result};

/// Prefix of a base generation's directory name.
const BASE_PREFIX: &str = "base-";
/// Prefix of a generation still being staged.
pub(crate) const STAGING_PREFIX: &str = ".bsi-tmp.staging-";

/// The name of a content generation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GenName {
    /// The base OS's cryptex content for the base build.
    Base(Build),
    /// A response's content, named by its supplemental build.
    Response(Build),
}

impl GenName {
    /// The directory name under `generations/`.
    #[must_use]
    pub(crate) fn dir_name(&self) -> String {
        match self {
            GenName::Base(build) => format!("{BASE_PREFIX}{build}"),
            GenName::Response(build) => build.to_string(),
        }
    }

    /// The temporary directory name used while this generation is staged.
    #[must_use]
    pub(crate) fn staging_name(&self) -> String {
        format!("{STAGING_PREFIX}{}", self.dir_name())
    }

    /// Parses a directory name.
    #[must_use]
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.strip_prefix(BASE_PREFIX) {
            Some(build) => build.parse().ok().map(GenName::Base),
            None => name.parse().ok().map(GenName::Response),
        }
    }

    /// The target `current` and `proposed` hold: `generations/<name>`.
    #[must_use]
    pub(crate) fn link_target(&self) -> PathBuf {
        Path::new(GENERATIONS).join(self.dir_name())
    }

    /// Parses a `current`/`proposed` link target.
    #[must_use]
    pub(crate) fn from_link_target(target: &Path) -> Option<Self> {
        let mut parts = target.components();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(first), Some(name), None) if first.as_os_str() == GENERATIONS => {
                Self::parse(name.as_os_str().to_str()?)
            }
            _ => None,
        }
    }

    /// The link a generation holds for a cryptex another generation supplies:
    /// `../<supplier>/<Cryptex>`.
    #[must_use]
    pub(crate) fn supplier_link(&self, cryptex: super::Cryptex) -> PathBuf {
        Path::new("..").join(self.dir_name()).join(cryptex.as_str())
    }

    /// Parses a supplier link (see [`GenName::supplier_link`]) for `cryptex`.
    #[must_use]
    pub(crate) fn from_supplier_link(target: &Path, cryptex: super::Cryptex) -> Option<Self> {
        let mut parts = target.components();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(std::path::Component::ParentDir), Some(name), Some(c), None)
                if c.as_os_str() == cryptex.as_str() =>
            {
                Self::parse(name.as_os_str().to_str()?)
            }
            _ => None,
        }
    }

    /// Is this the base generation?
    #[must_use]
    pub(crate) fn is_base(&self) -> bool {
        matches!(self, GenName::Base(_))
    }
}

impl Device {
    /// The generation `cryptex1/current` names. Its absence or an odd target is damage.
    pub(crate) fn current(&self) -> Result<GenName> {
        let rel = self.layout().current();
        let root = self.root();
        match root
            .read_link_opt(&rel)
            .map_err(|e| root.failure("reading", &rel, e))?
        {
            Some(target) => GenName::from_link_target(&target).ok_or_else(|| {
                Error::damaged(format!(
                    "{} points at {}, which is not a content generation",
                    root.show(&rel).display(),
                    target.display()
                ))
            }),
            None => Err(Error::damaged(format!(
                "{} is missing",
                root.show(&rel).display()
            ))),
        }
    }

    /// The generation `cryptex1/proposed` names, if anything is staged.
    pub(crate) fn proposed(&self) -> Result<Option<GenName>> {
        let rel = self.layout().proposed();
        let root = self.root();
        match root
            .read_link_opt(&rel)
            .map_err(|e| root.failure("reading", &rel, e))?
        {
            Some(target) => GenName::from_link_target(&target).map(Some).ok_or_else(|| {
                Error::damaged(format!(
                    "{} points at {}, which is not a content generation",
                    root.show(&rel).display(),
                    target.display()
                ))
            }),
            None => Ok(None),
        }
    }

    /// Path of a generation's directory, relative to the root.
    #[must_use]
    pub(crate) fn generation_path(&self, name: &GenName) -> PathBuf {
        self.layout().generation(&name.dir_name())
    }

    /// The generations directory, where a bundle being installed may keep a private unnamed
    /// copy of its manifest (on the filesystem of the generation it will be written to), if it
    /// can be opened.
    #[must_use]
    pub(crate) fn spool_dir(&self) -> Option<cap_std::fs::Dir> {
        self.root().dir().open_dir(self.layout().generations()).ok()
    }
}

/// Removes every generation that neither `current`, `proposed`, the base, nor a generation
/// supplying a cryptex to `current` or `proposed` names, and every half-staged one, then syncs
/// the directory. Returns the names removed. When what `current` or `proposed` link to cannot be
/// read (damage that `verify` reports), nothing is removed.
pub(crate) fn collect_garbage(device: &Device, base: &Build) -> Result<Vec<String>> {
    let linked: Vec<GenName> = [Some(device.current()?), device.proposed()?]
        .into_iter()
        .flatten()
        .collect();
    let mut keep: Vec<String> = vec![GenName::Base(base.clone()).dir_name()];
    for g in &linked {
        keep.push(g.dir_name());
        match device.generation_sources(g) {
            Ok(sources) => keep.extend(sources.values().map(GenName::dir_name)),
            Err(_) => return Ok(Vec::new()),
        }
    }
    let root = device.root();
    let gens = device.layout().generations();
    let mut removed = Vec::new();
    for entry in root
        .dir()
        .read_dir(&gens)
        .ctx("listing", root.show(&gens))?
    {
        let entry = entry.ctx("listing", root.show(&gens))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let rel = gens.join(&name);
        root.remove_tree_if_exists(&rel)
            .ctx("removing", root.show(&rel))?;
        removed.push(name);
    }
    if !removed.is_empty() {
        root.sync_dir(&gens).ctx("syncing", root.show(&gens))?;
    }
    Ok(removed)
}

/// Removes leftover `.bsi-tmp.*` entries in `dir` (records or link directories). Returns how
/// many were removed.
pub(crate) fn sweep_temporaries(root: &Root, dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match root.dir().read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("listing", root.show(dir), e)),
    };
    for entry in entries {
        let entry = entry.ctx("listing", root.show(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TMP_PREFIX) {
            let rel = dir.join(&name);
            root.remove_tree_if_exists(&rel)
                .ctx("removing", root.show(&rel))?;
            removed += 1;
        }
    }
    if removed > 0 {
        root.sync_dir(dir).ctx("syncing", root.show(dir))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["base-25D2128", "25D771280a"] {
            let parsed = GenName::parse(name).unwrap();
            assert_eq!(parsed.dir_name(), name);
            assert_eq!(
                GenName::from_link_target(&parsed.link_target()),
                Some(parsed)
            );
        }
        assert_eq!(GenName::from_link_target(Path::new("/etc")), None);
        assert_eq!(
            GenName::from_link_target(Path::new("../generations/x")),
            None
        );
        assert_eq!(
            GenName::from_link_target(Path::new("generations/../../x")),
            None
        );
    }
}
