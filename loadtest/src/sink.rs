//! The webhook sink: a hyper HTTP/1.1 server on 127.0.0.1:0 inside the load tester that Herald's
//! webhook deliveries are aimed at, and the drain that waits for them after load stops.
//!
//! ```text
//!  connection tasks ──Arrival──┐  (unbounded channel: no lock on the receive path)
//!  begin / finish  ────────────┴─► collector task: owns the DeliveryRecorder
//!                                     └─► delivered count (atomic) ◄── drain polls it
//! ```
//!
//! Every request is answered `200` at once, so the sink never causes retries; a duplicate therefore
//! means Herald itself sent a message twice. Binding 127.0.0.1 means the nodes must run on this
//! machine (`--spawn`, or `--targets` on localhost). Dropping the sink stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::deliveries::{Arrival, DeliveryRecorder, DeliverySummary, DrainEnd, DrainPolicy};
use crate::error::{Error, Result};

/// How often the drain looks at the delivered count.
const DRAIN_POLL: Duration = Duration::from_millis(50);

enum Event {
    Begin(u64),
    Arrival(Arrival),
    /// The recorder as it is now; the collector stops.
    Finish(oneshot::Sender<DeliveryRecorder>),
}

/// A running sink; see the module docs.
pub struct WebhookSink {
    addr: SocketAddr,
    recipients_per_trigger: u64,
    events: mpsc::UnboundedSender<Event>,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl WebhookSink {
    /// Binds 127.0.0.1:0 and starts serving. `recipients_per_trigger` turns acknowledged triggers
    /// into expected deliveries.
    pub async fn start(recipients_per_trigger: u64) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding the webhook sink", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("binding the webhook sink", e))?;
        let (events, received) = mpsc::unbounded_channel();
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(collect(received, delivered.clone()));
        tokio::spawn(serve(listener, events.clone(), stop.clone()));
        Ok(Self {
            addr,
            recipients_per_trigger,
            events,
            delivered,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Marks the end of warmup (see [`DeliveryRecorder::begin`]).
    pub fn begin(&self, measure_start: SystemTime) {
        let _ = self.events.send(Event::Begin(unix_micros(measure_start)));
    }

    /// Distinct deliveries received so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// After load stopped: waits until the deliveries of `acknowledged` triggers all arrived, the
    /// count is flat for [`crate::deliveries::DRAIN_QUIET`], `limit` passes or `cancel` fires, then
    /// summarises. Call once.
    pub async fn drain(
        &self,
        acknowledged: u64,
        limit: Duration,
        cancel: &CancellationToken,
    ) -> DeliverySummary {
        let policy = DrainPolicy {
            expected: acknowledged * self.recipients_per_trigger,
            limit,
        };
        let started = Instant::now();
        let (mut last, mut grew) = (self.delivered(), started);
        let end = loop {
            let now = Instant::now();
            let delivered = self.delivered();
            if delivered != last {
                (last, grew) = (delivered, now);
            }
            if let Some(end) = policy.check(delivered, now - grew, now - started) {
                break end;
            }
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = cancel.cancelled() => break DrainEnd::Interrupted,
            }
        };
        let drained = started.elapsed();
        let end_us = unix_micros(SystemTime::now());
        let (reply, recorder) = oneshot::channel();
        let _ = self.events.send(Event::Finish(reply));
        let recorder = recorder
            .await
            .expect("sink collector is alive until finish");
        recorder.finish(
            acknowledged,
            self.recipients_per_trigger,
            drained,
            end,
            end_us,
        )
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn collect(mut events: mpsc::UnboundedReceiver<Event>, delivered: Arc<AtomicU64>) {
    let mut recorder = DeliveryRecorder::default();
    while let Some(event) = events.recv().await {
        match event {
            Event::Begin(at) => recorder.begin(at),
            Event::Arrival(arrival) => {
                recorder.record(arrival);
                delivered.store(recorder.delivered(), Ordering::Relaxed);
            }
            Event::Finish(reply) => {
                let _ = reply.send(recorder);
                return;
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let (events, stop) = (events.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| receive(request, events.clone()));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn receive(
    request: Request<Incoming>,
    events: mpsc::UnboundedSender<Event>,
) -> std::result::Result<Response<Full<Bytes>>, hyper::Error> {
    let arrived_us = unix_micros(SystemTime::now());
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let sent_us = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["sent_us"].as_u64());
    let _ = events.send(Event::Arrival(Arrival {
        key,
        sent_us,
        arrived_us,
    }));
    Ok(Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Pool;
    use crate::config::Target;

    fn post(key: &str, body: &str) -> Request<Bytes> {
        Request::post("/hook")
            .header("idempotency-key", key)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn counts_deliveries_and_duplicates_and_drains_when_complete() {
        let sink = WebhookSink::start(1).await.unwrap();
        let target = Target::parse(&sink.url("")).unwrap();
        let pool = Pool::new(&[target], 2);
        sink.begin(SystemTime::now() - Duration::from_secs(1));
        let sent = unix_micros(SystemTime::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        for (key, body) in [
            ("m1", format!("{{\"sent_us\":{sent}}}")),
            ("m2", format!("{{\"sent_us\":{sent}}}")),
            ("m1", format!("{{\"sent_us\":{sent}}}")),
            ("m3", "not json".to_owned()),
        ] {
            let response = pool.send(post(key, &body), deadline).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let summary = sink
            .drain(3, Duration::from_secs(5), &CancellationToken::new())
            .await;
        assert_eq!(summary.drain_end, DrainEnd::Complete);
        assert_eq!(summary.expected, 3);
        assert_eq!(summary.delivered, 3);
        assert_eq!(summary.duplicates, 1);
        assert_eq!(summary.malformed, 1);
        assert_eq!(summary.latency_samples, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_when_nothing_arrives() {
        let sink = WebhookSink::start(2).await.unwrap();
        let summary = sink
            .drain(5, Duration::from_secs(30), &CancellationToken::new())
            .await;
        assert_eq!(summary.drain_end, DrainEnd::Stalled);
        assert_eq!(summary.expected, 10);
        assert_eq!(summary.delivered, 0);
        assert!(summary.drain_s >= 2.0 && summary.drain_s < 3.0);
    }
}
