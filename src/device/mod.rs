//! The simulated device: where its root is, how it is laid out, what bsi records about it, the
//! lock that serialises changes, and the confined, atomic file operations every change is built
//! from.
//!
//! [`Device`] is an opened device: a confined handle on its root, its `device.json`, and the
//! device lock held for reading or for changing. This module reads state; the operations that
//! change it live in `lifecycle` and build on `atomic.rs` and `generation.rs`.

mod atomic;
pub(crate) mod base_content;
mod confine;
pub(crate) mod enrollment;
pub(crate) mod generation;
pub(crate) mod identity;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod origins;
pub(crate) mod records;
pub(crate) mod root;
pub(crate) mod state;
mod sysversion;
pub(crate) mod trust;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub(crate) use crate::platform::{Chip, Cryptex, Platform};
pub(crate) use atomic::TMP_PREFIX;
pub(crate) use confine::{Kind, Open, Root, is_damage};
pub(crate) use generation::GenName;
pub(crate) use layout::Layout;
pub(crate) use lock::{Access, DeviceLock, Holder};
pub(crate) use records::{DeviceInfo, Power, Settings};
pub(crate) use state::{Present, Snapshot, Source, Staged};
pub(crate) use sysversion::SystemVersion;

use crate::error::IoContext;
use crate::version::Base;
use crate::{Error, Result};

/// An opened device with its lock held.
#[derive(Debug)]
pub(crate) struct Device {
    root: Root,
    info: DeviceInfo,
    layout: Layout,
    lock: Option<DeviceLock>,
}

/// Does `root` hold what `init` makes, apart from the device record?
fn looks_like_device(root: &Root) -> bool {
    [layout::DB, layout::PREBOOT, layout::SYSTEM_VERSION]
        .iter()
        .all(|rel| root.exists_nofollow(rel).unwrap_or(false))
}

/// Makes `device.json` again when it is missing or does not parse, from what the device holds:
/// the volume group from the Preboot directory's name, the platform from the base
/// `SystemVersion.plist`, the chip from the base content's shared cache, portability from the
/// power record. Supervision cannot be read from anything else; it is set to false and said.
/// Returns what was done, or `None` when the record is fine. Needs no lock: a device without a
/// readable record cannot be opened by any other command.
pub(crate) fn rebuild_record(path: &Path, clock_stamp: &str) -> Result<Option<String>> {
    let Ok(root) = Root::open(path) else {
        return Ok(None);
    };
    let readable = records::read_json::<DeviceInfo>(&root, layout::DEVICE_RECORD).is_ok();
    if readable || !looks_like_device(&root) {
        return Ok(None);
    }
    let preboot = Path::new(layout::PREBOOT);
    let mut groups = Vec::new();
    for entry in root
        .dir()
        .read_dir(preboot)
        .ctx("listing", root.show(preboot))?
    {
        let name = entry.ctx("listing", root.show(preboot))?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name != "Cryptexes" && !name.starts_with(TMP_PREFIX) {
            groups.push(name);
        }
    }
    let [volume_group] = groups.as_slice() else {
        return Err(Error::damaged(format!(
            "{} is damaged and cannot be rebuilt: {} holds {} volume groups, not one",
            layout::DEVICE_RECORD,
            root.show(preboot).display(),
            groups.len()
        )));
    };
    let bytes = root
        .read_small(layout::SYSTEM_VERSION)
        .ctx("reading", root.show(layout::SYSTEM_VERSION))?;
    let sv = SystemVersion::parse(&bytes, &root.show(layout::SYSTEM_VERSION))?;
    let platform = Platform::from_name(&sv.product_name).ok_or_else(|| {
        Error::damaged(format!(
            "{} names the platform `{}`",
            layout::SYSTEM_VERSION,
            sv.product_name
        ))
    })?;
    let l = Layout::new(volume_group);
    let intel = l
        .generation(&GenName::Base(sv.build.clone()).dir_name())
        .join("OS/System/Library/dyld/dyld_shared_cache_x86_64h");
    let chip = if root.exists_nofollow(&intel).unwrap_or(false) {
        Chip::Intel
    } else {
        Chip::AppleSilicon
    };
    let portable = records::read_json::<Power>(&root, layout::POWER_RECORD)
        .map_or(true, |p| p.battery_percent.is_some());
    let info = DeviceInfo {
        format: records::RECORD_FORMAT,
        platform,
        chip,
        portable,
        supervised: false,
        volume_group: volume_group.clone(),
        // The identifier a server knows the device by survives in its own record, or in the
        // sync record.
        enrollment_id: records::read_json_lenient::<records::Enrollment>(
            &root,
            layout::ENROLLMENT_RECORD,
        )
        .map(|e| e.enrollment_id)
        .or_else(|| {
            records::read_json_lenient::<records::SyncState>(&root, layout::SYNC_RECORD)
                .map(|s| s.enrollment_id)
        })
        .filter(|id| !id.is_empty()),
        identity: None,
        created: clock_stamp.to_owned(),
    };
    let identity = match &info.enrollment_id {
        Some(id) => format!("enrolled as {id}, as before"),
        None => format!(
            "the enrollment identifier was lost with it: the device is now enrolled as {} (its volume group), which a DDM or MDM server sees as a new device",
            info.volume_group
        ),
    };
    records::write_json(&root, layout::DEVICE_RECORD, &info)?;
    records::write_json(
        &root,
        layout::ENROLLMENT_RECORD,
        &records::Enrollment {
            enrollment_id: info.enrollment().to_owned(),
        },
    )?;
    Ok(Some(format!(
        "rebuilt {} ({platform}, {chip}, {}; {identity}; supervision cannot be recovered and is now off: make the device again with `bsi init --force --supervised` if it was supervised)",
        layout::DEVICE_RECORD,
        if portable { "portable" } else { "desktop" }
    )))
}

impl Device {
    /// Opens the device at `path`. For [`Access::Change`] it takes the device lock as `holder`
    /// (waiting up to `wait`); for [`Access::Read`] it takes nothing and writes nothing. A root
    /// that holds no device gives [`Error::NoDevice`].
    pub(crate) fn open(
        path: &Path,
        access: Access,
        wait: Duration,
        holder: Holder,
    ) -> Result<Self> {
        let no_device = || Error::NoDevice {
            root: path.to_path_buf(),
        };
        let root = match Root::open(path) {
            Ok(root) => root,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_device()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(no_device()),
            Err(e) => return Err(Error::io("opening", path, e)),
        };
        if !root
            .exists_nofollow(layout::DEVICE_RECORD)
            .map_err(|e| root.failure("reading", layout::DEVICE_RECORD, e))?
        {
            if looks_like_device(&root) {
                return Err(Error::damaged(format!(
                    "{} holds a bsi device whose record {} is missing",
                    path.display(),
                    layout::DEVICE_RECORD
                )));
            }
            return Err(no_device());
        }
        if access == Access::Change && read_only(&root) {
            return Err(Error::ReadOnly {
                root: path.to_path_buf(),
            });
        }
        let lock = match access {
            Access::Read => None,
            Access::Change => Some(DeviceLock::acquire(&root, wait, holder)?),
        };
        let info: DeviceInfo = records::read_json(&root, layout::DEVICE_RECORD)?;
        if info.format != records::RECORD_FORMAT {
            return Err(Error::damaged(format!(
                "{} has record format {}; this bsi understands format {}",
                root.show(layout::DEVICE_RECORD).display(),
                info.format,
                records::RECORD_FORMAT
            )));
        }
        let layout = Layout::new(&info.volume_group);
        Ok(Self {
            root,
            info,
            layout,
            lock,
        })
    }

    /// The confined root handle.
    #[must_use]
    pub(crate) fn root(&self) -> &Root {
        &self.root
    }

    /// What kind of device this is.
    #[must_use]
    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Paths that depend on the volume group UUID.
    #[must_use]
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Tells readers what this changer is doing now (best effort; nothing for a reader).
    pub(crate) fn set_phase(&self, phase: &str) {
        if let Some(lock) = &self.lock {
            lock.set_phase(phase);
        }
    }

    /// Tells readers which response this changer is installing (best effort).
    pub(crate) fn set_target(
        &self,
        version: &str,
        build: &str,
        reason: &str,
        declaration: Option<&str>,
    ) {
        if let Some(lock) = &self.lock {
            lock.set_target(version, build, reason, declaration);
        }
    }

    /// The response this changer said it installs ([`Device::set_target`]), if it did.
    #[must_use]
    pub(crate) fn announced_target(&self) -> Option<(String, String)> {
        let holder = self.lock.as_ref()?.holder();
        Some((holder.target?, holder.target_build?))
    }

    /// The changer at work on this device, if another process holds its lock (for readers).
    #[must_use]
    pub(crate) fn operation(&self) -> Option<Holder> {
        if self.lock.is_some() {
            return None;
        }
        lock::probe(&self.root)
    }

    /// The base OS, from `System/Library/CoreServices/SystemVersion.plist`.
    pub(crate) fn base_system_version(&self) -> Result<SystemVersion> {
        let rel = layout::SYSTEM_VERSION;
        let bytes = self.read_state(Path::new(rel))?;
        SystemVersion::parse(&bytes, &self.root.show(rel))
    }

    /// Reads a file the device's state cannot do without: its absence is damage (exit 8).
    fn read_state(&self, rel: &Path) -> Result<Vec<u8>> {
        match self.root.read_small(rel) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::damaged(format!(
                "{} is missing",
                self.root.show(rel).display()
            ))),
            Err(e) if is_damage(&e) => Err(Error::damaged(format!(
                "{}: {e}",
                self.root.show(rel).display()
            ))),
            Err(e) => Err(Error::io("reading", self.root.show(rel), e)),
        }
    }

    /// The base OS as a version and build.
    pub(crate) fn base(&self) -> Result<Base> {
        let sv = self.base_system_version()?;
        Ok(Base {
            version: sv.version,
            build: sv.build,
        })
    }

    /// A generation's `SystemVersion.plist`.
    pub(crate) fn generation_system_version(&self, name: &GenName) -> Result<SystemVersion> {
        let rel = self.generation_path(name).join(layout::GEN_SYSTEM_VERSION);
        let bytes = self.read_state(&rel)?;
        SystemVersion::parse(&bytes, &self.root.show(&rel))
    }

    /// For each cryptex, the generation whose own tree supplies it to generation `name`: the
    /// generation itself where it holds a directory, else the generation its link
    /// (`<Cryptex> -> ../<supplier>/<Cryptex>`) names. Anything else is damage.
    pub(crate) fn generation_sources(&self, name: &GenName) -> Result<BTreeMap<Cryptex, GenName>> {
        let mut out = BTreeMap::new();
        for cryptex in Cryptex::ALL {
            let rel = self.generation_path(name).join(cryptex.as_str());
            let shown = self.root.show(&rel);
            let kind = self.root.kind(&rel).map_err(|e| {
                if is_damage(&e) {
                    Error::damaged(format!("{}: {e}", shown.display()))
                } else {
                    Error::io("reading", &shown, e)
                }
            })?;
            let supplier = match kind {
                None => return Err(Error::damaged(format!("{} is missing", shown.display()))),
                Some(Kind::Dir) => name.clone(),
                Some(Kind::Symlink) => {
                    let target = self
                        .root
                        .read_link_opt(&rel)
                        .ctx("reading", &shown)?
                        .unwrap_or_default();
                    GenName::from_supplier_link(&target, cryptex).ok_or_else(|| {
                        Error::damaged(format!(
                            "{} points at {}, which is not another generation's {cryptex} tree",
                            shown.display(),
                            target.display()
                        ))
                    })?
                }
                Some(_) => {
                    return Err(Error::damaged(format!(
                        "{} is neither a directory nor a link to another generation",
                        shown.display()
                    )));
                }
            };
            out.insert(cryptex, supplier);
        }
        Ok(out)
    }

    /// The device's volume: its size, free space and inodes (`statvfs` of the root).
    pub(crate) fn volume(&self) -> Result<rustix::fs::StatVfs> {
        rustix::fs::fstatvfs(self.root.dir())
            .map_err(|e| Error::io("checking free space on", self.root.path(), e.into()))
    }

    /// The simulated power source.
    pub(crate) fn power(&self) -> Result<Power> {
        records::read_json(&self.root, layout::POWER_RECORD)
    }

    /// The user's settings.
    pub(crate) fn settings(&self) -> Result<Settings> {
        Ok(records::read_json_opt(&self.root, layout::SETTINGS_RECORD)?.unwrap_or_default())
    }
}

/// Is the filesystem holding `root` mounted read-only?
fn read_only(root: &Root) -> bool {
    rustix::fs::fstatvfs(root.dir())
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Is the filesystem holding `path` mounted read-only (`init`'s check, before a device exists)?
#[must_use]
pub(crate) fn path_is_read_only(path: &Path) -> bool {
    rustix::fs::statvfs(path)
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}
