//! HTTP/1.1 keep-alive connection pool over raw hyper connections.
//!
//! ```text
//!   send(req) --round robin--> TargetPool[i]
//!                                 permits (= its share of --connections): wait here when all busy
//!                                 idle: Vec<SendRequest>   reuse, or connect a new one
//! ```
//!
//! A request waits for a permit, so at most `--connections` requests are on the wire at once; in an
//! open loop the rest queue in FIFO order and their queueing time is part of their latency. Each
//! target owns its permits, so one slow node does not starve the others of connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::Target;
use crate::stats::ErrorKind;

type Conn = SendRequest<Full<Bytes>>;

/// A pool of keep-alive connections to every target.
pub struct Pool {
    targets: Vec<TargetPool>,
    next: AtomicUsize,
}

struct TargetPool {
    authority: String,
    host: HeaderValue,
    permits: Semaphore,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    /// `connections` is the total, split evenly over targets (at least one each).
    pub fn new(targets: &[Target], connections: usize) -> Self {
        let per_target = connections.div_ceil(targets.len().max(1)).max(1);
        let targets = targets
            .iter()
            .map(|t| TargetPool {
                authority: t.authority.clone(),
                host: HeaderValue::from_str(&t.authority)
                    .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
                permits: Semaphore::new(per_target),
                idle: Mutex::new(Vec::with_capacity(per_target)),
            })
            .collect();
        Self {
            targets,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `request` (whose URI is a path) to the next target in round-robin order and reads the
    /// whole response body. Gives up with [`ErrorKind::Timeout`] at `deadline`, which includes time
    /// spent waiting for a free connection.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<Response<Bytes>, ErrorKind> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        self.send_to(index, request, deadline).await
    }

    /// Like [`Pool::send`], to one particular target (e.g. a setup step that must reach every node).
    pub async fn send_to(
        &self,
        target: usize,
        request: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<Response<Bytes>, ErrorKind> {
        let target = &self.targets[target];
        match tokio::time::timeout_at(deadline, target.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(ErrorKind::Timeout),
        }
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when the pool has no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

impl TargetPool {
    async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Response<Bytes>, ErrorKind> {
        // Dropping the permit (also on timeout) frees the slot; a connection dropped mid-request is
        // simply closed, never returned to `idle`.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("pool semaphore is never closed");
        request.headers_mut().insert(HOST, self.host.clone());

        let mut reused = true;
        let mut conn = match self.pop_idle() {
            Some(conn) => conn,
            None => {
                reused = false;
                self.connect().await?
            }
        };
        loop {
            if conn.ready().await.is_err() {
                conn = self.connect().await?;
                reused = false;
            }
            match conn.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map_err(|_| ErrorKind::Io)?.to_bytes();
                    if !conn.is_closed() {
                        self.idle.lock().expect("pool lock").push(conn);
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut err) => match err.take_message() {
                    // The server closed an idle keep-alive connection before the request was
                    // written: nothing reached it, so retrying on a fresh connection is safe.
                    Some(unsent) if reused => {
                        request = unsent;
                        conn = self.connect().await?;
                        reused = false;
                    }
                    _ => return Err(ErrorKind::Io),
                },
            }
        }
    }

    fn pop_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(conn) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, ErrorKind> {
        connect(&self.authority).await
    }
}

async fn connect(authority: &str) -> Result<Conn, ErrorKind> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    tokio::spawn(async move {
        // Errors here surface to the request that was using the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One-off `GET path` on a fresh connection, returning the status code. Used for readiness probes.
/// One-shot `GET path` on a fresh connection, with a bearer token if given: the status and body.
pub async fn get(
    authority: &str,
    path: &str,
    token: Option<&str>,
    deadline: Instant,
) -> Result<(u16, Bytes), ErrorKind> {
    let attempt = async {
        let mut conn = connect(authority).await?;
        let mut request = Request::get(path).header(HOST, authority);
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|_| ErrorKind::Io)?;
        let response = conn
            .send_request(request)
            .await
            .map_err(|_| ErrorKind::Io)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| ErrorKind::Io)?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout_at(deadline, attempt)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
}
