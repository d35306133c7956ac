//! Throw-away PKI for one control plane: a CA, the apiserver's serving certificate, client
//! certificates for the admin and the controller manager, and the service-account signing key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};

use crate::Error;

/// PEM material for one control plane.
pub(crate) struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub kcm_cert: String,
    pub kcm_key: String,
    pub sa_key: String,
    pub sa_pub: String,
}

fn pki_err(e: rcgen::Error) -> Error {
    Error::Pki(e.to_string())
}

fn leaf(
    cn: &str,
    org: Option<&str>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(org) = org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().map_err(pki_err)?;
    let cert = params.signed_by(&key, issuer).map_err(pki_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Pki {
    /// Generates fresh keys and certificates valid for loopback.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "metal-testenv-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(pki_err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let dns = |s: &str| -> Result<SanType, Error> {
            Ok(SanType::DnsName(
                s.try_into().map_err(|e: rcgen::Error| pki_err(e))?,
            ))
        };
        let sans = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            dns("localhost")?,
            dns("kubernetes")?,
            dns("kubernetes.default")?,
            dns("kubernetes.default.svc")?,
        ];
        let (serving_cert, serving_key) = leaf(
            "kube-apiserver",
            None,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        )?;
        let (admin_cert, admin_key) = leaf(
            "metal-testenv-admin",
            Some("system:masters"),
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        )?;
        // With shared credentials the controllers act as this user, so it needs full rights.
        let (kcm_cert, kcm_key) = leaf(
            "system:kube-controller-manager",
            Some("system:masters"),
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        )?;
        let sa = KeyPair::generate().map_err(pki_err)?;
        let sa_key = sa.serialize_pem();
        let sa_pub = sa.public_key_pem();
        Ok(Self {
            ca_cert: ca_cert.pem(),
            serving_cert,
            serving_key,
            admin_cert,
            admin_key,
            kcm_cert,
            kcm_key,
            sa_key,
            sa_pub,
        })
    }
}
