//! The state of every stored declaration on this device, as a device reports it in
//! `management.declarations`: `active`, `valid` (`valid`, `invalid` or `unknown`) and
//! `reasons` in Apple's codes (`declarationbase.yaml`). Pure: it takes the declarations, the
//! device's facts and its status items, and decides.
//!
//! The rules, from Apple's schemas and the reports real devices sent:
//!
//! - A declaration of a type the device does not support on its OS version and enrollment is
//!   `invalid` with `Error.ConfigurationNotSupported`; one whose payload is not valid is
//!   `invalid` with `Error.ConfigurationIsInvalid` (an activation or management declaration:
//!   `Error.InvalidPayload`). Unknown payload keys, and settings keys the platform or enrollment
//!   does not support, are listed in `Error.UnknownPayloadKeys` and ignored; the declaration stays
//!   valid.
//! - An activation is `active` when it is valid, every configuration it names is present, and
//!   its `Predicate` (if any) is true. A false predicate: `valid`, not active, `Info.Predicate`.
//!   A predicate bsi cannot parse or evaluate makes it `invalid`
//!   (`Error.UnableToParsePredicate`, `Error.UnableToEvaluatePredicate`), never silently true.
//!   Configurations it names that are not present: `invalid`, `Error.MissingConfigurations`.
//! - A configuration is `active` while an active activation names it, and then `valid` or
//!   `invalid` on its own. A configuration no active activation names is not active, `valid` is
//!   `unknown` (the device has not applied it), with `Info.NotReferencedByActivation`; if it
//!   could never be applied (invalid or not supported) it is `invalid` with that reason too.
//! - Only a configuration that is both active and valid takes effect.
//! - Management declarations are processed, not activated: `active` is false (as real devices
//!   report `com.apple.management.server-capabilities`), `valid` as checked. Assets are not
//!   supported by bsi.

use std::collections::{BTreeMap, BTreeSet};

use std::fmt::Write as _;

use serde_json::Value;

use super::declaration::{Category, Declaration, Payload, Reason, UNKNOWN_PAYLOAD_KEYS};
use super::predicate::{Predicate, PredicateError, StatusValue};
use super::support::{self, DeviceFacts, KeyLimit};
use crate::untrusted::clip;

/// `valid`, `invalid` or `unknown`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Validity {
    /// Valid.
    Valid,
    /// Invalid: the reasons say why.
    Invalid,
    /// Not evaluated (a configuration no activation references).
    Unknown,
}

/// A declaration with its state on this device.
#[derive(Clone, Debug)]
pub(crate) struct Evaluated {
    /// The declaration.
    pub declaration: Declaration,
    /// Active on the device.
    pub active: bool,
    /// Valid, invalid or unknown.
    pub valid: Validity,
    /// Apple's reasons.
    pub reasons: Vec<Reason>,
    /// Settings keys it holds that do not take effect here, with why (a subset of the unknown
    /// payload keys reason).
    pub limited_keys: Vec<(String, KeyLimit)>,
    /// Active activations that reference it (configurations only).
    pub activated_by: Vec<String>,
}

impl Evaluated {
    /// Does it take effect (active and valid)?
    #[must_use]
    pub(crate) fn in_effect(&self) -> bool {
        self.active && self.valid == Validity::Valid
    }
}

fn id_token(d: &Declaration) -> [(&'static str, Value); 2] {
    [
        ("Identifier", Value::String(d.identifier.clone())),
        ("ServerToken", Value::String(d.server_token.clone())),
    ]
}

/// Why `d` cannot be used on this device at all (type not supported, payload invalid), and the
/// keys it holds that are unknown or do not take effect here.
fn own_state(d: &Declaration, facts: &DeviceFacts) -> (Vec<Reason>, Vec<(String, KeyLimit)>) {
    let mut reasons = d.invalid.clone();
    if reasons.is_empty() && support::declaration_type(&d.kind, facts) == Some(false) {
        let needs = support::declaration_type_needs(&d.kind, facts).unwrap_or_default();
        reasons.push(Reason::new(
            "Error.ConfigurationNotSupported",
            format!(
                "`{}` is not supported on {} {} enrolled as {} (it needs {needs})",
                clip(&d.kind),
                facts.schema_os(),
                facts.os,
                facts.enrollment.name()
            ),
            &id_token(d),
        ));
    }
    let mut limited = Vec::new();
    if let Payload::Settings(s) = &d.payload {
        for key in &s.keys {
            if let Some(limit) = support::settings_key(key, facts) {
                limited.push((key.clone(), limit));
            }
        }
    }
    let mut unknown: Vec<String> = d.unknown_keys.clone();
    unknown.extend(limited.iter().map(|(k, _)| k.clone()));
    if !unknown.is_empty() && reasons.is_empty() {
        unknown.sort();
        unknown.dedup();
        let mut description =
            "The declaration contains payload keys this device ignores".to_owned();
        if !limited.is_empty() {
            let _ = write!(
                description,
                " ({} {} not supported on {} {} enrolled as {})",
                limited
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if limited.len() == 1 { "is" } else { "are" },
                facts.schema_os(),
                facts.os,
                facts.enrollment.name()
            );
        }
        reasons.push(Reason::new(
            UNKNOWN_PAYLOAD_KEYS,
            description,
            &[(
                "UnknownPayloadKeys",
                Value::Array(unknown.into_iter().map(Value::String).collect()),
            )],
        ));
    }
    (reasons, limited)
}

/// Whether a valid activation is active: every configuration it names is present and its
/// predicate holds on this device. An active one is put in `activates` with what it activates.
fn activation_state(
    e: &mut Evaluated,
    configurations: &BTreeSet<String>,
    status: &dyn Fn(&str) -> Option<StatusValue>,
    activates: &mut BTreeMap<String, Vec<String>>,
) {
    if e.valid != Validity::Valid {
        return;
    }
    let Payload::Activation(a) = &e.declaration.payload else {
        return;
    };
    let d = &e.declaration;
    let missing: Vec<&String> = a
        .configurations
        .iter()
        .filter(|c| !configurations.contains(*c))
        .collect();
    if !missing.is_empty() {
        e.valid = Validity::Invalid;
        e.reasons.push(Reason::new(
            "Error.MissingConfigurations",
            format!(
                "The activation references configurations the device does not have: {}",
                crate::untrusted::list(missing.iter().map(|m| m.as_str()), 10)
            ),
            &[
                ("Identifier", Value::String(d.identifier.clone())),
                ("ServerToken", Value::String(d.server_token.clone())),
                (
                    "ConfigurationIdentifiers",
                    Value::Array(
                        missing
                            .iter()
                            .map(|m| Value::String((*m).clone()))
                            .collect(),
                    ),
                ),
            ],
        ));
        return;
    }
    let predicate_detail = |p: &str| {
        [
            ("Identifier", Value::String(d.identifier.clone())),
            ("ServerToken", Value::String(d.server_token.clone())),
            ("Predicate", Value::String(clip(p))),
        ]
    };
    let holds = match &a.predicate {
        None => Ok(true),
        Some(p) => Predicate::parse(p)
            .and_then(|parsed| parsed.evaluate(status))
            .map_err(|err| (p, err)),
    };
    match holds {
        Ok(true) => {
            e.active = true;
            activates.insert(d.identifier.clone(), a.configurations.clone());
        }
        Ok(false) => {
            let p = a.predicate.clone().unwrap_or_default();
            e.reasons.push(Reason::new(
                "Info.Predicate",
                "The activation's predicate is false on this device",
                &predicate_detail(&p),
            ));
        }
        Err((p, err)) => {
            let (code, why) = match err {
                PredicateError::Parse(why) => ("Error.UnableToParsePredicate", why),
                PredicateError::Evaluate(why) => ("Error.UnableToEvaluatePredicate", why),
            };
            let p = p.clone();
            e.valid = Validity::Invalid;
            e.reasons.push(Reason::new(
                code,
                format!("The activation's predicate cannot be used: {}", clip(&why)),
                &predicate_detail(&p),
            ));
        }
    }
}

/// Evaluates every declaration; `status` gives the device's status items for predicates.
#[must_use]
pub(crate) fn evaluate(
    declarations: Vec<Declaration>,
    facts: &DeviceFacts,
    status: &dyn Fn(&str) -> Option<StatusValue>,
) -> Vec<Evaluated> {
    let configurations: BTreeSet<String> = declarations
        .iter()
        .filter(|d| d.category() == Category::Configuration)
        .map(|d| d.identifier.clone())
        .collect();
    let mut out: Vec<Evaluated> = declarations
        .into_iter()
        .map(|declaration| {
            let (reasons, limited_keys) = own_state(&declaration, facts);
            let valid = if Reason::first_invalidating(&reasons).is_some() {
                Validity::Invalid
            } else {
                Validity::Valid
            };
            Evaluated {
                declaration,
                active: false,
                valid,
                reasons,
                limited_keys,
                activated_by: Vec::new(),
            }
        })
        .collect();

    // Activations first: which are active, and which configurations they activate.
    let mut activates: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in out
        .iter_mut()
        .filter(|e| e.declaration.category() == Category::Activation)
    {
        activation_state(e, &configurations, status, &mut activates);
    }

    // Inverted once: for each configuration, the active activations naming it.
    let mut activated_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (activation, configs) in &activates {
        for c in configs {
            activated_by
                .entry(c.as_str())
                .or_default()
                .push(activation.clone());
        }
    }
    let mut activated_by: BTreeMap<String, Vec<String>> = activated_by
        .into_iter()
        .map(|(c, a)| (c.to_owned(), a))
        .collect();
    for e in &mut out {
        match e.declaration.category() {
            Category::Configuration => {
                e.activated_by = activated_by
                    .remove(&e.declaration.identifier)
                    .unwrap_or_default();
                if e.activated_by.is_empty() {
                    e.active = false;
                    if e.valid == Validity::Valid {
                        e.valid = Validity::Unknown;
                    }
                    let d = &e.declaration;
                    e.reasons.insert(
                        0,
                        Reason::new(
                            "Info.NotReferencedByActivation",
                            format!(
                                "Configuration “{}:{}” is not referenced by an activation.",
                                clip(&d.identifier),
                                clip(&d.server_token)
                            ),
                            &id_token(d),
                        ),
                    );
                } else {
                    e.active = true;
                }
            }
            Category::Management | Category::Asset => e.active = false,
            Category::Activation => {}
        }
    }
    out
}

/// A declaration's state in words: `active, valid`.
#[must_use]
pub(crate) fn state_words(active: bool, valid: Validity) -> String {
    format!(
        "{}, {}",
        if active { "active" } else { "not active" },
        match valid {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "validity unknown",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    fn decl(kind: &str, id: &str, payload: &str) -> Declaration {
        let json = format!(
            r#"{{"Type":"{kind}","Identifier":"{id}","ServerToken":"t-{id}","Payload":{payload}}}"#
        );
        Declaration::parse(json.as_bytes(), "t").unwrap()
    }

    fn status(name: &str) -> Option<StatusValue> {
        (name == "device.operating-system.family").then(|| StatusValue::Text("macOS".into()))
    }

    fn run(decls: Vec<Declaration>, supervised: bool, os: &str) -> BTreeMap<String, Evaluated> {
        let facts = DeviceFacts::new(Platform::MacOs, os.parse().unwrap(), supervised);
        evaluate(decls, &facts, &status)
            .into_iter()
            .map(|e| (e.declaration.identifier.clone(), e))
            .collect()
    }

    const SETTINGS: &str = "com.apple.configuration.softwareupdate.settings";
    const ACT: &str = "com.apple.activation.simple";

    #[test]
    fn configurations_need_an_active_activation() {
        let s = run(
            vec![
                decl(
                    SETTINGS,
                    "s",
                    r#"{"RapidSecurityResponse":{"Enable":false}}"#,
                ),
                decl(SETTINGS, "lonely", r"{}"),
                decl(ACT, "a", r#"{"StandardConfigurations":["s"]}"#),
            ],
            true,
            "26.3",
        );
        assert!(s["a"].in_effect());
        assert!(s["s"].in_effect());
        assert_eq!(s["s"].activated_by, ["a"]);
        assert!(!s["lonely"].active);
        assert_eq!(s["lonely"].valid, Validity::Unknown);
        assert_eq!(
            s["lonely"].reasons[0].code,
            "Info.NotReferencedByActivation"
        );
    }

    #[test]
    fn predicates_decide_and_never_guess() {
        let s = run(
            vec![
                decl(SETTINGS, "s", r"{}"),
                decl(
                    ACT,
                    "mac",
                    r#"{"StandardConfigurations":["s"],"Predicate":"@status(device.operating-system.family) == 'macOS'"}"#,
                ),
                decl(
                    ACT,
                    "ios",
                    r#"{"StandardConfigurations":["s"],"Predicate":"@status(device.operating-system.family) == 'iOS'"}"#,
                ),
                decl(
                    ACT,
                    "bad",
                    r#"{"StandardConfigurations":["s"],"Predicate":"@status(x) ~ 1"}"#,
                ),
                decl(
                    ACT,
                    "unknown-item",
                    r#"{"StandardConfigurations":["s"],"Predicate":"@status(x) == 1"}"#,
                ),
                decl(ACT, "missing", r#"{"StandardConfigurations":["s","nope"]}"#),
            ],
            true,
            "26.3",
        );
        assert!(s["mac"].in_effect());
        assert!(!s["ios"].active);
        assert_eq!(s["ios"].valid, Validity::Valid);
        assert_eq!(s["ios"].reasons[0].code, "Info.Predicate");
        assert_eq!(
            (s["bad"].active, s["bad"].valid),
            (false, Validity::Invalid)
        );
        assert_eq!(s["bad"].reasons[0].code, "Error.UnableToParsePredicate");
        assert_eq!(
            s["unknown-item"].reasons[0].code,
            "Error.UnableToEvaluatePredicate"
        );
        assert_eq!(s["missing"].reasons[0].code, "Error.MissingConfigurations");
        assert_eq!(s["s"].activated_by, ["mac"]);
    }

    #[test]
    fn support_and_keys_follow_the_schemas() {
        let s = run(
            vec![
                decl(
                    SETTINGS,
                    "s",
                    r#"{"Deferrals":{"CombinedPeriodInDays":3,"MinorPeriodInDays":4},"Future":1}"#,
                ),
                decl(ACT, "a", r#"{"StandardConfigurations":["s"]}"#),
            ],
            true,
            "26.3",
        );
        assert!(s["s"].in_effect());
        assert_eq!(s["s"].reasons[0].code, "Error.UnknownPayloadKeys");
        assert_eq!(
            s["s"].reasons[0].details["UnknownPayloadKeys"],
            serde_json::json!(["Deferrals.CombinedPeriodInDays", "Future"])
        );
        let s = run(
            vec![
                decl(SETTINGS, "s", r"{}"),
                decl(ACT, "a", r#"{"StandardConfigurations":["s"]}"#),
            ],
            true,
            "13.3.1",
        );
        assert!(s["a"].in_effect());
        assert_eq!((s["s"].active, s["s"].valid), (true, Validity::Invalid));
        assert_eq!(s["s"].reasons[0].code, "Error.ConfigurationNotSupported");
    }
}
