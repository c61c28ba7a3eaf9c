//! bsi as a DDM client against a real server (issue 16): KMFDDM (Go module
//! `github.com/jessepeterson/kmfddm`, v0.8.3), installed with `go install` into `target/kmfddm/`
//! on first use, started on a free port of 127.0.0.1 with a temporary `filekv` store, and judged
//! only by what its own API says the devices reported. Where Go or the module cannot be had the
//! KMFDDM tests print why and skip, unless `BSI_REQUIRE_KMFDDM=1` (set by `.ci/run`), which turns
//! the skip into a failure. The protocol error paths use a small local HTTP stub and always run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::harness::*;

const VERSION: &str = "v0.8.3";
const API_KEY: &str = "bsi-test-key";

/// The KMFDDM binary: `BSI_KMFDDM`, or `target/kmfddm/kmfddm` (installed there on first use).
fn kmfddm_binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| match std::env::var_os("BSI_KMFDDM") {
            Some(p) => Ok(PathBuf::from(p)),
            None => crate::mdm::installed(
                "kmfddm",
                &format!("github.com/jessepeterson/kmfddm/cmd/kmfddm@{VERSION}"),
            ),
        })
        .clone()
}

/// The server, or `None` (after saying why) when it cannot be had and CI does not require it.
fn server_or_skip(test: &str) -> Option<Kmfddm> {
    match kmfddm_binary() {
        Ok(bin) => Some(Kmfddm::start(&bin)),
        Err(why) if std::env::var_os("BSI_REQUIRE_KMFDDM").is_some() => {
            panic!("{test}: KMFDDM is required (BSI_REQUIRE_KMFDDM) but unavailable: {why}")
        }
        Err(why) => {
            eprintln!("skipped {test}: KMFDDM unavailable: {why}");
            None
        }
    }
}

/// A loopback port nothing listens on, never the same one twice in this test process.
///
/// The port is free when it is handed out, not held: a server started later binds it. Without
/// the record of ports already given, two calls before the first server has bound could get
/// the same port, and a second server would take the first one's place (a TLS front answering
/// the SCEP client with 400, as one CI run showed).
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running KMFDDM, stopped when dropped.
struct Kmfddm {
    child: Child,
    url: String,
    agent: ureq::Agent,
    _store: tempfile::TempDir,
}

impl Drop for Kmfddm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Deserialize)]
struct DeclarationStatus {
    identifier: String,
    active: bool,
    valid: String,
    #[serde(rename = "server-token")]
    server_token: String,
    current: bool,
    #[serde(default)]
    reasons: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StatusValue {
    path: String,
    value: String,
    timestamp: String,
}

impl Kmfddm {
    fn start(bin: &std::path::Path) -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "-api",
                API_KEY,
                "-listen",
                &format!("127.0.0.1:{port}"),
                "-storage",
                "filekv",
            ])
            .arg("-storage-dsn")
            .arg(store.path().join("db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let start = Instant::now();
        while agent.get(&format!("{url}/version")).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "KMFDDM did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url,
            agent,
            _store: store,
        }
    }

    /// Calls the admin API (HTTP Basic as `kmfddm`, from the URL's user part, which ureq
    /// sends as the `Authorization` header) and returns the body of a successful answer.
    fn api(&self, method: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
        let url = format!(
            "{}/v1{path}",
            self.url
                .replace("http://", &format!("http://kmfddm:{API_KEY}@"))
        );
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, Some(b)) => self.agent.put(&url).send(b),
            (_, None) => self.agent.put(&url).send_empty(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let bytes = response.body_mut().read_to_vec().unwrap();
        // 304: KMFDDM's answer when a set already holds what is put in it.
        assert!(
            status < 400,
            "{method} /v1{path}: HTTP {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes
    }

    /// Uploads a declaration and puts it in `set`.
    fn declare(&self, set: &str, kind: &str, id: &str, payload: Value) {
        let d = json!({"Type": kind, "Identifier": id, "Payload": payload});
        self.api(
            "PUT",
            "/declarations",
            Some(&serde_json::to_vec(&d).unwrap()),
        );
        self.api(
            "PUT",
            &format!("/set-declarations/{set}?declaration={id}"),
            None,
        );
    }

    fn undeclare(&self, set: &str, id: &str) {
        self.api(
            "DELETE",
            &format!("/set-declarations/{set}?declaration={id}"),
            None,
        );
    }

    fn enroll(&self, enrollment: &str, set: &str) {
        self.api(
            "PUT",
            &format!("/enrollment-sets/{enrollment}?set={set}"),
            None,
        );
    }

    /// What the server keeps for `enrollment` at `path` (`/declaration-status`, ...).
    fn per_enrollment<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        enrollment: &str,
    ) -> Vec<T> {
        let body = self.api("GET", &format!("{path}/{enrollment}"), None);
        let mut all: std::collections::BTreeMap<String, Vec<T>> =
            serde_json::from_slice(&body).unwrap();
        all.remove(enrollment).unwrap_or_default()
    }

    fn declaration_status(&self, enrollment: &str) -> Vec<DeclarationStatus> {
        self.per_enrollment("/declaration-status", enrollment)
    }

    /// The newest value the server saw at `path`.
    fn status_value(&self, enrollment: &str, path: &str) -> Option<String> {
        let mut values: Vec<StatusValue> = self
            .per_enrollment::<StatusValue>("/status-values", enrollment)
            .into_iter()
            .filter(|v| v.path == path)
            .collect();
        values.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        values.pop().map(|v| v.value)
    }
}

const SETTINGS: &str = "com.apple.configuration.softwareupdate.settings";
const ENFORCE: &str = "com.apple.configuration.softwareupdate.enforcement.specific";
const ACTIVATION: &str = "com.apple.activation.simple";
const SUBSCRIPTIONS: &str = "com.apple.configuration.management.status-subscriptions";

/// Subscribes, as a server does, to the items these tests read back from the server.
fn subscriptions() -> serde_json::Value {
    let items = [
        "device.operating-system.version",
        "device.operating-system.supplemental.build-version",
        "device.operating-system.supplemental.extra-version",
        "softwareupdate.install-state",
        "softwareupdate.pending-version",
        "softwareupdate.install-reason",
        "softwareupdate.failure-reason",
    ];
    json!({"StatusItems": items.iter().map(|i| json!({"Name": i})).collect::<Vec<_>>()})
}

fn by_id(list: &[DeclarationStatus]) -> std::collections::BTreeMap<&str, &DeclarationStatus> {
    list.iter().map(|d| (d.identifier.as_str(), d)).collect()
}

#[test]
fn a_device_syncs_and_the_server_sees_what_a_real_device_reports() {
    let Some(server) =
        server_or_skip("a_device_syncs_and_the_server_sees_what_a_real_device_reports")
    else {
        return;
    };
    server.declare(
        "bsi",
        SETTINGS,
        "settings",
        json!({"RapidSecurityResponse": {"EnableRollback": false}}),
    );
    server.declare(
        "bsi",
        ENFORCE,
        "enforce",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T12:00:00"}),
    );
    server.declare(
        "bsi",
        SETTINGS,
        "broken",
        json!({"RapidSecurityResponse": {"Enable": "no"}}),
    );
    server.declare("bsi", SUBSCRIPTIONS, "subscriptions", subscriptions());
    server.declare(
        "bsi",
        ACTIVATION,
        "activation",
        json!({"StandardConfigurations": ["settings", "enforce", "broken", "subscriptions"]}),
    );
    server.enroll("E-1", "bsi");
    let d = Device::with(&["--supervised", "--enrollment-id", "E-1"]);
    assert_eq!(d.status().device.enrollment_id, "E-1");
    let from = d.dir.path().join("bundles");
    std::fs::create_dir(&from).unwrap();
    std::fs::copy(bundle("macos-26.3.1-a.bsi.tar"), from.join("a.bsi.tar")).unwrap();

    // A dry run fetches and says what would change, and changes nothing.
    let before = d.tree();
    d.bsi(["sync", "--server", &server.url, "--dry-run"])
        .ok()
        .stdout_is(
            &[],
            &format!(
                "synced with {} as E-1 (declarations token [..])\n\
                 \x20 activation would be added (ServerToken [..])\n\
                 \x20 broken would be added (ServerToken [..])\n\
                 \x20 enforce would be added (ServerToken [..])\n\
                 \x20 settings would be added (ServerToken [..])\n\
                 \x20 subscriptions would be added (ServerToken [..])\n\
                 status report would be sent: full, 2 item(s)\n",
                server.url
            ),
        );
    before.assert_same(&d.tree());
    assert!(server.declaration_status("E-1").is_empty());

    // The first sync: every declaration current; the valid ones valid, the broken one invalid.
    let out = d
        .bsi(["sync", "--server", &server.url, "--json"])
        .ok()
        .json();
    assert_eq!(out["report"]["full"], true);
    assert_eq!(out["report"]["sent"], true);
    let seen = server.declaration_status("E-1");
    let all = by_id(&seen);
    assert_eq!(all.len(), 5, "{seen:?}");
    assert!(seen.iter().all(|s| s.current), "{seen:?}");
    for id in ["settings", "enforce", "activation", "subscriptions"] {
        assert_eq!(
            (all[id].active, all[id].valid.as_str()),
            (true, "valid"),
            "{id}"
        );
    }
    assert_eq!(all["broken"].valid, "invalid");
    let reasons = all["broken"].reasons.as_ref().unwrap().to_string();
    assert!(
        reasons.contains("Error.ConfigurationIsInvalid"),
        "{reasons}"
    );
    assert_eq!(
        server
            .status_value(
                "E-1",
                ".StatusItems.device.operating-system.supplemental.extra-version"
            )
            .as_deref(),
        Some("")
    );
    // Nothing changed: nothing to send. KMFDDM may or may not compute a new declarations
    // token for the same set; either way nothing is fetched.
    let again = d.bsi(["sync", "--server", &server.url]).ok().stdout();
    let said = |declarations: &str| {
        format!(
            "synced with {} as E-1 (declarations token [..])\n\
             declarations: {declarations}\n\
             \x20 broken: invalid (Error.ConfigurationIsInvalid): The configuration is not valid: `RapidSecurityResponse.Enable` must be a boolean, found a string\n\
             status report: nothing changed since the last one; none sent\n",
            server.url
        )
    };
    assert!(
        crate::harness::same(&said("unchanged (same token)"), &again)
            || crate::harness::same(&said("none added, replaced or removed"), &again),
        "{again}"
    );

    // The background cycle before the deadline prepares the response; after it, installs it.
    d.bsi_at(
        "2026-12-01T11:00:00Z",
        [
            "sync".as_ref(),
            "--server".as_ref(),
            server.url.as_ref(),
            "--then-auto".as_ref(),
            "--from".as_ref(),
            from.as_os_str(),
        ],
    )
    .ok()
    .stdout_has("status report sent: incremental");
    assert_eq!(d.status().staged.as_ref().unwrap().version, "26.3.1 (a)");
    d.bsi_at(
        "2026-12-01T12:30:00Z",
        [
            "sync".as_ref(),
            "--server".as_ref(),
            server.url.as_ref(),
            "--then-auto".as_ref(),
            "--from".as_ref(),
            from.as_os_str(),
        ],
    )
    .ok()
    .stdout_has("restarting into 26.3.1 (a)");
    assert_eq!(
        server
            .status_value(
                "E-1",
                ".StatusItems.device.operating-system.supplemental.extra-version"
            )
            .as_deref(),
        Some("(a)")
    );
    assert_eq!(
        server
            .status_value(
                "E-1",
                ".StatusItems.device.operating-system.supplemental.build-version"
            )
            .as_deref(),
        Some("25D771280a")
    );

    // A declaration changed on the server is picked up; one removed is dropped.
    server.declare(
        "bsi",
        SETTINGS,
        "settings",
        json!({"RapidSecurityResponse": {"EnableRollback": true}}),
    );
    server.undeclare("bsi", "broken");
    server.declare(
        "bsi",
        ACTIVATION,
        "activation",
        json!({"StandardConfigurations": ["settings", "enforce", "subscriptions"]}),
    );
    d.bsi(["sync", "--server", &server.url]).ok().stdout_is(
        &[],
        &format!(
            "synced with {} as E-1 (declarations token [..])\n\
                 \x20 activation replaced (ServerToken [..])\n\
                 \x20 settings replaced (ServerToken [..])\n\
                 \x20 broken removed (ServerToken [..])\n\
                 status report sent: incremental, 1 item(s)\n",
            server.url
        ),
    );
    let listed = d.bsi(["policy", "list"]).ok().stdout();
    assert!(!listed.contains("broken"), "{listed}");
    assert!(
        listed.contains("activation  com.apple.activation.simple"),
        "{listed}"
    );
    let seen = server.declaration_status("E-1");
    let all = by_id(&seen);
    assert!(all["settings"].current, "{seen:?}");
    assert!(!all.contains_key("broken"), "{seen:?}");
    assert!(d.status().policy.rollback_allowed);
    // The history says what each sync did.
    d.bsi(["history"]).ok().stdout_has("sync");
    let _ = all["settings"].server_token.len();
}

#[test]
fn a_fleet_syncs_in_parallel_and_converges() {
    let Some(server) = server_or_skip("a_fleet_syncs_in_parallel_and_converges") else {
        return;
    };
    server.declare("bsi", SETTINGS, "settings", json!({}));
    server.declare(
        "bsi",
        ENFORCE,
        "enforce",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    server.declare("bsi", SUBSCRIPTIONS, "subscriptions", subscriptions());
    server.declare(
        "bsi",
        ACTIVATION,
        "activation",
        json!({"StandardConfigurations": ["settings", "enforce", "subscriptions"]}),
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let made = bsi([
        "fleet".as_ref(),
        "init".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--count".as_ref(),
        "12".as_ref(),
        "--platform".as_ref(),
        "macOS".as_ref(),
        "--battery-spread".as_ref(),
        "50-100".as_ref(),
        "--trust".as_ref(),
        test_pub().as_os_str(),
        "--seed".as_ref(),
        "42".as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .json();
    assert_eq!(made["count"], 12);
    let fleet: Value =
        serde_json::from_slice(&std::fs::read(dir.join("fleet.json")).unwrap()).unwrap();
    let ids: Vec<String> = fleet["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["enrollment_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        server.enroll(id, "bsi");
    }
    let from = tmp.path().join("bundles");
    std::fs::create_dir(&from).unwrap();
    std::fs::copy(bundle("macos-26.3.1-a.bsi.tar"), from.join("a.bsi.tar")).unwrap();
    let out = bsi([
        "--now".as_ref(),
        "2026-12-01T10:00:00Z".as_ref(),
        "fleet".as_ref(),
        "sync".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--server".as_ref(),
        server.url.as_ref(),
        "--concurrency".as_ref(),
        "4".as_ref(),
        "--then-auto".as_ref(),
        "--from".as_ref(),
        from.as_os_str(),
        "--json".as_ref(),
    ])
    .ok()
    .json();
    assert_eq!(
        (out["ok"].as_u64(), out["failed"].as_u64()),
        (Some(12), Some(0)),
        "{out:#}"
    );
    assert!(out["syncs_per_second"].as_f64().unwrap() > 0.0);
    assert!(
        out["latency_ms"]["p99"].as_f64().unwrap() >= out["latency_ms"]["p50"].as_f64().unwrap()
    );
    for id in &ids {
        let seen = server.declaration_status(id);
        assert_eq!(seen.len(), 4, "{id}: {seen:?}");
        assert!(
            seen.iter().all(|s| s.current && s.valid == "valid"),
            "{id}: {seen:?}"
        );
        assert_eq!(
            server
                .status_value(
                    id,
                    ".StatusItems.device.operating-system.supplemental.extra-version"
                )
                .as_deref(),
            Some("(a)"),
            "{id} installed the enforced response"
        );
    }
    // A second pass: every device up to date, nothing to fetch.
    let again = bsi([
        "fleet".as_ref(),
        "sync".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--server".as_ref(),
        server.url.as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .json();
    assert_eq!(again["declaration_changes"], 0);
}

/// A tiny HTTP server answering every request with `status` and `body`, counting requests.
fn stub(
    status: u16,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer(stream, status, body);
        }
    });
    (url, count)
}

fn answer(mut stream: TcpStream, status: u16, body: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut sink = vec![0u8; length];
    let _ = reader.read_exact(&mut sink);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn server_failures_say_what_failed_and_change_nothing() {
    let d = Device::with(&["--supervised"]);
    let before = d.tree();
    // Nothing listening.
    let url = format!("http://127.0.0.1:{}", free_port());
    d.bsi(["sync", "--server", &url, "--timeout", "2"])
        .refused(1, "DDM server: GET")
        .stderr_is(
            &[],
            &format!("error: DDM server: GET {url}/tokens: cannot connect (io: Connection refused (os error 111)) (3 attempts)\nhint: check that the server runs at {url} and answers, then try again\n"),
        );
    // Not a DDM server.
    let (url, _) = stub(200, "<html>hello</html>");
    d.bsi(["sync", "--server", &url])
        .refused(1, "is not a TokensResponse")
        .stderr_is(
            &[],
            &format!("error: DDM server: GET {url}/tokens: the answer is not a TokensResponse (expected value at line 1 column 1)\nhint: is --server a DDM server? It should answer as Apple's protocol says\n"),
        );
    // A 404: not retried.
    let (url, count) = stub(404, "");
    d.bsi(["sync", "--server", &url])
        .refused(1, "HTTP 404")
        .stderr_is(
            &[],
            &format!("error: DDM server: GET {url}/tokens: HTTP 404 Not Found\nhint: check the --server URL: it is the base where the server answers GET /tokens\n"),
        );
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a 404 is not retried"
    );
    // A 500: retried, bounded.
    let (url, count) = stub(500, "");
    d.bsi(["sync", "--server", &url])
        .refused(1, "HTTP 500")
        .stderr_is(
            &[],
            &format!("error: DDM server: GET {url}/tokens: HTTP 500 Internal Server Error (3 attempts)\nhint: the server at {url} answered every attempt with an error: check its log, then try again\n"),
        );
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "three attempts"
    );
    // JSON errors for scripts.
    let run = d.bsi(["--json", "sync", "--server", &url]);
    let e: Value = serde_json::from_str(run.stderr().trim()).unwrap();
    assert_eq!(
        (e["kind"].as_str(), e["exit_code"].as_u64()),
        (Some("server"), Some(1))
    );
    // Usage errors.
    d.bsi(["sync", "--server", "ftp://x"])
        .refused(2, "not an http:// or https:// URL")
        .stderr_is(
            &[],
            "error: --server ftp://x is not an http:// or https:// URL\nhint: pass the base URL of the server's device endpoints, e.g. --server http://127.0.0.1:9002\n",
        );
    d.bsi(["sync", "--server", &url, "--enrollment-id", "a b"])
        .refused(2, "not an enrollment identifier").stderr_is(&[], "error: --enrollment-id `a b` is not an enrollment identifier\nhint: use 1 to 256 printable ASCII characters without spaces, e.g. a UUID\n");
    d.bsi(["sync", "--server", &url, "--then-auto"]).exit(2);
    // The device is as it was (the history records the failed syncs).
    before.assert_same(&d.tree());
    d.bsi(["verify"]).ok();
}
