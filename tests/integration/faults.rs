//! Crash safety, concurrency and hostile input (issue 6): SIGKILL at random instants, fault
//! points at every protocol step, concurrent changers, planted symlinks. After each, invariants
//! I1-I3 are checked from outside: `status --json`, `verify`, a walk of the tree for leftovers,
//! and that the next apply works.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Kills per operation; CI runs at least 50 per operation (200 in all). `BSI_KILLS` raises it.
fn kills_per_op() -> usize {
    std::env::var("BSI_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("BSI_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill test seed {seed} (BSI_SEED={seed} to replay)");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A response big enough that applying it takes measurable time.
fn big_bundles(dir: &Path) -> (PathBuf, PathBuf) {
    let big: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = vec![(
        "System/Library/dyld/dyld_shared_cache_arm64e".into(),
        big.clone(),
    )];
    for i in 0..40 {
        files.push((
            format!("usr/lib/lib{i}.dylib"),
            big[i * 1000..i * 1000 + 20_000].to_vec(),
        ));
    }
    let os = borrowed(&files);
    let a = make_bundle(
        dir,
        "big-a.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(a)",
        "25D771280a",
        &os,
        &[("Applications/Safari.app/Contents/Info.plist", b"a")],
    );
    let mut changed = big;
    changed[12345] ^= 0xff;
    files[0].1 = changed;
    let os = borrowed(&files);
    let b = make_bundle(
        dir,
        "big-b.bsi",
        "macOS",
        "26.3.1",
        "25D2128",
        "(b)",
        "25D771280b",
        &os,
        &[("Applications/Safari.app/Contents/Info.plist", b"b")],
    );
    (a, b)
}

/// I1-I3 from outside: status answers at once with the old or the new state (readers never
/// recover; a cut-short operation shows as `recovery_pending`), the next changing command
/// recovers and keeps that state, then verify passes and nothing is left over.
#[track_caller]
fn check_consistent(d: &Device) -> Status {
    let s = d.status();
    if s.recovery_pending.is_some() {
        d.bsi(["repair"]).ok();
        let after = d.status();
        assert_eq!(
            (&after.active, &after.staged, &after.os),
            (&s.active, &s.staged, &s.os),
            "recovery changed what status reported"
        );
        assert!(after.recovery_pending.is_none());
    }
    d.bsi(["verify"]).ok();
    let tree = Tree::of(&d.root);
    for path in tree.0.keys() {
        assert!(!path.contains(".bsi-tmp"), "leftover {path}");
        assert!(
            !path.ends_with("journal.json"),
            "journal left after recovery"
        );
    }
    let gens: Vec<&String> = tree
        .0
        .keys()
        .filter(|p| p.contains("/generations/") && p.matches('/').count() == 6)
        .collect();
    // The base, the active and staged responses, and the responses that still supply one of
    // their cryptexes (responses are cumulative per cryptex: an App-only response keeps the OS
    // content of the one it replaced).
    let mut kept = std::collections::BTreeSet::new();
    if let Some(active) = &s.active {
        kept.insert(active.version.clone());
        kept.extend(active.sources.values().cloned());
    }
    if let Some(staged) = &s.staged {
        if staged.action != "remove" {
            kept.insert(staged.version.clone());
        }
        kept.extend(staged.sources.values().cloned());
    }
    kept.remove(&s.os.version);
    let wanted = 1 + kept.len();
    assert_eq!(gens.len(), wanted, "generations {gens:?} for status {s:?}");
    s
}

fn spawn(d: &Device, args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new(bin())
        .arg("--root")
        .arg(&d.root)
        .args(args)
        .env_remove("FAILPOINTS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn measure(setup: &dyn Fn(&Device), args: &[&std::ffi::OsStr]) -> Duration {
    let d = Device::new();
    setup(&d);
    let start = Instant::now();
    let mut child = spawn(&d, args);
    assert!(child.wait().unwrap().success());
    start.elapsed()
}

/// Runs `op` on fresh devices prepared by `setup`, `SIGKILLing` it at random instants over its
/// measured length; each time checks the state is `old` or `new` and the device works on.
fn kill_loop(
    name: &str,
    setup: &dyn Fn(&Device),
    args: &[&std::ffi::OsStr],
    is_old_or_new: &dyn Fn(&Status) -> bool,
    next: &dyn Fn(&Device),
) -> usize {
    let mut rng = Rng::new();
    let length = measure(setup, args);
    let mut killed_mid_run = 0;
    for _ in 0..kills_per_op() {
        let d = Device::new();
        setup(&d);
        let delay = Duration::from_micros(rng.below(length.as_micros() as u64 + 1000));
        let mut child = spawn(&d, args);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let s = check_consistent(&d);
        assert!(
            is_old_or_new(&s),
            "{name}: a mix after a kill at {delay:?}: {s:?}"
        );
        next(&d);
        check_consistent(&d);
    }
    eprintln!(
        "{name}: {} kills over {length:?}, {killed_mid_run} while running",
        kills_per_op()
    );
    killed_mid_run
}

#[test]
fn sigkill_at_random_instants_leaves_old_or_new() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = big_bundles(tmp.path());
    let apply_a = |d: &Device| {
        d.activate(&a);
    };
    let active = |s: &Status| s.active_version().map(str::to_owned);
    let staged = |s: &Status| s.staged_version().map(str::to_owned);
    let mut mid = 0;
    // apply: nothing staged, or b staged.
    mid += kill_loop(
        "apply",
        &apply_a,
        &["apply".as_ref(), b.as_os_str()],
        &|s| {
            active(s).as_deref() == Some("26.3.1 (a)")
                && matches!(staged(s).as_deref(), None | Some("26.3.1 (b)"))
        },
        &|d| {
            d.activate(&b);
        },
    );
    // restart: (a) active with (b) staged, or (b) active.
    let staged_b = |d: &Device| {
        apply_a(d);
        d.bsi(["apply".as_ref(), b.as_os_str()]).ok();
    };
    mid += kill_loop(
        "restart",
        &staged_b,
        &["restart".as_ref()],
        &|s| {
            (active(s).as_deref() == Some("26.3.1 (a)")
                && staged(s).as_deref() == Some("26.3.1 (b)"))
                || (active(s).as_deref() == Some("26.3.1 (b)") && s.staged.is_none())
        },
        &|d| {
            d.bsi(["restart"]).ok();
        },
    );
    // rollback --restart: (a) active, removal staged, or base.
    mid += kill_loop(
        "rollback",
        &apply_a,
        &["rollback".as_ref(), "--restart".as_ref()],
        &|s| {
            active(s).as_deref() == Some("26.3.1 (a)") || (s.active.is_none() && s.staged.is_none())
        },
        &|d| {
            d.activate(&a);
        },
    );
    // update: the old base with (a), or 26.4 with 26.3.1 (a) included.
    mid += kill_loop(
        "update",
        &apply_a,
        &[
            "update".as_ref(),
            "--version".as_ref(),
            "26.4".as_ref(),
            "--build".as_ref(),
            "25E100".as_ref(),
        ],
        &|s| {
            (s.os.version == "26.3.1" && active(s).as_deref() == Some("26.3.1 (a)"))
                || (s.os.version == "26.4" && s.active.is_none() && s.included == ["26.3.1 (a)"])
        },
        &|d| {
            let v = d.status().os.version;
            let next = if v == "26.4" {
                bundle("macos-26.4-a.bsi")
            } else {
                bundle("macos-26.3.1-b.bsi")
            };
            d.bsi(["apply".as_ref(), next.as_os_str()]).ok();
        },
    );
    assert!(
        mid > kills_per_op(),
        "too few kills landed while bsi ran ({mid})"
    );
}

#[test]
fn concurrent_changers_never_mix() {
    for n in [2usize, 8] {
        let d = Device::new();
        let names = [
            "macos-26.3.1-a.bsi",
            "macos-26.3.1-b.bsi.tar",
            "macos-26.3.1-c.bsi",
            "macos-26.3.1-d-app-only.bsi",
        ];
        let children: Vec<_> = (0..n)
            .map(|i| {
                Command::new(bin())
                    .arg("--root")
                    .arg(&d.root)
                    .args(["--wait", "0"])
                    .arg("apply")
                    .arg(bundle(names[i % names.len()]))
                    .arg("--restart")
                    .output_async()
            })
            .collect();
        let mut codes = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let code = out.status.code().unwrap();
            if code == 7 {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("pid ") || err.contains("reading the device"),
                    "busy without a holder: {err}"
                );
            }
            codes.push(code);
        }
        assert!(codes.iter().all(|c| [0, 5, 7].contains(c)), "{codes:?}");
        assert!(codes.contains(&0), "{codes:?}");
        check_consistent(&d);
        // With a long enough wait, everyone gets a turn.
        let children: Vec<_> = (0..n)
            .map(|i| {
                Command::new(bin())
                    .arg("--root")
                    .arg(&d.root)
                    .args(["--wait", "60", "status", "--json"])
                    .arg(if i % 2 == 0 { "-q" } else { "-v" })
                    .output_async()
            })
            .collect();
        for c in children {
            assert!(c.wait_with_output().unwrap().status.success());
        }
    }
}

trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn preboot(d: &Device) -> PathBuf {
    std::fs::read_dir(d.path("System/Volumes/Preboot"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "Cryptexes")
        .unwrap()
        .path()
}

#[test]
fn planted_symlinks_never_lead_writes_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), b"keep me").unwrap();
    let before = Tree::of(outside.path());
    let a = bundle("macos-26.3.1-a.bsi");
    // cryptex1/proposed -> outside directory.
    let d = Device::new();
    std::os::unix::fs::symlink(outside.path(), preboot(&d).join("cryptex1/proposed")).unwrap();
    let _ = d.bsi(["apply".as_ref(), a.as_os_str()]);
    let _ = d.bsi(["restart"]);
    let _ = d.bsi(["repair"]);
    before.assert_same(&Tree::of(outside.path()));
    // A record replaced by a link to a file outside.
    let d = Device::new();
    let power = d.path("private/var/db/bsi/power.json");
    std::fs::remove_file(&power).unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), &power).unwrap();
    d.bsi(["power"])
        .refused(8, "a symlink stands on its path, where bsi makes none")
        .stderr_is(
            &[(d.root.as_path(), "[ROOT]")],
            "error: the device is damaged: record [ROOT]/private/var/db/bsi/power.json: a symlink stands on its path, where bsi makes none\nhint: run `bsi repair` to bring the device back to a consistent state\n",
        );
    let _ = d.bsi(["power", "--battery", "50"]);
    before.assert_same(&Tree::of(outside.path()));
    // The generations directory replaced by a link outside.
    let d = Device::new();
    let gens = preboot(&d).join("cryptex1/generations");
    let real = d.dir.path().join("moved-generations");
    std::fs::rename(&gens, &real).unwrap();
    std::os::unix::fs::symlink(outside.path(), &gens).unwrap();
    let run = d.bsi(["apply".as_ref(), a.as_os_str()]);
    assert_ne!(run.code(), 0);
    assert!(!run.stderr().contains("panicked"));
    before.assert_same(&Tree::of(outside.path()));
    // System/Cryptexes/OS -> outside: verify says so, repair puts it back.
    let d = Device::new();
    let link = d.path("System/Cryptexes/OS");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    d.bsi(["verify"])
        .exit(8)
        .stdout_is(
            &[(outside.path(), "[OUTSIDE]")],
            "problem: System/Cryptexes/OS points at [OUTSIDE], not ../../System/Volumes/Preboot/Cryptexes/OS\n\
             problem: System/Cryptexes/OS does not resolve inside the device: a path led outside of the filesystem\n",
        )
        .stderr_is(
            &[],
            "error: verify found 2 problems in the device (listed above)\nhint: run `bsi repair`: it restores what bsi made itself (links, records, base content)\n",
        );
    d.bsi(["repair"]).ok().stdout_is(
        &[(outside.path(), "[OUTSIDE]")],
        "pointed System/Cryptexes/OS at ../../System/Volumes/Preboot/Cryptexes/OS: System/Cryptexes/OS points at [OUTSIDE], not ../../System/Volumes/Preboot/Cryptexes/OS\n",
    );
    d.bsi(["verify"]).ok();
    d.activate(&a);
    before.assert_same(&Tree::of(outside.path()));
}

#[cfg(feature = "failpoints")]
mod fault_points {
    use super::*;

    fn with_fault(d: &Device, fault: &str, args: &[&std::ffi::OsStr]) -> Run {
        let mut all = vec!["--root".as_ref(), d.root.as_os_str()];
        all.extend_from_slice(args);
        bsi_env(all, &[("FAILPOINTS", fault)])
    }

    /// Every step of the protocol, failing with an I/O error and with a full disk: a clean
    /// error (exit 1, no panic), a consistent device, no leftovers, and the old state when the
    /// fault struck before the switch.
    #[test]
    fn every_protocol_step_fails_cleanly() {
        let a = bundle("macos-26.3.1-a.bsi.tar");
        let b = bundle("macos-26.3.1-b.bsi");
        // Only the records written after the change (history, install reason) come after the
        // switch; a fault there leaves the change made and bsi says so with a warning (exit 0).
        let after_switch = ["atomic.write", "atomic.rename"];
        let steps = [
            "stage.create",
            "stage.write",
            "stage.rename",
            "atomic.syncfs",
            "atomic.write",
            "atomic.rename",
            "atomic.swap",
            "atomic.sync_dir",
            "restart.switch",
        ];
        for step in steps {
            for kind in ["enospc", "eio"] {
                let fault = format!("{step}=return({kind})");
                // apply --restart: a clean error and exactly the old state, or (after the
                // switch) the new state and a warning.
                let d = Device::new();
                d.activate(&a);
                let old = d.tree();
                let run = with_fault(
                    &d,
                    &fault,
                    &["apply".as_ref(), b.as_os_str(), "--restart".as_ref()],
                );
                let s = check_consistent(&d);
                if after_switch.contains(&step) {
                    run.ok()
                        .stderr_has("warning: apply succeeded, but recording");
                    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (b)", "{fault}");
                } else {
                    run.refused(1, "error: ");
                    if kind == "enospc" {
                        // Staging reports the space the payload needs; a record says ENOSPC.
                        let err = run.stderr();
                        assert!(
                            err.contains("No space left on device")
                                || err.contains("not enough space on the device's volume"),
                            "{fault}: {err}"
                        );
                    }
                    old.assert_same(&d.tree());
                }
                // rollback --restart and update
                for args in [
                    &["rollback".as_ref(), "--restart".as_ref()][..],
                    &[
                        "update".as_ref(),
                        "--version".as_ref(),
                        "26.4".as_ref(),
                        "--build".as_ref(),
                        "25E100".as_ref(),
                    ],
                ] {
                    let d = Device::new();
                    d.activate(&a);
                    let run = with_fault(&d, &fault, args);
                    assert!(
                        [0, 1].contains(&run.code()),
                        "{fault} {args:?}: {}",
                        run.stderr()
                    );
                    assert!(!run.stderr().contains("panicked"));
                    check_consistent(&d);
                }
            }
        }
    }
}

#[test]
fn a_missing_generation_is_damage_that_repair_fixes() {
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    let gen_dir = preboot(&d).join("cryptex1/generations/25D771280a");
    std::fs::remove_dir_all(&gen_dir).unwrap();
    d.bsi(["status"])
        .refused(8, "is missing")
        .stderr_is(
            &[(gen_dir.as_path(), "[GEN]")],
            "error: the device is damaged: [GEN]/App is missing\nhint: run `bsi repair` to bring the device back to a consistent state\n",
        );
    d.bsi(["repair"]).ok().stdout_is(
        &[(gen_dir.as_path(), "[GEN]")],
        "pointed cryptex1/current at base-25D2128 (the active generation was gone; the device runs its base): [GEN] (the active generation) is missing; the device can only run its base now\n",
    );
    let s = check_consistent(&d);
    assert_eq!(s.active, None);
    d.activate(bundle("macos-26.3.1-a.bsi"));
}
