//! Workflows and channels as files, for CI pipelines: `herald workflow push|pull|validate DIR` and
//! `herald channel push|pull DIR`, against a running cluster's management API.
//!
//! Layout: one JSON file per resource, named by its key: `DIR/<key>.json`.
//! - A workflow file holds Knock's workflow object (`name`, `steps`, `categories`, `conditions`,
//!   `settings`, `trigger_data_json_schema`, ...), the same as the `workflow` of an upsert body;
//!   read-only fields (`active`, `sha`, `version`, timestamps) are ignored on push and not written
//!   on pull.
//! - A channel file holds `{type, provider, name?, settings?, sandbox?}` (settings may carry
//!   secrets: keep such files out of version control or template them in CI). A file without
//!   `settings` keeps the channel's stored settings, so a pulled file pushes back unchanged.
//!
//! `push` validates every workflow file first and changes nothing unless all are valid; every
//! problem of every file is printed (`file: path: reason`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Fields the server adds to a workflow; never part of a definition file.
const WORKFLOW_READ_ONLY: [&str; 9] = [
    "key",
    "active",
    "valid",
    "sha",
    "version",
    "environment",
    "created_at",
    "updated_at",
    "__typename",
];

/// A management API client.
pub struct Catalog {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// One problem of one file.
#[derive(Debug)]
pub struct FileProblem {
    pub file: PathBuf,
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.path, self.reason)
    }
}

impl Catalog {
    pub fn new(base: &str, token: &str) -> Result<Catalog> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Catalog {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .context("http client")?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .query(&[("environment", "development")]);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("request {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("read response")?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Validate every workflow file of `dir` on the server; the problems of all files.
    pub async fn validate_workflows(&self, dir: &Path) -> Result<Vec<FileProblem>> {
        let mut problems = Vec::new();
        for (file, key, definition) in read_dir(dir)? {
            let body = json!({ "workflow": strip(definition, &WORKFLOW_READ_ONLY) });
            let (status, reply) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/workflows/{key}/validate"),
                    Some(&body),
                )
                .await?;
            match status {
                200 => {}
                422 => problems.extend(problems_of(&file, &reply)),
                _ => bail!("{}: server answered {status}: {reply}", file.display()),
            }
        }
        Ok(problems)
    }

    /// Validate all, then upsert every workflow of `dir`; the keys pushed.
    pub async fn push_workflows(&self, dir: &Path) -> Result<Vec<String>> {
        let problems = self.validate_workflows(dir).await?;
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!("nothing pushed; invalid workflows:\n{}", lines.join("\n"));
        }
        self.push(
            dir,
            "/v1/workflows",
            |definition| json!({ "workflow": strip(definition, &WORKFLOW_READ_ONLY) }),
        )
        .await
    }

    /// Write every workflow on the server to `dir/<key>.json`; the keys written.
    pub async fn pull_workflows(&self, dir: &Path) -> Result<Vec<String>> {
        self.pull(dir, "/v1/workflows", &WORKFLOW_READ_ONLY).await
    }

    /// Create or replace every channel of `dir` (`<key>.json`); the keys pushed.
    pub async fn push_channels(&self, dir: &Path) -> Result<Vec<String>> {
        self.push(dir, "/v1/channels", |channel| json!({ "channel": channel }))
            .await
    }

    /// Write every channel (without its settings, which the API never returns) to `dir`.
    pub async fn pull_channels(&self, dir: &Path) -> Result<Vec<String>> {
        self.pull(
            dir,
            "/v1/channels",
            &["key", "id", "created_at", "updated_at", "__typename"],
        )
        .await
    }

    /// PUT every file of `dir` to `<collection>/<key>`, its JSON wrapped by `body`; stops at the
    /// first answer other than 200. The keys pushed.
    async fn push(
        &self,
        dir: &Path,
        collection: &str,
        body: impl Fn(Value) -> Value,
    ) -> Result<Vec<String>> {
        let mut pushed = Vec::new();
        for (file, key, value) in read_dir(dir)? {
            let (status, reply) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("{collection}/{key}"),
                    Some(&body(value)),
                )
                .await?;
            if status != 200 {
                bail!("{}: server answered {status}: {reply}", file.display());
            }
            pushed.push(key);
        }
        Ok(pushed)
    }

    async fn pull(&self, dir: &Path, path: &str, drop: &[&str]) -> Result<Vec<String>> {
        let (status, reply) = self.call(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("{path}: server answered {status}: {reply}");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut keys = Vec::new();
        for item in reply["entries"].as_array().cloned().unwrap_or_default() {
            let Some(key) = item["key"].as_str().map(str::to_owned) else {
                continue;
            };
            let file = dir.join(format!("{key}.json"));
            let text = serde_json::to_string_pretty(&strip(item, drop))?;
            std::fs::write(&file, text + "\n")
                .with_context(|| format!("write {}", file.display()))?;
            keys.push(key);
        }
        Ok(keys)
    }
}

/// `(file, key, JSON)` of every `*.json` in `dir`, ordered by file name.
fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, String, Value)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", file.display()))?;
            let key = file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_owned)
                .with_context(|| format!("{}: file name is not a key", file.display()))?;
            Ok((file, key, value))
        })
        .collect()
}

fn strip(mut v: Value, fields: &[&str]) -> Value {
    if let Value::Object(m) = &mut v {
        for f in fields {
            m.remove(*f);
        }
    }
    v
}

fn problems_of(file: &Path, reply: &Value) -> Vec<FileProblem> {
    let listed: Vec<FileProblem> = reply["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| FileProblem {
            file: file.to_owned(),
            path: e["field"].as_str().unwrap_or_default().to_owned(),
            reason: e["message"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    if listed.is_empty() {
        vec![FileProblem {
            file: file.to_owned(),
            path: String::new(),
            reason: reply["message"].as_str().unwrap_or("invalid").to_owned(),
        }]
    } else {
        listed
    }
}
