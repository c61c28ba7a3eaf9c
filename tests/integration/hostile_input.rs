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
        d.bsi(["verify"]).exit(8).stdout_has("binary property list");
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
