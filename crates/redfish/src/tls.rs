//! rustls client configuration per BMC: webpki roots or a CA bundle, or an explicit insecure mode.
//! TLS 1.2 and 1.3, ring provider, ALPN `http/1.1`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::endpoint::TlsVerification;

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn build(roots: Option<RootCertStore>) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut cfg = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Builds (or reuses) the rustls configuration for a verification mode.
pub(crate) fn client_config(v: &TlsVerification) -> Result<Arc<ClientConfig>, String> {
    match v {
        TlsVerification::WebPki => {
            static WEBPKI: OnceLock<Arc<ClientConfig>> = OnceLock::new();
            if let Some(c) = WEBPKI.get() {
                return Ok(c.clone());
            }
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let cfg = Arc::new(build(Some(roots)).map_err(|e| e.to_string())?);
            Ok(WEBPKI.get_or_init(|| cfg).clone())
        }
        TlsVerification::CaBundle(certs) => {
            // One configuration per distinct bundle, shared by every BMC that trusts it: each
            // holds a session cache sized for hundreds of servers, too much to keep per BMC
            // when a site gives a thousand BMCs the same CA.
            static SHARED: OnceLock<Mutex<HashMap<Vec<u8>, Weak<ClientConfig>>>> = OnceLock::new();
            let key = bundle_key(certs);
            let shared = SHARED.get_or_init(Default::default);
            let mut map = shared.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cfg) = map.get(&key).and_then(Weak::upgrade) {
                return Ok(cfg);
            }
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| format!("invalid CA certificate: {e}"))?;
            }
            let cfg = Arc::new(build(Some(roots)).map_err(|e| e.to_string())?);
            map.retain(|_, w| w.strong_count() > 0);
            map.insert(key, Arc::downgrade(&cfg));
            Ok(cfg)
        }
        TlsVerification::Insecure => {
            static INSECURE: OnceLock<Arc<ClientConfig>> = OnceLock::new();
            if let Some(c) = INSECURE.get() {
                return Ok(c.clone());
            }
            let cfg = Arc::new(build(None).map_err(|e| e.to_string())?);
            Ok(INSECURE.get_or_init(|| cfg).clone())
        }
    }
}

/// A bundle's identity: its certificates, each length-prefixed (so no two bundles collide).
fn bundle_key(certs: &[CertificateDer<'static>]) -> Vec<u8> {
    let mut key = Vec::with_capacity(certs.iter().map(|c| c.len() + 8).sum());
    for c in certs {
        key.extend_from_slice(&(c.len() as u64).to_be_bytes());
        key.extend_from_slice(c);
    }
    key
}

/// The TLS server name for a host: an IP address literal (BMCs are addressed by IP) or a DNS name.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// Accepts any certificate but still checks handshake signatures. Used only when a BMC is explicitly
/// configured as insecure.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("10.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("fe80::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("bmc.example").unwrap(),
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn bmcs_trusting_the_same_bundle_share_one_configuration() {
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            cert.der().clone()
        };
        let (a, b) = (ca("a.example"), ca("b.example"));
        let one = client_config(&TlsVerification::CaBundle(vec![a.clone()])).unwrap();
        let again = client_config(&TlsVerification::CaBundle(vec![a.clone()])).unwrap();
        let other = client_config(&TlsVerification::CaBundle(vec![b.clone()])).unwrap();
        let both = client_config(&TlsVerification::CaBundle(vec![a, b])).unwrap();
        assert!(Arc::ptr_eq(&one, &again));
        assert!(!Arc::ptr_eq(&one, &other));
        assert!(!Arc::ptr_eq(&one, &both));
        assert!(
            client_config(&TlsVerification::CaBundle(vec![CertificateDer::from(
                vec![1, 2, 3]
            )]))
            .is_err()
        );
    }

    #[test]
    fn configs_build() {
        assert!(client_config(&TlsVerification::WebPki).is_ok());
        assert!(client_config(&TlsVerification::Insecure).is_ok());
    }
}
