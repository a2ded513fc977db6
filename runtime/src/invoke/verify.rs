//! Verification: the same invocation run here and, without cache, on peers; their output CIDs
//! compared. Python functions are deterministic, so honest nodes agree byte for byte.

use super::remote::{self, RemoteFailure};
use super::{Functions, InvokeError, InvokeRequest};
use futures::StreamExt;
use serde::Serialize;

/// What [`Functions::verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The function that ran.
    pub function_cid: String,
    /// Its input.
    pub input_cid: String,
    /// This node's output CID.
    pub output_cid: String,
    /// Peers asked for.
    pub requested: usize,
    /// Peers that answered with an output.
    pub answered: usize,
    /// Every answering peer gave `output_cid`, and as many answered as were asked for.
    pub agree: bool,
    /// What each answering peer said.
    pub peers: Vec<PeerVerdict>,
}

/// One peer's answer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerVerdict {
    /// The peer's ID.
    pub peer: String,
    /// The output CID it produced.
    pub output_cid: Option<String>,
    /// Whether that is this node's output CID.
    pub agrees: bool,
    /// Why it produced none.
    pub error: Option<String>,
}

impl Functions {
    /// Runs the invocation here (from the cache when allowed) and again, without cache, on up
    /// to `peers` connected peers; compares the output CIDs.
    pub async fn verify(
        &self,
        req: InvokeRequest,
        peers: usize,
    ) -> Result<Verification, InvokeError> {
        let att = self.inner.network.get();
        let function_cid = self.resolve_name(&req.function)?;
        let params = req.params.clone();
        let here = self.invoke_here(req).await?;
        let req = InvokeRequest {
            function: function_cid.clone(),
            input: here.input_cid,
            params,
            use_cache: false,
            logs: None,
        };
        let candidates = match att {
            Some(a) => a.net.connected().await,
            None => vec![],
        };
        let mut verdicts = vec![];
        let mut answered = 0;
        // Ask `peers` at a time, moving on to others when one fails, until enough answered.
        let mut pending = futures::stream::iter(candidates)
            .map(|p| {
                let req = &req;
                let function_cid = &function_cid;
                async move { (p, remote::ask(self, p, function_cid, req).await) }
            })
            .buffer_unordered(peers.max(1));
        while answered < peers {
            let Some((p, r)) = pending.next().await else {
                break;
            };
            match r {
                Ok(w) => {
                    answered += 1;
                    verdicts.push(PeerVerdict {
                        peer: p.to_string(),
                        agrees: w.output_cid == here.output_cid,
                        output_cid: Some(w.output_cid),
                        error: None,
                    });
                }
                Err(RemoteFailure::Transport(e)) => {
                    // a peer that is not an ipfaas node (e.g. a plain IPFS peer) is not a verdict
                    tracing::debug!("verification on {p}: {e}");
                }
                Err(RemoteFailure::Function(e)) => {
                    answered += 1;
                    verdicts.push(PeerVerdict {
                        peer: p.to_string(),
                        output_cid: None,
                        agrees: false,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        drop(pending);
        let agree = answered >= peers && peers > 0 && verdicts.iter().all(|v| v.agrees);
        if let Some(a) = att {
            let result = if agree {
                "agree"
            } else if answered < peers {
                "incomplete"
            } else {
                "disagree"
            };
            a.net
                .metrics()
                .verifications
                .with_label_values(&[result])
                .inc();
        }
        Ok(Verification {
            function_cid,
            input_cid: here.input_cid.to_string(),
            output_cid: here.output_cid,
            requested: peers,
            answered,
            agree,
            peers: verdicts,
        })
    }
}
