//! Compute-to-data: an invocation whose input is large and held elsewhere goes to a peer that
//! holds it, instead of the input coming here.

use super::remote::{self, RemoteFailure};
use super::{Functions, Invocation, InvokeError, InvokeRequest};
use crate::error::Result;
use crate::store::Store;
use crate::unixfs::read::Kind;
use cid::Cid;
use std::time::Duration;

impl Functions {
    /// Forwards to a peer holding the input when the input is large and not here; when no
    /// such peer can do it, runs here (fetching the input).
    pub(super) async fn routed(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        let Some(att) = self.inner.network.get() else {
            return self.run_here(req).await;
        };
        let Some(threshold) = att.forward_threshold else {
            return self.run_here(req).await;
        };
        let store = &self.inner.store;
        if store.is_offline() || store.has_local_root(&req.input) {
            return self.run_here(req).await;
        }
        let function_cid = self.resolve_name(&req.function)?;
        if req.use_cache && self.is_cached(&function_cid, &req) {
            return self.run_here(req).await;
        }
        let size = input_size(store, req.input).await?;
        if size < threshold {
            return self.run_here(req).await;
        }
        let m = att.net.metrics();
        let holders = att
            .net
            .providers(req.input, 3, Duration::from_secs(5))
            .await;
        for peer in holders {
            match remote::invoke_on(self, peer, &function_cid, &req).await {
                Ok(inv) => {
                    m.forwarded.with_label_values(&["out", "ok"]).inc();
                    return Ok(inv);
                }
                Err(RemoteFailure::Function(e)) => {
                    m.forwarded.with_label_values(&["out", "error"]).inc();
                    return Err(e);
                }
                Err(RemoteFailure::Transport(e)) => {
                    m.forwarded.with_label_values(&["out", "failed_over"]).inc();
                    tracing::warn!("forwarding to {peer} failed, trying elsewhere: {e}");
                }
            }
        }
        self.run_here(req).await
    }
}

/// Bytes an input stands for: a file's size, or a directory's cumulative DAG size.
async fn input_size(store: &Store, cid: Cid) -> Result<u64> {
    match store.stat(&cid).await? {
        Kind::File { size } => Ok(size),
        // claimed sizes, from anyone: summed without overflow
        Kind::Directory => Ok(store
            .entries(&cid)
            .await?
            .iter()
            .fold(0u64, |a, e| a.saturating_add(e.tsize))),
        Kind::Symlink { .. } => Ok(0),
    }
}
