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
use crate::error::{Error, Result};

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

    /// Issues the certificate of node `node_id` together with a fresh key (bootstrap, tests).
    pub fn issue(&self, node_id: u64) -> Result<NodeIdentity> {
        let key = NodeKey::generate()?;
        let cert_pem = self.certify(node_id, &key.public_key)?;
        Ok(key.into_identity(self.cert_pem.clone(), cert_pem))
    }

    /// Signs node `node_id`'s certificate for a public key the node generated itself (an ECDSA
    /// P-256 point, as [`NodeKey::public_key`]): the private key never leaves the joining node.
    /// Valid for server and client auth, with the fixed server name every node presents.
    pub fn certify(&self, node_id: u64, public_key: &[u8]) -> Result<String> {
        // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(Error::Certificate(
                "public key is not an uncompressed P-256 point".into(),
            ));
        }
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&self.key_pem)?);
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
        let cert = params.signed_by(&P256PublicKey(public_key), &issuer)?;
        Ok(cert.pem())
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

/// A node's own key pair, generated where it will be used; only the public half travels.
pub struct NodeKey {
    key_pem: String,
    /// The public key as an uncompressed P-256 point: what [`ClusterCa::certify`] signs.
    pub public_key: Vec<u8>,
}

impl NodeKey {
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate()?;
        Ok(NodeKey {
            key_pem: key.serialize_pem(),
            public_key: key.public_key_raw().to_vec(),
        })
    }

    /// Combine with the certificate the CA signed for [`NodeKey::public_key`].
    pub fn into_identity(self, ca_cert_pem: String, cert_pem: String) -> NodeIdentity {
        NodeIdentity {
            ca_cert_pem,
            cert_pem,
            key_pem: self.key_pem,
        }
    }
}

/// A public key received from a joining node, in the form rcgen signs.
struct P256PublicKey<'a>(&'a [u8]);

impl rcgen::PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
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
    fn certifies_a_key_generated_elsewhere_and_refuses_garbage() {
        let ca = ClusterCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let cert = ca.certify(3, &key.public_key).unwrap();
        let identity = key.into_identity(ca.cert_pem().to_string(), cert);
        identity.tls_configs().unwrap();
        assert!(ca.certify(3, b"not a key").is_err());
        assert!(ca.certify(3, &[4u8; 10]).is_err());
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
