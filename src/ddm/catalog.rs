//! The Apple Software Lookup Service catalog (the JSON the service publishes): releases under
//! `PublicAssetSets` and `AssetSets`, responses under `PublicBackgroundSecurityImprovements` and
//! the older `PublicRapidSecurityResponses`, each keyed by platform, with `ProductVersion`,
//! `Build`, `ProductVersionExtra`, `PrerequisiteBuild`, `PostingDate`, `ExpirationDate` and
//! `SupportedDevices`. `bsi lookup` lists them and answers which `TargetBuildVersion` an
//! enforcement declaration needs for a response.

use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::device::Platform;
use crate::refusal::NotApplicable;
use crate::version::{Build, Extra, OsVersion, ResponseVersion};
use crate::{Error, Result};

/// Largest catalog bsi reads: Apple's whole lookup catalog is a few megabytes.
pub(crate) const MAX_CATALOG_BYTES: u64 = 32 * 1024 * 1024;

const RELEASE_SETS: [&str; 2] = ["PublicAssetSets", "AssetSets"];
const RESPONSE_SETS: [&str; 2] = [
    "PublicBackgroundSecurityImprovements",
    "PublicRapidSecurityResponses",
];

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
    pub declaration_payload: Value,
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
        message: format!(
            "{}: not a software lookup catalog: {message}",
            path.display()
        ),
    }
}

fn date(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn expired(expiration: Option<&str>, clock: &Clock) -> bool {
    expiration
        .and_then(|d| NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d").ok())
        .is_some_and(|d| d < clock.local().date())
}

fn entries(
    path: &Path,
    top: &serde_json::Map<String, Value>,
    set: &str,
    clock: &Clock,
) -> Result<Vec<Entry>> {
    let Some(by_platform) = top.get(set) else {
        return Ok(Vec::new());
    };
    let by_platform = by_platform
        .as_object()
        .ok_or_else(|| bad(path, format!("`{set}` must be a dictionary of platforms")))?;
    let mut out = Vec::new();
    for (platform, list) in by_platform {
        let list = list
            .as_array()
            .ok_or_else(|| bad(path, format!("`{set}.{platform}` must be an array")))?;
        for (i, item) in list.iter().enumerate() {
            let at = format!("{set}.{platform}[{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| bad(path, format!("`{at}` must be a dictionary")))?;
            let text = |key: &str| -> Result<String> {
                obj.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| bad(path, format!("`{at}.{key}` is missing or not a string")))
            };
            let product_version = text("ProductVersion")?;
            product_version
                .parse::<OsVersion>()
                .map_err(|e| bad(path, format!("`{at}.ProductVersion`: {e}")))?;
            let build = text("Build")?;
            build
                .parse::<Build>()
                .map_err(|e| bad(path, format!("`{at}.Build`: {e}")))?;
            let extra = match obj.get("ProductVersionExtra").and_then(Value::as_str) {
                Some(e) => {
                    let parsed: Extra = e
                        .parse()
                        .or_else(|_| Extra::parse_letters(e))
                        .map_err(|err| bad(path, format!("`{at}.ProductVersionExtra`: {err}")))?;
                    Some(parsed.to_string())
                }
                None => None,
            };
            let expiration = date(obj.get("ExpirationDate"));
            out.push(Entry {
                platform: platform.clone(),
                set: set.to_owned(),
                version: extra.as_ref().map_or_else(
                    || product_version.clone(),
                    |e| format!("{product_version} {e}"),
                ),
                product_version,
                extra,
                build,
                prerequisite_build: obj
                    .get("PrerequisiteBuild")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                posting_date: date(obj.get("PostingDate")),
                expired: expired(expiration.as_deref(), clock),
                expiration_date: expiration,
                supported_devices: obj
                    .get("SupportedDevices")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

impl Catalog {
    /// Reads a catalog file, judging expiry at `clock`.
    pub(crate) fn load(path: &Path, clock: &Clock) -> Result<Self> {
        let bytes = crate::input::read_named(path, MAX_CATALOG_BYTES, "catalog")?;
        Self::parse(&bytes, path, clock)
    }

    /// Parses catalog bytes; `path` names them in messages.
    pub(crate) fn parse(bytes: &[u8], path: &Path, clock: &Clock) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(path, format!("it is not JSON ({e})")))?;
        let top = value
            .as_object()
            .ok_or_else(|| bad(path, "the top level is not a JSON object"))?;
        if !RELEASE_SETS
            .iter()
            .chain(&RESPONSE_SETS)
            .any(|k| top.contains_key(*k))
        {
            return Err(bad(
                path,
                "it has none of PublicAssetSets, AssetSets, PublicBackgroundSecurityImprovements, PublicRapidSecurityResponses",
            ));
        }
        let mut releases = Vec::new();
        for set in RELEASE_SETS {
            releases.extend(entries(path, top, set, clock)?);
        }
        let mut responses = Vec::new();
        for set in RESPONSE_SETS {
            responses.extend(entries(path, top, set, clock)?);
        }
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
                    return Err(NotApplicable::NotInCatalog {
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
                    declaration_payload: serde_json::json!({
                        "TargetOSVersion": r.os.to_string(),
                        "TargetBuildVersion": hit.build,
                        "TargetLocalDateTime": "YYYY-MM-DDThh:mm:ss",
                    }),
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

impl LookupResult {
    /// Human text.
    pub(crate) fn render_text(&self, out: &mut String) {
        if let Some(a) = &self.answer {
            let _ = writeln!(
                out,
                "{}: TargetOSVersion {}, TargetBuildVersion {} ({})",
                a.query, a.target_os_version, a.target_build_version, a.platform
            );
            let _ = writeln!(out, "enforcement payload: {}", a.declaration_payload);
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
    }
}
