//! Invocations between nodes, over libp2p request-response (`/ipfaas/invoke/1.0.0`).
//!
//! A request names the function and the input by CID (names are local to a node), the
//! parameters and whether the result cache may answer. The peer runs it where it is — fetching
//! the function's artifacts over bitswap if it lacks them — and answers with the CIDs of what
//! it produced, never the bytes: the caller fetches those by CID over bitswap, which checks
//! every block against its CID, so a peer cannot hand back bytes that do not match the output
//! CID it claims. Whether that CID is the *right* output is what [`super::Functions::verify`]
//! checks, by asking several peers.

use super::{Functions, Invocation, InvokeError, InvokeRequest, Timings, cat_all};
use crate::error::{Error, Result, parse_cid};
use crate::store::INVOKE_PROTOCOL;
use futures::StreamExt;
use rust_ipfs::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest {
    pub v: u32,
    pub function: String,
    pub input: String,
    pub params: BTreeMap<String, String>,
    pub cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResult {
    pub function_cid: String,
    pub input_cid: String,
    pub output_cid: String,
    pub outputs_cid: Option<String>,
    pub logs_cid: Option<String>,
    pub content_type: String,
    pub cached: bool,
    pub fuel_used: u64,
    pub exit_code: Option<i64>,
    /// fetch, instantiate, execute, publish, in microseconds.
    pub timings_us: [u64; 4],
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireResponse {
    Ok(WireResult),
    Err {
        status: u16,
        body: serde_json::Value,
    },
}

/// Why a forwarded invocation did not give a result.
#[derive(Debug)]
pub enum RemoteFailure {
    /// The function ran (or was refused) on the peer: the answer stands, asking another peer
    /// would give the same.
    Function(InvokeError),
    /// The peer could not be reached, died, timed out, does not speak the protocol, or its
    /// output could not be fetched: another peer (or this node) may do better.
    Transport(String),
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteFailure::Function(e) => write!(f, "{e}"),
            RemoteFailure::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// Answers invocations from peers until the node stops.
pub fn serve(functions: Functions) {
    let node = functions.store().node().clone();
    tokio::spawn(async move {
        let mut requests = match node.requests_subscribe(INVOKE_PROTOCOL).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("not answering invocations from peers: {e:#}");
                return;
            }
        };
        while let Some((peer, id, bytes)) = requests.next().await {
            let (f, node) = (functions.clone(), node.clone());
            tokio::spawn(async move {
                let answer = handle(&f, peer, &bytes).await;
                let bytes = serde_json::to_vec(&answer).expect("serialisable");
                if let Err(e) = node.send_response(peer, id, bytes).await {
                    tracing::debug!("answering {peer}: {e:#}");
                }
            });
        }
    });
}

async fn handle(f: &Functions, peer: PeerId, bytes: &[u8]) -> WireResponse {
    let refuse = |status: u16, msg: String| WireResponse::Err {
        status,
        body: serde_json::json!({ "error": msg }),
    };
    let req: WireRequest = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return refuse(400, format!("malformed invocation request: {e}")),
    };
    if req.v != VERSION {
        return refuse(400, format!("unsupported protocol version {}", req.v));
    }
    let (function, input) = match (parse_cid(&req.function), parse_cid(&req.input)) {
        (Ok(f), Ok(i)) => (f, i),
        (Err(e), _) | (_, Err(e)) => return refuse(400, e.to_string()),
    };
    tracing::debug!("invocation of {function} on {input} for {peer}");
    // Python functions are sandboxed and deterministic, so any peer may have one run (that is
    // what forwarding and verification are). A Docker function runs an image on this host,
    // so a peer may run only one that an operator deployed here.
    let fcid = function.to_string();
    if let Ok(def) = f.definition(&fcid).await
        && matches!(*def, super::Def::Docker(_))
        && !f.is_named_here(&fcid)
    {
        return refuse(
            403,
            format!(
                "{fcid} is a Docker function not deployed on this node; peers may run only Python functions and Docker functions deployed here"
            ),
        );
    }
    let r = f
        .invoke_here(InvokeRequest {
            function: function.to_string(),
            input,
            params: req.params,
            use_cache: req.cache,
        })
        .await;
    let m = f.net_metrics();
    match r {
        Ok(inv) => {
            if let Some(m) = m {
                m.forwarded.with_label_values(&["in", "ok"]).inc();
            }
            WireResponse::Ok(to_wire(&inv))
        }
        Err(e) => {
            if let Some(m) = m {
                m.forwarded.with_label_values(&["in", "error"]).inc();
            }
            let (status, body) = e.status_and_json();
            WireResponse::Err { status, body }
        }
    }
}

fn to_wire(inv: &Invocation) -> WireResult {
    let us = |d: Duration| d.as_micros() as u64;
    WireResult {
        function_cid: inv.function_cid.clone(),
        input_cid: inv.input_cid.to_string(),
        output_cid: inv.output_cid.clone(),
        outputs_cid: inv.outputs_cid.clone(),
        logs_cid: inv.logs_cid.clone(),
        content_type: inv.content_type.clone(),
        cached: inv.cached,
        fuel_used: inv.fuel_used,
        exit_code: inv.exit_code,
        timings_us: [
            us(inv.timings.fetch),
            us(inv.timings.instantiate),
            us(inv.timings.execute),
            us(inv.timings.publish),
        ],
    }
}

/// Asks `peer` to run `function_cid` on the request's input; returns its answer without
/// fetching any output.
pub async fn ask(
    f: &Functions,
    peer: PeerId,
    function_cid: &str,
    req: &InvokeRequest,
) -> std::result::Result<WireResult, RemoteFailure> {
    let wire = WireRequest {
        v: VERSION,
        function: function_cid.to_string(),
        input: req.input.to_string(),
        params: req.params.clone(),
        cache: req.use_cache,
    };
    let bytes = serde_json::to_vec(&wire).expect("serialisable");
    let answer = f
        .store()
        .node()
        .send_request(peer, bytes)
        .await
        .map_err(|e| RemoteFailure::Transport(format!("peer {peer}: {e:#}")))?;
    match serde_json::from_slice::<WireResponse>(&answer) {
        Ok(WireResponse::Ok(r)) => {
            if r.function_cid != function_cid || r.input_cid != req.input.to_string() {
                return Err(RemoteFailure::Transport(format!(
                    "peer {peer} answered for another invocation ({} on {})",
                    r.function_cid, r.input_cid
                )));
            }
            Ok(r)
        }
        Ok(WireResponse::Err { status, body }) => {
            // A peer that cannot run it at all (refuses, lacks a block, is busy or broken) is
            // worth routing around; anything else is the function's own answer.
            if matches!(status, 403 | 404 | 429 | 500 | 503) {
                return Err(RemoteFailure::Transport(format!(
                    "peer {peer} could not run it ({status}): {}",
                    body["error"].as_str().unwrap_or("")
                )));
            }
            Err(RemoteFailure::Function(InvokeError::Remote {
                peer: peer.to_string(),
                status,
                body,
            }))
        }
        Err(e) => Err(RemoteFailure::Transport(format!(
            "peer {peer} sent a malformed answer: {e}"
        ))),
    }
}

/// Runs the invocation on `peer` and fetches its output and logs by CID.
pub async fn invoke_on(
    f: &Functions,
    peer: PeerId,
    function_cid: &str,
    req: &InvokeRequest,
) -> std::result::Result<Invocation, RemoteFailure> {
    let t = Instant::now();
    let r = ask(f, peer, function_cid, req).await?;
    let ran = t.elapsed();
    let fetch = |cid: &str| -> Result<cid::Cid> { parse_cid(cid) };
    let transport = |what: &str, e: Error| {
        RemoteFailure::Transport(format!("fetching the {what} that {peer} produced: {e}"))
    };
    let t = Instant::now();
    let out = fetch(&r.output_cid).map_err(|e| transport("output", e))?;
    let body = cat_all(f.store(), out, 1 << 30)
        .await
        .map_err(|e| transport("output", e))?;
    let logs = match &r.logs_cid {
        Some(c) => {
            let c = fetch(c).map_err(|e| transport("logs", e))?;
            cat_all(f.store(), c, 64 << 20)
                .await
                .map_err(|e| transport("logs", e))?
        }
        None => Default::default(),
    };
    let d = |us: u64| Duration::from_micros(us);
    Ok(Invocation {
        function_cid: r.function_cid,
        input_cid: req.input,
        output_cid: r.output_cid,
        outputs_cid: r.outputs_cid,
        logs_cid: r.logs_cid,
        content_type: r.content_type,
        body,
        logs,
        cached: r.cached,
        fuel_used: r.fuel_used,
        exit_code: r.exit_code,
        timings: Timings {
            fetch: ran.saturating_sub(d(r.timings_us[1] + r.timings_us[2] + r.timings_us[3])),
            instantiate: d(r.timings_us[1]),
            execute: d(r.timings_us[2]),
            publish: d(r.timings_us[3]) + t.elapsed(),
        },
        ran_on: Some(peer.to_string()),
    })
}
