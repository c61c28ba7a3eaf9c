//! DDM declarations as a device receives them: the envelope every declaration has (`Type`,
//! `Identifier`, `ServerToken`, `Payload`, `declarationbase.yaml`) and the payloads bsi
//! understands, validated as a device validates them (Apple's schemas in
//! `reference/apple-device-management/`):
//!
//! - `com.apple.activation.simple`: `StandardConfigurations`, `Predicate`.
//! - `com.apple.configuration.softwareupdate.settings`: `AutomaticActions.InstallSecurityUpdate`,
//!   `RapidSecurityResponse.Enable` / `EnableRollback`, `Deferrals.*PeriodInDays`, and the other
//!   keys of the schema (type-checked, otherwise unused).
//! - `com.apple.configuration.softwareupdate.enforcement.specific`: `TargetOSVersion`,
//!   `TargetBuildVersion`, `TargetLocalDateTime`, `DetailsURL`.
//! - `com.apple.configuration.management.status-subscriptions`: `StatusItems`.
//! - `com.apple.management.server-capabilities`: `Version`, `SupportedFeatures`.
//!
//! Bytes that are not a declaration at all (not JSON, or the envelope's keys missing or not of
//! their type) are refused (exit 2) and never stored. A well-formed envelope is a declaration
//! the device keeps and reports, whatever its payload: a payload that is invalid, or of a type
//! bsi does not support, makes the declaration `invalid` with Apple's reason code, and the
//! command that brought it exits 4 saying why.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::refusal::{DeclarationError, EnvelopeProblem};
use crate::untrusted::clip;
use crate::version::{Build, OsVersion, ResponseVersion};
use crate::{Error, Result};

/// The simple activation type.
pub(crate) const ACTIVATION_TYPE: &str = "com.apple.activation.simple";
/// The settings declaration type.
pub(crate) const SETTINGS_TYPE: &str = "com.apple.configuration.softwareupdate.settings";
/// The specific-enforcement declaration type.
pub(crate) const ENFORCEMENT_TYPE: &str =
    "com.apple.configuration.softwareupdate.enforcement.specific";
/// The status-subscriptions configuration type.
pub(crate) const SUBSCRIPTIONS_TYPE: &str =
    "com.apple.configuration.management.status-subscriptions";
/// The server-capabilities management type.
pub(crate) const SERVER_CAPABILITIES_TYPE: &str = "com.apple.management.server-capabilities";
/// The `TargetLocalDateTime` format.
pub(crate) const LOCAL_DATE_TIME: &str = "%Y-%m-%dT%H:%M:%S";

/// Which array of `management.declarations` a declaration is reported in, from its `Type`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Category {
    /// `com.apple.activation.*`.
    Activation,
    /// `com.apple.configuration.*` (and any type of no other category).
    Configuration,
    /// `com.apple.asset.*`.
    Asset,
    /// `com.apple.management.*`.
    Management,
}

impl Category {
    /// The category of a declaration `Type`.
    #[must_use]
    pub(crate) fn of(kind: &str) -> Self {
        if kind.starts_with("com.apple.activation.") {
            Category::Activation
        } else if kind.starts_with("com.apple.asset.") {
            Category::Asset
        } else if kind.starts_with("com.apple.management.") {
            Category::Management
        } else {
            Category::Configuration
        }
    }
}

/// `Allowed`, `AlwaysOn` or `AlwaysOff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum AutomaticAction {
    /// The user decides.
    Allowed,
    /// Always on; the user cannot turn it off.
    AlwaysOn,
    /// Always off; the user cannot turn it on.
    AlwaysOff,
}

/// The settings payload keys bsi acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SettingsPayload {
    /// `AutomaticActions.InstallSecurityUpdate`.
    pub install_security_update: Option<AutomaticAction>,
    /// `AutomaticActions.Download`: automatic install acts only while downloads are automatic.
    pub download: Option<AutomaticAction>,
    /// `RapidSecurityResponse.Enable`.
    pub rsr_enable: Option<bool>,
    /// `RapidSecurityResponse.EnableRollback`.
    pub rsr_enable_rollback: Option<bool>,
    /// `Deferrals.*PeriodInDays` that are set, by key.
    pub deferrals: Vec<(String, u64)>,
    /// Every key path present (for the per-platform support check).
    pub keys: Vec<String>,
}

/// The enforcement payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnforcementPayload {
    /// `TargetOSVersion`.
    pub target_os_version: OsVersion,
    /// `TargetBuildVersion`.
    pub target_build_version: Option<Build>,
    /// `TargetLocalDateTime`, device local time.
    pub target_local_date_time: NaiveDateTime,
    /// `DetailsURL`.
    pub details_url: Option<String>,
}

/// The simple activation payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActivationPayload {
    /// `StandardConfigurations`: the identifiers of the configurations it activates.
    pub configurations: Vec<String>,
    /// `Predicate`: when present, the activation installs only while it is true.
    pub predicate: Option<String>,
}

/// A payload bsi understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `com.apple.activation.simple`.
    Activation(ActivationPayload),
    /// Software update settings.
    Settings(SettingsPayload),
    /// A specific enforcement.
    Enforcement(EnforcementPayload),
    /// Status subscriptions: the status item names.
    StatusSubscriptions(Vec<String>),
    /// Server capabilities.
    ServerCapabilities,
    /// A payload the device cannot use: invalid, or of a type bsi does not support (the reasons
    /// say which).
    Unusable,
}

/// A reason in Apple's terms (`declarationbase.yaml`): a code, a description, details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct Reason {
    /// The code, e.g. `Error.ConfigurationIsInvalid`.
    pub code: String,
    /// What it means.
    pub description: String,
    /// Details, as the code's schema lists them.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub details: BTreeMap<String, Value>,
}

/// The reason code for payload keys a device ignores; the declaration stays valid.
pub(crate) const UNKNOWN_PAYLOAD_KEYS: &str = "Error.UnknownPayloadKeys";

impl Reason {
    /// Does this reason make a declaration invalid (an `Error.` code other than
    /// [`UNKNOWN_PAYLOAD_KEYS`])?
    #[must_use]
    pub(crate) fn invalidates(&self) -> bool {
        self.code.starts_with("Error.") && self.code != UNKNOWN_PAYLOAD_KEYS
    }

    /// The first reason in `reasons` that makes a declaration invalid.
    #[must_use]
    pub(crate) fn first_invalidating(reasons: &[Reason]) -> Option<&Reason> {
        reasons.iter().find(|r| r.invalidates())
    }

    /// A reason with `code` and one detail per `(key, value)`.
    #[must_use]
    pub(crate) fn new(
        code: &str,
        description: impl Into<String>,
        details: &[(&str, Value)],
    ) -> Self {
        Self {
            code: code.to_owned(),
            description: description.into(),
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }
}

/// A declaration as the device keeps it: the envelope, the payload as far as bsi understands
/// it, and what is wrong with it on its own (whatever the device and the other declarations).
#[derive(Clone, Debug)]
pub(crate) struct Declaration {
    /// `Type`.
    pub kind: String,
    /// `Identifier`.
    pub identifier: String,
    /// `ServerToken`.
    pub server_token: String,
    /// The payload.
    pub payload: Payload,
    /// Why it is invalid on its own (an invalid payload, an unsupported type); empty if valid.
    pub invalid: Vec<Reason>,
    /// Payload keys bsi does not know (reported as `Error.UnknownPayloadKeys`, ignored).
    pub unknown_keys: Vec<String>,
    /// The bytes as the server sent them.
    pub raw: Vec<u8>,
}

impl Declaration {
    /// Its category.
    #[must_use]
    pub(crate) fn category(&self) -> Category {
        Category::of(&self.kind)
    }

    /// Is it valid on its own?
    #[cfg(test)]
    #[must_use]
    pub(crate) fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }

    /// The first reason it is invalid, as one sentence, if it is.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn invalid_because(&self) -> Option<String> {
        self.invalid.first().map(|r| r.description.clone())
    }
}

/// The envelope every declaration has.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    identifier: String,
    server_token: String,
    payload: Map<String, Value>,
}

fn not_a_declaration(source: &str, problem: EnvelopeProblem) -> Error {
    DeclarationError {
        origin: source.to_owned(),
        problem,
    }
    .into()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a real number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a dictionary",
    }
}

/// A payload check failed: the message names the key.
struct Invalid(String);

struct Checker {
    unknown: Vec<String>,
    keys: Vec<String>,
}

impl Checker {
    fn wrong(key: &str, expected: &str, v: &Value) -> Invalid {
        Invalid(format!("`{key}` must be {expected}, found {}", kind(v)))
    }

    fn dict<'v>(key: &str, v: &'v Value) -> std::result::Result<&'v Map<String, Value>, Invalid> {
        v.as_object()
            .ok_or_else(|| Self::wrong(key, "a dictionary", v))
    }

    fn boolean(key: &str, v: &Value) -> std::result::Result<bool, Invalid> {
        v.as_bool().ok_or_else(|| Self::wrong(key, "a boolean", v))
    }

    fn string<'v>(key: &str, v: &'v Value) -> std::result::Result<&'v str, Invalid> {
        v.as_str().ok_or_else(|| Self::wrong(key, "a string", v))
    }

    fn choice(key: &str, v: &Value, allowed: &[&str]) -> std::result::Result<String, Invalid> {
        let s = Self::string(key, v)?;
        if allowed.contains(&s) {
            Ok(s.to_owned())
        } else {
            Err(Invalid(format!(
                "`{key}` is `{}`; it must be one of {}",
                clip(s),
                allowed.join(", ")
            )))
        }
    }

    fn days(key: &str, v: &Value) -> std::result::Result<u64, Invalid> {
        match v.as_u64() {
            Some(n) if (1..=90).contains(&n) => Ok(n),
            Some(n) => Err(Invalid(format!(
                "`{key}` is {n}; it must be from 1 to 90 days"
            ))),
            None => Err(Self::wrong(key, "an integer", v)),
        }
    }

    fn required<'p>(
        payload: &'p Map<String, Value>,
        key: &str,
    ) -> std::result::Result<&'p Value, Invalid> {
        payload
            .get(key)
            .ok_or_else(|| Invalid(format!("required key `{key}` is missing")))
    }

    fn activation(
        &mut self,
        payload: &Map<String, Value>,
    ) -> std::result::Result<ActivationPayload, Invalid> {
        let list = Self::required(payload, "StandardConfigurations")?;
        let items = list
            .as_array()
            .ok_or_else(|| Self::wrong("StandardConfigurations", "an array", list))?;
        if items.len() > MAX_ACTIVATION_REFERENCES {
            return Err(Invalid(format!(
                "`StandardConfigurations` lists {} identifiers; a device takes at most {MAX_ACTIVATION_REFERENCES} per activation",
                items.len()
            )));
        }
        let mut configurations: Vec<String> = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let id = Self::string(&format!("StandardConfigurations[{i}]"), v)?;
            // Naming a configuration twice activates it once.
            if seen.insert(id) {
                configurations.push(id.to_owned());
            }
        }
        let predicate = match payload.get("Predicate") {
            None => None,
            Some(v) => Some(Self::string("Predicate", v)?.to_owned()),
        };
        for key in payload.keys() {
            if !["StandardConfigurations", "Predicate"].contains(&key.as_str()) {
                self.unknown.push(key.clone());
            }
        }
        Ok(ActivationPayload {
            configurations,
            predicate,
        })
    }

    fn settings(
        &mut self,
        payload: &Map<String, Value>,
    ) -> std::result::Result<SettingsPayload, Invalid> {
        const ACTIONS: [&str; 3] = ["Allowed", "AlwaysOn", "AlwaysOff"];
        let mut out = SettingsPayload::default();
        for (key, value) in payload {
            match key.as_str() {
                "Notifications" | "AllowStandardUserOSUpdates" => {
                    Self::boolean(key, value)?;
                    self.keys.push(key.clone());
                }
                "RecommendedCadence" => {
                    Self::choice(key, value, &["All", "Oldest", "Newest"])?;
                    self.keys.push(key.clone());
                }
                "Beta" => {
                    Self::dict(key, value)?;
                    self.keys.push(key.clone());
                }
                "AutomaticActions" => {
                    for (sub, v) in Self::dict(key, value)? {
                        let at = format!("AutomaticActions.{sub}");
                        match sub.as_str() {
                            "InstallSecurityUpdate" | "Download" => {
                                let action = match Self::choice(&at, v, &ACTIONS)?.as_str() {
                                    "AlwaysOn" => AutomaticAction::AlwaysOn,
                                    "AlwaysOff" => AutomaticAction::AlwaysOff,
                                    _ => AutomaticAction::Allowed,
                                };
                                if sub == "Download" {
                                    out.download = Some(action);
                                } else {
                                    out.install_security_update = Some(action);
                                }
                                self.keys.push(at);
                            }
                            "InstallOSUpdates" => {
                                Self::choice(&at, v, &ACTIONS)?;
                                self.keys.push(at);
                            }
                            _ => self.unknown.push(at),
                        }
                    }
                }
                "RapidSecurityResponse" => {
                    for (sub, v) in Self::dict(key, value)? {
                        let at = format!("RapidSecurityResponse.{sub}");
                        match sub.as_str() {
                            "Enable" => out.rsr_enable = Some(Self::boolean(&at, v)?),
                            "EnableRollback" => {
                                out.rsr_enable_rollback = Some(Self::boolean(&at, v)?);
                            }
                            _ => {
                                self.unknown.push(at);
                                continue;
                            }
                        }
                        self.keys.push(at);
                    }
                }
                "Deferrals" => {
                    for (sub, v) in Self::dict(key, value)? {
                        let at = format!("Deferrals.{sub}");
                        match sub.as_str() {
                            "CombinedPeriodInDays"
                            | "MajorPeriodInDays"
                            | "MinorPeriodInDays"
                            | "SystemPeriodInDays" => {
                                out.deferrals.push((at.clone(), Self::days(&at, v)?));
                                self.keys.push(at);
                            }
                            _ => self.unknown.push(at),
                        }
                    }
                }
                _ => self.unknown.push(key.clone()),
            }
        }
        out.keys.clone_from(&self.keys);
        Ok(out)
    }

    fn enforcement(
        &mut self,
        payload: &Map<String, Value>,
    ) -> std::result::Result<EnforcementPayload, Invalid> {
        let os_text = Self::string(
            "TargetOSVersion",
            Self::required(payload, "TargetOSVersion")?,
        )?;
        let target_os_version = os_text.parse::<OsVersion>().map_err(|e| {
            Invalid(if os_text.parse::<ResponseVersion>().is_ok() {
                format!(
                    "`TargetOSVersion` is `{}`, but it takes the OS version alone (e.g. `{}`); a response is named by its supplemental build in `TargetBuildVersion`",
                    clip(os_text),
                    clip(os_text.split(' ').next().unwrap_or_default())
                )
            } else {
                format!("`TargetOSVersion`: {e}")
            })
        })?;
        let target_build_version = match payload.get("TargetBuildVersion") {
            None => None,
            Some(v) => Some(
                Self::string("TargetBuildVersion", v)?
                    .parse::<Build>()
                    .map_err(|e| Invalid(format!("`TargetBuildVersion`: {e}")))?,
            ),
        };
        let when = Self::string(
            "TargetLocalDateTime",
            Self::required(payload, "TargetLocalDateTime")?,
        )?;
        let target_local_date_time = parse_local(when).ok_or_else(|| {
            Invalid(format!(
                "`TargetLocalDateTime` is `{}`; it must be local time as yyyy-mm-ddThh:mm:ss, without a time zone",
                clip(when)
            ))
        })?;
        let details_url = match payload.get("DetailsURL") {
            None => None,
            Some(v) => Some(Self::string("DetailsURL", v)?.to_owned()),
        };
        for key in payload.keys() {
            if ![
                "TargetOSVersion",
                "TargetBuildVersion",
                "TargetLocalDateTime",
                "DetailsURL",
            ]
            .contains(&key.as_str())
            {
                self.unknown.push(key.clone());
            }
        }
        Ok(EnforcementPayload {
            target_os_version,
            target_build_version,
            target_local_date_time,
            details_url,
        })
    }

    fn subscriptions(
        &mut self,
        payload: &Map<String, Value>,
    ) -> std::result::Result<Vec<String>, Invalid> {
        let list = Self::required(payload, "StatusItems")?;
        let items = list
            .as_array()
            .ok_or_else(|| Self::wrong("StatusItems", "an array", list))?;
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("StatusItems[{i}]");
            let dict = Self::dict(&at, item)?;
            let name = Self::string(
                &format!("{at}.Name"),
                dict.get("Name")
                    .ok_or_else(|| Invalid(format!("required key `{at}.Name` is missing")))?,
            )?;
            names.push(name.to_owned());
        }
        for key in payload.keys() {
            if key != "StatusItems" {
                self.unknown.push(key.clone());
            }
        }
        Ok(names)
    }

    fn server_capabilities(
        &mut self,
        payload: &Map<String, Value>,
    ) -> std::result::Result<(), Invalid> {
        Self::string("Version", Self::required(payload, "Version")?)?;
        Self::dict(
            "SupportedFeatures",
            Self::required(payload, "SupportedFeatures")?,
        )?;
        for key in payload.keys() {
            if !["Version", "SupportedFeatures"].contains(&key.as_str()) {
                self.unknown.push(key.clone());
            }
        }
        Ok(())
    }
}

/// Parses `yyyy-mm-ddThh:mm:ss` exactly.
#[must_use]
pub(crate) fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let ok_shape = text.len() == 19
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !ok_shape {
        return None;
    }
    NaiveDateTime::parse_from_str(text, LOCAL_DATE_TIME).ok()
}

/// The most configurations one activation may name: far more than any deployment assigns (Apple's
/// examples name a few), few enough that evaluating every activation stays cheap.
pub(crate) const MAX_ACTIVATION_REFERENCES: usize = 1000;

/// The longest `Identifier` and `ServerToken` bsi keeps (Apple: "should not exceed 64 octets";
/// bsi is lenient, but bounded).
const MAX_ENVELOPE_TEXT: usize = 1024;

/// The envelope of a declaration: JSON, an object, its four keys with their types, an
/// identifier, and no text over [`MAX_ENVELOPE_TEXT`]. Anything else is not a declaration.
fn read_envelope(raw: &[u8], source: &str) -> Result<Envelope> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        not_a_declaration(
            source,
            EnvelopeProblem::NotJson {
                reason: e.to_string(),
            },
        )
    })?;
    if !value.is_object() {
        return Err(not_a_declaration(source, EnvelopeProblem::NotAnObject));
    }
    let envelope: Envelope = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let problem = if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|f| f.split('`').next())
        {
            EnvelopeProblem::MissingKey {
                key: field.to_owned(),
            }
        } else {
            EnvelopeProblem::WrongType {
                expected: match path.as_str() {
                    "Payload" => "a dictionary",
                    _ => "a string",
                },
                key: path,
            }
        };
        not_a_declaration(source, problem)
    })?;
    if envelope.identifier.is_empty() {
        return Err(not_a_declaration(source, EnvelopeProblem::EmptyIdentifier));
    }
    if envelope.identifier.len() > MAX_ENVELOPE_TEXT
        || envelope.server_token.len() > MAX_ENVELOPE_TEXT
        || envelope.kind.len() > MAX_ENVELOPE_TEXT
    {
        return Err(not_a_declaration(
            source,
            EnvelopeProblem::TooLong {
                limit: MAX_ENVELOPE_TEXT,
            },
        ));
    }
    Ok(envelope)
}

/// Why a declaration of a known type is invalid, with the details `declarationbase.yaml` lists
/// for its code.
fn invalid_reason(envelope: &Envelope, why: &str) -> Reason {
    let code = match Category::of(&envelope.kind) {
        Category::Configuration => "Error.ConfigurationIsInvalid",
        _ => "Error.InvalidPayload",
    };
    // Details as `declarationbase.yaml` lists them for each code.
    if code == "Error.ConfigurationIsInvalid" {
        Reason::new(
            code,
            format!("The configuration is not valid: {}", clip(why)),
            &[("Error", Value::String(clip(why)))],
        )
    } else {
        Reason::new(
            code,
            format!("The declaration's payload is not valid: {}", clip(why)),
            &[
                ("Identifier", Value::String(envelope.identifier.clone())),
                ("ServerToken", Value::String(envelope.server_token.clone())),
            ],
        )
    }
}

impl Declaration {
    /// Parses declaration bytes; `source` names the file in messages. Refuses (exit 2) what is
    /// not a declaration envelope; anything else is a declaration, valid or not.
    pub(crate) fn parse(raw: &[u8], source: &str) -> Result<Self> {
        let envelope = read_envelope(raw, source)?;
        let mut checker = Checker {
            unknown: Vec::new(),
            keys: Vec::new(),
        };
        let payload = &envelope.payload;
        let outcome: std::result::Result<Payload, Invalid> = match envelope.kind.as_str() {
            ACTIVATION_TYPE => checker.activation(payload).map(Payload::Activation),
            SETTINGS_TYPE => checker.settings(payload).map(Payload::Settings),
            ENFORCEMENT_TYPE => checker.enforcement(payload).map(Payload::Enforcement),
            SUBSCRIPTIONS_TYPE => checker
                .subscriptions(payload)
                .map(Payload::StatusSubscriptions),
            SERVER_CAPABILITIES_TYPE => checker
                .server_capabilities(payload)
                .map(|()| Payload::ServerCapabilities),
            other => {
                let reason = Reason::new(
                    "Error.ConfigurationNotSupported",
                    format!("`Type` `{}` is not supported by this device", clip(other)),
                    &[
                        ("Identifier", Value::String(envelope.identifier.clone())),
                        ("ServerToken", Value::String(envelope.server_token.clone())),
                    ],
                );
                return Ok(Self {
                    kind: envelope.kind,
                    identifier: envelope.identifier,
                    server_token: envelope.server_token,
                    payload: Payload::Unusable,
                    invalid: vec![reason],
                    unknown_keys: Vec::new(),
                    raw: raw.to_vec(),
                });
            }
        };
        let (payload, invalid) = match outcome {
            Ok(p) => (p, Vec::new()),
            Err(Invalid(why)) => (Payload::Unusable, vec![invalid_reason(&envelope, &why)]),
        };
        Ok(Self {
            kind: envelope.kind,
            identifier: envelope.identifier,
            server_token: envelope.server_token,
            payload,
            invalid,
            unknown_keys: checker.unknown.iter().map(|k| clip(k)).collect(),
            raw: raw.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Declaration> {
        Declaration::parse(json.as_bytes(), "test.json")
    }

    #[test]
    fn accepts_apple_shaped_declarations() {
        let d = parse(r#"{"Type":"com.apple.configuration.softwareupdate.settings","Identifier":"s1","ServerToken":"t1",
            "Payload":{"AutomaticActions":{"InstallSecurityUpdate":"AlwaysOn"},"RapidSecurityResponse":{"Enable":false,"EnableRollback":false},
            "Deferrals":{"MinorPeriodInDays":30},"Notifications":true}}"#).unwrap();
        let Payload::Settings(s) = d.payload else {
            panic!()
        };
        assert_eq!(s.install_security_update, Some(AutomaticAction::AlwaysOn));
        assert_eq!(
            (s.rsr_enable, s.rsr_enable_rollback),
            (Some(false), Some(false))
        );
        assert_eq!(
            s.deferrals,
            [("Deferrals.MinorPeriodInDays".to_owned(), 30)]
        );
        let d = parse(r#"{"Type":"com.apple.configuration.softwareupdate.enforcement.specific","Identifier":"e1","ServerToken":"t",
            "Payload":{"TargetOSVersion":"26.3.1","TargetBuildVersion":"25D771280a","TargetLocalDateTime":"2026-12-01T09:00:00"}}"#).unwrap();
        assert!(matches!(d.payload, Payload::Enforcement(_)));
        let d = parse(r#"{"Type":"com.apple.activation.simple","Identifier":"a","ServerToken":"1",
            "Payload":{"StandardConfigurations":["e1","s1"],"Predicate":"@status(device.operating-system.family) == 'macOS'"}}"#).unwrap();
        assert!(d.is_valid());
        assert_eq!(d.category(), Category::Activation);
    }

    #[test]
    fn what_is_not_a_declaration_is_refused() {
        let problem = |json: &str| match parse(json) {
            Err(Error::Declaration(e)) => e.problem,
            other => panic!("{json}: {other:?}"),
        };
        let long = "x".repeat(MAX_ENVELOPE_TEXT + 1);
        let cases: Vec<(String, &str)> = vec![
            (
                "not json".to_owned(),
                "it is not JSON (expected ident at line 1 column 2)",
            ),
            ("[1]".to_owned(), "the top level is not a JSON object"),
            (
                r#"{"Type":"a"}"#.to_owned(),
                "required key `Identifier` is missing",
            ),
            (
                r#"{"Type":"a","Identifier":"x","ServerToken":"1","Payload":[]}"#.to_owned(),
                "`Payload` must be a dictionary",
            ),
            (
                r#"{"Type":1,"Identifier":"x","ServerToken":"1","Payload":{}}"#.to_owned(),
                "`Type` must be a string",
            ),
            (
                r#"{"Type":"a","Identifier":"","ServerToken":"1","Payload":{}}"#.to_owned(),
                "`Identifier` is empty",
            ),
            (
                format!(r#"{{"Type":"a","Identifier":"{long}","ServerToken":"1","Payload":{{}}}}"#),
                "`Type`, `Identifier` and `ServerToken` are at most 1024 bytes",
            ),
        ];
        for (json, message) in &cases {
            let p = problem(json);
            assert_eq!(p.to_string(), *message, "{json}");
            let err = parse(json).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{json}: {err}");
            assert_eq!(
                err.to_string(),
                format!("test.json is not a DDM declaration: {message}")
            );
            assert!(err.hint().is_some_and(|h| h.contains("bsi policy set")));
        }
        assert!(matches!(
            problem(&cases[2].0),
            EnvelopeProblem::MissingKey { key } if key == "Identifier"
        ));
    }

    #[test]
    fn an_invalid_declaration_is_kept_with_its_reason() {
        let env = |t: &str, p: &str| {
            format!(r#"{{"Type":"{t}","Identifier":"x","ServerToken":"1","Payload":{p}}}"#)
        };
        let cases = [
            (
                env("com.apple.configuration.passcode.settings", "{}"),
                "Error.ConfigurationNotSupported",
                "not supported",
            ),
            (
                env(
                    SETTINGS_TYPE,
                    r#"{"AutomaticActions":{"InstallSecurityUpdate":"Sometimes"}}"#,
                ),
                "Error.ConfigurationIsInvalid",
                "AutomaticActions.InstallSecurityUpdate",
            ),
            (
                env(
                    SETTINGS_TYPE,
                    r#"{"RapidSecurityResponse":{"Enable":"no"}}"#,
                ),
                "Error.ConfigurationIsInvalid",
                "RapidSecurityResponse.Enable` must be a boolean",
            ),
            (
                env(SETTINGS_TYPE, r#"{"Deferrals":{"MinorPeriodInDays":120}}"#),
                "Error.ConfigurationIsInvalid",
                "from 1 to 90",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetOSVersion":"26.3.1 (a)","TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
                ),
                "Error.ConfigurationIsInvalid",
                "TargetBuildVersion",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetOSVersion":"26.3.1","TargetLocalDateTime":"2026-12-01T09:00:00Z"}"#,
                ),
                "Error.ConfigurationIsInvalid",
                "TargetLocalDateTime",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
                ),
                "Error.ConfigurationIsInvalid",
                "`TargetOSVersion` is missing",
            ),
            (
                env(ACTIVATION_TYPE, r#"{"StandardConfigurations":"x"}"#),
                "Error.InvalidPayload",
                "must be an array",
            ),
        ];
        for (json, code, needle) in cases {
            let d = parse(&json).unwrap();
            assert!(!d.is_valid(), "{json}");
            assert_eq!(d.invalid[0].code, code, "{json}");
            assert!(
                d.invalid_because().unwrap().contains(needle),
                "{json}: {:?}",
                d.invalid
            );
        }
        let d = parse(&env(
            SETTINGS_TYPE,
            r#"{"Future":1,"Deferrals":{"Later":2}}"#,
        ))
        .unwrap();
        assert!(d.is_valid());
        assert_eq!(d.unknown_keys, ["Deferrals.Later", "Future"]);
    }
}
