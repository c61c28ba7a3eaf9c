//! Reading the CMS a server or CA sends, and enveloping to a CA: a `SignedData` (read, its
//! certificates and signed attributes, its signature checked against the certificate it
//! embeds, with SHA-1 to SHA-512 as signers use them), and `EnvelopedData` made for a CA and
//! opened with the device's key (RSA key transport; AES, 3DES or DES in CBC mode). Making
//! signatures is [`super::pki`]'s.

use cms::builder::{
    ContentEncryptionAlgorithm, EnvelopedDataBuilder, KeyEncryptionInfo,
    KeyTransRecipientInfoBuilder,
};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911::{ID_ENVELOPED_DATA, ID_SIGNED_DATA};
use der::asn1::OctetString;
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, PublicKey as RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::pki::{Key, PkiError, any, fail, rng};

/// `content` enveloped to `recipient` (an RSA certificate), AES-128-CBC, as a `ContentInfo`.
pub(crate) fn envelope(content: &[u8], recipient: &Certificate) -> Result<Vec<u8>, PkiError> {
    let tbs = recipient.tbs_certificate();
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| fail("reading the CA's key", e))?;
    let public = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| PkiError("the CA's certificate has no RSA key to encrypt to".to_owned()))?;
    let rid = RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let build = |e: cms::builder::Error| fail("enveloping", e);
    let mut env =
        EnvelopedDataBuilder::new(None, content, ContentEncryptionAlgorithm::Aes128Cbc, None)
            .map_err(build)?;
    env.add_recipient_info(
        KeyTransRecipientInfoBuilder::new(rid, KeyEncryptionInfo::Rsa(public)).map_err(build)?,
    )
    .map_err(build)?;
    let enveloped = env.build_with_rng(&mut rng()).map_err(build)?;
    ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: any(&enveloped)?,
    }
    .to_der()
    .map_err(|e| fail("encoding", e))
}

/// The plaintext of an `EnvelopedData` (a `ContentInfo`, DER) enveloped to `key`: RSA key
/// transport, then AES-128/192/256-CBC, 3DES-CBC or DES-CBC, as SCEP CAs answer.
pub(crate) fn open_envelope(der: &[u8], key: &Key) -> Result<Vec<u8>, PkiError> {
    let info = ContentInfo::from_der(der).map_err(|e| fail("reading the envelope", e))?;
    if info.content_type != ID_ENVELOPED_DATA {
        return Err(PkiError(format!(
            "expected enveloped data, found content type {}",
            info.content_type
        )));
    }
    let env: EnvelopedData = info
        .content
        .decode_as()
        .map_err(|e| fail("reading the envelope", e))?;
    let Key::Rsa(rsa_key) = key else {
        return Err(PkiError(
            "an enveloped answer needs an RSA key to open".to_owned(),
        ));
    };
    let Some(RecipientInfo::Ktri(ktri)) = env.recip_infos.0.iter().next() else {
        return Err(PkiError(
            "the envelope has no key-transport recipient".to_owned(),
        ));
    };
    let cek = rsa_key
        .decrypt(Pkcs1v15Encrypt, ktri.enc_key.as_bytes())
        .map_err(|_| PkiError("the envelope is not for this device's key".to_owned()))?;
    let content = env.encrypted_content;
    let iv: OctetString = content
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| PkiError("the envelope has no IV".to_owned()))?
        .decode_as()
        .map_err(|e| fail("reading the IV", e))?;
    let ciphertext = content
        .encrypted_content
        .ok_or_else(|| PkiError("the envelope is empty".to_owned()))?;
    decrypt_cbc(
        &content.content_enc_alg.oid.to_string(),
        &cek,
        iv.as_bytes(),
        ciphertext.as_bytes(),
    )
}

fn decrypt_cbc(oid: &str, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, PkiError> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    fn run<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, PkiError>
    where
        C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
    {
        cbc::Decryptor::<C>::new_from_slices(key, iv)
            .map_err(|_| PkiError("the envelope's key or IV has the wrong length".to_owned()))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| PkiError("the envelope does not decrypt".to_owned()))
    }
    match oid {
        "2.16.840.1.101.3.4.1.2" => run::<aes::Aes128>(key, iv, data),
        "2.16.840.1.101.3.4.1.22" => run::<aes::Aes192>(key, iv, data),
        "2.16.840.1.101.3.4.1.42" => run::<aes::Aes256>(key, iv, data),
        "1.2.840.113549.3.7" => run::<des::TdesEde3>(key, iv, data),
        "1.3.14.3.2.7" => run::<des::Des>(key, iv, data),
        other => Err(PkiError(format!(
            "the envelope uses the cipher {other}, which bsi does not implement"
        ))),
    }
}

/// A `SignedData` read from `der` (a `ContentInfo`).
pub(crate) fn read_signed(der: &[u8]) -> Result<SignedData, PkiError> {
    let info = ContentInfo::from_der(der).map_err(|e| fail("reading the signed message", e))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(PkiError(format!(
            "expected signed data, found content type {}",
            info.content_type
        )));
    }
    info.content
        .decode_as()
        .map_err(|e| fail("reading the signed message", e))
}

/// The certificates a `SignedData` carries.
#[must_use]
pub(crate) fn certificates(sd: &SignedData) -> Vec<Certificate> {
    sd.certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect()
}

/// The value of signed attribute `oid` of the first signer, as its content bytes.
#[must_use]
pub(crate) fn signed_attribute(sd: &SignedData, oid: ObjectIdentifier) -> Option<Vec<u8>> {
    let signer = sd.signer_infos.0.iter().next()?;
    let attrs = signer.signed_attrs.as_ref()?;
    let attr = attrs.iter().find(|a| a.oid == oid)?;
    attr.values.iter().next().map(|v| v.value().to_vec())
}

/// The encapsulated content of a `SignedData`, when it has one.
#[must_use]
pub(crate) fn content(sd: &SignedData) -> Option<Vec<u8>> {
    sd.encap_content_info
        .econtent
        .as_ref()
        .map(|c| c.value().to_vec())
}

/// Checks that the first signer's signature over the content holds with the certificate the
/// message embeds (the content's integrity; whether to trust the signer is the caller's).
pub(crate) fn verify_embedded(sd: &SignedData) -> Result<Certificate, PkiError> {
    let signer = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| PkiError("it has no signer".to_owned()))?;
    let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else {
        return Err(PkiError(
            "its signer is named by key identifier, which bsi does not read".to_owned(),
        ));
    };
    let cert = certificates(sd)
        .into_iter()
        .find(|c| {
            c.tbs_certificate().serial_number() == &id.serial_number
                && c.tbs_certificate().issuer() == &id.issuer
        })
        .ok_or_else(|| PkiError("its signer's certificate is not in it".to_owned()))?;
    let body = content(sd).unwrap_or_default();
    let hash = Hash::of(&signer.digest_alg.oid)?;
    let covered = match &signer.signed_attrs {
        Some(attrs) => {
            let digest = signed_attribute(sd, const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
                .ok_or_else(|| PkiError("its signed attributes have no digest".to_owned()))?;
            if digest != hash.digest(&body) {
                return Err(PkiError(format!(
                    "its content does not match the digest it signs ({})",
                    hash.name()
                )));
            }
            attrs.to_der().map_err(|e| fail("encoding", e))?
        }
        None => body,
    };
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| fail("reading the signer's key", e))?;
    let sig = signer.signature.as_bytes();
    let ok = if let Ok(public) = RsaPublicKey::from_public_key_der(&spki) {
        hash.verify_rsa(public, &covered, sig)
    } else if let Ok(public) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        let digest = hash.digest(&covered);
        p256::ecdsa::DerSignature::try_from(sig).is_ok_and(|s| {
            use signature::hazmat::PrehashVerifier;
            public.verify_prehash(&digest, &s).is_ok()
        })
    } else {
        return Err(PkiError(
            "its signer's key is neither RSA nor P-256".to_owned(),
        ));
    };
    if ok {
        Ok(cert)
    } else {
        Err(PkiError(
            "its signature does not match its content (SHA-256)".to_owned(),
        ))
    }
}

/// The digests a signer may use.
#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn of(oid: &ObjectIdentifier) -> Result<Self, PkiError> {
        Ok(match oid.to_string().as_str() {
            "1.3.14.3.2.26" => Hash::Sha1,
            "2.16.840.1.101.3.4.2.1" => Hash::Sha256,
            "2.16.840.1.101.3.4.2.2" => Hash::Sha384,
            "2.16.840.1.101.3.4.2.3" => Hash::Sha512,
            other => {
                return Err(PkiError(format!(
                    "its signer uses the digest {other}, which bsi does not implement"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn verify_rsa(self, public: RsaPublicKey, data: &[u8], sig: &[u8]) -> bool {
        use signature::Verifier;
        let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else {
            return false;
        };
        match self {
            Hash::Sha1 => rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(public).verify(data, &s),
            Hash::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public).verify(data, &s),
            Hash::Sha384 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(public).verify(data, &s)
            }
            Hash::Sha512 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(public).verify(data, &s)
            }
        }
        .is_ok()
    }
}
