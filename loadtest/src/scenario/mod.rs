//! Scenarios: what requests a run sends.
//!
//! A scenario is a [`Scenario`] implementation in its own file. The driver calls
//! [`Scenario::setup`] once (it may call the API, e.g. push a workflow or identify the users a
//! feed scenario will read), then [`Scenario::request`] once per request from load-generating
//! tasks. To add one: write `scenario/<name>.rs`, add a [`ScenarioKind`] variant, map it in
//! [`build`].
//!
//! Planned next: `trigger` (setup pushes a workflow, then `POST /v1/workflows/{key}/trigger` with
//! 1..k recipients) and `feed` (setup identifies users and signs user tokens, then
//! `GET /v1/users/{id}/feeds/{channel}` with the public key).

mod identify;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::Request;
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};

use crate::client::Pool;
use crate::config::UserDistribution;
use crate::error::{Error, Result};

pub use identify::Identify;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// `PUT /v1/users/{id}` with a small JSON body.
    Identify,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Identify => "identify",
        }
    }
}

/// What every scenario gets to build its requests.
#[derive(Debug, Clone)]
pub struct ScenarioParams {
    /// Secret API key (`sk_...`) for server-side endpoints.
    pub secret_key: String,
    /// Picks recipient ids.
    pub users: UserPicker,
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
    fn request(&self, rng: &mut SmallRng) -> Request<Full<Bytes>>;
}

/// Builds the scenario for `kind`.
pub fn build(kind: ScenarioKind, params: ScenarioParams) -> Result<Box<dyn Scenario>> {
    Ok(match kind {
        ScenarioKind::Identify => Box::new(Identify::new(params)?),
    })
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
}
