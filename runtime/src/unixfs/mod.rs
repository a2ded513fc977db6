//! UnixFS: turning bytes and trees into content-addressed DAGs byte-identical to Kubo's, and
//! reading them back.
//!
//! The importer follows Kubo/boxo exactly for both IPIP-499 profiles: fixed-size chunking,
//! the balanced layout, dag-pb or raw leaves, basic directories that switch to a HAMT
//! (murmur3, fanout 256) once their estimated size exceeds 256 KiB. rust-unixfs (shipped with
//! rust-ipfs) has no HAMT builder and no size-estimation modes, so this module owns both sides.

pub mod car;
pub mod dir;
pub mod file;
pub mod limits;
pub mod links;
pub mod pb;
pub mod read;

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// Multicodec of dag-pb blocks (UnixFS nodes).
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks (file leaves holding bare bytes).
pub const RAW: u64 = 0x55;
const SHA2_256: u64 = 0x12;

/// Where importers put the blocks they make.
pub trait BlockSink {
    /// Takes one finished block and its CID.
    fn put(&mut self, cid: &Cid, data: &[u8]) -> std::io::Result<()>;
}

/// A sink that only computes CIDs (`ipfs add --only-hash`).
#[derive(Debug, Default)]
pub struct HashOnly;

impl BlockSink for HashOnly {
    fn put(&mut self, _: &Cid, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// How the directory size is estimated to decide when a directory becomes a HAMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeEstimation {
    /// Legacy: sum of `len(name) + len(cid bytes)` over the links.
    Links,
    /// Exact serialized size of the basic directory block.
    Block,
}

/// Named import profiles from IPIP-499.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// What a plain `ipfs add` gives: CIDv0, 256 KiB chunks, 174 links, dag-pb leaves.
    #[default]
    UnixfsV0_2015,
    /// CIDv1, raw leaves, 1 MiB chunks, 1024 links, block-size HAMT estimation.
    UnixfsV1_2025,
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unixfs-v0-2015" | "legacy-cid-v0" => Ok(Self::UnixfsV0_2015),
            "unixfs-v1-2025" => Ok(Self::UnixfsV1_2025),
            _ => Err(format!(
                "unknown import profile {s:?} (expected unixfs-v0-2015 or unixfs-v1-2025)"
            )),
        }
    }
}

/// Everything that decides the shape (and so the CID) of an imported DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// CIDv1 for dag-pb nodes; CIDv0 (`Qm...`) otherwise.
    pub cid_v1: bool,
    /// File leaves as raw blocks rather than dag-pb nodes wrapping the bytes.
    pub raw_leaves: bool,
    /// Bytes per file leaf (fixed-size chunking).
    pub chunk_size: usize,
    /// Most links an internal node of a file's balanced DAG holds.
    pub max_links: usize,
    /// A directory whose estimated size is strictly greater than this becomes a HAMT.
    pub hamt_threshold: usize,
    /// How a directory's size is measured against `hamt_threshold`.
    pub size_estimation: SizeEstimation,
}

/// Largest chunk accepted: the libp2p/bitswap block limit is 2 MiB; Kubo caps chunks at 1 MiB+.
pub const MAX_CHUNK_SIZE: usize = 2 * 1024 * 1024 - 1024;

impl ImportOptions {
    /// The options a named IPIP-499 profile fixes.
    pub fn profile(p: Profile) -> Self {
        match p {
            Profile::UnixfsV0_2015 => Self {
                cid_v1: false,
                raw_leaves: false,
                chunk_size: 256 * 1024,
                max_links: 174,
                hamt_threshold: 256 * 1024,
                size_estimation: SizeEstimation::Links,
            },
            Profile::UnixfsV1_2025 => Self {
                cid_v1: true,
                raw_leaves: true,
                chunk_size: 1024 * 1024,
                max_links: 1024,
                hamt_threshold: 256 * 1024,
                size_estimation: SizeEstimation::Block,
            },
        }
    }

    /// Kubo's rule for `--cid-version=1` without an explicit `--raw-leaves`: raw leaves on.
    pub fn with_cid_version(mut self, v1: bool) -> Self {
        if v1 && !self.cid_v1 {
            self.raw_leaves = true;
        }
        self.cid_v1 = v1;
        self
    }

    /// Parses Kubo's `--chunker` syntax; only fixed-size chunking (`size-N`) is supported.
    pub fn with_chunker(mut self, spec: &str) -> Result<Self, String> {
        let n = spec
            .strip_prefix("size-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("unsupported chunker {spec:?}: only size-N is supported"))?;
        if n == 0 || n > MAX_CHUNK_SIZE {
            return Err(format!(
                "chunker size {n} out of range (1..={MAX_CHUNK_SIZE})"
            ));
        }
        self.chunk_size = n;
        Ok(self)
    }

    fn pb_cid(&self, block: &[u8]) -> Cid {
        let mh = sha256(block);
        if self.cid_v1 {
            Cid::new_v1(DAG_PB, mh)
        } else {
            Cid::new_v0(mh).expect("sha2-256 multihash is valid for CIDv0")
        }
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self::profile(Profile::default())
    }
}

/// The sha2-256 multihash of `data`, as every imported block is addressed.
pub fn sha256(data: &[u8]) -> Multihash<64> {
    Multihash::wrap(SHA2_256, &Sha256::digest(data)).expect("32-byte digest fits")
}

/// The root of an imported file, directory or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The root block's CID.
    pub cid: Cid,
    /// Cumulative DAG size (what a parent link's `Tsize` carries).
    pub tsize: u64,
    /// Bytes of file content (0 for directories).
    pub size: u64,
}

/// A UnixFS symlink node.
pub fn symlink<S: BlockSink>(
    target: &str,
    opts: &ImportOptions,
    sink: &mut S,
) -> std::io::Result<Imported> {
    let mut fs = pb::UnixFs::new(pb::DataType::Symlink);
    fs.data = Some(target.as_bytes());
    let block = pb::Node::encode(&[], Some(&fs.encode()));
    let cid = opts.pb_cid(&block);
    sink.put(&cid, &block)?;
    Ok(Imported {
        cid,
        tsize: block.len() as u64,
        size: 0,
    })
}
