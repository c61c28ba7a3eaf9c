//! `SystemVersion.plist`: the base OS's (under `System/Library/CoreServices`) and each content
//! generation's (under `cryptex1/<gen>/`), which adds `ProductVersionExtra` and carries the
//! supplemental `ProductBuildVersion` while a response is active, as on a real Mac.

use plist::{Dictionary, Value};

use crate::version::{Build, Extra, OsVersion};
use crate::{Error, Result};

/// The parsed keys bsi uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SystemVersion {
    /// `ProductName`: `macOS`, `iOS` or `iPadOS`.
    pub product_name: String,
    /// `ProductVersion`.
    pub version: OsVersion,
    /// `ProductBuildVersion`: the base build, or the supplemental build of an active response.
    pub build: Build,
    /// `ProductVersionExtra`, present only with an active response.
    pub extra: Option<Extra>,
}

impl SystemVersion {
    /// Serialises as an XML plist.
    #[must_use]
    pub(crate) fn to_xml(&self) -> Vec<u8> {
        let mut dict = Dictionary::new();
        dict.insert(
            "ProductBuildVersion".into(),
            Value::String(self.build.to_string()),
        );
        dict.insert(
            "ProductCopyright".into(),
            Value::String("1983-2026 Apple Inc.".into()),
        );
        dict.insert(
            "ProductName".into(),
            Value::String(self.product_name.clone()),
        );
        dict.insert(
            "ProductUserVisibleVersion".into(),
            Value::String(match self.extra {
                Some(extra) => format!("{} {extra}", self.version),
                None => self.version.to_string(),
            }),
        );
        dict.insert(
            "ProductVersion".into(),
            Value::String(self.version.to_string()),
        );
        if let Some(extra) = self.extra {
            dict.insert(
                "ProductVersionExtra".into(),
                Value::String(extra.to_string()),
            );
        }
        let mut out = Vec::new();
        // Writing a dictionary of strings to memory cannot fail.
        let _ = Value::Dictionary(dict).to_writer_xml(&mut out);
        out.push(b'\n');
        out
    }

    /// Parses the plist at `shown` (used in messages only).
    pub(crate) fn parse(bytes: &[u8], shown: &std::path::Path) -> Result<Self> {
        let damaged = |what: String| Error::damaged(format!("{}: {what}", shown.display()));
        let value = Value::from_reader(std::io::Cursor::new(bytes))
            .map_err(|e| damaged(format!("not a property list: {e}")))?;
        let dict = value
            .into_dictionary()
            .ok_or_else(|| damaged("not a dictionary".into()))?;
        let get = |key: &str| -> Result<String> {
            dict.get(key)
                .and_then(Value::as_string)
                .map(str::to_owned)
                .ok_or_else(|| damaged(format!("{key} is missing or not a string")))
        };
        let version = get("ProductVersion")?
            .parse()
            .map_err(|e| damaged(format!("ProductVersion: {e}")))?;
        let build = get("ProductBuildVersion")?
            .parse()
            .map_err(|e| damaged(format!("ProductBuildVersion: {e}")))?;
        let extra = match dict.get("ProductVersionExtra") {
            None => None,
            Some(v) => Some(
                v.as_string()
                    .ok_or_else(|| damaged("ProductVersionExtra is not a string".into()))?
                    .parse()
                    .map_err(|e| damaged(format!("ProductVersionExtra: {e}")))?,
            ),
        };
        Ok(Self {
            product_name: get("ProductName")?,
            version,
            build,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_extra() {
        for extra in [None, Some("(a)".parse().unwrap())] {
            let sv = SystemVersion {
                product_name: "macOS".into(),
                version: "26.3.1".parse().unwrap(),
                build: "25D771280a".parse().unwrap(),
                extra,
            };
            let parsed = SystemVersion::parse(&sv.to_xml(), std::path::Path::new("x")).unwrap();
            assert_eq!(parsed, sv);
        }
    }
}
