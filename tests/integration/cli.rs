//! Help, completions, man page, usage errors, and the exit-code table of docs/cli.md.

use crate::harness::*;

#[test]
fn help_teaches_and_is_golden() {
    let help = bsi(["--help"]).ok().stdout();
    for needle in ["Examples:", "Exit codes:", "apply", "rollback", "--root"] {
        assert!(help.contains(needle), "{needle}\n{help}");
    }
    golden("help.txt", &help);
    bsi(["apply", "--help"]).ok().stdout_has("Checks, in order");
    bsi(["--version"]).ok().stdout_is(&[], "bsi 0.1.0\n");
}

#[test]
fn completions_and_man_page() {
    bsi(["completions", "bash"]).ok().stdout_has("_bsi");
    // The bash script completes: a command from its prefix, a flag of that command.
    let script = tempfile::NamedTempFile::new().unwrap();
    let generated = bsi(["completions", "bash"]).ok().stdout();
    std::fs::write(script.path(), generated).unwrap();
    let complete = |words: &str, cword: usize| {
        let run = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _bsi bsi \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            script.path().display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &run])
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match complete("bsi roll", 1) {
        Some(got) => {
            assert_eq!(got, "rollback");
            assert_eq!(complete("bsi apply --dry", 2).as_deref(), Some("--dry-run"));
            let got = complete("bsi mdm ''", 2).unwrap();
            for sub in ["enroll", "poll", "unenroll"] {
                assert!(got.split(' ').any(|w| w == sub), "{got}");
            }
        }
        None => eprintln!("completions: no bash here, so the bash script was not run"),
    }
    bsi(["completions", "zsh"]).ok().stdout_has("#compdef bsi");
    bsi(["man"]).ok().stdout_has(".TH bsi");
    let tmp = tempfile::tempdir().unwrap();
    bsi(["man".as_ref(), "--out".as_ref(), tmp.path().as_os_str()]).ok();
    assert!(tmp.path().join("bsi-apply.1").exists());
}

#[test]
fn usage_errors_exit_2_with_clear_messages() {
    Cmd::new()
        .arg("frobnicate")
        .exit(2)
        .stdout("")
        .stderr(
            "error: unrecognized subcommand 'frobnicate'\n\nUsage: bsi [OPTIONS] <COMMAND>\nhint: `bsi --help` lists the commands; `bsi COMMAND --help` shows what one takes\n",
        )
        .run();
    // A usage error of a command names that command's help.
    Cmd::new()
        .args(["policy", "set"])
        .exit(2)
        .stdout("")
        .stderr(
            "error: the following required arguments were not provided:\n  <FILE.json>\n\nUsage: bsi policy set <FILE.json>\nhint: `bsi policy set --help` shows what it takes, with examples\n",
        )
        .run();
    // Rules clap holds: a conflict, a range; the hint names the command's help even after
    // a global option's value.
    Cmd::new()
        .args(["init", "--root", "/nonexistent/d", "--desktop", "--battery", "50"])
        .exit(2)
        .stdout("")
        .stderr(
            "error: the argument '--desktop' cannot be used with '--battery <PCT>'\n\nUsage: bsi init --root <DIR> --desktop\nhint: `bsi init --help` shows what it takes, with examples\n",
        )
        .run();
    Cmd::new()
        .args(["--root", "/nonexistent/d", "sync", "--timeout", "0"])
        .exit(2)
        .stdout("")
        .stderr(
            "error: invalid value '0' for '--timeout <SECS>': not a number of seconds above 0 and at most 3600 (e.g. 10)\nhint: `bsi sync --help` shows what it takes, with examples\n",
        )
        .run();
    Cmd::new()
        .args(["status", "--now", "yesterday"])
        .exit(2)
        .stdout("")
        .stderr(
            "error: invalid --now `yesterday`: premature end of input\nhint: give an RFC 3339 time, e.g. --now 2026-12-01T09:30:00Z\n",
        )
        .run();
    Cmd::new()
        .args(["status", "--wait", "-1"])
        .exit(2)
        .stdout("")
        .stderr("error: invalid --wait -1\nhint: give a number of seconds from 0 to 86400\n")
        .run();
    Cmd::new()
        .args(["status", "--require", "26.3.1 (A)"])
        .exit(2)
        .stdout("")
        .stderr(concat!(
            "error: invalid response version extra `(A)`: letters must be lowercase (expected lowercase letters in parentheses, e.g. (a))\n",
            "hint: an OS version is MAJOR.MINOR[.PATCH] (26.3.1), a response version adds its letter (\"26.3.1 (a)\"), a base build is a train and a number (25D2128), a response's build is 25D771280a; `bsi --help` says more\n",
        ))
        .run();
}

#[test]
fn json_output_is_pure() {
    let d = Device::new();
    for args in [
        &["status", "--json"][..],
        &["history", "--json"],
        &["report"],
        &["power", "--json"],
        &["policy", "list", "--json"],
    ] {
        d.bsi(args).ok().json();
    }
    let run = d.bsi([
        "apply".as_ref(),
        bundle("macos-26.3.1-a.bsi").as_os_str(),
        "--json".as_ref(),
    ]);
    run.ok().json();
    // A refusal with --json: nothing on stdout, one JSON object on stderr.
    d.cmd()
        .arg("apply")
        .arg(bundle("ios-26.3.1-a.bsi"))
        .arg("--json")
        .exit(5)
        .stdout("")
        .stderr(concat!(
            r#"{"error":"this bundle is for iOS; the device runs macOS","hint":"use a bundle made for the device's platform","exit_code":5,"kind":"not-applicable"}"#,
            "\n"
        ))
        .run();
}

/// Every row of the exit-code table in docs/cli.md is produced by some command.
#[test]
fn every_documented_exit_code_happens() {
    let doc = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let codes: Vec<i32> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(codes, (0..=9).collect::<Vec<_>>());
    let d = Device::with(&["--battery", "5", "--no-ac"]);
    let a = bundle("macos-26.3.1-a.bsi");
    let tmp = tempfile::tempdir().unwrap();
    d.bsi(["status"]).exit(0);
    // 1: the operation failed: here a DDM server that refuses connections (port 9, discard).
    d.bsi(["sync", "--server", "http://127.0.0.1:9"])
        .refused(1, "cannot connect")
        .stderr_is(
            &[],
            "error: DDM server: GET http://127.0.0.1:9/tokens: cannot connect (io: Connection refused (os error 111)) (3 attempts)\nhint: check that the server runs at http://127.0.0.1:9 and answers, then try again\n",
        );
    d.bsi(["apply", "--bogus"]).exit(2);
    d.bsi(["apply".as_ref(), a.as_os_str()]).exit(3);
    d.bsi(["power", "--ac"]).ok();
    let sup = Device::with(&["--supervised"]);
    let decl = tmp.path().join("d.json");
    std::fs::write(&decl, r#"{"Type":"com.apple.configuration.softwareupdate.settings","Identifier":"no-rsr","ServerToken":"1","Payload":{"RapidSecurityResponse":{"Enable":false}}}"#).unwrap();
    sup.bsi(["policy".as_ref(), "set".as_ref(), decl.as_os_str()])
        .ok();
    sup.declare(
        "com.apple.activation.simple",
        "act",
        serde_json::json!({"StandardConfigurations": ["no-rsr"]}),
    )
    .ok();
    sup.bsi(["apply".as_ref(), a.as_os_str()]).exit(4);
    d.bsi(["apply".as_ref(), bundle("ios-26.3.1-a.bsi").as_os_str()])
        .exit(5);
    d.bsi([
        "apply".as_ref(),
        fixtures().join("bad/unsigned.bsi").as_os_str(),
    ])
    .exit(6);
    bsi([
        "--root".as_ref(),
        tmp.path().join("none").as_os_str(),
        "status".as_ref(),
    ])
    .exit(8);
    d.bsi(["status", "--require", "26.3.1 (a)"]).exit(9);
    // 7: this test process holds the device lock (flock is per open file, so bsi must wait).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.path("private/var/db/bsi/lock"))
        .unwrap();
    lock.lock().unwrap();
    // A holder that has not said who it is (this test writes no record) is named as nothing.
    let status = d.bsi(["status"]).ok().stdout();
    assert!(
        status.ends_with(
            "\nin flight:  a bsi command is starting; this is the last committed state\n"
        ),
        "{status}"
    );
    d.bsi(["restart", "--wait", "0.2"])
        .refused(7, "busy")
        .stderr_is(
            &[],
            "error: the device is busy: another bsi process holds its lock (waited [..] s)\nhint: wait for the other bsi to finish, or pass --wait SECONDS to wait longer\n",
        );
    lock.unlock().unwrap();
    d.bsi(["restart", "--wait", "0.2"]).ok();
}

#[test]
fn progress_json_lines_on_stderr_and_nothing_when_not_a_terminal() {
    let d = Device::new();
    let run = d.bsi([
        "--progress".as_ref(),
        "json".as_ref(),
        "apply".as_ref(),
        bundle("macos-26.3.1-a.bsi").as_os_str(),
        "--json".as_ref(),
    ]);
    run.ok().json();
    let events: Vec<serde_json::Value> = run
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "begin");
    assert_eq!(events.last().unwrap()["event"], "end");
    assert!(events.iter().all(|e| e["phase"] == "staging"));
    let run = d.bsi(["verify"]);
    run.ok();
    assert!(
        run.stderr().is_empty(),
        "progress on a non-terminal: {}",
        run.stderr()
    );
}
