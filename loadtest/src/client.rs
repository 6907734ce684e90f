//! HTTP/1.1 keep-alive client: a pool of plain TCP connections per target.
//!
//! ```text
//!   send(req) --round robin--> TargetPool[i]
//!                                 permits (= its share of --connections): wait here when all busy
//!                                 idle: Vec<Conn>   reuse, or connect a new one
//!   Conn::exchange: one write of head + body, reads until the response is complete (httparse)
//! ```
//!
//! The generator shares the machine with the cluster it measures, so it keeps its own cost per
//! request low: the request is written and its response read on the calling task, with no
//! connection task and no channel between the two (hyper's client has both). With this client and
//! mimalloc instead of hyper's client and glibc's malloc, the generator's CPU per request fell from
//! 16.8 to 11.8 µs (docs/benchmarks.md, session 8).
//!
//! A request waits for a permit, so at most `--connections` requests are on the wire at once; in an
//! open loop the rest queue in FIFO order and their queueing time is part of their latency. Each
//! target owns its permits, so one slow node does not starve the others of connections. The pool
//! counts the requests that had to wait ([`Pool::waits`]): in an open loop they measure the
//! generator's limit, not the server, and the report says so.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::{Buf, Bytes, BytesMut};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::Target;
use crate::stats::ErrorKind;

/// Most headers a response may have.
const MAX_HEADERS: usize = 64;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// A pool of keep-alive connections to every target.
pub struct Pool {
    targets: Vec<TargetPool>,
    next: AtomicUsize,
}

struct TargetPool {
    authority: String,
    permits: Semaphore,
    idle: Mutex<Vec<Conn>>,
    /// Requests that found every connection busy and waited for one.
    waits: AtomicU64,
}

impl Pool {
    /// `connections` is the total, split evenly over targets (at least one each).
    pub fn new(targets: &[Target], connections: usize) -> Self {
        let per_target = connections.div_ceil(targets.len().max(1)).max(1);
        let targets = targets
            .iter()
            .map(|t| TargetPool {
                authority: t.authority.clone(),
                permits: Semaphore::new(per_target),
                idle: Mutex::new(Vec::with_capacity(per_target)),
                waits: AtomicU64::new(0),
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
        request: Request<Bytes>,
        deadline: Instant,
    ) -> Result<Response<Bytes>, ErrorKind> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        self.send_to(index, request, deadline).await
    }

    /// Like [`Pool::send`], to one particular target (e.g. a setup step that must reach every node).
    pub async fn send_to(
        &self,
        target: usize,
        request: Request<Bytes>,
        deadline: Instant,
    ) -> Result<Response<Bytes>, ErrorKind> {
        let target = &self.targets[target];
        match tokio::time::timeout_at(deadline, target.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(ErrorKind::Timeout),
        }
    }

    /// Requests so far that found all their target's connections busy and waited for one.
    pub fn waits(&self) -> u64 {
        self.targets
            .iter()
            .map(|t| t.waits.load(Ordering::Relaxed))
            .sum()
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
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, ErrorKind> {
        // Dropping the permit (also on timeout) frees the slot; a connection dropped mid-request is
        // simply closed, never returned to `idle`.
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                self.permits
                    .acquire()
                    .await
                    .expect("pool semaphore is never closed")
            }
        };
        let wire = encode(&request, &self.authority);
        let idle = self.idle.lock().expect("pool lock").pop();
        let (mut conn, reused) = match idle {
            Some(conn) => (conn, true),
            None => (Conn::connect(&self.authority).await?, false),
        };
        let answer = match conn.exchange(&wire).await {
            // The server closed an idle keep-alive connection before answering anything: the
            // request is sent again, once, on a fresh connection.
            Err(Failure::Unanswered) if reused => {
                conn = Conn::connect(&self.authority).await?;
                conn.exchange(&wire).await
            }
            other => other,
        };
        let answer = answer.map_err(|_| ErrorKind::Io)?;
        if answer.keep_alive {
            self.idle.lock().expect("pool lock").push(conn);
        }
        Ok(answer.response)
    }
}

/// How an exchange failed.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The connection ended before any byte of the response arrived.
    Unanswered,
    /// The connection failed mid-response, or the response was not valid HTTP/1.1.
    Broken,
}

/// A complete response and whether its connection may carry another request.
struct Answer {
    response: Response<Bytes>,
    keep_alive: bool,
}

/// One keep-alive connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn connect(authority: &str) -> Result<Conn, ErrorKind> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    /// Writes one request and reads its response.
    async fn exchange(&mut self, wire: &[u8]) -> Result<Answer, Failure> {
        self.buf.clear();
        self.stream
            .write_all(wire)
            .await
            .map_err(|_| Failure::Unanswered)?;
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            let was_empty = self.buf.is_empty();
            match self.fill().await {
                Ok(()) => {}
                Err(_) if was_empty => return Err(Failure::Unanswered),
                Err(e) => return Err(e),
            }
        };
        self.buf.advance(head.len);
        let (body, framed) = match head.framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                (self.buf.split_to(n).freeze(), true)
            }
            Framing::Chunked => (self.read_chunked().await?, true),
            Framing::UntilClose => {
                while self.fill().await.is_ok() {}
                (self.buf.split().freeze(), false)
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        Ok(Answer {
            response,
            keep_alive: framed && head.keep_alive,
        })
    }

    /// Reads more bytes; the end of the stream is a failure (the caller still wanted some).
    async fn fill(&mut self) -> Result<(), Failure> {
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(Failure::Broken),
            Ok(_) => Ok(()),
        }
    }

    async fn read_chunked(&mut self) -> Result<Bytes, Failure> {
        let mut body = BytesMut::new();
        loop {
            let (size_len, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((len, size))) => break (len, size),
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(Failure::Broken),
                }
            };
            let size = usize::try_from(size).map_err(|_| Failure::Broken)?;
            // The chunk, then its CRLF (after the last, empty chunk: the CRLF ending the trailers,
            // which this client never asks for).
            while self.buf.len() < size_len + size + 2 {
                self.fill().await?;
            }
            self.buf.advance(size_len);
            body.extend_from_slice(&self.buf.split_to(size));
            if &self.buf[..2] != b"\r\n" {
                return Err(Failure::Broken);
            }
            self.buf.advance(2);
            if size == 0 {
                return Ok(body.freeze());
            }
        }
    }
}

/// How a response's body is delimited.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: StatusCode,
    framing: Framing,
    keep_alive: bool,
}

/// The response head at the start of `buf`, or `None` if it is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Broken),
    };
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Failure::Broken)?;
    let mut framing = Framing::UntilClose;
    let mut keep_alive = response.version == Some(1);
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| Failure::Broken)?;
        if h.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let n = value.trim().parse().map_err(|_| Failure::Broken)?;
            framing = Framing::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    // No body whatever the headers say (RFC 9110 §6.4.1).
    if matches!(status.as_u16(), 100..=199 | 204 | 304) {
        framing = Framing::Length(0);
    }
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
    }))
}

/// The request as it goes on the wire: request line, `host`, the request's headers, a
/// `content-length` when there is a body, then the body.
fn encode(request: &Request<Bytes>, authority: &str) -> Vec<u8> {
    let body = request.body();
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + body.len());
    // Writes into a Vec cannot fail.
    let _ = write!(
        out,
        "{} {path} HTTP/1.1\r\nhost: {authority}\r\n",
        request.method()
    );
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// One-shot `GET path` on a fresh connection, with a bearer token if given: the status and body.
/// Used for readiness probes and cluster polls.
pub async fn get(
    authority: &str,
    path: &str,
    token: Option<&str>,
    deadline: Instant,
) -> Result<(u16, Bytes), ErrorKind> {
    let attempt = async {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Bytes::new()).map_err(|_| ErrorKind::Io)?;
        let mut conn = Conn::connect(authority).await?;
        let answer = conn
            .exchange(&encode(&request, authority))
            .await
            .map_err(|_| ErrorKind::Io)?;
        Ok((
            answer.response.status().as_u16(),
            answer.response.into_body(),
        ))
    };
    tokio::time::timeout_at(deadline, attempt)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request it reads with the next canned reply, written in pieces
    /// of `piece` bytes so that every parse path sees partial input.
    async fn canned(replies: Vec<&'static [u8]>, piece: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for reply in replies {
                // Wait for the end of a request head (the tests send no bodies).
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut b = [0u8; 1024];
                    let n = socket.read(&mut b).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&b[..n]);
                }
                seen.clear();
                for part in reply.chunks(piece) {
                    socket.write_all(part).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    fn get_request() -> Request<Bytes> {
        Request::get("/v1/x?y=1").body(Bytes::new()).unwrap()
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_connection() {
        let addr = canned(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ],
            3,
        )
        .await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let wire = encode(&get_request(), &addr);
        let first = conn.exchange(&wire).await.unwrap();
        assert_eq!(first.response.status(), 200);
        assert_eq!(first.response.body().as_ref(), b"hello");
        assert!(first.keep_alive);
        let second = conn.exchange(&wire).await.unwrap();
        assert_eq!(second.response.status(), 201);
        assert_eq!(second.response.body().as_ref(), b"abcde");
        let third = conn.exchange(&wire).await.unwrap();
        assert_eq!(third.response.status(), 204);
        assert!(third.response.body().is_empty());
    }

    #[tokio::test]
    async fn the_pool_counts_requests_that_waited_for_a_connection() {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let addr = canned(vec![ok, ok, ok], 64).await;
        let pool = Pool::new(&[Target { authority: addr }], 1);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        // One connection, two requests at once: the second waits for the first's connection.
        let (a, b) = tokio::join!(
            pool.send(get_request(), deadline),
            pool.send(get_request(), deadline)
        );
        assert_eq!(a.unwrap().status(), 200);
        assert_eq!(b.unwrap().status(), 200);
        assert_eq!(pool.waits(), 1);
        // Alone, a request finds the connection free.
        pool.send(get_request(), deadline).await.unwrap();
        assert_eq!(pool.waits(), 1);
    }

    #[tokio::test]
    async fn a_close_ends_keep_alive_and_a_silent_close_is_unanswered() {
        let addr = canned(
            vec![b"HTTP/1.1 500 Oops\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno"],
            64,
        )
        .await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let wire = encode(&get_request(), &addr);
        let answer = conn.exchange(&wire).await.unwrap();
        assert_eq!(answer.response.status(), 500);
        assert!(!answer.keep_alive);
        // The server task is done and its socket closed: nothing comes back.
        assert_eq!(conn.exchange(&wire).await.err(), Some(Failure::Unanswered));
    }

    #[tokio::test]
    async fn garbage_and_a_truncated_body_are_broken() {
        let addr = canned(vec![b"SMTP ready\r\n\r\n"], 64).await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let wire = encode(&get_request(), &addr);
        assert_eq!(conn.exchange(&wire).await.err(), Some(Failure::Broken));

        let addr = canned(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"],
            64,
        )
        .await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        assert_eq!(conn.exchange(&wire).await.err(), Some(Failure::Broken));
    }

    #[test]
    fn requests_carry_host_headers_and_length() {
        let request = Request::post("/v1/users/u1")
            .header("authorization", "Bearer k")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let wire = String::from_utf8(encode(&request, "127.0.0.1:7000")).unwrap();
        assert_eq!(
            wire,
            "POST /v1/users/u1 HTTP/1.1\r\nhost: 127.0.0.1:7000\r\nauthorization: Bearer k\r\n\
             content-length: 2\r\n\r\n{}"
        );
    }
}
