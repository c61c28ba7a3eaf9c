//! `bsi status --get KEY`: one raw value of `status --json`, like `sw_vers -productVersion` or
//! `git config --get`. A key path is the JSON keys joined by dots; a key that itself holds dots
//! (the DDM item names under `ddm`) is matched whole (`ddm.device.operating-system.version`).

use serde_json::Value;

use crate::status::Status;
use crate::{Error, Result};

/// The value at `key` in `status` (printed as text: a string raw, null as an empty line,
/// anything else as compact JSON; with `--json`, as JSON).
pub(super) fn value(status: &Status, key: &str) -> Result<Value> {
    let tree = serde_json::to_value(status).unwrap_or(Value::Null);
    if key.is_empty() {
        return Err(Error::usage(
            "--get needs a key: an empty key names no value",
            "give a key path such as `os.version` (`bsi status --json` shows them all)",
        ));
    }
    let Some(found) = lookup(&tree, key) else {
        // A key of the schema whose value, or an object holding it, is null now (nothing
        // staged, not enrolled): its value is null, not an unknown key.
        let known = schema_paths();
        if known
            .iter()
            .any(|k| k == key || k.starts_with(&format!("{key}.")))
        {
            return Ok(Value::Null);
        }
        let mut keys = known;
        paths(&tree, "", &mut keys);
        keys.sort();
        keys.dedup();
        return Err(Error::usage(
            format!(
                "`{}` is not a key of `bsi status --json`",
                crate::untrusted::clip(key)
            ),
            format!("valid keys: {}", keys.join(", ")),
        ));
    };
    Ok(found.clone())
}

/// Every key path `docs/status.schema.json` defines (maps with free keys, such as `ddm`, are
/// listed by their own key only).
fn schema_paths() -> Vec<String> {
    let schema = crate::status::model::schema();
    let mut out = Vec::new();
    walk_schema(&schema, &schema, "", &mut out, 0);
    out
}

fn walk_schema(root: &Value, node: &Value, prefix: &str, out: &mut Vec<String>, depth: u8) {
    if depth > 16 {
        return;
    }
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r.strip_prefix("#/").map_or(&Value::Null, |p| {
            p.split('/').fold(root, |v, part| &v[part])
        }),
        None => node,
    };
    for alt in ["anyOf", "oneOf", "allOf"] {
        for sub in node
            .get(alt)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(root, sub, prefix, out, depth + 1);
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            walk_schema(root, sub, &path, out, depth + 1);
        }
    }
}

/// Follows `key` through objects, matching the longest run of dot-separated parts that is a key
/// at each level, and through arrays by index.
fn lookup<'v>(tree: &'v Value, key: &str) -> Option<&'v Value> {
    if key.is_empty() {
        return Some(tree);
    }
    let parts: Vec<&str> = key.split('.').collect();
    for take in (1..=parts.len()).rev() {
        let head = parts[..take].join(".");
        let rest = parts[take..].join(".");
        let child = match tree {
            Value::Object(map) => map.get(&head),
            Value::Array(items) => head.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        if let Some(found) = child.and_then(|c| lookup(c, &rest)) {
            return Some(found);
        }
    }
    None
}

/// Every key path of `tree` that leads to a value (objects are followed, arrays are not).
fn paths(tree: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = tree {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if matches!(v, Value::Object(m) if !m.is_empty()) {
                paths(v, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_keys_with_and_without_dots() {
        let tree = serde_json::json!({
            "version": "26.3.1 (a)",
            "active": {"build": "25D771280a", "cryptexes": ["App", "OS"]},
            "staged": null,
            "ddm": {"device.operating-system.version": "26.3.1"},
        });
        assert_eq!(
            lookup(&tree, "version"),
            Some(&serde_json::json!("26.3.1 (a)"))
        );
        assert_eq!(
            lookup(&tree, "active.build"),
            Some(&serde_json::json!("25D771280a"))
        );
        assert_eq!(
            lookup(&tree, "active.cryptexes.1"),
            Some(&serde_json::json!("OS"))
        );
        assert_eq!(
            lookup(&tree, "ddm.device.operating-system.version"),
            Some(&serde_json::json!("26.3.1"))
        );
        assert_eq!(lookup(&tree, "staged"), Some(&Value::Null));
        assert_eq!(lookup(&tree, "staged.version"), None);
        assert_eq!(lookup(&tree, "nope"), None);
        let mut keys = Vec::new();
        paths(&tree, "", &mut keys);
        assert!(keys.contains(&"ddm.device.operating-system.version".to_owned()));
    }
}
