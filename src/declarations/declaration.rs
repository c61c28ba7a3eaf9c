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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::refusal::{DeclarationError, EnvelopeProblem};
use crate::untrusted::clip;
use crate::{Error, Result};

pub(crate) use super::payload::{
    ACTIVATION_TYPE, AutomaticAction, ENFORCEMENT_TYPE, EnforcementPayload, LOCAL_DATE_TIME,
    Payload, SERVER_CAPABILITIES_TYPE, SETTINGS_TYPE, SUBSCRIPTIONS_TYPE, SettingsPayload,
};
use super::payload::{Checker, Invalid};

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
mod tests;
