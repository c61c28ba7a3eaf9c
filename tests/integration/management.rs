//! DDM declarations, automatic install, enforcement, lookup and report (issue 5).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::harness::*;

fn declaration(
    dir: &std::path::Path,
    name: &str,
    kind: &str,
    id: &str,
    token: &str,
    payload: Value,
) -> PathBuf {
    let p = dir.join(name);
    let v = json!({"Type": kind, "Identifier": id, "ServerToken": token, "Payload": payload});
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    p
}

const SETTINGS: &str = "com.apple.configuration.softwareupdate.settings";
const ENFORCE: &str = "com.apple.configuration.softwareupdate.enforcement.specific";

fn bundles_dir() -> PathBuf {
    let tmp = tempfile::tempdir().unwrap().keep();
    for name in [
        "macos-26.3.1-a.bsi.tar",
        "macos-26.3.1-b.bsi.tar",
        "macos-26.4-a.bsi.tar",
        "ios-26.3.1-a.bsi.tar",
    ] {
        std::fs::copy(bundle(name), tmp.join(name)).unwrap();
    }
    tmp
}

#[test]
fn declarations_are_validated_like_a_device() {
    let d = Device::with(&["--supervised"]);
    let t = tempfile::tempdir().unwrap();
    let cases = [
        (
            declaration(
                t.path(),
                "1.json",
                "com.apple.configuration.passcode.settings",
                "x",
                "1",
                json!({}),
            ),
            4,
            "`Type`",
        ),
        (
            declaration(
                t.path(),
                "2.json",
                SETTINGS,
                "x",
                "1",
                json!({"AutomaticActions": {"InstallSecurityUpdate": "Maybe"}}),
            ),
            4,
            "InstallSecurityUpdate",
        ),
        (
            declaration(
                t.path(),
                "3.json",
                SETTINGS,
                "x",
                "1",
                json!({"RapidSecurityResponse": {"Enable": "false"}}),
            ),
            4,
            "RapidSecurityResponse.Enable",
        ),
        (
            declaration(
                t.path(),
                "4.json",
                ENFORCE,
                "x",
                "1",
                json!({"TargetOSVersion": "26.3.1 (a)", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
            ),
            4,
            "TargetOSVersion",
        ),
        (
            declaration(
                t.path(),
                "5.json",
                ENFORCE,
                "x",
                "1",
                json!({"TargetOSVersion": "26.3.1", "TargetLocalDateTime": "2026-12-01 09:00:00"}),
            ),
            4,
            "TargetLocalDateTime",
        ),
    ];
    for (file, code, needle) in &cases {
        d.refuses(
            ["policy".as_ref(), "set".as_ref(), file.as_os_str()],
            *code,
            needle,
        );
    }
    std::fs::write(t.path().join("junk.json"), b"[1,2]").unwrap();
    d.refuses(
        [
            "policy".as_ref(),
            "set".as_ref(),
            t.path().join("junk.json").as_os_str(),
        ],
        2,
        "not a DDM declaration",
    );
    // Same identifier: another token replaces, the same token is nothing to do.
    let v1 = declaration(
        t.path(),
        "v1.json",
        SETTINGS,
        "sus",
        "1",
        json!({"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOn"}}),
    );
    let v2 = declaration(
        t.path(),
        "v2.json",
        SETTINGS,
        "sus",
        "2",
        json!({"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOff"}}),
    );
    d.bsi(["policy".as_ref(), "set".as_ref(), v1.as_os_str()])
        .ok()
        .stdout_has("stored");
    d.bsi(["policy".as_ref(), "set".as_ref(), v1.as_os_str()])
        .ok()
        .stdout_has("nothing to do");
    d.bsi(["policy".as_ref(), "set".as_ref(), v2.as_os_str()])
        .ok()
        .stdout_has("replaced");
    let s = d.status();
    assert_eq!(s["policy"]["declarations"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["automatic_install"],
        json!({"enabled": false, "source": "policy", "declaration": "sus"})
    );
    // Stored exactly as sent.
    let stored: Vec<_> = std::fs::read_dir(d.path("private/var/db/bsi/declarations"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        std::fs::read(stored[0].path()).unwrap(),
        std::fs::read(&v2).unwrap()
    );
    d.bsi(["policy", "remove", "sus"]).ok();
    d.refuses(["policy", "remove", "sus"], 5, "no declaration");
}

#[test]
fn settings_rules_on_supervised_devices_and_ignored_elsewhere() {
    let t = tempfile::tempdir().unwrap();
    let a = bundle("macos-26.3.1-a.bsi");
    let off = declaration(
        t.path(),
        "off.json",
        SETTINGS,
        "rsr",
        "1",
        json!({"RapidSecurityResponse": {"Enable": false, "EnableRollback": false}, "Deferrals": {"MinorPeriodInDays": 30}}),
    );
    let on = declaration(
        t.path(),
        "on.json",
        SETTINGS,
        "auto",
        "1",
        json!({"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOn"}}),
    );
    let unsup = Device::new();
    unsup
        .bsi(["policy".as_ref(), "set".as_ref(), off.as_os_str()])
        .ok();
    unsup
        .bsi(["apply".as_ref(), a.as_os_str(), "--restart".as_ref()])
        .ok();
    unsup.bsi(["rollback"]).ok();
    let s = unsup.status();
    assert_eq!(s["policy"]["declarations"][0]["honored"], false);
    assert!(
        s["policy"]["declarations"][0]["note"]
            .as_str()
            .unwrap()
            .contains("supervised")
    );
    let sup = Device::with(&["--supervised"]);
    sup.bsi(["policy".as_ref(), "set".as_ref(), on.as_os_str()])
        .ok();
    sup.refuses(
        ["settings", "--automatic", "off"],
        4,
        "forced on by declaration auto",
    );
    sup.bsi(["settings", "--automatic", "on"]).ok();
    sup.bsi(["policy".as_ref(), "set".as_ref(), off.as_os_str()])
        .ok();
    sup.refuses(
        ["apply".as_ref(), a.as_os_str()],
        4,
        "RapidSecurityResponse.Enable = false",
    );
    let s = sup.status();
    assert_eq!(s["policy"]["user_install_allowed"], false);
    assert!(
        s["notes"][0]
            .as_str()
            .unwrap()
            .contains("MinorPeriodInDays = 30"),
        "{}",
        s["notes"]
    );
    // Rollback blocked.
    sup.bsi(["policy", "remove", "rsr"]).ok();
    sup.bsi(["apply".as_ref(), a.as_os_str(), "--restart".as_ref()])
        .ok();
    sup.bsi(["policy".as_ref(), "set".as_ref(), off.as_os_str()])
        .ok();
    sup.refuses(["rollback"], 4, "EnableRollback = false");
    assert_eq!(sup.status()["rollback"]["available"], false);
}

#[test]
fn auto_installs_newest_when_on_and_defers_to_the_user_switch() {
    let dir = bundles_dir();
    let d = Device::new();
    d.bsi(["settings", "--automatic", "off"]).ok();
    d.bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_has("automatic install is off");
    assert_eq!(d.status()["active"], Value::Null);
    d.bsi(["settings", "--automatic", "on"]).ok();
    d.bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_has("installing 26.3.1 (b)")
        .stdout_has("26.4 (a) waits for the minor update to 26.4");
    assert_eq!(d.status()["active"]["version"], "26.3.1 (b)");
    let r = d.bsi(["report"]).ok().json();
    assert_eq!(
        r["StatusItems"]["softwareupdate"]["install-reason"]["reason"],
        json!(["auto-update"])
    );
}

#[test]
fn enforcement_deadline_installs_despite_settings_and_respects_the_battery() {
    let dir = bundles_dir();
    let t = tempfile::tempdir().unwrap();
    let d = Device::with(&["--supervised", "--battery", "5", "--no-ac"]);
    let block = declaration(
        t.path(),
        "block.json",
        SETTINGS,
        "block",
        "1",
        json!({"RapidSecurityResponse": {"Enable": false}, "AutomaticActions": {"InstallSecurityUpdate": "AlwaysOff"}}),
    );
    let enforce = declaration(
        t.path(),
        "enforce.json",
        ENFORCE,
        "enforce-a",
        "1",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
    );
    d.bsi(["policy".as_ref(), "set".as_ref(), block.as_os_str()])
        .ok();
    d.bsi(["policy".as_ref(), "set".as_ref(), enforce.as_os_str()])
        .ok();
    let auto = |now: &str| d.bsi_at(now, ["auto".as_ref(), "--from".as_ref(), dir.as_os_str()]);
    auto("2026-12-01T11:59:00Z").ok().stdout_has("not yet");
    assert_eq!(d.status()["active"], Value::Null);
    // Deadline crossed, low battery: nothing installed, failure recorded.
    auto("2026-12-01T12:30:00Z")
        .exit(3)
        .stderr_has("below the 10 % minimum");
    let r = d.bsi(["report"]).ok().json();
    let su = &r["StatusItems"]["softwareupdate"];
    assert_eq!(su["failure-reason"]["count"], 1);
    assert!(
        su["failure-reason"]["reason"]
            .as_str()
            .unwrap()
            .contains("battery")
    );
    assert_eq!(su["install-state"], "failed");
    assert_eq!(d.status()["active"], Value::Null);
    // Power returns: the next pass installs and restarts.
    d.bsi(["power", "--ac"]).ok();
    auto("2026-12-01T13:00:00Z").ok().stdout_has("deadline");
    let s = d.status();
    assert_eq!(s["active"]["version"], "26.3.1 (a)");
    assert_eq!(s["restart_required"], false);
    let r = d.bsi(["report"]).ok().json();
    let su = &r["StatusItems"]["softwareupdate"];
    assert_eq!(
        su["install-reason"],
        json!({"reason": ["declaration"], "declaration-id": "enforce-a"})
    );
    assert_eq!(su["failure-reason"], json!({"count": 0}));
    assert_eq!(su["install-state"], "none");
    let os = &r["StatusItems"]["device"]["operating-system"];
    assert_eq!(os["build-version"], "25D2128");
    assert_eq!(os["version"], "26.3.1");
    assert_eq!(
        os["supplemental"],
        json!({"build-version": "25D771280a", "extra-version": "(a)"})
    );
    assert_eq!(r["Errors"], json!([]));
    assert_eq!(r["FullReport"], true);
}

#[test]
fn report_shows_prepared_while_staged() {
    let d = Device::new();
    d.bsi(["apply".as_ref(), bundle("macos-26.3.1-b.bsi").as_os_str()])
        .ok();
    let r = d.bsi(["report"]).ok().json();
    assert_eq!(
        r["StatusItems"]["softwareupdate"]["install-state"],
        "prepared"
    );
    assert_eq!(
        r["StatusItems"]["softwareupdate"]["pending-version"],
        json!({"os-version": "26.3.1 (b)", "build-version": "25D771280b"})
    );
    assert_eq!(
        r["StatusItems"]["softwareupdate"]["install-reason"]["reason"],
        json!(["command-line"])
    );
}

#[test]
fn lookup_lists_and_answers() {
    let cat = fixtures().join("catalog.json");
    let run = bsi([
        "--now".as_ref(),
        "2026-12-01T00:00:00Z".as_ref(),
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--json".as_ref(),
    ]);
    let v = run.ok().json();
    assert!(v["releases"].as_array().unwrap().len() >= 4);
    let expired: Vec<&Value> = v["background_security_improvements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["expired"] == true)
        .collect();
    assert_eq!(expired.len(), 3, "the 2023 responses are expired");
    let run = bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (a)".as_ref(),
        "--platform".as_ref(),
        "macOS".as_ref(),
    ]);
    run.ok().stdout_has("TargetBuildVersion 25D771280a");
    let run = bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (a)".as_ref(),
        "--platform".as_ref(),
        "iOS".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(
        run.ok().json()["answer"]["target_build_version"],
        "23D771330a"
    );
    bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (z)".as_ref(),
    ])
    .refused(5, "lists no");
    bsi(["lookup", "--catalog", "Cargo.toml"]).refused(2, "not a software lookup catalog");
}
