//! The functions API: deploy (`POST /v1/functions`), list and inspect, invoke
//! (`POST /v1/functions/{name|cid}/invoke`; with `?async=true` a job, see [`super::jobs`]).

use super::error::{ApiError, ApiResult};
use super::lifecycle;
use super::{App, Body, Query, full, json, read_limited};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use ipfaas_runtime::error::parse_cid;
use ipfaas_runtime::invoke::headers;
use ipfaas_runtime::invoke::{Invocation, InvokeError, InvokeRequest};
use ipfaas_runtime::registry::Bundle;
use ipfaas_runtime::registry::bundle::MAX_BUNDLE;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Query keys the invoke endpoint reads itself; every other key is a parameter for the function.
const RESERVED: [&str; 3] = ["cid", "cache", "async"];

pub async fn route(
    app: &Arc<App>,
    req: Request<Incoming>,
    rest: &str,
) -> (&'static str, ApiResult<Response<Body>>) {
    let method = req.method().clone();
    // Each segment is percent-decoded after the split: clients escape names (`csv%2Dstats`),
    // and an escaped `/` stays inside its segment, where the name check refuses it.
    let decoded: Result<Vec<String>, _> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
        })
        .collect();
    let Ok(decoded) = decoded else {
        return (
            "v1",
            Err(ApiError::bad_request(format!(
                "the path /v1/{rest} is not valid UTF-8 once percent-decoded"
            ))),
        );
    };
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (method, parts.as_slice()) {
        (Method::POST, ["functions"]) => ("deploy", deploy(app, req).await),
        (Method::GET, ["functions"]) => ("functions", list(app).await),
        (Method::GET, ["functions", f]) => ("function", show(app, &req, f).await),
        (Method::DELETE, ["functions", f]) => {
            ("function_rm", lifecycle::remove(app, &req, f).await)
        }
        (Method::PUT, ["functions", f]) => {
            let f = f.to_string();
            ("function_point", lifecycle::point(app, req, &f).await)
        }
        (Method::GET, ["functions", f, "versions"]) => {
            ("versions", lifecycle::versions(app, &req, f))
        }
        (Method::GET, ["secrets"]) => ("secrets", super::secrets::list(app, &req)),
        (Method::PUT, ["secrets", n]) => {
            let n = n.to_string();
            ("secret", super::secrets::set(app, req, &n).await)
        }
        (Method::DELETE, ["secrets", n]) => ("secret", super::secrets::remove(app, &req, n)),
        (Method::POST, ["functions", f, "invoke"]) => {
            let f = f.to_string();
            ("invoke", invoke(app, req, &f).await)
        }
        (Method::GET, ["jobs"]) => ("jobs", super::jobs::list(app, &req).await),
        (Method::GET, ["jobs", id]) => ("job", super::jobs::show(app, &req, id).await),
        (Method::DELETE, ["jobs", id]) => ("job_cancel", super::jobs::cancel(app, &req, id).await),
        (Method::POST, ["jobs", id, "retry"]) => {
            ("job_retry", super::jobs::retry(app, &req, id).await)
        }
        (Method::GET, ["jobs", id, "logs"]) => ("job_logs", super::jobs::logs(app, &req, id).await),
        (Method::POST, ["verify"]) => ("verify", verify(app, req).await),
        (Method::GET, ["peers"]) => ("peers", peers(app).await),
        (Method::POST, ["repo", "gc"]) => {
            ("repo_gc", super::kubo::repo_gc_summary(app, &req).await)
        }
        (m, _) => (
            "v1",
            Err(ApiError::not_found(format!("no route for {m} /v1/{rest}"))),
        ),
    }
}

/// The most a JSON request body (a manifest, an invocation or verification spec) may hold.
const MAX_JSON_BODY: u64 = 1 << 20;

/// A small body (JSON), read whole, at most [`MAX_JSON_BODY`] bytes.
async fn read_json_body(body: Incoming) -> ApiResult<Bytes> {
    read_limited(body, MAX_JSON_BODY).await
}

/// A bundle body, read whole: at most the bundle limit.
async fn read_bundle_body(body: Incoming) -> ApiResult<Bytes> {
    read_limited(body, MAX_BUNDLE).await
}

/// The body's first data; `None` when it is empty.
async fn first_data(body: &mut Incoming) -> ApiResult<Option<Bytes>> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(ApiError::bad_request(format!("reading the body: {e}"))),
            Some(Ok(f)) => match f.into_data() {
                Ok(d) if !d.is_empty() => return Ok(Some(d)),
                _ => continue,
            },
        }
    }
}

/// Streams a raw request body, whose first data is `first`, into the store as one file, up to
/// the node's `--max-body-size`. A body over the limit or one that breaks off (the client went
/// away) pins nothing. With `durable` the file is synced and pinned before this returns (a job
/// that names it must survive a crash); otherwise it joins the group commit of the invocation's
/// outputs: synced and pinned with them, at most `COMMIT_INTERVAL` after the answer.
async fn add_body(app: &App, first: Bytes, body: Incoming, durable: bool) -> ApiResult<String> {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let limit = app.cfg.max_body;
    // why an add failed: the caller's fault (400, 413) or this node's
    let (broke, over) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let flag = broke.clone();
    let rest = http_body_util::BodyStream::new(body).filter_map(move |f| {
        let flag = flag.clone();
        async move {
            match f {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => {
                    flag.store(true, Relaxed);
                    Some(Err(std::io::Error::other(e)))
                }
            }
        }
    });
    let stream = Box::pin(futures::stream::once(async move { Ok(first) }).chain(rest));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let too_big = over.clone();
    let opts = ipfaas_runtime::store::add::AddOptions {
        pin: durable,
        durable,
        ..Default::default()
    };
    let added = app
        .store
        .add(opts, move |a| {
            use std::io::Read;
            let mut r = reader.take(limit.saturating_add(1));
            if a.file("data", &mut r, |_| {})?.size > limit {
                too_big.store(true, Relaxed);
                return Err(ipfaas_runtime::Error::InvalidInput("over the limit".into()));
            }
            Ok(())
        })
        .await;
    let out = match added {
        Ok(o) => o,
        Err(_) if over.load(Relaxed) => return Err(ApiError::too_large(limit)),
        Err(e) if broke.load(Relaxed) => {
            return Err(ApiError::bad_request(format!("reading the body: {e}")));
        }
        Err(e) => return Err(e.into()),
    };
    let root =
        out.roots.iter().find(|r| r.path == "data").ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "add produced no root")
        })?;
    if !durable {
        app.functions.commit_later(vec![root.cid]);
        app.store.announce(&[root.cid]);
    }
    Ok(root.cid.to_string())
}

fn content_type(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn deploy(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let ctype = content_type(&req);
    if ctype.starts_with("application/json") {
        let body = read_json_body(req.into_body()).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON manifest: {e}")))?;
        let by = app.caller_id();
        let deployed = app
            .functions
            .deploy_manifest(q.get("name").map(str::to_string), v, by.as_deref())
            .await?;
        return Ok(json(
            StatusCode::CREATED,
            &serde_json::to_value(&deployed).unwrap_or_default(),
        ));
    }
    let bundle = if ctype.starts_with("multipart/form-data") {
        multipart_bundle(req, &ctype).await?
    } else {
        let body = read_bundle_body(req.into_body()).await?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "send the bundle as a tar or zip body, or as multipart/form-data files",
            ));
        }
        // parsing takes time in proportion to the body: off the async workers
        tokio::task::spawn_blocking(move || Bundle::from_archive(&body))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the bundle: {e}"),
                )
            })??
    };
    let by = app.caller_id();
    let deployed = app
        .functions
        .deploy(
            q.get("name").map(str::to_string),
            bundle,
            by.as_deref(),
            q.bool("upgrade", false)?,
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::to_value(&deployed).unwrap_or_default(),
    ))
}

async fn multipart_bundle(req: Request<Incoming>, ctype: &str) -> ApiResult<Bundle> {
    let boundary = multer::parse_boundary(ctype)
        .map_err(|e| ApiError::bad_request(format!("multipart body: {e}")))?;
    // the parts' headers and boundaries ride on top of the files: allow a little more
    let body = read_limited(req.into_body(), MAX_BUNDLE + (1 << 20)).await?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut bundle = Bundle::default();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("multipart body: {e}")))?
    {
        let Some(name) = field.file_name().map(super::kubo::add::query_unescape) else {
            continue;
        };
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("multipart body: {e}")))?;
        bundle.insert(&name, data)?;
    }
    if bundle.files.is_empty() {
        return Err(ApiError::bad_request("the multipart body holds no files"));
    }
    Ok(bundle)
}

async fn list(app: &Arc<App>) -> ApiResult<Response<Body>> {
    let fns = app.functions.list().await?;
    Ok(json(StatusCode::OK, &json!({ "functions": fns })))
}

async fn show(app: &Arc<App>, req: &Request<Incoming>, f: &str) -> ApiResult<Response<Body>> {
    let cid = app.functions.resolve_name(f)?;
    let reader = app.reader(req.headers());
    let def = app.functions.definition_from(&reader, &cid).await?;
    // names never parse as CIDs, so what resolved and is not a CID was a name
    let name = parse_cid(f).is_err().then_some(f);
    let mut definition = serde_json::to_value(&*def).unwrap_or_default();
    // a Docker function's `env` may hold what its deployer thought private: only a caller
    // with the token sees the values (secrets proper live in the secret store)
    let with_token = app.cfg.api_token.is_some() && app.authorize(req.headers()).is_ok();
    if !with_token && let Some(env) = definition.get_mut("env").and_then(|e| e.as_object_mut()) {
        for v in env.values_mut() {
            *v = json!("<redacted>");
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "name": name, "function_cid": cid, "definition": definition }),
    ))
}

async fn invoke(app: &Arc<App>, req: Request<Incoming>, f: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let use_cache = q.bool("cache", true)?;
    let is_async = q.bool("async", false)?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, vs) in q.pairs() {
        if RESERVED.contains(&k) {
            continue;
        }
        if vs.len() > 1 {
            return Err(ApiError::bad_request(format!(
                "parameter {k:?} is given twice"
            )));
        }
        params.insert(k.to_string(), vs[0].clone());
    }
    let headers = req.headers().clone();
    let ctype = content_type(&req);
    let mut cid = q.get("cid").map(str::to_string);
    let is_json = ctype.starts_with("application/json");
    let mut body = req.into_body();
    // a raw body is the input: streamed into the store, never held whole in memory, and
    // only once the request is known to be well-formed (else it would stay pinned)
    let (spec, raw) = if is_json {
        (read_json_body(body).await?, None)
    } else {
        let first = first_data(&mut body).await?;
        (Bytes::new(), first.map(|f| (f, body)))
    };
    if is_json && !spec.is_empty() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Spec {
            cid: Option<String>,
            #[serde(default)]
            params: BTreeMap<String, serde_json::Value>,
        }
        let spec: Spec = serde_json::from_slice(&spec)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        if spec.cid.is_some() && cid.is_some() {
            return Err(ApiError::bad_request(
                "the input CID is given twice (query and body)",
            ));
        }
        cid = cid.or(spec.cid);
        for (k, v) in spec.params {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            params.insert(k, v);
        }
    } else if let Some((first, body)) = raw {
        if cid.is_some() {
            return Err(ApiError::bad_request(
                "give the input either as ?cid= or as the body, not both",
            ));
        }
        // an unknown name is refused before its body is stored
        app.functions.resolve_name(f)?;
        cid = Some(add_body(app, first, body, is_async).await?);
    }
    let input = match cid {
        Some(c) => parse_cid(&c)?,
        None => {
            return Err(ApiError::bad_request(
                "no input: pass ?cid=CID, a JSON body {\"cid\": ...}, or the input bytes as the body",
            ));
        }
    };
    let ireq = InvokeRequest {
        function: f.to_string(),
        input,
        params,
        use_cache,
        logs: None,
    };
    if is_async {
        return super::jobs::submit(app, &headers, ireq).await;
    }
    match app.functions.invoke(ireq).await {
        Ok(inv) => Ok(success(&inv)),
        Err(e) => Ok(failure(&e)),
    }
}

/// `POST /v1/verify` `{"function", "cid", "params"?, "peers"?}`: runs the invocation here and,
/// without cache, on `peers` other nodes; reports whether the output CIDs agree.
async fn verify(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let body = read_json_body(req.into_body()).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        function: String,
        cid: String,
        #[serde(default)]
        params: BTreeMap<String, serde_json::Value>,
        #[serde(default = "one")]
        peers: usize,
    }
    fn one() -> usize {
        1
    }
    let spec: Spec = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected JSON {{\"function\", \"cid\", \"params\"?, \"peers\"?}}: {e}"
        ))
    })?;
    if spec.peers == 0 || spec.peers > 64 {
        return Err(ApiError::bad_request("peers must be between 1 and 64"));
    }
    let params = spec
        .params
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let ireq = InvokeRequest {
        function: spec.function,
        input: parse_cid(&spec.cid)?,
        params,
        use_cache: true,
        logs: None,
    };
    match app.functions.verify(ireq, spec.peers).await {
        Ok(v) => Ok(json(
            StatusCode::OK,
            &serde_json::to_value(&v).unwrap_or_default(),
        )),
        Err(e) => Ok(failure(&e)),
    }
}

/// `GET /v1/peers`: connected peers and the bootstrap list.
async fn peers(app: &Arc<App>) -> ApiResult<Response<Body>> {
    let peers = app.network.peers().await?;
    let bootstrap: Vec<String> = app
        .network
        .bootstrap_list()
        .iter()
        .map(|a| a.to_string())
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "peer": app.store.peer_id().to_string(),
            "peers": peers,
            "bootstrap": bootstrap,
        }),
    ))
}

fn success(inv: &Invocation) -> Response<Body> {
    let mut r = Response::new(full(inv.body.clone()));
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: &str| {
        if let Ok(v) = header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set("content-type", &inv.content_type);
    set(headers::OUTPUT_CID, &inv.output_cid);
    set(headers::FUNCTION_CID, &inv.function_cid);
    set(headers::INPUT_CID, &inv.input_cid.to_string());
    set(headers::CACHE, if inv.cached { "hit" } else { "miss" });
    if let Some(p) = &inv.ran_on {
        set(headers::RAN_ON, p);
    }
    if let Some(c) = &inv.outputs_cid {
        set(headers::OUTPUTS_CID, c);
    }
    if let Some(c) = &inv.logs_cid {
        set(headers::LOGS_CID, c);
    }
    if let Some(code) = inv.exit_code {
        set(headers::EXIT_CODE, &code.to_string());
    } else if !inv.cached {
        set(headers::FUEL, &inv.fuel_used.to_string());
    }
    let t = &inv.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    set(
        "server-timing",
        &format!(
            "fetch;dur={:.3}, instantiate;dur={:.3}, execute;dur={:.3}, publish;dur={:.3}",
            ms(t.fetch),
            ms(t.instantiate),
            ms(t.execute),
            ms(t.publish)
        ),
    );
    r
}

/// The JSON and status of a failed invocation.
fn failure_value(e: &InvokeError) -> (StatusCode, serde_json::Value) {
    let (status, v) = e.status_and_json();
    if status == 500 {
        tracing::error!("invocation failed inside the host: {e}");
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        v,
    )
}

fn failure(e: &InvokeError) -> Response<Body> {
    let (status, v) = failure_value(e);
    let mut r = json(status, &v);
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}
