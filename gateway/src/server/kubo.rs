//! The read side of the Kubo RPC subset: cat, get, ls, id, version, pin ls/rm.
//! Wire formats follow Kubo's RPC docs (JSON objects with capitalised keys).

use super::error::{ApiError, ApiResult};
use super::{App, Body, Query, json, parse_ipfs_path, stream_body};
use base64::Engine;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use ipfaas_runtime::unixfs::read::Kind;
use serde_json::json;
use std::sync::Arc;

fn arg(q: &Query) -> ApiResult<&str> {
    q.get("arg")
        .ok_or_else(|| ApiError::bad_request("argument \"ipfs-path\" is required"))
}

/// Resolves `arg` to a CID.
async fn resolve(app: &App, arg: &str) -> ApiResult<cid::Cid> {
    let (root, path) = parse_ipfs_path(arg)?;
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    Ok(app.store.resolve(root, &segs).await?)
}

pub async fn cat(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let q = Query::parse(req.uri());
    let cid = resolve(app, arg(&q)?).await?;
    let offset = q.u64("offset")?.unwrap_or(0);
    let length = q.u64("length")?;
    let (size, stream) = app.store.cat(cid, offset, length).await?;
    let n = length.map_or(size - offset, |l| l.min(size - offset));
    let mut r = Response::new(stream_body(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    h.insert(header::CONTENT_LENGTH, n.into());
    h.insert("X-Content-Length", n.into());
    Ok(r)
}

pub async fn get(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let q = Query::parse(req.uri());
    if q.bool("compress", false)? {
        return Err(ApiError::bad_request(
            "compress is not supported: fetch the tar and compress it locally",
        ));
    }
    let arg = arg(&q)?;
    let cid = resolve(app, arg).await?;
    app.store.stat(&cid).await?; // fail with a status, not a broken stream
    let (root, path) = parse_ipfs_path(arg)?;
    let name = path.last().cloned().unwrap_or_else(|| root.to_string());
    let mut r = Response::new(stream_body(app.store.tar(cid, name)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

/// `(type, size)` as Kubo reports them: 1 directory, 2 file, 4 symlink.
async fn type_and_size(app: &App, cid: &cid::Cid) -> ApiResult<(u8, u64, String)> {
    Ok(match app.store.stat(cid).await? {
        Kind::Directory => (1, 0, String::new()),
        Kind::File { size } => (2, size, String::new()),
        Kind::Symlink { target } => (4, 0, target),
    })
}

/// Directory entries with each child's type and size (children are looked up 16 at a time).
pub async fn listing(
    app: &App,
    cid: &cid::Cid,
) -> ApiResult<Vec<(ipfaas_runtime::unixfs::read::Entry, u8, u64, String)>> {
    let entries = app.store.entries(cid).await?;
    futures::stream::iter(entries)
        .map(|e| async move {
            let (t, s, target) = type_and_size(app, &e.cid).await?;
            Ok((e, t, s, target))
        })
        .buffered(16)
        .collect::<Vec<ApiResult<_>>>()
        .await
        .into_iter()
        .collect()
}

pub async fn ls(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let q = Query::parse(req.uri());
    let mut objects = Vec::new();
    let args = q.all("arg");
    if args.is_empty() {
        return Err(ApiError::bad_request("argument \"ipfs-path\" is required"));
    }
    for a in args {
        let cid = resolve(app, a).await?;
        let links: Vec<_> = match app.store.stat(&cid).await? {
            Kind::Directory => listing(app, &cid)
                .await?
                .into_iter()
                .map(|(e, t, s, target)| json!({"Name": e.name, "Hash": e.cid.to_string(), "Size": s, "Type": t, "Target": target}))
                .collect(),
            _ => vec![],
        };
        objects.push(json!({"Hash": a, "Links": links}));
    }
    Ok(json(StatusCode::OK, &json!({ "Objects": objects })))
}

pub async fn id(app: &Arc<App>) -> ApiResult<Response<Body>> {
    let addrs: Vec<String> = app
        .store
        .addresses()
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "ID": app.store.peer_id().to_string(),
            "PublicKey": base64::engine::general_purpose::STANDARD.encode(app.store.public_key_protobuf()),
            "Addresses": addrs,
            "AgentVersion": concat!("ipfaas/", env!("CARGO_PKG_VERSION")),
            "Protocols": ["/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0"],
        }),
    ))
}

pub fn version() -> Response<Body> {
    json(
        StatusCode::OK,
        &json!({
            "Version": env!("CARGO_PKG_VERSION"),
            "Commit": "",
            "Repo": "ipfaas-1",
            "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
            "Golang": "",
        }),
    )
}

pub async fn pin_ls(app: &Arc<App>, _req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let keys: serde_json::Map<String, serde_json::Value> = app
        .store
        .pins()?
        .into_iter()
        .map(|c| (c.to_string(), json!({"Type": "recursive"})))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "Keys": keys })))
}

pub async fn pin_rm(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let (cid, path) = parse_ipfs_path(arg(&q)?)?;
    if !path.is_empty() {
        return Err(ApiError::bad_request("pin rm takes a CID, not a path"));
    }
    if !app.store.unpin(&cid).await? {
        return Err(ApiError::bad_request(format!("{cid} is not pinned")));
    }
    Ok(json(StatusCode::OK, &json!({ "Pins": [cid.to_string()] })))
}
