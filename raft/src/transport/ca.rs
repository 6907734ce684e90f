//! The cluster certificate authority: made once at bootstrap, it signs every node's certificate.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

use super::identity::NodeIdentity;
use super::SERVER_NAME;
use crate::error::Result;

/// Lifetime of the CA certificate. There is no rotation yet, so it is long.
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Lifetime of a node certificate.
const NODE_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are back-dated a day to tolerate clock skew between nodes.
const CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);
/// Subject of every cluster CA. Deterministic so the issuer can be rebuilt from the key alone;
/// CAs of different clusters share it but never each other's key, so signatures still tell them
/// apart.
const CA_COMMON_NAME: &str = "Herald cluster CA";

/// A self-signed CA, serialisable so bootstrap can persist it (it holds the private key: store it
/// like a secret). `Debug` does not print the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
}

impl ClusterCa {
    /// Generates a fresh CA (ECDSA P-256).
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = SystemTime::now();
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + CA_VALIDITY).into();
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues the certificate of node `node_id`: valid for both server and client auth, with the
    /// fixed server name [`SERVER_NAME`] every node dials.
    pub fn issue(&self, node_id: u64) -> Result<NodeIdentity> {
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&self.key_pem)?);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("herald-node-{node_id}"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + NODE_VALIDITY).into();
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeIdentity {
            ca_cert_pem: self.cert_pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, PEM-encoded: the only trust root of the cluster.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The CA's parameters minus validity. `issue` rebuilds the issuer from these, so the subject and
/// key-identifier method must stay identical to what `generate` signed.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    // Path length 0: the CA signs node certificates only, never intermediates.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_identities_that_build_tls_configs() {
        let ca = ClusterCa::generate().unwrap();
        let identity = ca.issue(7).unwrap();
        assert_eq!(identity.ca_cert_pem, ca.cert_pem());
        assert!(identity.cert_pem.contains("BEGIN CERTIFICATE"));
        identity.tls_configs().unwrap();
    }

    #[test]
    fn survives_serde_round_trip() {
        let ca = ClusterCa::generate().unwrap();
        let json = serde_json::to_string(&ca).unwrap();
        let back: ClusterCa = serde_json::from_str(&json).unwrap();
        assert_eq!(back.cert_pem(), ca.cert_pem());
        back.issue(1).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn corrupt_key_is_an_error_not_a_panic() {
        let ca = ClusterCa {
            cert_pem: "garbage".into(),
            key_pem: "garbage".into(),
        };
        assert!(ca.issue(1).is_err());
    }
}
