//! What a device of a given platform, OS version and enrollment supports, as the `supportedOS`
//! sections of Apple's schemas say (`reference/apple-device-management/declarative/`): which
//! declaration types it accepts, which payload keys of a settings declaration it honours, and
//! which status items it reports. Pure tables and lookups; no I/O.
//!
//! Enrollment: a supervised device is `supervised`; an unsupervised iPhone or iPad is `device`
//! (device enrollment); an unsupervised Mac is `user` (since macOS 11 every device-enrolled Mac
//! that is user-approved counts as supervised, so the unsupervised Macs left are user
//! enrollments). iPadOS takes the iOS entries, as Apple's schemas do.

use crate::platform::Platform;
use crate::version::OsVersion;

/// How the device is enrolled, in the schemas' `allowed-enrollments` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enrollment {
    /// Supervised (Automated Device Enrollment, or a user-approved Mac).
    Supervised,
    /// Device enrollment of an unsupervised iPhone or iPad.
    Device,
    /// User enrollment (an unsupervised Mac).
    User,
}

impl Enrollment {
    /// The schemas' name.
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Enrollment::Supervised => "supervised",
            Enrollment::Device => "device",
            Enrollment::User => "user",
        }
    }
}

/// The facts about a device that decide what it supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceFacts {
    /// Platform.
    pub platform: Platform,
    /// The base OS version.
    pub os: OsVersion,
    /// Enrollment.
    pub enrollment: Enrollment,
}

impl DeviceFacts {
    /// The facts of a device with `platform`, base `os`, supervised or not.
    #[must_use]
    pub(crate) fn new(platform: Platform, os: OsVersion, supervised: bool) -> Self {
        let enrollment = match (supervised, platform) {
            (true, _) => Enrollment::Supervised,
            (false, Platform::MacOs) => Enrollment::User,
            (false, Platform::Ios | Platform::IpadOs) => Enrollment::Device,
        };
        Self {
            platform,
            os,
            enrollment,
        }
    }

    /// `iOS` or `macOS`: the schemas' key for this platform.
    #[must_use]
    pub(crate) fn schema_os(&self) -> &'static str {
        match self.platform {
            Platform::MacOs => "macOS",
            Platform::Ios | Platform::IpadOs => "iOS",
        }
    }
}

const S: Enrollment = Enrollment::Supervised;
const D: Enrollment = Enrollment::Device;
const U: Enrollment = Enrollment::User;

/// One platform's entry of a `supportedOS` section.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// `introduced`: `None` for `n/a`.
    introduced: Option<(u32, u32, u32)>,
    /// `allowed-enrollments`.
    enrollments: &'static [Enrollment],
}

/// A `supportedOS` section: the iOS entry and the macOS entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Support {
    ios: Entry,
    macos: Entry,
}

const fn since(major: u32, minor: u32, patch: u32, enrollments: &'static [Enrollment]) -> Entry {
    Entry {
        introduced: Some((major, minor, patch)),
        enrollments,
    }
}

impl Support {
    /// Does a device with `facts` support it?
    pub(crate) fn allows(&self, facts: &DeviceFacts) -> bool {
        let entry = match facts.platform {
            Platform::MacOs => self.macos,
            Platform::Ios | Platform::IpadOs => self.ios,
        };
        entry
            .introduced
            .is_some_and(|(a, b, c)| facts.os >= OsVersion::new(a, b, c))
            && entry.enrollments.contains(&facts.enrollment)
    }
}

/// The `supportedOS` most of DDM shares: iOS 15 and macOS 13, every enrollment the platform has.
pub(crate) const DDM: Support = Support {
    ios: since(15, 0, 0, &[S, D, U]),
    macos: since(13, 0, 0, &[S, U]),
};

/// The supplemental (response) status items: iOS 16.1 and macOS 13.
pub(crate) const SUPPLEMENTAL: Support = Support {
    ios: since(16, 1, 0, &[S, D, U]),
    macos: since(13, 0, 0, &[S, U]),
};

/// Software-update enforcement and status items: iOS 17 (supervised or device enrollment) and
/// macOS 14 (supervised).
pub(crate) const SOFTWARE_UPDATE: Support = Support {
    ios: since(17, 0, 0, &[S, D]),
    macos: since(14, 0, 0, &[S]),
};

/// Software-update settings: iOS 18 and macOS 15.
pub(crate) const SETTINGS: Support = Support {
    ios: since(18, 0, 0, &[S, D]),
    macos: since(15, 0, 0, &[S]),
};

/// `FullReport` in a status report (`protocol/statusreport.yaml`): iOS 17 and macOS 14.
pub(crate) const FULL_REPORT: Support = Support {
    ios: since(17, 0, 0, &[S, D, U]),
    macos: since(14, 0, 0, &[S, U]),
};

/// Declaration types bsi implements, with their `supportedOS`.
const DECLARATION_TYPES: &[(&str, Support)] = &[
    ("com.apple.activation.simple", DDM),
    (
        "com.apple.configuration.management.status-subscriptions",
        DDM,
    ),
    (
        "com.apple.configuration.softwareupdate.enforcement.specific",
        SOFTWARE_UPDATE,
    ),
    ("com.apple.configuration.softwareupdate.settings", SETTINGS),
    ("com.apple.management.server-capabilities", DDM),
];

/// Every declaration type bsi implements.
pub(crate) fn declaration_types() -> impl Iterator<Item = &'static str> {
    DECLARATION_TYPES.iter().map(|(k, _)| *k)
}

/// Does the device accept declarations of type `kind`? `None`: bsi does not implement the type.
#[must_use]
pub(crate) fn declaration_type(kind: &str, facts: &DeviceFacts) -> Option<bool> {
    DECLARATION_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| s.allows(facts))
}

/// The type's `supportedOS` in words for this platform, for messages: e.g. `macOS 15.0 or later,
/// supervised`.
#[must_use]
pub(crate) fn declaration_type_needs(kind: &str, facts: &DeviceFacts) -> Option<String> {
    let (_, support) = DECLARATION_TYPES.iter().find(|(k, _)| *k == kind)?;
    let entry = match facts.platform {
        Platform::MacOs => support.macos,
        Platform::Ios | Platform::IpadOs => support.ios,
    };
    Some(match entry.introduced {
        None => format!("not available on {}", facts.schema_os()),
        Some((a, b, c)) => format!(
            "{} {} or later, enrolled as {}",
            facts.schema_os(),
            OsVersion::new(a, b, c),
            entry
                .enrollments
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    })
}

/// Why a settings key does not take effect on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyLimit {
    /// `introduced: n/a` for this platform.
    NotOnPlatform,
    /// Not allowed for this enrollment.
    NotForEnrollment,
}

/// Per-key limits of `com.apple.configuration.softwareupdate.settings`, by key path: a key
/// whose parent is limited is limited too.
const SETTINGS_KEY_LIMITS: &[(&str, Platform, Option<&[Enrollment]>)] = &[
    // (key, platform family it is limited on, allowed enrollments; None = n/a there)
    ("Deferrals", Platform::Ios, Some(&[S])),
    ("Deferrals.CombinedPeriodInDays", Platform::MacOs, None),
    ("Deferrals.MajorPeriodInDays", Platform::Ios, None),
    ("Deferrals.MinorPeriodInDays", Platform::Ios, None),
    ("Deferrals.SystemPeriodInDays", Platform::Ios, None),
    ("RecommendedCadence", Platform::MacOs, None),
    ("AutomaticActions", Platform::Ios, Some(&[S])),
    ("RapidSecurityResponse", Platform::Ios, Some(&[S])),
    ("AllowStandardUserOSUpdates", Platform::Ios, None),
    ("Beta", Platform::MacOs, None),
    ("Beta.ProgramEnrollment", Platform::Ios, Some(&[S])),
    ("Beta.RequireProgram", Platform::Ios, Some(&[S])),
];

/// Does a settings key path (e.g. `Deferrals.CombinedPeriodInDays`) take effect on the device?
#[must_use]
pub(crate) fn settings_key(path: &str, facts: &DeviceFacts) -> Option<KeyLimit> {
    let family = match facts.platform {
        Platform::MacOs => Platform::MacOs,
        Platform::Ios | Platform::IpadOs => Platform::Ios,
    };
    let mut prefix = String::new();
    let mut limit = None;
    for part in path.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(part);
        for (key, on, allowed) in SETTINGS_KEY_LIMITS {
            if *key != prefix || *on != family {
                continue;
            }
            match allowed {
                None => return Some(KeyLimit::NotOnPlatform),
                Some(list) if !list.contains(&facts.enrollment) => {
                    limit = limit.or(Some(KeyLimit::NotForEnrollment));
                }
                Some(_) => {}
            }
        }
    }
    limit
}

/// `device.identifier.serial-number` and `.udid`: iOS 16 (supervised or device enrollment),
/// macOS 13 (supervised); a user enrollment never reveals the hardware's identity.
pub(crate) const IDENTIFIERS: Support = Support {
    ios: since(16, 0, 0, &[S, D]),
    macos: since(13, 0, 0, &[S]),
};

/// Does the device send `FullReport` in its status reports?
#[must_use]
pub(crate) fn full_report(facts: &DeviceFacts) -> bool {
    FULL_REPORT.allows(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(p: Platform, v: &str, supervised: bool) -> DeviceFacts {
        DeviceFacts::new(p, v.parse().unwrap(), supervised)
    }

    #[test]
    fn declaration_types_follow_supported_os() {
        let settings = "com.apple.configuration.softwareupdate.settings";
        let enforcement = "com.apple.configuration.softwareupdate.enforcement.specific";
        let mac13 = facts(Platform::MacOs, "13.3.1", true);
        assert_eq!(declaration_type(settings, &mac13), Some(false));
        assert_eq!(declaration_type(enforcement, &mac13), Some(false));
        assert_eq!(
            declaration_type("com.apple.activation.simple", &mac13),
            Some(true)
        );
        let mac15 = facts(Platform::MacOs, "15.0", true);
        assert_eq!(declaration_type(settings, &mac15), Some(true));
        let mac_user = facts(Platform::MacOs, "26.3", false);
        assert_eq!(declaration_type(settings, &mac_user), Some(false));
        assert_eq!(declaration_type(enforcement, &mac_user), Some(false));
        let ipad = facts(Platform::IpadOs, "17.4", false);
        assert_eq!(declaration_type(enforcement, &ipad), Some(true));
        assert_eq!(declaration_type(settings, &ipad), Some(false));
        assert_eq!(
            declaration_type("com.apple.configuration.passcode.settings", &ipad),
            None
        );
        assert_eq!(
            declaration_type_needs(settings, &mac13).unwrap(),
            "macOS 15.0 or later, enrolled as supervised"
        );
    }

    #[test]
    fn settings_keys_follow_per_key_limits() {
        let mac = facts(Platform::MacOs, "26.3", true);
        assert_eq!(
            settings_key("Deferrals.CombinedPeriodInDays", &mac),
            Some(KeyLimit::NotOnPlatform)
        );
        assert_eq!(settings_key("Deferrals.MinorPeriodInDays", &mac), None);
        assert_eq!(
            settings_key("AutomaticActions.InstallSecurityUpdate", &mac),
            None
        );
        // Apple's 18.1 schema marks it n/a on iOS; its current documentation lists it for
        // iOS 18 and later, and bsi follows the newer text (docs/design.md).
        let iphone = facts(Platform::Ios, "26.3", true);
        assert_eq!(
            settings_key("AutomaticActions.InstallSecurityUpdate", &iphone),
            None
        );
        assert_eq!(settings_key("RapidSecurityResponse.Enable", &iphone), None);
        let unsupervised = facts(Platform::Ios, "26.3", false);
        assert_eq!(
            settings_key("RapidSecurityResponse.Enable", &unsupervised),
            Some(KeyLimit::NotForEnrollment)
        );
        assert_eq!(settings_key("Notifications", &unsupervised), None);
    }
}
