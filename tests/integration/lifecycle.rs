//! The lifecycle (DESIGN section 4, issue 4): apply, restart, Safari, rollback, update/upgrade,
//! history and verify, and the seed's versioning table.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::harness::*;

fn b(name: &str) -> PathBuf {
    bundle(name)
}

/// Every file reached through System/Cryptexes/<c> equals the bundle's <c> tree.
#[track_caller]
fn grafted_equals(device: &Device, cryptex: &str, bundle_dir: &Path) {
    let live = Tree::of(&device.path(&format!("System/Cryptexes/{cryptex}/")));
    let want = Tree::of(&bundle_dir.join(cryptex));
    live.assert_same(&want);
}

#[test]
fn apply_restart_rollback_round_trip_in_both_forms() {
    for form in ["macos-26.3.1-a.bsi", "macos-26.3.1-a.bsi.tar"] {
        let d = Device::new();
        d.bsi(["apply".as_ref(), b(form).as_os_str()])
            .ok()
            .stdout_is(&[], "26.3.1 (a) is staged; restart to activate it (`bsi restart`), or relaunch Safari (`bsi relaunch-safari`) to use its Safari content now\n");
        let s = d.status();
        assert_eq!(s.active, None);
        assert_eq!(s.staged.as_ref().unwrap().action, "install");
        assert_eq!(s.staged.as_ref().unwrap().version, "26.3.1 (a)");
        assert!(s.restart_required);
        d.bsi(["restart"]).ok();
        let s = d.status();
        assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (a)");
        assert_eq!(s.active.as_ref().unwrap().extra, "(a)");
        assert_eq!(s.active.as_ref().unwrap().build, "25D771280a");
        assert_eq!(s.active.as_ref().unwrap().cryptexes, ["App", "OS"]);
        assert_eq!(s.ddm("device.operating-system.build-version"), "25D2128");
        assert_eq!(
            s.ddm("device.operating-system.supplemental.build-version"),
            "25D771280a"
        );
        assert_eq!(
            s.ddm("device.operating-system.supplemental.extra-version"),
            "(a)"
        );
        grafted_equals(&d, "OS", &b("macos-26.3.1-a.bsi"));
        grafted_equals(&d, "App", &b("macos-26.3.1-a.bsi"));
        let sv = std::fs::read_to_string(
            d.path("System/Volumes/Preboot")
                .read_dir()
                .unwrap()
                .flatten()
                .find(|e| e.file_name() != "Cryptexes")
                .unwrap()
                .path()
                .join("cryptex1/current/SystemVersion.plist"),
        )
        .unwrap();
        assert!(
            sv.contains("<key>ProductVersionExtra</key>") && sv.contains("25D771280a"),
            "{sv}"
        );
        d.bsi(["verify"]).ok();
        d.bsi(["rollback"]).ok();
        assert_eq!(d.status().staged.as_ref().unwrap().action, "remove");
        d.bsi(["restart"]).ok();
        let s = d.status();
        assert_eq!(s.active, None);
        assert_eq!(
            s.ddm("device.operating-system.supplemental.build-version"),
            "25D2128"
        );
        // Removed responses can be applied again.
        d.activate(b(form));
        assert_eq!(d.status().active.as_ref().unwrap().version, "26.3.1 (a)");
    }
}

#[test]
fn responses_are_cumulative_and_reapplying_is_nothing_to_do() {
    let d = Device::new();
    d.activate(b("macos-26.3.1-c.bsi"));
    let before = d.tree();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-b.bsi").as_os_str()])
        .ok()
        .stdout_is(
            &[],
            "the active 26.3.1 (c) includes 26.3.1 (b) (responses are cumulative); nothing to do\n",
        );
    before.assert_same(&d.tree());
    let before = d.tree();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-c.bsi.tar").as_os_str()])
        .ok()
        .stdout_is(&[], "26.3.1 (c) is already active; nothing to do\n");
    before.assert_same(&d.tree());
    assert_eq!(
        d.status().last_operation.as_ref().unwrap().result,
        "nothing-to-do"
    );
    // Staged: re-applying is nothing to do, an older one is refused.
    let d = Device::new();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-b.bsi").as_os_str()])
        .ok();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-b.bsi").as_os_str()])
        .ok()
        .stdout_is(
            &[],
            "26.3.1 (b) is already staged; restart to activate it (`bsi restart`)\n",
        );
    d.bsi(["apply".as_ref(), b("macos-26.3.1-a.bsi").as_os_str()])
        .ok()
        .stdout_is(
            &[],
            "the staged 26.3.1 (b) includes 26.3.1 (a) (responses are cumulative); nothing to do\n",
        );
    // A newer one replaces the staged one.
    d.bsi(["apply".as_ref(), b("macos-26.3.1-c.bsi").as_os_str()])
        .ok();
    assert_eq!(d.status().staged.as_ref().unwrap().version, "26.3.1 (c)");
    let gens = std::fs::read_dir(d.path("System/Volumes/Preboot"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "Cryptexes")
        .unwrap()
        .path()
        .join("cryptex1/generations");
    let mut names: Vec<String> = std::fs::read_dir(gens)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["25D771280c", "base-25D2128"], "no leftovers");
}

#[test]
fn wrong_platform_and_wrong_base_are_not_applicable() {
    let d = Device::new();
    d.refuses(
        ["apply".as_ref(), b("ios-26.3.1-a.bsi").as_os_str()],
        5,
        "this bundle is for iOS; the device runs macOS",
    ).stderr_is(&[], "error: this bundle is for iOS; the device runs macOS\nhint: use a bundle made for the device's platform\n");
    d.refuses(
        ["apply".as_ref(), b("macos-26.4-a.bsi").as_os_str()],
        5,
        "26.4 (a) is for 26.4 (25E100); the device runs 26.3.1 (25D2128), which is older: the device has not reached that base",
    ).stderr_is(&[], "error: 26.4 (a) is for 26.4 (25E100); the device runs 26.3.1 (25D2128), which is older: the device has not reached that base\nhint: update the device first: bsi update --version 26.4 --build 25E100\n");
    d.bsi(["update", "--version", "26.4", "--build", "25E100"])
        .ok();
    let before = d.tree();
    let view: ApplyView = d
        .bsi([
            "apply".as_ref(),
            b("macos-26.3.1-a.bsi").as_os_str(),
            "--json".as_ref(),
        ])
        .ok()
        .parse();
    assert_eq!(
        view,
        ApplyView {
            action: "already-included".into(),
            version: "26.3.1 (a)".into(),
            build: "25D771280a".into(),
            restart_required: false,
            dry_run: false,
            cancelled: None,
            message: "26.3.1 (a) is for 26.3.1 (25D2128); the device runs 26.4 (25E100), a later minor version that includes every response of 26.3.1; nothing to do".into(),
        }
    );
    before.assert_same(&d.tree());
    d.activate(b("macos-26.4-a.bsi"));
    assert_eq!(d.status().active.as_ref().unwrap().version, "26.4 (a)");
    let ios = Device::with(&["--platform", "iOS"]);
    ios.activate(b("ios-26.3.1-a.bsi.tar"));
    let s = ios.status();
    assert_eq!(s.active.as_ref().unwrap().build, "23D771330a");
    assert_eq!(s.safari, None);
    ios.refuses(["relaunch-safari"], 5, "macOS").stderr_is(&[], "error: relaunching Safari onto staged content is a macOS feature; this device runs iOS\nhint: restart the device to activate staged content\n");
}

#[test]
fn power_gate_table() {
    let a = b("macos-26.3.1-a.bsi");
    for (flags, ok) in [
        (&["--battery", "9", "--no-ac"][..], false),
        (&["--battery", "10", "--no-ac"][..], true),
        (
            &["--chip", "intel", "--battery", "19", "--no-ac"][..],
            false,
        ),
        (&["--chip", "intel", "--battery", "20", "--no-ac"][..], true),
        (&["--chip", "intel", "--battery", "1", "--ac"][..], true),
        (&["--desktop"][..], true),
        (
            &["--platform", "iOS", "--battery", "1", "--no-ac"][..],
            true,
        ),
    ] {
        let d = Device::with(flags);
        let bundle = if flags.contains(&"iOS") {
            b("ios-26.3.1-a.bsi")
        } else {
            a.clone()
        };
        if ok {
            d.bsi(["apply".as_ref(), bundle.as_os_str()]).ok();
        } else {
            d.refuses(["apply".as_ref(), bundle.as_os_str()], 3, "is below the");
            d.bsi(["power", "--ac"]).ok();
            d.bsi(["apply".as_ref(), bundle.as_os_str()]).ok();
        }
    }
    let d = Device::with(&["--desktop"]);
    let s = d.status();
    assert_eq!(s.power.minimum_percent, None);
    assert_eq!(s.power.battery_percent, None);
    d.bsi(["status"])
        .ok()
        .stdout_is(&[], "ProductName:\t\tmacOS\nProductVersion:\t\t26.3.1\nBuildVersion:\t\t25D2128\n\ndevice:     desktop Mac (apple-silicon), enrollment TEST-DEVICE\ndeployments:\n* active    base OS 26.3.1 (25D2128), no response\n  rollback  nothing to remove (not now: no response is active or staged)\n\nrestart:    not needed\nsafari:     26.3.1\npower:      no battery, on power; gate passes (desktop Macs have no battery gate)\nautomatic:  on (user's setting)\nlast:       init ok at 2026-12-01T10:00:00Z\n");
    Device::with(&["--platform", "iOS"])
        .bsi(["status"])
        .ok()
        .stdout_is(&[], "ProductName:\t\tiOS\nProductVersion:\t\t26.3.1\nBuildVersion:\t\t23D8133\n\ndevice:     iOS, enrollment TEST-DEVICE\ndeployments:\n* active    base OS 26.3.1 (23D8133), no response\n  rollback  nothing to remove (not now: no response is active or staged)\n\nrestart:    not needed\npower:      battery 100 %, on power; gate passes (Apple states no battery rule for iPhone and iPad responses; none is enforced)\nautomatic:  on (user's setting)\nlast:       init ok at 2026-12-01T10:00:00Z\n");
}

#[test]
fn app_only_responses_activate_at_once() {
    let d = Device::new();
    d.bsi([
        "apply".as_ref(),
        b("macos-26.3.1-d-app-only.bsi").as_os_str(),
    ])
    .ok()
    .stdout_is(&[], "26.3.1 (d) is active (App content only, no restart needed); Safari uses it once relaunched\n");
    let s = d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (d)");
    assert_eq!(s.active.as_ref().unwrap().cryptexes, ["App"]);
    assert!(!s.restart_required);
    grafted_equals(&d, "App", &b("macos-26.3.1-d-app-only.bsi"));
    // OS is still the base's.
    assert!(
        d.path("System/Cryptexes/OS/System/Library/dyld/dyld_shared_cache_arm64e")
            .exists()
    );
    d.bsi(["verify"]).ok();
}

#[test]
fn safari_relaunch_uses_staged_content_until_restart() {
    let d = Device::new();
    d.activate(b("macos-26.3.1-a.bsi"));
    d.bsi(["apply".as_ref(), b("macos-26.3.1-b.bsi").as_os_str()])
        .ok();
    assert_eq!(d.status().safari.as_ref().unwrap().version, "26.3.1 (a)");
    d.bsi(["relaunch-safari"]).ok();
    let s = d.status();
    assert_eq!(s.safari.as_ref().unwrap().version, "26.3.1 (b)");
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (a)");
    assert!(s.restart_required);
    d.bsi(["restart"]).ok();
    let s = d.status();
    assert_eq!(s.safari.as_ref().unwrap().version, "26.3.1 (b)");
    assert!(!s.safari.as_ref().unwrap().relaunched);
}

#[test]
fn removal_before_and_after_restart() {
    let d = Device::new();
    d.bsi(["apply".as_ref(), b("macos-26.3.1-a.bsi").as_os_str()])
        .ok();
    d.bsi(["rollback"]).ok().stdout_is(
        &[],
        "discarded the staged 26.3.1 (a); the device still runs 26.3.1\n",
    );
    assert_eq!(d.status().staged, None);
    let before = d.tree();
    d.bsi(["rollback"]).ok().stdout_is(
        &[],
        "nothing to remove: no response is active or staged; the device runs 26.3.1\n",
    );
    before.assert_same(&d.tree());
    d.activate(b("macos-26.3.1-a.bsi"));
    d.bsi(["rollback", "--dry-run"]).ok();
    assert_eq!(d.status().staged, None);
    d.bsi(["rollback", "--restart"]).ok();
    assert_eq!(d.status().active, None);
    // Re-applying the active response with its removal staged is nothing to do.
    d.activate(b("macos-26.3.1-a.bsi"));
    d.bsi(["rollback"]).ok();
    // Re-applying the active response is nothing to do (DESIGN section 4): the removal stays.
    d.bsi(["apply".as_ref(), b("macos-26.3.1-a.bsi").as_os_str()])
        .ok()
        .stdout_is(&[], "26.3.1 (a) is already active; nothing to do; its removal stays staged for the next restart\n");
    assert_eq!(d.status().staged.as_ref().unwrap().action, "remove");
}

#[test]
fn dry_run_changes_nothing() {
    let d = Device::new();
    let before = Tree::of(&d.root);
    d.bsi([
        "apply".as_ref(),
        b("macos-26.3.1-a.bsi").as_os_str(),
        "--dry-run".as_ref(),
    ])
    .ok()
    .stdout_is(
        &[],
        "would stage 26.3.1 (a) (11093 bytes); it needs a restart\n",
    );
    d.bsi([
        "update",
        "--version",
        "26.4",
        "--build",
        "25E100",
        "--dry-run",
    ])
    .ok();
    d.bsi(["power", "--battery", "5", "--dry-run"]).ok();
    before.assert_same(&Tree::of(&d.root));
}

#[test]
fn the_seed_versioning_table() {
    // iOS 16.2 / macOS 13.1: (a) and (b); 13.2 includes them; (a) (b) (c) on 13.2; 13.3 includes
    // those three and the line restarts at (a).
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::with(&["--version", "13.1", "--build", "22C65"]);
    let mk = |ver: &str, pre: &str, x: char, build: &str| {
        make_bundle(
            tmp.path(),
            &format!("{ver}-{x}.bsi"),
            "macOS",
            ver,
            pre,
            &format!("({x})"),
            build,
            &[("usr/lib/patch", format!("{ver} {x}").as_bytes())],
            &[],
        )
    };
    d.activate(mk("13.1", "22C65", 'a', "22C770650a"));
    d.activate(mk("13.1", "22C65", 'b', "22C770650b"));
    d.bsi(["update", "--version", "13.2", "--build", "22D49"])
        .ok()
        .stdout_is(&[], "moved from 13.1 (b) to 13.2 (22D49)\n13.2 includes 13.1 (a) ... (b); it replaces the active 13.1 (b) (the new base includes it)\n");
    let s = d.status();
    assert_eq!(s.included, ["13.1 (a)", "13.1 (b)"]);
    assert_eq!(s.active, None);
    d.bsi(["status", "--require", "13.1 (b)"]).ok();
    for (x, build) in [
        ('a', "22D770490a"),
        ('b', "22D770490b"),
        ('c', "22D770490c"),
    ] {
        d.activate(mk("13.2", "22D49", x, build));
    }
    assert_eq!(d.status().active.as_ref().unwrap().version, "13.2 (c)");
    d.bsi(["status", "--require", "13.2 (c)"]).ok();
    d.bsi(["status", "--require", "13.2 (d)"])
        .exit(9)
        .stdout_is(&[], "ProductName:\t\tmacOS\nProductVersion:\t\t13.2\nProductVersionExtra:\t(c)\nBuildVersion:\t\t22D770490c\n\ndevice:     Mac laptop (apple-silicon), enrollment TEST-DEVICE\ndeployments:\n* active    13.2 (c) (22D770490c; App from 13.2, OS from 13.2 (c))\n  rollback  base OS 13.2 (22D49): `bsi rollback` returns here at the next restart\n\nrestart:    not needed\nsafari:     13.2 (c)\nincluded:   13.2 includes 13.1 (a) ... (b)\npower:      battery 100 %, on power; gate passes (a Mac laptop with Apple silicon needs power or at least 10 % battery)\nautomatic:  on (user's setting)\nlast:       apply ok at 2026-12-01T10:00:00Z\n")
        .stderr_is(&[], "error: requirement not met: 13.2 (d) is required, the device runs 13.2 (c)\nhint: apply 13.2 (d) or a later response of its line (`bsi apply BUNDLE --restart`)\n");
    d.bsi(["update", "--version", "13.3", "--build", "22E252"])
        .ok();
    assert_eq!(d.status().included, ["13.2 (a)", "13.2 (b)", "13.2 (c)"]);
    d.activate(mk("13.3", "22E252", 'a', "22E772520a"));
    assert_eq!(d.status().active.as_ref().unwrap().version, "13.3 (a)");
    let history: Vec<HistoryEntry> = d.bsi(["history", "--json"]).ok().parse();
    assert!(history.iter().any(|e| {
        e.detail
            .as_deref()
            .is_some_and(|t| t.contains("13.3 includes 13.2 (a) ... (c)"))
    }));
    // A major upgrade includes nothing.
    d.bsi(["upgrade", "--version", "14.0", "--build", "23A344"])
        .ok();
    assert_eq!(d.status().included, Vec::<String>::new());
    // It includes no response, but a later major version has at least every earlier fix.
    d.bsi(["status", "--require", "13.3 (a)"]).ok();
}

#[test]
fn update_and_upgrade_refuse_the_wrong_direction() {
    let d = Device::new();
    d.refuses(
        ["update", "--version", "26.3", "--build", "25D100"],
        5,
        "downgrade",
    ).stderr_is(&[], "error: 26.3 is older than the installed 26.3.1: that would be a downgrade\nhint: bsi update moves only to a later version\n");
    d.refuses(
        ["update", "--version", "27.0", "--build", "26A100"],
        5,
        "major upgrade",
    ).stderr_is(&[], "error: 26.3.1 -> 27.0 is a major upgrade, not a minor update\nhint: use `bsi upgrade --version 27.0 --build 26A100`\n");
    d.refuses(
        ["upgrade", "--version", "26.4", "--build", "25E100"],
        5,
        "minor update",
    ).stderr_is(&[], "error: 26.3.1 -> 26.4 is a minor update, not a major upgrade\nhint: use `bsi update --version 26.4 --build 25E100`\n");
    d.refuses(
        ["update", "--version", "26..4", "--build", "25E100"],
        2,
        "invalid OS version",
    ).stderr_is(&[], "error: invalid OS version `26..4`: the minor number is empty (expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 26.3.1)\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    d.bsi(["update", "--version", "26.3.1", "--build", "25D2128"])
        .ok()
        .stdout_is(&[], "the device already runs 26.3.1 (25D2128)\n");
}

#[test]
fn verify_names_damaged_files_and_history_records_everything() {
    let d = Device::new();
    d.activate(b("macos-26.3.1-a.bsi"));
    let lib = d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&lib, bytes).unwrap();
    std::fs::write(d.path("System/Cryptexes/App/intruder"), b"x").unwrap();
    let run = d.bsi(["verify"]);
    let root: &[(&Path, &str)] = &[(&d.root, "[ROOT]")];
    run.exit(8).stdout_is(root, "problem: App/intruder: not listed in the manifest\nproblem: OS/usr/lib/libwebrtc.dylib: SHA-256 33a3a2d342e803421b5f3349ad955aca147877a7122d690520613bb08f003648 differs from the manifest's 2463a4ecfd92067e5ade318a08d491632f6b3c327e4dea781eb5e8a2903b6836\n").stderr_is(root, "error: verify found 2 problems in the device (listed above)\nhint: restore 26.3.1 (a) (25D771280a) from the bundle it was applied from: `bsi repair --from [FIXTURES]/bundles/macos-26.3.1-a.bsi`\n");
    assert!(
        !run.stderr().contains("libwebrtc"),
        "each problem is printed once"
    );
    let h: Vec<HistoryEntry> = d.bsi(["history", "--json"]).ok().parse();
    let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["init", "apply"]);
    assert_eq!(h[1].target.as_deref(), Some("26.3.1 (a)"));
    assert_eq!(h[1].after.as_deref(), Some("26.3.1 (a)"));
}

#[test]
fn verify_reports_the_same_whether_or_not_its_read_ahead_saw_the_files() {
    // verify hashes small files on a second thread while it reads the manifest; a file it saw
    // there is checked against its entry without being read again. Paused long enough for the
    // read-ahead to see every file, verify must find exactly what it finds without it.
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    let contents: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("usr/lib/f{i:03}"), format!("file {i}").into_bytes()))
        .chain([("usr/lib/large".to_owned(), vec![7u8; 100 * 1024])])
        .collect();
    let os = borrowed(&contents);
    let bundle = make_bundle(
        tmp.path(),
        "many.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(a)",
        "25D771280a",
        &os,
        &[("Applications/Safari.app/Contents/Info.plist", b"safari")],
    );
    d.activate(&bundle);
    let read_ahead = "verify.read_ahead=sleep(1000)";
    let clean = d.cmd().arg("verify").env("FAILPOINTS", read_ahead).run();
    assert!(clean.stdout().contains("305 files"), "{}", clean.stdout());

    let lib = |name: &str| d.path(&format!("System/Cryptexes/OS/usr/lib/{name}"));
    let flip = |path: PathBuf| {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    };
    flip(lib("f001"));
    flip(lib("large"));
    std::fs::set_permissions(
        lib("f002"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(lib("f003"), b"file 3 and more").unwrap();
    std::fs::remove_file(lib("f004")).unwrap();
    std::fs::remove_file(lib("f005")).unwrap();
    std::os::unix::fs::symlink("f000", lib("f005")).unwrap();
    std::fs::remove_file(lib("f006")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        lib("f006"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::remove_file(lib("f007")).unwrap();
    std::fs::create_dir(lib("f007")).unwrap();
    std::fs::write(lib("intruder"), b"x").unwrap();

    let without = d.cmd().args(["verify", "--json"]).exit(8).run();
    let with = d
        .cmd()
        .args(["verify", "--json"])
        .env("FAILPOINTS", read_ahead)
        .exit(8)
        .run();
    assert_eq!(with.stdout(), without.stdout());
    assert_eq!(with.stderr(), without.stderr());
    // With the read-ahead switched off (as the benchmark measures it), the same answer.
    let off = d
        .cmd()
        .args(["verify", "--json"])
        .env("FAILPOINTS", "verify.no-read-ahead=return")
        .exit(8)
        .run();
    assert_eq!(off.stdout(), without.stdout());
    for want in [
        "OS/usr/lib/f001: SHA-256",
        "OS/usr/lib/large: SHA-256",
        "OS/usr/lib/f002: mode 600 differs from the manifest's 644",
        "OS/usr/lib/f003: size 15 differs from the manifest's 6",
        "OS/usr/lib/f004: missing",
        "OS/usr/lib/f005: a symlink where a file belongs",
        "OS/usr/lib/f006: not a regular file",
        "OS/usr/lib/f007: not a regular file",
        "OS/usr/lib/intruder: not listed",
    ] {
        assert!(with.stdout().contains(want), "{want} in {}", with.stdout());
    }
}

#[test]
fn the_pipeline_switched_off_installs_and_refuses_as_it_does() {
    // `bench/peers.py --only mechanisms` measures what the hashing thread earns by switching it
    // off; the answers must be the same either way, or the figure compares different work.
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let os: [(&str, &[u8]); 2] = [
        ("System/Library/dyld/dyld_shared_cache_arm64e", &big),
        ("usr/lib/libsmall.dylib", b"small"),
    ];
    let bundle = make_bundle(
        tmp.path(),
        "big.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(a)",
        "25D771280a",
        &os,
        &[],
    );
    let one_thread = "stream.one-thread=return";
    let (threaded, alone) = (Device::new(), Device::new());
    threaded.activate(&bundle);
    alone
        .cmd()
        .args([
            OsStr::new("apply"),
            bundle.as_os_str(),
            OsStr::new("--restart"),
        ])
        .env("FAILPOINTS", one_thread)
        .run();
    let cache = "System/Cryptexes/OS/System/Library/dyld/dyld_shared_cache_arm64e";
    assert_eq!(std::fs::read(alone.path(cache)).unwrap(), big);
    alone
        .cmd()
        .arg("verify")
        .env("FAILPOINTS", one_thread)
        .run();

    // A payload file changed after signing: refused the same way, the device unchanged.
    let payload = bundle.join("OS/System/Library/dyld/dyld_shared_cache_arm64e");
    let mut changed = big.clone();
    changed[2 * 1024 * 1024 + 5] ^= 0x40;
    std::fs::write(&payload, &changed).unwrap();
    let fresh = || {
        let d = Device::new();
        (d.tree(), d)
    };
    let mut said = Vec::new();
    for env in ["", one_thread] {
        let (before, d) = fresh();
        let run = d
            .cmd()
            .arg("apply")
            .arg(&bundle)
            .env("FAILPOINTS", env)
            .exit(6)
            .run();
        before.assert_same(&d.tree());
        said.push(
            run.stderr()
                .replace(&d.root.display().to_string(), "[ROOT]"),
        );
    }
    assert_eq!(said[0], said[1]);
    assert!(said[0].contains("dyld_shared_cache_arm64e"), "{}", said[0]);
}
