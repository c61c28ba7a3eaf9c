//! Unit tests of `predicate`.

use super::*;

fn device(name: &str) -> Option<StatusValue> {
    match name {
        "device.operating-system.family" => Some(StatusValue::Text("macOS".into())),
        "device.operating-system.version" => Some(StatusValue::Text("26.3.1".into())),
        "device.operating-system.build-version" => Some(StatusValue::Text("25D5".into())),
        _ => None,
    }
}

fn eval(text: &str) -> Result<bool, PredicateError> {
    Predicate::parse(text)?.evaluate(&device)
}

#[test]
fn evaluates_what_activations_use() {
    for (text, want) in [
        ("TRUEPREDICATE", true),
        ("falsepredicate", false),
        ("@status(device.operating-system.family) == 'macOS'", true),
        ("@status(device.operating-system.family) = \"iOS\"", false),
        (
            "@status(device.operating-system.family) ==[c] 'MACOS'",
            true,
        ),
        (
            "@status(device.operating-system.version) BEGINSWITH '26.'",
            true,
        ),
        ("@status(device.operating-system.version) >= '26.3'", true),
        // Strings compare as strings, as NSPredicate does.
        ("@status(device.operating-system.version) > '9.0'", false),
        (
            "@status(device.operating-system.family) IN {'iOS', 'macOS'}",
            true,
        ),
        (
            "NOT (@status(device.operating-system.family) == 'iOS') AND TRUEPREDICATE",
            true,
        ),
        (
            "@status(device.operating-system.family) == 'iOS' || 1 < 2",
            true,
        ),
        ("! TRUEPREDICATE", false),
    ] {
        assert_eq!(eval(text), Ok(want), "{text}");
    }
}

proptest::proptest! {
    /// Any text: an answer or an error, never a panic; what parses evaluates.
    #[test]
    fn any_text_parses_or_is_refused(text in "[ -~]{0,200}") {
        if let Ok(p) = Predicate::parse(&text) {
            let _ = p.evaluate(&device);
        }
    }

    /// Comparisons built from the grammar always parse, and `NOT` flips them.
    #[test]
    fn grammar_built_comparisons_parse(
        op in proptest::sample::select(vec!["==", "!=", "<", "<=", ">", ">=", "BEGINSWITH", "CONTAINS", "ENDSWITH"]),
        value in "[a-zA-Z0-9.]{0,12}",
    ) {
        let text = format!("@status(device.operating-system.version) {op} '{value}'");
        let p = Predicate::parse(&text).unwrap();
        let not = Predicate::parse(&format!("NOT ({text})")).unwrap();
        proptest::prop_assert_eq!(p.evaluate(&device).unwrap(), !not.evaluate(&device).unwrap());
    }
}

#[test]
fn never_guesses() {
    for text in [
        "",
        "@status(device.operating-system.family) ~= 'x'",
        "@status(device.operating-system.family) == ",
        "(TRUEPREDICATE",
        "'unterminated",
        "@status(a) == 'x' garbage",
        "SUBQUERY(x, $y, $y == 1)",
        "@status(x) LIKE 'x'",
        "@status(x) ==[z] 'x'",
    ] {
        assert!(
            matches!(Predicate::parse(text), Err(PredicateError::Parse(_))),
            "{text}"
        );
    }
    assert!(matches!(
        eval("@status(device.model.family) == 'Mac'"),
        Err(PredicateError::Evaluate(_))
    ));
    let deep = format!("{}TRUEPREDICATE{}", "(".repeat(40), ")".repeat(40));
    assert!(matches!(
        Predicate::parse(&deep),
        Err(PredicateError::Parse(_))
    ));
    let nots = format!("{}TRUEPREDICATE", "NOT ".repeat(40));
    assert!(matches!(
        Predicate::parse(&nots),
        Err(PredicateError::Parse(_))
    ));
    assert!(matches!(
        Predicate::parse(&"a".repeat(5000)),
        Err(PredicateError::Parse(_))
    ));
}
