//! CI-grade reading and a consistent command line (issue 13): readers never write, never
//! recover, need only read access and answer at once while a change is in flight; re-runs of
//! the same command are safe (exit 0); with `--json` every error is one JSON object with a
//! stable kind; every hint names a command or flag that exists.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::harness::*;

/// A `--json` error as scripts read it: every key named, nothing else allowed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonError {
    error: String,
    hint: Option<String>,
    exit_code: i32,
    kind: String,
}

#[track_caller]
fn json_error(run: &Run) -> JsonError {
    // A command that reports before it fails (`status --require`, `verify`, `inspect`) prints
    // its JSON report on stdout; anything else prints nothing there.
    if !run.stdout().is_empty() {
        run.json();
    }
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    let e: JsonError = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(e.exit_code, run.code());
    assert!(!e.error.is_empty());
    e
}

/// Makes `dir` and its parents traversable by everyone (tempfile makes 0700 directories).
fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Some(dir);
    while let Some(p) = d {
        if p == Path::new("/") || p == Path::new("/tmp") {
            break;
        }
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o755));
        d = p.parent();
    }
}

/// Every reading command, as an unprivileged user (`nobody`) with `setpriv`.
fn as_nobody(d: &Device, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .arg("--root")
        .arg(&d.root)
        .arg("--now")
        .arg(NOW)
        .args(args)
        .env_remove("BSI_ROOT")
        .output()
        .unwrap()
}

const READERS: &[&[&str]] = &[
    &["status"],
    &["status", "--json"],
    &["status", "--get", "version"],
    &["status", "--require", "26.3.1 (a)"],
    &["verify"],
    &["history"],
    &["report"],
    &["trust", "list"],
    &["policy", "list"],
    &["power"],
    &["settings"],
];

fn root_and_setpriv() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && setpriv) {
        eprintln!("skipped: needs root and setpriv (util-linux) to run readers as nobody");
    }
    root && setpriv
}

#[test]
fn readers_work_for_a_user_who_can_only_read_the_device() {
    if !root_and_setpriv() {
        return;
    }
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    open_to_all(&d.root);
    let before = Tree::of(&d.root);
    for args in READERS {
        let out = as_nobody(&d, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} as nobody: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = as_nobody(
        &d,
        &[
            "bundle",
            "inspect",
            &bundle("macos-26.3.1-a.bsi").display().to_string(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Tree::of(&d.root).assert_same(&before);
    // A changing command as nobody fails cleanly, saying why.
    let out = as_nobody(&d, &["restart"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    // Directories chmod-ed read-only (file modes are content, which verify checks): readers
    // still work, for root and for nobody.
    let dirs = |mode: &str| {
        Command::new("find")
            .arg(&d.root)
            .args(["-type", "d", "-exec", "chmod", mode, "{}", "+"])
            .status()
            .unwrap();
    };
    dirs("a-w");
    for args in READERS {
        let out = as_nobody(&d, args);
        assert_eq!(out.status.code(), Some(0), "{args:?} read-only");
        d.bsi(*args).ok();
    }
    dirs("u+w");
    Tree::of(&d.root).assert_same(&before);
}

#[test]
fn an_interrupted_operation_is_reported_by_readers_and_recovered_by_the_next_change() {
    let d = Device::new();
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(&d.root)
        .arg("apply")
        .arg(bundle("macos-26.3.1-a.bsi"))
        .env("FAILPOINTS", "stage.streaming=sleep(5000)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Readers answer at once while the change is in flight, with what it is doing.
    let start = Instant::now();
    let s = loop {
        let s = d.status();
        if s.operation.as_ref().is_some_and(|o| o.phase == "staging") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "no operation in {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(s.operation.as_ref().unwrap().command, "apply");
    assert_eq!(s.operation.as_ref().unwrap().pid, child.id());
    assert_eq!(s.active, None);
    assert_eq!(s.staged, None);
    assert_eq!(s.recovery_pending, None);
    Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    for args in READERS {
        d.bsi(*args)
            .exit(if args.contains(&"--require") { 9 } else { 0 });
    }
    assert!(t.elapsed() < Duration::from_secs(5), "readers waited");
    d.bsi(["status"]).ok().stdout_is(
        &[],
        &format!("{FRESH_STATUS}in flight:  bsi apply (pid [..]) is staging since [..]; this is the last committed state\n"),
    );
    // Killed: readers report the interruption and leave it for the next changing command.
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = d.path("private/var/db/bsi/journal.json");
    assert!(journal.exists());
    let s = d.status();
    assert_eq!(s.recovery_pending.as_ref().unwrap().command, "apply");
    assert_eq!(s.operation, None);
    d.bsi(["status"]).ok().stdout_is(
        &[],
        &format!("{FRESH_STATUS}recovery:   an interrupted apply (pid [..], started [..]) will be tidied up by the next changing command or `bsi repair`\n"),
    );
    // Leftovers waiting to be tidied are not damage: verify checks the committed content.
    d.bsi(["verify"]).ok().stdout_is(
        &[],
        "note: an interrupted apply (pid [..]) is waiting to be recovered by the next changing command or `bsi repair`: it will remove what the operation left; the committed state is checked\n\
         26.3.1: 3 files, 9042 bytes verified (the active content and the base content a removal returns to); links, records and SystemVersion.plist agree\n",
    );
    assert!(journal.exists(), "a reader recovered");
    d.bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()])
        .ok();
    assert!(!journal.exists());
    let s = d.status();
    assert_eq!(s.recovery_pending, None);
    assert_eq!(s.staged.as_ref().unwrap().version, "26.3.1 (a)");
}

#[test]
fn an_idempotent_fleet_run_exits_0_every_time() {
    let d = Device::new();
    let a = bundle("macos-26.3.1-a.bsi");
    let action = |run: &Run| run.parse::<ApplyView>().action;
    let mut actions = Vec::new();
    for _ in 0..3 {
        actions.push(action(
            d.bsi([
                "apply".as_ref(),
                a.as_os_str(),
                "--restart".as_ref(),
                "--json".as_ref(),
            ])
            .ok(),
        ));
    }
    assert_eq!(
        actions,
        ["staged-and-restarted", "already-active", "already-active"]
    );
    d.bsi(["restart"]).ok();
    d.bsi(["relaunch-safari"]).ok();
    d.bsi(["update", "--version", "26.4", "--build", "25E100"])
        .ok();
    for _ in 0..2 {
        let run = d.bsi([
            "apply".as_ref(),
            a.as_os_str(),
            "--restart".as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(action(run.ok()), "already-included");
    }
    d.bsi(["rollback"]).ok().stdout_is(
        &[],
        "nothing to remove: no response is active or staged; the device runs 26.4\n",
    );
    d.bsi(["rollback", "--json"]).ok();
    // Exit 5 stays for what can never apply here.
    d.bsi(["apply".as_ref(), bundle("ios-26.3.1-a.bsi").as_os_str()])
        .exit(5);
}

#[test]
fn every_json_error_is_one_object_with_a_stable_kind_and_a_hint_that_leads_somewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::with(&["--battery", "5", "--no-ac", "--supervised"]);
    let a = bundle("macos-26.3.1-a.bsi");
    let none = tmp.path().join("none");
    let decl = tmp.path().join("no-rsr.json");
    std::fs::write(&decl, r#"{"Type":"com.apple.configuration.softwareupdate.settings","Identifier":"no-rsr","ServerToken":"1","Payload":{"RapidSecurityResponse":{"Enable":false}}}"#).unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["apply".into(), "--bogus".into()], "usage"),
        (
            vec![
                "update".into(),
                "--version".into(),
                "26..4".into(),
                "--build".into(),
                "25E100".into(),
            ],
            "usage",
        ),
        (vec!["apply".into(), a.clone().into()], "power"),
        (
            vec!["apply".into(), bundle("ios-26.3.1-a.bsi").into()],
            "not-applicable",
        ),
        (
            vec!["apply".into(), fixtures().join("bad/unsigned.bsi").into()],
            "bundle-rejected",
        ),
        (
            vec!["status".into(), "--require".into(), "26.3.1 (a)".into()],
            "require-not-met",
        ),
        (
            vec!["status".into(), "--get".into(), "nope".into()],
            "usage",
        ),
    ];
    let mut seen = Vec::new();
    let e = json_error(&bsi([
        "--json".as_ref(),
        "--root".as_ref(),
        none.as_os_str(),
        "status".as_ref(),
    ]));
    assert_eq!((e.kind.as_str(), e.exit_code), ("no-device", 8));
    hint_leads_somewhere(e.hint.as_deref().unwrap());
    seen.push(e.kind);
    for (args, kind) in cases {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into()];
        all.extend(args);
        let run = d.bsi(&all);
        let e = json_error(&run);
        assert_eq!(e.kind, kind, "{all:?}: {}", run.stderr());
        if let Some(hint) = &e.hint {
            hint_leads_somewhere(hint);
        }
        seen.push(e.kind);
    }
    // Policy, busy and damaged.
    d.bsi(["power", "--ac"]).ok();
    d.bsi(["policy".as_ref(), "set".as_ref(), decl.as_os_str()])
        .ok();
    d.declare(
        "com.apple.activation.simple",
        "act",
        serde_json::json!({"StandardConfigurations": ["no-rsr"]}),
    )
    .ok();
    let e = json_error(&d.bsi(["--json".as_ref(), "apply".as_ref(), a.as_os_str()]));
    assert_eq!((e.kind.as_str(), e.exit_code), ("policy", 4));
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.path("private/var/db/bsi/lock"))
        .unwrap();
    lock.lock().unwrap();
    let e = json_error(&d.bsi(["--json", "--wait", "0", "restart"]));
    assert_eq!((e.kind.as_str(), e.exit_code), ("busy", 7));
    hint_leads_somewhere(e.hint.as_deref().unwrap());
    lock.unlock().unwrap();
    std::fs::write(d.path("private/var/db/bsi/power.json"), b"{").unwrap();
    let e = json_error(&d.bsi(["--json", "power"]));
    assert_eq!((e.kind.as_str(), e.exit_code), ("damaged", 8));
    hint_leads_somewhere(e.hint.as_deref().unwrap());
    let e = json_error(&d.bsi(["--json", "verify"]));
    assert_eq!(e.kind, "damaged");
    // The schema in docs/ is the one the code writes.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/error.schema.json")).unwrap(),
    )
    .unwrap();
    let kinds: Vec<&str> = schema["$defs"]["ErrorKind"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["const"].as_str().unwrap())
        .collect();
    for k in &seen {
        assert!(
            kinds.contains(&k.as_str()),
            "{k} not in docs/error.schema.json"
        );
    }
}

/// Every `bsi ...` command in backticks in `hint` names a subcommand that exists, and every
/// `--flag` in it is one that subcommand takes.
#[track_caller]
fn hint_leads_somewhere(hint: &str) {
    let mut rest = hint;
    while let Some(start) = rest.find("`bsi ") {
        let after = &rest[start + 1..];
        let end = after.find('`').unwrap();
        let words: Vec<&str> = after[..end].split_whitespace().collect();
        rest = &after[end + 1..];
        let mut path = Vec::new();
        for w in &words[1..] {
            if w.starts_with('-')
                || w.contains('/')
                || w.contains('.')
                || w.chars().any(char::is_uppercase)
            {
                break;
            }
            path.push(*w);
        }
        let mut help_args: Vec<&str> = path.clone();
        if path.first() != Some(&"help") {
            help_args.push("--help");
        }
        let help = bsi(&help_args);
        assert_eq!(
            help.code(),
            0,
            "hint names `bsi {}`, which is no command: {hint}",
            path.join(" ")
        );
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.stdout().contains(flag),
                "hint names {flag}, which `bsi {}` does not take: {hint}",
                path.join(" ")
            );
        }
    }
}

#[test]
fn an_argument_error_with_json_is_json_too() {
    let run = bsi(["--json", "apply"]);
    let e = json_error(&run);
    assert_eq!((e.kind.as_str(), e.exit_code), ("usage", 2));
}

#[test]
fn quiet_silences_stdout_and_get_prints_one_value() {
    let d = Device::new();
    let run = d.bsi(["-q", "status", "--require", "26.3.1 (a)"]);
    run.exit(9);
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    assert!(
        run.stderr().contains("apply 26.3.1 (a)"),
        "{}",
        run.stderr()
    );
    for args in [&["-q", "status"][..], &["-q", "history"], &["-q", "power"]] {
        assert!(d.bsi(args).ok().stdout().is_empty());
    }
    d.activate(bundle("macos-26.3.1-a.bsi"));
    let get = |key: &str| d.bsi(["status", "--get", key]).ok().stdout();
    assert_eq!(get("version"), "26.3.1 (a)\n");
    assert_eq!(get("active.build"), "25D771280a\n");
    assert_eq!(
        get("ddm.device.operating-system.supplemental.extra-version"),
        "(a)\n"
    );
    assert_eq!(get("staged"), "\n");
    // A key of the schema under a null object is null, not unknown: nothing staged, not
    // enrolled (a CI script asks the same question of every device).
    assert_eq!(get("staged.version"), "\n");
    assert_eq!(get("mdm.udid"), "\n");
    assert_eq!(get("restart_required"), "false\n");
    // The hint lists every key, the same whatever was asked.
    let keys = d
        .bsi(["status", "--get", "mdm.nonsense"])
        .refused(2, "`mdm.nonsense` is not a key")
        .stderr();
    let hint = keys.lines().nth(1).unwrap();
    assert!(
        hint.starts_with("hint: valid keys: active, active.build, ")
            && hint.contains(", mdm.udid, "),
        "{hint}"
    );
    assert_eq!(
        keys,
        format!("error: `mdm.nonsense` is not a key of `bsi status --json`\n{hint}\n")
    );
    d.bsi(["status", "--get", "nope"])
        .refused(2, "`nope` is not a key")
        .stderr_is(
            &[],
            &format!("error: `nope` is not a key of `bsi status --json`\n{hint}\n"),
        );
    assert_eq!(d.status().version, "26.3.1 (a)");
    // --require hints say what it takes.
    d.bsi(["status", "--require", "26.4"])
        .exit(9)
        .stderr_is(&[], "error: requirement not met: 26.4 is required, the device runs 26.3.1 (a)\nhint: the device needs the OS update to 26.4 first (`bsi update --version 26.4 --build BUILD`), then any response it needs\n");
    // A later major version meets an earlier line's response (issue 25 item 6).
    d.bsi(["status", "--require", "25.0 (a)"]).ok();
    d.bsi(["status", "--require", "26.3.1 (b)"])
        .exit(9)
        .stderr_is(&[], "error: requirement not met: 26.3.1 (b) is required, the device runs 26.3.1 (a)\nhint: apply 26.3.1 (b) or a later response of its line (`bsi apply BUNDLE --restart`)\n");
}

#[test]
fn messages_lead_somewhere() {
    let tmp = tempfile::tempdir().unwrap();
    // key generate makes the parent directories, as bundle create does.
    bsi([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        tmp.path().join("keys/admin.key").as_os_str(),
    ])
    .ok();
    // A missing input tree is a usage error naming the path.
    bsi([
        "bundle".as_ref(),
        "create".as_ref(),
        "--product".as_ref(),
        "macOS".as_ref(),
        "--version".as_ref(),
        "26.3.1".as_ref(),
        "--prerequisite".as_ref(),
        "25D2128".as_ref(),
        "--extra".as_ref(),
        "(a)".as_ref(),
        "--build".as_ref(),
        "25D771280a".as_ref(),
        "--os".as_ref(),
        tmp.path().join("payload/nope").as_os_str(),
        "--out".as_ref(),
        tmp.path().join("x.bsi").as_os_str(),
    ])
    .exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: --os [TMP]/payload/nope: no such directory\nhint: --os takes the directory holding the OS cryptex tree\n");
    // --root on a regular file does not hint `bsi init` on that file.
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let run = bsi(["--root".as_ref(), file.as_os_str(), "status".as_ref()]);
    run.exit(8).stderr_is(&[(tmp.path(), "[TMP]")], "error: no bsi device at [TMP]/afile\nhint: [TMP]/afile is a regular file; --root (or BSI_ROOT) names a directory: make a device in an empty or new one with `bsi init --root DIR`\n");
    assert!(
        run.stderr().contains("is a regular file"),
        "{}",
        run.stderr()
    );
    // Nor on a directory that is not empty, nor on a character device (issue 25 item 8).
    for root in ["/proc", "/dev/null"] {
        let run = bsi(["--root", root, "status"]);
        run.refused(8, "no bsi device");
        assert!(
            !run.stderr().contains(&format!("bsi init --root {root}`")),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains("bsi init --root DIR"),
            "{}",
            run.stderr()
        );
    }
    bsi(["init", "--root", "/dev/null"])
        .exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: /dev/null is a character device, not a directory; --root names the directory that holds the device\nhint: pick an empty or new directory: `bsi init --root DIR`\n")
        .stderr_is(&[], "error: /dev/null is a character device, not a directory; --root names the directory that holds the device\nhint: pick an empty or new directory: `bsi init --root DIR`\n");
    bsi(["init".as_ref(), "--root".as_ref(), file.as_os_str()])
        .exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: [TMP]/afile is a regular file, not a directory; --root names the directory that holds the device\nhint: pick an empty or new directory: `bsi init --root DIR`\n");
    // key generate onto a directory names a file path to give instead.
    bsi([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        tmp.path().as_os_str(),
        "--force".as_ref(),
    ])
    .exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: [TMP] is a directory; --out names the private key file to write\nhint: give a file path, e.g. `bsi key generate --out [TMP]/signing.key`\n");
    // An empty BSI_ROOT is unset; an empty --root is a usage error naming --root.
    let home = tmp.path().join("home");
    let run = bsi_env(
        ["status"],
        &[
            ("BSI_ROOT", ""),
            ("HOME", home.to_str().unwrap()),
            ("XDG_DATA_HOME", ""),
        ],
    );
    run.exit(8).stderr_is(&[(tmp.path(), "[TMP]")], "error: no bsi device at [TMP]/home/.local/share/bsi/device\nhint: create one with `bsi init --root [TMP]/home/.local/share/bsi/device`\n");
    assert!(
        run.stderr().contains(".local/share/bsi/device"),
        "{}",
        run.stderr()
    );
    bsi(["status", "--root", ""]).exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: --root is empty: it names the directory that holds the device\nhint: give a directory, e.g. --root /tmp/mac, or leave --root out for the default device\n");
    // A date that is no day.
    bsi([
        "bundle".as_ref(),
        "create".as_ref(),
        "--product".as_ref(),
        "macOS".as_ref(),
        "--version".as_ref(),
        "26.3.1".as_ref(),
        "--prerequisite".as_ref(),
        "25D2128".as_ref(),
        "--extra".as_ref(),
        "(a)".as_ref(),
        "--build".as_ref(),
        "25D771280a".as_ref(),
        "--os".as_ref(),
        tmp.path().as_os_str(),
        "--posting-date".as_ref(),
        "2026-02-30".as_ref(),
        "--out".as_ref(),
        tmp.path().join("y.bsi").as_os_str(),
    ])
    .exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: --posting-date 2026-02-30 is not a date\nhint: give the day the response is posted as YYYY-MM-DD, a real day: e.g. --posting-date 2026-03-17\n");
    // Version formats are described where the hint says.
    let run = bsi(["update", "--version", "26.x", "--build", "25E100"]);
    run.exit(2).stderr_is(&[(tmp.path(), "[TMP]")], "error: invalid OS version `26.x`: the minor number `x` is not a decimal number (expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 26.3.1)\nhint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n");
    assert!(bsi(["--help"]).ok().stdout().contains("Versions:"));
    // init says "an iOS device"; history --limit 0 prints nothing.
    let root = tmp.path().join("phone");
    bsi([
        "init".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--platform".as_ref(),
        "iOS".as_ref(),
    ])
    .ok()
    .stdout_is(
        &[(root.as_path(), "[ROOT]")],
        "made an iOS 26.3.1 (23D8133) device at [ROOT]\n",
    );
    let run = bsi([
        "--root".as_ref(),
        root.as_os_str(),
        "history".as_ref(),
        "--limit".as_ref(),
        "0".as_ref(),
    ]);
    assert!(run.ok().stdout().is_empty());
    // auto --dry-run says what it would do.
    let d = Device::new();
    d.bsi([
        "auto".as_ref(),
        "--from".as_ref(),
        fixtures().join("bundles").as_os_str(),
        "--dry-run".as_ref(),
    ])
    .ok()
    .stdout_is(&[], "automatic install is on; would install 26.3.1 (d)\nwould activate 26.3.1 (d) at once (App content only; Safari uses it once relaunched)\n26.4 (a) waits for the minor update to 26.4\n26.4 (a) waits for the minor update to 26.4\n");
}

/// `bsi status` of a fresh default device (`Device::new`), up to its last line.
const FRESH_STATUS: &str = "ProductName:\t\tmacOS
ProductVersion:\t\t26.3.1
BuildVersion:\t\t25D2128

device:     Mac laptop (apple-silicon), enrollment TEST-DEVICE
deployments:
* active    base OS 26.3.1 (25D2128), no response
  rollback  nothing to remove (not now: no response is active or staged)

restart:    not needed
safari:     26.3.1
power:      battery 100 %, on power; gate passes (a Mac laptop with Apple silicon needs power or at least 10 % battery)
automatic:  on (user's setting)
last:       init ok at 2026-12-01T10:00:00Z
";
