//! A snapshot of the device's content state, read from the `current` and `proposed` links and
//! the generations' `SystemVersion.plist` files: what is active, what is staged, and the base.
//! Both `status` and the lifecycle read the device through this, so that what `status` reports
//! as active is by construction what the links resolve to (invariant I2).

use super::{Cryptex, Device, GenName, SystemVersion};
use crate::version::{Base, Build, ResponseVersion};
use crate::{Error, Result};

/// A response present on the device (active or staged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Present {
    /// The generation holding it.
    pub generation: GenName,
    /// Its version, e.g. `26.3.1 (a)`.
    pub version: ResponseVersion,
    /// Its supplemental build.
    pub build: Build,
    /// The cryptexes it carries.
    pub cryptexes: Vec<Cryptex>,
}

/// What the next restart does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staged {
    /// Activates this response.
    Install(Present),
    /// Removes the active response.
    Remove,
}

/// The device's content state.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The base OS's `SystemVersion.plist`.
    pub base_system_version: SystemVersion,
    /// The base as version and build.
    pub base: Base,
    /// The active response, if any.
    pub active: Option<Present>,
    /// Staged work, if any.
    pub staged: Option<Staged>,
    /// The `current` generation.
    pub current: GenName,
    /// The `proposed` generation.
    pub proposed: Option<GenName>,
}

impl Snapshot {
    /// The device's version as a person reads it: `26.3.1 (a)` with a response, else `26.3.1`.
    #[must_use]
    pub fn version_label(&self) -> String {
        match &self.active {
            Some(p) => p.version.to_string(),
            None => self.base.version.to_string(),
        }
    }

    /// The staged install, if any.
    #[must_use]
    pub fn staged_install(&self) -> Option<&Present> {
        match &self.staged {
            Some(Staged::Install(p)) => Some(p),
            _ => None,
        }
    }
}

impl Device {
    fn present(&self, generation: &GenName, base: &Base) -> Result<Option<Present>> {
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
            (GenName::Base(build), None) if *build == sv.build => Ok(None),
            (GenName::Response(build), Some(extra)) if *build == sv.build => Ok(Some(Present {
                generation: generation.clone(),
                version: ResponseVersion::new(sv.version, extra),
                build: sv.build,
                cryptexes: self.generation_cryptexes(generation)?,
            })),
            _ => Err(Error::damaged(format!(
                "{}'s SystemVersion.plist does not match the generation's name",
                shown.display()
            ))),
        }
    }

    /// Reads the content state.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let base_system_version = self.base_system_version()?;
        let base = Base {
            version: base_system_version.version,
            build: base_system_version.build.clone(),
        };
        let current = self.current()?;
        let active = self.present(&current, &base)?;
        let proposed = self.proposed()?;
        let staged = match &proposed {
            None => None,
            Some(g) if g.is_base() => Some(Staged::Remove),
            Some(g) => self.present(g, &base)?.map(Staged::Install),
        };
        Ok(Snapshot {
            base_system_version,
            base,
            active,
            staged,
            current,
            proposed,
        })
    }
}
