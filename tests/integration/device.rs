//! init, status, power, settings and the status schema (issue 2).

use serde_json::Value;

use crate::harness::*;

#[test]
fn init_defaults_and_status_json() {
    let d = Device::new();
    let s = d.status();
    // The typed view names every key and refuses others: parsing it is the key check.
    assert_eq!(s.schema_version, 1);
    assert_eq!(
        s.device,
        DeviceView {
            platform: "macOS".into(),
            chip: "apple-silicon".into(),
            portable: true,
            supervised: false,
            enrollment_id: "TEST-DEVICE".into(),
        }
    );
    assert_eq!(
        s.os,
        OsView {
            version: "26.3.1".into(),
            build: "25D2128".into(),
        }
    );
    assert_eq!(s.power.battery_percent, Some(100));
    assert!(s.power.on_ac);
    assert_eq!(s.power.minimum_percent, Some(10));
    assert!(s.automatic_install.enabled);
    assert_eq!(s.automatic_install.source, "user");
    assert_eq!(
        s.ddm("device.operating-system.supplemental.build-version"),
        "25D2128"
    );
    assert_eq!(
        s.ddm("device.operating-system.supplemental.extra-version"),
        ""
    );
    let human = d.bsi(["status"]).ok().stdout();
    let lines: Vec<&str> = human.lines().take(3).collect();
    assert_eq!(
        lines,
        [
            "ProductName:\t\tmacOS",
            "ProductVersion:\t\t26.3.1",
            "BuildVersion:\t\t25D2128"
        ]
    );
    // The links resolve inside the root.
    for c in ["OS", "App"] {
        let link = d.path(&format!("System/Cryptexes/{c}"));
        assert_eq!(
            std::fs::read_link(&link).unwrap().display().to_string(),
            format!("../../System/Volumes/Preboot/Cryptexes/{c}")
        );
        let resolved = std::fs::canonicalize(&link).unwrap();
        assert!(
            resolved.starts_with(std::fs::canonicalize(&d.root).unwrap()),
            "{}",
            resolved.display()
        );
    }
    assert!(
        d.path("System/Library/CoreServices/SystemVersion.plist")
            .is_file()
    );
    assert!(
        d.path("System/Cryptexes/App/Applications/Safari.app/Contents/Info.plist")
            .is_file()
    );
}

#[test]
fn init_flags() {
    let d = Device::with(&[
        "--platform",
        "iPadOS",
        "--supervised",
        "--battery",
        "40",
        "--no-ac",
    ]);
    let s = d.status();
    assert_eq!(s.device.platform, "iPadOS");
    assert!(s.device.supervised);
    assert_eq!(s.os.build, "23D8133");
    assert_eq!(s.power.minimum_percent, None);
    assert_eq!(s.power.battery_percent, Some(40));
    let d = Device::with(&[
        "--chip",
        "intel",
        "--desktop",
        "--version",
        "26.4",
        "--build",
        "25E100",
    ]);
    let s = d.status();
    assert_eq!(s.device.chip, "intel");
    assert!(!s.device.portable);
    assert_eq!(s.os.version, "26.4");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d");
    let r = root.display().to_string();
    // Each refusal whole, in tests/golden/init-refusals.txt.
    let mut transcript = String::new();
    for (args, needle) in [
        (
            vec!["init", "--root", &r, "--platform", "iOS", "--chip", "intel"],
            "macOS only",
        ),
        (
            vec!["init", "--root", &r, "--desktop", "--no-ac"],
            "'--desktop' cannot be used with '--no-ac'",
        ),
        (
            vec!["init", "--root", &r, "--version", "26.4"],
            "needs --build",
        ),
        (
            vec![
                "init",
                "--root",
                &r,
                "--version",
                "26..4",
                "--build",
                "25E100",
            ],
            "invalid OS version",
        ),
        (
            vec!["init", "--root", &r, "--build", "25d2128"],
            "must be uppercase",
        ),
        (vec!["init", "--root", &r, "--battery", "101"], "101"),
        (
            vec!["init", "--root", &r, "--platform", "watchOS"],
            "watchOS",
        ),
    ] {
        let run = bsi(&args);
        run.refused(2, needle);
        assert!(!root.exists(), "{args:?} left {}", root.display());
        transcript +=
            &format!("$ bsi {}\n{}\n", args.join(" "), run.stderr()).replace(&r, "[TMP]/d");
    }
    golden("init-refusals.txt", &transcript);
}

#[test]
fn reinit_refuses_without_force_and_missing_devices_exit_8() {
    let d = Device::new();
    d.refuses(
        ["init".as_ref(), "--root".as_ref(), d.root.as_os_str()],
        2,
        "already holds a bsi device",
    )
    .stderr_is(
        &[(d.root.as_path(), "[ROOT]")],
        "error: [ROOT] already holds a bsi device\nhint: pass --force to replace it with a new device (its state is lost)\n",
    );
    d.bsi([
        "init".as_ref(),
        "--root".as_ref(),
        d.root.as_os_str(),
        "--force".as_ref(),
        "--platform".as_ref(),
        "iOS".as_ref(),
    ])
    .ok();
    assert_eq!(d.status().device.platform, "iOS");
    let tmp = tempfile::tempdir().unwrap();
    let none = tmp.path().join("nothing");
    for cmd in [
        &["status"][..],
        &["apply", "x.bsi"],
        &["restart"],
        &["rollback"],
        &["verify"],
        &["history"],
        &["report"],
        &["power"],
    ] {
        let mut args: Vec<&str> = vec!["--root", none.to_str().unwrap()];
        args.extend_from_slice(cmd);
        bsi(&args).refused(8, "no bsi device at").stderr_is(
            &[(tmp.path(), "[TMP]")],
            "error: no bsi device at [TMP]/nothing\nhint: create one with `bsi init --root [TMP]/nothing`\n",
        );
    }
    std::fs::create_dir(&none).unwrap();
    std::fs::write(none.join("precious"), b"x").unwrap();
    bsi([
        "init".as_ref(),
        "--root".as_ref(),
        none.as_os_str(),
        "--force".as_ref(),
    ])
    .refused(2, "not empty")
    .stderr_is(
        &[(none.as_path(), "[DIR]")],
        "error: [DIR] is not empty and holds no bsi device; refusing to initialise over it\nhint: choose an empty or new directory with --root\n",
    );
    assert!(none.join("precious").exists());
}

#[test]
fn bsi_root_environment_and_default_root() {
    let d = Device::new();
    let out = std::process::Command::new(bin())
        .args(["status", "--json"])
        .env("BSI_ROOT", &d.root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["init"])
        .env_remove("BSI_ROOT")
        .env("XDG_DATA_HOME", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tmp.path()
            .join("bsi/device/private/var/db/bsi/device.json")
            .exists()
    );
}

#[test]
fn power_and_settings() {
    let d = Device::new();
    d.bsi(["power", "--battery", "5", "--no-ac"])
        .ok()
        .stdout_is(
            &[],
            "battery 5 %, on battery\npower gate: blocks installs (a Mac laptop with Apple silicon needs power or at least 10 % battery)\n",
        );
    let s = d.status();
    assert!(!s.power.ok);
    assert_eq!(s.power.battery_percent, Some(5));
    d.bsi(["settings", "--automatic", "off"]).ok();
    assert!(!d.status().automatic_install.enabled);
    d.bsi(["settings"])
        .ok()
        .stdout_is(&[], "automatically install: off\n");
    Device::with(&["--desktop"]).refuses(["power", "--battery", "5"], 2, "no battery").stderr_is(&[], "error: a desktop Mac has no battery and is always on power\nhint: leave --battery and --no-ac out\n");
}

#[test]
fn error_schema_is_current() {
    let generated = bsi::ErrorReport::schema();
    let path = repo().join("docs/error.schema.json");
    if std::env::var_os("BSI_UPDATE_SCHEMA").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(
        committed, generated,
        "docs/error.schema.json is stale: run `BSI_UPDATE_SCHEMA=1 cargo test --all-features error_schema`"
    );
}

#[test]
fn status_schema_is_current_and_validates_status() {
    let generated = bsi(["status", "--schema"]).ok().json();
    let path = repo().join("docs/status.schema.json");
    if std::env::var_os("BSI_UPDATE_SCHEMA").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        generated, committed,
        "docs/status.schema.json is stale: run `BSI_UPDATE_SCHEMA=1 cargo test --all-features status_schema`"
    );
    // Every state the suite's goldens show, and one with declarations and a refusal on record.
    let d = Device::with(&["--supervised"]);
    assert_matches_schema(&committed, &d.status_json());
    d.bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()])
        .ok();
    assert_matches_schema(&committed, &d.status_json());
    d.declare_active(
        "com.apple.configuration.softwareupdate.settings",
        "settings",
        serde_json::json!({"RapidSecurityResponse": {"Enable": false, "EnableRollback": false}}),
    );
    d.bsi(["restart"]).ok();
    d.bsi(["rollback"]).exit(4);
    assert_matches_schema(&committed, &d.status_json());
}

/// Every `--json` error, whatever the cause, is what docs/error.schema.json says.
#[test]
fn json_errors_match_their_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/error.schema.json")).unwrap(),
    )
    .unwrap();
    let d = Device::new();
    let nowhere = d.dir.path().join("nowhere").display().to_string();
    for (args, code) in [
        (vec!["status", "--json", "--require", "26.3.1 (z)"], 9),
        (vec!["apply", "--json", &nowhere], 2),
        (vec!["policy", "remove", "--json", "nope"], 2),
        (
            vec!["update", "--json", "--version", "26.0", "--build", "25A1"],
            5,
        ),
        (vec!["power", "--json", "--battery", "500"], 2),
    ] {
        let run = d.bsi(&args);
        run.exit(code);
        // `status --require` prints the status it judged, then the error; the others print
        // nothing on stdout.
        if args[0] != "status" {
            assert!(run.out.stdout.is_empty(), "{args:?}: {}", run.stdout());
        }
        let error: Value = serde_json::from_slice(&run.out.stderr).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stderr is not one JSON object ({e}): {}",
                run.stderr()
            )
        });
        assert_matches_schema(&schema, &error);
    }
}

/// Golden `status --json` documents for a fresh device and one with a response active and
/// another staged (`BSI_UPDATE_GOLDEN=1` rewrites them).
#[test]
fn status_json_is_golden() {
    let d = Device::new();
    let fresh = d.status_json();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    d.bsi([
        "apply".as_ref(),
        bundle("macos-26.3.1-b.bsi.tar").as_os_str(),
    ])
    .ok();
    let busy = d.status_json();
    for (name, value) in [
        ("status-fresh.json", fresh),
        ("status-active-and-staged.json", busy),
    ] {
        golden(
            name,
            &(serde_json::to_string_pretty(&value).unwrap() + "\n"),
        );
    }
}

/// The schema check fails on an undocumented key, a wrong type and a missing required key, so
/// the tests above cannot pass by accident.
#[test]
fn the_schema_check_catches_what_it_should() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/status.schema.json")).unwrap(),
    )
    .unwrap();
    let status = Device::new().status_json();
    assert_matches_schema(&schema, &status);
    let mut renamed = status.clone();
    let os = renamed["os"].as_object_mut().unwrap();
    let version = os.remove("version").unwrap();
    os.insert("os_version".into(), version);
    let mut retyped = status.clone();
    retyped["restart_required"] = Value::from("no");
    let mut extra = status;
    extra["power"]["voltage"] = Value::from(5);
    for bad in [renamed, retyped, extra] {
        let caught = std::panic::catch_unwind(|| assert_matches_schema(&schema, &bad));
        assert!(caught.is_err(), "accepted: {bad}");
    }
}
