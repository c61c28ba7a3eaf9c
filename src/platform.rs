//! The kinds of device bsi simulates and the parts of a response: the [`Platform`] (macOS, iOS,
//! iPadOS), the processor family ([`Chip`]), and the two [`Cryptex`]es a response can carry. Pure
//! names, shared by the bundle format, the device and the rules; no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A platform bsi simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) enum Platform {
    /// A Mac.
    #[serde(rename = "macOS")]
    MacOs,
    /// An iPhone.
    #[serde(rename = "iOS")]
    Ios,
    /// An iPad.
    #[serde(rename = "iPadOS")]
    IpadOs,
}

impl Platform {
    /// Apple's product name, as in `SystemVersion.plist` and bundle manifests.
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Platform::MacOs => "macOS",
            Platform::Ios => "iOS",
            Platform::IpadOs => "iPadOS",
        }
    }

    /// Does a device of this platform take a bundle made for `product`? iPadOS takes iOS bundles
    /// and builds, as Apple publishes one release for both (its catalog lists iPadOS under iOS).
    #[must_use]
    pub(crate) fn takes_bundles_for(self, product: Platform) -> bool {
        self == product || (self == Platform::IpadOs && product == Platform::Ios)
    }

    /// The first OS version that takes responses: Apple shipped Rapid Security Responses from
    /// iOS and iPadOS 16 and macOS 13 (Ventura).
    #[must_use]
    pub(crate) const fn first_with_responses(self) -> crate::version::OsVersion {
        match self {
            Platform::MacOs => crate::version::OsVersion::new(13, 0, 0),
            Platform::Ios | Platform::IpadOs => crate::version::OsVersion::new(16, 0, 0),
        }
    }

    /// The first OS version that, enforced to a response whose base is a later minor version,
    /// updates its base first and then installs the response (iOS and iPadOS 18, macOS 15
    /// Sequoia); earlier versions need the OS update on its own first.
    #[must_use]
    pub(crate) const fn first_to_update_first(self) -> crate::version::OsVersion {
        match self {
            Platform::MacOs => crate::version::OsVersion::new(15, 0, 0),
            Platform::Ios | Platform::IpadOs => crate::version::OsVersion::new(18, 0, 0),
        }
    }

    /// Parses Apple's product name.
    #[must_use]
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "macOS" => Some(Platform::MacOs),
            "iOS" => Some(Platform::Ios),
            "iPadOS" => Some(Platform::IpadOs),
            _ => None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The processor family, which sets a Mac laptop's battery minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Chip {
    /// Apple silicon (every iPhone and iPad, and Macs since 2020).
    AppleSilicon,
    /// An Intel-based Mac.
    Intel,
}

impl std::fmt::Display for Chip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Chip::AppleSilicon => "apple-silicon",
            Chip::Intel => "intel",
        })
    }
}

/// One of the two cryptexes a response can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Cryptex {
    /// Safari and its associated processes.
    App,
    /// The rest of the operating system.
    #[serde(rename = "OS")]
    Os,
}

impl Cryptex {
    /// Both cryptexes, in the order bsi lists them.
    pub(crate) const ALL: [Cryptex; 2] = [Cryptex::App, Cryptex::Os];

    /// The directory name, `App` or `OS`.
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Cryptex::App => "App",
            Cryptex::Os => "OS",
        }
    }

    /// Parses `App` or `OS`.
    #[must_use]
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "App" => Some(Cryptex::App),
            "OS" => Some(Cryptex::Os),
            _ => None,
        }
    }
}

impl fmt::Display for Cryptex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
