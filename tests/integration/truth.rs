//! Truthful state (issue 10): one regression test per defect found, named after it, and the
//! hint-following test: for every kind of damage a user can make, follow the hints bsi prints,
//! as a user would, until `verify` exits 0.

use std::path::{Path, PathBuf};

use crate::harness::*;

fn b(name: &str) -> PathBuf {
    bundle(name)
}

/// Every file reached through `System/Cryptexes/<cryptex>` equals the bundle's tree.
#[track_caller]
fn grafted_equals(device: &Device, cryptex: &str, bundle_dir: &Path) {
    let live = Tree::of(&device.path(&format!("System/Cryptexes/{cryptex}/")));
    let want = Tree::of(&bundle_dir.join(cryptex));
    live.assert_same(&want);
}

/// The OS-only response 26.3.1 (e) (25D771280e) carrying `os`, signed with the test key.
fn response_e(dir: &Path, os: &[(&str, &[u8])]) -> PathBuf {
    make_bundle(
        dir,
        "e.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(e)",
        "25D771280e",
        os,
        &[],
    )
}

pub(crate) fn preboot(d: &Device) -> PathBuf {
    std::fs::read_dir(d.path("System/Volumes/Preboot"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "Cryptexes")
        .unwrap()
        .path()
}

pub(crate) fn generations(d: &Device) -> PathBuf {
    preboot(d).join("cryptex1/generations")
}

#[test]
fn defect1_an_app_only_response_keeps_the_os_content_of_the_response_it_replaces() {
    let d = Device::new();
    d.activate(b("macos-26.3.1-c.bsi"));
    d.bsi([
        "apply".as_ref(),
        b("macos-26.3.1-d-app-only.bsi").as_os_str(),
    ])
    .ok();
    let s = d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (d)");
    assert_eq!(
        s.active.as_ref().unwrap().sources,
        sources("26.3.1 (d)", "26.3.1 (c)")
    );
    // The OS content is still (c)'s, without a restart; the App content is (d)'s.
    grafted_equals(&d, "OS", &b("macos-26.3.1-c.bsi"));
    grafted_equals(&d, "App", &b("macos-26.3.1-d-app-only.bsi"));
    d.bsi(["status", "--require", "26.3.1 (c)"]).ok();
    d.bsi(["verify"]).ok();
    // A staged removal, a Safari relaunch and a restart in between keep it right.
    d.bsi(["rollback"]).ok();
    d.bsi(["relaunch-safari"]).ok();
    assert_eq!(
        d.status().staged.as_ref().unwrap().sources,
        sources("26.3.1", "26.3.1")
    );
    d.bsi(["restart"]).ok();
    assert_eq!(d.status().active, None);
    d.bsi(["verify"]).ok();
    // Applied again on the base, (d) takes the base's OS content, and says so.
    d.bsi([
        "apply".as_ref(),
        b("macos-26.3.1-d-app-only.bsi").as_os_str(),
    ])
    .ok();
    assert_eq!(
        d.status().active.as_ref().unwrap().sources,
        sources("26.3.1 (d)", "26.3.1")
    );
    d.bsi(["verify"]).ok();
    // Generations that supply nothing are gone; the ones that do are kept.
    let mut names: Vec<String> = std::fs::read_dir(generations(&d))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["25D771280d", "base-25D2128"]);
}

#[test]
fn defect1_an_os_only_response_keeps_the_app_content_through_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let e = response_e(tmp.path(), &[("usr/lib/libwebrtc.dylib", b"os (e)\n")]);
    let d = Device::new();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-c.bsi").as_os_str()])
        .ok();
    // (e) replaces the staged (c): its App content comes from (c), also after the restart.
    d.bsi(["apply".as_ref(), e.as_os_str()]).ok();
    assert_eq!(
        d.status().staged.as_ref().unwrap().sources,
        sources("26.3.1 (c)", "26.3.1 (e)")
    );
    d.bsi(["restart"]).ok();
    let s = d.status();
    assert_eq!(
        s.active.as_ref().unwrap().sources,
        sources("26.3.1 (c)", "26.3.1 (e)")
    );
    assert_eq!(s.active.as_ref().unwrap().cryptexes, ["OS"]);
    grafted_equals(&d, "App", &b("macos-26.3.1-c.bsi"));
    grafted_equals(&d, "OS", &e);
    d.bsi(["verify"]).ok();
}

#[test]
fn defect2_an_update_that_would_brick_the_device_is_refused() {
    let d = Device::new();
    for (args, needle) in [
        (
            ["update", "--version", "26.3.2", "--build", "25D2128"],
            "a minor update moves to a later build",
        ),
        (
            ["update", "--version", "26.4", "--build", "24A100"],
            "a minor update keeps the build's major release number (25)",
        ),
        (
            ["update", "--version", "26.4", "--build", "25D999"],
            "a minor update moves to a later build",
        ),
        (
            ["update", "--version", "26.4", "--build", "26A100"],
            "a minor update keeps the build's major release number",
        ),
        (
            ["upgrade", "--version", "27.0", "--build", "25E100"],
            "a major upgrade moves to a later major release number",
        ),
        (
            ["update", "--version", "26.4", "--build", "25E771000a"],
            "not a base build",
        ),
    ] {
        d.refuses(args, 2, needle);
    }
    let tmp = tempfile::tempdir().unwrap();
    bsi([
        "init".as_ref(),
        "--root".as_ref(),
        tmp.path().join("x").as_os_str(),
        "--version".as_ref(),
        "26.4".as_ref(),
        "--build".as_ref(),
        "25D771280a".as_ref(),
    ])
    .exit(2)
    .stderr_is(&[], "error: `25D771280a` is not a base build: a base build is a train and a number with no letter after it (e.g. 25D2128); it looks like a response's build\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    assert!(!tmp.path().join("x").exists(), "nothing was written");
    // The allowed moves work and leave a usable device.
    d.bsi(["update", "--version", "26.3.2", "--build", "25D2140"])
        .ok();
    d.bsi(["update", "--version", "26.4", "--build", "25E100"])
        .ok();
    d.bsi(["upgrade", "--version", "27.0", "--build", "26A100"])
        .ok();
    d.bsi(["verify"]).ok();
    d.bsi(["status"]).ok();
}

#[test]
fn defect3_response_builds_must_belong_to_their_prerequisite() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("os");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("f"), b"x").unwrap();
    let create = |prerequisite: &str, build: &str| {
        bsi([
            "bundle".as_ref(),
            "create".as_ref(),
            "--product".as_ref(),
            "macOS".as_ref(),
            "--version".as_ref(),
            "26.3.1".as_ref(),
            "--prerequisite".as_ref(),
            prerequisite.as_ref(),
            "--extra".as_ref(),
            "(a)".as_ref(),
            "--build".as_ref(),
            build.as_ref(),
            "--os".as_ref(),
            tree.as_os_str(),
            "--out".as_ref(),
            tmp.path().join(format!("{build}.bsi")).as_os_str(),
        ])
    };
    create("25D2128", "25D771290a").refused(2, "25D771280 and one letter").stderr_is(&[], "error: supplemental build `25D771290a` does not fit prerequisite build `25D2128`: a response to 25D2128 has the build 25D771280 and one letter (train, 77, the base number's last three digits, 0, a letter)\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    create("25D2128", "25D2128a").refused(2, "25D771280 and one letter").stderr_is(&[], "error: supplemental build `25D2128a` does not fit prerequisite build `25D2128`: a response to 25D2128 has the build 25D771280 and one letter (train, 77, the base number's last three digits, 0, a letter)\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    create("25D2128", "25D771280a").ok();
    // A manifest carrying a foreign build (signed, so the check behind the signature is
    // reached) is rejected by inspect and apply; bsi refuses to sign one.
    let bad = fixtures().join("bad/foreign-build.bsi");
    let copy = tmp.path().join("copy.bsi");
    crate::fixtures::copy_for_test(&bad, &copy);
    sign(&copy).refused(6, "25D771280 and one letter").stderr_is(&[], "error: Info.plist: key `ProductBuildVersion`: supplemental build `25D771330a` does not fit prerequisite build `25D2128`: a response to 25D2128 has the build 25D771280 and one letter (train, 77, the base number's last three digits, 0, a letter)\nhint: fix the bundle's Info.plist as the message says, or make the bundle again with `bsi bundle create`, then sign it (`bsi bundle sign BUNDLE --key KEY`)\n");
    let d = Device::new();
    d.refuses(
        ["apply".as_ref(), bad.as_os_str()],
        6,
        "25D771280 and one letter",
    ).stderr_is(&[], "error: Info.plist: key `ProductBuildVersion`: supplemental build `25D771330a` does not fit prerequisite build `25D2128`: a response to 25D2128 has the build 25D771280 and one letter (train, 77, the base number's last three digits, 0, a letter)\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
    d.bsi([
        "bundle".as_ref(),
        "inspect".as_ref(),
        bad.as_os_str(),
        "--key".as_ref(),
        test_pub().as_os_str(),
    ])
    .refused(6, "25D771280 and one letter").stderr_is(&[], "error: Info.plist: key `ProductBuildVersion`: supplemental build `25D771330a` does not fit prerequisite build `25D2128`: a response to 25D2128 has the build 25D771280 and one letter (train, 77, the base number's last three digits, 0, a letter)\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
}

#[test]
fn defect3_a_later_letter_never_carries_an_earlier_build_letter() {
    let tmp = tempfile::tempdir().unwrap();
    let mk = |x: &str, build: &str| {
        make_bundle(
            tmp.path(),
            &format!("{x}-{build}.bsi"),
            "macOS",
            "26.3.1",
            "25D2128",
            &format!("({x})"),
            build,
            &[("usr/lib/patch", format!("{x} {build}").as_bytes())],
            &[],
        )
    };
    let d = Device::new();
    // The build letter need not be the public letter (iOS 16.5.1 (a) is 20F770750b) ...
    d.activate(mk("a", "25D771280b"));
    // ... but a later letter with an earlier build, or another build for the same letter, or
    // the same build for another letter, contradicts what the device holds.
    d.refuses(
        ["apply".as_ref(), mk("c", "25D771280a").as_os_str()],
        6,
        "contradicts",
    ).stderr_is(&[], "error: 26.3.1 (c) (25D771280a) contradicts what the device holds: the device holds 26.3.1 (a) as build 25D771280b, and within one line a later letter never has an earlier build\nhint: one of the two was built wrongly: check the bundle's origin (`bsi bundle inspect BUNDLE`) against `bsi status`\n");
    d.refuses(
        ["apply".as_ref(), mk("a", "25D771280c").as_os_str()],
        6,
        "contradicts",
    ).stderr_is(&[], "error: 26.3.1 (a) (25D771280c) contradicts what the device holds: the device holds 26.3.1 (a) as build 25D771280b\nhint: one of the two was built wrongly: check the bundle's origin (`bsi bundle inspect BUNDLE`) against `bsi status`\n");
    d.refuses(
        ["apply".as_ref(), mk("b", "25D771280b").as_os_str()],
        6,
        "contradicts",
    ).stderr_is(&[], "error: 26.3.1 (b) (25D771280b) contradicts what the device holds: the device holds build 25D771280b as 26.3.1 (a)\nhint: one of the two was built wrongly: check the bundle's origin (`bsi bundle inspect BUNDLE`) against `bsi status`\n");
    d.bsi(["apply".as_ref(), mk("b", "25D771280c").as_os_str()])
        .ok();
}

/// The backticked `bsi ...` command in a hint line, as words.
pub(crate) fn hinted_command(stderr: &str) -> Option<Vec<String>> {
    let hint = stderr.lines().find(|l| l.starts_with("hint: "))?;
    let start = hint.find("`bsi ")? + 1;
    let end = start + hint[start..].find('`')?;
    let words: Vec<String> = hint[start..end]
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    Some(words[1..].to_vec())
}

/// Runs `verify`, and while it fails follows the hint of whatever failed, as a user would; at
/// most a few steps. Returns the commands followed.
#[track_caller]
fn follow_hints(d: &Device) -> Vec<String> {
    let mut followed = Vec::new();
    let mut run = d.bsi(["verify"]);
    for _ in 0..6 {
        if run.code() == 0 {
            return followed;
        }
        let words = hinted_command(&run.stderr()).unwrap_or_else(|| {
            panic!(
                "bsi {:?} exited {} with no command in its hint:\n{}",
                run.args,
                run.code(),
                run.stderr()
            )
        });
        assert!(
            !words.contains(&"BUNDLE".to_owned()),
            "the hint names no bundle: {}",
            run.stderr()
        );
        followed.push(words.join(" "));
        let fixed = d.bsi(&words);
        run = if fixed.code() == 0 {
            d.bsi(["verify"])
        } else {
            fixed
        };
    }
    panic!(
        "still failing after following {followed:?}:\n{}{}",
        run.stdout(),
        run.stderr()
    );
}

/// A device with (c) active and (d) (App only, OS from (c)) active over it.
pub(crate) fn layered() -> Device {
    let d = Device::new();
    d.activate(b("macos-26.3.1-c.bsi"));
    d.bsi([
        "apply".as_ref(),
        b("macos-26.3.1-d-app-only.bsi").as_os_str(),
    ])
    .ok();
    d
}

#[test]
fn defect4_every_hint_leads_to_a_command_that_fixes_the_damage() {
    type Damage = fn(&Device);
    let cases: Vec<(&str, Damage)> = vec![
        ("changed file in the OS content (c) supplies", |d| {
            let f = d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib");
            let mut bytes = std::fs::read(&f).unwrap();
            bytes[0] ^= 1;
            std::fs::write(f, bytes).unwrap();
        }),
        ("changed file in the App content (d) carries", |d| {
            std::fs::write(
                d.path("System/Cryptexes/App/Applications/Safari.app/Contents/Info.plist"),
                b"x",
            )
            .unwrap();
        }),
        ("missing file", |d| {
            std::fs::remove_file(d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib")).unwrap();
        }),
        ("extra file", |d| {
            std::fs::write(d.path("System/Cryptexes/OS/usr/lib/intruder"), b"x").unwrap();
        }),
        ("a planted link inside the content", |d| {
            let f = d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib");
            std::fs::remove_file(&f).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", f).unwrap();
        }),
        ("a broken System/Cryptexes link", |d| {
            let l = d.path("System/Cryptexes/OS");
            std::fs::remove_file(&l).unwrap();
            std::os::unix::fs::symlink("../../nowhere/OS", l).unwrap();
        }),
        ("an escaping System/Cryptexes link", |d| {
            let l = d.path("System/Cryptexes/App");
            std::fs::remove_file(&l).unwrap();
            std::os::unix::fs::symlink("/etc", l).unwrap();
        }),
        ("a missing Preboot/Cryptexes graft", |d| {
            std::fs::remove_file(d.path("System/Volumes/Preboot/Cryptexes/OS")).unwrap();
        }),
        ("the active generation missing", |d| {
            std::fs::remove_dir_all(generations(d).join("25D771280d")).unwrap();
        }),
        ("the generation that supplies OS missing", |d| {
            std::fs::remove_dir_all(generations(d).join("25D771280c")).unwrap();
        }),
        ("the base generation's content changed", |d| {
            let f =
                generations(d).join("base-25D2128/App/Applications/Safari.app/Contents/Info.plist");
            std::fs::write(f, b"x").unwrap();
        }),
        ("a damaged power record", |d| {
            std::fs::write(d.path("private/var/db/bsi/power.json"), b"{").unwrap();
        }),
        ("a damaged last-operation record", |d| {
            std::fs::write(d.path("private/var/db/bsi/last-operation.json"), b"[1]").unwrap();
        }),
        ("a damaged settings record", |d| {
            std::fs::write(d.path("private/var/db/bsi/settings.json"), b"nope").unwrap();
        }),
        ("a damaged device record", |d| {
            std::fs::write(d.path("private/var/db/bsi/device.json"), b"{}").unwrap();
        }),
        ("a missing device record", |d| {
            std::fs::remove_file(d.path("private/var/db/bsi/device.json")).unwrap();
        }),
    ];
    for (what, damage) in cases {
        let d = layered();
        damage(&d);
        let followed = follow_hints(&d);
        assert!(!followed.is_empty(), "{what}: verify did not notice");
        // After the fix every reading command works again.
        d.bsi(["status"]).ok();
        d.bsi(["status", "--json"]).ok();
        d.bsi(["report"]).ok();
        eprintln!("{what}: fixed by {followed:?}");
    }
}

#[test]
fn defect4_repair_from_restores_a_response_and_repair_alone_the_base() {
    let d = layered();
    let f = d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib");
    std::fs::write(&f, b"tampered").unwrap();
    let root: &[(&Path, &str)] = &[(&d.root, "[ROOT]")];
    d.bsi(["verify"]).exit(8).stderr_is(root, "error: verify found 1 problem in the device (listed above)\nhint: restore 26.3.1 (c) (25D771280c) from the bundle it was applied from: `bsi repair --from [FIXTURES]/bundles/macos-26.3.1-c.bsi`\n");
    d.bsi(["repair"]).exit(8).stdout_is(root, "").stderr_is(root, "error: the content of 26.3.1 (c) (25D771280c) is damaged and only its bundle can restore it\nhint: restore 26.3.1 (c) (25D771280c) from the bundle it was applied from: `bsi repair --from [FIXTURES]/bundles/macos-26.3.1-c.bsi`\n");
    // A bundle that is not that response: refused before anything changes.
    d.refuses(
        [
            "repair".as_ref(),
            "--from".as_ref(),
            b("macos-26.4-a.bsi").as_os_str(),
        ],
        2,
        "holds no such response",
    )
    .stderr_is(
        &[],
        "error: [FIXTURES]/bundles/macos-26.4-a.bsi is macOS 26.4 (a) (25E771000a) for 26.4 (25E100); the device runs macOS 26.3.1 (25D2128), so it holds no such response\nhint: pass the bundle of the damaged response that `bsi verify` names\n",
    );
    d.refuses(
        [
            "repair".as_ref(),
            "--from".as_ref(),
            fixtures().join("bad/tampered-manifest.bsi").as_os_str(),
        ],
        6,
        "Info.plist",
    ).stderr_is(&[], "error: Info.plist.sig: Info.plist was changed after key cdb42def20b3620a (trusted here) signed it: the signature no longer verifies\nhint: the bundle was changed after it was signed: get a fresh copy from its publisher\n");
    d.bsi([
        "repair".as_ref(),
        "--from".as_ref(),
        b("macos-26.3.1-c.bsi.tar").as_os_str(),
    ])
    .ok()
    .stdout_is(
        &[],
        "restored the content of 26.3.1 (c) (25D771280c) from [FIXTURES]/bundles/macos-26.3.1-c.bsi.tar\n",
    );
    d.bsi(["verify"]).ok();
    grafted_equals(&d, "OS", &b("macos-26.3.1-c.bsi"));
    // Base content is bsi's own: repair alone makes it again.
    let d = Device::new();
    let dyld = d.path("System/Cryptexes/OS/System/Library/dyld/dyld_shared_cache_arm64e");
    let good = std::fs::read(&dyld).unwrap();
    std::fs::write(&dyld, b"x").unwrap();
    d.bsi(["verify"]).exit(8).stderr_is(&[], "error: verify found 1 problem in the device (listed above)\nhint: run `bsi repair`: it restores what bsi made itself (links, records, base content)\n");
    d.bsi(["repair"]).ok().stdout_is(
        &[],
        "made the base content of 26.3.1 (25D2128) again (it was damaged or missing)\n",
    );
    assert_eq!(std::fs::read(&dyld).unwrap(), good);
    d.bsi(["verify"]).ok();
    d.bsi(["repair"]).ok().stdout_is(&[], "nothing to repair\n");
}

/// A response with a manifest larger than any record (100,000 files make about 30 MB of XML;
/// padded here with unknown keys, which publishers may add) is verified, not reported damaged:
/// verify read generation manifests with the 16 MiB record limit and called the file missing.
#[test]
fn a_manifest_larger_than_a_record_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let e = response_e(tmp.path(), &[("usr/lib/libwebrtc.dylib", b"os (e)\n")]);
    let signed = pad_manifest(&e, 300);
    assert!(signed.len() > 17 * 1024 * 1024);
    let d = Device::new();
    d.activate(&e);
    d.bsi(["verify"]).ok();
    // The manifest was kept in a private copy while installing: the stored one is the signed
    // bytes, exactly.
    let stored = std::fs::read(generations(&d).join("25D771280e/Info.plist")).unwrap();
    assert!(stored == signed);
    // And the repair paths read it too.
    d.bsi(["repair"]).ok();
    d.bsi(["repair".as_ref(), "--from".as_ref(), e.as_os_str()])
        .ok();
    d.bsi(["verify"]).ok();
}

/// A manifest of a megabyte or more is checked as it is read, piece by piece, into a private
/// copy (never held whole): what it lets through and what it refuses, and the messages, are
/// those of the check over bytes in memory. A changed byte, a signature by a key the device
/// does not trust, and a tar cut inside the manifest are each refused with the device left as
/// it was; the untouched bundle applies in both forms and its manifest is stored exactly.
#[test]
fn a_large_manifest_is_checked_as_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let e = response_e(tmp.path(), &[("usr/lib/libwebrtc.dylib", b"os (e)\n")]);
    let signed = pad_manifest(&e, 40);
    assert!(signed.len() > 2 * 1024 * 1024);
    let tar = tmp.path().join("e.bsi.tar");
    bsi([
        "bundle".as_ref(),
        "pack".as_ref(),
        e.as_os_str(),
        "--out".as_ref(),
        tar.as_os_str(),
    ])
    .ok();
    let copy = |name: &str| {
        let to = tmp.path().join(name);
        crate::fixtures::copy_for_test(&e, &to);
        to
    };
    // One byte of the padding changed after signing, in each form.
    let changed = copy("changed.bsi");
    let mut bytes = std::fs::read(changed.join("Info.plist")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = b'y';
    std::fs::write(changed.join("Info.plist"), &bytes).unwrap();
    let changed_tar = tmp.path().join("changed.bsi.tar");
    let mut tar_bytes = std::fs::read(&tar).unwrap();
    tar_bytes[1024 * 1024] = b'y';
    std::fs::write(&changed_tar, &tar_bytes).unwrap();
    // Signed by a key the device does not trust.
    let foreign = copy("foreign.bsi");
    let other_key = tmp.path().join("other.key");
    bsi([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        other_key.as_os_str(),
    ])
    .ok();
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        foreign.as_os_str(),
        "--key".as_ref(),
        other_key.as_os_str(),
    ])
    .ok();
    // A tar cut inside its manifest.
    let cut = tmp.path().join("cut.bsi.tar");
    std::fs::write(&cut, &std::fs::read(&tar).unwrap()[..1024 * 1024 + 512]).unwrap();
    let d = Device::new();
    for (bundle, code, needle) in [
        (&changed, 6, "was changed after key"),
        (&changed_tar, 6, "was changed after key"),
        (&foreign, 6, "which this device does not trust"),
        (&cut, 6, "truncated inside Info.plist"),
    ] {
        d.refuses(["apply".as_ref(), bundle.as_os_str()], code, needle);
    }
    for good in [&e, &tar] {
        let d = Device::new();
        d.activate(good);
        let stored = std::fs::read(generations(&d).join("25D771280e/Info.plist")).unwrap();
        assert!(stored == signed);
        d.bsi(["verify"]).ok();
    }
}

/// A damaged manifest is one problem, listed once (verify reads each manifest once; it used to
/// report it from the version check and again from the listing), with the hint to restore it.
#[test]
fn a_damaged_manifest_is_listed_once() {
    let d = Device::new();
    d.activate(b("macos-26.3.1-c.bsi"));
    let info = generations(&d).join("25D771280c/Info.plist");
    let xml = std::fs::read(&info).unwrap();
    std::fs::write(&info, &xml[..xml.len() / 2]).unwrap();
    let run = d.bsi(["verify"]);
    run.exit(8);
    let out = run.stdout();
    let listed: Vec<&str> = out.lines().filter(|l| l.contains("Info.plist")).collect();
    assert_eq!(listed.len(), 1, "{}", run.stdout());
    assert!(listed[0].starts_with("problem: "), "{}", listed[0]);
    run.stderr_is(
        &[],
        "error: verify found 1 problem in the device (listed above)\nhint: restore 26.3.1 (c) (25D771280c) from the bundle it was applied from: `bsi repair --from [FIXTURES]/bundles/macos-26.3.1-c.bsi`\n",
    );
}

/// A payload of thousands of files is placed by probing candidate directories where the
/// filesystem supports it (ext4: see `lifecycle::placement`) and, when its creations slow down
/// (forced here, in the second run), created in anchor directories and renamed to their place;
/// nothing of the placement is left in the generation, whatever the filesystem, and the content
/// verifies.
#[test]
fn a_large_payload_leaves_nothing_of_its_placement_behind() {
    for failpoints in ["", "stage.spread=return"] {
        a_large_payload_is_placed(failpoints);
    }
}

fn a_large_payload_is_placed(failpoints: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..2_500)
        .map(|i| {
            (
                format!("System/Library/F{:02}/lib{i:04}.dylib", i / 100),
                format!("lib {i}\n").into_bytes(),
            )
        })
        .collect();
    let e = response_e(tmp.path(), &borrowed(&files));
    let d = Device::new();
    d.cmd()
        .arg("apply")
        .arg(&e)
        .arg("--restart")
        .env("FAILPOINTS", failpoints)
        .run();
    d.bsi(["verify"]).ok();
    let generation = generations(&d).join("25D771280e");
    let mut pending = vec![generation];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".bsi-tmp"), "{}", entry.path().display());
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    grafted_equals(&d, "OS", &e);
}

/// A damaged `fleet.json` is named as such, and its hint does not send people to `bsi repair`
/// (which works on one device, at the default root when none is given).
#[test]
fn a_damaged_fleet_file_is_not_a_damaged_device() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    std::fs::create_dir_all(fleet.join("devices")).unwrap();
    std::fs::write(fleet.join("fleet.json"), "{").unwrap();
    let shown = fleet.display().to_string();
    Cmd::new()
        .args(["fleet", "sync", "--dir", &shown, "--server", "http://127.0.0.1:9"])
        .exit(8)
        .stdout("")
        .stderr(&format!(
            "error: {shown}/fleet.json is damaged: it is not a fleet file bsi wrote (EOF while parsing an object at line 1 column 1)\nhint: restore {shown}/fleet.json from a copy, or make the fleet again in a new directory (`bsi fleet init --dir NEW --count N`); its devices under {shown}/devices are intact\n"
        ))
        .run();
}
