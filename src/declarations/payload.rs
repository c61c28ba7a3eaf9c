//! The payloads bsi understands, as typed values, and the checks that read them from a
//! declaration's `Payload` as a device validates them: every key of the schema type-checked,
//! unknown keys kept by name, each failure naming the key at fault.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::untrusted::clip;
use crate::version::{Build, OsVersion, ResponseVersion};

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

/// What a JSON value is, in words.
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
pub(super) struct Invalid(pub(super) String);

pub(super) struct Checker {
    pub(super) unknown: Vec<String>,
    pub(super) keys: Vec<String>,
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

    pub(super) fn activation(
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

    pub(super) fn settings(
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

    pub(super) fn enforcement(
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

    pub(super) fn subscriptions(
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

    pub(super) fn server_capabilities(
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
