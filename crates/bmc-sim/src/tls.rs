//! TLS: a CA generated at start (written out for clients) and a leaf certificate per BMC address,
//! signed by it and made on the BMC's first connection.
//!
//! The leaf is never the CA itself (rustls rejects a CA certificate used as an end-entity). All
//! leaves share one key pair, so per-BMC cost is one signature. TLS 1.2 and 1.3 are offered.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use tokio_rustls::TlsAcceptor;

use crate::error::SimError;

/// The simulator's CA and what it needs to issue leaf certificates.
pub(crate) struct Tls {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    leaf_key: KeyPair,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
}

fn tls_err(e: impl std::fmt::Display) -> SimError {
    SimError::Tls(e.to_string())
}

impl Tls {
    /// Generates a fresh CA.
    pub(crate) fn new() -> Result<Tls, SimError> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "metal-bmc-sim CA");
        dn.push(DnType::OrganizationName, "metal-bmc-sim");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).map_err(tls_err)?;
        Ok(Tls {
            ca_pem: ca_cert.pem(),
            issuer: Issuer::new(params, ca_key),
            leaf_key: KeyPair::generate().map_err(tls_err)?,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            sessions: ServerSessionMemoryCache::new(4096),
        })
    }

    /// The CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A TLS acceptor presenting a leaf certificate for `ip`.
    pub(crate) fn acceptor(&self, ip: Ipv4Addr) -> Result<TlsAcceptor, SimError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ip.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(ip))];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(tls_err)?;
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_err)?;
        cfg.session_storage = self.sessions.clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(cfg)))
    }
}
