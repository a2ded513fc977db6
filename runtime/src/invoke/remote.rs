//! Invocations between nodes, over libp2p request-response (`/ipfaas/invoke/1.0.0`).
//!
//! A request names the function and the input by CID (names are local to a node), the
//! parameters and whether the result cache may answer. The peer runs it where it is — fetching
//! the function's artifacts over bitswap if it lacks them — and answers with the CIDs of what
//! it produced, never the bytes: the caller fetches those by CID over bitswap, which checks
//! every block against its CID, so a peer cannot hand back bytes that do not match the output
//! CID it claims. Whether that CID is the *right* output is what [`super::Functions::verify`]
//! checks, by asking several peers.

use super::{Functions, Invocation, InvokeError, InvokeRequest};
use crate::error::{Error, Result, parse_cid};
use crate::executor::{Published, Timings};
use crate::store::Protocol;
use futures::StreamExt;
use rust_ipfs::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const VERSION: u32 = 1;

/// The libp2p request-response protocol that carries invocations between ipfaas nodes.
pub const PROTOCOL: &str = "/ipfaas/invoke/1.0.0";

/// The protocol with its bounds, for [`crate::store::StoreConfig::protocols`]: a forwarded
/// invocation may take up to 10 minutes; requests and answers are small (CIDs, not bytes).
pub fn protocol() -> Protocol {
    Protocol {
        name: PROTOCOL,
        timeout: Duration::from_secs(600),
        max_request: 256 << 10,
        max_response: 1 << 20,
    }
}

/// An invocation request between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest {
    /// Protocol version (1).
    pub v: u32,
    /// The function CID (names are local to a node).
    pub function: String,
    /// The input CID.
    pub input: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Whether the result cache may answer.
    pub cache: bool,
}

/// A successful invocation on a peer: what it produced, by CID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResult {
    /// The function that ran.
    pub function_cid: String,
    /// Its input.
    pub input_cid: String,
    /// The output's CID.
    pub output_cid: String,
    /// The `/outputs` directory's CID.
    pub outputs_cid: Option<String>,
    /// The logs' CID.
    pub logs_cid: Option<String>,
    /// The output's media type.
    pub content_type: String,
    /// Answered from the peer's result cache.
    pub cached: bool,
    /// Fuel units spent.
    pub fuel_used: u64,
    /// Docker: the exit code.
    pub exit_code: Option<i64>,
    /// fetch, instantiate, execute, publish, in microseconds.
    pub timings_us: [u64; 4],
}

/// A peer's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireResponse {
    /// It ran.
    Ok(WireResult),
    /// It failed or was refused, with the status and JSON body it would answer over HTTP.
    Err {
        /// HTTP status.
        status: u16,
        /// JSON body.
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
        let mut requests = match node.requests_subscribe(PROTOCOL).await {
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
    let refused = |status: u16, msg: String| {
        if let Some(m) = f.net_metrics() {
            m.forwarded.with_label_values(&["in", "refused"]).inc();
        }
        refuse(status, msg)
    };
    // the policy first: a peer that may not invoke here costs no parsing
    let _admitted = match f.admit_peer(peer) {
        Ok(a) => a,
        Err((status, msg)) => return refused(status, msg),
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
    // Pure functions (Python: sandboxed and deterministic) may run for any peer: that is what
    // forwarding and verification are. Anything else runs only if an operator deployed it
    // here. This fails closed: a definition that cannot be read or checked is refused, and the
    // definition checked is the one that runs (the registry keeps it).
    let fcid = function.to_string();
    if !f.is_named_here(&fcid) {
        match f.definition(&fcid).await {
            Ok(def) if def.is_pure() => {}
            Ok(_) => {
                return refused(
                    403,
                    format!(
                        "{fcid} is a Docker function not deployed on this node; peers may run only Python functions and Docker functions deployed here"
                    ),
                );
            }
            Err(e) => return refused(e.http_status(), e.to_string()),
        }
    }
    let r = f
        .invoke_here(InvokeRequest {
            function: function.to_string(),
            input,
            params: req.params,
            use_cache: req.cache,
            logs: None,
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
    let body = f
        .store()
        .read_all(out, 1 << 30)
        .await
        .map_err(|e| transport("output", e))?;
    let logs = match &r.logs_cid {
        Some(c) => {
            let c = fetch(c).map_err(|e| transport("logs", e))?;
            f.store()
                .read_all(c, 64 << 20)
                .await
                .map_err(|e| transport("logs", e))?
        }
        None => Default::default(),
    };
    let d = |us: u64| Duration::from_micros(us);
    let published = Published {
        output: r.output_cid,
        outputs: r.outputs_cid,
        logs: r.logs_cid,
    };
    Ok(Invocation {
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
        ..Invocation::new(
            r.function_cid,
            req.input,
            published,
            r.content_type,
            body,
            logs,
        )
    })
}
