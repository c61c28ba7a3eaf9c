//! Unit tests of `policy`.

use super::*;
use crate::declarations::declaration::Declaration;
use crate::platform::Platform;

fn declaration(kind: &str, id: &str, payload: &str) -> Declaration {
    let json = format!(
        r#"{{"Type": "{kind}", "Identifier": "{id}", "ServerToken": "1", "Payload": {payload}}}"#
    );
    Declaration::parse(json.as_bytes(), id).unwrap()
}

fn settings(id: &str, payload: &str) -> Declaration {
    declaration(
        "com.apple.configuration.softwareupdate.settings",
        id,
        payload,
    )
}

fn activation(ids: &[&str]) -> Declaration {
    let list: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    declaration(
        "com.apple.activation.simple",
        "act",
        &format!(r#"{{"StandardConfigurations": [{}]}}"#, list.join(", ")),
    )
}

/// name, platform, OS, supervised, declarations, (install blocked by, rollback blocked by,
/// automatic, forced by).
type Row = (
    &'static str,
    Platform,
    &'static str,
    bool,
    Vec<Declaration>,
    (
        Option<&'static str>,
        Option<&'static str>,
        bool,
        Option<&'static str>,
    ),
);

const NO_RSR: &str = r#"{"RapidSecurityResponse": {"Enable": false}}"#;
const ALWAYS_OFF: &str = r#"{"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOff"}}"#;

/// Checks what the policy gate decides for each row (table-driven): who blocks installs,
/// who blocks removal, what automatic install is and who forces it.
fn check_rows(rows: Vec<Row>) {
    for (name, platform, os, supervised, declarations, want) in rows {
        let facts = DeviceFacts::new(platform, os.parse().unwrap(), supervised);
        let evaluated = state::evaluate(declarations, &facts, &|_| None);
        let policy = Policy::evaluate(facts, Settings::default(), evaluated, None);
        let got = (
            policy.install_blocked_by.as_deref(),
            policy.rollback_blocked_by.as_deref(),
            policy.automatic,
            policy.automatic_forced.as_ref().map(|(_, id)| id.as_str()),
        );
        assert_eq!(got, want, "{name}");
        assert_eq!(check_install(&policy).is_err(), want.0.is_some(), "{name}");
        assert_eq!(check_rollback(&policy).is_err(), want.1.is_some(), "{name}");
        if want.3.is_some() {
            // Switching against the forced value is refused (exit 4); along it is fine.
            let err = check_automatic_change(&policy, !want.2).unwrap_err();
            assert_eq!(err.exit_code(), 4, "{name}");
            assert!(check_automatic_change(&policy, want.2).is_ok(), "{name}");
        }
    }
}

/// Manual installs: blocked only by an activated, supported `Enable = false`.
#[test]
fn the_gate_blocks_installs_only_by_declarations_in_effect() {
    let no_rsr = NO_RSR;
    check_rows(vec![
        (
            "nothing declared",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![],
            (None, None, true, None),
        ),
        (
            "Enable = false, activated",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![settings("s", no_rsr), activation(&["s"])],
            (Some("s"), None, true, None),
        ),
        (
            "not activated: no effect",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![settings("s", no_rsr)],
            (None, None, true, None),
        ),
        (
            "unsupervised Mac: settings not supported",
            Platform::MacOs,
            "26.3.1",
            false,
            vec![settings("s", no_rsr), activation(&["s"])],
            (None, None, true, None),
        ),
        (
            "macOS 13: no softwareupdate.settings",
            Platform::MacOs,
            "13.3.1",
            true,
            vec![settings("s", no_rsr), activation(&["s"])],
            (None, None, true, None),
        ),
    ]);
}

/// Removal and automatic install, and several declarations at once.
#[test]
fn the_gate_follows_removal_and_automatic_install_declarations() {
    let no_rsr = NO_RSR;
    let no_rollback = r#"{"RapidSecurityResponse": {"EnableRollback": false}}"#;
    let always_off = ALWAYS_OFF;
    let always_on = r#"{"AutomaticActions": {"InstallSecurityUpdate": "AlwaysOn"}}"#;
    check_rows(vec![
        (
            "EnableRollback = false",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![settings("s", no_rollback), activation(&["s"])],
            (None, Some("s"), true, None),
        ),
        (
            "AlwaysOff forces automatic off",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![settings("s", always_off), activation(&["s"])],
            (None, None, false, Some("s")),
        ),
        (
            "InstallSecurityUpdate acts on iOS too (Apple's current documentation)",
            Platform::Ios,
            "26.3.1",
            true,
            vec![settings("s", always_off), activation(&["s"])],
            (None, None, false, Some("s")),
        ),
        (
            "the last by identifier wins",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![
                settings("a", always_off),
                settings("b", always_on),
                activation(&["a", "b"]),
            ],
            (None, None, true, Some("b")),
        ),
        (
            "any Enable = false blocks",
            Platform::MacOs,
            "26.3.1",
            true,
            vec![
                settings("a", r#"{"RapidSecurityResponse": {"Enable": true}}"#),
                settings("b", no_rsr),
                activation(&["a", "b"]),
            ],
            (Some("b"), None, true, None),
        ),
    ]);
}
