//! The status items bsi reports, in one registry: each item's name, the `supportedOS` that
//! decides where a device reports it (Apple's `declarative/status/*.yaml`), and how its value is
//! made from what the device is ([`Inputs`]). The status report, its subscriptions, the support
//! checks, `status --json`'s `ddm` object, activation predicates and
//! `management.client-capabilities` all read this table: a new status item is one entry here
//! (and, when its value needs more than [`Inputs`] has, one field there).

use serde_json::{Value, json};

use super::support::{self, DeviceFacts, Support};
use crate::device::identity::Identity;
use crate::platform::Platform;

/// What an item's value is made from. The OS and identity parts come from the device's state;
/// the report fills the parts only it computes (declarations, software update), which readers
/// that do not need them (predicates) leave `None`.
#[derive(Debug)]
pub(crate) struct Inputs<'a> {
    /// Platform, base version, enrollment.
    pub facts: DeviceFacts,
    /// UDID, serial number, model.
    pub identity: &'a Identity,
    /// The base build (it stays the base build while a response is active).
    pub build: String,
    /// The active response's supplemental build, else the base build.
    pub supplemental_build: String,
    /// The active response's letter, `(a)`; `""` without one.
    pub extra: String,
    /// `management.declarations`, as the report computes it.
    pub declarations: Option<Value>,
    /// The `softwareupdate.*` items by their last name part, as the report computes them.
    pub software_update: Option<serde_json::Map<String, Value>>,
}

/// One status item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    /// The dotted name, e.g. `device.operating-system.version`.
    pub name: &'static str,
    /// Where a device reports it.
    pub support: Support,
    /// Its value; `None` when the inputs cannot make it.
    pub value: fn(&Inputs<'_>) -> Option<Value>,
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn software_update(i: &Inputs<'_>, key: &str) -> Option<Value> {
    i.software_update.as_ref()?.get(key).cloned()
}

/// The status items a device always reports, whatever it is subscribed to: Apple's schema says
/// an implicit subscription to `management.client-capabilities` is always present, and devices
/// report the state of the declarations they process.
pub(crate) const IMPLICIT: [&str; 2] =
    ["management.client-capabilities", "management.declarations"];

/// The protocol version bsi's declarative management speaks.
pub(crate) const PROTOCOL_VERSION: &str = "1.0.0";

/// Every status item bsi reports.
pub(crate) const ITEMS: &[Item] = &[
    Item {
        name: "device.identifier.serial-number",
        support: support::IDENTIFIERS,
        value: |i| Some(text(&i.identity.serial_number)),
    },
    Item {
        name: "device.identifier.udid",
        support: support::IDENTIFIERS,
        value: |i| Some(text(&i.identity.udid)),
    },
    Item {
        name: "device.model.family",
        support: support::DDM,
        value: |i| Some(text(&i.identity.model_family)),
    },
    Item {
        name: "device.model.identifier",
        support: support::DDM,
        value: |i| Some(text(&i.identity.model_identifier)),
    },
    Item {
        name: "device.operating-system.build-version",
        support: support::DDM,
        value: |i| Some(text(&i.build)),
    },
    Item {
        name: "device.operating-system.family",
        support: support::DDM,
        value: |i| Some(text(i.facts.platform.name())),
    },
    Item {
        name: "device.operating-system.marketing-name",
        support: support::DDM,
        value: |i| Some(text(&marketing_name(i.facts.platform, i.facts.os))),
    },
    Item {
        name: "device.operating-system.supplemental.build-version",
        support: support::SUPPLEMENTAL,
        value: |i| Some(text(&i.supplemental_build)),
    },
    Item {
        name: "device.operating-system.supplemental.extra-version",
        support: support::SUPPLEMENTAL,
        value: |i| Some(text(&i.extra)),
    },
    Item {
        name: "device.operating-system.version",
        support: support::DDM,
        value: |i| Some(text(&i.facts.os.to_string())),
    },
    Item {
        name: "management.client-capabilities",
        support: support::DDM,
        value: |i| Some(client_capabilities(&i.facts)),
    },
    Item {
        name: "management.declarations",
        support: support::DDM,
        value: |i| i.declarations.clone(),
    },
    Item {
        name: "softwareupdate.failure-reason",
        support: support::SOFTWARE_UPDATE,
        value: |i| software_update(i, "failure-reason"),
    },
    Item {
        name: "softwareupdate.install-reason",
        support: support::SOFTWARE_UPDATE,
        value: |i| software_update(i, "install-reason"),
    },
    Item {
        name: "softwareupdate.install-state",
        support: support::SOFTWARE_UPDATE,
        value: |i| software_update(i, "install-state"),
    },
    Item {
        name: "softwareupdate.pending-version",
        support: support::SOFTWARE_UPDATE,
        value: |i| software_update(i, "pending-version"),
    },
];

/// The item named `name`, if bsi reports it.
#[must_use]
pub(crate) fn get(name: &str) -> Option<&'static Item> {
    ITEMS.iter().find(|i| i.name == name)
}

/// The value of `name` on a device with `inputs`, where it reports it.
#[must_use]
pub(crate) fn value(name: &str, inputs: &Inputs<'_>) -> Option<Value> {
    get(name)
        .filter(|i| i.support.allows(&inputs.facts))
        .and_then(|i| (i.value)(inputs))
}

/// The operating system's marketing name, as Apple names its releases: macOS by its name
/// (`Tahoe`, `Sequoia`, `Sonoma`, `Ventura`, ...); iOS and iPadOS, which have none, by their
/// name and version, as a real iPhone reports it.
#[must_use]
pub(crate) fn marketing_name(platform: Platform, os: crate::version::OsVersion) -> String {
    match (platform, os.major(), os.minor()) {
        (Platform::MacOs, 26, _) => "Tahoe",
        (Platform::MacOs, 15, _) => "Sequoia",
        (Platform::MacOs, 14, _) => "Sonoma",
        (Platform::MacOs, 13, _) => "Ventura",
        (Platform::MacOs, 12, _) => "Monterey",
        (Platform::MacOs, 11, _) => "Big Sur",
        (Platform::MacOs, 10, 15) => "Catalina",
        (Platform::MacOs, 10, 14) => "Mojave",
        (Platform::MacOs, _, _) => return format!("macOS {}", os.major()),
        // iPhones and iPads name the release: a real iOS 16.0 reports "iOS 16.0"
        // (`tests/reference/status-report-declarations-real.json`).
        (p, _, _) => return format!("{p} {os}"),
    }
    .to_owned()
}

/// `management.client-capabilities`: the protocol version and every declaration type and
/// status item a device with `facts` supports.
#[must_use]
pub(crate) fn client_capabilities(facts: &DeviceFacts) -> Value {
    let types = |prefix: &str| -> Vec<&'static str> {
        support::declaration_types()
            .filter(|t| t.starts_with(prefix) && support::declaration_type(t, facts) == Some(true))
            .collect()
    };
    let items: Vec<&str> = ITEMS
        .iter()
        .filter(|i| i.support.allows(facts))
        .map(|i| i.name)
        .collect();
    json!({
        "supported-versions": [PROTOCOL_VERSION],
        "supported-features": {},
        "supported-payloads": {
            "declarations": {
                "activations": types("com.apple.activation."),
                "assets": [],
                "configurations": types("com.apple.configuration."),
                "management": types("com.apple.management."),
            },
            "status-items": items,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(p: Platform, v: &str, supervised: bool) -> DeviceFacts {
        DeviceFacts::new(p, v.parse().unwrap(), supervised)
    }

    fn supported(name: &str, facts: &DeviceFacts) -> bool {
        get(name).is_some_and(|i| i.support.allows(facts))
    }

    #[test]
    fn items_follow_supported_os() {
        let mac13 = facts(Platform::MacOs, "13.3.1", true);
        assert!(supported("device.operating-system.version", &mac13));
        assert!(!supported("softwareupdate.install-state", &mac13));
        let iphone16 = facts(Platform::Ios, "16.0", false);
        assert!(!supported(
            "device.operating-system.supplemental.extra-version",
            &iphone16
        ));
        let mac_user = facts(Platform::MacOs, "26.3", false);
        assert!(supported("management.declarations", &mac_user));
        assert!(!supported("softwareupdate.install-state", &mac_user));
        assert!(!supported("no.such.item", &mac13));
    }

    #[test]
    fn marketing_names_are_apples() {
        let v = |s: &str| s.parse().unwrap();
        assert_eq!(marketing_name(Platform::MacOs, v("26.3.1")), "Tahoe");
        assert_eq!(marketing_name(Platform::MacOs, v("15.1")), "Sequoia");
        assert_eq!(marketing_name(Platform::MacOs, v("13.3.1")), "Ventura");
        assert_eq!(marketing_name(Platform::Ios, v("26.3.1")), "iOS 26.3.1");
        assert_eq!(marketing_name(Platform::Ios, v("16.0")), "iOS 16.0");
        assert_eq!(marketing_name(Platform::IpadOs, v("18.1")), "iPadOS 18.1");
    }

    #[test]
    fn client_capabilities_list_what_the_device_supports() {
        let mac = facts(Platform::MacOs, "26.3.1", true);
        let caps = client_capabilities(&mac);
        let items = caps["supported-payloads"]["status-items"]
            .as_array()
            .unwrap();
        assert!(items.iter().any(|i| i == "softwareupdate.install-state"));
        let configurations = &caps["supported-payloads"]["declarations"]["configurations"];
        assert!(
            configurations
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "com.apple.configuration.softwareupdate.enforcement.specific")
        );
        let user = facts(Platform::MacOs, "26.3.1", false);
        let caps = client_capabilities(&user);
        let items = caps["supported-payloads"]["status-items"]
            .as_array()
            .unwrap();
        assert!(!items.iter().any(|i| i == "softwareupdate.install-state"));
    }
}
