//! A node's TLS identity and the rustls configurations built from it.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::ALPN;
use crate::error::{Error, Result};

/// What a node needs to join the mesh: the cluster CA certificate (its only trust root) and its own
/// certificate and private key, all PEM. `Debug` does not print the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub ca_cert_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl NodeIdentity {
    /// Builds the TLS 1.3 server config (client certificate required, chaining to the CA) and the
    /// client config (server verified against the CA, our certificate presented). Both use the
    /// *ring* provider explicitly rather than a process-wide default.
    pub(crate) fn tls_configs(&self) -> Result<(ServerConfig, ClientConfig)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes())
            .map_err(|e| cert_error("CA certificate", e))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca)?;
        let roots = Arc::new(roots);
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| cert_error("node certificate", e))?;
        if chain.is_empty() {
            return Err(Error::Certificate(
                "node certificate PEM holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| cert_error("node private key", e))?;

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let mut server = tls13_server(&provider)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        // No 0-RTT: early data would reach us before the client's certificate is verified.
        server.max_early_data_size = 0;

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        client.enable_early_data = false;
        Ok((server, client))
    }
}

fn tls13_server(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
    Ok(ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?)
}

fn cert_error(what: &str, e: rustls_pki_types::pem::Error) -> Error {
    Error::Certificate(format!("cannot parse {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_an_error() {
        let identity = NodeIdentity {
            ca_cert_pem: "nope".into(),
            cert_pem: "nope".into(),
            key_pem: "nope".into(),
        };
        assert!(matches!(identity.tls_configs(), Err(Error::Certificate(_))));
    }
}
