//! CAR v1 streams (ipld.io/specs/transport/car/carv1) of a DAG, as the IPFS Trustless Gateway
//! serves them (specs.ipfs.tech/http-gateways/trustless-gateway): the blocks that prove a
//! path, then the blocks a `dag-scope` (`block`, `entity`, `all`) and an `entity-bytes` range
//! select, depth-first (`order=dfs`), each block once (`dups=n`) or every time the walk meets it
//! (`dups=y`). Identity CIDs are never sent (their bytes are in the CID).
//!
//! Hand-written rather than taken from a CAR crate: the framing is a varint and two byte
//! strings, and the walk (what a scope and a byte range select from a UnixFS DAG) is the part no
//! crate provides. The walk keeps an explicit stack, so a DAG of any depth costs no call stack.

use super::DAG_PB;
use super::links::links;
use super::pb::{DataType, Node, UnixFs};
use super::read::{BlockSource, ByteStream, dir_node};
use crate::error::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;
use std::collections::HashSet;
use std::ops::Range;
use tokio::sync::mpsc;

/// Multihash code of identity "hashes" (the data is the digest).
const IDENTITY: u64 = 0x00;

/// How much of the DAG below the path's end a CAR holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The end's block only.
    Block,
    /// What it takes to read the end as one thing: a whole file (or the blocks of a byte range
    /// of it), a directory's node (all shards of a HAMT), any other node's block.
    Entity,
    /// The whole DAG below the end.
    All,
}

impl Scope {
    /// Parses a `dag-scope` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Self::Block),
            "entity" => Some(Self::Entity),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    /// The `dag-scope` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Entity => "entity",
            Self::All => "all",
        }
    }
}

/// What one CAR holds.
#[derive(Debug, Clone)]
pub struct CarSpec {
    /// The root named in the CAR header (the requested CID).
    pub root: Cid,
    /// The blocks that prove the path from `root` to `end`, in the order they were met (the
    /// root's first); sent before everything else.
    pub path: Vec<Cid>,
    /// The path's end.
    pub end: Cid,
    /// How much below `end`.
    pub scope: Scope,
    /// With [`Scope::Entity`] on a file: only the blocks holding these bytes of it.
    pub bytes: Option<Range<u64>>,
    /// Send a block every time the walk meets it (`dups=y`), not only the first.
    pub dups: bool,
}

/// The CAR v1 header naming `root`: a varint length, then the dag-cbor map
/// `{"roots": [root], "version": 1}` (keys in dag-cbor's order: shorter first).
pub fn header(root: &Cid) -> Bytes {
    let cid = root.to_bytes();
    let mut map = Vec::with_capacity(cid.len() + 24);
    map.push(0xa2); // map of 2
    map.push(0x65); // text(5)
    map.extend_from_slice(b"roots");
    map.push(0x81); // array of 1
    map.extend_from_slice(&[0xd8, 42]); // tag 42: a CID
    cbor_len(&mut map, 0x40, cid.len() as u64 + 1); // bytes: 0x00 then the binary CID
    map.push(0x00);
    map.extend_from_slice(&cid);
    map.push(0x67); // text(7)
    map.extend_from_slice(b"version");
    map.push(0x01);
    let mut out = BytesMut::with_capacity(map.len() + 2);
    put_varint(&mut out, map.len() as u64);
    out.extend_from_slice(&map);
    out.freeze()
}

/// One CAR section: varint(length of CID and data), the binary CID, the data.
pub fn section(cid: &Cid, data: &[u8]) -> Bytes {
    let c = cid.to_bytes();
    let mut out = BytesMut::with_capacity(c.len() + data.len() + 10);
    put_varint(&mut out, (c.len() + data.len()) as u64);
    out.extend_from_slice(&c);
    out.extend_from_slice(data);
    out.freeze()
}

fn cbor_len(out: &mut Vec<u8>, major: u8, n: u64) {
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        _ => {
            // a CID (at most 64-byte digests) is far shorter
            assert!(n <= 0xffff, "a CAR header root of {n} bytes");
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Streams the CAR `spec` describes. The blocks come from `src` as the walk reaches them; a
/// block that cannot be had (or a node that does not decode where the walk must read it) ends
/// the stream with an error, so the client sees an incomplete CAR, as the spec requires once
/// the answer has started.
pub fn car<B: BlockSource>(src: B, spec: CarSpec) -> ByteStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes>>(8);
    tokio::spawn(async move {
        let err_tx = tx.clone();
        if let Err(e) = Walk::new(&src, &tx, spec.dups).run(spec).await {
            let _ = err_tx.send(Err(e)).await;
        }
    });
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// One walk's state: where blocks go, and (without dups) which were sent.
struct Walk<'a, B> {
    src: &'a B,
    tx: &'a mpsc::Sender<Result<Bytes>>,
    dups: bool,
    sent: HashSet<Cid>,
}

impl<'a, B: BlockSource> Walk<'a, B> {
    fn new(src: &'a B, tx: &'a mpsc::Sender<Result<Bytes>>, dups: bool) -> Self {
        Self {
            src,
            tx,
            dups,
            sent: HashSet::new(),
        }
    }

    async fn run(mut self, spec: CarSpec) -> Result<()> {
        self.out(header(&spec.root)).await?;
        for c in &spec.path {
            let b = self.block(c).await?;
            self.emit(c, &b).await?;
        }
        match spec.scope {
            Scope::Block => {
                let b = self.block(&spec.end).await?;
                self.emit(&spec.end, &b).await
            }
            Scope::All => self.all(spec.end).await,
            Scope::Entity => self.entity(spec.end, spec.bytes).await,
        }
    }

    /// The block `cid`: an identity CID's own digest, anything else from the source.
    async fn block(&self, cid: &Cid) -> Result<Bytes> {
        if cid.hash().code() == IDENTITY {
            return Ok(Bytes::copy_from_slice(cid.hash().digest()));
        }
        self.src.block(cid).await
    }

    /// Sends `cid`'s section unless it is an identity CID or (without dups) was sent already.
    async fn emit(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        if !self.dups && !self.sent.insert(*cid) {
            return Ok(());
        }
        if cid.hash().code() != IDENTITY {
            self.out(section(cid, data)).await?;
        }
        Ok(())
    }

    async fn out(&self, b: Bytes) -> Result<()> {
        self.tx.send(Ok(b)).await.map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "reader went away",
            ))
        })
    }

    /// The whole DAG below `end`, depth-first; without dups a block's DAG is walked once (it
    /// went out whole the first time). Blocks sent only as the path's proof are still walked.
    async fn all(&mut self, end: Cid) -> Result<()> {
        let mut walked = HashSet::new();
        let mut stack = vec![end];
        while let Some(cid) = stack.pop() {
            if !self.dups && !walked.insert(cid) {
                continue;
            }
            let b = self.block(&cid).await?;
            self.emit(&cid, &b).await?;
            let children = links(&cid, &b).map_err(|e| malformed(&cid, e))?;
            stack.extend(children.into_iter().rev());
        }
        Ok(())
    }

    /// What it takes to read `end` as one thing.
    async fn entity(&mut self, end: Cid, bytes: Option<Range<u64>>) -> Result<()> {
        let b = self.block(&end).await?;
        if end.codec() != DAG_PB {
            // a raw block is a whole file; other codecs are their own block
            self.emit(&end, &b).await?;
            return Ok(());
        }
        let kind = Node::decode(&b)
            .ok()
            .and_then(|n| UnixFs::decode(n.data.unwrap_or(&[])).ok().map(|f| f.kind));
        match kind {
            Some(DataType::File | DataType::Raw) => self.file(end, b, bytes).await,
            Some(DataType::HamtShard) => self.shards(end, b).await,
            // a plain directory, a symlink, dag-pb that is not UnixFS
            _ => self.emit(&end, &b).await,
        }
    }

    /// The blocks of the file `root` (whose block is `first`) that hold `range` (all of them
    /// without one), depth-first: a node, then those of its children that overlap the range.
    ///
    /// Without dups, a node met again is skipped only if its whole span was inside the range
    /// the first time (all its blocks went out then); one cut by the range's edge is walked
    /// again at its new offset, which only the nodes along the two edges can be.
    async fn file(&mut self, root: Cid, first: Bytes, range: Option<Range<u64>>) -> Result<()> {
        let whole = range.is_none();
        let want = range.unwrap_or(0..u64::MAX);
        let mut complete: HashSet<Cid> = HashSet::new();
        let mut stack: Vec<(Cid, u64, Option<Bytes>)> = vec![(root, 0, Some(first))];
        while let Some((cid, off, got)) = stack.pop() {
            if !self.dups && complete.contains(&cid) {
                continue;
            }
            let b = match got {
                Some(b) => b,
                None => self.block(&cid).await?,
            };
            self.emit(&cid, &b).await?;
            let inside = |holds: u64| off >= want.start && off.saturating_add(holds) <= want.end;
            if cid.codec() != DAG_PB {
                if !self.dups && inside(b.len() as u64) {
                    complete.insert(cid);
                }
                continue;
            }
            let node = Node::decode(&b).map_err(|e| malformed(&cid, e))?;
            let fs = UnixFs::decode(node.data.unwrap_or(&[])).map_err(|e| malformed(&cid, e))?;
            if node.links.len() != fs.blocksizes.len() {
                return Err(malformed(&cid, "links and blocksizes of different lengths"));
            }
            let data = fs.data.map_or(0, |d| d.len() as u64);
            let holds = fs.blocksizes.iter().fold(data, |a, b| a.saturating_add(*b));
            if !self.dups && inside(holds) {
                complete.insert(cid);
            }
            let mut child = off.saturating_add(data);
            let first_child = stack.len();
            for (l, size) in node.links.iter().zip(&fs.blocksizes) {
                let end = child.saturating_add(*size);
                // without a range every child goes (an empty one too)
                if whole || (child < want.end && end > want.start) {
                    stack.push((l.cid, child, None));
                }
                child = end;
            }
            stack[first_child..].reverse();
        }
        Ok(())
    }

    /// A HAMT directory's shards, not the entries they point to.
    async fn shards(&mut self, root: Cid, first: Bytes) -> Result<()> {
        let mut walked = HashSet::new();
        let mut stack: Vec<(Cid, Option<Bytes>)> = vec![(root, Some(first))];
        while let Some((cid, got)) = stack.pop() {
            if !self.dups && !walked.insert(cid) {
                continue;
            }
            let b = match got {
                Some(b) => b,
                None => self.block(&cid).await?,
            };
            self.emit(&cid, &b).await?;
            let (node, shard) = dir_node(&cid, &b)?;
            let shard = shard.ok_or_else(|| malformed(&cid, "HAMT links to a non-shard"))?;
            // a link named by its bucket alone is a sub-shard; longer names are entries
            let subs: Vec<Cid> = node
                .links
                .into_iter()
                .filter(|l| l.name.len() == shard.pad)
                .map(|l| l.cid)
                .collect();
            stack.extend(subs.into_iter().rev().map(|c| (c, None)));
        }
        Ok(())
    }
}

fn malformed(cid: &Cid, reason: impl ToString) -> Error {
    Error::Malformed {
        cid: cid.to_string(),
        reason: reason.to_string(),
    }
}

/// An `entity-bytes=from:to` value resolved against a file of `size` bytes: the half-open
/// range of bytes it names (negative numbers count from the end, `*` is the end; `to` is
/// inclusive). `Ok(None)`: a range that is empty once resolved (the CAR is then the file's root
/// block, as for `dag-scope=block`). `Err`: not the syntax, or entirely past the end.
pub fn entity_bytes(spec: &str, size: u64) -> std::result::Result<Option<Range<u64>>, String> {
    let bad = || format!("entity-bytes={spec:?}: expected from:to (integers, or * for to)");
    let (from, to) = spec.split_once(':').ok_or_else(bad)?;
    let at = |v: i64| -> u64 {
        if v < 0 {
            size.saturating_sub(v.unsigned_abs())
        } else {
            v as u64
        }
    };
    let from: i64 = from.parse().map_err(|_| bad())?;
    let start = at(from);
    let end = match to {
        "*" => size,
        t => {
            let t: i64 = t.parse().map_err(|_| bad())?;
            if t < 0 && t.unsigned_abs() > size {
                return Ok(None);
            }
            at(t).saturating_add(1).min(size)
        }
    };
    if from >= 0 && start >= size && size > 0 {
        return Err(format!(
            "entity-bytes={spec}: starts past the end of a {size}-byte file"
        ));
    }
    Ok((start < end).then_some(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: &str, size: u64| entity_bytes(s, size);
        assert_eq!(r("0:*", 100), Ok(Some(0..100)));
        assert_eq!(r("0:9", 100), Ok(Some(0..10)));
        assert_eq!(r("10:1000", 100), Ok(Some(10..100)));
        assert_eq!(r("-10:*", 100), Ok(Some(90..100)));
        assert_eq!(r("-1000:*", 100), Ok(Some(0..100)));
        assert_eq!(r("5:-10", 100), Ok(Some(5..91)));
        assert_eq!(r("50:10", 100), Ok(None));
        assert_eq!(r("0:-200", 100), Ok(None));
        assert_eq!(r("0:*", 0), Ok(None));
        assert!(r("100:*", 100).is_err());
        assert!(r("a:b", 100).is_err());
        assert!(r("5", 100).is_err());
        assert!(r("1:", 100).is_err());
    }

    #[test]
    fn header_is_the_dag_cbor_the_reference_encoder_writes() {
        use ipld_core::ipld::Ipld;
        let root: Cid = "bafkqaaa".parse().unwrap();
        let long: Cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
            .parse()
            .unwrap();
        for c in [root, long] {
            let map = Ipld::Map(
                [
                    ("roots".to_string(), Ipld::List(vec![Ipld::Link(c)])),
                    ("version".to_string(), Ipld::Integer(1)),
                ]
                .into(),
            );
            let want = serde_ipld_dagcbor::to_vec(&map).unwrap();
            let got = header(&c);
            assert_eq!(got[0] as usize, want.len());
            assert_eq!(&got[1..], &want[..]);
        }
    }
}
