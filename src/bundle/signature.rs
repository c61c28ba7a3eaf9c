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
    let signature = parse(signature, trusted)?;
    trusted
        .iter()
        .find(|k| k.key.verify_strict(manifest, &signature).is_ok())
        .ok_or_else(|| refusal(manifest, trusted))
}

/// The same check as [`verify`], over a manifest fed in pieces ([`Streaming::update`]), so that
/// a large one is never held whole: for installing, which copies it to a private file as it
/// reads it. As strict as `verify_strict`: the signature's `R` must be a point that is not of
/// small order, no weak (small-order) key verifies anything, and `s` must be canonical.
pub(crate) struct Streaming<'k> {
    candidates: Vec<(&'k PublicKey, ed25519_dalek::StreamVerifier)>,
}

impl<'k> Streaming<'k> {
    /// Starts a check of `signature` against `trusted`; refuses a malformed signature and an
    /// empty trust list at once, as [`verify`] does.
    pub(crate) fn new(signature: &[u8], trusted: &'k [PublicKey]) -> Result<Self, BundleError> {
        let signature = parse(signature, trusted)?;
        let r_usable = curve25519_dalek::edwards::CompressedEdwardsY(*signature.r_bytes())
            .decompress()
            .is_some_and(|r| !r.is_small_order());
        let candidates = if r_usable {
            trusted
                .iter()
                .filter(|k| !k.key.is_weak())
                .filter_map(|k| k.key.verify_stream(&signature).ok().map(|v| (k, v)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self { candidates })
    }

    /// Feeds the next piece of the manifest.
    pub(crate) fn update(&mut self, piece: &[u8]) {
        for (_, verifier) in &mut self.candidates {
            verifier.update(piece);
        }
    }

    /// The trusted key whose signature the manifest carries, if any (if none, the caller words
    /// the refusal with [`refusal`] over the bytes it read).
    pub(crate) fn finish(self) -> Option<&'k PublicKey> {
        self.candidates
            .into_iter()
            .find_map(|(key, verifier)| verifier.finalize_and_verify().is_ok().then_some(key))
    }
}

/// The signature, once its length and the trust list are checked.
fn parse(signature: &[u8], trusted: &[PublicKey]) -> Result<Signature, BundleError> {
    if signature.len() != SIGNATURE_BYTES {
        return Err(BundleError::Signature {
            message: format!(
                "malformed: {} bytes, but an Ed25519 signature is {SIGNATURE_BYTES} bytes",
                signature.len()
            ),
        });
    }
    let bytes: [u8; SIGNATURE_BYTES] = signature.try_into().unwrap_or([0; SIGNATURE_BYTES]);
    if trusted.is_empty() {
        return Err(BundleError::Untrusted {
            message: "no key to check the signature against: the device trusts no keys".to_owned(),
        });
    }
    Ok(Signature::from_bytes(&bytes))
}

/// Why no trusted key verifies `manifest`, by whom the manifest says signed it.
pub(crate) fn refusal(manifest: &[u8], trusted: &[PublicKey]) -> BundleError {
    // Who does the manifest say signed it? (Read bounded, only for this message.)
    match super::manifest_xml::signer_claim(manifest) {
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
            let names: Vec<String> = trusted.iter().map(|k| short(&k.fingerprint)).collect();
            BundleError::Untrusted {
                message: format!(
                    "the signature does not verify against Info.plist with any trusted key ({}): \
                             Info.plist was changed after signing, or it was signed by a key this device does not trust",
                    names.join(", ")
                ),
            }
        }
    }
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

    /// The streaming check in pieces of `piece` bytes: the key it finds, as a fingerprint.
    fn streamed(
        manifest: &[u8],
        sig: &[u8],
        trusted: &[PublicKey],
        piece: usize,
    ) -> Result<Option<String>, ()> {
        let mut check = Streaming::new(sig, trusted).map_err(|_| ())?;
        for chunk in manifest.chunks(piece.max(1)) {
            check.update(chunk);
        }
        Ok(check.finish().map(|k| k.fingerprint.clone()))
    }

    /// The streaming check accepts exactly what `verify_strict` accepts, whatever the pieces:
    /// good, tampered and foreign signatures, a weak (small-order) key with two forgeries every
    /// message passes under a cofactorless check (`R` the identity and `s` zero; `R` the base
    /// point and `s` one), a signature whose `R` is the identity, a non-canonical
    /// `s`, and malformed signatures and trust lists.
    #[test]
    fn the_streaming_check_agrees_with_verify_strict() {
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = PublicKey::new(ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap());
        let trusted = [
            PublicKey::new(keys[0].verifying_key()),
            weak,
            PublicKey::new(keys[1].verifying_key()),
        ];
        let manifest: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut tampered = manifest.clone();
        tampered[5_000] ^= 1;
        let mut forgery = [0u8; 64];
        forgery[..32].copy_from_slice(&identity);
        // Under the weak key `[k]A` is the identity, so `R = B`, `s = 1` passes for any message
        // where `R` itself is not of small order: only the weak-key rule refuses it.
        let mut base_forgery = [0u8; 64];
        base_forgery[..32]
            .copy_from_slice(curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.as_bytes());
        base_forgery[32] = 1;
        // A key's holder can sign with `R` the identity (`s = k * a`): a cofactorless check
        // accepts it, `verify_strict` does not (`R` of small order).
        let identity_r = {
            use sha2::Digest as _;
            let digest = sha2::Sha512::new()
                .chain_update(identity)
                .chain_update(keys[0].verifying_key().as_bytes())
                .chain_update(&manifest);
            let k = curve25519_dalek::Scalar::from_hash(digest);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&identity);
            sig[32..].copy_from_slice((k * keys[0].to_scalar()).as_bytes());
            sig
        };
        let mut high_s = sign(&manifest, &keys[0]);
        high_s[63] |= 0xf0;
        let sigs: Vec<Vec<u8>> = vec![
            sign(&manifest, &keys[0]).to_vec(),
            sign(&manifest, &keys[1]).to_vec(),
            sign(&manifest, &keys[2]).to_vec(),
            forgery.to_vec(),
            base_forgery.to_vec(),
            identity_r.to_vec(),
            high_s.to_vec(),
            sign(&manifest, &keys[0])[..63].to_vec(),
        ];
        for sig in &sigs {
            for message in [&manifest, &tampered] {
                for trust in [&trusted[..], &trusted[1..2], &[]] {
                    let strict = verify(message, sig, trust).map(|k| k.fingerprint.clone());
                    for piece in [1, 64, 4096, message.len()] {
                        let streamed = streamed(message, sig, trust, piece);
                        match (&strict, &streamed) {
                            (Ok(a), Ok(Some(b))) => assert_eq!(a, b),
                            (
                                Err(BundleError::Signature { .. } | BundleError::Untrusted { .. }),
                                Err(()),
                            ) if sig.len() != SIGNATURE_BYTES || trust.is_empty() => {}
                            (Err(_), Ok(None)) => {}
                            other => panic!("strict and streamed disagree: {other:?}"),
                        }
                    }
                }
            }
        }
        // The forgery is what a cofactorless check alone would accept from the weak key.
        let cofactorless = ed25519_dalek::Verifier::verify(
            &trusted[1].key,
            &manifest,
            &Signature::from_bytes(&forgery),
        );
        assert!(cofactorless.is_ok());
        let cofactorless = ed25519_dalek::Verifier::verify(
            &trusted[0].key,
            &manifest,
            &Signature::from_bytes(&identity_r),
        );
        assert!(cofactorless.is_ok());
        let cofactorless = ed25519_dalek::Verifier::verify(
            &trusted[1].key,
            &tampered,
            &Signature::from_bytes(&base_forgery),
        );
        assert!(cofactorless.is_ok());
    }
}
