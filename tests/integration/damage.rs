//! Damage no command could undo (issue 25, items 1 to 5): every kind of damage that some
//! command refuses for is found by `verify` and undone by following the hints bsi prints, as a
//! user would; a link bsi did not make is damage for `status` and refused by changes; a pending
//! recovery is not damage; a dry run writes nothing; `repair` keeps the device's identity.

use std::path::Path;
use std::process::Command;

use crate::harness::*;
use crate::truth::{generations, hinted_command, layered, preboot};

/// The commands a user might run on a damaged device: readers, a dry-run change, `verify`.
const PROBES: [&[&str]; 8] = [
    &["status"],
    &["status", "--json"],
    &["report"],
    &["history", "--limit", "1"],
    &["policy", "list"],
    &["power"],
    &["rollback", "--dry-run"],
    &["verify"],
];

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Replaces the directory or file at `path` with a symlink to `target` (the old one is kept
/// aside, so the link leads to something real).
fn swap_for_link(path: &Path, target: &Path) {
    let aside = path.with_extension("aside");
    std::fs::rename(path, &aside).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

fn swap_for_fifo(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
    mkfifo(path);
}

/// Runs every probe; while one fails, follows the hint of the first that does, as a user
/// would (at most a few steps). Whatever exits 8 for damage, `verify` must fail for too.
/// Returns the commands followed.
#[track_caller]
fn follow_every_hint(d: &Device, what: &str) -> Vec<String> {
    let mut followed = Vec::new();
    for _ in 0..8 {
        let runs: Vec<Run> = PROBES.iter().map(|p| d.bsi(*p)).collect();
        for r in &runs {
            assert!(
                !r.stderr().contains("panicked"),
                "{what}: {:?}: {}",
                r.args,
                r.stderr()
            );
        }
        let verify = runs.last().unwrap();
        let Some(failing) = runs.iter().find(|r| r.code() != 0) else {
            return followed;
        };
        if let Some(refused) = runs.iter().find(|r| r.code() == 8) {
            assert_ne!(
                verify.code(),
                0,
                "{what}: {:?} calls the device damaged, yet verify passes:\n{}",
                refused.args,
                refused.stderr()
            );
        }
        let mut words = hinted_command(&failing.stderr()).unwrap_or_else(|| {
            panic!(
                "{what}: bsi {:?} exited {} with no command in its hint:\n{}",
                failing.args,
                failing.code(),
                failing.stderr()
            )
        });
        assert!(
            !words.contains(&"BUNDLE".to_owned()),
            "{what}: the hint names no bundle: {}",
            failing.stderr()
        );
        // The harness passes --root itself.
        if let Some(i) = words.iter().position(|w| w == "--root") {
            words.drain(i..i + 2);
        }
        followed.push(words.join(" "));
        let fixed = d.bsi(&words);
        assert!(!fixed.stderr().contains("panicked"), "{}", fixed.stderr());
    }
    panic!("{what}: still failing after following {followed:?}");
}

#[test]
fn issue25_item2_every_damage_is_found_by_verify_and_undone_by_its_hints() {
    type Damage = fn(&Device, &Path);
    let cases: Vec<(&str, Damage)> = vec![
        (
            "ProductVersion changed in the base SystemVersion.plist",
            |d, _| {
                let f = d.path("System/Library/CoreServices/SystemVersion.plist");
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(
                    &f,
                    text.replace("<string>26.3.1</string>", "<string>26.3.9</string>"),
                )
                .unwrap();
            },
        ),
        (
            "ProductBuildVersion changed in the base SystemVersion.plist",
            |d, _| {
                let f = d.path("System/Library/CoreServices/SystemVersion.plist");
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, text.replace("25D2128", "25D2140")).unwrap();
            },
        ),
        ("the base SystemVersion.plist is a binary plist", |d, _| {
            std::fs::write(
                d.path("System/Library/CoreServices/SystemVersion.plist"),
                b"bplist00\xa2\x01\x01",
            )
            .unwrap();
        }),
        ("the base SystemVersion.plist is missing", |d, _| {
            std::fs::remove_file(d.path("System/Library/CoreServices/SystemVersion.plist"))
                .unwrap();
        }),
        (
            "the base generation's SystemVersion.plist changed",
            |d, _| {
                let f = generations(d).join("base-25D2128/SystemVersion.plist");
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(
                    &f,
                    text.replace("<string>26.3.1</string>", "<string>26.2</string>"),
                )
                .unwrap();
            },
        ),
        (
            "the active response's SystemVersion.plist is a binary plist",
            |d, _| {
                std::fs::write(
                    generations(d).join("25D771280d/SystemVersion.plist"),
                    b"bplist00",
                )
                .unwrap();
            },
        ),
        (
            "the active response's SystemVersion.plist names another letter",
            |d, _| {
                let f = generations(d).join("25D771280d/SystemVersion.plist");
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, text.replace("(d)", "(z)")).unwrap();
            },
        ),
        ("the Preboot volume replaced by a symlink", |d, outside| {
            swap_for_link(&preboot(d), outside);
        }),
        ("System/Cryptexes replaced by a symlink", |d, outside| {
            swap_for_link(&d.path("System/Cryptexes"), outside);
        }),
        ("System/Cryptexes/OS pointing at /etc", |d, _| {
            let l = d.path("System/Cryptexes/OS");
            std::fs::remove_file(&l).unwrap();
            std::os::unix::fs::symlink("/etc", l).unwrap();
        }),
        ("cryptex1/current replaced by a directory", |d, _| {
            let c = preboot(d).join("cryptex1/current");
            std::fs::remove_file(&c).unwrap();
            std::fs::create_dir(c).unwrap();
        }),
        ("trust/ replaced by a symlink", |d, outside| {
            swap_for_link(&d.path("private/var/db/bsi/trust"), outside);
        }),
        ("trust/ replaced by a FIFO", |d, _| {
            swap_for_fifo(&d.path("private/var/db/bsi/trust"));
        }),
        ("declarations/ replaced by a symlink", |d, outside| {
            std::fs::create_dir_all(d.path("private/var/db/bsi/declarations")).unwrap();
            swap_for_link(&d.path("private/var/db/bsi/declarations"), outside);
        }),
        ("declarations/ replaced by a FIFO", |d, _| {
            swap_for_fifo(&d.path("private/var/db/bsi/declarations"));
        }),
        ("journal.json a symlink", |d, outside| {
            std::os::unix::fs::symlink(
                outside.join("victim"),
                d.path("private/var/db/bsi/journal.json"),
            )
            .unwrap();
        }),
        ("journal.json a FIFO", |d, _| {
            mkfifo(&d.path("private/var/db/bsi/journal.json"));
        }),
        ("journal.json oversized", |d, _| {
            std::fs::write(
                d.path("private/var/db/bsi/journal.json"),
                vec![b' '; 17 << 20],
            )
            .unwrap();
        }),
        ("the lock a symlink", |d, outside| {
            let l = d.path("private/var/db/bsi/lock");
            let _ = std::fs::remove_file(&l);
            std::os::unix::fs::symlink(outside.join("victim"), l).unwrap();
        }),
        ("the lock a FIFO", |d, _| {
            let l = d.path("private/var/db/bsi/lock");
            let _ = std::fs::remove_file(&l);
            mkfifo(&l);
        }),
        ("the lock hard-linked outside", |d, outside| {
            let l = d.path("private/var/db/bsi/lock");
            let _ = std::fs::remove_file(&l);
            std::fs::hard_link(outside.join("victim"), l).unwrap();
        }),
        ("the history hard-linked outside", |d, outside| {
            let h = d.path("private/var/db/bsi/history.jsonl");
            std::fs::remove_file(&h).unwrap();
            std::fs::hard_link(outside.join("victim"), h).unwrap();
        }),
        ("the history a FIFO", |d, _| {
            swap_for_fifo(&d.path("private/var/db/bsi/history.jsonl"));
        }),
        ("the power record a FIFO", |d, _| {
            swap_for_fifo(&d.path("private/var/db/bsi/power.json"));
        }),
        ("the power record hard-linked outside", |d, outside| {
            let p = d.path("private/var/db/bsi/power.json");
            std::fs::remove_file(&p).unwrap();
            std::fs::write(
                outside.join("power"),
                br#"{"battery_percent": 50, "on_ac": true}"#,
            )
            .unwrap();
            std::fs::hard_link(outside.join("power"), p).unwrap();
        }),
        (
            "bsi's records directory replaced by a symlink",
            |d, outside| {
                swap_for_link(&d.path("private/var/db/bsi"), outside);
            },
        ),
    ];
    for (what, damage) in cases {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), b"keep me").unwrap();
        let d = layered();
        damage(&d, outside.path());
        // Nothing bsi does from here on writes outside the device.
        let before = Tree::of(outside.path());
        let followed = follow_every_hint(&d, what);
        if what.starts_with("journal.json") {
            // A journal that is not what bsi writes is an interrupted operation of unknown
            // kind: readers report it, the next change recovers (and unlinks it).
            assert!(followed.is_empty(), "{what}: {followed:?}");
            // It names no command, pid or time it does not know.
            let status = d.bsi(["status"]).ok().stdout();
            assert_eq!(
                status.lines().last(),
                Some(
                    "recovery:   an interrupted operation whose journal cannot be read will be tidied up by the next changing command or `bsi repair`"
                ),
                "{what}"
            );
            d.bsi(["power", "--ac", "--dry-run"]).ok().stderr_is(
                &[],
                "warning: an interrupted operation whose journal cannot be read is waiting to be recovered; the real command recovers it first\n",
            );
            d.bsi(["power", "--ac"]).ok();
            assert!(std::fs::symlink_metadata(d.path("private/var/db/bsi/journal.json")).is_err());
        } else {
            assert!(!followed.is_empty(), "{what}: nothing noticed it");
        }
        d.bsi(["verify"]).ok();
        before.assert_same(&Tree::of(outside.path()));
        eprintln!("{what}: undone by {followed:?}");
    }
}

#[test]
fn issue25_item1_a_link_bsi_did_not_make_is_damage_for_status_and_changes() {
    let d = Device::new();
    let a = bundle("macos-26.3.1-a.bsi");
    let c = bundle("macos-26.3.1-c.bsi");
    d.activate(&a);
    let link = d.path("System/Cryptexes/OS");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let tree = d.tree();
    let shown = format!(
        "error: the device is damaged: {} points at /etc, not ../../System/Volumes/Preboot/Cryptexes/OS (bsi made that link; what it leads to is not the active content)\nhint: run `bsi repair` to bring the device back to a consistent state\n",
        link.display()
    );
    d.cmd()
        .arg("status")
        .exit(8)
        .stdout("")
        .stderr(&shown)
        .run();
    d.cmd()
        .args(["apply".as_ref(), c.as_os_str(), "--restart".as_ref()])
        .exit(8)
        .stdout("")
        .stderr(&shown)
        .run();
    d.cmd()
        .args(["apply".as_ref(), c.as_os_str(), "--dry-run".as_ref()])
        .exit(8)
        .stderr(&shown)
        .run();
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc"));
    // The refusal is recorded; nothing else changed.
    let mut after = d.tree();
    after.forget("private/var/db/bsi/history.jsonl");
    after.forget("private/var/db/bsi/last-operation.json");
    let mut before = tree;
    before.forget("private/var/db/bsi/history.jsonl");
    before.forget("private/var/db/bsi/last-operation.json");
    before.assert_same(&after);
    d.bsi(["repair"])
        .ok()
        .stdout_is(&[], "pointed System/Cryptexes/OS at ../../System/Volumes/Preboot/Cryptexes/OS: System/Cryptexes/OS points at /etc, not ../../System/Volumes/Preboot/Cryptexes/OS\n");
    d.bsi(["apply".as_ref(), c.as_os_str(), "--restart".as_ref()])
        .ok();
    assert_eq!(d.status().active_version(), Some("26.3.1 (c)"));
    d.bsi(["verify"]).ok();
}

#[test]
fn issue25_item3_a_pending_clean_up_is_not_damage() {
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    // What an apply killed after its switch leaves: a journal and an unreferenced generation.
    std::fs::write(
        d.path("private/var/db/bsi/journal.json"),
        br#"{"op":"apply","pid":4242,"started":"2026-12-01T09:59:00Z","commit":null}"#,
    )
    .unwrap();
    std::fs::create_dir_all(generations(&d).join(".bsi-tmp.staging-25D771280b/OS")).unwrap();
    let run = d.bsi(["verify", "--json"]);
    run.ok();
    let v: serde_json::Value = run.json();
    assert!(
        v["recovery_pending"]
            .as_str()
            .unwrap()
            .starts_with("an interrupted apply (pid 4242)")
    );
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
    // Real damage still exits 8 with the pending recovery noted.
    std::fs::write(d.path("System/Cryptexes/OS/usr/lib/libwebrtc.dylib"), b"x").unwrap();
    d.bsi(["verify"]).exit(8).stdout_is(
        &[],
        "note: an interrupted apply (pid 4242) is waiting to be recovered by the next changing command or `bsi repair`: it will remove what the operation left; the committed state is checked\n\
         problem: OS/usr/lib/libwebrtc.dylib: size 1 differs from the manifest's 3000\n",
    );
}

#[test]
fn issue25_item4_a_dry_run_never_writes_even_to_recover() {
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    std::fs::write(
        d.path("private/var/db/bsi/journal.json"),
        br#"{"op":"restart","pid":4242,"started":"2026-12-01T09:59:00Z","commit":null}"#,
    )
    .unwrap();
    std::fs::create_dir_all(generations(&d).join(".bsi-tmp.staging-25D771280b")).unwrap();
    let before = d.tree();
    for args in [
        vec![
            "apply",
            bundle("macos-26.3.1-c.bsi").to_str().unwrap(),
            "--dry-run",
        ],
        vec!["rollback", "--dry-run"],
        vec!["restart", "--dry-run"],
        vec!["power", "--battery", "50", "--dry-run"],
        vec!["settings", "--automatic", "off", "--dry-run"],
        vec![
            "update",
            "--version",
            "26.4",
            "--build",
            "25E100",
            "--dry-run",
        ],
        vec!["repair", "--dry-run"],
    ] {
        let run = d.bsi(&args);
        run.ok();
        d.tree().assert_same(&before);
    }
    d.bsi(["rollback", "--dry-run"])
        .ok()
        .stdout_is(&[], "would remove 26.3.1 (a) at the next restart\n")
        .stderr_is(&[], "warning: an interrupted restart is waiting to be recovered; the real command recovers it first\n");
    d.bsi(["repair", "--dry-run"])
        .ok()
        .stdout_is(&[], "would recover an interrupted restart\n");
}

#[test]
fn issue25_item5_repair_keeps_the_enrollment_id() {
    let d = Device::with(&["--enrollment-id", "A1B2C3D4-0000-4000-8000-000000000001"]);
    std::fs::remove_file(d.path("private/var/db/bsi/device.json")).unwrap();
    d.bsi(["repair"]).ok();
    assert_eq!(
        d.status().device.enrollment_id,
        "A1B2C3D4-0000-4000-8000-000000000001"
    );
    // With every copy gone, repair says plainly that the identity changed.
    std::fs::remove_file(d.path("private/var/db/bsi/device.json")).unwrap();
    std::fs::remove_file(d.path("private/var/db/bsi/enrollment.json")).unwrap();
    d.bsi(["repair"])
        .ok()
        .stdout_has("the enrollment identifier was lost with it: the device is now enrolled as ");
}
