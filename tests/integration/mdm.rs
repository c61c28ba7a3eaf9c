//! bsi as an MDM-enrolled device (issue 26), judged only by what real servers saw: a SCEP CA
//! (`github.com/micromdm/scep/v2/cmd/scepserver`, v2.3.0) issues the identity, `NanoMDM`
//! (`github.com/micromdm/nanomdm/cmd/nanomdm`, v0.9.0) authenticates every message against that
//! CA and posts each check-in and command result to a webhook listener here, and `KMFDDM` (v0.8.3)
//! sits behind `NanoMDM`, queueing a `DeclarativeManagement` command when declarations are
//! assigned. The servers are installed with `go install` into `target/mdm/` on first use and run
//! on free ports of 127.0.0.1 with temporary storage. Without Go the tests print why and skip,
//! unless `BSI_REQUIRE_MDM=1` (set by `.ci/run`). The hostile-server tests use the local stub and
//! always run.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use plist::{Dictionary, Value as Plist};
use serde::Deserialize;
use serde_json::json;

use crate::harness::*;
use crate::kmfddm::free_port;
use crate::stub::{self, Reply};

const NANOMDM: &str = "github.com/micromdm/nanomdm/cmd/nanomdm@v0.9.0";
const SCEPSERVER: &str = "github.com/micromdm/scep/v2/cmd/scepserver@v2.3.0";
const KMFDDM: &str = "github.com/jessepeterson/kmfddm/cmd/kmfddm@v0.8.3";
const CHALLENGE: &str = "bsi-challenge";
const NANO_KEY: &str = "bsi-nano-key";
const DDM_KEY: &str = "bsi-ddm-key";
const CERT_HEADER: &str = "X-Device-Identity";
const TOPIC: &str = "com.apple.mgmt.External.bsi-test";

/// The hint of every refused enrollment profile.
const PROFILE_HINT: &str = "hint: give the .mobileconfig the MDM server hands out (a com.apple.mdm payload and a SCEP or PKCS #12 identity)\n";

/// `go install`s `module` into `target/<dir>` once; the binary's path.
pub(crate) fn installed(dir: &str, module: &str) -> Result<PathBuf, String> {
    let name = module
        .rsplit('/')
        .next()
        .and_then(|n| n.split('@').next())
        .unwrap_or_default();
    let target = repo().join("target").join(dir);
    let bin = target.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    let out = Command::new("go")
        .args(["install", module])
        .env("GOBIN", &target)
        .output()
        .map_err(|e| format!("no Go toolchain (`go`: {e})"))?;
    if !out.status.success() || !bin.exists() {
        return Err(format!(
            "`go install {module}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(bin)
}

struct Binaries {
    scep: PathBuf,
    nanomdm: PathBuf,
    kmfddm: PathBuf,
    tlsfront: PathBuf,
}

/// Builds `tests/tools/tlsfront` (standard library only) into `target/mdm/`.
fn tlsfront() -> Result<PathBuf, String> {
    let bin = repo().join("target/mdm/tlsfront");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg("main.go")
        .current_dir(repo().join("tests/tools/tlsfront"))
        .output()
        .map_err(|e| format!("no Go toolchain (`go`: {e})"))?;
    if !out.status.success() {
        return Err(format!(
            "building tests/tools/tlsfront failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(bin)
}

fn binaries() -> Result<&'static Binaries, String> {
    static ALL: OnceLock<Result<Binaries, String>> = OnceLock::new();
    ALL.get_or_init(|| {
        Ok(Binaries {
            scep: installed("mdm", SCEPSERVER)?,
            nanomdm: installed("mdm", NANOMDM)?,
            kmfddm: installed("kmfddm", KMFDDM)?,
            tlsfront: tlsfront()?,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The lab, or `None` (after saying why) when the servers cannot be had and CI does not
/// require them.
fn lab_or_skip(test: &str) -> Option<Lab> {
    lab_with(test, None)
}

/// The lab with a TLS endpoint in front of `NanoMDM`; with `cert_header`, `NanoMDM` takes the
/// device's identity from the TLS client certificate the front passes on.
fn lab_with(test: &str, front: Option<bool>) -> Option<Lab> {
    match binaries() {
        Ok(b) => Some(Lab::start(b, front)),
        Err(why) if std::env::var_os("BSI_REQUIRE_MDM").is_some() => {
            panic!("{test}: the MDM servers are required (BSI_REQUIRE_MDM) but unavailable: {why}")
        }
        Err(why) => {
            eprintln!("skipped {test}: the MDM servers are unavailable: {why}");
            None
        }
    }
}

fn wait_for(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// One webhook event from `NanoMDM`: a check-in (`mdm.Authenticate`, ...) or a command result
/// (`mdm.Connect`), with the device's message as it sent it.
#[derive(Clone, Debug)]
struct Event {
    topic: String,
    udid: String,
    status: Option<String>,
    message: Dictionary,
}

impl Event {
    /// The first `ErrorChain` entry's `USEnglishDescription`, for an `Error` answer.
    fn error(&self) -> Option<String> {
        self.message
            .get("ErrorChain")
            .and_then(Plist::as_array)
            .and_then(|c| c.first())
            .and_then(Plist::as_dictionary)
            .and_then(|e| text(e, "USEnglishDescription"))
            .map(str::to_owned)
    }
}

#[derive(Deserialize)]
struct EventJson {
    topic: String,
    checkin_event: Option<Inner>,
    acknowledge_event: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    udid: Option<String>,
    status: Option<String>,
    raw_payload: String,
}

fn event(body: &[u8]) -> Event {
    let e: EventJson = serde_json::from_slice(body).unwrap();
    let inner = e.checkin_event.or(e.acknowledge_event).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&inner.raw_payload)
        .unwrap();
    Event {
        topic: e.topic,
        udid: inner.udid.unwrap_or_default(),
        status: inner.status,
        message: plist::from_bytes(&raw).unwrap(),
    }
}

/// SCEP, `NanoMDM` and `KMFDDM`, wired as in production, stopped when dropped.
struct Lab {
    _children: Children,
    dir: tempfile::TempDir,
    scep_url: String,
    mdm_url: String,
    ddm_url: String,
    /// The TLS front's base URL, when there is one.
    tls_url: Option<String>,
    events: Arc<Mutex<Vec<Event>>>,
    /// The request type of each command queued, by `CommandUUID`.
    queued: Mutex<std::collections::BTreeMap<String, String>>,
    agent: ureq::Agent,
}

/// The servers' processes, killed when dropped (also when a test panics while starting them).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(bin: &Path, args: &[&str]) -> Child {
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Lab {
    fn start(b: &Binaries, front: Option<bool>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let depot = dir.path().join("depot");
        let depot_s = depot.display().to_string();
        let init = Command::new(&b.scep)
            .args(["ca", "-init", "-keySize", "2048", "-depot", &depot_s])
            .output()
            .unwrap();
        assert!(init.status.success(), "scepserver ca -init: {init:?}");
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let webhook = stub::serve(move |r| {
            seen.lock().unwrap().push(event(&r.body));
            Reply::Now(200, Vec::new())
        });
        let (scep, mdm, ddm) = (free_port(), free_port(), free_port());
        let mut children = Children(vec![spawn(
            &b.scep,
            &[
                "-depot",
                &depot_s,
                "-port",
                &scep.to_string(),
                "-challenge",
                CHALLENGE,
            ],
        )]);
        let store = dir.path().join("ddm").display().to_string();
        children.0.push(spawn(
            &b.kmfddm,
            &[
                "-api",
                DDM_KEY,
                "-listen",
                &format!("127.0.0.1:{ddm}"),
                "-storage",
                "filekv",
                "-storage-dsn",
                &store,
                "-enqueue",
                &format!("http://127.0.0.1:{mdm}/v1/enqueue/"),
                "-enqueue-key",
                NANO_KEY,
            ],
        ));
        children.0.push(spawn(
            &b.nanomdm,
            &[
                "-ca",
                &depot.join("ca.pem").display().to_string(),
                "-api",
                NANO_KEY,
                "-listen",
                &format!("127.0.0.1:{mdm}"),
                "-storage",
                "inmem",
                "-storage-dsn",
                "",
                "-dm",
                &format!("http://127.0.0.1:{ddm}/"),
                "-webhook-url",
                &format!("{webhook}/webhook"),
            ]
            .into_iter()
            .chain(
                front
                    .filter(|h| *h)
                    .map(|_| ["-cert-header", CERT_HEADER])
                    .into_iter()
                    .flatten(),
            )
            .collect::<Vec<_>>(),
        ));
        let mut tls_url = None;
        if let Some(header) = front {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let upstream = format!("http://127.0.0.1:{mdm}");
            let ca = dir.path().join("front-ca.pem").display().to_string();
            let mut args = vec!["-listen", &listen, "-upstream", &upstream, "-ca-out", &ca];
            if header {
                args.extend(["-cert-header", CERT_HEADER]);
            }
            children.0.push(spawn(&b.tlsfront, &args));
            wait_for(port, "tlsfront");
            tls_url = Some(format!("https://127.0.0.1:{port}"));
        }
        for (port, what) in [(scep, "scepserver"), (ddm, "KMFDDM"), (mdm, "NanoMDM")] {
            wait_for(port, what);
        }
        // A server that could not bind its port has exited, and whatever answers there is not it.
        for c in &mut children.0 {
            assert!(
                c.try_wait().unwrap().is_none(),
                "a lab server exited at start: {c:?}"
            );
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        Self {
            _children: children,
            dir,
            scep_url: format!("http://127.0.0.1:{scep}/scep"),
            mdm_url: format!("http://127.0.0.1:{mdm}"),
            ddm_url: format!("http://127.0.0.1:{ddm}"),
            tls_url,
            events,
            queued: Mutex::default(),
            agent,
        }
    }

    /// An enrollment profile for this lab, as an MDM vendor hands it out, written to a file.
    fn profile(&self, name: &str, challenge: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            profile_xml(
                &self.scep_url,
                challenge,
                &format!("{}/mdm", self.mdm_url),
                "",
            ),
        )
        .unwrap();
        path
    }

    /// The lab's enrollment profile with `AccessRights` `rights` (the others have 8191: all).
    fn profile_with_rights(&self, rights: &str) -> PathBuf {
        let path = self.profile(&format!("rights-{rights}.mobileconfig"), CHALLENGE);
        let xml = std::fs::read_to_string(&path).unwrap();
        let limited = xml.replace(
            "<integer>8191</integer>",
            &format!("<integer>{rights}</integer>"),
        );
        std::fs::write(&path, limited).unwrap();
        path
    }

    /// Queues a command for `udid` through `NanoMDM`'s API (no push: there is no `APNs` here).
    fn enqueue(&self, udid: &str, command_uuid: &str, request_type: &str, body: Dictionary) {
        self.queued
            .lock()
            .unwrap()
            .insert(command_uuid.to_owned(), request_type.to_owned());
        let mut command = body;
        command.insert("RequestType".into(), request_type.into());
        let mut d = Dictionary::new();
        d.insert("CommandUUID".into(), command_uuid.into());
        d.insert("Command".into(), Plist::Dictionary(command));
        let mut body = Vec::new();
        plist::to_writer_xml(&mut body, &Plist::Dictionary(d)).unwrap();
        let url = format!(
            "{}/v1/enqueue/{udid}?nopush=1",
            self.mdm_url
                .replace("http://", &format!("http://nanomdm:{NANO_KEY}@"))
        );
        let status = self.agent.put(&url).send(&body[..]).unwrap().status();
        assert!(
            status.as_u16() < 300,
            "enqueue {request_type}: HTTP {status}"
        );
    }

    /// Every message the devices sent, checked against Apple's schema for it: the check-ins,
    /// and the answers to the commands queued here.
    fn assert_apple(&self, platform: &str) {
        let queued = self.queued.lock().unwrap().clone();
        let mut errors = Vec::new();
        let mut checked = 0;
        for e in self.events.lock().unwrap().iter() {
            let file = match e.topic.as_str() {
                "mdm.Authenticate" => "checkin/authenticate.yaml",
                "mdm.TokenUpdate" => "checkin/tokenupdate.yaml",
                "mdm.CheckOut" => "checkin/checkout.yaml",
                "mdm.DeclarativeManagement" => "checkin/declarativemanagement.yaml",
                "mdm.Connect" if e.status.as_deref() == Some("Acknowledged") => {
                    let uuid = text(&e.message, "CommandUUID").unwrap_or_default();
                    match queued.get(uuid).map(String::as_str) {
                        Some("DeviceInformation") => "commands/information.device.yaml",
                        Some("ProfileList") => "commands/profile.list.yaml",
                        Some("SecurityInfo") => "commands/information.security.yaml",
                        Some("AvailableOSUpdates") => "commands/system.update.available.yaml",
                        Some("ScheduleOSUpdate") => "commands/system.update.schedule.yaml",
                        Some("OSUpdateStatus") => "commands/system.update.status.yaml",
                        _ => continue,
                    }
                }
                _ => continue,
            };
            checked += 1;
            errors.extend(crate::apple_schema::validate_mdm(
                file, platform, &e.message,
            ));
        }
        assert!(checked > 0, "no message to check");
        assert!(errors.is_empty(), "not as Apple's schema says: {errors:#?}");
    }

    /// The events seen so far with `topic`.
    fn events(&self, topic: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.topic == topic)
            .cloned()
            .collect()
    }

    /// The device's answer to the command `uuid`, as `NanoMDM`'s webhook reported it.
    fn answer(&self, uuid: &str) -> Event {
        let start = Instant::now();
        loop {
            if let Some(e) = self
                .events("mdm.Connect")
                .into_iter()
                .find(|e| e.message.get("CommandUUID").and_then(Plist::as_string) == Some(uuid))
            {
                return e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no answer to {uuid}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Calls `KMFDDM`'s admin API.
    fn ddm(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Vec<u8> {
        let url = format!(
            "{}/v1{path}",
            self.ddm_url
                .replace("http://", &format!("http://kmfddm:{DDM_KEY}@"))
        );
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let mut r = match (method, bytes) {
            ("GET", _) => self.agent.get(&url).call(),
            (_, Some(b)) => self.agent.put(&url).send(&b[..]),
            (_, None) => self.agent.put(&url).send_empty(),
        }
        .unwrap();
        let status = r.status().as_u16();
        let out = r.body_mut().read_to_vec().unwrap();
        assert!(
            status < 400,
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&out)
        );
        out
    }
}

/// An enrollment profile: a SCEP payload and an MDM payload naming it as the identity.
fn profile_xml(scep_url: &str, challenge: &str, server_url: &str, mdm_extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.bsi.enroll</string>
<key>PayloadUUID</key><string>5B3C7E0A-1111-4A57-9C1B-0D8E6F2A9B01</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>bsi test MDM</string>
<key>PayloadContent</key><array>
<dict>
<key>PayloadType</key><string>com.apple.security.scep</string>
<key>PayloadIdentifier</key><string>com.example.bsi.scep</string>
<key>PayloadUUID</key><string>5B3C7E0A-2222-4A57-9C1B-0D8E6F2A9B02</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadContent</key><dict>
<key>URL</key><string>{scep_url}</string>
<key>Challenge</key><string>{challenge}</string>
<key>Keysize</key><integer>1024</integer>
<key>KeyType</key><string>RSA</string>
<key>Subject</key><array><array><array><string>O</string><string>bsi test</string></array></array><array><array><string>CN</string><string>%UDID%</string></array></array></array>
</dict></dict>
<dict>
<key>PayloadType</key><string>com.apple.mdm</string>
<key>PayloadIdentifier</key><string>com.example.bsi.mdm</string>
<key>PayloadUUID</key><string>5B3C7E0A-3333-4A57-9C1B-0D8E6F2A9B03</string>
<key>PayloadVersion</key><integer>1</integer>
<key>ServerURL</key><string>{server_url}</string>
<key>Topic</key><string>{TOPIC}</string>
<key>IdentityCertificateUUID</key><string>5B3C7E0A-2222-4A57-9C1B-0D8E6F2A9B02</string>
<key>SignMessage</key><true/>
<key>AccessRights</key><integer>8191</integer>{mdm_extra}
</dict></array></dict></plist>"#
    )
}

/// `bsi mdm enroll --profile PROFILE EXTRA...` on `d`.
fn enroll(d: &Device, profile: &Path, extra: &[&std::ffi::OsStr]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "mdm".as_ref(),
        "enroll".as_ref(),
        "--profile".as_ref(),
        profile.as_os_str(),
    ];
    args.extend_from_slice(extra);
    d.bsi(args)
}

fn text<'a>(d: &'a Dictionary, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Plist::as_string)
}

fn queries(list: &[&str]) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert(
        "Queries".into(),
        Plist::Array(list.iter().map(|q| Plist::from(*q)).collect()),
    );
    d
}

fn bundles_dir(d: &Device) -> PathBuf {
    let from = d.dir.path().join("bundles");
    std::fs::create_dir_all(&from).unwrap();
    std::fs::copy(bundle("macos-26.3.1-a.bsi.tar"), from.join("a.bsi.tar")).unwrap();
    from
}

#[test]
fn a_device_enrolls_in_nanomdm_answers_commands_and_syncs_through_it() {
    let Some(lab) =
        lab_or_skip("a_device_enrolls_in_nanomdm_answers_commands_and_syncs_through_it")
    else {
        return;
    };
    let d = Device::with(&["--supervised"]);
    let profile = lab.profile("enroll.mobileconfig", CHALLENGE);

    // A dry run reads the profile, contacts nobody and changes nothing.
    let before = d.tree();
    enroll(&d, &profile, &["--dry-run".as_ref()])
        .ok()
        .stdout_is(
            &[],
            &format!(
                "would enroll as [..] in {}/mdm (topic {TOPIC}), the identity from scep; nothing was sent\n",
                lab.mdm_url
            ),
        );
    before.assert_same(&d.tree());
    assert!(lab.events("mdm.Authenticate").is_empty());

    // Enrollment: SCEP identity, then Authenticate and TokenUpdate, accepted by NanoMDM.
    enroll(&d, &profile, &[]).ok().stdout_is(
        &[],
        &format!(
            "enrolled as [..] in {}/mdm (topic {TOPIC})\n\
             identity: CN=[..],O=bsi test issued by CN=MICROMDM SCEP CA,OU=SCEP CA,O=scep-ca,C=US (scep), valid until [..]\n\
             messages are signed (Mdm-Signature); next: `bsi mdm poll` answers the server's commands\n",
            lab.mdm_url
        ),
    );
    let mdm = d.status().mdm.expect("status shows the enrollment");
    assert_eq!(mdm.topic, TOPIC);
    assert_eq!(mdm.server_url, format!("{}/mdm", lab.mdm_url));
    assert!(
        mdm.identity.subject.contains(&format!("CN={}", mdm.udid)),
        "{mdm:?}"
    );
    assert_eq!(mdm.identity.source, "scep");
    let udid = mdm.udid.clone();
    let auth = lab.events("mdm.Authenticate");
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert_eq!(auth[0].udid, udid);
    for key in [
        "UDID",
        "SerialNumber",
        "Model",
        "ModelName",
        "ProductName",
        "OSVersion",
        "BuildVersion",
        "DeviceName",
        "Topic",
    ] {
        assert!(
            text(&auth[0].message, key).is_some_and(|v| !v.is_empty()),
            "Authenticate lacks {key}: {:?}",
            auth[0].message
        );
    }
    assert_eq!(text(&auth[0].message, "OSVersion"), Some("26.3.1"));
    let token = lab.events("mdm.TokenUpdate");
    assert_eq!(token.len(), 1);
    for key in ["Token", "PushMagic", "Topic", "UDID"] {
        assert!(
            token[0].message.contains_key(key),
            "TokenUpdate lacks {key}"
        );
    }
    // The key stays private.
    let key = d.path("private/var/db/bsi/mdm/identity.pem");
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let shown = d.bsi(["--json", "status"]).ok().stdout();
    assert!(!shown.contains("PRIVATE KEY"), "status prints the key");

    // DeviceInformation: only what was asked, before any response is installed.
    let asked = [
        "UDID",
        "OSVersion",
        "BuildVersion",
        "SupplementalBuildVersion",
        "SupplementalOSVersionExtra",
        "IsSupervised",
        "ProductName",
        "DeviceCapacity",
        "AvailableDeviceCapacity",
    ];
    lab.enqueue(&udid, "info-1", "DeviceInformation", queries(&asked));
    d.bsi(["mdm", "poll"]).ok().stdout_is(
        &[],
        &format!(
            "polled {}/mdm: 1 command(s) answered\n  DeviceInformation info-1: Acknowledged\n",
            lab.mdm_url
        ),
    );
    let a = lab.answer("info-1");
    assert_eq!(a.status.as_deref(), Some("Acknowledged"));
    let r = a
        .message
        .get("QueryResponses")
        .and_then(Plist::as_dictionary)
        .unwrap();
    assert_eq!(text(r, "UDID"), Some(udid.as_str()));
    assert_eq!(text(r, "OSVersion"), Some("26.3.1"));
    assert_eq!(
        r.get("IsSupervised").and_then(Plist::as_boolean),
        Some(true)
    );
    assert!(!r.contains_key("SupplementalOSVersionExtra"), "{r:?}");
    // The capacities are the device volume's, in GB.
    let gb = |key: &str| r.get(key).and_then(Plist::as_real).unwrap();
    let volume = rustix::fs::statvfs(d.path("")).unwrap();
    #[allow(clippy::cast_precision_loss)]
    let total = (volume.f_blocks * volume.f_frsize) as f64 / 1e9;
    assert!((gb("DeviceCapacity") - total).abs() < 0.01, "{r:?}");
    assert!(gb("AvailableDeviceCapacity") > 0.0 && gb("AvailableDeviceCapacity") <= total);
    assert!(
        !r.contains_key("SerialNumber"),
        "answered what was not asked: {r:?}"
    );

    // Anything else: Error with an ErrorChain, as a device answers an unknown request type.
    lab.enqueue(&udid, "nonsense-1", "MakeCoffee", Dictionary::new());
    d.bsi(["mdm", "poll"]).ok();
    let a = lab.answer("nonsense-1");
    assert_eq!(a.status.as_deref(), Some("Error"));
    let chain = a
        .message
        .get("ErrorChain")
        .and_then(Plist::as_array)
        .unwrap();
    let first = chain[0].as_dictionary().unwrap();
    assert_eq!(
        first.get("ErrorCode").and_then(Plist::as_signed_integer),
        Some(12021)
    );
    assert_eq!(text(first, "ErrorDomain"), Some("MCMDMErrorDomain"));

    // While another bsi holds the device, every command is NotNow.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.path("private/var/db/bsi/lock"))
        .unwrap();
    lock.lock().unwrap();
    lab.enqueue(&udid, "busy-1", "ProfileList", Dictionary::new());
    let before = d.tree();
    d.bsi(["--wait", "0.2", "mdm", "poll"])
        .ok()
        .stdout_has("NotNow");
    assert_eq!(lab.answer("busy-1").status.as_deref(), Some("NotNow"));
    lock.unlock().unwrap();
    drop(lock);
    before.assert_same(&d.tree());
    // NanoMDM sends it again; now it is answered.
    d.bsi(["mdm", "poll"]).ok();
    let answers: Vec<_> = lab
        .events("mdm.Connect")
        .into_iter()
        .filter(|e| text(&e.message, "CommandUUID") == Some("busy-1"))
        .collect();
    assert_eq!(
        answers.last().and_then(|e| e.status.as_deref()),
        Some("Acknowledged")
    );
    assert!(answers.last().unwrap().message.contains_key("ProfileList"));

    // DDM through NanoMDM: assigning declarations in KMFDDM queues DeclarativeManagement.
    let decl = |kind: &str, id: &str, payload: serde_json::Value| {
        lab.ddm(
            "PUT",
            "/declarations",
            Some(&json!({"Type": kind, "Identifier": id, "Payload": payload})),
        );
        lab.ddm(
            "PUT",
            &format!("/set-declarations/bsi?declaration={id}"),
            None,
        );
    };
    decl(
        "com.apple.configuration.softwareupdate.enforcement.specific",
        "enforce",
        json!({"TargetOSVersion": "26.3.1", "TargetBuildVersion": "25D771280a", "TargetLocalDateTime": "2026-12-01T09:00:00"}),
    );
    decl(
        "com.apple.configuration.management.status-subscriptions",
        "subs",
        json!({"StatusItems": [{"Name": "device.operating-system.supplemental.extra-version"}, {"Name": "softwareupdate.install-state"}]}),
    );
    decl(
        "com.apple.activation.simple",
        "activation",
        json!({"StandardConfigurations": ["enforce", "subs"]}),
    );
    lab.ddm("PUT", &format!("/enrollment-sets/{udid}?set=bsi"), None);
    let from = bundles_dir(&d);
    let polled = d
        .bsi([
            "--json".as_ref(),
            "mdm".as_ref(),
            "poll".as_ref(),
            "--then-auto".as_ref(),
            "--from".as_ref(),
            from.as_os_str(),
        ])
        .ok()
        .json();
    let kinds: Vec<&str> = polled["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["request_type"].as_str())
        .collect();
    assert!(kinds.contains(&"DeclarativeManagement"), "{polled}");
    assert_eq!(
        d.status().active.as_ref().map(|a| a.version.as_str()),
        Some("26.3.1 (a)")
    );
    let dm = lab.events("mdm.DeclarativeManagement");
    let endpoints: Vec<&str> = dm
        .iter()
        .filter_map(|e| text(&e.message, "Endpoint"))
        .collect();
    // KMFDDM front-loads the tokens in the command's `Data`: the device does not ask for them.
    for e in ["declaration-items", "status"] {
        assert!(endpoints.contains(&e), "{endpoints:?}");
    }
    assert!(!endpoints.contains(&"tokens"), "{endpoints:?}");
    // KMFDDM, behind NanoMDM, has the declarations' status and the new extra version.
    let status: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_slice(&lab.ddm("GET", &format!("/declaration-status/{udid}"), None))
            .unwrap();
    let mine = &status[&udid];
    assert!(
        mine.iter()
            .any(|s| s["identifier"] == "enforce" && s["valid"] == "valid" && s["active"] == true),
        "{mine:?}"
    );

    // DeviceInformation after the install shows the response.
    lab.enqueue(&udid, "info-2", "DeviceInformation", queries(&asked));
    d.bsi(["mdm", "poll"]).ok();
    let r = lab
        .answer("info-2")
        .message
        .get("QueryResponses")
        .and_then(Plist::as_dictionary)
        .cloned()
        .unwrap();
    assert_eq!(text(&r, "SupplementalOSVersionExtra"), Some("(a)"));
    assert_eq!(text(&r, "SupplementalBuildVersion"), Some("25D771280a"));

    // A DeclarativeManagement command without `Data`: the device asks for the tokens. With
    // `Data` that is not a TokensResponse: an `Error`, and no sync.
    lab.enqueue(
        &udid,
        "dm-plain",
        "DeclarativeManagement",
        Dictionary::new(),
    );
    d.bsi(["mdm", "poll"]).ok();
    assert_eq!(
        lab.answer("dm-plain").status.as_deref(),
        Some("Acknowledged")
    );
    let requests = |endpoint: &str| {
        lab.events("mdm.DeclarativeManagement")
            .iter()
            .filter(|e| text(&e.message, "Endpoint") == Some(endpoint))
            .count()
    };
    // The webhook reports asynchronously: wait for the tokens request to be seen.
    let start = Instant::now();
    while requests("tokens") == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // One request for the tokens in the two syncs: this one's. (KMFDDM may change the token
    // of an unchanged set, and the device then lists the items again; so only tokens count.)
    assert_eq!(requests("tokens"), 1);
    let dm = lab.events("mdm.DeclarativeManagement");
    let mut bad = Dictionary::new();
    bad.insert("Data".into(), Plist::Data(br#"{"SyncTokens": 5}"#.to_vec()));
    lab.enqueue(&udid, "dm-bad", "DeclarativeManagement", bad);
    d.bsi(["mdm", "poll"]).ok().stdout_is(&[], &format!(
        "polled {}/mdm: 1 command(s) answered\n  DeclarativeManagement dm-bad: Error (The command’s “Data” is not a TokensResponse (invalid type: integer `5`, expected struct SyncTokens at line 1 column 16).)\n",
        lab.mdm_url
    ));
    assert_eq!(lab.answer("dm-bad").status.as_deref(), Some("Error"));
    assert_eq!(lab.events("mdm.DeclarativeManagement").len(), dm.len());

    // RestartDevice completes a staged removal, and the device, which declarative management
    // runs on, reports what changed (only the status: nothing is fetched).
    d.bsi(["rollback"]).ok();
    lab.enqueue(&udid, "restart-1", "RestartDevice", Dictionary::new());
    d.bsi(["mdm", "poll"]).ok();
    assert_eq!(
        lab.answer("restart-1").status.as_deref(),
        Some("Acknowledged")
    );
    assert_eq!(d.status().active, None);
    let start = Instant::now();
    while requests("status") < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let reports: Vec<serde_json::Value> = lab
        .events("mdm.DeclarativeManagement")
        .iter()
        .filter(|e| text(&e.message, "Endpoint") == Some("status"))
        .map(|e| {
            serde_json::from_slice(e.message.get("Data").and_then(Plist::as_data).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let latest = &reports[1];
    assert_eq!(latest["FullReport"], false);
    assert_eq!(
        latest["StatusItems"]["device"]["operating-system"]["supplemental"]["extra-version"],
        ""
    );
    assert_eq!(
        (requests("tokens"), requests("declaration-items") <= 2),
        (1, true)
    );

    // Unenroll: CheckOut, and the enrollment is gone.
    lab.enqueue(&udid, "security-1", "SecurityInfo", Dictionary::new());
    d.bsi(["mdm", "poll"]).ok();
    assert_eq!(
        lab.answer("security-1").status.as_deref(),
        Some("Acknowledged")
    );
    // CertificateList: the identity, with the keys Apple's `certificate.list.yaml` gives.
    lab.enqueue(&udid, "certs-1", "CertificateList", Dictionary::new());
    d.bsi(["mdm", "poll"]).ok();
    let certs = lab.answer("certs-1").message;
    let list = certs
        .get("CertificateList")
        .and_then(Plist::as_array)
        .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let only = list[0].as_dictionary().unwrap();
    let keys: Vec<&str> = only.keys().map(String::as_str).collect();
    assert_eq!(keys, ["CommonName", "Data", "IsIdentity"]);
    assert_eq!(text(only, "CommonName"), Some(udid.as_str()));
    assert_eq!(
        only.get("IsIdentity").and_then(Plist::as_boolean),
        Some(true)
    );
    let pem = std::fs::read_to_string(d.path("private/var/db/bsi/mdm/identity.pem")).unwrap();
    let der = only.get("Data").and_then(Plist::as_data).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    assert!(
        pem.replace('\n', "").contains(&b64),
        "Data is not the identity certificate"
    );

    d.bsi(["mdm", "unenroll"]).ok();
    assert_eq!(lab.events("mdm.CheckOut").len(), 1);
    lab.assert_apple("macOS");
    assert!(d.status().mdm.is_none());
    d.bsi(["mdm", "poll"]).refused(2, "not enrolled").stderr_is(&[], "error: the device is not enrolled in an MDM server\nhint: enroll it with `bsi mdm enroll --profile FILE.mobileconfig`\n");
}

#[test]
fn a_refused_enrollment_says_why_and_changes_nothing() {
    let Some(lab) = lab_or_skip("a_refused_enrollment_says_why_and_changes_nothing") else {
        return;
    };
    let d = Device::new();
    let before = d.tree();
    // The CA refuses a wrong challenge: its failInfo, and what to check.
    let wrong = lab.profile("wrong.mobileconfig", "not-the-challenge");
    enroll(&d, &wrong, &[])
        .refused(1, "SCEP server: POST")
        .stderr_is(
            &[],
            &format!(
                "error: SCEP server: POST {}?operation=PKIOperation: the CA refused the certificate request (FAILURE, badRequest: the CA refused the request (a wrong challenge, or a certificate it already issued for this subject))\n\
                 hint: check the profile's Challenge, and give each device its own Subject (%UDID% in the profile's Subject), or let the CA issue again for a subject (scepserver -allowrenew 0)\n",
                lab.scep_url
            ),
        );
    // A profile without an MDM payload is not an enrollment profile.
    let other = lab.dir.path().join("wifi.mobileconfig");
    std::fs::write(
        &other,
        profile_xml(&lab.scep_url, CHALLENGE, "", "")
            .replace("com.apple.mdm", "com.apple.wifi.managed"),
    )
    .unwrap();
    enroll(&d, &other, &[])
        .refused(2, "the profile has no com.apple.mdm payload")
        .stderr_is(
            &[(lab.dir.path(), "[TMP]")],
            &format!("error: [TMP]/wifi.mobileconfig is not an enrollment profile bsi can use: the profile has no com.apple.mdm payload\n{PROFILE_HINT}"),
        );
    // A binary plist bomb (shared references, 2^30 objects decoded) as the profile.
    let bomb = lab.dir.path().join("bomb.mobileconfig");
    std::fs::write(&bomb, crate::hostile::dag_bplist(30)).unwrap();
    let start = Instant::now();
    enroll(&d, &bomb, &[])
        .refused(2, "not an enrollment profile bsi can use")
        .stderr_is(
            &[(lab.dir.path(), "[TMP]")],
            &format!("error: [TMP]/bomb.mobileconfig is not an enrollment profile bsi can use: not a configuration profile: a binary property list; bsi reads XML property lists only (Apple's format for this file)\n{PROFILE_HINT}"),
        );
    assert!(start.elapsed() < Duration::from_secs(2));
    // An MDM server that is not there: nothing is recorded (the CA issued an identity, which
    // is kept nowhere).
    let gone = lab.dir.path().join("gone.mobileconfig");
    std::fs::write(
        &gone,
        profile_xml(&lab.scep_url, CHALLENGE, "http://127.0.0.1:9/mdm", ""),
    )
    .unwrap();
    enroll(&d, &gone, &["--timeout".as_ref(), "1".as_ref()])
        .refused(1, "MDM server: GET http://127.0.0.1:9/mdm: cannot connect")
        .stderr_is(
            &[],
            "error: MDM server: GET http://127.0.0.1:9/mdm: cannot connect (io: Connection refused (os error 111)) (3 attempts)\nhint: check that the server runs at http://127.0.0.1:9/mdm and answers, then try again\n",
        );
    before.assert_same(&d.tree());
    assert!(lab.events("mdm.Authenticate").is_empty());
    d.bsi(["mdm", "unenroll"]).refused(2, "not enrolled").stderr_is(&[], "error: the device is not enrolled in an MDM server\nhint: enroll it with `bsi mdm enroll --profile FILE.mobileconfig`\n");
    d.bsi(["mdm", "poll"]).refused(2, "not enrolled").stderr_is(&[], "error: the device is not enrolled in an MDM server\nhint: enroll it with `bsi mdm enroll --profile FILE.mobileconfig`\n");
}

/// A profile whose identity is a PKCS #12 payload (the test identity, password `secret`).
fn pkcs12_profile(server_url: &str, password: &str) -> String {
    let p12 = std::fs::read(repo().join("fixtures/mdm/identity-aes256.p12")).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(p12);
    let xml = profile_xml("http://unused.invalid/scep", "", server_url, "");
    let start = xml
        .find("<dict>\n<key>PayloadType</key><string>com.apple.security.scep")
        .unwrap();
    let end = xml[start..].find("</dict></dict>\n").unwrap() + start + "</dict></dict>\n".len();
    let payload = format!(
        "<dict>\n<key>PayloadType</key><string>com.apple.security.pkcs12</string>\n\
         <key>PayloadIdentifier</key><string>com.example.bsi.p12</string>\n\
         <key>PayloadUUID</key><string>5B3C7E0A-2222-4A57-9C1B-0D8E6F2A9B02</string>\n\
         <key>PayloadVersion</key><integer>1</integer>\n\
         <key>Password</key><string>{password}</string>\n\
         <key>PayloadContent</key><data>{data}</data>\n</dict>\n"
    );
    format!("{}{payload}{}", &xml[..start], &xml[end..])
}

/// A hostile MDM server: it accepts the check-ins, then answers `Idle` with `command`.
fn hostile(command: Reply) -> String {
    stub::serve(move |r| {
        let text = String::from_utf8_lossy(&r.body);
        if text.contains("<string>Idle</string>") {
            command.clone()
        } else {
            Reply::Now(200, Vec::new())
        }
    })
}

fn command_plist(uuid: &str, request_type: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>CommandUUID</key><string>{uuid}</string><key>Command</key><dict><key>RequestType</key><string>{request_type}</string></dict></dict></plist>"#
    )
    .into_bytes()
}

#[test]
fn a_pkcs12_identity_enrolls_and_a_hostile_mdm_server_is_bounded() {
    let d = Device::new();
    let seen = Arc::new(Mutex::new(Vec::<stub::Request>::new()));
    let log = Arc::clone(&seen);
    let url = stub::serve(move |r| {
        log.lock().unwrap().push(r.clone());
        Reply::Now(200, Vec::new())
    });
    let profile = d.dir.path().join("p12.mobileconfig");
    // A wrong password says so and changes nothing.
    std::fs::write(&profile, pkcs12_profile(&format!("{url}/mdm"), "nope")).unwrap();
    let before = d.tree();
    enroll(&d, &profile, &[])
        .refused(2, "password is wrong")
        .stderr_is(
            &[(d.dir.path(), "[TMP]")],
            &format!("error: [TMP]/p12.mobileconfig is not an enrollment profile bsi can use: its PKCS #12 identity: its MAC does not match: the password is wrong, or the file was changed\n{PROFILE_HINT}"),
        );
    before.assert_same(&d.tree());
    assert!(seen.lock().unwrap().is_empty());
    std::fs::write(&profile, pkcs12_profile(&format!("{url}/mdm"), "secret")).unwrap();
    enroll(&d, &profile, &[]).ok();
    let mdm = d.status().mdm.unwrap();
    assert_eq!(mdm.identity.source, "pkcs12");
    assert_eq!(mdm.identity.subject, "CN=bsi pkcs12 test");
    // Every message was signed: a detached CMS in Mdm-Signature, base64.
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "Authenticate and TokenUpdate");
    for r in &sent {
        let sig = r.header("Mdm-Signature").expect("signed");
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap();
        assert_eq!(der[0], 0x30, "a DER SEQUENCE");
        assert_eq!(r.method, "PUT");
    }

    // Each hostile answer to Idle: refused fast and small, the device unchanged.
    let huge = {
        let mut b = command_plist("x", "DeviceInformation");
        b.extend(std::iter::repeat_n(b' ', 5 << 20));
        b
    };
    let cases: Vec<(&str, Reply, i32, &str)> = vec![
        (
            "bomb",
            Reply::Now(200, crate::hostile::dag_bplist(30)),
            1,
            "MDM server",
        ),
        ("huge", Reply::Now(200, huge), 1, "MDM server"),
        (
            "garbage",
            Reply::Now(200, b"<plist><dict><key>".to_vec()),
            1,
            "MDM server",
        ),
        (
            "no uuid",
            Reply::Now(200, command_plist("", "DeviceInformation")),
            1,
            "CommandUUID",
        ),
        (
            "long uuid",
            Reply::Now(
                200,
                command_plist(&"u".repeat(100_000), "DeviceInformation"),
            ),
            1,
            "CommandUUID",
        ),
        ("401", Reply::Now(401, Vec::new()), 1, "401"),
        ("silent", Reply::Silent, 1, "deadline"),
    ];
    for (name, reply, code, needle) in cases {
        let server = hostile(reply);
        // Point the enrollment at the hostile server.
        let record = d.path("private/var/db/bsi/mdm/enrollment.json");
        let text = std::fs::read_to_string(&record).unwrap();
        std::fs::write(&record, text.replace(&url, &server)).unwrap();
        let before = d.tree();
        eprintln!("{name}:");
        let os = crate::hostile::os;
        let poll = [
            os("mdm"),
            os("poll"),
            os("--timeout"),
            os("0.5"),
            os("--deadline"),
            os("1"),
        ];
        crate::hostile::cheaply_refused(&d, &poll, code, needle);
        before.assert_same(&d.tree());
        std::fs::write(&record, text).unwrap();
    }
    // A server that sends commands without end: the poll stops at --max-commands.
    let again = command_plist("again", "ProfileList");
    let server = stub::serve(move |_| Reply::Now(200, again.clone()));
    let record = d.path("private/var/db/bsi/mdm/enrollment.json");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace(&url, &server)).unwrap();
    let out = d
        .bsi(["--json", "mdm", "poll", "--max-commands", "5"])
        .ok()
        .json();
    assert_eq!(out["commands"].as_array().map(Vec::len), Some(5));
    assert_eq!(out["more"], true);
}

#[test]
fn before_os26_the_os_update_commands_drive_the_lifecycle() {
    let Some(lab) = lab_or_skip("before_os26_the_os_update_commands_drive_the_lifecycle") else {
        return;
    };
    let d = Device::with(&["--supervised", "--version", "15.1", "--build", "24B83"]);
    let from = d.dir.path().join("bundles");
    std::fs::create_dir_all(&from).unwrap();
    make_bundle(
        &from,
        "macos-15.1-a.bsi",
        "macOS",
        "15.1",
        "24B83",
        "(a)",
        "24B770830a",
        &[("System/Library/x", b"x")],
        &[],
    );
    let profile = lab.profile("enroll.mobileconfig", CHALLENGE);
    enroll(&d, &profile, &[]).ok();
    let udid = d.status().mdm.unwrap().udid;
    let poll = |extra: &[&str]| {
        let mut args = vec![
            "mdm".to_owned(),
            "poll".into(),
            "--from".into(),
            from.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        d.bsi(&args).ok();
    };

    // AvailableOSUpdates offers the response, as a security response.
    lab.enqueue(&udid, "avail", "AvailableOSUpdates", Dictionary::new());
    poll(&[]);
    let a = lab.answer("avail");
    assert_eq!(a.status.as_deref(), Some("Acknowledged"));
    let list = a
        .message
        .get("AvailableOSUpdates")
        .and_then(Plist::as_array)
        .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let offer = list[0].as_dictionary().unwrap();
    assert_eq!(
        offer.get("IsSecurityResponse").and_then(Plist::as_boolean),
        Some(true)
    );
    assert_eq!(text(offer, "SupplementalBuildVersion"), Some("24B770830a"));
    assert_eq!(text(offer, "SupplementalOSVersionExtra"), Some("(a)"));
    let key = text(offer, "ProductKey").unwrap().to_owned();

    // ScheduleOSUpdate installs it; UpdateResults says so; the device runs it.
    let mut update = Dictionary::new();
    update.insert("ProductKey".into(), key.clone().into());
    update.insert("InstallAction".into(), "InstallASAP".into());
    let mut body = Dictionary::new();
    body.insert(
        "Updates".into(),
        Plist::Array(vec![Plist::Dictionary(update)]),
    );
    lab.enqueue(&udid, "schedule", "ScheduleOSUpdate", body);
    poll(&[]);
    let a = lab.answer("schedule");
    assert_eq!(a.status.as_deref(), Some("Acknowledged"), "{:?}", a.message);
    let results = a
        .message
        .get("UpdateResults")
        .and_then(Plist::as_array)
        .unwrap();
    let r = results[0].as_dictionary().unwrap();
    assert_eq!(text(r, "ProductKey"), Some(key.as_str()));
    assert_eq!(text(r, "InstallAction"), Some("InstallASAP"));
    assert_eq!(d.status().active_version(), Some("15.1 (a)"));

    // OSUpdateStatus: nothing in progress any more; DeviceInformation shows the response.
    lab.enqueue(&udid, "status", "OSUpdateStatus", Dictionary::new());
    lab.enqueue(
        &udid,
        "info",
        "DeviceInformation",
        queries(&["SupplementalOSVersionExtra", "SupplementalBuildVersion"]),
    );
    poll(&[]);
    let a = lab.answer("status");
    assert_eq!(a.status.as_deref(), Some("Acknowledged"));
    assert!(
        a.message
            .get("OSUpdateStatus")
            .and_then(Plist::as_array)
            .is_some()
    );
    let info = lab.answer("info");
    let r = info
        .message
        .get("QueryResponses")
        .and_then(Plist::as_dictionary)
        .unwrap();
    assert_eq!(text(r, "SupplementalOSVersionExtra"), Some("(a)"));

    // On OS 26 these commands are gone: a 26 device answers them as unknown request types.
    let d26 = Device::with(&["--supervised"]);
    enroll(&d26, &profile, &[]).ok();
    let udid26 = d26.status().mdm.unwrap().udid;
    assert_ne!(udid26, udid);
    lab.enqueue(&udid26, "avail-26", "AvailableOSUpdates", Dictionary::new());
    d26.bsi(["mdm", "poll"]).ok();
    let a = lab.answer("avail-26");
    assert_eq!(a.status.as_deref(), Some("Error"));
    lab.assert_apple("macOS");

    // What each needs is Apple's, by platform: an unsupervised Mac lists its updates but does
    // not schedule them or say how they stand; an iPhone needs supervision and, like every
    // device, the server the access right (AllowAppInstallation, 4096) its profile gives.
    let answered = |flags: &[&str], rights: &str, request_type: &str| {
        let d = Device::with(flags);
        enroll(&d, &lab.profile_with_rights(rights), &[]).ok();
        let udid = d.status().mdm.unwrap().udid;
        let command = format!("{request_type}-{}", &udid[udid.len() - 6..]);
        lab.enqueue(&udid, &command, request_type, Dictionary::new());
        d.bsi(["mdm", "poll"]).ok();
        let a = lab.answer(&command);
        (a.status.clone().unwrap_or_default(), a.error())
    };
    let mac15 = ["--version", "15.1", "--build", "24B83"];
    let ios18 = ["--platform", "iOS", "--version", "18.6", "--build", "22G86"];
    let supervised_ios18 = [&ios18[..], &["--supervised"]].concat();
    // (device, AccessRights, command, the error; None: Acknowledged)
    let cases: [(&[&str], &str, &str, Option<&str>); 9] = [
        (&mac15, "8191", "AvailableOSUpdates", None),
        (&mac15, "0", "AvailableOSUpdates", None),
        (
            &mac15,
            "8191",
            "OSUpdateStatus",
            Some("OSUpdateStatus needs a supervised device."),
        ),
        (
            &ios18,
            "8191",
            "AvailableOSUpdates",
            Some("AvailableOSUpdates needs a supervised device."),
        ),
        (&supervised_ios18, "8191", "OSUpdateStatus", None),
        (
            &supervised_ios18,
            "4095",
            "OSUpdateStatus",
            Some("OSUpdateStatus needs the AllowAppInstallation access right."),
        ),
        (&supervised_ios18, "4095", "SecurityInfo", None),
        (
            &supervised_ios18,
            "3071",
            "SecurityInfo",
            Some("SecurityInfo needs the AllowQuerySecurity access right."),
        ),
        (
            &mac15,
            "8190",
            "ProfileList",
            Some("ProfileList needs the AllowInspection access right."),
        ),
    ];
    for (flags, rights, request_type, why) in cases {
        let want = match why {
            Some(w) => ("Error".to_owned(), Some(w.to_owned())),
            None => ("Acknowledged".to_owned(), None),
        };
        assert_eq!(
            answered(flags, rights, request_type),
            want,
            "{flags:?} {rights} {request_type}"
        );
    }
}

/// What `fleet enroll --json` and `fleet poll --json` say, as far as these tests read it.
#[derive(Debug, Deserialize)]
struct FleetRun {
    ok: u64,
    failed: u64,
    #[serde(default)]
    commands: std::collections::BTreeMap<String, u64>,
}

/// `fleet status --json`, as far as these tests read it.
#[derive(Debug, Deserialize)]
struct FleetGlance {
    devices: u64,
    by_enrollment: std::collections::BTreeMap<String, u64>,
    by_version: std::collections::BTreeMap<String, u64>,
    newest_checkin: Option<String>,
}

#[test]
fn a_fleet_enrolls_and_polls_in_four_shards_that_cover_it_once() {
    let Some(lab) = lab_or_skip("a_fleet_enrolls_and_polls_in_four_shards_that_cover_it_once")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let fleet_s = fleet.display().to_string();
    bsi([
        "fleet",
        "init",
        "--dir",
        &fleet_s,
        "--count",
        "10",
        "--supervised-percent",
        "100",
        "--trust",
        &test_pub().display().to_string(),
    ])
    .ok();
    let profile = lab.profile("enroll.mobileconfig", CHALLENGE);
    let profile_s = profile.display().to_string();
    let mut enrolled = 0;
    for k in 0..4 {
        let shard = format!("{k}/4");
        let out = bsi([
            "--json",
            "fleet",
            "enroll",
            "--dir",
            &fleet_s,
            "--profile",
            &profile_s,
            "--shard",
            &shard,
            "--concurrency",
            "3",
        ])
        .ok()
        .parse::<FleetRun>();
        assert_eq!(out.failed, 0, "{out:?}");
        enrolled += out.ok;
    }
    assert_eq!(enrolled, 10);
    let mut udids: Vec<String> = lab
        .events("mdm.Authenticate")
        .into_iter()
        .map(|e| e.udid)
        .collect();
    udids.sort();
    let all = udids.len();
    udids.dedup();
    assert_eq!(
        (all, udids.len()),
        (10, 10),
        "each device enrolled exactly once"
    );

    // Every device answers its own query, each poll shard reaching its own devices.
    for u in &udids {
        lab.enqueue(
            u,
            &format!("info-{u}"),
            "DeviceInformation",
            queries(&["UDID", "OSVersion"]),
        );
    }
    let mut answered = 0;
    for k in 0..4 {
        let out = bsi([
            "--json",
            "fleet",
            "poll",
            "--dir",
            &fleet_s,
            "--shard",
            &format!("{k}/4"),
        ])
        .ok()
        .parse::<FleetRun>();
        assert_eq!(out.failed, 0, "{out:?}");
        answered += out.commands.get("DeviceInformation").copied().unwrap_or(0);
    }
    assert_eq!(answered, 10);
    for u in &udids {
        let r = lab.answer(&format!("info-{u}"));
        let q = r
            .message
            .get("QueryResponses")
            .and_then(Plist::as_dictionary)
            .unwrap();
        assert_eq!(text(q, "UDID"), Some(u.as_str()));
    }

    // The fleet at a glance.
    let status = bsi(["--json", "fleet", "status", "--dir", &fleet_s])
        .ok()
        .parse::<FleetGlance>();
    assert_eq!(status.devices, 10);
    assert_eq!(status.by_enrollment.get("mdm"), Some(&10), "{status:?}");
    assert_eq!(status.by_version.get("26.3.1"), Some(&10), "{status:?}");
    assert!(status.newest_checkin.is_some(), "{status:?}");
    bsi(["fleet", "status", "--dir", &fleet_s])
        .ok()
        .stdout_has("devices:    10 (3 iOS, 3 iPadOS, 4 macOS)\n")
        .stdout_has("enrollment: 10 mdm\n");
    // Shards are checked.
    bsi(["fleet", "poll", "--dir", &fleet_s, "--shard", "4/4"]).refused(2, "--shard").stderr_is(&[], "error: --shard 4/4 is not K/N\nhint: give the shard and the number of shards, K from 0 to N-1: e.g. --shard 0/4 (a Kubernetes Indexed Job: --shard $JOB_COMPLETION_INDEX/N)\n");
}

fn d_small_refused(profile: &Path) {
    let d = Device::new();
    let before = d.tree();
    enroll(&d, profile, &[])
        .refused(2, "its SCEP Keysize is 1024, but with SignMessage false")
        .stderr_is(
            &[(profile, "[PROFILE]")],
            &format!("error: [PROFILE] is not an enrollment profile bsi can use: its SCEP Keysize is 1024, but with SignMessage false the identity is a TLS client certificate, which needs 2048 bits or more\n{PROFILE_HINT}"),
        );
    before.assert_same(&d.tree());
}

#[test]
fn over_https_a_device_signs_or_shows_its_client_certificate() {
    for (header, sign) in [(false, true), (true, false)] {
        let test = format!("over_https (SignMessage {sign})");
        let Some(lab) = lab_with(&test, Some(header)) else {
            return;
        };
        let server = format!("{}/mdm", lab.tls_url.as_deref().unwrap());
        let xml = profile_xml(&lab.scep_url, CHALLENGE, &server, "");
        let xml = if sign {
            // 2048 bits: NanoMDM checks signatures made by ring (1024-bit ones by the `rsa`
            // crate are checked by the other tests).
            xml.replace("<integer>1024</integer>", "<integer>2048</integer>")
        } else {
            let xml = xml.replace(
                "<key>SignMessage</key><true/>",
                "<key>SignMessage</key><false/>",
            );
            // A 1024-bit key cannot be a TLS client certificate: refused before the CA is asked.
            let small = lab.dir.path().join("small.mobileconfig");
            std::fs::write(&small, &xml).unwrap();
            d_small_refused(&small);
            xml.replace("<integer>1024</integer>", "<integer>2048</integer>")
        };
        let profile = lab.dir.path().join("tls.mobileconfig");
        std::fs::write(&profile, xml).unwrap();
        let ca = lab.dir.path().join("front-ca.pem");
        let d = Device::with(&["--supervised"]);
        // Without the private CA, TLS fails and says what to do.
        let before = d.tree();
        enroll(&d, &profile, &[])
            .refused(1, "MDM server")
            .stderr_has("--ca");
        before.assert_same(&d.tree());
        enroll(&d, &profile, &["--ca".as_ref(), ca.as_os_str()]).ok();
        let mdm = d.status().mdm.unwrap();
        assert_eq!(mdm.sign_message, sign);
        assert_eq!(lab.events("mdm.Authenticate").len(), 1, "{test}");
        lab.enqueue(
            &mdm.udid,
            "tls-info",
            "DeviceInformation",
            queries(&["UDID"]),
        );
        d.bsi(["mdm", "poll"]).ok();
        let a = lab.answer("tls-info");
        assert_eq!(a.status.as_deref(), Some("Acknowledged"), "{test}");
        assert_eq!(a.udid, mdm.udid);
        // The private CA is installed beside the identity: CertificateList lists both.
        lab.enqueue(&mdm.udid, "tls-certs", "CertificateList", Dictionary::new());
        d.bsi(["mdm", "poll"]).ok();
        let certs = lab.answer("tls-certs").message;
        let identities: Vec<Option<bool>> = certs
            .get("CertificateList")
            .and_then(Plist::as_array)
            .unwrap()
            .iter()
            .map(|c| {
                c.as_dictionary()
                    .unwrap()
                    .get("IsIdentity")
                    .and_then(Plist::as_boolean)
            })
            .collect();
        assert_eq!(identities, [Some(true), Some(false)], "{test}");
        lab.assert_apple("macOS");
    }
}

#[test]
fn a_silent_ca_cannot_hold_an_enrollment_past_its_deadline() {
    let d = Device::new();
    let mdm = stub::serve(|_| Reply::Now(200, Vec::new()));
    let ca = stub::serve(|_| Reply::Silent);
    let profile = d.dir.path().join("silent.mobileconfig");
    std::fs::write(
        &profile,
        profile_xml(&format!("{ca}/scep"), CHALLENGE, &format!("{mdm}/mdm"), ""),
    )
    .unwrap();
    let before = d.tree();
    let os = crate::hostile::os;
    crate::hostile::cheaply_refused(
        &d,
        &[
            os("mdm"),
            os("enroll"),
            os("--profile"),
            profile.as_os_str(),
            os("--timeout"),
            os("5"),
            os("--deadline"),
            os("1"),
        ],
        1,
        "within its deadline of 1 s",
    );
    before.assert_same(&d.tree());
}

#[test]
fn restart_device_restarts_as_bsi_restart_does_and_rights_bound_it() {
    let Some(lab) = lab_or_skip("restart_device_restarts_as_bsi_restart_does_and_rights_bound_it")
    else {
        return;
    };
    let profile = lab.profile("enroll.mobileconfig", CHALLENGE);
    let restart = |d: &Device, uuid: &str, body: Dictionary| {
        let udid = d.status().mdm.unwrap().udid;
        lab.enqueue(&udid, uuid, "RestartDevice", body);
        d.bsi(["mdm", "poll"]).ok().stdout_is(
            &[],
            &format!(
                "polled {}/mdm: 1 command(s) answered\n  RestartDevice {uuid}: [..]\n",
                lab.mdm_url
            ),
        );
        lab.answer(uuid)
    };
    let staged = |d: &Device| d.status().staged.map(|s| s.version);

    // A Mac with a staged response: NotifyUser only asks the user; without it, the device
    // restarts into the response, as `bsi restart` does.
    let mac = Device::with(&["--supervised"]);
    enroll(&mac, &profile, &[]).ok();
    mac.bsi([
        "apply".as_ref(),
        bundle("macos-26.3.1-a.bsi.tar").as_os_str(),
    ])
    .ok();
    let mut notify = Dictionary::new();
    notify.insert("NotifyUser".into(), true.into());
    // Nothing changes but the poll's own record of the check-in.
    let seen = |d: &Device| {
        let mut t = d.tree();
        t.forget("private/var/db/bsi/mdm/enrollment.json");
        t
    };
    let before = seen(&mac);
    assert_eq!(
        restart(&mac, "ask-1", notify).status.as_deref(),
        Some("Acknowledged")
    );
    before.assert_same(&seen(&mac));
    assert_eq!(staged(&mac).as_deref(), Some("26.3.1 (a)"));
    assert_eq!(
        restart(&mac, "now-1", Dictionary::new()).status.as_deref(),
        Some("Acknowledged")
    );
    assert_eq!(staged(&mac), None);
    assert_eq!(
        mac.status().active.map(|a| a.version).as_deref(),
        Some("26.3.1 (a)")
    );

    // An unsupervised iPhone does not take it; nor does a device whose server lacks the
    // device-lock right. Nothing on either changes.
    for (flags, rights, why) in [
        (&[][..], "8191", "RestartDevice needs a supervised device."),
        (
            &["--supervised"][..],
            "16",
            "RestartDevice needs the AllowPasscodeRemovalAndLock access right.",
        ),
    ] {
        let phone = Device::with(&[&["--platform", "iOS"][..], flags].concat());
        enroll(&phone, &lab.profile_with_rights(rights), &[]).ok();
        phone
            .bsi(["apply".as_ref(), bundle("ios-26.3.1-a.bsi.tar").as_os_str()])
            .ok();
        let uuid = format!("phone-{rights}");
        let before = seen(&phone);
        let a = restart(&phone, &uuid, Dictionary::new());
        before.assert_same(&seen(&phone));
        assert_eq!(a.status.as_deref(), Some("Error"));
        assert_eq!(a.error().as_deref(), Some(why));
        if rights == "16" {
            // Without AllowInspection, no certificate list either.
            let phone_udid = phone.status().mdm.unwrap().udid;
            lab.enqueue(
                &phone_udid,
                "certs-16",
                "CertificateList",
                Dictionary::new(),
            );
            phone.bsi(["mdm", "poll"]).ok().stdout_is(
                &[],
                &format!(
                    "polled {}/mdm: 1 command(s) answered\n  CertificateList certs-16: Error (CertificateList needs the AllowInspection access right.)\n",
                    lab.mdm_url
                ),
            );
        }
    }
}
