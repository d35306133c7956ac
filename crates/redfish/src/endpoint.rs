//! Where a BMC is and how its TLS certificate is checked.

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::CertificateDer;

use crate::error::{Error, ErrorKind};

/// URL scheme of a BMC endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (simulators and tests only; real BMCs speak HTTPS).
    Http,
    /// HTTPS (the default).
    Https,
}

/// How the BMC's TLS certificate is verified. Verification is on by default; turning it off must be
/// asked for explicitly, per BMC.
#[derive(Clone, Default)]
pub enum TlsVerification {
    /// Verify against the Mozilla root store (webpki-roots).
    #[default]
    WebPki,
    /// Verify against the given CA certificates only (a site CA that signed the BMC certificates).
    CaBundle(Vec<CertificateDer<'static>>),
    /// Do not verify the certificate at all (handshake signatures are still checked). Explicit opt-in.
    Insecure,
}

impl fmt::Debug for TlsVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsVerification::WebPki => f.write_str("WebPki"),
            TlsVerification::CaBundle(c) => write!(f, "CaBundle({} certificates)", c.len()),
            TlsVerification::Insecure => f.write_str("Insecure"),
        }
    }
}

/// A BMC's address: scheme, host (usually an IP address) and port, plus its TLS verification mode.
#[derive(Debug, Clone)]
pub struct BmcEndpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    tls: TlsVerification,
}

impl BmcEndpoint {
    /// Parses `https://10.0.0.1`, `https://bmc.example:8443`, `http://127.0.0.1:8000` or a bare
    /// `10.0.0.1` (HTTPS). User info in the URL is refused so credentials never travel in addresses.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let trimmed = input.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        // Never echo anything before an '@': it could be user info.
        let label = trimmed.rsplit('@').next().unwrap_or_default().to_owned();
        let url = url::Url::parse(&with_scheme).map_err(|e| {
            Error::new(
                label.clone(),
                ErrorKind::Config(format!("invalid BMC address: {e}")),
            )
        })?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                return Err(Error::new(
                    label,
                    ErrorKind::Config(format!("unsupported scheme {other:?}")),
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::new(
                url.host_str().unwrap_or("?"),
                ErrorKind::Config("credentials must not be embedded in the BMC address".into()),
            ));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Domain(d)) => d.to_owned(),
            None => {
                return Err(Error::new(
                    label,
                    ErrorKind::Config("BMC address has no host".into()),
                ));
            }
        };
        let port = url.port_or_known_default().unwrap_or(443);
        Ok(Self {
            scheme,
            host,
            port,
            tls: TlsVerification::WebPki,
        })
    }

    /// Builds an endpoint from parts.
    pub fn new(scheme: Scheme, host: impl Into<String>, port: u16) -> Self {
        Self {
            scheme,
            host: host.into(),
            port,
            tls: TlsVerification::WebPki,
        }
    }

    /// Verifies the BMC certificate against the CA certificates in this PEM bundle instead of the
    /// public roots.
    pub fn with_ca_bundle_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut reader = std::io::BufReader::new(pem);
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut reader)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Error::new(
                    self.authority(),
                    ErrorKind::Config(format!("invalid CA bundle: {e}")),
                )
            })?;
        if certs.is_empty() {
            return Err(Error::new(
                self.authority(),
                ErrorKind::Config("CA bundle contains no certificate".into()),
            ));
        }
        self.tls = TlsVerification::CaBundle(certs);
        Ok(self)
    }

    /// Sets the TLS verification mode.
    pub fn with_tls(mut self, tls: TlsVerification) -> Self {
        self.tls = tls;
        self
    }

    /// Turns certificate verification off for this BMC (explicit opt-in).
    pub fn insecure(self) -> Self {
        self.with_tls(TlsVerification::Insecure)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host (IP address or name).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS verification mode.
    pub fn tls(&self) -> &TlsVerification {
        &self.tls
    }

    /// True when the host is an IP address literal.
    pub fn host_is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// `host:port` (IPv6 in brackets), used in the `Host` header, errors and metrics.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `scheme://host:port`.
    pub fn base_url(&self) -> String {
        let s = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{s}://{}", self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        let e = BmcEndpoint::parse("10.1.2.3").unwrap();
        assert_eq!(
            (e.scheme(), e.host(), e.port()),
            (Scheme::Https, "10.1.2.3", 443)
        );
        assert!(e.host_is_ip());
        let e = BmcEndpoint::parse("http://127.0.0.1:8000/redfish/v1").unwrap();
        assert_eq!(
            (e.scheme(), e.host(), e.port()),
            (Scheme::Http, "127.0.0.1", 8000)
        );
        let e = BmcEndpoint::parse("https://[fe80::1]:8443").unwrap();
        assert_eq!(e.host(), "fe80::1");
        assert_eq!(e.authority(), "[fe80::1]:8443");
        let e = BmcEndpoint::parse("https://bmc.example").unwrap();
        assert!(!e.host_is_ip());
    }

    #[test]
    fn refuses_credentials_in_url_without_echoing_them() {
        let err = BmcEndpoint::parse("https://admin:pa55word@10.0.0.1").unwrap_err();
        assert!(!err.to_string().contains("pa55word"), "{err}");
        assert_eq!(err.class(), crate::ErrorClass::Internal);
        assert!(BmcEndpoint::parse("ftp://10.0.0.1").is_err());
    }

    #[test]
    fn rejects_empty_ca_bundle() {
        let e = BmcEndpoint::parse("10.0.0.1").unwrap();
        assert!(e.with_ca_bundle_pem(b"not a pem").is_err());
    }
}
