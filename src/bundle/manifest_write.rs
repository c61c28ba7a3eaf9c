//! Writing a manifest: `Info.plist` as XML with its keys in a fixed order, as `bundle create`
//! makes it and the base generation's `Cryptexes.plist` repeats it.

use plist::{Dictionary, Integer, Value};

use super::manifest::{Cryptexes, FORMAT_VERSION, Manifest};

impl Manifest {
    /// Serialises as an XML plist, keys in a fixed order.
    #[must_use]
    pub(crate) fn to_xml(&self) -> Vec<u8> {
        let mut dict = Dictionary::new();
        let s = |v: &dyn ToString| Value::String(v.to_string());
        dict.insert(
            "BundleFormatVersion".into(),
            Value::Integer(Integer::from(FORMAT_VERSION)),
        );
        dict.insert("ProductName".into(), s(&self.product.name()));
        dict.insert("ProductVersion".into(), s(&self.version));
        dict.insert("PrerequisiteBuild".into(), s(&self.prerequisite));
        dict.insert("ProductVersionExtra".into(), s(&self.extra));
        dict.insert("ProductBuildVersion".into(), s(&self.build));
        if let Some(date) = &self.posting_date {
            dict.insert("PostingDate".into(), s(date));
        }
        if !self.supported_devices.is_empty() {
            dict.insert(
                "SupportedDevices".into(),
                Value::Array(self.supported_devices.iter().map(|d| s(d)).collect()),
            );
        }
        if let Some(text) = &self.description {
            dict.insert("Description".into(), s(text));
        }
        if let Some(fp) = &self.signing_key {
            dict.insert("SigningKey".into(), s(fp));
        }
        dict.insert("Cryptexes".into(), self.cryptexes.to_value());
        plist_xml(&Value::Dictionary(dict))
    }
}

impl Cryptexes {
    /// The `Cryptexes` dictionary.
    #[must_use]
    pub(crate) fn to_value(&self) -> Value {
        let mut dict = Dictionary::new();
        for (cryptex, files) in &self.0 {
            let entries = files
                .iter()
                .map(|f| {
                    let mut e = Dictionary::new();
                    e.insert("Path".into(), Value::String(f.path.clone()));
                    e.insert("Size".into(), Value::Integer(Integer::from(f.size)));
                    e.insert("SHA256".into(), Value::String(f.sha256.to_hex()));
                    e.insert(
                        "Mode".into(),
                        Value::Integer(Integer::from(u64::from(f.mode))),
                    );
                    Value::Dictionary(e)
                })
                .collect();
            dict.insert(cryptex.as_str().into(), Value::Array(entries));
        }
        Value::Dictionary(dict)
    }
}

/// Writes a plist value as XML bytes.
#[must_use]
pub(crate) fn plist_xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = value.to_writer_xml(&mut out);
    out.push(b'\n');
    out
}
