//! A small JSON client for the node's RPC, used by `cairn farm` and `cairn wallet`.

use anyhow::{Context, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Talks to one node's RPC.
#[derive(Clone)]
pub struct RpcClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl RpcClient {
    /// A client for `base`: a URL (`http://127.0.0.1:8080`) or `HOST:PORT` (taken as http).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?;
        let base = base.trim().trim_end_matches('/');
        let base = if base.contains("://") { base.to_string() } else { format!("http://{base}") };
        // `cairn farm` and `cairn wallet` take the token from the environment only.
        let token = std::env::var("CAIRN_RPC_TOKEN").ok().filter(|t| !t.is_empty());
        Ok(RpcClient { base, http, token })
    }

    /// Sends `token` as the bearer token (`None` keeps the environment's, if any).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        if token.is_some() {
            self.token = token;
        }
        self
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn answer<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> anyhow::Result<T> {
        let status = resp.status();
        let body: Value = resp.json().await.with_context(|| format!("{what}: answer is not JSON"))?;
        if !status.is_success() {
            let code = body["error"]["code"].as_str().unwrap_or("unknown");
            let msg = body["error"]["message"].as_str().unwrap_or("");
            return Err(anyhow!("{what}: {code}: {msg}"));
        }
        serde_json::from_value(body).with_context(|| format!("{what}: unexpected answer"))
    }

    /// GET `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self.authorized(self.http.get(&url)).send().await.with_context(|| format!("cannot reach {url}"))?;
        self.answer(&format!("GET {path}"), resp).await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self.authorized(self.http.delete(&url)).send().await.with_context(|| format!("cannot reach {url}"))?;
        self.answer(&format!("DELETE {path}"), resp).await
    }

    /// POST `body` as JSON to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self.authorized(self.http.post(&url).json(body)).send().await.with_context(|| format!("cannot reach {url}"))?;
        self.answer(&format!("POST {path}"), resp).await
    }
}
