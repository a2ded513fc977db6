//! Read-only path gateway: `GET|HEAD /ipfs/{cid}[/path]`. Files come with `Content-Length` and
//! single-range `Range` support; directories as a JSON listing, or a tar stream (`?format=tar`).

use super::error::{ApiError, ApiResult};
use super::{App, Body, Query, full, json, stream_body};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use ipfaas_runtime::unixfs::read::Kind;
use ipfaas_runtime::{IpfsPath, Store};
use serde_json::json;
use std::sync::Arc;

pub async fn serve(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let raw = req
        .uri()
        .path()
        .strip_prefix("/ipfs")
        .unwrap_or("")
        .trim_start_matches('/');
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("path is not valid UTF-8"))?;
    if decoded.is_empty() {
        return Err(ApiError::bad_request("missing CID: use /ipfs/{cid}[/path]"));
    }
    let path = IpfsPath::parse(&decoded)?;
    let store = app.reader(req.headers());
    let cid = store.resolve_path(&path).await?;
    let q = Query::parse(req.uri());
    let head = req.method() == Method::HEAD;
    let name = path.name();
    let etag = format!("\"{cid}\"");

    let mut resp = match store.stat(&cid).await? {
        Kind::Directory if q.get("format") == Some("tar") => {
            let mut r = Response::new(if head {
                full("")
            } else {
                stream_body(store.tar(cid, name.clone()))
            });
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/x-tar"),
            );
            if let Ok(v) = format!("attachment; filename=\"{}.tar\"", name.replace('"', "")).parse()
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Kind::Directory => {
            let entries: Vec<_> = store
                .listing(&cid)
                .await?
                .into_iter()
                .map(|(e, kind)| {
                    let (t, size) = match kind {
                        Kind::Directory => ("directory", 0),
                        Kind::Symlink { .. } => ("symlink", 0),
                        Kind::File { size } => ("file", size),
                    };
                    json!({"name": e.name, "cid": e.cid.to_string(), "type": t, "size": size})
                })
                .collect();
            json(
                StatusCode::OK,
                &json!({"cid": cid.to_string(), "entries": entries}),
            )
        }
        Kind::Symlink { target } => json(
            StatusCode::OK,
            &json!({"cid": cid.to_string(), "type": "symlink", "target": target}),
        ),
        Kind::File { size } => return file(&store, &req, cid, size, head, &etag).await,
    };
    resp.headers_mut()
        .insert(header::ETAG, etag.parse().expect("CIDs are header-safe"));
    Ok(resp)
}

async fn file(
    store: &Store,
    req: &Request<Incoming>,
    cid: cid::Cid,
    size: u64,
    head: bool,
    etag: &str,
) -> ApiResult<Response<Body>> {
    let range = match req.headers().get(header::RANGE) {
        None => None,
        Some(v) => match parse_range(v.to_str().unwrap_or(""), size) {
            Ok(r) => r,
            Err(()) => {
                let msg = format!("range {v:?} is not satisfiable for a {size}-byte file");
                let mut r = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, msg).into_response();
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    format!("bytes */{size}").parse().expect("ascii"),
                );
                return Ok(r);
            }
        },
    };
    let (start, len) = range.unwrap_or((0, size));
    let body = if head || len == 0 {
        full("")
    } else {
        let (_, s) = store.cat(cid, start, Some(len)).await?;
        stream_body(s)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    h.insert(header::ETAG, etag.parse().expect("CIDs are header-safe"));
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=29030400, immutable"),
    );
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = format!("bytes {start}-{}/{size}", start + len - 1);
        r.headers_mut()
            .insert(header::CONTENT_RANGE, cr.parse().expect("ascii"));
    }
    Ok(r)
}

/// One `bytes=` range → `(start, len)`. `Ok(None)` means "ignore the header" (multi-range, other
/// units), as RFC 9110 allows; `Err` means unsatisfiable.
fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (s, e)
    };
    if start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end - start + 1)))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=-1000", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 50))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
