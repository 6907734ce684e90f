//! `webhook`: triggers of a workflow whose only step is a webhook to a sink inside this process, to
//! measure delivery as well as acknowledgement. Setup starts the [`WebhookSink`] and pushes
//! `loadtest-webhook-…`, whose step posts `{"sent_us": <data.sent_us>}` to it; each trigger stamps
//! `data.sent_us` (µs since the epoch) when it is built. After load the run drains the sink and
//! reports deliveries per second, trigger-to-delivery latency, delivered vs acknowledged and
//! duplicates (see [`crate::deliveries`]).

use std::time::SystemTime;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::header::HeaderValue;
use hyper::Request;
use rand::rngs::SmallRng;
use serde_json::json;

use super::workflow::{push_workflow, service_auth, unique_key, TriggerRequests};
use super::{Scenario, ScenarioParams};
use crate::client::Pool;
use crate::error::Result;
use crate::sink::{unix_micros, WebhookSink};

pub struct Webhook {
    key: String,
    service: HeaderValue,
    requests: TriggerRequests,
    recipients: u64,
    /// Started by setup.
    sink: Option<WebhookSink>,
}

impl Webhook {
    pub fn new(params: ScenarioParams) -> Result<Self> {
        let key = unique_key("webhook");
        Ok(Self {
            service: service_auth(&params)?,
            requests: TriggerRequests::new(&params, &key)?,
            recipients: params.recipients as u64,
            key,
            sink: None,
        })
    }
}

impl Scenario for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn setup<'a>(&'a mut self, pool: &'a Pool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let sink = WebhookSink::start(self.recipients).await?;
            let workflow = json!({
                "name": "Load test: webhook delivery",
                "steps": [{
                    "ref": "hook",
                    "type": "channel",
                    "channel_key": "webhook",
                    "channel_type": "http",
                    "template": {
                        "method": "post",
                        "url": sink.url("/hook"),
                        "headers": [{ "key": "content-type", "value": "application/json" }],
                        "body": "{\"sent_us\":{{ sent_us }}}",
                    },
                }],
            });
            self.sink = Some(sink);
            push_workflow(pool, &self.service, &self.key, workflow).await
        })
    }

    fn request(&self, rng: &mut SmallRng) -> Request<Bytes> {
        let sent_us = unix_micros(SystemTime::now());
        self.requests.request(rng, json!({ "sent_us": sent_us }))
    }

    fn sink(&self) -> Option<&WebhookSink> {
        self.sink.as_ref()
    }
}
