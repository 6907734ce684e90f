//! One Herald node in-process: the cluster member plus its HTTP server. `main` and the tests both
//! start nodes through [`Node::start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{Error, Result};

pub struct Node {
    pub cluster: Cluster,
    pub http_addr: SocketAddr,
    stop_http: CancellationToken,
    http_task: JoinHandle<()>,
}

impl Node {
    /// Start the cluster member, then serve HTTP on `config.http`.
    pub async fn start(config: Config) -> Result<Node> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|e| Error::Internal(format!("bind http {}: {e}", config.http)))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let cluster = Cluster::start(config).await?;
        let backend: Arc<dyn Backend> = Arc::new(cluster.clone());
        let app = crate::ops::router(cluster.clone()).merge(crate::http::router(backend));
        let stop_http = CancellationToken::new();
        let stop = stop_http.clone();
        // Responses go out as soon as they are written (no Nagle delay behind an unacknowledged
        // segment): clients are interactive, one request per round trip.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http_task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "http server failed");
            }
        });
        tracing::info!(node = cluster.node_id(), %http_addr, "node started");
        Ok(Node {
            cluster,
            http_addr,
            stop_http,
            http_task,
        })
    }

    /// Ordered teardown: stop accepting HTTP, drain it, then stop Raft groups and the transport.
    pub async fn shutdown(self) {
        self.stop_http.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.http_task).await;
        self.cluster.shutdown().await;
    }
}
