//! The WASM executor's *mounting mechanism*: an input CID as a random-access byte source over
//! the backing store. A file CID reads as its bytes; a directory CID as an uncompressed POSIX
//! tar stream whose layout (headers and where each file's bytes sit) is computed up front from
//! the directory nodes alone, so any offset is served without reading what comes before it and
//! nothing is materialised on disk.

use super::{InputReader, Stop};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::unixfs::limits::TreeBudget;
use crate::unixfs::read::{Kind, tar_header};
use bytes::Bytes;
use cid::Cid;
use futures::TryStreamExt;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

enum Seg {
    Bytes(Bytes),
    File(Cid),
    Zeros,
}

/// (start offset, length, segment), sorted by offset.
type Segs = Arc<Vec<(u64, u64, Seg)>>;

/// A read under way on the runtime: (offset, len, task).
type Ahead = (u64, u32, JoinHandle<std::result::Result<Vec<u8>, String>>);

/// Reads at least this much at a time before a sequential reader is read ahead of.
const READ_AHEAD_MIN: u32 = 64 << 10;

/// An input CID, read through the store on demand. A reader that goes front to back in large
/// reads (hashing, parsing, copying) gets the next read fetched while it works on this one.
pub struct StoreInput {
    store: Store,
    rt: Handle,
    segs: Segs,
    size: u64,
    /// Where the last read ended: the next read starting there is sequential.
    last_end: Option<u64>,
    /// The next read, already under way.
    ahead: Option<Ahead>,
    /// When reads give up: a block only a slow or silent peer has must not outlast the
    /// invocation.
    stop: Option<Stop>,
}

impl Drop for StoreInput {
    fn drop(&mut self) {
        if let Some((_, _, task)) = self.ahead.take() {
            task.abort();
        }
    }
}

impl StoreInput {
    /// Lays out `cid` (file or directory). Call from async code; reads happen later on the
    /// executor's blocking thread.
    pub async fn open(store: &Store, cid: Cid) -> Result<Self> {
        let mut segs = Vec::new();
        let mut at = 0u64;
        match store.stat(&cid).await? {
            Kind::File { size } => push(&mut segs, &mut at, size, Seg::File(cid))?,
            Kind::Symlink { target } => {
                return Err(Error::InvalidInput(format!(
                    "input {cid} is a symlink to {target:?}, not a file or directory"
                )));
            }
            Kind::Directory => {
                walk(store, cid, &mut segs, &mut at).await?;
                push(&mut segs, &mut at, 1024, Seg::Zeros)?;
            }
        }
        Ok(Self {
            store: store.clone(),
            rt: Handle::current(),
            segs: Arc::new(segs),
            size: at,
            last_end: None,
            ahead: None,
            stop: None,
        })
    }
}

fn push(segs: &mut Vec<(u64, u64, Seg)>, at: &mut u64, len: u64, s: Seg) -> Result<()> {
    if len > 0 {
        segs.push((*at, len, s));
        *at = at.checked_add(len).ok_or_else(|| {
            Error::InvalidInput("the input's tar layout is over 2^64 bytes".into())
        })?;
    }
    Ok(())
}

/// Appends the tar layout of directory `root` depth-first, in the order `ipfs get` writes it.
/// Iterative, and every entry is counted against a [`TreeBudget`] as it is listed, so a DAG
/// that is deep, wide or links one child from many places stops at the limits instead of
/// exhausting the stack or memory.
async fn walk(
    store: &Store,
    root: Cid,
    segs: &mut Vec<(u64, u64, Seg)>,
    at: &mut u64,
) -> Result<()> {
    let mut budget = TreeBudget::new(root, u64::MAX);
    // one frame per open directory: its path prefix and the entries still to lay out
    let first = store.listing_within(&root, &mut budget, 0, 1).await?;
    let mut frames = vec![(String::new(), first.into_iter())];
    while let Some((prefix, next)) = frames.last_mut() {
        let Some((e, kind)) = next.next() else {
            frames.pop();
            continue;
        };
        let path = format!("{prefix}{}", e.name);
        match kind {
            Kind::Directory => {
                let h = tar_header(&path, tar::EntryType::Directory, 0, None)?;
                push(segs, at, h.len() as u64, Seg::Bytes(h))?;
                let depth = frames.len() + 1;
                let prefix = format!("{path}/");
                let children = store
                    .listing_within(&e.cid, &mut budget, prefix.len(), depth)
                    .await?;
                frames.push((prefix, children.into_iter()));
            }
            Kind::File { size } => {
                let h = tar_header(&path, tar::EntryType::Regular, size, None)?;
                push(segs, at, h.len() as u64, Seg::Bytes(h))?;
                push(segs, at, size, Seg::File(e.cid))?;
                push(segs, at, (512 - size % 512) % 512, Seg::Zeros)?;
            }
            Kind::Symlink { target } => {
                let h = tar_header(&path, tar::EntryType::Symlink, 0, Some(&target))?;
                push(segs, at, h.len() as u64, Seg::Bytes(h))?;
            }
        }
    }
    Ok(())
}

impl InputReader for StoreInput {
    fn size(&self) -> u64 {
        self.size
    }

    fn bound_by(&mut self, stop: Stop) {
        self.stop = Some(stop);
    }

    fn read_at(&mut self, offset: u64, len: u32) -> std::result::Result<Vec<u8>, String> {
        let sequential = self.last_end == Some(offset);
        let stop = self.stop.as_ref();
        let data = match self.ahead.take() {
            Some((o, l, task)) if o == offset && l == len => {
                let abort = task.abort_handle();
                let r = block_on(&self.rt, stop, async move {
                    task.await.map_err(|e| format!("read-ahead: {e}"))?
                });
                abort.abort();
                r?
            }
            other => {
                if let Some((_, _, task)) = other {
                    task.abort();
                }
                let read = read_range(
                    self.store.clone(),
                    self.segs.clone(),
                    self.size,
                    offset,
                    len,
                );
                block_on(&self.rt, stop, read)?
            }
        };
        let end = offset + data.len() as u64;
        self.last_end = Some(end);
        if sequential && len >= READ_AHEAD_MIN && end < self.size {
            let task = self.rt.spawn(read_range(
                self.store.clone(),
                self.segs.clone(),
                self.size,
                end,
                len,
            ));
            self.ahead = Some((end, len, task));
        }
        Ok(data)
    }
}

/// Runs `f` on `rt` until it ends or `stop` is due.
fn block_on<T>(
    rt: &Handle,
    stop: Option<&Stop>,
    f: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> std::result::Result<T, String> {
    match stop {
        Some(s) => rt.block_on(s.bound(f)),
        None => rt.block_on(f),
    }
}

/// Up to `len` bytes of the laid-out input at `offset`.
async fn read_range(
    store: Store,
    segs: Segs,
    size: u64,
    offset: u64,
    len: u32,
) -> std::result::Result<Vec<u8>, String> {
    let end = offset.saturating_add(len as u64).min(size);
    let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
    let mut pos = offset;
    // the segment holding `pos`
    let mut i = segs.partition_point(|(start, _, _)| *start <= pos);
    i = i.saturating_sub(1);
    while pos < end && i < segs.len() {
        let (start, seg_len, seg) = &segs[i];
        let from = pos - start;
        let take = (seg_len - from).min(end - pos);
        match seg {
            Seg::Bytes(b) => out.extend_from_slice(&b[from as usize..(from + take) as usize]),
            Seg::Zeros => out.resize(out.len() + take as usize, 0),
            Seg::File(cid) => {
                let (_, mut s) = store
                    .cat(*cid, from, Some(take))
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(chunk) = s.try_next().await.map_err(|e| e.to_string())? {
                    out.extend_from_slice(&chunk);
                }
            }
        }
        pos += take;
        i += 1;
    }
    Ok(out)
}
