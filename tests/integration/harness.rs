//! The test harness: a simulated device in a temp dir, a builder-style runner for the real `bsi`
//! binary, and tree snapshots that check a refused command left the device byte-for-byte
//! unchanged (I4).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

#[allow(unused_imports)] // The model test reads only the status.
pub(crate) use crate::outputs::*;
pub(crate) use crate::status_view::*;

/// The fixed clock every test runs at.
pub(crate) const NOW: &str = "2026-12-01T10:00:00Z";

pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bsi"))
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn fixtures() -> PathBuf {
    repo().join("fixtures")
}

pub(crate) fn bundle(name: &str) -> PathBuf {
    fixtures().join("bundles").join(name)
}

pub(crate) fn test_key() -> PathBuf {
    fixtures().join("keys/test-only.key")
}

/// The fingerprint of the fixtures' test key (`fixtures/keys/test-only.key.pub`).
pub(crate) const TEST_KEY_FINGERPRINT: &str =
    "cdb42def20b3620aba4e4fbea6827ac4602eb7e2a06f8a1cda94e98010082b4d";

pub(crate) fn test_pub() -> PathBuf {
    fixtures().join("keys/test-only.key.pub")
}

/// One finished run of bsi.
#[derive(Debug)]
pub(crate) struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub(crate) fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    #[track_caller]
    pub(crate) fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "bsi {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub(crate) fn ok(&self) -> &Self {
        self.exit(0)
    }
    #[track_caller]
    pub(crate) fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "bsi {:?}: stderr lacks {needle:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub(crate) fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "bsi {:?}: stdout lacks {needle:?}:\n{}",
            self.args,
            self.stdout()
        );
        self
    }
    /// A refusal: the exit code, a one-line `error:` message containing `needle`, a hint, no panic.
    #[track_caller]
    pub(crate) fn refused(&self, code: i32, needle: &str) -> &Self {
        self.exit(code).stderr_has(needle);
        let err = self.stderr();
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        self
    }
    /// Stdout as the typed view `T` (a test-only type that names every key).
    #[track_caller]
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "bsi {:?}: stdout is not the expected JSON ({e}):\n{}",
                self.args,
                self.stdout()
            )
        })
    }
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "bsi {:?}: stdout is not JSON ({e}):\n{}",
                self.args,
                self.stdout()
            )
        })
    }

    /// Stdout or stderr with the paths a test cannot know shown by name: each of `masks`
    /// (`[ROOT]` for the device root, `[TMP]` for a temp dir) and `[FIXTURES]`, as cargo's and
    /// just's tests show temporary paths.
    pub(crate) fn masked(text: &str, masks: &[(&Path, &str)]) -> String {
        let mut text = text.to_owned();
        for (path, name) in masks {
            text = text.replace(&path.display().to_string(), name);
        }
        text.replace(&fixtures().display().to_string(), "[FIXTURES]")
    }

    /// Expects exactly `want` on stderr, with the paths [`Run::masked`] names masked and
    /// [`same`]'s `[..]` standing for what a test cannot know (a pid, a time).
    #[track_caller]
    pub(crate) fn stderr_is(&self, masks: &[(&Path, &str)], want: &str) -> &Self {
        let got = Self::masked(&self.stderr(), masks);
        if !same(want, &got) {
            assert_eq!(got, want, "bsi {:?}: stderr", self.args);
        }
        self
    }

    /// Expects exactly `want` on stdout, as [`Run::stderr_is`] does on stderr.
    #[track_caller]
    pub(crate) fn stdout_is(&self, masks: &[(&Path, &str)], want: &str) -> &Self {
        let got = Self::masked(&self.stdout(), masks);
        if !same(want, &got) {
            assert_eq!(got, want, "bsi {:?}: stdout", self.args);
        }
        self
    }
}

/// Compares `text` with the golden file `tests/golden/NAME` (`BSI_UPDATE_GOLDEN=1` rewrites it),
/// naming the first line that differs.
#[track_caller]
pub(crate) fn golden(name: &str, text: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("BSI_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if want != text {
        let line = want
            .lines()
            .zip(text.lines())
            .position(|(w, g)| w != g)
            .unwrap_or_else(|| want.lines().count().min(text.lines().count()));
        panic!(
            "tests/golden/{name} differs from line {} on:\n  committed: {:?}\n  now:       {:?}\nreview it, then run BSI_UPDATE_GOLDEN=1 cargo test --all-features",
            line + 1,
            want.lines().nth(line).unwrap_or("(end)"),
            text.lines().nth(line).unwrap_or("(end)"),
        );
    }
}

/// Whether `got` is `want` line for line, where `[..]` in a line of `want` stands for any run
/// of characters within that line of `got` (as cargo's tests write it).
pub(crate) fn same(want: &str, got: &str) -> bool {
    let (want, got): (Vec<&str>, Vec<&str>) =
        (want.split('\n').collect(), got.split('\n').collect());
    want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| same_line(w, g))
}

fn same_line(want: &str, got: &str) -> bool {
    let mut parts = want.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[test]
fn a_wildcard_stands_for_any_run_within_one_line() {
    assert!(same("pid [..] waits", "pid 4242 waits"));
    assert!(same("a [..] b [..] c\nd", "a 1 b 2 c\nd"));
    assert!(same("[..]", "anything"));
    assert!(!same("pid [..] waits", "pid 4242 waits\nmore"));
    assert!(!same("pid [..] waits", "pid 42\n42 waits"));
    assert!(!same("exact", "exactly"));
    assert!(!same("a[..]ab", "ab"));
}

/// A bsi command line being built, in the style of just's and ripgrep's test harnesses:
/// `Cmd::new().arg("status").arg("--json").exit(0).stdout(..).run()`. What is expected is
/// checked exactly when it runs; anything left unset is not checked.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Cmd {
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    exit: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl Cmd {
    /// An empty command line.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the run.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The arguments so far.
    pub(crate) fn arguments(&self) -> &[std::ffi::OsString] {
        &self.args
    }

    /// Expects this exit code (0 unless set).
    pub(crate) fn exit(mut self, code: i32) -> Self {
        self.exit = Some(code);
        self
    }

    /// Expects exactly this on stdout.
    pub(crate) fn stdout(mut self, text: &str) -> Self {
        self.stdout = Some(text.to_owned());
        self
    }

    /// Expects exactly this on stderr.
    pub(crate) fn stderr(mut self, text: &str) -> Self {
        self.stderr = Some(text.to_owned());
        self
    }

    /// Runs bsi and checks the exit code (0 unless [`Cmd::exit`] said otherwise) and whatever
    /// output was expected.
    #[track_caller]
    pub(crate) fn run(self) -> Run {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let run = bsi_env(&self.args, &env);
        run.exit(self.exit.unwrap_or(0));
        if let Some(want) = &self.stdout
            && !same(want, &run.stdout())
        {
            assert_eq!(&run.stdout(), want, "bsi {:?}: stdout", run.args);
        }
        if let Some(want) = &self.stderr
            && !same(want, &run.stderr())
        {
            assert_eq!(&run.stderr(), want, "bsi {:?}: stderr", run.args);
        }
        run
    }
}

/// Runs bsi with `args` and no device root beyond what the args give.
pub(crate) fn bsi<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    bsi_env(args, &[])
}

/// Runs bsi with `args` and extra environment variables (e.g. `FAILPOINTS`).
pub(crate) fn bsi_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(bin())
        .args(&args)
        .env_remove("BSI_ROOT")
        .env_remove("FAILPOINTS")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run bsi");
    Run {
        args: args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        out,
    }
}

/// A simulated device in a temp dir.
pub(crate) struct Device {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Device {
    /// A default device (macOS 26.3.1, Apple silicon laptop) trusting the test key.
    pub(crate) fn new() -> Self {
        Self::with(&[])
    }

    /// A device made with extra `init` flags, trusting the test key.
    pub(crate) fn with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("device");
        let mut args: Vec<String> = vec![
            "init".into(),
            "--root".into(),
            root.display().to_string(),
            "--now".into(),
            NOW.into(),
            "--trust".into(),
            test_pub().display().to_string(),
        ];
        args.extend(flags.iter().map(|s| (*s).to_owned()));
        if !flags.contains(&"--enrollment-id") {
            // A fixed identifier keeps golden output stable.
            args.extend(["--enrollment-id".to_owned(), "TEST-DEVICE".to_owned()]);
        }
        bsi(&args).ok();
        Self { dir, root }
    }

    /// Runs bsi on this device at the fixed clock.
    pub(crate) fn bsi<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.bsi_at(NOW, args)
    }

    /// Runs bsi on this device at the clock `now`.
    pub(crate) fn bsi_at<I, S>(&self, now: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--now".into(),
            now.into(),
        ];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        bsi(all)
    }

    /// A [`Cmd`] on this device at the fixed clock.
    pub(crate) fn cmd(&self) -> Cmd {
        Cmd::new()
            .arg("--root")
            .arg(&self.root)
            .arg("--now")
            .arg(NOW)
    }

    /// `apply BUNDLE --restart`, which must succeed: the bundle's response is then active.
    #[track_caller]
    pub(crate) fn activate(&self, bundle: impl AsRef<std::ffi::OsStr>) {
        self.cmd().arg("apply").arg(bundle).arg("--restart").run();
    }

    /// `status --json`, typed: a key renamed, added or dropped fails here.
    #[track_caller]
    pub(crate) fn status(&self) -> Status {
        let run = self.bsi(["status", "--json"]);
        run.ok();
        serde_json::from_slice(&run.out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json does not match the typed view ({e}):\n{}",
                run.stdout()
            )
        })
    }

    /// `status --json` as raw JSON, for schema and golden checks.
    #[track_caller]
    pub(crate) fn status_json(&self) -> serde_json::Value {
        self.bsi(["status", "--json"]).ok().json()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a declaration (`Type`, `Identifier`, `ServerToken` "1", `Payload`) to a file
    /// beside the device and returns its path.
    #[allow(clippy::needless_pass_by_value)] // the call sites pass `json!(..)`
    pub(crate) fn declaration_file(
        &self,
        kind: &str,
        id: &str,
        payload: serde_json::Value,
    ) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("decl-{}.json", id.replace('/', "_")));
        let v = serde_json::json!({"Type": kind, "Identifier": id, "ServerToken": "1", "Payload": payload});
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        path
    }

    /// `policy set`s a declaration; returns the run (not checked).
    #[allow(clippy::needless_pass_by_value)] // the call sites pass `json!(..)`
    pub(crate) fn declare(&self, kind: &str, id: &str, payload: serde_json::Value) -> Run {
        let file = self.declaration_file(kind, id, payload);
        self.bsi(["policy".as_ref(), "set".as_ref(), file.as_os_str()])
    }

    /// `policy set`s a configuration and an activation of it (`<id>.activation`), as a server
    /// does; both must be accepted.
    #[track_caller]
    #[allow(clippy::needless_pass_by_value)] // the call sites pass `json!(..)`
    pub(crate) fn declare_active(&self, kind: &str, id: &str, payload: serde_json::Value) {
        self.declare(kind, id, payload).ok();
        self.declare(
            "com.apple.activation.simple",
            &format!("{id}.activation"),
            serde_json::json!({"StandardConfigurations": [id]}),
        )
        .ok();
    }

    /// A snapshot of the tree, without the records a refused command may change (I4).
    pub(crate) fn tree(&self) -> Tree {
        let mut t = Tree::of(&self.root);
        for rec in ["history.jsonl", "last-operation.json", "failure.json"] {
            t.0.remove(&format!("private/var/db/bsi/{rec}"));
        }
        t
    }

    /// Runs `args`, expecting a refusal with `code` and `needle`, and the tree unchanged.
    #[track_caller]
    pub(crate) fn refuses<I, S>(&self, args: I, code: i32, needle: &str) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let before = self.tree();
        let run = self.bsi(args);
        run.refused(code, needle);
        before.assert_same(&self.tree());
        run
    }
}

/// Paths to (kind, mode, content digest or link target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tree(pub BTreeMap<String, String>);

impl Tree {
    /// Leaves `rel` out of the comparison (a record a refusal writes, such as the history).
    pub(crate) fn forget(&mut self, rel: &str) {
        self.0.remove(rel);
    }

    pub(crate) fn of(root: &Path) -> Self {
        let mut map = BTreeMap::new();
        walk(root, root, &mut map);
        Tree(map)
    }

    #[track_caller]
    pub(crate) fn assert_same(&self, other: &Tree) {
        if self != other {
            let mut diff = String::new();
            for (k, v) in &self.0 {
                match other.0.get(k) {
                    None => diff.push_str(&format!("- {k} {v}\n")),
                    Some(w) if w != v => diff.push_str(&format!("~ {k} {v} -> {w}\n")),
                    _ => {}
                }
            }
            for (k, w) in &other.0 {
                if !self.0.contains_key(k) {
                    diff.push_str(&format!("+ {k} {w}\n"));
                }
            }
            panic!("the device tree changed:\n{diff}");
        }
    }
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            map.insert(
                rel,
                format!("link {}", std::fs::read_link(&p).unwrap().display()),
            );
        } else if meta.is_dir() {
            map.insert(rel, format!("dir {mode:o}"));
            walk(root, &p, map);
        } else if meta.is_file() {
            let digest = Sha256::digest(std::fs::read(&p).unwrap());
            map.insert(rel, format!("file {mode:o} {}", hex(&digest)));
        } else {
            // A FIFO or a device: never opened (it could block).
            map.insert(rel, format!("special {mode:o}"));
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Borrows owned (path, content) pairs for [`make_bundle`].
pub(crate) fn borrowed(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect()
}

/// Pads the bundle directory's `Info.plist` with `keys` unknown keys of 60,000 characters each
/// (publishers may add keys), signs it again with the test key, and returns the signed bytes.
pub(crate) fn pad_manifest(bundle: &Path, keys: usize) -> Vec<u8> {
    let info = bundle.join("Info.plist");
    let pad = "x".repeat(60_000);
    let padding: String = (0..keys)
        .map(|i| format!("<key>XPadding{i:03}</key><string>{pad}</string>\n"))
        .collect();
    let xml = std::fs::read_to_string(&info).unwrap();
    std::fs::write(
        &info,
        xml.replacen("<dict>", &format!("<dict>\n{padding}"), 1),
    )
    .unwrap();
    sign(bundle).ok();
    std::fs::read(&info).unwrap()
}

/// Makes a signed bundle directory from file lists, with bsi's own commands.
pub(crate) fn make_bundle(
    dir: &Path,
    name: &str,
    product: &str,
    version: &str,
    prerequisite: &str,
    extra: &str,
    build: &str,
    os: &[(&str, &[u8])],
    app: &[(&str, &[u8])],
) -> PathBuf {
    let src = dir.join(format!("{name}.src"));
    let mut args: Vec<String> = vec![
        "bundle".into(),
        "create".into(),
        "--product".into(),
        product.into(),
        "--version".into(),
        version.into(),
        "--prerequisite".into(),
        prerequisite.into(),
        "--extra".into(),
        extra.into(),
        "--build".into(),
        build.into(),
    ];
    for (cryptex, files) in [("os", os), ("app", app)] {
        if files.is_empty() {
            continue;
        }
        let tree = src.join(cryptex);
        for (path, bytes) in files {
            let p = tree.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        args.push(format!("--{cryptex}"));
        args.push(tree.display().to_string());
    }
    let out = dir.join(name);
    args.push("--out".into());
    args.push(out.display().to_string());
    bsi(&args).ok();
    sign(&out).ok();
    out
}

/// `bsi bundle sign BUNDLE --key <the test key>`.
pub(crate) fn sign(bundle: &Path) -> Run {
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        bundle.as_os_str(),
        "--key".as_ref(),
        test_key().as_os_str(),
    ])
}

/// Checks `instance` against the JSON Schema `schema` with a real validator (the `jsonschema`
/// crate), closed: an object may hold only the properties its schema lists, so a key bsi prints
/// but the schema does not document fails too.
#[track_caller]
pub(crate) fn assert_matches_schema(schema: &serde_json::Value, instance: &serde_json::Value) {
    let mut closed = schema.clone();
    close(&mut closed);
    let validator = jsonschema::validator_for(&closed).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the document does not match its schema:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// Adds `additionalProperties: false` wherever a schema lists `properties` and says nothing of
/// others.
fn close(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), false.into());
            }
            map.values_mut().for_each(close);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}
