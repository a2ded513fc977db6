//! The IPFS Trustless Gateway (specs.ipfs.tech/http-gateways/trustless-gateway) on
//! `GET|HEAD /ipfs/{cid}[/path]`: verifiable answers a client checks against the CID without
//! trusting this node. Asked for by `?format=raw|car` or by `Accept:
//! application/vnd.ipld.raw|application/vnd.ipld.car` (the query wins):
//!
//! - **raw**: the block itself (`/ipfs/{cid}` only, no path);
//! - **car**: a CAR v1 stream of the blocks proving the path, then what `dag-scope`
//!   (`block|entity|all`, default `all`) and `entity-bytes=from:to` select, depth-first, each
//!   block once unless `dups=y` is asked for (`car-dups=y`, or `dups=y` in `Accept`).
//!
//! `Cache-Control: only-if-cached` reads this node's blocks only (412 when the root is not here).
//! Errors found before the first byte are JSON with a status; a block found missing later ends
//! the stream early (the CAR is then visibly incomplete, as the spec requires).

use super::error::{ApiError, ApiResult};
use super::{Body, Query, full, stream_body};
use bytes::Bytes;
use cid::Cid;
use hyper::{HeaderMap, Response, StatusCode, header};
use ipfaas_runtime::Store;
use ipfaas_runtime::error::Error;
use ipfaas_runtime::unixfs::car::{self, CarSpec, Scope};
use ipfaas_runtime::unixfs::read::{self, BlockSource, Kind};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The media type of a raw block.
pub const RAW: &str = "application/vnd.ipld.raw";
/// The media type of a CAR stream.
pub const CAR: &str = "application/vnd.ipld.car";

/// A verifiable representation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// One raw block.
    Raw,
    /// A CAR stream.
    Car {
        /// Every block each time the walk meets it (`dups=y`), not only the first.
        dups: bool,
    },
}

/// The verifiable representation `q` and `headers` ask for, if any (`?format=` wins over
/// `Accept`); a CAR variant this node cannot make (another version or order) is a 400.
pub fn wanted(q: &Query, headers: &HeaderMap) -> ApiResult<Option<Wanted>> {
    let accept = best_accept(headers);
    let kind = match q.get("format") {
        Some("raw") => Some(RAW),
        Some("car") => Some(CAR),
        Some(_) => None,
        None => accept
            .as_ref()
            .map(|(t, _)| t.as_str())
            .filter(|t| *t == RAW || *t == CAR),
    };
    let Some(kind) = kind else { return Ok(None) };
    if kind == RAW {
        return Ok(Some(Wanted::Raw));
    }
    // CAR parameters: the query's first, then those of the Accept entry
    let params: Vec<(String, String)> = accept
        .filter(|(t, _)| t == CAR)
        .map(|(_, p)| p)
        .unwrap_or_default();
    let param = |k: &str| {
        q.get(&format!("car-{k}"))
            .map(str::to_string)
            .or_else(|| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    };
    if let Some(v) = param("version").filter(|v| v != "1") {
        return Err(ApiError::bad_request(format!(
            "CAR version {v} is not served here: only version=1"
        )));
    }
    if let Some(o) = param("order").filter(|o| o != "dfs" && o != "unk") {
        return Err(ApiError::bad_request(format!(
            "CAR order {o:?} is not served here: only order=dfs"
        )));
    }
    let dups = match param("dups").as_deref() {
        None | Some("n") => false,
        Some("y") => true,
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "CAR dups={d:?}: expected y or n"
            )));
        }
    };
    Ok(Some(Wanted::Car { dups }))
}

/// A media type (lowercase) and its parameters other than `q`.
type MediaRange = (String, Vec<(String, String)>);

/// The `Accept` entry of highest preference (the first of equal ones).
fn best_accept(headers: &HeaderMap) -> Option<MediaRange> {
    let mut best: Option<(f32, MediaRange)> = None;
    for v in headers.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        for entry in v.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let t = parts.next().unwrap_or("").to_ascii_lowercase();
            if t.is_empty() {
                continue;
            }
            let (mut weight, mut params) = (1.0f32, Vec::new());
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
                if k == "q" {
                    weight = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v.to_string()));
                }
            }
            if weight > 0.0 && best.as_ref().is_none_or(|(w, _)| weight > *w) {
                best = Some((weight, (t, params)));
            }
        }
    }
    best.map(|(_, m)| m)
}

/// The block `cid`: an identity CID's digest, else from `store`.
async fn block(store: &Store, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
    if cid.hash().code() == 0 {
        return Ok(Bytes::copy_from_slice(cid.hash().digest()));
    }
    store.block(cid).await
}

/// A trustless request, as the path gateway parsed it.
pub struct Request<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// Its query.
    pub q: &'a Query,
    /// The CID the path starts at.
    pub root: Cid,
    /// The path below it.
    pub segments: &'a [String],
    /// A HEAD request (headers only).
    pub head: bool,
    /// The request's path as sent (for `X-Ipfs-Path`).
    pub path: &'a str,
}

/// Answers a trustless request for `want`.
pub async fn serve(store: Store, r: Request<'_>, want: Wanted) -> ApiResult<Response<Body>> {
    let cached_only = r
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| d.trim() == "only-if-cached"));
    let store = if cached_only {
        store.local_only()
    } else {
        store
    };
    if want == Wanted::Raw && !r.segments.is_empty() {
        return Err(ApiError::bad_request(
            "a raw block is asked for by its CID alone: /ipfs/{cid}?format=raw (use format=car for a path)",
        ));
    }
    let first = match block(&store, &r.root).await {
        Ok(b) => b,
        Err(e @ Error::NotFound { .. }) if cached_only => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("only-if-cached: {e}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    match want {
        Wanted::Raw => {
            let root = r.root;
            let etag = format!("\"{root}.raw\"");
            let len = first.len();
            let mut resp = answer(&r, full(first), &etag, &[root]);
            set(resp.headers_mut(), header::CONTENT_TYPE, RAW);
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, len.into());
            set(
                resp.headers_mut(),
                header::CONTENT_DISPOSITION,
                &format!("attachment; filename=\"{root}.bin\""),
            );
            Ok(resp)
        }
        Wanted::Car { dups } => car(store, &r, dups).await,
    }
}

/// A CAR of the path and what `dag-scope` / `entity-bytes` select below its end.
async fn car(store: Store, r: &Request<'_>, dups: bool) -> ApiResult<Response<Body>> {
    let (q, root) = (r.q, r.root);
    let mut scope = match q.get("dag-scope") {
        None => Scope::All,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("dag-scope={s:?}: expected block, entity or all"))
        })?,
    };
    // the path, recording every block its resolution reads (the proof sent first)
    let rec = Recorder {
        store: store.clone(),
        seen: Default::default(),
    };
    let mut roots = vec![root];
    for seg in r.segments {
        let here = *roots.last().expect("starts with the root");
        roots.push(read::resolve(&rec, here, &[seg.as_str()]).await?);
    }
    let end = *roots.last().expect("starts with the root");
    let path = std::mem::take(&mut rec.seen.lock().unwrap().0);
    // the end must be here (or fetchable) before the answer starts
    let end_block = block(&store, &end).await?;
    let mut bytes = None;
    let mut tag_bytes = String::new();
    if let Some(spec) = q.get("entity-bytes") {
        scope = Scope::Entity;
        tag_bytes = spec.to_string();
        // only a file's bytes can be ranged; anything else ignores the parameter
        if let Ok(Kind::File { size }) = read::kind_of(&end, &end_block) {
            match car::entity_bytes(spec, size).map_err(ApiError::bad_request)? {
                Some(r) => bytes = Some(r),
                None => scope = Scope::Block,
            }
        }
    }
    let dups_flag = if dups { "y" } else { "n" };
    // one tag per CAR: the path it proves (all its CIDs), the scope, dups and the range
    let tag = {
        let key = format!("{roots:?}|{}|{dups_flag}|{tag_bytes}", scope.name());
        let d = ipfaas_runtime::unixfs::sha256(key.as_bytes());
        d.digest()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let etag = format!("W/\"{end}.car.{tag}\"");
    let spec = CarSpec {
        root,
        path,
        end,
        scope,
        bytes,
        dups,
    };
    // no walk for a HEAD or a 304
    let body = if r.head || super::path_gateway::if_none_match(r.headers, &etag) {
        full("")
    } else {
        stream_body(car::car(store, spec))
    };
    let mut resp = answer(r, body, &etag, &roots);
    set(
        resp.headers_mut(),
        header::CONTENT_TYPE,
        &format!("{CAR}; version=1; order=dfs; dups={dups_flag}"),
    );
    set(
        resp.headers_mut(),
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{end}.car\""),
    );
    Ok(resp)
}

/// A 200 with `body` (or a 304 when `If-None-Match` names `etag`) and the headers every
/// trustless answer carries.
fn answer(r: &Request<'_>, body: Body, etag: &str, roots: &[Cid]) -> Response<Body> {
    let not_modified = super::path_gateway::if_none_match(r.headers, etag);
    let mut resp = Response::new(if r.head || not_modified {
        full("")
    } else {
        body
    });
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    set(h, header::ETAG, etag);
    set(
        h,
        header::CACHE_CONTROL,
        "public, max-age=29030400, immutable",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::VARY, "Accept");
    if let Ok(v) = r.path.parse() {
        h.insert("x-ipfs-path", v);
    }
    let roots: Vec<String> = roots.iter().map(ToString::to_string).collect();
    set(h, "x-ipfs-roots", &roots.join(","));
    resp
}

fn set(h: &mut HeaderMap, k: impl header::IntoHeaderName, v: &str) {
    if let Ok(v) = header::HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

/// A block source that remembers which blocks were read, in order, without repeats: the blocks
/// a path's resolution needed.
#[derive(Clone)]
struct Recorder {
    store: Store,
    seen: Arc<Mutex<(Vec<Cid>, HashSet<Cid>)>>,
}

impl BlockSource for Recorder {
    async fn block(&self, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
        let b = block(&self.store, cid).await?;
        let mut seen = self.seen.lock().unwrap();
        if seen.1.insert(*cid) {
            seen.0.push(*cid);
        }
        Ok(b)
    }
}
