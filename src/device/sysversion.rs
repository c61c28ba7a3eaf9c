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

    /// Parses the plist at `shown` (used in messages only) with the bounded XML reader: a
    /// binary plist, or anything past its bounds, is damage like any other that does not parse.
    pub(crate) fn parse(bytes: &[u8], shown: &std::path::Path) -> Result<Self> {
        /// The keys bsi reads; any others are ignored.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        #[allow(clippy::struct_field_names)] // Apple's key names.
        struct Raw {
            product_name: String,
            product_version: String,
            product_build_version: String,
            product_version_extra: Option<String>,
        }
        let damaged = |what: String| Error::damaged(format!("{}: {what}", shown.display()));
        let raw: Raw = crate::plist_xml::read(bytes, crate::plist_xml::SMALL)
            .map_err(|e| damaged(format!("not a SystemVersion property list: {e}")))?;
        let version = raw
            .product_version
            .parse()
            .map_err(|e| damaged(format!("ProductVersion: {e}")))?;
        let build = raw
            .product_build_version
            .parse()
            .map_err(|e| damaged(format!("ProductBuildVersion: {e}")))?;
        let extra = raw
            .product_version_extra
            .map(|e| e.parse())
            .transpose()
            .map_err(|e| damaged(format!("ProductVersionExtra: {e}")))?;
        Ok(Self {
            product_name: raw.product_name,
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

    #[test]
    fn a_binary_plist_is_damage_and_costs_nothing() {
        // 30 levels of arrays each naming the next twice: 2^30 objects for a naive reader.
        let mut dag = b"bplist00".to_vec();
        for i in 0..30u8 {
            dag.extend_from_slice(&[0xA2, i + 1, i + 1]);
        }
        let err = SystemVersion::parse(&dag, std::path::Path::new("x")).unwrap_err();
        assert_eq!(err.exit_code(), 8);
        assert!(err.to_string().contains("binary property list"), "{err}");
        let err = SystemVersion::parse(b"<plist><dict/></plist>", std::path::Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ProductName"), "{err}");
    }
}
