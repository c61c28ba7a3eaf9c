//! `status` for people: the `sw_vers`-style lines first, then the deployments as rpm-ostree and
//! bootc show them, then the rest of what `status --json` says.

use crate::human::{Human, Text, clip};
use crate::status::Status;
use crate::status::model::{PolicyStatus, StagedAction};

impl Human for Status {
    fn human(&self, out: &mut Text, verbose: u8) {
        identity_lines(self, out);
        deployment_lines(self, out);
        out.line("");
        state_lines(self, out, verbose);
        progress_lines(self, out);
    }
}

/// The `sw_vers`-style lines, then what the device is.
fn identity_lines(s: &Status, out: &mut Text) {
    out.line(format!("ProductName:\t\t{}", s.device.platform));
    out.line(format!("ProductVersion:\t\t{}", s.os.version));
    if let Some(a) = &s.active {
        out.line(format!("ProductVersionExtra:\t{}", a.extra));
    }
    out.line(format!(
        "BuildVersion:\t\t{}",
        s.ddm.supplemental_build_version
    ));
    out.line("");
    let kind = match (s.device.platform, s.device.portable) {
        (crate::device::Platform::MacOs, true) => format!("Mac laptop ({})", s.device.chip),
        (crate::device::Platform::MacOs, false) => format!("desktop Mac ({})", s.device.chip),
        (p, _) => p.to_string(),
    };
    out.line(format!(
        "device:     {kind}{}, enrollment {}",
        if s.device.supervised {
            ", supervised"
        } else {
            ""
        },
        s.device.enrollment_id
    ));
}

/// The deployments, as rpm-ostree and bootc show them.
fn deployment_lines(s: &Status, out: &mut Text) {
    // The deployments, as rpm-ostree and bootc show them: what a restart activates, what runs
    // (marked), and what a rollback returns to.
    let sources = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(c, v)| format!("{c} from {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.line("deployments:");
    match &s.staged {
        Some(st) if st.action == StagedAction::Install => out.line(format!(
            "  staged    {} ({}; {}), active after restart (`bsi restart`)",
            st.version,
            st.build,
            sources(&st.sources)
        )),
        Some(st) => out.line(format!(
            "  staged    removal of {}: at restart the device returns to {} ({})",
            st.version, s.os.version, s.os.build
        )),
        None => {}
    }
    match &s.active {
        Some(a) => out.line(format!(
            "* active    {} ({}; {})",
            a.version,
            a.build,
            sources(&a.sources)
        )),
        None => out.line(format!(
            "* active    base OS {} ({}), no response",
            s.os.version, s.os.build
        )),
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
    out.line(format!("  rollback  {back}"));
}

/// Restart, Safari, inclusion, power, automatic install, policy and MDM enrollment.
fn state_lines(s: &Status, out: &mut Text, verbose: u8) {
    out.line(format!(
        "restart:    {}",
        if s.restart_required {
            "needed"
        } else {
            "not needed"
        }
    ));
    if let Some(sf) = &s.safari {
        out.line(format!(
            "safari:     {}{}",
            sf.version,
            if sf.relaunched {
                " (relaunched onto staged content)"
            } else {
                ""
            }
        ));
    }
    if !s.included.is_empty() {
        let first = s.included.first().cloned().unwrap_or_default();
        let last = s.included.last().cloned().unwrap_or_default();
        let text = if s.included.len() == 1 {
            first
        } else {
            format!("{first} ... {}", last.rsplit(' ').next().unwrap_or(&last))
        };
        out.line(format!("included:   {} includes {text}", s.os.version));
    }
    let p = &s.power;
    let battery = p
        .battery_percent
        .map_or_else(|| "no battery".to_owned(), |b| format!("battery {b} %"));
    out.line(format!(
        "power:      {battery}, {}; gate {} ({})",
        if p.on_ac { "on power" } else { "on battery" },
        if p.ok { "passes" } else { "BLOCKS installs" },
        p.reason
    ));
    let auto = &s.automatic_install;
    out.line(format!(
        "automatic:  {}{}",
        if auto.enabled { "on" } else { "off" },
        auto.declaration.as_ref().map_or_else(
            || " (user's setting)".to_owned(),
            |d| format!(" (forced by declaration {d})")
        )
    ));
    if !s.rollback.available && verbose > 0 {
        out.line(format!(
            "rollback:   unavailable: {}",
            s.rollback.reason.clone().unwrap_or_default()
        ));
    }
    if !s.policy.declarations.is_empty() {
        out.line(format!(
            "policy:     {} declaration(s){}",
            s.policy.declarations.len(),
            if s.policy.supervised {
                ""
            } else {
                " (device not supervised)"
            }
        ));
        if verbose > 0 {
            for d in &s.policy.declarations {
                out.line(format!("            {}: {}", clip(&d.identifier), d.note));
            }
        }
    }
    if let Some(m) = &s.mdm {
        out.line(format!(
            "mdm:        enrolled as {} in {} (topic {}); last check-in {}",
            clip(&m.udid),
            clip(&m.server_url),
            clip(&m.topic),
            m.last_checkin.as_deref().unwrap_or("never")
        ));
        out.line(format!(
            "identity:   {} from {}, issued by {}, valid until {}",
            clip(&m.identity.subject),
            m.identity.source,
            clip(&m.identity.issuer),
            m.identity.not_after
        ));
    }
}

/// What is pending or in flight: the prompt, the last operation, a changer at work, recovery,
/// and the notes.
fn progress_lines(s: &Status, out: &mut Text) {
    if let Some(p) = &s.prompt {
        out.line(format!("prompt:     {p}"));
    }
    if let Some(l) = &s.last_operation {
        let result = serde_json::to_value(l.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.line(format!(
            "last:       {} {result} at {}{}",
            l.action,
            l.at,
            l.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if let Some(op) = &s.operation {
        // A changer that has the lock but has not written who it is yet names nothing.
        out.line(if op.pid == 0 {
            "in flight:  a bsi command is starting; this is the last committed state".to_owned()
        } else {
            format!(
                "in flight:  bsi {} (pid {}) is {} since {}; this is the last committed state",
                op.command, op.pid, op.phase, op.started_at
            )
        });
    }
    if let Some(r) = &s.recovery_pending {
        out.line(format!(
            "recovery:   {} will be {} by the next changing command or `bsi repair`",
            crate::lifecycle::journal::interrupted(&r.command, Some(r.pid), Some(&r.started_at)),
            match r.will {
                crate::status::model::RecoveryAction::Complete => "completed",
                crate::status::model::RecoveryAction::Tidy => "tidied up",
            }
        ));
    }
    for n in &s.notes {
        out.line(format!("note:       {n}"));
    }
}

impl Human for PolicyStatus {
    fn human(&self, out: &mut Text, _: u8) {
        use crate::declarations::declaration::UNKNOWN_PAYLOAD_KEYS;
        out.line(format!(
            "supervised: {}",
            if self.supervised { "yes" } else { "no" }
        ));
        if self.declarations.is_empty() {
            out.line("no declarations");
        }
        for d in &self.declarations {
            out.line(format!(
                "{}  {}  token {}  [{}]",
                clip(&d.identifier),
                clip(&d.kind),
                clip(&d.server_token),
                crate::declarations::state::state_words(d.active, d.valid)
            ));
            out.line(format!("  {}", d.note));
            for r in d.reasons.iter().filter(|r| r.code == UNKNOWN_PAYLOAD_KEYS) {
                out.line(format!("  {}: {}", r.code, r.description));
            }
        }
    }
}
