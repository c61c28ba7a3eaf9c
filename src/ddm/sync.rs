//! `bsi sync --server URL`: one declarative-management sync, as a device makes it.
//!
//! 1. `GET /tokens`. When `DeclarationsToken` differs from the one the device holds (or the
//!    device syncs with this server and enrollment for the first time), `GET /declaration-items`,
//!    fetch every declaration that is new or whose `ServerToken` changed, and drop the ones no
//!    longer listed. Everything is fetched before anything is stored: a failed fetch changes
//!    nothing on the device. The declarations are then stored as `policy set` stores them, and
//!    the device evaluates them the same way (activations, validity, reasons).
//! 2. With `--then-auto`, a background pass (`ddm::auto`) acts on them.
//! 3. `PUT /status`: the first report to a server is full; later ones hold only the items that
//!    changed since the last report the server acknowledged with a 2xx (a report that failed is
//!    sent again, merged into the next), with `FullReport` false. Nothing changed: nothing sent.
//!
//! What the server acknowledged, and its token, are kept in `sync.json`.

use serde::Serialize;

use super::auto::{self, AutoOptions, AutoOutcome};
use super::client::Server;
use super::report;
use crate::declarations::declaration::Declaration;
use crate::declarations::state::Validity;
use crate::declarations::store;
use crate::device::layout::SYNC_RECORD;
use crate::device::records::{self, SyncState};
use crate::lifecycle::journal::Tx;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::{Error, Result};

/// How a sync is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct SyncOptions {
    /// The server.
    pub server: Server,
    /// Overrides the device's enrollment identifier.
    pub enrollment_id: Option<String>,
    /// A background pass between fetching and reporting.
    pub then_auto: Option<AutoOptions>,
    /// Fetch and say what would change; store and send nothing.
    pub dry_run: bool,
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

/// Fetches what changed: the declarations to store and the identifiers to remove.
fn fetch(
    server: &Server,
    enrollment: &str,
    held: &[Declaration],
) -> Result<(Vec<Declaration>, Vec<DeclarationChange>)> {
    let items = server.declaration_items(enrollment)?;
    let mut to_store = Vec::new();
    let mut changes = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for (kind, item) in items.declarations.all() {
        listed.insert(item.identifier.clone());
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
        let declaration = Declaration::parse(&raw, &source).map_err(|e| Error::Server {
            method: "GET",
            endpoint: source.clone(),
            problem: e.to_string(),
            hint: "fix the declaration on the server, then sync again".to_owned(),
        })?;
        if declaration.identifier != item.identifier {
            return Err(Error::Server {
                method: "GET",
                endpoint: source,
                problem: format!(
                    "the declaration's Identifier is `{}`, but the declaration items list `{}`",
                    clip(&declaration.identifier),
                    clip(&item.identifier)
                ),
                hint: "fix the declaration on the server, then sync again".to_owned(),
            });
        }
        changes.push(DeclarationChange {
            identifier: declaration.identifier.clone(),
            change: if old.is_some() { "replaced" } else { "added" },
            server_token: declaration.server_token.clone(),
        });
        to_store.push(declaration);
    }
    for d in held.iter().filter(|d| !listed.contains(&d.identifier)) {
        changes.push(DeclarationChange {
            identifier: d.identifier.clone(),
            change: "removed",
            server_token: d.server_token.clone(),
        });
    }
    Ok((to_store, changes))
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
    let server = &opts.server;
    let state: Option<SyncState> = records::read_json_lenient(device.root(), SYNC_RECORD);
    let same = state
        .as_ref()
        .filter(|s| s.server == server.url() && s.enrollment_id == enrollment);
    let tokens = server.tokens(&enrollment)?;
    let token = tokens.sync_tokens.declarations_token;
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
        },
        dry_run: opts.dry_run,
    };
    if same.and_then(|s| s.declarations_token.as_deref()) != Some(token.as_str()) {
        let held = store::list(device.root())?;
        // The token compared next time is the one `/tokens` gave: servers need not give the
        // same string in the declaration items.
        let (to_store, changes) = fetch(server, &enrollment, &held)?;
        outcome.fetched_items = true;
        if !opts.dry_run && !changes.is_empty() {
            // Each declaration is replaced atomically; no journal is needed: a sync cut short
            // leaves some declarations new, and the token old, so the next sync fetches again.
            store::store_all(device.root(), &to_store)?;
            for c in changes.iter().filter(|c| c.change == "removed") {
                store::remove(device.root(), &c.identifier)?;
            }
        }
        outcome.changes = changes;
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
    let (full, policy) = report::build_with_policy(device)?;
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
    };
    let nothing_new = delivered.is_some() && to_send.items.is_empty();
    if !opts.dry_run && !nothing_new {
        let body = to_send.to_json().to_string().into_bytes();
        server.put_status(&enrollment, &body)?;
        outcome.report.sent = true;
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
                    full.flat()
                } else {
                    same.map(|s| s.delivered.clone()).unwrap_or_default()
                },
            },
        )?;
    }
    Ok((outcome, deferred))
}
