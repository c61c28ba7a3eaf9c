//! The bundles the random sequences apply: two bases and a later major release on macOS, two
//! bases on iOS, OS+App, OS-only and App-only responses, a build letter that differs from the
//! public letter, one whose build contradicts another's, and a tampered one. Made once per test
//! process with bsi's own `bundle create` and `bundle sign` and the test key, with their
//! expected content trees computed here from the files that went in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::harness::{bsi, test_key};
use crate::rules::{Build, Bundle, Platform, Target};

/// One pool bundle on disk, with what its cryptexes hold.
#[derive(Debug)]
pub(crate) struct Made {
    pub(crate) path: PathBuf,
    /// Expected trees, path -> "file MODE SHA256" (directories as "dir 755").
    pub(crate) os: BTreeMap<String, String>,
    pub(crate) app: BTreeMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct Pool {
    _dir: tempfile::TempDir,
    pub(crate) bundles: &'static [Bundle],
    pub(crate) made: Vec<Made>,
}

const fn b(
    name: &'static str,
    platform: Platform,
    version: (u32, u32, u32),
    prerequisite: &'static str,
    letter: u32,
    build: &'static str,
    os: bool,
    app: bool,
    tampered: bool,
) -> Bundle {
    Bundle {
        name,
        platform,
        version,
        prerequisite: Build(prerequisite),
        letter,
        build: Build(build),
        os,
        app,
        tampered,
    }
}

const M: Platform = Platform::Mac;
const I: Platform = Platform::IPhone;

/// The pool, as the model sees it.
pub(crate) static BUNDLES: [Bundle; 13] = [
    b(
        "m-a",
        M,
        (26, 3, 1),
        "25D2128",
        1,
        "25D771280a",
        true,
        true,
        false,
    ),
    b(
        "m-b-os",
        M,
        (26, 3, 1),
        "25D2128",
        2,
        "25D771280b",
        true,
        false,
        false,
    ),
    b(
        "m-c",
        M,
        (26, 3, 1),
        "25D2128",
        3,
        "25D771280c",
        true,
        true,
        false,
    ),
    b(
        "m-d-app",
        M,
        (26, 3, 1),
        "25D2128",
        4,
        "25D771280d",
        false,
        true,
        false,
    ),
    // (e) carries build letter b: it contradicts (b) when the device holds (b).
    b(
        "m-e-clash",
        M,
        (26, 3, 1),
        "25D2128",
        5,
        "25D771280b",
        true,
        true,
        false,
    ),
    b(
        "m-f-tampered",
        M,
        (26, 3, 1),
        "25D2128",
        6,
        "25D771280f",
        true,
        true,
        true,
    ),
    b(
        "m-26.4-a-app",
        M,
        (26, 4, 0),
        "25E100",
        1,
        "25E771000a",
        false,
        true,
        false,
    ),
    // The build letter need not be the public letter.
    b(
        "m-26.4-b",
        M,
        (26, 4, 0),
        "25E100",
        2,
        "25E771000c",
        true,
        true,
        false,
    ),
    b(
        "m-27.0-a",
        M,
        (27, 0, 0),
        "26A100",
        1,
        "26A771000a",
        true,
        true,
        false,
    ),
    b(
        "i-a",
        I,
        (26, 3, 1),
        "23D8133",
        1,
        "23D771330a",
        true,
        true,
        false,
    ),
    b(
        "i-b-app",
        I,
        (26, 3, 1),
        "23D8133",
        2,
        "23D771330b",
        false,
        true,
        false,
    ),
    b(
        "i-26.4-a-os",
        I,
        (26, 4, 0),
        "23E100",
        1,
        "23E771000a",
        true,
        false,
        false,
    ),
    b(
        "i-27.0-a",
        I,
        (27, 0, 0),
        "24A100",
        1,
        "24A771000a",
        true,
        true,
        false,
    ),
];

/// Bases `update` and `upgrade` may be asked to move to (valid and invalid ones).
pub(crate) fn targets() -> Vec<Target> {
    let t = |version, build| Target {
        version,
        build: Build(build),
    };
    vec![
        t((26, 3, 2), "25D2128"),    // the current build reused: exit 2
        t((26, 3, 2), "25D2140"),    // a later number, same train
        t((26, 4, 0), "25E100"),     // a later train
        t((26, 4, 0), "24A100"),     // an older release's build: exit 2
        t((26, 4, 0), "25E771000a"), // a response build: exit 2
        t((27, 0, 0), "26A100"),     // a major upgrade
        t((27, 0, 0), "25F100"),     // a major version on a minor build: exit 2
        t((26, 3, 0), "25C100"),     // a downgrade: exit 5
        t((26, 4, 0), "23E100"),     // iOS
        t((27, 0, 0), "24A100"),     // iOS
    ]
}

fn files_for(name: &str, cryptex: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        format!("System/Library/{cryptex}/{name}.bin"),
        format!("{name} {cryptex}\n").repeat(40).into_bytes(),
    )];
    if cryptex == "App" {
        out.push((
            "Applications/Safari.app/Contents/Info.plist".to_owned(),
            format!("<plist><string>{name}</string></plist>\n").into_bytes(),
        ));
    } else {
        out.push((
            "usr/lib/libwebrtc.dylib".to_owned(),
            format!("webrtc {name}\n").repeat(100).into_bytes(),
        ));
    }
    out
}

fn tree_of(files: &[(String, Vec<u8>)]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (path, bytes) in files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            map.insert(p.display().to_string(), "dir 755".to_owned());
            parent = p.parent();
        }
        let digest: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        map.insert(path.clone(), format!("file 644 {digest}"));
    }
    map
}

fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
}

fn make(dir: &Path, bundle: &Bundle) -> Made {
    let src = dir.join(format!("{}.src", bundle.name));
    let out = dir.join(format!("{}.bsi", bundle.name));
    let version = crate::rules::version_text(bundle.version);
    let extra = format!("({})", crate::rules::letter_text(bundle.letter));
    let mut args: Vec<String> = [
        "bundle",
        "create",
        "--product",
        bundle.platform.name(),
        "--version",
        &version,
        "--prerequisite",
        bundle.prerequisite.0,
        "--extra",
        &extra,
        "--build",
        bundle.build.0,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let os = files_for(bundle.name, "OS");
    let app = files_for(bundle.name, "App");
    if bundle.os {
        write_tree(&src.join("os"), &os);
        args.extend(["--os".to_owned(), src.join("os").display().to_string()]);
    }
    if bundle.app {
        write_tree(&src.join("app"), &app);
        args.extend(["--app".to_owned(), src.join("app").display().to_string()]);
    }
    args.extend(["--out".to_owned(), out.display().to_string()]);
    bsi(&args).ok();
    bsi([
        "bundle".as_ref(),
        "sign".as_ref(),
        out.as_os_str(),
        "--key".as_ref(),
        test_key().as_os_str(),
    ])
    .ok();
    if bundle.tampered {
        let manifest = out.join("Info.plist");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("<key>BundleFormatVersion</key>", "<key>Description</key><string>changed after signing</string><key>BundleFormatVersion</key>"),
        )
        .unwrap();
    }
    Made {
        path: out,
        os: if bundle.os {
            tree_of(&os)
        } else {
            BTreeMap::new()
        },
        app: if bundle.app {
            tree_of(&app)
        } else {
            BTreeMap::new()
        },
    }
}

/// The pool, made once per test process.
pub(crate) fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let made = BUNDLES.iter().map(|b| make(dir.path(), b)).collect();
        Pool {
            _dir: dir,
            bundles: &BUNDLES,
            made,
        }
    })
}
