//! Declarative device management as real devices do it (issue 12): activations, every
//! declaration kept and reported with its state, the install-state lifecycle, prompts, incremental
//! reports, iPadOS, catalog inclusions, and every report checked against Apple's YAML schemas and
//! the shape of real devices' reports (`apple_schema`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::apple_schema::{Facts, Scope, same_shape_as_real, validate_report};
use crate::harness::*;

const SETTINGS: &str = "com.apple.configuration.softwareupdate.settings";
const ENFORCE: &str = "com.apple.configuration.softwareupdate.enforcement.specific";
const ACTIVATION: &str = "com.apple.activation.simple";
const SUBSCRIPTIONS: &str = "com.apple.configuration.management.status-subscriptions";
const CAPABILITIES: &str = "com.apple.management.server-capabilities";

/// The report, typed: a renamed or retyped key fails to parse instead of reading as null.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    #[serde(rename = "StatusItems")]
    items: Items,
    #[serde(rename = "Errors")]
    errors: Vec<Value>,
    #[serde(rename = "FullReport")]
    full: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Items {
    device: Option<DeviceItems>,
    management: Option<ManagementItems>,
    softwareupdate: Option<SoftwareUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceItems {
    #[serde(rename = "operating-system")]
    os: Option<OsItems>,
    identifier: Option<Identifier>,
    model: Option<Model>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identifier {
    udid: Option<String>,
    #[serde(rename = "serial-number")]
    serial_number: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    family: Option<String>,
    identifier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OsItems {
    version: Option<String>,
    #[serde(rename = "build-version")]
    build_version: Option<String>,
    family: Option<String>,
    #[serde(rename = "marketing-name")]
    marketing_name: Option<String>,
    supplemental: Option<Supplemental>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Supplemental {
    #[serde(rename = "build-version")]
    build_version: Option<String>,
    #[serde(rename = "extra-version")]
    extra_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagementItems {
    declarations: Option<Declarations>,
    #[serde(rename = "client-capabilities")]
    capabilities: Option<Capabilities>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capabilities {
    #[serde(rename = "supported-features")]
    features: BTreeMap<String, Value>,
    #[serde(rename = "supported-payloads")]
    payloads: SupportedPayloads,
    #[serde(rename = "supported-versions")]
    versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupportedPayloads {
    declarations: SupportedDeclarations,
    #[serde(rename = "status-items")]
    status_items: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupportedDeclarations {
    activations: Vec<String>,
    assets: Vec<String>,
    configurations: Vec<String>,
    management: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declarations {
    activations: Vec<Decl>,
    configurations: Vec<Decl>,
    assets: Vec<Decl>,
    management: Vec<Decl>,
}

impl Declarations {
    fn all(&self) -> BTreeMap<String, &Decl> {
        self.activations
            .iter()
            .chain(&self.configurations)
            .chain(&self.assets)
            .chain(&self.management)
            .map(|d| (d.identifier.clone(), d))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decl {
    identifier: String,
    #[serde(rename = "server-token")]
    server_token: String,
    active: bool,
    valid: String,
    #[serde(default)]
    reasons: Vec<ReasonItem>,
}

impl Decl {
    fn codes(&self) -> Vec<&str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonItem {
    code: String,
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    details: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftwareUpdate {
    #[serde(rename = "install-state")]
    state: Option<String>,
    #[serde(rename = "pending-version")]
    pending: Option<PendingVersion>,
    #[serde(rename = "failure-reason")]
    failure: Option<FailureReason>,
    #[serde(rename = "install-reason")]
    reason: Option<InstallReason>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct PendingVersion {
    #[serde(rename = "os-version")]
    os_version: String,
    #[serde(rename = "build-version")]
    build_version: String,
    #[serde(rename = "target-local-date-time")]
    target_local_date_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureReason {
    count: u32,
    reason: Option<String>,
    timestamp: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct InstallReason {
    reason: Vec<String>,
    #[serde(rename = "declaration-id")]
    declaration_id: Option<String>,
}

impl Report {
    fn su(&self) -> &SoftwareUpdate {
        self.items
            .softwareupdate
            .as_ref()
            .expect("softwareupdate items")
    }
    fn declarations(&self) -> &Declarations {
        self.items
            .management
            .as_ref()
            .and_then(|m| m.declarations.as_ref())
            .expect("management.declarations")
    }
    fn os(&self) -> &OsItems {
        self.items
            .device
            .as_ref()
            .and_then(|d| d.os.as_ref())
            .expect("device.operating-system items")
    }
    fn state(&self) -> &str {
        self.su().state.as_deref().unwrap()
    }
    fn pending(&self) -> (&str, &str) {
        let p = self.su().pending.as_ref().unwrap();
        (p.os_version.as_str(), p.build_version.as_str())
    }
    fn reason(&self) -> &InstallReason {
        self.su().reason.as_ref().unwrap()
    }
    fn failure(&self) -> &FailureReason {
        self.su().failure.as_ref().unwrap()
    }
}

/// A device, the facts the schemas judge it by, and a checked report reader.
struct Dev {
    d: Device,
    facts: Facts,
    /// The status items an active subscription asks for (the test says which).
    subscribed: std::cell::RefCell<Vec<String>>,
}

impl Dev {
    /// A device made with `init` `flags`; its facts (what Apple's schemas judge it by) follow
    /// from them: the platform's schema OS, the version, and the enrollment (supervised, else a
    /// user enrollment for a Mac and device enrollment for an iPhone or iPad).
    fn with(flags: &[&str]) -> Self {
        let value = |name: &str| flags.iter().position(|f| *f == name).map(|i| flags[i + 1]);
        let os = match value("--platform") {
            None | Some("macOS") => "macOS",
            Some(_) => "iOS",
        };
        let version = value("--version").map_or((26, 3, 1), |v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
            (
                parts.next().unwrap(),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            )
        });
        let enrollment = match (flags.contains(&"--supervised"), os) {
            (true, _) => "supervised",
            (false, "macOS") => "user",
            (false, _) => "device",
        };
        Self {
            d: Device::with(flags),
            facts: Facts {
                os,
                version,
                enrollment,
            },
            subscribed: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn mac() -> Self {
        Self::with(&["--supervised"])
    }

    /// Subscribes to `items` as a server does (a status-subscriptions configuration and its
    /// activation); the reports are then checked to hold exactly those and the implicit ones.
    #[track_caller]
    fn subscribe(&self, items: &[&str]) {
        let list: Vec<Value> = items.iter().map(|i| json!({"Name": i})).collect();
        self.d
            .declare_active(SUBSCRIPTIONS, "subscriptions", json!({"StatusItems": list}));
        self.subscribed
            .borrow_mut()
            .extend(items.iter().map(|i| (*i).to_owned()));
    }

    /// `bsi report` with `args`, validated against Apple's schemas and real shapes, typed. A
    /// plain report is `report --all` (every supported item) and checked so; `--changes` and
    /// `--delivered` are what a device sends, checked against the test's subscriptions.
    #[track_caller]
    fn report_at(&self, now: &str, args: &[&str]) -> Report {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        let sent = args.contains(&"--changes") || args.contains(&"--delivered");
        if !sent {
            all.push("--all");
        }
        let raw = self.d.bsi_at(now, &all).ok().json();
        let full = !args.contains(&"--changes") || raw["FullReport"] == true;
        let subscribed = self.subscribed.borrow();
        let scope = if sent {
            Scope::Subscribed(&subscribed)
        } else {
            Scope::All
        };
        let errors = validate_report(&raw, &self.facts, full, scope);
        assert!(
            errors.is_empty(),
            "report {args:?} does not match Apple's schemas: {errors:#?}\n{raw:#}"
        );
        let shape = same_shape_as_real(&raw);
        assert!(
            shape.is_empty(),
            "report {args:?} differs from real devices' reports: {shape:#?}"
        );
        serde_json::from_value(raw).unwrap()
    }

    #[track_caller]
    fn report(&self) -> Report {
        self.report_at(NOW, &[])
    }
}

fn bundles_dir(names: &[&str]) -> PathBuf {
    let tmp = tempfile::tempdir().unwrap().keep();
    for name in names {
        std::fs::copy(bundle(name), tmp.join(name)).unwrap();
    }
    tmp
}

/// The hint of every refused declaration file.
const DECLARATION_HINT: &str = "hint: a declaration is one JSON object with Type, Identifier, ServerToken and Payload, as a DDM server sends it (fixtures/declarations/ has examples); fix it and `bsi policy set` it again\n";

#[test]
fn declarations_are_kept_and_reported_valid_or_not() {
    let dev = Dev::mac();
    let d = &dev.d;
    // Not a declaration at all: refused, nothing stored.
    let junk = d.dir.path().join("junk.json");
    std::fs::write(&junk, b"[1,2]").unwrap();
    d.refuses(
        ["policy".as_ref(), "set".as_ref(), junk.as_os_str()],
        2,
        "not a DDM declaration",
    )
    .stderr_is(
        &[(d.dir.path(), "[TMP]")],
        &format!("error: [TMP]/junk.json is not a DDM declaration: the top level is not a JSON object\n{DECLARATION_HINT}"),
    );
    let env = d.dir.path().join("env.json");
    std::fs::write(&env, br#"{"Type":"x","Identifier":"y","Payload":{}}"#).unwrap();
    d.refuses(
        ["policy".as_ref(), "set".as_ref(), env.as_os_str()],
        2,
        "`ServerToken` is missing",
    )
    .stderr_is(
        &[(d.dir.path(), "[TMP]")],
        &format!("error: [TMP]/env.json is not a DDM declaration: required key `ServerToken` is missing\n{DECLARATION_HINT}"),
    );

    // A valid configuration no activation references: kept, not active, validity unknown.
    d.declare(
        SETTINGS,
        "rsr",
        json!({"RapidSecurityResponse": {"Enable": false}}),
    )
    .ok()
    .stdout_is(&[], "rsr (com.apple.configuration.softwareupdate.settings): stored\n  not active, validity unknown\n  not active: no active activation references it (`bsi policy set` an activation that lists it in StandardConfigurations)\n");
    let a = bundle("macos-26.3.1-a.bsi");
    // Not in effect: user installs are still allowed.
    d.bsi(["apply".as_ref(), a.as_os_str(), "--dry-run".as_ref()])
        .ok();
    let r = dev.report();
    let c = r.declarations().all()["rsr"];
    assert_eq!((c.active, c.valid.as_str()), (false, "unknown"));
    assert_eq!(c.codes(), ["Info.NotReferencedByActivation"]);
    assert_eq!(c.reasons[0].details["Identifier"], "rsr");
    assert_eq!(c.reasons[0].details["ServerToken"], "1");
    assert_eq!(c.server_token, "1");

    // An activation makes it take effect.
    d.declare(
        ACTIVATION,
        "act",
        json!({"StandardConfigurations": ["rsr"]}),
    )
    .ok()
    .stdout_is(
        &[],
        "act (com.apple.activation.simple): stored\n  active, valid\n  active: activates rsr\n",
    );
    d.refuses(
        ["apply".as_ref(), a.as_os_str()],
        4,
        "RapidSecurityResponse.Enable = false",
    ).stderr_is(&[], "error: installing responses is turned off by declaration rsr (RapidSecurityResponse.Enable = false)\nhint: only an enforcement declaration from the MDM server can install responses on this device\n");
    let r = dev.report();
    let all = r.declarations().all();
    assert_eq!(
        (all["act"].active, all["act"].valid.as_str()),
        (true, "valid")
    );
    assert!(all["act"].reasons.is_empty());
    assert_eq!(
        (all["rsr"].active, all["rsr"].valid.as_str()),
        (true, "valid")
    );
    assert_eq!(r.declarations().activations.len(), 1);

    // An invalid payload: stored and reported, and the command exits 4 saying why.
    d.declare(
        SETTINGS,
        "broken",
        json!({"RapidSecurityResponse": {"Enable": "no"}}),
    )
    .refused(4, "RapidSecurityResponse.Enable` must be a boolean").stderr_is(&[], "error: declaration broken is stored and reported as invalid, but the device cannot use it: The configuration is not valid: `RapidSecurityResponse.Enable` must be a boolean, found a string (Error.ConfigurationIsInvalid)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove broken`\n")
    .stderr_is(&[], "error: declaration broken is stored and reported as invalid, but the device cannot use it: The configuration is not valid: `RapidSecurityResponse.Enable` must be a boolean, found a string (Error.ConfigurationIsInvalid)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove broken`\n");
    // A type this device does not support.
    d.declare(
        "com.apple.configuration.passcode.settings",
        "passcode",
        json!({}),
    )
    .refused(4, "Error.ConfigurationNotSupported").stderr_is(&[], "error: declaration passcode is stored and reported as invalid, but the device cannot use it: `Type` `com.apple.configuration.passcode.settings` is not supported by this device (Error.ConfigurationNotSupported)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove passcode`\n");
    // Unknown keys, and a key macOS does not have: listed, ignored, still valid.
    d.declare(
        SETTINGS,
        "keys",
        json!({"Deferrals": {"CombinedPeriodInDays": 30, "MinorPeriodInDays": 5}, "Future": {"X": 1}}),
    )
    .ok()
    .stdout_is(&[], "keys (com.apple.configuration.softwareupdate.settings): stored\n  not active, validity unknown\n  not active: no active activation references it (`bsi policy set` an activation that lists it in StandardConfigurations)\n  Error.UnknownPayloadKeys: The declaration contains payload keys this device ignores (Deferrals.CombinedPeriodInDays is not supported on macOS 26.3.1 enrolled as supervised)\n");
    d.declare(
        ACTIVATION,
        "act2",
        json!({"StandardConfigurations": ["broken", "passcode", "keys"]}),
    )
    .ok();
    let listed = d.bsi(["policy", "list"]).ok().stdout();
    for id in ["broken", "passcode", "keys", "act2", "rsr", "act"] {
        assert!(listed.contains(id), "{id} not listed:\n{listed}");
    }
    let r = dev.report();
    let all = r.declarations().all();
    assert_eq!(
        (all["broken"].active, all["broken"].valid.as_str()),
        (true, "invalid")
    );
    assert_eq!(all["broken"].codes(), ["Error.ConfigurationIsInvalid"]);
    assert!(
        all["broken"].reasons[0].details["Error"]
            .as_str()
            .unwrap()
            .contains("Enable")
    );
    assert_eq!(all["passcode"].codes(), ["Error.ConfigurationNotSupported"]);
    assert_eq!(all["passcode"].valid, "invalid");
    assert_eq!(
        (all["keys"].active, all["keys"].valid.as_str()),
        (true, "valid")
    );
    assert_eq!(all["keys"].codes(), ["Error.UnknownPayloadKeys"]);
    assert_eq!(
        all["keys"].reasons[0].details["UnknownPayloadKeys"],
        json!(["Deferrals.CombinedPeriodInDays", "Future"])
    );
    // Honoured: the macOS deferral; not the key macOS does not have.
    let notes = d.status().notes.join("\n");
    assert!(notes.contains("MinorPeriodInDays = 5"), "{notes}");
    assert!(!notes.contains("CombinedPeriodInDays = 30"), "{notes}");

    // Predicates: false is valid but inactive; one bsi cannot parse or evaluate is invalid.
    d.declare(
        SETTINGS,
        "ios-only",
        json!({"RapidSecurityResponse": {"EnableRollback": false}}),
    )
    .ok();
    d.declare(
        ACTIVATION,
        "on-ios",
        json!({"StandardConfigurations": ["ios-only"], "Predicate": "@status(device.operating-system.family) == 'iOS'"}),
    )
    .ok()
    .stdout_is(&[], "on-ios (com.apple.activation.simple): stored\n  not active, valid\n  not active (Info.Predicate): The activation's predicate is false on this device\n");
    d.declare(
        ACTIVATION,
        "garbled",
        json!({"StandardConfigurations": ["ios-only"], "Predicate": "@status(x) ~= 1"}),
    )
    .refused(4, "Error.UnableToParsePredicate").stderr_is(&[], "error: declaration garbled is stored and reported as invalid, but the device cannot use it: The activation's predicate cannot be used: unexpected `~` (Error.UnableToParsePredicate)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove garbled`\n");
    d.declare(ACTIVATION, "unknown-item", json!({"StandardConfigurations": ["ios-only"], "Predicate": "@status(softwareupdate.device-id) == 'J413AP'"}))
        .refused(4, "Error.UnableToEvaluatePredicate").stderr_is(&[], "error: declaration unknown-item is stored and reported as invalid, but the device cannot use it: The activation's predicate cannot be used: the device has no status item `softwareupdate.device-id` (Error.UnableToEvaluatePredicate)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove unknown-item`\n");
    d.declare(
        ACTIVATION,
        "missing",
        json!({"StandardConfigurations": ["nowhere"]}),
    )
    .ok();
    let r = dev.report();
    let all = r.declarations().all();
    assert_eq!(
        (all["on-ios"].active, all["on-ios"].valid.as_str()),
        (false, "valid")
    );
    assert_eq!(all["on-ios"].codes(), ["Info.Predicate"]);
    assert_eq!(all["garbled"].valid, "invalid");
    assert_eq!(all["garbled"].codes(), ["Error.UnableToParsePredicate"]);
    assert_eq!(
        all["unknown-item"].codes(),
        ["Error.UnableToEvaluatePredicate"]
    );
    assert_eq!(all["missing"].codes(), ["Error.MissingConfigurations"]);
    assert_eq!(
        all["missing"].reasons[0].details["ConfigurationIdentifiers"],
        json!(["nowhere"])
    );
    assert_eq!(
        (all["ios-only"].active, all["ios-only"].valid.as_str()),
        (false, "unknown")
    );
    // Rollback is not blocked: the only activation of `ios-only` is inactive on a Mac.
    assert!(d.status().policy.rollback_allowed);

    // Management declarations and subscriptions.
    d.declare(
        CAPABILITIES,
        "caps",
        json!({"Version": "1", "SupportedFeatures": {}}),
    )
    .ok();
    d.declare(
        SUBSCRIPTIONS,
        "subs",
        json!({"StatusItems": [{"Name": "softwareupdate.install-state"}]}),
    )
    .ok();
    let r = dev.report();
    let m = &r.declarations().management;
    assert_eq!(
        (m.len(), m[0].active, m[0].valid.as_str()),
        (1, false, "valid")
    );
    assert_eq!(r.declarations().all()["subs"].valid, "unknown");

    // Same identifier: another token replaces, the same one is nothing to do.
    let v2 = d.dir.path().join("rsr-2.json");
    std::fs::write(
        &v2,
        serde_json::to_vec(
            &json!({"Type": SETTINGS, "Identifier": "rsr", "ServerToken": "2", "Payload": {}}),
        )
        .unwrap(),
    )
    .unwrap();
    d.bsi(["policy".as_ref(), "set".as_ref(), v2.as_os_str()])
        .ok()
        .stdout_is(&[], "rsr (com.apple.configuration.softwareupdate.settings): replaced the declaration with ServerToken 1\n  active, valid\n  in effect; no key here affects responses\n");
    d.bsi(["policy".as_ref(), "set".as_ref(), v2.as_os_str()])
        .ok()
        .stdout_is(&[], "rsr (com.apple.configuration.softwareupdate.settings): already stored (same ServerToken); nothing to do\n  active, valid\n  in effect; no key here affects responses\n");
    assert_eq!(dev.report().declarations().all()["rsr"].server_token, "2");
    d.bsi(["apply".as_ref(), a.as_os_str(), "--dry-run".as_ref()])
        .ok();
    d.bsi(["policy", "remove", "broken"]).ok();
    assert!(!dev.report().declarations().all().contains_key("broken"));
    d.refuses(["policy", "remove", "broken"], 2, "no declaration").stderr_is(&[], "error: the device holds no declaration with identifier `broken`\nhint: `bsi policy list` shows the identifiers the device holds\n");
}

#[test]
fn support_follows_os_version_and_enrollment() {
    // macOS 13: no software-update items, no FullReport key, settings not supported.
    let old = Dev::with(&["--supervised", "--version", "13.3.1", "--build", "22E261"]);
    old.d
        .declare(
            ACTIVATION,
            "act",
            json!({"StandardConfigurations": ["s", "e"]}),
        )
        .ok();
    old.d
        .declare(
            SETTINGS,
            "s",
            json!({"RapidSecurityResponse": {"Enable": false}}),
        )
        .refused(4, "not supported on macOS 13.3.1").stderr_is(&[], "error: declaration s is stored and reported as invalid, but the device cannot use it: `com.apple.configuration.softwareupdate.settings` is not supported on macOS 13.3.1 enrolled as supervised (it needs macOS 15.0 or later, enrolled as supervised) (Error.ConfigurationNotSupported)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove s`\n");
    old.d
        .declare(
            ENFORCE,
            "e",
            json!({"TargetOSVersion": "13.3.1", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
        )
        .refused(4, "Error.ConfigurationNotSupported").stderr_is(&[], "error: declaration e is stored and reported as invalid, but the device cannot use it: `com.apple.configuration.softwareupdate.enforcement.specific` is not supported on macOS 13.3.1 enrolled as supervised (it needs macOS 14.0 or later, enrolled as supervised) (Error.ConfigurationNotSupported)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove e`\n");
    let r = old.report();
    assert!(r.items.softwareupdate.is_none());
    assert_eq!(r.full, None);
    let all = r.declarations().all();
    assert_eq!(
        (all["s"].active, all["s"].valid.as_str()),
        (true, "invalid")
    );
    assert_eq!(all["s"].codes(), ["Error.ConfigurationNotSupported"]);
    assert!(old.d.status().policy.user_install_allowed);
    let os = r.os();
    assert_eq!(
        os.supplemental,
        Some(Supplemental {
            build_version: Some("22E261".into()),
            extra_version: Some(String::new())
        })
    );

    // An unsupervised Mac is a user enrollment: settings and enforcement are not supported,
    // and the software-update items are not reported.
    let user = Dev::with(&[]);
    user.d
        .declare(SETTINGS, "s", json!({}))
        .refused(4, "enrolled as user").stderr_is(&[], "error: declaration s is stored and reported as invalid, but the device cannot use it: `com.apple.configuration.softwareupdate.settings` is not supported on macOS 26.3.1 enrolled as user (it needs macOS 15.0 or later, enrolled as supervised) (Error.ConfigurationNotSupported)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove s`\n");
    let r = user.report();
    assert!(r.items.softwareupdate.is_none());
    assert_eq!(
        r.declarations().all()["s"].codes(),
        [
            "Info.NotReferencedByActivation",
            "Error.ConfigurationNotSupported"
        ]
    );
    assert_eq!(r.os().family.as_deref(), Some("macOS"));

    // An unsupervised iPhone (device enrollment) on iOS 17: enforcement yes, settings (iOS 18) no.
    let phone = Dev::with(&[
        "--platform",
        "iOS",
        "--version",
        "17.0",
        "--build",
        "21A329",
    ]);
    phone
        .d
        .declare(
            ENFORCE,
            "e",
            json!({"TargetOSVersion": "17.1", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
        )
        .ok();
    phone
        .d
        .declare(SETTINGS, "s", json!({}))
        .refused(4, "iOS 18.0 or later").stderr_is(&[], "error: declaration s is stored and reported as invalid, but the device cannot use it: `com.apple.configuration.softwareupdate.settings` is not supported on iOS 17.0 enrolled as device (it needs iOS 18.0 or later, enrolled as supervised or device) (Error.ConfigurationNotSupported)\nhint: fix it and `bsi policy set` it again, or `bsi policy remove s`\n");
    phone
        .d
        .declare(
            ACTIVATION,
            "act",
            json!({"StandardConfigurations": ["e", "s"]}),
        )
        .ok();
    let r = phone.report();
    assert_eq!(r.state(), "none");
    assert_eq!(r.declarations().all()["e"].valid, "valid");

    // A supervised iPhone on iOS 26: settings keys per platform. InstallSecurityUpdate acts on
    // iOS (Apple's current documentation; the 18.1 schema said n/a), AllowStandardUserOSUpdates
    // is a macOS key.
    let sup = Dev::with(&["--platform", "iOS", "--supervised"]);
    sup.d.declare_active(
        SETTINGS,
        "s",
        json!({"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOff"}, "RapidSecurityResponse": {"EnableRollback": false}, "AllowStandardUserOSUpdates": false}),
    );
    let s = sup.d.status();
    assert_eq!(
        (
            s.automatic_install.source.as_str(),
            s.automatic_install.enabled
        ),
        ("policy", false)
    );
    assert!(!s.policy.rollback_allowed);
    let r = sup.report();
    assert_eq!(
        r.declarations().all()["s"].reasons[0].details["UnknownPayloadKeys"],
        json!(["AllowStandardUserOSUpdates"])
    );
    // An unsupervised iPhone: RapidSecurityResponse needs supervision.
    let unsup = Dev::with(&["--platform", "iOS"]);
    unsup.d.declare_active(
        SETTINGS,
        "s",
        json!({"RapidSecurityResponse": {"Enable": false}}),
    );
    assert!(unsup.d.status().policy.user_install_allowed);
    unsup.report();
}

#[test]
fn an_enforcement_walks_from_before_its_deadline_to_after_it() {
    let dir = bundles_dir(&["macos-26.3.1-a.bsi.tar", "macos-26.3.1-b.bsi.tar"]);
    let dev = Dev::with(&["--supervised", "--battery", "5", "--no-ac"]);
    let d = &dev.d;
    d.declare_active(SETTINGS, "block", json!({"RapidSecurityResponse": {"Enable": false}, "AutomaticActions": {"InstallSecurityUpdate": "AlwaysOff"}}));
    d.declare_active(
        ENFORCE,
        "enforce-a",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
    );
    let auto = |now: &str| d.bsi_at(now, ["auto".as_ref(), "--from".as_ref(), dir.as_os_str()]);
    let r = dev.report();
    assert_eq!((r.state(), r.pending()), ("none", ("", "")));
    assert_eq!(
        r.reason(),
        &InstallReason {
            reason: vec![],
            declaration_id: None
        }
    );

    // Before the deadline, without power: wanted, waiting to start, not a failure; the pending
    // version carries the enforcement's deadline, as Apple's current schema has it.
    auto("2026-12-01T11:00:00Z")
        .ok()
        .stdout_is(&[], "enforcement enforce-a: 26.3.1 (a) is due at 2026-12-01T12:00:00 local time; waiting for power to prepare it\n");
    let r = dev.report();
    assert_eq!(
        (r.state(), r.pending()),
        ("waiting", ("26.3.1 (a)", "25D771280a"))
    );
    assert_eq!(
        r.su()
            .pending
            .as_ref()
            .unwrap()
            .target_local_date_time
            .as_deref(),
        Some("2026-12-01T12:00:00")
    );
    assert_eq!(
        r.reason(),
        &InstallReason {
            reason: vec!["declaration".into()],
            declaration_id: Some("enforce-a".into())
        }
    );
    assert_eq!(r.failure().count, 0);

    // Before the deadline, with power: prepared (staged), the user prompted, not restarted.
    d.bsi(["power", "--ac"]).ok();
    auto("2026-12-01T11:10:00Z")
        .ok()
        .stdout_is(&[], "enforcement enforce-a: 26.3.1 (a) is due at 2026-12-01T12:00:00 local time; preparing it now\n26.3.1 (a) is staged; restart to activate it (`bsi restart`), or relaunch Safari (`bsi relaunch-safari`) to use its Safari content now\n26.3.1 (a) is prepared; the user is prompted to restart (`bsi restart`), or the deadline restarts the device\n");
    let r = dev.report();
    assert_eq!(
        (r.state(), r.pending()),
        ("prepared", ("26.3.1 (a)", "25D771280a"))
    );
    let s = d.status();
    assert_eq!(s.active, None);
    assert_eq!(
        s.prompt.as_deref(),
        Some("restart to finish installing 26.3.1 (a): `bsi restart`")
    );
    d.bsi(["status"]).ok().stdout_has("prompt:");
    auto("2026-12-01T11:20:00Z").ok().stdout_is(&[], "enforcement enforce-a: 26.3.1 (a) is prepared; the device restarts into it at the deadline 2026-12-01T12:00:00 local time unless the user restarts first\n26.3.1 (b) is available, but automatic install is off (declaration block)\n");

    // After the deadline, without power: the restart is refused, recorded as a failure.
    d.bsi(["power", "--battery", "5", "--no-ac"]).ok();
    auto("2026-12-01T12:10:00Z").refused(3, "below the 10 % minimum").stderr_is(&[], "error: battery at 5 % is below the 10 % minimum for a Mac laptop with Apple silicon, and the device is not on power\nhint: connect the device to power (`bsi power --ac`) or charge it, then try again\n");
    let r = dev.report_at("2026-12-01T12:11:00Z", &[]);
    assert_eq!(
        (r.state(), r.pending()),
        ("failed", ("26.3.1 (a)", "25D771280a"))
    );
    let f = r.failure();
    assert_eq!(f.count, 1);
    assert!(f.reason.as_deref().unwrap().contains("battery"));
    // bsi's own detail (error kind and exit code) is in `status --json`, not in Apple's item.
    let failure = d
        .status()
        .install_failure
        .expect("status keeps the failure's detail");
    assert_eq!(
        (failure.error_domain.as_deref(), failure.error_code),
        (Some("bsi.power"), Some(3))
    );
    assert_eq!(f.timestamp.as_deref(), Some("2026-12-01T12:10:00Z"));
    auto("2026-12-01T12:20:00Z").exit(3);
    assert_eq!(dev.report().failure().count, 2);

    // Power returns: the deadline restarts into it; the failure is cleared.
    d.bsi(["power", "--ac"]).ok();
    auto("2026-12-01T13:00:00Z")
        .ok()
        .stdout_is(&[], "enforcement enforce-a: the deadline 2026-12-01T12:00:00 has passed; restarting into 26.3.1 (a)\nrestarted; 26.3.1 (a) is active\n");
    let s = d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (a)");
    assert_eq!(s.prompt, None);
    let r = dev.report();
    assert_eq!((r.state(), r.pending()), ("none", ("", "")));
    assert_eq!(r.failure().count, 0);
    assert!(r.failure().reason.is_none() && r.failure().timestamp.is_none());
    assert_eq!(r.reason().reason, Vec::<String>::new());
    let os = r.os();
    assert_eq!(os.build_version.as_deref(), Some("25D2128"));
    assert_eq!(os.version.as_deref(), Some("26.3.1"));
    assert_eq!(
        os.supplemental,
        Some(Supplemental {
            build_version: Some("25D771280a".into()),
            extra_version: Some("(a)".into())
        })
    );
    assert!(r.errors.is_empty());
    assert_eq!(r.full, Some(true));
    // Nothing more to do; (b) is not installed: user installs are off and the enforcement is met.
    auto("2026-12-01T14:00:00Z").ok().stdout_is(&[], "enforcement enforce-a: 26.3.1 (a) is satisfied by 26.3.1 (a)\n26.3.1 (b) is available, but automatic install is off (declaration block)\n");
    assert_eq!(d.status().active.as_ref().unwrap().version, "26.3.1 (a)");
}

#[test]
fn a_due_enforcement_with_nothing_prepared_installs_and_restarts() {
    let dir = bundles_dir(&["macos-26.3.1-a.bsi.tar"]);
    let dev = Dev::mac();
    dev.d.declare_active(
        ENFORCE,
        "e",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    dev.d.bsi(["settings", "--automatic", "off"]).ok();
    dev.d
        .bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_is(&[], "enforcement e: the deadline 2026-12-01T09:00:00 has passed; installing 26.3.1 (a) and restarting\n26.3.1 (a) is active (staged, then restarted)\n");
    assert_eq!(
        dev.d.status().active.as_ref().unwrap().version,
        "26.3.1 (a)"
    );
    assert_eq!(dev.report().state(), "none");
}

#[test]
fn automatic_install_stages_and_prompts_and_app_only_is_active_at_once() {
    let dir = bundles_dir(&[
        "macos-26.3.1-a.bsi.tar",
        "macos-26.3.1-b.bsi.tar",
        "macos-26.4-a.bsi.tar",
    ]);
    let dev = Dev::mac();
    let d = &dev.d;
    d.bsi(["settings", "--automatic", "off"]).ok();
    d.bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_is(&[], "26.3.1 (b) is available, but automatic install is off (user's setting)\n26.4 (a) waits for the minor update to 26.4\n");
    assert_eq!(dev.report().state(), "none");
    d.bsi(["settings", "--automatic", "on"]).ok();
    d.bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_is(&[], "automatic install is on; installing 26.3.1 (b)\n26.3.1 (b) is staged; restart to activate it (`bsi restart`), or relaunch Safari (`bsi relaunch-safari`) to use its Safari content now\n26.3.1 (b) is prepared; the user is prompted to restart (`bsi restart`)\n26.4 (a) waits for the minor update to 26.4\n");
    let s = d.status();
    assert_eq!(s.active, None);
    assert_eq!(s.staged.as_ref().unwrap().version, "26.3.1 (b)");
    assert_eq!(
        s.prompt.as_deref(),
        Some("restart to finish installing 26.3.1 (b): `bsi restart`")
    );
    let r = dev.report();
    assert_eq!(
        (r.state(), r.pending()),
        ("prepared", ("26.3.1 (b)", "25D771280b"))
    );
    assert_eq!(
        r.reason(),
        &InstallReason {
            reason: vec!["auto-update".into()],
            declaration_id: None
        }
    );
    // Another pass does not restart; the user's restart installs it.
    d.bsi(["auto".as_ref(), "--from".as_ref(), dir.as_os_str()])
        .ok()
        .stdout_is(
            &[(dir.as_path(), "[DIR]")],
            "no applicable response newer than 26.3.1 (b) in [DIR]\n26.3.1 (b) is prepared; the user is prompted to restart (`bsi restart`)\n26.4 (a) waits for the minor update to 26.4\n",
        );
    assert_eq!(d.status().active, None);
    d.bsi(["restart"]).ok();
    let r = dev.report();
    assert_eq!((r.state(), r.pending()), ("none", ("", "")));
    assert_eq!(d.status().active.as_ref().unwrap().version, "26.3.1 (b)");

    // App-only content is active at once.
    let app = bundles_dir(&["macos-26.3.1-d-app-only.bsi.tar"]);
    let fresh = Dev::mac();
    fresh
        .d
        .bsi(["auto".as_ref(), "--from".as_ref(), app.as_os_str()])
        .ok();
    let s = fresh.d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (d)");
    assert_eq!(s.prompt, None);
    assert_eq!(fresh.report().state(), "none");

    // A staged removal is not a pending update.
    d.bsi(["rollback"]).ok();
    assert_eq!(d.status().staged.as_ref().unwrap().action, "remove");
    let r = dev.report();
    assert_eq!((r.state(), r.pending()), ("none", ("", "")));
    assert!(r.reason().reason.is_empty());
}

#[test]
fn a_command_line_install_is_reported_while_pending() {
    let dev = Dev::mac();
    dev.d
        .bsi(["apply".as_ref(), bundle("macos-26.3.1-b.bsi").as_os_str()])
        .ok();
    let r = dev.report();
    assert_eq!(
        (r.state(), r.pending()),
        ("prepared", ("26.3.1 (b)", "25D771280b"))
    );
    assert_eq!(
        r.reason(),
        &InstallReason {
            reason: vec!["command-line".into()],
            declaration_id: None
        }
    );
    // A user's command the power gate or the policy refuses is no install failure (issue 25
    // item 11): the staged response is still what is pending, prepared, with no failure.
    dev.d.bsi(["power", "--battery", "3", "--no-ac"]).ok();
    dev.d
        .bsi(["apply".as_ref(), bundle("macos-26.3.1-c.bsi").as_os_str()])
        .exit(3);
    let r = dev.report();
    assert_eq!(
        (r.state(), r.pending(), r.failure().count),
        ("prepared", ("26.3.1 (b)", "25D771280b"), 0)
    );
    assert!(dev.d.status().install_failure.is_none());
    dev.d.bsi(["power", "--ac"]).ok();
    dev.d.declare_active(
        SETTINGS,
        "no-user-installs",
        json!({"RapidSecurityResponse": {"Enable": false}}),
    );
    dev.d
        .bsi(["apply".as_ref(), bundle("macos-26.3.1-c.bsi").as_os_str()])
        .exit(4);
    let r = dev.report();
    assert_eq!((r.state(), r.failure().count), ("prepared", 0));
    dev.d
        .bsi(["policy", "remove", "no-user-installs.activation"])
        .ok();
    dev.d
        .bsi([
            "apply".as_ref(),
            bundle("macos-26.3.1-c.bsi").as_os_str(),
            "--restart".as_ref(),
        ])
        .ok();
    let r = dev.report();
    assert_eq!((r.state(), r.failure().count), ("none", 0));
}

#[cfg(feature = "failpoints")]
#[test]
fn downloading_and_installing_are_visible_while_they_run() {
    use std::process::{Command, Stdio};
    let dev = Dev::mac();
    for (point, want) in [
        ("stage.streaming", "downloading"),
        ("apply.switching", "installing"),
    ] {
        let child = Command::new(bin())
            .args([
                "--root".as_ref(),
                dev.d.root.as_os_str(),
                "--now".as_ref(),
                NOW.as_ref(),
                "apply".as_ref(),
            ])
            .arg(bundle("macos-26.3.1-a.bsi"))
            .arg("--restart")
            .env("FAILPOINTS", format!("{point}=sleep(2500)"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let mut seen = None;
        while start.elapsed() < std::time::Duration::from_secs(10) {
            let r = dev.report();
            if r.state() == want {
                seen = Some((
                    r.pending().0.to_owned(),
                    r.pending().1.to_owned(),
                    r.reason().reason.clone(),
                ));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(child.wait_with_output().unwrap().status.success());
        assert_eq!(
            seen,
            Some((
                "26.3.1 (a)".to_owned(),
                "25D771280a".to_owned(),
                vec!["command-line".to_owned()]
            )),
            "{want} was never reported while {point} ran"
        );
        assert_eq!(dev.report().state(), "none");
        dev.d.bsi(["rollback", "--restart"]).ok();
    }
}

#[test]
fn incremental_reports_hold_only_what_changed() {
    let dev = Dev::mac();
    let d = &dev.d;
    dev.subscribe(&[
        "device.operating-system.version",
        "device.operating-system.supplemental.extra-version",
        "softwareupdate.install-state",
        "softwareupdate.pending-version",
        "softwareupdate.install-reason",
        "softwareupdate.failure-reason",
    ]);
    // Nothing delivered yet: the whole report.
    let r = dev.report_at(NOW, &["--changes"]);
    assert_eq!(r.full, Some(true));
    // Reading never writes; marking delivered does.
    let before = Tree::of(&d.root);
    dev.report();
    before.assert_same(&Tree::of(&d.root));
    dev.report_at(NOW, &["--delivered"]);
    let r = dev.report_at(NOW, &["--changes"]);
    assert_eq!(r.full, Some(false));
    assert!(
        r.items.device.is_none()
            && r.items.softwareupdate.is_none()
            && r.items.management.is_none()
    );
    d.bsi(["apply".as_ref(), bundle("macos-26.3.1-b.bsi").as_os_str()])
        .ok();
    let r = dev.report_at(NOW, &["--changes", "--delivered"]);
    assert_eq!(r.full, Some(false));
    let su = r.su();
    assert_eq!(su.state.as_deref(), Some("prepared"));
    assert!(su.pending.is_some() && su.reason.is_some());
    assert!(su.failure.is_none(), "failure-reason did not change");
    assert!(r.items.device.is_none() && r.items.management.is_none());
    let r = dev.report_at(NOW, &["--changes"]);
    assert!(r.items.softwareupdate.is_none());
    d.declare(SETTINGS, "s", json!({})).ok();
    let r = dev.report_at(NOW, &["--changes", "--delivered"]);
    assert_eq!(
        r.declarations().configurations.len(),
        2,
        "the subscription and s"
    );
    assert!(r.items.softwareupdate.is_none());
    // The restart changes the supplemental build too, which nothing subscribes to: only the
    // subscribed extra version is sent.
    d.bsi(["restart"]).ok();
    let r = dev.report_at(NOW, &["--changes"]);
    assert_eq!(
        r.os().supplemental,
        Some(Supplemental {
            build_version: None,
            extra_version: Some("(b)".into())
        })
    );
    // The plain report stays full.
    assert_eq!(dev.report().full, Some(true));
}

#[test]
fn issue25_item9_a_report_holds_the_subscribed_items_and_the_implicit_ones() {
    let dev = Dev::mac();
    // Nothing subscribed: the client's capabilities and its declarations, nothing else.
    let r = dev.report_at(NOW, &["--delivered"]);
    assert!(r.items.device.is_none() && r.items.softwareupdate.is_none());
    let m = r.items.management.as_ref().unwrap();
    let caps = m
        .capabilities
        .as_ref()
        .expect("management.client-capabilities");
    assert_eq!(caps.versions, ["1.0.0"]);
    assert!(caps.features.is_empty());
    assert!(
        caps.payloads
            .status_items
            .iter()
            .any(|i| i == "softwareupdate.install-state")
    );
    assert_eq!(
        caps.payloads.declarations.activations,
        ["com.apple.activation.simple"]
    );
    assert!(caps.payloads.declarations.assets.is_empty());
    assert!(
        caps.payloads
            .declarations
            .configurations
            .iter()
            .any(|c| c == SUBSCRIPTIONS)
    );
    assert_eq!(caps.payloads.declarations.management, [CAPABILITIES]);
    // A subscription sends the newly subscribed items at once, with what they hold now.
    dev.subscribe(&[
        "softwareupdate.install-state",
        "device.model.family",
        "device.identifier.udid",
        "device.operating-system.marketing-name",
    ]);
    let r = dev.report_at(NOW, &["--changes", "--delivered"]);
    assert_eq!(r.state(), "none");
    let device = r.items.device.as_ref().unwrap();
    assert_eq!(
        device
            .model
            .as_ref()
            .map(|m| (m.family.as_deref(), m.identifier.as_deref())),
        Some((Some("Mac"), None))
    );
    let id = device.identifier.as_ref().unwrap();
    assert!(id.udid.as_deref().is_some_and(|u| !u.is_empty()) && id.serial_number.is_none());
    assert_eq!(r.os().marketing_name.as_deref(), Some("Tahoe"));
    // Nothing changed since: nothing is sent.
    let r = dev.report_at(NOW, &["--changes"]);
    assert!(r.items.device.is_none() && r.items.softwareupdate.is_none());
}

#[test]
fn every_report_bsi_can_produce_matches_apples_schemas() {
    // Devices across platforms, OS versions and enrollments, each in several states; every
    // report (full and incremental) is validated by `report_at`.
    let devices = [
        vec!["--supervised"],
        vec![],
        vec!["--supervised", "--version", "13.3.1", "--build", "22E261"],
        vec!["--supervised", "--version", "14.0", "--build", "23A344"],
        vec![
            "--platform",
            "iOS",
            "--version",
            "16.0",
            "--build",
            "20A362",
        ],
        vec![
            "--platform",
            "iOS",
            "--version",
            "17.0",
            "--build",
            "21A329",
        ],
        vec!["--platform", "iPadOS", "--supervised"],
        vec!["--platform", "iOS"],
    ];
    for flags in devices {
        let dev = Dev::with(&flags);
        let d = &dev.d;
        dev.report();
        dev.report_at(NOW, &["--changes", "--delivered"]);
        for (kind, id, payload) in [
            (
                SETTINGS,
                "s",
                json!({"RapidSecurityResponse": {"EnableRollback": false}, "Deferrals": {"CombinedPeriodInDays": 3}, "Unknown": 1}),
            ),
            (SETTINGS, "bad", json!({"Notifications": "yes"})),
            (
                ENFORCE,
                "e",
                json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
            ),
            (
                SUBSCRIPTIONS,
                "subs",
                json!({"StatusItems": [{"Name": "softwareupdate.install-state"}]}),
            ),
            (
                CAPABILITIES,
                "caps",
                json!({"Version": "1", "SupportedFeatures": {}}),
            ),
            ("com.apple.asset.data", "asset", json!({})),
            (
                ACTIVATION,
                "act",
                json!({"StandardConfigurations": ["s", "bad", "e"]}),
            ),
            (
                ACTIVATION,
                "pred",
                json!({"StandardConfigurations": ["subs"], "Predicate": "@status(device.operating-system.version) BEGINSWITH '1'"}),
            ),
            (SETTINGS, "lonely", json!({})),
        ] {
            let _ = d.declare(kind, id, payload);
            dev.report();
        }
        // `pred` activates the subscription where the OS version begins with 1.
        if dev.facts.version.0 < 20 {
            dev.subscribed
                .borrow_mut()
                .push("softwareupdate.install-state".to_owned());
        }
        dev.report_at(NOW, &["--changes"]);
        let os = dev.facts.os;
        let name = match (os, dev.facts.version.0) {
            ("macOS", 26) => Some("macos-26.3.1-b.bsi"),
            ("iOS", 26) => Some("ios-26.3.1-a.bsi"),
            _ => None,
        };
        if let Some(name) = name {
            d.bsi(["power", "--battery", "1", "--no-ac"]).ok();
            let _ = d.bsi(["apply".as_ref(), bundle(name).as_os_str()]);
            dev.report();
            d.bsi(["power", "--ac"]).ok();
            let _ = d.bsi(["apply".as_ref(), bundle(name).as_os_str()]);
            dev.report();
            dev.report_at(NOW, &["--changes"]);
            let _ = d.bsi(["restart"]);
            dev.report();
        }
    }
}

#[test]
fn ipados_takes_ios_bundles() {
    let d = Device::with(&["--platform", "iPadOS"]);
    d.activate(bundle("ios-26.3.1-a.bsi"));
    let s = d.status();
    assert_eq!(s.active.as_ref().unwrap().version, "26.3.1 (a)");
    assert_eq!(s.device.platform, "iPadOS");
    d.bsi(["verify"]).ok();
    d.refuses(
        ["apply".as_ref(), bundle("macos-26.3.1-b.bsi").as_os_str()],
        5,
        "for macOS",
    ).stderr_is(&[], "error: this bundle is for macOS; the device runs iPadOS\nhint: use a bundle made for the device's platform\n");
    // An iPhone does not take a bundle made for iPadOS.
    let phone = Device::with(&["--platform", "iOS"]);
    let app = phone.dir.path().join("app");
    std::fs::create_dir_all(app.join("Applications/Safari.app/Contents")).unwrap();
    std::fs::write(
        app.join("Applications/Safari.app/Contents/Info.plist"),
        b"safari",
    )
    .unwrap();
    let ipad_bundle = phone.dir.path().join("ipad.bsi");
    bsi([
        "bundle".as_ref(),
        "create".as_ref(),
        "--product".as_ref(),
        "iPadOS".as_ref(),
        "--version".as_ref(),
        "26.3.1".as_ref(),
        "--extra".as_ref(),
        "(b)".as_ref(),
        "--build".as_ref(),
        "23D771330b".as_ref(),
        "--prerequisite".as_ref(),
        "23D8133".as_ref(),
        "--app".as_ref(),
        app.as_os_str(),
        "--out".as_ref(),
        ipad_bundle.as_os_str(),
    ])
    .ok();
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        ipad_bundle.as_os_str(),
        "--key".as_ref(),
        fixtures().join("keys/test-only.key").as_os_str(),
    ])
    .ok();
    phone.refuses(["apply".as_ref(), ipad_bundle.as_os_str()], 5, "for iPadOS").stderr_is(&[], "error: this bundle is for iPadOS; the device runs iOS\nhint: use a bundle made for the device's platform\n");
}

#[test]
fn a_minor_update_with_a_catalog_includes_every_published_response() {
    let d = Device::new();
    d.activate(bundle("macos-26.3.1-a.bsi"));
    let catalog = fixtures().join("catalog.json");
    d.bsi([
        "update".as_ref(),
        "--version".as_ref(),
        "26.4".as_ref(),
        "--build".as_ref(),
        "25E100".as_ref(),
        "--catalog".as_ref(),
        catalog.as_os_str(),
    ])
    .ok()
    .stdout_is(&[], "moved from 26.3.1 (a) to 26.4 (25E100)\n26.4 includes 26.3.1 (a) ... (d); it replaces the active 26.3.1 (a) (the new base includes it)\n");
    assert_eq!(
        d.status().included,
        ["26.3.1 (a)", "26.3.1 (b)", "26.3.1 (c)", "26.3.1 (d)"]
    );
    // Without a catalog: only what the device saw.
    let e = Device::new();
    e.activate(bundle("macos-26.3.1-a.bsi"));
    e.bsi(["update", "--version", "26.4", "--build", "25E100"])
        .ok();
    assert_eq!(e.status().included, ["26.3.1 (a)"]);
    e.refuses(
        [
            "upgrade".as_ref(),
            "--version".as_ref(),
            "27.0".as_ref(),
            "--build".as_ref(),
            "26A100".as_ref(),
            "--catalog".as_ref(),
            catalog.as_os_str(),
        ],
        2,
        "--catalog applies to `bsi update`",
    ).stderr_is(&[], "error: --catalog applies to `bsi update`: a major upgrade includes no responses\nhint: leave --catalog out\n");
}

#[test]
fn lookup_lists_and_answers() {
    let cat = fixtures().join("catalog.json");
    let v: LookupView = bsi([
        "--now".as_ref(),
        "2026-12-01T00:00:00Z".as_ref(),
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--json".as_ref(),
    ])
    .ok()
    .parse();
    assert!(v.releases.len() >= 4);
    let expired = v
        .background_security_improvements
        .iter()
        .filter(|e| e.expired)
        .count();
    assert_eq!(expired, 3, "the 2023 responses are expired");
    bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (a)".as_ref(),
        "--platform".as_ref(),
        "macOS".as_ref(),
    ])
    .ok()
    .stdout_is(&[], "26.3.1 (a): TargetOSVersion 26.3.1, TargetBuildVersion 25D771280a (macOS)\nenforcement payload: {\"TargetBuildVersion\":\"25D771280a\",\"TargetLocalDateTime\":\"YYYY-MM-DDThh:mm:ss\",\"TargetOSVersion\":\"26.3.1\"}\n");
    let v: LookupView = bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (a)".as_ref(),
        "--platform".as_ref(),
        "iPadOS".as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .parse();
    assert_eq!(v.answer.unwrap().target_build_version, "23D771330a");
    bsi([
        "lookup".as_ref(),
        "--catalog".as_ref(),
        cat.as_os_str(),
        "--version".as_ref(),
        "26.3.1 (z)".as_ref(),
    ])
    .refused(2, "lists no").stderr_is(&[], "error: the catalog lists no background security improvement 26.3.1 (z)\nhint: `bsi lookup --catalog FILE` without a version lists what it holds\n");
    bsi(["lookup", "--catalog", "Cargo.toml"]).refused(2, "not a software lookup catalog").stderr_is(&[], "error: Cargo.toml: not a software lookup catalog: the top level is not a JSON object\nhint: give the JSON the Apple Software Lookup Service publishes (fixtures/catalog.json has its shape)\n");
}

/// `auto --from DIR` at `now`.
fn auto_at(d: &Device, now: &str, dir: &std::path::Path, extra: &[&str]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec!["auto".as_ref(), "--from".as_ref(), dir.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    d.bsi_at(now, args)
}

#[test]
fn issue25_item10_a_same_or_older_target_is_an_error_for_the_declaration() {
    for (target, build, why) in [
        ("26.3.1", None, "is the version the device runs"),
        ("26.3", None, "is older than the 26.3.1"),
        ("26.2", Some("25C56"), "is older than the 26.3.1"),
        // A base build that cannot follow the device's is inconsistent: the OS version wins.
        ("26.3.1", Some("24A1"), "is the version the device runs"),
    ] {
        let dev = Dev::mac();
        let mut payload =
            json!({"TargetOSVersion": target, "TargetLocalDateTime": "2026-12-01T09:00:00"});
        if let Some(b) = build {
            payload["TargetBuildVersion"] = b.into();
        }
        dev.d.declare_active(ENFORCE, "e", payload);
        let r = dev.report();
        let e = r.declarations().all()["e"];
        assert_eq!((e.active, e.valid.as_str()), (true, "invalid"), "{target}");
        assert_eq!(
            e.codes(),
            ["Error.ConfigurationCannotBeApplied"],
            "{target}"
        );
        let detail = e.reasons[0].details["Error"].as_str().unwrap();
        assert!(
            detail.starts_with("DowngradeNotSupported") && detail.contains(why),
            "{target}: {detail}"
        );
        // An invalid enforcement enforces nothing.
        let dir = bundles_dir(&["macos-26.3.1-a.bsi.tar"]);
        dev.d.bsi(["settings", "--automatic", "off"]).ok();
        let before = dev.d.status();
        auto_at(&dev.d, "2026-12-01T10:00:00Z", &dir, &[]).ok();
        assert_eq!(dev.d.status().active, before.active, "{target}");
    }
}

#[test]
fn issue25_item10_an_inconsistent_build_yields_to_the_os_version() {
    // TargetOSVersion 26.4 with the device's own base build: the build cannot be 26.4's, so
    // the target is the OS update to 26.4, whose build the catalog names.
    let dev = Dev::mac();
    dev.d.declare_active(
        ENFORCE,
        "e",
        json!({"TargetOSVersion": "26.4", "TargetBuildVersion": "25D2128", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    assert_eq!(dev.report().declarations().all()["e"].valid, "valid");
    let dir = bundles_dir(&[]);
    let catalog = fixtures().join("catalog.json");
    auto_at(
        &dev.d,
        "2026-12-01T10:00:00Z",
        &dir,
        &["--catalog", catalog.to_str().unwrap()],
    )
    .ok()
    .stdout_is(&[], "enforcement e: the deadline 2026-12-01T09:00:00 has passed; phase 1: updating to 26.4 (25E100)\n26.4 includes 26.3.1 (a) ... (d)\n");
    let s = dev.d.status();
    assert_eq!(
        (s.os.version.as_str(), s.os.build.as_str()),
        ("26.4", "25E100")
    );
    assert_eq!(s.active, None);
    // Met: the next pass says so and does nothing.
    auto_at(&dev.d, "2026-12-01T11:00:00Z", &dir, &[])
        .ok()
        .stdout_is(
            &[(dir.as_path(), "[DIR]")],
            "enforcement e: the device already runs 26.4 (25E100)\nno applicable response newer than 26.4 in [DIR]\n",
        );
}

#[test]
fn issue25_item10_a_response_for_a_later_minor_updates_the_base_first() {
    let dir = bundles_dir(&["macos-26.4-a.bsi.tar", "macos-26.3.1-a.bsi.tar"]);
    let dev = Dev::mac();
    let d = &dev.d;
    d.declare_active(
        ENFORCE,
        "e",
        json!({"TargetOSVersion": "26.4", "TargetBuildVersion": "25E771000a", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    d.bsi(["settings", "--automatic", "off"]).ok();
    // Before the deadline: the plan, and nothing changes.
    let before = d.status();
    auto_at(d, "2026-12-01T08:00:00Z", &dir, &[])
        .ok()
        .stdout_is(&[], "enforcement e: due at 2026-12-01T09:00:00 local time; at the deadline the device updates to 26.4 (25E100), then installs 26.4 (a)\n26.3.1 (a) is available, but automatic install is off (user's setting)\n26.4 (a) waits for the minor update to 26.4\n");
    assert_eq!(
        (d.status().os, d.status().active),
        (before.os.clone(), None)
    );
    // A dry run after it says both phases and changes nothing.
    let tree = d.tree();
    auto_at(d, "2026-12-01T10:00:00Z", &dir, &["--dry-run"])
        .ok()
        .stdout_is(&[], "enforcement e: the deadline 2026-12-01T09:00:00 has passed; the device would update to 26.4 (25E100), then install 26.4 (a)\n");
    tree.assert_same(&d.tree());
    // After it: phase 1, the OS update; phase 2, the response; each is reported.
    let out = auto_at(d, "2026-12-01T10:00:00Z", &dir, &["--json"])
        .ok()
        .json();
    assert_eq!(out["updated"], "26.4 (25E100)");
    assert_eq!(out["installed"], "26.4 (a)");
    assert_eq!(out["declaration"], "e");
    let log: Vec<String> = serde_json::from_value(out["log"].clone()).unwrap();
    let phase1 = log
        .iter()
        .position(|l| l.contains("phase 1: updating to 26.4 (25E100)"));
    let phase2 = log
        .iter()
        .position(|l| l.contains("phase 2: installing 26.4 (a)"));
    assert!(phase1.is_some() && phase1 < phase2, "{log:?}");
    let s = d.status();
    assert_eq!(
        (s.os.version.as_str(), s.os.build.as_str()),
        ("26.4", "25E100")
    );
    assert_eq!(s.active_version(), Some("26.4 (a)"));
    assert!(s.recovery_pending.is_none());
    d.bsi(["verify"]).ok();
    let r = dev.report();
    assert_eq!((r.state(), r.pending()), ("none", ("", "")));
    assert_eq!(
        r.os()
            .supplemental
            .as_ref()
            .unwrap()
            .extra_version
            .as_deref(),
        Some("(a)")
    );
    // Met, the declaration keeps the status it had when the device took it: valid, no error.
    let e = r.declarations().all()["e"];
    assert_eq!(
        (e.active, e.valid.as_str(), e.codes().len()),
        (true, "valid", 0)
    );
    auto_at(d, "2026-12-01T11:00:00Z", &dir, &[])
        .ok()
        .stdout_is(
            &[(dir.as_path(), "[DIR]")],
            "enforcement e: 26.4 (a) is satisfied by 26.4 (a)\nno applicable response newer than 26.4 (a) in [DIR]\n",
        );
    // Without the power it needs, the update does not start and the attempt is a failure.
    let dev = Dev::with(&["--supervised", "--battery", "5", "--no-ac"]);
    dev.d.declare_active(
        ENFORCE,
        "e",
        json!({"TargetOSVersion": "26.4", "TargetBuildVersion": "25E771000a", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    let before = dev.d.status();
    auto_at(&dev.d, "2026-12-01T10:00:00Z", &dir, &[]).refused(3, "below the 10 % minimum").stderr_is(&[], "error: battery at 5 % is below the 10 % minimum for a Mac laptop with Apple silicon, and the device is not on power\nhint: connect the device to power (`bsi power --ac`) or charge it, then try again\n");
    assert_eq!(dev.d.status().os, before.os);
    let r = dev.report();
    assert_eq!((r.state(), r.failure().count), ("failed", 1));
}

#[test]
fn issue25_item10_before_macos_15_the_os_update_comes_on_its_own() {
    let dev = Dev::with(&["--supervised", "--version", "14.0", "--build", "23A344"]);
    dev.d.declare_active(
        ENFORCE,
        "e",
        json!({"TargetOSVersion": "14.1", "TargetBuildVersion": "23B74", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    let before = dev.d.status();
    let empty = bundles_dir(&[]);
    auto_at(&dev.d, "2026-12-01T10:00:00Z", &empty, &[])
        .ok()
        .stdout_is(
            &[(empty.as_path(), "[DIR]")],
            "enforcement e: 14.1 (23B74) is an OS update; devices before macOS 15.0 install it on its own first (`bsi update --version 14.1 --build 23B74`)\nno applicable response newer than 14.0 in [DIR]\n",
        );
    assert_eq!(dev.d.status().os, before.os);
}

#[test]
fn issue25_item11_a_refused_user_action_is_no_install_failure() {
    // Nothing pending; the user's apply refused by policy: nothing failed, no keys Apple's schema
    // does not have (the validator in `report_at` refuses them), bsi's detail nowhere.
    let dev = Dev::mac();
    dev.subscribe(&[
        "softwareupdate.install-state",
        "softwareupdate.failure-reason",
    ]);
    dev.d.declare_active(
        SETTINGS,
        "s",
        json!({"RapidSecurityResponse": {"Enable": false}}),
    );
    let tree = dev.d.tree();
    dev.d
        .bsi(["apply".as_ref(), bundle("macos-26.3.1-a.bsi").as_os_str()])
        .refused(4, "declaration s").stderr_is(&[], "error: installing responses is turned off by declaration s (RapidSecurityResponse.Enable = false)\nhint: only an enforcement declaration from the MDM server can install responses on this device\n");
    tree.assert_same(&dev.d.tree());
    let r = dev.report_at(NOW, &["--delivered"]);
    assert_eq!((r.state(), r.failure().count), ("none", 0));
    assert!(r.failure().reason.is_none() && r.failure().timestamp.is_none());
    assert!(dev.d.status().install_failure.is_none());
}

#[test]
fn issue25_item12_responses_start_with_ios_16_and_macos_13() {
    let tmp = tempfile::tempdir().unwrap();
    for (platform, product, version, base, build, first) in [
        ("macOS", "macOS", "12.6", "21G115", "21G771150a", "macOS 13"),
        ("iOS", "iOS", "15.7", "19H370", "19H773700a", "iOS 16"),
        ("iPadOS", "iOS", "15.7", "19H370", "19H773700a", "iPadOS 16"),
    ] {
        let d = Device::with(&[
            "--platform",
            platform,
            "--version",
            version,
            "--build",
            base,
            "--supervised",
        ]);
        let b = make_bundle(
            tmp.path(),
            &format!("{platform}-{version}-a.bsi"),
            product,
            version,
            base,
            "(a)",
            build,
            &[("System/Library/x", b"x")],
            &[],
        );
        let run = d.refuses(
            ["apply".as_ref(), b.as_os_str(), "--restart".as_ref()],
            5,
            &format!("they exist from {first}.0"),
        );
        let number = first.rsplit(' ').next().unwrap();
        run.stderr_is(
            &[],
            &format!("error: {platform} {version} takes no background security improvements: they exist from {first}.0\nhint: update the device to {number}.0 or later first (`bsi upgrade --version {number}.0 --build BUILD`), then apply a response made for it\n"),
        );
        // The background pass says so too, and installs nothing.
        let dir = tmp.path().join(format!("{platform}-dir"));
        std::fs::create_dir_all(&dir).unwrap();
        auto_at(&d, NOW, &dir, &[]).ok().stdout_is(
            &[(dir.as_path(), "[DIR]")],
            &format!("{platform} {version} takes no responses: Apple shipped them from {first}.0\nno applicable response newer than {version} in [DIR]\n"),
        );
    }
    // The first versions with responses take them.
    let d = Device::with(&["--version", "13.0", "--build", "22A380", "--supervised"]);
    let b = make_bundle(
        tmp.path(),
        "macos-13.0-a.bsi",
        "macOS",
        "13.0",
        "22A380",
        "(a)",
        "22A773800a",
        &[("System/Library/x", b"x")],
        &[],
    );
    d.bsi(["apply".as_ref(), b.as_os_str(), "--restart".as_ref()])
        .ok();
    assert_eq!(d.status().active_version(), Some("13.0 (a)"));
}

#[test]
fn issue25_item13_marketing_names_are_apples_and_predicates_use_them() {
    for (flags, name) in [
        (vec!["--supervised"], "Tahoe"),
        (
            vec!["--supervised", "--version", "15.1", "--build", "24B83"],
            "Sequoia",
        ),
        (
            vec!["--supervised", "--version", "14.0", "--build", "23A344"],
            "Sonoma",
        ),
        (
            vec!["--supervised", "--version", "13.3.1", "--build", "22E261"],
            "Ventura",
        ),
        (vec!["--platform", "iOS", "--supervised"], "iOS 26.3.1"),
    ] {
        let dev = Dev::with(&flags);
        assert_eq!(
            dev.report().os().marketing_name.as_deref(),
            Some(name),
            "{flags:?}"
        );
        // A predicate on the name activates as it would on a real device.
        dev.d
            .declare(
                SUBSCRIPTIONS,
                "subs",
                json!({"StatusItems": [{"Name": "device.model.family"}]}),
            )
            .ok();
        dev.d
            .declare(
                ACTIVATION,
                "on-tahoe",
                json!({"StandardConfigurations": ["subs"], "Predicate": "@status(device.operating-system.marketing-name) == 'Tahoe'"}),
            )
            .ok();
        let active = dev.report().declarations().all()["on-tahoe"].active;
        assert_eq!(active, name == "Tahoe", "{flags:?}");
    }
}

#[test]
fn issue25_item13_enable_false_stops_only_the_users_installs() {
    let dir = bundles_dir(&["macos-26.3.1-b.bsi.tar"]);
    let dev = Dev::mac();
    dev.d.declare_active(
        SETTINGS,
        "s",
        json!({"RapidSecurityResponse": {"Enable": false}, "AutomaticActions": {"InstallSecurityUpdate": "AlwaysOn"}}),
    );
    dev.d
        .bsi(["apply".as_ref(), bundle("macos-26.3.1-b.bsi").as_os_str()])
        .refused(4, "declaration s").stderr_is(&[], "error: installing responses is turned off by declaration s (RapidSecurityResponse.Enable = false)\nhint: only an enforcement declaration from the MDM server can install responses on this device\n");
    auto_at(&dev.d, NOW, &dir, &[])
        .ok()
        .stdout_is(&[], "automatic install is on; installing 26.3.1 (b)\n26.3.1 (b) is staged; restart to activate it (`bsi restart`), or relaunch Safari (`bsi relaunch-safari`) to use its Safari content now\n26.3.1 (b) is prepared; the user is prompted to restart (`bsi restart`)\n");
    assert_eq!(dev.d.status().staged.unwrap().version, "26.3.1 (b)");

    // Automatic install acts only while downloads are automatic.
    let dev = Dev::mac();
    dev.d.declare_active(
        SETTINGS,
        "s",
        json!({"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOn", "Download": "AlwaysOff"}}),
    );
    let s = dev.d.status();
    assert_eq!(
        (
            s.automatic_install.enabled,
            s.automatic_install.source.as_str()
        ),
        (false, "policy")
    );
    auto_at(&dev.d, NOW, &dir, &[]).ok().stdout_is(
        &[],
        "26.3.1 (b) is available, but automatic install is off (declaration s)\n",
    );
    assert!(dev.d.status().staged.is_none());
}
