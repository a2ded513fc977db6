//! Garbage collection: blocks that no pin reaches are removed, so what reads fetched from
//! peers (and adds made with `pin=false`) is a cache that can be trimmed, by hand
//! ([`Store::gc`], `ipfaas repo gc`) or past a watermark of the repo's size
//! ([`spawn_auto_gc`]). Pinned data is never collected.
//!
//! A collection marks every block reachable from the pins, and from the roots of adds that are
//! written but not yet pinned (a published output waits for its group commit), then removes
//! every other block file. Adds and collections exclude each other (a read-write lock: an add
//! holds it shared from its first block to its pin, a collection exclusively, taken only when
//! no add is in progress, so a collection never makes adds queue behind a slow one), so an add
//! never pins a DAG whose blocks a collection removed meanwhile, not even blocks it found
//! already stored. Reads are not held up: a block removed under a read is fetched again from
//! peers, as any block that is not here.

use super::{Inner, Store};
use crate::error::{Result, io_err};
use crate::unixfs::pb;
use cid::Cid;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The dag-pb codec: blocks whose links a collection follows. Raw blocks have none; blocks of
/// other codecs (this node makes none) are kept or removed as a whole, their links not followed.
const DAG_PB: u64 = 0x70;

/// How long a collection waits for a moment with no add in progress before it gives up.
pub const LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// What one collection did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// Roots the collection kept whole: the pins and the adds awaiting their pin.
    pub roots: u64,
    /// Blocks kept (reachable from a root).
    pub kept_blocks: u64,
    /// Blocks removed.
    pub removed_blocks: u64,
    /// Bytes of the removed blocks.
    pub removed_bytes: u64,
    /// The removed blocks.
    #[serde(skip)]
    pub removed: Vec<Cid>,
    /// How long it took, in milliseconds (adds wait that long).
    pub took_ms: u64,
}

/// The key a block is stored under: its CID as version 1 (a v0 CID and its v1 form are the same
/// block file).
fn key(cid: &Cid) -> Cid {
    Cid::new_v1(cid.codec(), cid.hash().to_owned())
}

impl Store {
    /// How many blocks the store holds and their bytes, counted on disk (a walk of the block
    /// directory: blocking, and slow on a large repo; the `ipfaas_store_blocks` and
    /// `ipfaas_store_bytes` gauges are the cheap view).
    pub fn blocks_usage(&self) -> Result<(u64, u64)> {
        Ok(self.inner.blocks.usage()?)
    }

    /// Removes every block that no pin (and no add awaiting its pin) reaches. Adds wait while it
    /// runs. Runs on a blocking thread.
    pub async fn gc(&self) -> Result<GcReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || collect(&inner))
            .await
            .map_err(io_err)?
    }
}

/// One collection (blocking).
fn collect(inner: &Inner) -> Result<GcReport> {
    let t = Instant::now();
    // exclusive: no add is between its first block and its pin while this runs. Taken by
    // trying rather than waiting: a writer waiting on the lock would hold up every new add
    // behind the slowest add in progress (one whose client sends its body slowly).
    let give_up = t + LOCK_PATIENCE;
    let _adds_wait = loop {
        match inner.gc_lock.try_write() {
            Ok(g) => break g,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(crate::error::Error::Unavailable(format!(
                    "garbage collection: adds kept running for {} s without a pause; try again later",
                    LOCK_PATIENCE.as_secs()
                )));
            }
        }
    };
    let mut roots: Vec<Cid> = inner.pins.list()?;
    roots.extend(
        inner
            .unpinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied(),
    );
    let mut report = GcReport {
        roots: roots.len() as u64,
        ..Default::default()
    };
    // mark: every block reachable from a root; iterative, each block visited once
    let mut live: HashSet<Cid> = HashSet::new();
    let mut stack: Vec<Cid> = roots;
    while let Some(cid) = stack.pop() {
        if !live.insert(key(&cid)) {
            continue;
        }
        if cid.codec() != DAG_PB {
            continue;
        }
        // a block missing here (a DAG pinned before all of it arrived) has nothing to follow
        let Some(data) = inner.blocks.get(&cid)? else {
            continue;
        };
        // an undecodable block's links cannot be followed; it is kept itself
        if let Ok(node) = pb::Node::decode(&data) {
            stack.extend(node.links.into_iter().map(|l| l.cid));
        }
    }
    // sweep: every block file that is not live
    for shard in std::fs::read_dir(inner.blocks.root())? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(shard.path())? {
            let f = f?;
            let name = f.file_name();
            let Some(stem) = name
                .to_string_lossy()
                .strip_suffix(".data")
                .map(str::to_string)
            else {
                continue;
            };
            // only files named as blocks are ever removed
            let Ok(cid) = Cid::try_from(stem.as_str()) else {
                continue;
            };
            if live.contains(&key(&cid)) {
                report.kept_blocks += 1;
                continue;
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(f.path()) {
                Ok(()) => {
                    report.removed_blocks += 1;
                    report.removed_bytes += size;
                    report.removed.push(cid);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // cached copies of removed blocks must not answer reads
    inner.small.clear();
    let m = &inner.metrics;
    m.blocks.sub(report.removed_blocks as i64);
    m.bytes.sub(report.removed_bytes as i64);
    m.gc_runs.inc();
    m.gc_removed_bytes.inc_by(report.removed_bytes);
    report.took_ms = t.elapsed().as_millis() as u64;
    tracing::info!(
        "garbage collection: removed {} blocks ({} bytes), kept {} from {} roots in {} ms",
        report.removed_blocks,
        report.removed_bytes,
        report.kept_blocks,
        report.roots,
        report.took_ms
    );
    Ok(report)
}

/// How often the automatic collector looks at the repo's size.
pub const AUTO_GC_EVERY: Duration = Duration::from_secs(30);
/// The share of `--storage-max` past which a collection starts (Kubo's `StorageGCWatermark`).
pub const WATERMARK_PERCENT: u64 = 90;

/// Collects whenever the blocks stored pass [`WATERMARK_PERCENT`] of `max` bytes, looking every
/// [`AUTO_GC_EVERY`]; stops when the store is dropped. When pinned data alone is past the mark
/// nothing can be removed: that is logged once, and the next collection waits for the store
/// to grow by a tenth of `max` more.
pub fn spawn_auto_gc(store: &Store, max: u64) {
    let weak = Arc::downgrade(&store.inner);
    let mark = max / 100 * WATERMARK_PERCENT;
    tokio::spawn(async move {
        let mut next = mark;
        let mut warned = false;
        loop {
            tokio::time::sleep(AUTO_GC_EVERY).await;
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let used = inner.metrics.bytes.get().max(0) as u64;
            if used < next {
                continue;
            }
            let store = Store { inner, fetch: true };
            match store.gc().await {
                Ok(_) => {
                    let after = store.inner.metrics.bytes.get().max(0) as u64;
                    if after >= mark {
                        if !warned {
                            tracing::warn!(
                                "the repo holds {after} bytes of pinned data, past {WATERMARK_PERCENT}% of --storage-max ({max}): unpin data or raise the limit"
                            );
                            warned = true;
                        }
                        next = after + max / 10;
                    } else {
                        next = mark;
                    }
                }
                Err(e) => tracing::warn!("garbage collection failed: {e}"),
            }
        }
    });
}
