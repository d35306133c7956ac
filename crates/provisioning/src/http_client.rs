//! A small HTTP/1.1 client (hyper + rustls) for the OCI registry calls: one connection per
//! request, a connect and a header timeout, webpki roots plus an optional extra CA bundle. The
//! response body streams, so blobs can be proxied without buffering them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why an HTTP request failed (before a response arrived, or while reading a capped body).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// TCP connect, TLS or the HTTP exchange failed.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("{url}: timed out after {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The body is larger than allowed.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    header_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connect_timeout", &self.connect_timeout)
            .field("header_timeout", &self.header_timeout)
            .finish_non_exhaustive()
    }
}

/// A buffered response.
#[derive(Debug, Clone)]
pub struct Buffered {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpClient {
    /// A client trusting the webpki roots plus the certificates in `extra_ca_pem`.
    pub fn new(
        extra_ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
        header_timeout: Duration,
    ) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            let mut rd = std::io::BufReader::new(pem);
            for cert in rustls_pemfile::certs(&mut rd) {
                let cert = cert.map_err(|e| HttpError::InvalidUrl {
                    url: "<ca bundle>".into(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| HttpError::InvalidUrl {
                    url: "<ca bundle>".into(),
                    reason: e.to_string(),
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::InvalidUrl {
                url: "<tls>".into(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            connect_timeout,
            header_timeout,
        })
    }

    /// Sends a GET with `headers` and returns the response with a streaming body. Redirects
    /// are not followed.
    pub async fn get(
        &self,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, HttpError> {
        let parsed = url::Url::parse(url).map_err(|e| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(HttpError::InvalidUrl {
                    url: url.to_string(),
                    reason: format!("unsupported scheme {other}"),
                });
            }
        };
        let host = parsed.host_str().ok_or_else(|| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: "no host".into(),
        })?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let connect_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authority = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        let transport = |reason: String| HttpError::Transport {
            url: url.to_string(),
            reason,
        };
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((connect_host.as_str(), port)),
        )
        .await
        .map_err(|_| HttpError::Timeout {
            url: url.to_string(),
            after: self.connect_timeout,
        })?
        .map_err(|e| transport(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(http::header::USER_AGENT, "metal-provisioning");
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let req = builder
            .body(Empty::<Bytes>::new())
            .map_err(|e| transport(e.to_string()))?;
        let fut = async {
            if https {
                let name = rustls::pki_types::ServerName::try_from(connect_host.clone())
                    .map_err(|e| transport(format!("server name: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| transport(format!("TLS: {e}")))?;
                send(TokioIo::new(tls), req).await.map_err(transport)
            } else {
                send(TokioIo::new(tcp), req).await.map_err(transport)
            }
        };
        tokio::time::timeout(self.header_timeout, fut)
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.to_string(),
                after: self.header_timeout,
            })?
    }

    /// GET and read the whole body, at most `limit` bytes.
    pub async fn get_buffered(
        &self,
        url: &str,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<Buffered, HttpError> {
        let resp = self.get(url, headers).await?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.header_timeout, Limited::new(body, limit).collect())
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.to_string(),
                after: self.header_timeout,
            })?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLarge {
                        url: url.to_string(),
                        limit,
                    }
                } else {
                    HttpError::Transport {
                        url: url.to_string(),
                        reason: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        Ok(Buffered {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

async fn send<IO>(io: IO, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))
}
