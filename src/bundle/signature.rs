//! Signing and checking `Info.plist.sig`: a raw 64-byte Ed25519 signature over the exact bytes
//! of `Info.plist` (the same bytes `openssl pkeyutl -sign -rawin` produces). Verification is
//! strict (`verify_strict`: no malleable or small-order signatures) and must succeed with one of
//! the keys the device trusts.

use ed25519_dalek::{Signature, Signer, SigningKey};

use super::BundleError;
use super::keys::PublicKey;

/// Size of an Ed25519 signature.
pub(crate) const SIGNATURE_BYTES: usize = 64;

/// Signs manifest bytes.
#[must_use]
pub(crate) fn sign(manifest: &[u8], key: &SigningKey) -> [u8; SIGNATURE_BYTES] {
    key.sign(manifest).to_bytes()
}

/// Checks `signature` over `manifest` against `trusted`; returns the key that made it.
pub(crate) fn verify<'k>(
    manifest: &[u8],
    signature: &[u8],
    trusted: &'k [PublicKey],
) -> Result<&'k PublicKey, BundleError> {
    if signature.len() != SIGNATURE_BYTES {
        return Err(BundleError::Signature {
            message: format!(
                "malformed: {} bytes, but an Ed25519 signature is {SIGNATURE_BYTES} bytes",
                signature.len()
            ),
        });
    }
    let bytes: [u8; SIGNATURE_BYTES] = signature.try_into().unwrap_or([0; SIGNATURE_BYTES]);
    let signature = Signature::from_bytes(&bytes);
    if trusted.is_empty() {
        return Err(BundleError::Untrusted {
            message: "no key to check the signature against: the device trusts no keys".to_owned(),
        });
    }
    trusted
        .iter()
        .find(|k| k.key.verify_strict(manifest, &signature).is_ok())
        .ok_or_else(|| {
            // Who does the manifest say signed it? (Read bounded, only for this message.)
            match super::manifest::signer_claim(manifest) {
                Some(claimed) if trusted.iter().any(|k| k.fingerprint == claimed) => {
                    BundleError::Tampered {
                        message: format!(
                            "Info.plist was changed after key {} (trusted here) signed it: the signature no longer verifies",
                            short(&claimed)
                        ),
                    }
                }
                Some(claimed) => BundleError::Untrusted {
                    message: format!(
                        "signed by key {claimed}, which this device does not trust (it trusts {})",
                        trusted
                            .iter()
                            .map(|k| short(&k.fingerprint))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                None => {
                    let names: Vec<String> =
                        trusted.iter().map(|k| short(&k.fingerprint)).collect();
                    BundleError::Untrusted {
                        message: format!(
                            "the signature does not verify against Info.plist with any trusted key ({}): \
                             Info.plist was changed after signing, or it was signed by a key this device does not trust",
                            names.join(", ")
                        ),
                    }
                }
            }
        })
}

/// The first 16 hex digits of a fingerprint, for messages.
#[must_use]
pub(crate) fn short(fingerprint: &str) -> String {
    fingerprint.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_strictly() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let trusted = [PublicKey::new(key.verifying_key())];
        let sig = sign(b"manifest", &key);
        assert!(verify(b"manifest", &sig, &trusted).is_ok());
        assert!(matches!(
            verify(b"manifest!", &sig, &trusted),
            Err(BundleError::Untrusted { .. })
        ));
        let foreign = sign(b"manifest", &other);
        assert!(matches!(
            verify(b"manifest", &foreign, &trusted),
            Err(BundleError::Untrusted { .. })
        ));
        assert!(matches!(
            verify(b"manifest", &sig[..63], &trusted),
            Err(BundleError::Signature { .. })
        ));
        assert!(matches!(
            verify(b"manifest", &sig, &[]),
            Err(BundleError::Untrusted { .. })
        ));
    }
}
