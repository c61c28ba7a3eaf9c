//! The device's on-disk layout (DESIGN section 2): every path bsi uses inside a device root is
//! named here, relative to the root, and nowhere else.
//!
//! ```text
//! System/Library/CoreServices/SystemVersion.plist   base OS
//! System/Cryptexes/{OS,App} -> ../../System/Volumes/Preboot/Cryptexes/{OS,App}
//! System/Volumes/Preboot/Cryptexes/{OS,App} -> ../<UUID>/cryptex1/current/{OS,App}
//! System/Volumes/Preboot/<UUID>/cryptex1/
//!     current  -> generations/<name>     the active content (the one switch point)
//!     proposed -> generations/<name>     staged content, present only while staged
//!     generations/base-<build>/          the base OS's cryptexes
//!     generations/<supplemental build>/  a response's cryptexes
//! private/var/db/bsi/                    bsi's records
//! ```
//!
//! Because `Preboot/Cryptexes/*` reach the content through `cryptex1/current`, switching that one
//! symlink changes the grafted trees and `current/SystemVersion.plist` together, in one rename
//! (invariants I1 and I2).

use std::path::{Path, PathBuf};

use crate::platform::Cryptex;

/// The base OS's `SystemVersion.plist`.
pub(crate) const SYSTEM_VERSION: &str = "System/Library/CoreServices/SystemVersion.plist";
/// Where the `System/Cryptexes` links live.
pub(crate) const SYSTEM_CRYPTEXES: &str = "System/Cryptexes";
/// The simulated Preboot volume.
pub(crate) const PREBOOT: &str = "System/Volumes/Preboot";
/// Where active cryptex content is grafted.
pub(crate) const PREBOOT_CRYPTEXES: &str = "System/Volumes/Preboot/Cryptexes";
/// bsi's records.
pub(crate) const DB: &str = "private/var/db/bsi";
/// The device record, whose presence makes a directory a bsi device.
pub(crate) const DEVICE_RECORD: &str = "private/var/db/bsi/device.json";
/// A copy of the enrollment identifier, from which `repair` rebuilds a lost device record.
pub(crate) const ENROLLMENT_RECORD: &str = "private/var/db/bsi/enrollment.json";
/// The simulated power source.
pub(crate) const POWER_RECORD: &str = "private/var/db/bsi/power.json";
/// The user's settings.
pub(crate) const SETTINGS_RECORD: &str = "private/var/db/bsi/settings.json";
/// Responses included by the last minor update.
pub(crate) const INCLUDED_RECORD: &str = "private/var/db/bsi/included.json";
/// Which staged content Safari was relaunched onto.
pub(crate) const SAFARI_RECORD: &str = "private/var/db/bsi/safari.json";
/// The operation history, one JSON object per line.
pub(crate) const HISTORY: &str = "private/var/db/bsi/history.jsonl";
/// What needs the whole history, so that nothing reads it whole.
pub(crate) const HISTORY_SUMMARY: &str = "private/var/db/bsi/history-summary.json";
/// The last operation, so that `status` need not read the history.
pub(crate) const LAST_OPERATION: &str = "private/var/db/bsi/last-operation.json";
/// The software-update failure record `report` reads.
pub(crate) const FAILURE_RECORD: &str = "private/var/db/bsi/failure.json";
/// The reason for the last install, for `report`.
pub(crate) const INSTALL_REASON_RECORD: &str = "private/var/db/bsi/install-reason.json";
/// `report-delivered.json`: the status items of the last report marked delivered, which
/// `report --changes` compares against.
pub(crate) const REPORT_DELIVERED_RECORD: &str = "private/var/db/bsi/report-delivered.json";
/// `sync.json`: the DDM server this device syncs with, its declarations token, and the status
/// items the server last acknowledged (`bsi sync`).
pub(crate) const SYNC_RECORD: &str = "private/var/db/bsi/sync.json";
/// The base the device ran when each enforcement declaration it holds arrived: a declaration is
/// judged as it was when the device processed it.
pub(crate) const RECEIVED_RECORD: &str = "private/var/db/bsi/declarations-received.json";
/// The MDM enrollment (`bsi mdm enroll`): server, topic, profile, identity's names.
pub(crate) const MDM_ENROLLMENT: &str = "private/var/db/bsi/mdm/enrollment.json";
/// The MDM identity: certificate and private key, PEM, mode 0600.
pub(crate) const MDM_IDENTITY: &str = "private/var/db/bsi/mdm/identity.pem";
/// The CAs the MDM device trusts for TLS (`--ca`, and the profile's certificate payloads).
pub(crate) const MDM_TRUST: &str = "private/var/db/bsi/mdm/trust.pem";
/// The directory of the MDM records.
pub(crate) const MDM_DIR: &str = "private/var/db/bsi/mdm";
/// The bundle each response on the device came from (for `repair --from` hints).
pub(crate) const ORIGINS_RECORD: &str = "private/var/db/bsi/origins.json";
/// The journal of the operation in progress.
pub(crate) const JOURNAL: &str = "private/var/db/bsi/journal.json";
/// The device lock.
pub(crate) const LOCK: &str = "private/var/db/bsi/lock";
/// Trusted public keys.
pub(crate) const TRUST: &str = "private/var/db/bsi/trust";
/// Stored DDM declarations.
pub(crate) const DECLARATIONS: &str = "private/var/db/bsi/declarations";

/// Directory within `cryptex1` holding the content generations.
pub(crate) const GENERATIONS: &str = "generations";
/// The name of the base generation's digest list.
pub(crate) const BASE_MANIFEST: &str = "Cryptexes.plist";
/// A generation's `SystemVersion.plist`.
pub(crate) const GEN_SYSTEM_VERSION: &str = "SystemVersion.plist";
/// A response generation's manifest and signature, as they came in the bundle.
pub(crate) const GEN_MANIFEST: &str = "Info.plist";
/// The manifest's signature.
pub(crate) const GEN_SIGNATURE: &str = "Info.plist.sig";

/// Paths that depend on the device's volume group UUID.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    uuid: String,
}

impl Layout {
    /// The layout of a device whose volume group is `uuid`.
    #[must_use]
    pub(crate) fn new(uuid: &str) -> Self {
        Self {
            uuid: uuid.to_owned(),
        }
    }

    /// `System/Volumes/Preboot/<UUID>/cryptex1`.
    #[must_use]
    pub(crate) fn cryptex1(&self) -> PathBuf {
        Path::new(PREBOOT).join(&self.uuid).join("cryptex1")
    }

    /// `cryptex1/current`: the switch point for active content.
    #[must_use]
    pub(crate) fn current(&self) -> PathBuf {
        self.cryptex1().join("current")
    }

    /// `cryptex1/proposed`: staged content waiting for a restart.
    #[must_use]
    pub(crate) fn proposed(&self) -> PathBuf {
        self.cryptex1().join("proposed")
    }

    /// `cryptex1/generations`.
    #[must_use]
    pub(crate) fn generations(&self) -> PathBuf {
        self.cryptex1().join(GENERATIONS)
    }

    /// One generation's directory.
    #[must_use]
    pub(crate) fn generation(&self, name: &str) -> PathBuf {
        self.generations().join(name)
    }

    /// `System/Volumes/Preboot/Cryptexes/<cryptex>`: the graft link.
    #[must_use]
    pub(crate) fn graft(cryptex: Cryptex) -> PathBuf {
        Path::new(PREBOOT_CRYPTEXES).join(cryptex.as_str())
    }

    /// The graft link's target: through `cryptex1/current`.
    #[must_use]
    pub(crate) fn graft_target(&self, cryptex: Cryptex) -> PathBuf {
        Path::new("..")
            .join(&self.uuid)
            .join("cryptex1/current")
            .join(cryptex.as_str())
    }

    /// `System/Cryptexes/<cryptex>`.
    #[must_use]
    pub(crate) fn system_link(cryptex: Cryptex) -> PathBuf {
        Path::new(SYSTEM_CRYPTEXES).join(cryptex.as_str())
    }

    /// The `System/Cryptexes` link's target, exactly as DESIGN section 2 gives it.
    #[must_use]
    pub(crate) fn system_link_target(cryptex: Cryptex) -> PathBuf {
        Path::new("../..")
            .join(PREBOOT_CRYPTEXES)
            .join(cryptex.as_str())
    }
}
