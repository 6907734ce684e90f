//! Scenarios: what requests a run sends.
//!
//! A scenario is a [`Scenario`] implementation in its own file. The driver calls
//! [`Scenario::setup`] once (it may call the API, e.g. push a workflow or identify the users a
//! feed scenario will read), then [`Scenario::request`] once per request from load-generating
//! tasks. A scenario whose requests cause webhook deliveries exposes its [`WebhookSink`] through
//! [`Scenario::sink`]; the run then drains it after load and reports deliveries too. To add one:
//! write `scenario/<name>.rs`, add a [`ScenarioKind`] variant, map it in [`build`].
//!
//! | scenario | request | measures |
//! |---|---|---|
//! | `identify` | `PUT /v1/users/{id}` | acknowledgement |
//! | `trigger` | `POST /v1/workflows/{key}/trigger`, in-app step, `--recipients` users | acknowledgement (quorum commit) |
//! | `webhook` | same, webhook step to an in-process sink | acknowledgement + delivery rate, trigger-to-delivery latency, losses, duplicates |
//!
//! Workflow scenarios push a fresh `loadtest-<scenario>-…` workflow with the service token in
//! setup ([`workflow`]), so concurrent or repeated runs never share one.
//!
//! Planned next: `feed` (setup identifies users and signs user tokens, then
//! `GET /v1/users/{id}/feeds/{channel}` with the public key).

mod identify;
mod trigger;
mod webhook;
mod workflow;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request};
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};

use crate::client::Pool;
use crate::config::UserDistribution;
use crate::error::{Error, Result};
use crate::sink::WebhookSink;

pub use identify::Identify;
pub use trigger::Trigger;
pub use webhook::Webhook;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// `PUT /v1/users/{id}` with a small JSON body.
    Identify,
    /// `POST /v1/workflows/{key}/trigger` of an in-app feed workflow pushed in setup.
    Trigger,
    /// Triggers of a webhook workflow posting to a local sink; also measures delivery.
    Webhook,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Identify => "identify",
            ScenarioKind::Trigger => "trigger",
            ScenarioKind::Webhook => "webhook",
        }
    }

    /// Whether setup uses the management API (it pushes a workflow).
    pub fn needs_service_token(self) -> bool {
        matches!(self, ScenarioKind::Trigger | ScenarioKind::Webhook)
    }
}

/// What every scenario gets to build its requests.
#[derive(Debug, Clone)]
pub struct ScenarioParams {
    /// Secret API key (`sk_...`) for server-side endpoints.
    pub secret_key: String,
    /// Service token for the management API (workflow scenarios push their workflow with it).
    pub service_token: Option<String>,
    /// Picks recipient ids.
    pub users: UserPicker,
    /// Distinct recipients per trigger.
    pub recipients: usize,
}

/// A request mix. Implementations must be cheap to call from many tasks at once.
pub trait Scenario: Send + Sync {
    /// Short name shown in reports.
    fn name(&self) -> &'static str;

    /// Runs once before load starts; may call the API through `pool`. A failure aborts the run.
    fn setup<'a>(&'a mut self, pool: &'a Pool) -> BoxFuture<'a, Result<()>> {
        let _ = pool;
        Box::pin(async { Ok(()) })
    }

    /// The next request: method, path (no scheme or host), headers and body. The pool adds `Host`.
    fn request(&self, rng: &mut SmallRng) -> Request<Bytes>;

    /// The sink receiving the deliveries this scenario's requests cause, once setup started it.
    fn sink(&self) -> Option<&WebhookSink> {
        None
    }
}

/// Builds the scenario for `kind`.
pub fn build(kind: ScenarioKind, params: ScenarioParams) -> Result<Box<dyn Scenario>> {
    Ok(match kind {
        ScenarioKind::Identify => Box::new(Identify::new(params)?),
        ScenarioKind::Trigger => Box::new(Trigger::new(params)?),
        ScenarioKind::Webhook => Box::new(Webhook::new(params)?),
    })
}

/// `Bearer <token>` as a header value; `what` names the token in the error.
fn bearer(token: &str, what: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Config(format!("{what} is not a valid header value")))
}

/// A JSON request (`body` may be empty, e.g. for `GET`) with a bearer header.
fn json_request(method: Method, path: &str, auth: &HeaderValue, body: String) -> Request<Bytes> {
    let mut request = Request::new(Bytes::from(body));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().expect("scenario paths are valid URIs");
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, auth.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

/// Samples recipient indexes in `0..users`, uniformly or Zipf-distributed (index 0 hottest).
#[derive(Debug, Clone)]
pub struct UserPicker {
    users: u64,
    zipf: Option<Arc<Zipf<f64>>>,
}

impl UserPicker {
    pub fn new(users: u64, distribution: UserDistribution) -> Result<Self> {
        let zipf = match distribution {
            UserDistribution::Uniform => None,
            UserDistribution::Zipf { s } => Some(Arc::new(
                Zipf::new(users as f64, s).map_err(|e| Error::Config(format!("--skew: {e}")))?,
            )),
        };
        Ok(Self { users, zipf })
    }

    /// Number of distinct recipients.
    pub fn users(&self) -> u64 {
        self.users
    }

    pub fn sample(&self, rng: &mut SmallRng) -> u64 {
        match &self.zipf {
            None => rng.random_range(0..self.users),
            // Zipf yields ranks 1..=n as floats.
            Some(zipf) => (zipf.sample(rng) as u64).clamp(1, self.users) - 1,
        }
    }

    /// `count` distinct indexes (`count <= users`, checked by config validation). A collision is
    /// re-drawn a few times, then replaced by the next free index, so a hot Zipf head cannot
    /// make this loop long.
    pub fn sample_distinct(&self, rng: &mut SmallRng, count: usize) -> Vec<u64> {
        // Membership only (never iterated), so a HashSet keeps large counts linear.
        let mut taken = std::collections::HashSet::with_capacity(count);
        let mut picked = Vec::with_capacity(count);
        while picked.len() < count {
            let mut index = self.sample(rng);
            for _ in 0..8 {
                if !taken.contains(&index) {
                    break;
                }
                index = self.sample(rng);
            }
            while !taken.insert(index) {
                index = (index + 1) % self.users;
            }
            picked.push(index);
        }
        picked
    }

    /// The user id for an index, e.g. `user-42`.
    pub fn user_id(index: u64) -> String {
        format!("user-{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uniform_and_zipf_stay_in_range_and_zipf_is_skewed() {
        let mut rng = SmallRng::seed_from_u64(7);
        let uniform = UserPicker::new(10, UserDistribution::Uniform).unwrap();
        let zipf = UserPicker::new(1000, UserDistribution::Zipf { s: 1.2 }).unwrap();
        let mut hot = 0;
        for _ in 0..10_000 {
            assert!(uniform.sample(&mut rng) < 10);
            let index = zipf.sample(&mut rng);
            assert!(index < 1000);
            if index == 0 {
                hot += 1;
            }
        }
        // With s = 1.2 over 1000 ids the hottest id gets well over 10 % of picks (uniform: 0.1 %).
        assert!(hot > 1000, "hottest id picked {hot} times");
    }

    #[test]
    fn distinct_samples_are_distinct_even_when_they_take_every_id() {
        let mut rng = SmallRng::seed_from_u64(7);
        let zipf = UserPicker::new(20, UserDistribution::Zipf { s: 2.0 }).unwrap();
        for count in [1, 5, 20] {
            let mut picked = zipf.sample_distinct(&mut rng, count);
            picked.sort_unstable();
            picked.dedup();
            assert_eq!(picked.len(), count);
            assert!(picked.iter().all(|&i| i < 20));
        }
    }
}
