//! Reading blocks: from the small-block cache, the repo, or peers over bitswap (with the
//! retries a stalled want needs), and fetching ahead of a reader.

use super::Store;
use crate::error::{Error, Result};
use crate::unixfs::read::BlockSource;
use bytes::Bytes;
use cid::Cid;
use std::time::{Duration, Instant};

/// Blocks fetched ahead of readers at once, on the whole node.
pub const MAX_PREFETCHING: usize = 256;

impl BlockSource for Store {
    /// Starts fetching, each in a task of its own, the blocks of `cids` that are neither here
    /// nor already being fetched (none when this store may not fetch; at most
    /// [`MAX_PREFETCHING`] at once on the node). A failure is left to the read that needs the
    /// block, which asks again and reports it. A task outlives a reader that went away by at
    /// most the fetch timeout, and fetches one block.
    fn prefetch(&self, cids: &[Cid]) {
        if self.inner.offline || !self.fetch {
            return;
        }
        for c in cids {
            // an identity CID holds its bytes; one here needs no fetch
            if c.hash().code() == 0
                || self.inner.small.get(c).is_some()
                || self.inner.blocks.contains(c)
            {
                continue;
            }
            {
                let mut inflight = self
                    .inner
                    .prefetching
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                // a bound for the whole node, however many readers hint at once
                if inflight.len() >= MAX_PREFETCHING || !inflight.insert(*c) {
                    continue;
                }
            }
            let (this, c) = (self.clone(), *c);
            tokio::spawn(async move {
                let _ = this.block(&c).await;
                this.inner
                    .prefetching
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&c);
            });
        }
    }

    async fn block(&self, cid: &Cid) -> Result<Bytes> {
        if let Some(data) = self.inner.small.get(cid) {
            return Ok(data);
        }
        let inner = self.inner.clone();
        let c = *cid;
        let local = tokio::task::spawn_blocking(move || inner.blocks.get(&c))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
        if let Some(data) = local {
            let data = Bytes::from(data);
            self.inner.small.put(cid, &data);
            return Ok(data);
        }
        let waited = self.inner.fetch_timeout;
        if self.inner.offline || !self.fetch {
            return Err(Error::NotFound {
                cid: cid.to_string(),
                waited: Duration::ZERO,
                cause: (!self.fetch && !self.inner.offline).then(|| {
                    "this read may not fetch from peers: send the API token, or start the node with --fetch-on-read".to_string()
                }),
            });
        }
        // rust-ipfs asks peers over bitswap, checks the bytes against the CID and stores them.
        // A defence, not a fix for an observed failure (that was vendor/pollable-map): reading
        // rust-ipfs 0.16's bitswap, once one peer has said "have" the others are not asked, and
        // if that peer dies with the block in flight nobody is asked again until the 30 s
        // rebroadcast. So each ask gets a short wait (3 s, doubling, which a slow link still
        // fits in); when it fails or stalls, the want is dropped and made afresh, which asks
        // every connected peer again. Our deadline decides "not found".
        let deadline = Instant::now() + waited;
        let mut last_error = None;
        let mut patience = Duration::from_secs(3);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = patience.min(left);
            patience *= 2;
            // rust-ipfs's own timer runs a little longer, so ours tells a stall apart
            let fetch = self
                .inner
                .node
                .get_block(*cid)
                .timeout(wait + Duration::from_secs(1));
            match tokio::time::timeout(wait, fetch).await {
                Ok(Ok(block)) => {
                    let m = &self.inner.metrics;
                    m.fetched_blocks.inc();
                    m.blocks.inc();
                    m.bytes.add(block.data().len() as i64);
                    return Ok(Bytes::copy_from_slice(block.data()));
                }
                Ok(Err(e)) => {
                    tracing::debug!("fetching {cid}: {e:#}; asking again");
                    last_error = Some(format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                }
                Err(_) => {
                    tracing::debug!("fetching {cid}: no block after {wait:.1?}; asking again")
                }
            }
        }
        self.inner.metrics.fetch_failures.inc();
        Err(Error::NotFound {
            cid: cid.to_string(),
            waited,
            cause: last_error,
        })
    }
}
