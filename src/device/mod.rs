//! The simulated device: where its root is, how it is laid out, what bsi records about it, the
//! lock that serialises changes, and the confined, atomic file operations every change is built
//! from.
//!
//! [`Device`] is an opened device: a confined handle on its root, its `device.json`, and the
//! device lock held for reading or for changing. This module reads state; the operations that
//! change it live in `lifecycle` and build on `atomic.rs` and `generation.rs`.

mod atomic;
pub mod base_content;
mod confine;
pub mod generation;
pub mod init;
pub mod layout;
mod lock;
pub mod records;
pub mod root;
pub mod state;
mod sysversion;

use std::path::Path;
use std::time::Duration;

pub use atomic::TMP_PREFIX;
pub use confine::{MAX_RECORD_BYTES, Root, is_escape};
pub use generation::GenName;
pub use layout::{Cryptex, Layout};
pub use lock::{Access, DeviceLock};
pub use records::{Chip, DeviceInfo, Platform, Power, Settings};
pub use state::{Present, Snapshot, Staged};
pub use sysversion::SystemVersion;

use crate::error::IoContext;
use crate::version::Base;
use crate::{Error, Result};

/// An opened device with its lock held.
#[derive(Debug)]
pub struct Device {
    root: Root,
    info: DeviceInfo,
    layout: Layout,
    lock: DeviceLock,
    journal_open: std::cell::Cell<bool>,
}

impl Device {
    /// Opens the device at `path`, taking the lock for `access` (waiting up to `wait`).
    /// A root that holds no device gives [`Error::NoDevice`].
    pub fn open(path: &Path, access: Access, wait: Duration, command: &str) -> Result<Self> {
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
            .ctx("reading", root.show(layout::DEVICE_RECORD))?
        {
            return Err(no_device());
        }
        let lock = DeviceLock::acquire(&root, access, wait, command)?;
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
            journal_open: std::cell::Cell::new(false),
        })
    }

    /// The confined root handle.
    #[must_use]
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// What kind of device this is.
    #[must_use]
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Paths that depend on the volume group UUID.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Is this process's journal open (an operation in progress)?
    #[must_use]
    pub fn journal_open(&self) -> bool {
        self.journal_open.get()
    }

    /// Notes that this process opened or closed its journal.
    pub fn set_journal_open(&self, open: bool) {
        self.journal_open.set(open);
    }

    /// Turns a read lock into a change lock, waiting up to `wait`.
    pub fn upgrade_lock(&mut self, wait: Duration, command: &str) -> Result<()> {
        self.lock.upgrade(&self.root, wait, command)
    }

    /// The held lock's access.
    #[must_use]
    pub fn access(&self) -> Access {
        self.lock.access()
    }

    /// The base OS, from `System/Library/CoreServices/SystemVersion.plist`.
    pub fn base_system_version(&self) -> Result<SystemVersion> {
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
            Err(e) => Err(Error::io("reading", self.root.show(rel), e)),
        }
    }

    /// The base OS as a version and build.
    pub fn base(&self) -> Result<Base> {
        let sv = self.base_system_version()?;
        Ok(Base {
            version: sv.version,
            build: sv.build,
        })
    }

    /// A generation's `SystemVersion.plist`.
    pub fn generation_system_version(&self, name: &GenName) -> Result<SystemVersion> {
        let rel = self.generation_path(name).join(layout::GEN_SYSTEM_VERSION);
        let bytes = self.read_state(&rel)?;
        SystemVersion::parse(&bytes, &self.root.show(&rel))
    }

    /// Which cryptexes a response generation carries itself (the others are the base's, linked).
    pub fn generation_cryptexes(&self, name: &GenName) -> Result<Vec<Cryptex>> {
        let mut out = Vec::new();
        for cryptex in Cryptex::ALL {
            let rel = self.generation_path(name).join(cryptex.as_str());
            let meta = self
                .root
                .dir()
                .symlink_metadata(&rel)
                .ctx("reading", self.root.show(&rel))?;
            if meta.is_dir() {
                out.push(cryptex);
            }
        }
        Ok(out)
    }

    /// The simulated power source.
    pub fn power(&self) -> Result<Power> {
        records::read_json(&self.root, layout::POWER_RECORD)
    }

    /// The user's settings.
    pub fn settings(&self) -> Result<Settings> {
        Ok(records::read_json_opt(&self.root, layout::SETTINGS_RECORD)?.unwrap_or_default())
    }
}
