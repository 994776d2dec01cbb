//! AutoMTLS: a throwaway server certificate for the handshake line, and a rustls server config
//! that accepts exactly the client certificate Terraform put in `PLUGIN_CLIENT_CERT`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("PLUGIN_CLIENT_CERT does not hold a PEM certificate")]
    BadClientCert,
    #[error("could not read operating-system randomness: {0}")]
    Random(String),
    #[error("could not create the server certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("could not build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server's certificate and the TLS configuration that goes with it.
pub(crate) struct ServerTls {
    /// DER of the leaf certificate, for the handshake line.
    pub(crate) cert_der: Vec<u8>,
    /// Ready for `tokio_rustls::TlsAcceptor`.
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 key from the operating system's random generator. Ed25519 signing is
/// deterministic, so creating the certificate needs no further randomness. This keeps the
/// crypto library's own generator off the path to the handshake line even in builds where
/// it seeds from CPU jitter (~25 ms; see `.cargo/config.toml`).
fn ed25519_key() -> Result<rcgen::KeyPair, TlsError> {
    let mut pkcs8 = Vec::with_capacity(48);
    pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| TlsError::Random(e.to_string()))?;
    pkcs8.extend_from_slice(&seed);
    let der = PrivatePkcs8KeyDer::from(pkcs8);
    Ok(rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &der,
        &rcgen::PKCS_ED25519,
    )?)
}

/// A self-signed certificate for `localhost`, shaped like go-plugin's own (CA, server and
/// client auth) because Terraform trusts it as a root.
fn server_certificate() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let key = ed25519_key()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "ccsecrets");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key_der))
}

/// Accepts exactly one client certificate (byte for byte) and still verifies that the client
/// holds its key. Terraform's certificate is self-signed with CA:TRUE, which webpki refuses
/// as an end entity, so chain validation cannot be used.
#[derive(Debug)]
struct ExactClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ExactClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the server side of AutoMTLS for the client certificate in `client_cert_pem`.
pub(crate) fn server_tls(client_cert_pem: &str) -> Result<ServerTls, TlsError> {
    let expected = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|_| TlsError::BadClientCert)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = ExactClientCert {
        expected,
        algorithms: provider.signature_verification_algorithms,
    };
    let (cert, key) = server_certificate()?;
    let cert_der = cert.as_ref().to_vec();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![cert], key)?;
    // grpc-go 1.67+ (Terraform 1.12+) refuses a TLS server that does not negotiate h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        cert_der,
        config: Arc::new(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_cert_pem() -> (String, rcgen::KeyPair) {
        // Terraform's real client certificate is ECDSA P-521, CA:TRUE; shape one alike.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap().pem(), key)
    }

    #[test]
    fn server_certificate_parses_and_is_for_localhost() {
        let (pem, _) = client_cert_pem();
        let tls = server_tls(&pem).unwrap();
        assert!(!tls.cert_der.is_empty());
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec()]);
        // The DER names localhost in its SAN.
        assert!(tls.cert_der.windows(9).any(|w| w == b"localhost"));
    }

    #[test]
    fn two_servers_get_different_keys() {
        let (pem, _) = client_cert_pem();
        assert_ne!(
            server_tls(&pem).unwrap().cert_der,
            server_tls(&pem).unwrap().cert_der
        );
    }

    #[test]
    fn garbage_client_cert_is_rejected() {
        assert!(matches!(
            server_tls("not a pem"),
            Err(TlsError::BadClientCert)
        ));
    }

    #[test]
    fn verifier_accepts_only_the_exact_certificate() {
        let (pem, _) = client_cert_pem();
        let (other, _) = client_cert_pem();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let v = ExactClientCert {
            expected: CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
            algorithms: provider.signature_verification_algorithms,
        };
        let now = UnixTime::now();
        let same = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let different = CertificateDer::from_pem_slice(other.as_bytes()).unwrap();
        assert!(v.verify_client_cert(&same, &[], now).is_ok());
        assert!(v.verify_client_cert(&different, &[], now).is_err());
        // P-521 with SHA-512 must be among the schemes we can verify (Terraform signs with it).
        assert!(
            v.supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
        );
    }
}
