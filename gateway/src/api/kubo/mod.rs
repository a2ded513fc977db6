//! The read side of the Kubo RPC subset: cat, get, ls, id, version, pin ls/rm.
//! Wire formats follow Kubo's RPC docs (JSON objects with capitalised keys).

pub mod add;

use crate::api::error::{ApiError, ApiResult};
use crate::api::{App, Body, Query, full, json, stream_body};
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use ipfaas_runtime::unixfs::read::Kind;
use ipfaas_runtime::{IpfsPath, Store};
use serde_json::json;
use std::sync::Arc;

fn arg(q: &Query) -> ApiResult<&str> {
    q.get("arg")
        .ok_or_else(|| ApiError::bad_request("argument \"ipfs-path\" is required"))
}

/// Resolves `arg` to a CID.
async fn resolve(store: &Store, arg: &str) -> ApiResult<cid::Cid> {
    Ok(store.resolve_path(&IpfsPath::parse(arg)?).await?)
}

pub async fn cat(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let q = Query::parse(req.uri());
    let store = app.reader(req.headers());
    let cid = resolve(&store, arg(&q)?).await?;
    let offset = q.u64("offset")?.unwrap_or(0);
    let length = q.u64("length")?;
    let (size, stream) = store.cat(cid, offset, length).await?;
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
    let path = IpfsPath::parse(arg(&q)?)?;
    let store = app.reader(req.headers());
    let cid = store.resolve_path(&path).await?;
    store.stat(&cid).await?; // fail with a status, not a broken stream
    let mut r = Response::new(stream_body(store.tar(cid, path.name())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

/// `(type, size, symlink target)` as Kubo reports them: type 1 directory, 2 file, 4 symlink.
pub fn kubo_type(kind: &Kind) -> (u8, u64, &str) {
    match kind {
        Kind::Directory => (1, 0, ""),
        Kind::File { size } => (2, *size, ""),
        Kind::Symlink { target } => (4, 0, target),
    }
}

pub async fn ls(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let q = Query::parse(req.uri());
    let mut objects = Vec::new();
    let args = q.all("arg");
    if args.is_empty() {
        return Err(ApiError::bad_request("argument \"ipfs-path\" is required"));
    }
    let store = app.reader(req.headers());
    for a in args {
        let cid = resolve(&store, a).await?;
        let links: Vec<_> = match store.stat(&cid).await? {
            Kind::Directory => store
                .listing(&cid)
                .await?
                .into_iter()
                .map(|(e, kind)| {
                    let (t, s, target) = kubo_type(&kind);
                    json!({"Name": e.name, "Hash": e.cid.to_string(), "Size": s, "Type": t, "Target": target})
                })
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
            "Protocols": if app.store.is_offline() {
                json!([])
            } else {
                let mut p = vec!["/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0", "/ipfs/kad/1.0.0"];
                p.extend_from_slice(app.store.protocols());
                json!(p)
            },
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

pub async fn pin_ls(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    // with `arg`: those CIDs only, each of which must be pinned (as Kubo answers)
    let q = Query::parse(req.uri());
    let wanted: Vec<cid::Cid> = q
        .all("arg")
        .iter()
        .map(|a| Ok(IpfsPath::parse(a)?.root))
        .collect::<ApiResult<_>>()?;
    let pins = if wanted.is_empty() {
        app.store.pins()?
    } else {
        for c in &wanted {
            if !app.store.is_pinned(c) {
                return Err(ApiError::bad_request(format!("{c} is not pinned")));
            }
        }
        wanted
    };
    let keys: serde_json::Map<String, serde_json::Value> = pins
        .into_iter()
        .map(|c| (c.to_string(), json!({"Type": "recursive"})))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "Keys": keys })))
}

pub async fn pin_rm(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let IpfsPath {
        root: cid,
        segments,
    } = IpfsPath::parse(arg(&q)?)?;
    if !segments.is_empty() {
        return Err(ApiError::bad_request("pin rm takes a CID, not a path"));
    }
    if !app.store.unpin(&cid).await? {
        return Err(ApiError::bad_request(format!("{cid} is not pinned")));
    }
    Ok(json(StatusCode::OK, &json!({ "Pins": [cid.to_string()] })))
}

/// `repo/gc`, as Kubo answers it: one `{"Key": {"/": cid}}` line per removed block (none with
/// `quiet`). Blocks no pin reaches are removed; adds wait while it runs.
pub async fn repo_gc(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let quiet = q.bool("quiet", false)?;
    let report = app.store.gc().await?;
    let mut out = String::new();
    if !quiet {
        for c in &report.removed {
            out.push_str(&json!({ "Key": { "/": c.to_string() } }).to_string());
            out.push('\n');
        }
    }
    let mut r = Response::new(full(out));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}

/// `POST /v1/repo/gc`: the same collection, answered with what it did (blocks and bytes
/// removed, blocks kept, roots, time).
pub async fn repo_gc_summary(app: &Arc<App>, req: &Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let report = app.store.gc().await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&report).unwrap_or_default(),
    ))
}

/// `swarm/peers`, as Kubo answers it: one entry per connected peer.
pub async fn swarm_peers(app: &Arc<App>) -> ApiResult<Response<Body>> {
    let peers = app.network.peers().await?;
    let list: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            json!({
                "Addr": p.addrs.first().cloned().unwrap_or_default(),
                "Peer": p.peer,
                "Latency": "",
                "Muxer": "",
                "Direction": 0,
                "Streams": null,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "Peers": list })))
}

/// `swarm/connect?arg=MULTIADDR`: dials a peer (changes state, so it needs the token).
pub async fn swarm_connect(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    app.authorize(req.headers())?;
    let q = Query::parse(req.uri());
    let addrs = q.all("arg");
    if addrs.is_empty() {
        return Err(ApiError::bad_request("argument \"address\" is required"));
    }
    if app.store.is_offline() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs with --offline",
        ));
    }
    let mut strings = vec![];
    for a in addrs {
        let ma: ipfaas_runtime::net::Multiaddr = a
            .parse()
            .map_err(|e| ApiError::bad_request(format!("{a:?} is not a multiaddr: {e}")))?;
        let targets = ipfaas_runtime::net::resolve(&ma)
            .await
            .map_err(|e| ApiError::bad_request(format!("resolving {a}: {e}")))?;
        let mut last = String::new();
        let mut ok = false;
        for t in targets {
            match app.store.node().connect(t).await {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) => last = format!("{e:#}"),
            }
        }
        if !ok {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("connect {a} failure: {last}"),
            ));
        }
        strings.push(format!("connect {a} success"));
    }
    Ok(json(StatusCode::OK, &json!({ "Strings": strings })))
}
