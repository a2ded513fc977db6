//! A deployed function's lifecycle: `GET /v1/functions/{name}/versions`, `PUT
//! /v1/functions/{name}` (point the name at a version: a rollback) and `DELETE
//! /v1/functions/{name}[?purge=true]`.

use super::error::{ApiError, ApiResult};
use super::{App, Body, Query, json, read_limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// `name`'s versions, newest first; the first is the current one. Who made each change (a
/// token's id, derived from the token) is shown only to callers holding the token.
pub fn versions(app: &Arc<App>, req: &Request<Incoming>, name: &str) -> ApiResult<Response<Body>> {
    let mut versions = app.functions.versions(name)?;
    if app.authorize(req.headers()).is_err() {
        for v in &mut versions {
            v.by = None;
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "name": name, "versions": versions }),
    ))
}

/// Points `name` at `{"function_cid": ...}`, or at its previous version when the body is empty
/// or names none.
pub async fn point(
    app: &Arc<App>,
    req: Request<Incoming>,
    name: &str,
) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let body = read_limited(req.into_body(), 64 << 10).await?;
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        function_cid: Option<String>,
    }
    let spec: Spec = if body.iter().all(u8::is_ascii_whitespace) {
        Spec::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "expected {{\"function_cid\": \"<cid>\"}} (or no body for the previous version): {e}"
            ))
        })?
    };
    let by = app.caller_id();
    let pointed = app
        .functions
        .rollback(name, spec.function_cid.as_deref(), by.as_deref())
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&pointed).unwrap_or_default(),
    ))
}

/// Removes `name`; `?purge=true` also unpins what only it used.
pub async fn remove(
    app: &Arc<App>,
    req: &Request<Incoming>,
    name: &str,
) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let purge = Query::parse(req.uri()).bool("purge", false)?;
    let removed = app.functions.remove(name, purge).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&removed).unwrap_or_default(),
    ))
}
