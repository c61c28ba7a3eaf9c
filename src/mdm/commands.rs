//! The commands an MDM server sends, and the device's answers, with Apple's keys
//! (`apple/device-management` `mdm/commands/*.yaml`): `DeviceInformation` (only the queries
//! asked for, those the access rights allow and the platform has), `ProfileList`,
//! `CertificateList`, `SecurityInfo`, `RestartDevice` (a restart, as `bsi restart`),
//! `DeclarativeManagement` (a DDM sync through the channel follows, with the tokens the command
//! carries), and before OS 26 the software-update commands ([`super::updates`]). Any other
//! request type, and those Apple removed in OS 26, are answered `Error` with an `ErrorChain` as
//! devices answer (`MCMDMErrorDomain` 12021, "is not a valid request type").
//!
//! A command is untrusted input: read through the bounded plist reader; its identifiers are
//! bounded; texts from it are clipped in every message.

use plist::{Dictionary, Value};

use super::enrollment::Enrollment;
use crate::ddm::client::TokensResponse;
use crate::ddm::sync::MAX_TOKEN;
use crate::device::Device;
use crate::device::layout::MDM_IDENTITY;
use crate::device::state::Snapshot;
use crate::lifecycle::journal::Tx;
use crate::platform::{Chip, Platform};
use crate::plist_xml;
use crate::untrusted::clip;

/// The longest `CommandUUID` bsi answers to.
const MAX_UUID: usize = 256;

/// Apple's access-right bit for device-information queries (`AllowQueryDeviceInformation`).
const QUERY_DEVICE_INFORMATION: u64 = 16;

/// A command from the server.
#[derive(Clone, Debug)]
pub(crate) struct Command {
    /// `CommandUUID`.
    pub uuid: String,
    /// `Command.RequestType`.
    pub request_type: String,
    /// `Command`.
    pub body: Dictionary,
}

/// How the device answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Done.
    Acknowledged,
    /// Failed: the answer has an `ErrorChain`.
    Error,
    /// Cannot now; the server sends it again later.
    NotNow,
}

impl Status {
    /// Apple's name.
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::NotNow => "NotNow",
        }
    }
}

/// An answer: its status and its fields.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// The status.
    pub status: Status,
    /// What it reports.
    pub fields: Dictionary,
}

impl Answer {
    /// Acknowledged, with `fields`.
    #[must_use]
    pub(crate) fn ack(fields: Dictionary) -> Self {
        Self {
            status: Status::Acknowledged,
            fields,
        }
    }

    /// `NotNow`.
    #[must_use]
    pub(crate) fn not_now() -> Self {
        Self {
            status: Status::NotNow,
            fields: Dictionary::new(),
        }
    }

    /// Error, with one `ErrorChain` entry.
    #[must_use]
    pub(crate) fn error(code: i64, domain: &str, text: &str) -> Self {
        Self::chain(error_item(code, domain, text))
    }

    /// `Error`, for a bsi error that stopped the command ([`error_of`]).
    #[must_use]
    pub(crate) fn failed(e: &crate::Error) -> Self {
        Self::chain(error_of(e))
    }

    fn chain(item: Value) -> Self {
        let mut fields = Dictionary::new();
        fields.insert("ErrorChain".into(), Value::Array(vec![item]));
        Self {
            status: Status::Error,
            fields,
        }
    }

    /// The result message for command `uuid` (`UDID` is added by the channel).
    #[must_use]
    pub(crate) fn into_message(self, uuid: &str) -> Dictionary {
        let mut d = self.fields;
        d.insert("CommandUUID".into(), uuid.into());
        d.insert("Status".into(), self.status.name().into());
        d
    }
}

/// One `ErrorChain` entry.
#[must_use]
pub(crate) fn error_item(code: i64, domain: &str, text: &str) -> Value {
    let mut e = Dictionary::new();
    e.insert("ErrorCode".into(), code.into());
    e.insert("ErrorDomain".into(), domain.into());
    e.insert("LocalizedDescription".into(), text.into());
    e.insert("USEnglishDescription".into(), text.into());
    Value::Dictionary(e)
}

/// An `ErrorChain` entry for a bsi error that stopped a command: its exit code, `bsi.KIND`
/// and its message.
pub(crate) fn error_of(e: &crate::Error) -> Value {
    error_item(
        i64::from(e.exit_code()),
        &format!("bsi.{}", e.kind().name()),
        &e.to_string(),
    )
}

/// The answer to a request type the device does not have.
#[must_use]
pub(crate) fn unknown(request_type: &str) -> Answer {
    Answer::error(
        12021,
        "MCMDMErrorDomain",
        &format!("“{}” is not a valid request type.", clip(request_type)),
    )
}

/// Reads what the server answered a poll or a result with: a command, or nothing (an empty
/// body: no more commands).
pub(crate) fn read(bytes: &[u8]) -> Result<Option<Command>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let top: Dictionary = plist_xml::read(bytes, plist_xml::SMALL)
        .map_err(|e| format!("the server sent a command that is not a property list ({e})"))?;
    let uuid = match top.get("CommandUUID") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_UUID => s.clone(),
        Some(Value::String(s)) if s.len() > MAX_UUID => {
            return Err(format!(
                "the server sent a CommandUUID of {} bytes; bsi answers to at most {MAX_UUID}",
                s.len()
            ));
        }
        _ => return Err("the server sent a command without a CommandUUID".to_owned()),
    };
    let body = match top.get("Command") {
        Some(Value::Dictionary(d)) => d.clone(),
        _ => Dictionary::new(),
    };
    let request_type = body
        .get("RequestType")
        .and_then(Value::as_string)
        .unwrap_or_default()
        .to_owned();
    Ok(Some(Command {
        uuid,
        request_type,
        body,
    }))
}

/// What answering reads of the device.
#[derive(Debug)]
pub(crate) struct Facts<'a> {
    /// The device.
    pub device: &'a Device,
    /// Its state.
    pub snapshot: &'a Snapshot,
    /// Its enrollment.
    pub enrollment: &'a Enrollment,
}

impl Facts<'_> {
    fn platform(&self) -> Platform {
        self.device.info().platform
    }

    fn mac(&self) -> bool {
        self.platform() == Platform::MacOs
    }
}

/// One `DeviceInformation` query's value, when the device has it.
fn query(facts: &Facts<'_>, key: &str) -> Option<Value> {
    let info = facts.device.info();
    let id = info.identity();
    let s = facts.snapshot;
    let mac = facts.mac();
    Some(match key {
        "UDID" => facts.enrollment.udid.clone().into(),
        "SerialNumber" => id.serial_number.into(),
        "DeviceName" => id.device_name().into(),
        "Model" => id.model_number.clone().into(),
        "ModelName" => id.model_name.into(),
        "ModelNumber" => id
            .model_number
            .split('/')
            .next()
            .unwrap_or("")
            .trim_end_matches("LL")
            .to_owned()
            .into(),
        "ProductName" => id.model_identifier.into(),
        "OSVersion" => s.base.version.to_string().into(),
        "BuildVersion" => s.base.build.to_string().into(),
        "SupplementalBuildVersion" => s.supplemental_build().into(),
        // Only while a response is installed (Apple: "if a rapid security response update is
        // installed").
        "SupplementalOSVersionExtra" => s.active.as_ref()?.version.extra.to_string().into(),
        "IsSupervised" => info.supervised.into(),
        "IsAppleSilicon" if mac => (info.chip == Chip::AppleSilicon).into(),
        "HasBattery" => info.portable.into(),
        "BatteryLevel" if info.portable => {
            let pct = facts.device.power().ok()?.battery_percent?;
            Value::Real(f64::from(pct) / 100.0)
        }
        "IsMultiUser" if !mac => false.into(),
        "IsActivationLockEnabled" | "AwaitingConfiguration" => false.into(),
        "SystemIntegrityProtectionEnabled" if mac => true.into(),
        "LocalHostName" | "HostName" if mac => {
            let name: String = id
                .device_name()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            if key == "HostName" {
                format!("{name}.local").into()
            } else {
                name.into()
            }
        }
        // The device's volume, in base-10 GB (base-2 GiB on macOS 11 and earlier, as Apple
        // says), two decimals.
        "DeviceCapacity" | "AvailableDeviceCapacity" => {
            let v = facts.device.volume().ok()?;
            let blocks = if key == "DeviceCapacity" {
                v.f_blocks
            } else {
                v.f_bavail
            };
            let unit = if mac && s.base.version.major() <= 11 {
                f64::from(1u32 << 30)
            } else {
                1e9
            };
            #[allow(clippy::cast_precision_loss)] // a volume's bytes, shown to two decimals
            let gb = blocks.saturating_mul(v.f_frsize) as f64 / unit;
            Value::Real((gb * 100.0).round() / 100.0)
        }
        "PushToken" => {
            use base64::Engine as _;
            Value::Data(
                base64::engine::general_purpose::STANDARD
                    .decode(&facts.enrollment.push_token)
                    .ok()?,
            )
        }
        _ => return None,
    })
}

/// Queries any device may answer whatever the access rights (Apple: "accessrights: n/a").
const OPEN_QUERIES: [&str; 3] = ["UDID", "AwaitingConfiguration", "PushToken"];

/// `DeviceInformation`.
pub(crate) fn device_information(facts: &Facts<'_>, cmd: &Command) -> Answer {
    let Some(Value::Array(queries)) = cmd.body.get("Queries") else {
        return Answer::error(
            12001,
            "MCMDMErrorDomain",
            "The command is missing “Queries”.",
        );
    };
    let allowed = facts.enrollment.access_rights & QUERY_DEVICE_INFORMATION != 0;
    let mut responses = Dictionary::new();
    for q in queries.iter().filter_map(Value::as_string).take(256) {
        if !allowed && !OPEN_QUERIES.contains(&q) {
            continue;
        }
        if let Some(v) = query(facts, q) {
            responses.insert(q.to_owned(), v);
        }
    }
    let mut fields = Dictionary::new();
    fields.insert("QueryResponses".into(), Value::Dictionary(responses));
    Answer::ack(fields)
}

/// `ProfileList`: the enrollment profile, as the device holds it installed.
pub(crate) fn profile_list(facts: &Facts<'_>) -> Answer {
    let p = &facts.enrollment.profile;
    let mut item = Dictionary::new();
    item.insert("PayloadIdentifier".into(), p.top.identifier.clone().into());
    item.insert("PayloadUUID".into(), p.top.uuid.clone().into());
    item.insert("PayloadVersion".into(), p.top.version.into());
    if let Some(n) = &p.top.display_name {
        item.insert("PayloadDisplayName".into(), n.clone().into());
    }
    if let Some(o) = &p.organization {
        item.insert("PayloadOrganization".into(), o.clone().into());
    }
    item.insert(
        "PayloadRemovalDisallowed".into(),
        p.removal_disallowed.into(),
    );
    item.insert("HasRemovalPasscode".into(), false.into());
    item.insert("IsEncrypted".into(), false.into());
    let content: Vec<Value> = p
        .payloads
        .iter()
        .map(|s| {
            let mut d = Dictionary::new();
            d.insert("PayloadType".into(), s.payload_type.clone().into());
            d.insert("PayloadIdentifier".into(), s.identifier.clone().into());
            d.insert("PayloadUUID".into(), s.uuid.clone().into());
            d.insert("PayloadVersion".into(), s.version.into());
            if let Some(n) = &s.display_name {
                d.insert("PayloadDisplayName".into(), n.clone().into());
            }
            Value::Dictionary(d)
        })
        .collect();
    item.insert("PayloadContent".into(), Value::Array(content));
    let mut fields = Dictionary::new();
    fields.insert(
        "ProfileList".into(),
        Value::Array(vec![Value::Dictionary(item)]),
    );
    Answer::ack(fields)
}

/// `SecurityInfo`: what a simulated device can say truthfully of itself.
pub(crate) fn security_info(facts: &Facts<'_>) -> Answer {
    let info = facts.device.info();
    let mut s = Dictionary::new();
    if facts.mac() {
        s.insert("SystemIntegrityProtectionEnabled".into(), true.into());
        s.insert("AuthenticatedRootVolumeEnabled".into(), true.into());
        s.insert("FDE_Enabled".into(), false.into());
        s.insert("RemoteDesktopEnabled".into(), false.into());
        let mut m = Dictionary::new();
        m.insert("EnrolledViaDEP".into(), false.into());
        m.insert("UserApprovedEnrollment".into(), info.supervised.into());
        m.insert("IsUserEnrollment".into(), false.into());
        m.insert("IsActivationLockManageable".into(), false.into());
        s.insert("ManagementStatus".into(), Value::Dictionary(m));
        if info.chip == Chip::AppleSilicon {
            let mut b = Dictionary::new();
            b.insert("SecureBootLevel".into(), "full".into());
            b.insert("ExternalBootLevel".into(), "disallowed".into());
            s.insert("SecureBoot".into(), Value::Dictionary(b));
        }
    } else {
        s.insert("HardwareEncryptionCaps".into(), 3.into());
        s.insert("PasscodePresent".into(), false.into());
        s.insert("PasscodeCompliant".into(), true.into());
        s.insert("PasscodeCompliantWithProfiles".into(), true.into());
    }
    let mut fields = Dictionary::new();
    fields.insert("SecurityInfo".into(), Value::Dictionary(s));
    Answer::ack(fields)
}

/// `DeclarativeManagement`: the sync tokens the server front-loaded in `Data` (a JSON
/// `TokensResponse`, as KMFDDM sends for one enrollment), so that the sync that follows need
/// not ask the `tokens` endpoint; `None` when the command has no `Data`. `Data` that is not a
/// `TokensResponse` is answered `Error`, and no sync follows.
pub(crate) fn declarative_management(cmd: &Command) -> Result<Option<TokensResponse>, Answer> {
    let refused = |why: String| {
        Answer::error(
            12001,
            "MCMDMErrorDomain",
            &format!("The command’s “Data” is not a TokensResponse ({why})."),
        )
    };
    match cmd.body.get("Data") {
        None => Ok(None),
        Some(Value::Data(bytes)) => {
            let t: TokensResponse =
                serde_json::from_slice(bytes).map_err(|e| refused(clip(&e.to_string())))?;
            let long = t.sync_tokens.declarations_token.len();
            if long > MAX_TOKEN {
                return Err(refused(format!(
                    "its DeclarationsToken is {long} bytes; bsi takes at most {MAX_TOKEN}"
                )));
            }
            Ok(Some(t))
        }
        Some(_) => Err(refused("not data".to_owned())),
    }
}

/// What a command needs of the server and the device, as Apple's `supportedOS` gives it for
/// the platform: an access right of the profile's `AccessRights` (bits as Apple numbers them)
/// and supervision.
fn needs(request_type: &str, mac: bool) -> Option<(u64, &'static str, bool)> {
    Some(match request_type {
        "ProfileList" | "CertificateList" => (1, "AllowInspection", false),
        "SecurityInfo" => (1024, "AllowQuerySecurity", false),
        "RestartDevice" => (4, "AllowPasscodeRemovalAndLock", !mac),
        // On a Mac these need no access right; listing the updates not even supervision.
        "AvailableOSUpdates" if mac => (0, "", false),
        "ScheduleOSUpdate" | "OSUpdateStatus" if mac => (0, "", true),
        "AvailableOSUpdates" | "ScheduleOSUpdate" | "OSUpdateStatus" => {
            (4096, "AllowAppInstallation", true)
        }
        _ => return None,
    })
}

/// The `Error` a device answers when the server lacks the command's access right or the
/// device is not supervised and the command needs it; `None` when the command may run.
/// (`DeviceInformation` is not refused: each query has its own right, [`device_information`].)
pub(crate) fn refusal(facts: &Facts<'_>, request_type: &str) -> Option<Answer> {
    let (right, name, supervised) = needs(request_type, facts.mac())?;
    let refused = |why: String| Some(Answer::error(4, "bsi.policy", &why));
    if facts.enrollment.access_rights & right != right {
        return refused(format!("{request_type} needs the {name} access right."));
    }
    if supervised && !facts.device.info().supervised {
        return refused(format!("{request_type} needs a supervised device."));
    }
    None
}

/// `CertificateList`: the certificates installed with the enrollment: the identity
/// (`IsIdentity`) and the CAs the device trusts for its servers (the profile's and `--ca`'s).
/// A record that does not read fails the poll, as every command that needs it does.
pub(crate) fn certificate_list(facts: &Facts<'_>) -> crate::Result<Answer> {
    let item = |name: String, der: Vec<u8>, identity: bool| {
        let mut d = Dictionary::new();
        d.insert("CommonName".into(), name.into());
        d.insert("Data".into(), Value::Data(der));
        d.insert("IsIdentity".into(), identity.into());
        Value::Dictionary(d)
    };
    let id = super::enrollment::identity(facts.device)?;
    let der = id
        .cert_der()
        .map_err(|e| crate::Error::damaged(format!("record {MDM_IDENTITY}: {e}")))?;
    let mut list = vec![item(super::pki::common_name(&id.cert), der, true)];
    for der in super::enrollment::trust(facts.device)? {
        let name = <x509_cert::Certificate as der::Decode>::from_der(&der)
            .map(|c| super::pki::common_name(&c))
            .unwrap_or_default();
        list.push(item(name, der, false));
    }
    let mut fields = Dictionary::new();
    fields.insert("CertificateList".into(), Value::Array(list));
    Ok(Answer::ack(fields))
}

/// `RestartDevice`: the device restarts at once, which activates a staged response or completes
/// a staged removal, as `bsi restart` does (with nothing staged it restarts into what it runs).
/// On a Mac, `NotifyUser` only asks the user to restart: nothing restarts, and the command is
/// acknowledged.
pub(crate) fn restart_device(tx: &mut Tx<'_>, facts: &Facts<'_>, cmd: &Command) -> Answer {
    let notify = cmd.body.get("NotifyUser").and_then(Value::as_boolean) == Some(true);
    if facts.mac() && notify {
        return Answer::ack(Dictionary::new());
    }
    match crate::lifecycle::restart::restart(tx, false) {
        Ok(_) => Answer::ack(Dictionary::new()),
        Err(e) => Answer::failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_or_say_why_not() {
        assert!(read(b"").unwrap().is_none());
        assert!(read(b"  \n").unwrap().is_none());
        let c = read(br#"<plist version="1.0"><dict><key>CommandUUID</key><string>u-1</string><key>Command</key><dict><key>RequestType</key><string>DeviceInformation</string><key>Queries</key><array><string>UDID</string></array></dict></dict></plist>"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.uuid.as_str(), c.request_type.as_str()),
            ("u-1", "DeviceInformation")
        );
        assert!(
            read(b"<plist version=\"1.0\"><dict/></plist>")
                .unwrap_err()
                .contains("CommandUUID")
        );
        assert!(read(b"bplist00").unwrap_err().contains("binary"));
        let long = format!(
            "<plist version=\"1.0\"><dict><key>CommandUUID</key><string>{}</string></dict></plist>",
            "x".repeat(300)
        );
        assert!(read(long.as_bytes()).unwrap_err().contains("300 bytes"));
    }

    #[test]
    fn a_declarative_management_command_may_carry_the_tokens() {
        let with = |data: Option<Value>| {
            let mut body = Dictionary::new();
            if let Some(d) = data {
                body.insert("Data".into(), d);
            }
            declarative_management(&Command {
                uuid: "u".into(),
                request_type: "DeclarativeManagement".into(),
                body,
            })
        };
        assert!(with(None).unwrap().is_none());
        let given = with(Some(Value::Data(
            br#"{"SyncTokens":{"DeclarationsToken":"t-1","Timestamp":"2026-12-01T10:00:00Z"}}"#
                .to_vec(),
        )));
        assert_eq!(
            given.unwrap().unwrap().sync_tokens.declarations_token,
            "t-1"
        );
        let long = format!(
            r#"{{"SyncTokens":{{"DeclarationsToken":"{}"}}}}"#,
            "t".repeat(1025)
        );
        for bad in [
            Value::Data(b"{}".to_vec()),
            Value::String("{}".into()),
            Value::Data(long.into_bytes()),
        ] {
            assert_eq!(with(Some(bad)).unwrap_err().status, Status::Error);
        }
    }

    #[test]
    fn an_unknown_request_is_an_error_as_devices_answer_it() {
        let a = unknown("MakeCoffee");
        assert_eq!(a.status, Status::Error);
        let m = a.into_message("u");
        let chain = m.get("ErrorChain").and_then(Value::as_array).unwrap();
        let e = chain[0].as_dictionary().unwrap();
        assert_eq!(
            e.get("ErrorCode").and_then(Value::as_signed_integer),
            Some(12021)
        );
        assert_eq!(
            e.get("ErrorDomain").and_then(Value::as_string),
            Some("MCMDMErrorDomain")
        );
        assert_eq!(
            e.get("USEnglishDescription").and_then(Value::as_string),
            Some("“MakeCoffee” is not a valid request type.")
        );
        assert_eq!(m.get("Status").and_then(Value::as_string), Some("Error"));
    }
}
