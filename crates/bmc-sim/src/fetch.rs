//! A minimal HTTP(S) client used where a BMC fetches something itself: virtual media images
//! (InsertMedia) and, optionally, firmware images (SimpleUpdate). It reads only the first bytes.
//!
//! Like a BMC with certificate verification off (the Redfish default), HTTPS does not verify the
//! server certificate.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// The URL is not an absolute http(s) URL.
    BadUrl(String),
    /// Not http or https.
    Scheme(String),
    /// The server could not be reached or did not answer in time.
    Connect(String),
    /// The server refused access.
    Unauthorized(StatusCode),
    /// The server answered with another error.
    Status(StatusCode),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::BadUrl(e) => write!(f, "invalid URL: {e}"),
            FetchError::Scheme(s) => write!(f, "unsupported transfer protocol {s}"),
            FetchError::Connect(e) => write!(f, "cannot connect: {e}"),
            FetchError::Unauthorized(s) => write!(f, "access refused: {s}"),
            FetchError::Status(s) => write!(f, "server answered {s}"),
        }
    }
}

/// GETs the first KiB of `url`; success means the image exists and can be read.
pub(crate) async fn probe(url: &str, timeout: Duration) -> Result<(), FetchError> {
    match tokio::time::timeout(timeout, probe_inner(url)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Connect(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

async fn probe_inner(raw: &str) -> Result<(), FetchError> {
    let url = url::Url::parse(raw).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(FetchError::Scheme(other.to_string())),
    };
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::BadUrl("no host".into()))?
        .to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let req = Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::RANGE, "bytes=0-1023")
        .header(http::header::USER_AGENT, "metal-bmc-sim")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let status = if tls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Connect(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        let name =
            ServerName::try_from(host.clone()).map_err(|e| FetchError::BadUrl(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        send(stream, req).await?
    } else {
        send(tcp, req).await?
    };
    match status {
        s if s.is_success() => Ok(()),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(FetchError::Unauthorized(s)),
        s => Err(FetchError::Status(s)),
    }
}

async fn send<S>(stream: S, req: Request<Empty<Bytes>>) -> Result<StatusCode, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Connect(e.to_string()));
    let status = match resp {
        Ok(r) => {
            let status = r.status();
            // Read at most the first frame, as firmware checking an image would.
            let mut body = r.into_body();
            let _ = body.frame().await;
            status
        }
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    driver.abort();
    Ok(status)
}

#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
