//! `trigger`: `knock.workflows.trigger(key, {recipients, data})` against an in-app feed workflow.
//! Setup pushes `loadtest-trigger-…` (one `in_app_feed` step) with the service token; each request
//! is `POST /v1/workflows/{key}/trigger` with the secret key for `--recipients` distinct users.
//! Latency is acknowledgement latency: Herald answers once the runs are committed on a quorum.

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::header::HeaderValue;
use hyper::Request;
use rand::rngs::SmallRng;
use serde_json::{json, Map, Value};

use super::workflow::{push_workflow, service_auth, unique_key, TriggerRequests};
use super::{Scenario, ScenarioParams};
use crate::client::Pool;
use crate::error::Result;

pub struct Trigger {
    key: String,
    service: HeaderValue,
    requests: TriggerRequests,
}

impl Trigger {
    pub fn new(params: ScenarioParams) -> Result<Self> {
        let key = unique_key("trigger");
        Ok(Self {
            service: service_auth(&params)?,
            requests: TriggerRequests::new(&params, &key)?,
            key,
        })
    }
}

impl Scenario for Trigger {
    fn name(&self) -> &'static str {
        "trigger"
    }

    fn setup<'a>(&'a mut self, pool: &'a Pool) -> BoxFuture<'a, Result<()>> {
        let workflow = json!({
            "name": "Load test: in-app trigger",
            "steps": [{
                "ref": "feed",
                "type": "channel",
                "channel_key": "in-app",
                "channel_type": "in_app_feed",
                "template": { "markdown_body": "Hello {{ recipient.id }} {{ n }}" },
            }],
        });
        Box::pin(push_workflow(pool, &self.service, &self.key, workflow))
    }

    fn request(&self, rng: &mut SmallRng) -> Request<Bytes> {
        self.requests.request(rng, Value::Object(Map::new()))
    }
}
