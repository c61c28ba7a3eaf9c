//! The power gate (DESIGN section 1): a Mac laptop must be on power or have at least 10 % battery
//! (Apple silicon) or 20 % (Intel) to apply a response. Desktops have no battery gate, and Apple
//! states no battery rule for iPhone and iPad responses, so none is enforced there.

use crate::Error;
use crate::device::{Chip, DeviceInfo, Platform, Power};

/// The battery rule that applies to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PowerRule {
    /// Minimum battery percentage when not on power; `None` when there is no gate.
    pub minimum: Option<u8>,
    /// The kind of device, for messages.
    pub what: &'static str,
    /// Why this rule applies, for `status`.
    pub why: &'static str,
}

/// The rule for this device.
#[must_use]
pub(crate) fn rule(info: &DeviceInfo) -> PowerRule {
    match (info.platform, info.portable, info.chip) {
        (Platform::MacOs, true, Chip::AppleSilicon) => PowerRule {
            minimum: Some(10),
            what: "a Mac laptop with Apple silicon",
            why: "a Mac laptop with Apple silicon needs power or at least 10 % battery",
        },
        (Platform::MacOs, true, Chip::Intel) => PowerRule {
            minimum: Some(20),
            what: "an Intel-based Mac laptop",
            why: "an Intel-based Mac laptop needs power or at least 20 % battery",
        },
        (Platform::MacOs, false, _) => PowerRule {
            minimum: None,
            what: "a desktop Mac",
            why: "desktop Macs have no battery gate",
        },
        (Platform::Ios | Platform::IpadOs, _, _) => PowerRule {
            minimum: None,
            what: "an iPhone or iPad",
            why: "Apple states no battery rule for iPhone and iPad responses; none is enforced",
        },
    }
}

/// Does the device pass the gate now?
#[must_use]
pub(crate) fn passes(info: &DeviceInfo, power: Power) -> bool {
    match rule(info).minimum {
        None => true,
        Some(minimum) => power.on_ac || power.battery_percent.unwrap_or(0) >= minimum,
    }
}

/// Checks the gate; exit 3 when it does not pass.
pub(crate) fn check(info: &DeviceInfo, power: Power) -> Result<(), Error> {
    let r = rule(info);
    match r.minimum {
        Some(minimum) if !passes(info, power) => Err(Error::PowerGate {
            battery: power.battery_percent.unwrap_or(0),
            minimum,
            what: r.what,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(platform: Platform, portable: bool, chip: Chip) -> DeviceInfo {
        DeviceInfo {
            format: 1,
            platform,
            chip,
            portable,
            supervised: false,
            volume_group: String::new(),
            enrollment_id: None,
            identity: None,
            created: String::new(),
        }
    }

    #[test]
    fn gate_table() {
        let power = |pct, ac| Power {
            battery_percent: Some(pct),
            on_ac: ac,
        };
        let table = [
            (
                device(Platform::MacOs, true, Chip::AppleSilicon),
                power(9, false),
                false,
            ),
            (
                device(Platform::MacOs, true, Chip::AppleSilicon),
                power(10, false),
                true,
            ),
            (
                device(Platform::MacOs, true, Chip::Intel),
                power(19, false),
                false,
            ),
            (
                device(Platform::MacOs, true, Chip::Intel),
                power(20, false),
                true,
            ),
            (
                device(Platform::MacOs, true, Chip::Intel),
                power(1, true),
                true,
            ),
            (
                device(Platform::MacOs, false, Chip::Intel),
                Power {
                    battery_percent: None,
                    on_ac: true,
                },
                true,
            ),
            (
                device(Platform::Ios, true, Chip::AppleSilicon),
                power(1, false),
                true,
            ),
        ];
        for (info, power, ok) in table {
            assert_eq!(check(&info, power).is_ok(), ok, "{info:?} {power:?}");
        }
        let err = check(
            &device(Platform::MacOs, true, Chip::AppleSilicon),
            power(9, false),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("9 % is below the 10 %"), "{err}");
    }
}
