//! Black-box tests of the QUIC transport over 127.0.0.1: calls, concurrency, large frames,
//! reconnects, and refusal of peers without a cluster certificate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use herald_raft::transport::{
    ClusterCa, NodeIdentity, QuicTransport, RpcHandler, TransportConfig, ALPN, SERVER_NAME,
    STREAM_ERR_BAD_REQUEST, STREAM_ERR_RESPONSE_TOO_LARGE,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Echoes the request back, prefixed with the server's tag, and counts invocations.
struct Echo {
    tag: &'static [u8],
    calls: AtomicUsize,
}

impl Echo {
    fn new(tag: &'static [u8]) -> Arc<Self> {
        Arc::new(Self {
            tag,
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl RpcHandler for Echo {
    fn handle(&self, request: Bytes) -> BoxFuture<'static, Bytes> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut response = self.tag.to_vec();
        response.extend_from_slice(&request);
        Box::pin(async move { Bytes::from(response) })
    }
}

/// Replies with `len` bytes whatever the request.
struct Fixed(usize);

impl RpcHandler for Fixed {
    fn handle(&self, _request: Bytes) -> BoxFuture<'static, Bytes> {
        let len = self.0;
        Box::pin(async move { Bytes::from(vec![1u8; len]) })
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn node(identity: &NodeIdentity, handler: Arc<dyn RpcHandler>) -> QuicTransport {
    QuicTransport::bind(localhost(), identity, handler)
        .await
        .unwrap()
}

/// A server and a client of the same cluster.
async fn pair(ca: &ClusterCa) -> (QuicTransport, QuicTransport, Arc<Echo>) {
    let echo = Echo::new(b"srv:");
    let server = node(&ca.issue(1).unwrap(), echo.clone()).await;
    let client = node(&ca.issue(2).unwrap(), Echo::new(b"cli:")).await;
    (server, client, echo)
}

#[tokio::test]
async fn round_trip() {
    let ca = ClusterCa::generate().unwrap();
    let (server, client, echo) = pair(&ca).await;

    let response = client
        .call(
            server.local_addr(),
            Bytes::from_static(b"hello"),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(&response[..], b"srv:hello");

    let empty = client
        .call(server.local_addr(), Bytes::new(), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&empty[..], b"srv:");
    assert_eq!(echo.calls(), 2);

    // The other direction works too, on the server's own outgoing connection.
    let back = server
        .call(client.local_addr(), Bytes::from_static(b"hi"), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&back[..], b"cli:hi");

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let ca = ClusterCa::generate().unwrap();
    let (server, client, echo) = pair(&ca).await;
    let peer = server.local_addr();

    // All calls start cold: the dials must coalesce into a single connection.
    let calls = (0..300u32).map(|i| {
        let client = client.clone();
        async move {
            let request = Bytes::from(i.to_be_bytes().to_vec());
            let response = client.call(peer, request, CALL_TIMEOUT).await.unwrap();
            assert_eq!(&response[..4], b"srv:");
            assert_eq!(&response[4..], &i.to_be_bytes());
        }
    });
    futures::future::join_all(calls).await;

    assert_eq!(echo.calls(), 300);
    assert_eq!(client.open_connections(), 1);

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn large_payload_round_trips() {
    let ca = ClusterCa::generate().unwrap();
    let (server, client, _echo) = pair(&ca).await;

    let payload: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let response = client
        .call(
            server.local_addr(),
            Bytes::from(payload.clone()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(&response[..4], b"srv:");
    assert!(response[4..] == payload[..]);

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_are_refused() {
    let ca = ClusterCa::generate().unwrap();
    let config = TransportConfig {
        max_frame_len: 1024,
        ..TransportConfig::default()
    };
    let server = QuicTransport::bind_with_config(
        localhost(),
        &ca.issue(1).unwrap(),
        Arc::new(Fixed(4096)),
        config.clone(),
    )
    .await
    .unwrap();
    let client =
        QuicTransport::bind_with_config(localhost(), &ca.issue(2).unwrap(), Echo::new(b""), config)
            .await
            .unwrap();

    // Too large to send: refused locally.
    let err = client
        .call(
            server.local_addr(),
            Bytes::from(vec![0u8; 1025]),
            CALL_TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            herald_raft::Error::FrameTooLarge {
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // The handler's response is too large: the server resets the stream, the client learns why.
    let err = client
        .call(server.local_addr(), Bytes::from_static(b"x"), CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, herald_raft::Error::Reset { code, .. } if code == u64::from(STREAM_ERR_RESPONSE_TOO_LARGE)),
        "{err:?}"
    );

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_server_restart_and_tracks_reachability() {
    let ca = ClusterCa::generate().unwrap();
    let server_identity = ca.issue(1).unwrap();
    let (server, client, _echo) = pair(&ca).await;
    let addr = server.local_addr();

    let first = client
        .call(addr, Bytes::from_static(b"one"), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&first[..], b"srv:one");

    server.shutdown().await;
    drop(server);

    // While the server is down, calls fail with a retryable error instead of hanging.
    let down = client
        .call(
            addr,
            Bytes::from_static(b"down"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(down.is_retryable(), "{down:?}");
    assert_eq!(client.unreachable_peers(), vec![addr]);

    // The endpoint's driver task releases the UDP socket asynchronously; retry the bind briefly.
    let restarted_echo = Echo::new(b"new:");
    let deadline = Instant::now() + Duration::from_secs(5);
    let restarted = loop {
        match QuicTransport::bind(addr, &server_identity, restarted_echo.clone()).await {
            Ok(t) => break t,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("rebind failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    };

    let again = client
        .call(addr, Bytes::from_static(b"two"), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&again[..], b"new:two");
    assert_eq!(restarted_echo.calls(), 1);
    assert!(client.unreachable_peers().is_empty());

    client.shutdown().await;
    restarted.shutdown().await;
}

#[tokio::test]
async fn call_to_dead_address_fails_fast() {
    let ca = ClusterCa::generate().unwrap();
    let client = node(&ca.issue(2).unwrap(), Echo::new(b"")).await;

    // A port nobody listens on: bind a socket to learn a free port, then close it.
    let dead = std::net::UdpSocket::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap();

    let started = Instant::now();
    let err = client
        .call(
            dead,
            Bytes::from_static(b"anyone?"),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err:?}");

    client.shutdown().await;
}

#[tokio::test]
async fn calls_after_shutdown_fail() {
    let ca = ClusterCa::generate().unwrap();
    let (server, client, _echo) = pair(&ca).await;
    client.shutdown().await;
    let err = client
        .call(server.local_addr(), Bytes::from_static(b"x"), CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, herald_raft::Error::Shutdown), "{err:?}");
    server.shutdown().await;
}

// ---- authentication -------------------------------------------------------------------------

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let echo = Echo::new(b"srv:");
    let server = node(&ca.issue(1).unwrap(), echo.clone()).await;

    let client = RawClient::new(None, None);
    let result = client
        .exchange(server.local_addr(), &frame(b"let me in"))
        .await;
    assert_refused_by_tls(result);
    assert_eq!(echo.calls(), 0, "handler ran for an unauthenticated client");

    server.shutdown().await;
}

#[tokio::test]
async fn client_with_foreign_certificate_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let other_ca = ClusterCa::generate().unwrap();
    let echo = Echo::new(b"srv:");
    let server = node(&ca.issue(1).unwrap(), echo.clone()).await;

    // Trusts the cluster CA, so the client accepts the server; but presents a certificate signed by
    // another CA, which the server must refuse.
    let foreign = other_ca.issue(2).unwrap();
    let intruder_identity = NodeIdentity {
        ca_cert_pem: ca.cert_pem().to_string(),
        cert_pem: foreign.cert_pem,
        key_pem: foreign.key_pem,
    };
    let intruder = node(&intruder_identity, Echo::new(b"")).await;
    let err = intruder
        .call(
            server.local_addr(),
            Bytes::from_static(b"let me in"),
            CALL_TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, herald_raft::Error::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable());

    // Same with a raw client that skips server verification entirely.
    let raw = RawClient::new(None, Some(&other_ca.issue(3).unwrap()));
    let result = raw
        .exchange(server.local_addr(), &frame(b"let me in"))
        .await;
    assert_refused_by_tls(result);

    assert_eq!(echo.calls(), 0, "handler ran for a foreign client");
    intruder.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_with_foreign_certificate_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let other_ca = ClusterCa::generate().unwrap();
    let impostor_echo = Echo::new(b"imp:");
    let impostor = node(&other_ca.issue(1).unwrap(), impostor_echo.clone()).await;
    let client = node(&ca.issue(2).unwrap(), Echo::new(b"")).await;

    let err = client
        .call(
            impostor.local_addr(),
            Bytes::from_static(b"secret"),
            CALL_TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, herald_raft::Error::Tls { .. }), "{err:?}");
    assert_eq!(impostor_echo.calls(), 0);

    client.shutdown().await;
    impostor.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_reset_the_stream_not_the_server() {
    let ca = ClusterCa::generate().unwrap();
    let echo = Echo::new(b"srv:");
    let server = node(&ca.issue(1).unwrap(), echo.clone()).await;
    let member = ca.issue(2).unwrap();
    let raw = RawClient::new(Some(&ca), Some(&member));
    let conn = raw.connect(server.local_addr()).await.unwrap();

    // A length prefix far above the limit.
    let err = RawClient::exchange_on(&conn, &[0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(err, Some(u64::from(STREAM_ERR_BAD_REQUEST)));

    // A frame that ends early.
    let err = RawClient::exchange_on(&conn, &[0, 0, 0, 10, 1, 2, 3])
        .await
        .unwrap_err();
    assert_eq!(err, Some(u64::from(STREAM_ERR_BAD_REQUEST)));

    // The connection and the server are fine afterwards.
    let response = RawClient::exchange_on(&conn, &frame(b"ok")).await.unwrap();
    assert_eq!(&response[..], &frame(b"srv:ok")[..]);
    assert_eq!(echo.calls(), 1);

    server.shutdown().await;
}

/// The server must have aborted the handshake with a TLS alert, and not for want of a common
/// ALPN protocol (alert 120), which would mean the test proves nothing about certificates.
fn assert_refused_by_tls(result: Result<Vec<u8>, Option<quinn::ConnectionError>>) {
    match result {
        Err(Some(quinn::ConnectionError::ConnectionClosed(close))) => {
            let code = u64::from(close.error_code);
            assert!((0x100..0x200).contains(&code), "not a TLS alert: {close}");
            assert_ne!(code, 0x100 + 120, "refused for ALPN, not the certificate");
        }
        other => panic!("expected a TLS refusal from the server, got {other:?}"),
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A bare quinn client, to speak to the server the way a stranger would.
struct RawClient {
    endpoint: quinn::Endpoint,
}

impl RawClient {
    /// `trust`: verify the server against this CA, or skip verification when `None`.
    /// `cert`: present this identity's certificate, or none.
    fn new(trust: Option<&ClusterCa>, cert: Option<&NodeIdentity>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap();
        let builder = match trust {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
                    .unwrap();
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider))),
        };
        let mut tls = match cert {
            Some(identity) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        // Speak the right ALPN so that only the certificate can be the reason for refusal.
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client(localhost()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        Self { endpoint }
    }

    async fn connect(&self, server: SocketAddr) -> Result<quinn::Connection, String> {
        self.endpoint
            .connect(server, SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    }

    /// Connects and performs one raw exchange. On failure, returns why the connection was closed
    /// (`None` if it was not: a timeout or a stream-level error).
    async fn exchange(
        &self,
        server: SocketAddr,
        request: &[u8],
    ) -> Result<Vec<u8>, Option<quinn::ConnectionError>> {
        let conn = self
            .endpoint
            .connect(server, SERVER_NAME)
            .expect("valid connect parameters");
        // The client may consider a TLS 1.3 handshake done before the server has checked its
        // certificate, so the refusal can surface here or on the stream.
        let conn = conn.await.map_err(Some)?;
        match tokio::time::timeout(CALL_TIMEOUT, Self::exchange_on(&conn, request)).await {
            Ok(Ok(response)) => Ok(response),
            _ => Err(conn.close_reason()),
        }
    }

    /// Writes `request` raw on a new stream and reads the whole reply. `Err(Some(code))` when the
    /// server reset the stream, `Err(None)` for any other failure.
    async fn exchange_on(conn: &quinn::Connection, request: &[u8]) -> Result<Vec<u8>, Option<u64>> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|_| None)?;
        send.write_all(request).await.map_err(|_| None)?;
        send.finish().map_err(|_| None)?;
        match recv.read_to_end(1 << 20).await {
            Ok(bytes) => Ok(bytes),
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                Err(Some(code.into_inner()))
            }
            Err(_) => Err(None),
        }
    }
}

/// Accepts any server certificate: the raw client tests the server's checks, not its own.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
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
