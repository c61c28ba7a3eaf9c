//! Who the device is to a server: its UDID, serial number and model, as a real device reports
//! them in status items and MDM check-ins. Kept in `device.json` once made; a device made before
//! they were recorded derives them from its volume group, so they never change.

use crate::bundle::digest::Digest;
use crate::platform::{Chip, Platform};

use super::DeviceInfo;

/// The device's identifiers and model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    /// `UDID` (e.g. `00008112-001A2C3E0A8B401E`).
    pub udid: String,
    /// `SerialNumber` (e.g. `C02ZK3ZHMD6M`).
    pub serial_number: String,
    /// `device.model.family`: `Mac`, `iPhone` or `iPad`.
    pub model_family: String,
    /// `device.model.identifier` and MDM's `ProductName`: `Mac15,3`, `iPhone16,1`.
    pub model_identifier: String,
    /// MDM's `ModelName`: `MacBook Pro`, `iPhone`.
    pub model_name: String,
    /// MDM's `Model`: the order number, e.g. `MRX33LL/A`.
    pub model_number: String,
}

impl Identity {
    /// The identity a device of this kind gets, drawn from `seed` (its volume group): the same
    /// seed always gives the same identity.
    #[must_use]
    pub(crate) fn derive(platform: Platform, chip: Chip, portable: bool, seed: &str) -> Self {
        // Serial numbers use digits and consonant-heavy capitals, 10 or 12 long.
        const SERIAL: &[u8] = b"0123456789CDFGHJKLMNPQRTVWXY";
        let hex = Digest::of(seed.as_bytes()).to_hex().to_ascii_uppercase();
        let serial_number: String = hex
            .bytes()
            .skip(16)
            .take(10)
            .map(|b| char::from(SERIAL[usize::from(b) % SERIAL.len()]))
            .collect();
        let (family, identifier, name, number, chip_id) = match (platform, chip, portable) {
            (Platform::MacOs, Chip::AppleSilicon, true) => {
                ("Mac", "Mac15,3", "MacBook Pro", "MRX33LL/A", "8122")
            }
            (Platform::MacOs, Chip::AppleSilicon, false) => {
                ("Mac", "Mac14,3", "Mac mini", "MMFJ3LL/A", "8112")
            }
            (Platform::MacOs, Chip::Intel, true) => {
                ("Mac", "MacBookPro16,1", "MacBook Pro", "MVVJ2LL/A", "")
            }
            (Platform::MacOs, Chip::Intel, false) => ("Mac", "iMac20,1", "iMac", "MXWT2LL/A", ""),
            (Platform::Ios, _, _) => ("iPhone", "iPhone16,1", "iPhone", "MTUV3LL/A", "8130"),
            (Platform::IpadOs, _, _) => ("iPad", "iPad14,3", "iPad Pro", "MNXD3LL/A", "8112"),
        };
        // Apple silicon and iPhone UDIDs are `0000` + the chip id + `-` + 16 hex digits; Intel
        // Macs have the hardware UUID as their UDID.
        let udid = if chip_id.is_empty() {
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        } else {
            format!("0000{chip_id}-{}", &hex[..16])
        };
        Self {
            udid,
            serial_number,
            model_family: family.to_owned(),
            model_identifier: identifier.to_owned(),
            model_name: name.to_owned(),
            model_number: number.to_owned(),
        }
    }
}

impl Identity {
    /// The device's name, as a user would have named it: the model and the serial number's
    /// last four characters (`MacBook Pro GX7Q`).
    #[must_use]
    pub(crate) fn device_name(&self) -> String {
        let tail: String = self
            .serial_number
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{} {tail}", self.model_name)
    }
}

impl DeviceInfo {
    /// The device's identity: recorded, or derived from its volume group.
    #[must_use]
    pub(crate) fn identity(&self) -> Identity {
        self.identity.clone().unwrap_or_else(|| {
            Identity::derive(self.platform, self.chip, self.portable, &self.volume_group)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_look_like_apple_devices_and_are_stable() {
        let mac = Identity::derive(Platform::MacOs, Chip::AppleSilicon, true, "seed");
        assert_eq!(
            mac,
            Identity::derive(Platform::MacOs, Chip::AppleSilicon, true, "seed")
        );
        assert!(
            mac.udid.starts_with("00008122-") && mac.udid.len() == 25,
            "{}",
            mac.udid
        );
        assert_eq!(mac.serial_number.len(), 10);
        let intel = Identity::derive(Platform::MacOs, Chip::Intel, false, "seed");
        assert_eq!(intel.udid.len(), 36);
        assert_eq!(
            Identity::derive(Platform::Ios, Chip::AppleSilicon, true, "x").model_family,
            "iPhone"
        );
        assert_ne!(
            mac.udid,
            Identity::derive(Platform::MacOs, Chip::AppleSilicon, true, "other").udid
        );
    }
}
