//! The bundle manifest, `Info.plist` (DESIGN section 3): what a response is, which base it is
//! for, and the size, mode and SHA-256 of every payload file.
//!
//! Parsing is bounded before it starts ([`bounds`]: XML only, nesting, element count and text
//! length capped, no recursion), then serde reads the keys straight into compact typed values,
//! so 100,000 files cost a few hundred bytes each, never a generic plist tree. Every error names
//! the key at fault ("key Cryptexes.OS\[3\].Size must be a non-negative integer, found a
//! string"). Versions and builds are validated by the version engine; paths by `paths`; sizes and
//! counts against `limits`. Unknown keys are kept (by name) and otherwise ignored, so that newer
//! publishers can add keys.
//!
//! [`bounds`]: super::manifest_xml::bounds

use std::collections::{BTreeMap, HashSet};

use super::BundleError;
use super::digest::Digest;
use super::limits::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES};
use super::manifest_xml::{ENTRIES_HINT, deserialize, parse_xml, refuse_binary};
use super::paths::unsafe_reason;
use crate::platform::{Cryptex, Platform};
use crate::untrusted::clip;
use crate::version::{Build, Extra, OsVersion, ResponseVersion};

/// The bundle format this bsi reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// One payload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Path relative to its cryptex directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Digest,
    /// Permission bits (at most 0o777).
    pub mode: u32,
}

/// The payload listing: for each cryptex, its files sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cryptexes(pub BTreeMap<Cryptex, Vec<FileEntry>>);

/// A parsed, validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `ProductName`.
    pub product: Platform,
    /// `ProductVersion`: the base version.
    pub version: OsVersion,
    /// `PrerequisiteBuild`: the base build.
    pub prerequisite: Build,
    /// `ProductVersionExtra`: the response letter.
    pub extra: Extra,
    /// `ProductBuildVersion`: the supplemental build.
    pub build: Build,
    /// `PostingDate`, as given.
    pub posting_date: Option<String>,
    /// `SupportedDevices`.
    pub supported_devices: Vec<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `SigningKey`: the fingerprint of the key `bsi bundle sign` signed with. Inside the signed
    /// bytes, so a signer this device does not trust and a manifest changed after signing get
    /// different messages.
    pub signing_key: Option<String>,
    /// `Cryptexes`.
    pub cryptexes: Cryptexes,
    /// Top-level keys bsi does not know, kept by name.
    pub unknown_keys: Vec<String>,
}

impl Manifest {
    /// Parses and validates `Info.plist` bytes, with bounded cost whatever they hold: a binary
    /// plist is refused (DESIGN section 3: XML only), the XML is scanned for nesting, node count
    /// and text length before anything is built ([`bounds`]), and the keys go straight into
    /// compact typed values (no generic plist tree).
    ///
    /// [`bounds`]: super::manifest_xml::bounds
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let raw: RawManifest = parse_xml(bytes)?;
        raw.validate()
    }

    /// [`Manifest::parse`] in one pass over `input`, never held whole: the bounds are enforced
    /// as the keys are read instead of by a scan before. For `verify`, which reads the device's
    /// own manifests: a refusal may name a key before a bound that comes later in the document,
    /// and the listing is not sized ahead (it grows). Installing keeps the scan first
    /// ([`Manifest::parse`]), so a hostile document is refused for its shape before any of it is
    /// read as a manifest.
    pub(crate) fn parse_in_one_pass(mut input: impl std::io::BufRead) -> Result<Self, BundleError> {
        refuse_binary_input(&mut input)?;
        Self::parse_scanned(input)
    }

    /// Reads a manifest whose bytes [`bounds`] has just scanned (on this thread: the scan
    /// leaves the size of the listing for it), from `input`: the private copy a large manifest
    /// is spooled to once its signature verified, so the copy is read once.
    ///
    /// [`bounds`]: super::manifest_xml::bounds
    pub(crate) fn parse_scanned(input: impl std::io::BufRead) -> Result<Self, BundleError> {
        let raw: RawManifest = deserialize(input)?;
        raw.validate()
    }

    /// The response's public version, e.g. `26.3.1 (a)`.
    #[must_use]
    pub(crate) fn response_version(&self) -> ResponseVersion {
        ResponseVersion::new(self.version, self.extra)
    }

    /// Which response the manifest in `input` is for, read in one pass like
    /// [`Manifest::parse_in_one_pass`] but without building its listing: for the structure
    /// checks, which compare it with `SystemVersion.plist` (a 100,000-file listing held 13 MiB
    /// more, and took 0.3 s, for four keys).
    pub(crate) fn identity_in_one_pass(
        mut input: impl std::io::BufRead,
    ) -> Result<Identity, BundleError> {
        refuse_binary_input(&mut input)?;
        let raw: RawIdentity = deserialize(input)?;
        raw.validate()
    }

    /// Which response it is for: the keys [`Manifest::identity_in_one_pass`] reads.
    #[must_use]
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            product: self.product,
            version: self.version,
            prerequisite: self.prerequisite.clone(),
            extra: self.extra,
            build: self.build.clone(),
        }
    }

    /// Does the response carry OS content (and so need a restart)?
    #[must_use]
    pub(crate) fn has_os(&self) -> bool {
        self.cryptexes.0.contains_key(&Cryptex::Os)
    }
}

impl Cryptexes {
    /// Every payload file in canonical order: cryptexes in `App`, `OS` order, then paths in byte
    /// order. The tar form lists its payload in exactly this order.
    pub(crate) fn files(&self) -> impl Iterator<Item = (Cryptex, &FileEntry)> {
        self.0
            .iter()
            .flat_map(|(c, files)| files.iter().map(move |f| (*c, f)))
    }

    /// Number of payload files.
    #[must_use]
    pub(crate) fn count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Total payload bytes.
    #[must_use]
    pub(crate) fn total_size(&self) -> u64 {
        self.files().map(|(_, f)| f.size).sum()
    }

    /// Parses and validates a plist whose top level is a `Cryptexes` dictionary (the base
    /// generation's `Cryptexes.plist`).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let raw: BTreeMap<String, RawEntries> = parse_xml(bytes)?;
        raw_cryptexes(raw, "Cryptexes")
    }
}

/// The manifest's keys as they come, before any check.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default, expecting = "a dictionary")]
struct RawManifest {
    bundle_format_version: Option<u64>,
    product_name: Option<String>,
    product_version: Option<String>,
    prerequisite_build: Option<String>,
    product_version_extra: Option<String>,
    product_build_version: Option<String>,
    posting_date: Option<String>,
    supported_devices: Option<Vec<String>>,
    description: Option<String>,
    signing_key: Option<String>,
    cryptexes: Option<BTreeMap<String, RawEntries>>,
    /// Keys bsi does not know: kept by name, otherwise ignored.
    #[serde(flatten)]
    #[allow(clippy::zero_sized_map_values)] // Only the names are kept; values are skipped.
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// Refuses `input` if it starts as a binary plist, reading no more than its first buffer.
fn refuse_binary_input(input: &mut impl std::io::BufRead) -> Result<(), BundleError> {
    let head = input.fill_buf().map_err(|e| BundleError::Read {
        path: "Info.plist".into(),
        source: e,
    })?;
    refuse_binary(head)
}

/// The keys of a manifest that say which response it is, as they come; every other key (the
/// listing too) is skipped unread.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default, expecting = "a dictionary")]
struct RawIdentity {
    bundle_format_version: Option<u64>,
    product_name: Option<String>,
    product_version: Option<String>,
    prerequisite_build: Option<String>,
    product_version_extra: Option<String>,
    product_build_version: Option<String>,
}

/// Which response a manifest is for: the keys `SystemVersion.plist` repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `ProductName`.
    pub product: Platform,
    /// `ProductVersion`.
    pub version: OsVersion,
    /// `PrerequisiteBuild`.
    pub prerequisite: Build,
    /// `ProductVersionExtra`.
    pub extra: Extra,
    /// `ProductBuildVersion`.
    pub build: Build,
}

impl Identity {
    /// The response's public version, e.g. `26.3.1 (a)`.
    #[must_use]
    pub(crate) fn response_version(&self) -> ResponseVersion {
        ResponseVersion::new(self.version, self.extra)
    }
}

/// A cryptex's listing as it comes. Its vector is sized once from [`ENTRIES_HINT`] (capped by
/// the file limit): grown by doubling, the 100,000 entries of a large response were copied on
/// every growth and left their old buffers behind, doubling the parse's peak memory.
#[derive(Debug, Default)]
struct RawEntries(Vec<RawEntry>);

impl<'de> serde::Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let room = ENTRIES_HINT.with(std::cell::Cell::take).min(MAX_FILES);
                let mut out = Vec::with_capacity(room);
                while let Some(entry) = seq.next_element()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One payload file's keys as they come.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, expecting = "a dictionary")]
struct RawEntry {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Size")]
    size: Option<u64>,
    #[serde(rename = "SHA256")]
    sha256: Option<DigestText>,
    #[serde(rename = "Mode")]
    mode: Option<u64>,
}

/// A `SHA256` value as read: 64 hex digits become the digest at once, so no text is held per
/// payload file; anything else keeps its text for the message.
#[derive(Debug)]
enum DigestText {
    Valid(Digest),
    Invalid(String),
}

impl<'de> serde::Deserialize<'de> for DigestText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Digest::from_hex(&text).map_or(DigestText::Invalid(text), DigestText::Valid))
    }
}

/// The value of a key that must be there (the reader has checked its type). `key` is only
/// formatted for a message (per payload file, a string built for nothing costs 100,000
/// allocations).
fn need<T>(value: Option<T>, key: impl std::fmt::Display) -> Result<T, BundleError> {
    value.ok_or_else(|| BundleError::manifest(format!("required key `{key}` is missing")))
}

fn parse_key<T, E: std::fmt::Display>(
    key: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, BundleError> {
    // The parsers' messages are bsi's own, with the refused text already clipped.
    parse(text).map_err(|e| BundleError::manifest(format!("key `{key}`: {e}")))
}

impl RawIdentity {
    fn validate(self) -> Result<Identity, BundleError> {
        match need(self.bundle_format_version, "BundleFormatVersion")? {
            FORMAT_VERSION => {}
            other => {
                return Err(BundleError::manifest(format!(
                    "key `BundleFormatVersion` is {other}; this bsi reads format {FORMAT_VERSION}"
                )));
            }
        }
        let product_name = need(self.product_name, "ProductName")?;
        let product = Platform::from_name(&product_name).ok_or_else(|| {
            BundleError::manifest(format!(
                "key `ProductName` is `{}`; expected macOS, iOS or iPadOS",
                clip(&product_name)
            ))
        })?;
        let version: OsVersion = parse_key(
            "ProductVersion",
            &need(self.product_version, "ProductVersion")?,
            str::parse,
        )?;
        let prerequisite: Build = parse_key(
            "PrerequisiteBuild",
            &need(self.prerequisite_build, "PrerequisiteBuild")?,
            Build::parse_base,
        )?;
        let extra: Extra = parse_key(
            "ProductVersionExtra",
            &need(self.product_version_extra, "ProductVersionExtra")?,
            str::parse,
        )?;
        let build = parse_key(
            "ProductBuildVersion",
            &need(self.product_build_version, "ProductBuildVersion")?,
            |s| Build::parse_supplemental(s, &prerequisite),
        )?;
        Ok(Identity {
            product,
            version,
            prerequisite,
            extra,
            build,
        })
    }
}

impl RawManifest {
    fn validate(self) -> Result<Manifest, BundleError> {
        let Identity {
            product,
            version,
            prerequisite,
            extra,
            build,
        } = RawIdentity {
            bundle_format_version: self.bundle_format_version,
            product_name: self.product_name,
            product_version: self.product_version,
            prerequisite_build: self.prerequisite_build,
            product_version_extra: self.product_version_extra,
            product_build_version: self.product_build_version,
        }
        .validate()?;
        let cryptexes = raw_cryptexes(need(self.cryptexes, "Cryptexes")?, "Cryptexes")?;
        if cryptexes.0.is_empty() {
            return Err(BundleError::manifest(
                "key `Cryptexes` lists no cryptex; a response carries OS, App or both",
            ));
        }
        Ok(Manifest {
            product,
            version,
            prerequisite,
            extra,
            build,
            posting_date: self.posting_date,
            supported_devices: self.supported_devices.unwrap_or_default(),
            description: self.description,
            signing_key: match self.signing_key {
                Some(fp) if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(fp.to_ascii_lowercase())
                }
                Some(other) => {
                    return Err(BundleError::manifest(format!(
                        "key `SigningKey` must be a key fingerprint (64 hex digits), found `{}`",
                        clip(&other)
                    )));
                }
                None => None,
            },
            cryptexes,
            unknown_keys: self.unknown.into_keys().map(|k| clip(&k)).collect(),
        })
    }
}

/// Validates a `Cryptexes` dictionary; `key` names it in errors.
fn raw_cryptexes(raw: BTreeMap<String, RawEntries>, key: &str) -> Result<Cryptexes, BundleError> {
    let mut out = BTreeMap::new();
    let mut count = 0usize;
    let mut total = 0u64;
    for (name, RawEntries(items)) in raw {
        let cryptex = Cryptex::from_name(&name).ok_or_else(|| {
            BundleError::manifest(format!(
                "key `{key}.{}`: unknown cryptex; expected OS or App",
                clip(&name)
            ))
        })?;
        let at = format!("{key}.{name}");
        if items.is_empty() {
            return Err(BundleError::manifest(format!(
                "key `{at}` lists no files; leave the cryptex out instead"
            )));
        }
        count += items.len();
        if count > MAX_FILES {
            return Err(BundleError::TooLarge {
                what: "the number of payload files".into(),
                limit: format!("{MAX_FILES} files"),
            });
        }
        // Converted in place: each raw entry's memory holds its validated entry.
        let mut entries = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| raw_entry(item, &at, i, cryptex))
            .collect::<Result<Vec<_>, _>>()?;
        total = entries
            .iter()
            .fold(total, |sum, entry| sum.saturating_add(entry.size));
        check_tree(cryptex, &mut entries)?;
        out.insert(cryptex, entries);
    }
    if total > MAX_TOTAL_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("the declared payload of {total} bytes"),
            limit: format!("{MAX_TOTAL_BYTES} bytes"),
        });
    }
    Ok(Cryptexes(out))
}

fn raw_entry(
    item: RawEntry,
    at: &str,
    i: usize,
    cryptex: Cryptex,
) -> Result<FileEntry, BundleError> {
    let path = need(item.path, format_args!("{at}[{i}].Path"))?;
    if let Some(reason) = unsafe_reason(&path) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", clip(&path)),
            reason,
        ));
    }
    let size = need(item.size, format_args!("{at}[{i}].Size"))?;
    if size > MAX_FILE_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("{cryptex}/{path}'s declared size of {size} bytes"),
            limit: format!("{MAX_FILE_BYTES} bytes per file"),
        });
    }
    let sha256 = match need(item.sha256, format_args!("{at}[{i}].SHA256"))? {
        DigestText::Valid(digest) => digest,
        DigestText::Invalid(text) => {
            return Err(BundleError::manifest(format!(
                "key `{at}[{i}].SHA256` must be 64 hex digits, found `{}`",
                clip(&text)
            )));
        }
    };
    let mode = need(item.mode, format_args!("{at}[{i}].Mode"))?;
    if mode > 0o777 || mode & 0o400 == 0 {
        return Err(BundleError::manifest(format!(
            "key `{at}[{i}].Mode` is {mode:#o}; it must be permission bits (at most 0o777) that let the owner read the file"
        )));
    }
    Ok(FileEntry {
        path,
        size,
        sha256,
        mode: mode as u32,
    })
}

/// Sorts `entries` and rejects duplicates and a path that is both a file and a directory.
fn check_tree(cryptex: Cryptex, entries: &mut [FileEntry]) -> Result<(), BundleError> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if let Some(pair) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", pair[0].path),
            "listed twice in the manifest",
        ));
    }
    let mut dirs = HashSet::new();
    for entry in entries.iter() {
        let mut end = 0;
        while let Some(pos) = entry.path[end..].find('/') {
            end += pos;
            dirs.insert(&entry.path[..end]);
            end += 1;
        }
    }
    if let Some(clash) = entries.iter().find(|e| dirs.contains(e.path.as_str())) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", clash.path),
            "listed as a file and also used as a directory by another entry",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
