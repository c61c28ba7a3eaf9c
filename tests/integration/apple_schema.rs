//! A validator for DDM status reports against Apple's YAML schemas
//! (`tests/reference/apple-device-management/declarative/`), independent of bsi's code: the
//! protocol document (`StatusItems`, `Errors`, `FullReport`), then every status item the schemas
//! define, recursively (type, `presence`, `rangelist`, no keys the schema does not list), and
//! each item's `supportedOS` for the device's platform, OS version and enrollment: an item the
//! device supports must be there, one it does not must not.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::harness::repo;

fn schema_dir() -> PathBuf {
    repo().join("tests/reference/apple-device-management/declarative")
}

fn load(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(schema_dir().join(rel)).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The device a report comes from, in the schemas' terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts {
    /// `iOS` (iPhone and iPad) or `macOS`.
    pub os: &'static str,
    /// e.g. (26, 3, 1).
    pub version: (u32, u32, u32),
    /// `supervised`, `device` or `user`.
    pub enrollment: &'static str,
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Does `supportedOS` allow the device? (`None` when the section does not name its OS.)
fn supported(payload: &Yaml, facts: &Facts) -> Option<bool> {
    let entry = &payload["supportedOS"][facts.os];
    if entry.is_badvalue() {
        return None;
    }
    let introduced = entry["introduced"].as_str()?;
    let Some(since) = parse_version(introduced) else {
        return Some(false); // n/a
    };
    if facts.version < since {
        return Some(false);
    }
    match entry["allowed-enrollments"].as_vec() {
        None => Some(true),
        Some(list) => Some(list.iter().any(|e| e.as_str() == Some(facts.enrollment))),
    }
}

/// Keys Apple's current schema has that the 18.1 copy in the reference lacks: bsi follows the
/// newer text (docs/design.md, "What real devices report").
const NEWER: &[(&str, &str, &str)] = &[(
    "softwareupdate.pending-version",
    "target-local-date-time",
    "<string>",
)];

/// Values a key's own `content` documents beyond its `rangelist` (`* 'waiting': ...` in
/// `softwareupdate.install-state`): the list is older than the text beside it.
fn documented_values(def: &Yaml) -> Vec<Value> {
    def["content"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* '"))
        .filter_map(|l| l.split_once('\''))
        .map(|(v, _)| Value::String(v.to_owned()))
        .collect()
}

fn type_ok(kind: &str, v: &Value) -> bool {
    match kind {
        "<string>" | "<date>" | "<data>" => v.is_string(),
        "<integer>" => v.is_i64() || v.is_u64(),
        "<real>" => v.is_number(),
        "<boolean>" => v.is_boolean(),
        "<dictionary>" => v.is_object(),
        "<array>" => v.is_array(),
        "<any>" => true,
        other => panic!("schema type {other} not handled"),
    }
}

fn check(item: &str, def: &Yaml, v: &Value, at: &str, errors: &mut Vec<String>) {
    let kind = def["type"].as_str().unwrap_or("<any>");
    if !type_ok(kind, v) {
        errors.push(format!("{at}: expected {kind}, found {v}"));
        return;
    }
    if let Some(range) = def["rangelist"].as_vec() {
        let mut allowed: Vec<Value> = range
            .iter()
            .map(|r| match r {
                Yaml::String(s) => Value::String(s.clone()),
                Yaml::Integer(i) => Value::from(*i),
                Yaml::Boolean(b) => Value::Bool(*b),
                other => panic!("rangelist value {other:?}"),
            })
            .collect();
        allowed.extend(documented_values(def));
        if !allowed.contains(v) {
            errors.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    let Some(subkeys) = def["subkeys"].as_vec() else {
        return;
    };
    match v {
        Value::Object(map) => {
            let any = subkeys.iter().any(|k| k["key"].as_str() == Some("ANY"));
            for sub in subkeys {
                let name = sub["key"].as_str().unwrap();
                if name == "ANY" {
                    continue;
                }
                match map.get(name) {
                    Some(value) => check(item, sub, value, &format!("{at}.{name}"), errors),
                    None if sub["presence"].as_str() == Some("required") => {
                        errors.push(format!("{at}: required key `{name}` is missing"));
                    }
                    None => {}
                }
            }
            for (key, value) in map {
                let listed = subkeys
                    .iter()
                    .any(|k| k["key"].as_str() == Some(key.as_str()));
                if listed || any {
                    continue;
                }
                match NEWER.iter().find(|(i, k, _)| *i == item && k == key) {
                    Some((_, _, kind)) if type_ok(kind, value) => {}
                    Some((_, _, kind)) => errors.push(format!("{at}.{key}: expected {kind}")),
                    None => errors.push(format!("{at}: key `{key}` is not in Apple's schema")),
                }
            }
        }
        Value::Array(items) => {
            let element = &subkeys[0];
            for (i, value) in items.iter().enumerate() {
                check(item, element, value, &format!("{at}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn lookup<'v>(items: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(items, |v, part| v.get(part))
}

/// The status items whose schemas the reference holds, by name.
fn item_schemas() -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(schema_dir().join("status")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.insert(name.clone(), load(&format!("status/{name}.yaml")));
    }
    out
}

/// Items bsi reports where they are supported and wanted (the others in the reference bsi does
/// not claim to implement, e.g. `softwareupdate.device-id`).
pub(crate) const IMPLEMENTED: &[&str] = &[
    "device.identifier.serial-number",
    "device.identifier.udid",
    "device.model.family",
    "device.model.identifier",
    "device.operating-system.build-version",
    "device.operating-system.family",
    "device.operating-system.marketing-name",
    "device.operating-system.supplemental.build-version",
    "device.operating-system.supplemental.extra-version",
    "device.operating-system.version",
    "management.client-capabilities",
    "management.declarations",
    "softwareupdate.failure-reason",
    "softwareupdate.install-reason",
    "softwareupdate.install-state",
    "softwareupdate.pending-version",
];

/// Items a device sends whether subscribed or not (Apple: "the device automatically subscribes
/// to" the client's capabilities and its declarations).
pub(crate) const IMPLICIT: &[&str] = &["management.client-capabilities", "management.declarations"];

/// Which items a report may, and (when full) must, hold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    /// Every supported item (`report --all`).
    All,
    /// The items subscribed to, and the implicit ones: what a device sends.
    Subscribed(&'a [String]),
}

impl Scope<'_> {
    fn wants(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subscribed(list) => IMPLICIT.contains(&name) || list.iter().any(|s| s == name),
        }
    }
}

fn flatten(prefix: &str, v: &Value, known: &BTreeMap<String, Yaml>, out: &mut Vec<String>) {
    if known.contains_key(prefix) {
        out.push(prefix.to_owned());
        return;
    }
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, known, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Validates a report; `full` says whether every supported item in `scope` must be there (a
/// full report) or only those present are checked (an incremental one); none outside `scope`
/// may be. Returns what is wrong.
pub(crate) fn validate_report(
    report: &Value,
    facts: &Facts,
    full: bool,
    scope: Scope<'_>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let protocol = load("protocol/statusreport.yaml");
    let top = Value::Object(report.as_object().cloned().unwrap_or_default());
    let mut def = protocol["payloadkeys"].clone();
    // The protocol's top level as one dictionary definition.
    let mut hash = yaml_rust2::yaml::Hash::new();
    hash.insert(
        Yaml::String("type".into()),
        Yaml::String("<dictionary>".into()),
    );
    hash.insert(
        Yaml::String("subkeys".into()),
        std::mem::replace(&mut def, Yaml::Null),
    );
    check(
        "StatusReport",
        &Yaml::Hash(hash),
        &top,
        "StatusReport",
        &mut errors,
    );
    for key in protocol["payloadkeys"].as_vec().unwrap() {
        let name = key["key"].as_str().unwrap();
        if let Some(allowed) = supported(key, facts)
            && !allowed
            && report.get(name).is_some()
        {
            errors.push(format!(
                "{name} is sent, but {} {:?} does not send it",
                facts.os, facts.version
            ));
        }
    }
    let Some(items) = report.get("StatusItems") else {
        return errors;
    };
    let schemas = item_schemas();
    let mut present = Vec::new();
    for (k, v) in items.as_object().cloned().unwrap_or_default() {
        flatten(&k, &v, &schemas, &mut present);
    }
    for name in &present {
        if !scope.wants(name) {
            errors.push(format!("{name} is reported, but nothing subscribes to it"));
        }
        let Some(schema) = schemas.get(name) else {
            errors.push(format!(
                "StatusItems.{name}: no such status item in Apple's schemas"
            ));
            continue;
        };
        let payload = &schema["payload"];
        if supported(payload, facts) == Some(false) {
            errors.push(format!(
                "{name} is reported, but its supportedOS excludes {} {:?} ({})",
                facts.os, facts.version, facts.enrollment
            ));
        }
        let def = &schema["payloadkeys"][0];
        check(name, def, lookup(items, name).unwrap(), name, &mut errors);
    }
    if full {
        for name in IMPLEMENTED {
            let payload = &schemas[*name]["payload"];
            if scope.wants(name)
                && supported(payload, facts) == Some(true)
                && !present.iter().any(|p| p == name)
            {
                errors.push(format!(
                    "{name} is supported on this device but not reported"
                ));
            }
        }
    }
    errors
}

/// Checks that `report` has the shape of the reports real devices sent: for every key path both
/// have, the same JSON type.
pub(crate) fn same_shape_as_real(report: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for name in [
        "status-report-declarations-real.json",
        "status-report-unreferenced-configuration.json",
        "status-report-macos-13.3.1-a.json",
    ] {
        let text = std::fs::read_to_string(repo().join("tests/reference").join(name)).unwrap();
        let real: Value = serde_json::from_str(&text).unwrap();
        compare_shape(&real, report, name, &mut errors);
    }
    errors
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn compare_shape(real: &Value, ours: &Value, at: &str, errors: &mut Vec<String>) {
    if kind(real) != kind(ours) {
        errors.push(format!(
            "{at}: real devices send {}, bsi sends {}",
            kind(real),
            kind(ours)
        ));
        return;
    }
    match (real, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                if let Some(ov) = o.get(k) {
                    compare_shape(rv, ov, &format!("{at}.{k}"), errors);
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let Some(rv) = r.first() {
                for ov in o {
                    compare_shape(rv, ov, &format!("{at}[]"), errors);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn the_validator_catches_what_it_should() {
    let facts = Facts {
        os: "macOS",
        version: (26, 3, 1),
        enrollment: "supervised",
    };
    let real: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("tests/reference/status-report-unreferenced-configuration.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        validate_report(&real, &facts, false, Scope::All),
        Vec::<String>::new()
    );
    let mut bad = real.clone();
    bad["StatusItems"]["management"]["declarations"]["configurations"][0]["valid"] = "maybe".into();
    bad["StatusItems"]["management"]["declarations"]["activations"] = serde_json::json!({});
    bad["StatusItems"]["softwareupdate"] =
        serde_json::json!({"install-state": "paused", "pending-version": {"os-version": null}});
    let errors = validate_report(&bad, &facts, false, Scope::All);
    assert!(
        errors.iter().any(|e| e.contains("\"maybe\" is not one of")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("activations: expected <array>")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("install-state: \"paused\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("required key `build-version`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("os-version: expected <string>")),
        "{errors:?}"
    );
    let old_mac = Facts {
        os: "macOS",
        version: (13, 3, 1),
        enrollment: "supervised",
    };
    let mut su = real.clone();
    su["StatusItems"]["softwareupdate"] = serde_json::json!({"install-state": "none"});
    assert!(
        validate_report(&su, &old_mac, false, Scope::All)
            .iter()
            .any(|e| e.contains("supportedOS excludes"))
    );
    assert!(
        !validate_report(&real, &facts, true, Scope::All).is_empty(),
        "a full report misses items"
    );
    // `waiting` is documented beside the older range list; an unsubscribed item is refused, a
    // subscribed one that is missing from a full report too.
    let mut waiting = real.clone();
    waiting["StatusItems"]["softwareupdate"] = serde_json::json!({"install-state": "waiting"});
    assert_eq!(
        validate_report(&waiting, &facts, false, Scope::All),
        Vec::<String>::new()
    );
    let none: Vec<String> = Vec::new();
    assert!(
        validate_report(&waiting, &facts, false, Scope::Subscribed(&none))
            .iter()
            .any(|e| e.contains("install-state is reported, but nothing subscribes to it"))
    );
    let subscribed = vec![
        "softwareupdate.install-state".to_owned(),
        "device.model.family".to_owned(),
    ];
    let errors = validate_report(&waiting, &facts, true, Scope::Subscribed(&subscribed));
    assert!(
        errors.iter().any(|e| e.contains("device.model.family is supported on this device but not reported")),
        "{errors:?}"
    );
    assert!(
        !errors
            .iter()
            .any(|e| e.contains("softwareupdate.pending-version")),
        "{errors:?}"
    );
}

/// A plist value as the validator reads it: data and dates as strings.
fn plist_json(v: &plist::Value) -> Value {
    match v {
        plist::Value::Dictionary(d) => {
            Value::Object(d.iter().map(|(k, v)| (k.clone(), plist_json(v))).collect())
        }
        plist::Value::Array(a) => Value::Array(a.iter().map(plist_json).collect()),
        plist::Value::Boolean(b) => Value::Bool(*b),
        plist::Value::Integer(i) => i
            .as_signed()
            .map_or_else(|| Value::from(i.as_unsigned().unwrap_or(0)), Value::from),
        plist::Value::Real(r) => Value::from(*r),
        plist::Value::String(s) => Value::String(s.clone()),
        plist::Value::Data(_) => Value::String("<data>".to_owned()),
        plist::Value::Date(_) => Value::String("<date>".to_owned()),
        _ => Value::Null,
    }
}

/// The keys every command result carries beside the command's own (Apple's
/// `mdm/commands` files list only the latter).
const RESULT_KEYS: [&str; 6] = [
    "CommandUUID",
    "Status",
    "UDID",
    "ErrorChain",
    "EnrollmentID",
    "RequestType",
];

/// What an MDM message bsi sent breaks of Apple's schema: a check-in message against
/// `mdm/checkin/{file}` (its `payloadkeys`), or a command result against
/// `mdm/commands/{file}` (its `responsekeys`, beside the result keys every answer has).
pub(crate) fn validate_mdm(file: &str, platform: &str, message: &plist::Dictionary) -> Vec<String> {
    let path = repo()
        .join("tests/reference/apple-device-management/mdm")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let (section, envelope): (&str, &[&str]) = if file.starts_with("checkin/") {
        ("payloadkeys", &[])
    } else {
        ("responsekeys", &RESULT_KEYS)
    };
    let mut keys = doc[section].as_vec().cloned().unwrap_or_default();
    for k in envelope {
        let mut h = yaml_rust2::yaml::Hash::new();
        h.insert(Yaml::String("key".into()), Yaml::String((*k).to_owned()));
        h.insert(Yaml::String("type".into()), Yaml::String("<any>".into()));
        keys.push(Yaml::Hash(h));
    }
    let mut def = yaml_rust2::yaml::Hash::new();
    def.insert(
        Yaml::String("type".into()),
        Yaml::String("<dictionary>".into()),
    );
    def.insert(Yaml::String("subkeys".into()), Yaml::Array(keys));
    let def = for_device_channel(&Yaml::Hash(def), platform);
    let mut errors = Vec::new();
    let value = plist_json(&plist::Value::Dictionary(message.clone()));
    check(file, &def, &value, file, &mut errors);
    errors
}

/// `def` as it applies to a device-channel message from `platform` (`macOS` or `iOS`) of a
/// device (not user) enrollment: keys marked `n/a` for the platform are dropped (so sending
/// one is an error), and keys only a user channel or a user enrollment must send are optional.
fn for_device_channel(def: &Yaml, platform: &str) -> Yaml {
    let Yaml::Hash(h) = def else {
        return def.clone();
    };
    let mut out = h.clone();
    if let Some(keys) = def["subkeys"].as_vec() {
        let kept: Vec<Yaml> = keys
            .iter()
            .filter(|k| k["supportedOS"][platform]["introduced"].as_str() != Some("n/a"))
            .map(|k| {
                let os = &k["supportedOS"][platform];
                // Keys only a user channel or a user enrollment sends, and keys Apple says
                // "isn't present for certain updates" (MSUs, which responses are).
                let user_only = os["devicechannel"].as_bool() == Some(false)
                    || os["userenrollment"]["mode"].as_str() == Some("required")
                    || k["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("isn't present for certain updates"));
                let mut k = for_device_channel(k, platform);
                if let (true, Yaml::Hash(kh)) = (user_only, &mut k) {
                    kh.insert(
                        Yaml::String("presence".into()),
                        Yaml::String("optional".into()),
                    );
                }
                k
            })
            .collect();
        out.insert(Yaml::String("subkeys".into()), Yaml::Array(kept));
    }
    Yaml::Hash(out)
}
