//! `/v1/secrets`: the node's secret store (see `ipfaas_runtime::secrets`). Every route needs
//! the token; values go in and never come out.
//!
//! - `GET /v1/secrets` → `{"secrets": [names]}`
//! - `PUT /v1/secrets/{name}` with the value as the body → 204
//! - `DELETE /v1/secrets/{name}` → 204, or 404 when it was not set

use super::error::{ApiError, ApiResult};
use super::{App, Body, json};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use ipfaas_runtime::secrets::MAX_SECRET;
use serde_json::json;
use std::sync::Arc;

fn no_content() -> Response<Body> {
    let mut r = Response::new(super::full(Vec::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `GET /v1/secrets`: the names set in the store.
pub fn list(app: &Arc<App>, req: &Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let names = app.functions.secrets().names()?;
    Ok(json(StatusCode::OK, &json!({ "secrets": names })))
}

/// `PUT /v1/secrets/{name}`: sets it to the body.
pub async fn set(app: &Arc<App>, req: Request<Incoming>, name: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let value = super::read_limited(req.into_body(), MAX_SECRET as u64).await?;
    app.functions.secrets().set(name, &value)?;
    Ok(no_content())
}

/// `DELETE /v1/secrets/{name}`.
pub fn remove(app: &Arc<App>, req: &Request<Incoming>, name: &str) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    if app.functions.secrets().remove(name)? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found(format!("no secret named {name:?}")))
    }
}
