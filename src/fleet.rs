//! Fleets: many simulated devices in one directory, made reproducibly from a seed
//! ([`init`]) and synced with a DDM server in parallel ([`sync`]), for testing a server's
//! workflow at scale. Each device is an ordinary bsi device (`DIR/devices/NNNN`); the fleet adds
//! `DIR/fleet.json`, the list of devices with their enrollment identifiers.
//!
//! A sync of the fleet is many single-device syncs (`ops::sync`, each under that device's lock,
//! journal and history), on `concurrency` worker threads sharing one HTTP connection pool.
//! Devices are processed, not held: the workers keep only each device's latency and failures.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::ddm::auto::AutoOptions;
use crate::ddm::client::Server;
use crate::ddm::sync::SyncOptions;
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::lifecycle::init::{InitOptions, init as init_device};
use crate::ops::{self, Env};
use crate::platform::{Chip, Platform};
use crate::progress::Progress;
use crate::version::{Build, OsVersion};
use crate::{Error, Result};

/// `fleet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FleetFile {
    /// The seed it was made from.
    pub seed: u64,
    /// Its devices.
    pub devices: Vec<FleetDevice>,
}

/// One device of a fleet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FleetDevice {
    /// Its number.
    pub index: u32,
    /// Its root, relative to the fleet directory.
    pub root: PathBuf,
    /// Its enrollment identifier.
    pub enrollment_id: String,
    /// Its platform.
    pub platform: Platform,
    /// Supervised.
    pub supervised: bool,
}

/// How `fleet init` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetInitOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// How many devices.
    pub count: u32,
    /// One platform for all, or a mix.
    pub platform: Option<Platform>,
    /// Battery charges, low and high percent.
    pub battery: (u8, u8),
    /// Percent supervised.
    pub supervised_percent: u8,
    /// The seed.
    pub seed: u64,
    /// Keys every device trusts.
    pub trust: Vec<PathBuf>,
    /// Devices made at once.
    pub concurrency: usize,
}

/// What `fleet init` made.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetInitOutcome {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// Devices made.
    pub count: usize,
    /// Devices by platform.
    pub platforms: std::collections::BTreeMap<String, usize>,
    /// Seconds it took.
    pub seconds: f64,
}

/// A small, seedable generator (`SplitMix64`): the fleet's variety, reproducible from the seed.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next().to_be_bytes());
        crate::lifecycle::init::uuid_text(bytes)
    }
}

/// Parses `LOW-HIGH` percent.
pub(crate) fn parse_spread(text: &str) -> Result<(u8, u8)> {
    let bad = || {
        Error::usage(
            format!("--battery-spread {text} is not LOW-HIGH percent"),
            "give two percentages, the lower first, at most 100: e.g. --battery-spread 5-100",
        )
    };
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo: u8 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u8 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi || hi > 100 {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The options of device `index` of a fleet.
fn device_options(opts: &FleetInitOptions, index: u32) -> Result<InitOptions> {
    let mut mix = Mix(opts.seed ^ (u64::from(index) << 20) ^ 0x5EED);
    let platform = opts.platform.unwrap_or(match mix.below(100) {
        0..60 => Platform::MacOs,
        60..85 => Platform::Ios,
        _ => Platform::IpadOs,
    });
    let mac = platform == Platform::MacOs;
    let chip = if mac && mix.below(5) == 0 {
        Chip::Intel
    } else {
        Chip::AppleSilicon
    };
    let portable = !mac || mix.below(5) != 0;
    let (lo, hi) = opts.battery;
    let battery = lo + u8::try_from(mix.below(u64::from(hi - lo) + 1)).unwrap_or(0);
    let on_ac = !portable || mix.below(2) == 0;
    let supervised = mix.below(100) < u64::from(opts.supervised_percent);
    let (version, build) = (
        crate::lifecycle::init::DEFAULT_VERSION,
        crate::lifecycle::init::default_build(platform),
    );
    Ok(InitOptions {
        platform,
        version: version.parse::<OsVersion>()?,
        build: Build::parse_base(build)?,
        chip,
        portable,
        battery: if portable { battery } else { 100 },
        on_ac,
        supervised,
        trust: opts.trust.clone(),
        force: false,
        dry_run: false,
        wait: Duration::from_secs(5),
        enrollment_id: Some(mix.uuid()),
    })
}

fn device_dir(index: u32) -> PathBuf {
    Path::new("devices").join(format!("{index:04}"))
}

/// `bsi fleet init`.
pub(crate) fn init(
    opts: &FleetInitOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetInitOutcome> {
    let start = Instant::now();
    let devices = opts.dir.join("devices");
    let partial = std::fs::read_dir(&devices).is_ok_and(|mut d| d.next().is_some());
    if opts.dir.join("fleet.json").exists() || partial {
        return Err(Error::usage(
            format!(
                "{} already holds a fleet{}",
                opts.dir.display(),
                if partial && !opts.dir.join("fleet.json").exists() {
                    " (an unfinished one: it has devices but no fleet.json)"
                } else {
                    ""
                }
            ),
            "choose a new directory with --dir, or remove that one",
        ));
    }
    std::fs::create_dir_all(opts.dir.join("devices")).ctx("creating", opts.dir.join("devices"))?;
    let planned: Vec<(u32, InitOptions)> = (0..opts.count)
        .map(|i| device_options(opts, i).map(|o| (i, o)))
        .collect::<Result<_>>()?;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    progress.begin_items("making", u64::from(opts.count));
    std::thread::scope(|scope| {
        for _ in 0..opts.concurrency.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((index, o)) = planned.get(i) else {
                        break;
                    };
                    if failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    if let Err(e) = init_device(&opts.dir.join(device_dir(*index)), o, clock) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                    progress.advance(1);
                }
            });
        }
    });
    progress.end();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let devices: Vec<FleetDevice> = planned
        .iter()
        .map(|(index, o)| FleetDevice {
            index: *index,
            root: device_dir(*index),
            enrollment_id: o.enrollment_id.clone().unwrap_or_default(),
            platform: o.platform,
            supervised: o.supervised,
        })
        .collect();
    let mut platforms = std::collections::BTreeMap::new();
    for d in &devices {
        *platforms.entry(d.platform.to_string()).or_insert(0) += 1;
    }
    let file = FleetFile {
        seed: opts.seed,
        devices,
    };
    let text = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::io("writing", "fleet.json", std::io::Error::other(e)))?;
    let path = opts.dir.join("fleet.json");
    std::fs::write(&path, text).ctx("writing", &path)?;
    Ok(FleetInitOutcome {
        dir: opts.dir.clone(),
        count: file.devices.len(),
        platforms,
        seconds: start.elapsed().as_secs_f64(),
    })
}

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
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// A device whose sync failed.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetFailure {
    /// Its root, relative to the fleet directory.
    pub device: PathBuf,
    /// Its enrollment identifier.
    pub enrollment_id: String,
    /// bsi's exit code for the error.
    pub exit_code: u8,
    /// The error.
    pub error: String,
}

/// What `fleet sync` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetSyncOutcome {
    /// The server.
    pub server: String,
    /// Devices in the fleet.
    pub devices: usize,
    /// Syncs that succeeded.
    pub ok: usize,
    /// Syncs that failed.
    pub failed: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Syncs per second.
    pub syncs_per_second: f64,
    /// Per-device sync latency.
    pub latency_ms: Latency,
    /// CPU seconds bsi used (user + system).
    pub cpu_seconds: f64,
    /// Declarations added, replaced or removed across the fleet.
    pub declaration_changes: usize,
    /// Status reports the server acknowledged.
    pub reports_sent: usize,
    /// Every failure.
    pub failures: Vec<FleetFailure>,
}

/// This process's CPU time (user + system), in seconds, from `/proc/self/stat`.
#[must_use]
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    #[allow(clippy::cast_precision_loss)]
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) / per_second
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Largest `fleet.json` bsi reads: 100,000 devices at about 200 bytes each.
const MAX_FLEET_FILE: u64 = 64 << 20;

/// Reads `fleet.json`: read without blocking and within a limit, and every device's root
/// relative and beneath the fleet directory (a root that is absolute, has `..`, or leads
/// elsewhere through a symlink would make a fleet command change a device outside the fleet).
pub(crate) fn load(dir: &Path) -> Result<FleetFile> {
    let path = dir.join("fleet.json");
    if !path.exists() {
        return Err(Error::usage(
            format!("{} is not a fleet (no fleet.json)", dir.display()),
            format!(
                "make one with `bsi fleet init --dir {} --count N`",
                dir.display()
            ),
        ));
    }
    let damaged = |reason: String| Error::FleetDamaged {
        reason,
        path: path.clone(),
    };
    let bytes = crate::input::read_named(&path, MAX_FLEET_FILE, "fleet file")
        .map_err(|e| damaged(crate::untrusted::clip(&e.to_string())))?;
    let fleet: FleetFile = serde_json::from_slice(&bytes)
        .map_err(|e| damaged(crate::untrusted::clip(&e.to_string())))?;
    let home = dir.canonicalize().ctx("reading", dir)?;
    for device in &fleet.devices {
        let plain = device
            .root
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let inside = plain
            && dir
                .join(&device.root)
                .canonicalize()
                .map_or(true, |real| real.starts_with(&home) && real != home);
        if !(plain && inside) {
            return Err(damaged(format!(
                "device {} has the root {}, which is not a directory inside the fleet",
                device.index,
                crate::untrusted::clip(&device.root.display().to_string())
            )));
        }
    }
    Ok(fleet)
}

/// `bsi fleet sync`.
pub(crate) fn sync(
    opts: &FleetSyncOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetSyncOutcome> {
    let fleet = load(&opts.dir)?;
    let workers = opts.concurrency.clamp(1, 256);
    let server = Server::new(&opts.server, opts.timeout, workers)?;
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(fleet.devices.len()));
    let failures = Mutex::new(Vec::new());
    let changes = AtomicUsize::new(0);
    let reports = AtomicUsize::new(0);
    progress.begin_items("syncing", fleet.devices.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let sync_opts = SyncOptions {
                    server: server.clone(),
                    enrollment_id: None,
                    then_auto: opts.then_auto.clone(),
                    dry_run: false,
                    deadline: opts.deadline,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(device) = fleet.devices.get(i) else {
                        break;
                    };
                    let env = Env {
                        root: opts.dir.join(&device.root),
                        clock: *clock,
                        wait: Duration::from_secs(30),
                    };
                    let began = Instant::now();
                    let result = ops::sync(&env, &sync_opts, &crate::progress::Silent);
                    let ms = began.elapsed().as_secs_f64() * 1000.0;
                    let error = match result {
                        Ok(done) => {
                            changes.fetch_add(done.value.outcome.changes.len(), Ordering::Relaxed);
                            reports.fetch_add(
                                usize::from(done.value.outcome.report.sent),
                                Ordering::Relaxed,
                            );
                            done.value.deferred
                        }
                        Err(e) => Some(e),
                    };
                    if let Ok(mut l) = latencies.lock() {
                        l.push(ms);
                    }
                    if let Some(e) = error
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(FleetFailure {
                            device: device.root.clone(),
                            enrollment_id: device.enrollment_id.clone(),
                            exit_code: e.exit_code(),
                            error: e.to_string(),
                        });
                    }
                    progress.advance(1);
                }
            });
        }
    });
    progress.end();
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by(|a, b| a.device.cmp(&b.device));
    let devices = fleet.devices.len();
    #[allow(clippy::cast_precision_loss)]
    let rate = if seconds > 0.0 {
        devices as f64 / seconds
    } else {
        0.0
    };
    Ok(FleetSyncOutcome {
        server: server.url().to_owned(),
        devices,
        ok: devices - failures.len(),
        failed: failures.len(),
        seconds,
        syncs_per_second: rate,
        latency_ms: Latency {
            p50: percentile(&latencies, 0.50),
            p90: percentile(&latencies, 0.90),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0.0),
        },
        cpu_seconds: cpu_seconds() - cpu_before,
        declaration_changes: changes.into_inner(),
        reports_sent: reports.into_inner(),
        failures,
    })
}

impl Human for FleetInitOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let mix: Vec<String> = self
            .platforms
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        out.line(format!(
            "made {} devices in {} ({}) in {:.1} s",
            self.count,
            self.dir.display(),
            mix.join(", "),
            self.seconds
        ));
    }
}

impl Human for FleetSyncOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let f = self;
        out.line(format!(
            "synced {} of {} devices with {} in {:.2} s: {:.0} syncs/s",
            f.ok, f.devices, f.server, f.seconds, f.syncs_per_second
        ));
        let l = &f.latency_ms;
        out.line(format!(
            "latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50, l.p90, l.p99, l.max
        ));
        out.line(format!(
            "bsi CPU: {:.2} s; {} declaration change(s), {} report(s) sent",
            f.cpu_seconds, f.declaration_changes, f.reports_sent
        ));
        for fail in &f.failures {
            out.line(format!(
                "failed: {} ({}): {}",
                fail.device.display(),
                crate::human::clip(&fail.enrollment_id),
                fail.error
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_fleet() {
        let opts = FleetInitOptions {
            dir: PathBuf::new(),
            count: 50,
            platform: None,
            battery: (5, 100),
            supervised_percent: 80,
            seed: 7,
            trust: Vec::new(),
            concurrency: 1,
        };
        let a: Vec<_> = (0..50).map(|i| device_options(&opts, i).unwrap()).collect();
        let b: Vec<_> = (0..50).map(|i| device_options(&opts, i).unwrap()).collect();
        assert_eq!(
            a.iter()
                .map(|o| (o.platform, o.battery, o.enrollment_id.clone()))
                .collect::<Vec<_>>(),
            b.iter()
                .map(|o| (o.platform, o.battery, o.enrollment_id.clone()))
                .collect::<Vec<_>>()
        );
        let platforms: std::collections::BTreeSet<_> =
            a.iter().map(|o| o.platform.name()).collect();
        assert_eq!(platforms.len(), 3, "a mix of platforms");
        assert!(a.iter().all(|o| (5..=100).contains(&o.battery)));
        let ids: std::collections::BTreeSet<_> =
            a.iter().map(|o| o.enrollment_id.clone()).collect();
        assert_eq!(ids.len(), 50);
        assert_eq!(parse_spread("10-20").unwrap(), (10, 20));
        assert!(parse_spread("20-10").is_err() && parse_spread("x").is_err());
    }
}
