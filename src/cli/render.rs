//! Rendering results: JSON (pretty, one document on stdout) for `--json`, and short text for
//! people otherwise. `status` prints the `sw_vers`-style lines first. This is the only module that
//! formats for stdout; library code returns data.

use std::fmt::Write as _;

use serde::Serialize;

use crate::bundle::create::{Created, Signed};
use crate::bundle::inspect::Report as InspectReport;
use crate::bundle::keys::Generated;
use crate::bundle::pack::Packed;
use crate::bundle::trust::TrustedKey;
use crate::ddm::auto::AutoOutcome;
use crate::ddm::catalog::LookupResult;
use crate::ddm::store::SetOutcome;
use crate::device::init::InitOutcome;
use crate::device::{Device, Power, Settings};
use crate::gates::policy::{AutoSource, Policy};
use crate::gates::power;
use crate::history::Entry;
use crate::lifecycle::apply::{ApplyAction, ApplyOutcome};
use crate::lifecycle::recover::RepairOutcome;
use crate::lifecycle::restart::RestartOutcome;
use crate::lifecycle::rollback::RollbackOutcome;
use crate::lifecycle::safari::RelaunchOutcome;
use crate::lifecycle::update::UpdateOutcome;
use crate::lifecycle::verify::VerifyOutcome;
use crate::status::Status;
use crate::status::model::{PolicyStatus, StagedAction};

use super::commands::Summary;

/// `bsi power`'s view.
#[derive(Clone, Debug, Serialize)]
pub struct PowerView {
    /// Connected to power.
    pub on_ac: bool,
    /// Battery charge; null for a desktop.
    pub battery_percent: Option<u8>,
    /// The gate's minimum; null when there is none.
    pub minimum_percent: Option<u8>,
    /// The gate passes.
    pub ok: bool,
    /// The rule in words.
    pub reason: String,
    /// Something changed.
    pub changed: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

impl PowerView {
    /// The view of `power` on `device`.
    #[must_use]
    pub fn new(device: &Device, power: Power, changed: bool, dry_run: bool) -> Self {
        let rule = power::rule(device.info());
        Self {
            on_ac: power.on_ac,
            battery_percent: power.battery_percent,
            minimum_percent: rule.minimum,
            ok: power::passes(device.info(), &power),
            reason: rule.why.to_owned(),
            changed,
            dry_run,
        }
    }
}

/// `bsi settings`'s view.
#[derive(Clone, Debug, Serialize)]
pub struct SettingsView {
    /// The user's own switch.
    pub automatic_user: bool,
    /// What is in effect.
    pub automatic_effective: bool,
    /// The declaration that forces it, if any.
    pub forced_by: Option<String>,
    /// Something changed.
    pub changed: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

impl SettingsView {
    /// The view of `settings` under `policy`.
    #[must_use]
    pub fn new(settings: Settings, policy: &Policy, changed: bool, dry_run: bool) -> Self {
        Self {
            automatic_user: settings.automatic_install,
            automatic_effective: policy
                .automatic_forced
                .as_ref()
                .map_or(settings.automatic_install, |f| f.0),
            forced_by: match &policy.automatic_source {
                AutoSource::User => None,
                AutoSource::Policy { identifier } => Some(identifier.clone()),
            },
            changed,
            dry_run,
        }
    }
}

/// `policy set`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct PolicySet {
    /// `Identifier`.
    pub identifier: String,
    /// `Type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ServerToken`.
    pub server_token: String,
    /// Added, replaced or unchanged.
    #[serde(flatten)]
    pub change: SetOutcome,
    /// How the device treats it.
    pub note: String,
    /// Nothing was stored because of `--dry-run`.
    pub dry_run: bool,
}

/// `policy remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyRemoved {
    /// The identifier removed.
    pub identifier: String,
    /// Nothing was removed because of `--dry-run`.
    pub dry_run: bool,
}

/// `trust add`/`remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct TrustChange {
    /// The key's fingerprint.
    pub fingerprint: String,
    /// Something changed.
    pub changed: bool,
    /// Added (else removed).
    pub added: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

/// Everything a command can print.
#[derive(Debug)]
pub enum Output {
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

fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

impl Output {
    /// The text to print on stdout.
    #[must_use]
    pub fn render(&self, as_json: bool, verbose: u8) -> String {
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
                line(
                    &mut out,
                    format!(
                        "{verb} a {} {} ({}) device at {}",
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
                if !p.note.is_empty() {
                    line(&mut out, format!("  {}", p.note));
                }
            }
            Output::PolicyList(p) => {
                line(
                    &mut out,
                    format!(
                        "supervised: {}",
                        if p.supervised {
                            "yes"
                        } else {
                            "no (settings declarations are ignored)"
                        }
                    ),
                );
                if p.declarations.is_empty() {
                    line(&mut out, "no declarations");
                }
                for d in &p.declarations {
                    line(
                        &mut out,
                        format!("{}  {}  token {}", d.identifier, d.kind, d.server_token),
                    );
                    line(&mut out, format!("  {}", d.note));
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
            Output::History(entries) => {
                if entries.is_empty() {
                    line(&mut out, "no history");
                }
                for e in entries {
                    let mut text = format!(
                        "{}  {:<16} {:<13}",
                        e.at,
                        e.action,
                        serde_json::to_value(e.result)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    );
                    match (&e.before, &e.after) {
                        (Some(b), Some(a)) if b != a => {
                            let _ = write!(text, " {b} -> {a}");
                        }
                        (None, Some(a)) => {
                            let _ = write!(text, " {a}");
                        }
                        _ => {}
                    }
                    if let Some(d) = &e.detail {
                        let _ = write!(text, "  {d}");
                    }
                    if let Some(err) = &e.error {
                        let _ = write!(text, "  error: {err}");
                    }
                    line(&mut out, text);
                }
            }
            Output::Verify(v) => {
                if v.problems.is_empty() {
                    line(
                        &mut out,
                        format!(
                            "{}: {} files, {} bytes verified; links and SystemVersion.plist agree",
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
            }
            Output::TrustList(keys) => {
                if keys.is_empty() {
                    line(
                        &mut out,
                        "the device trusts no keys (add one with `bsi trust add KEY.pub`)",
                    );
                }
                for k in keys {
                    line(&mut out, format!("{}  {}", k.fingerprint, k.file.display()));
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

fn status(out: &mut String, s: &Status, verbose: u8) {
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
            "device:     {kind}{}",
            if s.device.supervised {
                ", supervised"
            } else {
                ""
            }
        ),
    );
    match &s.active {
        Some(a) => line(
            out,
            format!(
                "active:     {} ({}; {})",
                a.version,
                a.build,
                a.cryptexes.join(", ")
            ),
        ),
        None => line(
            out,
            format!(
                "active:     base OS {} ({}), no response",
                s.os.version, s.os.build
            ),
        ),
    }
    match &s.staged {
        Some(st) if st.action == StagedAction::Install => line(
            out,
            format!(
                "staged:     {} ({}), active after restart",
                st.version, st.build
            ),
        ),
        Some(st) => line(
            out,
            format!("staged:     removal of {}, at restart", st.version),
        ),
        None => line(out, "staged:     nothing"),
    }
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
    for n in &s.notes {
        line(out, format!("note:       {n}"));
    }
}

fn inspect(out: &mut String, r: &InspectReport, verbose: u8) {
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
            format!("cryptex {name}: {} files, {} bytes", c.files, c.bytes),
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
    match (&r.signature.ok, &r.signed_by) {
        (true, Some(fp)) => line(
            out,
            format!("signature:   valid, by key {fp} ({})", r.trust),
        ),
        _ => line(
            out,
            format!(
                "signature:   FAILED: {}",
                r.signature.error.clone().unwrap_or_default()
            ),
        ),
    }
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

impl Summary for ApplyOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
    fn nothing_to_do(&self) -> bool {
        matches!(
            self.action,
            ApplyAction::AlreadyActive | ApplyAction::AlreadyStaged
        )
    }
}

impl Summary for RestartOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        self.activated.clone().or_else(|| self.removed.clone())
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_staged
    }
}

impl Summary for RelaunchOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Summary for RollbackOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
}

impl Summary for UpdateOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Summary for PowerView {
    fn summary(&self) -> String {
        format!(
            "{}{}",
            self.battery_percent
                .map_or_else(|| "desktop".to_owned(), |b| format!("battery {b} %, ")),
            if self.on_ac { "on power" } else { "on battery" }
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Summary for SettingsView {
    fn summary(&self) -> String {
        format!(
            "automatic install {}",
            if self.automatic_user { "on" } else { "off" }
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Summary for PolicySet {
    fn summary(&self) -> String {
        format!("{} {}: {:?}", self.kind, self.identifier, self.change)
    }
    fn nothing_to_do(&self) -> bool {
        self.change == SetOutcome::Unchanged
    }
}

impl Summary for PolicyRemoved {
    fn summary(&self) -> String {
        format!("removed declaration {}", self.identifier)
    }
}

impl Summary for TrustChange {
    fn summary(&self) -> String {
        format!(
            "{} key {}",
            if self.added {
                "trusted"
            } else {
                "stopped trusting"
            },
            self.fingerprint
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Summary for AutoOutcome {
    fn summary(&self) -> String {
        self.log.join("; ")
    }
    fn target(&self) -> Option<String> {
        self.installed.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.installed.is_none()
    }
}
