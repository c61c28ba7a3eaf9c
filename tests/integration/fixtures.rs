//! The committed fixtures (`fixtures/bundles`, `fixtures/bad`) are made here, with bsi's own
//! commands (plus hand-built tars for the tar-level damage bsi's packer cannot produce). The test
//! regenerates them into a temp dir and fails if the committed ones differ; run it with
//! `BSI_REGENERATE_FIXTURES=1` to rewrite them.

use std::path::{Path, PathBuf};

use crate::harness::{Tree, bsi, fixtures, make_bundle};

const FILE_A: &[u8] = b"cryptex OS patch (a)\n";

fn pattern(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("{seed}:{i:08}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn macos(dir: &Path, letter: char, build: &str) -> PathBuf {
    let dyld = pattern(&format!("dyld-{letter}"), 6000);
    let lib = pattern(&format!("libwebrtc-{letter}"), 3000);
    let safari = format!(
        "<plist><dict><key>CFBundleShortVersionString</key><string>26.3.1 ({letter})</string></dict></plist>\n"
    );
    let webkit = pattern(&format!("webkit-{letter}"), 2000);
    make_bundle(
        dir,
        &format!("macos-26.3.1-{letter}.bsi"),
        "macOS",
        "26.3.1",
        "25D2128",
        &format!("({letter})"),
        build,
        &[
            ("System/Library/dyld/dyld_shared_cache_arm64e", &dyld),
            ("usr/lib/libwebrtc.dylib", &lib),
        ],
        &[
            (
                "Applications/Safari.app/Contents/Info.plist",
                safari.as_bytes(),
            ),
            (
                "System/Library/Frameworks/WebKit.framework/Versions/A/WebKit",
                &webkit,
            ),
        ],
    )
}

fn pack(bundle: &Path) {
    let tar = PathBuf::from(format!("{}.tar", bundle.display()));
    bsi([
        "bundle".as_ref(),
        "pack".as_ref(),
        bundle.as_os_str(),
        "--out".as_ref(),
        tar.as_os_str(),
    ])
    .ok();
}

fn sign(bundle: &Path, key: &Path) {
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        bundle.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ])
    .ok();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Signs a bundle's manifest bytes as they are, with the test key, whatever they hold (bsi's own
/// `bundle sign` refuses a manifest it cannot parse): the fixtures for manifest-level damage
/// carry a valid signature, so that `apply` reaches the manifest checks behind it.
fn raw_sign(bundle: &Path) {
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(crate::harness::test_key()).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
    let manifest = std::fs::read(bundle.join("Info.plist")).unwrap();
    std::fs::write(
        bundle.join("Info.plist.sig"),
        key.sign(&manifest).to_bytes(),
    )
    .unwrap();
}

fn edit_manifest(bundle: &Path, edit: impl FnOnce(&mut plist::Dictionary)) {
    let path = bundle.join("Info.plist");
    let mut dict = plist::Value::from_file(&path)
        .unwrap()
        .into_dictionary()
        .unwrap();
    edit(&mut dict);
    plist::Value::Dictionary(dict).to_file_xml(&path).unwrap();
}

fn os_entries(d: &mut plist::Dictionary) -> &mut Vec<plist::Value> {
    d.get_mut("Cryptexes")
        .and_then(plist::Value::as_dictionary_mut)
        .and_then(|c| c.get_mut("OS"))
        .and_then(plist::Value::as_array_mut)
        .unwrap()
}

fn set_first(d: &mut plist::Dictionary, key: &str, value: plist::Value) {
    os_entries(d)[0]
        .as_dictionary_mut()
        .unwrap()
        .insert(key.into(), value);
}

/// One tar entry for hand-built tars: name bytes, type, data.
struct Raw(Vec<u8>, tar::EntryType, Vec<u8>);

fn write_tar(path: &Path, entries: &[Raw], trailer: &[u8]) {
    let mut out = Vec::new();
    for Raw(name, kind, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        if kind.is_symlink() || kind.is_hard_link() {
            h.set_link_name("Info.plist").unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(trailer);
    std::fs::write(path, out).unwrap();
}

fn entries_of(bundle: &Path) -> Vec<Raw> {
    let mut v = vec![
        Raw(
            b"Info.plist".to_vec(),
            tar::EntryType::Regular,
            std::fs::read(bundle.join("Info.plist")).unwrap(),
        ),
        Raw(
            b"Info.plist.sig".to_vec(),
            tar::EntryType::Regular,
            std::fs::read(bundle.join("Info.plist.sig")).unwrap(),
        ),
    ];
    let mut files = Vec::new();
    for c in ["App", "OS"] {
        collect(&bundle.join(c), c, &mut files);
    }
    files.sort();
    for (name, path) in files {
        v.push(Raw(
            name.into_bytes(),
            tar::EntryType::Regular,
            std::fs::read(path).unwrap(),
        ));
    }
    v
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            collect(&e.path(), &name, out);
        } else {
            out.push((name, e.path()));
        }
    }
}

/// Makes every fixture under `out/bundles` and `out/bad`.
pub(crate) fn generate(out: &Path) {
    let good = out.join("bundles");
    let bad = out.join("bad");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::create_dir_all(&bad).unwrap();
    let a = macos(&good, 'a', "25D771280a");
    macos(&good, 'b', "25D771280b");
    macos(&good, 'c', "25D771280c");
    make_bundle(&good, "macos-26.3.1-d-app-only.bsi", "macOS", "26.3.1", "25D2128", "(d)", "25D771280d", &[], &[("Applications/Safari.app/Contents/Info.plist", b"<plist><dict><key>CFBundleShortVersionString</key><string>26.3.1 (d)</string></dict></plist>\n")]);
    make_bundle(
        &good,
        "macos-26.4-a.bsi",
        "macOS",
        "26.4",
        "25E100",
        "(a)",
        "25E771000a",
        &[(
            "System/Library/dyld/dyld_shared_cache_arm64e",
            &pattern("dyld-26.4-a", 5000),
        )],
        &[(
            "Applications/Safari.app/Contents/Info.plist",
            b"safari 26.4 (a)\n",
        )],
    );
    make_bundle(
        &good,
        "ios-26.3.1-a.bsi",
        "iOS",
        "26.3.1",
        "23D8133",
        "(a)",
        "23D771330a",
        &[(
            "System/Library/Caches/com.apple.dyld/dyld_shared_cache_arm64e",
            &pattern("ios-dyld-a", 5000),
        )],
        &[(
            "Applications/MobileSafari.app/Info.plist",
            b"mobilesafari 26.3.1 (a)\n",
        )],
    );
    let mut names: Vec<PathBuf> = std::fs::read_dir(&good)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bsi"))
        .collect();
    names.sort();
    for b in &names {
        pack(b);
    }
    for src in std::fs::read_dir(&good)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".src"))
    {
        std::fs::remove_dir_all(src).unwrap();
    }

    // Directory-form damage. The signature is checked over the raw manifest before it is parsed,
    // so manifest-level damage is signed with the test key (`raw_sign`) to reach the parser.
    let variant = |name: &str| -> PathBuf {
        let p = bad.join(name);
        copy_dir(&a, &p);
        p
    };
    let other = fixtures().join("keys/other-test-only.key");
    let p = variant("no-manifest.bsi");
    std::fs::remove_file(p.join("Info.plist")).unwrap();
    let p = variant("garbage-manifest.bsi");
    std::fs::write(p.join("Info.plist"), b"this is not a property list\n").unwrap();
    raw_sign(&p);
    let p = variant("binary-manifest.bsi");
    let value = plist::Value::from_file(p.join("Info.plist")).unwrap();
    value.to_file_binary(p.join("Info.plist")).unwrap();
    raw_sign(&p);
    let p = variant("unsigned.bsi");
    std::fs::remove_file(p.join("Info.plist.sig")).unwrap();
    let p = variant("malformed-signature.bsi");
    std::fs::write(p.join("Info.plist.sig"), [7u8; 63]).unwrap();
    let p = variant("untrusted-key.bsi");
    sign(&p, &other);
    let p = variant("tampered-manifest.bsi");
    edit_manifest(&p, |d| {
        d.insert("Description".into(), "changed after signing".into());
    });
    let p = variant("missing-key.bsi");
    edit_manifest(&p, |d| {
        d.remove("ProductBuildVersion");
    });
    raw_sign(&p);
    let p = variant("mistyped-key.bsi");
    edit_manifest(&p, |d| set_first(d, "Size", "6000".into()));
    raw_sign(&p);
    let p = variant("foreign-build.bsi");
    edit_manifest(&p, |d| {
        d.insert("ProductBuildVersion".into(), "25D771330a".into());
    });
    raw_sign(&p);
    let p = variant("size-mismatch.bsi");
    std::fs::write(
        p.join("OS/usr/lib/libwebrtc.dylib"),
        pattern("longer", 3001),
    )
    .unwrap();
    let p = variant("digest-mismatch.bsi");
    let mut bytes = std::fs::read(p.join("OS/usr/lib/libwebrtc.dylib")).unwrap();
    bytes[100] ^= 1;
    std::fs::write(p.join("OS/usr/lib/libwebrtc.dylib"), bytes).unwrap();
    let p = variant("missing-file.bsi");
    // Remove the whole directory: git keeps no empty directories.
    std::fs::remove_dir_all(p.join("OS/usr")).unwrap();
    let p = variant("unlisted-file.bsi");
    std::fs::write(p.join("OS/usr/lib/extra.dylib"), FILE_A).unwrap();
    let p = variant("symlink.bsi");
    std::fs::remove_file(p.join("OS/usr/lib/libwebrtc.dylib")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.join("OS/usr/lib/libwebrtc.dylib")).unwrap();
    for (name, path, reason) in [
        ("absolute-path.bsi", "/etc/cron.d/evil", "absolute"),
        ("dotdot-path.bsi", "../../../../etc/evil", "dotdot"),
        ("empty-path.bsi", "", "empty"),
    ] {
        let p = variant(name);
        let _ = reason;
        edit_manifest(&p, |d| set_first(d, "Path", path.into()));
        raw_sign(&p);
    }
    let p = variant("duplicate-path.bsi");
    edit_manifest(&p, |d| {
        let entries = os_entries(d);
        let first = entries[0].clone();
        entries.push(first);
    });
    raw_sign(&p);
    let p = variant("oversize-claim.bsi");
    edit_manifest(&p, |d| {
        set_first(d, "Size", plist::Value::Integer((17u64 << 30).into()));
    });
    raw_sign(&p);

    // Tar-form damage.
    let good_entries = || entries_of(&a);
    let end = vec![0u8; 1024];
    let tar = |name: &str| bad.join(name);
    let full = std::fs::read(format!("{}.tar", a.display())).unwrap();
    std::fs::write(tar("truncated.bsi.tar"), &full[..full.len() - 3000]).unwrap();
    std::fs::write(
        tar("missing-end-marker.bsi.tar"),
        &full[..full.len() - 1024],
    )
    .unwrap();
    let mut garbage = full.clone();
    garbage.extend_from_slice(b"trailing garbage after the archive\n");
    std::fs::write(tar("trailing-garbage.bsi.tar"), garbage).unwrap();
    let mut corrupt = full.clone();
    corrupt[5] ^= 0x40; // inside the first header's name: its checksum no longer holds
    std::fs::write(tar("bad-header-checksum.bsi.tar"), corrupt).unwrap();
    let mut e = good_entries();
    let n = e.len();
    e.swap(n - 1, n - 2);
    write_tar(&tar("out-of-order.bsi.tar"), &e, &end);
    let mut e = good_entries();
    e.swap(0, 1);
    write_tar(&tar("manifest-not-first.bsi.tar"), &e, &end);
    for (name, kind) in [
        ("fifo-entry.bsi.tar", tar::EntryType::Fifo),
        ("char-device-entry.bsi.tar", tar::EntryType::Char),
        ("symlink-entry.bsi.tar", tar::EntryType::Symlink),
        ("hardlink-entry.bsi.tar", tar::EntryType::Link),
    ] {
        let mut e = good_entries();
        let last = e.len() - 1;
        e[last].1 = kind;
        e[last].2.clear();
        write_tar(&tar(name), &e, &end);
    }
    let mut e = good_entries();
    e.push(Raw(
        b"OS/zz-\xff\xfe-not-utf8".to_vec(),
        tar::EntryType::Regular,
        FILE_A.to_vec(),
    ));
    write_tar(&tar("non-utf8-path.bsi.tar"), &e, &end);
    let mut e = good_entries();
    e.push(Raw(
        b"OS/zz-unlisted".to_vec(),
        tar::EntryType::Regular,
        FILE_A.to_vec(),
    ));
    write_tar(&tar("unlisted-entry.bsi.tar"), &e, &end);
    let mut e = good_entries();
    e.insert(
        3,
        Raw(
            b"../escape".to_vec(),
            tar::EntryType::Regular,
            FILE_A.to_vec(),
        ),
    );
    write_tar(&tar("dotdot-entry.bsi.tar"), &e, &end);
}

/// The rejection each bad fixture must produce: (name, text in the message).
pub(crate) const BAD: &[(&str, &str)] = &[
    ("no-manifest.bsi", "Info.plist"),
    ("garbage-manifest.bsi", "not a valid property list"),
    ("binary-manifest.bsi", "a binary plist"),
    (
        "foreign-build.bsi",
        "has the build 25D771280 and one letter",
    ),
    ("unsigned.bsi", "unsigned"),
    ("malformed-signature.bsi", "63 bytes"),
    ("untrusted-key.bsi", "which this device does not trust"),
    ("tampered-manifest.bsi", "was changed after key"),
    ("missing-key.bsi", "`ProductBuildVersion` is missing"),
    ("mistyped-key.bsi", "Size` must be a non-negative integer"),
    ("size-mismatch.bsi", "libwebrtc.dylib: size"),
    ("digest-mismatch.bsi", "libwebrtc.dylib: SHA-256"),
    (
        "missing-file.bsi",
        "libwebrtc.dylib is listed in the manifest but missing",
    ),
    (
        "unlisted-file.bsi",
        "extra.dylib is in the bundle but not listed",
    ),
    ("symlink.bsi", "is a symlink"),
    ("absolute-path.bsi", "absolute paths are not allowed"),
    ("dotdot-path.bsi", "`..` components"),
    ("empty-path.bsi", "the path is empty"),
    ("duplicate-path.bsi", "listed twice"),
    ("oversize-claim.bsi", "exceeds bsi's limit"),
    ("truncated.bsi.tar", "truncated"),
    (
        "missing-end-marker.bsi.tar",
        "end-of-archive marker is missing",
    ),
    ("trailing-garbage.bsi.tar", "trailing data"),
    ("bad-header-checksum.bsi.tar", "checksum"),
    ("out-of-order.bsi.tar", "out of order"),
    ("manifest-not-first.bsi.tar", "starts with Info.plist"),
    ("fifo-entry.bsi.tar", "is a FIFO"),
    ("char-device-entry.bsi.tar", "is a character device"),
    ("symlink-entry.bsi.tar", "is a symlink"),
    ("hardlink-entry.bsi.tar", "is a hard link"),
    ("non-utf8-path.bsi.tar", "not valid UTF-8"),
    (
        "unlisted-entry.bsi.tar",
        "zz-unlisted is in the bundle but not listed",
    ),
    ("dotdot-entry.bsi.tar", "`..` components"),
];

#[test]
fn committed_fixtures_match_what_the_generator_makes() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    if std::env::var_os("BSI_REGENERATE_FIXTURES").is_some() {
        for sub in ["bundles", "bad"] {
            let _ = std::fs::remove_dir_all(fixtures().join(sub));
            copy_tree(&tmp.path().join(sub), &fixtures().join(sub));
        }
    }
    for sub in ["bundles", "bad"] {
        // Git keeps neither empty directories nor modes beyond the executable bit: compare the
        // files' content and the symlinks' targets.
        let strip = |t: Tree| -> Vec<(String, String)> {
            t.0.into_iter()
                .filter(|(_, v)| !v.starts_with("dir "))
                .map(|(k, v)| {
                    let kept: Vec<&str> = v
                        .split(' ')
                        .enumerate()
                        .filter(|(i, _)| !(v.starts_with("file ") && *i == 1))
                        .map(|(_, w)| w)
                        .collect();
                    (k, kept.join(" "))
                })
                .collect()
        };
        let want = strip(Tree::of(&tmp.path().join(sub)));
        let have = strip(Tree::of(&fixtures().join(sub)));
        assert!(
            want == have,
            "fixtures/{sub} differ from what the generator makes; run `BSI_REGENERATE_FIXTURES=1 cargo test --all-features fixtures` and commit"
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else if ft.is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Copies a bundle directory for a test to damage.
pub(crate) fn copy_for_test(from: &Path, to: &Path) {
    copy_dir(from, to);
}
