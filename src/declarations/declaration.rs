//! DDM declarations of the two types bsi implements, validated as a device validates them
//! (Apple's schemas in `reference/apple-device-management/`):
//!
//! - `com.apple.configuration.softwareupdate.settings`: `AutomaticActions.InstallSecurityUpdate`,
//!   `RapidSecurityResponse.Enable` / `EnableRollback`, `Deferrals.*PeriodInDays`, and the other
//!   keys of the schema (type-checked, otherwise unused).
//! - `com.apple.configuration.softwareupdate.enforcement.specific`: `TargetOSVersion`,
//!   `TargetBuildVersion`, `TargetLocalDateTime`, `DetailsURL`.
//!
//! A file that is not a declaration at all (not JSON, or missing the `Type`/`Identifier`/
//! `ServerToken`/`Payload` envelope) is a usage error (exit 2); a declaration the device refuses
//! (unknown type, a value of the wrong type or out of range) is exit 4. Every message names the
//! key at fault.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::version::{Build, OsVersion, ResponseVersion};
use crate::{Error, Result};

/// The settings declaration type.
pub const SETTINGS_TYPE: &str = "com.apple.configuration.softwareupdate.settings";
/// The specific-enforcement declaration type.
pub const ENFORCEMENT_TYPE: &str = "com.apple.configuration.softwareupdate.enforcement.specific";
/// The `TargetLocalDateTime` format.
pub const LOCAL_DATE_TIME: &str = "%Y-%m-%dT%H:%M:%S";

/// `Allowed`, `AlwaysOn` or `AlwaysOff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AutomaticAction {
    /// The user decides.
    Allowed,
    /// Always on; the user cannot turn it off.
    AlwaysOn,
    /// Always off; the user cannot turn it on.
    AlwaysOff,
}

/// The settings payload keys bsi acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsPayload {
    /// `AutomaticActions.InstallSecurityUpdate`.
    pub install_security_update: Option<AutomaticAction>,
    /// `RapidSecurityResponse.Enable`.
    pub rsr_enable: Option<bool>,
    /// `RapidSecurityResponse.EnableRollback`.
    pub rsr_enable_rollback: Option<bool>,
    /// `Deferrals.*PeriodInDays` that are set, by key.
    pub deferrals: Vec<(String, u64)>,
}

/// The enforcement payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnforcementPayload {
    /// `TargetOSVersion`.
    pub target_os_version: OsVersion,
    /// `TargetBuildVersion`.
    pub target_build_version: Option<Build>,
    /// `TargetLocalDateTime`, device local time.
    pub target_local_date_time: NaiveDateTime,
    /// `DetailsURL`.
    pub details_url: Option<String>,
}

/// A validated payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Software update settings.
    Settings(SettingsPayload),
    /// A specific enforcement.
    Enforcement(EnforcementPayload),
}

/// A validated declaration with the exact JSON it came as.
#[derive(Clone, Debug)]
pub struct Declaration {
    /// `Type`.
    pub kind: String,
    /// `Identifier`.
    pub identifier: String,
    /// `ServerToken`.
    pub server_token: String,
    /// The validated payload.
    pub payload: Payload,
    /// Payload keys bsi does not know (ignored, as `Error.UnknownPayloadKeys` would report).
    pub unknown_keys: Vec<String>,
    /// The bytes as the server sent them.
    pub raw: Vec<u8>,
}

fn not_a_declaration(source: &str, why: &str) -> Error {
    Error::BadInput {
        message: format!("{source} is not a DDM declaration: {why}"),
    }
}

fn refused(identifier: &str, message: impl std::fmt::Display) -> Error {
    Error::policy(
        format!("the device refuses declaration {identifier}: {message}"),
        "fix the declaration on the MDM server and send it again",
    )
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

struct Checker<'a> {
    id: &'a str,
    unknown: Vec<String>,
}

impl Checker<'_> {
    fn wrong(&self, key: &str, expected: &str, v: &Value) -> Error {
        refused(
            self.id,
            format!("`{key}` must be {expected}, found {}", kind(v)),
        )
    }

    fn dict<'v>(&self, key: &str, v: &'v Value) -> Result<&'v Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.wrong(key, "a dictionary", v))
    }

    fn boolean(&self, key: &str, v: &Value) -> Result<bool> {
        v.as_bool().ok_or_else(|| self.wrong(key, "a boolean", v))
    }

    fn string<'v>(&self, key: &str, v: &'v Value) -> Result<&'v str> {
        v.as_str().ok_or_else(|| self.wrong(key, "a string", v))
    }

    fn choice(&self, key: &str, v: &Value, allowed: &[&str]) -> Result<String> {
        let s = self.string(key, v)?;
        if allowed.contains(&s) {
            Ok(s.to_owned())
        } else {
            Err(refused(
                self.id,
                format!("`{key}` is `{s}`; it must be one of {}", allowed.join(", ")),
            ))
        }
    }

    fn days(&self, key: &str, v: &Value) -> Result<u64> {
        match v.as_u64() {
            Some(n) if (1..=90).contains(&n) => Ok(n),
            Some(n) => Err(refused(
                self.id,
                format!("`{key}` is {n}; it must be from 1 to 90 days"),
            )),
            None => Err(self.wrong(key, "an integer", v)),
        }
    }

    fn settings(&mut self, payload: &Map<String, Value>) -> Result<SettingsPayload> {
        const ACTIONS: [&str; 3] = ["Allowed", "AlwaysOn", "AlwaysOff"];
        let mut out = SettingsPayload::default();
        for (key, value) in payload {
            match key.as_str() {
                "Notifications" | "AllowStandardUserOSUpdates" => {
                    self.boolean(key, value)?;
                }
                "RecommendedCadence" => {
                    self.choice(key, value, &["All", "Oldest", "Newest"])?;
                }
                "Beta" => {
                    self.dict(key, value)?;
                }
                "AutomaticActions" => {
                    for (sub, v) in self.dict(key, value)? {
                        let at = format!("AutomaticActions.{sub}");
                        match sub.as_str() {
                            "InstallSecurityUpdate" => {
                                out.install_security_update =
                                    Some(match self.choice(&at, v, &ACTIONS)?.as_str() {
                                        "AlwaysOn" => AutomaticAction::AlwaysOn,
                                        "AlwaysOff" => AutomaticAction::AlwaysOff,
                                        _ => AutomaticAction::Allowed,
                                    });
                            }
                            "Download" | "InstallOSUpdates" => {
                                self.choice(&at, v, &ACTIONS)?;
                            }
                            _ => self.unknown.push(at),
                        }
                    }
                }
                "RapidSecurityResponse" => {
                    for (sub, v) in self.dict(key, value)? {
                        let at = format!("RapidSecurityResponse.{sub}");
                        match sub.as_str() {
                            "Enable" => out.rsr_enable = Some(self.boolean(&at, v)?),
                            "EnableRollback" => {
                                out.rsr_enable_rollback = Some(self.boolean(&at, v)?);
                            }
                            _ => self.unknown.push(at),
                        }
                    }
                }
                "Deferrals" => {
                    for (sub, v) in self.dict(key, value)? {
                        let at = format!("Deferrals.{sub}");
                        match sub.as_str() {
                            "CombinedPeriodInDays"
                            | "MajorPeriodInDays"
                            | "MinorPeriodInDays"
                            | "SystemPeriodInDays" => {
                                out.deferrals.push((at.clone(), self.days(&at, v)?));
                            }
                            _ => self.unknown.push(at),
                        }
                    }
                }
                _ => self.unknown.push(key.clone()),
            }
        }
        Ok(out)
    }

    fn enforcement(&mut self, payload: &Map<String, Value>) -> Result<EnforcementPayload> {
        let required = |key: &str| {
            payload
                .get(key)
                .ok_or_else(|| refused(self.id, format!("required key `{key}` is missing")))
        };
        let os_text = self.string("TargetOSVersion", required("TargetOSVersion")?)?;
        let target_os_version = os_text.parse::<OsVersion>().map_err(|e| {
            let hint = if os_text.parse::<ResponseVersion>().is_ok() {
                format!(
                    "`TargetOSVersion` is `{os_text}`, but it takes the OS version alone (e.g. `{}`); a response is named by its supplemental build in `TargetBuildVersion`",
                    os_text.split(' ').next().unwrap_or_default()
                )
            } else {
                format!("`TargetOSVersion`: {e}")
            };
            refused(self.id, hint)
        })?;
        let target_build_version = match payload.get("TargetBuildVersion") {
            None => None,
            Some(v) => Some(
                self.string("TargetBuildVersion", v)?
                    .parse::<Build>()
                    .map_err(|e| refused(self.id, format!("`TargetBuildVersion`: {e}")))?,
            ),
        };
        let when = self.string("TargetLocalDateTime", required("TargetLocalDateTime")?)?;
        let target_local_date_time = parse_local(when).ok_or_else(|| {
            refused(
                self.id,
                format!("`TargetLocalDateTime` is `{when}`; it must be local time as yyyy-mm-ddThh:mm:ss, without a time zone"),
            )
        })?;
        let details_url = match payload.get("DetailsURL") {
            None => None,
            Some(v) => Some(self.string("DetailsURL", v)?.to_owned()),
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
}

/// Parses `yyyy-mm-ddThh:mm:ss` exactly.
#[must_use]
pub fn parse_local(text: &str) -> Option<NaiveDateTime> {
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

impl Declaration {
    /// Parses and validates declaration bytes; `source` names the file in messages.
    pub fn parse(raw: &[u8], source: &str) -> Result<Self> {
        let value: Value = serde_json::from_slice(raw)
            .map_err(|e| not_a_declaration(source, &format!("it is not JSON ({e})")))?;
        let Value::Object(top) = value else {
            return Err(not_a_declaration(
                source,
                "the top level is not a JSON object",
            ));
        };
        let field = |key: &str| -> Result<&Value> {
            top.get(key).ok_or_else(|| {
                not_a_declaration(source, &format!("required key `{key}` is missing"))
            })
        };
        let text = |key: &str| -> Result<String> {
            field(key)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| not_a_declaration(source, &format!("`{key}` must be a string")))
        };
        let kind_text = text("Type")?;
        let identifier = text("Identifier")?;
        let server_token = text("ServerToken")?;
        if identifier.is_empty() {
            return Err(not_a_declaration(source, "`Identifier` is empty"));
        }
        let payload_value = field("Payload")?;
        let Some(payload_map) = payload_value.as_object() else {
            return Err(not_a_declaration(source, "`Payload` must be a dictionary"));
        };
        let mut checker = Checker {
            id: &identifier,
            unknown: Vec::new(),
        };
        let payload = match kind_text.as_str() {
            SETTINGS_TYPE => Payload::Settings(checker.settings(payload_map)?),
            ENFORCEMENT_TYPE => Payload::Enforcement(checker.enforcement(payload_map)?),
            other => {
                return Err(refused(
                    &identifier,
                    format!(
                        "`Type` `{other}` is not supported; bsi supports {SETTINGS_TYPE} and {ENFORCEMENT_TYPE}"
                    ),
                ));
            }
        };
        let unknown_keys = checker.unknown;
        Ok(Self {
            kind: kind_text,
            identifier,
            server_token,
            payload,
            unknown_keys,
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
    }

    #[test]
    fn refusals_name_the_key_and_pick_the_exit_code() {
        let env = |t: &str, p: &str| {
            format!(r#"{{"Type":"{t}","Identifier":"x","ServerToken":"1","Payload":{p}}}"#)
        };
        let cases = [
            ("not json".to_owned(), 2, "not JSON"),
            (r#"{"Type":"a"}"#.to_owned(), 2, "`Identifier`"),
            (
                env("com.apple.configuration.passcode.settings", "{}"),
                4,
                "`Type`",
            ),
            (
                env(
                    SETTINGS_TYPE,
                    r#"{"AutomaticActions":{"InstallSecurityUpdate":"Sometimes"}}"#,
                ),
                4,
                "AutomaticActions.InstallSecurityUpdate",
            ),
            (
                env(
                    SETTINGS_TYPE,
                    r#"{"RapidSecurityResponse":{"Enable":"no"}}"#,
                ),
                4,
                "RapidSecurityResponse.Enable` must be a boolean",
            ),
            (
                env(SETTINGS_TYPE, r#"{"Deferrals":{"MinorPeriodInDays":120}}"#),
                4,
                "from 1 to 90",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetOSVersion":"26.3.1 (a)","TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
                ),
                4,
                "TargetBuildVersion",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetOSVersion":"26.3.1","TargetLocalDateTime":"2026-12-01 09:00"}"#,
                ),
                4,
                "yyyy-mm-ddThh:mm:ss",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetOSVersion":"26.3.1","TargetLocalDateTime":"2026-12-01T09:00:00Z"}"#,
                ),
                4,
                "TargetLocalDateTime",
            ),
            (
                env(
                    ENFORCEMENT_TYPE,
                    r#"{"TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
                ),
                4,
                "`TargetOSVersion` is missing",
            ),
        ];
        for (json, code, needle) in cases {
            let err = parse(&json).unwrap_err();
            assert_eq!(err.exit_code(), code, "{json}: {err}");
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
    }
}
