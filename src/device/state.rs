//! A snapshot of the device's content state, read from the `current` and `proposed` links and
//! the generations' `SystemVersion.plist` files: what is active, what is staged, and the base.
//! Both `status` and the lifecycle read the device through this, so that what `status` reports
//! as active is by construction what the links resolve to (invariant I2).
//!
//! Responses are cumulative per cryptex (I1): a generation that does not carry a cryptex links
//! to the generation that supplies it, and the snapshot says, per cryptex, which one that is
//! ([`Source`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Cryptex, Device, GenName, Layout, SystemVersion};
use crate::version::{Base, Build, ResponseVersion};
use crate::{Error, Result};

/// A response present on the device (active or staged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Present {
    /// The generation holding it.
    pub generation: GenName,
    /// Its version, e.g. `26.3.1 (a)`.
    pub version: ResponseVersion,
    /// Its supplemental build.
    pub build: Build,
    /// The cryptexes it carries itself.
    pub cryptexes: Vec<Cryptex>,
    /// For each cryptex, where its content comes from: this response, an earlier response it
    /// replaced, or the base.
    pub sources: BTreeMap<Cryptex, Source>,
}

/// The generation whose tree supplies a cryptex, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    /// The generation holding the tree.
    pub generation: GenName,
    /// Its version as people read it: `26.3.1 (c)` for a response, `26.3.1` for the base.
    pub version: String,
}

/// What the next restart does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Staged {
    /// Activates this response.
    Install(Present),
    /// Removes the active response.
    Remove,
}

/// The device's content state.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    /// The base OS's `SystemVersion.plist`.
    pub base_system_version: SystemVersion,
    /// The base as version and build.
    pub base: Base,
    /// The active response, if any.
    pub active: Option<Present>,
    /// Staged work, if any.
    pub staged: Option<Staged>,
    /// The `proposed` generation.
    pub proposed: Option<GenName>,
    /// What supplies each cryptex now (through `current`).
    pub sources: BTreeMap<Cryptex, Source>,
    /// What will supply each cryptex after the next restart, when something is staged.
    pub staged_sources: Option<BTreeMap<Cryptex, Source>>,
}

impl Snapshot {
    /// The device's version as a person reads it: `26.3.1 (a)` with a response, else `26.3.1`.
    #[must_use]
    pub(crate) fn version_label(&self) -> String {
        match &self.active {
            Some(p) => p.version.to_string(),
            None => self.base.version.to_string(),
        }
    }

    /// `device.operating-system.supplemental.build-version`: the active response's build, else
    /// the base build (the one place this rule is written).
    #[must_use]
    pub(crate) fn supplemental_build(&self) -> String {
        self.active
            .as_ref()
            .map_or_else(|| self.base.build.to_string(), |a| a.build.to_string())
    }

    /// `device.operating-system.supplemental.extra-version`: the active response's letter,
    /// `(a)`, else `""`.
    #[must_use]
    pub(crate) fn extra(&self) -> String {
        self.active
            .as_ref()
            .map(|a| a.version.extra.to_string())
            .unwrap_or_default()
    }

    /// The staged install, if any.
    #[must_use]
    pub(crate) fn staged_install(&self) -> Option<&Present> {
        match &self.staged {
            Some(Staged::Install(p)) => Some(p),
            _ => None,
        }
    }
}

impl Device {
    /// The links DESIGN section 2 fixes, each with the target it must hold: `System/Cryptexes/*`
    /// and the `Preboot/Cryptexes/*` grafts through `cryptex1/current`.
    #[must_use]
    pub(crate) fn expected_links(&self) -> Vec<(PathBuf, PathBuf)> {
        let l = self.layout();
        let mut out = Vec::new();
        for c in Cryptex::ALL {
            out.push((Layout::system_link(c), Layout::system_link_target(c)));
            out.push((Layout::graft(c), l.graft_target(c)));
        }
        out
    }

    /// Every fixed link that does not hold its target (read without following any symlink on
    /// the way): the link, the target it must hold, and what is there instead.
    #[must_use]
    pub(crate) fn wrong_links(&self) -> Vec<(PathBuf, PathBuf, String)> {
        let root = self.root();
        self.expected_links()
            .into_iter()
            .filter_map(|(link, target)| {
                let found = match root.read_link_opt(&link) {
                    Ok(Some(t)) if t == target => return None,
                    Ok(Some(t)) => format!("points at {}", t.display()),
                    Ok(None) => "is missing".to_owned(),
                    Err(e) => e.to_string(),
                };
                Some((link, target, found))
            })
            .collect()
    }

    /// I2: what `status` reports as active is what the links resolve to, so a fixed link that
    /// holds anything but its target is damage, named with the command that fixes it.
    pub(crate) fn check_links(&self) -> Result<()> {
        match self.wrong_links().first() {
            None => Ok(()),
            Some((link, target, found)) => Err(Error::damaged(format!(
                "{} {found}, not {} (bsi made that link; what it leads to is not the active content)",
                self.root().show(link).display(),
                target.display()
            ))),
        }
    }

    /// Reads generation `generation`'s `SystemVersion.plist` and checks that it belongs to the
    /// base and to the generation's name. `None` for the base generation.
    fn read_generation(
        &self,
        generation: &GenName,
        base: &Base,
    ) -> Result<Option<(ResponseVersion, Build)>> {
        let sv = self.generation_system_version(generation)?;
        let shown = self.root().show(self.generation_path(generation));
        if sv.version != base.version {
            return Err(Error::damaged(format!(
                "{} is for {}, but the base OS is {}",
                shown.display(),
                sv.version,
                base.version
            )));
        }
        match (generation, sv.extra) {
            (GenName::Base(build), None) if *build == sv.build && *build == base.build => Ok(None),
            (GenName::Response(build), Some(extra)) if *build == sv.build => {
                Ok(Some((ResponseVersion::new(sv.version, extra), sv.build)))
            }
            _ => Err(Error::damaged(format!(
                "{}'s SystemVersion.plist does not match the generation's name",
                shown.display()
            ))),
        }
    }

    /// What supplies each cryptex of `generation`, with versions.
    fn sources_of(&self, generation: &GenName, base: &Base) -> Result<BTreeMap<Cryptex, Source>> {
        let mut out = BTreeMap::new();
        for (cryptex, supplier) in self.generation_sources(generation)? {
            let version = match self.read_generation(&supplier, base)? {
                Some((v, _)) => v.to_string(),
                None => base.version.to_string(),
            };
            out.insert(
                cryptex,
                Source {
                    generation: supplier,
                    version,
                },
            );
        }
        Ok(out)
    }

    fn present(
        &self,
        generation: &GenName,
        base: &Base,
        sources: &BTreeMap<Cryptex, Source>,
    ) -> Result<Option<Present>> {
        Ok(self
            .read_generation(generation, base)?
            .map(|(version, build)| Present {
                generation: generation.clone(),
                version,
                build,
                cryptexes: sources
                    .iter()
                    .filter(|(_, s)| &s.generation == generation)
                    .map(|(c, _)| *c)
                    .collect(),
                sources: sources.clone(),
            }))
    }

    /// The state a committed base change (an update cut short after its commit) leaves once
    /// recovery completes it: the new base, its own content, nothing active or staged. Readers
    /// report this rather than the half-switched files they find (the change is committed; only
    /// its completion is pending).
    pub(crate) fn snapshot_committed(
        &self,
        version: crate::version::OsVersion,
        build: Build,
    ) -> Result<Snapshot> {
        let base = Base {
            version,
            build: build.clone(),
        };
        let current = GenName::Base(build.clone());
        let sources = self.sources_of(&current, &base)?;
        Ok(Snapshot {
            base_system_version: SystemVersion {
                product_name: self.info().platform.name().to_owned(),
                version,
                build,
                extra: None,
            },
            base,
            active: None,
            staged: None,
            proposed: None,
            sources,
            staged_sources: None,
        })
    }

    /// Reads the content state.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let base_system_version = self.base_system_version()?;
        let base = Base {
            version: base_system_version.version,
            build: base_system_version.build.clone(),
        };
        let current = self.current()?;
        let sources = self.sources_of(&current, &base)?;
        let active = self.present(&current, &base, &sources)?;
        // A `proposed` link that no longer means anything (it names `current`, a generation that
        // is gone, or a response no newer than the active one) is what a restart or an apply cut
        // short leaves; recovery removes it, and it stages nothing meanwhile.
        let proposed = self.proposed()?.filter(|p| {
            *p != current
                && self
                    .root()
                    .exists_nofollow(self.generation_path(p))
                    .unwrap_or(true)
        });
        let (staged, staged_sources) = match &proposed {
            None => (None, None),
            Some(g) => {
                let sources = self.sources_of(g, &base)?;
                let staged = if g.is_base() {
                    Some(Staged::Remove)
                } else {
                    self.present(g, &base, &sources)?.map(Staged::Install)
                };
                (staged, Some(sources))
            }
        };
        let stale = match (&active, &staged) {
            (Some(a), Some(Staged::Install(s))) => s.version <= a.version,
            (None, Some(Staged::Remove)) => true,
            _ => false,
        };
        let (staged, staged_sources, proposed) = if stale {
            (None, None, None)
        } else {
            (staged, staged_sources, proposed)
        };
        Ok(Snapshot {
            base_system_version,
            base,
            active,
            staged,
            proposed,
            sources,
            staged_sources,
        })
    }
}
