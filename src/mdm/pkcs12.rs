//! A `com.apple.security.pkcs12` identity (RFC 7292): the certificate and private key a PFX
//! holds, decrypted with the payload's `Password`. Both encryptions OpenSSL writes are read:
//! PBES2 (PBKDF2 and AES, OpenSSL 3's default) and the legacy PKCS #12 schemes
//! (`pbeWithSHAAnd3-KeyTripleDES-CBC` for keys, `pbeWithSHAAnd40BitRC2-CBC` for
//! certificates). The integrity MAC (HMAC-SHA-1 or -SHA-256) is checked before anything is
//! used. A PFX is untrusted input: decoded by `der`, every count bounded by its size.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyIvInit};
use cms::content_info::ContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::pki::{Identity, Key};

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const PBE_SHA_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The most iterations a PFX may ask of its key derivations (OpenSSL writes 2048).
const MAX_ITERATIONS: u64 = 1_000_000;

#[derive(Sequence)]
struct Pfx {
    version: u8,
    auth_safe: ContentInfo,
    mac_data: Option<MacData>,
}

#[derive(Sequence)]
struct MacData {
    mac: DigestInfo,
    mac_salt: OctetString,
    #[asn1(default = "one")]
    iterations: u64,
}

fn one() -> u64 {
    1
}

#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Sequence)]
#[allow(
    clippy::struct_field_names,
    reason = "the field names of RFC 7292's ASN.1"
)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: Any,
    bag_attributes: Option<SetOfVec<x509_cert::attr::Attribute>>,
}

#[derive(Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetString,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    data: OctetString,
}

#[derive(Sequence)]
struct PbeParameters {
    salt: OctetString,
    iterations: u64,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {}", crate::untrusted::clip(&e.to_string()))
}

/// The password as PKCS #12's key derivation takes it: UTF-16BE with a trailing NUL.
fn bmp(password: &str) -> Vec<u8> {
    let mut out: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    out.extend([0, 0]);
    out
}

/// RFC 7292 appendix B.2: `n` bytes of key material for purpose `id` (1 key, 2 IV, 3 MAC).
#[allow(
    clippy::many_single_char_names,
    reason = "the names of RFC 7292's algorithm"
)]
fn derive<D: Digest + sha2::digest::common::BlockSizeUser>(
    password: &[u8],
    salt: &[u8],
    iterations: u64,
    id: u8,
    n: usize,
) -> Vec<u8> {
    let v = <D as sha2::digest::common::BlockSizeUser>::block_size();
    let fill = |s: &[u8]| -> Vec<u8> {
        if s.is_empty() {
            return Vec::new();
        }
        let len = v * s.len().div_ceil(v);
        s.iter().copied().cycle().take(len).collect()
    };
    let mut i = fill(salt);
    i.extend(fill(password));
    let d = vec![id; v];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut a = D::new()
            .chain_update(&d)
            .chain_update(&i)
            .finalize()
            .to_vec();
        for _ in 1..iterations {
            a = D::digest(&a).to_vec();
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            break;
        }
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for chunk in i.chunks_mut(v) {
            // chunk = (chunk + b + 1) mod 2^(8v)
            let mut carry = 1u16;
            for (x, y) in chunk.iter_mut().zip(b.iter()).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn check_iterations(n: u64) -> Result<u64, String> {
    if n == 0 || n > MAX_ITERATIONS {
        return Err(format!(
            "it asks for {n} key-derivation iterations; bsi takes 1 to {MAX_ITERATIONS}"
        ));
    }
    Ok(n)
}

fn check_mac(pfx: &Pfx, content: &[u8], password: &str) -> Result<(), String> {
    let Some(mac) = &pfx.mac_data else {
        return Ok(());
    };
    let iterations = check_iterations(mac.iterations)?;
    let salt = mac.mac_salt.as_bytes();
    let pw = bmp(password);
    let ours = match mac.mac.algorithm.oid {
        SHA1 => {
            let key = derive::<sha1::Sha1>(&pw, salt, iterations, 3, 20);
            let mut h =
                hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).map_err(|e| err("MAC", e))?;
            h.update(content);
            h.finalize().into_bytes().to_vec()
        }
        SHA256 => {
            let key = derive::<sha2::Sha256>(&pw, salt, iterations, 3, 32);
            let mut h =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| err("MAC", e))?;
            h.update(content);
            h.finalize().into_bytes().to_vec()
        }
        other => {
            return Err(format!(
                "its MAC uses the digest {other}, which bsi does not implement"
            ));
        }
    };
    if ours == mac.mac.digest.as_bytes() {
        Ok(())
    } else {
        Err("its MAC does not match: the password is wrong, or the file was changed".to_owned())
    }
}

/// Decrypts `data` encrypted with `algorithm` under `password`.
fn decrypt(
    algorithm: &AlgorithmIdentifierOwned,
    data: &[u8],
    password: &str,
) -> Result<Vec<u8>, String> {
    let oid = algorithm.oid;
    if oid == PBE_SHA_3DES || oid == PBE_SHA_RC2_40 || oid == PBE_SHA_RC2_128 {
        let params: PbeParameters = algorithm
            .parameters
            .as_ref()
            .ok_or("its PBE has no parameters")?
            .decode_as()
            .map_err(|e| err("its PBE parameters", e))?;
        let iterations = check_iterations(params.iterations)?;
        let pw = bmp(password);
        let salt = params.salt.as_bytes();
        let wrong = |_| "it does not decrypt: the password is wrong".to_owned();
        return if oid == PBE_SHA_3DES {
            let key = derive::<sha1::Sha1>(&pw, salt, iterations, 1, 24);
            let iv = derive::<sha1::Sha1>(&pw, salt, iterations, 2, 8);
            cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(|e| err("3DES", e))?
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(wrong)
        } else {
            let bits = if oid == PBE_SHA_RC2_40 { 40 } else { 128 };
            let key = derive::<sha1::Sha1>(&pw, salt, iterations, 1, bits / 8);
            let iv = derive::<sha1::Sha1>(&pw, salt, iterations, 2, 8);
            let cipher = rc2::Rc2::new_with_eff_key_len(&key, bits);
            cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
                .map_err(|e| err("RC2", e))?
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(wrong)
        };
    }
    let der = algorithm.to_der().map_err(|e| err("its encryption", e))?;
    let scheme = pkcs5::EncryptionScheme::try_from(der.as_slice())
        .map_err(|_| format!("it is encrypted with {oid}, which bsi does not implement"))?;
    if let pkcs5::EncryptionScheme::Pbes2(p) = &scheme
        && let pkcs5::pbes2::Kdf::Pbkdf2(k) = &p.kdf
    {
        check_iterations(u64::from(k.iteration_count))?;
    }
    scheme
        .decrypt(password.as_bytes(), data)
        .map_err(|_| "it does not decrypt: the password is wrong".to_owned())
}

fn bags(bytes: &[u8]) -> Result<Vec<SafeBag>, String> {
    Vec::<SafeBag>::from_der(bytes).map_err(|e| err("its safe contents", e))
}

/// The identity a PKCS #12 file holds.
pub(crate) fn identity(pfx: &[u8], password: Option<&str>) -> Result<Identity, String> {
    let password = password.unwrap_or("");
    let pfx = Pfx::from_der(pfx).map_err(|e| err("not a PKCS #12 file", e))?;
    if pfx.version != 3 || pfx.auth_safe.content_type != DATA {
        return Err("not a PKCS #12 (version 3, password-protected) file".to_owned());
    }
    let content: OctetString = pfx
        .auth_safe
        .content
        .decode_as()
        .map_err(|e| err("its content", e))?;
    check_mac(&pfx, content.as_bytes(), password)?;
    let safes =
        Vec::<ContentInfo>::from_der(content.as_bytes()).map_err(|e| err("its safes", e))?;
    let mut all = Vec::new();
    for safe in safes {
        if safe.content_type == DATA {
            let inner: OctetString = safe.content.decode_as().map_err(|e| err("a safe", e))?;
            all.extend(bags(inner.as_bytes())?);
        } else if safe.content_type == ENCRYPTED_DATA {
            let ed: cms::encrypted_data::EncryptedData = safe
                .content
                .decode_as()
                .map_err(|e| err("an encrypted safe", e))?;
            let data = ed
                .enc_content_info
                .encrypted_content
                .ok_or("an encrypted safe is empty")?;
            let plain = decrypt(
                &ed.enc_content_info.content_enc_alg,
                data.as_bytes(),
                password,
            )?;
            all.extend(bags(&plain)?);
        }
    }
    let mut certs = Vec::new();
    let mut key = None;
    for bag in all {
        if bag.bag_id == CERT_BAG {
            let cb: CertBag = bag
                .bag_value
                .decode_as()
                .map_err(|e| err("a certificate bag", e))?;
            if cb.cert_id == X509_CERT {
                certs.push(
                    Certificate::from_der(cb.cert_value.as_bytes())
                        .map_err(|e| err("a certificate", e))?,
                );
            }
        } else if bag.bag_id == SHROUDED_KEY_BAG || bag.bag_id == KEY_BAG {
            let pkcs8 = if bag.bag_id == KEY_BAG {
                bag.bag_value.to_der().map_err(|e| err("a key bag", e))?
            } else {
                let enc: EncryptedPrivateKeyInfo =
                    bag.bag_value.decode_as().map_err(|e| err("a key bag", e))?;
                decrypt(&enc.algorithm, enc.data.as_bytes(), password)?
            };
            let pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &pkcs8)
                .map_err(|e| err("the key", e))?;
            key = Some(Key::from_pem(&pem).map_err(|e| e.0)?);
        }
    }
    let key = key.ok_or("it holds no private key")?;
    let public = key
        .public()
        .map_err(|e| e.0)?
        .to_der()
        .map_err(|e| err("the key", e))?;
    let cert = certs
        .into_iter()
        .find(|c| {
            c.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .ok()
                .as_deref()
                == Some(&public)
        })
        .ok_or("it holds no certificate for its private key")?;
    Ok(Identity::new(cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_derivation_matches_rfc_7292() {
        // A known answer (from OpenSSL's PKCS12_key_gen_uni): password "smeg", salt
        // 0A58CF64530D823F, one iteration, ID 1, 24 bytes, SHA-1.
        let salt = [0x0A, 0x58, 0xCF, 0x64, 0x53, 0x0D, 0x82, 0x3F];
        let key = derive::<sha1::Sha1>(&bmp("smeg"), &salt, 1, 1, 24);
        assert_eq!(
            key,
            [
                0x8A, 0xAA, 0xE6, 0x29, 0x7B, 0x6C, 0xB0, 0x46, 0x42, 0xAB, 0x5B, 0x07, 0x78, 0x51,
                0x28, 0x4E, 0xB7, 0x12, 0x8F, 0x1A, 0x2A, 0x7F, 0xBC, 0xA3
            ]
        );
    }

    #[test]
    fn every_encryption_openssl_writes_is_read() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mdm");
        for name in [
            "identity-aes256.p12",
            "identity-3des.p12",
            "identity-legacy-rc2.p12",
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let id = identity(&bytes, Some("secret")).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(id.subject(), "CN=bsi pkcs12 test", "{name}");
            let wrong = identity(&bytes, Some("nope")).unwrap_err();
            assert!(wrong.contains("password is wrong"), "{name}: {wrong}");
        }
    }

    #[test]
    fn what_is_not_a_pfx_is_refused() {
        assert!(
            identity(b"junk", None)
                .unwrap_err()
                .contains("not a PKCS #12")
        );
    }
}
