//! Unit tests of `declaration`.

use super::*;

fn parse(json: &str) -> Result<Declaration> {
    Declaration::parse(json.as_bytes(), "test.json")
}

#[test]
fn accepts_apple_shaped_declarations() {
    let d = parse(r#"{"Type":"com.apple.configuration.softwareupdate.settings","Identifier":"s1","ServerToken":"t1",
        "Payload":{"AutomaticActions":{"InstallSecurityUpdate":"AlwaysOn"},"RapidSecurityResponse":{"Enable":false,"EnableRollback":false},
        "Deferrals":{"MinorPeriodInDays":30},"Notifications":true}}"#).unwrap();
    let Payload::Settings(s) = d.payload else {
        panic!()
    };
    assert_eq!(s.install_security_update, Some(AutomaticAction::AlwaysOn));
    assert_eq!(
        (s.rsr_enable, s.rsr_enable_rollback),
        (Some(false), Some(false))
    );
    assert_eq!(
        s.deferrals,
        [("Deferrals.MinorPeriodInDays".to_owned(), 30)]
    );
    let d = parse(r#"{"Type":"com.apple.configuration.softwareupdate.enforcement.specific","Identifier":"e1","ServerToken":"t",
        "Payload":{"TargetOSVersion":"26.3.1","TargetBuildVersion":"25D771280a","TargetLocalDateTime":"2026-12-01T09:00:00"}}"#).unwrap();
    assert!(matches!(d.payload, Payload::Enforcement(_)));
    let d = parse(r#"{"Type":"com.apple.activation.simple","Identifier":"a","ServerToken":"1",
        "Payload":{"StandardConfigurations":["e1","s1"],"Predicate":"@status(device.operating-system.family) == 'macOS'"}}"#).unwrap();
    assert!(d.is_valid());
    assert_eq!(d.category(), Category::Activation);
}

#[test]
fn what_is_not_a_declaration_is_refused() {
    let problem = |json: &str| match parse(json) {
        Err(Error::Declaration(e)) => e.problem,
        other => panic!("{json}: {other:?}"),
    };
    let long = "x".repeat(MAX_ENVELOPE_TEXT + 1);
    let cases: Vec<(String, &str)> = vec![
        (
            "not json".to_owned(),
            "it is not JSON (expected ident at line 1 column 2)",
        ),
        ("[1]".to_owned(), "the top level is not a JSON object"),
        (
            r#"{"Type":"a"}"#.to_owned(),
            "required key `Identifier` is missing",
        ),
        (
            r#"{"Type":"a","Identifier":"x","ServerToken":"1","Payload":[]}"#.to_owned(),
            "`Payload` must be a dictionary",
        ),
        (
            r#"{"Type":1,"Identifier":"x","ServerToken":"1","Payload":{}}"#.to_owned(),
            "`Type` must be a string",
        ),
        (
            r#"{"Type":"a","Identifier":"","ServerToken":"1","Payload":{}}"#.to_owned(),
            "`Identifier` is empty",
        ),
        (
            format!(r#"{{"Type":"a","Identifier":"{long}","ServerToken":"1","Payload":{{}}}}"#),
            "`Type`, `Identifier` and `ServerToken` are at most 1024 bytes",
        ),
    ];
    for (json, message) in &cases {
        let p = problem(json);
        assert_eq!(p.to_string(), *message, "{json}");
        let err = parse(json).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{json}: {err}");
        assert_eq!(
            err.to_string(),
            format!("test.json is not a DDM declaration: {message}")
        );
        assert!(err.hint().is_some_and(|h| h.contains("bsi policy set")));
    }
    assert!(matches!(
        problem(&cases[2].0),
        EnvelopeProblem::MissingKey { key } if key == "Identifier"
    ));
}

#[test]
fn an_invalid_declaration_is_kept_with_its_reason() {
    let env = |t: &str, p: &str| {
        format!(r#"{{"Type":"{t}","Identifier":"x","ServerToken":"1","Payload":{p}}}"#)
    };
    let cases = [
        (
            env("com.apple.configuration.passcode.settings", "{}"),
            "Error.ConfigurationNotSupported",
            "not supported",
        ),
        (
            env(
                SETTINGS_TYPE,
                r#"{"AutomaticActions":{"InstallSecurityUpdate":"Sometimes"}}"#,
            ),
            "Error.ConfigurationIsInvalid",
            "AutomaticActions.InstallSecurityUpdate",
        ),
        (
            env(
                SETTINGS_TYPE,
                r#"{"RapidSecurityResponse":{"Enable":"no"}}"#,
            ),
            "Error.ConfigurationIsInvalid",
            "RapidSecurityResponse.Enable` must be a boolean",
        ),
        (
            env(SETTINGS_TYPE, r#"{"Deferrals":{"MinorPeriodInDays":120}}"#),
            "Error.ConfigurationIsInvalid",
            "from 1 to 90",
        ),
        (
            env(
                ENFORCEMENT_TYPE,
                r#"{"TargetOSVersion":"26.3.1 (a)","TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
            ),
            "Error.ConfigurationIsInvalid",
            "TargetBuildVersion",
        ),
        (
            env(
                ENFORCEMENT_TYPE,
                r#"{"TargetOSVersion":"26.3.1","TargetLocalDateTime":"2026-12-01T09:00:00Z"}"#,
            ),
            "Error.ConfigurationIsInvalid",
            "TargetLocalDateTime",
        ),
        (
            env(
                ENFORCEMENT_TYPE,
                r#"{"TargetLocalDateTime":"2026-12-01T09:00:00"}"#,
            ),
            "Error.ConfigurationIsInvalid",
            "`TargetOSVersion` is missing",
        ),
        (
            env(ACTIVATION_TYPE, r#"{"StandardConfigurations":"x"}"#),
            "Error.InvalidPayload",
            "must be an array",
        ),
    ];
    for (json, code, needle) in cases {
        let d = parse(&json).unwrap();
        assert!(!d.is_valid(), "{json}");
        assert_eq!(d.invalid[0].code, code, "{json}");
        assert!(
            d.invalid_because().unwrap().contains(needle),
            "{json}: {:?}",
            d.invalid
        );
    }
    let d = parse(&env(
        SETTINGS_TYPE,
        r#"{"Future":1,"Deferrals":{"Later":2}}"#,
    ))
    .unwrap();
    assert!(d.is_valid());
    assert_eq!(d.unknown_keys, ["Deferrals.Later", "Future"]);
}
