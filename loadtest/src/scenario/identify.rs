//! `identify`: upsert a user, as `knock.users.identify(id, {name, email})` does.
//! `PUT /v1/users/{id}` with `Authorization: Bearer <secret key>` and body `{"name", "email"}`.

use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request};
use rand::rngs::SmallRng;

use super::{bearer, Scenario, ScenarioParams, UserPicker};
use crate::error::Result;

pub struct Identify {
    auth: HeaderValue,
    users: UserPicker,
}

impl Identify {
    pub fn new(params: ScenarioParams) -> Result<Self> {
        Ok(Self {
            auth: bearer(&params.secret_key, "secret key")?,
            users: params.users,
        })
    }
}

impl Scenario for Identify {
    fn name(&self) -> &'static str {
        "identify"
    }

    fn request(&self, rng: &mut SmallRng) -> Request<Bytes> {
        let index = self.users.sample(rng);
        let id = UserPicker::user_id(index);
        let body = serde_json::json!({
            "name": format!("Load Test User {index}"),
            "email": format!("{id}@loadtest.invalid"),
        });
        let mut request = Request::new(Bytes::from(body.to_string()));
        *request.method_mut() = Method::PUT;
        *request.uri_mut() = format!("/v1/users/{id}")
            .parse()
            .expect("user ids are valid path segments");
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.auth.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }
}
