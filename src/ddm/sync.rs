//! `bsi sync --server URL`: one declarative-management sync, as a device makes it.
//!
//! 1. `GET /tokens` (unless a `DeclarativeManagement` command carried them). When
//!    `DeclarationsToken` differs from the one the device holds (or the device syncs with this
//!    server and enrollment for the first time), `GET /declaration-items`, fetch every
//!    declaration that is new or whose `ServerToken` changed, and drop the ones no longer listed.
//!    Everything is fetched before anything is stored: a failed fetch changes nothing on the
//!    device. The declarations are then stored as `policy set` stores them, and the device
//!    evaluates them the same way (activations, validity, reasons).
//! 2. With `--then-auto`, a background pass (`ddm::auto`) acts on them.
//! 3. `PUT /status`: the first report to a server is full; later ones hold only the items that
//!    changed since the last report the server acknowledged with a 2xx (a report that failed is
//!    sent again, merged into the next), with `FullReport` false. Nothing changed: nothing sent.
//!
//! What the server acknowledged, and its token, are kept in `sync.json`.

use serde::Serialize;

use super::auto::{self, AutoOptions, AutoOutcome};
use super::client::{Server, TokensResponse};
use super::report::{self, StatusReport};
use crate::declarations::declaration::Declaration;
use crate::declarations::state::Validity;
use crate::declarations::store;
use crate::device::Device;
use crate::device::layout::SYNC_RECORD;
use crate::device::records::{self, SyncState};
use crate::human::{Human, Text};
use crate::lifecycle::journal::Tx;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::{Error, Result};

/// How a sync is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct SyncOptions {
    /// The server; `None`: through the MDM server the device is enrolled in (`ops` finds it).
    pub server: Option<Server>,
    /// Each request's bound (for a channel `ops` opens).
    pub timeout: std::time::Duration,
    /// Overrides the device's enrollment identifier.
    pub enrollment_id: Option<String>,
    /// A background pass between fetching and reporting.
    pub then_auto: Option<AutoOptions>,
    /// Fetch and say what would change; store and send nothing.
    pub dry_run: bool,
    /// The whole sync's bound (every request, retry and pause within it).
    pub deadline: std::time::Duration,
    /// The server's tokens, when a `DeclarativeManagement` command carried them: the sync
    /// does not ask the `tokens` endpoint.
    pub tokens: Option<TokensResponse>,
}

/// What happened to one declaration.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DeclarationChange {
    /// `Identifier`.
    pub identifier: String,
    /// `added`, `replaced` or `removed`.
    pub change: &'static str,
    /// The declaration's `ServerToken` (for a removal, the one the device held).
    pub server_token: String,
}

/// The report a sync sent (or would send).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReportSent {
    /// A full report (`FullReport` true), else incremental.
    pub full: bool,
    /// The dotted names of the items it carried.
    pub items: Vec<String>,
    /// It was sent and acknowledged (false with `--dry-run`, or when nothing changed).
    pub sent: bool,
    /// Why sending it failed, when it did after the sync changed the device: the report stays
    /// pending for the next sync.
    pub error: Option<String>,
}

/// What `bsi sync` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SyncOutcome {
    /// The server's base URL.
    pub server: String,
    /// The enrollment identifier used.
    pub enrollment_id: String,
    /// The server's `DeclarationsToken`.
    pub declarations_token: String,
    /// The declaration items were fetched (the token changed, or a first sync).
    pub fetched_items: bool,
    /// Declarations added, replaced or removed.
    pub changes: Vec<DeclarationChange>,
    /// Declarations the device holds but cannot use (invalid or not supported), with why.
    pub invalid: Vec<(String, String)>,
    /// The background pass, with `--then-auto`.
    pub auto: Option<AutoOutcome>,
    /// The status report.
    pub report: ReportSent,
    /// Nothing was stored or sent because of `--dry-run`.
    pub dry_run: bool,
}

/// The longest `DeclarationsToken`, `Identifier` or `ServerToken` bsi takes from a server
/// (Apple: identifiers "should not exceed 64 octets"; real tokens are hashes).
pub(crate) const MAX_TOKEN: usize = 1024;

fn server_error(endpoint: String, problem: String) -> Error {
    Error::Server {
        service: "DDM server",
        method: "GET",
        endpoint,
        problem,
        hint: "fix the declarations on the server, then sync again; nothing on the device changed"
            .to_owned(),
    }
}

/// Checks the declaration items a server listed before anything is fetched: each identifier
/// once (across every type), every text bounded, and no more declarations than a device holds.
pub(crate) fn check_listing(
    endpoint: &str,
    items: &super::client::ManifestDeclarationItems,
) -> Result<()> {
    let endpoint = endpoint.to_owned();
    let mut listed = std::collections::HashSet::new();
    let mut count = 0usize;
    for (_, item) in items.all() {
        count += 1;
        if item.identifier.is_empty()
            || item.identifier.len() > MAX_TOKEN
            || item.server_token.len() > MAX_TOKEN
        {
            return Err(server_error(
                endpoint,
                format!(
                    "the declaration items list an identifier or server token that is empty or longer than {MAX_TOKEN} bytes"
                ),
            ));
        }
        if !listed.insert(item.identifier.as_str()) {
            return Err(server_error(
                endpoint,
                format!(
                    "the declaration items list `{}` more than once; an identifier names one declaration",
                    clip(&item.identifier)
                ),
            ));
        }
    }
    if let Some(why) = store::over_bounds(count, 0) {
        return Err(server_error(
            endpoint,
            format!("the declaration items list {why}"),
        ));
    }
    Ok(())
}

/// Fetches what changed into `staging` (each declaration written as it comes, none held), and
/// says what changes: added or replaced, and the identifiers no longer listed.
fn fetch(
    server: &Server,
    enrollment: &str,
    held: &[Declaration],
    staging: &mut store::Staging<'_>,
) -> Result<Vec<DeclarationChange>> {
    let items = server.declaration_items(enrollment)?;
    check_listing(
        &format!("{}/declaration-items", server.url()),
        &items.declarations,
    )?;
    let mut changes = Vec::new();
    let listed: std::collections::HashSet<&str> = items
        .declarations
        .all()
        .map(|(_, d)| d.identifier.as_str())
        .collect();
    // What the device will hold: the kept declarations, then each one fetched.
    let mut bytes: u64 = held
        .iter()
        .filter(|d| listed.contains(d.identifier.as_str()))
        .map(|d| d.raw.len() as u64)
        .sum();
    for (kind, item) in items.declarations.all() {
        let old = held.iter().find(|d| d.identifier == item.identifier);
        if old.is_some_and(|d| d.server_token == item.server_token) {
            continue;
        }
        let raw = server.declaration(enrollment, kind, &item.identifier)?;
        let source = format!(
            "{}/declaration/{kind}/{}",
            server.url(),
            clip(&item.identifier)
        );
        bytes = bytes - old.map_or(0, |d| d.raw.len() as u64) + raw.len() as u64;
        if let Some(why) = store::over_bounds(0, bytes) {
            return Err(server_error(
                source,
                format!("the declarations come to {why}"),
            ));
        }
        let declaration = Declaration::parse(&raw, &source)
            .map_err(|e| server_error(source.clone(), e.to_string()))?;
        if declaration.identifier != item.identifier {
            return Err(server_error(
                source,
                format!(
                    "the declaration's Identifier is `{}`, but the declaration items list `{}`",
                    clip(&declaration.identifier),
                    clip(&item.identifier)
                ),
            ));
        }
        changes.push(DeclarationChange {
            identifier: declaration.identifier.clone(),
            change: if old.is_some() { "replaced" } else { "added" },
            server_token: declaration.server_token.clone(),
        });
        staging.put(&declaration)?;
    }
    // Fetched in the server's order, which a server need not keep from one listing to the
    // next; said in the identifiers' order, so the same change reads the same.
    changes.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    for d in held
        .iter()
        .filter(|d| !listed.contains(d.identifier.as_str()))
    {
        changes.push(DeclarationChange {
            identifier: d.identifier.clone(),
            change: "removed",
            server_token: d.server_token.clone(),
        });
    }
    Ok(changes)
}

/// Fetches what changed since the declarations the device holds, and stores it unless this is
/// a dry run.
fn store_changes(
    server: &Server,
    enrollment: &str,
    device: &Device,
    dry_run: bool,
) -> Result<Vec<DeclarationChange>> {
    let held = store::list(device.root())?;
    // The token compared next time is the one `/tokens` gave: servers need not give the
    // same string in the declaration items.
    let mut staging = store::Staging::new(device.root())?;
    let changes = fetch(server, enrollment, &held, &mut staging)?;
    if !dry_run && !changes.is_empty() {
        // Each declaration is replaced atomically; no journal is needed: a sync cut short
        // leaves some declarations new, and the token old, so the next sync fetches again.
        let removed: Vec<String> = changes
            .iter()
            .filter(|c| c.change == "removed")
            .map(|c| c.identifier.clone())
            .collect();
        staging.commit(&removed)?;
        store::note_received(device.root(), &store::list(device.root())?, &device.base()?)?;
    }
    Ok(changes)
}

/// Sends the status report. A failure after the sync changed something is deferred (the change
/// stands, the report stays pending); before any change it is the sync's error.
fn send_report(
    server: &Server,
    enrollment: &str,
    to_send: &StatusReport,
    outcome: &mut SyncOutcome,
    deferred: &mut Option<Error>,
) -> Result<()> {
    let body = to_send.to_json().to_string().into_bytes();
    let changed = !outcome.changes.is_empty()
        || outcome
            .auto
            .as_ref()
            .is_some_and(|a| a.installed.is_some() || a.staged.is_some());
    match server.put_status(enrollment, &body) {
        Ok(()) => {
            outcome.report.sent = true;
            Ok(())
        }
        // The declarations are stored and the pass made its change: that stands, and is
        // recorded as made. The report stays pending: what was delivered is unchanged, so
        // the next sync sends it (merged with what changes meanwhile).
        Err(Error::Server {
            service,
            method,
            endpoint,
            problem,
            ..
        }) if changed => {
            outcome.report.error = Some(problem.clone());
            deferred.get_or_insert(Error::Server {
                service,
                method,
                endpoint,
                problem,
                hint: "the changes this sync made stand (see `bsi history`); the status report stays pending, and the next `bsi sync` sends it".to_owned(),
            });
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// What the device holds of its syncs with `server` as `enrollment` (`sync.json`), when its
/// last sync was with them.
pub(crate) fn held(device: &Device, server: &str, enrollment: &str) -> Option<SyncState> {
    records::read_json_lenient::<SyncState>(device.root(), SYNC_RECORD)
        .filter(|s| s.server == server && s.enrollment_id == enrollment)
}

/// The server's `DeclarationsToken`: the one a `DeclarativeManagement` command brought, else
/// `GET /tokens`'s; bounded either way.
fn declarations_token(
    server: &Server,
    enrollment: &str,
    given: Option<&TokensResponse>,
) -> Result<String> {
    let token = match given {
        Some(t) => t.sync_tokens.declarations_token.clone(),
        None => server.tokens(enrollment)?.sync_tokens.declarations_token,
    };
    if token.len() > MAX_TOKEN {
        return Err(server_error(
            format!("{}/tokens", server.url()),
            format!(
                "the DeclarationsToken is {} bytes; bsi takes at most {MAX_TOKEN}",
                token.len()
            ),
        ));
    }
    Ok(token)
}

/// Runs one sync on the device of `tx`. An error of the background pass (e.g. the battery
/// blocking a due install) is returned after the report that shows it was sent.
pub(crate) fn run(
    tx: &mut Tx<'_>,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<(SyncOutcome, Option<Error>)> {
    let device = tx.device();
    let clock = tx.clock();
    let enrollment = opts
        .enrollment_id
        .clone()
        .unwrap_or_else(|| device.info().enrollment().to_owned());
    let server = opts.server.as_ref().ok_or_else(|| {
        Error::usage(
            "no DDM server: the device is not enrolled in an MDM server",
            "pass --server URL (a DDM server's device endpoints), or enroll the device with `bsi mdm enroll`",
        )
    })?;
    let state = held(device, server.url(), &enrollment);
    let same = state.as_ref();
    let server = &server.until(opts.deadline);
    let token = declarations_token(server, &enrollment, opts.tokens.as_ref())?;
    let mut outcome = SyncOutcome {
        server: server.url().to_owned(),
        enrollment_id: enrollment.clone(),
        declarations_token: token.clone(),
        fetched_items: false,
        changes: Vec::new(),
        invalid: Vec::new(),
        auto: None,
        report: ReportSent {
            full: false,
            items: Vec::new(),
            sent: false,
            error: None,
        },
        dry_run: opts.dry_run,
    };
    if same.and_then(|s| s.declarations_token.as_deref()) != Some(token.as_str()) {
        outcome.changes = store_changes(server, &enrollment, device, opts.dry_run)?;
        outcome.fetched_items = true;
    }
    let mut deferred = None;
    if let Some(auto_opts) = &opts.then_auto {
        let auto_opts = AutoOptions {
            dry_run: opts.dry_run,
            ..auto_opts.clone()
        };
        match auto::run(tx, &auto_opts, progress) {
            Ok(a) => outcome.auto = Some(a),
            Err(e) => deferred = Some(e),
        }
    }
    let (full, policy) = report::build_with_policy(device, report::Scope::Subscribed)?;
    outcome.invalid = policy
        .declarations
        .iter()
        .filter(|c| c.state.valid == Validity::Invalid)
        .map(|c| (c.state.declaration.identifier.clone(), c.note.clone()))
        .collect();
    let delivered = same.map(|s| &s.delivered);
    let to_send = report::changes(&full, delivered);
    outcome.report = ReportSent {
        full: delivered.is_none(),
        items: to_send.items.keys().map(|k| (*k).to_owned()).collect(),
        sent: false,
        error: None,
    };
    let nothing_new = delivered.is_some() && to_send.items.is_empty();
    if !opts.dry_run && !nothing_new {
        send_report(server, &enrollment, &to_send, &mut outcome, &mut deferred)?;
    }
    if !opts.dry_run {
        let sent = u64::from(outcome.report.sent);
        records::write_json(
            device.root(),
            SYNC_RECORD,
            &SyncState {
                server: server.url().to_owned(),
                enrollment_id: enrollment,
                declarations_token: Some(outcome.declarations_token.clone()),
                last_sync: clock.stamp(),
                reports_sent: same.map_or(0, |s| s.reports_sent) + sent,
                delivered: if outcome.report.sent || nothing_new {
                    full.digests()
                } else {
                    same.map(|s| s.delivered.clone()).unwrap_or_default()
                },
            },
        )?;
    }
    Ok((outcome, deferred))
}

impl Human for SyncOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let s = self;
        let would = if s.dry_run { "would be " } else { "" };
        out.line(format!(
            "synced with {} as {} (declarations token {})",
            clip(&s.server),
            clip(&s.enrollment_id),
            clip(&s.declarations_token)
        ));
        if !s.fetched_items {
            out.line("declarations: unchanged (same token)");
        } else if s.changes.is_empty() {
            out.line("declarations: none added, replaced or removed");
        }
        for c in &s.changes {
            out.line(format!(
                "  {} {would}{} (ServerToken {})",
                clip(&c.identifier),
                c.change,
                clip(&c.server_token)
            ));
        }
        for (id, why) in &s.invalid {
            out.line(format!("  {}: {why}", clip(id)));
        }
        if let Some(a) = &s.auto {
            for l in &a.log {
                out.line(l);
            }
        }
        let r = &s.report;
        let kind = if r.full { "full" } else { "incremental" };
        if r.sent {
            out.line(format!(
                "status report sent: {kind}, {} item(s)",
                r.items.len()
            ));
        } else if let Some(e) = &r.error {
            out.line(format!(
                "status report NOT delivered ({e}); it stays pending for the next sync"
            ));
        } else if s.dry_run {
            out.line(format!(
                "status report would be sent: {kind}, {} item(s)",
                r.items.len()
            ));
        } else {
            out.line("status report: nothing changed since the last one; none sent");
        }
    }
}
