//! The MDM enrollment's records, as the device keeps them (`private/var/db/bsi/mdm/
//! enrollment.json`): what `status`, `verify` and `fleet status` read. Making, using and removing
//! an enrollment is `mdm`'s; this is only the record, so that readers need not know MDM.

use serde::{Deserialize, Serialize};

use super::Device;
use super::layout::MDM_ENROLLMENT;
use super::records;
use crate::Result;

/// One payload, as `ProfileList` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PayloadSummary {
    /// `PayloadType`.
    pub payload_type: String,
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion`.
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
}

/// The profile as the device keeps it installed (for `ProfileList` and `status`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct InstalledProfile {
    /// The top level.
    pub top: PayloadSummary,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: bool,
    /// Its payloads.
    pub payloads: Vec<PayloadSummary>,
    /// Who signed it, for a signed profile.
    pub signer: Option<String>,
}

/// The identity's names (the key itself is only in `identity.pem`).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct IdentityNames {
    /// The certificate's subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// When it expires (RFC 3339).
    pub not_after: String,
    /// Where it came from: `scep`, `pkcs12` or `file`.
    pub source: String,
}

/// `enrollment.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Enrollment {
    /// `ServerURL`.
    pub server_url: String,
    /// `CheckInURL`.
    pub checkin_url: String,
    /// `Topic`.
    pub topic: String,
    /// `SignMessage`.
    pub sign_message: bool,
    /// `AccessRights`.
    pub access_rights: u64,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: bool,
    /// The UDID the device enrolled as.
    pub udid: String,
    /// The push token it sent (base64).
    pub push_token: String,
    /// The push magic it sent.
    pub push_magic: String,
    /// The installed profile.
    pub profile: InstalledProfile,
    /// The identity.
    pub identity: IdentityNames,
    /// When the device enrolled.
    pub enrolled_at: String,
    /// The last check-in or poll the server answered.
    pub last_checkin: Option<String>,
}

/// The enrollment, when the device has one.
pub(crate) fn load(device: &Device) -> Result<Option<Enrollment>> {
    records::read_json_opt(device.root(), MDM_ENROLLMENT)
}
