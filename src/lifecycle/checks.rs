//! The device's structure, checked without hashing any content: every directory, record, link
//! and `SystemVersion.plist` that some command reads, each finding paired with the fix
//! `bsi repair` applies for it ([`Fix`]). `verify` reports the findings (and then hashes the
//! content); `repair` applies their fixes and checks again. Whatever a reader or a changer
//! refuses for is found here, so that what `verify` passes no command calls damaged, and what it
//! finds either `repair` fixes or its message names the one command that will.
//!
//! Reading only: nothing here writes; `fixes` applies the fixes, under the lock `repair` holds.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::bundle::manifest::{Identity, Manifest};
use crate::device::layout;
use crate::device::records::{self, Failure, Included, InstallReason, SafariRecord};
use crate::device::{Device, GenName, Kind, Open, Power, Settings, SystemVersion, origins};
use crate::history::{self, LastOperation};

pub(crate) use super::finding::{Damage, Finding, Fix};
use super::finding::{said, structure};

/// The directories every device has (required) or may have.
fn directories(device: &Device) -> Vec<(PathBuf, bool)> {
    let l = device.layout();
    let volume = l.cryptex1().parent().map(Path::to_path_buf);
    let mut out: Vec<(PathBuf, bool)> = [
        "System",
        "System/Library",
        "System/Library/CoreServices",
        layout::SYSTEM_CRYPTEXES,
        "System/Volumes",
        layout::PREBOOT,
        layout::PREBOOT_CRYPTEXES,
        "private",
        "private/var",
        "private/var/db",
        layout::DB,
    ]
    .iter()
    .map(|d| (PathBuf::from(d), true))
    .collect();
    out.extend(volume.map(|v| (v, true)));
    out.push((l.cryptex1(), true));
    out.push((l.generations(), true));
    out.push((PathBuf::from(layout::TRUST), false));
    out.push((PathBuf::from(layout::DECLARATIONS), false));
    out
}

/// Every structural problem of `device`, in the order `repair` fixes them (a directory before
/// what is in it). While a committed base change waits to be completed, only what recovery
/// does not touch is checked (directories and records).
pub(crate) fn findings(device: &Device, commit_pending: bool) -> Vec<Finding> {
    findings_knowing(device, commit_pending, &|_| None)
}

/// A response generation's manifest identity, where the caller has already read it.
pub(crate) type Known<'a> = &'a dyn Fn(&GenName) -> Option<Identity>;

/// [`findings`], with the identities of the response manifests `known` has already read (by
/// `verify`, which parses the active one whole): those are not read a second time.
pub(crate) fn findings_knowing(
    device: &Device,
    commit_pending: bool,
    known: Known<'_>,
) -> Vec<Finding> {
    let root = device.root();
    let mut out = Vec::new();
    let mut broken: Vec<PathBuf> = Vec::new();
    for (dir, required) in directories(device) {
        if broken.iter().any(|b| dir.starts_with(b)) {
            continue;
        }
        let problem = match root.open_dir_strict(&dir) {
            Ok(Some(_)) => continue,
            Ok(None) if !required => continue,
            Ok(None) => "is missing".to_owned(),
            Err(e) => e.to_string(),
        };
        out.push(structure(
            format!("{}: {problem}", root.show(&dir).display()),
            Fix::Directory(dir.clone()),
        ));
        broken.push(dir);
    }
    let under_broken = |rel: &Path| broken.iter().any(|b| rel.starts_with(b));
    if !under_broken(Path::new(layout::DB)) {
        out.extend(record_findings(device));
    }
    if commit_pending || !out.is_empty() && under_broken(&device.layout().cryptex1()) {
        return out;
    }
    let base = base_findings(device);
    let base_ok = base.is_empty();
    out.extend(base);
    out.extend(link_findings(device, base_ok, known));
    out
}

/// A file bsi keeps (the history, the lock) that is not one plain file.
fn plain_file_finding(device: &Device, rel: &str, shared: Fix) -> Option<Finding> {
    let root = device.root();
    match root.open_file(rel, Open::Read) {
        Err(e) if crate::device::is_damage(&e) => {
            let fix = match root.kind(rel) {
                Ok(Some(Kind::File)) => shared,
                _ => Fix::Remove(rel.into()),
            };
            Some(structure(format!("{}: {e}", root.show(rel).display()), fix))
        }
        _ => None,
    }
}

fn bytes_of<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Why the JSON record `rel` does not read as a `T`, if it does not.
fn unreadable<T: serde::de::DeserializeOwned>(device: &Device, rel: &str) -> Option<String> {
    records::read_json_opt::<T>(device.root(), rel)
        .err()
        .map(|e| said(&e))
}

/// Every record of bsi's that does not read, with its fix.
fn record_findings(device: &Device) -> Vec<Finding> {
    let root = device.root();
    let mut out = Vec::new();
    let mut add = |why: Option<String>, fix: Fix| {
        if let Some(why) = why {
            out.push(structure(why, fix));
        }
    };
    let power = Power {
        battery_percent: device.info().portable.then_some(100),
        on_ac: true,
    };
    let missing = (!root.exists_nofollow(layout::POWER_RECORD).unwrap_or(true))
        .then(|| format!("{} is missing", root.show(layout::POWER_RECORD).display()));
    add(
        unreadable::<Power>(device, layout::POWER_RECORD).or(missing),
        Fix::Write(layout::POWER_RECORD.into(), bytes_of(&power)),
    );
    add(
        unreadable::<Settings>(device, layout::SETTINGS_RECORD),
        Fix::Write(
            layout::SETTINGS_RECORD.into(),
            bytes_of(&Settings::default()),
        ),
    );
    let last = unreadable::<LastOperation>(device, layout::LAST_OPERATION);
    if last.is_some() {
        let fix = match history::read_last(root, 1).ok().and_then(|mut h| h.pop()) {
            Some(entry) => Fix::Write(
                layout::LAST_OPERATION.into(),
                bytes_of(&LastOperation::from(&entry)),
            ),
            None => Fix::Remove(layout::LAST_OPERATION.into()),
        };
        add(last, fix);
    }
    for (rel, why) in [
        (
            layout::INCLUDED_RECORD,
            unreadable::<Included>(device, layout::INCLUDED_RECORD),
        ),
        (
            layout::SAFARI_RECORD,
            unreadable::<SafariRecord>(device, layout::SAFARI_RECORD),
        ),
        (
            layout::FAILURE_RECORD,
            unreadable::<Failure>(device, layout::FAILURE_RECORD),
        ),
        (
            layout::INSTALL_REASON_RECORD,
            unreadable::<InstallReason>(device, layout::INSTALL_REASON_RECORD),
        ),
        (
            layout::SYNC_RECORD,
            unreadable::<records::SyncState>(device, layout::SYNC_RECORD),
        ),
        (
            layout::REPORT_DELIVERED_RECORD,
            unreadable::<records::DeliveredReport>(device, layout::REPORT_DELIVERED_RECORD),
        ),
        (
            layout::ORIGINS_RECORD,
            unreadable::<std::collections::BTreeMap<String, origins::Origin>>(
                device,
                layout::ORIGINS_RECORD,
            ),
        ),
        (
            layout::MDM_ENROLLMENT,
            unreadable::<crate::device::enrollment::Enrollment>(device, layout::MDM_ENROLLMENT),
        ),
        (
            layout::RECEIVED_RECORD,
            unreadable::<std::collections::BTreeMap<String, crate::declarations::store::Received>>(
                device,
                layout::RECEIVED_RECORD,
            ),
        ),
    ] {
        add(why, Fix::Remove(rel.into()));
    }
    out.extend(plain_file_finding(
        device,
        layout::HISTORY,
        Fix::Unshare(layout::HISTORY.into()),
    ));
    out.extend(plain_file_finding(
        device,
        layout::LOCK,
        Fix::Remove(layout::LOCK.into()),
    ));
    out.extend(stored_findings(device));
    out
}

/// Every trusted key and stored declaration that does not read, each removed as its fix.
fn stored_findings(device: &Device) -> Vec<Finding> {
    let root = device.root();
    let mut out = Vec::new();
    for (dir, ext) in [(layout::TRUST, "pub"), (layout::DECLARATIONS, "json")] {
        let Ok(Some(handle)) = root.open_dir_strict(dir) else {
            continue;
        };
        let Ok(entries) = handle.entries() else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(&format!(".{ext}")) {
                continue;
            }
            let rel = Path::new(dir).join(&name);
            let why = match root.read_small(&rel) {
                Err(e) => Some(e.to_string()),
                Ok(bytes) if ext == "pub" => {
                    crate::bundle::keys::parse_public_key(&String::from_utf8_lossy(&bytes), &rel)
                        .err()
                        .map(|e| said(&e))
                }
                Ok(bytes) => crate::declarations::declaration::Declaration::parse(&bytes, "")
                    .err()
                    .map(|e| said(&e)),
            };
            if let Some(why) = why {
                out.push(structure(
                    format!("{}: {why}", root.show(&rel).display()),
                    Fix::Remove(rel),
                ));
            }
        }
    }
    out
}

/// The base generations on the device, each with its `SystemVersion.plist` if that parses and
/// agrees with the generation's name, else why not.
fn base_generations(device: &Device) -> Vec<(GenName, Result<SystemVersion, String>)> {
    let root = device.root();
    let Ok(Some(dir)) = root.open_dir_strict(device.layout().generations()) else {
        return Vec::new();
    };
    let Ok(entries) = dir.entries() else {
        return Vec::new();
    };
    let mut out: Vec<(GenName, Result<SystemVersion, String>)> = entries
        .flatten()
        .filter_map(|e| GenName::parse(&e.file_name().to_string_lossy()))
        .filter(GenName::is_base)
        .map(|g| {
            let sv = match device.generation_system_version(&g) {
                Ok(sv) if GenName::Base(sv.build.clone()) == g && sv.extra.is_none() => Ok(sv),
                Ok(sv) => Err(format!(
                    "{}'s SystemVersion.plist says {} ({}), not its base build",
                    device.root().show(device.generation_path(&g)).display(),
                    sv.version,
                    sv.build
                )),
                Err(e) => Err(said(&e)),
            };
            (g, sv)
        })
        .collect();
    out.sort_by_key(|(g, _)| g.dir_name());
    out
}

/// The base `SystemVersion.plist` as bsi writes it.
fn base_bytes(device: &Device, from: &SystemVersion) -> Vec<u8> {
    SystemVersion {
        product_name: device.info().platform.name().to_owned(),
        extra: None,
        ..from.clone()
    }
    .to_xml()
}

/// Does base generation `g`'s digest list describe the content bsi makes for `version`? The
/// witness that decides between the base `SystemVersion.plist` and the generation's copy when
/// they disagree (the content names the version it was made for).
fn content_is_of(device: &Device, g: &GenName, version: &crate::version::OsVersion) -> bool {
    let GenName::Base(build) = g else {
        return false;
    };
    let rel = device.generation_path(g).join(layout::BASE_MANIFEST);
    let Ok(listed) = device
        .root()
        .read_manifest(&rel)
        .map_err(drop)
        .and_then(|b| crate::bundle::manifest::Cryptexes::parse(&b).map_err(drop))
    else {
        return false;
    };
    let info = device.info();
    let made = crate::device::base_content::base_files(info.platform, info.chip, version, build);
    made.len() == listed.count()
        && made.iter().all(|f| {
            listed.0.get(&f.cryptex).is_some_and(|files| {
                files.iter().any(|e| {
                    e.path == f.path && e.sha256 == crate::bundle::digest::Digest::of(&f.bytes)
                })
            })
        })
}

/// The base `SystemVersion.plist` against the base generation, which keeps a copy of it. When
/// the two disagree, the one whose version the generation's content was made for is right;
/// nothing right to copy from is damage only `init --force` undoes.
fn base_findings(device: &Device) -> Vec<Finding> {
    let root = device.root();
    let platform = device.info().platform.name();
    let file = device.base_system_version();
    let gens = base_generations(device);
    let current = device.current().ok().filter(GenName::is_base);
    // The base generation: the one the file names, else the one `current` is, else the only one.
    let named = file.as_ref().ok().map(|sv| GenName::Base(sv.build.clone()));
    let chosen = named
        .clone()
        .filter(|n| gens.iter().any(|(g, _)| g == n))
        .or_else(|| current.filter(|c| gens.iter().any(|(g, _)| g == c)))
        .or_else(|| match gens.as_slice() {
            [(only, _)] => Some(only.clone()),
            _ => None,
        });
    let Some(generation) = chosen else {
        return vec![match &file {
            Ok(sv) => Finding {
                damage: Damage::Base,
                message: format!(
                    "{} (the base OS content) is missing",
                    root.show(device.generation_path(&GenName::Base(sv.build.clone())))
                        .display()
                ),
                fix: Fix::RemakeBase,
            },
            Err(e) => structure(said(e), Fix::Reinit),
        }];
    };
    let found = gens
        .iter()
        .find(|(g, _)| *g == generation)
        .map(|(_, sv)| sv.clone());
    let copy = found.clone().and_then(Result::ok);
    let fits = |sv: &&SystemVersion| {
        GenName::Base(sv.build.clone()) == generation
            && sv.extra.is_none()
            && sv.product_name == platform
    };
    let candidates: Vec<&SystemVersion> = [file.as_ref().ok(), copy.as_ref()]
        .into_iter()
        .flatten()
        .filter(fits)
        .collect();
    let Some(truth) = candidates
        .iter()
        .find(|sv| content_is_of(device, &generation, &sv.version))
        .or_else(|| candidates.first())
    else {
        let why = match &file {
            Err(e) => said(e),
            Ok(sv) => format!(
                "{} says {} {} ({}), which no base generation on the device holds",
                root.show(layout::SYSTEM_VERSION).display(),
                sv.product_name,
                sv.version,
                sv.build
            ),
        };
        return vec![structure(why, Fix::Reinit)];
    };
    let mut out = Vec::new();
    let shown = root.show(layout::SYSTEM_VERSION);
    match &file {
        Ok(sv) if sv == *truth => {}
        Ok(sv) => out.push(structure(
            format!(
                "{} says {} {} ({}), but the base OS is {} ({}) (its base generation says so)",
                shown.display(),
                sv.product_name,
                sv.version,
                sv.build,
                truth.version,
                truth.build
            ),
            Fix::Write(layout::SYSTEM_VERSION.into(), base_bytes(device, truth)),
        )),
        Err(e) => out.push(structure(
            said(e),
            Fix::Write(layout::SYSTEM_VERSION.into(), base_bytes(device, truth)),
        )),
    }
    if copy.as_ref() != Some(*truth) {
        let rel = device
            .generation_path(&generation)
            .join(layout::GEN_SYSTEM_VERSION);
        let why = match found {
            Some(Err(why)) => why,
            _ => format!(
                "{} does not say {} {} ({}), the base OS its content is",
                root.show(&rel).display(),
                platform,
                truth.version,
                truth.build
            ),
        };
        out.push(structure(why, Fix::Write(rel, base_bytes(device, truth))));
    }
    out
}

/// `current`, `proposed`, the fixed links, and the response generations they name.
fn link_findings(device: &Device, base_ok: bool, known: Known<'_>) -> Vec<Finding> {
    let root = device.root();
    let l = device.layout();
    let mut out = Vec::new();
    let current = match device.current() {
        Ok(c)
            if root
                .exists_nofollow(device.generation_path(&c))
                .unwrap_or(false) =>
        {
            Some(c)
        }
        Ok(c) => {
            out.push(structure(
                format!(
                    "{} (the active generation) is missing; the device can only run its base now",
                    root.show(device.generation_path(&c)).display()
                ),
                Fix::CurrentToBase,
            ));
            None
        }
        Err(e) => {
            out.push(structure(said(&e), Fix::CurrentToBase));
            None
        }
    };
    let proposed = match device.proposed() {
        Ok(p) => p,
        Err(e) => {
            out.push(structure(said(&e), Fix::Remove(l.proposed())));
            None
        }
    };
    for (link, target, found) in device.wrong_links() {
        out.push(structure(
            format!("{} {found}, not {}", link.display(), target.display()),
            Fix::Link(link, target),
        ));
    }
    for g in [current, proposed].into_iter().flatten() {
        if let GenName::Response(build) = &g {
            out.extend(response_findings(device, &g, build, base_ok, known));
        }
    }
    out
}

/// A response generation's `SystemVersion.plist` against its manifest, and its cryptex links.
fn response_findings(
    device: &Device,
    g: &GenName,
    build: &crate::version::Build,
    base_ok: bool,
    known: Known<'_>,
) -> Vec<Finding> {
    let root = device.root();
    let dir = device.generation_path(g);
    if !root.exists_nofollow(&dir).unwrap_or(false) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let bundle = |message: String| Finding {
        damage: Damage::of(g),
        message,
        fix: Fix::Bundle,
    };
    if let Err(e) = device.generation_sources(g) {
        out.push(bundle(said(&e)));
    }
    let manifest = match known(g) {
        Some(identity) => Ok(identity),
        None => root
            .open_manifest(dir.join(layout::GEN_MANIFEST))
            .map_err(|e| e.to_string())
            .and_then(|f| {
                Manifest::identity_in_one_pass(std::io::BufReader::new(f))
                    .map_err(|e| e.to_string())
            }),
    };
    let sv = device.generation_system_version(g);
    let agrees = |sv: &SystemVersion, m: &Identity| {
        sv.build == m.build && sv.extra == Some(m.extra) && sv.version == m.version
    };
    match (&sv, &manifest) {
        (_, Err(why)) => out.push(bundle(format!(
            "{}: {why}",
            root.show(dir.join(layout::GEN_MANIFEST)).display()
        ))),
        (Ok(sv), Ok(m)) if agrees(sv, m) && m.build == *build => {
            if base_ok
                && let Ok(base) = device.base()
                && m.version != base.version
            {
                out.push(bundle(format!(
                    "{} is a response for {}, but the base OS is {}",
                    root.show(&dir).display(),
                    m.version,
                    base.version
                )));
            }
        }
        (_, Ok(m)) if m.build != *build => out.push(bundle(format!(
            "{}'s manifest is for {}, not for the generation's build",
            root.show(&dir).display(),
            m.build
        ))),
        (sv, Ok(m)) => {
            let rel = dir.join(layout::GEN_SYSTEM_VERSION);
            // A file that cannot be read is named by its error; one that disagrees, here.
            let why = match sv {
                Ok(sv) => format!(
                    "{}: says {} {} ({}), but its manifest says {} ({})",
                    root.show(&rel).display(),
                    sv.version,
                    sv.extra.map(|e| e.to_string()).unwrap_or_default(),
                    sv.build,
                    m.response_version(),
                    m.build
                ),
                Err(e) => said(e),
            };
            let bytes = SystemVersion {
                product_name: m.product.name().to_owned(),
                version: m.version,
                build: m.build.clone(),
                extra: Some(m.extra),
            }
            .to_xml();
            out.push(structure(why, Fix::Write(rel, bytes)));
        }
    }
    out
}
