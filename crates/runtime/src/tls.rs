//! Optional TLS for the endpoints machines talk to (provisioning's boot server and metadata
//! service, discovery's probe registry): boot tokens and registry tokens then never cross the
//! network in clear text. The certificate and key are PEM files, read once at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;

/// How long a client may take to complete the TLS handshake (a silent peer holds no task).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setup that cannot be used, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    /// The key file holds no PEM private key.
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} with key {key}: {reason}")]
    Rejected {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls said.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A TLS acceptor serving the certificate chain in `cert` with the private key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.display().to_string()));
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
    let rejected = |e: rustls::Error| TlsError::Rejected {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(rejected)?
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A stream after [`accept`]: plain TCP, or TLS over it.
pub type Stream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// Completes the TLS handshake when `tls` is set (within [`HANDSHAKE_TIMEOUT`]), else passes
/// the connection through.
pub async fn accept(tls: Option<&TlsAcceptor>, stream: TcpStream) -> std::io::Result<Stream> {
    match tls {
        None => Ok(Either::Left(stream)),
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => Ok(Either::Right(s)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("metal-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.join("missing.pem");
        let e = acceptor(&missing, &empty).err().unwrap().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = acceptor(&empty, &empty).err().unwrap().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
