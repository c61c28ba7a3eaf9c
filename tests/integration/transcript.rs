//! Golden human output: one session that runs every command people type, successes and
//! refusals, and compares what bsi printed (stdout, stderr and the exit code, exactly) with
//! `tests/golden/human.txt`. `BSI_UPDATE_GOLDEN=1 cargo test --all-features transcript`
//! rewrites it; review the diff like code.
//!
//! Paths are shown as `$TMP` (the session's temp dir) and `$FIXTURES` (the committed fixtures);
//! a freshly generated key's fingerprint as `<fingerprint>`.

use std::path::Path;

use crate::harness::*;

/// One line of the session.
struct Step {
    /// The arguments, with `$TMP` and `$FIXTURES` in them.
    args: &'static [&'static str],
    /// Prefix `--root $TMP/device --now NOW`.
    on_device: bool,
}

const fn on(args: &'static [&'static str]) -> Step {
    Step {
        args,
        on_device: true,
    }
}

const fn bare(args: &'static [&'static str]) -> Step {
    Step {
        args,
        on_device: false,
    }
}

/// The session: a supervised Mac laptop taken through every command, with the refusal of each
/// gate on the way.
const SESSION: &[Step] = &[
    bare(&[
        "init",
        "--root",
        "$TMP/device",
        "--now",
        NOW,
        "--supervised",
        "--trust",
        "$FIXTURES/keys/test-only.key.pub",
        "--enrollment-id",
        "TEST-DEVICE",
    ]),
    bare(&["init", "--root", "$TMP/device", "--now", NOW]),
    bare(&["status", "--root", "$TMP/nowhere"]),
    bare(&["status", "--root", "$TMP/device", "--now", "yesterday"]),
    bare(&["apply"]),
    on(&["status"]),
    on(&["status", "--get", "os.version"]),
    on(&["status", "--get", "os.nonsense"]),
    on(&["status", "--require", "26.3.1 (a)"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.3.1-a.bsi", "--dry-run"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.3.1-a.bsi"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.3.1-a.bsi.tar"]),
    on(&["restart"]),
    on(&["status", "--require", "26.3.1 (a)"]),
    on(&["apply", "$FIXTURES/bundles/ios-26.3.1-a.bsi"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.4-a.bsi"]),
    on(&["apply", "$FIXTURES/bad/tampered-manifest.bsi"]),
    on(&["apply", "$FIXTURES/bad/untrusted-key.bsi"]),
    on(&["apply", "$FIXTURES/bad/dotdot-entry.bsi.tar"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.3.1-b.bsi.tar"]),
    on(&["relaunch-safari"]),
    on(&["status"]),
    on(&["rollback", "--dry-run"]),
    on(&["rollback"]),
    on(&["rollback"]),
    on(&["restart"]),
    on(&["history"]),
    on(&["verify"]),
    on(&["repair"]),
    on(&["power"]),
    on(&["power", "--battery", "5", "--no-ac"]),
    on(&["apply", "$FIXTURES/bundles/macos-26.3.1-c.bsi"]),
    on(&["power", "--ac"]),
    on(&["settings"]),
    on(&["settings", "--automatic", "off"]),
    on(&["policy", "set", "$FIXTURES/catalog.json"]),
    on(&["policy", "set", "$FIXTURES/declarations/settings.json"]),
    on(&["policy", "set", "$FIXTURES/declarations/enforcement.json"]),
    on(&["policy", "set", "$FIXTURES/declarations/subscriptions.json"]),
    on(&["policy", "set", "$FIXTURES/declarations/activation.json"]),
    on(&["policy", "list"]),
    on(&["settings", "--automatic", "off"]),
    on(&["rollback"]),
    on(&["auto", "--from", "$FIXTURES/bundles"]),
    on(&["report"]),
    on(&["policy", "remove", "com.example.bsi.nothing"]),
    on(&["policy", "remove", "com.example.bsi.activation"]),
    on(&[
        "lookup",
        "--catalog",
        "$FIXTURES/catalog.json",
        "--platform",
        "macOS",
    ]),
    on(&[
        "lookup",
        "--catalog",
        "$FIXTURES/catalog.json",
        "--version",
        "26.3.1 (b)",
    ]),
    on(&[
        "lookup",
        "--catalog",
        "$FIXTURES/catalog.json",
        "--version",
        "26.3.1 (z)",
    ]),
    on(&["update", "--version", "26.3", "--build", "25C50"]),
    on(&["update", "--version", "27.0", "--build", "26A100"]),
    on(&["update", "--version", "26.4", "--build", "25E100"]),
    on(&["upgrade", "--version", "27.0", "--build", "26A100"]),
    on(&["trust", "list"]),
    on(&["trust", "add", "$FIXTURES/keys/other-test-only.key.pub"]),
    on(&["trust", "remove", "00000000"]),
    bare(&["key", "generate", "--out", "$TMP/new.key"]),
    bare(&[
        "bundle",
        "create",
        "--product",
        "macOS",
        "--version",
        "27.0",
        "--prerequisite",
        "26A100",
        "--extra",
        "(a)",
        "--build",
        "26A771000a",
        "--os",
        "$FIXTURES/declarations",
        "--out",
        "$TMP/made.bsi",
    ]),
    bare(&[
        "bundle",
        "sign",
        "$TMP/made.bsi",
        "--key",
        "$FIXTURES/keys/test-only.key",
    ]),
    bare(&[
        "bundle",
        "pack",
        "$TMP/made.bsi",
        "--out",
        "$TMP/made.bsi.tar",
    ]),
    bare(&["bundle", "inspect", "$TMP/made.bsi.tar"]),
    on(&["apply", "$TMP/made.bsi.tar", "--restart"]),
    on(&["status"]),
];

#[test]
fn human_output_of_every_command_is_golden() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().display().to_string();
    let fixtures = fixtures().display().to_string();
    let mut transcript = String::new();
    let mut fingerprint: Option<String> = None;
    for step in SESSION {
        let expand = |a: &str| a.replace("$TMP", &tmp).replace("$FIXTURES", &fixtures);
        let mut cmd = Cmd::new();
        if step.on_device {
            cmd = cmd.args(["--root", &format!("{tmp}/device"), "--now", NOW]);
        }
        let cmd = cmd.args(step.args.iter().map(|a| expand(a)));
        let run = bsi(cmd_args(&cmd));
        if step.args.starts_with(&["key", "generate"]) {
            let public = std::fs::read_to_string(Path::new(&tmp).join("new.key.pub"));
            assert!(public.is_ok(), "key generate wrote no public key");
            fingerprint = run
                .stdout()
                .split_whitespace()
                .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned);
        }
        let shown = |text: String| {
            let mut text = text.replace(&tmp, "$TMP").replace(&fixtures, "$FIXTURES");
            if let Some(f) = &fingerprint {
                text = text.replace(f.as_str(), "<fingerprint>");
            }
            text
        };
        transcript.push_str(&format!("$ bsi {}\n", shown(quoted(step.args))));
        transcript.push_str(&format!("exit {}\n", run.code()));
        for (name, text) in [("stdout", run.stdout()), ("stderr", run.stderr())] {
            if !text.is_empty() {
                transcript.push_str(&format!("--- {name}\n{}", shown(text)));
                if !transcript.ends_with('\n') {
                    transcript.push_str("\n[no newline at end]\n");
                }
            }
        }
        transcript.push('\n');
    }
    golden("human.txt", &transcript);
}

/// The arguments a [`Cmd`] holds (the transcript runs them without expectations: the golden
/// file holds what is expected).
fn cmd_args(cmd: &Cmd) -> Vec<std::ffi::OsString> {
    cmd.arguments().to_vec()
}

/// The arguments as a person would type them.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') || a.contains('(') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
