//! Read-only path gateway: `GET|HEAD /ipfs/{cid}[/path]`. Files come with `Content-Length` and
//! single-range `Range` support; directories as a JSON listing, or a tar stream (`?format=tar`).
//!
//! Caching follows the IPFS path-gateway spec (specs.ipfs.tech/http-gateways/path-gateway):
//! what a path names never changes, so every answer is `immutable`, carries an `ETag` made
//! from the resolved CID (and the representation), and a matching `If-None-Match` is a 304
//! without a body. `X-Ipfs-Path` echoes the requested path and `X-Ipfs-Roots` lists the CID of
//! each step of its resolution, so a cache can tell which blocks an answer depends on.

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
    // each step of the resolution: the root, then the CID every segment names
    let mut roots = vec![path.root];
    for seg in &path.segments {
        let here = *roots.last().expect("starts with the root");
        roots.push(store.resolve(here, &[seg.as_str()]).await?);
    }
    let cid = *roots.last().expect("starts with the root");
    let q = Query::parse(req.uri());
    let head = req.method() == Method::HEAD;
    let name = path.name();
    let kind = store.stat(&cid).await?;
    let tar = matches!(kind, Kind::Directory) && q.get("format") == Some("tar");
    // one tag per representation of the CID (the spec's `"{cid}.x-tar"` for tar)
    let etag = if tar {
        format!("\"{cid}.x-tar\"")
    } else {
        format!("\"{cid}\"")
    };
    let gw = GatewayHeaders {
        etag: etag.clone(),
        path: format!("/ipfs/{decoded}"),
        roots: roots
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    if if_none_match(req.headers(), &etag) {
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        gw.apply(r.headers_mut());
        return Ok(r);
    }

    let mut resp = match kind {
        Kind::Directory if tar => {
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
        Kind::File { size } => {
            let mut r = file(&store, &req, cid, size, head).await?;
            // named after the file when the path or `?filename=` knows its name
            let known = q
                .get("filename")
                .map(str::to_string)
                .or_else(|| path.segments.last().cloned());
            let download = q.get("download") == Some("true");
            if let Some(v) = known
                .as_deref()
                .and_then(|n| content_disposition(n, download))
            {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
    };
    // the same headers on every answer, the 206s of a range included
    if resp.status().is_success() {
        gw.apply(resp.headers_mut());
    }
    Ok(resp)
}

/// The caching and provenance headers of every successful answer (and of a 304).
struct GatewayHeaders {
    etag: String,
    path: String,
    roots: String,
}

impl GatewayHeaders {
    fn apply(&self, h: &mut header::HeaderMap) {
        h.insert(
            header::ETAG,
            self.etag.parse().expect("CIDs are header-safe"),
        );
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=29030400, immutable"),
        );
        // the path was percent-decoded to resolve it: re-encode what a header cannot carry
        let path: String =
            percent_encoding::utf8_percent_encode(&self.path, HEADER_UNSAFE).to_string();
        if let Ok(v) = path.parse() {
            h.insert("x-ipfs-path", v);
        }
        h.insert(
            "x-ipfs-roots",
            self.roots.parse().expect("CIDs are header-safe"),
        );
    }
}

/// Bytes of a path that do not go into a header value as they are.
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(0x7f);

/// Whether `If-None-Match` names `etag` (or is `*`), comparing weakly as RFC 9110 §13.1.2 asks.
fn if_none_match(headers: &header::HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
        })
    })
}

/// `inline` (or, asked for, `attachment`) with the file's name: a plain ASCII fallback and the
/// exact name in RFC 8187 form when it is not plain ASCII.
fn content_disposition(name: &str, download: bool) -> Option<header::HeaderValue> {
    let kind = if download { "attachment" } else { "inline" };
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut v = format!("{kind}; filename=\"{plain}\"");
    if plain != name {
        let exact = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        v.push_str(&format!("; filename*=UTF-8''{exact}"));
    }
    v.parse().ok()
}

async fn file(
    store: &Store,
    req: &Request<Incoming>,
    cid: cid::Cid,
    size: u64,
    head: bool,
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
    use super::{content_disposition, if_none_match, parse_range};
    use hyper::header::{HeaderMap, HeaderValue, IF_NONE_MATCH};

    #[test]
    fn conditional_requests() {
        let tag = "\"bafkqaaa\"";
        let with = |vs: &[&str]| {
            let mut h = HeaderMap::new();
            for v in vs {
                h.append(IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            }
            if_none_match(&h, tag)
        };
        assert!(with(&[tag]));
        assert!(with(&["W/\"bafkqaaa\""]));
        assert!(with(&["\"x\", \"bafkqaaa\""]));
        assert!(with(&["\"x\"", tag]));
        assert!(with(&["*"]));
        assert!(!with(&[]));
        assert!(!with(&["\"bafkqaab\""]));
        assert!(!with(&["bafkqaaa"]));
    }

    #[test]
    fn dispositions() {
        let v = |n: &str, d: bool| {
            content_disposition(n, d)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(v("a.txt", false), "inline; filename=\"a.txt\"");
        assert_eq!(v("a b.csv", true), "attachment; filename=\"a b.csv\"");
        assert_eq!(
            v("\u{e9}t\u{e9}\".txt", false),
            "inline; filename=\"_t__.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%22%2Etxt"
        );
    }

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
