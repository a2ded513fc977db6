//! The HTTP server: one listener for the Kubo RPC subset (`/api/v0/...`), the read-only path
//! gateway (`/ipfs/...`), the functions API (`/v1/...`), `/metrics` and `/healthz`.

pub mod browser;
pub mod error;
mod functions;
pub mod kubo;
mod path_gateway;
mod secrets;

use bytes::Bytes;
use error::{ApiError, ApiResult};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipfaas_runtime::Functions;
use ipfaas_runtime::Store;
use ipfaas_runtime::net::Network;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
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
    jobs: functions::Jobs,
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
            jobs: functions::Jobs::default(),
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

/// How long a client may take to send a request's headers, counted from when the connection
/// is ready for the next request: also how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The most connections served at once; past it, new connections wait in the kernel's
/// backlog until one closes.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a write to a client may make no progress before the connection is dropped: a
/// client that stops reading a response must not hold a connection slot for ever.
pub const WRITE_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection whose writes fail with `TimedOut` once one has waited [`WRITE_STALL_TIMEOUT`]
/// without the client taking any byte. (hyper has a header-read timeout but none for writes.)
struct Stalled<S> {
    io: S,
    /// Armed while a write is pending; reset by every write that makes progress.
    stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stalled<S> {
    fn new(io: S) -> Self {
        Self { io, stall: None }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Stalled<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> Stalled<S> {
    /// Runs one write-side poll under the stall timer.
    fn guarded<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        op: impl FnOnce(
            std::pin::Pin<&mut S>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        use std::task::Poll;
        match op(std::pin::Pin::new(&mut self.io), cx) {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timer = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Stalled<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.guarded(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves until `shutdown` resolves; in-flight requests finish first.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // HTTP/1 only: HTTP/2 (with prior knowledge) would bypass the header and idle timeouts
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // accept errors (out of file descriptors, mostly) back off instead of spinning
    let mut backoff = std::time::Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff = std::time::Duration::ZERO;
                    x
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(
                        std::time::Duration::from_millis(5),
                        std::time::Duration::from_secs(1),
                    );
                    tracing::warn!("accept: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req| handle(app.clone(), req));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(Stalled::new(stream)), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => tracing::warn!("shutdown: gave up waiting for open connections"),
    }
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
