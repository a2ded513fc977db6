//! Reading UnixFS DAGs: node kinds, directory listings (basic and HAMT), path resolution,
//! byte ranges of files (only the blocks that overlap the range are fetched), and `ipfs get`-style
//! tar streams.

use super::RAW;
use super::dir::name_hash;
use super::limits::{MAX_DIR_ENTRIES, MAX_NAME_LEN, MAX_SYMLINK_TARGET, TreeBudget, over_limit};
use super::pb::{DataType, Node, UnixFs};
use crate::error::{Error, Result};
use bytes::Bytes;
use cid::Cid;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

/// Anything that can hand out blocks by CID (the store: local disk, then peers).
pub trait BlockSource: Clone + Send + Sync + 'static {
    /// The bytes of block `cid`, or [`Error::NotFound`] when it cannot be had.
    fn block(&self, cid: &Cid) -> impl Future<Output = Result<Bytes>> + Send;

    /// A hint that `cids` will be asked for soon, in this order: a source that fetches from
    /// peers starts asking for those it lacks, so a reader's round trips overlap. The default
    /// does nothing.
    fn prefetch(&self, cids: &[Cid]) {
        let _ = cids;
    }
}

/// How many blocks ahead of a file reader its source is told about ([`BlockSource::prefetch`]).
pub const READ_AHEAD: usize = 32;

/// File bytes as a stream of chunks, each of which may fail (a block not found, a bad node).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// What a CID points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A file (a raw block or a UnixFS file DAG).
    File {
        /// Its length in bytes.
        size: u64,
    },
    /// A directory, basic or HAMT-sharded.
    Directory,
    /// A symlink.
    Symlink {
        /// Where it points, as stored (lossily decoded as UTF-8).
        target: String,
    },
}

fn malformed(cid: &Cid, reason: impl ToString) -> Error {
    Error::Malformed {
        cid: cid.to_string(),
        reason: reason.to_string(),
    }
}

/// The kind of the node `block` (whose CID is `cid`).
pub fn kind_of(cid: &Cid, block: &[u8]) -> Result<Kind> {
    if cid.codec() == RAW {
        return Ok(Kind::File {
            size: block.len() as u64,
        });
    }
    if cid.codec() != super::DAG_PB {
        return Err(Error::InvalidInput(format!(
            "{cid}: codec 0x{:x} is not UnixFS (dag-pb or raw)",
            cid.codec()
        )));
    }
    let node = Node::decode(block).map_err(|e| malformed(cid, e))?;
    let fs = UnixFs::decode(node.data.unwrap_or(&[])).map_err(|e| malformed(cid, e))?;
    Ok(match fs.kind {
        DataType::File | DataType::Raw => Kind::File {
            size: file_holds(cid, &node, &fs)?,
        },
        DataType::Directory | DataType::HamtShard => Kind::Directory,
        DataType::Symlink => {
            let target = fs.data.unwrap_or(&[]);
            if target.len() > MAX_SYMLINK_TARGET {
                return Err(over_limit(
                    cid,
                    format!(
                        "a symlink target of {} bytes; the limit is {MAX_SYMLINK_TARGET}",
                        target.len()
                    ),
                ));
            }
            Kind::Symlink {
                target: String::from_utf8_lossy(target).into_owned(),
            }
        }
        DataType::Metadata => {
            return Err(malformed(cid, "UnixFS metadata nodes are not supported"));
        }
    })
}

/// What a file node holds: its data plus its children's sizes. That must be what it declares,
/// with one size per link: a DAG whose real size disagrees with its claims (a 10-byte file
/// linking gigabytes, a tar header hidden in a 0-byte file's data) is refused before any child
/// is fetched or any byte sent.
fn file_holds(cid: &Cid, node: &Node<'_>, fs: &UnixFs<'_>) -> Result<u64> {
    if node.links.len() != fs.blocksizes.len() {
        return Err(malformed(
            cid,
            "file node with links and blocksizes of different lengths",
        ));
    }
    let holds = fs
        .blocksizes
        .iter()
        .try_fold(fs.data.map_or(0, |d| d.len() as u64), |a, b| {
            a.checked_add(*b)
        })
        .ok_or_else(|| malformed(cid, "block sizes overflow"))?;
    if fs.filesize.is_some_and(|f| f != holds) {
        return Err(malformed(
            cid,
            format!("declares {:?} bytes but holds {holds}", fs.filesize),
        ));
    }
    Ok(holds)
}

/// Fetches the block `cid` and tells what it is.
pub async fn stat<B: BlockSource>(src: &B, cid: &Cid) -> Result<Kind> {
    kind_of(cid, &src.block(cid).await?)
}

/// A directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name (a single, checked path component).
    pub name: String,
    /// What the entry points at.
    pub cid: Cid,
    /// Cumulative DAG size of the entry, from its link.
    pub tsize: u64,
}

/// Entry names must be single path components: a DAG from the network must not be able to
/// make a tar stream or an export write outside its root.
fn check_name(dir: &Cid, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(malformed(
            dir,
            format!("unsafe directory entry name {name:?}"),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(over_limit(
            dir,
            format!(
                "an entry name is {} bytes long; the limit is {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// What a HAMT shard node says of its layout.
pub(crate) struct Shard {
    /// Hex digits of a bucket prefix in link names.
    pub pad: usize,
    /// Buckets per shard.
    pub fanout: u64,
}

/// A directory node and, for a HAMT shard, its layout.
pub(crate) fn dir_node<'a>(cid: &Cid, block: &'a [u8]) -> Result<(Node<'a>, Option<Shard>)> {
    if cid.codec() != super::DAG_PB {
        return Err(Error::NotADirectory(cid.to_string()));
    }
    let node = Node::decode(block).map_err(|e| malformed(cid, e))?;
    let fs = UnixFs::decode(node.data.unwrap_or(&[])).map_err(|e| malformed(cid, e))?;
    match fs.kind {
        DataType::Directory => Ok((node, None)),
        DataType::HamtShard => {
            let fanout = fs
                .fanout
                .filter(|f| f.is_power_of_two() && *f >= 8 && *f <= 1 << 16);
            let fanout =
                fanout.ok_or_else(|| malformed(cid, "HAMT shard with an invalid fanout"))?;
            if fs.hash_type != Some(0x22) {
                return Err(malformed(
                    cid,
                    "HAMT shard with an unsupported hash function",
                ));
            }
            Ok((
                node,
                Some(Shard {
                    pad: format!("{:X}", fanout - 1).len(),
                    fanout,
                }),
            ))
        }
        _ => Err(Error::NotADirectory(cid.to_string())),
    }
}

/// All entries of the directory `cid`, sorted by name (HAMT shards are walked).
pub async fn entries<B: BlockSource>(src: &B, cid: &Cid) -> Result<Vec<Entry>> {
    entries_from(src, cid, None).await
}

/// [`entries`], reusing the directory's root block when the caller already holds it.
async fn entries_from<B: BlockSource>(
    src: &B,
    cid: &Cid,
    mut root_block: Option<Bytes>,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut shards = vec![*cid];
    // A HAMT names each shard once: buckets hold disjoint names. A shard linked twice would
    // list its entries twice (five blocks linking one shard from every bucket list 16.7 M).
    let mut seen = std::collections::HashSet::new();
    while let Some(c) = shards.pop() {
        if !seen.insert(c) {
            return Err(malformed(
                cid,
                format!("HAMT links the shard {c} more than once"),
            ));
        }
        let block = match root_block.take() {
            Some(b) => b,
            None => src.block(&c).await?,
        };
        let (node, shard) = dir_node(&c, &block)?;
        if c != *cid && shard.is_none() {
            return Err(malformed(cid, "HAMT shard links to a non-shard node"));
        }
        for l in node.links {
            let name = match &shard {
                None => l.name,
                Some(s) if l.name.len() == s.pad => {
                    shards.push(l.cid);
                    continue;
                }
                Some(s) => l
                    .name
                    .get(s.pad..)
                    .ok_or_else(|| malformed(&c, "bad HAMT link name"))?
                    .to_string(),
            };
            check_name(&c, &name)?;
            if out.len() == MAX_DIR_ENTRIES {
                return Err(over_limit(
                    cid,
                    format!(
                        "the directory has more than {MAX_DIR_ENTRIES} entries, this node's limit"
                    ),
                ));
            }
            out.push(Entry {
                name,
                cid: l.cid,
                tsize: l.tsize,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // One name, one entry: a listing that names an entry twice (say a symlink, then a file of
    // the same name) would have every consumer that writes it out act on both.
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(malformed(
            cid,
            format!("directory entry {:?} appears more than once", w[0].name),
        ));
    }
    Ok(out)
}

/// Looks up one name in the directory `cid`; a HAMT is descended along the name's hash.
pub async fn lookup<B: BlockSource>(src: &B, cid: &Cid, name: &str) -> Result<Cid> {
    let hash = name_hash(name);
    let mut cur = *cid;
    for depth in 0.. {
        let block = src.block(&cur).await?;
        let (node, shard) = dir_node(&cur, &block)?;
        let Some(shard) = shard else {
            if depth > 0 {
                return Err(malformed(cid, "HAMT shard links to a non-shard node"));
            }
            return node
                .links
                .into_iter()
                .find(|l| l.name == name)
                .map(|l| l.cid)
                .ok_or_else(|| Error::NoSuchEntry {
                    cid: cid.to_string(),
                    name: name.into(),
                });
        };
        if shard.fanout != 256 {
            // rare layouts: walk everything
            return entries(src, cid)
                .await?
                .into_iter()
                .find(|e| e.name == name)
                .map(|e| e.cid)
                .ok_or_else(|| Error::NoSuchEntry {
                    cid: cid.to_string(),
                    name: name.into(),
                });
        }
        let Some(byte) = hash.get(depth) else { break };
        let prefix = format!("{byte:02X}");
        let Some(l) = node.links.into_iter().find(|l| l.name.starts_with(&prefix)) else {
            break;
        };
        if l.name.len() == prefix.len() {
            cur = l.cid;
        } else if &l.name[prefix.len()..] == name {
            return Ok(l.cid);
        } else {
            break;
        }
    }
    Err(Error::NoSuchEntry {
        cid: cid.to_string(),
        name: name.into(),
    })
}

/// Resolves `root/seg/seg...`.
pub async fn resolve<B: BlockSource>(src: &B, root: Cid, path: &[&str]) -> Result<Cid> {
    let mut cur = root;
    for seg in path.iter().filter(|s| !s.is_empty()) {
        cur = lookup(src, &cur, seg).await?;
    }
    Ok(cur)
}

/// Streams `len` bytes (or to the end) of the file `cid` from `offset`.
/// The caller checks the kind and the range first (see [`stat`]) so errors reach it before any
/// byte is sent; errors after that end the stream.
pub fn cat<B: BlockSource>(src: B, cid: Cid, offset: u64, len: Option<u64>) -> ByteStream {
    let end = len.map_or(u64::MAX, |l| offset.saturating_add(l));
    produce(move |tx| async move { send_range(&src, cid, offset, end, &tx).await })
}

/// Runs `f` as a task feeding a bounded channel; the stream ends when `f` does.
fn produce<F, Fut>(f: F) -> ByteStream
where
    F: FnOnce(mpsc::Sender<Result<Bytes>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let err_tx = tx.clone();
        if let Err(e) = f(tx).await {
            let _ = err_tx.send(Err(e)).await;
        }
    });
    let mut rx = rx;
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Sends a receiver-gone condition up as an error so producers stop early.
async fn send(tx: &mpsc::Sender<Result<Bytes>>, b: Bytes) -> Result<()> {
    if b.is_empty() {
        return Ok(());
    }
    tx.send(Ok(b)).await.map_err(|_| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "reader went away",
        ))
    })
}

async fn send_range<B: BlockSource>(
    src: &B,
    root: Cid,
    start: u64,
    end: u64,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let overlap = |node_off: u64, data: &Bytes| -> Bytes {
        let (a, b) = (node_off, node_off + data.len() as u64);
        let (lo, hi) = (a.max(start), b.min(end));
        if lo >= hi {
            Bytes::new()
        } else {
            data.slice((lo - a) as usize..(hi - a) as usize)
        }
    };
    // (node, offset, the size its parent says it holds; None for the root)
    let mut stack = vec![(root, 0u64, None::<u64>)];
    while let Some((cid, off, expected)) = stack.pop() {
        // the block entering the read-ahead window (the stack's top is read next)
        if let Some(i) = stack.len().checked_sub(READ_AHEAD) {
            src.prefetch(&[stack[i].0]);
        }
        let block = src.block(&cid).await?;
        let differs = |holds: u64| {
            malformed(
                &cid,
                format!("its parent says it holds {expected:?} bytes, it holds {holds}"),
            )
        };
        if cid.codec() == RAW {
            if expected.is_some_and(|e| e != block.len() as u64) {
                return Err(differs(block.len() as u64));
            }
            send(tx, overlap(off, &block)).await?;
            continue;
        }
        let node = Node::decode(&block).map_err(|e| malformed(&cid, e))?;
        let fs = UnixFs::decode(node.data.unwrap_or(&[])).map_err(|e| malformed(&cid, e))?;
        match fs.kind {
            DataType::File | DataType::Raw => {}
            DataType::Directory | DataType::HamtShard if cid == root => {
                return Err(Error::IsADirectory(cid.to_string()));
            }
            _ => return Err(malformed(&cid, "file DAG links to a non-file node")),
        }
        let data = fs.data.map(|d| block.slice_ref(d)).unwrap_or_default();
        let holds = file_holds(&cid, &node, &fs)?;
        if expected.is_some_and(|e| e != holds) {
            return Err(differs(holds));
        }
        send(tx, overlap(off, &data)).await?;
        let mut child_off = off + data.len() as u64;
        let first_child = stack.len();
        for (l, size) in node.links.iter().zip(&fs.blocksizes) {
            if child_off < end && child_off + size > start {
                stack.push((l.cid, child_off, Some(*size)));
            }
            child_off += size;
        }
        stack[first_child..].reverse();
        // a node's children in range, the first READ_AHEAD of them, in reading order
        let ahead: Vec<Cid> = stack[first_child..]
            .iter()
            .rev()
            .take(READ_AHEAD)
            .map(|e| e.0)
            .collect();
        if !ahead.is_empty() {
            src.prefetch(&ahead);
        }
    }
    Ok(())
}

/// Streams the tree at `cid` as a POSIX tar archive laid out like `ipfs get`: the root entry is
/// named `root_name`, everything else sits below it. Headers carry mtime 0 and fixed modes so the
/// same CID always gives the same bytes.
pub fn tar<B: BlockSource>(src: B, cid: Cid, root_name: String) -> ByteStream {
    produce(move |tx| async move {
        // a stream: the caller reads as much as it wants, so no limit on bytes
        let mut budget = TreeBudget::new(cid, u64::MAX);
        let mut stack = vec![(root_name, cid, 0)];
        while let Some((path, cid, depth)) = stack.pop() {
            let block = src.block(&cid).await?;
            match kind_of(&cid, &block)? {
                Kind::Directory => {
                    send(&tx, tar_header(&path, tar::EntryType::Directory, 0, None)?).await?;
                    let mut children = entries_from(&src, &cid, Some(block)).await?;
                    // counted (with their paths) as they are queued, so the queue is bounded too
                    for c in &children {
                        budget.admit(depth + 1, path.len() + 1 + c.name.len())?;
                    }
                    children.reverse();
                    stack.extend(
                        children
                            .into_iter()
                            .map(|e| (format!("{path}/{}", e.name), e.cid, depth + 1)),
                    );
                }
                Kind::File { size } => {
                    send(&tx, tar_header(&path, tar::EntryType::Regular, size, None)?).await?;
                    send_range(&src, cid, 0, u64::MAX, &tx).await?;
                    let pad = (512 - size % 512) % 512;
                    send(&tx, Bytes::from(vec![0u8; pad as usize])).await?;
                }
                Kind::Symlink { target } => {
                    send(
                        &tx,
                        tar_header(&path, tar::EntryType::Symlink, 0, Some(&target))?,
                    )
                    .await?;
                }
            }
        }
        send(&tx, Bytes::from(vec![0u8; 1024])).await
    })
}

/// The header block(s) for one entry; long names get GNU long-name records.
pub(crate) fn tar_header(
    path: &str,
    kind: tar::EntryType,
    size: u64,
    link: Option<&str>,
) -> Result<Bytes> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mode(match kind {
        tar::EntryType::Directory => 0o755,
        tar::EntryType::Symlink => 0o777,
        _ => 0o644,
    });
    let mut b = tar::Builder::new(Vec::with_capacity(1024));
    match link {
        Some(target) => b.append_link(&mut h, path, target)?,
        None => b.append_data(&mut h, path, std::io::empty())?,
    }
    let bytes = std::mem::take(b.get_mut());
    Ok(Bytes::from(bytes))
}
