//! Ed25519 keys: `bsi key generate`, and reading keys from files.
//!
//! Keys are standard PEM (PKCS#8 for the private half, SPKI for the public half), so OpenSSL and
//! other tools can read and make them. Lines before the PEM block are allowed and ignored, so a
//! key file can carry a warning such as the test key's "test only" banner. The fingerprint is
//! the SHA-256 of the raw 32-byte public key, in hex.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::digest::Digest;
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::{Error, InputKind, Result};

/// A public key and its fingerprint.
#[derive(Clone, Debug)]
pub(crate) struct PublicKey {
    /// The key.
    pub key: VerifyingKey,
    /// Hex SHA-256 of the raw key.
    pub fingerprint: String,
}

impl PublicKey {
    /// Wraps a verifying key.
    #[must_use]
    pub(crate) fn new(key: VerifyingKey) -> Self {
        let fingerprint = Digest::of(key.as_bytes()).to_hex();
        Self { key, fingerprint }
    }

    /// The key as SPKI PEM.
    #[must_use]
    pub(crate) fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

/// What `key generate` wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Generated {
    /// The private key file.
    pub private_key: PathBuf,
    /// The public key file.
    pub public_key: PathBuf,
    /// The public key's fingerprint.
    pub fingerprint: String,
}

/// The `.pub` path that goes with a private key path.
#[must_use]
pub(crate) fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// An Ed25519 private key as a PKCS #8 v1 PEM block (RFC 8410: the seed alone, no public key),
/// the form every tool reads; OpenSSL 3.0 cannot read the v2 form, which adds the public key.
fn pkcs8_v1_pem(seed: &[u8; 32]) -> String {
    use base64::Engine as _;
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Makes a new key pair: `out` (mode 0600) and `out.pub`.
pub(crate) fn generate(out: &Path, force: bool) -> Result<Generated> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Io {
        action: "drawing random bytes for",
        path: out.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let signing = SigningKey::from_bytes(&seed);
    let public = PublicKey::new(signing.verifying_key());
    let private_pem = pkcs8_v1_pem(&seed);
    let pub_path = public_path(out);
    for path in [out, pub_path.as_path()] {
        if path.is_dir() {
            return Err(Error::usage(
                format!(
                    "{} is a directory; --out names the private key file to write",
                    path.display()
                ),
                format!(
                    "give a file path, e.g. `bsi key generate --out {}`",
                    crate::error::shell_word(&path.join("signing.key").display().to_string())
                ),
            ));
        }
        if path.exists() && !force {
            return Err(Error::usage(
                format!("{} already exists", path.display()),
                "choose another --out, or pass --force to overwrite it",
            ));
        }
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    write_file(out, private_pem.as_bytes(), 0o600)?;
    write_file(&pub_path, public.to_pem().as_bytes(), 0o644)?;
    Ok(Generated {
        private_key: out.to_path_buf(),
        public_key: pub_path,
        fingerprint: public.fingerprint,
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .ctx("creating", path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .ctx("setting the mode of", path)?;
    file.write_all(bytes).ctx("writing", path)?;
    file.sync_all().ctx("syncing", path)
}

/// The PEM block in `text`, skipping any banner lines before it.
fn pem_block(text: &str) -> Option<&str> {
    text.find("-----BEGIN ").map(|start| &text[start..])
}

/// Largest key file bsi reads: a PEM key is a few hundred bytes; room for a banner.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

fn read_text(path: &Path, what: &str, input: InputKind) -> Result<String> {
    let bytes = crate::input::read_named(path, MAX_KEY_FILE_BYTES, what)?;
    String::from_utf8(bytes).map_err(|_| Error::BadInput {
        input,
        message: format!("{} is not a PEM {what}: it is not text", path.display()),
    })
}

/// Reads an Ed25519 private key (PKCS#8 PEM).
pub(crate) fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = read_text(path, "private key", InputKind::PrivateKey)?;
    pem_block(&text)
        .and_then(|pem| SigningKey::from_pkcs8_pem(pem).ok())
        .ok_or_else(|| Error::BadInput {
            input: InputKind::PrivateKey,
            message: format!(
                "{} is not an Ed25519 private key in PKCS#8 PEM form",
                path.display()
            ),
        })
}

/// Parses an Ed25519 public key (SPKI PEM) from text; `shown` names it in errors.
pub(crate) fn parse_public_key(text: &str, shown: &Path) -> Result<PublicKey> {
    let Some(pem) = pem_block(text) else {
        return Err(Error::BadInput {
            input: InputKind::PublicKey,
            message: format!(
                "{} holds no PEM block; expected an Ed25519 public key",
                shown.display()
            ),
        });
    };
    if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Err(Error::BadInput {
            input: InputKind::PublicKey,
            message: format!(
                "{} is a private key; give its public half ({})",
                shown.display(),
                public_path(shown).display()
            ),
        });
    }
    let key = VerifyingKey::from_public_key_pem(pem).map_err(|_| Error::BadInput {
        input: InputKind::PublicKey,
        message: format!(
            "{} is not an Ed25519 public key in SPKI PEM form",
            shown.display()
        ),
    })?;
    // A key of small order (the identity among them) verifies signatures nobody made with it,
    // and bsi's check accepts none under it: trusting one could only mislead.
    if key.is_weak() {
        return Err(Error::BadInput {
            input: InputKind::PublicKey,
            message: format!(
                "{} is a weak Ed25519 key (a point of small order): no signature made with a real private key verifies with it",
                shown.display()
            ),
        });
    }
    Ok(PublicKey::new(key))
}

/// Reads an Ed25519 public key file.
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey> {
    parse_public_key(&read_text(path, "public key", InputKind::PublicKey)?, path)
}

impl Human for Generated {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(format!(
            "private key: {} (keep it secret)",
            self.private_key.display()
        ));
        out.line(format!("public key:  {}", self.public_key.display()));
        out.line(format!("fingerprint: {}", self.fingerprint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_with_banners() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        let g = generate(&out, false).unwrap();
        let signing = read_signing_key(&out).unwrap();
        let public = read_public_key(&g.public_key).unwrap();
        assert_eq!(signing.verifying_key(), public.key);
        assert_eq!(public.fingerprint, g.fingerprint);
        let mode = std::fs::metadata(&out).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let banner = format!("# TEST ONLY\n{}", std::fs::read_to_string(&out).unwrap());
        std::fs::write(&out, banner).unwrap();
        assert!(read_signing_key(&out).is_ok());
        assert!(generate(&out, false).is_err());
        let err = read_public_key(&out).unwrap_err().to_string();
        assert!(err.contains("is a private key"), "{err}");
    }
}
