//! The device's MDM identity and the CMS it speaks: a private key (RSA, or ECDSA P-256 given with
//! `--identity`), the certificate a CA issued for it, and the three CMS shapes the protocol
//! needs. A detached `SignedData` over a message body is the `Mdm-Signature` header; a
//! `SignedData` with SCEP's attributes carries a certificate request; an `EnvelopedData` hides
//! it from everyone but the CA, and the CA's answer comes back enveloped to the device.
//!
//! The key is written only into the device's records (mode 0600) and never printed; every
//! certificate's validity is checked with the real clock, never `--now`.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911::ID_DATA;
use der::asn1::SetOfVec;
use der::{Any, DecodePem, Encode, EncodePem, Tag};
use rsa::PrivateKey as RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, RequestBuilder};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

/// SHA-256.
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// What is wrong with a key, a certificate or a CMS message, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PkiError(pub String);

pub(super) fn fail(what: &str, e: impl std::fmt::Display) -> PkiError {
    PkiError(format!(
        "{what}: {}",
        crate::untrusted::clip(&e.to_string())
    ))
}

/// A private key the device signs with.
pub(crate) enum Key {
    /// RSA (SCEP's key type, and what most CAs issue for).
    Rsa(Box<RsaPrivateKey>),
    /// ECDSA on P-256.
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str(match self {
            Key::Rsa(_) => "Key::Rsa(..)",
            Key::P256(_) => "Key::P256(..)",
        })
    }
}

pub(super) fn rng() -> rsa::rand_core::UnwrapErr<getrandom::SysRng> {
    rsa::rand_core::UnwrapErr(getrandom::SysRng)
}

/// An RSA key (exponent 65537) from two primes of `bits` bits each, their top two bits set so
/// that the modulus has twice as many, as the `rsa` crate makes them. crypto-primes (the `rsa`
/// crate's own prime search and test) looks for them here in fixed-size integers, where the
/// crate looks in heap-allocated ones: its Miller-Rabin test, nearly all of a key's cost, takes
/// 0.39 against 0.46 ms at 1024 bits, and the key is most of a 2048-bit enrollment's CPU.
fn from_two_primes<T>(bits: u32) -> Result<RsaPrivateKey, rsa::Error>
where
    T: crypto_bigint::UnsignedWithMontyForm + crypto_bigint::RandomBits + crypto_bigint::RandomMod,
    for<'a> crypto_bigint::BoxedUint: From<&'a T>,
{
    use crypto_primes::hazmat::{SetBits, SmallFactorsSieveFactory};
    use crypto_primes::{Flavor, is_prime, sieve_and_find};
    let prime = || -> Result<crypto_bigint::BoxedUint, rsa::Error> {
        let factory = SmallFactorsSieveFactory::<T>::new(Flavor::Any, bits, SetBits::TwoMsb)
            .map_err(|_| rsa::Error::InvalidPrime)?;
        match sieve_and_find(&mut rng(), factory, |_, c| is_prime(Flavor::Any, c)) {
            Ok(Some(p)) => Ok(crypto_bigint::BoxedUint::from(&p)),
            _ => Err(rsa::Error::InvalidPrime),
        }
    };
    loop {
        let (p, q) = (prime()?, prime()?);
        if p == q {
            continue;
        }
        // Refused when 65537 divides p - 1 or q - 1: two other primes, then.
        let e = <crypto_bigint::BoxedUint as From<u32>>::from(65_537);
        if let Ok(key) = RsaPrivateKey::from_p_q(p, q, e) {
            return Ok(key);
        }
    }
}

impl Key {
    /// A new RSA key of `bits` (1024, 2048 or 4096, as an SCEP payload's `Keysize` allows).
    pub(crate) fn generate_rsa(bits: usize) -> Result<Self, PkiError> {
        use crypto_bigint::{U512, U1024, U2048};
        match bits {
            1024 => from_two_primes::<U512>(512),
            2048 => from_two_primes::<U1024>(1024),
            4096 => from_two_primes::<U2048>(2048),
            _ => RsaPrivateKey::new(&mut rng(), bits),
        }
        .map(|k| Key::Rsa(Box::new(k)))
        .map_err(|e| fail("generating an RSA key", e))
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or P-256), PKCS#1 (`RSA PRIVATE
    /// KEY`) or SEC 1 (`EC PRIVATE KEY`).
    pub(crate) fn from_pem(text: &str) -> Result<Self, PkiError> {
        if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return RsaPrivateKey::from_pkcs1_pem(text)
                .map(|k| Key::Rsa(Box::new(k)))
                .map_err(|e| fail("reading the RSA key", e));
        }
        if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            return p256::SecretKey::from_sec1_pem(text)
                .map(|k| Key::P256(k.into()))
                .map_err(|e| fail("reading the EC key (only P-256 is supported)", e));
        }
        if let Ok(k) = RsaPrivateKey::from_pkcs8_pem(text) {
            return Ok(Key::Rsa(Box::new(k)));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(text)
            .map(Key::P256)
            .map_err(|_| {
                PkiError(
                    "not a PEM private key bsi can use (PKCS#8, PKCS#1 or SEC 1; RSA or P-256)"
                        .to_owned(),
                )
            })
    }

    /// The key as PKCS#8 PEM (for the device's records only).
    pub(crate) fn to_pkcs8_pem(&self) -> Result<String, PkiError> {
        let doc = match self {
            Key::Rsa(k) => k.to_pkcs8_pem(der::pem::LineEnding::LF),
            Key::P256(k) => k.to_pkcs8_pem(der::pem::LineEnding::LF),
        };
        doc.map(|s| s.to_string())
            .map_err(|e| fail("encoding the key", e))
    }

    /// The size of an RSA key in bits; `None` for P-256.
    #[must_use]
    pub(crate) fn rsa_bits(&self) -> Option<usize> {
        match self {
            Key::Rsa(k) => Some(rsa::traits::PublicKeyParts::size(k.as_ref()) * 8),
            Key::P256(_) => None,
        }
    }

    /// The public key, as a certificate holds it.
    pub(crate) fn public(&self) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
        match self {
            Key::Rsa(k) => SubjectPublicKeyInfoOwned::from_key(&k.to_public_key()),
            Key::P256(k) => SubjectPublicKeyInfoOwned::from_key(k.verifying_key()),
        }
        .map_err(|e| fail("encoding the public key", e))
    }
}

/// A certificate and the key it certifies: who the device is to its MDM server.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The certificate.
    pub cert: Certificate,
    /// Its private key.
    pub key: Key,
    /// The RSA signer, made at the first signature (a poll with an install signs about nine
    /// messages; making it costs a fifth of a signature).
    signer: std::sync::OnceLock<RsaSigner>,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaSigner(..)")
    }
}

/// A certificate's name, e.g. `CN=bsi-device,O=Example`.
#[must_use]
pub(crate) fn name_of(name: &Name) -> String {
    name.to_string()
}

/// A certificate's common name (its subject's first CN), or `""` without one.
#[must_use]
pub(crate) fn common_name(cert: &Certificate) -> String {
    match cert.tbs_certificate().subject().common_name() {
        Ok(Some(cn)) => cn.value().into_owned(),
        _ => String::new(),
    }
}

/// When a certificate stops being valid.
#[must_use]
pub(crate) fn not_after(cert: &Certificate) -> SystemTime {
    cert.tbs_certificate().validity().not_after.to_system_time()
}

/// Is `cert` valid at `now`? The reason when it is not.
pub(crate) fn check_validity(cert: &Certificate, now: SystemTime) -> Result<(), String> {
    let v = cert.tbs_certificate().validity();
    let from = v.not_before.to_system_time();
    let until = v.not_after.to_system_time();
    if now < from {
        return Err(format!(
            "it is valid only from {}",
            crate::clock::rfc3339(from)
        ));
    }
    if now > until {
        return Err(format!("it expired at {}", crate::clock::rfc3339(until)));
    }
    Ok(())
}

impl Identity {
    /// `cert` and the key it certifies (not checked: see [`Identity::from_pem`]).
    pub(crate) fn new(cert: Certificate, key: Key) -> Self {
        Self {
            cert,
            key,
            signer: std::sync::OnceLock::new(),
        }
    }

    /// Reads a PEM certificate and a PEM key, and checks that the key is the certificate's.
    pub(crate) fn from_pem(cert: &str, key: &str) -> Result<Self, PkiError> {
        let cert = Certificate::from_pem(cert.trim_start().as_bytes())
            .map_err(|e| fail("reading the certificate (PEM)", e))?;
        let key = Key::from_pem(key)?;
        let identity = Identity::new(cert, key);
        identity.check_pair()?;
        Ok(identity)
    }

    fn check_pair(&self) -> Result<(), PkiError> {
        let theirs = self
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| fail("reading the certificate's key", e))?;
        let ours = self
            .key
            .public()?
            .to_der()
            .map_err(|e| fail("encoding the public key", e))?;
        if theirs != ours {
            return Err(PkiError(
                "the private key is not the certificate's (their public keys differ)".to_owned(),
            ));
        }
        Ok(())
    }

    /// The certificate and the key as one PEM text, for the device's records.
    pub(crate) fn to_pem(&self) -> Result<String, PkiError> {
        let cert = self
            .cert
            .to_pem(der::pem::LineEnding::LF)
            .map_err(|e| fail("encoding the certificate", e))?;
        Ok(format!("{cert}{}", self.key.to_pkcs8_pem()?))
    }

    /// Reads what [`Identity::to_pem`] wrote.
    pub(crate) fn from_records(text: &str) -> Result<Self, PkiError> {
        let end = "-----END CERTIFICATE-----";
        let Some(at) = text.find(end) else {
            return Err(PkiError("no certificate".to_owned()));
        };
        let (cert, key) = text.split_at(at + end.len());
        Self::from_pem(cert, key)
    }

    /// The certificate's subject.
    #[cfg(test)]
    pub(crate) fn subject(&self) -> String {
        name_of(self.cert.tbs_certificate().subject())
    }

    /// The certificate, DER.
    pub(crate) fn cert_der(&self) -> Result<Vec<u8>, PkiError> {
        self.cert
            .to_der()
            .map_err(|e| fail("encoding the certificate", e))
    }

    /// `Mdm-Signature` for `body`: base64 of a detached CMS `SignedData` (SHA-256, the signer
    /// by issuer and serial number, its certificate embedded).
    pub(crate) fn mdm_signature(&self, body: &[u8]) -> Result<String, PkiError> {
        let digest = Sha256::digest(body);
        let eci = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        };
        let der = self.signed_data(&eci, Some(&digest), Vec::new())?;
        Ok(base64::engine::general_purpose::STANDARD.encode(der))
    }

    /// A `SignedData` (as a `ContentInfo`, DER) over `eci` with `attributes` signed, this
    /// identity the signer.
    pub(crate) fn signed_data(
        &self,
        eci: &EncapsulatedContentInfo,
        external_digest: Option<&[u8]>,
        attributes: Vec<Attribute>,
    ) -> Result<Vec<u8>, PkiError> {
        let tbs = self.cert.tbs_certificate();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
        let sha = AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        };
        let build = |e: cms::builder::Error| fail("making the signature", e);
        let mut signer_info =
            SignerInfoBuilder::new(sid, sha.clone(), eci, external_digest).map_err(build)?;
        for a in attributes {
            signer_info.add_signed_attribute(a).map_err(build)?;
        }
        let mut sd = SignedDataBuilder::new(eci);
        sd.add_digest_algorithm(sha).map_err(build)?;
        sd.add_certificate(CertificateChoices::Certificate(self.cert.clone()))
            .map_err(build)?;
        match &self.key {
            Key::Rsa(k) => {
                let signer = self.signer.get_or_init(|| RsaSigner::of(k));
                sd.add_signer_info::<_, rsa::pkcs1v15::Signature>(signer_info, signer)
            }
            Key::P256(k) => sd.add_signer_info::<_, p256::ecdsa::DerSignature>(signer_info, k),
        }
        .map_err(build)?;
        sd.build()
            .map_err(build)?
            .to_der()
            .map_err(|e| fail("encoding the signature", e))
    }
}

/// An attribute with one value.
pub(crate) fn attribute(oid: ObjectIdentifier, value: Any) -> Attribute {
    let mut values = SetOfVec::new();
    // One value cannot collide with another.
    let _ = values.insert(value);
    Attribute { oid, values }
}

/// A value as an `Any`.
pub(crate) fn any(value: &(impl der::EncodeValue + der::Tagged)) -> Result<Any, PkiError> {
    Any::encode_from(value).map_err(|e| fail("encoding a value", e))
}

/// `eContent` holding `bytes`.
pub(crate) fn data_content(bytes: Vec<u8>) -> Result<EncapsulatedContentInfo, PkiError> {
    Ok(EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: Some(Any::new(Tag::OctetString, bytes).map_err(|e| fail("encoding", e))?),
    })
}

/// The issuing profile of a self-signed certificate: the subject is the issuer, no extensions.
struct SelfSigned(Name);

impl BuilderProfile for SelfSigned {
    fn get_issuer(&self, _: &Name) -> Name {
        self.0.clone()
    }
    fn get_subject(&self) -> Name {
        self.0.clone()
    }
    fn build_extensions(
        &self,
        _: spki::SubjectPublicKeyInfoRef<'_>,
        _: spki::SubjectPublicKeyInfoRef<'_>,
        _: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(Vec::new())
    }
}

/// How an RSA key signs (PKCS #1 v1.5, SHA-256): with ring from 2048 bits, several times faster
/// than the `rsa` crate, which matters because every MDM message is signed; below that (ring
/// refuses 1024-bit keys) with the `rsa` crate's constant-time arithmetic.
///
/// Neither blinds the operation, as the `rsa` crate's own signers do on top of constant-time
/// arithmetic (that costs 2.5 times the signature). Blinding guards a private operation on
/// input someone else chooses, as in decryption, which bsi leaves blinded; what is signed here
/// is the digest of bsi's own message or certificate request.
struct RsaSigner {
    ring: Option<ring::signature::RsaKeyPair>,
    key: RsaPrivateKey,
    verifying: rsa::pkcs1v15::VerifyingKey<Sha256>,
}

impl RsaSigner {
    fn of(key: &RsaPrivateKey) -> Self {
        let ring = (rsa::traits::PublicKeyParts::size(key) * 8 >= 2048)
            .then(|| key.to_pkcs8_der().ok())
            .flatten()
            .and_then(|der| ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).ok());
        Self {
            ring,
            key: key.clone(),
            verifying: rsa::pkcs1v15::VerifyingKey::new(key.to_public_key()),
        }
    }
}

impl signature::Keypair for RsaSigner {
    type VerifyingKey = rsa::pkcs1v15::VerifyingKey<Sha256>;

    fn verifying_key(&self) -> Self::VerifyingKey {
        self.verifying.clone()
    }
}

impl spki::DynSignatureAlgorithmIdentifier for RsaSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(&self.verifying)
    }
}

impl signature::Signer<rsa::pkcs1v15::Signature> for RsaSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<rsa::pkcs1v15::Signature, signature::Error> {
        let out = if let Some(pair) = &self.ring {
            let mut out = vec![0u8; pair.public().modulus_len()];
            pair.sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                msg,
                &mut out,
            )
            .map_err(|_| signature::Error::new())?;
            out
        } else {
            rsa::traits::SignatureScheme::sign(
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                None::<&mut rsa::rand_core::UnwrapErr<getrandom::SysRng>>,
                &self.key,
                &Sha256::digest(msg),
            )
            .map_err(signature::Error::from_source)?
        };
        rsa::pkcs1v15::Signature::try_from(out.as_slice())
    }
}

fn sign_with<B: Builder>(builder: B, key: &Key) -> Result<B::Output, PkiError> {
    match key {
        Key::Rsa(k) => builder.build::<_, rsa::pkcs1v15::Signature>(&RsaSigner::of(k)),
        Key::P256(k) => builder.build::<_, p256::ecdsa::DerSignature>(k),
    }
    .map_err(|e| fail("signing", e))
}

/// Parses a subject such as `CN=device,O=Example`.
pub(crate) fn parse_name(text: &str) -> Result<Name, PkiError> {
    Name::from_str(text).map_err(|e| fail(&format!("the subject `{text}`"), e))
}

/// A self-signed certificate for `key` (SCEP's signer before the CA has issued one).
pub(crate) fn self_signed(subject: &Name, key: &Key) -> Result<Certificate, PkiError> {
    let builder = CertificateBuilder::new(
        SelfSigned(subject.clone()),
        SerialNumber::from(1u32),
        Validity::from_now(Duration::from_secs(24 * 3600)).map_err(|e| fail("validity", e))?,
        key.public()?,
    )
    .map_err(|e| fail("making a certificate", e))?;
    sign_with(builder, key)
}

/// A certificate request for `key` with `subject` and, when given, a challenge password.
pub(crate) fn request(
    subject: &Name,
    key: &Key,
    challenge: Option<&str>,
) -> Result<Vec<u8>, PkiError> {
    let mut builder =
        RequestBuilder::new(subject.clone()).map_err(|e| fail("making the request", e))?;
    if let Some(c) = challenge {
        builder
            .add_attribute(&x509_cert::request::attributes::ChallengePassword(
                x509_cert::ext::pkix::name::DirectoryString::Utf8String(c.to_owned()),
            ))
            .map_err(|e| fail("adding the challenge", e))?;
    }
    sign_with(builder, key)?
        .to_der()
        .map_err(|e| fail("encoding the request", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdm::cms::{envelope, open_envelope, read_signed, verify_embedded};

    #[test]
    fn an_identity_signs_and_the_signature_verifies() {
        // 1024 bits signs with the `rsa` crate, 2048 with ring: both verify.
        for key in [
            Key::generate_rsa(1024).unwrap(),
            Key::generate_rsa(2048).unwrap(),
            Key::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()),
        ] {
            let subject = parse_name("CN=bsi test,O=bsi").unwrap();
            let cert = self_signed(&subject, &key).unwrap();
            let identity = Identity::new(cert, key);
            // The records' PEM reads back as the same identity.
            let again = Identity::from_records(&identity.to_pem().unwrap()).unwrap();
            assert_eq!(again.subject(), "CN=bsi test,O=bsi");
            let body = b"<plist/>";
            let header = identity.mdm_signature(body).unwrap();
            let der = base64::engine::general_purpose::STANDARD
                .decode(header)
                .unwrap();
            let mut sd = read_signed(&der).unwrap();
            // Detached: put the body back, as a server does, and verify.
            sd.encap_content_info = data_content(body.to_vec()).unwrap();
            verify_embedded(&sd).unwrap();
            sd.encap_content_info = data_content(b"<plist>x</plist>".to_vec()).unwrap();
            assert!(
                verify_embedded(&sd).is_err(),
                "another body does not verify"
            );
        }
    }

    #[test]
    fn generated_keys_have_the_size_asked_for() {
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        for bits in [1024, 1024, 1024, 1024, 2048, 4096] {
            let Key::Rsa(key) = Key::generate_rsa(bits).unwrap() else {
                unreachable!()
            };
            assert_eq!(key.n().as_ref().bit_width() as usize, bits);
            assert_eq!(key.e(), &rsa::BoxedUint::from(65_537u32));
            let [p, q] = key.primes() else {
                panic!("{} primes", key.primes().len())
            };
            assert_ne!(p, q);
            assert!(key.validate().is_ok());
        }
    }

    #[test]
    fn the_rsa_signer_makes_the_rsa_crates_signature() {
        // PKCS #1 v1.5 is deterministic: without blinding, and with ring, the signature is the
        // one the `rsa` crate's blinded signer makes.
        use signature::Signer as _;
        for bits in [1024, 2048] {
            let Key::Rsa(key) = Key::generate_rsa(bits).unwrap() else {
                unreachable!()
            };
            let msg = b"<plist>Idle</plist>";
            let ours: rsa::pkcs1v15::Signature = RsaSigner::of(&key).sign(msg);
            let theirs = rsa::pkcs1v15::SigningKey::<Sha256>::new((*key).clone()).sign(msg);
            assert_eq!(ours, theirs, "{bits} bits");
            assert_eq!(RsaSigner::of(&key).ring.is_some(), bits >= 2048);
        }
    }

    #[test]
    fn an_envelope_opens_only_with_its_key() {
        let key = Key::generate_rsa(1024).unwrap();
        let cert = self_signed(&parse_name("CN=r").unwrap(), &key).unwrap();
        let sealed = envelope(b"secret", &cert).unwrap();
        assert_eq!(open_envelope(&sealed, &key).unwrap(), b"secret");
        let other = Key::generate_rsa(1024).unwrap();
        assert!(open_envelope(&sealed, &other).is_err());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let a = Key::generate_rsa(1024).unwrap();
        let b = Key::generate_rsa(1024).unwrap();
        let cert = self_signed(&parse_name("CN=a").unwrap(), &a).unwrap();
        let pem = cert.to_pem(der::pem::LineEnding::LF).unwrap();
        let err = Identity::from_pem(&pem, &b.to_pkcs8_pem().unwrap()).unwrap_err();
        assert!(err.0.contains("not the certificate's"), "{err}");
        assert!(Key::from_pem("junk").is_err());
    }
}
