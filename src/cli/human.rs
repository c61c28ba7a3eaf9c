//! The longer texts for people: `status` (the `sw_vers`-style lines first) and `bundle inspect`.

use crate::bundle::inspect::Report as InspectReport;
use crate::bundle::inspect::SignatureState as S;
use crate::status::Status;
use crate::status::model::StagedAction;

use super::render::line;

pub(super) fn status(out: &mut String, s: &Status, verbose: u8) {
    line(out, format!("ProductName:\t\t{}", s.device.platform));
    line(out, format!("ProductVersion:\t\t{}", s.os.version));
    if let Some(a) = &s.active {
        line(out, format!("ProductVersionExtra:\t{}", a.extra));
    }
    line(
        out,
        format!("BuildVersion:\t\t{}", s.ddm.supplemental_build_version),
    );
    line(out, "");
    let kind = match (s.device.platform, s.device.portable) {
        (crate::device::Platform::MacOs, true) => format!("Mac laptop ({})", s.device.chip),
        (crate::device::Platform::MacOs, false) => format!("desktop Mac ({})", s.device.chip),
        (p, _) => p.to_string(),
    };
    line(
        out,
        format!(
            "device:     {kind}{}, enrollment {}",
            if s.device.supervised {
                ", supervised"
            } else {
                ""
            },
            s.device.enrollment_id
        ),
    );
    // The deployments, as rpm-ostree and bootc show them: what a restart activates, what runs
    // (marked), and what a rollback returns to.
    let sources = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(c, v)| format!("{c} from {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    line(out, "deployments:");
    match &s.staged {
        Some(st) if st.action == StagedAction::Install => line(
            out,
            format!(
                "  staged    {} ({}; {}), active after restart (`bsi restart`)",
                st.version,
                st.build,
                sources(&st.sources)
            ),
        ),
        Some(st) => line(
            out,
            format!(
                "  staged    removal of {}: at restart the device returns to {} ({})",
                st.version, s.os.version, s.os.build
            ),
        ),
        None => {}
    }
    match &s.active {
        Some(a) => line(
            out,
            format!(
                "* active    {} ({}; {})",
                a.version,
                a.build,
                sources(&a.sources)
            ),
        ),
        None => line(
            out,
            format!(
                "* active    base OS {} ({}), no response",
                s.os.version, s.os.build
            ),
        ),
    }
    let back = match (&s.staged, &s.active) {
        (Some(st), _) if st.action == StagedAction::Install => {
            format!("`bsi rollback` discards the staged {}", st.version)
        }
        (Some(_), Some(_)) => "the removal is staged already".to_owned(),
        (None, Some(_)) => format!(
            "base OS {} ({}): `bsi rollback` returns here at the next restart",
            s.os.version, s.os.build
        ),
        _ => "nothing to remove".to_owned(),
    };
    let back = if s.rollback.available || s.rollback.reason.is_none() {
        back
    } else {
        format!(
            "{back} (not now: {})",
            s.rollback.reason.clone().unwrap_or_default()
        )
    };
    line(out, format!("  rollback  {back}"));
    line(out, "");
    line(
        out,
        format!(
            "restart:    {}",
            if s.restart_required {
                "needed"
            } else {
                "not needed"
            }
        ),
    );
    if let Some(sf) = &s.safari {
        line(
            out,
            format!(
                "safari:     {}{}",
                sf.version,
                if sf.relaunched {
                    " (relaunched onto staged content)"
                } else {
                    ""
                }
            ),
        );
    }
    if !s.included.is_empty() {
        let first = s.included.first().cloned().unwrap_or_default();
        let last = s.included.last().cloned().unwrap_or_default();
        let text = if s.included.len() == 1 {
            first
        } else {
            format!("{first} ... {}", last.rsplit(' ').next().unwrap_or(&last))
        };
        line(out, format!("included:   {} includes {text}", s.os.version));
    }
    let p = &s.power;
    let battery = p
        .battery_percent
        .map_or_else(|| "no battery".to_owned(), |b| format!("battery {b} %"));
    line(
        out,
        format!(
            "power:      {battery}, {}; gate {} ({})",
            if p.on_ac { "on power" } else { "on battery" },
            if p.ok { "passes" } else { "BLOCKS installs" },
            p.reason
        ),
    );
    let auto = &s.automatic_install;
    line(
        out,
        format!(
            "automatic:  {}{}",
            if auto.enabled { "on" } else { "off" },
            auto.declaration.as_ref().map_or_else(
                || " (user's setting)".to_owned(),
                |d| format!(" (forced by declaration {d})")
            )
        ),
    );
    if !s.rollback.available && verbose > 0 {
        line(
            out,
            format!(
                "rollback:   unavailable: {}",
                s.rollback.reason.clone().unwrap_or_default()
            ),
        );
    }
    if !s.policy.declarations.is_empty() {
        line(
            out,
            format!(
                "policy:     {} declaration(s){}",
                s.policy.declarations.len(),
                if s.policy.supervised {
                    ""
                } else {
                    " (device not supervised)"
                }
            ),
        );
        if verbose > 0 {
            for d in &s.policy.declarations {
                line(out, format!("            {}: {}", d.identifier, d.note));
            }
        }
    }
    if let Some(p) = &s.prompt {
        line(out, format!("prompt:     {p}"));
    }
    if let Some(l) = &s.last_operation {
        let result = serde_json::to_value(l.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        line(
            out,
            format!(
                "last:       {} {result} at {}{}",
                l.action,
                l.at,
                l.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(op) = &s.operation {
        line(
            out,
            format!(
                "in flight:  bsi {} (pid {}) is {} since {}; this is the last committed state",
                op.command, op.pid, op.phase, op.started_at
            ),
        );
    }
    if let Some(r) = &s.recovery_pending {
        line(
            out,
            format!(
                "recovery:   an interrupted {} (pid {}, started {}) will be {} by the next changing command or `bsi repair`",
                r.command,
                r.pid,
                r.started_at,
                match r.will {
                    crate::status::model::RecoveryAction::Complete => "completed",
                    crate::status::model::RecoveryAction::Tidy => "tidied up",
                }
            ),
        );
    }
    for n in &s.notes {
        line(out, format!("note:       {n}"));
    }
}

pub(super) fn inspect(out: &mut String, r: &InspectReport, verbose: u8) {
    line(
        out,
        format!("bundle:      {} ({:?} form)", r.path.display(), r.form)
            .replace("Directory", "directory")
            .replace("Tar", "tar"),
    );
    line(
        out,
        format!(
            "response:    {} {} ({}), for {} ({})",
            r.product, r.version, r.build, r.base_version, r.prerequisite_build
        ),
    );
    if let Some(d) = &r.description {
        line(out, format!("description: {d}"));
    }
    for (name, c) in &r.cryptexes {
        line(
            out,
            format!(
                "{:<13}{} files, {} bytes",
                format!("cryptex {name}:"),
                c.files,
                c.bytes
            ),
        );
    }
    line(
        out,
        format!(
            "restart:     {}",
            if r.restart_required {
                "needed (OS content)"
            } else {
                "not needed (App content only)"
            }
        ),
    );
    if !r.unknown_keys.is_empty() {
        line(
            out,
            format!("unknown keys (ignored): {}", r.unknown_keys.join(", ")),
        );
    }
    if verbose > 0 {
        for f in &r.files {
            line(
                out,
                format!("  {} {:>10} {} {}", f.mode, f.size, f.sha256, f.path),
            );
        }
    }
    let by = r
        .signed_by
        .as_ref()
        .map_or_else(String::new, |fp| format!(" by key {fp}"));
    line(
        out,
        match r.signature_state {
            S::Valid => format!("signature:   valid,{by}, trusted ({})", r.trust),
            S::NotSigned if r.signature.ok => {
                "signature:   not signed (sign it with `bsi bundle sign BUNDLE --key KEY`)"
                    .to_owned()
            }
            S::NotChecked => format!(
                "signature:   signed{by}, not checked (no --key, and no device to trust it)"
            ),
            _ => format!(
                "signature:   FAILED: {}",
                r.signature.error.clone().unwrap_or_default()
            ),
        },
    );
    if r.payload.ok {
        line(
            out,
            "payload:     every size and SHA-256 matches the manifest",
        );
    } else {
        line(
            out,
            format!(
                "payload:     FAILED: {}",
                r.payload.error.clone().unwrap_or_default()
            ),
        );
    }
}
