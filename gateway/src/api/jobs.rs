//! The jobs API: `GET /v1/jobs` (filter by function, status and time; paged), `GET`,
//! `DELETE` (cancel) and `POST .../retry` on `/v1/jobs/{id}`, and `GET /v1/jobs/{id}/logs`
//! (`?follow=true` streams them while the job runs). Submission is `?async=true` on an
//! invocation ([`submit`]). Every route needs the API token when one is set: a job shows its
//! parameters and logs.

use super::error::{ApiError, ApiResult};
use super::{App, Body, Query, full, json};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use ipfaas_runtime::invoke::InvokeRequest;
use ipfaas_runtime::jobs::{JobError, JobState, ListQuery};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The header a submitter names its callback URL in (as OpenFaaS does).
pub const CALLBACK_HEADER: &str = "x-callback-url";
/// Jobs a page lists by default, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        if let JobError::Invoke(inv) = &e {
            let (status, v) = inv.status_and_json();
            let msg = v["error"]
                .as_str()
                .map(String::from)
                .unwrap_or(e.to_string());
            return ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                msg,
            );
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("jobs: {e}");
        }
        ApiError::new(status, e.to_string())
    }
}

/// Accepts `ireq` as a job: 202 with the job and its `Location`.
pub async fn submit(
    app: &Arc<App>,
    headers: &hyper::HeaderMap,
    ireq: InvokeRequest,
) -> ApiResult<Response<Body>> {
    let callback = match headers.get(CALLBACK_HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("X-Callback-Url is not ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let j = app.jobs.submit(ireq, callback).await?;
    let mut r = json(StatusCode::ACCEPTED, &j.to_json());
    r.headers_mut().insert(
        header::LOCATION,
        header::HeaderValue::from_str(&format!("/v1/jobs/{}", j.id)).expect("hex"),
    );
    Ok(r)
}

/// A time given as RFC 3339 (`2026-12-04T10:00:00Z`) or Unix seconds: Unix ms.
fn parse_time(k: &str, v: &str) -> ApiResult<i64> {
    if let Ok(s) = v.parse::<f64>() {
        return Ok((s * 1000.0) as i64);
    }
    let t = humantime::parse_rfc3339_weak(v).map_err(|e| {
        ApiError::bad_request(format!(
            "{k}={v:?}: {e} (give RFC 3339, like 2026-12-04T10:00:00Z, or Unix seconds)"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64)
}

/// `GET /v1/jobs?function=F&status=S&since=T&until=T&limit=N&before=SEQ`: newest first, with
/// `next` (pass it as `before`) when there may be more.
pub async fn list(app: &Arc<App>, req: &Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let state = match q.get("status") {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status={s:?}: one of {}",
                JobState::ALL.map(JobState::as_str).join(", ")
            ))
        })?),
        None => None,
    };
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit={l:?}: 1 to {MAX_PAGE}")))?,
        None => PAGE,
    };
    let before = match q.get("before") {
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("before={b:?}: a number")))?,
        ),
        None => None,
    };
    let query = ListQuery {
        function: q.get("function").map(String::from),
        state,
        since_ms: q.get("since").map(|v| parse_time("since", v)).transpose()?,
        until_ms: q.get("until").map(|v| parse_time("until", v)).transpose()?,
        before,
        limit,
    };
    let found = app.jobs.list(query).await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|j| j.seq))
        .flatten();
    let list: Vec<serde_json::Value> = found.iter().map(|j| j.to_json()).collect();
    Ok(json(StatusCode::OK, &json!({ "jobs": list, "next": next })))
}

/// `GET /v1/jobs/{id}`.
pub async fn show(app: &Arc<App>, req: &Request<Incoming>, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let j = app.jobs.get(id).await?;
    Ok(json(StatusCode::OK, &j.to_json()))
}

/// `DELETE /v1/jobs/{id}`: cancels it; answers it as it ended up.
pub async fn cancel(
    app: &Arc<App>,
    req: &Request<Incoming>,
    id: &str,
) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let j = app.jobs.cancel(id).await?;
    Ok(json(StatusCode::OK, &j.to_json()))
}

/// `POST /v1/jobs/{id}/retry`: queues a failed, cancelled or interrupted job again.
pub async fn retry(app: &Arc<App>, req: &Request<Incoming>, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let j = app.jobs.retry(id).await?;
    Ok(json(StatusCode::ACCEPTED, &j.to_json()))
}

/// `GET /v1/jobs/{id}/logs[?follow=true]`: the logs as text. Following, the answer streams
/// what the job writes while it runs, and ends when the job does.
pub async fn logs(app: &Arc<App>, req: &Request<Incoming>, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let follow = q.bool("follow", false)?;
    let jobs = app.jobs.clone();
    let j = jobs.get(id).await?;
    let text_response = |body: Body| {
        let mut r = Response::new(body);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if !follow || j.state.is_finished() {
        let text = if j.state.is_finished() {
            j.final_logs().unwrap_or_default().into_bytes().into()
        } else {
            jobs.live_logs(id).unwrap_or_default()
        };
        return Ok(text_response(full(text)));
    }
    let id = id.to_string();
    let stream = async_stream::stream! {
        let mut sent = 0usize;
        loop {
            let now = jobs.live_logs(&id);
            if let Some(now) = &now
                && now.len() > sent
            {
                yield Ok::<_, std::io::Error>(hyper::body::Frame::data(now.slice(sent..)));
                sent = now.len();
            }
            if now.is_none() {
                match jobs.get(&id).await {
                    Ok(j) if j.state.is_finished() => {
                        let all = Bytes::from(j.final_logs().unwrap_or_default());
                        if all.len() > sent {
                            yield Ok(hyper::body::Frame::data(all.slice(sent..)));
                        }
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        yield Err(std::io::Error::other(e.to_string()));
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    Ok(text_response(http_body_util::BodyExt::boxed_unsync(
        http_body_util::StreamBody::new(stream),
    )))
}
