//! The Apple Software Lookup Service catalog (the JSON the service publishes): releases under
//! `PublicAssetSets` and `AssetSets`, responses under `PublicBackgroundSecurityImprovements` and
//! the older `PublicRapidSecurityResponses`, each keyed by platform, with `ProductVersion`,
//! `Build`, `ProductVersionExtra`, `PrerequisiteBuild`, `PostingDate`, `ExpirationDate` and
//! `SupportedDevices`. `bsi lookup` lists them and answers which `TargetBuildVersion` an
//! enforcement declaration needs for a response.

use crate::human::{Human, Text};
use crate::untrusted::clip;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::error::Category;

use crate::clock::Clock;
use crate::device::Platform;
use crate::refusal::NotFound;
use crate::version::{Build, Extra, OsVersion, ResponseVersion};
use crate::{Error, InputKind, Result};

/// Largest catalog bsi reads: Apple's whole lookup catalog is a few megabytes.
pub(crate) const MAX_CATALOG_BYTES: u64 = 32 * 1024 * 1024;

/// One catalog entry.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Entry {
    /// The platform key it is listed under.
    pub platform: String,
    /// The set it came from.
    pub set: String,
    /// `ProductVersion`.
    pub product_version: String,
    /// `ProductVersionExtra`, for responses that carry it.
    pub extra: Option<String>,
    /// The full response version (`26.3.1 (a)`) when the extra is known.
    pub version: String,
    /// `Build`.
    pub build: String,
    /// `PrerequisiteBuild`, for responses.
    pub prerequisite_build: Option<String>,
    /// `PostingDate`.
    pub posting_date: Option<String>,
    /// `ExpirationDate`.
    pub expiration_date: Option<String>,
    /// Expired at the clock's date.
    pub expired: bool,
    /// `SupportedDevices`.
    pub supported_devices: Vec<String>,
}

/// A loaded catalog.
#[derive(Clone, Debug)]
pub(crate) struct Catalog {
    /// OS releases.
    pub releases: Vec<Entry>,
    /// Background security improvements.
    pub responses: Vec<Entry>,
}

/// The answer to "what is the `TargetBuildVersion` for 26.3.1 (a)".
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Answer {
    /// What was asked.
    pub query: String,
    /// `TargetOSVersion` for an enforcement declaration.
    pub target_os_version: String,
    /// `TargetBuildVersion` for an enforcement declaration.
    pub target_build_version: String,
    /// The entry it came from.
    pub platform: String,
    /// A ready payload for `com.apple.configuration.softwareupdate.enforcement.specific`.
    pub declaration_payload: EnforcementTemplate,
}

/// The payload of a `com.apple.configuration.softwareupdate.enforcement.specific` declaration
/// for the response asked about, with the deadline left for the administrator to fill in.
/// Fields in key order, as the JSON has always shown them.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EnforcementTemplate {
    /// `TargetBuildVersion`: the response's supplemental build.
    #[serde(rename = "TargetBuildVersion")]
    pub build_version: String,
    /// `TargetLocalDateTime`: a placeholder for the deadline.
    #[serde(rename = "TargetLocalDateTime")]
    pub local_date_time: &'static str,
    /// `TargetOSVersion`: the response's OS version.
    #[serde(rename = "TargetOSVersion")]
    pub os_version: String,
}

impl std::fmt::Display for EnforcementTemplate {
    /// One line of JSON, as `enforcement payload:` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// What `bsi lookup` prints.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LookupResult {
    /// Matching releases.
    pub releases: Vec<Entry>,
    /// Matching background security improvements.
    pub background_security_improvements: Vec<Entry>,
    /// The answer, when a response version was asked for.
    pub answer: Option<Answer>,
}

fn bad(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::BadInput {
        input: InputKind::Catalog,
        message: format!(
            "{}: not a software lookup catalog: {message}",
            path.display()
        ),
    }
}

/// The catalog as the service publishes it: four optional sets, each a dictionary from
/// platform key to entries. Other top-level keys are ignored, as are unknown entry keys.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct RawCatalog {
    #[serde(rename = "PublicAssetSets")]
    public_asset_sets: Option<RawSet>,
    #[serde(rename = "AssetSets")]
    asset_sets: Option<RawSet>,
    #[serde(rename = "PublicBackgroundSecurityImprovements")]
    public_background_security_improvements: Option<RawSet>,
    #[serde(rename = "PublicRapidSecurityResponses")]
    public_rapid_security_responses: Option<RawSet>,
}

/// Platform key (`macOS`, `iOS`, ...) to its entries, in key order.
type RawSet = BTreeMap<String, Vec<RawEntry>>;

/// One entry as listed; versions and builds are checked while they are read, so a bad one is
/// named by its key path.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "a dictionary")]
struct RawEntry {
    #[serde(deserialize_with = "checked::<_, OsVersion>")]
    product_version: String,
    #[serde(deserialize_with = "checked::<_, Build>")]
    build: String,
    #[serde(default, deserialize_with = "extra")]
    product_version_extra: Option<String>,
    #[serde(default, deserialize_with = "checked_opt::<_, Build>")]
    prerequisite_build: Option<String>,
    #[serde(default, deserialize_with = "date")]
    posting_date: Option<String>,
    #[serde(default, deserialize_with = "date")]
    expiration_date: Option<String>,
    #[serde(default)]
    supported_devices: Vec<String>,
}

/// A string that parses as `T`.
fn checked<'de, D, T>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    let text = String::deserialize(d)?;
    text.parse::<T>().map_err(D::Error::custom)?;
    Ok(text)
}

/// An optional string that parses as `T`.
fn checked_opt<'de, D, T>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    text.parse::<T>().map_err(D::Error::custom)?;
    Ok(Some(text))
}

/// A date as the Apple Software Lookup Service gives it: `YYYY-MM-DD`, a real day.
fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if crate::clock::parse_date(&text).is_none() {
        return Err(D::Error::custom(format!(
            "`{}` is not a date (YYYY-MM-DD)",
            clip(&text)
        )));
    }
    Ok(Some(text))
}

/// `ProductVersionExtra`: `(a)` or the letters alone, normalised to `(a)`.
fn extra<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let parsed: Extra = text
        .parse()
        .or_else(|_| Extra::parse_letters(&text))
        .map_err(D::Error::custom)?;
    Ok(Some(parsed.to_string()))
}

fn expired(expiration: Option<&str>, clock: &Clock) -> bool {
    expiration
        .and_then(crate::clock::parse_date)
        .is_some_and(|d| d < clock.local().date())
}

/// The entries of one set, judged against `clock`.
fn entries(set_name: &str, set: Option<RawSet>, clock: &Clock) -> impl Iterator<Item = Entry> {
    set.into_iter().flatten().flat_map(move |(platform, list)| {
        list.into_iter().map(move |e| Entry {
            platform: platform.clone(),
            set: set_name.to_owned(),
            version: e.product_version_extra.as_ref().map_or_else(
                || e.product_version.clone(),
                |x| format!("{} {x}", e.product_version),
            ),
            product_version: e.product_version,
            extra: e.product_version_extra,
            build: e.build,
            prerequisite_build: e.prerequisite_build,
            posting_date: e.posting_date,
            expired: expired(e.expiration_date.as_deref(), clock),
            expiration_date: e.expiration_date,
            supported_devices: e.supported_devices,
        })
    })
}

impl Catalog {
    /// Reads a catalog file, judging expiry at `clock`.
    pub(crate) fn load(path: &Path, clock: &Clock) -> Result<Self> {
        let bytes = crate::input::read_named(path, MAX_CATALOG_BYTES, "catalog")?;
        Self::parse(&bytes, path, clock)
    }

    /// Parses catalog bytes; `path` names them in messages.
    pub(crate) fn parse(bytes: &[u8], path: &Path, clock: &Clock) -> Result<Self> {
        // serde's derived structs also take arrays (fields by position); a catalog is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(bad(path, "the top level is not a JSON object"));
        }
        let mut json = serde_json::Deserializer::from_slice(bytes);
        let raw: RawCatalog = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                Category::Data if at == "." => bad(
                    path,
                    format!("the top level is not a JSON object ({inner})"),
                ),
                Category::Data => bad(path, format!("`{at}`: {inner}")),
                _ => bad(path, format!("it is not JSON ({inner})")),
            }
        })?;
        json.end()
            .map_err(|e| bad(path, format!("it is not JSON ({e})")))?;
        let RawCatalog {
            public_asset_sets,
            asset_sets,
            public_background_security_improvements,
            public_rapid_security_responses,
        } = raw;
        if public_asset_sets.is_none()
            && asset_sets.is_none()
            && public_background_security_improvements.is_none()
            && public_rapid_security_responses.is_none()
        {
            return Err(bad(
                path,
                "it has none of PublicAssetSets, AssetSets, PublicBackgroundSecurityImprovements, PublicRapidSecurityResponses",
            ));
        }
        let releases = entries("PublicAssetSets", public_asset_sets, clock)
            .chain(entries("AssetSets", asset_sets, clock))
            .collect();
        let responses = entries(
            "PublicBackgroundSecurityImprovements",
            public_background_security_improvements,
            clock,
        )
        .chain(entries(
            "PublicRapidSecurityResponses",
            public_rapid_security_responses,
            clock,
        ))
        .collect();
        Ok(Self {
            releases,
            responses,
        })
    }

    /// Is `build` a listed, unexpired response for `platform`?
    #[must_use]
    pub(crate) fn lists_build(&self, platform: Platform, build: &str) -> Option<&Entry> {
        self.responses
            .iter()
            .find(|e| platform_matches(&e.platform, Some(platform)) && e.build == build)
    }

    /// The build of the OS release `version` the catalog lists for `platform`, if any.
    #[must_use]
    pub(crate) fn release_build(
        &self,
        platform: Platform,
        version: &crate::version::OsVersion,
    ) -> Option<&str> {
        let version = version.to_string();
        self.releases
            .iter()
            .find(|e| platform_matches(&e.platform, Some(platform)) && e.product_version == version)
            .map(|e| e.build.as_str())
    }

    /// The responses the catalog lists for a device of `platform` on the base `version` (and
    /// `build`, where an entry names its prerequisite build), expired or not: what a minor
    /// update from that base includes.
    #[must_use]
    pub(crate) fn responses_for_base(
        &self,
        platform: Platform,
        version: &crate::version::OsVersion,
        build: &str,
    ) -> Vec<crate::version::ResponseVersion> {
        let mut out: Vec<crate::version::ResponseVersion> = self
            .responses
            .iter()
            .filter(|e| platform_matches(&e.platform, Some(platform)))
            .filter(|e| e.prerequisite_build.as_deref().is_none_or(|b| b == build))
            .filter_map(|e| e.version.parse::<crate::version::ResponseVersion>().ok())
            .filter(|v| v.os == *version)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `bsi lookup`: filter by platform and version; answer for a response version.
    pub(crate) fn lookup(
        &self,
        platform: Option<Platform>,
        version: Option<&str>,
    ) -> Result<LookupResult> {
        let response_query = version
            .filter(|v| v.contains('('))
            .map(str::parse::<ResponseVersion>)
            .transpose()?;
        let os_query = match (version, &response_query) {
            (Some(v), None) => Some(v.parse::<OsVersion>()?),
            (_, Some(r)) => Some(r.os),
            _ => None,
        };
        let keep = |e: &Entry| {
            platform_matches(&e.platform, platform)
                && os_query
                    .is_none_or(|q| e.product_version.parse::<OsVersion>().is_ok_and(|v| v == q))
        };
        let releases: Vec<Entry> = self.releases.iter().filter(|e| keep(e)).cloned().collect();
        let mut responses: Vec<Entry> =
            self.responses.iter().filter(|e| keep(e)).cloned().collect();
        let answer = match response_query {
            None => None,
            Some(r) => {
                responses.retain(|e| e.version == r.to_string());
                let Some(hit) = responses
                    .iter()
                    .find(|e| !e.expired)
                    .or_else(|| responses.first())
                else {
                    return Err(NotFound::NotInCatalog {
                        response: r,
                        platform,
                    }
                    .into());
                };
                Some(Answer {
                    query: r.to_string(),
                    target_os_version: r.os.to_string(),
                    target_build_version: hit.build.clone(),
                    platform: hit.platform.clone(),
                    declaration_payload: EnforcementTemplate {
                        build_version: hit.build.clone(),
                        local_date_time: "YYYY-MM-DDThh:mm:ss",
                        os_version: r.os.to_string(),
                    },
                })
            }
        };
        Ok(LookupResult {
            releases,
            background_security_improvements: responses,
            answer,
        })
    }
}

fn platform_matches(key: &str, wanted: Option<Platform>) -> bool {
    match wanted {
        None => true,
        Some(Platform::MacOs) => key == "macOS",
        // The service lists iPadOS under iOS.
        Some(Platform::Ios) => key == "iOS",
        Some(Platform::IpadOs) => key == "iOS" || key == "iPadOS",
    }
}

impl Human for LookupResult {
    fn human(&self, text: &mut Text, _: u8) {
        let out = &mut String::new();
        if let Some(a) = &self.answer {
            let _ = writeln!(
                out,
                "{}: TargetOSVersion {}, TargetBuildVersion {} ({})",
                a.query, a.target_os_version, a.target_build_version, a.platform
            );
            let _ = writeln!(out, "enforcement payload: {}", a.declaration_payload);
            text.raw(out);
            return;
        }
        let _ = writeln!(out, "releases:");
        for e in &self.releases {
            let _ = writeln!(
                out,
                "  {:<7} {:<10} {:<12} posted {:<10} expires {:<10}{}",
                e.platform,
                e.product_version,
                e.build,
                e.posting_date.as_deref().unwrap_or("-"),
                e.expiration_date.as_deref().unwrap_or("-"),
                if e.expired { "  (expired)" } else { "" }
            );
        }
        let _ = writeln!(out, "background security improvements:");
        for e in &self.background_security_improvements {
            let _ = writeln!(
                out,
                "  {:<7} {:<14} {:<12} prerequisite {:<9} posted {:<10} expires {:<10}{}",
                e.platform,
                e.version,
                e.build,
                e.prerequisite_build.as_deref().unwrap_or("-"),
                e.posting_date.as_deref().unwrap_or("-"),
                e.expiration_date.as_deref().unwrap_or("-"),
                if e.expired { "  (expired)" } else { "" }
            );
        }
        text.raw(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Catalog> {
        let clock = Clock::parse("2026-12-01T10:00:00Z").unwrap();
        Catalog::parse(json.as_bytes(), Path::new("c.json"), &clock)
    }

    #[test]
    fn reads_entries_in_key_order_and_ignores_unknown_keys() {
        let c = parse(
            r#"{"Other": 1, "PublicBackgroundSecurityImprovements": {
                "iOS": [{"ProductVersion": "26.3.1", "ProductVersionExtra": "a", "Build": "23D771330a",
                         "PrerequisiteBuild": "23D8133", "ExpirationDate": "2026-11-01", "New": true}],
                "macOS": [{"ProductVersion": "26.3.1", "ProductVersionExtra": "(b)", "Build": "25D771280b",
                           "SupportedDevices": ["Mac16,1"]}]},
                "PublicAssetSets": {"macOS": [{"ProductVersion": "26.4", "Build": "25E100"}]}}"#,
        )
        .unwrap();
        let shown: Vec<(&str, &str, &str, bool)> = c
            .responses
            .iter()
            .map(|e| {
                (
                    e.platform.as_str(),
                    e.version.as_str(),
                    e.set.as_str(),
                    e.expired,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "iOS",
                    "26.3.1 (a)",
                    "PublicBackgroundSecurityImprovements",
                    true
                ),
                (
                    "macOS",
                    "26.3.1 (b)",
                    "PublicBackgroundSecurityImprovements",
                    false
                ),
            ]
        );
        assert_eq!(c.responses[1].supported_devices, ["Mac16,1"]);
        assert_eq!(c.releases.len(), 1);
        assert_eq!(c.releases[0].version, "26.4");
    }

    /// Every refusal names the file and, for a bad value, its key path.
    #[test]
    fn bad_catalogs_are_named_with_the_key_path() {
        let cases = [
            (
                " [1]",
                "c.json: not a software lookup catalog: the top level is not a JSON object",
            ),
            (
                "7",
                "c.json: not a software lookup catalog: the top level is not a JSON object (invalid type: integer `7`, expected a JSON object at line 1 column 1)",
            ),
            (
                "{\"A\": 1} x",
                "c.json: not a software lookup catalog: it is not JSON (trailing characters at line 1 column 10)",
            ),
            (
                "nope",
                "c.json: not a software lookup catalog: it is not JSON (expected ident at line 1 column 2)",
            ),
            (
                "{}",
                "c.json: not a software lookup catalog: it has none of PublicAssetSets, AssetSets, PublicBackgroundSecurityImprovements, PublicRapidSecurityResponses",
            ),
            (
                r#"{"AssetSets": {"macOS": [{"ProductVersion": "26.4"}]}}"#,
                "c.json: not a software lookup catalog: `AssetSets.macOS[0]`: missing field `Build` at line 1 column 51",
            ),
            (
                r#"{"AssetSets": {"macOS": [{"ProductVersion": "x", "Build": "25E100"}]}}"#,
                "c.json: not a software lookup catalog: `AssetSets.macOS[0].ProductVersion`: ",
            ),
            (
                r#"{"AssetSets": {"macOS": [{"ProductVersion": "26.4", "Build": 7}]}}"#,
                "c.json: not a software lookup catalog: `AssetSets.macOS[0].Build`: invalid type: integer `7`, expected a string at line 1 column 62",
            ),
            (
                r#"{"AssetSets": {"macOS": "all"}}"#,
                "c.json: not a software lookup catalog: `AssetSets.macOS`: invalid type: string \"all\", expected a sequence at line 1 column 29",
            ),
        ];
        for (json, message) in cases {
            let err = parse(json).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{json}");
            assert!(
                err.to_string().starts_with(message),
                "{json}:\n{err}\n{message}"
            );
        }
    }
}
