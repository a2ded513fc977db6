//! The HTTP server: one listener for the Kubo RPC subset (`/api/v0/...`), the read-only path
//! gateway (`/ipfs/...`), the functions API (`/v1/...`), `/metrics` and `/healthz`.

pub mod browser;
pub mod conn;
pub mod error;
mod functions;
mod jobs;
pub mod kubo;
mod lifecycle;
mod path_gateway;
mod secrets;
mod trustless;

pub use conn::run;

use bytes::Bytes;
use error::{ApiError, ApiResult};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use ipfaas_runtime::Functions;
use ipfaas_runtime::Store;
use ipfaas_runtime::net::Network;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body read whole, at most `limit` bytes (413 past it).
pub async fn read_limited(body: Incoming, limit: u64) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
    }
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Server settings that are not the store's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required by every state-changing endpoint.
    pub api_token: Option<String>,
    /// Largest accepted request body.
    pub max_body: u64,
    /// Whether reads without the token may fetch missing blocks from peers (and so store them).
    pub fetch_on_read: bool,
    /// What requests from web pages may do.
    pub browser: browser::BrowserPolicy,
}

pub struct App {
    pub store: Store,
    pub functions: Functions,
    pub network: Network,
    /// Asynchronous invocations.
    pub jobs: ipfaas_runtime::jobs::Jobs,
    pub registry: Registry,
    pub cfg: ServerConfig,
    requests: IntCounterVec,
    durations: HistogramVec,
}

impl App {
    pub fn new(
        store: Store,
        functions: Functions,
        network: Network,
        jobs: ipfaas_runtime::jobs::Jobs,
        registry: Registry,
        cfg: ServerConfig,
    ) -> prometheus::Result<Arc<Self>> {
        let requests = IntCounterVec::new(
            prometheus::Opts::new(
                "ipfaas_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let durations = HistogramVec::new(
            prometheus::HistogramOpts::new(
                "ipfaas_http_request_duration_seconds",
                "Time to the response head",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Arc::new(Self {
            store,
            functions,
            network,
            jobs,
            registry,
            cfg,
            requests,
            durations,
        }))
    }

    /// The store a read should use: one that never fetches from peers when a token is set,
    /// the request does not carry it and `--fetch-on-read` is off. An anonymous caller then
    /// reads what this node holds, and cannot make it fetch and keep others' data.
    pub fn reader(&self, headers: &hyper::HeaderMap) -> Store {
        if self.cfg.fetch_on_read || self.authorize(headers).is_ok() {
            self.store.clone()
        } else {
            self.store.local_only()
        }
    }

    /// Who is making an authorized change, as recorded in a name's versions: the token's id
    /// when the node has a token (every caller that passed [`App::authorize`] holds it).
    pub fn caller_id(&self) -> Option<String> {
        self.cfg
            .api_token
            .as_deref()
            .map(ipfaas_runtime::registry::names::token_id)
    }

    /// Checks `Authorization: Bearer <token>` when a token is configured.
    pub fn authorize(&self, headers: &hyper::HeaderMap) -> ApiResult<()> {
        let Some(token) = &self.cfg.api_token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this endpoint changes state and needs Authorization: Bearer <api token>",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Query parameters; repeated keys keep every value (Kubo's `arg`).
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(uri: &hyper::Uri) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], Vec::as_slice)
    }
    pub fn bool(&self, k: &str, default: bool) -> ApiResult<bool> {
        match self.get(k) {
            None => Ok(default),
            // Kubo reads booleans with Go's `strconv.ParseBool`, and clients rely on its
            // spellings (ipfshttpclient sends Python's `True`/`False`); a bare key is true
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "parameter {k}: expected true or false, got {v:?}"
            ))),
        }
    }
    /// Every key with its values.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
    pub fn u64(&self, k: &str) -> ApiResult<Option<u64>> {
        self.get(k)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "parameter {k}: expected a non-negative integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    }
}

async fn route(
    app: &Arc<App>,
    req: Request<Incoming>,
) -> (&'static str, ApiResult<Response<Body>>) {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(cmd) = path.strip_prefix("/api/v0/") {
        if method != Method::POST {
            return (
                "api",
                Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} /api/v0/{cmd}: the RPC API takes POST"),
                )),
            );
        }
        return match cmd {
            "add" => ("add", kubo::add::add(app, req).await),
            "cat" => ("cat", kubo::cat(app, req).await),
            "get" => ("get", kubo::get(app, req).await),
            "ls" => ("ls", kubo::ls(app, req).await),
            "id" => ("id", kubo::id(app).await),
            "version" => ("version", Ok(kubo::version())),
            "pin/ls" => ("pin_ls", kubo::pin_ls(app, req).await),
            "pin/rm" => ("pin_rm", kubo::pin_rm(app, req).await),
            "repo/gc" => ("repo_gc", kubo::repo_gc(app, req).await),
            "swarm/peers" => ("swarm_peers", kubo::swarm_peers(app).await),
            "swarm/connect" => ("swarm_connect", kubo::swarm_connect(app, req).await),
            _ => (
                "api",
                Err(ApiError::not_found(format!(
                    "unknown command /api/v0/{cmd}"
                ))),
            ),
        };
    }
    if path == "/ipfs" || path.starts_with("/ipfs/") {
        if method != Method::GET && method != Method::HEAD {
            return (
                "gateway",
                Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the gateway is read-only: use GET or HEAD",
                )),
            );
        }
        return ("gateway", path_gateway::serve(app, req).await);
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        return functions::route(app, req, rest).await;
    }
    match (method, path.as_str()) {
        (Method::GET, "/healthz") => (
            "healthz",
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        ),
        (Method::GET, "/metrics") => ("metrics", metrics(app)),
        _ => (
            "other",
            Err(ApiError::not_found(format!("no route for {path}"))),
        ),
    }
}

fn metrics(app: &App) -> ApiResult<Response<Body>> {
    let mut out = String::new();
    let enc = prometheus::TextEncoder::new();
    enc.encode_utf8(&app.registry.gather(), &mut out)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut r = Response::new(full(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(r)
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let t = Instant::now();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (name, res) = match app.cfg.browser.check(&req) {
        Err(e) => ("refused", Err(e)),
        Ok(Some(preflight)) => ("preflight", Ok(preflight)),
        Ok(None) => route(&app, req).await,
    };
    let mut resp = res.unwrap_or_else(ApiError::into_response);
    app.cfg.browser.decorate(origin.as_deref(), &mut resp);
    app.durations
        .with_label_values(&[name])
        .observe(t.elapsed().as_secs_f64());
    app.requests
        .with_label_values(&[name, resp.status().as_str()])
        .inc();
    Ok(resp)
}

/// The store's block stream as a response body (errors abort the connection mid-body).
pub fn stream_body(s: ipfaas_runtime::unixfs::read::ByteStream) -> Body {
    use futures::TryStreamExt;
    let s = s.map_ok(hyper::body::Frame::data).map_err(|e| {
        // The status line is gone already: the client sees a short body, the log says why.
        tracing::warn!("response body cut short: {e}");
        std::io::Error::other(e.to_string())
    });
    BodyExt::boxed_unsync(http_body_util::StreamBody::new(s))
}
