//! Staging a response's content into a new generation: the payload streams from the bundle
//! through the single-pass pipeline into `generations/.bsi-tmp.staging-<build>/`, confined beneath
//! that directory's handle; the manifest, signature and a `SystemVersion.plist` are added; the tree
//! is made durable with one `syncfs`; only then is it renamed to `generations/<build>`. A failure
//! at any point removes the staging directory, so a rejected bundle is never half-copied (I4).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, Permissions, PermissionsExt};

use crate::Result;
use crate::bundle::manifest::FileEntry;
use crate::bundle::source::{Bundle, Sink};
use crate::bundle::stream;
use crate::device::layout::{GEN_MANIFEST, GEN_SIGNATURE, GEN_SYSTEM_VERSION};
use crate::device::{Cryptex, Device, GenName, SystemVersion};
use crate::error::IoContext;
use crate::faults::fault_point;
use crate::progress::Progress;

use super::placement::{self, Spreader};

struct StagingSink<'a> {
    dir: &'a Dir,
    shown: PathBuf,
    made: HashSet<PathBuf>,
    umask: u32,
    spreader: Spreader<'a>,
}

impl StagingSink<'_> {
    fn make_parents(&mut self, rel: &Path) -> io::Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.made.contains(parent) {
            return Ok(());
        }
        let mut path = PathBuf::new();
        for part in parent.components() {
            path.push(part);
            if self.made.contains(&path) {
                continue;
            }
            match self.dir.create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            self.made.insert(path.clone());
        }
        Ok(())
    }

    fn create(&mut self, rel: &Path, mode: u32) -> io::Result<File> {
        fault_point!("stage.create");
        self.make_parents(rel)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
        let file = self.spreader.create(rel, &options)?;
        if mode & self.umask != 0 {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
        Ok(file.into_std())
    }
}

impl Sink for StagingSink<'_> {
    fn open(&mut self, cryptex: Cryptex, entry: &FileEntry) -> Result<Option<(File, PathBuf)>> {
        let rel = Path::new(cryptex.as_str()).join(&entry.path);
        let shown = self.shown.join(&rel);
        let file = self.create(&rel, entry.mode).ctx("creating", &shown)?;
        Ok(Some((file, shown)))
    }

    fn close(&mut self, _file: File, path: &Path, _entry: &FileEntry) -> Result<()> {
        written().ctx("writing", path)
    }
}

/// A staged file is complete (a fault point: an I/O error or a full disk mid-payload).
// Without the `failpoints` feature this cannot fail; the signature is for the fault point.
#[cfg_attr(not(feature = "failpoints"), allow(clippy::unnecessary_wraps))]
fn written() -> io::Result<()> {
    fault_point!("stage.write");
    Ok(())
}

/// Puts the finished staging directory in place under its generation name (replacing, in one
/// exchange, a generation of that name being restored).
fn rename_into_place(root: &crate::device::Root, gens: &Path, name: &GenName) -> io::Result<()> {
    fault_point!("stage.rename");
    root.replace_dir(gens, &name.staging_name(), &name.dir_name())
}

fn current_umask() -> u32 {
    // umask can only be read by setting it; put it straight back.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.bits()
}

/// Stages `bundle` as the generation for its build and returns the generation's name. Each
/// cryptex the response does not carry is linked to the generation `suppliers` names for it (the
/// content of the response it replaces: responses are cumulative per cryptex, I1).
pub(crate) fn stage(
    device: &Device,
    bundle: &mut Bundle,
    suppliers: &BTreeMap<Cryptex, GenName>,
    progress: &dyn Progress,
) -> Result<GenName> {
    let root = device.root();
    let name = GenName::Response(bundle.manifest.build.clone());
    let gens = device.layout().generations();
    let staging = gens.join(name.staging_name());
    root.remove_tree_if_exists(&staging)
        .ctx("removing", root.show(&staging))?;
    root.dir()
        .create_dir(&staging)
        .ctx("creating", root.show(&staging))?;
    crate::faults::pause_point!("stage.streaming");
    let result = fill(device, bundle, suppliers, &staging, progress);
    if let Err(e) = result {
        let _ = root.remove_tree_if_exists(&staging);
        return Err(e);
    }
    let finish = || -> Result<()> {
        root.sync_filesystem().ctx("syncing", root.show(&staging))?;
        rename_into_place(root, &gens, &name).ctx("renaming", root.show(&staging))
    };
    if let Err(e) = finish() {
        let _ = root.remove_tree_if_exists(&staging);
        return Err(e);
    }
    Ok(name)
}

fn fill(
    device: &Device,
    bundle: &mut Bundle,
    suppliers: &BTreeMap<Cryptex, GenName>,
    staging: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let root = device.root();
    let dir = root
        .dir()
        .open_dir(staging)
        .ctx("opening", root.show(staging))?;
    let shown = root.show(staging);
    let umask = current_umask();
    let carried: Vec<Cryptex> = bundle.manifest.cryptexes.0.keys().copied().collect();
    let placed = placement::place_cryptex_dirs(&dir, &carried, bundle.manifest.cryptexes.count())
        .ctx("creating", &shown)?;
    let sink = || StagingSink {
        dir: &dir,
        shown: shown.clone(),
        made: placed.made.clone(),
        umask,
        spreader: placed.spreader(&dir),
    };
    let total = bundle.manifest.cryptexes.total_size();
    let files = bundle.manifest.cryptexes.count();
    if files >= stream::PARALLEL_MIN_FILES {
        // Many files: two readers, each with its own hasher (a tar's files are read at the
        // offsets its structure check found, so its two readers do not share a position).
        let bundle: &Bundle = bundle;
        stream::run_parts(progress, "staging", total, 2, |part, feeder| {
            bundle.stream_part(part, 2, feeder, &mut sink())
        })?;
    } else {
        stream::run(progress, "staging", total, |feeder| {
            bundle.stream(feeder, &mut sink())
        })?;
    }
    // The probe files kept the placement's freed inodes out of the way; the payload is in.
    placed.clean_up(&dir).ctx("removing", &shown)?;
    let write = |name: &str, fill: &dyn Fn(&mut dyn io::Write) -> io::Result<()>| -> Result<()> {
        let shown = root.show(staging.join(name));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let file = dir.open_with(name, &options).ctx("creating", &shown)?;
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        fill(&mut out)
            .and_then(|()| io::Write::flush(&mut out))
            .ctx("writing", &shown)
    };
    // A large manifest was spooled to an unnamed file on this filesystem once its signature
    // verified: it becomes the generation's manifest as it is, not written again.
    let linked = bundle
        .manifest_bytes
        .link_into(&dir, GEN_MANIFEST)
        .ctx("linking", root.show(staging.join(GEN_MANIFEST)))?;
    if !linked {
        write(GEN_MANIFEST, &|out| bundle.manifest_bytes.write_to(out))?;
    }
    if let Some(sig) = &bundle.signature {
        write(GEN_SIGNATURE, &|out| out.write_all(sig))?;
    }
    let m = &bundle.manifest;
    let sv = SystemVersion {
        // The device's own name: an iPad runs iOS bundles as iPadOS.
        product_name: device.info().platform.name().to_owned(),
        version: m.version,
        build: m.build.clone(),
        extra: Some(m.extra),
    };
    let system_version = sv.to_xml();
    write(GEN_SYSTEM_VERSION, &|out| out.write_all(&system_version))?;
    for cryptex in Cryptex::ALL {
        if !m.cryptexes.0.contains_key(&cryptex) {
            let supplier = suppliers.get(&cryptex).ok_or_else(|| {
                crate::Error::damaged(format!("no generation supplies the {cryptex} cryptex"))
            })?;
            dir.symlink(supplier.supplier_link(cryptex), cryptex.as_str())
                .ctx("linking", root.show(staging.join(cryptex.as_str())))?;
        }
    }
    Ok(())
}
