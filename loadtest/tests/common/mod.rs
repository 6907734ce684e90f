//! A tiny local HTTP/1.1 server for black-box tests: records every request and answers with the
//! status its handler picks.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use herald_loadtest::{Config, LoadModel, Progress, Report, ScenarioKind, Target, Targets};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves on 127.0.0.1:0; `handler` gets each request and returns the status to answer.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Captured) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StatusCode> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (handler, log) = (handler.clone(), log.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let captured = Captured {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            log.lock().unwrap().push(captured.clone());
                            let status = handler(captured).await;
                            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                            *response.status_mut() = status;
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// Answers 200 immediately, except that every request arriving in
    /// `[start + after, start + after + stall)` is held until that window ends: one server-wide
    /// pause, like a GC or fsync stall.
    pub async fn stalling_once(after: Duration, stall: Duration) -> Self {
        let from = Instant::now() + after;
        let until = from + stall;
        Self::start(move |_| async move {
            let now = Instant::now();
            if now >= from && now < until {
                tokio::time::sleep_until(until).await;
            }
            StatusCode::OK
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A quiet config aimed at this server.
    pub fn config(&self, load: LoadModel, duration: Duration) -> Config {
        let mut config = Config::new(
            Targets::Urls(vec![Target::parse(&self.url()).unwrap()]),
            load,
        );
        config.secret_key = Some("sk_test_123".into());
        config.duration = duration;
        config.progress = Progress::Off;
        config
    }
}

/// The `herald` binary of the workspace build: `$HERALD_BIN`, else `<target>/<profile>/herald`
/// next to this test's `deps/` directory. `cargo test --workspace` builds it (node's tests need
/// it); with `-p herald-loadtest` alone, build it first: `bash .ci/cargo build -p herald-node`.
pub fn herald_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("HERALD_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("herald"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} missing: build it with `bash .ci/cargo build -p herald-node` (same CARGO_TARGET_DIR) \
         or set HERALD_BIN",
        bin.display()
    );
    bin
}

/// A quiet open-loop config against a local 1-node Herald started from [`herald_bin`].
pub fn spawn_one(rate: f64, duration: Duration) -> Config {
    let mut spawn = herald_loadtest::SpawnConfig::new(1);
    spawn.herald_bin = herald_bin();
    spawn.shards = Some(4);
    spawn.ready_timeout = Duration::from_secs(30);
    let mut config = Config::new(Targets::Spawn(spawn), LoadModel::Open { rate });
    config.duration = duration;
    config.progress = Progress::Off;
    config
}

/// `scenario` at 100 requests/s for 3 s over 1000 users, against a local 1-node Herald.
pub fn spawn_scenario(scenario: ScenarioKind) -> Config {
    let mut config = spawn_one(100.0, Duration::from_secs(3));
    config.scenario = scenario;
    config.users = 1000;
    config
}

/// Runs a [`spawn_scenario`] config and prints its table; checks that no request failed and that
/// about 300 (3 s at 100/s) succeeded.
pub async fn run_spawned(config: Config) -> Report {
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    eprintln!("{}", report.render_table());
    let s = &report.summary;
    assert_eq!(s.errors, 0, "{:?}", s.errors_by_kind);
    assert!(
        (280..=310).contains(&s.successes),
        "successes {}",
        s.successes
    );
    report
}
