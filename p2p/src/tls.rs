//! TLS 1.3 identity: a self-signed certificate bound to the node's ed25519 key, and a
//! verifier that accepts exactly one such certificate and yields the peer's node ID.
//!
//! # Security
//! The verifier proves the peer holds the private key of the Ed25519 key in its certificate
//! (TLS 1.3 CertificateVerify, checked with `verify_tls13_signature`) and that the
//! certificate is validly self-signed. It does not decide *which* key is acceptable: the
//! dialer compares the key with the node ID it meant to reach, and the handshake refuses
//! self-connections and banned IDs.

use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, PeerIncompatible, RootCertStore, SignatureScheme};

use crate::identity::NodeId;

/// The name in every certificate and every dial (the verifier ignores it; QUIC needs one).
pub const SERVER_NAME: &str = "cairn";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Why TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PKCS#8 export of the node key failed.
    #[error("node key export: {0}")]
    Pkcs8(String),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A self-signed certificate for the node key, and the key in rustls form.
pub fn node_certificate(key: &ed25519_dalek::SigningKey) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let doc = key.to_pkcs8_der().map_err(|e| TlsError::Pkcs8(e.to_string()))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)?;
    let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?.self_signed(&key_pair)?;
    Ok((cert.into(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The Ed25519 key a certificate is for.
pub fn certificate_key(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    match spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(CertificateError::BadEncoding.into()),
    }
}

/// The peer's node ID on an established connection.
pub fn peer_node_id(conn: &quinn::Connection) -> Option<NodeId> {
    let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certificate_key(certs.first()?).ok().map(cairn_chain::keys::PublicKey)
}

/// Verifies a peer's certificate (either side): exactly one certificate, an Ed25519 key,
/// a valid self-signature, TLS 1.3 signatures with Ed25519 only.
#[derive(Debug)]
pub struct PeerVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl PeerVerifier {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: &CryptoProvider) -> Arc<Self> {
        Arc::new(PeerVerifier { algs: provider.signature_verification_algorithms })
    }

    fn check(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], now: UnixTime) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General("peer sent more than one certificate".into()));
        }
        certificate_key(end_entity)?;
        // The certificate as its own only root: checks the self-signature and validity dates.
        let mut roots = RootCertStore::empty();
        roots.add(end_entity.clone())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, &roots, &[], now, self.algs.all)
    }

    fn tls13(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(PeerIncompatible::NoSignatureSchemesInCommon.into());
        }
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::Keypair;

    fn verify(cert: &CertificateDer<'static>, intermediates: &[CertificateDer<'static>]) -> Result<(), rustls::Error> {
        let v = PeerVerifier::new(&rustls::crypto::ring::default_provider());
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        v.verify_server_cert(cert, intermediates, &name, &[], UnixTime::now())?;
        v.verify_client_cert(cert, intermediates, UnixTime::now())?;
        Ok(())
    }

    #[test]
    fn accepts_exactly_one_valid_self_signed_node_certificate() {
        let key = Keypair::generate();
        let (cert, _) = node_certificate(key.signing_key()).unwrap();
        assert_eq!(certificate_key(&cert).unwrap(), key.public().0, "the node ID is the certificate key");
        verify(&cert, &[]).expect("own certificate is valid");

        // A second certificate in the chain is refused.
        let (other, _) = node_certificate(Keypair::generate().signing_key()).unwrap();
        assert!(verify(&cert, std::slice::from_ref(&other)).is_err());

        // A certificate whose self-signature no longer matches (last signature byte flipped).
        let mut bytes = cert.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(verify(&CertificateDer::from(bytes), &[]).is_err(), "tampered certificate accepted");

        // Only Ed25519 handshake signatures are offered.
        let v = PeerVerifier::new(&rustls::crypto::ring::default_provider());
        assert_eq!(ServerCertVerifier::supported_verify_schemes(&*v), vec![SignatureScheme::ED25519]);
    }
}
