//! `bsi fleet sync`: every device of a fleet synced with a DDM server, in parallel, sharing
//! one HTTP connection pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::{Shard, Tally};
use crate::Result;
use crate::clock::Clock;
use crate::ddm::auto::AutoOptions;
use crate::ddm::client::Server;
use crate::ddm::sync::SyncOptions;
use crate::human::{Human, Text};
use crate::ops;
use crate::progress::Progress;

/// How `fleet sync` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetSyncOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// The server.
    pub server: String,
    /// Devices synced at once.
    pub concurrency: usize,
    /// A background pass per device.
    pub then_auto: Option<AutoOptions>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Each device's whole-sync bound.
    pub deadline: Duration,
    /// The devices this run takes.
    pub shard: Shard,
}

/// What `fleet sync` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetSyncOutcome {
    /// The server.
    pub server: String,
    /// How the run went.
    #[serde(flatten)]
    pub tally: Tally,
    /// Syncs per second (the tally's `per_second`, by its earlier name).
    pub syncs_per_second: f64,
    /// Declarations added, replaced or removed across the fleet.
    pub declaration_changes: usize,
    /// Status reports the server acknowledged.
    pub reports_sent: usize,
}

/// `bsi fleet sync`.
pub(crate) fn sync(
    opts: &FleetSyncOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetSyncOutcome> {
    let fleet = super::load(&opts.dir)?;
    let workers = opts.concurrency.clamp(1, 256);
    let server = Server::new(
        &opts.server,
        opts.timeout,
        workers,
        &crate::http::Tls::default(),
    )?;
    let changes = AtomicUsize::new(0);
    let reports = AtomicUsize::new(0);
    let sync_opts = SyncOptions {
        server: Some(server.clone()),
        enrollment_id: None,
        then_auto: opts.then_auto.clone(),
        dry_run: false,
        deadline: opts.deadline,
        timeout: opts.timeout,
        tokens: None,
    };
    let tally = super::run_each(&fleet, opts.shard, workers, progress, "syncing", |device| {
        let env = super::env_of(&opts.dir, device, *clock);
        let done = ops::sync(&env, &sync_opts, &crate::progress::Silent)?;
        changes.fetch_add(done.value.outcome.changes.len(), Ordering::Relaxed);
        reports.fetch_add(
            usize::from(done.value.outcome.report.sent),
            Ordering::Relaxed,
        );
        done.value.deferred.map_or(Ok(()), Err)
    });
    Ok(FleetSyncOutcome {
        server: server.url().to_owned(),
        syncs_per_second: tally.per_second,
        tally,
        declaration_changes: changes.into_inner(),
        reports_sent: reports.into_inner(),
    })
}

impl Human for FleetSyncOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let f = self;
        let t = &f.tally;
        out.line(format!(
            "synced {} of {} devices with {} in {:.2} s: {:.0} syncs/s",
            t.ok, t.devices, f.server, t.seconds, t.per_second
        ));
        out.line(format!(
            "{} declaration change(s), {} report(s) sent",
            f.declaration_changes, f.reports_sent
        ));
        t.human(out, "sync");
    }
}
