//! Hostile input cannot hurt (issue 15): every input an attacker controls, replayed against the
//! real binary with its cost measured (wall time and the child's peak RSS from `wait4`). Each
//! must be refused with its exit code, in under 2 s and 64 MiB, with no journal left behind and
//! the device's records still readable. One regression test per finding, named after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// What one measured run cost.
pub(crate) struct Cost {
    pub code: i32,
    pub stderr: String,
    pub wall: Duration,
    pub rss_kib: i64,
}

/// Forks and execs its arguments, then prints the child's exit code and peak RSS. The peak is
/// measured in a small process of its own: a child forked from this large test process would
/// count the parent's pages it shared until exec.
const MEASURE: &str = r"
import os, sys, time, signal
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.execv(sys.argv[1], sys.argv[1:])
deadline = time.monotonic() + 20
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.005)
code = os.waitstatus_to_exitcode(status)
print(code, usage.ru_maxrss)
";

/// Runs bsi with `args` on `device` and measures it (a run still going after 20 s is killed:
/// exit -9).
pub(crate) fn measured(device: &Device, args: &[&std::ffi::OsStr]) -> Cost {
    let start = Instant::now();
    let out = Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .arg(bin())
        .arg("--root")
        .arg(&device.root)
        .arg("--now")
        .arg(NOW)
        .args(args)
        .env_remove("BSI_ROOT")
        .output()
        .expect("python3 measures the child's peak RSS");
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut words = stdout.split_whitespace();
    let code = words.next().and_then(|w| w.parse().ok()).unwrap_or(-1);
    let rss_kib = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(i64::MAX);
    Cost {
        code,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall,
        rss_kib,
    }
}

/// Refused with `code` and `needle`, cheaply, without a journal, leaving the device readable.
#[track_caller]
pub(crate) fn cheaply_refused(device: &Device, args: &[&std::ffi::OsStr], code: i32, needle: &str) {
    let cost = measured(device, args);
    eprintln!(
        "{:?}: exit {}, {:.0} ms, {} KiB",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        cost.code,
        cost.wall.as_secs_f64() * 1000.0,
        cost.rss_kib
    );
    assert_eq!(cost.code, code, "{args:?}: {}", cost.stderr);
    assert!(cost.stderr.contains(needle), "{args:?}: {}", cost.stderr);
    assert!(cost.stderr.starts_with("error: "), "{}", cost.stderr);
    assert!(
        !cost.stderr.contains('\u{1b}'),
        "a raw escape reached stderr"
    );
    assert!(
        cost.stderr.len() < 8192,
        "stderr of {} bytes",
        cost.stderr.len()
    );
    assert!(
        cost.wall < Duration::from_secs(2),
        "{args:?} took {:?}",
        cost.wall
    );
    assert!(
        cost.rss_kib < 64 * 1024,
        "{args:?} peaked at {} KiB",
        cost.rss_kib
    );
    assert!(
        !device.path("private/var/db/bsi/journal.json").exists(),
        "a refused command left a journal"
    );
    let history = std::fs::read_to_string(device.path("private/var/db/bsi/history.jsonl"))
        .unwrap_or_default();
    assert!(
        history.lines().all(|l| l.len() < 8192),
        "a history line of {} bytes",
        history.lines().map(str::len).max().unwrap_or(0)
    );
    for read in [
        &["status"][..],
        &["status", "--json"],
        &["report"],
        &["history"],
    ] {
        device.bsi(read).ok();
    }
    let last = device
        .status()
        .last_operation
        .as_ref()
        .unwrap()
        .result
        .clone();
    assert_ne!(
        last, "interrupted",
        "a refusal was recorded as an interruption"
    );
}

pub(crate) fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// A binary plist whose arrays reference each other as a DAG: `levels` levels, each array
/// pointing twice at the next, so a naive reader expands 2^levels nodes from ~160 bytes.
pub(crate) fn dag_bplist(levels: u8) -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for i in 0..levels {
        offsets.push(out.len());
        out.extend_from_slice(&[0xA2, i + 1, i + 1]);
    }
    offsets.push(out.len());
    out.push(0x50); // an empty ASCII string ends the chain
    let table = out.len();
    for o in &offsets {
        out.push(u8::try_from(*o).unwrap());
    }
    out.extend_from_slice(&[0; 6]);
    out.push(1); // offset size
    out.push(1); // object reference size
    out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(table as u64).to_be_bytes());
    out
}

/// A copy of the fixture bundle (a) with `manifest` as its Info.plist, signed with the test key
/// when `signed` (so a check behind the signature is reached), else unsigned.
fn with_manifest(dir: &Path, name: &str, manifest: &[u8], signed: bool) -> PathBuf {
    let b = dir.join(name);
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
    std::fs::write(b.join("Info.plist"), manifest).unwrap();
    let sig = b.join("Info.plist.sig");
    if signed {
        use ed25519_dalek::Signer;
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(test_key()).unwrap();
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
        std::fs::write(&sig, key.sign(manifest).to_bytes()).unwrap();
    } else {
        std::fs::remove_file(&sig).unwrap();
    }
    b
}

/// A raw tar: (name, type, data) entries, then the end marker.
fn raw_tar(path: &Path, entries: &[(&[u8], tar::EntryType, &[u8])]) {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        let n = name.len().min(100);
        h.as_mut_bytes()[..n].copy_from_slice(&name[..n]);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn finding1_a_dag_binary_plist_costs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    let dag = dag_bplist(30);
    assert!(dag.len() < 200);
    for signed in [false, true] {
        let b = with_manifest(tmp.path(), &format!("dag-{signed}.bsi"), &dag, signed);
        let needle = if signed { "a binary plist" } else { "unsigned" };
        cheaply_refused(&d, &[os("apply"), b.as_os_str()], 6, needle);
        cheaply_refused(
            &d,
            &[os("bundle"), os("inspect"), b.as_os_str()],
            6,
            if signed {
                "a binary plist"
            } else {
                "Info.plist"
            },
        );
        let tar = tmp.path().join(format!("dag-{signed}.bsi.tar"));
        let mut entries: Vec<(&[u8], tar::EntryType, &[u8])> =
            vec![(b"Info.plist", tar::EntryType::Regular, &dag)];
        let sig = std::fs::read(b.join("Info.plist.sig")).unwrap_or_default();
        if signed {
            entries.push((b"Info.plist.sig", tar::EntryType::Regular, &sig));
        }
        raw_tar(&tar, &entries);
        cheaply_refused(&d, &[os("apply"), tar.as_os_str()], 6, needle);
    }
    // In a directory `auto` scans: skipped and named, and the pass goes on.
    let from = tmp.path().join("from");
    std::fs::create_dir(&from).unwrap();
    with_manifest(&from, "dag.bsi", &dag, true);
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &from.join("a.bsi"));
    let cost = measured(&d, &[os("auto"), os("--from"), from.as_os_str()]);
    assert_eq!(cost.code, 0, "{}", cost.stderr);
    assert!(cost.wall < Duration::from_secs(2) && cost.rss_kib < 64 * 1024);
    let s = d.status();
    assert!(
        s.active_version() == Some("26.3.1 (a)") || s.staged_version() == Some("26.3.1 (a)"),
        "{s:?}"
    );
}

#[test]
fn finding2_a_deeply_nested_manifest_neither_overflows_nor_leaves_a_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    let depth = 140_000;
    let mut xml = String::from("<?xml version=\"1.0\"?><plist version=\"1.0\">");
    xml.push_str(&"<array>".repeat(depth));
    xml.push_str(&"</array>".repeat(depth));
    xml.push_str("</plist>");
    for signed in [false, true] {
        let b = with_manifest(
            tmp.path(),
            &format!("deep-{signed}.bsi"),
            xml.as_bytes(),
            signed,
        );
        let needle = if signed { "nested deeper" } else { "unsigned" };
        cheaply_refused(&d, &[os("apply"), b.as_os_str()], 6, needle);
        let tar = tmp.path().join(format!("deep-{signed}.bsi.tar"));
        let sig = std::fs::read(b.join("Info.plist.sig")).unwrap_or_default();
        let mut entries: Vec<(&[u8], tar::EntryType, &[u8])> =
            vec![(b"Info.plist", tar::EntryType::Regular, xml.as_bytes())];
        if signed {
            entries.push((b"Info.plist.sig", tar::EntryType::Regular, &sig));
        }
        raw_tar(&tar, &entries);
        cheaply_refused(&d, &[os("apply"), tar.as_os_str()], 6, needle);
        cheaply_refused(
            &d,
            &[os("bundle"), os("inspect"), tar.as_os_str()],
            6,
            "nested deeper",
        );
    }
}

#[test]
fn finding3_unsigned_text_is_cut_and_escaped_in_messages_and_records() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    // A GNU long name of 20 MB of NULs as the first entry.
    let long = vec![0u8; 20 << 20];
    let t = tmp.path().join("longname.bsi.tar");
    raw_tar(
        &t,
        &[(b"././@LongLink", tar::EntryType::GNULongName, &long)],
    );
    cheaply_refused(&d, &[os("apply"), t.as_os_str()], 6, "the first entry is");
    // The same behind a valid, signed head: the long name is refused by its size.
    let a = bundle("macos-26.3.1-a.bsi");
    let manifest = std::fs::read(a.join("Info.plist")).unwrap();
    let sig = std::fs::read(a.join("Info.plist.sig")).unwrap();
    let t = tmp.path().join("longname-signed.bsi.tar");
    raw_tar(
        &t,
        &[
            (b"Info.plist", tar::EntryType::Regular, &manifest),
            (b"Info.plist.sig", tar::EntryType::Regular, &sig),
            (b"././@LongLink", tar::EntryType::GNULongName, &long),
        ],
    );
    cheaply_refused(&d, &[os("apply"), t.as_os_str()], 6, "a GNU long name");
    // Escape sequences in a name never reach the terminal raw.
    let t = tmp.path().join("escape.bsi.tar");
    raw_tar(
        &t,
        &[
            (b"Info.plist", tar::EntryType::Regular, &manifest),
            (b"Info.plist.sig", tar::EntryType::Regular, &sig),
            (b"OS/\x1b[31mred\x1b[0m", tar::EntryType::Regular, b"x"),
        ],
    );
    cheaply_refused(&d, &[os("apply"), t.as_os_str()], 6, "\\u{1b}[31mred");
}

#[test]
fn finding4_a_fifo_or_a_device_file_never_blocks_or_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    let fifo = tmp.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let zero = Path::new("/dev/zero");
    cheaply_refused(&d, &[os("apply"), fifo.as_os_str()], 6, "is a FIFO");
    cheaply_refused(&d, &[os("apply"), zero.as_os_str()], 6, "character device");
    for (args, what) in [
        (vec![os("policy"), os("set")], "declaration"),
        (vec![os("trust"), os("add")], "public key"),
        (vec![os("lookup"), os("--catalog")], "catalog"),
        (
            vec![
                os("bundle"),
                os("inspect"),
                bundle("macos-26.3.1-a.bsi").into_os_string().leak(),
                os("--key"),
            ],
            "public key",
        ),
    ] {
        for input in [fifo.as_os_str(), zero.as_os_str()] {
            let mut a = args.clone();
            a.push(input);
            cheaply_refused(&d, &a, 2, "is not a regular file");
        }
        let _ = what;
    }
    let from = tmp.path().join("from");
    std::fs::create_dir(&from).unwrap();
    cheaply_refused(
        &d,
        &[
            os("auto"),
            os("--from"),
            from.as_os_str(),
            os("--catalog"),
            fifo.as_os_str(),
        ],
        2,
        "is not a regular file",
    );
}

#[test]
fn finding6_a_symlinked_directory_inside_a_bundle_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("lib")).unwrap();
    std::fs::write(outside.join("lib/libwebrtc.dylib"), vec![b's'; 3000]).unwrap();
    let b = tmp.path().join("swapped.bsi");
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
    std::fs::remove_dir_all(b.join("OS/usr")).unwrap();
    std::os::unix::fs::symlink(&outside, b.join("OS/usr")).unwrap();
    let d = Device::new();
    d.refuses(["apply".as_ref(), b.as_os_str()], 6, "is a symlink")
        .stderr_is(&[], "error: OS/usr is a symlink; bundles may hold only regular files and directories\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
}

#[test]
fn finding7_concurrent_inits_leave_exactly_one_device() {
    for round in 0..8 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("device");
        let spawn = |force: bool| {
            let mut c = Command::new(bin());
            c.arg("init")
                .arg("--root")
                .arg(&root)
                .arg("--trust")
                .arg(test_pub())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if force {
                c.arg("--force");
            }
            c.spawn().unwrap()
        };
        let children = [spawn(round % 2 == 0), spawn(false), spawn(round % 2 == 1)];
        let codes: Vec<i32> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
            .collect();
        assert!(codes.iter().all(|c| [0, 2, 7].contains(c)), "{codes:?}");
        assert!(codes.contains(&0), "{codes:?}");
        bsi(["--root".as_ref(), root.as_os_str(), "verify".as_ref()]).ok();
    }
}

#[test]
fn finding8_trust_remove_forgets_the_key_under_every_name() {
    let d = Device::new();
    let trust = d.path("private/var/db/bsi/trust");
    let original = std::fs::read_dir(&trust)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&original, trust.join("also-the-test-key.pub")).unwrap();
    let list = d.bsi(["trust", "list"]).ok().stdout();
    assert!(list.contains("also-the-test-key.pub"), "{list}");
    d.bsi(["trust".as_ref(), "remove".as_ref(), test_pub().as_os_str()])
        .ok()
        .stdout_is(
            &[],
            &format!("key {TEST_KEY_FINGERPRINT}: no longer trusted\n  removed the 2 files that held it: private/var/db/bsi/trust/also-the-test-key.pub, private/var/db/bsi/trust/{TEST_KEY_FINGERPRINT}.pub\n"),
        );
    assert_eq!(std::fs::read_dir(&trust).unwrap().count(), 0);
    d.bsi(["trust", "list"]).ok().stdout_is(
        &[],
        "the device trusts no keys (add one with `bsi trust add KEY.pub`)\n",
    );
    d.refuses(
        ["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()],
        6,
        "trusts no keys",
    ).stderr_is(&[], "error: Info.plist.sig: no key to check the signature against: the device trusts no keys\nhint: if you trust the signer, add its public key (`bsi trust add KEY.pub`); otherwise get the bundle from a publisher this device trusts\n");
}

#[test]
fn finding9_an_oversized_declaration_is_refused_before_it_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    let big = tmp.path().join("big.json");
    let filler = "x".repeat(17 << 20);
    std::fs::write(
        &big,
        format!(r#"{{"Type":"com.apple.configuration.softwareupdate.settings","Identifier":"big","ServerToken":"1","Payload":{{"Notifications":true}},"Filler":"{filler}"}}"#),
    )
    .unwrap();
    let before = d.tree();
    cheaply_refused(
        &d,
        &[os("policy"), os("set"), big.as_os_str()],
        2,
        "over the 1048576-byte limit",
    );
    before.assert_same(&d.tree());
    d.bsi(["policy", "list"]).ok();
    d.bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()])
        .ok();
}

#[test]
fn finding10_clean_up_after_the_switch_is_best_effort_and_repair_finishes_it() {
    let d = Device::new();
    // A planted 2,000-deep directory under generations/, and a low open-file limit.
    let gens = std::fs::read_dir(d.path("System/Volumes/Preboot"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "Cryptexes")
        .unwrap()
        .path()
        .join("cryptex1/generations");
    let mut dir = cap_std::fs::Dir::open_ambient_dir(&gens, cap_std::ambient_authority()).unwrap();
    dir.create_dir("planted").unwrap();
    dir = dir.open_dir("planted").unwrap();
    for i in 0..2000 {
        let name = format!("d{i}");
        dir.create_dir(&name).unwrap();
        dir = dir.open_dir(&name).unwrap();
    }
    drop(dir);
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 40 && exec "$@""#)
        .arg("sh")
        .arg(bin())
        .arg("--root")
        .arg(&d.root)
        .arg("--now")
        .arg(NOW)
        .arg("apply")
        .arg(bundle("macos-26.3.1-a.bsi"))
        .arg("--restart")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (a)");
    assert_eq!(s.last_operation.as_ref().unwrap().result, "ok");
    d.bsi(["repair"]).ok();
    assert!(!gens.join("planted").exists());
    d.bsi(["verify"]).ok();
}

/// The races: a command paused at a fault point while the test changes the world under it.
#[cfg(feature = "failpoints")]
mod races {
    use super::*;

    /// Starts bsi paused at `point` for `ms`, runs `meanwhile`, then waits for it.
    fn paused(
        d: &Device,
        point: &str,
        ms: u32,
        args: &[&std::ffi::OsStr],
        meanwhile: impl FnOnce(),
    ) -> std::process::Output {
        let child = Command::new(bin())
            .arg("--root")
            .arg(&d.root)
            .arg("--now")
            .arg(NOW)
            .args(args)
            .env("FAILPOINTS", format!("{point}=sleep({ms})"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(u64::from(ms) / 3));
        meanwhile();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn finding5_auto_installs_the_bundle_it_checked_not_what_the_path_later_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Device::new();
        let from = tmp.path().join("from");
        std::fs::create_dir(&from).unwrap();
        let x = from.join("x.bsi.tar");
        std::fs::copy(bundle("macos-26.3.1-b.bsi.tar"), &x).unwrap();
        let swap = tmp.path().join("c.bsi.tar");
        std::fs::copy(bundle("macos-26.3.1-c.bsi.tar"), &swap).unwrap();
        let catalog = tmp.path().join("catalog.json");
        std::fs::write(
            &catalog,
            r#"{"PublicBackgroundSecurityImprovements": {"macOS": [{"ProductVersion": "26.3.1", "ProductVersionExtra": "(b)", "Build": "25D771280b", "PrerequisiteBuild": "25D2128", "PostingDate": "2026-04-02", "ExpirationDate": "2027-12-31"}]}}"#,
        )
        .unwrap();
        let out = paused(
            &d,
            "auto.scanned",
            1500,
            &[
                os("auto"),
                os("--from"),
                from.as_os_str(),
                os("--catalog"),
                catalog.as_os_str(),
            ],
            || std::fs::rename(&swap, &x).unwrap(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = d.status();
        let installed = s.active_version().or(s.staged_version());
        assert_eq!(installed, Some("26.3.1 (b)"), "{s:?}");
    }

    #[test]
    fn finding6_a_directory_swapped_for_a_symlink_after_the_checks_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path().join("race.bsi");
        crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
        let outside = tmp.path().join("outside");
        crate::fixtures::copy_for_test(&b.join("OS/usr"), &outside);
        std::fs::write(outside.join("lib/libwebrtc.dylib"), vec![b's'; 3000]).unwrap();
        let d = Device::new();
        let before = d.tree();
        let out = paused(
            &d,
            "apply.checked",
            1500,
            &[os("apply"), b.as_os_str()],
            || {
                std::fs::remove_dir_all(b.join("OS/usr")).unwrap();
                std::os::unix::fs::symlink(&outside, b.join("OS/usr")).unwrap();
            },
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{stderr}");
        assert!(stderr.contains("is a symlink"), "{stderr}");
        assert!(!stderr.contains("SHA-256"), "{stderr}");
        before.assert_same(&d.tree());
    }
}

/// SIGINT and SIGTERM during long work: the command cleans up, says in one line what state things
/// are in, exits 130 or 143, and records the interruption.
#[cfg(feature = "failpoints")]
mod signals {
    use super::*;

    /// Runs bsi with `args` paused at `point`, sends `signal` meanwhile, and returns its output.
    fn signalled(args: &[&std::ffi::OsStr], point: &str, signal: &str) -> std::process::Output {
        let child = Command::new(bin())
            .args(args)
            .env("FAILPOINTS", format!("{point}=sleep(800)"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
        child.wait_with_output().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains("tmp") {
                    out.push(e.path().display().to_string());
                }
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out
    }

    #[test]
    fn an_interrupted_apply_cleans_up_and_says_so() {
        let d = Device::new();
        let before = d.tree();
        let out = signalled(
            &[
                os("--root"),
                d.root.as_os_str(),
                os("--now"),
                os(NOW),
                os("apply"),
                bundle("macos-26.3.1-a.bsi").as_os_str(),
            ],
            "apply.checked",
            "INT",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.starts_with(
                "error: interrupted by SIGINT: nothing was applied; the device is as it was\n"
            ),
            "{stderr}"
        );
        before.assert_same(&d.tree());
        assert!(leftovers(&d.root).is_empty(), "{:?}", leftovers(&d.root));
        assert_eq!(
            d.status().last_operation.as_ref().unwrap().result,
            "interrupted"
        );
        d.bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()])
            .ok();
    }

    #[test]
    fn interrupted_create_and_pack_leave_no_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("os");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("f"), b"payload").unwrap();
        let out_dir = tmp.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let created = out_dir.join("x.bsi");
        let out = signalled(
            &[
                os("bundle"),
                os("create"),
                os("--product"),
                os("macOS"),
                os("--version"),
                os("26.3.1"),
                os("--prerequisite"),
                os("25D2128"),
                os("--extra"),
                os("(a)"),
                os("--build"),
                os("25D771280a"),
                os("--os"),
                tree.as_os_str(),
                os("--out"),
                created.as_os_str(),
            ],
            "create.copying",
            "TERM",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "{stderr}");
        assert!(
            stderr.contains("interrupted by SIGTERM: no bundle was written"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
        let tar = out_dir.join("a.bsi.tar");
        let out = signalled(
            &[
                os("bundle"),
                os("pack"),
                bundle("macos-26.3.1-a.bsi").as_os_str(),
                os("--out"),
                tar.as_os_str(),
            ],
            "pack.copying",
            "INT",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("interrupted by SIGINT: no tar was written"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    }
}
