//! `bsi bundle create` and `bsi bundle sign`: make a directory bundle from an OS tree and/or an
//! App tree, with a manifest listing each file's size, mode and SHA-256, then sign its manifest.
//!
//! The bundle is assembled under a temporary name next to `--out` and renamed into place when
//! complete, so an interrupted `create` never leaves a half bundle under the final name. Input
//! trees may hold only regular files and directories: a symlink or special file cannot be
//! represented in a bundle and is refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::keys;
use super::limits::{MAX_FILES, MAX_MANIFEST_BYTES};
use super::manifest::{Cryptexes, FileEntry, Manifest};
use super::paths::unsafe_reason;
use super::paths::{MANIFEST, SIGNATURE};
use super::{signature, stream};
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::platform::{Cryptex, Platform};
use crate::progress::Progress;
use crate::version::{Build, Extra, OsVersion};
use crate::{Error, InputKind, Result};

/// What to put in a new bundle.
#[derive(Clone, Debug)]
pub(crate) struct CreateOptions {
    /// `ProductName`.
    pub product: Platform,
    /// Base version.
    pub version: OsVersion,
    /// Prerequisite (base) build.
    pub prerequisite: Build,
    /// Response letter.
    pub extra: Extra,
    /// Supplemental build.
    pub build: Build,
    /// The OS cryptex tree.
    pub os: Option<PathBuf>,
    /// The App cryptex tree.
    pub app: Option<PathBuf>,
    /// `Description`.
    pub description: Option<String>,
    /// `PostingDate`.
    pub posting_date: Option<String>,
    /// `SupportedDevices`.
    pub supported_devices: Vec<String>,
    /// Where to write the bundle directory.
    pub out: PathBuf,
    /// Replace an existing bundle at `out`.
    pub force: bool,
}

/// What `bundle create` made.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Created {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Its response version.
    pub version: String,
    /// Its supplemental build.
    pub build: String,
    /// Files per cryptex.
    pub files: BTreeMap<String, usize>,
    /// Payload bytes.
    pub bytes: u64,
}

/// One input file found by the walk.
struct Input {
    cryptex: Cryptex,
    rel: String,
    source: PathBuf,
    size: u64,
    mode: u32,
}

fn walk_input(cryptex: Cryptex, root: &Path, out: &mut Vec<Input>) -> Result<()> {
    let flag = format!("--{}", cryptex.as_str().to_lowercase());
    let meta = std::fs::metadata(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(
                format!("{flag} {}: no such directory", root.display()),
                format!("{flag} takes the directory holding the {cryptex} cryptex tree"),
            )
        } else {
            Error::io("reading", root, e)
        }
    })?;
    if !meta.is_dir() {
        return Err(Error::usage(
            format!("{} is not a directory", root.display()),
            format!(
                "--{} takes the directory holding the {cryptex} cryptex tree",
                cryptex.as_str().to_lowercase()
            ),
        ));
    }
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ctx("listing", &dir)? {
            let entry = entry.ctx("listing", &dir)?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(Error::BadInput {
                    input: InputKind::BundleSource,
                    message: format!(
                        "{}: the name is not valid UTF-8; bundles need UTF-8 paths",
                        path.display()
                    ),
                });
            };
            let rel = format!("{prefix}{name}");
            let meta = entry.metadata().ctx("reading", &path)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push((path, format!("{rel}/")));
            } else if ft.is_file() {
                if let Some(reason) = unsafe_reason(&rel) {
                    return Err(Error::BadInput {
                        input: InputKind::BundleSource,
                        message: format!("{}: {reason}", path.display()),
                    });
                }
                out.push(Input {
                    cryptex,
                    rel,
                    source: path,
                    size: meta.len(),
                    mode: (meta.mode() & 0o777) | 0o400,
                });
                if out.len() > MAX_FILES {
                    return Err(Error::BadInput {
                        input: InputKind::BundleSource,
                        message: format!(
                            "more than {MAX_FILES} files; bsi bundles hold at most that many"
                        ),
                    });
                }
            } else {
                let kind = if ft.is_symlink() {
                    "a symlink"
                } else {
                    "not a regular file"
                };
                return Err(Error::BadInput {
                    input: InputKind::BundleSource,
                    message: format!(
                        "{} is {kind}; bundles hold only regular files and directories",
                        path.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Makes a directory bundle.
pub(crate) fn create(opts: &CreateOptions, progress: &dyn Progress) -> Result<Created> {
    if opts.os.is_none() && opts.app.is_none() {
        return Err(Error::usage(
            "a bundle needs content",
            "pass --os DIR, --app DIR or both",
        ));
    }
    Build::parse_supplemental(opts.build.as_str(), &opts.prerequisite)?;
    if let Some(date) = &opts.posting_date
        && crate::clock::parse_date(date).is_none()
    {
        return Err(Error::usage(
            format!(
                "--posting-date {} is not a date",
                crate::untrusted::clip(date)
            ),
            "give the day the response is posted as YYYY-MM-DD, a real day: e.g. --posting-date 2026-03-17",
        ));
    }
    if opts.out.exists() && !opts.force {
        return Err(Error::usage(
            format!("{} already exists", opts.out.display()),
            "choose another --out, or pass --force to replace it",
        ));
    }
    let mut inputs = Vec::new();
    for (cryptex, dir) in [(Cryptex::Os, &opts.os), (Cryptex::App, &opts.app)] {
        if let Some(dir) = dir {
            walk_input(cryptex, dir, &mut inputs)?;
        }
    }
    if inputs.is_empty() {
        return Err(Error::usage(
            "the given trees hold no files",
            "put the response's files under --os or --app",
        ));
    }
    inputs.sort_by(|a, b| (a.cryptex, a.rel.as_bytes()).cmp(&(b.cryptex, b.rel.as_bytes())));
    let parent = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = opts
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).ctx("creating", &tmp)?;
    let result = fill(opts, &inputs, &tmp, progress);
    match result {
        Ok(created) => {
            if opts.out.exists() {
                std::fs::remove_dir_all(&opts.out).ctx("replacing", &opts.out)?;
            }
            std::fs::rename(&tmp, &opts.out).ctx("renaming into", &opts.out)?;
            Ok(created)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn fill(
    opts: &CreateOptions,
    inputs: &[Input],
    tmp: &Path,
    progress: &dyn Progress,
) -> Result<Created> {
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    let ((), digests) = stream::run(progress, "creating", total, |feeder| {
        crate::faults::pause_point!("create.copying");
        for input in inputs {
            let dest = tmp.join(input.cryptex.as_str()).join(&input.rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).ctx("creating", parent)?;
            }
            let mut src = File::open(&input.source).ctx("reading", &input.source)?;
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(input.mode)
                .open(&dest)
                .ctx("creating", &dest)?;
            let label = format!("{}/{}", input.cryptex, input.rel);
            feeder
                .file(
                    &label,
                    input.size,
                    None,
                    &mut src,
                    Some(stream::Destination {
                        file: stream::Target::File(&out),
                        shown: &dest,
                    }),
                    false,
                )
                .map_err(|e| match e {
                    Error::Bundle(b) => Error::BadInput {
                        input: InputKind::BundleSource,
                        message: format!(
                            "{}: {b} (did it change while bsi read it?)",
                            input.source.display()
                        ),
                    },
                    other => other,
                })?;
            out.set_permissions(std::fs::Permissions::from_mode(input.mode))
                .ctx("setting the mode of", &dest)?;
        }
        Ok(())
    })?;
    let mut cryptexes: BTreeMap<Cryptex, Vec<FileEntry>> = BTreeMap::new();
    for (input, digest) in inputs.iter().zip(digests) {
        cryptexes.entry(input.cryptex).or_default().push(FileEntry {
            path: input.rel.clone(),
            size: input.size,
            sha256: digest,
            mode: input.mode,
        });
    }
    let manifest = Manifest {
        signing_key: None,
        product: opts.product,
        version: opts.version,
        prerequisite: opts.prerequisite.clone(),
        extra: opts.extra,
        build: opts.build.clone(),
        posting_date: opts.posting_date.clone(),
        supported_devices: opts.supported_devices.clone(),
        description: opts.description.clone(),
        cryptexes: Cryptexes(cryptexes),
        unknown_keys: Vec::new(),
    };
    let xml = manifest.to_xml();
    if xml.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::BadInput {
            input: InputKind::BundleSource,
            message: format!(
                "the manifest would be {} bytes, over bsi's {MAX_MANIFEST_BYTES}-byte limit",
                xml.len()
            ),
        });
    }
    // Round-trip through the reader's validation: bsi never writes a bundle it would refuse.
    Manifest::parse(&xml).map_err(Error::Bundle)?;
    write_synced(&tmp.join(MANIFEST), &xml)?;
    Ok(Created {
        bundle: opts.out.clone(),
        version: manifest.response_version().to_string(),
        build: manifest.build.to_string(),
        files: manifest
            .cryptexes
            .0
            .iter()
            .map(|(c, f)| (c.to_string(), f.len()))
            .collect(),
        bytes: manifest.cryptexes.total_size(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = File::create(path).ctx("creating", path)?;
    file.write_all(bytes).ctx("writing", path)?;
    file.sync_all().ctx("syncing", path)
}

/// What `bundle sign` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Signed {
    /// The bundle.
    pub bundle: PathBuf,
    /// The signature file.
    pub signature: PathBuf,
    /// The signing key's fingerprint.
    pub fingerprint: String,
}

/// Signs a directory bundle's manifest with the private key at `key`.
pub(crate) fn sign(bundle: &Path, key: &Path) -> Result<Signed> {
    if !bundle.is_dir() {
        return Err(Error::usage(
            format!("{} is not a bundle directory", bundle.display()),
            "sign the directory form, then pack it with `bsi bundle pack`",
        ));
    }
    let signing = keys::read_signing_key(key)?;
    let manifest_path = bundle.join(MANIFEST);
    if !manifest_path.exists() {
        return Err(super::BundleError::manifest("missing: the bundle has no Info.plist").into());
    }
    // Opened without blocking and read within the manifest limit, whatever is there.
    let bytes = crate::input::read_named(
        &manifest_path,
        super::limits::MAX_MANIFEST_BYTES,
        "bundle manifest",
    )?;
    // The signer is the publisher: a manifest that does not read is theirs to fix.
    let unreadable = |e: super::BundleError| match e {
        super::BundleError::Manifest { message } => super::BundleError::ToSign { message },
        other => other,
    };
    Manifest::parse(&bytes).map_err(unreadable)?;
    // Name the signing key inside the signed bytes (kept: every other key, known or not).
    let fingerprint = Digest::of(signing.verifying_key().as_bytes()).to_hex();
    let mut value = plist::Value::from_reader_xml(std::io::Cursor::new(&bytes)).map_err(|e| {
        unreadable(super::BundleError::manifest(format!(
            "not a valid property list ({e})"
        )))
    })?;
    if let Some(dict) = value.as_dictionary_mut() {
        dict.insert(
            "SigningKey".into(),
            plist::Value::String(fingerprint.clone()),
        );
    }
    let bytes = super::manifest_write::plist_xml(&value);
    Manifest::parse(&bytes).map_err(unreadable)?;
    write_synced(&manifest_path, &bytes)?;
    let sig = signature::sign(&bytes, &signing);
    let sig_path = bundle.join(SIGNATURE);
    let tmp = bundle.join(format!(".{SIGNATURE}.tmp"));
    write_synced(&tmp, &sig)?;
    std::fs::rename(&tmp, &sig_path).ctx("renaming into", &sig_path)?;
    Ok(Signed {
        bundle: bundle.to_path_buf(),
        signature: sig_path,
        fingerprint,
    })
}

impl Human for Created {
    fn human(&self, out: &mut Text, _: u8) {
        let files: Vec<String> = self.files.iter().map(|(k, v)| format!("{v} {k}")).collect();
        out.line(format!(
            "created {} ({}, {}): {} files, {} bytes",
            self.bundle.display(),
            self.version,
            self.build,
            files.join(" + "),
            self.bytes
        ));
        out.line(format!(
            "next: bsi bundle sign {} --key KEY",
            self.bundle.display()
        ));
    }
}

impl Human for Signed {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(format!(
            "signed {} with key {}",
            self.bundle.display(),
            self.fingerprint
        ));
    }
}
