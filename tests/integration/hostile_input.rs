//! Hostile input, round two (issue 23): one regression test per item, named after it, each
//! replayed against the real binary with its cost measured from outside (wall time and peak
//! RSS, as `hostile` measures them): every answer within 2 s and 64 MiB, with its exit code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::hostile::{dag_bplist, measured, os};
use crate::truth::{generations, layered};

/// Runs `args` and checks its exit code and cost; returns stderr.
#[track_caller]
fn cheaply(device: &Device, args: &[&std::ffi::OsStr], code: i32) -> String {
    let cost = measured(device, args);
    eprintln!(
        "{:?}: exit {}, {:.0} ms, {} KiB",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        cost.code,
        cost.wall.as_secs_f64() * 1000.0,
        cost.rss_kib
    );
    assert_eq!(cost.code, code, "{args:?}: {}", cost.stderr);
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
    assert!(!cost.stderr.contains("panicked"), "{}", cost.stderr);
    assert!(
        !cost.stderr.contains('\u{1b}'),
        "a raw escape reached stderr"
    );
    cost.stderr
}

/// Where in a device a file is.
type Place = fn(&Device) -> PathBuf;

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn item1_a_binary_plist_bomb_as_any_system_version_is_damage_repair_restores() {
    let bomb = dag_bplist(30);
    assert!(bomb.len() < 200);
    let places: [(&str, Place); 3] = [
        ("the base SystemVersion.plist", |d| {
            d.path("System/Library/CoreServices/SystemVersion.plist")
        }),
        ("the base generation's copy", |d| {
            generations(d).join("base-25D2128/SystemVersion.plist")
        }),
        ("the active response's", |d| {
            generations(d).join("25D771280d/SystemVersion.plist")
        }),
    ];
    for (what, place) in places {
        let d = layered();
        let f = place(&d);
        std::fs::write(&f, &bomb).unwrap();
        // `power` reads no SystemVersion.plist; it may answer.
        let power = measured(&d, &[os("power")]);
        assert!([0, 8].contains(&power.code) && power.wall < Duration::from_secs(2));
        // Readers that read it call it damage; `verify` always finds it.
        for args in [&["status"][..], &["report"]] {
            let args: Vec<_> = args.iter().map(|a| os(a)).collect();
            let cost = measured(&d, &args);
            assert!(cost.wall < Duration::from_secs(2) && cost.rss_kib < 64 * 1024);
            assert!(cost.code == 0 || cost.code == 8, "{what}: {}", cost.stderr);
            if cost.code == 8 {
                assert!(
                    cost.stderr.contains("binary property list"),
                    "{what}: {}",
                    cost.stderr
                );
            }
        }
        cheaply(&d, &[os("verify")], 8);
        // One problem, naming the file, without a second "the device is damaged".
        d.bsi(["verify"]).exit(8).stdout_is(
            &[(f.as_path(), "[FILE]")],
            "problem: [FILE]: not a SystemVersion property list: a binary property list; bsi reads XML property lists only (Apple's format for this file)\n",
        );
        cheaply(&d, &[os("repair")], 0);
        cheaply(&d, &[os("verify")], 0);
        assert_ne!(std::fs::read(&f).unwrap(), bomb, "{what}");
        d.bsi(["status"]).ok();
    }
}

#[test]
fn item2_a_fifo_as_any_record_never_blocks_and_repair_removes_it() {
    let records = [
        "lock",
        "history.jsonl",
        "power.json",
        "settings.json",
        "last-operation.json",
        "journal.json",
        "sync.json",
        "included.json",
        "failure.json",
        "install-reason.json",
        "report-delivered.json",
        "origins.json",
        "history-summary.json",
        "enrollment.json",
    ];
    for record in records {
        let d = Device::new();
        d.activate(bundle("macos-26.3.1-a.bsi"));
        mkfifo(&d.path(&format!("private/var/db/bsi/{record}")));
        for args in [
            &["status"][..],
            &["verify"],
            &["report"],
            &["history"],
            &["power", "--ac"],
        ] {
            let args: Vec<_> = args.iter().map(|a| os(a)).collect();
            let cost = measured(&d, &args);
            assert!(
                cost.wall < Duration::from_secs(2) && cost.code >= 0,
                "{record}: {args:?} blocked ({:?}, exit {})",
                cost.wall,
                cost.code
            );
            assert!(
                [0, 8].contains(&cost.code),
                "{record}: {args:?} exit {}: {}",
                cost.code,
                cost.stderr
            );
            if cost.code == 8 {
                assert!(
                    cost.stderr.contains("`bsi repair`"),
                    "{record}: {}",
                    cost.stderr
                );
            }
        }
        cheaply(&d, &[os("repair")], 0);
        cheaply(&d, &[os("verify")], 0);
        cheaply(&d, &[os("power"), os("--ac")], 0);
    }
    // A FIFO where a trusted key or a declaration is stored.
    let d = Device::new();
    mkfifo(&d.path("private/var/db/bsi/trust/0000.pub"));
    mkfifo(&d.path("private/var/db/bsi/declarations/0000.json"));
    cheaply(&d, &[os("status")], 8);
    cheaply(
        &d,
        &[os("apply"), bundle("macos-26.3.1-a.bsi").as_os_str()],
        8,
    );
    cheaply(&d, &[os("repair")], 0);
    cheaply(&d, &[os("verify")], 0);
}

#[test]
fn item3_a_hard_link_planted_as_a_record_is_never_written_through() {
    for record in [
        "lock",
        "history.jsonl",
        "journal.json",
        "power.json",
        "last-operation.json",
    ] {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"{\"keep\": \"me\"}\n").unwrap();
        let d = Device::new();
        let rel = format!("private/var/db/bsi/{record}");
        let _ = std::fs::remove_file(d.path(&rel));
        std::fs::hard_link(&victim, d.path(&rel)).unwrap();
        let unsigned = tempfile::tempdir().unwrap();
        let b = unsigned.path().join("a.bsi");
        crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
        std::fs::remove_file(b.join("Info.plist.sig")).unwrap();
        // A refused command, a change, a reader: none writes through the link.
        for args in [
            vec![os("apply"), b.as_os_str()],
            vec![os("power"), os("--battery"), os("40")],
            vec![os("status")],
            vec![os("history")],
        ] {
            let cost = measured(&d, &args);
            assert!(cost.wall < Duration::from_secs(2), "{record}: {args:?}");
            assert_eq!(
                std::fs::read(&victim).unwrap(),
                b"{\"keep\": \"me\"}\n",
                "{record}: {args:?} wrote through the link"
            );
        }
        // What a change appends to or writes in place is refused as damage; what it replaces
        // by a rename (the journal it removes, the last operation) is never written through.
        let refused = ["lock", "history.jsonl", "power.json"].contains(&record);
        let applied = d.bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()]);
        if refused {
            applied.refused(8, "hard links");
        } else {
            applied.ok();
        }
        cheaply(&d, &[os("repair")], 0);
        cheaply(&d, &[os("verify")], 0);
        cheaply(
            &d,
            &[os("apply"), bundle("macos-26.3.1-a.bsi").as_os_str()],
            0,
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"{\"keep\": \"me\"}\n");
    }
}

#[test]
fn item5_a_huge_history_costs_only_what_is_asked_of_it() {
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    let path = d.path("private/var/db/bsi/history.jsonl");
    let mut history = std::fs::read(&path).unwrap();
    let line = history.split(|&b| b == b'\n').next().unwrap().to_vec();
    // 300 MB of entries, a 20 MB line no entry can be, then what the device really did.
    let mut big = Vec::with_capacity(330 << 20);
    while big.len() < 300 << 20 {
        big.extend_from_slice(&line);
        big.push(b'\n');
    }
    big.extend(std::iter::repeat_n(b'x', 20 << 20));
    big.push(b'\n');
    big.append(&mut history);
    std::fs::write(&path, &big).unwrap();
    drop(big);
    cheaply(&d, &[os("history"), os("--limit"), os("1")], 0);
    cheaply(
        &d,
        &[os("history"), os("--limit"), os("20"), os("--json")],
        0,
    );
    cheaply(
        &d,
        &[
            os("update"),
            os("--version"),
            os("26.4"),
            os("--build"),
            os("25E100"),
            os("--dry-run"),
        ],
        0,
    );
    let run = d.bsi(["history", "--limit", "1", "--json"]);
    let last: Vec<serde_json::Value> = run.parse();
    assert_eq!(last.len(), 1);
    // The update includes what was applied, though it is 300 MB back in the file.
    d.bsi(["update", "--version", "26.4", "--build", "25E100"])
        .ok()
        .stdout_has("26.4 includes 26.3.1 (a)");
}

/// A DDM server serving `declarations` (each a JSON envelope), answering `PUT /status` with
/// `report_status`, with `pause` before each declaration; the requests it saw are counted.
fn ddm_server(
    declarations: Vec<serde_json::Value>,
    report_status: u16,
    pause: Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use crate::stub::{Reply, serve};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let kind = |d: &serde_json::Value| {
        let t = d["Type"].as_str().unwrap_or_default();
        if t.starts_with("com.apple.activation.") {
            "activations"
        } else {
            "configurations"
        }
    };
    let mut items = serde_json::json!({"Activations": [], "Configurations": [], "Assets": [], "Management": []});
    for d in &declarations {
        let key = if kind(d) == "activations" {
            "Activations"
        } else {
            "Configurations"
        };
        items[key].as_array_mut().unwrap().push(
            serde_json::json!({"Identifier": d["Identifier"], "ServerToken": d["ServerToken"]}),
        );
    }
    let by_id: std::collections::HashMap<String, Vec<u8>> = declarations
        .iter()
        .map(|d| {
            (
                d["Identifier"].as_str().unwrap().to_owned(),
                serde_json::to_vec(d).unwrap(),
            )
        })
        .collect();
    let url = serve(move |r| {
        log.lock().unwrap().push(format!("{} {}", r.method, r.path));
        if r.path.ends_with("/tokens") {
            Reply::json(
                &serde_json::json!({"SyncTokens": {"DeclarationsToken": "t1", "Timestamp": "2026-12-01T10:00:00Z"}}),
            )
        } else if r.path.ends_with("/declaration-items") {
            Reply::json(&serde_json::json!({"Declarations": items, "DeclarationsToken": "t1"}))
        } else if let Some(id) = r
            .path
            .rsplit('/')
            .next()
            .filter(|_| r.path.contains("/declaration/"))
        {
            let id = percent_decoded(id);
            match by_id.get(&id) {
                Some(raw) if pause.is_zero() => Reply::Now(200, raw.clone()),
                Some(raw) => Reply::After(pause, 200, raw.clone()),
                None => Reply::Now(404, Vec::new()),
            }
        } else if r.method == "PUT" && r.path.ends_with("/status") {
            Reply::Now(report_status, Vec::new())
        } else {
            Reply::Now(404, Vec::new())
        }
    });
    (url, seen)
}

/// A percent-encoded path segment, decoded.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn configuration(id: &str, pad: usize) -> serde_json::Value {
    serde_json::json!({
        "Type": "com.apple.configuration.softwareupdate.settings",
        "Identifier": id,
        "ServerToken": "1",
        "Payload": {"Notifications": true, "Pad": "x".repeat(pad)}
    })
}

fn activation(id: &str, configurations: Vec<String>) -> serde_json::Value {
    serde_json::json!({
        "Type": "com.apple.activation.simple",
        "Identifier": id,
        "ServerToken": "1",
        "Payload": {"StandardConfigurations": configurations}
    })
}

#[test]
fn item4_nothing_bsi_writes_is_over_its_own_read_limit() {
    let d = Device::with(&["--supervised"]);
    // More declarations than a device holds: refused as the server's error, nothing stored.
    let many: Vec<_> = (0..1500)
        .map(|i| configuration(&format!("c{i}"), 0))
        .collect();
    let (url, seen) = ddm_server(many, 200, Duration::ZERO);
    let before = d.tree();
    let err = cheaply(&d, &[os("sync"), os("--server"), os(&url)], 1);
    assert!(
        err.contains("1500 declarations, more than the 1000 a device holds"),
        "{err}"
    );
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("/declaration/"))
    );
    let mut after = d.tree();
    after.forget("private/var/db/bsi/history.jsonl");
    after.forget("private/var/db/bsi/last-operation.json");
    let mut before = before;
    before.forget("private/var/db/bsi/history.jsonl");
    before.forget("private/var/db/bsi/last-operation.json");
    before.assert_same(&after);
    // Within the bounds: the records the sync writes stay small, whatever the items hold.
    let some: Vec<_> = (0..200)
        .map(|i| configuration(&format!("c{i}"), 2000))
        .collect();
    let (url, _) = ddm_server(some, 200, Duration::ZERO);
    d.bsi(["sync", "--server", &url]).ok();
    let sync = std::fs::metadata(d.path("private/var/db/bsi/sync.json"))
        .unwrap()
        .len();
    assert!(sync < 16 * 1024, "sync.json is {sync} bytes");
    d.bsi(["report", "--delivered"]).ok();
    let delivered = std::fs::metadata(d.path("private/var/db/bsi/report-delivered.json"))
        .unwrap()
        .len();
    assert!(
        delivered < 16 * 1024,
        "report-delivered.json is {delivered} bytes"
    );
    cheaply(&d, &[os("verify")], 0);
    cheaply(&d, &[os("status")], 0);
    // policy set keeps to the same bounds.
    let d = Device::with(&["--supervised"]);
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let f = tmp.path().join(format!("p{i}.json"));
        std::fs::write(
            &f,
            serde_json::to_vec(&configuration(&format!("p{i}"), 1_040_000)).unwrap(),
        )
        .unwrap();
        let run = d.bsi(["policy".as_ref(), "set".as_ref(), f.as_os_str()]);
        if i < 4 {
            run.ok();
        } else {
            run.refused(2, "would make the device hold").stderr_is(&[], "error: storing p4 would make the device hold 5200680 bytes of declarations, more than the 4194304 a device holds\nhint: remove declarations the device no longer needs (`bsi policy list`, `bsi policy remove ID`), then set it again\n")
                .stderr_has("more than the 4194304 a device holds");
        }
    }
    cheaply(&d, &[os("status")], 0);
}

#[test]
fn item6_evaluation_is_near_linear_and_references_are_capped() {
    let d = Device::with(&["--supervised"]);
    let mut decls: Vec<_> = (0..400)
        .map(|i| configuration(&format!("c{i}"), 0))
        .collect();
    for a in 0..3 {
        decls.push(activation(&format!("a{a}"), vec!["c1".to_owned(); 100_000]));
    }
    decls.push(activation(
        "ok",
        (0..400).map(|i| format!("c{i}")).collect(),
    ));
    let (url, _) = ddm_server(decls, 200, Duration::ZERO);
    let cost = measured(&d, &[os("sync"), os("--server"), os(&url)]);
    assert_eq!(cost.code, 0, "{}", cost.stderr);
    assert!(
        cost.wall < Duration::from_secs(10),
        "sync took {:?}",
        cost.wall
    );
    cheaply(&d, &[os("status")], 0);
    cheaply(&d, &[os("report")], 0);
    cheaply(
        &d,
        &[
            os("apply"),
            bundle("macos-26.3.1-a.bsi").as_os_str(),
            os("--dry-run"),
        ],
        0,
    );
    let status = d.status();
    let a0 = status
        .policy
        .declarations
        .iter()
        .find(|x| x.identifier == "a0")
        .unwrap();
    assert_eq!(a0.valid, "invalid");
    assert!(
        a0.reasons
            .iter()
            .any(|r| r.description.contains("at most 1000")),
        "{:?}",
        a0.reasons
    );
    let ok = status
        .policy
        .declarations
        .iter()
        .find(|x| x.identifier == "ok")
        .unwrap();
    assert!(ok.active);
}

#[test]
fn item7_the_count_and_bytes_of_declarations_are_capped_as_they_are_fetched() {
    let d = Device::with(&["--supervised"]);
    let big: Vec<_> = (0..300)
        .map(|i| configuration(&format!("big{i}"), 1_000_000))
        .collect();
    let (url, seen) = ddm_server(big, 200, Duration::ZERO);
    let before = d.tree();
    let err = cheaply(&d, &[os("sync"), os("--server"), os(&url)], 1);
    assert!(
        err.contains("more than the 4194304 a device holds"),
        "{err}"
    );
    // Refused as soon as the bound was passed, not after fetching everything.
    let fetched = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("/declaration/"))
        .count();
    assert!(fetched <= 6, "fetched {fetched}");
    let mut before = before;
    let mut after = d.tree();
    for t in [&mut before, &mut after] {
        t.forget("private/var/db/bsi/history.jsonl");
        t.forget("private/var/db/bsi/last-operation.json");
    }
    before.assert_same(&after);
    cheaply(&d, &[os("status")], 0);
}

#[test]
fn item8_a_whole_sync_has_a_deadline() {
    let d = Device::with(&["--supervised"]);
    let drip: Vec<_> = (0..100)
        .map(|i| configuration(&format!("c{i}"), 0))
        .collect();
    let (url, _) = ddm_server(drip, 200, Duration::from_millis(1500));
    let start = std::time::Instant::now();
    let run = d.bsi([
        "sync",
        "--server",
        &url,
        "--timeout",
        "2",
        "--deadline",
        "4",
    ]);
    let took = start.elapsed();
    run.refused(1, "did not finish within its deadline of 4 s")
        .stderr_is(
            &[],
            &format!("error: DDM server: GET {url}/declaration/configuration/c2: it did not finish within its deadline of 4 s\nhint: check that the server answers promptly, then try again (--deadline SECONDS sets the bound)\n"),
        );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // Nothing of the drip was stored, and the lock is free again.
    assert_eq!(
        std::fs::read_dir(d.path("private/var/db/bsi/declarations"))
            .unwrap()
            .count(),
        0
    );
    d.bsi(["power", "--ac"]).ok();
}

#[test]
fn item9_duplicate_identifiers_are_the_servers_error_and_change_nothing() {
    let d = Device::with(&["--supervised"]);
    let same = "com.example.twice";
    let decls = vec![
        configuration(same, 0),
        activation(same, vec![same.to_owned()]),
        configuration("other", 0),
    ];
    let (url, seen) = ddm_server(decls, 200, Duration::ZERO);
    let before = d.tree();
    let err = cheaply(&d, &[os("sync"), os("--server"), os(&url)], 1);
    assert!(
        err.contains("list `com.example.twice` more than once"),
        "{err}"
    );
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("/declaration/"))
    );
    let mut before = before;
    let mut after = d.tree();
    for t in [&mut before, &mut after] {
        t.forget("private/var/db/bsi/history.jsonl");
        t.forget("private/var/db/bsi/last-operation.json");
    }
    before.assert_same(&after);
}

#[test]
fn item10_a_report_that_fails_after_a_change_leaves_the_change_recorded_and_the_report_pending() {
    let d = Device::with(&["--supervised"]);
    let enforce = serde_json::json!({
        "Type": "com.apple.configuration.softwareupdate.enforcement.specific",
        "Identifier": "enforce",
        "ServerToken": "1",
        "Payload": {"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T09:00:00"}
    });
    let decls = vec![enforce, activation("act", vec!["enforce".to_owned()])];
    let (url, _) = ddm_server(decls.clone(), 500, Duration::ZERO);
    let from = fixtures().join("bundles");
    let run = d.bsi([
        "sync".as_ref(),
        "--server".as_ref(),
        url.as_ref(),
        "--then-auto".as_ref(),
        "--from".as_ref(),
        from.as_os_str(),
        "--timeout".as_ref(),
        "1".as_ref(),
    ]);
    run.refused(1, "PUT").stderr_is(
        &[],
        "error: DDM server: PUT [..]/status: HTTP 500 Internal Server Error (3 attempts)\nhint: the changes this sync made stand (see `bsi history`); the status report stays pending, and the next `bsi sync` sends it\n",
    );
    assert_eq!(d.status().active_version(), Some("26.3.1 (a)"));
    let history: Vec<serde_json::Value> = d.bsi(["history", "--limit", "1", "--json"]).parse();
    assert_eq!(history[0]["result"], "ok", "{history:?}");
    assert!(
        history[0]["detail"]
            .as_str()
            .unwrap()
            .contains("it stays pending")
    );
    // The next sync, with a server that takes reports, sends it.
    let (url, seen) = ddm_server(decls, 200, Duration::ZERO);
    d.bsi(["sync", "--server", &url])
        .ok()
        .stdout_has("status report sent");
    assert!(seen.lock().unwrap().iter().any(|r| r.starts_with("PUT")));
}

#[test]
fn item11_sigterm_stops_a_sync_with_a_silent_server_at_once() {
    let d = Device::with(&["--supervised"]);
    let url = crate::stub::serve(|_| crate::stub::Reply::Silent);
    let mut child = Command::new(bin())
        .args([
            "--root".as_ref(),
            d.root.as_os_str(),
            "sync".as_ref(),
            "--server".as_ref(),
            url.as_ref(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sent = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(143));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.starts_with("error: interrupted by SIGTERM"), "{err}");
    let history: Vec<serde_json::Value> = d.bsi(["history", "--limit", "1", "--json"]).parse();
    assert_eq!(history[0]["result"], "interrupted");
}

#[test]
fn item12_a_fleet_device_outside_the_fleet_is_a_damaged_fleet_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    bsi([
        "fleet".as_ref(),
        "init".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--count".as_ref(),
        "2".as_ref(),
        "--trust".as_ref(),
        test_pub().as_os_str(),
    ])
    .ok();
    let outside = Device::new();
    let before = outside.tree();
    let original = std::fs::read_to_string(dir.join("fleet.json")).unwrap();
    let (url, _) = ddm_server(Vec::new(), 200, Duration::ZERO);
    for root in [
        outside.root.display().to_string(),
        format!("../../{}", outside.root.display()),
        "devices/../../elsewhere".to_owned(),
    ] {
        let mut fleet: serde_json::Value = serde_json::from_str(&original).unwrap();
        fleet["devices"][1]["root"] = serde_json::Value::String(root.clone());
        std::fs::write(dir.join("fleet.json"), serde_json::to_vec(&fleet).unwrap()).unwrap();
        bsi([
            "fleet".as_ref(),
            "sync".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
            "--server".as_ref(),
            url.as_ref(),
        ])
        .refused(8, "which is not a directory inside the fleet");
    }
    // A root that leads outside through a symlink.
    let mut fleet: serde_json::Value = serde_json::from_str(&original).unwrap();
    std::os::unix::fs::symlink(&outside.root, dir.join("devices/link")).unwrap();
    fleet["devices"][1]["root"] = serde_json::Value::String("devices/link".to_owned());
    std::fs::write(dir.join("fleet.json"), serde_json::to_vec(&fleet).unwrap()).unwrap();
    bsi([
        "fleet".as_ref(),
        "sync".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--server".as_ref(),
        url.as_ref(),
    ])
    .refused(8, "which is not a directory inside the fleet");
    before.assert_same(&outside.tree());
}

/// What a terminal must never receive from bsi.
#[track_caller]
fn safe_for_a_terminal(what: &str, text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n'
                || c == '\t'
                || !(c.is_control()
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)),
            "{what}: a raw {c:?} reached the terminal:\n{text}"
        );
    }
    for line in text.lines() {
        assert!(
            line.len() <= 4096 + 32,
            "{what}: a line of {} bytes",
            line.len()
        );
    }
}

const NASTY: &str = "evil\u{1b}[2J\u{7}\r\nsignature:   valid, trusted\u{202e}txt";

#[test]
fn item13_untrusted_text_never_drives_the_terminal() {
    // An unsigned bundle whose Description would clear the screen and print a fake verdict.
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("fake.bsi");
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
    let manifest = std::fs::read_to_string(b.join("Info.plist")).unwrap();
    let nasty_xml = NASTY
        .replace('\u{1b}', "&#27;")
        .replace('\u{7}', "&#7;")
        .replace('\r', "&#13;");
    std::fs::write(
        b.join("Info.plist"),
        manifest.replacen(
            "<key>Cryptexes</key>",
            &format!("<key>Description</key><string>{nasty_xml}</string><key>Cryptexes</key>"),
            1,
        ),
    )
    .unwrap();
    std::fs::remove_file(b.join("Info.plist.sig")).unwrap();
    let d = Device::with(&["--supervised"]);
    let run = d.bsi(["bundle".as_ref(), "inspect".as_ref(), b.as_os_str()]);
    let out = run.stdout();
    safe_for_a_terminal("bundle inspect", &out);
    let verdicts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("signature:"))
        .collect();
    assert_eq!(verdicts.len(), 1, "{out}");
    assert!(!verdicts[0].contains("valid"), "{out}");
    let at_verdict = out.find("signature:").unwrap();
    let at_description = out.find("description:").unwrap();
    assert!(
        at_verdict < at_description,
        "unsigned content before the verdict:\n{out}"
    );
    assert!(out.contains("manifest (NOT verified"), "{out}");
    // Declarations whose identifier and token carry controls: every command that shows them.
    let f = tmp.path().join("nasty.json");
    std::fs::write(
        &f,
        serde_json::to_vec(&serde_json::json!({
            "Type": "com.apple.configuration.softwareupdate.settings",
            "Identifier": NASTY,
            "ServerToken": NASTY,
            "Payload": {}
        }))
        .unwrap(),
    )
    .unwrap();
    for args in [
        vec!["policy".as_ref(), "set".as_ref(), f.as_os_str()],
        vec!["policy".as_ref(), "list".as_ref()],
        vec!["status".as_ref(), "-v".as_ref()],
        vec!["status".as_ref(), "--json".as_ref()],
        vec!["report".as_ref()],
        vec!["history".as_ref()],
    ] {
        let run = d.bsi(&args);
        safe_for_a_terminal(&format!("{args:?} stdout"), &run.stdout());
        safe_for_a_terminal(&format!("{args:?} stderr"), &run.stderr());
    }
    let run = d.bsi(["policy", "remove", NASTY]);
    safe_for_a_terminal("policy remove", &(run.stdout() + &run.stderr()));
    let run = d.bsi(["policy", "remove", NASTY]);
    run.exit(2);
    safe_for_a_terminal("policy remove again", &run.stderr());
    // A server's tokens and identifiers.
    let mut decl = configuration(NASTY, 0);
    decl["ServerToken"] = serde_json::Value::String(NASTY.to_owned());
    let (url, _) = ddm_server(vec![decl], 200, Duration::ZERO);
    let run = d.bsi(["sync", "--server", &url]);
    run.ok();
    safe_for_a_terminal("sync", &run.stdout());
    // A catalog's fields.
    let catalog = tmp.path().join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::to_vec(
            &serde_json::json!({"PublicBackgroundSecurityImprovements": {"macOS": [{
                "ProductVersion": "26.3.1", "ProductVersionExtra": "(a)", "Build": "25D771280a",
                "PrerequisiteBuild": "25D2128", "PostingDate": "2026-02-10",
                "SupportedDevices": [NASTY]
            }]}}),
        )
        .unwrap(),
    )
    .unwrap();
    for args in [
        vec!["lookup".as_ref(), "--catalog".as_ref(), catalog.as_os_str()],
        vec![
            "lookup".as_ref(),
            "--catalog".as_ref(),
            catalog.as_os_str(),
            "--json".as_ref(),
        ],
    ] {
        let run = d.bsi(&args);
        run.ok();
        safe_for_a_terminal("lookup", &run.stdout());
    }
    // An activation naming 900 configurations the device lacks: the message stays short.
    let act = tmp.path().join("act.json");
    std::fs::write(
        &act,
        serde_json::to_vec(&activation(
            "many",
            (0..900)
                .map(|i| format!("missing-{i:04}-{}", "x".repeat(900)))
                .collect(),
        ))
        .unwrap(),
    )
    .unwrap();
    let run = d.bsi(["policy".as_ref(), "set".as_ref(), act.as_os_str()]);
    safe_for_a_terminal("policy set many", &(run.stdout() + &run.stderr()));
    assert!(
        run.stdout().len() + run.stderr().len() < 8192,
        "{} bytes",
        run.stdout().len()
    );
    let status = d.bsi(["status", "-v"]);
    safe_for_a_terminal("status -v", &status.stdout());
}

#[test]
fn item14_the_smaller_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::new();
    // A weak key (the identity point) is not trusted.
    let weak = tmp.path().join("weak.pub");
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 0x01,
    ];
    der.extend([0u8; 31]);
    std::fs::write(
        &weak,
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        ),
    )
    .unwrap();
    let before = d.tree();
    d.bsi(["trust".as_ref(), "add".as_ref(), weak.as_os_str()])
        .exit(2)
        .stderr_is(&[(tmp.path(), "[TMP]")], "error: [TMP]/weak.pub is a weak Ed25519 key (a point of small order): no signature made with a real private key verifies with it\nhint: give the public key (FILE.pub) that `bsi key generate --out FILE` wrote for the signer\n");
    before.assert_same(&d.tree());
    // A directory bundle with an unlisted empty directory, as the tar form refuses.
    let b = tmp.path().join("emptydir.bsi");
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &b);
    std::fs::create_dir_all(b.join("OS/usr/hidden/deeper")).unwrap();
    d.bsi(["apply".as_ref(), b.as_os_str()]).refused(
        6,
        "OS/usr/hidden/ is in the bundle but not listed in the manifest",
    ).stderr_is(&[], "error: OS/usr/hidden/ is in the bundle but not listed in the manifest\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
    std::fs::create_dir_all(b.join("Extra")).unwrap();
    std::fs::remove_dir_all(b.join("OS/usr/hidden")).unwrap();
    d.bsi(["apply".as_ref(), b.as_os_str()])
        .exit(6)
        .stdout_is(&[], "")
        .stderr_is(&[(tmp.path(), "[TMP]")], "error: Extra/ is in the bundle but not listed in the manifest\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
    // A payload file hard-linked to a file elsewhere: refused without saying its size.
    let h = tmp.path().join("hardlink.bsi");
    crate::fixtures::copy_for_test(&bundle("macos-26.3.1-a.bsi"), &h);
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, vec![b's'; 12_345]).unwrap();
    let target = h.join("OS/usr/lib/libwebrtc.dylib");
    std::fs::remove_file(&target).unwrap();
    std::fs::hard_link(&secret, &target).unwrap();
    let run = d.bsi(["apply".as_ref(), h.as_os_str()]);
    run.exit(6).stderr_is(&[(tmp.path(), "[TMP]")], "error: OS/usr/lib/libwebrtc.dylib is a hard link; bundles may hold only regular files and directories\nhint: the bundle is damaged or was tampered with; get a fresh copy from its publisher\n");
    assert!(!run.stderr().contains("12345"), "{}", run.stderr());
    before.assert_same(&d.tree());
    // A catalog date that is no date.
    let catalog = tmp.path().join("catalog.json");
    for bad in ["2026-02-30", "2026-2-3", "tomorrow", "2026-02-10T00:00:00Z"] {
        std::fs::write(
            &catalog,
            serde_json::to_vec(
                &serde_json::json!({"PublicBackgroundSecurityImprovements": {"macOS": [{
                    "ProductVersion": "26.3.1", "ProductVersionExtra": "(a)", "Build": "25D771280a",
                    "PrerequisiteBuild": "25D2128", "PostingDate": bad
                }]}}),
            )
            .unwrap(),
        )
        .unwrap();
        d.bsi(["lookup".as_ref(), "--catalog".as_ref(), catalog.as_os_str()])
            .refused(2, "PostingDate")
            .stderr_has("is not a date (YYYY-MM-DD)");
    }
}
