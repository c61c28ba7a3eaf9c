//! The base OS's cryptex content that `init` and `update` lay down: a few representative files
//! per cryptex (Safari's and `WebKit`'s `Info.plist` in App, a small dyld shared cache in OS), made
//! deterministically from the platform, chip, version and build so that two devices of the same
//! kind hold identical bytes.

use plist::{Dictionary, Value};
use sha2::{Digest as _, Sha256};

use super::{Chip, Cryptex, Platform};
use crate::bundle::manifest_write::plist_xml;
use crate::version::{Build, OsVersion};

/// Size of the simulated dyld shared cache.
const DYLD_BYTES: usize = 8 * 1024;

/// One file of base content.
#[derive(Clone, Debug)]
pub(crate) struct BaseFile {
    /// The cryptex it belongs to.
    pub cryptex: Cryptex,
    /// Path within the cryptex.
    pub path: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

fn bundle_info(identifier: &str, name: &str, version: &OsVersion, build: &Build) -> Vec<u8> {
    let mut dict = Dictionary::new();
    dict.insert(
        "CFBundleIdentifier".into(),
        Value::String(identifier.into()),
    );
    dict.insert("CFBundleName".into(), Value::String(name.into()));
    dict.insert(
        "CFBundleShortVersionString".into(),
        Value::String(version.to_string()),
    );
    dict.insert(
        "CFBundleVersion".into(),
        Value::String(format!("{}.{build}", version.major())),
    );
    plist_xml(&Value::Dictionary(dict))
}

fn dyld_cache(arch: &str, build: &Build) -> Vec<u8> {
    let mut out = format!("dyld_v1 {arch:>8}\0").into_bytes();
    let mut block: [u8; 32] = Sha256::digest(build.as_str().as_bytes()).into();
    while out.len() < DYLD_BYTES {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(DYLD_BYTES);
    out
}

/// The base content for a device of this kind running `version` (`build`).
#[must_use]
pub(crate) fn base_files(
    platform: Platform,
    chip: Chip,
    version: &OsVersion,
    build: &Build,
) -> Vec<BaseFile> {
    let file = |cryptex, path: &str, bytes, mode| BaseFile {
        cryptex,
        path: path.to_owned(),
        bytes,
        mode,
    };
    match platform {
        Platform::MacOs => {
            let arch = match chip {
                Chip::AppleSilicon => "arm64e",
                Chip::Intel => "x86_64h",
            };
            vec![
                file(
                    Cryptex::App,
                    "Applications/Safari.app/Contents/Info.plist",
                    bundle_info("com.apple.Safari", "Safari", version, build),
                    0o644,
                ),
                file(
                    Cryptex::App,
                    "System/Library/Frameworks/WebKit.framework/Versions/A/Resources/Info.plist",
                    bundle_info("com.apple.WebKit", "WebKit", version, build),
                    0o644,
                ),
                file(
                    Cryptex::Os,
                    &format!("System/Library/dyld/dyld_shared_cache_{arch}"),
                    dyld_cache(arch, build),
                    0o755,
                ),
            ]
        }
        Platform::Ios | Platform::IpadOs => vec![
            file(
                Cryptex::App,
                "Applications/MobileSafari.app/Info.plist",
                bundle_info("com.apple.mobilesafari", "MobileSafari", version, build),
                0o644,
            ),
            file(
                Cryptex::App,
                "System/Library/Frameworks/WebKit.framework/Info.plist",
                bundle_info("com.apple.WebKit", "WebKit", version, build),
                0o644,
            ),
            file(
                Cryptex::Os,
                "System/Library/Caches/com.apple.dyld/dyld_shared_cache_arm64e",
                dyld_cache("arm64e", build),
                0o755,
            ),
        ],
    }
}

/// Lays down the base generation for `build` under `generations/base-<build>`: stage under a
/// temporary name, make it durable, rename it into place. Returns the generation's name. An
/// existing generation of that name is left as it is (generations never change once made).
pub(crate) fn lay_down_base(
    root: &super::Root,
    layout: &super::Layout,
    platform: Platform,
    chip: Chip,
    version: &OsVersion,
    build: &Build,
) -> crate::Result<super::GenName> {
    make_base(root, layout, platform, chip, version, build, false)
}

/// Makes the base generation for `build` again and puts it in place of a damaged one in one
/// exchange (`bsi repair`: bsi made the base content, so it can make it again).
pub(crate) fn remake_base(
    root: &super::Root,
    layout: &super::Layout,
    platform: Platform,
    chip: Chip,
    version: &OsVersion,
    build: &Build,
) -> crate::Result<super::GenName> {
    make_base(root, layout, platform, chip, version, build, true)
}

fn make_base(
    root: &super::Root,
    layout: &super::Layout,
    platform: Platform,
    chip: Chip,
    version: &OsVersion,
    build: &Build,
    replace: bool,
) -> crate::Result<super::GenName> {
    use std::collections::BTreeMap;

    use crate::bundle::digest::Digest;
    use crate::bundle::manifest::{Cryptexes, FileEntry};
    use crate::error::IoContext;

    let name = super::GenName::Base(build.clone());
    let gens = layout.generations();
    let final_rel = gens.join(name.dir_name());
    if !replace
        && root
            .exists_nofollow(&final_rel)
            .ctx("reading", root.show(&final_rel))?
    {
        return Ok(name);
    }
    root.dir()
        .create_dir_all(&gens)
        .ctx("creating", root.show(&gens))?;
    let staging = gens.join(name.staging_name());
    root.remove_tree_if_exists(&staging)
        .ctx("removing", root.show(&staging))?;
    root.dir()
        .create_dir(&staging)
        .ctx("creating", root.show(&staging))?;
    let mut listing: BTreeMap<Cryptex, Vec<FileEntry>> = BTreeMap::new();
    for file in base_files(platform, chip, version, build) {
        let rel = staging.join(file.cryptex.as_str()).join(&file.path);
        write_new_file(root, &rel, &file.bytes, file.mode)?;
        listing.entry(file.cryptex).or_default().push(FileEntry {
            path: file.path,
            size: file.bytes.len() as u64,
            sha256: Digest::of(&file.bytes),
            mode: file.mode,
        });
    }
    for files in listing.values_mut() {
        files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    let listing = Cryptexes(listing);
    let rel = staging.join(super::layout::BASE_MANIFEST);
    write_new_file(
        root,
        &rel,
        &crate::bundle::manifest_write::plist_xml(&listing.to_value()),
        0o644,
    )?;
    let sv = super::SystemVersion {
        product_name: platform.name().to_owned(),
        version: *version,
        build: build.clone(),
        extra: None,
    };
    let rel = staging.join(super::layout::GEN_SYSTEM_VERSION);
    write_new_file(root, &rel, &sv.to_xml(), 0o644)?;
    root.sync_filesystem().ctx("syncing", root.show(&staging))?;
    root.replace_dir(&gens, &name.staging_name(), &name.dir_name())
        .ctx("renaming", root.show(&staging))?;
    Ok(name)
}

/// Creates `rel` (and its parent directories) with `bytes` and `mode`; fails if it exists.
pub(crate) fn write_new_file(
    root: &super::Root,
    rel: &std::path::Path,
    bytes: &[u8],
    mode: u32,
) -> crate::Result<()> {
    use std::io::Write;

    use cap_std::fs::{OpenOptions, OpenOptionsExt, Permissions, PermissionsExt};

    use crate::error::IoContext;

    if let Some(parent) = rel.parent() {
        root.dir()
            .create_dir_all(parent)
            .ctx("creating", root.show(parent))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(mode);
    let mut file = root
        .dir()
        .open_with(rel, &options)
        .ctx("creating", root.show(rel))?;
    file.write_all(bytes).ctx("writing", root.show(rel))?;
    file.set_permissions(Permissions::from_mode(mode))
        .ctx("setting the mode of", root.show(rel))?;
    Ok(())
}
