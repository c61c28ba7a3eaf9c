//! `bsi init`: makes a new simulated device, laid out as DESIGN section 2 describes.
//!
//! The device record (`device.json`) is written last: until it exists the directory is not a
//! device, so an interrupted `init` leaves something every other command reports as "no device"
//! and that `init` (without `--force`) may finish over. `--force` replaces an existing device; it
//! removes the device record first for the same reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;
use crate::device::base_content::lay_down_base;
use crate::device::layout::{self, Layout};
use crate::device::records::{self, DeviceInfo, Power, RECORD_FORMAT, Settings};
use crate::device::trust;
use crate::device::{DeviceLock, Holder, Root, SystemVersion};
use crate::error::IoContext;
use crate::history::{self, Entry};
use crate::human::{Human, Text};
use crate::platform::{Chip, Cryptex, Platform};
use crate::version::{Build, OsVersion};
use crate::{Error, Result};

/// What `init` makes.
#[derive(Clone, Debug)]
pub(crate) struct InitOptions {
    /// Platform.
    pub platform: Platform,
    /// Base OS version.
    pub version: OsVersion,
    /// Base build.
    pub build: Build,
    /// Processor family.
    pub chip: Chip,
    /// A laptop rather than a desktop (always true off macOS).
    pub portable: bool,
    /// Battery charge, for portable devices.
    pub battery: u8,
    /// Connected to power.
    pub on_ac: bool,
    /// Supervised by an organisation.
    pub supervised: bool,
    /// Public keys to trust.
    pub trust: Vec<PathBuf>,
    /// Replace an existing device.
    pub force: bool,
    /// Report, change nothing.
    pub dry_run: bool,
    /// How long to wait for the lock of a device being replaced.
    pub wait: Duration,
    /// The enrollment identifier; a new UUID when not given.
    pub enrollment_id: Option<String>,
}

/// What `init` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct InitOutcome {
    /// The device root.
    pub root: PathBuf,
    /// Platform.
    pub platform: Platform,
    /// Base version.
    pub version: String,
    /// Base build.
    pub build: String,
    /// Volume group UUID.
    pub volume_group: String,
    /// The enrollment identifier (`X-Enrollment-ID` for a DDM server).
    pub enrollment_id: String,
    /// An existing device was replaced.
    pub replaced: bool,
    /// Fingerprints of the keys now trusted.
    pub trusted: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
}

enum Existing {
    Empty,
    Device,
    Interrupted,
}

fn classify(root: &Root) -> Result<Existing> {
    if root
        .exists_nofollow(layout::DEVICE_RECORD)
        .ctx("reading", root.show(layout::DEVICE_RECORD))?
    {
        return Ok(Existing::Device);
    }
    if root
        .exists_nofollow(layout::DB)
        .ctx("reading", root.show(layout::DB))?
    {
        return Ok(Existing::Interrupted);
    }
    let mut entries = root.dir().entries().ctx("listing", root.path())?;
    if entries.next().is_some() {
        return Err(Error::RootNotEmpty {
            root: root.path().to_path_buf(),
        });
    }
    Ok(Existing::Empty)
}

fn new_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Io {
        action: "drawing random bytes for",
        path: PathBuf::from("a new UUID"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(uuid_text(b))
}

/// The base OS a new device runs unless told otherwise: 26.3.1, with the build of the
/// platform (25D2128 on macOS, 23D8133 on iOS and iPadOS).
pub(crate) const DEFAULT_VERSION: &str = "26.3.1";

/// The default base build of `platform` (for [`DEFAULT_VERSION`]).
#[must_use]
pub(crate) const fn default_build(platform: Platform) -> &'static str {
    match platform {
        Platform::MacOs => "25D2128",
        Platform::Ios | Platform::IpadOs => "23D8133",
    }
}

/// A version-4 UUID made of `b`, in the upper-case form macOS shows (`4AF1...-...`).
#[must_use]
pub(crate) fn uuid_text(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::bundle::digest::hex(&b).to_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Removes an existing device's content, keeping its lock file (which this process holds).
fn clear(root: &Root) -> Result<()> {
    root.remove_durable(layout::DEVICE_RECORD)
        .ctx("removing", root.show(layout::DEVICE_RECORD))?;
    root.remove_tree_if_exists("System")
        .ctx("removing", root.show("System"))?;
    let db = Path::new(layout::DB);
    for entry in root.dir().read_dir(db).ctx("listing", root.show(db))? {
        let name = entry.ctx("listing", root.show(db))?.file_name();
        if name != "lock" {
            let rel = db.join(&name);
            root.remove_tree_if_exists(&rel)
                .ctx("removing", root.show(&rel))?;
        }
    }
    Ok(())
}

/// Takes an exclusive `flock` on the root directory, waiting up to `wait`; released when the
/// returned handle is dropped.
fn lock_root(path: &Path, wait: Duration) -> Result<std::fs::File> {
    let dir = std::fs::File::open(path).ctx("opening", path)?;
    let start = std::time::Instant::now();
    loop {
        match dir.try_lock() {
            Ok(()) => return Ok(dir),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy {
                    holder: "another `bsi init` of this root".to_owned(),
                    waited: start.elapsed().as_secs_f64(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
        }
    }
}

/// Refuses a `--root` that can never hold a device: not a directory, or read-only.
fn check_root(path: &Path) -> Result<()> {
    // `--root` names a directory: a file, a device or a FIFO there can never hold a device.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_dir()
    {
        return Err(Error::usage(
            format!(
                "{} is {}, not a directory; --root names the directory that holds the device",
                path.display(),
                crate::error::kind_of(&meta)
            ),
            "pick an empty or new directory: `bsi init --root DIR`",
        ));
    }
    if path.exists() && crate::device::path_is_read_only(path) {
        return Err(Error::ReadOnly {
            root: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The new device's history entry and records: the device record last, which makes it a device.
fn record_device(
    root: &Root,
    opts: &InitOptions,
    clock: &Clock,
    replaced: bool,
    info: &DeviceInfo,
) -> Result<()> {
    let entry = Entry::new(clock, "init")
        .after(format!("{} ({})", opts.version, opts.build))
        .detail(format!(
            "{} {} ({}){}",
            opts.platform,
            opts.version,
            opts.build,
            if replaced {
                ", replacing the previous device"
            } else {
                ""
            }
        ));
    history::append(root, &entry)?;
    // A second copy of the identity a server knows the device by, for `repair` to rebuild a
    // lost device record with.
    records::write_json(
        root,
        layout::ENROLLMENT_RECORD,
        &records::Enrollment {
            enrollment_id: enrollment_id_of(info),
        },
    )?;
    records::write_json(root, layout::DEVICE_RECORD, info)?;
    Ok(())
}

/// Makes a device at `path`.
pub(crate) fn init(path: &Path, opts: &InitOptions, clock: &Clock) -> Result<InitOutcome> {
    // Parse the keys first, so that a bad key refuses before anything is written.
    let keys = opts
        .trust
        .iter()
        .map(|p| trust::read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    check_root(path)?;
    if !path.exists() && !opts.dry_run {
        std::fs::create_dir_all(path).ctx("creating", path)?;
    }
    // Inits of one root are serialised on the root directory itself (the device lock file may
    // not exist yet): the second finds the device the first made and says so.
    let _serial = if path.exists() {
        Some(lock_root(path, opts.wait)?)
    } else {
        None
    };
    let existing = match Root::open(path) {
        Ok(root) => classify(&root)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.dry_run => Existing::Empty,
        Err(e) => return Err(Error::io("opening", path, e)),
    };
    let replaced = matches!(existing, Existing::Device);
    if replaced && !opts.force {
        return Err(Error::AlreadyInitialised {
            root: path.to_path_buf(),
        });
    }
    let uuid = new_uuid()?;
    let mut outcome = InitOutcome {
        root: path.to_path_buf(),
        platform: opts.platform,
        version: opts.version.to_string(),
        build: opts.build.to_string(),
        volume_group: uuid.clone(),
        enrollment_id: opts.enrollment_id.clone().unwrap_or_default(),
        replaced,
        trusted: keys.iter().map(|k| k.fingerprint.clone()).collect(),
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(outcome);
    }
    let root = Root::open(path).ctx("opening", path)?;
    if !matches!(existing, Existing::Empty) {
        root.dir()
            .create_dir_all(layout::DB)
            .ctx("creating", root.show(layout::DB))?;
    }
    let _lock = if replaced {
        let lock = DeviceLock::acquire(&root, opts.wait, Holder::this("init", &clock.stamp()))?;
        clear(&root)?;
        Some(lock)
    } else {
        if matches!(existing, Existing::Interrupted) {
            clear(&root)?;
        }
        None
    };
    build(&root, opts, &uuid)?;
    for key in &keys {
        trust::install(&root, key)?;
    }
    outcome.trusted = keys.into_iter().map(|k| k.fingerprint).collect();
    let enrollment_id = match &opts.enrollment_id {
        Some(id) => id.clone(),
        None => new_uuid()?,
    };
    outcome.enrollment_id.clone_from(&enrollment_id);
    let info = DeviceInfo {
        format: RECORD_FORMAT,
        platform: opts.platform,
        chip: opts.chip,
        portable: opts.portable,
        supervised: opts.supervised,
        identity: Some(crate::device::identity::Identity::derive(
            opts.platform,
            opts.chip,
            opts.portable,
            &uuid,
        )),
        volume_group: uuid,
        enrollment_id: Some(enrollment_id),
        created: clock.stamp(),
    };
    record_device(&root, opts, clock, replaced, &info)?;
    Ok(outcome)
}

fn enrollment_id_of(info: &DeviceInfo) -> String {
    info.enrollment().to_owned()
}

fn build(root: &Root, opts: &InitOptions, uuid: &str) -> Result<()> {
    let layout = Layout::new(uuid);
    for dir in [
        layout::DB,
        layout::TRUST,
        layout::DECLARATIONS,
        "System/Library/CoreServices",
        layout::SYSTEM_CRYPTEXES,
        layout::PREBOOT_CRYPTEXES,
    ] {
        root.dir()
            .create_dir_all(dir)
            .ctx("creating", root.show(dir))?;
    }
    let lock_options = {
        let mut o = cap_std::fs::OpenOptions::new();
        o.write(true).create(true);
        o
    };
    root.dir()
        .open_with(layout::LOCK, &lock_options)
        .ctx("creating", root.show(layout::LOCK))?;
    let sv = SystemVersion {
        product_name: opts.platform.name().to_owned(),
        version: opts.version,
        build: opts.build.clone(),
        extra: None,
    };
    root.write_atomic(layout::SYSTEM_VERSION, &sv.to_xml(), 0o644)
        .ctx("writing", root.show(layout::SYSTEM_VERSION))?;
    let base = lay_down_base(
        root,
        &layout,
        opts.platform,
        opts.chip,
        &opts.version,
        &opts.build,
    )?;
    root.swap_symlink(layout.current(), base.link_target())
        .ctx("linking", root.show(layout.current()))?;
    for cryptex in Cryptex::ALL {
        let graft = Layout::graft(cryptex);
        root.swap_symlink(&graft, layout.graft_target(cryptex))
            .ctx("linking", root.show(&graft))?;
        let link = Layout::system_link(cryptex);
        root.swap_symlink(&link, Layout::system_link_target(cryptex))
            .ctx("linking", root.show(&link))?;
    }
    let power = Power {
        battery_percent: opts.portable.then_some(opts.battery),
        on_ac: opts.on_ac || !opts.portable,
    };
    records::write_json(root, layout::POWER_RECORD, &power)?;
    records::write_json(root, layout::SETTINGS_RECORD, &Settings::default())?;
    Ok(())
}

impl Human for InitOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let verb = match (self.dry_run, self.replaced) {
            (true, _) => "would make",
            (false, true) => "replaced the device with",
            (false, false) => "made",
        };
        let article = if self.platform.name().starts_with(['i', 'a', 'e', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        out.line(format!(
            "{verb} {article} {} {} ({}) device at {}",
            self.platform,
            self.version,
            self.build,
            self.root.display()
        ));
        for fp in &self.trusted {
            out.line(format!("trusts key {fp}"));
        }
    }
}
