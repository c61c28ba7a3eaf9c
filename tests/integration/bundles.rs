//! Keys, trust, making bundles, and every rejection kind (DESIGN section 3, issue 3).

use crate::fixtures::BAD;
use crate::harness::*;

#[test]
fn every_good_fixture_inspects_valid_in_both_forms() {
    for entry in std::fs::read_dir(fixtures().join("bundles"))
        .unwrap()
        .flatten()
    {
        let run = bsi([
            "bundle".as_ref(),
            "inspect".as_ref(),
            entry.path().as_os_str(),
            "--key".as_ref(),
            test_pub().as_os_str(),
            "--json".as_ref(),
        ]);
        run.ok();
        let report: InspectVerdicts = run.parse();
        assert!(report.ok, "{}", entry.path().display());
        assert!(report.signature.ok && report.payload.ok, "{report:?}");
    }
}

#[test]
fn every_bad_fixture_is_rejected_by_inspect_and_by_apply_without_a_trace() {
    let device = Device::new();
    // What each refusal says, whole, in tests/golden/bad-bundles.txt.
    let mut transcript = String::new();
    for (name, needle) in BAD {
        let path = fixtures().join("bad").join(name);
        let run = bsi([
            "bundle".as_ref(),
            "inspect".as_ref(),
            path.as_os_str(),
            "--key".as_ref(),
            test_pub().as_os_str(),
        ]);
        run.refused(6, needle);
        let applied = device.refuses(["apply".as_ref(), path.as_os_str()], 6, needle);
        let masks = [(device.root.as_path(), "[ROOT]")];
        transcript += &format!(
            "$ bsi bundle inspect [FIXTURES]/bad/{name} --key [FIXTURES]/keys/test-only.key.pub\n{}\
             $ bsi --root [ROOT] apply [FIXTURES]/bad/{name}\n{}\n",
            Run::masked(&run.stderr(), &masks),
            Run::masked(&applied.stderr(), &masks),
        );
    }
    golden("bad-bundles.txt", &transcript);
    // Nothing of any rejected bundle reached the device.
    let status = device.status();
    assert_eq!(status.active, None);
    assert_eq!(status.staged, None);
    assert_eq!(status.last_operation.as_ref().unwrap().exit_code, 6);
}

#[test]
fn a_fifo_or_device_in_a_directory_bundle_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("fifo.bsi");
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
    let fifo = b.join("OS/usr/lib/libwebrtc.dylib");
    std::fs::remove_file(&fifo).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let device = Device::new();
    device.refuses(["apply".as_ref(), b.as_os_str()], 6, "is a FIFO").stderr_is(&[], "error: OS/usr/lib/libwebrtc.dylib is a FIFO; bundles may hold only regular files and directories\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
}

#[test]
fn a_key_not_trusted_by_the_device_is_rejected_until_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::with(&[]);
    let key = tmp.path().join("admin.key");
    let made = bsi([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        key.as_os_str(),
    ])
    .ok()
    .stdout();
    let fingerprint = made
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap()
        .to_owned();
    let b = make_bundle(
        tmp.path(),
        "own.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(a)",
        "25D771280a",
        &[("usr/lib/x", b"x")],
        &[],
    );
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        b.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ])
    .ok();
    device
        .refuses(
            ["apply".as_ref(), b.as_os_str()],
            6,
            "which this device does not trust",
        )
        .stderr_is(&[], &format!("error: Info.plist.sig: signed by key {fingerprint}, which this device does not trust (it trusts cdb42def20b3620a)\nhint: if you trust the signer, add its public key (`bsi trust add KEY.pub`); otherwise get the bundle from a publisher this device trusts\n"));
    let public = tmp.path().join("admin.key.pub");
    device
        .bsi(["trust".as_ref(), "add".as_ref(), public.as_os_str()])
        .ok()
        .stdout_is(&[], &format!("key {fingerprint}: now trusted\n"));
    let mut listed = [TEST_KEY_FINGERPRINT, fingerprint.as_str()];
    listed.sort_unstable();
    device.bsi(["trust", "list"]).ok().stdout_is(
        &[(device.root.as_path(), "[ROOT]")],
        &listed
            .iter()
            .map(|f| format!("{f}  [ROOT]/private/var/db/bsi/trust/{f}.pub\n"))
            .collect::<String>(),
    );
    device.bsi(["apply".as_ref(), b.as_os_str()]).ok();
}

#[test]
fn a_new_admin_makes_signs_packs_and_inspects_a_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k");
    let generated = bsi([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        key.as_os_str(),
    ])
    .ok()
    .stdout();
    let tmp_mask = [(tmp.path(), "[TMP]")];
    let fingerprint = generated
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap()
        .to_owned();
    assert_eq!(fingerprint.len(), 64, "{generated}");
    assert_eq!(
        Run::masked(&generated, &tmp_mask),
        format!(
            "private key: [TMP]/k (keep it secret)\npublic key:  [TMP]/k.pub\nfingerprint: {fingerprint}\n"
        )
    );
    let mode = std::fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let root = tmp.path().join("dev");
    bsi([
        "init".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--trust".as_ref(),
        tmp.path().join("k.pub").as_os_str(),
    ])
    .ok();
    let os = tmp.path().join("os/System/Library");
    std::fs::create_dir_all(&os).unwrap();
    std::fs::write(os.join("patch"), vec![1u8; 70_000]).unwrap();
    let out = tmp.path().join("r.bsi");
    bsi([
        "bundle",
        "create",
        "--product",
        "macOS",
        "--version",
        "26.3.1",
        "--prerequisite",
        "25D2128",
        "--extra",
        "(a)",
        "--build",
        "25D771280a",
        "--os",
        &tmp.path().join("os").display().to_string(),
        "--description",
        "test",
        "--out",
        &out.display().to_string(),
    ])
    .ok();
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        out.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ])
    .ok();
    let tar = tmp.path().join("r.bsi.tar");
    bsi([
        "bundle".as_ref(),
        "pack".as_ref(),
        out.as_os_str(),
        "--out".as_ref(),
        tar.as_os_str(),
    ])
    .ok();
    for (b, form) in [
        (&out, "r.bsi (directory form)"),
        (&tar, "r.bsi.tar (tar form)"),
    ] {
        bsi([
            "--root".as_ref(),
            root.as_os_str(),
            "bundle".as_ref(),
            "inspect".as_ref(),
            b.as_os_str(),
        ])
        .ok()
        .stdout_is(
            &tmp_mask,
            &format!(
                "bundle:      [TMP]/{form}\n\
                 signature:   valid, by key {fingerprint}, trusted (the trusted keys of the device at [TMP]/dev)\n\
                 payload:     every size and SHA-256 matches the manifest\n\
                 manifest (signed and verified):\n  \
                 response:    macOS 26.3.1 (a) (25D771280a), for 26.3.1 (25D2128)\n  \
                 description: test\n  \
                 cryptex OS:  1 files, 70000 bytes\n  \
                 restart:     needed (OS content)\n"
            ),
        );
    }
    // Packing is deterministic.
    let again = tmp.path().join("again.tar");
    bsi([
        "bundle".as_ref(),
        "pack".as_ref(),
        out.as_os_str(),
        "--out".as_ref(),
        again.as_os_str(),
    ])
    .ok();
    assert_eq!(std::fs::read(&tar).unwrap(), std::fs::read(&again).unwrap());
    // Bad inputs to create are usage errors.
    bsi([
        "bundle",
        "create",
        "--product",
        "macOS",
        "--version",
        "26.3.1",
        "--prerequisite",
        "25D2128",
        "--extra",
        "(A)",
        "--build",
        "25D771280a",
        "--os",
        "x",
        "--out",
        "y",
    ])
    .refused(2, "lowercase").stderr_is(&[], "error: invalid response version extra `(A)`: letters must be lowercase (expected lowercase letters in parentheses, e.g. (a))\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    bsi([
        "bundle",
        "create",
        "--product",
        "macOS",
        "--version",
        "26.3.1",
        "--prerequisite",
        "25D2128",
        "--extra",
        "(a)",
        "--build",
        "25E771280a",
        "--os",
        "x",
        "--out",
        "y",
    ])
    .refused(2, "train prefix").stderr_is(&[], "error: supplemental build `25E771280a` does not fit prerequisite build `25D2128`: its train prefix `25E` differs from the prerequisite's `25D`: expected 25D771280 and a letter\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
}

#[test]
fn inspect_without_key_or_device_shows_the_bundle_and_who_signed_it() {
    let tmp = tempfile::tempdir().unwrap();
    bsi([
        "--root".as_ref(),
        tmp.path().join("none").as_os_str(),
        "bundle".as_ref(),
        "inspect".as_ref(),
        bundle("macos-26.3.1-a.bsi").as_os_str(),
    ])
    .ok()
    .stdout_is(
        &[],
        &format!(
            "bundle:      [FIXTURES]/bundles/macos-26.3.1-a.bsi (directory form)\n\
             signature:   signed by key {TEST_KEY_FINGERPRINT}, not checked (no --key, and no device to trust it)\n\
             {UNVOUCHED}"
        ),
    );
    let unsigned = fixtures().join("bad/unsigned.bsi");
    bsi([
        "--root".as_ref(),
        tmp.path().join("none").as_os_str(),
        "bundle".as_ref(),
        "inspect".as_ref(),
        unsigned.as_os_str(),
    ])
    .ok()
    .stdout_is(
        &[],
        &format!(
            "bundle:      [FIXTURES]/bad/unsigned.bsi (directory form)\n\
             signature:   not signed (sign it with `bsi bundle sign BUNDLE --key KEY`)\n\
             {UNVOUCHED}"
        ),
    );
    bsi([
        "bundle".as_ref(),
        "inspect".as_ref(),
        tmp.path().join("missing.bsi").as_os_str(),
        "--key".as_ref(),
        test_pub().as_os_str(),
    ])
    .refused(2, "no bundle at")
    .stderr_is(
        &[(tmp.path(), "[TMP]")],
        "error: no bundle at [TMP]/missing.bsi\nhint: check the bundle path\n",
    );
}

/// What `bundle inspect` says of the fixture response's payload and manifest when no trusted
/// signer vouches for it.
const UNVOUCHED: &str = "payload:     every size and SHA-256 matches the manifest
manifest (NOT verified: nothing below is vouched for by a trusted signer):
  response:    macOS 26.3.1 (a) (25D771280a), for 26.3.1 (25D2128)
  cryptex App: 2 files, 2093 bytes
  cryptex OS:  2 files, 9000 bytes
  restart:     needed (OS content)
";

#[test]
fn many_file_bundles_stream_on_two_readers_and_still_reject_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("usr/lib/lib{i:02}.dylib"),
                format!("library {i}\n").repeat(100 + i).into_bytes(),
            )
        })
        .collect();
    let os = borrowed(&files);
    let b = make_bundle(
        tmp.path(),
        "many.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(a)",
        "25D771280a",
        &os,
        &[],
    );
    let d = Device::new();
    let victim = b.join("OS/usr/lib/lib33.dylib");
    let good = std::fs::read(&victim).unwrap();
    let mut bad = good.clone();
    bad[7] ^= 0x20;
    std::fs::write(&victim, &bad).unwrap();
    d.refuses(
        ["apply".as_ref(), b.as_os_str()],
        6,
        "OS/usr/lib/lib33.dylib: SHA-256",
    )
    .stderr_is(&[], "error: OS/usr/lib/lib33.dylib: SHA-256 [..] differs from the manifest's [..]\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
    std::fs::write(&victim, &good).unwrap();
    d.activate(&b);
    Tree::of(&d.path("System/Cryptexes/OS/")).assert_same(&Tree::of(&b.join("OS")));
    d.bsi(["verify"]).ok().stdout_is(&[], "26.3.1 (a): 43 files, 60577 bytes verified (the active content and the base content a removal returns to); links, records and SystemVersion.plist agree\n");
}
