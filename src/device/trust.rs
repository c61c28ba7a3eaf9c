//! The device's trusted keys (`private/var/db/bsi/trust/<fingerprint>.pub`): `bsi trust add`,
//! `list` and `remove`, and loading them to check a bundle's signature.

use std::path::{Path, PathBuf};

use crate::bundle::keys::{self, PublicKey};
use crate::device::layout::TRUST;
use crate::device::{Root, records};
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::refusal::NotFound;
use crate::{Error, Result};

pub(crate) use keys::read_public_key;

/// Shortest fingerprint prefix `trust remove` accepts.
const MIN_PREFIX: usize = 8;

/// A key the device trusts, with every file under `trust/` that holds it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct TrustedKey {
    /// Hex SHA-256 of the raw public key.
    pub fingerprint: String,
    /// The files under the device root that hold it (normally one).
    pub files: Vec<PathBuf>,
}

fn key_path(fingerprint: &str) -> PathBuf {
    Path::new(TRUST).join(format!("{fingerprint}.pub"))
}

/// The file `trust add` writes for a key, relative to the device root.
#[must_use]
pub(crate) fn key_file(fingerprint: &str) -> PathBuf {
    key_path(fingerprint)
}

/// Adds `key` to the device's trust. Returns false if it was already trusted.
pub(crate) fn install(root: &Root, key: &PublicKey) -> Result<bool> {
    let rel = key_path(&key.fingerprint);
    if root.exists_nofollow(&rel).ctx("reading", root.show(&rel))? {
        return Ok(false);
    }
    root.dir()
        .create_dir_all(TRUST)
        .ctx("creating", root.show(TRUST))?;
    root.write_atomic(&rel, key.to_pem().as_bytes(), 0o644)
        .ctx("writing", root.show(&rel))?;
    Ok(true)
}

/// Every `trust/*.pub` file with the key it holds: the one source of truth for what the device
/// trusts (verification, `trust list` and `trust remove` all read it).
fn files(root: &Root) -> Result<Vec<(PathBuf, PublicKey)>> {
    let mut out = Vec::new();
    let dir = match root.open_dir_strict(TRUST) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Ok(out),
        Err(e) => return Err(records::read_error(root, TRUST, e)),
    };
    for entry in dir.entries().ctx("listing", root.show(TRUST))? {
        let name = entry.ctx("listing", root.show(TRUST))?.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".pub") || name.starts_with('.') {
            continue;
        }
        let rel = Path::new(TRUST).join(name.as_ref());
        let bytes = root
            .read_small(&rel)
            .map_err(|e| records::read_error(root, &rel, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let key = keys::parse_public_key(&text, &root.show(&rel))
            .map_err(|e| Error::damaged(format!("a trusted key is not one: {e}")))?;
        out.push((rel, key));
    }
    out.sort_by(|a, b| (&a.1.fingerprint, &a.0).cmp(&(&b.1.fingerprint, &b.0)));
    Ok(out)
}

/// Every trusted key, by fingerprint (a key held by several files once).
pub(crate) fn load(root: &Root) -> Result<Vec<PublicKey>> {
    let mut out: Vec<PublicKey> = Vec::new();
    for (_, key) in files(root)? {
        if out.last().is_none_or(|k| k.fingerprint != key.fingerprint) {
            out.push(key);
        }
    }
    Ok(out)
}

/// The trusted keys, each with every file that holds it.
pub(crate) fn list(root: &Root) -> Result<Vec<TrustedKey>> {
    let mut out: Vec<TrustedKey> = Vec::new();
    for (rel, key) in files(root)? {
        match out.last_mut() {
            Some(k) if k.fingerprint == key.fingerprint => k.files.push(root.show(&rel)),
            _ => out.push(TrustedKey {
                fingerprint: key.fingerprint,
                files: vec![root.show(&rel)],
            }),
        }
    }
    Ok(out)
}

/// Finds the key whose fingerprint starts with `which` (at least 8 hex digits) or that the
/// `.pub` file `which` holds; returns its fingerprint and every file under `trust/` holding it.
pub(crate) fn find(root: &Root, which: &str) -> Result<(String, Vec<PathBuf>)> {
    let looks_like_file = Path::new(which)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pub"));
    let wanted = if looks_like_file || Path::new(which).is_file() {
        keys::read_public_key(Path::new(which))?.fingerprint
    } else {
        which.trim().to_lowercase()
    };
    if wanted.len() < MIN_PREFIX || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::usage(
            format!(
                "`{}` is neither a key file nor a fingerprint prefix",
                crate::untrusted::clip(which)
            ),
            format!("give at least {MIN_PREFIX} hex digits of a fingerprint from `bsi trust list`"),
        ));
    }
    let all = files(root)?;
    let mut fingerprints: Vec<&str> = all
        .iter()
        .map(|(_, k)| k.fingerprint.as_str())
        .filter(|f| f.starts_with(&wanted))
        .collect();
    fingerprints.dedup();
    match fingerprints.as_slice() {
        [fp] => {
            let fp = (*fp).to_owned();
            let holding = all
                .iter()
                .filter(|(_, k)| k.fingerprint == fp)
                .map(|(rel, _)| rel.clone())
                .collect();
            Ok((fp, holding))
        }
        [] => Err(NotFound::NoSuchKey {
            fingerprint: wanted,
        }
        .into()),
        _ => Err(Error::usage(
            format!("{} trusted keys match {wanted}", fingerprints.len()),
            "give more digits of the fingerprint",
        )),
    }
}

/// Removes the key files `files` (relative to the root), each durably.
pub(crate) fn remove(root: &Root, files: &[PathBuf]) -> Result<()> {
    for rel in files {
        root.remove_durable(rel).ctx("removing", root.show(rel))?;
    }
    Ok(())
}

/// The keys as `bsi trust list` prints them.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct TrustList(pub Vec<TrustedKey>);

impl Human for TrustList {
    fn human(&self, out: &mut Text, _: u8) {
        if self.0.is_empty() {
            out.line("the device trusts no keys (add one with `bsi trust add KEY.pub`)");
        }
        for k in &self.0 {
            let files: Vec<String> = k.files.iter().map(|f| f.display().to_string()).collect();
            out.line(format!("{}  {}", k.fingerprint, files.join(", ")));
        }
    }
}
