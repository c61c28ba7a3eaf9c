//! bsi as an MDM-enrolled device (issue 26), judged only by what real servers saw: a SCEP CA
//! (`github.com/micromdm/scep/v2/cmd/scepserver`, v2.3.0) issues the identity, NanoMDM
//! (`github.com/micromdm/nanomdm/cmd/nanomdm`, v0.9.0) authenticates every message against that
//! CA and posts each check-in and command result to a webhook listener here, and KMFDDM (v0.8.3)
//! sits behind NanoMDM, queueing a `DeclarativeManagement` command when declarations are
//! assigned. The servers are installed with `go install` into `target/mdm/` on first use and run
//! on free ports of 127.0.0.1 with temporary storage. Without Go the tests print why and skip,
//! unless `BSI_REQUIRE_MDM=1` (set by `.ci/run`). The hostile-server tests use the local stub and
//! always run.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use plist::{Dictionary, Value as Plist};
use serde::Deserialize;
use serde_json::json;

use crate::harness::*;
use crate::stub::{self, Reply};

const NANOMDM: &str = "github.com/micromdm/nanomdm/cmd/nanomdm@v0.9.0";
const SCEPSERVER: &str = "github.com/micromdm/scep/v2/cmd/scepserver@v2.3.0";
const KMFDDM: &str = "github.com/jessepeterson/kmfddm/cmd/kmfddm@v0.8.3";
const CHALLENGE: &str = "bsi-challenge";
const NANO_KEY: &str = "bsi-nano-key";
const DDM_KEY: &str = "bsi-ddm-key";
const TOPIC: &str = "com.apple.mgmt.External.bsi-test";

/// `go install`s `module` into `target/<dir>` once; the binary's path.
fn installed(dir: &str, module: &str) -> Result<PathBuf, String> {
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
}

fn binaries() -> Result<&'static Binaries, String> {
    static ALL: OnceLock<Result<Binaries, String>> = OnceLock::new();
    ALL.get_or_init(|| {
        Ok(Binaries {
            scep: installed("mdm", SCEPSERVER)?,
            nanomdm: installed("mdm", NANOMDM)?,
            kmfddm: installed("kmfddm", KMFDDM)?,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The lab, or `None` (after saying why) when the servers cannot be had and CI does not
/// require them.
fn lab_or_skip(test: &str) -> Option<Lab> {
    match binaries() {
        Ok(b) => Some(Lab::start(b)),
        Err(why) if std::env::var_os("BSI_REQUIRE_MDM").is_some() => {
            panic!("{test}: the MDM servers are required (BSI_REQUIRE_MDM) but unavailable: {why}")
        }
        Err(why) => {
            eprintln!("skipped {test}: the MDM servers are unavailable: {why}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// One webhook event from NanoMDM: a check-in (`mdm.Authenticate`, ...) or a command result
/// (`mdm.Connect`), with the device's message as it sent it.
#[derive(Clone, Debug)]
struct Event {
    topic: String,
    udid: String,
    status: Option<String>,
    message: Dictionary,
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

/// SCEP, NanoMDM and KMFDDM, wired as in production, stopped when dropped.
struct Lab {
    children: Vec<Child>,
    dir: tempfile::TempDir,
    scep_url: String,
    mdm_url: String,
    ddm_url: String,
    events: Arc<Mutex<Vec<Event>>>,
    agent: ureq::Agent,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
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
    fn start(b: &Binaries) -> Self {
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
        let mut children = vec![spawn(
            &b.scep,
            &[
                "-depot",
                &depot_s,
                "-port",
                &scep.to_string(),
                "-challenge",
                CHALLENGE,
            ],
        )];
        let store = dir.path().join("ddm").display().to_string();
        children.push(spawn(
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
        children.push(spawn(
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
            ],
        ));
        for (port, what) in [(scep, "scepserver"), (ddm, "KMFDDM"), (mdm, "NanoMDM")] {
            wait_for(port, what);
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        Self {
            children,
            dir,
            scep_url: format!("http://127.0.0.1:{scep}/scep"),
            mdm_url: format!("http://127.0.0.1:{mdm}"),
            ddm_url: format!("http://127.0.0.1:{ddm}"),
            events,
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

    /// Queues a command for `udid` through NanoMDM's API (no push: there is no APNs here).
    fn enqueue(&self, udid: &str, uuid: &str, request_type: &str, extra: Dictionary) {
        let mut command = extra;
        command.insert("RequestType".into(), request_type.into());
        let mut d = Dictionary::new();
        d.insert("CommandUUID".into(), uuid.into());
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

    /// The device's answer to the command `uuid`, as NanoMDM's webhook reported it.
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

    /// Calls KMFDDM's admin API.
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
    d.bsi([
        "mdm".as_ref(),
        "enroll".as_ref(),
        "--profile".as_ref(),
        profile.as_os_str(),
        "--dry-run".as_ref(),
    ])
    .ok()
    .stdout_has("would enroll");
    before.assert_same(&d.tree());
    assert!(lab.events("mdm.Authenticate").is_empty());

    // Enrollment: SCEP identity, then Authenticate and TokenUpdate, accepted by NanoMDM.
    d.bsi([
        "mdm".as_ref(),
        "enroll".as_ref(),
        "--profile".as_ref(),
        profile.as_os_str(),
    ])
    .ok()
    .stdout_has("enrolled");
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
    ];
    lab.enqueue(&udid, "info-1", "DeviceInformation", queries(&asked));
    d.bsi(["mdm", "poll"])
        .ok()
        .stdout_has("1 command(s) answered");
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
    for e in ["tokens", "declaration-items", "status"] {
        assert!(endpoints.contains(&e), "{endpoints:?}");
    }
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

    // Unenroll: CheckOut, and the enrollment is gone.
    d.bsi(["mdm", "unenroll"]).ok();
    assert_eq!(lab.events("mdm.CheckOut").len(), 1);
    assert!(d.status().mdm.is_none());
    d.bsi(["mdm", "poll"]).refused(2, "not enrolled");
}

#[test]
fn a_refused_enrollment_says_why_and_changes_nothing() {
    let Some(lab) = lab_or_skip("a_refused_enrollment_says_why_and_changes_nothing") else {
        return;
    };
    let d = Device::new();
    let before = d.tree();
    let enroll = |profile: &Path, extra: &[&str]| {
        let mut args = vec![
            "mdm".to_owned(),
            "enroll".into(),
            "--profile".into(),
            profile.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        d.bsi(&args)
    };
    // The CA refuses a wrong challenge: its failInfo, and what to check.
    let wrong = lab.profile("wrong.mobileconfig", "not-the-challenge");
    enroll(&wrong, &[])
        .refused(1, "SCEP server: POST")
        .stderr_has("the CA refused the certificate request (FAILURE, badRequest")
        .stderr_has("hint: check the profile's Challenge");
    // A profile without an MDM payload is not an enrollment profile.
    let other = lab.dir.path().join("wifi.mobileconfig");
    std::fs::write(
        &other,
        profile_xml(&lab.scep_url, CHALLENGE, "", "")
            .replace("com.apple.mdm", "com.apple.wifi.managed"),
    )
    .unwrap();
    enroll(&other, &[]).refused(2, "the profile has no com.apple.mdm payload");
    // A binary plist bomb (shared references, 2^30 objects decoded) as the profile.
    let bomb = lab.dir.path().join("bomb.mobileconfig");
    std::fs::write(&bomb, crate::hostile::dag_bplist(30)).unwrap();
    let start = Instant::now();
    enroll(&bomb, &[]).refused(2, "not an enrollment profile bsi can use");
    assert!(start.elapsed() < Duration::from_secs(2));
    // An MDM server that is not there: nothing is recorded (the CA issued an identity, which
    // is kept nowhere).
    let gone = lab.dir.path().join("gone.mobileconfig");
    std::fs::write(
        &gone,
        profile_xml(&lab.scep_url, CHALLENGE, "http://127.0.0.1:9/mdm", ""),
    )
    .unwrap();
    enroll(&gone, &["--timeout", "1"])
        .refused(1, "MDM server: PUT http://127.0.0.1:9/mdm: cannot connect")
        .stderr_has("hint: check that the server runs at http://127.0.0.1:9/mdm");
    before.assert_same(&d.tree());
    assert!(lab.events("mdm.Authenticate").is_empty());
    d.bsi(["mdm", "unenroll"]).refused(2, "not enrolled");
    d.bsi(["mdm", "poll"]).refused(2, "not enrolled");
}
