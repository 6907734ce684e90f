//! HTTP ceiling: a bare hyper 1 server that answers every request with `200` and a small JSON body,
//! loaded by the same `herald-loadtest` binary and flags Herald is measured with.
//!
//! The server does what any HTTP server must (accept, parse, read the whole body, write a response
//! on a keep-alive HTTP/1.1 connection) and nothing Herald does (auth, validation, routing, Raft,
//! RocksDB). Its throughput is therefore the most Herald's HTTP front end could reach on this
//! machine with this load generator sharing the cores.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Error, Result};
use crate::loadtest::{self, LoadtestReport, LoadtestRun, LoadtestTarget};

/// What every request gets back: about the size of a small Knock user object.
const RESPONSE_BODY: &[u8] =
    br#"{"__typename":"User","id":"user-1","name":"Load Test User","email":"user-1@loadtest.invalid"}"#;

/// The bare server: bound to 127.0.0.1 on an ephemeral port, serving until [`stop`](Self::stop)
/// (or drop).
pub struct BareHttpServer {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    /// The accept loop; it owns the connection tasks, so aborting it closes every connection.
    task: JoinHandle<()>,
}

impl BareHttpServer {
    /// Binds `127.0.0.1:0` and starts serving. Must be called inside a tokio runtime.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::io("binding the bare HTTP server", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("bare HTTP server address", e))?;
        let served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(listener, served.clone()));
        Ok(Self { addr, served, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, as `herald-loadtest --targets` wants it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far (warmup included).
    pub fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for BareHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, served: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let served = served.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| answer(req, served.clone()));
                    // Keep-alive is hyper's default; a client closing is the normal end.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    served: Arc<AtomicU64>,
) -> std::result::Result<Response<Full<Bytes>>, hyper::Error> {
    // Read the body like a real handler must before it can answer (identify sends JSON).
    request.into_body().collect().await?;
    served.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::from_static(RESPONSE_BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// How the bare server is loaded.
#[derive(Debug, Clone)]
pub struct HttpCeilingConfig {
    /// The `herald-loadtest` binary.
    pub loadtest_bin: std::path::PathBuf,
    /// Closed-loop workers (`--concurrency`).
    pub concurrency: usize,
    /// Measured window (`--duration`).
    pub duration: Duration,
    /// Excluded from the stats (`--warmup`).
    pub warmup: Duration,
}

/// The bare server's numbers, as `herald-loadtest` reported them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpCeiling {
    /// `http://127.0.0.1:PORT` of the bare server.
    pub target: String,
    /// Requests the server answered, warmup included (a cross-check of the client's count).
    pub server_requests: u64,
    pub loadtest: LoadtestReport,
}

/// Starts the bare server, runs `herald-loadtest --scenario identify` against it, stops it.
/// `work_dir` receives the loadtest's JSON report.
pub async fn measure(config: &HttpCeilingConfig, work_dir: &Path) -> Result<HttpCeiling> {
    let server = BareHttpServer::start().await?;
    let run = LoadtestRun {
        bin: config.loadtest_bin.clone(),
        target: LoadtestTarget::Url {
            url: server.url(),
            key: "sk_x".into(),
        },
        scenario: "identify".into(),
        concurrency: config.concurrency,
        duration: config.duration,
        warmup: config.warmup,
        out: work_dir.join("http-ceiling.json"),
    };
    let report = loadtest::run(&run).await;
    let target = server.url();
    let server_requests = server.requests_served();
    server.stop().await;
    Ok(HttpCeiling {
        target,
        server_requests,
        loadtest: report?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::client::conn::http1 as client;

    #[tokio::test]
    async fn answers_identify_with_200_on_a_keep_alive_connection() {
        let server = BareHttpServer::start().await.unwrap();
        let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let (mut sender, conn) = client::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        for i in 0..2 {
            let request = Request::put(format!("/v1/users/user-{i}"))
                .header("authorization", "Bearer sk_x")
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"name":"a","email":"b"}"#,
                )))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], RESPONSE_BODY);
        }
        assert_eq!(server.requests_served(), 2);
        server.stop().await;
    }
}
