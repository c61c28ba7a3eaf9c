//! The software-update commands of devices before OS 26 (Apple removed them in 26.0, where
//! declarations do the job): `AvailableOSUpdates` lists the responses the device could install
//! (a staged one, and the trusted, applicable bundles of `--from`), `ScheduleOSUpdate` drives
//! the lifecycle (`DownloadOnly`, `NotifyOnly` and `InstallLater` stage and prompt;
//! `Default`, `InstallASAP` and `InstallForceRestart` install and restart), and
//! `OSUpdateStatus` says where a staged response stands. What each needs of the device and the
//! server (supervision, access rights) is checked before, with every command's
//! ([`super::commands::refusal`]).

use std::path::Path;

use plist::{Dictionary, Value};

use super::commands::{Answer, Command, Facts, error_item, error_of};
use crate::ddm::pass::{self, Candidate};
use crate::device::records::InstallTrigger;
use crate::lifecycle::apply::{self, ApplyAction, ApplyOptions};
use crate::lifecycle::journal::Tx;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::version::{Build, OsVersion, ResponseVersion};

/// The first OS version without the software-update commands.
const REMOVED_IN: OsVersion = OsVersion::new(26, 0, 0);

/// Does this device still have the software-update commands?
#[must_use]
pub(crate) fn available(facts: &Facts<'_>) -> bool {
    facts.snapshot.base.version < REMOVED_IN
}

/// Apple's product key for a response.
#[must_use]
pub(crate) fn product_key(version: &ResponseVersion, build: &Build) -> String {
    format!("MSU_UPDATE_{build}_patch_{}_rsr", version.os)
}

/// What the device could install: the staged response, and the applicable bundles offered.
struct Offer {
    version: ResponseVersion,
    build: Build,
    size: u64,
    restart: bool,
    candidate: Option<Candidate>,
}

fn offers(facts: &Facts<'_>, from: Option<&Path>) -> Vec<Offer> {
    let mut out = Vec::new();
    if let Some(s) = facts.snapshot.staged_install() {
        out.push(Offer {
            version: s.version,
            build: s.build.clone(),
            size: 0,
            restart: true,
            candidate: None,
        });
    }
    if let Some(dir) = from {
        let mut log = Vec::new();
        if let Ok((applicable, _)) = pass::scan(facts.device, dir, None, &mut log) {
            let newest = facts
                .snapshot
                .active
                .as_ref()
                .map(|a| a.version)
                .max(out.first().map(|o| o.version));
            for c in applicable {
                if newest.is_some_and(|n| c.version <= n) || out.iter().any(|o| o.build == c.build)
                {
                    continue;
                }
                out.push(Offer {
                    version: c.version,
                    build: c.build.clone(),
                    size: c.bundle.manifest.cryptexes.total_size(),
                    restart: c.bundle.manifest.has_os(),
                    candidate: Some(c),
                });
            }
        }
    }
    out
}

/// Is `request_type` one of the software-update commands, asked of a device that no longer
/// has them (OS 26 and later)? Such a device answers it as an unknown request type.
#[must_use]
pub(crate) fn removed(facts: &Facts<'_>, request_type: &str) -> bool {
    matches!(
        request_type,
        "AvailableOSUpdates" | "ScheduleOSUpdate" | "OSUpdateStatus"
    ) && !available(facts)
}

/// `AvailableOSUpdates`.
pub(crate) fn available_os_updates(facts: &Facts<'_>, from: Option<&Path>) -> Answer {
    let mac = facts.device.info().platform == Platform::MacOs;
    let items: Vec<Value> = offers(facts, from)
        .into_iter()
        .map(|o| {
            let mut d = Dictionary::new();
            d.insert(
                "ProductKey".into(),
                product_key(&o.version, &o.build).into(),
            );
            d.insert(
                "HumanReadableName".into(),
                format!("Background Security Improvement {}", o.version).into(),
            );
            if mac {
                // macOS names the locale and the apps to close; MetadataURL is absent for
                // MSU-style updates, as Apple's schema says.
                d.insert("HumanReadableNameLocale".into(), "en".into());
                d.insert("AppIdentifiersToClose".into(), Value::Array(Vec::new()));
            } else {
                d.insert(
                    "ProductName".into(),
                    format!("Background Security Improvement {}", o.version).into(),
                );
                d.insert("InstallSize".into(), o.size.into());
            }
            d.insert("Version".into(), o.version.os.to_string().into());
            d.insert("Build".into(), o.build.to_string().into());
            d.insert("DownloadSize".into(), o.size.into());
            d.insert("IsCritical".into(), true.into());
            d.insert("RestartRequired".into(), o.restart.into());
            d.insert("AllowsInstallLater".into(), true.into());
            d.insert("IsSecurityResponse".into(), true.into());
            d.insert(
                "SupplementalBuildVersion".into(),
                o.build.to_string().into(),
            );
            d.insert(
                "SupplementalOSVersionExtra".into(),
                o.version.extra.to_string().into(),
            );
            Value::Dictionary(d)
        })
        .collect();
    let mut fields = Dictionary::new();
    fields.insert("AvailableOSUpdates".into(), Value::Array(items));
    Answer::ack(fields)
}

/// `OSUpdateStatus`.
pub(crate) fn os_update_status(facts: &Facts<'_>) -> Answer {
    let items: Vec<Value> = facts
        .snapshot
        .staged_install()
        .map(|s| {
            let mut d = Dictionary::new();
            d.insert(
                "ProductKey".into(),
                product_key(&s.version, &s.build).into(),
            );
            d.insert("IsDownloaded".into(), true.into());
            d.insert("DownloadPercentComplete".into(), Value::Real(1.0));
            d.insert("Status".into(), "Idle".into());
            Value::Dictionary(d)
        })
        .into_iter()
        .collect();
    let mut fields = Dictionary::new();
    fields.insert("OSUpdateStatus".into(), Value::Array(items));
    Answer::ack(fields)
}

/// The `Status` of a failed install, as Apple names the causes.
fn failed_status(e: &crate::Error) -> &'static str {
    match e.kind() {
        crate::error::ErrorKind::Power => "InstallInsufficientPower",
        crate::error::ErrorKind::NoSpace => "InstallInsufficientSpace",
        _ => "InstallFailed",
    }
}

/// An update of `ScheduleOSUpdate` that the device cannot act on: its result says why.
fn refused(mut r: Dictionary, code: i64, domain: &str, text: &str) -> Dictionary {
    r.insert("InstallAction".into(), "Error".into());
    r.insert("Status".into(), "Idle".into());
    r.insert(
        "ErrorChain".into(),
        Value::Array(vec![error_item(code, domain, text)]),
    );
    r
}

/// One update of `ScheduleOSUpdate`, driving the lifecycle as its `InstallAction` says; its
/// `UpdateResults` entry.
fn schedule_one(
    tx: &mut Tx<'_>,
    u: &Dictionary,
    offered: &mut Vec<Offer>,
    progress: &dyn Progress,
) -> Dictionary {
    let key = u.get("ProductKey").and_then(Value::as_string).unwrap_or("");
    let action = u
        .get("InstallAction")
        .and_then(Value::as_string)
        .unwrap_or("Default");
    let version = u.get("ProductVersion").and_then(Value::as_string);
    let mut r = Dictionary::new();
    r.insert("ProductKey".into(), key.into());
    let restart = match action {
        "Default" | "InstallASAP" | "InstallForceRestart" => true,
        "DownloadOnly" | "NotifyOnly" | "InstallLater" => false,
        other => {
            let text = format!("“{}” is not an InstallAction.", clip(other));
            return refused(r, 2, "bsi.usage", &text);
        }
    };
    let at = offered.iter().position(|o| {
        product_key(&o.version, &o.build) == key
            || version.is_some_and(|v| v == o.version.to_string() || v == o.version.os.to_string())
    });
    let Some(at) = at else {
        let text = format!(
            "The update “{}” is not available on this device.",
            clip(key)
        );
        return refused(r, 5, "bsi.not-applicable", &text);
    };
    let offer = offered.remove(at);
    let shown = if action == "Default" {
        "InstallASAP"
    } else {
        action
    };
    r.insert("InstallAction".into(), shown.into());
    let outcome = match offer.candidate {
        Some(c) => apply::apply_verified(
            tx,
            c.bundle,
            &ApplyOptions {
                bundle: Path::new(key).to_path_buf(),
                restart,
                dry_run: false,
                enforced_by: None,
                trigger: InstallTrigger::Mdm,
            },
            progress,
        )
        .map(|o| o.action),
        // Already staged: an install action restarts into it.
        None if restart => {
            crate::lifecycle::restart::restart(tx, false).map(|_| ApplyAction::StagedAndRestarted)
        }
        None => Ok(ApplyAction::AlreadyStaged),
    };
    match outcome {
        Ok(_) => {
            r.insert("Status".into(), "Idle".into());
        }
        Err(e) => {
            r.insert("Status".into(), failed_status(&e).into());
            r.insert("ErrorChain".into(), Value::Array(vec![error_of(&e)]));
        }
    }
    r
}

/// `ScheduleOSUpdate`: each update of `Updates`, in order.
pub(crate) fn schedule_os_update(
    tx: &mut Tx<'_>,
    facts: &Facts<'_>,
    cmd: &Command,
    from: Option<&Path>,
    progress: &dyn Progress,
) -> Answer {
    let Some(Value::Array(updates)) = cmd.body.get("Updates") else {
        return Answer::error(
            12001,
            "MCMDMErrorDomain",
            "The command is missing “Updates”.",
        );
    };
    let mut offered = offers(facts, from);
    let results = updates
        .iter()
        .filter_map(Value::as_dictionary)
        .take(16)
        .map(|u| Value::Dictionary(schedule_one(tx, u, &mut offered, progress)))
        .collect();
    let mut fields = Dictionary::new();
    fields.insert("UpdateResults".into(), Value::Array(results));
    Answer::ack(fields)
}
