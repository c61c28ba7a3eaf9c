//! `bsi bundle pack`: the single-file form. `Info.plist` and `Info.plist.sig` come first, then
//! the payload in manifest order, with fixed metadata (mode from the manifest, owner 0, time 0),
//! so that packing the same bundle twice gives the same bytes. The payload is re-hashed while it
//! is copied: bsi never packs a bundle whose digests do not hold.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::paths::{MANIFEST, SIGNATURE};
use super::source::{Bundle, Form};
use super::{BundleError, digest};
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::{Error, Result};

/// What `bundle pack` wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Packed {
    /// The tar file.
    pub out: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Payload files.
    pub files: usize,
    /// Whether it carries a signature.
    pub signed: bool,
}

struct Hashing<'r> {
    inner: &'r mut dyn Read,
    hasher: Sha256,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::interrupt::check().is_err() {
            return Err(std::io::Error::other("interrupted by a signal"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Packs the directory bundle at `bundle` into the tar file `out`.
pub(crate) fn pack(bundle: &Path, out: &Path, force: bool) -> Result<Packed> {
    let mut opened = Bundle::open_unverified(bundle)?;
    if opened.form == Form::Tar {
        return Err(Error::usage(
            format!("{} is already a tar bundle", bundle.display()),
            "pack the directory form",
        ));
    }
    opened.check_structure()?;
    if out.exists() && !force {
        return Err(Error::usage(
            format!("{} already exists", out.display()),
            "choose another --out, or pass --force to replace it",
        ));
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", out.display(), std::process::id()));
    let result = write_tar(&opened, &tmp);
    match result {
        Ok(()) => {
            std::fs::rename(&tmp, out).ctx("renaming into", out)?;
            Ok(Packed {
                out: out.to_path_buf(),
                bytes: std::fs::metadata(out).ctx("reading", out)?.len(),
                files: opened.manifest.cryptexes.count(),
                signed: opened.signature.is_some(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // A signal shows as an I/O error from inside the copy: say it as what it was.
            crate::interrupt::check()?;
            Err(e)
        }
    }
}

fn write_tar(bundle: &Bundle, tmp: &Path) -> Result<()> {
    let file = File::create(tmp).ctx("creating", tmp)?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let put = |builder: &mut tar::Builder<BufWriter<File>>, name: &str, bytes: &[u8]| {
        builder
            .append_data(&mut header(bytes.len() as u64, 0o644), name, bytes)
            .ctx("writing", tmp)
    };
    let mut manifest = Vec::new();
    bundle
        .manifest_bytes
        .write_to(&mut manifest)
        .ctx("reading", &bundle.path)?;
    put(&mut builder, MANIFEST, &manifest)?;
    if let Some(sig) = &bundle.signature {
        put(&mut builder, SIGNATURE, sig)?;
    }
    crate::faults::pause_point!("pack.copying");
    for (index, (cryptex, entry)) in bundle.manifest.cryptexes.files().enumerate() {
        let label = format!("{cryptex}/{}", entry.path);
        let mut src = bundle.payload(index)?;
        let mut reader = Hashing {
            inner: &mut src,
            hasher: Sha256::new(),
        };
        builder
            .append_data(&mut header(entry.size, entry.mode), &label, &mut reader)
            .ctx("writing", tmp)?;
        let actual = digest::finish(reader.hasher);
        if actual != entry.sha256 {
            return Err(BundleError::Digest {
                path: label,
                expected: entry.sha256.to_hex(),
                actual: actual.to_hex(),
            }
            .into());
        }
    }
    let mut writer = builder.into_inner().ctx("writing", tmp)?;
    writer.flush().ctx("writing", tmp)?;
    writer
        .into_inner()
        .map_err(|e| Error::io("writing", tmp, e.into_error()))?
        .sync_all()
        .ctx("syncing", tmp)
}

impl Human for Packed {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(format!(
            "packed {} files into {} ({} bytes){}",
            self.files,
            self.out.display(),
            self.bytes,
            if self.signed {
                ""
            } else {
                "; unsigned: devices will reject it"
            }
        ));
    }
}
