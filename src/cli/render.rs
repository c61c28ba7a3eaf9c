//! Rendering results: JSON (pretty, one document on stdout) for `--json`, and short text for
//! people otherwise. This is the only module that formats for stdout; library code returns data.

use std::fmt::Write as _;

use serde::Serialize;

use crate::bundle::create::{Created, Signed};
use crate::bundle::inspect::Report as InspectReport;
use crate::bundle::keys::Generated;
use crate::bundle::pack::Packed;
use crate::ddm::auto::AutoOutcome;
use crate::ddm::catalog::LookupResult;
use crate::ddm::sync::SyncOutcome;
use crate::declarations::declaration::UNKNOWN_PAYLOAD_KEYS;
use crate::declarations::store::SetOutcome;
use crate::device::trust::TrustedKey;
use crate::fleet::{FleetInitOutcome, FleetSyncOutcome};
use crate::history::Entry;
use crate::lifecycle::apply::ApplyOutcome;
use crate::lifecycle::init::InitOutcome;
use crate::lifecycle::repair::RepairOutcome;
use crate::lifecycle::restart::RestartOutcome;
use crate::lifecycle::rollback::RollbackOutcome;
use crate::lifecycle::safari::RelaunchOutcome;
use crate::lifecycle::update::UpdateOutcome;
use crate::lifecycle::verify::VerifyOutcome;
use crate::status::Status;
use crate::status::model::PolicyStatus;

use super::human::{inspect, status};
pub(crate) use crate::ops::manage::{
    PolicyRemoved, PolicySet, PowerView, SettingsView, TrustChange,
};

/// Everything a command can print.
#[derive(Debug)]
pub(crate) enum Output {
    /// `init`.
    Init(InitOutcome),
    /// `status`.
    Status(Box<Status>),
    /// `apply`.
    Apply(ApplyOutcome),
    /// `restart`.
    Restart(RestartOutcome),
    /// `relaunch-safari`.
    Relaunch(RelaunchOutcome),
    /// `rollback`.
    Rollback(RollbackOutcome),
    /// `update` / `upgrade`.
    Update(UpdateOutcome),
    /// `power`.
    Power(PowerView),
    /// `settings`.
    Settings(SettingsView),
    /// `policy set`.
    PolicySet(PolicySet),
    /// `policy list`.
    PolicyList(PolicyStatus),
    /// `policy remove`.
    PolicyRemoved(PolicyRemoved),
    /// `auto`.
    Auto(AutoOutcome),
    /// `lookup`.
    Lookup(LookupResult),
    /// `sync`.
    Sync(SyncOutcome),
    /// `fleet init`.
    FleetInit(FleetInitOutcome),
    /// `fleet sync`.
    FleetSync(FleetSyncOutcome),
    /// `history`.
    History(Vec<Entry>),
    /// `verify`.
    Verify(VerifyOutcome),
    /// `repair`.
    Repair(RepairOutcome),
    /// `key generate`.
    KeyGenerated(Generated),
    /// `trust add` / `remove`.
    Trust(TrustChange),
    /// `trust list`.
    TrustList(Vec<TrustedKey>),
    /// `bundle create`.
    Created(Created),
    /// `bundle sign`.
    Signed(Signed),
    /// `bundle pack`.
    Packed(Packed),
    /// `bundle inspect`.
    Inspected(Box<InspectReport>),
    /// A JSON document that is also the human output (report, schema).
    Json(serde_json::Value),
    /// Text printed as is (completions, man page).
    Raw(String),
}

fn json<T: Serialize>(value: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

pub(super) fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

impl Output {
    /// The text to print on stdout.
    #[must_use]
    pub(crate) fn render(&self, as_json: bool, verbose: u8) -> String {
        if as_json {
            return match self {
                Output::Init(o) => json(o),
                Output::Status(o) => json(o),
                Output::Apply(o) => json(o),
                Output::Restart(o) => json(o),
                Output::Relaunch(o) => json(o),
                Output::Rollback(o) => json(o),
                Output::Update(o) => json(o),
                Output::Power(o) => json(o),
                Output::Settings(o) => json(o),
                Output::PolicySet(o) => json(o),
                Output::PolicyList(o) => json(o),
                Output::PolicyRemoved(o) => json(o),
                Output::Auto(o) => json(o),
                Output::Sync(o) => json(o),
                Output::FleetInit(o) => json(o),
                Output::FleetSync(o) => json(o),
                Output::Lookup(o) => json(o),
                Output::History(o) => json(o),
                Output::Verify(o) => json(o),
                Output::Repair(o) => json(o),
                Output::KeyGenerated(o) => json(o),
                Output::Trust(o) => json(o),
                Output::TrustList(o) => json(o),
                Output::Created(o) => json(o),
                Output::Signed(o) => json(o),
                Output::Packed(o) => json(o),
                Output::Inspected(o) => json(o),
                Output::Json(v) => json(v),
                Output::Raw(s) => s.clone(),
            };
        }
        let mut out = String::new();
        match self {
            Output::Init(o) => {
                let verb = match (o.dry_run, o.replaced) {
                    (true, _) => "would make",
                    (false, true) => "replaced the device with",
                    (false, false) => "made",
                };
                let article = if o.platform.name().starts_with(['i', 'a', 'e', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                line(
                    &mut out,
                    format!(
                        "{verb} {article} {} {} ({}) device at {}",
                        o.platform,
                        o.version,
                        o.build,
                        o.root.display()
                    ),
                );
                for fp in &o.trusted {
                    line(&mut out, format!("trusts key {fp}"));
                }
            }
            Output::Status(s) => status(&mut out, s, verbose),
            Output::Apply(o) => line(&mut out, &o.message),
            Output::Restart(o) => line(&mut out, &o.message),
            Output::Relaunch(o) => line(&mut out, &o.message),
            Output::Rollback(o) => line(&mut out, &o.message),
            Output::Update(o) => {
                let verb = if o.dry_run { "would move" } else { "moved" };
                if o.nothing_to_do {
                    line(&mut out, &o.message);
                } else {
                    line(&mut out, format!("{verb} from {} to {}", o.from, o.to));
                    line(&mut out, &o.message);
                }
            }
            Output::Power(p) => {
                match p.battery_percent {
                    Some(b) => line(
                        &mut out,
                        format!(
                            "battery {b} %, {}",
                            if p.on_ac { "on power" } else { "on battery" }
                        ),
                    ),
                    None => line(&mut out, "no battery (desktop), on power"),
                }
                line(
                    &mut out,
                    format!(
                        "power gate: {} ({})",
                        if p.ok { "passes" } else { "blocks installs" },
                        p.reason
                    ),
                );
                if p.dry_run && p.changed {
                    line(&mut out, "(dry run: nothing changed)");
                }
            }
            Output::Settings(s) => {
                let onoff = |b: bool| if b { "on" } else { "off" };
                line(
                    &mut out,
                    format!("automatically install: {}", onoff(s.automatic_effective)),
                );
                if let Some(id) = &s.forced_by {
                    line(
                        &mut out,
                        format!(
                            "  forced by declaration {id}; the user's switch ({}) has no effect",
                            onoff(s.automatic_user)
                        ),
                    );
                }
                if s.dry_run && s.changed {
                    line(&mut out, "(dry run: nothing changed)");
                }
            }
            Output::PolicySet(p) => {
                let what = match (&p.change, p.dry_run) {
                    (SetOutcome::Unchanged, _) => {
                        "already stored (same ServerToken); nothing to do".to_owned()
                    }
                    (SetOutcome::Added, false) => "stored".to_owned(),
                    (SetOutcome::Added, true) => "would store".to_owned(),
                    (SetOutcome::Replaced { previous_token }, false) => {
                        format!("replaced the declaration with ServerToken {previous_token}")
                    }
                    (SetOutcome::Replaced { previous_token }, true) => {
                        format!("would replace the declaration with ServerToken {previous_token}")
                    }
                };
                line(&mut out, format!("{} ({}): {what}", p.identifier, p.kind));
                line(&mut out, format!("  {}", state_words(p.active, p.valid)));
                if !p.note.is_empty() {
                    line(&mut out, format!("  {}", p.note));
                }
                for r in p.reasons.iter().filter(|r| r.code == UNKNOWN_PAYLOAD_KEYS) {
                    line(&mut out, format!("  {}: {}", r.code, r.description));
                }
            }
            Output::PolicyList(p) => {
                line(
                    &mut out,
                    format!("supervised: {}", if p.supervised { "yes" } else { "no" }),
                );
                if p.declarations.is_empty() {
                    line(&mut out, "no declarations");
                }
                for d in &p.declarations {
                    line(
                        &mut out,
                        format!(
                            "{}  {}  token {}  [{}]",
                            d.identifier,
                            d.kind,
                            d.server_token,
                            state_words(d.active, d.valid)
                        ),
                    );
                    line(&mut out, format!("  {}", d.note));
                    for r in d.reasons.iter().filter(|r| r.code == UNKNOWN_PAYLOAD_KEYS) {
                        line(&mut out, format!("  {}: {}", r.code, r.description));
                    }
                }
            }
            Output::PolicyRemoved(p) => line(
                &mut out,
                format!(
                    "{} {}",
                    if p.dry_run { "would remove" } else { "removed" },
                    p.identifier
                ),
            ),
            Output::Auto(a) => {
                for l in &a.log {
                    line(&mut out, l);
                }
            }
            Output::Lookup(l) => l.render_text(&mut out),
            Output::Sync(s) => render_sync(&mut out, s),
            Output::FleetInit(f) => {
                let mix: Vec<String> = f
                    .platforms
                    .iter()
                    .map(|(p, n)| format!("{n} {p}"))
                    .collect();
                line(
                    &mut out,
                    format!(
                        "made {} devices in {} ({}) in {:.1} s",
                        f.count,
                        f.dir.display(),
                        mix.join(", "),
                        f.seconds
                    ),
                );
            }
            Output::FleetSync(f) => {
                line(
                    &mut out,
                    format!(
                        "synced {} of {} devices with {} in {:.2} s: {:.0} syncs/s",
                        f.ok, f.devices, f.server, f.seconds, f.syncs_per_second
                    ),
                );
                let l = &f.latency_ms;
                line(
                    &mut out,
                    format!(
                        "latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                        l.p50, l.p90, l.p99, l.max
                    ),
                );
                line(
                    &mut out,
                    format!(
                        "bsi CPU: {:.2} s; {} declaration change(s), {} report(s) sent",
                        f.cpu_seconds, f.declaration_changes, f.reports_sent
                    ),
                );
                for fail in &f.failures {
                    line(
                        &mut out,
                        format!(
                            "failed: {} ({}): {}",
                            fail.device.display(),
                            fail.enrollment_id,
                            fail.error
                        ),
                    );
                }
            }
            Output::History(entries) => {
                if entries.is_empty() {
                    line(&mut out, "no history");
                }
                // Columns: time, command, result, the version change, then what happened.
                let result = |e: &Entry| {
                    serde_json::to_value(e.result)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                let change = |e: &Entry| match (&e.before, &e.after) {
                    (Some(b), Some(a)) if b != a => format!("{b} -> {a}"),
                    (None, Some(a)) => a.clone(),
                    (Some(b), _) => b.clone(),
                    _ => String::new(),
                };
                let width = |f: &dyn Fn(&Entry) -> String| {
                    entries
                        .iter()
                        .map(|e| f(e).chars().count())
                        .max()
                        .unwrap_or(0)
                };
                let (wa, wr, wc) = (
                    width(&|e: &Entry| e.action.clone()),
                    width(&result),
                    width(&change),
                );
                for e in entries {
                    let mut text = format!(
                        "{}  {:<wa$}  {:<wr$}  {:<wc$}",
                        e.at,
                        e.action,
                        result(e),
                        change(e),
                    );
                    if let Some(d) = &e.detail {
                        let _ = write!(text, "  {d}");
                    }
                    if let Some(err) = &e.error {
                        let _ = write!(text, "  error: {err}");
                    }
                    line(&mut out, text.trim_end());
                }
            }
            Output::Verify(v) => {
                if let Some(pending) = &v.recovery_pending {
                    line(&mut out, format!("note: {pending}"));
                }
                if v.problems.is_empty() {
                    line(
                        &mut out,
                        format!(
                            "{}: {} files, {} bytes verified (the active content and the base content a removal returns to); links, records and SystemVersion.plist agree",
                            v.version, v.files, v.bytes
                        ),
                    );
                } else {
                    for p in &v.problems {
                        line(&mut out, format!("problem: {p}"));
                    }
                }
            }
            Output::Repair(r) => {
                if let Some(rec) = &r.recovered {
                    line(
                        &mut out,
                        format!(
                            "recovered an interrupted {} (pid {})",
                            rec.interrupted, rec.pid
                        ),
                    );
                }
                for a in &r.actions {
                    line(&mut out, a);
                }
                if r.actions.is_empty() && r.recovered.is_none() {
                    line(&mut out, "nothing to repair");
                }
            }
            Output::KeyGenerated(k) => {
                line(
                    &mut out,
                    format!("private key: {} (keep it secret)", k.private_key.display()),
                );
                line(&mut out, format!("public key:  {}", k.public_key.display()));
                line(&mut out, format!("fingerprint: {}", k.fingerprint));
            }
            Output::Trust(t) => {
                let verb = match (t.added, t.changed, t.dry_run) {
                    (true, false, _) => "already trusted",
                    (true, true, false) => "now trusted",
                    (true, true, true) => "would be trusted",
                    (false, _, false) => "no longer trusted",
                    (false, _, true) => "would no longer be trusted",
                };
                line(&mut out, format!("key {}: {verb}", t.fingerprint));
                if !t.added && t.files.len() > 1 {
                    line(
                        &mut out,
                        format!(
                            "  {} the {} files that held it: {}",
                            if t.dry_run { "would remove" } else { "removed" },
                            t.files.len(),
                            t.files.join(", ")
                        ),
                    );
                }
            }
            Output::TrustList(keys) => {
                if keys.is_empty() {
                    line(
                        &mut out,
                        "the device trusts no keys (add one with `bsi trust add KEY.pub`)",
                    );
                }
                for k in keys {
                    let files: Vec<String> =
                        k.files.iter().map(|f| f.display().to_string()).collect();
                    line(&mut out, format!("{}  {}", k.fingerprint, files.join(", ")));
                }
            }
            Output::Created(c) => {
                let files: Vec<String> = c.files.iter().map(|(k, v)| format!("{v} {k}")).collect();
                line(
                    &mut out,
                    format!(
                        "created {} ({}, {}): {} files, {} bytes",
                        c.bundle.display(),
                        c.version,
                        c.build,
                        files.join(" + "),
                        c.bytes
                    ),
                );
                line(
                    &mut out,
                    format!("next: bsi bundle sign {} --key KEY", c.bundle.display()),
                );
            }
            Output::Signed(s) => line(
                &mut out,
                format!("signed {} with key {}", s.bundle.display(), s.fingerprint),
            ),
            Output::Packed(p) => {
                line(
                    &mut out,
                    format!(
                        "packed {} files into {} ({} bytes){}",
                        p.files,
                        p.out.display(),
                        p.bytes,
                        if p.signed {
                            ""
                        } else {
                            "; unsigned: devices will reject it"
                        }
                    ),
                );
            }
            Output::Inspected(r) => inspect(&mut out, r, verbose),
            Output::Json(v) => out = json(v),
            Output::Raw(s) => out.clone_from(s),
        }
        out
    }
}

/// A declaration's state in words: `active, valid`.
fn state_words(active: bool, valid: crate::declarations::state::Validity) -> String {
    use crate::declarations::state::Validity;
    format!(
        "{}, {}",
        if active { "active" } else { "not active" },
        match valid {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "validity unknown",
        }
    )
}

fn render_sync(out: &mut String, s: &SyncOutcome) {
    let would = if s.dry_run { "would be " } else { "" };
    line(
        out,
        format!(
            "synced with {} as {} (declarations token {})",
            s.server, s.enrollment_id, s.declarations_token
        ),
    );
    if !s.fetched_items {
        line(out, "declarations: unchanged (same token)");
    } else if s.changes.is_empty() {
        line(out, "declarations: none added, replaced or removed");
    }
    for c in &s.changes {
        line(
            out,
            format!(
                "  {} {}{} (ServerToken {})",
                c.identifier, would, c.change, c.server_token
            ),
        );
    }
    for (id, why) in &s.invalid {
        line(out, format!("  {id}: {why}"));
    }
    if let Some(a) = &s.auto {
        for l in &a.log {
            line(out, l);
        }
    }
    let r = &s.report;
    let kind = if r.full { "full" } else { "incremental" };
    if r.sent {
        line(
            out,
            format!("status report sent: {kind}, {} item(s)", r.items.len()),
        );
    } else if s.dry_run {
        line(
            out,
            format!(
                "status report would be sent: {kind}, {} item(s)",
                r.items.len()
            ),
        );
    } else {
        line(
            out,
            "status report: nothing changed since the last one; none sent",
        );
    }
}
